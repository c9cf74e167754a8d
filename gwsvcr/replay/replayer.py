"""The replayer: the cassette answers every request, with the recorded timing, in causal order, per client.

Each recorded session becomes a read-only :class:`~gwsvcr.replay.script.Script`; every live
:class:`~gwsvcr.replay.client.Client` replays its own copy of one, chosen by what it sends
(:mod:`gwsvcr.replay.binding`). What identifies a client is :mod:`gwsvcr.session`'s to decide: every session cookie
the recording set, whatever its name, is issued with the client's own value (never the recorded one), and a request
belongs to the client whose cookie it sends, else (no cookie yet, or a client that keeps none) to a client of its
credential (Basic user, Bearer token, API key) that can still take it, by what it asks (:meth:`Replayer.client_for`).

Timing is the :class:`~gwsvcr.timeline.Timeline`'s; matching is :mod:`gwsvcr.matching`'s. What this module decides is
whose request it is, what answers it, and what a miss says. A reply's events start their clock when the transport
reports that the client got the reply (:attr:`gwsvcr.wire.Served.delivered`).

Failures replay as recorded: a REST or Bayeux error as its recorded answer, an exchange the upstream never answered
as a connection closed without a reply (:func:`~gwsvcr.replay.script.cut_reason`), a failed connect at its
recorded time after its cause (:mod:`gwsvcr.replay.script`); faults on demand strike where
:mod:`gwsvcr.replay.faults` places them. Both are counted; a strict replay whose recorded recovery went unused
fails (:meth:`Replayer.unused_recovery`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gwsvcr import session as sessions
from gwsvcr import wire
from gwsvcr.bayeux import (
    CONNECT,
    DISCONNECT,
    HANDSHAKE,
    Answer,
    BayeuxServer,
    Handled,
    Hooks,
    Message,
    ServerConfig,
    Session,
)
from gwsvcr.cassette import Cassette, Encoded, Exchange, Omitted, Request, Response
from gwsvcr.correlate import Plan, find, substitute
from gwsvcr.live import MISS_HEADER
from gwsvcr.matching import Key, RestMatch, bayeux_key, closest, failure_key
from gwsvcr.replay import faults
from gwsvcr.replay.binding import Binder
from gwsvcr.replay.client import Client, Counters
from gwsvcr.replay.script import Script, build_scripts, cut_reason, reply_fields
from gwsvcr.replay.status import summary_line
from gwsvcr.timeline import Clock, Timeline, Timing, ready

logger = logging.getLogger(__name__)

RECENT_CLIENTS = 16  # cookie-less requests look for their client among this many newest ones of their user
MAX_IDLE_CLIENTS = 20_000


@dataclass
class ReplayConfig:
    timing: Timing = Timing.RECORDED
    speed: float = 1.0
    strict: bool = True
    json_ignore: tuple[str, ...] = ()
    has_upstream: bool = False  # lenient misses go upstream instead of a 404
    session_cookies: tuple[str, ...] = ()  # name the session cookies (default: the cassette header's rules)
    session_headers: tuple[str, ...] = ()  # name the session headers (default: the cassette header's rules)
    ignore_query: tuple[str, ...] = ()  # query parameters left out of REST matching (a cache buster: _)
    match_headers: tuple[str, ...] = ()  # headers REST matching compares
    allow_repeats: bool = True  # off (--no-repeat): a request asked more often than recorded is a miss
    correlate: tuple[str, ...] = ()  # locations of client-made values the recording did not find (--correlate)
    no_correlate: tuple[str, ...] = ()  # locations whose values are not client-made after all (--no-correlate)
    faults: tuple[str, ...] = ()  # faults on demand (gwsvcr.replay.faults), e.g. "unknown-client after op 2"

    def rest_match(self, cassette: Cassette) -> RestMatch:
        """These options together with the cassette header's ``match:`` section."""
        own = RestMatch(self.json_ignore, self.ignore_query, self.match_headers)
        return own.merged(RestMatch.from_section(cassette.header.match))


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


