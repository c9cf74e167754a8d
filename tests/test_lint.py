"""Rules of the code that no linter knows. ruff, mypy and the import layers (import-linter's contracts in
pyproject.toml) are ``make lint``, which ``make test`` and CI run first."""

from __future__ import annotations

import ast
import builtins

from tests.procs import ROOT


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
