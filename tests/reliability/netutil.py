"""Plain clients for the reliability tests: raw sockets where the exact bytes matter, urllib for the rest.

Nothing here retries or hides an error: a test must see exactly what the server did.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

COMETD = "/api/v2/notifications"
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def address(url: str) -> tuple[str, int]:
    """(host, port) of a server's URL (the service's holds its token: ``http://HOST:PORT/?token=T``)."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body)


class NoReply(AssertionError):
    """The server sent no complete HTTP reply in time (a hang or a dropped connection)."""


def raw_exchange(url: str, data: bytes, timeout: float = 10.0, *, half_close: bool = False) -> Reply:
    """Send ``data`` as is on a new connection and read one HTTP reply.

    The bytes are sent from a helper thread while the reply is read, so a server that answers early (413 on a
    huge body) and stops reading is seen answering instead of blocking the sender. ``half_close`` ends the
    sending side after the bytes: nothing more will come, so the server has nothing left to wait for.
    """
    started = time.monotonic()
    sock = socket.create_connection(address(url), timeout=timeout)
    sent = threading.Event()

    def send() -> None:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed early: its reply (if any) is what counts
        finally:
            sent.set()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise NoReply(f"no complete reply within {timeout}s: {type(e).__name__}: {e}") from e
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                     time.monotonic() - started)
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a sender still blocked on a server that stopped reading
        except OSError:
            pass
        sock.close()
        sent.wait(timeout)


def http_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A well-framed HTTP/1.1 request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0, data: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON body or raw text, headers) with urllib; HTTP errors are returned, not raised.
    ``body`` is sent as JSON, ``data`` as is."""
    if data is None and body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, method=method,
                                 headers={**({"Content-Type": "application/json"} if body is not None else {}),
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode("utf-8", "replace"), hdrs


@dataclass
class BayeuxClient:
    """A minimal long-polling CometD client over urllib, one HTTP request per call."""

    base: str
    headers: dict[str, str] = field(default_factory=dict)
    client_id: str | None = None
    _next: int = 0

    def next_id(self) -> str:
        self._next += 1
        return str(self._next)

    def send(self, *messages: dict[str, Any], timeout: float = 40.0, suffix: str = "") -> list[dict[str, Any]]:
        status, body, _ = call(self.base + COMETD + suffix, "POST", list(messages), self.headers, timeout)
        assert status == 200 and isinstance(body, list), (status, body)
        return body

    def handshake(self, **extra: Any) -> dict[str, Any]:
        [reply] = self.send({"channel": "/meta/handshake", "version": "1.0", "id": self.next_id(),
                             "supportedConnectionTypes": ["long-polling"], **extra}, suffix="/handshake")
        assert reply.get("successful") is True, reply
        self.client_id = reply["clientId"]
        return reply

    def connect(self, *, immediate: bool = False, timeout: float = 40.0) -> list[dict[str, Any]]:
        message: dict[str, Any] = {"channel": "/meta/connect", "clientId": self.client_id, "id": self.next_id(),
                                   "connectionType": "long-polling"}
        if immediate:
            message["advice"] = {"timeout": 0}
        return self.send(message, timeout=timeout, suffix="/connect")

    def subscribe(self, channel: str = "/v2/me/calls") -> dict[str, Any]:
        [reply] = self.send({"channel": "/meta/subscribe", "clientId": self.client_id, "id": self.next_id(),
                             "subscription": channel})
        assert reply.get("successful") is True, reply
        return reply


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, kB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` (a cheap check of state, e.g. a status endpoint) until true or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.01)
