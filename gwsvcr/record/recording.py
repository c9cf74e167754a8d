"""Turning completed exchanges into cassette documents: sessions kept apart, causes and delays of pushed events,
secrets redacted, each exchange written the moment its reply completed.

Sessions: gwsvcr/session.py decides which exchanges come from one client (cookies the server set, credentials,
clientIds), so one agent's REST calls and CometD messages share one timeline. Causes: gwsvcr/record/causes.py
decides which request caused each event (and its delay). Client-made values: gwsvcr/correlate.py finds them and
this module writes its marks (the event carrying one, or the exchange whose own reply carries it).

Never an exchange lost: whatever fails for one exchange (parsing its Bayeux messages, finding its session, its
events' causes, redacting it, writing it), that exchange is still written, as plain HTTP (``transport: http``)
with ``kept_as_http: <why>``: its bodies as parsed when only the parsing failed; its headers and query redacted by
the header rules and its bodies omitted (size and SHA-256) when the redaction failed, since a body that could
not be redacted may hold a secret. Only a cassette that cannot be written stops the recorder (``OSError``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT, SUBSCRIBE, is_bayeux, is_event
from gwsvcr.cassette import CassetteWriter, Exchange, HttpMessage, Omitted, ReplyItem, Request, Response, json_bytes
from gwsvcr.correlate import Correlator
from gwsvcr.record.causes import SessionCauses, shared_values
from gwsvcr.record.redact import Redactor
from gwsvcr.session import DEFAULT_RULES, SessionRules, SessionTracker

__all__ = ["ExchangeTimes", "Recorder", "Stats", "WebSocketRecording", "reply_messages"]

logger = logging.getLogger(__name__)

_JSONP = re.compile(r"^\s*(?:/\*\*/\s*)?[\w$.]+\s*\((.*)\)\s*;?\s*$", re.DOTALL)  # Faye writes /**/cb([...]);


@dataclass
class ExchangeTimes:
    """Wall-clock seconds (time.time()) of one exchange."""

    request_start: float
    request_end: float
    response_start: float | None = None
    response_end: float | None = None


@dataclass
class Stats:
    exchanges: int = 0
    events: int = 0
    errors: int = 0
    kept_as_http: collections.Counter[str] = field(default_factory=collections.Counter)  # why -> exchanges

    def line(self, sessions: int, redactions: int) -> str:
        line = (f"gwsvcr: recorded {self.exchanges} exchanges, {sessions} sessions, {self.events} events, "
                f"{redactions} redactions, {self.errors} upstream failures")
        if self.kept_as_http:
            whys = "; ".join(f"{why} ({n})" if n > 1 else why for why, n in self.kept_as_http.most_common())
            line += f"\ngwsvcr: {self.kept_as_http.total()} exchanges kept as plain HTTP: {whys}"
        return line


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


def _subscriptions(bayeux: wire.BayeuxRequest | None) -> list[str]:
    out: list[str] = []
    for m in bayeux.messages if bayeux else []:
        subs = m.get("subscription")
        if m.get("channel") == SUBSCRIBE:
            out += [str(s) for s in (subs if isinstance(subs, list) else [subs])]
    return out


class Recorder:
    """The recorder's logic without mitmproxy: give it each completed exchange; it writes the cassette."""

    def __init__(self, writer: CassetteWriter | None, redactor: Redactor, t0: float,
                 rules: SessionRules = DEFAULT_RULES, *,
                 on_exchange: Callable[[Exchange], None] | None = None,
                 correlator: Correlator | None = None) -> None:
        self.writer = writer
        self.redactor = redactor
        self.t0 = t0
        self.on_exchange = on_exchange  # told of every exchange once written (the live view)
        self.tracker = SessionTracker(rules)
        self.causes: dict[str, SessionCauses] = {}  # per session: its requests, for the causes of its events
        self.correlator = correlator or Correlator()
        self.stats = Stats()

    def complete(self, request: Request, response: Response | None, timing: ExchangeTimes, error: str | None = None,
                 *, transport: str | None = None, delivered_at: list[float] | None = None) -> Exchange:
        """Write one exchange, whatever it holds (see the module's docstring). ``delivered_at`` gives each reply
        message its own delivery time (WebSocket frames arrive one by one); otherwise every message arrived with
        the reply's first byte. Raises only ``OSError``: the cassette cannot be written."""
        number = self.writer.take_number() if self.writer else self.stats.exchanges + 1
        ttfb = None if timing.response_start is None else timing.response_start - timing.request_end
        ttlb = None if timing.response_end is None else timing.response_end - timing.request_end
        if response is None and error is None:  # a cassette's exchange has one or the other
            error = "no response"
        ex = Exchange(number, "", timing.request_start - self.t0, request, response, ttfb, ttlb, error,
                      transport=transport or "http")
        try:
            self._parse(ex, timing, delivered_at)
        except Exception as e:  # noqa: BLE001 - never lose an exchange: keep it as plain HTTP, say why
            ex.session = ex.session or self._session_of(request, response)
            self._keep_as_http(ex, "not parsed as Bayeux", e)
        self.stats.exchanges += 1
        self.stats.errors += error is not None and error.startswith("upstream")
        self._redact(ex)
        self.stats.events += sum(item.is_event for item in ex.reply_items())
        self._write(ex)
        if self.on_exchange is not None:
            try:
                self.on_exchange(ex)
            except Exception:
                logger.exception("gwsvcr: cannot show exchange %d", ex.number)
        return ex

    def _parse(self, ex: Exchange, timing: ExchangeTimes, delivered_at: list[float] | None) -> None:
        """Session, Bayeux messages and events' causes of ``ex``; nothing of ``ex`` changes until all is known."""
        request, response = ex.request, ex.response
        replies = reply_messages(response)
        bayeux = wire.bayeux_of(request)  # each body read once: the session, the items and the summary share it
        sent = bayeux.messages if bayeux else []
        session = self.tracker.assign(request, response, replies, sent)
        ex.session = session.label
        items = None
        if bayeux is not None and replies and response is not None:
            first = timing.response_start if timing.response_start is not None else timing.request_end
            times = delivered_at or [first] * len(replies)
            items = self._items(session.label, replies, times, timing.request_end)
        body = response.body if response is not None and response.kind == "json" and bayeux is None else None
        self.correlator.request(session.label, ex.number, request, sent)
        ex.correlate = tuple(self.correlator.reply(session.label, ex.number, body))
        if response is not None:
            self.correlator.server_sent(response.headers, body if bayeux is None else replies)
        if timing.response_end is not None and not (bayeux and all(m.get("channel") == CONNECT
                                                                    for m in bayeux.messages)):
            self._causes(session.label).request_done(ex.number, timing.response_end,
                                                     wire.request_summary(request, sent),
                                                     shared_values(request, body), _subscriptions(bayeux))
        if bayeux is not None and ex.transport == "http":
            ex.transport = bayeux.transport
        if items is not None and response is not None:
            response.kind, response.body = "messages", items
        else:
            _plain(response)

    def _session_of(self, request: Request, response: Response | None) -> str:
        """The session of an exchange whose messages could not be read: by its cookies and credentials alone."""
        try:
            return self.tracker.assign(request, response, []).label
        except Exception:  # noqa: BLE001 - the newest session, or the first: a label the cassette needs
            return self.tracker.sessions[-1].label if self.tracker.sessions else "s1"

    def _keep_as_http(self, ex: Exchange, what: str, error: Exception) -> None:
        """``ex`` goes to the cassette as plain HTTP: say so in it (what failed and the error's type: its message
        may quote a value of the exchange, so it goes to stderr only), and count it."""
        why = ex.kept_as_http = f"{what} ({type(error).__name__})"
        ex.transport = "http"
        _plain(ex.response)
        self.stats.kept_as_http[why] += 1
        logger.warning("gwsvcr: exchange %d %s %s kept as plain HTTP: %s: %s", ex.number, ex.request.method,
                       ex.request.path, why, str(error).splitlines()[0][:200] if str(error) else "")

    def _redact(self, ex: Exchange) -> None:
        """Redact ``ex`` in place; when that fails, keep it as plain HTTP with its headers and query redacted by
        the header rules and its bodies omitted (their size and SHA-256)."""
        # Redaction puts new values in place of the old ones: these still say what was received.
        bodies = [(m, _Body.of(m)) for m in (ex.request, ex.response) if m is not None]
        error = ex.error
        try:
            self.redactor.exchange(ex)
        except Exception as e:  # noqa: BLE001 - a body we could not redact must not reach the disk
            for message, body in bodies:
                message.headers = self._headers_only(message.headers)
                message.omitted = message.omitted or body.omitted()
                message.kind, message.body = None, None
            ex.request.query = [(k, self._redacted_value(k, v)) for k, v in ex.request.query]
            ex.error = None if error is None else self._redacted_value("error", error)
            self._keep_as_http(ex, "redaction failed, bodies omitted", e)

    def _headers_only(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self._redacted_value(k, v)) for k, v in headers]

    def _redacted_value(self, name: str, value: str) -> str:
        try:
            return self.redactor.header(name, value)
        except Exception:  # noqa: BLE001 - nothing of a value we could not redact
            return self.redactor.placeholder(value, name)

    def _write(self, ex: Exchange) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(ex)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. JSON nested too deep for YAML: its text is kept instead
            for message in (ex.request, ex.response):
                if message is not None and message.kind in ("json", "messages"):
                    body = _Body.of(message)
                    message.kind, message.body = "text", json_bytes(
                        body.messages if body.messages is not None else body.body).decode()
            self._keep_as_http(ex, "not writable as YAML data, JSON bodies kept as text", e)
            self.writer.write(ex)

    def _causes(self, session: str) -> SessionCauses:
        return self.causes.setdefault(session, SessionCauses())

    def _items(self, session: str, replies: list[dict[str, object]], delivered_at: list[float],
               request_end: float) -> list[ReplyItem]:
        items = []
        causes = self._causes(session)
        for m, delivered in zip(replies, delivered_at, strict=True):
            item = ReplyItem(dict(m))
            if is_event(m):
                item.event = gws.summarize_notification(m.get("data")) or str(m.get("channel"))
                marks = self.correlator.event(session, m)
                cause = causes.event(m, delivered, max((mark.exchange for mark in marks), default=None))
                item.cause, item.after, item.delay, item.rule = cause.number, cause.after, cause.delay, cause.rule
                if cause.number is not None:  # a short value named by --correlate: only in the events it caused
                    marks = self.correlator.event(session, m, cause.number)
                item.correlate = tuple(marks)
            elif m.get("channel") == CONNECT:
                item.hold = delivered - request_end
            items.append(item)
        return items

    def summary(self) -> str:
        return self.stats.line(len(self.tracker.sessions), sum(self.redactor.counts.values()))


