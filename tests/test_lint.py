"""The code stays ruff- and mypy-clean and keeps its layers (import-linter's contracts in pyproject.toml): checked with
every test run, and by ``make lint`` on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    [str(BIN / "ruff"), "check", "gwsvcr", "addons", "cli", "tests", "bench", "scripts"],
    [str(BIN / "mypy"), "gwsvcr", "addons", "cli"],
    [sys.executable, str(ROOT / "scripts" / "lint-imports")],
], ids=["ruff", "mypy", "lint-imports"])
def test_clean(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
