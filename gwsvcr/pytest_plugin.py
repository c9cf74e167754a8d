"""pytest plugin: offline GWS tests in one line, on one replay service per pytest process.

    @pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")
    def test_stop(gws_replay):
        ...  # point your client at gws_replay.url

The first test collected that asks for ``gws_replay`` starts a ``gwsvcr service`` in the background while the
collection goes on (or ``$GWSVCR_SERVICE`` names one); each test mounts its cassette on it, on a port of its own,
and unmounts it when done (:mod:`gwsvcr.api`). Under pytest-xdist every worker has its own service. A strict
replay with a request the cassette does not hold fails the test with the explanation. ``--gws-record`` records
each test's cassette through ``gwsvcr record`` against ``--gws-upstream``; without it nothing touches the network.

Configuration, overridable the pytest way (a module or a conftest.py defines the fixture), as pytest-recording's
``vcr_config`` / ``vcr_cassette_dir`` / ``default_cassette_name``: ``gws_config`` (the options of
:func:`gwsvcr.replaying`), ``gws_cassette_dir`` and ``gws_cassette_name``. The marker's options override
``gws_config``; a marker on a function overrides one on its class, which overrides the module's ``pytestmark``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gwsvcr import api
from gwsvcr.errors import GwsvcrError
from gwsvcr.options import RECORD, REPLAY, OptionProblems, Surface
from gwsvcr.replay.status import late_text

_KEY = pytest.StashKey["api.Replay | api.Recording"]()
_STARTED = pytest.StashKey[bool]()  # the service's start in the background is asked for (or not needed)
_FORBIDDEN_IN_NAMES = '<>?%*:|"\'/\\'  # characters a file name cannot hold (pytest-recording's list)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gwsvcr", "record and replay Genesys Web Services sessions")
    group.addoption("--gws-record", action="store_true", default=False,
                    help="Record the cassettes of gws_replay tests against --gws-upstream.")
    group.addoption("--gws-upstream", default=None, metavar="URL", help="The GWS server to record from.")
    mode = RECORD["mode"]
    group.addoption("--gws-record-mode", default=mode.default_on(Surface.API), choices=mode.values,
                    help=f"Record mode with --gws-record (as in 'gwsvcr record'; default "
                         f"{mode.default_on(Surface.API)}).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"gws_cassette(path=None, {REPLAY.keywords(Surface.MARKER)}): replay this cassette (relative "
                   "to the test file; default cassettes/<module>/<test>.yaml) for the gws_replay fixture; on a "
                   "function, a class or a module")
    if config.getoption("--gws-record") and not config.getoption("--gws-upstream"):
        raise pytest.UsageError("--gws-record needs --gws-upstream URL (the GWS server to record from)")


def pytest_itemcollected(item: pytest.Item) -> None:
    """The first test collected that replays starts the service in the background: its start (a second or so)
    overlaps the rest of the collection instead of holding up that test. Not for ``--collect-only`` nor
    ``--gws-record``; a test deselected afterwards (``-k``) leaves it unused, stopped at exit as always."""
    config = item.config
    if config.stash.get(_STARTED, False) or "gws_replay" not in getattr(item, "fixturenames", ()):
        return
    config.stash[_STARTED] = True
    if not config.option.collectonly and not config.getoption("--gws-record"):
        api.start_shared_service()


@pytest.fixture(scope="session")
def gws_service() -> api.ServiceClient:
    """The replay service of this pytest process (of this xdist worker): ``$GWSVCR_SERVICE`` or one started
    for the session."""
    try:
        return api.shared_service()
    except GwsvcrError as e:
        raise pytest.fail(str(e), pytrace=False) from None


@pytest.fixture
def gws_config() -> dict[str, Any]:
    """Options for every replay in scope (the marker's: timing, speed, strict, ..., as gwsvcr.options.REPLAY
    declares them); override it in a module or a conftest.py. The marker's options win."""
    return {}


@pytest.fixture
def gws_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """Where a test's cassette is when its marker names none: ``cassettes/<module>/`` beside the test module."""
    module = Path(request.node.path)
    return module.parent / "cassettes" / module.stem


@pytest.fixture
def gws_cassette_name(request: pytest.FixtureRequest) -> str:
    """The cassette's file name when its marker names none: ``<test>.yaml``, ``<Class>.<test>.yaml`` in a class,
    parameters kept (``test_x[a-b].yaml``), characters a file name cannot hold replaced by ``-``."""
    name = f"{request.cls.__name__}.{request.node.name}" if request.cls is not None else request.node.name
    for char in _FORBIDDEN_IN_NAMES:
        name = name.replace(char, "-")
    return f"{name}.yaml"


@pytest.fixture
def gws_replay(request: pytest.FixtureRequest, gws_config: dict[str, Any], gws_cassette_dir: Path,
               gws_cassette_name: str) -> Iterator[api.Replay | api.Recording]:
    """The test's cassette mounted on the replay service: ``.url`` (the base URL for the client), ``.misses``,
    ``.unused``. With ``--gws-record``, a recorder in front of ``--gws-upstream`` writing that cassette."""
    markers = list(request.node.iter_markers("gws_cassette"))  # the closest first
    options = dict(gws_config)
    for marker in reversed(markers):
        options.update(marker.kwargs)
    try:
        REPLAY.read(options, Surface.MARKER)
    except OptionProblems as e:
        raise pytest.fail(f"gws_cassette / gws_config: {e}", pytrace=False) from None
    named = next((m.args[0] for m in markers if m.args), None)
    cassette = (Path(request.node.path).parent / named if named else gws_cassette_dir / gws_cassette_name).resolve()
    config = request.config
    handle: api.Replay | api.Recording
    try:
        if config.getoption("--gws-record"):
            handle = api.recording(cassette, upstream=config.getoption("--gws-upstream"),
                                   mode=config.getoption("--gws-record-mode"))
        else:
            if not cassette.is_file():
                raise pytest.fail(
                    f"cassette {cassette} not found (from {_origin(named, request)}). Record it with: pytest "
                    f"{request.node.nodeid} --gws-record --gws-upstream https://your-gws", pytrace=False)
            handle = api.replaying(cassette, service=request.getfixturevalue("gws_service"), **options)
    except GwsvcrError as e:
        raise pytest.fail(f"gwsvcr cannot serve {cassette}:\n{e}", pytrace=False) from None
    request.node.stash[_KEY] = handle
    try:
        yield handle
    finally:
        if not handle.closed:
            handle.close()


def _origin(named: str | None, request: pytest.FixtureRequest) -> str:
    if named:
        return f"@gws_cassette({named!r}) in {request.node.path}"
    return "gws_cassette_dir / gws_cassette_name, the default for this test"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body: a strict replay that missed, left the recorded recovery unused or never struck a fault
    fails the test itself, with the explanation; one whose events went out late (the service was short of CPU)
    warns it (:class:`GwsLateEvents`): what the test timed was the machine, not the cassette."""
    result = yield
    handle = item.stash.get(_KEY, None)
    if isinstance(handle, api.Replay):
        final = handle.close()
        if handle.failed:
            pytest.fail(handle.explain(), pytrace=False)
        if final.get("released_late"):
            item.warn(GwsLateEvents(f"gwsvcr: {handle.cassette}: {late_text(final)}: the replay service was short of "
                                    "CPU, and what this test timed was the machine, not the cassette"))
    return result


class GwsLateEvents(pytest.PytestWarning):
    """The replay of a test's cassette sent events later than recorded because its service was busy."""
