"""The gwsvcr command's first step (cli/entry.py): which starts re-run under ``python -O``, and the lean
``mitmproxy.addons`` package the engine imports its addons from."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gwsvcr import optimized
from gwsvcr.cli import entry


@pytest.mark.parametrize(("argv", "expected"), [
    (["/venv/bin/gwsvcr", "replay", "c.yaml"], True),
    (["/venv/bin/gwsvcr", "sim", "--port", "0"], True),
    (["/x/gwsvcr/__main__.py", "record", "--upstream", "http://u"], True),
    (["/venv/bin/gwsvcr", "replay", "--help"], False),
    (["/venv/bin/gwsvcr", "service", "-h"], False),
    (["/venv/bin/gwsvcr", "show", "c.yaml"], False),
    (["/venv/bin/gwsvcr"], False),
    (["/venv/bin/pytest", "replay"], False),
])
def test_only_serving_commands_started_as_gwsvcr_rerun_optimized(argv: list[str], expected: bool,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GWSVCR_DEBUG", raising=False)
    monkeypatch.setattr(optimized, "optimized_bytecode", lambda: True)
    assert entry.wants_optimized(argv) is (expected and not sys.flags.optimize)


def test_debug_keeps_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GWSVCR_DEBUG", "1")
    monkeypatch.setattr(optimized, "optimized_bytecode", lambda: True)
    assert not entry.wants_optimized(["/venv/bin/gwsvcr", "replay", "c.yaml"])


LEAN = """
import sys
from gwsvcr.cli.entry import lean_addons_package
lean_addons_package()
import gwsvcr.cli.serve
print(sorted(m for m in ("flask", "ldap3", "mitmproxy.addons.onboarding", "mitmproxy.flowfilter") if m in sys.modules))
from mitmproxy import addons
print(len(addons.default_addons()) > 20, "mitmproxy.addons.onboarding" in sys.modules)
"""


def test_the_engine_imports_only_its_addons_and_the_rest_of_the_package_on_first_use() -> None:
    done = subprocess.run([sys.executable, "-c", LEAN], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True True"], done.stdout


@pytest.mark.parametrize("args", [("service", "--port", "0"), ("replay", "c.yaml"), ("sim",), ("record", "-h"),
                                  ("replay", "--help"), ("show", "c.yaml"), ()])
def test_a_serving_command_is_started_under_python_O_where_the_entry_would_rerun_it_so(
        args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """gwsvcr.served.gwsvcr_command spares the started command the entry's re-run (an interpreter start)."""
    from gwsvcr import served

    monkeypatch.delenv("GWSVCR_DEBUG", raising=False)
    monkeypatch.setattr(optimized, "optimized_bytecode", lambda: True)
    cmd = served.gwsvcr_command(*args)
    assert cmd[-len(args) - 2:] == ["-m", "gwsvcr", *args]
    rerun = entry.wants_optimized(["/x/gwsvcr/__main__.py", *args])  # False in a test run under -O itself
    assert ("-O" in cmd) is rerun or bool(sys.flags.optimize)
    monkeypatch.setenv("GWSVCR_DEBUG", "1")
    assert "-O" not in served.gwsvcr_command(*args)
