"""Where a client's requests go (:class:`Target`) and why one got no usable reply: :class:`HttpFailure` and its
causes, each carrying the request it names (as httpx's exceptions do):

* :class:`Unreachable`: no connection (refused, unknown host, TLS); :class:`ConnectTimeout` is also a
  :class:`TimedOut`;
* :class:`TimedOut`: no reply within the deadline;
* :class:`Refused`: the server refused the credentials (HTTP 401 or 403);
* :class:`Dropped`: the server closed or broke the connection before a whole reply;
* :class:`NotHttp`: the server did not answer in HTTP/1.1;
* :class:`~gwsvcr.client.websocket.UpgradeRefused`: no WebSocket (gwsvcr/client/websocket.py).

The socket's own errors (``OSError``, ``TimeoutError``, a parser's ``ValueError``) are translated into these once,
where the client meets them (:meth:`Target.open`, the HTTP and WebSocket readers); nothing above sees them."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

from gwsvcr.errors import GwsvcrError

__all__ = ["ConnectTimeout", "Dropped", "Headers", "HttpFailure", "NotHttp", "Refused", "Target", "TimedOut",
           "Unreachable"]

Headers = list[tuple[str, str]]


class HttpFailure(GwsvcrError):
    """A request that got no usable reply; ``request`` names it (``POST https://gws:8443/cometd``, or the URL a
    connection was for). Its class says why."""

    def __init__(self, message: str, request: str = "") -> None:
        super().__init__(message)
        self.request = request

    @classmethod
    def of(cls, request: str, what: str) -> Self:
        """The failure of ``request``, saying ``request: what``."""
        return cls(f"{request}: {what}", request)


class Unreachable(HttpFailure):
    """No connection to the server: refused, unknown host, TLS failed."""


class TimedOut(HttpFailure):
    """No reply (or no connection) within the deadline."""


class ConnectTimeout(Unreachable, TimedOut):
    """No connection within the deadline."""


class Refused(HttpFailure):
    """The server refused the credentials: ``status`` is its HTTP status, 401 or 403."""

    def __init__(self, message: str, status: int, request: str = "") -> None:
        super().__init__(message, request)
        self.status = status


class Dropped(HttpFailure):
    """The server closed or broke the connection (or the WebSocket) before a whole reply."""


class NotHttp(HttpFailure):
    """The server did not answer in HTTP/1.1."""


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

    def websocket_url(self, target: str = "") -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://{self.authority}{self.prefix}{target}"

    async def open(self, timeout: float, source: str | None = None) -> tuple[asyncio.StreamReader,
                                                                             asyncio.StreamWriter]:
        """A connection (from the local address ``source``, when given); :class:`Unreachable` when it cannot be
        had."""
        context = ssl.create_default_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(self.host, self.port, ssl=context,
                                                     server_hostname=self.host if context else None,
                                                     local_addr=(source, 0) if source else None)
        except TimeoutError:
            raise ConnectTimeout(f"cannot reach {self.url()}: no connection within {timeout:g} s",
                                 self.url()) from None
        except OSError as e:
            raise Unreachable(f"cannot reach {self.url()}: {_reason(e)}", self.url()) from None


def _reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error})"
    return error.strerror or str(error) or type(error).__name__
