"""A recorded session as a script for its client side: the requests to send again, in recorded order, each with its
offset and the notifications (and failures) the client had met before it was sent; the notifications expected, each
with the request that caused it and its recorded delay; the failures the server gave it; the CometD transport, path
and connect messages.

``/meta/connect`` is not in the script: the driver keeps its own long-poll outstanding, as a CometD client does,
and how many connects a session needed depends on timing, not on what it did (as ``gwsvcr diff`` sees it). A
connect the server failed is a :class:`Failure` to meet again, though; so is a request it failed (no reply, or an
error page where Bayeux was awaited), which stays in the script with what it met (``Action.failed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT, DISCONNECT, HANDSHAKE, Message
from gwsvcr.cassette import Cassette, Exchange, ReplyItem
from gwsvcr.client.bayeux import LONG_POLLING, WEBSOCKET
from gwsvcr.describe import bayeux_request_summary, rest_operation, shorten_path
from gwsvcr.errors import GwsvcrError
from gwsvcr.verify.failures import Failure, refused_connect, server_failure

# CometD clients append the message type to the URL of a meta message (PROTOCOL.md section 1)
_MESSAGE_TYPE_SUFFIX = re.compile(r"/(handshake|connect|disconnect|subscribe|unsubscribe)$")


class PlanError(GwsvcrError, ValueError):
    """The cassette (``path``) has no such session, or nothing verify could send."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class ExpectedEvent:
    order: int
    message: Message  # as recorded
    exchange: int  # the recorded exchange that delivered it
    cause: int | None  # the recorded exchange whose reply caused it
    after: str | None  # what that was, e.g. StopCallRecording
    delay: float | None  # recorded seconds after the cause's reply
    delivered: float  # recorded seconds since the episode began

    @property
    def summary(self) -> str:
        return gws.summarize_notification(self.message.get("data")) or str(self.message.get("channel"))

    @property
    def name(self) -> str:
        return f"<- {self.message.get('channel')} {self.summary}"

    @property
    def cause_text(self) -> str:
        return f"#{self.cause} {self.after}" if self.cause is not None else "the start"


@dataclass
class ConnectFailure:
    """A connect the server failed when recorded, met again live before the requests recorded after it."""

    exchange: int
    at: float  # seconds after the session's first request that the client met it
    failure: Failure


@dataclass
class Action:
    """A recorded request to send again: REST, or the Bayeux messages of one request without its connect."""

    exchange: Exchange
    offset: float  # seconds after the session's first request
    messages: list[Message] | None = None  # Bayeux; None for REST
    waits_for: list[ExpectedEvent] = field(default_factory=list)  # seen by the client before it sent this
    failed: Failure | None = None  # how the server failed it when recorded
    after_failures: list[ConnectFailure] = field(default_factory=list)  # met by the client before it sent this

    @property
    def number(self) -> int:
        return self.exchange.number

    @property
    def channels(self) -> list[str]:
        return [str(m.get("channel")) for m in self.messages or []]

    @property
    def name(self) -> str:
        if self.messages is None:
            request = self.exchange.request
            return f"{shorten_path(f'{request.method} {request.path}')} {rest_operation(request)}".rstrip()
        return " + ".join(f"{m.get('channel')} {bayeux_request_summary(m)}".rstrip() for m in self.messages)

    @property
    def operation(self) -> str:
        """What people call it: StopCallRecording, GET /api/v2/me, /meta/subscribe."""
        if self.messages is None:
            return gws.summarize_request(self.exchange.request.method, self.exchange.request.path,
                                         self.exchange.request.body)
        return " + ".join(self.channels)


@dataclass
class Plan:
    path: str  # the cassette
    session: str
    actions: list[Action]
    events: list[ExpectedEvent]
    transport: str  # as recorded: long-polling or websocket
    cometd_path: str  # where CometD was: the long-polling base path or the WebSocket path
    connect_path: str  # where long-polling connects went (CometD JS appends /connect)
    connect_messages: list[Message]  # recorded /meta/connect messages, in order (templates)
    handshake: Message | None  # the recorded handshake message (a template when the session has none to send)
    bayeux_headers: list[tuple[str, str]] = field(default_factory=list)  # the first Bayeux request's
    connect_headers: list[tuple[str, str]] = field(default_factory=list)  # the first connect request's
    failures: list[ConnectFailure] = field(default_factory=list)  # connects the server failed, in order

    def summary(self) -> str:
        rest = sum(a.messages is None for a in self.actions)
        return (f"{self.path} session {self.session}: {rest} REST requests, {len(self.actions) - rest} Bayeux "
                f"requests, {len(self.events)} notifications")


def session_labels(cassette: Cassette) -> list[str]:
    """Sessions as ``gwsvcr diff`` names them: s1, s2, ..., and s1@2 for session s1 of episode 2."""
    return list(dict.fromkeys(_label(ex) for ex in cassette.exchanges))


