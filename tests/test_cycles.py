"""Finished requests (addons/cycles.py, the write watch in addons/flowconv.py) and ended CometD sessions (the
replayer's clients, gwsvcr/replay/client.py) freed by reference counting: a replay server in process, real sockets,
and the cycle collector's census of what it would free (gc.DEBUG_SAVEALL), the collector off meanwhile so that
nothing is freed before it is counted. And what a held connect does not keep: its request (in process, weak
references)."""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import weakref
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.proxy import layer as proxy_layer
from mitmproxy.test import tflow, tutils
from mitmproxy.utils import typecheck

from gwsvcr.addons import flowconv
from gwsvcr.addons.cycles import FreeFinishedStreams, _dropped, _Streams, lean_connection, unlink
from gwsvcr.addons.flowconv import NO_UPSTREAM
from gwsvcr.addons.replayer import GwsReplayer
from gwsvcr.cassette import Request, load
from gwsvcr.cli import serve
from gwsvcr.replay import Replayer, replayer
from tests.procs import ROOT

CASSETTE = ROOT / "cassettes" / "recording_lifecycle.yaml"
NOTIFICATIONS = "/api/v2/notifications"
REQUESTS = 30
# What one finished request left to the collector before (mitmproxy's stream cycle and all it holds), and a closed
# connection's write watch.
FLOW_KINDS = {"HTTPFlow", "HttpStream", "Request", "Response"}
WATCH_KINDS = {"WatchedWriter", "StreamWriter"}
# What a replayed CometD session is made of, once it ended and its client was forgotten.
SESSION_KINDS = {"Session", "Client", "Schedule", "Cursors"}
SESSIONS = 20


class Conn:
    """One kept-alive HTTP/1.1 client connection, raw: no cycles of its own in the census."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, method: str, path: str, body: Any = None, cookie: str = "") -> None:
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic YWdlbnQxOnNlY3JldA==\r\n"
                + (f"Cookie: {cookie}\r\n" if cookie else "") + "Content-Type: application/json\r\n"
                + f"Content-Length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)

    async def read(self) -> tuple[int, dict[str, str], Any]:
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, json.loads(body) if body else None

    async def ask(self, method: str, path: str, body: Any = None, cookie: str = "") -> tuple[int, dict[str, str], Any]:
        self.send(method, path, body, cookie)
        return await self.read()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
def collector_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing collected but by the census; the collector as it was afterwards. And no type checks of mitmproxy's
    objects, as under ``python -O`` where the serving commands run (cli/entry.py): each check that fails keeps its
    TypeError, whose traceback keeps every caller's frame (the stream's, the flow's) in cycles of its own."""
    monkeypatch.setattr(typecheck, "check_option_type", lambda name, value, typeinfo: None)
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        if was:
            gc.enable()


def census() -> collections.Counter[str]:
    """The kinds of object a full collection finds unreachable (and then frees)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
    gc.garbage.clear()
    gc.collect()
    return kinds


async def log_in(conn: Conn) -> tuple[str, str]:
    """A client's login and handshake: its session cookie and its clientId."""
    status, headers, _ = await conn.ask("GET", "/api/v2/me")
    assert status == 200
    cookie = headers["set-cookie"].split(";")[0]
    _, _, (shake,) = await conn.ask("POST", NOTIFICATIONS, [{"channel": "/meta/handshake", "version": "1.0",
                                                             "supportedConnectionTypes": ["long-polling"]}], cookie)
    return cookie, shake["clientId"]


