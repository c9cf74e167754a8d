"""Which recorded session a live client replays (gwsvcr/replay/binding.py), in process on the fake clock: two
agents of an SDK with Bearer tokens the cassette holds as placeholders, started in any order, at any pace; ties
between sessions that answer alike; a bound client that moves; events that wait for the decision."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from gwsvcr import wire
from gwsvcr.cassette import Cassette, Exchange, Header, ReplyItem, Request, Response
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.replay.status import summary_line
from tests.fakeclock import FakeClock

COMETD = "/statistics/v3/notifications"
SERVICE, UPDATES = "/statistics/v3/service", "/statistics/v3/updates"
SNAPSHOT_DELAY, UPDATE_DELAY = 0.030, 0.250
KEY = ("x-api-key", "REDACTED-000000000000")


def bayeux_exchange(number: int, session: str, start: float, sent: list[dict[str, Any]],
                    items: list[ReplyItem], set_cookie: str | None = None, hold: float = 0.001) -> Exchange:
    headers = [("Authorization", f"Bearer REDACTED-{session}0000000000"), KEY]
    response = Response(headers=[("Set-Cookie", set_cookie)] if set_cookie else [], kind="messages", body=items)
    return Exchange(number, session, start, Request(headers=headers, kind="messages", body=sent, method="POST",
                                                    path=COMETD), response, ttfb=hold, transport="long-polling")


def agent_session(session: str, first: int, start: float, agent: str, snapshot: str = "Started",
                  snapshot_delay: float = SNAPSHOT_DELAY) -> list[Exchange]:
    """What one agent of the statistics SDK did: handshake, subscribe (a service snapshot follows), then its own
    statistics subscription (an update follows), each event carried by a held connect."""
    cid = f"rec-{session}"
    hs = bayeux_exchange(first, session, start, [{"channel": "/meta/handshake", "id": "1"}],
                         [ReplyItem({"channel": "/meta/handshake", "id": "1", "clientId": cid, "successful": True})],
                         set_cookie=f"BAYEUX_BROWSER=REDACTED-{session}browser00")
    sub = bayeux_exchange(first + 1, session, start + 0.01,
                          [{"channel": "/meta/subscribe", "id": "2", "clientId": cid, "subscription": SERVICE}],
                          [ReplyItem({"channel": "/meta/subscribe", "id": "2", "clientId": cid, "subscription": SERVICE,
                                      "successful": True})])
    snapshot_connect = bayeux_exchange(
        first + 2, session, start + 0.02, [{"channel": "/meta/connect", "id": "3", "clientId": cid}],
        [ReplyItem({"channel": SERVICE, "data": {"state": snapshot}}, cause=first + 1, delay=snapshot_delay),
         ReplyItem({"channel": "/meta/connect", "id": "3", "successful": True}, hold=0.02)], hold=0.02)
    post = Exchange(first + 3, session, start + 0.1,
                    Request(headers=[("Authorization", f"Bearer REDACTED-{session}0000000000"), KEY], kind="json",
                            body={"data": {"statistics": [{"objectId": agent}]}}, method="POST",
                            path="/statistics/v3/subscriptions"),
                    Response(kind="json", body={"status": {"code": 0}, "data": {"objectId": agent}}), ttfb=0.002)
    update_connect = bayeux_exchange(
        first + 4, session, start + 0.05, [{"channel": "/meta/connect", "id": "4", "clientId": cid}],
        [ReplyItem({"channel": UPDATES, "data": {"objectId": agent, "value": 1}}, cause=first + 3,
                   delay=UPDATE_DELAY),
         ReplyItem({"channel": "/meta/connect", "id": "4", "successful": True}, hold=0.3)], hold=0.3)
    return [hs, sub, snapshot_connect, post, update_connect]


def two_agents(snapshots: tuple[str, str] = ("Started", "Started"),
               delays: tuple[float, float] = (SNAPSHOT_DELAY, SNAPSHOT_DELAY)) -> Cassette:
    return Cassette("stats.yaml", Header(), agent_session("s1", 1, 0.0, "agentA", snapshots[0], delays[0])
                    + agent_session("s2", 6, 0.005, "agentB", snapshots[1], delays[1]))


@dataclass
class Agent:
    """A live agent of the SDK, in process: its own Bearer token, its cookie jar, a long-poll kept outstanding."""

    core: Replayer
    clock: FakeClock
    name: str
    cookies: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, Any, float]] = field(default_factory=list)  # channel, data, when
    client_id: str = ""
    replies: list[Any] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _poll: asyncio.Task[None] | None = None

    def _request(self, **kw: Any) -> Request:
        headers = [("Authorization", f"Bearer live-{self.name}-token"), ("x-api-key", "live-key")]
        if self.cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        return Request(headers=headers, method="POST", **kw)

    async def _send(self, request: Request, *, held: bool = False) -> Response:
        """Send a request; one that waits a recorded latency moves the clock, a long-poll waits for the test's."""
        served = await (self.core.handle(request) if held else self.clock.drive(self.core.handle(request)))
        assert served.response is not None
        self.cookies.update(wire.set_cookie_values(served.response.headers))
        if served.delivered is not None:
            served.delivered(self.clock.now())
        return served.response

    async def bayeux(self, held: bool = False, **message: Any) -> list[dict[str, Any]]:
        message = {"id": str(next(self._ids)), **message}
        if self.client_id:
            message["clientId"] = self.client_id
        response = await self._send(self._request(kind="messages", body=[message], path=COMETD), held=held)
        for m in response.body:
            if "data" in m:
                self.events.append((m["channel"], m["data"], self.clock.now()))
        return list(response.body)

    async def start(self) -> None:
        [hs] = await self.bayeux(channel="/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling"])
        assert hs["successful"], hs
        self.client_id = hs["clientId"]
        await self.bayeux(channel="/meta/connect", connectionType="long-polling")
        await self.bayeux(channel="/meta/subscribe", subscription=SERVICE)
        self._poll = asyncio.ensure_future(self._polling())

    async def _polling(self) -> None:
        while True:
            await self.bayeux(held=True, channel="/meta/connect", connectionType="long-polling")

    async def subscribe_statistics(self) -> None:
        body = {"data": {"statistics": [{"objectId": self.name}]}}
        response = await self._send(self._request(kind="json", body=body, path="/statistics/v3/subscriptions"))
        self.replies.append((response.status, response.body, self.clock.now()))

    def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()


