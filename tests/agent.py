"""A CometD client on the fake clock and small cassettes built in code, for the unit tests of replaying failures
and faults (tests/test_failure_replay.py, tests/test_faults.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gwsvcr import wire
from gwsvcr.cassette import Cassette, Exchange, ReplyItem, Request, Response
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.replay.client import Client
from tests.fakeclock import FakeClock

COMETD = "/api/v2/notifications"
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
AUTH = ("Authorization", "Basic YWdlbnQxOnNlY3JldA==")  # agent1:secret
OLD, NEW = "recordedfirst", "recordedsecond"  # recorded clientIds


def bayeux(number: int, start: float, sent: list[dict[str, Any]], replies: list[ReplyItem],
           ttfb: float = 0.002) -> Exchange:
    return Exchange(number, "s1", start, Request(headers=[AUTH], kind="messages", body=sent, method="POST",
                                                 path=COMETD),
                    Response(kind="messages", body=replies, status=200), ttfb, ttfb, transport="long-polling")


def rest(number: int, start: float, operation: str, status: int = 200, ttfb: float = 0.003,
         error: str | None = None) -> Exchange:
    response = None if error else Response(headers=[("Content-Type", "application/json")], kind="json",
                                           body={"statusCode": 0 if status == 200 else 1}, status=status)
    return Exchange(number, "s1", start, Request(headers=[AUTH], kind="json", body={"operationName": operation},
                                                 method="POST", path=CALL),
                    response, None if error else ttfb, ttfb, error)


def event(state: str, cause: int, delay: float) -> ReplyItem:
    return ReplyItem({"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange",
                                                          "call": {"recordingState": state}}},
                     cause=cause, delay=delay)


def ok(channel: str, id_: str, client_id: str, **fields: Any) -> ReplyItem:
    return ReplyItem({"channel": channel, "id": id_, "clientId": client_id, "successful": True, **fields})


def connect(id_: str, client_id: str) -> dict[str, Any]:
    return {"channel": "/meta/connect", "id": id_, "clientId": client_id, "connectionType": "long-polling"}


class Agent:
    """A CometD client on the fake clock: what a real one sends, one request at a time."""

    def __init__(self, core: Replayer, clock: FakeClock) -> None:
        self.core, self.clock = core, clock
        self.cookie = ""
        self.client_id = ""
        self.ids = iter(range(1, 1000))

    def request(self, *messages: dict[str, Any], method: str = "POST", path: str = COMETD, body: Any = None,
                kind: str | None = "messages") -> Request:
        headers = [AUTH] + ([("Cookie", f"JSESSIONID={self.cookie}")] if self.cookie else [])
        return Request(headers=headers, kind=kind, body=list(messages) if kind == "messages" else body,
                       method=method, path=path)

    async def send(self, request: Request) -> wire.Served:
        """The answer, time moving a millisecond at a time while it is not there (a recorded latency)."""
        answering = asyncio.ensure_future(self.core.handle(request))
        await self.clock.settle()
        while not answering.done():
            await self.clock.advance(0.001)
        served = answering.result()
        if served.delivered is not None:
            served.delivered(self.clock.now())
        return served

    async def bayeux(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        return replies(await self.send(self.request(*({"id": str(next(self.ids)), **m} for m in messages))))

    async def login(self) -> None:
        served = await self.send(self.request(method="GET", path="/api/v2/me", kind=None))
        assert served.response is not None
        self.cookie = wire.set_cookie_values(served.response.headers)["JSESSIONID"]

    async def handshake(self) -> None:
        [hs] = await self.bayeux({"channel": "/meta/handshake", "version": "1.0"})
        self.client_id = hs["clientId"]
        await self.bayeux({"channel": "/meta/subscribe", "clientId": self.client_id,
                           "subscription": "/v2/me/calls"})
        await self.connect()

    async def connect(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """A connect answered at once (the first after a handshake, or one with something waiting)."""
        return await self.bayeux({"channel": "/meta/connect", "clientId": client_id or self.client_id,
                                  "connectionType": "long-polling"})

    def poll(self) -> asyncio.Future[wire.Served]:
        """A connect the server may hold: its answer, without moving time."""
        request = self.request({"channel": "/meta/connect", "id": str(next(self.ids)), "clientId": self.client_id,
                                "connectionType": "long-polling"})
        return asyncio.ensure_future(self.core.handle(request))

    async def operation(self, name: str) -> wire.Served:
        return await self.send(self.request(method="POST", path=CALL, kind="json", body={"operationName": name}))

    @property
    def live(self) -> Client:
        return self.core.by_cookie[self.cookie]


def replies(served: wire.Served) -> list[dict[str, Any]]:
    assert served.response is not None, served.cut
    return list(served.response.body)


async def started(cassette: Cassette, clock: FakeClock, **config: Any) -> Agent:
    """A replay of ``cassette`` and a client that logged in, handshook and subscribed."""
    agent = Agent(replayer(cassette, clock, **config), clock)
    await agent.login()
    await agent.handshake()
    return agent


def replayer(cassette: Cassette, clock: FakeClock, **config: Any) -> Replayer:
    return Replayer(cassette, ReplayConfig(**config), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock)




def login() -> Exchange:
    return Exchange(1, "s1", 0.0, Request(headers=[AUTH], method="GET", path="/api/v2/me"),
                    Response(headers=[("Content-Type", "application/json"), ("Set-Cookie", "JSESSIONID=REDACTED-1")],
                             kind="json", body={"statusCode": 0}), 0.004, 0.004)


def handshake(number: int, start: float, id_: str, client_id: str) -> Exchange:
    return bayeux(number, start, [{"channel": "/meta/handshake", "id": id_, "version": "1.0"}],
                  [ok("/meta/handshake", id_, client_id, advice={"reconnect": "retry", "interval": 0,
                                                                 "timeout": 30000})])


def subscribe(number: int, start: float, id_: str, client_id: str) -> Exchange:
    return bayeux(number, start, [{"channel": "/meta/subscribe", "id": id_, "clientId": client_id,
                                   "subscription": "/v2/me/calls"}],
                  [ok("/meta/subscribe", id_, client_id, subscription="/v2/me/calls")])


def carrying(number: int, start: float, id_: str, client_id: str, state: str, cause: int) -> Exchange:
    """A held connect that carried the event of ``cause``, 250 ms after its reply."""
    return bayeux(number, start, [connect(id_, client_id)],
                  [event(state, cause, 0.25), ok("/meta/connect", id_, client_id)], 0.323)


def opened(number: int, start: float, id_: str, client_id: str) -> Exchange:
    """The first connect after a handshake, answered at once."""
    return bayeux(number, start, [connect(id_, client_id)], [ok("/meta/connect", id_, client_id)])