@pytest.fixture(params=["unlinked", "mitmproxy as it is"])
async def replay(request: pytest.FixtureRequest, collector_off: None) -> AsyncIterator[tuple[int, bool, Replayer]]:
    """A replay server in this event loop: its port, whether finished streams are unlinked (the other run shows
    that the census would see mitmproxy's cycles: the test can fail), and its replayer."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    addon = GwsReplayer()
    master = serve.build([addon], host="127.0.0.1", port=0, mode=NO_UPSTREAM, upstream=False,
                         on_ready=ready.set_result,
                         settings={"gwsvcr_replay_cassette": str(CASSETTE), "gwsvcr_replay_timing": "instant"})
    unlinked = request.param == "unlinked"
    if not unlinked:
        master.addons.remove(master.addons.get("freefinishedstreams"))
    running = asyncio.ensure_future(master.run())
    try:
        port = int((await ready).rsplit(":", 1)[1])
        assert addon.core is not None
        yield port, unlinked, addon.core
    finally:
        master.shutdown()
        await running
        serve.release_logging()


async def test_finished_requests_and_released_long_polls_leave_no_cycles(replay: tuple[int, bool, Replayer]) -> None:
    port, unlinked, _ = replay
    rest, poll, other = await Conn.open(port), await Conn.open(port), await Conn.open(port)
    cookie, cid = await log_in(rest)

    def connect(n: int) -> dict[str, Any]:
        return {"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling", "id": str(n)}

    await poll.ask("POST", NOTIFICATIONS, [connect(1)], cookie)  # the first connect is answered at once
    census()
    for _ in range(REQUESTS):
        assert (await rest.ask("GET", "/api/v2/me"))[0] == 200
    # Each connect is held until the next one, on the other connection, releases it.
    conns = [poll, other]
    conns[0].send("POST", NOTIFICATIONS, [connect(2)], cookie)
    for n in range(REQUESTS):
        conns[(n + 1) % 2].send("POST", NOTIFICATIONS, [connect(n + 3)], cookie)
        status, _, (reply, *_) = await conns[n % 2].read()
        assert status == 200 and reply["channel"] == "/meta/connect"
    await asyncio.sleep(0)  # the last reply's stream is dropped once its event is handled
    await asyncio.sleep(0)
    left = census()
    found = {kind: left[kind] for kind in FLOW_KINDS}
    if unlinked:
        assert found == dict.fromkeys(FLOW_KINDS, 0)
    else:
        assert found["HTTPFlow"] >= 2 * REQUESTS and found["HttpStream"] >= 2 * REQUESTS
    for conn in (rest, poll, other):
        await conn.close()


async def test_the_layers_of_a_held_long_poll_queue_in_lists(replay: tuple[int, bool, Replayer]) -> None:
    """Every mitmproxy layer of an agent's connections (proxy, HTTP, HTTP/1, the held stream) keeps its queue of
    paused events as a list, 56 bytes, not a deque, 760 (addons/cycles.py), and so does each connection's handler
    for the hooks it reports after an event (cli/serve.py PromptHooks), and its socket's queues; events still reach
    them in order: the held connect is answered when the next connect releases it, and the other connection serves
    on."""
    port, lean, core = replay
    rest, poll = await Conn.open(port), await Conn.open(port)
    cookie, cid = await log_in(rest)

    def connect(n: int) -> dict[str, Any]:
        return {"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling", "id": str(n)}

    await poll.ask("POST", NOTIFICATIONS, [connect(1)], cookie)  # the first connect is answered at once
    poll.send("POST", NOTIFICATIONS, [connect(2)], cookie)
    for _ in range(100):
        if core.bayeux.sessions[cid].held:
            break
        await asyncio.sleep(0.01)
    assert core.bayeux.sessions[cid].held
    ours = {conn.writer.get_extra_info("sockname")[:2] for conn in (rest, poll)}
    queues = collections.Counter(
        (type(o).__name__, type(o._paused_event_queue).__name__) for o in gc.get_objects()
        if isinstance(o, proxy_layer.Layer) and tuple(o.context.client.peername or ())[:2] in ours)
    kinds = {kind for kind, _ in queues}
    assert {"ReverseProxy", "HttpLayer", "Http1Server", "HttpStream"} <= kinds, queues
    assert {queue for _, queue in queues} == ({"_Queue"} if lean else {"deque"}), queues
    handlers = [o for o in gc.get_objects()
                if isinstance(o, serve.PromptHooks) and tuple(o.client.peername or ())[:2] in ours]
    assert len(handlers) == 2
    for handler in handlers:
        writer = handler.transports[handler.client].writer
        queues = [handler._completed, writer.transport._buffer, writer._protocol._drain_waiters,
                  handler.timeout_watchdog.can_timeout._waiters]
        assert [type(q).__name__ for q in queues] == ["list", "_Queue", "_Queue", "_Queue"], queues
    assert (await rest.ask("GET", "/api/v2/me", cookie=cookie))[0] == 200
    rest.send("POST", NOTIFICATIONS, [connect(3)], cookie)  # releases the held one
    status, _, (reply, *_) = await poll.read()
    assert status == 200 and reply["id"] == "2" and reply["successful"]
    for conn in (rest, poll):
        await conn.close()


@pytest.mark.parametrize("replay", ["unlinked"], indirect=True)
async def test_a_closed_connection_leaves_its_write_watch_to_reference_counting(
        replay: tuple[int, bool, Replayer]) -> None:
    port, _, _ = replay
    for _ in range(5):
        conn = await Conn.open(port)
        assert (await conn.ask("GET", "/api/v2/me"))[0] == 200
        await conn.close()
    await asyncio.sleep(0.1)  # the server sees each close
    left = census()
    assert {kind: left[kind] for kind in WATCH_KINDS} == dict.fromkeys(WATCH_KINDS, 0)
    # the connections' handlers (cli/serve.py PromptHooks) stay a cycle (addons/cycles.py says why): they did close
    assert left["PromptHooks"] == 5


async def start_session(conn: Conn, core: Replayer) -> tuple[str, str, weakref.ref[object]]:
    """A client's login, handshake, first connect and subscription: its cookie, clientId, and its replay client."""
    cookie, cid = await log_in(conn)
    for message in ({"channel": "/meta/connect", "connectionType": "long-polling", "advice": {"timeout": 0}},
                    {"channel": "/meta/subscribe", "subscription": "/v2/me/calls"}):
        _, _, (*_, reply) = await conn.ask("POST", NOTIFICATIONS, [{**message, "clientId": cid}], cookie)
        assert reply["successful"], reply
    return cookie, cid, weakref.ref(core.bayeux.sessions[cid].context)


