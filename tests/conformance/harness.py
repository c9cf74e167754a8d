"""The conformance suite's harness: upstreams, one cassette per (client, upstream, transport), one replayer per
cassette, the browser, and how a client's replayed session is judged.

Every cassette is recorded once through ``gwsvcr record`` and replayed by one ``gwsvcr replay`` process that every
replaying client of that cassette shares (each client gets its own copy of the recorded session; the misses a
client caused are read from the replayer's status before and after it ran). The replayers run
``--lenient --upstream <static files>`` so that the browser page is served from the replayer's own origin, as
Workspace Web Edition is served by GWS; a client other than the browser must not cause a single miss.
"""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gwsvcr import cassette as cas
from tests.clients import LIFECYCLE, Session, assert_lifecycle, run
from tests.conformance.browser import PAGE_PREFIX, Chromium, StaticFiles, chromium_binary
from tests.conftest import record, replay
from tests.procs import PEERS, Proc, gwsvcr, need, need_node, start, status

# Each upstream's delay between an operation's reply and its notification. The sim's cassettes replay at speed 1,
# so its delay is what each of their events waits: 100 ms, well above TOLERANCE_MS (a replay that ignored the
# delays would fail every cell by far); Faye's are replayed 4x faster, 250 / 4 = 62.5 ms.
EVENT_DELAY_MS = {"faye": 250, "sim": 100}
TOLERANCE_MS = 15.0
# Replay speed of each upstream's cassettes: the delay check compares a replayed delay with recorded / speed.
# Faye's cassettes replay 4x faster; gwsvcr sim's at speed 1, so every client and transport is also checked
# against the recorded delays themselves.
SPEED = {"faye": 4.0, "sim": 1.0}
FAYE_OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
OPS = {"faye": FAYE_OPS, "sim": LIFECYCLE}  # the sim's call starts out being recorded
# Recordings of one upstream made side by side before the tests (Peers.prefetch), a Faye each: the sim's are short.
# No more: a recorder starved of CPU notes a reply late, and its event's recorded delay comes out short.
LANES = {"faye": 3, "sim": 1}


@dataclass
class Recording:
    client: str
    upstream: str
    transport: str
    path: Path
    ops: tuple[str, ...]
    user: str
    call_id: str | None  # Faye takes any call id; the sim has the seed's call only
    session: Session

    @property
    def key(self) -> tuple[str, str, str]:
        return self.client, self.upstream, self.transport

    def delays_ms(self) -> list[float]:
        """The recorded delay of each event, in order."""
        loaded = cas.load(self.path, use_cache=False)
        items = [i for e in loaded.exchanges for i in e.reply_items() if i.is_event and i.delay is not None]
        return [i.delay * 1000 for i in items if i.delay is not None]

    def client_args(self, transport: str | None = None) -> list[str]:
        args = ["--transport", transport or self.transport]
        return args + (["--call-id", self.call_id] if self.call_id else [])


@dataclass
class Replayer:
    proc: Proc
    speed: float
    recording: Recording

    @property
    def url(self) -> str:
        return self.proc.url

    def status(self) -> dict[str, Any]:
        return status(self.url, self.proc.token)


@dataclass
class Played:
    """One replayed session: the client's records and the misses it caused."""

    session: Session
    misses: list[dict[str, Any]]


