"""A small HTTP/1.1 client over asyncio streams: keep-alive connections per target, reused while idle (at most
``limit`` at once, opened from the given source addresses), a deadline on every request, and each exchange's
wall-clock times, which a recorder and every delay measured on it want.

It is a client, not a proxy: it talks to the server directly, several requests at once (a held long-poll on one
connection, REST on another), as a CometD client in a browser does. Written for cost, since the benchmarks send
thousands of agents' requests a second through it: a request is written in one piece and a reply read with the
stream's own buffer (``readuntil``, ``readexactly``), its body framed by Content-Length, chunked, or the end of the
connection; h11 spends some 20 times as long per exchange here.

An :class:`Observer` hears every exchange as cassette requests and responses (``gwsvcr verify --record`` writes
them, a load run times them); nothing is converted when none listens.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from gwsvcr import wire
from gwsvcr.bayeux import Message
from gwsvcr.cassette import Request, Response
from gwsvcr.client.target import Dropped, Headers, HttpFailure, NotHttp, Target, TimedOut
from gwsvcr.client.websocket import WebSocket
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.timeline import Clock

__all__ = ["HttpClient", "Observer", "Reply", "as_request", "as_response"]

_NO_BODY = frozenset({204, 304})
_WRITE_BUFFER = 65536  # bytes not yet on the socket beyond which a request waits for them to go
_NO_DEADLINE = contextlib.nullcontext()


@dataclass(slots=True)
class Reply:
    status: int
    headers: Headers
    body: bytes
    times: ExchangeTimes  # wall clock

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


class Observer:
    """What crossed the wire, as it happens; override what you need."""

    def exchange(self, request: Request, response: Response | None, times: ExchangeTimes,
                 error: str | None = None) -> None:
        """One HTTP exchange, as sent and received (``times`` in wall-clock seconds)."""

    def websocket_opened(self, upgrade: Request) -> None:
        """The CometD WebSocket is open."""

    def websocket_frame(self, messages: list[Message], from_client: bool, at: float) -> None:
        """One frame of Bayeux messages, sent or received at ``at`` (wall clock)."""

    def websocket_closed(self, at: float) -> None:
        """The CometD WebSocket closed."""


def as_request(method: str, target: str, headers: Headers, body: bytes) -> Request:
    """A request as sent, in the cassette model."""
    path, _, query = target.partition("?")
    kind, data = wire.parse_body(body, next((v for k, v in headers if k.lower() == "content-type"), None))
    return Request(headers=list(headers), kind=kind, body=data, method=method, path=unquote(path),
                   query=parse_qsl(query, keep_blank_values=True))


def as_response(reply: Reply) -> Response:
    """A reply as received, in the cassette model."""
    kind, body = wire.parse_body(reply.body, reply.header("Content-Type"))
    return Response(headers=list(reply.headers), kind=kind, body=body, status=reply.status)


class _Connection:
    __slots__ = ("reader", "replied", "reusable", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.replied = False  # a reply began on the current request
        self.reusable = False  # the last reply ended cleanly and the server keeps the connection open

    def idle(self) -> bool:
        return self.reusable and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """The connection closed before any reply byte: a kept-alive connection the server had closed."""


class _Broken(Exception):
    """The connection ended in the middle of a reply."""


class HttpClient:
    """Requests to one target over a pool of keep-alive connections: at most ``limit`` at once (more wait for
    one), opened from ``sources`` (local addresses, in turn) when given."""

    def __init__(self, target: Target, *, connect_timeout: float = 10.0, limit: int | None = None,
                 sources: Sequence[str] = (), clock: Clock | None = None, observer: Observer | None = None) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self.clock = clock or Clock()
        self.observer = observer
        self.replies = 0  # replies received, for a load generator's request rate
        self.opened = 0  # connections opened
        self._sources = list(sources)
        self._slots = asyncio.Semaphore(limit) if limit else None
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._start_line = f"HTTP/1.1\r\nHost: {target.authority}\r\n"  # after the method and target

    async def request(self, method: str, target: str, headers: Headers, body: bytes = b"", *,
                      timeout: float | None) -> Reply:
        """One exchange; :class:`TimedOut` when no reply came within ``timeout`` seconds (None: no deadline), another
        :class:`HttpFailure` when none came at all."""
        started = self.clock.wall() if self.observer is not None else 0.0
        try:
            if self._slots is None:
                reply = await self._request(method, target, headers, body, timeout)
            else:
                async with self._slots:
                    reply = await self._request(method, target, headers, body, timeout)
        except HttpFailure as e:
            if self.observer is not None:
                self.observer.exchange(as_request(method, target, headers, body), None,
                                       ExchangeTimes(started, started, None, self.clock.wall()), str(e))
            raise
        self.replies += 1
        if self.observer is not None:
            self.observer.exchange(as_request(method, target, headers, body), as_response(reply), reply.times)
        return reply

    async def _request(self, method: str, target: str, headers: Headers, body: bytes,
                       timeout: float | None) -> Reply:
        head = self._head(method, target, headers, len(body))
        for attempt in (1, 2):
            conn = self._take()
            fresh = conn is None
            if conn is None:
                source = self._sources[self.opened % len(self._sources)] if self._sources else None
                self.opened += 1
                conn = _Connection(*await self.target.open(self.connect_timeout, source))
            self._busy.add(conn)
            try:
                return await self._exchange(conn, method, target, head + body, timeout)
            except _Stale:
                if fresh or attempt == 2:  # only a kept-alive connection the server closed is tried again
                    raise Dropped.of(self._named(method, target),
                                     "the server closed the connection without a reply") from None
            finally:
                self._busy.discard(conn)
        raise AssertionError("unreachable")

    def _head(self, method: str, target: str, headers: Headers, length: int) -> bytes:
        fields = "\n".join(map(": ".join, headers))
        if "\r" in fields or fields.count("\n") != max(len(headers) - 1, 0):
            raise HttpFailure.of(self._named(method, target), f"a header holds a line break: {headers!r}")
        fields = fields.replace("\n", "\r\n") + "\r\n" if headers else ""
        return (f"{method} {self.target.prefix}{target} {self._start_line}{fields}"
                f"Content-Length: {length}\r\n\r\n").encode()

    def _named(self, method: str, target: str) -> str:
        """The request a failure names: ``POST https://gws:8443/cometd``."""
        return f"{method} {self.target.url(target)}"

    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.idle():
                return conn
            conn.close()
        return None

    async def _exchange(self, conn: _Connection, method: str, target: str, data: bytes,
                        timeout: float | None) -> Reply:
        start = self.clock.wall()
        conn.replied = conn.reusable = False
        try:
            async with asyncio.timeout(timeout) if timeout is not None else _NO_DEADLINE:
                conn.writer.write(data)
                if conn.writer.transport.get_write_buffer_size() > _WRITE_BUFFER:  # a big body: let it flow
                    await conn.writer.drain()
                reply = await self._read(conn, method, start, self.clock.wall())
        except TimeoutError:
            conn.close()
            raise TimedOut.of(self._named(method, target), f"no reply within {timeout or 0:g} s") from None
        except (ValueError, asyncio.LimitOverrunError) as e:  # the latter: a line longer than 64 KiB
            conn.close()
            raise NotHttp.of(self._named(method, target), f"the server did not answer in HTTP/1.1 ({e})") from None
        except (OSError, _Broken) as e:
            conn.close()
            if conn.replied:
                raise Dropped.of(self._named(method, target),
                                 f"the connection broke during the reply ({e})") from None
            raise _Stale() from None
        except BaseException:  # cancelled: the connection is in an unknown state
            conn.close()
            raise
        if conn.reusable:
            self._idle.append(conn)
        else:
            conn.close()
        return reply

    async def _read(self, conn: _Connection, method: str, start: float, sent: float) -> Reply:
        reader = conn.reader
        first: float | None = None
        while True:  # 1xx replies come before the real one
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                if e.partial or conn.replied:
                    raise _Broken("closed in the middle of the reply") from None
                raise _Stale() from None
            if first is None:
                first = self.clock.wall()
                conn.replied = True
            version, status, headers = _parse_head(raw)
            if not 100 <= status < 200 or status == 101:
                break
        length, chunked, close = None, False, version == "0"
        for k, v in headers:
            name = k.lower()
            if name == "content-length":
                length = int(v)
            elif name == "transfer-encoding":
                chunked = "chunked" in v.lower()
            elif name == "connection":
                close = "close" in v.lower() or (close and "keep-alive" not in v.lower())
        try:
            if method == "HEAD" or status in _NO_BODY or 100 <= status < 200:
                body = b""
            elif chunked:
                body = await _read_chunked(reader)
            elif length is not None:
                body = await reader.readexactly(length)
            else:  # framed by the end of the connection
                body, close = await reader.read(), True
        except asyncio.IncompleteReadError:
            raise _Broken("closed in the middle of the reply body") from None
        conn.reusable = not close
        return Reply(status, headers, body, ExchangeTimes(start, sent, first, self.clock.wall()))

    async def websocket(self, path: str, headers: Headers, timeout: float) -> WebSocket:
        """A WebSocket to ``path`` of the target (its own connection)."""
        return await WebSocket.connect(self.target, path, headers, timeout, self.clock)

    async def close(self) -> None:
        conns = [*self._idle, *self._busy]
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
        self._idle.clear()
        self._busy.clear()


def _parse_head(raw: bytes) -> tuple[str, int, Headers]:
    """(HTTP minor version, status, headers) of a reply head ending with an empty line; ValueError if it is
    not HTTP/1."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not status.isdigit() or rest[3:4] not in ("", " "):
        raise ValueError(f"the reply begins with {lines[0][:40]!r}")
    headers = []
    for line in lines[1:-2]:
        name, colon, value = line.partition(":")
        if not colon or not name or name[-1] in " \t" or name[0] in " \t":
            raise ValueError(f"a header line {line[:40]!r}")
        headers.append((name, value.strip()))
    return version[-1], int(status), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk that does not end where its size says")
