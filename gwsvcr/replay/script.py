"""A recorded session indexed for replay: its requests in typed match tables, its connects' holds, its events by
the request that caused them. Built once per cassette; read-only afterwards, shared by every live client."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import session as sessions
from gwsvcr import wire
from gwsvcr.bayeux import CONNECT, CORE_REPLY_FIELDS, HANDSHAKE, SUBSCRIBE, Message
from gwsvcr.cassette import Cassette, Exchange, Mark
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


@dataclass(order=True)
class RecordedEvent:
    order: int  # recorded order: among events due at once, the earlier recorded goes first
    message: Message = field(compare=False)
    delay: float = field(compare=False, default=0.0)  # seconds after the cause's reply reached the client
    cause: int | None = field(compare=False, default=None)  # the recorded exchange that caused it
    after: str | None = field(compare=False, default=None)  # what that exchange was, e.g. StopCallRecording
    marks: tuple[Mark, ...] = field(compare=False, default=())  # client-made values it carries (gwsvcr.correlate)


@dataclass
class Script:
    """What one recorded session did."""

    label: str
    credentials: set[sessions.Identifier] = field(default_factory=set)  # Basic users, Bearer tokens, API keys
    rest: Table[Key, Exchange] = field(default_factory=lambda: Table("rest"))
    handshakes: Table[str, Recorded] = field(default_factory=lambda: Table("handshake"))
    subscribes: Table[str, Recorded] = field(default_factory=lambda: Table("subscribe"))
    publishes: Table[str, Recorded] = field(default_factory=lambda: Table("publish"))
    # Bayeux requests the server answered with something else (an HTML 500): replayed as recorded
    failures: Table[str, Exchange] = field(default_factory=lambda: Table("failure"))
    connects: list[tuple[float | None, bool]] = field(default_factory=list)  # (hold, carried events), in order
    connect_advice: dict[str, Any] = field(default_factory=dict)
    events_by_cause: dict[int | None, list[RecordedEvent]] = field(default_factory=dict)
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
                                           self.failures)}

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


def _number(answer: Any) -> int | None:
    if answer is None:
        return None
    return answer.number if isinstance(answer, Exchange) else int(answer[0])


def reply_fields(reply: Message) -> Message:
    """Recorded reply fields worth replaying: advice (minus artifacts), errors, ext (minus per-run parts). The
    fields that tie a reply to its request, and the negotiation, are the Bayeux core's."""
    out = {k: copy.deepcopy(v) for k, v in reply.items()
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


def build_scripts(cassette: Cassette, match: RestMatch | None = None,
                  rules: sessions.SessionRules = sessions.DEFAULT_RULES, plan: Plan | None = None) -> list[Script]:
    rest_key = (match or RestMatch()).key
    plan = plan or Plan()
    ignore = plan.message_ignore()
    scripts: dict[str, Script] = {}
    order = itertools.count()
    last_event: dict[str, int] = {}
    for ex in sorted(cassette.exchanges, key=lambda e: (e.episode, e.start, e.number)):
        label = ex.session if ex.episode == 1 else f"{ex.session}@{ex.episode}"
        script = scripts.get(label)
        if script is None:
            script = scripts[label] = Script(label, position=len(scripts))
        credential = sessions.credential(ex.request, rules)
        if credential is not None:
            script.credentials.add(credential)
        bayeux = wire.bayeux_of(ex.request)
        if bayeux is None:
            script.rest.add(rest_key(ex.request), ex)
            if ex.number in plan.reply:
                script.reply_marks[ex.number] = plan.reply[ex.number]
            continue
        if ex.response is not None and ex.response.kind != "messages":
            script.failures.add(failure_key(bayeux.messages), ex)
            continue
        replies = {str(item.message.get("id")): item.message for item in ex.reply_items()
                   if not item.is_event and "id" in item.message}
        for m in bayeux.messages:
            reply = replies.get(str(m.get("id")), {})
            channel = m.get("channel")
            if channel == HANDSHAKE:
                script.handshakes.add(HANDSHAKE, (ex.number, reply))
            elif channel == SUBSCRIBE:
                subs = m.get("subscription")
                for sub in subs if isinstance(subs, list) else [subs]:
                    script.subscribes.add(str(sub), (ex.number, reply))
            elif channel == CONNECT:
                carried = any(item.is_event for item in ex.reply_items())
                script.connects.append((ex.ttfb, carried))
                if reply.get("successful") and isinstance(reply.get("advice"), dict):
                    script.connect_advice = reply_fields(reply).get("advice", {})
            elif isinstance(channel, str) and not channel.startswith("/meta/"):
                script.publishes.add(bayeux_key(m, ignore), (ex.number, reply))
        for i, item in enumerate(ex.reply_items()):
            if item.is_event:
                event = RecordedEvent(next(order), item.message, item.delay or 0.0, item.cause, item.after,
                                      plan.events.get((ex.number, i), ()))
                if item.cause is not None:
                    script.events_by_cause.setdefault(item.cause, []).append(event)
                elif label in last_event:
                    script.after_event.setdefault(last_event[label], []).append(event)
                else:
                    script.unanchored.append(event)
                last_event[label] = event.order
    return list(scripts.values())