def omitted_reply(number: int, status: int, omitted: Omitted) -> Response:
    """A recorded answer whose body was not kept: a 502 that says so, never an empty body that looks valid."""
    return wire.json_reply(502, {
        "error": f"gwsvcr: exchange {number} was answered {status} with a body of {omitted.size} bytes that was not "
                 "recorded (larger than gwsvcr record --max-body); re-record with a larger --max-body to replay it",
        "recorded": {"exchange": number, "status": status, "size": omitted.size, "sha256": omitted.sha256}},
        [("X-Gwsvcr-Omitted", str(number))])


def connect_timeout_ms(cassette: Cassette) -> int:
    """The replay's advice.timeout (ms): the longest one a successful /meta/connect reply of the cassette advised,
    CometD's default (30 s) when none did. What the replay advises its clients and how long a balancer in front of
    it waits (:func:`longest_wait`) both come from here."""
    advised = [m["advice"].get("timeout") for ex in cassette.exchanges for m in (i.message for i in ex.reply_items())
               if m.get("channel") == CONNECT and m.get("successful") and isinstance(m.get("advice"), dict)]
    return int(max((t for t in advised if isinstance(t, (int, float)) and not isinstance(t, bool)), default=0)
               or 30_000)


def longest_wait(cassette: Cassette, timing: Timing, speed: float) -> float:
    """Seconds the replay of ``cassette`` may take to answer one request: its longest connect hold or recorded
    reply time, as replayed. What a balancer in front of it must be ready to wait for. It reads the recorded
    reply times and connect advice only (``gwsvcr replay --workers``' parent builds no replay scripts)."""
    timeline = Timeline(timing=timing, speed=speed)
    hold = timeline.connect_hold(alone=True, connected=True, queued=False, client_timeout=None,
                                 timeout=connect_timeout_ms(cassette) / 1000)
    return max([hold, *(timeline.scale(ex.ttfb) for ex in cassette.exchanges)])


def _log_miss(miss: Miss) -> None:
    logger.warning("%s", miss.text())


@dataclass(frozen=True)
class Prepared:
    """What a replayer makes of its cassette and its matching and session options before any client comes, the same
    for every replay of that cassette with those options: the replay service keeps it beside the loaded cassette
    for the next mount of that file (``memo`` of :class:`Replayer`), sparing each mount most of its own cost."""

    rules: sessions.SessionRules
    session_cookies: frozenset[str]
    plan: Plan
    match: RestMatch
    message_ignore: tuple[str, ...]
    scripts: list[Script]  # read-only, as every live client uses them
    set_cookies: dict[int, list[tuple[str, str]]]
    timeout_ms: int
    interval_ms: int
    rest_keys: frozenset[Key]
    recorded_keys: list[tuple[Key, int, str, str]]

    @classmethod
    def of(cls, cassette: Cassette, config: ReplayConfig) -> Prepared:
        rules = sessions.SessionRules.from_header(cassette.header.extra).with_overrides(
            config.session_cookies, config.session_headers)
        plan = Plan.of(cassette, config.correlate, config.no_correlate)
        match = config.rest_match(cassette).merged(RestMatch(plan.json_ignore(), plan.ignore_query()))
        scripts = build_scripts(cassette, match, rules, plan) or [Script("empty")]
        return cls(
            rules=rules,
            session_cookies=frozenset(name for ex in cassette.exchanges for name in sessions.server_cookies(ex.response)
                                      if rules.session_cookie(name, (name,))),
            plan=plan, match=match, message_ignore=plan.message_ignore(), scripts=scripts,
            set_cookies={ex.number: [h for h in ex.response.headers if h[0].lower() == "set-cookie"]
                         for ex in cassette.exchanges if ex.response is not None
                         and sessions.server_cookies(ex.response) and wire.bayeux_of(ex.request) is not None},
            timeout_ms=connect_timeout_ms(cassette),
            interval_ms=int(next((s.connect_advice.get("interval") for s in scripts if s.connect_advice), 0) or 0),
            rest_keys=frozenset(key for script in scripts for key in script.rest),
            recorded_keys=[(match.key(ex.request), ex.number, ex.session, f"{ex.request.method} {ex.request.path}")
                           for ex in cassette.exchanges if wire.bayeux_of(ex.request) is None])

    @staticmethod
    def key(config: ReplayConfig) -> tuple[tuple[str, ...], ...]:
        """The options it depends on."""
        return (config.json_ignore, config.ignore_query, config.match_headers, config.session_cookies,
                config.session_headers, config.correlate, config.no_correlate)


