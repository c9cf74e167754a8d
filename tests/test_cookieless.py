"""Clients that keep no cookies (curl with Basic auth on each request, a CometD client without a cookie jar), in
process on the fake clock: their REST requests carry nothing but the credential they share with every other client
of that user, so the replay places each by what it asks. Two such clients of one user, one after the other or at
once, each get their own complete session: every event on their own CometD connection, its recorded delay after
their own request."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from gwsvcr import wire
from gwsvcr.cassette import Cassette, Exchange, Header, ReplyItem, Request, Response
from gwsvcr.correlate import Correlator
from gwsvcr.record.recording import ExchangeTimes, Recorder
from gwsvcr.record.redact import Redactor
from gwsvcr.replay import ReplayConfig, Replayer
from tests.fakeclock import FakeClock

COMETD, CALLS, CALL = "/api/v2/notifications", "/v2/me/calls", "/api/v2/me/calls/CALL0042"
OPS = ("StartCallRecording", "StopCallRecording")
DELAY = 0.250
AUTH = ("Authorization", wire.basic_header("agent1", "REDACTED-000000000000"))


def cookieless_session() -> Cassette:
    """One agent recorded from curl and a CometD client without cookies: a login (whose JSESSIONID it never sends
    back), handshake, subscribe, then each operation and its notification DELAY after the operation's reply."""
    exchanges: list[Exchange] = []

    def add(request: Request, response: Response, ttfb: float = 0.001) -> int:
        number = len(exchanges) + 1
        exchanges.append(Exchange(number, "s1", number / 10, request, response, ttfb=ttfb))
        return number

    def bayeux(message: dict[str, Any], *replies: ReplyItem, hold: float = 0.001) -> int:
        sent = {"id": str(len(exchanges) + 1), "clientId": "rec-c1", **message}
        return add(Request(headers=[AUTH], kind="messages", body=[sent], method="POST", path=COMETD),
                   Response(kind="messages", body=[*replies, ReplyItem({"channel": message["channel"],
                                                                       "id": sent["id"], "successful": True},
                                                                      hold=hold)]), hold)

    add(Request(headers=[AUTH], method="GET", path="/api/v2/me"),
        Response(headers=[("Set-Cookie", "JSESSIONID=REDACTED-000000000001; Path=/")], kind="json",
                 body={"user": "agent1"}))
    bayeux({"channel": "/meta/handshake"})
    bayeux({"channel": "/meta/connect"})
    bayeux({"channel": "/meta/subscribe", "subscription": CALLS})
    for op in OPS:
        cause = add(Request(headers=[AUTH], kind="json", body={"operationName": op}, method="POST", path=CALL),
                    Response(kind="json", body={"statusCode": 0}))
        bayeux({"channel": "/meta/connect"}, ReplyItem({"channel": CALLS, "data": {"after": op}}, cause=cause,
                                                       delay=DELAY), hold=0.3)
    bayeux({"channel": "/meta/disconnect"})
    return Cassette("cookieless.yaml", Header(), exchanges)


@dataclass
class Agent:
    """A client that sends Basic auth on every request and never a cookie, with a long-poll kept outstanding."""

    core: Replayer
    clock: FakeClock
    client_id: str = ""
    events: list[tuple[Any, float]] = field(default_factory=list)  # data, when
    replied: dict[str, float] = field(default_factory=dict)  # operation -> when its reply came
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _poll: asyncio.Task[None] | None = None

    async def _send(self, request: Request, held: bool = False) -> Response:
        served = await (self.core.handle(request) if held else self.clock.drive(self.core.handle(request)))
        assert served.response is not None and served.response.status == 200, served.response
        if served.delivered is not None:
            served.delivered(self.clock.now())
        return served.response

    async def bayeux(self, held: bool = False, **message: Any) -> list[dict[str, Any]]:
        message = {"id": str(next(self._ids)), **message, **({"clientId": self.client_id} if self.client_id else {})}
        response = await self._send(Request(headers=[AUTH], kind="messages", body=[message], method="POST",
                                            path=COMETD), held)
        self.events += [(m["data"], self.clock.now()) for m in response.body if "data" in m]
        return list(response.body)

    async def start(self, login: bool = True) -> None:
        if login:
            await self._send(Request(headers=[AUTH], method="GET", path="/api/v2/me"))
        [hs] = await self.bayeux(channel="/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling"])
        assert hs["successful"], hs
        self.client_id = hs["clientId"]
        await self.bayeux(channel="/meta/connect", connectionType="long-polling")
        [sub] = await self.bayeux(channel="/meta/subscribe", subscription=CALLS)
        assert sub["successful"], sub
        self._poll = asyncio.ensure_future(self._polling())

    async def _polling(self) -> None:
        while True:
            await self.bayeux(held=True, channel="/meta/connect", connectionType="long-polling")

    async def operate(self, op: str) -> None:
        await self._send(Request(headers=[AUTH], kind="json", body={"operationName": op}, method="POST", path=CALL))
        self.replied[op] = self.clock.now()

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
        await self.bayeux(channel="/meta/disconnect")

    def delays(self) -> list[tuple[Any, float]]:
        """Each event and how long after its operation's reply it came, in ms."""
        return [(data, round((at - self.replied[data["after"]]) * 1000, 3)) for data, at in self.events]


