"""Faults on demand: the ``--fault SPEC`` grammar, and where each fault strikes in a replay.

A fault is one line that reads as what happens (``gwsvcr replay --fault``, ``replaying(faults=[...])``, the
pytest marker, a mount's ``faults``)::

    unknown-client after op 2          the server forgets the client's CometD session when the reply to operation 2
                                       reaches it: the held connect (or the next) is answered 402::session_unknown
                                       with advice {reconnect: handshake}; a client that recovers handshakes and
                                       subscribes again, and the events still to come reach its new session
    reconnect-none after #7            the same, with advice {reconnect: none}: the client must stop
    drop-connect event 3               the connect that would carry event 3 is closed without a reply; the event
                                       comes with the client's next connect
    delay event 2 by 1.5s              event 2 comes that much later than recorded
    duplicate event 1                  event 1 is delivered twice
    reset POST /api/v2/me/calls/*      the connection of each matching request is closed without a reply
    http 503 /meta/handshake times 2   the first 2 matching requests are answered HTTP 503

Where a fault strikes: ``after op N`` (the client got the reply of the session's Nth operation: a REST request that
is not a GET, HEAD or OPTIONS), ``after #N`` (recorded exchange N, as ``gwsvcr show`` numbers them), ``after NAME``
(the first request ``gwsvcr show`` names so, e.g. ``StopCallRecording``), ``after event N`` (once event N went
out: the connect after the one that carried it); ``event N`` is the session's Nth recorded event. A target is
``METHOD PATH`` (an HTTP request; ``*`` in the path matches any characters) or a Bayeux channel (``/meta/connect``,
``/v2/me/*``: a request that carries such a message, over any transport; a WebSocket is closed for either fault).
``times N`` limits a target fault to the first N matching requests of the replay; without it, every one.

Everything here is resolved against the cassette once (:class:`Plan`): a spec that cannot strike (``op 9`` in a
session of four operations) is an error naming it, as a spec that does not parse is.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.bayeux import Failure, Message, unknown_client
from gwsvcr.cassette import Request
from gwsvcr.errors import GwsvcrError

__all__ = ["GRAMMAR", "KINDS", "Fault", "FaultError", "Plan", "ScriptFaults", "check", "parse"]

UNKNOWN_CLIENT = "unknown-client"
RECONNECT_NONE = "reconnect-none"
DROP_CONNECT = "drop-connect"
DELAY = "delay"
DUPLICATE = "duplicate"
RESET = "reset"
HTTP = "http"
KINDS = (UNKNOWN_CLIENT, RECONNECT_NONE, DROP_CONNECT, DELAY, DUPLICATE, RESET, HTTP)
SESSION_ENDING = (UNKNOWN_CLIENT, RECONNECT_NONE)
GRAMMAR = ("unknown-client AFTER | reconnect-none AFTER | drop-connect event N | delay event N by DURATION | "
           "duplicate event N | reset TARGET [times N] | http STATUS TARGET [times N]; AFTER: after op N, after #N, "
           "after NAME or after event N; TARGET: METHOD PATH or a Bayeux channel; DURATION: 500ms, 2s")
FAULT_HEADER = "X-Gwsvcr-Fault"  # on an HTTP answer a fault made
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
_METHOD = re.compile(r"^[A-Z]+$")


class FaultError(GwsvcrError, ValueError):
    """A fault spec that does not parse, or cannot strike in this cassette; the message names it."""


@dataclass(frozen=True)
class Anchor:
    """Where a session-ending fault strikes: ``op``, ``exchange`` (``#N``), ``name`` or ``event``."""

    kind: str
    value: int | str


@dataclass(eq=False)
class Fault:
    spec: str
    kind: str
    anchor: Anchor | None = None  # unknown-client, reconnect-none
    event: int = 0  # drop-connect, delay, duplicate
    delay: float = 0.0  # delay: seconds
    status: int = 0  # http
    method: str | None = None  # reset, http: an HTTP request's method, or None for a Bayeux channel
    pattern: str = ""  # reset, http: the path or channel, * for any characters
    times: int | None = None  # reset, http: at most this many requests
    applied: int = 0  # how many times it struck

    def failure(self) -> Failure:
        """What a session-ending fault answers the connect with."""
        if self.kind == UNKNOWN_CLIENT:
            fields = unknown_client()
        else:
            fields = {"successful": False, "error": "403::session_terminated",
                      "advice": {"reconnect": "none", "interval": 0}}
        return Failure(fields, ends=True, after_queued=self.anchor is not None and self.anchor.kind == "event")

    def matches(self, request: Request, messages: list[Message] | None, channels_only: bool = False) -> bool:
        """Whether a target fault aims at this request (``messages``: the Bayeux messages it carries;
        ``channels_only``: a WebSocket frame, which only a channel target aims at)."""
        if self.kind not in (RESET, HTTP) or (self.times is not None and self.applied >= self.times):
            return False
        if self.method is not None:
            if channels_only:
                return False
            return request.method.upper() == self.method and fnmatch.fnmatchcase(request.path, self.pattern)
        return messages is not None and any(fnmatch.fnmatchcase(str(m.get("channel")), self.pattern)
                                            for m in messages)


def _number(spec: str, word: str, what: str) -> int:
    if not word.isdigit() or int(word) < 1:
        raise FaultError(f"fault {spec!r}: {what} must be a number from 1, not {word!r}")
    return int(word)


def _duration(spec: str, word: str) -> float:
    m = _DURATION.match(word)
    if m is None:
        raise FaultError(f"fault {spec!r}: {word!r} is not a duration such as 500ms or 2s")
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def _anchor(spec: str, words: list[str]) -> Anchor:
    if len(words) == 2 and words[0] == "after" and words[1].startswith("#"):
        return Anchor("exchange", _number(spec, words[1][1:], "an exchange number"))
    if len(words) == 3 and words[0] == "after" and words[1] in ("op", "event"):
        return Anchor(words[1], _number(spec, words[2], f"an {'operation' if words[1] == 'op' else 'event'}"))
    if len(words) == 2 and words[0] == "after":
        return Anchor("name", words[1])
    raise FaultError(f"fault {spec!r}: say where it strikes: after op N, after #N, after NAME or after event N")


def _event(spec: str, words: list[str]) -> int:
    if len(words) != 2 or words[0] != "event":
        raise FaultError(f"fault {spec!r}: name the event: event N")
    return _number(spec, words[1], "the event")


def _target(spec: str, fault: Fault, words: list[str]) -> None:
    if len(words) >= 2 and words[-2] == "times":
        fault.times = _number(spec, words[-1], "times")
        words = words[:-2]
    if len(words) == 2 and _METHOD.match(words[0]) and words[1].startswith("/"):
        fault.method, fault.pattern = words
    elif len(words) == 1 and words[0].startswith("/"):
        fault.pattern = words[0]
    else:
        raise FaultError(f"fault {spec!r}: the target is METHOD PATH (POST /api/v2/me/calls/*) or a Bayeux "
                         "channel (/meta/connect), then optionally times N")


def parse(spec: str) -> Fault:
    """One fault spec; :class:`FaultError` names it and says what was expected."""
    words = spec.split()
    if not words:
        raise FaultError(f"an empty fault spec: write one of {GRAMMAR}")
    kind, args = words[0], words[1:]
    fault = Fault(" ".join(words), kind)
    if kind in SESSION_ENDING:
        fault.anchor = _anchor(spec, args)
    elif kind in (DROP_CONNECT, DUPLICATE):
        fault.event = _event(spec, args)
    elif kind == DELAY:
        if len(args) != 4 or args[2] != "by":
            raise FaultError(f"fault {spec!r}: write delay event N by DURATION (e.g. delay event 2 by 1.5s)")
        fault.event = _event(spec, args[:2])
        fault.delay = _duration(spec, args[3])
    elif kind == RESET:
        _target(spec, fault, args)
    elif kind == HTTP:
        if not args or not args[0].isdigit() or not 100 <= int(args[0]) <= 599:
            raise FaultError(f"fault {spec!r}: http takes a status from 100 to 599 first (http 503 TARGET)")
        fault.status = int(args[0])
        _target(spec, fault, args[1:])
    else:
        raise FaultError(f"fault {spec!r}: unknown fault {kind!r}; the faults are {', '.join(KINDS)}")
    return fault


def check(specs: Sequence[str]) -> None:
    """Raise :class:`FaultError` (a ValueError) for the first spec that does not parse."""
    for spec in specs:
        parse(spec)


# ------------------------------------------------------------------------------------------------ the plan


@dataclass
class ScriptFaults:
    """The faults of one recorded session, by where they strike: the reply of a recorded exchange, an event."""

    at_reply: dict[int, list[Fault]] = field(default_factory=dict)
    at_event: dict[int, list[Fault]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.at_reply or self.at_event)


NO_FAULTS = ScriptFaults()


class Plan:
    """Every fault of a replay resolved against its recorded sessions. ``scripts`` are
    :class:`~gwsvcr.replay.script.Script` objects (their label, operations, request numbers and event count)."""


    def __init__(self, specs: Sequence[str], scripts: Sequence[Any]) -> None:
        self.faults = [parse(spec) for spec in specs]
        self.by_script: dict[str, ScriptFaults] = {}
        self.targets = [f for f in self.faults if f.kind in (RESET, HTTP)]
        for fault in self.faults:
            if fault.kind not in (RESET, HTTP) and not any(self._place(fault, s) for s in scripts):
                raise FaultError(f"fault {fault.spec!r}: {self._why_not(fault, scripts)}")

    def _place(self, fault: Fault, script: Any) -> bool:
        faults = self.by_script.setdefault(script.label, ScriptFaults())
        anchor = fault.anchor
        if anchor is None or anchor.kind == "event":
            event = fault.event or int(anchor.value if anchor else 0)
            if event > script.events:
                return False
            faults.at_event.setdefault(event, []).append(fault)
            return True
        number = self._exchange(anchor, script)
        if number is None:
            return False
        faults.at_reply.setdefault(number, []).append(fault)
        return True

    @staticmethod
    def _exchange(anchor: Anchor, script: Any) -> int | None:
        if anchor.kind == "exchange":
            return int(anchor.value) if int(anchor.value) in script.requests() else None
        if anchor.kind == "op":
            ops = script.operations
            return int(ops[int(anchor.value) - 1][0]) if int(anchor.value) <= len(ops) else None
        return next((n for n, name in script.operations if name == anchor.value), None)

    @staticmethod
    def _why_not(fault: Fault, scripts: Sequence[Any]) -> str:
        anchor = fault.anchor
        if anchor is None or anchor.kind == "event":
            most = max((s.events for s in scripts), default=0)
            return f"no recorded session has that event (they have at most {most})"
        if anchor.kind == "exchange":
            return (f"exchange #{anchor.value} is not a request a client sends (REST, handshake, subscribe, publish; "
                    "gwsvcr show numbers them)")
        if anchor.kind == "op":
            return "no recorded session has that many operations (" + "; ".join(
                f"{s.label}: {len(s.operations)}" for s in scripts) + ")"
        names = sorted({name for s in scripts for _, name in s.operations})
        return f"no recorded request is named {anchor.value!r} (recorded: {', '.join(names[:8]) or 'none'})"

    def of(self, label: str) -> ScriptFaults:
        return self.by_script.get(label, NO_FAULTS)

    def target(self, request: Request, messages: list[Message] | None, channels_only: bool = False) -> Fault | None:
        """The first target fault that strikes this request (counted as applied), or None."""
        for fault in self.targets:
            if fault.matches(request, messages, channels_only):
                fault.applied += 1
                return fault
        return None

    def status(self) -> list[dict[str, Any]]:
        return [{"spec": f.spec, "applied": f.applied} for f in self.faults]
