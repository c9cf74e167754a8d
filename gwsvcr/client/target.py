"""Where a client's requests go (:class:`Target`) and why one got no usable reply (:class:`HttpFailure`)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from gwsvcr.errors import GwsvcrError

__all__ = ["Headers", "HttpFailure", "Target"]

Headers = list[tuple[str, str]]


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

    async def open(self, timeout: float, source: str | None = None) -> tuple[asyncio.StreamReader,
                                                                             asyncio.StreamWriter]:
        """A connection (from the local address ``source``, when given); HttpFailure when it cannot be had."""
        context = ssl.create_default_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(self.host, self.port, ssl=context,
                                                     server_hostname=self.host if context else None,
                                                     local_addr=(source, 0) if source else None)
        except TimeoutError:
            raise HttpFailure(f"cannot reach {self.url()}: no connection within {timeout:g} s",
                              unreachable=True, timed_out=True) from None
        except OSError as e:
            raise HttpFailure(f"cannot reach {self.url()}: {_reason(e)}", unreachable=True) from None


def _reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error})"
    return error.strerror or str(error) or type(error).__name__
