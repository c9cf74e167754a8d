"""Fixtures of the conformance suite, and the writer of docs/CONFORMANCE.md.

``peers`` (tests/conformance/harness.py) records every (client, upstream, transport) cassette once and starts one
replayer per cassette, on first use, for the whole package.

docs/CONFORMANCE.md is rewritten at the end of a run that ran the whole suite (nothing deselected); a partial run
leaves it alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance import report
from tests.conformance.harness import Peers
from tests.conformance.matrix import Cell, not_applicable
from tests.conftest import CONFORMANCE_NOTE as NOTE
from tests.procs import ROOT


@pytest.fixture(scope="package")
def peers(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Peers]:
    p = Peers(tmp_path_factory.mktemp("conformance"))
    p.prefetch(_recordings_needed(request.session.items))
    yield p
    if p.chromium is not None:
        request.config.stash[report.RESULTS].versions["Chromium"] = p.chromium.version.split("/", 1)[-1]
    p.close()


def _recordings_needed(items: list[pytest.Item]) -> set[tuple[str, str, str]]:
    """The cassettes the selected matrix, websocket and message-shape tests replay or inspect."""
    keys = set()
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params  # type: ignore[attr-defined]
        if not params or not report.is_conformance(item):
            continue
        cell = params.get("cell")
        if isinstance(cell, Cell) and not not_applicable(cell):
            keys.add(cell.recording)
        elif item.nodeid.startswith("tests/conformance/test_websocket.py"):
            keys.add((params["client"], params["upstream"], "websocket"))
        elif item.nodeid.startswith("tests/conformance/test_shapes.py::test_single_object_posts"):
            keys.add(("pybayeux", "faye", "long-polling"))
        elif item.nodeid.startswith("tests/conformance/test_shapes.py::test_form_encoded"):
            keys.add(("form", "faye", "long-polling"))
    return keys


# ------------------------------------------------------------------------------------ CONFORMANCE.md
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "protocol(behaviour, against): a CometD/GWS protocol behaviour exercised "
                                       "(listed in docs/CONFORMANCE.md)")
    config.stash[report.RESULTS] = report.Results()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(report.is_conformance(item) for item in items):
        items[0].config.stash[report.RESULTS].partial = True


def pytest_collection_finish(session: pytest.Session) -> None:
    results = session.config.stash[report.RESULTS]
    results.expected = [item.nodeid for item in session.items if report.is_conformance(item)]
    results.modules = {item.module.__name__ for item in session.items  # type: ignore[attr-defined]
                       if report.is_conformance(item)}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if report.is_conformance(item):
        item.config.stash[report.RESULTS].add(item, outcome.get_result())  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    results = session.config.stash[report.RESULTS]
    if session.config.pluginmanager.hasplugin("dsession"):
        return  # pytest-xdist's controller runs no test: the worker that ran the package writes (and tells)
    worker = getattr(session.config, "workeroutput", None)
    if worker is not None and not results.outcomes:
        return  # another worker ran the package (make e2e keeps it on one: tests/conftest.py)
    why_not = results.incomplete()
    if why_not:
        results.note = f"docs/CONFORMANCE.md not rewritten: {why_not}"
    else:
        path = ROOT / "docs" / "CONFORMANCE.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(report.render(results), encoding="utf-8")
        results.note = f"docs/CONFORMANCE.md rewritten ({len(results.outcomes)} conformance tests)"
    if worker is not None:
        worker[NOTE] = results.note


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    note = config.stash[report.RESULTS].note
    if note:
        terminalreporter.write_line(note)
