"""A recorded session indexed for replay: its requests in typed match tables, its connects' holds, its events and
its connect failures by the request that caused them, what it did to recover. Built once per cassette; read-only
afterwards, shared by every live client.

A connect that failed (a Bayeux ``successful: false``, an HTTP error instead of Bayeux, a connection the server
closed) is not answered by the connect that happens to have its number in the replay: like an event, it falls
due its recorded delay after the reply of its cause (the last request of its session, other than a connect, whose
reply completed before the failure reached the client) and is answered to the connect outstanding then, or the
next one. The handshake and subscribes that followed a failure that ended the session are its *recovery*: a strict
replay in which they, or the failure, went unused fails.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import session as sessions
from gwsvcr import wire
from gwsvcr.bayeux import CONNECT, CORE_REPLY_FIELDS, DISCONNECT, HANDSHAKE, SUBSCRIBE, Message, ends_session, is_meta
from gwsvcr.cassette import Cassette, Encoded, Exchange, Mark, json_copy
from gwsvcr.correlate import Plan
from gwsvcr.matching import Key, RestMatch, Table, bayeux_key, failure_key

# A recorded Bayeux reply answered from the cassette: the number of its exchange and the reply message.
Recorded = tuple[int, Message]
# One answer a client takes, the same in every session that has it: (table name, key, how many times the client
# took that key before). What a live client was answered is a list of steps, whichever session answered them.
Step = tuple[str, Any, int]
# Where an event stands in its session, in terms every session shares: what it follows (the step that caused it,
# or for an event no request caused, the place of the event before it) and its rank there. Two sessions that
# answered a client alike push, at the same place, the event each recorded there.
Place = tuple[Any, int]
# What the recorder writes when the client itself left before the reply (an aborted long-poll): not a failure; nor
# is a WebSocket that closed before the reply in a recording that did not say who closed it.
NOT_FAILURES = ("client gone", "WebSocket closed before the reply")
_NOT_THE_SERVERS = ("certificate", "tls", "ssl")  # the recording proxy's own trouble reaching the upstream
_READS = ("GET", "HEAD", "OPTIONS")  # REST requests that are not operations


@dataclass(order=True)
class RecordedEvent:
    order: int  # recorded order: among events due at once, the earlier recorded goes first
    message: Message = field(compare=False)
    delay: float = field(compare=False, default=0.0)  # seconds after the cause's reply reached the client
    cause: int | None = field(compare=False, default=None)  # the recorded exchange that caused it
    after: str | None = field(compare=False, default=None)  # what that exchange was, e.g. StopCallRecording
    marks: tuple[Mark, ...] = field(compare=False, default=())  # client-made values it carries (gwsvcr.correlate)
    index: int = field(compare=False, default=0)  # its place among the session's events, from 1 (faults name it)


@dataclass(order=True)
class RecordedFailure:
    """A connect that failed when recorded, replayed at its recorded time after its cause."""

    order: int
    exchange: Exchange = field(compare=False)  # the failed connect's exchange: what answers, when not Bayeux
    fields: Message = field(compare=False, default_factory=dict)  # the Bayeux failure reply's fields
    ends: bool = field(compare=False, default=False)  # the session is over (unknown client, re-handshake)
    bayeux: bool = field(compare=False, default=True)  # False: an HTTP error or a closed connection instead
    delay: float = field(compare=False, default=0.0)
    cause: int | None = field(compare=False, default=None)
    after: str | None = field(compare=False, default=None)
    client_id: str | None = field(compare=False, default=None)  # the recorded clientId, in Faye's error text

    def describe(self) -> str:
        if self.bayeux:
            return f"{CONNECT} failed: {self.fields.get('error', 'successful: false')}"
        if self.exchange.response is not None:
            return f"{CONNECT} answered HTTP {self.exchange.response.status}"
        return f"{CONNECT}: {self.exchange.error}"


@dataclass
class Script:
    """What one recorded session did."""

    label: str
    credentials: set[sessions.Identifier] = field(default_factory=set)  # Basic users, Bearer tokens, API keys
    rest: Table[Key, Exchange] = field(default_factory=lambda: Table("rest"))
    handshakes: Table[str, Recorded] = field(default_factory=lambda: Table("handshake"))
    subscribes: Table[str, Recorded] = field(default_factory=lambda: Table("subscribe"))
    publishes: Table[str, Recorded] = field(default_factory=lambda: Table("publish"))
    disconnects: Table[str, Recorded] = field(default_factory=lambda: Table("disconnect"))
    # Bayeux requests the server answered with something else (an HTML 500): replayed as recorded
    failures: Table[str, Exchange] = field(default_factory=lambda: Table("failure"))
    connects: list[tuple[float | None, bool]] = field(default_factory=list)  # (hold, carried events), in order
    connect_advice: dict[str, Any] = field(default_factory=dict)
    events_by_cause: dict[int | None, list[RecordedEvent]] = field(default_factory=dict)
    failures_by_cause: dict[int | None, list[RecordedFailure]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)  # exchanges whose recorded answer is a failure
    recovery: dict[int, str] = field(default_factory=dict)  # failed connects and the recovery after them
    operations: list[tuple[int, str]] = field(default_factory=list)  # (exchange, summary) of REST requests but
    # reads (GET, HEAD, OPTIONS), in order: what faults call op 1, op 2, ...
    events: int = 0
    # Events no request caused: each released its delay after the event before it (by that event's order), or,
    # with no event before it, after the client's first reply.
    after_event: dict[int, list[RecordedEvent]] = field(default_factory=dict)
    unanchored: list[RecordedEvent] = field(default_factory=list)
    reply_marks: dict[int, tuple[Mark, ...]] = field(default_factory=dict)  # client-made values in REST replies
    position: int = 0  # the session's place in the cassette: ties between sessions go to the earlier
    tables: dict[str, Table[Any, Any]] = field(init=False, repr=False)
    _steps: dict[int, Step] | None = field(default=None, init=False, repr=False)
    _orders: dict[str, list[tuple[Any, int]]] = field(default_factory=dict, init=False, repr=False)
    _places: dict[int, Place] | None = field(default=None, init=False, repr=False)  # event order -> place
    _at_place: dict[Place, RecordedEvent] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tables = {t.name: t for t in (self.rest, self.handshakes, self.subscribes, self.publishes,
                                           self.disconnects, self.failures)}

    def answer(self, step: Step) -> Any:
        """The recorded answer to ``step`` (the last one again past the recorded count), or None."""
        name, key, index = step
        answers = self.tables[name].answers.get(key)
        return answers[min(index, len(answers) - 1)] if answers else None

    def number(self, step: Step) -> int | None:
        """The recorded exchange that answers ``step`` here."""
        return _number(self.answer(step))

    def steps(self) -> dict[int, Step]:
        """Exchange number -> the step it answers, for every recorded request, in recorded order; worked out
        when first asked (only a cassette of several sessions needs it)."""
        if self._steps is None:
            found: dict[int, Step] = {}
            for name, table in self.tables.items():
                for key, answers in table.answers.items():
                    for index, answer in enumerate(answers):
                        found.setdefault(_number(answer) or 0, (name, key, index))
            self._steps = dict(sorted(found.items()))
        return self._steps

    def order(self, table: str) -> list[tuple[Any, int]]:
        """The requests of ``table`` in recorded order, as (key, how many times that key came before)."""
        found = self._orders.get(table)
        if found is None:
            numbered = [(_number(answer) or 0, key, index) for key, answers in self.tables[table].answers.items()
                        for index, answer in enumerate(answers)]
            found = self._orders[table] = [(key, index) for _, key, index in sorted(numbered, key=lambda n: n[0])]
        return found

    def place(self, event: RecordedEvent) -> Place | None:
        """Where ``event`` (one of this session's) stands."""
        return self._placed()[0].get(event.order)

    def at_place(self, place: Place | None) -> RecordedEvent | None:
        """This session's event at ``place``, if it has one."""
        return None if place is None else self._placed()[1].get(place)

    def _placed(self) -> tuple[dict[int, Place], dict[Place, RecordedEvent]]:
        """Event order -> place and back; worked out when first asked, as :meth:`steps` is."""
        if self._places is None:
            steps = self.steps()
            self._places = {}
            for cause, events in self.events_by_cause.items():
                after = steps.get(cause) if cause is not None else None
                self._index(events, after if after is not None else ("exchange", cause))
            self._index(self.unanchored, ("none",))
            for before in sorted(self.after_event):  # an event before another comes first in recorded order
                self._index(self.after_event[before], ("after", self._places.get(before)))
        return self._places, self._at_place

    def _index(self, events: list[RecordedEvent], after: Any) -> None:
        assert self._places is not None
        for rank, event in enumerate(events):
            self._places[event.order] = (after, rank)
            self._at_place[(after, rank)] = event

    def requests(self) -> set[int]:
        """The numbers of the recorded requests a client may ask for (REST, handshake, subscribe, publish)."""
        numbers = {ex.number for ex in self.rest.values()}
        for table in (self.handshakes, self.subscribes, self.publishes):
            numbers.update(number for number, _ in table.values())
        return numbers

    def timeline_failures(self) -> list[RecordedFailure]:
        return [f for failures in self.failures_by_cause.values() for f in failures]


def _number(answer: Any) -> int | None:
    if answer is None:
        return None
    return answer.number if isinstance(answer, Exchange) else int(answer[0])


def reply_fields(reply: Message) -> Message:
    """Recorded reply fields worth replaying: advice (minus artifacts), errors, ext (minus per-run parts). The
    fields that tie a reply to its request, and the negotiation, are the Bayeux core's."""
    out = {k: json_copy(v) for k, v in reply.items()
           if k not in CORE_REPLY_FIELDS and k not in ("data", "successful", "supportedConnectionTypes")}
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
    return out


def cut_reason(error: str | None) -> str | None:
    """Why a recorded exchange without a reply is replayed as a closed connection (the upstream reset or closed
    it, refused it, stalled until the client gave up); None when the failure was the recording proxy's own (TLS to
    the upstream): that is replayed as the 502 the client got."""
    text = (error or "").lower()
    if any(word in text for word in _NOT_THE_SERVERS):
        return None
    return f"recorded: {error}"


def _http_failure(ex: Exchange) -> bool:
    """A Bayeux exchange the server failed at the HTTP level: answered with something else than Bayeux, or not at
    all (not the client's own leaving)."""
    if ex.response is not None:
        return ex.response.kind != "messages"
    return ex.error is not None and not ex.error.startswith(NOT_FAILURES)


@dataclass
class _Builder:
    """Walks one cassette's exchanges in recorded order, script by script."""

    rest_key: Any
    rules: sessions.SessionRules
    plan: Plan  # the cassette's client-made values: marks, and paths left out of publish matching
    scripts: dict[str, Script] = field(default_factory=dict)
    order: itertools.count[int] = field(default_factory=itertools.count)
    # per script: (reply completed, exchange, summary) of every request but connects, and failures to place
    done: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)
    placed: list[tuple[Script, RecordedFailure, float]] = field(default_factory=list)
    last_event: dict[str, int] = field(default_factory=dict)  # per script: the order of its latest event

    def add(self, ex: Exchange) -> None:
        label = ex.session if ex.episode == 1 else f"{ex.session}@{ex.episode}"
        script = self.scripts.get(label)
        if script is None:
            script = self.scripts[label] = Script(label, position=len(self.scripts))
        credential = sessions.credential(ex.request, self.rules)
        if credential is not None:
            script.credentials.add(credential)
        bayeux = wire.bayeux_of(ex.request)
        connects_only = bayeux is not None and all(m.get("channel") == CONNECT for m in bayeux.messages)
        if not connects_only and ex.ttlb is not None:
            self.done.setdefault(label, []).append((ex.start + ex.ttlb, ex.number, wire.request_summary(ex.request)))
        if bayeux is None:
            script.rest.add(self.rest_key(ex.request), ex)
            if ex.number in self.plan.reply:
                script.reply_marks[ex.number] = self.plan.reply[ex.number]
            if ex.request.method.upper() not in _READS:
                script.operations.append((ex.number, wire.request_summary(ex.request)))
            if ex.response is None or ex.response.status >= 400:
                script.failed.add(ex.number)
            return
        if _http_failure(ex) and connects_only:
            self._failure(script, ex, RecordedFailure(next(self.order), ex, bayeux=False))
            return
        if _http_failure(ex):  # answered as recorded to the request that asks the same
            script.failures.add(failure_key(bayeux.messages), ex)
            script.failed.add(ex.number)
            return
        self._messages(script, ex, bayeux.messages)

    def _messages(self, script: Script, ex: Exchange, messages: list[Message]) -> None:
        replies = {str(item.message.get("id")): item.message for item in ex.reply_items()
                   if not item.is_event and "id" in item.message}
        for m in messages:
            reply = replies.get(str(m.get("id")), {})
            if reply.get("successful") is False:
                script.failed.add(ex.number)
            channel = m.get("channel")
            if channel == HANDSHAKE:
                script.handshakes.add(HANDSHAKE, (ex.number, reply))
            elif channel == SUBSCRIBE:
                subs = m.get("subscription")
                for sub in subs if isinstance(subs, list) else [subs]:
                    script.subscribes.add(str(sub), (ex.number, reply))
            elif channel == DISCONNECT:
                script.disconnects.add(DISCONNECT, (ex.number, reply))
            elif channel == CONNECT and reply.get("successful") is False:
                failure = RecordedFailure(next(self.order), ex, reply_fields(reply), ends_session(reply),
                                          client_id=str(m.get("clientId")))
                self._failure(script, ex, failure)
            elif channel == CONNECT:
                carried = any(item.is_event for item in ex.reply_items())
                script.connects.append((ex.ttfb, carried))
                if reply.get("successful") and isinstance(reply.get("advice"), dict):
                    script.connect_advice = reply_fields(reply).get("advice", {})
            elif isinstance(channel, str) and not is_meta(channel):
                script.publishes.add(bayeux_key(m, self.plan.message_ignore()), (ex.number, reply))
        for i, item in enumerate(ex.reply_items()):
            if item.is_event:
                script.events += 1
                marks = self.plan.events.get((ex.number, i), ())
                # Sent as recorded (no client-made value in it, no clientId to set): one object and its bytes for
                # every client that replays it (Client._release), neither copied nor encoded per client.
                message = item.message if marks or "clientId" in item.message else Encoded(item.message)
                event = RecordedEvent(next(self.order), message, item.delay or 0.0, item.cause, item.after, marks,
                                      script.events)
                if item.cause is not None:
                    script.events_by_cause.setdefault(item.cause, []).append(event)
                elif script.label in self.last_event:
                    script.after_event.setdefault(self.last_event[script.label], []).append(event)
                else:
                    script.unanchored.append(event)
                self.last_event[script.label] = event.order

    def _failure(self, script: Script, ex: Exchange, failure: RecordedFailure) -> None:
        """Placed once every exchange is known: its cause may be a request that started after it."""
        script.failed.add(ex.number)
        script.recovery[ex.number] = failure.describe()
        waited = ex.ttfb if ex.ttfb is not None else ex.ttlb
        self.placed.append((script, failure, ex.start + (waited or 0.0)))

    def finish(self) -> list[Script]:
        for script, failure, at in self.placed:
            done = sorted(self.done.get(script.label, ()))
            i = bisect.bisect_right(done, (at, float("inf"), ""))
            if i:
                end, failure.cause, failure.after = done[i - 1]
                failure.delay = max(0.0, at - end)
            script.failures_by_cause.setdefault(failure.cause, []).append(failure)
            if failure.ends:
                self._recovery(script, failure.exchange.number)
        return list(self.scripts.values())

    @staticmethod
    def _recovery(script: Script, failed: int) -> None:
        """The handshake after a failure that ended the session, and the subscribes of the session it began."""
        handshakes = sorted(number for number, _ in script.handshakes.values())
        after = [n for n in handshakes if n > failed]
        if not after:
            return
        start, end = after[0], after[1] if len(after) > 1 else float("inf")
        script.recovery[start] = HANDSHAKE
        for sub in script.subscribes:
            for number, _ in script.subscribes.answers[sub]:
                if start <= number < end:
                    script.recovery[number] = f"{SUBSCRIBE} {sub}"


def build_scripts(cassette: Cassette, match: RestMatch | None = None,
                  rules: sessions.SessionRules = sessions.DEFAULT_RULES, plan: Plan | None = None) -> list[Script]:
    builder = _Builder((match or RestMatch()).key, rules, plan or Plan())
    for ex in sorted(cassette.exchanges, key=lambda e: (e.episode, e.start, e.number)):
        builder.add(ex)
    return builder.finish()