def _plain(response: Response | None) -> None:
    """A Bayeux reply not taken apart into timeline items is plain JSON."""
    if response is not None and response.kind == "messages" and not (
            response.body and isinstance(response.body[0], ReplyItem)):
        response.kind = "json"


@dataclass(frozen=True, slots=True)
class _Body:
    """What a body held before redaction (references, no copy: redaction puts new values in place)."""

    kind: str | None
    body: object
    messages: list[dict[str, object]] | None  # reply items' messages

    @classmethod
    def of(cls, message: HttpMessage) -> _Body:
        items = message.body if message.kind == "messages" and isinstance(message.body, list) else []
        messages = [i.message for i in items] if items and isinstance(items[0], ReplyItem) else None
        return cls(message.kind, message.body, messages)

    def omitted(self) -> Omitted | None:
        """Its size and SHA-256, of the bytes as gwsvcr parsed them (JSON re-encoded compactly)."""
        if self.kind is None:
            return None
        try:
            content = json_bytes(self.messages) if self.messages is not None else \
                HttpMessage(kind=self.kind, body=self.body).content()
        except Exception:  # noqa: BLE001 - a body not even that can be read: its text form
            content = repr(self.body).encode("utf-8", "replace")
        return Omitted(len(content), hashlib.sha256(content).hexdigest())


