"""A small scripted GWS agent for ``gwsvcr demo``: it logs in (Basic auth, then the cookie and the CSRF token the
server gives), opens a CometD session over long-polling with the one Bayeux client (:mod:`gwsvcr.client`),
subscribes to the calls channel and runs call-recording operations, timing each one's notification."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from gwsvcr import gws
from gwsvcr.bayeux import CONNECT, Message
from gwsvcr.client import BayeuxClient, HttpClient, HttpFailure, Login, NotBayeux, Target

__all__ = ["DemoClient", "Observed"]


@dataclass
class Observed:
    operation: str
    status_code: int
    notification: str
    delay: float  # seconds from the operation's reply to its notification


class DemoClient:
    """Use as ``async with DemoClient(url) as client:``; ``close()`` disconnects."""

    def __init__(self, base_url: str, user: str = "agent1", password: str = "secret",
                 cometd_path: str = gws.COMETD_PATH, timeout: float = 10.0) -> None:
        self.http = HttpClient(Target.parse(base_url))
        self.timeout = timeout
        self.login_state = Login.basic(user, password)
        self.cometd = cometd_path
        self.events: asyncio.Queue[tuple[float, Message]] = asyncio.Queue()
        self.bayeux = BayeuxClient(self.http, cometd_path, timeout=timeout, headers=self.login_state.headers,
                                   learn=self.login_state.learn, on_event=lambda m, at: self.events.put_nowait((at, m)),
                                   connect_path=cometd_path + "/connect")

    async def __aenter__(self) -> DemoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """(status, JSON body, when the reply completed)."""
        data = b"" if body is None else json.dumps(body).encode()
        headers = self.login_state.headers() + ([("Content-Type", "application/json")] if data else [])
        reply = await self.http.request(method, path, headers, data, timeout=self.timeout)
        self.login_state.learn(reply.headers)
        return reply.status, json.loads(reply.body or b"null"), reply.times.response_end or 0.0

    async def login(self) -> None:
        status, body, _ = await self._call("GET", "/api/v2/me")
        if status != 200:
            raise RuntimeError(f"GET /api/v2/me: HTTP {status} {body}")

    async def call_ids(self) -> list[str]:
        """The ids of the agent's calls (``GET /api/v2/me/calls``)."""
        _, body, _ = await self._call("GET", "/api/v2/me/calls")
        return [str(call["id"]) for call in body.get("calls", [])]

    async def connect(self, channel: str = gws.CALLS_CHANNEL) -> None:
        """Handshake, the first connect (answered at once), subscribe; then a connect held all along."""
        sent = await self.bayeux.handshake(path=self.cometd + "/handshake")
        if self.bayeux.client_id is None:
            raise RuntimeError(f"handshake failed: {sent.replies}")
        await self.bayeux.send([self.bayeux.message(CONNECT, advice={"timeout": 0})],
                               path=self.bayeux.connect_path)
        await self.bayeux.subscribe(channel)
        self.bayeux.start_connects()

    async def operate(self, call_id: str, operation: str) -> Observed:
        """One operation on a call and the notification it brings."""
        _, body, replied = await self._call("POST", f"/api/v2/me/calls/{call_id}", {"operationName": operation})
        at, event = await asyncio.wait_for(self.events.get(), self.timeout)
        summary = gws.summarize_notification(event.get("data")) or str(event.get("channel"))
        return Observed(operation, int(body.get("statusCode", -1)), summary, at - replied)

    async def close(self) -> None:
        if self.bayeux.client_id is not None and not self.bayeux.stopping:
            with contextlib.suppress(HttpFailure, NotBayeux):  # the server may be gone: the demo ends anyway
                await self.bayeux.disconnect(path=self.cometd + "/disconnect")
        await self.bayeux.stop_connects(5.0)
        await self.bayeux.close()
        await self.http.close()
