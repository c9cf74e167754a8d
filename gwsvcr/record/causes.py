"""Which request caused a pushed event: the recorder's rule, in one place. Replay releases each event its recorded
delay after the live client got the reply of its cause, so the cause is what keeps an event in its place when a
client runs at another pace.

For an event delivered at T (the first byte of the reply that carried it), in its session:

1. ``value``: it carries a value the client made for an earlier request (:mod:`gwsvcr.correlate`): that request.
2. ``subscribe``: it is the first event on its channel since the session's subscribe to that channel (a snapshot
   the server pushes on subscribe): the subscribe, unless a request completed after the subscribe shares a value
   with the event (a call id in its path, a name in its body or its reply): then the latest such request (``value``).
3. ``last``: else the last request of its session, other than a ``/meta/connect``, whose reply completed before T:
   what an operation's notification always was.
4. ``none``: no request completed before it (a recording that began mid-session): its delay counts from the event
   before it in the session, and replay keeps that spacing.

The delay of rules 1 to 3 is T minus the completion of the cause's reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.bayeux import channel_matches
from gwsvcr.cassette import Request

__all__ = ["Cause", "SessionCauses", "shared_values"]

_MIN_SHARED = 4  # a shared value this long or longer links a request and an event
_RECENT = 64  # requests whose values are kept, per session
_WORD = re.compile(rf"[\w\-:.@+]{{{_MIN_SHARED},}}")


@dataclass
class Cause:
    number: int | None
    after: str | None
    delay: float | None
    rule: str


@dataclass
class _Done:
    number: int
    end: float  # when its reply completed
    summary: str
    values: frozenset[str] = frozenset()  # what it shares with an event it explains (kept for recent ones)


@dataclass
class _Subscribed:
    pattern: str
    done: _Done
    seen: set[str] = field(default_factory=set)  # channels an event came on since


def shared_values(request: Request, reply: Any) -> frozenset[str]:
    """The values in a request (path segments that look like ids: a digit or a capital in them, unlike the route's
    own words; query values, JSON body strings) and its JSON reply that would link it to an event carrying one."""
    out = {s for s in request.path.split("/") if len(s) >= _MIN_SHARED and any(c.isdigit() or c.isupper() for c in s)}
    out.update(v for _, v in request.query if len(v) >= _MIN_SHARED)
    if request.kind == "json":
        out |= _words(request.body)
    out |= _words(reply)
    return frozenset(out)


def _words(data: Any) -> set[str]:
    out: set[str] = set()
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= _MIN_SHARED:
            out.add(item)
            out.update(_WORD.findall(item))
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 10 ** (_MIN_SHARED - 1):
            out.add(str(item))
    return out


class SessionCauses:
    """The requests of one session as they complete, and the cause of each event it is pushed."""

    def __init__(self) -> None:
        self.done: list[_Done] = []
        self.subscribed: list[_Subscribed] = []
        self.last_event: float | None = None

    def request_done(self, number: int, end: float, summary: str, values: frozenset[str],
                     subscriptions: list[str]) -> None:
        done = _Done(number, end, summary, values)
        self.done.append(done)
        if len(self.done) > _RECENT:
            self.done[-_RECENT - 1].values = frozenset()
        for pattern in subscriptions:
            self.subscribed = [s for s in self.subscribed if s.pattern != pattern]
            self.subscribed.append(_Subscribed(pattern, done))

    def event(self, message: dict[str, Any], delivered: float, made: int | None = None) -> Cause:
        """The cause of an event delivered at ``delivered``; ``made``: the request whose client-made value it
        carries, if one does."""
        channel = str(message.get("channel"))
        first = None
        for sub in reversed(self.subscribed):
            if sub.done.end <= delivered and channel_matches(sub.pattern, channel) and channel not in sub.seen:
                sub.seen.add(channel)
                first = first or sub
        previous, self.last_event = self.last_event, delivered
        if made is not None:
            cause = next((d for d in reversed(self.done) if d.number == made), None)
            if cause is not None:
                return self._cause(cause, delivered, "value")
        last = next((d for d in reversed(self.done) if d.end <= delivered), None)
        if first is not None:
            words = _words(message.get("data"))
            later = (d for d in reversed(self.done) if first.done.end < d.end <= delivered)
            explains = next((d for d in later if d.values & words), None)
            return self._cause(explains, delivered, "value") if explains else \
                self._cause(first.done, delivered, "subscribe")
        if last is not None:
            return self._cause(last, delivered, "last")
        return Cause(None, None, None if previous is None else delivered - previous, "none")

    @staticmethod
    def _cause(done: _Done, delivered: float, rule: str) -> Cause:
        return Cause(done.number, done.summary, max(0.0, delivered - done.end), rule)
