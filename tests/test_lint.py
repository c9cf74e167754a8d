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


def test_no_module_imports_from_the_package_front() -> None:
    """``from gwsvcr import X`` names a module, never what the front (gwsvcr/__init__.py) re-exports: the front
    stands above every layer (it offers the harness API), and import-linter's layers do not see it."""
    modules = {p.stem for p in (ROOT / "gwsvcr").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    modules |= {"addons", "cli"}
    wrong = []
    for path in sorted([*(ROOT / "gwsvcr").rglob("*.py"), *(ROOT / "addons").rglob("*.py"),
                        *(ROOT / "cli").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "gwsvcr" and node.level == 0:
                wrong += [f"{path.relative_to(ROOT)}:{node.lineno}: {a.name}" for a in node.names
                          if a.name not in modules]
    assert not wrong, wrong
