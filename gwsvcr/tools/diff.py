"""A semantic diff of two cassettes: did both sessions do the same operations and get the same notifications?

Each session becomes a sequence of steps in time order: REST calls (request and reply), the Bayeux messages a
client sent (except ``/meta/connect``: how many long-polls a session needed depends on timing, not on what it
did) with their replies, and pushed events with their causes. Sessions pair up by label (s1 with s1); their
steps are aligned on what they are, labelled as ``gwsvcr show`` labels them (``POST /api/v2/me/calls/<id>
StopCallRecording``, ``<- /v2/me/calls CallRecordingStateChange (Stopped)``: channel, type and state, in order);
where the labels differ, steps of the same kind (the same operation, the same channel and type of event) pair up in
order; then paired steps are compared field by field. A value redacted on one side only equals the other's.

What differs between two runs of the same thing is ignored unless ``exact`` (:mod:`gwsvcr.compare`): headers
(cookies, hosts, dates), Bayeux ``id``/``clientId``/``ext``/request ``advice``, fields named like an id, uuid, time,
date or duration, and inside any string: redaction placeholders, uuids, timestamps and long generated ids.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT
from gwsvcr.cassette import Cassette, Exchange
from gwsvcr.compare import Volatility, changed_fields, delays_differ, event_fields, reply_fields, response_fields
from gwsvcr.describe import bayeux_request_summary, event_key, rest_operation
from gwsvcr.matching import VOLATILE_REQUEST

__all__ = ["Difference", "Step", "compare", "compare_steps", "event_label", "paired", "report", "steps_by_session"]


@dataclass(frozen=True)
class Step:
    """One thing a session did or received, reduced to what a comparison looks at."""

    exchange: int
    time: float
    key: str  # what it is, as gwsvcr show labels it: aligned steps have equal keys
    fields: dict[str, Any] = field(compare=False)
    cause: str | None = None  # events: the key of the step that caused it
    delay: float | None = None  # events: seconds after the cause's reply
    kind: str = ""  # what kind of step: where keys differ, steps of one kind pair up (an event's state left out)

    def label(self, side: str) -> str:
        return f"{side}#{self.exchange} {self.key}"


def steps_by_session(cassette: Cassette, volatility: Volatility) -> dict[str, list[Step]]:
    keys = {ex.number: _exchange_key(ex, volatility) for ex in cassette.exchanges}
    sessions: dict[str, list[Step]] = {}
    for ex in cassette.exchanges:
        label = ex.session if ex.episode == 1 else f"{ex.session}@{ex.episode}"
        sessions.setdefault(label, []).extend(_steps(ex, volatility, keys))
    for steps in sessions.values():
        steps.sort(key=lambda s: s.time)
    return sessions


def _rest_key(ex: Exchange, volatility: Volatility) -> str:
    return f"{ex.request.method} {volatility.text(ex.request.path)} {rest_operation(ex.request)}".rstrip()


def _bayeux_key(message: dict[str, Any]) -> str:
    return f"{message.get('channel')} {bayeux_request_summary(message)}".rstrip()


def _exchange_key(ex: Exchange, volatility: Volatility) -> str:
    bayeux = wire.bayeux_of(ex.request)
    if bayeux is None:
        return _rest_key(ex, volatility)
    return " + ".join(_bayeux_key(m) for m in bayeux.messages if m.get("channel") != CONNECT) or CONNECT


def _steps(ex: Exchange, volatility: Volatility, keys: dict[int, str]) -> list[Step]:
    bayeux = wire.bayeux_of(ex.request)
    if bayeux is None:
        steps = [_rest_step(ex, volatility, keys[ex.number])]
    else:
        steps = _bayeux_steps(ex, bayeux.messages, volatility)
    if ex.error is not None:
        error = {"error": volatility.text(ex.error)}
        steps.append(Step(ex.number, ex.start, f"error {keys[ex.number]}", error))
    return steps + _event_steps(ex, volatility, keys)


def _rest_step(ex: Exchange, volatility: Volatility, key: str) -> Step:
    fields = volatility.flatten(dict(ex.request.query), "request.query") if ex.request.query else {}
    volatility.flatten(ex.request.body, "request.body", fields)
    if ex.response is not None:
        response_fields(ex.response, volatility, fields)
    return Step(ex.number, ex.start, key, fields)


def _bayeux_steps(ex: Exchange, messages: list[dict[str, Any]], volatility: Volatility) -> list[Step]:
    """A step per message the client sent (but connects) with the reply that has its id."""
    replies = {str(i.message.get("id")): i.message for i in ex.reply_items() if not i.is_event}
    steps = []
    for message in messages:
        if message.get("channel") == CONNECT:
            continue
        fields = volatility.flatten(message, "request", drop=VOLATILE_REQUEST)
        reply = replies.get(str(message.get("id")))
        if reply is not None:
            reply_fields(reply, volatility, fields)
        steps.append(Step(ex.number, ex.start, _bayeux_key(message), fields))
    return steps


def event_label(message: dict[str, Any]) -> str:
    """A pushed event as ``gwsvcr show`` prints it: ``<- /v2/me/calls CallRecordingStateChange (Stopped)``."""
    return f"<- {message.get('channel')} {gws.summarize_notification(message.get('data')) or 'event'}"


def _event_steps(ex: Exchange, volatility: Volatility, keys: dict[int, str]) -> list[Step]:
    delivered = ex.start + (ex.ttfb or 0.0)
    steps = []
    for item in ex.reply_items():
        if not item.is_event:
            continue
        cause = None if item.cause is None else keys.get(item.cause)
        steps.append(Step(ex.number, delivered, event_label(item.message), event_fields(item.message, volatility),
                          cause, item.delay, event_key(item.message)))
    return steps


# ---------------------------------------------------------------------------------------------- comparing


@dataclass
class Difference:
    session: str
    headline: str
    details: list[str] = field(default_factory=list)
    timing_only: bool = False

    def lines(self) -> list[str]:
        return [f"{self.session}: {self.headline}", *(f"    {d}" for d in self.details)]


def field_differences(a: Step, b: Step) -> list[str]:
    out = changed_fields(a.fields, b.fields)
    if a.cause != b.cause:
        out.append(f"cause: after {a.cause or 'nothing'} in A, after {b.cause or 'nothing'} in B")
    return out


def _timing(a: Step, b: Step, threshold: float) -> str | None:
    if not delays_differ(a.delay, b.delay, threshold):
        return None
    assert a.delay is not None and b.delay is not None
    return (f"delay {a.delay * 1000:.0f} ms in A, {b.delay * 1000:.0f} ms in B (apart by "
            f"{abs(a.delay - b.delay) * 1000:.0f} ms > {threshold * 1000:.0f} ms) after {a.cause}")


Opcode = tuple[str, int, int, int, int]


def alignment(a: list[str], b: list[str]) -> list[Opcode]:
    """difflib's opcodes, the common head and tail matched first: linear for the usual, nearly equal
    recordings, where difflib alone is quadratic (long runs of a few keys repeated)."""
    shortest = min(len(a), len(b))
    head = next((i for i in range(shortest) if a[i] != b[i]), shortest)
    tail = next((i for i in range(shortest - head) if a[-1 - i] != b[-1 - i]), shortest - head)
    middle = difflib.SequenceMatcher(a=a[head:len(a) - tail], b=b[head:len(b) - tail], autojunk=False)
    ops: list[Opcode] = [("equal", 0, head, 0, head)]
    ops += [(op, a1 + head, a2 + head, b1 + head, b2 + head) for op, a1, a2, b1, b2 in middle.get_opcodes()]
    ops.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return [op for op in ops if op[1] != op[2] or op[3] != op[4]]


def compare_steps(session: str, a: list[Step], b: list[Step], threshold: float) -> list[Difference]:
    out: list[Difference] = []
    for sa, sb in paired(a, b):
        if sa is None or sb is None:
            side, step = ("A", sa) if sb is None else ("B", sb)
            assert step is not None
            out.append(Difference(session, f"only in {side}: {step.label(side)}"))
            continue
        pair = f"A#{sa.exchange} / B#{sb.exchange} {sa.key}"
        details = field_differences(sa, sb)
        if sa.key != sb.key:
            out.append(Difference(session, f"{sa.label('A')} became {sb.label('B')}", details))
        elif details:
            out.append(Difference(session, f"{pair}: fields differ", details))
        timing = _timing(sa, sb, threshold)
        if timing:
            out.append(Difference(session, f"{pair}: timing differs", [timing], timing_only=True))
    return out


def paired(a: list[Step], b: list[Step]) -> list[tuple[Step | None, Step | None]]:
    """The steps of two sessions paired by content: equal keys (channel, type and state of an event) in order;
    within a run that differs, steps of the same kind in order (an event whose state changed), then what is left
    as far as both sides go; a step with nothing to pair with has None beside it."""
    out: list[tuple[Step | None, Step | None]] = []
    for op, a1, a2, b1, b2 in alignment([s.key for s in a], [s.key for s in b]):
        if op == "equal":
            out += zip(a[a1:a2], b[b1:b2], strict=True)
        elif op == "replace":
            out += _paired_by_kind(a[a1:a2], b[b1:b2])
        else:
            out += [(s, None) for s in a[a1:a2]] + [(None, s) for s in b[b1:b2]]
    return out


def _paired_by_kind(a: list[Step], b: list[Step]) -> list[tuple[Step | None, Step | None]]:
    out: list[tuple[Step | None, Step | None]] = []
    for op, a1, a2, b1, b2 in alignment([s.kind or s.key for s in a], [s.kind or s.key for s in b]):
        pairs = list(zip(a[a1:a2], b[b1:b2], strict=False)) if op in ("equal", "replace") else []
        out += pairs
        out += [(s, None) for s in a[a1 + len(pairs):a2]] + [(None, s) for s in b[b1 + len(pairs):b2]]
    return out


def compare(a: Cassette, b: Cassette, threshold: float = 0.05,
            volatility: Volatility | None = None) -> tuple[list[Difference], int]:
    """Every difference between the two cassettes, and how many steps were compared."""
    volatility = volatility or Volatility()
    sessions_a, sessions_b = steps_by_session(a, volatility), steps_by_session(b, volatility)
    out: list[Difference] = []
    for label in dict.fromkeys([*sessions_a, *sessions_b]):
        if label not in sessions_b:
            out.append(Difference(label, f"session only in A ({len(sessions_a[label])} steps)"))
        elif label not in sessions_a:
            out.append(Difference(label, f"session only in B ({len(sessions_b[label])} steps)"))
        else:
            out += compare_steps(label, sessions_a[label], sessions_b[label], threshold)
    return out, sum(len(s) for s in sessions_a.values())


def report(differences: Iterable[Difference]) -> list[str]:
    return [line for d in differences for line in d.lines()]