class Peers:
    """Upstreams, recordings and replayers, each started or made the first time a test needs it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, Proc] = {}
        self.recordings: dict[tuple[str, str, str], Recording] = {}
        self.replayers: dict[tuple[str, str, str], Replayer] = {}
        self.static: StaticFiles | None = None
        self.chromium: Chromium | None = None

    # ----------------------------------------------------------------------------------------- upstreams
    def upstream(self, name: str, lane: int = 0) -> Proc:
        """The upstream ``name``; recordings made side by side (``lane``) get a Faye each (its /v2/me/calls is one
        channel for everybody), while one sim serves every lane (it keeps each user's call state apart)."""
        key = f"{name}-{lane}" if name == "faye" and lane else name
        if key not in self.procs:
            delay = str(EVENT_DELAY_MS[name])
            if name == "faye":
                self.procs[key] = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0",
                                         "--event-delay-ms", delay])
            else:
                self.procs[key] = gwsvcr("sim", "--port", "0", "--event-delay-ms", delay)
        return self.procs[key]

    def static_files(self) -> StaticFiles:
        if self.static is None:
            self.static = StaticFiles()
        return self.static

    def browser(self) -> Chromium:
        binary = chromium_binary()
        need(binary is not None, "Debian chromium (apt-get install -y chromium; .ci/run installs it)")
        if self.chromium is None:
            assert binary is not None
            self.chromium = Chromium(binary, self.tmp / "chromium-profile")
            # Warm up (the first page of a fresh browser is slow): the page's login fails at once against the
            # static server, which has no /api/v2/me.
            self.chromium.run_page(f"{self.static_files().url}{PAGE_PREFIX}index.html?warmup=1")
        return self.chromium

    # ---------------------------------------------------------------------------------------- recordings
    def recording(self, client: str, upstream: str, transport: str, lane: int = 0) -> Recording:
        """The cassette of ``client`` over ``transport`` against ``upstream`` (in ``lane``), recorded on first
        use."""
        key = (client, upstream, transport)
        if key not in self.recordings:
            need_node()
            ops = OPS[upstream]
            user = f"{client}-{transport}"  # the sim keeps each user's call state: a fresh one per recording
            call_id = f"CALL-{client}-{transport}" if upstream == "faye" else None
            path = self.tmp / f"{client}-{upstream}-{transport}.yaml"
            path.unlink(missing_ok=True)  # what a failed attempt left
            recorder = record(self.upstream(upstream, lane).url, path)
            try:
                args = ["--transport", transport] + (["--call-id", call_id] if call_id else [])
                session = run(client, recorder.url, ops, user=user, extra=args)
            finally:
                code = recorder.stop()
            assert code == 0, recorder.stderr
            assert_lifecycle(session, ops)
            self.recordings[key] = Recording(client, upstream, transport, path, ops, user, call_id, session)
        return self.recordings[key]

    def prefetch(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """Record these cassettes now, before any replay is timed: LANES side by side per upstream (a Faye of
        its own each), one after another in a lane. A recording that fails here is recorded again, and fails, in the
        test that needs it."""
        todo = sorted(set(keys) - set(self.recordings))
        by_lane: dict[tuple[str, int], list[tuple[str, str, str]]] = {}
        for upstream in {key[1] for key in todo}:
            mine = [key for key in todo if key[1] == upstream]
            lanes = LANES[upstream]
            for lane in range(min(lanes, len(mine))):
                by_lane[(upstream, lane)] = mine[lane::lanes]
        for name, lane in by_lane:
            self.upstream(name, lane)

        def record_all(lane: int, keys: list[tuple[str, str, str]]) -> None:
            for key in keys:
                try:
                    self.recording(*key, lane=lane)
                except BaseException:  # noqa: BLE001 - pytest's skip/fail too: the test will tell
                    pass

        if by_lane:
            with ThreadPoolExecutor(len(by_lane)) as pool:
                list(pool.map(record_all, [lane for _, lane in by_lane], by_lane.values()))

    def replayer(self, recording: Recording) -> Replayer:
        """One lenient replayer per cassette, over a copy (a lenient replayer appends upstream answers)."""
        if recording.key not in self.replayers:
            copy = self.tmp / f"replayed-{recording.path.name}"
            shutil.copy(recording.path, copy)
            speed = SPEED[recording.upstream]
            proc = replay(copy, "--lenient", "--upstream", self.static_files().url, "--speed", str(speed))
            self.replayers[recording.key] = Replayer(proc, speed, recording)
        return self.replayers[recording.key]

    def play(self, client: str, replayer: Replayer, transport: str, extra: list[str] | None = None,
             check: bool = True) -> Played:
        """Run the recorded session's operations with ``client`` against ``replayer``."""
        rec = replayer.recording
        before = len(replayer.status()["misses"])
        if client == "chromium":
            session = self.run_page(replayer.url, rec, transport)
            if check:
                assert session.of("done"), f"the browser session failed: {session.records[-3:]}"
        else:
            session = run(client, replayer.url, rec.ops, user=rec.user, extra=rec.client_args(transport)
                          + (extra or []), check=check)
        misses = replayer.status()["misses"][before:]
        return Played(session, misses)

    def run_page(self, base: str, rec: Recording, transport: str) -> Session:
        params = {"transport": transport, "ops": ",".join(rec.ops), "user": rec.user, "password": "secret",
                  "eventTimeoutMs": "10000", **({"callId": rec.call_id} if rec.call_id else {})}
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items())
        text = self.browser().run_page(f"{base}{PAGE_PREFIX}index.html?{query}")
        return Session([json.loads(line) for line in text.splitlines() if line.startswith("{")], "")

    def close(self) -> None:
        problems = []
        for key, rp in self.replayers.items():
            if rp.proc.stop() != 0:
                problems.append(f"replayer of {key} exited badly: {rp.proc.stderr[-500:]}")
        for proc in self.procs.values():
            proc.stop()
        if self.chromium is not None:
            self.chromium.close()
        if self.static is not None:
            self.static.stop()
        assert not problems, problems


