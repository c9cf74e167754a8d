"""A small HTTP/1.1 client over asyncio streams for ``gwsvcr verify``: h11 parses (mitmproxy's own HTTP/1 stack,
so nothing new is installed), keep-alive connections are reused per target, every request has a deadline, and
each exchange carries the wall-clock times the recorder wants.

Verify is a client, not a proxy: it talks to the server directly, several requests at once (a held long-poll on
one connection, REST on another), as a CometD client in a browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from gwsvcr.errors import GwsvcrError
from gwsvcr.record.recording import ExchangeTimes

_READ = 65536


class HttpFailure(GwsvcrError):
    """A request that got no usable reply: the server is unreachable, closed the connection, is not HTTP, did not
    answer in time (``timed_out``) or refused the credentials (``refused``: the HTTP status, 401 or 403)."""

    def __init__(self, message: str, *, unreachable: bool = False, timed_out: bool = False,
                 refused: int | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.timed_out = timed_out
        self.refused = refused


@dataclass(frozen=True)
class Target:
    """Where requests go: ``https://gws.example.com:8443`` (a path prefix, if any, goes before every path)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL such as https://gws.example.com:8443")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"{url!r} has an invalid port") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def url(self, target: str = "") -> str:
        return f"{self.scheme}://{self.authority}{self.prefix}{target}"

    async def open(self, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(self.host, self.port, ssl=context,
                                                     server_hostname=self.host if context else None)
        except TimeoutError:
            raise HttpFailure(f"cannot reach {self.url()}: no connection within {timeout:g} s",
                              unreachable=True, timed_out=True) from None
        except OSError as e:
            raise HttpFailure(f"cannot reach {self.url()}: {_reason(e)}", unreachable=True) from None


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    times: ExchangeTimes  # wall clock

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.replied = False  # a reply began on the current request

    @property
    def reusable(self) -> bool:
        return (self.h11.our_state is h11.IDLE and not self.reader.at_eof()
                and not self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class HttpClient:
    """Requests to one target over a pool of keep-alive connections."""

    def __init__(self, target: Target, connect_timeout: float = 10.0) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"", *,
                      timeout: float) -> Reply:
        """One exchange; HttpFailure when no reply came within ``timeout`` seconds (or none at all)."""
        for attempt in (1, 2):
            conn = self._take()
            fresh = conn is None
            if conn is None:
                conn = _Connection(*await self.target.open(self.connect_timeout))
            self._busy.add(conn)
            try:
                return await self._exchange(conn, method, target, headers, body, timeout)
            except _Stale:
                if fresh or attempt == 2:  # only a kept-alive connection the server closed is tried again
                    raise HttpFailure(f"{method} {self.target.url(target)}: the server closed the connection "
                                      "without a reply") from None
            finally:
                self._busy.discard(conn)
        raise AssertionError("unreachable")

    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
            conn.close()
        return None

    async def _exchange(self, conn: _Connection, method: str, target: str, headers: list[tuple[str, str]],
                        body: bytes, timeout: float) -> Reply:
        url = self.target.url(target)
        start = time.time()
        conn.replied = False
        try:
            async with asyncio.timeout(timeout):
                wire = [("Host", self.target.authority), *headers, ("Content-Length", str(len(body)))]
                data = conn.h11.send(h11.Request(method=method, target=self.target.prefix + target, headers=wire))
                data = (data or b"") + (conn.h11.send(h11.Data(data=body)) or b"") if body else (data or b"")
                data += conn.h11.send(h11.EndOfMessage()) or b""
                conn.writer.write(data)
                await conn.writer.drain()
                sent = time.time()
                reply = await self._read(conn, start, sent)
        except TimeoutError:
            conn.close()
            raise HttpFailure(f"{method} {url}: no reply within {timeout:g} s", timed_out=True) from None
        except (h11.ProtocolError, ValueError) as e:
            conn.close()
            raise HttpFailure(f"{method} {url}: the server did not answer in HTTP/1.1 ({e})") from None
        except OSError as e:
            conn.close()
            if conn.replied:
                raise HttpFailure(f"{method} {url}: the connection broke during the reply ({e})") from None
            raise _Stale() from None
        except BaseException:  # cancelled: the connection is in an unknown state
            conn.close()
            raise
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()
        return reply

    async def _read(self, conn: _Connection, start: float, sent: float) -> Reply:
        status, headers, chunks, first = 0, [], [], None
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                data = await conn.reader.read(_READ)
                if not data and first is None:
                    raise _Stale()
                conn.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                first = time.time()
                conn.replied = True
                status = event.status_code
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert first is not None
                return Reply(status, headers, b"".join(chunks), ExchangeTimes(start, sent, first, time.time()))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("closed before the end of the reply")

    async def close(self) -> None:
        for conn in [*self._idle, *self._busy]:
            conn.close()
        for conn in [*self._idle, *self._busy]:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()
        self._idle.clear()
        self._busy.clear()


class _Stale(Exception):
    """The connection closed before any reply byte: a kept-alive connection the server had closed."""


def _reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error})"
    return error.strerror or str(error) or type(error).__name__