WANT = [({"after": op}, DELAY * 1000) for op in OPS]


def replayer(cassette: Cassette, clock: FakeClock) -> Replayer:
    return Replayer(cassette, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock)


@pytest.mark.parametrize("login", [True, False], ids=["login-first", "handshake-first"])
async def test_cookie_less_clients_of_one_user_one_after_the_other_each_get_the_whole_session(login: bool) -> None:
    """Three clients; each connects after the one before disconnected, with its login or straight with its
    handshake (as a CometD client alone does): that handshake is not the client's before (whose CometD session is
    over, and which took its only handshake), so it gets its own copy, and every event of it."""
    clock = FakeClock()
    core = replayer(cookieless_session(), clock)
    for _ in range(3):
        agent = Agent(core, clock)
        await agent.start(login)
        for op in OPS:
            await clock.advance(0.1)
            await agent.operate(op)
            await clock.advance(0.5)
        await agent.stop()
        assert agent.delays() == WANT
    assert core.bindings() == {"s1": [1, 2, 3]} and core.misses == []


@pytest.mark.parametrize("second_after", [0.05, 0.4], ids=["second-starts-before-the-first-operates",
                                                          "second-starts-between-the-operations"])
async def test_two_cookie_less_clients_of_one_user_at_once_each_keep_their_own_session(second_after: float) -> None:
    """Both run the same script, the second behind the first: each operation goes to the client it is next for
    (the older one first when it is next for both), so each event comes on the connection of the client that
    asked, at its recorded delay after that client's reply; none before it asked."""
    clock = FakeClock()
    core = replayer(cookieless_session(), clock)
    first, second = Agent(core, clock), Agent(core, clock)
    await first.start()
    steps = [(0.1, first, OPS[0]), (0.3, first, OPS[1]), (0.1 + second_after, second, OPS[0]),
             (0.3 + second_after, second, OPS[1])]
    started = clock.now()
    second_started = False
    for at, agent, op in sorted(steps, key=lambda s: s[0]):
        if not second_started and at >= second_after:
            await clock.advance(started + second_after - clock.now())
            await second.start()
            second_started = True
        await clock.advance(max(0.0, started + at - clock.now()))
        await agent.operate(op)
    await clock.advance(1.0)
    for agent in (first, second):
        await agent.stop()
        assert agent.delays() == WANT
    assert sorted(core.bindings()["s1"]) == [1, 2] and core.misses == []


async def test_a_value_the_client_made_names_its_client_whatever_else_could_take_the_request() -> None:
    """Two cookie-less clients of one token open a subscription each, named by a uuid each makes; the newer one
    closes its own first. Both are waiting for that DELETE next, and the older one would take it on order
    alone: the uuid in its path says whose it is."""
    token = ("Authorization", "Bearer REDACTED-000000000000")
    recorded = "6f1c0c1e-0000-4000-8000-000000000001"

    def rest(number: int, method: str, path: str, body: Any, reply: Any) -> Exchange:
        return Exchange(number, "s1", number / 10, Request(headers=[token], kind="json" if body else None, body=body,
                                                           method=method, path=path),
                        Response(kind="json", body=reply), ttfb=0.001)

    opened = rest(1, "POST", "/subscriptions", {"operationId": recorded}, {"subscriptionId": recorded})
    closed = rest(2, "DELETE", f"/subscriptions/{recorded}", None, {"closed": recorded})
    rec = Recorder(None, Redactor(), t0=0.0, correlator=Correlator())
    marked = [rec.complete(ex.request, ex.response, ExchangeTimes(n, n, n + 0.01, n + 0.02))  # type: ignore[arg-type]
              for n, ex in enumerate((opened, closed), 1)]
    for ex in marked:
        ex.session = "s1"
    clock = FakeClock()
    core = replayer(Cassette("subs.yaml", Header(), marked), clock)
    live = {"older": "0b8e5a52-1111-4000-8000-00000000000a", "newer": "0b8e5a52-2222-4000-8000-00000000000b"}
    for name in live:
        served = await clock.drive(core.handle(Request(headers=[("Authorization", "Bearer live")], kind="json",
                                                       body={"operationId": live[name]}, method="POST",
                                                       path="/subscriptions")))
        assert served.response is not None and served.response.body == {"subscriptionId": live[name]}
    for name in ("newer", "older"):
        served = await clock.drive(core.handle(Request(headers=[("Authorization", "Bearer live")],
                                                       method="DELETE", path=f"/subscriptions/{live[name]}")))
        assert served.response is not None and served.response.body == {"closed": live[name]}
    assert core.misses == [] and core.unused() == []
    assert [c.cursors.asked("rest", k) for c in core.by_cookie.values() for k in c.script.rest] == [1, 1, 1, 1]
