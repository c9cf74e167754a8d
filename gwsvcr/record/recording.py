"""Turning completed exchanges into cassette documents: sessions kept apart, causes and delays of pushed events,
secrets redacted, each exchange written the moment its reply completed.

Sessions: gwsvcr/session.py decides which exchanges come from one client (cookies the server set, credentials,
clientIds), so one agent's REST calls and CometD messages share one timeline.

Causes: an event delivered at time T (first byte of the reply that carried it) is caused by the last request of
its session, other than a ``/meta/connect``, whose reply completed before T; its delay is T minus that completion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT, is_bayeux, is_event
from gwsvcr.cassette import CassetteWriter, Exchange, ReplyItem, Request, Response
from gwsvcr.record.redact import Redactor
from gwsvcr.session import DEFAULT_RULES, SessionRules, SessionTracker

__all__ = ["ExchangeTimes", "Recorder", "Stats", "WebSocketRecording", "reply_messages"]

_JSONP = re.compile(r"^\s*(?:/\*\*/\s*)?[\w$.]+\s*\((.*)\)\s*;?\s*$", re.DOTALL)  # Faye writes /**/cb([...]);


@dataclass
class ExchangeTimes:
    """Wall-clock seconds (time.time()) of one exchange."""

    request_start: float
    request_end: float
    response_start: float | None = None
    response_end: float | None = None


@dataclass
class _Done:
    end: float  # when the reply completed
    number: int
    summary: str


@dataclass
class Stats:
    exchanges: int = 0
    events: int = 0
    errors: int = 0

    def line(self, sessions: int, redactions: int) -> str:
        return (f"gwsvcr: recorded {self.exchanges} exchanges, {sessions} sessions, {self.events} events, "
                f"{redactions} redactions, {self.errors} upstream failures")


def reply_messages(response: Response | None) -> list[dict[str, object]]:
    """The Bayeux messages of a reply: a JSON array, or one wrapped in a JSONP callback."""
    if response is None:
        return []
    if response.kind in ("messages", "json") and is_bayeux(response.body):
        return list(response.body)
    if response.kind == "text":
        m = _JSONP.match(str(response.body))
        if m:
            try:
                data = json.loads(m.group(1))
            except ValueError:
                return []
            if is_bayeux(data):
                return list(data)
    return []


class Recorder:
    """The recorder's logic without mitmproxy: give it each completed exchange; it writes the cassette."""

    def __init__(self, writer: CassetteWriter | None, redactor: Redactor, t0: float,
                 rules: SessionRules = DEFAULT_RULES, *,
                 on_exchange: Callable[[Exchange], None] | None = None) -> None:
        self.writer = writer
        self.redactor = redactor
        self.t0 = t0
        self.on_exchange = on_exchange  # told of every exchange once written (the live view)
        self.tracker = SessionTracker(rules)
        self.done: dict[str, list[_Done]] = {}  # per session: non-connect exchanges, in order of completion
        self.stats = Stats()

    def complete(self, request: Request, response: Response | None, timing: ExchangeTimes, error: str | None = None,
                 *, transport: str | None = None, delivered_at: list[float] | None = None) -> Exchange:
        """Write one exchange. ``delivered_at`` gives each reply message its own delivery time (WebSocket
        frames arrive one by one); otherwise every message arrived with the reply's first byte."""
        replies = reply_messages(response)
        session = self.tracker.assign(request, response, replies)
        bayeux = wire.bayeux_of(request)
        number = self.writer.take_number() if self.writer else self.stats.exchanges + 1
        ttfb = None if timing.response_start is None else timing.response_start - timing.request_end
        ttlb = None if timing.response_end is None else timing.response_end - timing.request_end
        ex = Exchange(number, session.label, timing.request_start - self.t0, request, response, ttfb, ttlb, error,
                      transport=transport or (bayeux.transport if bayeux else "http"))
        if bayeux is not None and replies and response is not None:
            first = timing.response_start if timing.response_start is not None else timing.request_end
            times = delivered_at or [first] * len(replies)
            response.kind, response.body = "messages", self._items(session.label, replies, times,
                                                                     timing.request_end)
        self.stats.exchanges += 1
        self.stats.errors += error is not None and error.startswith("upstream")
        if timing.response_end is not None and not (bayeux and all(m.get("channel") == CONNECT
                                                                    for m in bayeux.messages)):
            self.done.setdefault(session.label, []).append(_Done(timing.response_end, number,
                                                                 self._summary(request)))
        self.redactor.exchange(ex)
        if self.writer is not None:
            self.writer.write(ex)
        if self.on_exchange is not None:
            self.on_exchange(ex)
        return ex

    def _items(self, session: str, replies: list[dict[str, object]], delivered_at: list[float],
               request_end: float) -> list[ReplyItem]:
        items = []
        for m, delivered in zip(replies, delivered_at, strict=True):
            item = ReplyItem(dict(m))
            if is_event(m):
                self.stats.events += 1
                item.event = gws.summarize_notification(m.get("data")) or str(m.get("channel"))
                cause = next((d for d in reversed(self.done.get(session, ())) if d.end <= delivered), None)
                if cause is not None:
                    item.cause, item.after, item.delay = cause.number, cause.summary, delivered - cause.end
            elif m.get("channel") == CONNECT:
                item.hold = delivered - request_end
            items.append(item)
        return items

    @staticmethod
    def _summary(request: Request) -> str:
        bayeux = wire.bayeux_of(request)
        if bayeux is not None:
            return " + ".join(str(m.get("channel")) for m in bayeux.messages if m.get("channel") != CONNECT)
        return gws.summarize_request(request.method, request.path, request.body)

    def summary(self) -> str:
        return self.stats.line(len(self.tracker.sessions), sum(self.redactor.counts.values()))


