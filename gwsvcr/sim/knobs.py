"""Ways to make the simulator differ from a recording on purpose, so that ``gwsvcr verify`` has something to find:
drop an operation's notification, report another recordingState in it, deliver it later, refuse the operation with
a GWS error, give each agent's call a new id, forget the agent's CometD sessions after an operation's notification
(as a node restart does).

Each knob is given as text (``OP``, ``OP=STATE``, ``OP=MS``, ``OP=HTTP[:STATUSCODE]``) by ``gwsvcr sim`` and by the
mitmproxy options of addons/simulator.py; :func:`parse` turns them into :class:`Knobs` or says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gwsvcr import gws

OPERATIONS = tuple(gws.RECORDING_OPERATIONS)
STATES = tuple(gws.RECORDING_STATES)


@dataclass(frozen=True)
class Refusal:
    http_status: int
    status_code: int  # GWS statusCode in the body


@dataclass(frozen=True)
class Knobs:
    drop_notification: frozenset[str] = frozenset()
    wrong_state: dict[str, str] = field(default_factory=dict)  # operation -> recordingState its notification says
    extra_delay: dict[str, float] = field(default_factory=dict)  # operation -> seconds added to its notification
    refuse: dict[str, Refusal] = field(default_factory=dict)
    new_call_ids: bool = False  # each agent's call gets a fresh id (GET /api/v2/me/calls tells it)
    forget_after: frozenset[str] = frozenset()  # after these operations' notifications, the agent's sessions end


def _operation(text: str, knob: str) -> str:
    if text not in OPERATIONS:
        raise ValueError(f"{knob}: unknown operation {text!r}; one of {', '.join(OPERATIONS)}")
    return text


def _pairs(values: Iterable[str], knob: str, shape: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        op, sep, arg = value.partition("=")
        if not sep or not arg:
            raise ValueError(f"{knob}: {value!r} is not {shape}")
        out.append((_operation(op.strip(), knob), arg.strip()))
    return out


def _refusal(text: str, knob: str) -> Refusal:
    http, _, code = text.partition(":")
    try:
        refusal = Refusal(int(http), int(code) if code else gws.INVALID_FOR_STATE)
    except ValueError:
        raise ValueError(f"{knob}: {text!r} is not HTTP[:STATUSCODE], e.g. 400 or 503:1") from None
    if not 400 <= refusal.http_status <= 599:
        raise ValueError(f"{knob}: HTTP status {refusal.http_status} is not an error (400 to 599)")
    return refusal


def parse(drop_notification: Iterable[str] = (), wrong_state: Iterable[str] = (), extra_delay_ms: Iterable[str] = (),
          refuse: Iterable[str] = (), new_call_ids: bool = False, forget_after: Iterable[str] = ()) -> Knobs:
    """Knobs from their text forms; ValueError names the knob and the valid values."""
    states = {}
    for op, state in _pairs(wrong_state, "wrong-state", "OP=STATE"):
        if state not in STATES:
            raise ValueError(f"wrong-state: unknown recordingState {state!r}; one of {', '.join(STATES)}")
        states[op] = state
    delays = {}
    for op, ms in _pairs(extra_delay_ms, "extra-delay-ms", "OP=MS"):
        try:
            delays[op] = float(ms) / 1000
        except ValueError:
            raise ValueError(f"extra-delay-ms: {ms!r} is not a number of milliseconds") from None
        if delays[op] < 0:
            raise ValueError(f"extra-delay-ms: {ms} is negative")
    refusals = {op: _refusal(arg, "refuse") for op, arg in _pairs(refuse, "refuse", "OP=HTTP[:STATUSCODE]")}
    dropped = frozenset(_operation(op.strip(), "drop-notification") for op in drop_notification)
    forgotten = frozenset(_operation(op.strip(), "forget-after") for op in forget_after)
    return Knobs(dropped, states, delays, refusals, new_call_ids, forgotten)