def replayer(cassette: Cassette, clock: FakeClock, shown: list[str] | None = None) -> Replayer:
    return Replayer(cassette, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock,
                    show=None if shown is None else shown.append)


async def run_agents(cassette: Cassette, plan: list[tuple[str, str, float]]) -> tuple[Replayer, dict[str, Agent]]:
    """Run ``plan``: (agent, what, seconds to wait before it) steps, ``what`` being start or subscribe."""
    clock = FakeClock()
    core = replayer(cassette, clock)
    agents: dict[str, Agent] = {}
    for name, what, wait in plan:
        await clock.advance(wait)
        agent = agents.setdefault(name, Agent(core, clock, name))
        await (agent.start() if what == "start" else agent.subscribe_statistics())
    await clock.advance(2.0)
    for agent in agents.values():
        agent.stop()
    await clock.settle()
    return core, agents


ORDERS = {
    "recorded": [("agentA", "start", 0), ("agentB", "start", 0.005), ("agentA", "subscribe", 0.1),
                 ("agentB", "subscribe", 0.005)],
    "reverse": [("agentB", "start", 0), ("agentA", "start", 0.005), ("agentB", "subscribe", 0.1),
                ("agentA", "subscribe", 0.005)],
    "interleaved": [("agentB", "start", 0), ("agentA", "start", 0.001), ("agentA", "subscribe", 0.1),
                    ("agentB", "subscribe", 0.3)],
    "slower": [("agentB", "start", 0), ("agentA", "start", 0.5), ("agentB", "subscribe", 0.5),
               ("agentA", "subscribe", 0.5)],
}