def _label(ex: Exchange) -> str:
    return ex.session if ex.episode == 1 else f"{ex.session}@{ex.episode}"


def choose_session(cassette: Cassette, wanted: str | None) -> str:
    labels = session_labels(cassette)
    if not labels:
        raise PlanError(f"{cassette.path}: no exchanges to verify", cassette.path)
    if wanted is None:
        if len(labels) > 1:
            raise PlanError(f"{cassette.path} holds {len(labels)} sessions ({', '.join(labels)}): choose one with "
                            "--session", cassette.path)
        return labels[0]
    if wanted not in labels:
        raise PlanError(f"{cassette.path}: no session {wanted!r}; it has {', '.join(labels)}", cassette.path)
    return wanted


def build(cassette: Cassette, session: str) -> Plan:
    exchanges = sorted((ex for ex in cassette.exchanges if _label(ex) == session), key=lambda e: (e.start, e.number))
    if not exchanges:
        raise PlanError(f"{cassette.path}: no session {session!r}", cassette.path)
    t0 = exchanges[0].start
    by_number = {ex.number: ex for ex in exchanges}
    actions: list[Action] = []
    events: list[ExpectedEvent] = []
    connects: list[Message] = []
    handshake: Message | None = None
    bayeux_headers: list[tuple[str, str]] | None = None
    connect_headers: list[tuple[str, str]] | None = None
    transport, cometd_path, connect_path = LONG_POLLING, "", ""
    failures: list[ConnectFailure] = []
    # a connect answered after the client's disconnect went out ends as the client asked, not as the server failed
    disconnected = min((ex.start for ex in exchanges if any(m.get("channel") == DISCONNECT for m in
                                                            _messages(ex))), default=float("inf"))
    for ex in exchanges:
        bayeux = wire.bayeux_of(ex.request)
        failed = server_failure(ex)
        if bayeux is None:
            if ex.response is not None or failed:  # a request the client itself gave up has nothing to compare
                actions.append(Action(ex, ex.start - t0, failed=failed))
            continue
        if ex.transport == WEBSOCKET:
            transport = WEBSOCKET
            cometd_path = ex.request.path
        elif not cometd_path:
            cometd_path = _MESSAGE_TYPE_SUFFIX.sub("", ex.request.path) or "/"
        if bayeux_headers is None:
            bayeux_headers = ex.request.headers
        if connect_headers is None and any(m.get("channel") == CONNECT for m in bayeux.messages):
            connect_headers = ex.request.headers
        connects += [m for m in bayeux.messages if m.get("channel") == CONNECT]
        if connects and not connect_path and ex.transport != WEBSOCKET:
            connect_path = ex.request.path
        handshake = handshake or next((m for m in bayeux.messages if m.get("channel") == HANDSHAKE), None)
        sent = [m for m in bayeux.messages if m.get("channel") != CONNECT]
        if sent and (ex.response is not None or failed or any(m.get("channel") == DISCONNECT for m in sent)):
            actions.append(Action(ex, ex.start - t0, sent, failed=failed))
        elif not sent and ex.start + (ex.ttfb or ex.ttlb or 0.0) < disconnected:
            failed = failed or refused_connect(ex)
            if failed is not None:
                failures.append(ConnectFailure(ex.number, ex.start + (ex.ttfb or ex.ttlb or 0.0) - t0, failed))
        events += [_expected(len(events), ex, item, by_number) for item in ex.reply_items() if item.is_event]
    if not actions:
        raise PlanError(f"{cassette.path}: session {session} sent nothing but long-polls: nothing to verify",
                        cassette.path)
    events.sort(key=lambda e: (e.delivered, e.order))
    for action in actions:
        action.waits_for = [e for e in events if e.delivered < action.exchange.start]
        action.after_failures = [f for f in failures if f.at < action.offset]
    return Plan(cassette.path, session, actions, events, transport, cometd_path, connect_path or cometd_path,
                connects, handshake, list(bayeux_headers or []), list(connect_headers or bayeux_headers or []),
                failures)


def _messages(ex: Exchange) -> list[Message]:
    bayeux = wire.bayeux_of(ex.request)
    return bayeux.messages if bayeux is not None else []


def _expected(order: int, ex: Exchange, item: ReplyItem, by_number: dict[int, Exchange]) -> ExpectedEvent:
    delivered = ex.start + (ex.ttfb or 0.0)
    cause = by_number.get(item.cause) if item.cause is not None else None
    if cause is not None and item.delay is not None:  # a WebSocket frame's own time, not its exchange's
        delivered = cause.start + (cause.ttlb if cause.ttlb is not None else cause.ttfb or 0.0) + item.delay
    return ExpectedEvent(order, item.message, ex.number, item.cause, item.after, item.delay, delivered)