@dataclass
class _Frame:
    """A client WebSocket frame waiting for the replies to its messages."""

    messages: list[dict[str, object]]
    sent: float
    waiting: set[str]
    replies: list[tuple[dict[str, object], float]] = field(default_factory=list)


class WebSocketRecording:
    """Pairs the frames of one CometD WebSocket into exchanges: a client frame and the replies to its messages
    (matched by ``id``), plus the events pushed while it waited, each with its own delivery time."""

    def __init__(self, recorder: Recorder, upgrade: Request) -> None:
        self.recorder = recorder
        self.upgrade = upgrade
        self.pending: list[_Frame] = []
        self.orphans: list[tuple[dict[str, object], float]] = []  # events pushed with no frame waiting

    def client_frame(self, messages: list[dict[str, object]], at: float) -> None:
        ids = {str(m["id"]) for m in messages if "id" in m}
        frame = _Frame(messages, at, ids, list(self.orphans))
        self.orphans.clear()
        if ids:
            self.pending.append(frame)
        else:
            self._write(frame, at)

    def server_frame(self, messages: list[dict[str, object]], at: float) -> None:
        for m in messages:
            frame = None
            if not is_event(m) and "id" in m:
                frame = next((f for f in self.pending if str(m["id"]) in f.waiting), None)
                if frame is not None:
                    frame.waiting.discard(str(m["id"]))
            elif self.pending:  # an event rides the held connect, else the oldest frame waiting
                frame = next((f for f in self.pending if any(x.get("channel") == CONNECT for x in f.messages)),
                             self.pending[0])
            if frame is None:
                self.orphans.append((m, at))
                continue
            frame.replies.append((m, at))
            if not frame.waiting:
                self.pending.remove(frame)
                self._write(frame, at)

    def close(self, at: float) -> None:
        for frame in self.pending:
            self._write(frame, at, error="WebSocket closed before the reply")
        self.pending.clear()

    def _write(self, frame: _Frame, at: float, error: str | None = None) -> None:
        request = Request(headers=list(self.upgrade.headers), kind="messages", body=frame.messages, method="WS",
                          path=self.upgrade.path, query=list(self.upgrade.query))
        response = None
        if frame.replies:
            response = Response(kind="json", body=[m for m, _ in frame.replies], status=101)
        first = frame.replies[0][1] if frame.replies else None
        self.recorder.complete(request, response, ExchangeTimes(frame.sent, frame.sent, first, at), error,
                               transport="websocket", delivered_at=[t for _, t in frame.replies])
