"""What `make demo` and `make test` install, read from make's dry run in an empty place: the demo gwsvcr alone (a
fresh clone's first command stays short), the tests every extra they import."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.procs import ROOT

pytestmark = pytest.mark.e2e  # runs make


def dry_run(target: str, venv: Path) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not installed")
    done = subprocess.run([make, "-n", "-C", str(ROOT), target, f"VENV={venv}"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def installs(commands: str) -> list[str]:
    """The extras each install installs (a dry run lists the venv's once per sub-make that needs it)."""
    return sorted(set(re.findall(r"pip[- ]install .*?-e '([^']*)'", commands)))


def test_make_demo_installs_gwsvcr_without_extras(tmp_path: Path) -> None:
    assert installs(dry_run("demo", tmp_path / "venv")) == ["."]


def test_make_test_installs_the_test_bench_and_load_extras(tmp_path: Path) -> None:
    assert installs(dry_run("test", tmp_path / "venv")) == [".[test,bench,load]"]