@pytest.mark.parametrize("replay", ["unlinked"], indirect=True)
@pytest.mark.parametrize("end", ["expiry", "disconnect"])
async def test_ended_sessions_are_freed_by_reference_counting(replay: tuple[int, bool, Replayer], end: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A client whose session expired is forgotten at once; one that disconnected, once it is among the oldest idle
    clients (a few here). Either is then freed by reference counting, not left to the collector (which
    cli/serve.py's FreezeSurvivors would keep from it for good, had it frozen the client while it lived)."""
    port, _, core = replay
    monkeypatch.setattr(replayer, "MAX_IDLE_CLIENTS", 4)
    conn = await Conn.open(port)
    clients = []
    for _ in range(SESSIONS):
        cookie, cid, client = await start_session(conn, core)
        clients.append(client)
        if end == "disconnect":
            _, _, (reply,) = await conn.ask("POST", NOTIFICATIONS, [{"channel": "/meta/disconnect", "clientId": cid}],
                                            cookie)
            assert reply["successful"], reply
    if end == "expiry":  # the clients vanished: maxInterval later, the next request's sweep ends their sessions
        core.bayeux.config.max_interval_ms = 0
        assert len(core.bayeux.expire()) == SESSIONS
    assert not core.bayeux.sessions and core.counters.clients == SESSIONS
    forgotten = SESSIONS - len(core.by_cookie)
    assert forgotten >= SESSIONS - replayer.MAX_IDLE_CLIENTS
    assert sum(client() is None for client in clients) == forgotten  # before any collection
    left = census()
    assert {kind: left[kind] for kind in SESSION_KINDS} == dict.fromkeys(SESSION_KINDS, 0)
    await conn.close()


class Stream:
    """The shape of mitmproxy's HttpStream that matters here: states kept as bound methods, a context's layers."""

    def __init__(self) -> None:
        self.context = type("Context", (), {})()
        self.context.layers = ["outer layer", self]
        self.client_state = self.state_done
        self.server_state = self.state_done
        self._paused: object = None

    def state_done(self, _event: object) -> Iterator[Any]:
        yield from ()


def test_unlink_breaks_a_dropped_stream_and_leaves_one_in_use_alone() -> None:
    dropped = Stream()
    unlink(dropped, _Streams())
    assert dropped.client_state is _dropped and dropped.server_state is _dropped
    assert dropped.context.layers == ["outer layer"] and list(_dropped(object())) == []
    still_listed, paused = Stream(), Stream()
    paused._paused = object()  # waiting for a command to complete: mitmproxy resumes it later
    unlink(still_listed, _Streams({1: still_listed}))
    unlink(paused, _Streams())
    for stream in (still_listed, paused):
        assert stream.client_state == stream.state_done and stream in stream.context.layers


def test_only_a_new_http_layer_gets_the_table() -> None:
    class HttpLayer:
        def __init__(self, streams: dict[int, object]) -> None:
            self.streams = streams

    class NextLayer:
        def __init__(self, layer: object) -> None:
            self.layer = layer

    new, busy, other = HttpLayer({}), HttpLayer({1: object()}), NextLayer(None)
    for layer in (new, busy):
        FreeFinishedStreams().next_layer(NextLayer(layer))
    FreeFinishedStreams().next_layer(other)
    assert type(new.streams) is _Streams and type(busy.streams) is dict and other.layer is None


class _Headers(list[tuple[str, str]]):
    """A request's headers whose life a weak reference can watch (a list cannot have one)."""


async def subscribed(core: Replayer) -> tuple[str, list[tuple[str, str]]]:
    """A client of ``core`` logged in, handshaken, connected once and subscribed: its clientId and the headers its
    requests send."""
    auth = [("Authorization", "Basic YWdlbnQxOnNlY3JldA==")]
    me = await core.handle(Request(headers=list(auth), method="GET", path="/api/v2/me"))
    assert me.response is not None and me.response.status == 200
    auth += [("Cookie", me.response.header("Set-Cookie").split(";")[0])]  # type: ignore[union-attr]

    async def send(message: dict[str, Any]) -> Any:
        return await core.handle(Request(headers=list(auth), kind="messages", body=[message], method="POST",
                                         path=NOTIFICATIONS))

    shake = await send({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]})
    cid = shake.response.body[0]["clientId"]
    for message in ({"channel": "/meta/connect", "connectionType": "long-polling"},
                    {"channel": "/meta/subscribe", "subscription": "/v2/me/calls"}):
        assert (await send({**message, "clientId": cid})).response.body[-1]["successful"]
    return cid, auth


async def until_held(core: Replayer, cid: str, answering: asyncio.Future[Any]) -> None:
    session = core.bayeux.sessions[cid]
    for _ in range(100):
        if session.held:
            break
        await asyncio.sleep(0)
    assert session.held and not answering.done()


async def test_a_held_connect_keeps_its_messages_not_its_request() -> None:
    """While a /meta/connect is held (recorded timing) the replayer keeps its messages, not the request they came
    in: its headers are freed by reference counting the moment the hold starts (issue 27, memory per session)."""
    core = Replayer(load(CASSETTE))
    cid, auth = await subscribed(core)
    headers = _Headers(auth)
    gone = weakref.ref(headers)
    held = asyncio.ensure_future(core.handle(Request(  # as flowconv.answer hands it over: nothing else keeps it
        headers=headers, kind="messages", body=[{"channel": "/meta/connect", "connectionType": "long-polling",
                                                 "clientId": cid}], method="POST", path=NOTIFICATIONS)))
    del headers
    await until_held(core, cid, held)
    assert gone() is None
    held.cancel()
    core.close()


@pytest.mark.parametrize("live_view", [False, True])
async def test_a_connect_held_through_mitmproxy_keeps_one_frame_of_the_replayer_and_no_headers(
        live_view: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a held connect's hook keeps (flowconv.answer, as mitmproxy awaits it): its own frame, the replayer's
    :meth:`~gwsvcr.replay.replayer.Replayer._served` and the core's connect, and not the request's headers nor the
    handler, also when the live view shows a line for it once it is answered (issue 27, memory per session)."""
    core = Replayer(load(CASSETTE))
    cid, auth = await subscribed(core)
    made: list[weakref.ref[_Headers]] = []
    parse = flowconv.request_of

    def request_of(req: Any) -> Request:  # flowconv's, its headers in a list whose life a weak reference watches
        request = parse(req)
        request.headers = _Headers(request.headers)
        made.append(weakref.ref(request.headers))
        return request

    monkeypatch.setattr(flowconv, "request_of", request_of)
    flow = tflow.tflow(req=tutils.treq(method=b"POST", path=NOTIFICATIONS.encode(), headers=http.Headers(
        [(k.encode(), v.encode()) for k, v in [*auth, ("Content-Type", "application/json")]]), content=json.dumps(
        [{"channel": "/meta/connect", "connectionType": "long-polling", "clientId": cid}]).encode()))
    lines: list[str] = []
    hook = flowconv.answer(flow, core.handle, (lambda f, request, served: lines.append(request.path))
                           if live_view else None)
    held = asyncio.ensure_future(hook)
    await until_held(core, cid, held)
    assert [gone() for gone in made] == [None]
    chain, waiting = [], hook
    while asyncio.iscoroutine(waiting):
        chain.append(waiting.cr_code.co_qualname)
        waiting = waiting.cr_await
    assert chain == ["answer", "Replayer._served", "BayeuxServer._connect"]
    assert {"request", "handler"}.isdisjoint(hook.cr_frame.f_locals)  # nor its handler, a bound method
    core.bayeux.sessions[cid].wake()  # the hold ends: the reply goes out (and its line, with the live view)
    await held
    assert flow.response is not None and flow.response.status_code == 200
    assert lines == ([NOTIFICATIONS] if live_view else [])
    core.close()


async def test_a_lean_socket_still_sends_what_it_could_not_send_at_once_complete_and_in_order() -> None:
    """A connection's write buffer and drain waiters as lists (addons/cycles.py lean_connection): what the socket
    takes only in parts (the reader reads late) still arrives whole and in order, and a writer waiting for the
    buffer to drain goes on once it has."""
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
        asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: accepted.set_result((r, w)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, client = await asyncio.open_connection("127.0.0.1", port)
    _, writer = await accepted

    who = object()  # what lean_connection reads of mitmproxy's handler
    lean_connection(SimpleNamespace(client=who, transports={who: SimpleNamespace(writer=writer)},
                                    timeout_watchdog=SimpleNamespace(can_timeout=asyncio.Event())))
    assert type(writer.transport._buffer).__name__ == "_Queue"  # type: ignore[attr-defined]
    assert type(writer._protocol._drain_waiters).__name__ == "_Queue"  # type: ignore[attr-defined]
    chunks = [bytes([n]) * 300_000 for n in range(20)]  # 6 MB: far more than the socket takes at once
    for chunk in chunks:
        writer.write(chunk)
    assert writer.transport.get_write_buffer_size() > 0
    drained = asyncio.ensure_future(writer.drain())
    got = await reader.readexactly(sum(map(len, chunks)))
    await drained
    assert got == b"".join(chunks)
    for w in (writer, client):
        w.close()
    server.close()
