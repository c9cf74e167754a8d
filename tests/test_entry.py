"""The gwsvcr command's first step (cli/entry.py): which starts re-run under ``python -O``, and the lean
``mitmproxy.addons`` package the engine imports its addons from."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    monkeypatch.setattr(entry, "optimized_bytecode", lambda: True)
    assert entry.wants_optimized(argv) is (expected and not sys.flags.optimize)


def test_debug_keeps_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GWSVCR_DEBUG", "1")
    monkeypatch.setattr(entry, "optimized_bytecode", lambda: True)
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
