"""A live client of the replayer: its own copy of a recorded session (cursors, CometD session, events and connect
failures due, the faults that strike it)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from gwsvcr import live
from gwsvcr.bayeux import Failure, Message, Session
from gwsvcr.matching import Cursors
from gwsvcr.replay.faults import DELAY, DROP_CONNECT, DUPLICATE, NO_FAULTS, SESSION_ENDING, Fault, ScriptFaults
from gwsvcr.replay.script import RecordedEvent, RecordedFailure, Script
from gwsvcr.session import Identifier
from gwsvcr.timeline import Schedule, Timeline


@dataclass
class Counters:
    """What the replayer reports; clients count the events they release and the faults that strike them."""

    served: int = 0
    clients: int = 0
    events_released: int = 0
    failures_replayed: int = 0
    faults_injected: int = 0


class Client:
    """One live client replaying its own copy of a script, so N clients of a one-agent cassette each get every
    event, each on its own timeline."""

    def __init__(self, number: int, script: Script, credential: Identifier | None, timeline: Timeline,
                 counters: Counters, allow_repeats: bool = True,
                 show: Callable[[str], None] | None = None, faults: ScriptFaults = NO_FAULTS) -> None:
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
        self.faults = faults
        self._due = Schedule(timeline.clock, self._release)
        self._fired: dict[int, float] = {}  # cause -> when the client got its reply (clock time)
        self.show = show  # the live view: a line per event released

    @property
    def live(self) -> bool:
        """Whether the client has a CometD session that has not ended."""
        return self.session is not None and not self.session.ended

    @property
    def recovering(self) -> bool:
        """A session after the first (a failure ended the one before): as a server does, it gets only the events
        of channels it subscribed to again; the others wait."""
        return self.handshakes > 1

    def fire(self, cause: int, at: float) -> None:
        """The reply of recorded exchange ``cause`` reached the client at ``at`` (clock time): its events and
        connect failures fall due their recorded delays later, and the faults set to strike then strike."""
        if cause in self._fired:
            return  # a repeated request does not push its events twice
        self._fired[cause] = at
        for event in self.script.events_by_cause.get(cause, ()):
            late = sum(f.delay for f in self.faults.at_event.get(event.index, ()) if f.kind == DELAY)
            self._due.add(at + self.timeline.scale(event.delay) + late, event, event.order)
        for failure in self.script.failures_by_cause.get(cause, ()):
            self._due.add(at + self.timeline.scale(failure.delay), failure, failure.order)
        for fault in self.faults.at_reply.get(cause, ()):
            self._strike(fault.failure(), fault)

    def _release(self, item: RecordedEvent | RecordedFailure) -> None:
        if isinstance(item, RecordedFailure):
            self._fail(item)
            return
        self.counters.events_released += 1
        if self.show is not None:
            fired = self._fired.get(item.cause) if item.cause is not None else None
            delay = None if fired is None else self.timeline.clock.now() - fired
            self.show(live.event_line(f"client {self.number}", item.message, delay, item.cause, item.after))
        self._deliver(copy.deepcopy(item.message))
        for fault in self.faults.at_event.get(item.index, ()):
            if fault.kind == DUPLICATE:
                self._deliver(copy.deepcopy(item.message))
                self._count(fault)
            elif fault.kind == DROP_CONNECT:
                self._strike(Failure(instead=f"fault: {fault.spec}"), fault)
            elif fault.kind in SESSION_ENDING:
                self._strike(fault.failure(), fault)
            elif fault.kind == DELAY:
                self._count(fault)

    def _fail(self, failure: RecordedFailure) -> None:
        """A recorded connect failure falls due: the session of the moment gets it (none: it is not replayed)."""
        if self.session is None or self.session.ended:
            return
        fields = copy.deepcopy(failure.fields)
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
        self._due.close()
        self.pending.clear()
        self.cursors.clear()
