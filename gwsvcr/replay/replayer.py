"""Replay: the cassette stands in for the server, with the recorded timing, in causal order, per session.

Each recorded session becomes a read-only :class:`Script`. Every live client (an :class:`Agent`) replays its own
copy of a script: its own cursors, its own CometD session and its own timeline, so N clients replaying a one-agent
cassette each get every event. An agent is known by the JSESSIONID cookie the replayer issues (the recorded
``Set-Cookie`` rewritten to a value of its own), else by the Basic user name.

Timing: an event becomes due its recorded delay (scaled by ``speed``; zero when instant) after the replayed reply
of its cause, and never before the cause was replayed. Due events go to the agent's held connect at once, or wait
for its next connect: the Bayeux core does that part.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import copy
import heapq
import itertools
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import wire
from gwsvcr.bayeux import CONNECT, HANDSHAKE, SUBSCRIBE, BayeuxServer, Hooks, Message, ServerConfig, Session
from gwsvcr.cassette import Cassette, Exchange, Request, Response
from gwsvcr.matching import Key, bayeux_key, closest, rest_key

_MATCHED: contextvars.ContextVar[list[int]] = contextvars.ContextVar("matched")
RECENT_AGENTS = 16  # cookie-less requests look for their client among this many newest ones of their user
MAX_IDLE_AGENTS = 20_000
_REPLY_DROP = {"id", "channel", "clientId", "successful"}


@dataclass
class ReplayConfig:
    timing: str = "recorded"  # recorded | instant
    speed: float = 1.0
    strict: bool = True
    json_ignore: tuple[str, ...] = ()
    has_upstream: bool = False  # lenient misses go upstream instead of a 404

    def scale(self, seconds: float | None) -> float:
        if seconds is None or self.timing == "instant":
            return 0.0
        return max(0.0, seconds / self.speed)


@dataclass(order=True)
class RecordedEvent:
    order: int
    message: Message = field(compare=False)
    delay: float = field(compare=False, default=0.0)


@dataclass
class Script:
    """What one recorded session did, indexed for O(1) lookups."""

    label: str
    users: set[str] = field(default_factory=set)
    rest: dict[Key, list[Exchange]] = field(default_factory=dict)
    handshakes: list[tuple[int, Message]] = field(default_factory=list)
    subscribes: dict[str, list[tuple[int, Message]]] = field(default_factory=dict)
    publishes: dict[str, list[tuple[int, Message]]] = field(default_factory=dict)
    connects: list[tuple[float | None, bool]] = field(default_factory=list)  # (hold, carried events)
    connect_advice: dict[str, Any] = field(default_factory=dict)
    events_by_cause: dict[int | None, list[RecordedEvent]] = field(default_factory=dict)
    # Bayeux requests the server answered with something else (an HTML 500): replayed as recorded
    failures: dict[str, list[Exchange]] = field(default_factory=dict)


def _reply_fields(reply: Message) -> Message:
    """Recorded reply fields worth replaying: advice (minus artifacts), errors, ext (minus per-run parts)."""
    out = {k: copy.deepcopy(v) for k, v in reply.items() if k not in _REPLY_DROP and k != "data"}
    advice = out.get("advice")
    if isinstance(advice, dict):
        advice.pop("multiple-clients", None)  # an artifact of two tabs sharing BAYEUX_BROWSER
    ext = out.get("ext")
    if isinstance(ext, dict):
        for volatile in ("ack", "timesync"):
            ext.pop(volatile, None)
        if not ext:
            out.pop("ext")
    if reply.get("successful") is False:
        out["successful"] = False
    out.pop("supportedConnectionTypes", None)
    return out


def failure_key(messages: list[Message]) -> str:
    """What a Bayeux request asked, for replaying a non-Bayeux answer: its messages but for connects, with
    everything volatile dropped."""
    return "|".join(sorted(bayeux_key(m) for m in messages if m.get("channel") != CONNECT))


def build_scripts(cassette: Cassette, ignore: tuple[str, ...] = ()) -> list[Script]:
    scripts: dict[str, Script] = {}
    order = itertools.count()
    for ex in sorted(cassette.exchanges, key=lambda e: (e.episode, e.start, e.number)):
        label = ex.session if ex.episode == 1 else f"{ex.session}@{ex.episode}"
        script = scripts.setdefault(label, Script(label))
        creds = wire.basic_auth(ex.request.header("Authorization"))
        if creds:
            script.users.add(creds[0])
        bayeux = wire.bayeux_of(ex.request)
        if bayeux is None:
            script.rest.setdefault(rest_key(ex.request, ignore), []).append(ex)
            continue
        if ex.response is not None and ex.response.kind != "messages":
            script.failures.setdefault(failure_key(bayeux.messages), []).append(ex)
            continue
        replies = {str(item.message.get("id")): item.message for item in ex.reply_items()
                   if not item.is_event and "id" in item.message}
        for m in bayeux.messages:
            reply = replies.get(str(m.get("id")), {})
            channel = m.get("channel")
            if channel == HANDSHAKE:
                script.handshakes.append((ex.number, reply))
            elif channel == SUBSCRIBE:
                subs = m.get("subscription")
                for sub in subs if isinstance(subs, list) else [subs]:
                    script.subscribes.setdefault(str(sub), []).append((ex.number, reply))
            elif channel == CONNECT:
                carried = any(item.is_event for item in ex.reply_items())
                script.connects.append((ex.ttfb, carried))
                if reply.get("successful") and isinstance(reply.get("advice"), dict):
                    script.connect_advice = _reply_fields(reply).get("advice", {})
            elif isinstance(channel, str) and not channel.startswith("/meta/"):
                script.publishes.setdefault(bayeux_key(m), []).append((ex.number, reply))
        for item in ex.reply_items():
            if item.is_event:
                event = RecordedEvent(next(order), item.message, item.delay or 0.0)
                script.events_by_cause.setdefault(item.cause, []).append(event)
    return list(scripts.values())


class Agent:
    """One live client replaying its own copy of a script."""

    def __init__(self, number: int, script: Script, user: str | None, replayer: Replayer) -> None:
        self.number = number
        self.script = script
        self.user = user
        self.cookie = f"gwsvcr{number}-{secrets.token_hex(8)}"
        self.replayer = replayer
        self.cursors: dict[Any, int] = {}
        self.handshakes = 0
        self.session: Session | None = None
        self.pending: list[Message] = []  # events due while the client had no CometD session
        self._heap: list[tuple[float, RecordedEvent]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.fired: set[int | None] = set()

    def take(self, table: dict[Any, list[Any]], key: Any) -> Any | None:
        """The next recorded answer for ``key`` in recorded order; the last one again once all were used."""
        answers = table.get(key)
        if not answers:
            return None
        i = self.cursors.get((id(table), key), 0)
        self.cursors[(id(table), key)] = i + 1
        return answers[min(i, len(answers) - 1)]

    def fresh(self, table: dict[Any, list[Any]], key: Any) -> bool:
        return self.cursors.get((id(table), key), 0) < len(table.get(key, ()))

    # ------------------------------------------------------------------------------------------- timeline
    def fire(self, cause: int | None, at: float) -> None:
        """The cause's reply has been replayed at ``at``: its events become due after their delays."""
        if cause in self.fired:
            return  # a repeated request does not push its events twice
        self.fired.add(cause)
        for event in self.script.events_by_cause.get(cause, ()):
            heapq.heappush(self._heap, (at + self.replayer.config.scale(event.delay), event))
        self._arm()

    def _arm(self) -> None:
        if not self._heap:
            return
        due = self._heap[0][0]
        if due >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = asyncio.get_running_loop().call_at(due, self._pump)

    def _pump(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = asyncio.get_running_loop().time()
        while self._heap and self._heap[0][0] <= now:
            _, event = heapq.heappop(self._heap)
            self.replayer.events_released += 1
            self._deliver(copy.deepcopy(event.message))
        self._arm()

    def _deliver(self, message: Message) -> None:
        if self.session is None or self.session.client_id not in self.replayer.bayeux.sessions:
            self.pending.append(message)
            return
        if "clientId" in message:
            message["clientId"] = self.session.client_id
        self.session.deliver(message)

    def attach(self, session: Session) -> None:
        self.session = session
        pending, self.pending = self.pending, []
        for message in pending:
            self._deliver(message)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._heap.clear()
        self.pending.clear()
        self.cursors.clear()


@dataclass
class Miss:
    request: str
    reason: str
    closest: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"error": "gwsvcr: no recorded request matches", "request": self.request, "reason": self.reason,
                "closest": self.closest}

    def text(self) -> str:
        lines = [f"gwsvcr: MISS {self.request}: {self.reason}"]
        for c in self.closest:
            lines.append(f"  closest: exchange {c['exchange']} ({c['session']}) {c['request']}")
            lines += [f"    - {d}" for d in c["differences"]]
        return "\n".join(lines)


