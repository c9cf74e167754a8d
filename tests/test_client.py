"""The one client (gwsvcr.client) in process: replies read however the server frames them, kept-alive connections
the server closed, failures named; the login's cookies and CSRF token; a Bayeux session over long-polling and
WebSocket against the simulator core on the fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gwsvcr import gws
from gwsvcr.bayeux import CONNECT, HANDSHAKE
from gwsvcr.client import (
    BayeuxClient,
    ConnectEnd,
    Dropped,
    HttpClient,
    HttpFailure,
    Login,
    NotBayeux,
    NotHttp,
    Refused,
    Target,
    TimedOut,
    Unreachable,
    UpgradeRefused,
)
from gwsvcr.client.bayeux import LONG_POLLING, WEBSOCKET
from gwsvcr.client.websocket import UpgradeLoginRefused
from tests.fakeclock import FakeClock
from tests.simwire import SimWire, run_on, simulator

Replier = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Replier], Awaitable[HttpClient]]


@pytest.fixture
async def served() -> AsyncIterator[Serve]:
    """A raw TCP server whose handler each test gives: the client meets replies no HTTP library would send."""
    servers: list[asyncio.Server] = []

    async def serve(handler: Replier) -> HttpClient:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return HttpClient(Target.parse(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"))

    yield serve
    for server in servers:
        server.close()


def replying(*replies: bytes) -> Replier:
    """A handler that reads one request head (and its body) per reply, writes the reply, and closes after the
    last one."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(reply)
            await writer.drain()
        writer.close()

    return handler