@pytest.mark.parametrize("order", list(ORDERS))
async def test_each_agent_gets_its_own_session_whatever_the_order(order: str) -> None:
    core, agents = await run_agents(two_agents(), ORDERS[order])
    for name, agent in agents.items():
        assert agent.replies[0][1] == {"status": {"code": 0}, "data": {"objectId": name}}
        updates = [(data, at - agent.replies[0][2]) for channel, data, at in agent.events if channel == UPDATES]
        assert updates == [({"objectId": name, "value": 1}, pytest.approx(UPDATE_DELAY))], (order, agent.events)
        assert [data for channel, data, _ in agent.events if channel == SERVICE] == [{"state": "Started"}]
    bound = {label: clients for label, clients in core.bindings().items()}
    by_agent = {name: next(label for label, clients in bound.items() if n in clients)
                for name, n in (("agentA", _number(core, "agentA")), ("agentB", _number(core, "agentB")))}
    assert by_agent == {"agentA": "s1", "agentB": "s2"}
    assert core.misses == [] and core.unused() == []


def _number(core: Replayer, agent: str) -> int:
    """The client number of the live agent whose Bearer token names ``agent``."""
    return next(c.number for c in core.by_cookie.values() if c.credential and agent in c.credential.value)


async def test_twenty_replays_in_a_row_give_the_same_result() -> None:
    results = []
    for run in range(20):
        core, agents = await run_agents(two_agents(), ORDERS[list(ORDERS)[run % len(ORDERS)]])
        results.append(({name: [(c, d, round(at - a.replies[0][2], 6)) for c, d, at in a.events if c == UPDATES]
                         for name, a in agents.items()}, len(core.misses), core.unused()))
        core.close()
    assert all(r == results[0] for r in results), results
    assert results[0][1:] == (0, [])


async def test_the_snapshot_a_subscribe_caused_comes_at_its_delay_before_anything_decided() -> None:
    """Both sessions answer the subscribe alike and push the same snapshot: it is released on time, from
    whichever session the undecided client leans on."""
    clock = FakeClock()
    core = replayer(two_agents(), clock)
    agent = Agent(core, clock, "agentB")
    await agent.start()
    subscribed = clock.now()
    await clock.advance(0.5)
    assert [(c, round(at - subscribed, 6)) for c, _, at in agent.events] == [(SERVICE, SNAPSHOT_DELAY)]
    assert core.bindings()["undecided"] == [1]
    await agent.subscribe_statistics()
    assert core.bindings()["s2"] == [1]
    agent.stop()
    core.close()


@pytest.mark.parametrize("decided_ms,released_ms,cause", [(10, 40, 7), (35, 30, 2)],
                         ids=["decided-before-it-fell-due", "decided-after-it-went-out"])
async def test_an_alike_event_not_released_yet_takes_the_delay_of_the_session_decided(
        decided_ms: int, released_ms: int, cause: int) -> None:
    """Both sessions push the same snapshot after the subscribe, s1 30 ms after it, s2 40 ms; agentB's client is
    answered from s1 until its POST decides s2. Decided before the snapshot fell due, the snapshot comes at s2's
    40 ms, counted from the same subscribe; decided after s1's 30 ms, it went out then (nothing could tell the
    sessions apart yet) and is not sent again. Never before the delay of the session it is released from."""
    clock = FakeClock()
    shown: list[str] = []
    core = replayer(two_agents(delays=(0.030, 0.040)), clock, shown)
    agent = Agent(core, clock, "agentB")
    await agent.start()
    subscribed = clock.now()
    await clock.advance(decided_ms / 1000)
    await agent.subscribe_statistics()
    await clock.advance(0.5)
    [(_, _, replied)] = agent.replies
    assert [(c, round((at - (subscribed if c == SERVICE else replied)) * 1000, 3)) for c, _, at in agent.events] \
        == [(SERVICE, released_ms), (UPDATES, UPDATE_DELAY * 1000)]
    assert [line for line in shown if SERVICE in line] == [
        f"client 1   <- {SERVICE} event  {released_ms} ms after #{cause}"], shown
    assert core.bindings()["s2"] == [1]
    agent.stop()
    core.close()


