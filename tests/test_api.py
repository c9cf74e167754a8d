"""The public API: every name a core module lists in ``__all__`` exists, and importing the core never imports
mitmproxy (only gwsvcr.addons and gwsvcr.cli meet it)."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import gwsvcr
from tests.procs import need

_PACKAGE = Path(gwsvcr.__file__).parent
# they import locust, whose import monkey-patches the standard library with gevent: never in this process
LOCUST_SIDE = ("load/user.py", "load/locustfile.py")
CORE = sorted(".".join(("gwsvcr", *path.relative_to(_PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
              for path in _PACKAGE.rglob("*.py") if path.name != "__main__.py"  # __main__ runs the command
              and path.parent.name + "/" + path.name not in LOCUST_SIDE)


@pytest.mark.parametrize("name", CORE)
def test_all_names_what_the_module_holds(name: str) -> None:
    module = importlib.import_module(name)
    assert [n for n in getattr(module, "__all__", []) if not hasattr(module, n)] == []


@pytest.mark.e2e  # starts a process
def test_the_core_imports_no_mitmproxy() -> None:
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mitmproxy', 'click')))")
    done = subprocess.run([sys.executable, "-c", code, *CORE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.e2e  # starts a process
def test_the_locust_side_names_what_it_holds_and_the_rest_never_imports_locust() -> None:
    code = ("import importlib, sys\n"
            "before = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
            "for name in ('gwsvcr.load', 'gwsvcr.load.settings', 'gwsvcr.load.loop', 'gwsvcr.cli.load'):\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))\n"
            "for name in ('gwsvcr.load.user', 'gwsvcr.load.locustfile'):\n"
            "    module = importlib.import_module(name)\n"
            "    print([n for n in module.__all__ if not hasattr(module, n)])\n")
    # looked up, not imported: importing locust would monkey-patch this test process (gevent)
    need(importlib.util.find_spec("locust") is not None, "locust (pip install -e '.[load]')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:3] == ["[]", "[]", "[]"], done.stdout
