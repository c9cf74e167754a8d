"""The code stays ruff- and mypy-clean: checked with every test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("tool,args", [
    ("ruff", ["check", "gwsvcr", "addons", "cli", "tests", "bench", "scripts"]),
    ("mypy", ["gwsvcr", "addons", "cli"]),
])
def test_clean(tool: str, args: list[str]) -> None:
    done = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