@dataclass
class _Frame:
    """A client WebSocket frame waiting for the replies to its messages."""

    messages: list[dict[str, object]]
    sent: float
    waiting: set[str]
    replies: list[tuple[dict[str, object], float]] = field(default_factory=list)
    single: bool = False  # the frame held one JSON object, not an array


class WebSocketRecording:
    """Pairs the frames of one CometD WebSocket into exchanges: a client frame and the replies to its messages
    (matched by ``id``), plus the events pushed while it waited, each with its own delivery time."""

    def __init__(self, recorder: Recorder, upgrade: Request) -> None:
        self.recorder = recorder
        self.upgrade = upgrade
        self.pending: list[_Frame] = []
        self.orphans: list[tuple[dict[str, object], float]] = []  # events pushed with no frame waiting

    def client_frame(self, messages: list[dict[str, object]], at: float, single: bool = False) -> None:
        ids = {str(m["id"]) for m in messages if "id" in m}
        frame = _Frame(messages, at, ids, list(self.orphans), single)
        self.orphans.clear()
        if ids:
            self.pending.append(frame)
        else:
            self._write(frame, at, error=None if frame.replies else "no reply awaited: its messages carry no id")

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

    def close(self, at: float, closed_by_client: bool | None = None, code: int | None = None) -> None:
        """The socket closed: frames still waiting for replies are written with an error saying who closed it (a
        server that closed it mid-session is a failure replay reproduces; a client that left is not)."""
        code_text = "" if code is None else f"code {code}"
        if closed_by_client is None:
            error = "WebSocket closed before the reply"
        elif closed_by_client:
            error = f"client gone before the reply (it closed the WebSocket{', ' + code_text if code_text else ''})"
        else:
            error = "upstream closed the WebSocket before the reply" + (f" ({code_text})" if code_text else "")
        for frame in self.pending:
            self._write(frame, at, error=error)
        self.pending.clear()
        if self.orphans:  # pushed after the last frame: kept with an empty request of their own
            frame = _Frame([], at, set(), list(self.orphans))
            self.orphans.clear()
            self._write(frame, at, error="pushed after the client's last frame")

    def other_frame(self, content: bytes, from_client: bool, at: float) -> None:
        """A frame that holds no Bayeux message: kept all the same, as a plain exchange of its own."""
        kind, body = wire.parse_body(content, None)
        side = "the client" if from_client else "the server"
        request = Request(headers=list(self.upgrade.headers), kind=kind, body=body, method="WS",
                          path=self.upgrade.path, query=list(self.upgrade.query))
        self.recorder.complete(request, None, ExchangeTimes(at, at),
                               f"a WebSocket frame from {side} that holds no Bayeux message")

    def _write(self, frame: _Frame, at: float, error: str | None = None) -> None:
        kind: str | None = "json" if frame.single else "messages" if frame.messages else None
        body = frame.messages[0] if frame.single else frame.messages or None
        request = Request(headers=list(self.upgrade.headers), kind=kind, body=body, method="WS",
                          path=self.upgrade.path, query=list(self.upgrade.query))
        response = None
        if frame.replies:
            response = Response(kind="json", body=[m for m, _ in frame.replies], status=101)
        first = frame.replies[0][1] if frame.replies else None
        self.recorder.complete(request, response, ExchangeTimes(frame.sent, frame.sent, first, at), error,
                               transport="websocket", delivered_at=[t for _, t in frame.replies])