def page_misses_only(misses: list[dict[str, Any]]) -> bool:
    """A browser's lenient misses are the page and its scripts (forwarded to the static server), nothing else."""
    return all(m["request"].startswith("GET " + PAGE_PREFIX) for m in misses)


def delay_errors(played: Session, recorded_ms: list[float], speed: float) -> list[float]:
    got = [e["delay_ms"] for e in played.events]
    assert len(got) == len(recorded_ms), (got, recorded_ms)
    return [abs(g - r / speed) for g, r in zip(got, recorded_ms, strict=True)]


# What a Spring-based GWS answered to a subscribe it did not like (Genesys v3: a Spring error page, HTTP 500): not
# Bayeux at all.
SPRING_ERROR_PAGE = (
    '<!doctype html><html lang="en"><head><title>HTTP Status 500 \u2013 Internal Server Error</title></head>'
    '<body><h1>HTTP Status 500 \u2013 Internal Server Error</h1><hr class="line" /><p><b>Type</b> Exception Report</p>'
    '<p><b>Message</b> Request processing failed; nested exception is java.lang.IllegalArgumentException: '
    'unknown topic /v2/me/broken</p><hr class="line" /><h3>Apache Tomcat</h3></body></html>')
BROKEN_CHANNEL = "/v2/me/broken"


class _Forward(BaseHTTPRequestHandler):
    upstream: tuple[str, int]

    def _handle(self) -> None:
        body = self._body()
        query = urllib.parse.urlsplit(self.path).query
        carried = body.decode("utf-8", "replace") + urllib.parse.unquote(query)
        if "/meta/subscribe" in carried and BROKEN_CHANNEL in carried:
            page = SPRING_ERROR_PAGE.encode()
            self.send_response(500)
            self.send_header("Content-Type", "text/html;charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn.request(self.command, self.path, body or None, headers)
        reply = conn.getresponse()
        content = reply.read()
        self.send_response(reply.status, reply.reason)
        for name, value in reply.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        conn.close()

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class ErrorPageUpstream:
    """A reverse proxy in front of ``upstream`` that answers any CometD request subscribing to BROKEN_CHANNEL with
    SPRING_ERROR_PAGE (HTTP 500, text/html) and forwards everything else."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        handler = type("Forward", (_Forward,), {"upstream": (parts.hostname, parts.port)})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