MEMO_SIZE = 8  # Prepared kept per cassette, one per set of options, the oldest dropped first


class Replayer(Hooks[Client]):
    def __init__(self, cassette: Cassette, config: ReplayConfig | None = None,
                 on_miss: Callable[[Miss], None] = _log_miss, clock: Clock | None = None,
                 show: Callable[[str], None] | None = None, memo: dict[Any, Prepared] | None = None) -> None:
        """``memo``: where the :class:`Prepared` of ``cassette`` are kept for the next replayer of the same cassette
        (the replay service's; it lives as long as that cassette is loaded)."""
        self.cassette = cassette
        self.show = show  # the live view: a line per event released (gwsvcr.live)
        self.config = config or ReplayConfig()
        self.timeline = Timeline(clock, timing=self.config.timing, speed=self.config.speed)
        options = Prepared.key(self.config)
        prepared = memo.get(options) if memo is not None else None
        if prepared is None:
            prepared = Prepared.of(cassette, self.config)
            if memo is not None:
                if len(memo) >= MEMO_SIZE:
                    del memo[next(iter(memo))]
                memo[options] = prepared
        self.rules = prepared.rules
        self.session_cookies = prepared.session_cookies
        self.plan = prepared.plan
        self.match = prepared.match
        self._message_ignore = prepared.message_ignore
        self.scripts = prepared.scripts
        self.faults = faults.Plan(self.config.faults, self.scripts)  # FaultError: a spec that cannot strike here
        self._set_cookies = prepared.set_cookies
        self.bayeux: BayeuxServer[Client] = BayeuxServer(
            self, ServerConfig(timeout_ms=prepared.timeout_ms, interval_ms=prepared.interval_ms,
                               max_interval_ms=prepared.timeout_ms + 30_000), self.timeline)
        self.counters = Counters()
        self.by_cookie: dict[str, Client] = {}  # insertion-ordered: the oldest idle ones are evicted first
        # newest per credential, at most RECENT_CLIENTS (a list: a deque with a maxlen costs 600 bytes more, and an
        # agent logged in as itself has one of its own)
        self._recent: dict[sessions.Identifier | None, list[Client]] = {}
        self.used: set[int] = set()
        self.binding = Binder(self.scripts, self.timeline, self.used, allow_repeats=self.config.allow_repeats,
                              show=show)
        self.misses: list[Miss] = []
        self.on_miss = on_miss
        self._rest_keys = prepared.rest_keys
        self._encoded: dict[int, Encoded] = {}  # recorded JSON replies sent as they are, by exchange number
        self._recorded_keys = prepared.recorded_keys

    # ------------------------------------------------------------------------------------------- clients
    def _new_client(self, credential: sessions.Identifier | None, first: tuple[str, Any]) -> Client:
        """A client for a request no client takes; ``first``: (table, key) of that request, which places it among
        the sessions that hold it (a browser's page and scripts are each a cookie-less session of their own)."""
        pool = self.binding.pool(credential, *first)
        self.counters.clients += 1
        client = Client(self.counters.clients, pool[0], credential, self.timeline, self.counters,
                        self.config.allow_repeats, self.show, self.plan if self.plan.locations else None,
                        self.faults.of)
        self.binding.place(client, pool)
        self.by_cookie[client.cookie] = client
        recent = self._recent.setdefault(credential, [])
        recent.append(client)
        if len(recent) > RECENT_CLIENTS:
            del recent[0]
        if len(self.by_cookie) > MAX_IDLE_CLIENTS:
            self._evict_idle()
        return client

    def _evict_idle(self) -> None:
        """Clients that never came back (no CometD session) are forgotten, oldest first, so a load test of
        cookie-less requests cannot grow memory without bound."""
        for cookie in list(self.by_cookie)[: len(self.by_cookie) - MAX_IDLE_CLIENTS // 2]:
            client = self.by_cookie[cookie]
            if not client.live:
                self._forget(client)

    def _forget(self, client: Client) -> None:
        """Free a client that is gone: its timers, cursors, cookie, and its place among its user's newest."""
        client.close()
        if self.by_cookie.pop(client.cookie, None) is not None:
            self.binding.forget(client)
        recent = self._recent.get(client.credential)
        if recent is not None:
            if client in recent:
                recent.remove(client)
            if not recent:
                del self._recent[client.credential]

    def _cookie_client(self, request: Request) -> Client | None:
        """The client whose session cookie (one we issued) the request sends."""
        for cookie in sessions.sent_cookies(request, self.rules, self.session_cookies):
            if cookie.value in self.by_cookie:
                return self.by_cookie[cookie.value]
        return None

    def _alike(self, request: Request) -> list[Client]:
        """The clients a request may come from: the one whose cookie it sends, else every recent one of its
        credential (Basic user, Bearer token, API key), newest first."""
        client = self._cookie_client(request)
        if client is not None:
            return [client]
        return list(reversed(self._recent.get(sessions.credential(request, self.rules), ())))

    def client_for(self, request: Request, table: str, key: Any) -> Client:
        """The live client a request belongs to: by any session cookie we issued. A request without one (a fresh
        client's first ones, or every one of a client that keeps no cookies) goes by what it asks, among the
        clients of its credential that can still take it (a handshake: those with no live CometD session): first
        one whose CometD session is not over, then one whose next recorded request of that kind this is, then
        the oldest, so that two clients of one user running the same script each keep their own session. None
        fits: a new client, among the recorded sessions that hold the request."""
        client = self._cookie_client(request)
        if client is not None:
            return client
        credential = sessions.credential(request, self.rules)
        fitting = [c for c in self._recent.get(credential, ()) if self.binding.can_take(c, table, key)
                   and (table != "handshake" or not c.live)]
        if fitting:
            return min(fitting, key=lambda c: (c.gone, not c.next_is(table, key), c.number))
        return self._new_client(credential, (table, key))

    def _client_of(self, messages: list[Message]) -> Client | None:
        for m in messages:
            session = self.bayeux.sessions.get(str(m.get("clientId")))
            if session is not None:
                return session.context
        return None

    # ----------------------------------------------------------------------------------------- requests
    def handle(self, request: Request) -> Coroutine[Any, Any, wire.Served]:
        """The reply for a live request (await it); a response of None sends it upstream (lenient with an
        upstream). Not a coroutine itself but the one that answers: a held connect keeps one frame less. Events
        and holds whose time came while the process was busy go first (:meth:`Clock.run_due`): as if the loop had
        run their timers in time, not after the requests it read meanwhile."""
        self.timeline.clock.run_due()
        self.counters.served += 1
        bayeux = wire.bayeux_of(request)
        fault = self.faults.target(request, bayeux.messages if bayeux is not None else None)
        if fault is not None:
            return ready(self._fault_answer(fault))
        if bayeux is not None:
            return self._bayeux(request, bayeux)
        return self._rest(request)

    def _fault_answer(self, fault: faults.Fault) -> wire.Served:
        self.counters.faults_injected += 1
        if fault.kind == faults.RESET:
            return wire.Served(None, cut=f"fault: {fault.spec}")
        return wire.Served(wire.json_reply(fault.status, {"error": f"gwsvcr fault: {fault.spec}"},
                                           [(faults.FAULT_HEADER, fault.spec)]))

    async def _rest(self, request: Request) -> wire.Served:
        key = self.match.key(request)
        reused: dict[str, str] = {}  # live -> recorded values the client made and sends again
        maker = None  # the client that made them: the request is its own
        if key not in self._rest_keys and self.plan.locations:
            as_recorded, reused, maker = self._as_recorded(request)
            key = self.match.key(as_recorded)
        if key not in self._rest_keys:
            return wire.Served(self._miss(request, key))  # before choosing a client: a miss creates none
        client = maker or self.client_for(request, "rest", key)
        ex = self.binding.take(client, "rest", key)
        if ex is None:
            label = client.script.label
            recorded = len(client.script.rest.answers.get(key, ()))
            reason = (f"recorded {recorded} time(s) in session {label}, all used, and --no-repeat answers no more"
                      if recorded else f"not in the recorded session {label} of this client")
            return wire.Served(self._miss(request, key, reason))
        if ex.number in self.plan.requests:
            client.remember(ex.number, request, self.plan.locations)
        number = ex.number
        served = await self._recorded_answer(ex, client)
        response = served.response
        if reused and response is not None and response.kind == "json":  # its reply names them too: live values
            response.body = substitute(response.body, [(rec, live, tuple(find(rec, response.body)))
                                                       for live, rec in reused.items()])
        served.delivered = lambda at: self.binding.fire(client, number, at)
        return served

    def _as_recorded(self, request: Request) -> tuple[Request, dict[str, str], Client | None]:
        """A request that sends back values its client made before (a subscription id in a DELETE's path) with
        the recorded ones instead, so that it matches; those values (live -> recorded); and that client, which
        the values name, whatever else may send alike requests. The request itself when no client made any."""
        parts = request.path.split("/")
        sent = {*parts, *(v for _, v in request.query)}
        for client in self._alike(request):
            recorded = {}
            for (step, location), live in client.made.items():
                value = self.plan.recorded(client.script.number(step) if step is not None else None, location)
                if value is not None and live != value and str(live) in sent:
                    recorded[str(live)] = str(value)
            if recorded:
                return Request(headers=request.headers, kind=request.kind, body=request.body, method=request.method,
                               path="/".join(recorded.get(part, part) for part in parts),
                               query=[(k, recorded.get(v, v)) for k, v in request.query]), recorded, client
        return request, {}, None

    async def _recorded_answer(self, ex: Exchange, client: Client) -> wire.Served:
        """A recorded exchange's answer after its recorded time: its response, or, when there was none, the
        connection closed (a recorded reset, a stall the client gave up on) or the 502 the client got."""
        self.used.add(ex.number)
        if ex.number in client.script.failed:
            self.counters.failures_replayed += 1
        await self.timeline.latency(ex.ttfb if ex.response is not None else ex.ttlb)
        return self._answer_of(ex, client)

    def _answer_of(self, ex: Exchange, client: Client) -> wire.Served:
        if ex.response is None:
            reason = cut_reason(ex.error)
            if reason is not None:
                return wire.Served(None, cut=reason)
            return wire.Served(wire.json_reply(502, {"error": f"recorded failure: {ex.error}"}))
        if ex.response.omitted is not None:
            return wire.Served(omitted_reply(ex.number, ex.response.status, ex.response.omitted))
        body = ex.response.body
        marks = client.script.reply_marks.get(ex.number)
        if marks and client.plan is not None:
            body = client.plan.apply(body, marks, client.live_value)
        elif ex.response.kind == "json" and type(body) is dict:  # as recorded: encoded once for every client
            encoded = self._encoded.get(ex.number)
            if encoded is None:
                encoded = self._encoded[ex.number] = Encoded(body)
            body = encoded
        return wire.Served(Response(headers=self._cookies_for(client, ex.response.headers), kind=ex.response.kind,
                                    body=body, status=ex.response.status))

    def _cookies_for(self, client: Client, recorded: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Recorded headers with every session cookie the server set carrying the client's own value instead."""
        headers = []
        for name, value in recorded:
            if name.lower() == "set-cookie":
                cookie, _, attributes = value.partition(";")
                cookie_name = cookie.split("=", 1)[0].strip()
                if cookie_name in self.session_cookies:
                    value = f"{cookie_name}={client.cookie}" + (f";{attributes}" if attributes else "")
                elif cookie_name == "BAYEUX_BROWSER":
                    continue  # never replay a recorded browser id: clients would share it
            headers.append((name, value))
        return headers

    def _miss(self, request: Request, key: Key, reason: str = "nothing recorded matches") -> Response | None:
        near = closest(key, self._recorded_keys)
        matching = self.match.describe()
        miss = Miss(f"{request.method} {request.path}", f"{reason} ({matching})" if matching else reason,
                    [c.as_dict() for c in near])
        self.misses.append(miss)
        self.on_miss(miss)
        if not self.config.strict and self.config.has_upstream:
            return None
        return Response(headers=[("Content-Type", "application/json"), (MISS_HEADER, "1")], kind="json",
                        body=miss.as_dict(), status=500 if self.config.strict else 404)

    def _bayeux(self, request: Request, bayeux: wire.BayeuxRequest) -> Coroutine[Any, Any, wire.Served]:
        """The HTTP answer to Bayeux messages (await it). A held connect keeps one frame of the replayer's
        (:meth:`_served`) and its messages, not the headers and all of the request they came in."""
        owner = self._client_of(bayeux.messages)
        if owner is not None and owner.script.failures:
            failed = self.binding.take(owner, "failure", failure_key(bayeux.messages))
            if failed is not None:  # the server answered this with an error page: so does the replay
                return self._recorded_answer(failed, owner)
        return self._served(*self._handle(request, bayeux.messages), bayeux.jsonp)

    async def _served(self, owner: Client | None, handling: Coroutine[Any, Any, Handled], jsonp: str | None
                      ) -> wire.Served:
        return self._frame(owner, await handling).served(jsonp)

    async def bayeux_replies(self, upgrade: Request, messages: list[Message]) -> wire.Frame:
        """The replies to the Bayeux messages of a WebSocket frame; ``upgrade`` (the upgrade request) tells whose
        session it is. A fault aimed at one of its channels closes the socket."""
        fault = self.faults.target(upgrade, messages, channels_only=True)
        if fault is not None:
            self.counters.faults_injected += 1
            return wire.Frame([], cut=f"fault: {fault.spec}")
        owner, handling = self._handle(upgrade, messages)
        return self._frame(owner, await handling)

    def _handle(self, request: Request, messages: list[Message]) -> tuple[Client | None, Coroutine[Any, Any, Handled]]:
        """Bayeux messages, whatever carried them, handed to the core: whose they are, and what answers them."""
        client = None
        if any(m.get("channel") == HANDSHAKE for m in messages):
            client = self.client_for(request, "handshake", HANDSHAKE)
        owner = self._client_of(messages) or client  # before: a failure may end the session
        return owner, self.bayeux.handle(messages, client)

    def _frame(self, owner: Client | None, handled: Handled) -> wire.Frame:
        """The replies the core answered with, and what their delivery sets off."""
        self.used.update(handled.sources)
        if owner is None:
            return wire.Frame(handled.replies)
        self.counters.failures_replayed += sum(1 for number in handled.sources if number in owner.script.failed)
        if handled.instead is not None:  # a connect failed with something else than Bayeux
            if isinstance(handled.instead, Exchange):
                served = self._answer_of(handled.instead, owner)
                return wire.Frame([], instead=served.response, cut=served.cut)
            return wire.Frame([], cut=str(handled.instead))
        if not handled.sources:
            return wire.Frame(handled.replies)
        sources = handled.sources

        def delivered(at: float) -> None:
            for number in sources:
                self.binding.fire(owner, number, at)

        # the session cookies the recorded replies set (BAYEUX_BROWSER on a handshake), with the client's value
        cookies = [h for number in sources for h in self._cookies_for(owner, self._set_cookies.get(number, []))]
        return wire.Frame(handled.replies, delivered, cookies)

    # ------------------------------------------------------------------------------------ Bayeux hooks
    def on_handshake(self, session: Session[Client], message: Message) -> Answer | None:
        client = session.context
        client.handshakes += 1
        recorded = self.binding.take(client, "handshake", HANDSHAKE)
        if recorded is None:
            client.attach(session)
            return None
        number, reply = recorded
        fields = reply_fields(reply)
        if fields.get("successful", True):
            client.attach(session)
        return Answer(fields, number)

    def on_connect(self, session: Session[Client], message: Message) -> Answer | None:
        client = session.context
        client.connects += 1
        client.flush()  # events that waited for a subscription this session now has
        advice = client.script.connect_advice
        return Answer({"advice": advice}) if advice else None  # the core copies it into the reply (after any hold)

    def recorded_connect(self, session: Session[Client]) -> tuple[float | None, bool] | None:
        """The recorded hold of this connect: the client's Nth connect, over all its sessions, takes the Nth."""
        client = session.context
        connects = client.script.connects
        return connects[client.connects - 1] if client.connects <= len(connects) else None

    def on_subscribe(self, session: Session[Client], message: Message, subscription: str) -> Answer | None:
        client = session.context
        return self._recorded(client, "subscribe", subscription, f"subscribe {subscription}")

    def on_publish(self, server: BayeuxServer[Client], session: Session[Client], message: Message) -> Answer | None:
        client = session.context
        answer = self._recorded(client, "publish", bayeux_key(message, self._message_ignore),
                                f"publish {message.get('channel')}")
        if answer is not None and answer.source in self.plan.requests:
            client.remember(answer.source, Request(kind="messages", body=[message]), self.plan.locations)
        return answer

    def on_disconnect(self, session: Session[Client], message: Message) -> Answer | None:
        client = session.context
        found = self.binding.take(client, "disconnect", DISCONNECT)
        return None if found is None else Answer(reply_fields(found[1]), found[0])

    def _recorded(self, client: Client, table: str, key: str, what: str) -> Answer | None:
        found = self.binding.take(client, table, key)
        answers = client.script.tables[table].answers.get(key)
        if found is None and client.recovering and answers:  # a recovery beyond the recorded: as the last
            found = answers[-1]
        if found is None:
            recorded = ", ".join(sorted(client.script.tables[table].keys())[:5]) or "none"
            miss = Miss(f"Bayeux {what}", f"not in the recorded session {client.script.label} "
                                         f"(recorded: {recorded})", [])
            self.misses.append(miss)
            self.on_miss(miss)
            if self.config.strict:
                return Answer({"successful": False, "error": f"404::gwsvcr: {what} is not in the cassette"})
            return None
        number, reply = found
        return Answer(reply_fields(reply), number)

    def on_session_end(self, session: Session[Client], reason: str) -> None:
        client = session.context
        if client.session is session:
            client.detach(session)
            if reason == "expired":  # the client is gone: free what it held, keep only its counts
                self._forget(client)

    # ---------------------------------------------------------------------------------------- summary
    def unused(self) -> list[int]:
        """Recorded requests (REST, handshake, subscribe, publish) that no client asked for, and recorded connect
        failures no client got."""
        wanted: set[int] = set()
        for s in self.scripts:
            wanted |= s.requests() | {f.exchange.number for f in s.timeline_failures()}
        return sorted(wanted - self.used)

    def unused_recovery(self) -> dict[int, str]:
        """Recorded connect failures no client got, and the recovery after them no client made (the handshake
        and subscribes after a failure that ended the session): the field failure did not replay."""
        return {number: what for s in self.scripts for number, what in sorted(s.recovery.items())
                if number not in self.used}

    def unapplied_faults(self) -> list[str]:
        return [f.spec for f in self.faults.faults if not f.applied]

    @property
    def failed(self) -> bool:
        """A strict replay that missed, left recorded recovery unused or never struck a fault it was given."""
        return self.config.strict and bool(self.misses or self.unused_recovery() or self.unapplied_faults())

    def status(self) -> dict[str, Any]:
        return {"served": self.counters.served, "clients": self.counters.clients,
                "live_sessions": len(self.bayeux.sessions), "events_released": self.counters.events_released,
                "released_late": self.counters.released_late, "late_max_ms": round(self.counters.late_max * 1000, 1),
                "failures_replayed": self.counters.failures_replayed,
                "faults_injected": self.counters.faults_injected,
                "misses": [m.as_dict() for m in self.misses], "unused": self.unused(),
                "unused_recovery": [{"exchange": n, "what": what} for n, what in self.unused_recovery().items()],
                "faults": self.faults.status(), "sessions": self.bindings(), "cassette_sha256": self.cassette.sha256}

    def bindings(self) -> dict[str, list[int]]:
        """Which live clients replay each recorded session (by client number; ``undecided``: clients that more
        than one session still fits)."""
        out: dict[str, list[int]] = {s.label: [] for s in self.scripts}
        for client in self.by_cookie.values():
            out.setdefault("undecided" if client.undecided else client.script.label, []).append(client.number)
        return out

    def summary(self) -> str:
        return summary_line(self.status())

    def close(self) -> None:
        for client in self.by_cookie.values():
            client.close()
        self.bayeux.close()