class Replayer(Hooks):
    def __init__(self, cassette: Cassette, config: ReplayConfig | None = None,
                 on_miss: Callable[[Miss], None] | None = None) -> None:
        self.cassette = cassette
        self.config = config or ReplayConfig()
        self.scripts = build_scripts(cassette, self.config.json_ignore) or [Script("empty")]
        timeout = max((s.connect_advice.get("timeout", 0) for s in self.scripts), default=0) or 30_000
        interval = next((s.connect_advice.get("interval") for s in self.scripts if s.connect_advice), 0)
        self.bayeux = BayeuxServer(self, ServerConfig(timeout_ms=int(timeout), interval_ms=int(interval or 0),
                                                      max_interval_ms=int(timeout) + 30_000))
        self.clients = 0  # agents ever created
        self.by_cookie: dict[str, Agent] = {}  # insertion-ordered: the oldest idle ones are evicted first
        self._recent: dict[str | None, collections.deque[Agent]] = {}  # newest agents per Basic user
        self._assigned: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.used: set[int] = set()
        self.misses: list[Miss] = []
        self.served = 0
        self.events_released = 0
        self.on_miss = on_miss or (lambda miss: print(miss.text(), file=sys.stderr, flush=True))
        self._rest_keys = {key for script in self.scripts for key in script.rest}
        self._recorded_keys = [(rest_key(ex.request, self.config.json_ignore), ex.number, ex.session,
                                f"{ex.request.method} {ex.request.path}")
                               for ex in cassette.exchanges if wire.bayeux_of(ex.request) is None]

    # -------------------------------------------------------------------------------------------- agents
    def _new_agent(self, user: str | None) -> Agent:
        mine = [s for s in self.scripts if user in s.users] or self.scripts
        group = tuple(s.label for s in mine)
        self.clients += 1
        agent = Agent(self.clients, mine[self._assigned[group] % len(mine)], user, self)
        self._assigned[group] += 1
        self.by_cookie[agent.cookie] = agent
        self._recent.setdefault(user, collections.deque(maxlen=RECENT_AGENTS)).append(agent)
        if len(self.by_cookie) > MAX_IDLE_AGENTS:
            self._evict_idle()
        return agent

    def _evict_idle(self) -> None:
        """Clients that never came back (no CometD session) are forgotten, oldest first, so a load test of
        cookie-less requests cannot grow memory without bound."""
        for cookie in list(self.by_cookie)[: len(self.by_cookie) - MAX_IDLE_AGENTS // 2]:
            agent = self.by_cookie[cookie]
            if agent.session is None or agent.session.client_id not in self.bayeux.sessions:
                self._forget(agent)

    def _forget(self, agent: Agent) -> None:
        """Free a client that is gone: its timers, cursors, cookie, and its place among its user's newest."""
        agent.close()
        self.by_cookie.pop(agent.cookie, None)
        recent = self._recent.get(agent.user)
        if recent is not None:
            if agent in recent:
                recent.remove(agent)
            if not recent:
                del self._recent[agent.user]

    def agent_for(self, request: Request, fits: Callable[[Agent], bool]) -> Agent:
        """The live client a request belongs to: by the cookie we issued; else the newest client of the same
        Basic user that can still take it (a fresh client's first requests carry no cookie yet); else a new one."""
        cookie = wire.cookies(request).get("JSESSIONID")
        if cookie in self.by_cookie:
            return self.by_cookie[cookie]
        creds = wire.basic_auth(request.header("Authorization"))
        user = creds[0] if creds else None
        for agent in reversed(self._recent.get(user, ())):
            if fits(agent):
                return agent
        return self._new_agent(user)

    # ----------------------------------------------------------------------------------------- requests
    async def handle(self, request: Request) -> Response | None:
        """The reply for a live request; None sends it upstream (lenient with an upstream)."""
        self.served += 1
        bayeux = wire.bayeux_of(request)
        if bayeux is not None:
            return await self._bayeux(request, bayeux)
        return await self._rest(request)

    async def _rest(self, request: Request) -> Response | None:
        key = rest_key(request, self.config.json_ignore)
        if key not in self._rest_keys:
            return self._miss(request, key)  # before choosing a client: a miss creates none
        agent = self.agent_for(request, lambda a: a.fresh(a.script.rest, key))
        ex: Exchange | None = agent.take(agent.script.rest, key)
        if ex is None:
            return self._miss(request, key, f"not in the recorded session {agent.script.label} of this client")
        self.used.add(ex.number)
        delay = self.config.scale(ex.ttfb)
        if delay:
            await asyncio.sleep(delay)
        response = self._rewrite(ex, agent)
        agent.fire(ex.number, asyncio.get_running_loop().time())
        return response

    def _rewrite(self, ex: Exchange, agent: Agent) -> Response:
        if ex.response is None:
            return wire.json_reply(502, {"error": f"recorded failure: {ex.error}"})
        headers = []
        for name, value in ex.response.headers:
            if name.lower() == "set-cookie":
                cookie = value.split("=", 1)[0].strip()
                if cookie == "BAYEUX_BROWSER":
                    continue  # never replay a recorded browser id (PROTOCOL.md section 2)
                if cookie == "JSESSIONID":
                    value = f"JSESSIONID={agent.cookie}" + ("; " + value.split(";", 1)[1].strip()
                                                            if ";" in value else "")
            headers.append((name, value))
        return Response(headers=headers, kind=ex.response.kind, body=ex.response.body, status=ex.response.status)

    def _miss(self, request: Request, key: Key, reason: str = "nothing recorded matches") -> Response | None:
        near = closest(key, self._recorded_keys)
        miss = Miss(f"{request.method} {request.path}", reason, [c.as_dict() for c in near])
        self.misses.append(miss)
        self.on_miss(miss)
        if not self.config.strict and self.config.has_upstream:
            return None
        return Response(headers=[("Content-Type", "application/json"), ("X-Gwsvcr-Miss", "1")], kind="json",
                        body=miss.as_dict(), status=500 if self.config.strict else 404)

    async def _bayeux(self, request: Request, bayeux: wire.BayeuxRequest) -> Response:
        owner = self._agent_of_messages(bayeux.messages)
        if owner is not None and owner.script.failures:
            key = failure_key(bayeux.messages)
            failed: Exchange | None = owner.take(owner.script.failures, key)
            if failed is not None:  # the server answered this with an error page: so does the replay
                self.used.add(failed.number)
                await asyncio.sleep(self.config.scale(failed.ttfb))
                return self._rewrite(failed, owner)
        return wire.bayeux_reply(await self.bayeux_replies(request, bayeux.messages), bayeux.jsonp)

    async def bayeux_replies(self, request: Request, messages: list[Message]) -> list[Message]:
        """The replies to Bayeux messages, whatever carried them (an HTTP request, a WebSocket frame; then
        ``request`` is the upgrade request, which tells whose session it is)."""
        agent = None
        if any(m.get("channel") == HANDSHAKE for m in messages):
            agent = self.agent_for(request, lambda a: a.session is None or
                                   a.session.client_id not in self.bayeux.sessions)
        matched: list[int] = []
        token = _MATCHED.set(matched)
        try:
            replies = await self.bayeux.handle(messages, context=agent)
        finally:
            _MATCHED.reset(token)
        now = asyncio.get_running_loop().time()
        for number in matched:
            self.used.add(number)
            owner = self._agent_of_messages(messages) or agent
            if owner is not None:
                owner.fire(number, now)
        return replies

    def _agent_of_messages(self, messages: list[Message]) -> Agent | None:
        for m in messages:
            session = self.bayeux.sessions.get(str(m.get("clientId")))
            if session is not None and isinstance(session.context, Agent):
                return session.context
        return None

    # ------------------------------------------------------------------------------------ Bayeux hooks
    def on_handshake(self, session: Session, message: Message) -> Message | None:
        agent: Agent = session.context
        script = agent.script
        agent.handshakes += 1
        if not script.handshakes:
            agent.attach(session)
            return None
        number, reply = script.handshakes[min(agent.handshakes, len(script.handshakes)) - 1]
        _MATCHED.get([]).append(number)
        fields = _reply_fields(reply)
        if fields.get("successful", True):
            agent.attach(session)
        return fields

    def on_connect(self, session: Session, message: Message) -> Message | None:
        advice = session.context.script.connect_advice if isinstance(session.context, Agent) else None
        return {"advice": dict(advice)} if advice else None

    def hold_seconds(self, session: Session, message: Message, default: float) -> float:
        """The recorded hold of the n-th connect if it ended empty; else until an event, at most advice.timeout
        (instant: the full timeout, so a client waiting for an event does not spin)."""
        instant = self.config.timing == "instant"
        cap = default if instant else default / self.config.speed
        agent = session.context
        if not instant and isinstance(agent, Agent) and session.connects - 1 < len(agent.script.connects):
            hold, carried = agent.script.connects[session.connects - 1]
            if hold is not None and not carried:
                return min(self.config.scale(hold), cap)
        return cap

    def on_subscribe(self, session: Session, message: Message, subscription: str) -> Message | None:
        return self._bayeux_match(session, message, "subscribes", subscription, f"subscribe {subscription}")

    def on_publish(self, server: BayeuxServer, session: Session, message: Message) -> Message | None:
        return self._bayeux_match(session, message, "publishes", bayeux_key(message),
                                  f"publish {message.get('channel')}")

    def _bayeux_match(self, session: Session, message: Message, table_name: str, key: str,
                      what: str) -> Message | None:
        agent = session.context
        if not isinstance(agent, Agent):
            return None
        table = getattr(agent.script, table_name)
        found = agent.take(table, key)
        if found is None:
            recorded = ", ".join(sorted(table)[:5]) or "none"
            miss = Miss(f"Bayeux {what}", f"not in the recorded session {agent.script.label} "
                                         f"(recorded: {recorded})", [])
            self.misses.append(miss)
            self.on_miss(miss)
            if self.config.strict:
                return {"successful": False, "error": f"404::gwsvcr: {what} is not in the cassette"}
            return None
        number, reply = found
        _MATCHED.get([]).append(number)
        return _reply_fields(reply)

    def on_session_end(self, session: Session, reason: str) -> None:
        agent = session.context
        if isinstance(agent, Agent) and agent.session is session:
            agent.session = None
            if reason == "expired":  # the client is gone: free what it held, keep only its counts
                self._forget(agent)

    # ---------------------------------------------------------------------------------------- summary
    def unused(self) -> list[int]:
        """Recorded requests (REST, handshake, subscribe, publish) that no client asked for."""
        wanted: set[int] = set()
        for s in self.scripts:
            wanted.update(ex.number for exs in s.rest.values() for ex in exs)
            wanted.update(n for n, _ in s.handshakes)
            wanted.update(n for subs in s.subscribes.values() for n, _ in subs)
            wanted.update(n for pubs in s.publishes.values() for n, _ in pubs)
        return sorted(wanted - self.used)

    def status(self) -> dict[str, Any]:
        return {"served": self.served, "clients": self.clients, "live_sessions": len(self.bayeux.sessions),
                "events_released": self.events_released,
                "misses": [m.as_dict() for m in self.misses], "unused": self.unused()}

    def summary(self) -> str:
        return (f"gwsvcr: served {self.served} requests to {self.clients} clients, "
                f"{self.events_released} events released, {len(self.misses)} misses, "
                f"{len(self.unused())} recorded exchanges never used")

    def close(self) -> None:
        for agent in self.by_cookie.values():
            agent.close()
        self.bayeux.close()

