"""A live client of the replayer: its own copy of a recorded session (cursors, CometD session, events and connect
failures due, the faults that strike it), and while its requests fit several recorded sessions, which ones
(:class:`Pending`; :mod:`gwsvcr.replay.binding` decides)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import live
from gwsvcr.bayeux import Failure, Message, Session
from gwsvcr.cassette import Mark, Request, json_copy
from gwsvcr.correlate import Plan, value_at
from gwsvcr.matching import Cursors
from gwsvcr.replay.faults import DELAY, DROP_CONNECT, DUPLICATE, NO_FAULTS, SESSION_ENDING, Fault, ScriptFaults
from gwsvcr.replay.script import RecordedEvent, RecordedFailure, Script, Step
from gwsvcr.replay.status import LATE
from gwsvcr.session import Identifier
from gwsvcr.timeline import Cancellable, Schedule, Timeline


@dataclass
class Counters:
    """What the replayer reports; clients count the events they release and the faults that strike them."""

    served: int = 0
    clients: int = 0
    events_released: int = 0
    released_late: int = 0  # events that went out more than LATE after their time: the process was busy
    late_max: float = 0.0  # the latest of them, in seconds
    failures_replayed: int = 0
    faults_injected: int = 0


@dataclass
class Pending:
    """A client not bound yet: the recorded sessions its requests so far fit, all of which answered them alike."""

    candidates: list[Script]  # in recorded order
    deferred: set[Step] = field(default_factory=set)  # steps whose events differ between the candidates
    waiting: list[tuple[Step, float]] = field(default_factory=list)  # deferred steps delivered, and when
    timer: Cancellable | None = None  # decides when a waiting event falls due first
    due: float = float("inf")  # when the timer fires


class Client:
    """One live client replaying its own copy of a script, so N clients of a one-agent cassette each get every
    event, each on its own timeline."""

    def __init__(self, number: int, script: Script, credential: Identifier | None, timeline: Timeline,
                 counters: Counters, allow_repeats: bool = True,
                 show: Callable[[str], None] | None = None, plan: Plan | None = None,
                 faults_of: Callable[[str], ScriptFaults] | None = None) -> None:
        self.number = number
        self.script = script
        self.credential = credential  # what placed its first, cookie-less request
        self.cookie = f"gwsvcr{number}-{secrets.token_hex(8)}"  # the value of every session cookie it is issued
        self.cursors = Cursors(allow_repeats)
        self.handshakes = 0
        self.connects = 0  # over all its CometD sessions: the Nth takes the Nth recorded connect's hold
        self.session: Session[Client] | None = None
        self.pending: list[Message] = []  # events due while the client had no CometD session (or no subscription)
        self.timeline = timeline
        self.counters = counters
        self.faults_of = faults_of  # the faults on demand set to strike each recorded session's replays
        self.faults = faults_of(script.label) if faults_of is not None else NO_FAULTS
        self._due = Schedule(timeline.clock, _release)  # its items name this client: see _release
        self.fired: dict[int, float] = {}  # cause -> when the client got its reply (clock time)
        self.show = show  # the live view: a line per event released
        self.undecided: Pending | None = None  # set while several recorded sessions fit it
        self.took = ""  # how it came to replay its script, for the live view and the status
        self.plan = plan  # the cassette's client-made values, when it has any
        self.made: dict[tuple[Step | None, str], Any] = {}  # (step, location) -> the value this client made
        self._next: dict[str, int] = {}  # table -> where next_is stopped looking in its recorded order

    @property
    def live(self) -> bool:
        """Whether the client has a CometD session that has not ended."""
        return self.session is not None and not self.session.ended

    @property
    def gone(self) -> bool:
        """Whether the client's CometD session is over (one that never opened a session is not gone)."""
        return self.handshakes > 0 and not self.live

    @property
    def recovering(self) -> bool:
        """A session after the first (a failure ended the one before): as a server does, it gets only the events
        of channels it subscribed to again; the others wait."""
        return self.handshakes > 1

    def next_is(self, table: str, key: Any) -> bool:
        """Whether ``key`` is the first request of ``table`` in its recorded session that the client has not
        asked yet (how far it got is kept per table: each call costs what the client asked since)."""
        order = self.script.order(table)
        i = self._next.get(table, 0)
        while i < len(order) and self.cursors.asked(table, order[i][0]) > order[i][1]:
            i += 1
        self._next[table] = i
        return i < len(order) and order[i][0] == key

    def fire(self, cause: int, at: float) -> None:
        """The reply of recorded exchange ``cause`` reached the client at ``at`` (clock time): its events and
        connect failures fall due their recorded delays later, and the faults set to strike then strike."""
        if cause in self.fired:
            return  # a repeated request does not push its events twice
        if not self.fired:
            for event in self.script.unanchored:
                self._schedule(event, at)
        self.fired[cause] = at
        for event in self.script.events_by_cause.get(cause, ()):
            self._schedule(event, at)
        for failure in self.script.failures_by_cause.get(cause, ()):
            self._schedule(failure, at)
        for fault in self.faults.at_reply.get(cause, ()):
            self._strike(fault.failure(), fault)

    def _schedule(self, item: RecordedEvent | RecordedFailure, since: float) -> None:
        """``item`` falls due its delay after ``since`` (when the reply or event it follows reached the client),
        and an event later by the faults that delay it."""
        late = 0.0 if isinstance(item, RecordedFailure) else \
            sum(f.delay for f in self.faults.at_event.get(item.index, ()) if f.kind == DELAY)
        self._due.add(since + self.timeline.scale(item.delay) + late, (self, item, since), item.order)

    def switch(self, script: Script) -> None:
        """Replay ``script`` from now on, in place of a session that answered everything so far alike: what the
        client was answered counts as that session's, and each event not released yet is that session's event
        at the same place, due that session's delay after the same reply (sooner or later than planned)."""
        if script is self.script:
            return
        here, steps = self.script, self.script.steps()
        self.fired = {(script.number(steps[n]) if n in steps else None) or n: at for n, at in self.fired.items()}
        self.script = script
        self.faults = self.faults_of(script.label) if self.faults_of is not None else NO_FAULTS
        self._next.clear()
        for _, item, since in self._due.drain():
            twin = item if isinstance(item, RecordedFailure) else script.at_place(here.place(item))
            if twin is not None:
                self._schedule(twin, since)

    def _release(self, item: RecordedEvent | RecordedFailure, since: float, late: float) -> None:
        if isinstance(item, RecordedFailure):
            self._fail(item)
            return
        counters = self.counters
        counters.events_released += 1
        if late > LATE and not self.timeline.instant:  # instant replay keeps no recorded time
            counters.released_late += 1
            counters.late_max = max(counters.late_max, late)
        now = self.timeline.clock.now()
        if self.show is not None:
            delay = None if item.cause is None else now - since
            self.show(live.event_line(f"client {self.number}", item.message, delay, item.cause, item.after))
        for later in self.script.after_event.get(item.order, ()):  # no request caused it: its spacing is kept
            self._schedule(later, now)
        message = json_copy(item.message)
        if item.marks and self.plan is not None:
            message = self.plan.apply(message, item.marks, self.live_value)
        self._deliver(message)
        for fault in self.faults.at_event.get(item.index, ()):
            if fault.kind == DUPLICATE:
                self._deliver(json_copy(message))
                self._count(fault)
            elif fault.kind == DROP_CONNECT:
                self._strike(Failure(instead=f"fault: {fault.spec}"), fault)
            elif fault.kind in SESSION_ENDING:
                self._strike(fault.failure(), fault)
            elif fault.kind == DELAY:
                self._count(fault)

    def live_value(self, mark: Mark) -> Any:
        """The value this client made where ``mark``'s request had the recorded one (None: not known)."""
        return self.made.get((self.script.steps().get(mark.exchange), mark.at))

    def remember(self, number: int, request: Request, locations: Iterable[str]) -> None:
        """The values this client made in the request that recorded exchange ``number`` answered."""
        step = self.script.steps().get(number)
        for location in locations:
            value = value_at(request, location)
            if value is not None:
                self.made[(step, location)] = value

    def _fail(self, failure: RecordedFailure) -> None:
        """A recorded connect failure falls due: the session of the moment gets it (none: it is not replayed)."""
        if self.session is None or self.session.ended:
            return
        fields = json_copy(failure.fields)
        error = fields.get("error")
        if isinstance(error, str) and failure.client_id:  # Faye names the forgotten clientId in its error
            fields["error"] = error.replace(failure.client_id, self.session.client_id)
        self.session.fail(Failure(fields, failure.ends, None if failure.bayeux else failure.exchange,
                                  failure.exchange.number))

    def _strike(self, failure: Failure, fault: Fault) -> None:
        if self.session is not None and not self.session.ended:
            self.session.fail(failure)
            self._count(fault)

    def _count(self, fault: Fault) -> None:
        fault.applied += 1
        self.counters.faults_injected += 1
        if self.show is not None:
            self.show(f"client {self.number}   !! fault: {fault.spec}")

    def _deliver(self, message: Message) -> None:
        session = self.session
        if session is None or session.ended or (self.recovering and not session.subscribed(message["channel"])):
            self.pending.append(message)
            return
        if "clientId" in message:
            message["clientId"] = session.client_id
        session.deliver(message)

    def flush(self) -> None:
        """Events that waited for a session, or for a subscription of it, go to it now if they can."""
        pending, self.pending = self.pending, []
        for message in pending:
            self._deliver(message)

    def attach(self, session: Session[Client]) -> None:
        self.session = session
        self.flush()

    def detach(self, session: Session[Client]) -> None:
        """Its session ended: the events queued in it wait for the next one (a client that recovers gets them)."""
        if self.session is session:
            self.session = None
            self.pending[:0] = session.queue
            session.queue = []

    def close(self) -> None:
        """The client is forgotten: its timers stop and what it waited to release goes (see :func:`_release`)."""
        if self.undecided is not None and self.undecided.timer is not None:
            self.undecided.timer.cancel()
        self._due.close()
        self.pending.clear()
        self.cursors.clear()


def _release(due: tuple[Client, RecordedEvent | RecordedFailure, float], late: float) -> None:
    """An item of a client's schedule falls due. The items name their client, where a bound method of the client
    kept by its schedule would make every client a reference cycle: a client with nothing due (a closed one has
    nothing) is freed by reference counting once the replayer forgets it (its session expired, or it idled too
    long), not by the next full collection, nor never once cli/serve.py's FreezeSurvivors has frozen it."""
    client, item, since = due
    client._release(item, since, late)