async def test_events_that_differ_wait_for_the_request_that_decides() -> None:
    """Each session's snapshot names its agent: the undecided client's snapshot waits; the request that tells
    the sessions apart comes within the snapshot's delay and decides, and the right snapshot goes out on time."""
    clock = FakeClock()
    core = replayer(two_agents(("for agentA", "for agentB")), clock)
    agent = Agent(core, clock, "agentB")
    await agent.start()
    subscribed = clock.now()
    await clock.advance(0.010)
    assert agent.events == []
    await agent.subscribe_statistics()
    await clock.advance(0.5)
    assert [(d, round(at - subscribed, 6)) for c, d, at in agent.events if c == SERVICE] == \
        [({"state": "for agentB"}, SNAPSHOT_DELAY)]
    agent.stop()
    core.close()


async def test_waiting_events_decide_by_recorded_order_when_nothing_else_does() -> None:
    clock = FakeClock()
    shown: list[str] = []
    core = replayer(two_agents(("for agentA", "for agentB")), clock, shown)
    agent = Agent(core, clock, "agentB")
    await agent.start()
    subscribed = clock.now()
    await clock.advance(0.5)
    assert [(d, round(at - subscribed, 6)) for c, d, at in agent.events] == [({"state": "for agentA"},
                                                                              SNAPSHOT_DELAY)]
    assert shown[0] == "client 1 took s1: its events fell due before anything told s1, s2 apart; s1: unclaimed, " \
                       "then its next request, then recorded order"
    agent.stop()
    core.close()


def login_cassette(same_login: bool = True) -> Cassette:
    """Two sessions of Basic users agent1 and agent2: a login, then an operation of each's own."""
    def rest(number: int, session: str, user: str, path: str, body: Any, reply: Any) -> Exchange:
        auth = wire.basic_header(user, "REDACTED-000000000000")
        cookie = [("Set-Cookie", f"JSESSIONID=REDACTED-{session}jsession00; Path=/")] if path == "/login" else []
        return Exchange(number, session, number / 10, Request(headers=[("Authorization", auth)], kind="json",
                                                              body=body, method="POST", path=path),
                        Response(headers=cookie, kind="json", body=reply), ttfb=0.0)
    return Cassette("login.yaml", Header(), [
        rest(1, "s1", "agent1", "/login", {}, {"ok": 1}),
        rest(2, "s1", "agent1", "/op", {"n": 1}, {"done": 1}),
        rest(3, "s2", "agent2", "/login", {}, {"ok": 1 if same_login else 2}),
        rest(4, "s2", "agent2", "/op", {"n": 2}, {"done": 2}),
    ])


@dataclass
class Curl:
    """A curl-like agent: Basic auth on every request, the cookies it was given sent back."""

    core: Replayer
    user: str
    jar: dict[str, str] = field(default_factory=dict)

    async def post(self, path: str, body: Any) -> Response:
        headers = [("Authorization", wire.basic_header(self.user, "pw"))]
        if self.jar:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.jar.items())))
        request = Request(headers=headers, kind="json", body=body, method="POST", path=path)
        response = (await self.core.handle(request)).response
        assert response is not None
        self.jar.update(wire.set_cookie_values(response.headers))
        return response


async def test_a_bound_client_moves_when_all_it_was_given_is_the_same_elsewhere() -> None:
    """agent1 is bound to s1 by its user; it then does agent2's operation: it moves to s2."""
    shown: list[str] = []
    core = replayer(login_cassette(), FakeClock(), shown)
    agent1 = Curl(core, "agent1")
    assert (await agent1.post("/login", {})).body == {"ok": 1}
    assert (await agent1.post("/op", {"n": 2})).body == {"done": 2}
    assert core.bindings() == {"s1": [], "s2": [1]}
    assert shown == ["client 1 moved from s1: POST /op is not in s1, and all it was given is the same in s2"]
    assert "s1 <- none, s2 <- client 1" in summary_line(core.status())


