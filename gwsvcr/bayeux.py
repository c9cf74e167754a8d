"""The Bayeux (CometD) server core, written once and driven by both the replayer and the simulator.

It answers handshake, connect, subscribe, unsubscribe, disconnect and publish messages, several per request;
echoes the request's ``id`` in every reply; holds a ``/meta/connect`` only when it is alone in its request, the
session is already connected and nothing is queued, until an event arrives or the hold ends; queues events that
fall due while no connect is held; answers an unknown clientId with ``402::session_unknown``. Requests never wait
behind a held connect: each request is its own coroutine. A session can be made to fail (:meth:`Session.fail`):
its held connect, or its next one, is answered with the :class:`Failure` instead of events, and a failure that
ends the session (:func:`ends_session`: an unknown client, advice to handshake again or to stop) removes it.

What is pluggable is the *policy*: a :class:`Hooks` object decides reply fields (the replayer takes them from the
cassette, the simulator from its GWS model) and says what it answered from (an :class:`Answer`'s ``source``, handed
back in :class:`Handled`); events are pushed with :meth:`Session.deliver` or :meth:`BayeuxServer.publish`. How long
a connect is held, and every clock reading, belong to the :class:`~gwsvcr.timeline.Timeline`. Each session carries
a typed ``context``: whose session it is (the replayer's live client, the simulator's user). No mitmproxy import.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.timeline import Timeline, ready, wake_first

__all__ = ["CONNECT", "CORE_REPLY_FIELDS", "DISCONNECT", "HANDSHAKE", "SERVER_CONNECTION_TYPES", "SESSION_UNKNOWN",
           "SUBSCRIBE", "UNSUBSCRIBE", "Answer", "BayeuxServer", "Failure", "Handled", "Hooks",
           "Message", "ServerConfig", "Session", "channel_matches", "ends_session", "is_bayeux", "is_event",
           "is_meta", "new_client_id", "unknown_client"]

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"

SESSION_UNKNOWN = "402::session_unknown"
# Reply fields that tie a reply to its request: always the core's, never a policy's.
CORE_REPLY_FIELDS = frozenset({"id", "channel", "clientId", "subscription"})
SERVER_CONNECTION_TYPES = ("websocket", "long-polling", "callback-polling")

Message = dict[str, Any]


def is_bayeux(data: Any) -> bool:
    """A JSON body is Bayeux when it is a non-empty array of objects that all name a channel."""
    return (isinstance(data, list) and bool(data)
            and all(isinstance(m, dict) and isinstance(m.get("channel"), str) for m in data))


def is_meta(channel: Any) -> bool:
    """A meta channel (``/meta/handshake``, ...): the protocol's own, not an application's."""
    return isinstance(channel, str) and channel.startswith("/meta/")


def is_event(message: Message) -> bool:
    return "data" in message and not is_meta(message.get("channel"))


def channel_matches(pattern: str, channel: str) -> bool:
    """Bayeux channel globbing: ``/a/*`` matches one segment, ``/a/**`` any number."""
    if pattern == channel:
        return True
    if pattern.endswith("/**"):
        return channel.startswith(pattern[:-2])
    if pattern.endswith("/*"):
        prefix = pattern[:-1]
        return channel.startswith(prefix) and "/" not in channel[len(prefix):]
    return False


def new_client_id() -> str:
    return secrets.token_hex(13)


def unknown_client() -> Message:
    """The reply fields for a message of a session the server does not know: CometD's (Faye says
    ``401:<clientId>:Unknown client``), with advice to handshake again."""
    return {"successful": False, "error": SESSION_UNKNOWN, "advice": {"reconnect": "handshake", "interval": 0}}


def ends_session(reply: Message) -> bool:
    """Whether a reply ends its client's session: advice to handshake again or to stop, whatever the error says
    (CometD's ``402::session_unknown``, Faye's ``401:<clientId>:Unknown client``), or a 402 without advice."""
    advice = reply.get("advice")
    if isinstance(advice, dict) and advice.get("reconnect") in ("handshake", "none"):
        return True
    return reply.get("successful") is False and str(reply.get("error", "")).startswith("402:")


@dataclass
class Failure:
    """How a connect fails instead of carrying events: the fields of a Bayeux failure reply (``successful``,
    ``error``, ``advice``), or, when ``instead`` is set, something else than Bayeux that the policy turns into the
    transport's answer (an HTTP error, a closed connection); the core only hands it back (:attr:`Handled.instead`).
    ``ends``: the session is over once the failure is answered; ``after_queued``: events already queued go out
    first (with the connect they woke), the failure answers the connect after. ``source``: what the policy answered
    from."""

    fields: Message = field(default_factory=dict)
    ends: bool = False
    instead: Any = None
    source: int | None = None
    after_queued: bool = False


@dataclass
class ServerConfig:
    timeout_ms: int = 30_000  # how long a connect is held when nothing comes (advice.timeout)
    interval_ms: int = 0  # advice.interval
    max_interval_ms: int = 10_000  # a session with no connect for this long expires
    connection_types: tuple[str, ...] = SERVER_CONNECTION_TYPES


@dataclass(eq=False, slots=True)
class Session[C]:
    client_id: str
    context: C
    connected: bool = False  # a connect has been answered: the next lone connect may be held
    subscriptions: tuple[str, ...] = ()  # a tuple: 48 bytes with one subscription, where a set took 216
    queue: list[Message] = field(default_factory=list)
    last_seen: float = 0.0
    connects: int = 0  # connects received so far
    held: bool = False
    ended: bool = False  # disconnected, expired or failed: gone from the server's sessions
    failures: list[Failure] = field(default_factory=list)  # for the held connect or the next ones, in order
    ack_enabled: bool = False
    ack_batch: int = 0
    unacked: list[tuple[int, list[Message]]] = field(default_factory=list)
    # The held connect's wake-up, only while one is held: a future and a timer per hold, where an Event per session
    # and wait_for per hold cost 1.3 KB more per held agent (docs/BENCHMARKS.md, memory per held session).
    _woken: asyncio.Future[None] | None = None

    def subscribed(self, channel: str) -> bool:
        return any(channel_matches(p, channel) for p in self.subscriptions)

    def deliver(self, message: Message) -> None:
        """Queue an event for this client; a held connect returns with it at once."""
        self.queue.append(message)
        self.wake()

    def wake(self) -> None:
        """End the held connect's wait, if one waits: it then answers with what is queued or failed, or at once (a
        second connect, a disconnect)."""
        if self._woken is not None:
            wake_first(self._woken)  # it answers next, before the requests queued meanwhile

    def fail(self, failure: Failure) -> None:
        """Answer the held connect, or the next one, with ``failure`` instead of events (they stay queued)."""
        self.failures.append(failure)
        self.wake()


@dataclass
class Answer:
    """A policy's answer to one message: reply fields to add or override, and what it answered from."""

    fields: Message = field(default_factory=dict)
    source: int | None = None  # the replayer: the recorded exchange this reply stands for


@dataclass(slots=True)
class Handled:
    """The replies to one request's messages (events included) and the sources the policy answered from."""

    replies: list[Message]
    sources: list[int] = field(default_factory=list)
    instead: Any = None  # a failed connect's answer that is not Bayeux (Failure.instead): it replaces the replies


class Hooks[C]:
    """The policy and event source of a Bayeux server. The defaults behave like a plain CometD server."""

    def on_handshake(self, session: Session[C], message: Message) -> Answer | None:
        """Extra or overriding reply fields; ``{"successful": False, ...}`` refuses the handshake."""
        return None

    def on_connect(self, session: Session[C], message: Message) -> Answer | None:
        """Extra reply fields for this connect (e.g. advice); called before any hold."""
        return None

    def recorded_connect(self, session: Session[C]) -> tuple[float | None, bool] | None:
        """How this connect went when recorded, (hold, carried events), for the timeline; None when unknown."""
        return None

    def on_subscribe(self, session: Session[C], message: Message, subscription: str) -> Answer | None:
        return None

    def on_disconnect(self, session: Session[C], message: Message) -> Answer | None:
        """Reply fields for a disconnect; the session ends either way."""
        return None

    def on_unsubscribe(self, session: Session[C], message: Message, subscription: str) -> Answer | None:
        return None

    def on_publish(self, server: BayeuxServer[C], session: Session[C], message: Message) -> Answer | None:
        """Reply fields for a publish; by default the message goes to every subscriber."""
        server.publish(message["channel"], message.get("data"))
        return None

    def on_session_end(self, session: Session[C], reason: str) -> None:
        """A session disconnected or expired."""


class BayeuxServer[C]:
    def __init__(self, hooks: Hooks[C] | None = None, config: ServerConfig | None = None,
                 timeline: Timeline | None = None) -> None:
        self.hooks: Hooks[C] = hooks or Hooks()
        self.config = config or ServerConfig()
        self.timeline = timeline or Timeline()
        self.clock = self.timeline.clock
        self.sessions: dict[str, Session[C]] = {}
        self._last_sweep = self.clock.now()

    # ------------------------------------------------------------------------------------------------ events
    def publish(self, channel: str, data: Any, *, only: Callable[[Session[C]], bool] | None = None,
                extra: Message | None = None) -> int:
        """Deliver an event to every session subscribed to ``channel``; returns how many got it."""
        count = 0
        for session in list(self.sessions.values()):
            if session.subscribed(channel) and (only is None or only(session)):
                message: Message = {"channel": channel, "data": data}
                if extra:
                    message.update(extra)
                session.deliver(message)
                count += 1
        return count

    def requeue(self, messages: list[Message], replies: list[Message]) -> int:
        """A reply never reached its client (it dropped a held connect): its events go out again, first, with
        that client's next connect. Sessions with the ack extension need not: their next ack asks for them."""
        events = [m for m in replies if is_event(m)]
        for m in messages:
            session = self.sessions.get(str(m.get("clientId")))
            if session is not None and events and not session.ack_enabled:
                session.queue[:0] = events
                session.wake()
                return len(events)
        return 0

    def expire(self) -> list[Session[C]]:
        """End the sessions that sent no connect for max_interval (and are not held)."""
        now = self.clock.now()
        limit = self.config.max_interval_ms / 1000
        gone = [s for s in self.sessions.values() if not s.held and now - s.last_seen > limit]
        for s in gone:
            self._end(s, "expired")
        self._last_sweep = now
        return gone

    def close(self) -> None:
        for s in list(self.sessions.values()):
            self._end(s, "server stopped")

    def _end(self, session: Session[C], reason: str) -> None:
        if self.sessions.pop(session.client_id, None) is not None:
            session.ended = True
            session.wake()
            self.hooks.on_session_end(session, reason)

    # ---------------------------------------------------------------------------------------------- requests
    def handle(self, messages: list[Message], context: C | None = None) -> Coroutine[Any, Any, Handled]:
        """Answer one HTTP request's worth of Bayeux messages (await it: the reply array, events included).
        ``context`` is whose session a handshake in it starts. The messages are handled when this is called; what
        it returns answers the connect among them, if any (held: it is then the only frame of the core's own a
        held connect keeps), else is ready at once."""
        now = self.clock.now()
        if now - self._last_sweep > 1.0:
            self.expire()
        handled = Handled([])
        replies = handled.replies
        connect: tuple[Session[C], Message] | None = None
        for message in messages:
            channel = message.get("channel")
            if not isinstance(channel, str) or not channel.startswith("/"):
                replies.append(_reply(message, successful=False, error="400::channel missing or invalid"))
                continue
            if channel == HANDSHAKE:
                if any(r.get("channel") == HANDSHAKE for r in replies):  # one session per request, no more
                    replies.append(_reply(message, successful=False, error="400::one handshake per request"))
                elif context is None:  # the policy did not say whose session this would be
                    replies.append(_reply(message, successful=False, error="403::handshake denied"))
                else:
                    replies.append(self._handshake(message, context, handled))
                continue
            session = self.sessions.get(str(message.get("clientId")))
            if session is None:
                replies.append(self._unknown(message))
                continue
            session.last_seen = now
            if channel == CONNECT:
                connect = (session, message)
            elif channel == DISCONNECT:
                answer = self.hooks.on_disconnect(session, message)
                replies.append(_merge(_reply(message, successful=True, clientId=session.client_id),
                                      _fields(answer, handled)))
                self._end(session, "disconnected")
            elif channel == SUBSCRIBE:
                replies.append(self._subscribe(session, message, handled, add=True))
            elif channel == UNSUBSCRIBE:
                replies.append(self._subscribe(session, message, handled, add=False))
            elif is_meta(channel):
                replies.append(_reply(message, successful=False, error=f"400::unknown meta channel {channel}"))
            else:
                answer = self.hooks.on_publish(self, session, message)
                replies.append(_merge(_reply(message, successful=True), _fields(answer, handled)))
        if connect is None:
            return ready(handled)
        session, message = connect
        return self._connect(session, message, len(messages) == 1, handled)

    def _handshake(self, message: Message, context: C, handled: Handled) -> Message:
        offered = message.get("supportedConnectionTypes")
        ours = list(self.config.connection_types)
        common = [t for t in ours if not isinstance(offered, list) or t in offered]
        session = Session(new_client_id(), context, last_seen=self.clock.now())
        extra = _fields(self.hooks.on_handshake(session, message), handled)
        reply = _reply(message, successful=True, version="1.0", supportedConnectionTypes=common or ours,
                       advice={"reconnect": "retry", "interval": self.config.interval_ms,
                               "timeout": self.config.timeout_ms})
        if not common:
            reply.update(successful=False, error=f"301::{offered}::connection types not supported")
        _merge(reply, extra)
        ext = message.get("ext")
        if isinstance(ext, dict) and ext.get("ack") is True:
            session.ack_enabled = True
            reply.setdefault("ext", {})["ack"] = True
        if reply.get("successful"):
            reply["clientId"] = session.client_id
            self.sessions[session.client_id] = session
        else:
            reply.pop("clientId", None)
        _timesync(message, reply, 0.0, self.clock.wall())
        return reply

    @staticmethod
    def _unknown(message: Message) -> Message:
        return _merge(_reply(message), unknown_client())

    def _subscribe(self, session: Session[C], message: Message, handled: Handled, *, add: bool) -> Message:
        subs = message.get("subscription")
        raw = subs if isinstance(subs, list) else [subs]
        names = [s for s in raw if isinstance(s, str) and s.startswith("/")]
        if not names or len(names) != len(raw):
            return _reply(message, successful=False, error="403::subscription missing or invalid",
                          subscription=subs, clientId=session.client_id)
        extra: Message = {}
        for name in names:
            hook = self.hooks.on_subscribe if add else self.hooks.on_unsubscribe
            extra.update(_fields(hook(session, message, name), handled))
        if extra.get("successful", True):
            had = session.subscriptions
            session.subscriptions = (*had, *(n for n in dict.fromkeys(names) if n not in had)) if add else \
                tuple(p for p in had if p not in names)
        return _merge(_reply(message, successful=True, subscription=subs, clientId=session.client_id), extra)

    async def _connect(self, session: Session[C], message: Message, alone: bool, handled: Handled) -> Handled:
        """The connect's replies (and the events it carries) after the other replies of ``handled``."""
        started = self.clock.now()
        session.connects += 1
        extra = _fields(self.hooks.on_connect(session, message), None)
        self._take_ack(session, message)
        # Only one connect is held per client: a new one answers the old one at once.
        if session.held:
            session.wake()
        advice = message.get("advice")
        seconds = self.timeline.connect_hold(
            alone=alone, connected=session.connected, queued=bool(session.queue or session.failures),
            client_timeout=advice.get("timeout") if isinstance(advice, dict) else None,
            timeout=self.config.timeout_ms / 1000, recorded=self.hooks.recorded_connect(session))
        if seconds > 0:  # held here, not in a coroutine of its own: a held connect's chain of frames is its cost
            session.held = True
            session._woken = woken = asyncio.get_running_loop().create_future()
            timer = self.clock.call_at(self.clock.now() + seconds, wake_first, woken)  # the hold ends empty
            try:
                await woken
            finally:
                timer.cancel()
                if session._woken is woken:  # not yet another connect's hold (a second connect released this one)
                    session._woken = None
                    session.held = False
            del woken, timer
            self.clock.run_due()  # what fell due while the connects woken before this one were answered
        session.connected = True
        session.last_seen = self.clock.now()
        if session.failures and not session.ended and not (session.failures[0].after_queued and session.queue):
            handled.replies.append(self._fail(session, message, session.failures.pop(0), handled))
            return handled
        events, session.queue = session.queue, []
        if session.client_id not in self.sessions and not events:
            handled.replies.append(self._unknown(message))
            return handled
        reply = _reply(message, successful=True, clientId=session.client_id,
                       advice={"reconnect": "retry", "interval": self.config.interval_ms,
                               "timeout": self.config.timeout_ms})
        # A hook's fields, their objects copied: what it answers a connect with may be its own for every client (the
        # replayer's recorded advice), not copied before a hold that may last the whole advice.timeout.
        _merge(reply, {key: dict(value) if type(value) is dict else value for key, value in extra.items()})
        if session.ack_enabled:
            session.ack_batch += 1
            if events:
                session.unacked.append((session.ack_batch, list(events)))
            reply.setdefault("ext", {})["ack"] = session.ack_batch
        held = self.clock.now() - started
        _timesync(message, reply, held, self.clock.wall() - held)
        handled.replies += [*events, reply]
        return handled

    def _fail(self, session: Session[C], message: Message, failure: Failure, handled: Handled) -> Message:
        """A connect answered with a failure; its session's queued events wait for the next connect (or, when the
        failure ends the session, for whatever :meth:`Hooks.on_session_end` does with them)."""
        if failure.source is not None:
            handled.sources.append(failure.source)
        if failure.instead is not None:
            handled.instead = failure.instead
        reply = _merge(_reply(message, successful=False), failure.fields)
        if failure.ends:
            self._end(session, "failed")
        return reply

    @staticmethod
    def _take_ack(session: Session[C], message: Message) -> None:
        """The ack extension: events of batches the client did not confirm are sent again."""
        if not session.ack_enabled:
            return
        ext = message.get("ext")
        acked = ext.get("ack") if isinstance(ext, dict) else None
        if not isinstance(acked, int) or isinstance(acked, bool):
            return
        # Whatever was not confirmed goes out again with the next reply (and is tracked anew there).
        lost = [m for batch, msgs in session.unacked if batch > acked for m in msgs]
        session.unacked = []
        session.queue[:0] = lost


def _reply(message: Message, **fields: Any) -> Message:
    reply: Message = {"channel": message.get("channel")}
    if "id" in message:
        reply["id"] = message["id"]
    reply.update(fields)
    return reply


def _fields(answer: Answer | None, handled: Handled | None) -> Message:
    """A hook's reply fields; what it answered from is noted for the caller."""
    if answer is None:
        return {}
    if answer.source is not None and handled is not None:
        handled.sources.append(answer.source)
    return answer.fields


def _merge(reply: Message, extra: Message | None) -> Message:
    """Add a hook's fields to a reply; the fields that tie a reply to its request stay the core's."""
    for key, value in (extra or {}).items():
        if key not in CORE_REPLY_FIELDS:
            reply[key] = value
    return reply


def _timesync(request: Message, reply: Message, held: float, arrived: float) -> None:
    """The timesync extension: echo the client's tc, say when we received the request (ts, ``arrived`` in epoch
    seconds) and how long we held it (p). ``ts`` is the arrival time, not the reply time: clients compute
    lag = (now - tc - p) / 2 and offset = ts - tc - lag, so a reply-time ts would add every hold to their offset."""
    ext = request.get("ext")
    sync = ext.get("timesync") if isinstance(ext, dict) else None
    if not isinstance(sync, dict) or "tc" not in sync:
        return
    held_ms = int(held * 1000)
    reply.setdefault("ext", {})["timesync"] = {"tc": sync["tc"], "ts": int(arrived * 1000),
                                               "p": held_ms, "a": 0}

