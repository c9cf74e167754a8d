"""The Bayeux (CometD) client, written once: ``gwsvcr verify`` and ``gwsvcr load`` drive recorded sessions with it,
``gwsvcr demo`` runs its scripted agent with it and the benchmarks generate their load with it. (The server core
is :mod:`gwsvcr.bayeux`; channel names come from there.)

One :class:`BayeuxClient` is one CometD session over long-polling (each request an HTTP POST of a JSON array) or
a WebSocket (each request a text frame, replies matched by id): it numbers its messages, carries the clientId its
handshake got and the server's advice, keeps one ``/meta/connect`` outstanding all along once started (the next
goes out as soon as the last came back) and hands every pushed event to ``on_event`` with its arrival time. It
sends what it is given, fresh messages (:meth:`BayeuxClient.message`) or recorded ones made its own
(:meth:`BayeuxClient.stamp`); what a reply means is the caller's to judge (:class:`Sent`).

The session's own headers (credentials, cookies, a CSRF token) come from ``headers``; what a reply's headers set
goes to ``learn``. Requests go over a :class:`Wire` (an :class:`~gwsvcr.client.http.HttpClient`, or a stand-in a
test gives); waits are on the injected :class:`~gwsvcr.timeline.Clock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gwsvcr.bayeux import CONNECT, DISCONNECT, HANDSHAKE, SUBSCRIBE, Message, is_bayeux, is_event, is_meta
from gwsvcr.cassette import json_bytes
from gwsvcr.client.http import Observer, Reply, as_request
from gwsvcr.client.target import Dropped, Headers, HttpFailure, Refused, Target, TimedOut
from gwsvcr.errors import GwsvcrError
from gwsvcr.timeline import Clock

__all__ = ["DEFAULT_HOLD", "LONG_POLLING", "TRANSPORTS", "WEBSOCKET", "BayeuxClient", "ConnectEnd", "NotBayeux", "Sent",
           "Socket", "Wire"]

LONG_POLLING, WEBSOCKET = "long-polling", "websocket"
TRANSPORTS = (LONG_POLLING, WEBSOCKET)
DEFAULT_HOLD = 30.0  # seconds a server holds a connect when its handshake gives no advice.timeout
_JSON = ("Content-Type", "application/json;charset=UTF-8")


class NotBayeux(GwsvcrError):
    """The server answered a Bayeux request with something else than Bayeux (an error page: CometD is not at that
    path, or the server failed)."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(message)
        self.reply = reply


class Socket(Protocol):
    """An open WebSocket."""

    closed: bool
    response_headers: Headers

    async def send(self, text: str) -> float: ...

    async def receive(self) -> tuple[str, float] | None: ...

    async def close(self) -> None: ...


class Wire(Protocol):
    """How requests reach the server: :class:`~gwsvcr.client.http.HttpClient`, or a test's stand-in."""

    target: Target

    async def request(self, method: str, target: str, headers: Headers, body: bytes = b"", *,
                      timeout: float | None) -> Reply: ...

    async def websocket(self, path: str, headers: Headers, timeout: float) -> Socket: ...


@dataclass
class Sent:
    """One request's messages and the replies that came, with when they came (wall clock)."""

    messages: list[Message]
    replies: list[Message]
    at: float  # the first byte of the replies (when the events they carry were delivered)
    done: float  # the last byte (where the delays of the events the request causes count from)

    def reply_to(self, message: Message) -> Message | None:
        key = str(message.get("id"))
        return next((r for r in self.replies if str(r.get("id")) == key and not is_event(r)), None)

    @property
    def events(self) -> list[Message]:
        return [m for m in self.replies if is_event(m)]

    def refusal(self) -> Message | None:
        """The first reply to a meta message that says ``successful: false``."""
        for reply in self.replies:
            if reply.get("successful") is False and is_meta(reply.get("channel")):
                return reply
        return None