@pytest.mark.parametrize(("reply", "body"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n",
     b"hello"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", b"hello"),  # ends when the connection does
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
    (b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n", b""),
])
async def test_a_reply_is_read_however_it_is_framed(served: Serve, reply: bytes,
                                                    body: bytes) -> None:
    client = await served(replying(reply))
    try:
        got = await client.request("POST", "/x", [("Content-Type", "text/plain")], b"ping", timeout=5)
    finally:
        await client.close()
    assert (got.status, got.body) == (int(reply.rsplit(b"HTTP/1.", 1)[1][2:5]), body)
    assert got.times.response_start is not None and got.times.response_end is not None
    assert got.times.request_start <= got.times.response_start <= got.times.response_end


@pytest.mark.parametrize(("reply", "cause", "says"), [
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", NotHttp,
     "did not answer in HTTP/1.1 (the reply begins with 'SSH-2.0-OpenSSH_9.6')"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", Dropped, "the connection broke during the reply"),
    (b"HTTP/1.1 200 OK\r\nBad header line\r\n\r\n", NotHttp,
     "did not answer in HTTP/1.1 (a header line 'Bad header line')"),
])
async def test_a_reply_that_is_not_http_or_is_cut_short_is_named(served: Serve, reply: bytes, cause: type[HttpFailure],
                                                                 says: str) -> None:
    client = await served(replying(reply))
    try:
        with pytest.raises(cause, match=r"GET http://127\.0\.0\.1:[0-9]+/x: ") as info:
            await client.request("GET", "/x", [], timeout=5)
    finally:
        await client.close()
    assert says in str(info.value)


async def test_a_kept_alive_connection_the_server_closed_is_replaced(served: Serve) -> None:
    """Node closes an idle keep-alive connection after 5 s: the next request must not fail for it."""
    closed = asyncio.Event()
    served_count = 0

    async def one_reply_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served_count
        await reader.readuntil(b"\r\n\r\n")
        served_count += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    client = await served(one_reply_then_close)
    try:
        first = await client.request("GET", "/a", [], timeout=5)
        await closed.wait()
        second = await client.request("GET", "/b", [], timeout=5)
    finally:
        await client.close()
    assert (first.status, second.status, served_count, client.opened) == (200, 200, 2, 2)


async def test_a_server_that_never_answers_is_timed_out(served: Serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    client = await served(silent)
    try:
        with pytest.raises(HttpFailure, match=r"no reply within 0.05 s") as info:
            await client.request("GET", "/x", [], timeout=0.05)
    finally:
        await client.close()
    assert isinstance(info.value, TimedOut) and info.value.request == f"GET {client.target.url('/x')}"


async def test_a_server_that_is_not_there_is_unreachable() -> None:
    server = await asyncio.start_server(replying(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = HttpClient(Target.parse(f"http://127.0.0.1:{port}"))
    with pytest.raises(Unreachable, match="connection refused") as info:
        await client.request("GET", "/x", [], timeout=5)
    assert not isinstance(info.value, TimedOut) and info.value.request == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(("status", "cause"), [(403, UpgradeLoginRefused), (404, UpgradeRefused)])
async def test_a_refused_websocket_upgrade_says_whether_the_login_was_refused(served: Serve, status: int,
                                                                             cause: type[HttpFailure]) -> None:
    client = await served(replying(f"HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n".encode()))
    try:
        with pytest.raises(cause, match=f"refused the WebSocket upgrade with HTTP {status}") as info:
            await client.websocket("/cometd", [], timeout=5)
    finally:
        await client.close()
    assert isinstance(info.value, Refused) == (status == 403)
    assert info.value.request == client.target.websocket_url("/cometd")


async def test_an_error_page_on_the_cometd_path_is_not_bayeux(served: Serve) -> None:
    page = b"<html><body>Whitelabel Error Page</body></html>"
    client = await served(replying(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                                   % (len(page), page)))
    bayeux = BayeuxClient(client, "/cometd")
    try:
        with pytest.raises(NotBayeux) as info:
            await bayeux.handshake()
    finally:
        await client.close()
    assert str(info.value).endswith("/cometd answered HTTP 404 text/html, not Bayeux: "
                                    "'<html><body>Whitelabel Error Page</body></html>'")
    assert info.value.reply.status == 404


def test_the_login_keeps_every_cookie_and_the_token_the_header_it_names_holds() -> None:
    login = Login.basic("agent1", "secret")
    login.learn([("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"), ("Set-Cookie", "lb=7"),
                 ("X-CSRF-HEADER", "X-XSRF"), ("X-XSRF", "tok-1"), ("X-CSRF-TOKEN", "not-this-one")])
    login.learn([("Set-Cookie", "lb=; Max-Age=0")])  # an empty value forgets nothing
    assert login.headers() == [("Authorization", "Basic YWdlbnQxOnNlY3JldA=="), ("Cookie", "JSESSIONID=abc; lb=7"),
                               ("X-XSRF", "tok-1")]
    assert login.cookie(["lb", "missing"]) == ("Cookie", "lb=7")
    assert login.cookie(["missing"]) is None


def test_a_recorded_message_becomes_the_session_s_own() -> None:
    client = BayeuxClient(SimWire(simulator(FakeClock()), FakeClock()), gws.COMETD_PATH, transport=WEBSOCKET)
    client.client_id = "live"
    handshake = client.stamp({"channel": HANDSHAKE, "id": "9", "clientId": "old",
                              "supportedConnectionTypes": ["long-polling", "websocket"]})
    assert handshake == {"channel": HANDSHAKE, "id": "1", "supportedConnectionTypes": ["websocket", "long-polling"]}
    connect = client.stamp({"channel": CONNECT, "id": "10", "clientId": "old", "connectionType": "long-polling",
                            "ext": {"ack": 3, "timesync": {"tc": 1}}})
    assert connect == {"channel": CONNECT, "id": "2", "clientId": "live", "connectionType": "websocket"}


@pytest.mark.parametrize("transport", [LONG_POLLING, WEBSOCKET])
def test_a_session_gets_its_notification_when_the_server_sends_it(transport: str) -> None:
    """Handshake, subscribe, a connect held all along; an operation's notification reaches ``on_event`` 250 ms
    after the operation's reply, by the fake clock; the disconnect ends the connects."""
    clock = FakeClock()
    wire = SimWire(simulator(clock, "Recording"), clock)
    login = Login.basic("agent1", "secret")
    events: list[tuple[str, float]] = []
    ended: list[ConnectEnd] = []
    client = BayeuxClient(wire, gws.COMETD_PATH, transport=transport, clock=clock, headers=login.headers,
                          learn=login.learn, on_event=lambda m, at: events.append((m["data"]["notificationType"], at)))

    async def session() -> float:
        login.learn((await wire.request("GET", "/api/v2/me", login.headers(), timeout=5)).headers)
        assert (await client.handshake()).refusal() is None and client.client_id is not None
        assert client.hold == 30.0  # the server's advice
        await client.subscribe(gws.CALLS_CHANNEL)
        client.start_connects(on_end=lambda end: ended.append(end) or False)
        reply = await wire.request("POST", f"/api/v2/me/calls/{gws.SEED_CALL_ID}", login.headers(),
                                   b'{"operationName": "StopCallRecording"}', timeout=5)
        assert reply.status == 200, reply.body
        while not events:
            await clock.sleep(0.01)
        await client.disconnect()
        await client.stop_connects(1.0)
        await client.close()
        assert reply.times.response_end is not None
        return reply.times.response_end

    replied = asyncio.run(run_on(clock, session()))
    assert [kind for kind, _ in events] == ["CallRecordingStateChange"]
    assert events[0][1] - replied == pytest.approx(0.25)
    assert ended == []  # stopped, not ended by the server
    connects = [t for m, t, _ in wire.sent if m == "POST" and t == gws.COMETD_PATH]
    assert connects or transport == WEBSOCKET