async def test_replies_that_differ_only_in_ids_the_server_makes_do_not_decide() -> None:
    """The login of each session answered a session id of its own: a client whose token the cassette does not
    know stays undecided through its login (either id is what the server would have given it) and its operation
    decides; before, the login decided (s1, recorded first) and agent2's operation was a miss."""
    cassette = login_cassette()
    for ex in cassette.exchanges:
        ex.request.headers = [("Authorization", f"Bearer REDACTED-{ex.session}000000000000")]
        if ex.request.path == "/login":
            ex.response.body = {"sessionId": f"{ex.session}-5f0c8a2e-9d41-4c7e-b1aa-{ex.number:012d}"}  # type: ignore
    core = replayer(cassette, FakeClock())

    async def post(path: str, body: Any, cookies: dict[str, str]) -> Response:
        headers = [("Authorization", "Bearer live"), *([("Cookie", f"JSESSIONID={cookies['JSESSIONID']}")]
                                                       if cookies else [])]
        served = await core.handle(Request(headers=headers, kind="json", body=body, method="POST", path=path))
        assert served.response is not None
        return served.response

    login = await post("/login", {}, {})
    assert login.body["sessionId"].startswith("s1-") and core.bindings()["undecided"] == [1]
    assert (await post("/op", {"n": 2}, wire.set_cookie_values(login.headers))).body == {"done": 2}
    assert core.bindings() == {"s1": [], "s2": [1]} and core.misses == []


async def test_a_client_given_something_else_does_not_move() -> None:
    misses: list[Any] = []
    core = Replayer(login_cassette(same_login=False), ReplayConfig(), on_miss=misses.append, clock=FakeClock())
    agent1 = Curl(core, "agent1")
    await agent1.post("/login", {})
    reply = await agent1.post("/op", {"n": 2})
    assert reply.status == 500 and len(misses) == 1
    assert "not in the recorded session s1" in misses[0].reason


async def test_alike_sessions_share_their_clients_and_n_clients_on_m_sessions_each_get_a_copy() -> None:
    """Two sessions that answer alike: clients are spread over both (nothing unused); a third gets a copy."""
    cassette = login_cassette()
    for ex in cassette.exchanges:  # the same user in both, the same operation
        ex.request.headers = [("Authorization", wire.basic_header("agent", "REDACTED-000000000000"))]
        ex.request.body = {"n": 1} if ex.request.path == "/op" else {}
        if ex.request.path == "/op":
            ex.response.body = {"done": 1}  # type: ignore[union-attr]
    core = replayer(cassette, FakeClock())
    for user in ("u1", "u2", "u3"):
        agent = Curl(core, user)
        assert (await agent.post("/login", {})).body == {"ok": 1}
        assert (await agent.post("/op", {"n": 1})).body == {"done": 1}
    assert core.unused() == [] and core.misses == []
    assert core.bindings() == {"s1": [], "s2": [], "undecided": [1, 2, 3]}
    assert [c.script.label for c in core.by_cookie.values()] == ["s1", "s2", "s1"]


async def test_a_fleet_on_a_one_agent_cassette_binds_at_once() -> None:
    cassette = Cassette("one.yaml", Header(), agent_session("s1", 1, 0.0, "agentA"))
    clock = FakeClock()
    core = replayer(cassette, clock)
    agents = [Agent(core, clock, "agentA") for _ in range(5)]
    for agent in agents:
        await agent.start()
        await agent.subscribe_statistics()
    await clock.advance(1.0)
    assert all(c.undecided is None for c in core.by_cookie.values())
    assert core.bindings() == {"s1": [1, 2, 3, 4, 5]}
    assert all(len([e for e in a.events if e[0] == UPDATES]) == 1 for a in agents)
    for agent in agents:
        agent.stop()
    core.close()
