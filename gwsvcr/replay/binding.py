"""Which recorded session a live client replays: bound by what it sends, never by when it came.

Live tokens are never the recorded ones (a cassette holds placeholders), so two agents of one SDK look alike until
one of them sends something only one recorded session has. Until then a new client stays a *candidate* for every
recorded session its requests so far fit (those of its Basic user first, when the cassette recorded that user),
and is answered from one of them: every candidate answers those requests alike, so the choice does not matter yet.
Its events wait only when they would differ between the candidates.

Answers that differ only in values the server makes afresh each run (a session id, a uuid, a timestamp) count as
alike: either session's is what the server would have said to this client. The first request that tells the
candidates apart decides: the sessions that do not have it drop out; when the rest answer it differently, the one
with the fewest clients bound to it wins (an unclaimed session first), then the one whose next recorded request it
is, then the one recorded first: the same every run. A client whose waiting events fall due before anything
decided is bound the same way. A bound client whose request its session does not hold moves to a session that
holds it, if every answer and event it was given is the same there.

N live clients on M recorded sessions: with N > M every client still gets its own copy of a session (the least
taken one that fits), as a fleet replaying a one-agent cassette needs. A bound client costs nothing more per
request; an undecided one a lookup per request its candidates answer alike, a pass over its candidates otherwise.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

from gwsvcr.bayeux import HANDSHAKE
from gwsvcr.cassette import Exchange
from gwsvcr.correlate import distinctive
from gwsvcr.matching import VOLATILE, canonical
from gwsvcr.replay.client import Client, Pending
from gwsvcr.replay.script import Script, Step, reply_fields
from gwsvcr.timeline import Timeline

__all__ = ["Binder", "describe"]


def describe(step: Step) -> str:
    """A step as people read it: ``POST /statistics/v3/subscriptions``, ``subscribe /v2/me/calls``."""
    name, key, _ = step
    if name == "rest":
        return f"{key[0]} {key[1]}"
    if name == "handshake" or key == HANDSHAKE:
        return HANDSHAKE
    if name == "subscribe":
        return f"subscribe {key}"
    if name == "publish":
        try:
            return f"publish {json.loads(key).get('channel')}"
        except ValueError:
            return "publish"
    return f"{name} request"


def _opaque(data: Any) -> Any:
    """``data`` with every value the server makes afresh each run (a session id, a uuid, a timestamp: what
    :func:`~gwsvcr.correlate.distinctive` calls distinctive) as one placeholder: two sessions whose replies differ
    only there answer alike, as the same server would have answered either client."""
    if isinstance(data, dict):
        return {k: _opaque(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_opaque(v) for v in data]
    return "<opaque>" if distinctive(data) else data


class Binder:
    """The binding of live clients to the recorded sessions (``scripts``) of one replay."""

    def __init__(self, scripts: list[Script], timeline: Timeline, used: set[int], *, allow_repeats: bool = True,
                 show: Callable[[str], None] | None = None) -> None:
        self.scripts = scripts
        self.single = len(scripts) == 1
        self.timeline = timeline
        self.used = used  # the replayer's recorded exchanges used: a decision adds the chosen session's
        self.allow_repeats = allow_repeats
        self.show = show
        self.claims: collections.Counter[str] = collections.Counter()  # clients bound to each session
        self.leaning: collections.Counter[str] = collections.Counter()  # undecided clients answered from each
        self._uniform: dict[Step, bool] = {}
        self._sigs: dict[tuple[str, int], tuple[str, str]] = {}
        self._owner: dict[int, Script] = {}

    # ---------------------------------------------------------------------------------------- new clients
    def pool(self, credential: Any, table: str, key: Any) -> list[Script]:
        """The sessions a new client may be replaying: those of its credential when the cassette recorded it (a
        Basic user), else all; of these, those that hold its first request when any does."""
        mine = [s for s in self.scripts if credential in s.credentials] or self.scripts
        return [s for s in mine if key in s.tables[table]] or mine

    def place(self, client: Client, pool: list[Script]) -> None:
        """Start ``client`` (created on ``pool[0]``) on the one session of ``pool``, or undecided among them."""
        if len(pool) == 1:
            client.script = pool[0]
            self.claims[pool[0].label] += 1
            client.took = "the only session that fits" if not self.single else "the cassette's session"
            return
        client.undecided = Pending(list(pool))
        client.script = self._lean(pool)
        self.leaning[client.script.label] += 1
        client.took = f"undecided among {_labels(pool)}"

    def forget(self, client: Client) -> None:
        counts = self.leaning if client.undecided is not None else self.claims
        counts[client.script.label] -= 1

    # --------------------------------------------------------------------------------------------- requests
    def can_take(self, client: Client, table: str, key: Any) -> bool:
        """Whether the client still has an answer to ``key`` not used yet (in any of its candidates)."""
        if client.undecided is None:
            return client.cursors.fresh(client.script.tables[table], key)
        index = client.cursors.asked(table, key)
        return any(len(s.tables[table].answers.get(key, ())) > index for s in client.undecided.candidates)

    def take(self, client: Client, table: str, key: Any) -> Any:
        """The recorded answer to the client's request, once the binding has taken the request into account:
        narrowing an undecided client's candidates, or moving a bound one; None when nothing answers it."""
        if client.undecided is not None:
            step = (table, key, client.cursors.asked(table, key))
            if not self._is_uniform(step):
                self._narrow(client, step)
        found = client.cursors.take(client.script.tables[table], key)
        if found is None and not self.single and client.undecided is None and self._move(client, table, key):
            found = client.cursors.take(client.script.tables[table], key)
        return found

    def fire(self, client: Client, number: int, at: float) -> None:
        """The client got the reply of recorded exchange ``number`` at ``at``: its events fall due (or wait for
        the decision, when they differ between the candidates)."""
        if not self.single:
            owner = self._owner_of(number)
            step = owner.steps().get(number)
            if owner is not client.script and step is not None:  # answered before a decision or a move
                number = client.script.number(step) or number
            pending = client.undecided
            if pending is not None and step is not None and step in pending.deferred:
                pending.waiting.append((step, at))
                self._arm(client, pending, step, at)
                return
        client.fire(number, at)

    # ----------------------------------------------------------------------------------------- deciding
    def _narrow(self, client: Client, step: Step) -> None:
        pending = client.undecided
        assert pending is not None
        fit = [s for s in pending.candidates if self._has(s, step, fresh=True)]
        if not fit and self.allow_repeats:
            fit = [s for s in pending.candidates if self._has(s, step, fresh=False)]
        if not fit:
            return  # a miss, whatever the choice
        groups: dict[str, list[Script]] = {}
        for s in fit:
            groups.setdefault(self._sig(s, step)[0], []).append(s)
        reason = f"{describe(step)} fits {_labels(fit)} only"
        if len(groups) > 1:
            best = self._choose(client, fit, step)
            fit = groups[self._sig(best, step)[0]]
            reason = f"{_labels(pending.candidates)} answer {describe(step)} differently; {self._why(best)}"
        pending.candidates = fit
        if len(fit) == 1:
            self._bind(client, fit[0], reason)
            return
        if client.script not in fit:
            self._lean_on(client, self._lean(fit))
        if len({self._sig(s, step)[1] for s in fit}) > 1:
            pending.deferred.add(step)

    def _choose(self, client: Client, scripts: list[Script], step: Step | None) -> Script:
        """The fewest clients bound first (an unclaimed session), then the one whose next recorded request this
        is, then the first recorded."""
        return min(scripts, key=lambda s: (self.claims[s.label], step is None or not self._next_is(client, s, step),
                                           s.position))

    def _why(self, chosen: Script) -> str:
        return f"{chosen.label}: {'unclaimed' if not self.claims[chosen.label] else 'least taken'}, " \
               "then its next request, then recorded order"

    def _next_is(self, client: Client, script: Script, step: Step) -> bool:
        """Whether ``step`` is the first request of ``script`` the client has not taken yet."""
        seen: collections.Counter[tuple[str, Any]] = collections.Counter()
        for name, key, _ in script.steps().values():
            seen[(name, key)] += 1
            if seen[(name, key)] > client.cursors.asked(name, key):
                return (name, key) == (step[0], step[1])
        return False

    def _bind(self, client: Client, script: Script, reason: str) -> None:
        pending = client.undecided
        assert pending is not None
        client.undecided = None
        if pending.timer is not None:
            pending.timer.cancel()
        self.leaning[client.script.label] -= 1
        self._switch(client, script)
        self.claims[script.label] += 1
        for step, at in pending.waiting:
            number = script.number(step)
            if number is not None:
                client.fire(number, at)
        client.took = reason
        self._tell(f"client {client.number} took {script.label}: {reason}")

    def _arm(self, client: Client, pending: Pending, step: Step, at: float) -> None:
        """Decide when the first of the waiting events falls due, if nothing told the candidates apart first."""
        delays = [event.delay for s in pending.candidates for event in s.events_by_cause.get(s.number(step), ())]
        due = at + self.timeline.scale(min(delays, default=0.0))
        if due >= pending.due:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        pending.due = due

        def decide() -> None:
            if client.undecided is pending:
                chosen = self._choose(client, pending.candidates, None)
                self._bind(client, chosen, f"its events fell due before anything told {_labels(pending.candidates)}"
                                           f" apart; {self._why(chosen)}")

        pending.timer = self.timeline.clock.call_at(due, decide)

    # ------------------------------------------------------------------------------------------- moving
    def _move(self, client: Client, table: str, key: Any) -> bool:
        step = (table, key, client.cursors.asked(table, key))
        here = client.script
        options = [s for s in self.scripts if s is not here and self._has(s, step, fresh=True)]
        if not options and self.allow_repeats:
            options = [s for s in self.scripts if s is not here and self._has(s, step, fresh=False)]
        options = [s for s in options if self._same_so_far(client, here, s)]
        if not options:
            return False
        self.claims[here.label] -= 1
        there = min(options, key=lambda s: (self.claims[s.label], s.position))
        self._switch(client, there)
        self.claims[there.label] += 1
        client.took = f"moved from {here.label}: {describe(step)} is not in {here.label}, and all it was given is " \
                      f"the same in {there.label}"
        self._tell(f"client {client.number} {client.took}")
        return True

    def _same_so_far(self, client: Client, here: Script, there: Script) -> bool:
        return all(there.answer(step) is not None and self._sig(here, step) == self._sig(there, step)
                   for step in client.cursors.taken())

    def _switch(self, client: Client, script: Script) -> None:
        """Replay ``script`` from now on (see :meth:`Client.switch`); what the client took is used there."""
        client.switch(script)
        for taken in client.cursors.taken():
            used = script.number(taken)
            if used is not None:
                self.used.add(used)

    # ------------------------------------------------------------------------------------------ helpers
    def _lean(self, scripts: list[Script]) -> Script:
        """Which candidate answers an undecided client: the least taken, so that alike sessions share clients."""
        return min(scripts, key=lambda s: (self.claims[s.label] + self.leaning[s.label], s.position))

    def _lean_on(self, client: Client, script: Script) -> None:
        self.leaning[client.script.label] -= 1
        self._switch(client, script)
        self.leaning[script.label] += 1

    def _has(self, script: Script, step: Step, *, fresh: bool) -> bool:
        answers = script.tables[step[0]].answers.get(step[1])
        return bool(answers) and (not fresh or len(answers) > step[2])  # type: ignore[arg-type]

    def _is_uniform(self, step: Step) -> bool:
        """Whether every recorded session answers ``step`` alike, events included: nothing to decide then."""
        found = self._uniform.get(step)
        if found is None:
            found = all(self._has(s, step, fresh=True) for s in self.scripts) and \
                len({self._sig(s, step) for s in self.scripts}) == 1
            self._uniform[step] = found
        return found

    def _sig(self, script: Script, step: Step) -> tuple[str, str]:
        """(what the reply says, what its events say) of ``step`` in ``script``, without what differs per run."""
        number = script.number(step)
        if number is None:
            return "", ""
        cached = self._sigs.get((script.label, number))
        if cached is None:
            answer = script.answer(step)
            if isinstance(answer, Exchange):
                response = answer.response
                reply = canonical("json", _opaque([answer.error] if response is None else
                                                  [response.status, response.kind, response.body
                                                   if response.kind != "messages" else
                                                   [item.message for item in response.body]]))
            else:
                reply = canonical("json", _opaque(reply_fields(answer[1])))
            events = canonical("json", [{k: v for k, v in e.message.items() if k not in VOLATILE}
                                        for e in script.events_by_cause.get(number, ())])
            cached = self._sigs[(script.label, number)] = (reply, events)
        return cached

    def _owner_of(self, number: int) -> Script:
        if not self._owner:
            self._owner = {n: s for s in self.scripts for n in s.steps()}
        return self._owner.get(number, self.scripts[0])

    def _tell(self, line: str) -> None:
        if self.show is not None:
            self.show(line)


def _labels(scripts: list[Script]) -> str:
    return ", ".join(s.label for s in scripts)