@dataclass
class ConnectEnd:
    """Why the connects stopped without being told to: the server answered one unsuccessfully (``reply``), or gave
    no Bayeux reply at all (``failure``)."""

    reply: Message | None = None
    failure: HttpFailure | NotBayeux | None = None

    @property
    def why(self) -> str:
        if self.failure is not None:
            return str(self.failure)
        return f"the server ended the CometD session: {json.dumps(self.reply)}"


class BayeuxClient:
    """One CometD session at ``path`` of the wire's target. Connects go over ``poll`` (default: the same wire) to
    ``connect_path`` (default: ``path``); every wait is bounded by ``timeout`` seconds beyond what the server may
    hold (None: no deadline, for a load generator that ends its requests itself)."""

    def __init__(self, wire: Wire, path: str, *, transport: str = LONG_POLLING, clock: Clock | None = None,
                 timeout: float | None = 10.0, headers: Callable[[], Headers] | None = None,
                 learn: Callable[[Headers], None] | None = None,
                 on_event: Callable[[Message, float], None] | None = None, observer: Observer | None = None,
                 poll: Wire | None = None, connect_path: str | None = None) -> None:
        self.wire, self.path = wire, path
        self.poll = poll or wire
        self.connect_path = connect_path or path
        self.transport = transport
        self.clock = clock or Clock()
        self.timeout = timeout
        self.headers = headers or list
        self.learn = learn or _ignore
        self.on_event = on_event or _ignore_event
        self.observer = observer
        self.client_id: str | None = None
        self.hold = DEFAULT_HOLD  # seconds the server may hold a connect (its advice.timeout)
        self.interval = 0.0  # seconds to wait before the next connect (its advice.interval)
        self._ids = itertools.count(1)
        self._connects: asyncio.Task[None] | None = None
        self._stopping = False
        self._socket: Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[tuple[Message, float]]] = {}  # WebSocket replies by id

    # --------------------------------------------------------------------------------------------- messages
    def message(self, channel: str, **fields: object) -> Message:
        """A new message of this session: its own id, its clientId (but for a handshake), its connection type
        on a connect; ``fields`` last."""
        message: Message = {"channel": channel, "id": str(next(self._ids))}
        if self.client_id is not None and channel != HANDSHAKE:
            message["clientId"] = self.client_id
        if channel == CONNECT:
            message["connectionType"] = self.transport
        message.update(fields)
        return message

    def stamp(self, recorded: Message) -> Message:
        """A recorded message as this session sends it: its own id, its clientId, its connection type first; the
        ack and timesync extensions left out (they count per run, and this client speaks neither)."""
        message = copy.deepcopy(recorded)
        message["id"] = str(next(self._ids))
        channel = message.get("channel")
        if channel == HANDSHAKE:
            message.pop("clientId", None)
            offered = [t for t in message.get("supportedConnectionTypes") or [] if t != self.transport]
            message["supportedConnectionTypes"] = [self.transport, *offered]
        elif self.client_id is not None:
            message["clientId"] = self.client_id
        if channel == CONNECT:
            message["connectionType"] = self.transport
        ext = message.get("ext")
        if isinstance(ext, dict):
            ext.pop("ack", None)
            ext.pop("timesync", None)
            if not ext:
                del message["ext"]
        return message

    # --------------------------------------------------------------------------------------------- requests
    async def send(self, messages: list[Message], *, path: str | None = None, headers: Headers | None = None,
                   timeout: float | None = None, wire: Wire | None = None) -> Sent:
        """One request with ``messages``: HttpFailure when no reply came, NotBayeux when it was not Bayeux. A
        ``/meta/disconnect`` among them ends the connects (the server answers the held one)."""
        if any(m.get("channel") == DISCONNECT for m in messages):
            self._stopping = True
        headers = self.headers() if headers is None else headers
        timeout = self.timeout if timeout is None else timeout
        if self.transport == WEBSOCKET:
            return await self._over_websocket(messages, headers, timeout)
        return await self._over_http(messages, path or self.path, headers, timeout, wire or self.wire)

    async def handshake(self, template: Message | None = None, *, path: str | None = None,
                        headers: Headers | None = None) -> Sent:
        """Handshake (``template``: a recorded handshake); a successful reply starts the session."""
        message = self.stamp(template) if template is not None else \
            self.message(HANDSHAKE, version="1.0", supportedConnectionTypes=[self.transport])
        sent = await self.send([message], path=path, headers=headers)
        reply = sent.reply_to(message)
        if reply is not None:
            self.take_handshake(reply)
        return sent

    def take_handshake(self, reply: Message) -> bool:
        """A handshake's reply: when successful, its clientId and advice are this session's from now on."""
        if not reply.get("successful"):
            return False
        if isinstance(reply.get("clientId"), str):
            self.client_id = reply["clientId"]
        self.take_advice(reply)
        return True

    def take_advice(self, reply: Message) -> None:
        advice = reply.get("advice")
        if not advice or not isinstance(advice, dict):
            return
        if isinstance(advice.get("timeout"), int | float):
            self.hold = advice["timeout"] / 1000
        if isinstance(advice.get("interval"), int | float):
            self.interval = max(0.0, advice["interval"] / 1000)

    async def subscribe(self, channel: str, *, path: str | None = None) -> Sent:
        return await self.send([self.message(SUBSCRIBE, subscription=channel)], path=path)

    async def connect(self, template: Message | None = None) -> Sent:
        """One ``/meta/connect``, given as long as the server may hold it and ``timeout`` more."""
        message = self.stamp(template) if template is not None else self.message(CONNECT)
        timeout = None if self.timeout is None else self.hold + self.timeout
        return await self.send([message], path=self.connect_path, timeout=timeout, wire=self.poll)

    async def disconnect(self, *, path: str | None = None, headers: Headers | None = None) -> Sent:
        return await self.send([self.message(DISCONNECT)], path=path, headers=headers)

    # ----------------------------------------------------------------------------------------- connects
    def start_connects(self, templates: Sequence[Message] = (),
                       on_end: Callable[[ConnectEnd], bool] | None = None) -> None:
        """Keep one ``/meta/connect`` outstanding from now on (``templates``: recorded connects, the first for the
        first, the second for the rest). When the server ends them or one fails (not when they are stopped),
        ``on_end`` hears why and says whether to connect again (after the advised interval) or stop."""
        if self._connects is not None and not self._connects.done():
            return
        self._stopping = False
        self._connects = asyncio.ensure_future(self._connect_loop(list(templates), on_end))

    @property
    def stopping(self) -> bool:
        """No further connect goes out (a disconnect was sent, or the connects were stopped)."""
        return self._stopping

    async def _connect_loop(self, templates: list[Message], on_end: Callable[[ConnectEnd], bool] | None) -> None:
        for n in itertools.count():
            if self._stopping:
                return
            try:
                sent = await self.connect(templates[min(n, len(templates) - 1, 1)] if templates else None)
            except (HttpFailure, NotBayeux) as e:
                end: ConnectEnd | None = ConnectEnd(failure=e)
            else:
                for event in sent.events:
                    self.on_event(event, sent.at)
                reply = sent.reply_to(sent.messages[0])
                end = None if reply is not None and reply.get("successful") else ConnectEnd(reply=reply)
                if reply is not None:
                    self.take_advice(reply)
            if end is not None and (self._stopping or on_end is None or not on_end(end)):
                return
            if self.interval:
                await self.clock.sleep(self.interval)

    async def stop_connects(self, grace: float = 0.0) -> None:
        """No further connect; the one outstanding has ``grace`` seconds to come back, then it is dropped."""
        self._stopping = True
        task = self._connects
        if task is None or task.done():
            return
        if grace > 0:
            ended = asyncio.Event()
            task.add_done_callback(lambda _: ended.set())
            await self.clock.wait(ended, grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def close(self) -> None:
        """Stop the connects and close the WebSocket (the wire is its owner's to close)."""
        await self.stop_connects()
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._socket is not None:
            await self._socket.close()
            if self.observer is not None:
                self.observer.websocket_closed(self.clock.wall())
            self._socket = None

    # ---------------------------------------------------------------------------------------- transports
    async def _over_http(self, messages: list[Message], path: str, headers: Headers, timeout: float | None,
                         wire: Wire) -> Sent:
        headers = [h for h in headers if h[0].lower() != "content-type"]
        headers.append(_JSON)
        reply = await wire.request("POST", path, headers, json_bytes(messages), timeout=timeout)
        self.learn(reply.headers)
        try:
            replies = json.loads(reply.body) if reply.body else None
        except (ValueError, RecursionError):
            replies = None
        if not is_bayeux(replies):
            url = wire.target.url(path)
            if reply.status in (401, 403):
                raise Refused(f"POST {url} answered HTTP {reply.status}", reply.status, f"POST {url}")
            raise NotBayeux(f"POST {url} answered HTTP {reply.status} "
                            f"{reply.header('Content-Type') or 'without a Content-Type'}, not Bayeux: "
                            f"{_snippet(reply.body)}", reply)
        assert isinstance(replies, list)
        end = reply.times.response_end or self.clock.wall()
        return Sent(messages, replies, reply.times.response_start or end, end)

    async def _over_websocket(self, messages: list[Message], headers: Headers, timeout: float | None) -> Sent:
        socket = await self._websocket(headers, self.timeout or DEFAULT_HOLD)
        loop = asyncio.get_running_loop()
        futures = {str(m["id"]): loop.create_future() for m in messages}
        self._waiting.update(futures)
        replied = asyncio.gather(*futures.values())
        came = asyncio.Event()
        replied.add_done_callback(lambda _: came.set())
        try:
            try:
                at = await socket.send(json.dumps(messages))
            except OSError as e:
                raise Dropped(f"the WebSocket broke: {e}", self._websocket_url()) from None
            if self.observer is not None:
                self.observer.websocket_frame(messages, True, at)
            if timeout is None:
                await came.wait()
            elif not await self.clock.wait(came, timeout):
                raise TimedOut(f"no reply on the WebSocket within {timeout:g} s", self._websocket_url())
            got = replied.result()
        finally:
            if not replied.done():
                replied.cancel()
            for key in futures:
                self._waiting.pop(key, None)
        last = max(t for _, t in got)
        return Sent(messages, [m for m, _ in got], last, last)

    def _websocket_url(self) -> str:
        return self.wire.target.websocket_url(self.path)

    async def _websocket(self, headers: Headers, timeout: float) -> Socket:
        if self._socket is not None:
            if self._socket.closed:
                raise Dropped("the server closed the WebSocket", self._websocket_url())
            return self._socket
        headers = [h for h in headers if h[0].lower() != "content-type"]
        self._socket = await self.wire.websocket(self.path, headers, timeout)
        self.learn(self._socket.response_headers)
        if self.observer is not None:
            self.observer.websocket_opened(as_request("GET", self.path, headers, b""))
        self._reader = asyncio.ensure_future(self._read_websocket(self._socket))
        return self._socket

    async def _read_websocket(self, socket: Socket) -> None:
        while (received := await socket.receive()) is not None:
            text, at = received
            try:
                data = json.loads(text)
            except ValueError:
                continue
            messages = [data] if isinstance(data, dict) else data
            if not is_bayeux(messages):
                continue
            if self.observer is not None:
                self.observer.websocket_frame(messages, False, at)
            for m in messages:
                future = self._waiting.get(str(m.get("id"))) if not is_event(m) else None
                if future is not None and not future.done():
                    future.set_result((m, at))
                elif is_event(m):
                    self.on_event(m, at)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Dropped("the server closed the WebSocket", self._websocket_url()))


def _ignore(headers: Headers) -> None:
    pass


def _ignore_event(message: Message, at: float) -> None:
    pass


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return repr(text[:80] + ("…" if len(text) > 80 else ""))
