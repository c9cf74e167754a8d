"""The code stays ruff- and mypy-clean and keeps its layers (import-linter's contracts in pyproject.toml): checked with
every test run, and by ``make lint`` on its own."""

from __future__ import annotations

import ast
import builtins
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


def test_every_error_gwsvcr_raises_is_a_gwsvcr_error() -> None:
    """No public error class of the package stands outside GwsvcrError (a ValueError one may be both)."""
    builtin = {name for name, value in vars(builtins).items() if isinstance(value, type)
               and issubclass(value, BaseException)}
    outside = []
    for path in sorted((ROOT / "gwsvcr").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and node.name != "GwsvcrError":
                bases = {ast.unparse(base) for base in node.bases}
                if bases & builtin and "GwsvcrError" not in bases:
                    outside.append(f"{path.relative_to(ROOT)}: {node.name}({', '.join(sorted(bases))})")
    assert not outside, outside
