"""pytest plugin: offline GWS tests in one line.

    @pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")
    def test_stop(gws_replay):
        ...  # point your client at gws_replay.url

Each test gets its own ``gwsvcr replay`` process (mitmproxy) on a free loopback port; a request the cassette does
not hold fails the test with the replayer's explanation (strict, the default). ``--gws-record`` re-records the
marked cassettes through ``gwsvcr record`` against ``--gws-upstream``; without it nothing touches the network.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gwsvcr.record import modes as record_modes
from gwsvcr.record.modes import RecordMode
from gwsvcr.replay import STATUS_PATH
from gwsvcr.served import NotListening, Proc, gwsvcr_command, start
from gwsvcr.timeline import Timing

_KEY = pytest.StashKey["GwsServer"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gwsvcr", "record and replay Genesys Web Services sessions")
    group.addoption("--gws-record", action="store_true", default=False,
                    help="Re-record the cassettes of @gws_cassette tests against --gws-upstream.")
    group.addoption("--gws-upstream", default=None, metavar="URL", help="The GWS server to record from.")
    group.addoption("--gws-record-mode", default=RecordMode.ALL.value, choices=[m.value for m in RecordMode],
                    help="Record mode with --gws-record (as in 'gwsvcr record'; default all).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gws_cassette(path, timing='recorded', speed=1.0, strict=True): replay this cassette "
                   "(path relative to the test file) for the gws_replay fixture")
    if config.getoption("--gws-record") and not config.getoption("--gws-upstream"):
        raise pytest.UsageError("--gws-record needs --gws-upstream URL (the GWS server to record from)")


@dataclass
class GwsServer:
    """A running ``gwsvcr replay`` (or ``record``) process for one test."""

    url: str
    cassette: Path
    strict: bool
    recording: bool
    process: Proc
    _final: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        if self.recording:
            return {"misses": [], "unused": []}
        with urllib.request.urlopen(self.url + STATUS_PATH, timeout=10) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    @property
    def misses(self) -> list[dict[str, Any]]:
        """Requests nothing in the cassette matched, each with the closest recorded ones."""
        return list(self.status()["misses"])

    @property
    def unused(self) -> list[int]:
        """Numbers of recorded exchanges no request asked for (so far)."""
        return list(self.status()["unused"])

    def finish(self) -> None:
        if self.process.popen.poll() is None:
            if not self.recording:
                self._final = self.status()
            self.process.stop(timeout=30)

    def explain(self) -> str:
        lines = [f"gwsvcr: {len(self.misses)} request(s) not in {self.cassette}:"]
        for miss in self.misses:
            lines.append(f"  {miss['request']}: {miss['reason']}")
            for near in miss["closest"]:
                lines.append(f"    closest: exchange {near['exchange']} {near['request']}")
                lines += [f"      - {d}" for d in near["differences"]]
        lines.append("Re-record with: pytest --gws-record --gws-upstream URL, or relax with strict=False.")
        return "\n".join(lines)


@pytest.fixture
def gws_replay(request: pytest.FixtureRequest) -> Iterator[GwsServer]:
    """A replay of the test's @gws_cassette on a free loopback port: ``.url``, ``.misses``, ``.unused``."""
    marker = request.node.get_closest_marker("gws_cassette")
    if marker is None or not marker.args:
        raise pytest.fail("gws_replay needs @pytest.mark.gws_cassette('path/to/cassette.yaml')", pytrace=False)
    options = {"timing": Timing.RECORDED.value, "speed": 1.0, "strict": True, **marker.kwargs}
    if options["timing"] not in Timing:
        raise pytest.fail(f"@gws_cassette(timing={options['timing']!r}): timing is one of "
                          f"{', '.join(t.value for t in Timing)}", pytrace=False)
    cassette = (Path(request.node.path).parent / marker.args[0]).resolve()
    config = request.config
    recording = bool(config.getoption("--gws-record"))
    if recording:
        mode = config.getoption("--gws-record-mode")
        args = ["record", "--upstream", config.getoption("--gws-upstream"), "--cassette", str(cassette),
                "--record-mode", mode, "--port", "0"]
        try:
            record_modes.check_target(cassette, mode)
        except record_modes.CassetteExists as e:
            raise pytest.fail(str(e), pytrace=False) from None
    else:
        if not cassette.is_file():
            raise pytest.fail(
                f"cassette {cassette} not found (from @gws_cassette({marker.args[0]!r}) in {request.node.path}). "
                f"Record it with: pytest {request.node.nodeid} --gws-record --gws-upstream https://your-gws, "
                f"or gwsvcr record --upstream URL --cassette {cassette}", pytrace=False)
        args = ["replay", str(cassette), "--port", "0", "--timing", str(options["timing"]),
                "--speed", str(options["speed"]), "--strict" if options["strict"] else "--lenient"]
    try:
        proc = start(gwsvcr_command(*args), timeout=60)
    except NotListening as e:
        raise pytest.fail(f"gwsvcr could not start {args[0]} of {cassette}:\n{e}", pytrace=False) from None
    server = GwsServer(proc.url, cassette, bool(options["strict"]), recording, proc)
    request.node.stash[_KEY] = server
    try:
        yield server
    finally:
        server.finish()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body: a strict replay that missed fails the test itself, with the explanation."""
    result = yield
    server = item.stash.get(_KEY, None)
    if server is not None and not server.recording:
        server.finish()
        if server.strict and server.misses:
            pytest.fail(server.explain(), pytrace=False)
    return result

