"""A small scripted GWS client for ``gwsvcr demo``: REST with Basic auth, cookie and CSRF token, and a CometD
long-polling loop in a thread. Standard library only, so the demo needs nothing the package does not bring.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from gwsvcr import gws, wire


@dataclass
class Observed:
    operation: str
    status_code: int
    notification: str
    delay: float  # seconds from the operation's reply to its notification


class DemoClient:
    def __init__(self, base_url: str, user: str = "agent1", password: str = "secret",
                 cometd_path: str = gws.COMETD_PATH) -> None:
        self.base = base_url.rstrip("/")
        self.cometd = self.base + cometd_path
        self.headers = {"Authorization": wire.basic_header(user, password)}
        self.client_id = ""
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self._ids = iter(range(1, 1_000_000))
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _call(self, method: str, url: str, body: Any = None, timeout: float = 70) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers, **({"Content-Type": "application/json"} if data else {}))
        req = urllib.request.Request(url, data, headers, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read() or b"null"), reply.headers

    def _bayeux(self, message: dict[str, Any], suffix: str = "") -> list[dict[str, Any]]:
        message = {**message, "id": str(next(self._ids))}
        if self.client_id:
            message["clientId"] = self.client_id
        _, replies, _ = self._call("POST", self.cometd + suffix, [message])
        return replies  # type: ignore[no-any-return]

    def login(self) -> None:
        _, _, headers = self._call("GET", self.base + "/api/v2/me")
        cookie = headers.get("Set-Cookie")
        if cookie:
            self.headers["Cookie"] = cookie.split(";", 1)[0]
        if headers.get("X-CSRF-TOKEN"):
            self.headers["X-CSRF-TOKEN"] = headers["X-CSRF-TOKEN"]

    def call_ids(self) -> list[str]:
        """The ids of the agent's calls (``GET /api/v2/me/calls``)."""
        _, body, _ = self._call("GET", self.base + "/api/v2/me/calls")
        return [str(call["id"]) for call in body.get("calls", [])]

    def connect(self, channel: str = gws.CALLS_CHANNEL) -> None:
        [reply] = self._bayeux({"channel": "/meta/handshake", "version": "1.0",
                                "supportedConnectionTypes": ["long-polling"]}, "/handshake")
        if not reply.get("successful"):
            raise RuntimeError(f"handshake failed: {reply}")
        self.client_id = reply["clientId"]
        self._bayeux({"channel": "/meta/connect", "connectionType": "long-polling", "advice": {"timeout": 0}},
                     "/connect")
        self._bayeux({"channel": "/meta/subscribe", "subscription": channel})
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                replies = self._bayeux({"channel": "/meta/connect", "connectionType": "long-polling"}, "/connect")
            except OSError:
                return
            now = time.monotonic()
            for message in replies:
                if "data" in message:
                    self.events.put((now, message))
                elif message.get("channel") == "/meta/connect" and not message.get("successful"):
                    return

    def operate(self, call_id: str, operation: str, timeout: float = 10) -> Observed:
        _, body, _ = self._call("POST", f"{self.base}/api/v2/me/calls/{call_id}",
                                     {"operationName": operation})
        replied = time.monotonic()
        at, event = self.events.get(timeout=timeout)
        summary = gws.summarize_notification(event.get("data")) or str(event.get("channel"))
        return Observed(operation, int(body.get("statusCode", -1)), summary, at - replied)

    def close(self) -> None:
        self._stop.set()
        try:
            self._bayeux({"channel": "/meta/disconnect"}, "/disconnect")
        except OSError:
            pass
        if self._poller is not None:
            self._poller.join(5)
