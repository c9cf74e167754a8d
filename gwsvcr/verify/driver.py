"""Drive one recorded session's client side against a live server and check what comes back.

:class:`SessionDriver` is the one class that does it, for ``gwsvcr verify`` and for a load test that runs many at
once: it logs in with the credentials given, sends the recorded requests again (REST, the CometD handshake,
subscribes, publishes, the disconnect) while keeping a ``/meta/connect`` outstanding all along, as a CometD client
does, and reports through a :class:`Listener`, as it happens, one :class:`~gwsvcr.verify.checks.Check` per
operation and per expected notification, and every exchange on the wire (for ``--record``).

When to send (``timing``): a request goes out after the reply to the one before it and after the notifications the
recorded client had received before it sent it (or their ``timeout``); with ``recorded`` timing also not before its
recorded offset from the session's start; with ``instant`` timing at once.

Comparing: with ``gwsvcr diff``'s rules (:mod:`gwsvcr.compare`): volatile values ignored, a notification's delay
after its cause compared with the recorded one within ``threshold``. A live notification is matched to the first
expected one of the same kind (channel and notificationType) whose cause was sent and which has not come yet; its
cause's live reply is what its delay counts from.

Bad input ends the run with a :class:`VerifyError` naming what happened: the server is unreachable or refuses the
login (exit 2), or answers something else than Bayeux on the CometD path (exit 1). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from gwsvcr import compare, gws, wire
from gwsvcr.bayeux import CONNECT, DISCONNECT, HANDSHAKE, Message, is_bayeux, is_event
from gwsvcr.cassette import Request, Response, json_bytes
from gwsvcr.describe import event_key
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.timeline import Timing
from gwsvcr.verify.checks import (
    DIFFERS,
    FAILED,
    LATE,
    MISSING,
    NOTIFICATION,
    OK,
    OPERATION,
    UNEXPECTED,
    Check,
    Result,
    ms,
)
from gwsvcr.verify.http import HttpClient, HttpFailure, Reply, Target
from gwsvcr.verify.live import Credentials, LiveValues
from gwsvcr.verify.plan import WEBSOCKET, Action, ExpectedEvent, Plan
from gwsvcr.verify.websocket import WebSocket

_REFUSED = (401, 403)
_DEFAULT_HOLD = 30.0  # seconds a server holds a connect when its handshake gives no advice.timeout
_GRACE = 1.0  # seconds the last connect has to come back after the disconnect


class VerifyError(GwsvcrError):
    """The run cannot go on; ``exit_code`` 2 for bad input (unreachable, login refused), 1 for a server that
    answers something else than what CometD needs."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Options:
    timing: Timing = Timing.RECORDED
    threshold: float = 0.05  # seconds a notification's delay may differ from the recorded one
    timeout: float = 10.0  # seconds to wait for each expected notification and each reply
    transport: str | None = None  # None: as recorded
    binds: tuple[str, ...] = ()
    volatility: compare.Volatility = field(default_factory=compare.Volatility)


class Listener:
    """What a driver reports, as it happens; override what you need (the CLI prints, ``--record`` writes, a
    load test counts)."""

    def check(self, check: Check) -> None:
        """One operation or notification checked."""

    def exchange(self, request: Request, response: Response | None, times: ExchangeTimes,
                 error: str | None = None) -> None:
        """One HTTP exchange, as sent and received (``times`` in wall-clock seconds)."""

    def websocket_opened(self, upgrade: Request) -> None:
        """The CometD WebSocket is open."""

    def websocket_frame(self, messages: list[Message], from_client: bool, at: float) -> None:
        """One frame of Bayeux messages, sent or received at ``at`` (wall clock)."""

    def websocket_closed(self, at: float) -> None:
        """The CometD WebSocket closed."""


class Listeners(Listener):
    """Several listeners heard as one (``None`` left out)."""

    def __init__(self, *listeners: Listener | None) -> None:
        self.listeners = [one for one in listeners if one is not None]

    def check(self, check: Check) -> None:
        for one in self.listeners:
            one.check(check)

    def exchange(self, request: Request, response: Response | None, times: ExchangeTimes,
                 error: str | None = None) -> None:
        for one in self.listeners:
            one.exchange(request, response, times, error)

    def websocket_opened(self, upgrade: Request) -> None:
        for one in self.listeners:
            one.websocket_opened(upgrade)

    def websocket_frame(self, messages: list[Message], from_client: bool, at: float) -> None:
        for one in self.listeners:
            one.websocket_frame(messages, from_client, at)

    def websocket_closed(self, at: float) -> None:
        for one in self.listeners:
            one.websocket_closed(at)


@dataclass
class _Expectation:
    event: ExpectedEvent
    open: bool = False  # its cause was sent: it may come
    came: asyncio.Event = field(default_factory=asyncio.Event)  # matched, or given up
    missed: bool = False  # given up: reported missing
    timer: asyncio.TimerHandle | None = None  # when it is given up


@dataclass
class _Sent:
    """A Bayeux request: its messages and the replies that came, with when they came."""

    messages: list[Message]
    replies: list[Message]
    at: float  # wall clock: the first byte of the replies (when the events they carry were delivered)
    done: float  # wall clock: the last byte (where the delays of the events this request causes count from)


class SessionDriver:
    def __init__(self, plan: Plan, target: Target | str, credentials: Credentials | None = None,
                 options: Options | None = None, listener: Listener | None = None) -> None:
        self.plan = plan
        self.target = Target.parse(target) if isinstance(target, str) else target
        self.options = options or Options()
        self.listener = listener or Listener()
        self.transport = self.options.transport or plan.transport
        self.live = LiveValues.with_binds(credentials, self.options.binds)
        self.http = HttpClient(self.target, connect_timeout=self.options.timeout)
        self.checks: list[Check] = []
        self.client_id: str | None = None
        self._ids = itertools.count(1)
        self._expected = [_Expectation(e) for e in plan.events]
        self._replied: dict[int, float] = {}  # recorded exchange number -> wall clock its live reply completed
        self._hold = _DEFAULT_HOLD
        self._stopping = False
        self._connects: asyncio.Task[None] | None = None
        self._socket: WebSocket | None = None
        self._socket_reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[tuple[Message, float]]] = {}  # WebSocket replies by id

    # ------------------------------------------------------------------------------------------------- run
    async def run(self) -> Result:
        """Drive the session to its end; VerifyError when it cannot go on."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        t0, causes = self.plan.actions[0].exchange.start, {a.number for a in self.plan.actions}
        for x in self._expected:
            if x.event.cause not in causes:  # none recorded, or one verify does not send
                x.open = True
                self._give_up_at(x, start + x.event.delivered - t0 + self.options.timeout)
        try:
            for i, action in enumerate(self.plan.actions):
                waits_for = {id(e) for e in action.waits_for}
                await self._seen([x for x in self._expected if id(x.event) in waits_for])
                if self.options.timing == Timing.RECORDED:
                    await asyncio.sleep(max(0.0, start + action.offset - loop.time()))
                await self._send(action, first=i == 0)
            await self._seen(self._expected)
            await self._end_session()
        finally:
            await self.close()
        return Result(self.checks)

    async def close(self) -> None:
        self._stopping = True
        for task in (self._connects, self._socket_reader):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for x in self._expected:
            if x.timer is not None:
                x.timer.cancel()
        if self._socket is not None:
            await self._socket.close()
            self.listener.websocket_closed(time.time())
            self._socket = None
        await self.http.close()

    def _report(self, check: Check) -> None:
        self.checks.append(check)
        self.listener.check(check)

    # --------------------------------------------------------------------------------------- notifications
    def _give_up_at(self, x: _Expectation, deadline: float) -> None:
        """At ``deadline`` (loop time) ``x`` is missing if it has not come."""
        if x.timer is None and not x.came.is_set():
            x.timer = asyncio.get_running_loop().call_at(deadline, self._missing, x)

    def _missing(self, x: _Expectation) -> None:
        if x.came.is_set():
            return
        x.came.set()
        x.missed = True
        event = x.event
        self._report(Check(NOTIFICATION, MISSING, event.exchange, event.name, event.cause_text, event.summary, None,
                           recorded_delay=event.delay,
                           note=f"nothing within {self.options.timeout:g} s"))

    async def _seen(self, expectations: list[_Expectation]) -> None:
        await asyncio.gather(*(x.came.wait() for x in expectations))

    def _on_event(self, message: Message, at: float) -> None:
        key = event_key(message)
        x = next((x for x in self._expected if x.open and not x.came.is_set()
                  and event_key(x.event.message) == key), None)
        summary = gws.summarize_notification(message.get("data")) or str(message.get("channel"))
        if x is None:
            cause, replied = self._last_reply_before(at)
            late = next((x for x in self._expected if x.missed and event_key(x.event.message) == key), None)
            note = ""
            if late is not None:  # it came after all, after its --timeout
                late.missed = False
                note = f"came after the {self.options.timeout:g} s timeout of #{late.event.exchange}"
            self._report(Check(NOTIFICATION, UNEXPECTED, None, f"<- {message.get('channel')} {summary}", cause,
                               "nothing", summary, delay=None if replied is None else at - replied, note=note))
            return
        x.came.set()
        if x.timer is not None:
            x.timer.cancel()
        event = x.event
        self.live.learn_values(event.message, message, event.name)
        expected = compare.event_fields(self.live.bind(event.message), self.options.volatility)
        changed = compare.changed_fields(expected, compare.event_fields(message, self.options.volatility),
                                      "recorded", "live")
        replied = self._replied.get(event.cause) if event.cause is not None else None
        delay = None if replied is None else at - replied
        status, note = (DIFFERS, "") if changed else (OK, "")
        if compare.delays_differ(event.delay, delay, self.options.threshold):
            assert event.delay is not None and delay is not None
            word = "later" if delay > event.delay else "earlier"
            note = f"{ms(abs(delay - event.delay))} {word} than recorded (threshold {ms(self.options.threshold)})"
            status = status if changed else LATE
        self._report(Check(NOTIFICATION, status, event.exchange, f"<- {message.get('channel')} {summary}",
                           event.cause_text, event.summary, summary, changed, delay, event.delay, note))

    def _last_reply_before(self, at: float) -> tuple[str, float | None]:
        done = [(t, n) for n, t in self._replied.items() if t <= at]
        if not done:
            return "the start", None
        t, number = max(done)
        action = next(a for a in self.plan.actions if a.number == number)
        return f"#{number} {action.operation}", t

    def _sending(self, action: Action) -> None:
        """The notifications ``action`` causes may come from now on."""
        for x in self._expected:
            if x.event.cause == action.number:
                x.open = True

    def _replied_to(self, action: Action, at: float) -> None:
        """``action`` got its live reply (or failed) at ``at`` (wall clock): its notifications' delays count from
        there, and they have ``timeout`` to come."""
        self._replied[action.number] = at
        deadline = asyncio.get_running_loop().time() + self.options.timeout
        for x in self._expected:
            if x.event.cause == action.number:
                self._give_up_at(x, deadline)

    # ------------------------------------------------------------------------------------------- requests
    async def _send(self, action: Action, first: bool) -> None:
        self._sending(action)
        if action.messages is None:
            await self._rest(action, first)
        else:
            await self._bayeux_action(action, first)

    async def _rest(self, action: Action, first: bool) -> None:
        recorded = action.exchange.request
        path = self.live.bind(recorded.path)
        query = [(k, self.live.bind(v)) for k, v in recorded.query]
        target = quote(path, safe="/:@!$&'()*+,;=-._~%") + (f"?{urlencode(query)}" if query else "")
        body = self._body(recorded.kind, recorded.body)
        headers = self.live.headers(recorded.method, recorded.headers, rest=True)
        reply = await self._exchange(action, recorded.method, target, headers, body, first)
        if reply is None:
            return
        expected_response = action.exchange.response
        assert expected_response is not None  # the plan has only REST requests that got a reply
        live = _response(reply)
        if first and reply.status in _REFUSED and expected_response.status not in _REFUSED:
            raise self._login_refused(f"{recorded.method} {path} answered HTTP {reply.status} (recorded "
                                      f"{expected_response.status})")
        self.live.learn_values(expected_response.body, live.body, action.name)
        volatility = self.options.volatility
        bound = Response(status=expected_response.status, kind=expected_response.kind,
                         body=self.live.bind(expected_response.body))
        changed = compare.changed_fields(compare.response_fields(bound, volatility),
                                         compare.response_fields(live, volatility), "recorded", "live")
        self._report(Check(OPERATION, DIFFERS if changed else OK, action.number, action.name, action.operation,
                           _rest_summary(expected_response), _rest_summary(live), changed,
                           reply.times.response_end - reply.times.request_end if reply.times.response_end else None,
                           action.exchange.ttlb))

    @staticmethod
    def _body(kind: str | None, body: Any) -> bytes:
        if kind is None:
            return b""
        return Request(kind=kind, body=body).content()

    async def _exchange(self, action: Action, method: str, target: str, headers: list[tuple[str, str]],
                        body: bytes, first: bool) -> Reply | None:
        """One REST exchange, told to the listener; a failure is reported as the action's check (None)."""
        content_type = action.exchange.request.header("Content-Type")
        if body and content_type is None:
            headers.append(("Content-Type", "application/json"))
        request = _request(method, target, headers, body)
        started = time.time()
        try:
            reply = await self.http.request(method, target, headers, body, timeout=self.options.timeout)
        except HttpFailure as e:
            now = time.time()
            self.listener.exchange(request, None, ExchangeTimes(started, started, None, now), str(e))
            self._unreachable(e, first)
            self._replied_to(action, now)
            self._report(Check(OPERATION, FAILED, action.number, action.name, action.operation,
                               _rest_summary(action.exchange.response), None, note=str(e)))
            return None
        self.live.learn_headers(reply.headers)
        self.listener.exchange(request, _response(reply), reply.times)
        self._replied_to(action, reply.times.response_end or time.time())
        return reply

    def _login_refused(self, what: str) -> VerifyError:
        hint = "check --user and the password" if self.live.credentials else "give --user and --password"
        return VerifyError(f"{self.target.url()} refused the login: {what}; {hint}", 2)

    def _unreachable(self, failure: HttpFailure, first: bool = False) -> None:
        """A server that cannot be reached, or does not answer the session's first request, is bad input."""
        if failure.unreachable:
            raise VerifyError(str(failure), 2)
        if first and not failure.refused:
            raise VerifyError(f"{failure}: is {self.target.url()} the server, and up?", 2)

    # ------------------------------------------------------------------------------------------------ Bayeux
    def _outgoing(self, recorded: Message) -> Message:
        """A recorded message as this session sends it: its own id, the live clientId, values bound."""
        message = copy.deepcopy(self.live.bind(recorded))
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
        if isinstance(ext, dict):  # the ack and timesync extensions count per run; verify speaks neither
            ext.pop("ack", None)
            ext.pop("timesync", None)
            if not ext:
                del message["ext"]
        return message

    async def _bayeux_action(self, action: Action, first: bool) -> None:
        if self.client_id is None and HANDSHAKE not in action.channels:
            await self._handshake_quietly()
        if DISCONNECT in action.channels:
            self._stopping = True
        messages = [self._outgoing(m) for m in action.messages or []]
        try:
            sent = await self._bayeux(messages, action.exchange.request.path, action.exchange.request.headers,
                                      self.options.timeout)
        except HttpFailure as e:
            if e.refused and first:
                raise self._login_refused(str(e)) from None
            self._unreachable(e, first)
            if HANDSHAKE in action.channels:
                raise VerifyError(f"the CometD handshake got no reply, so nothing further can be checked: {e}",
                                  1) from None
            self._replied_to(action, time.time())
            self._report(Check(OPERATION, FAILED, action.number, action.name, action.operation,
                               _bayeux_summary(self._recorded_replies(action)), None, note=str(e)))
            return
        self._replied_to(action, sent.done)
        recorded = self._recorded_replies(action)
        changed: list[str] = []
        for recorded_message, message in zip(action.messages or [], messages, strict=True):
            reply = next((r for r in sent.replies if str(r.get("id")) == message["id"]), None)
            want = recorded.get(str(recorded_message.get("id")))
            if want is not None and reply is not None:
                self.live.learn_values(want, reply, action.name)
            volatility = self.options.volatility
            expected = compare.reply_fields(self.live.bind(want), volatility) if want is not None else {}
            changed += compare.changed_fields(expected, compare.reply_fields(reply, volatility) if reply else {},
                                           "recorded", "live")
            if reply is not None and message.get("channel") == HANDSHAKE:
                self._handshaken(reply, want)
        self._report(Check(OPERATION, DIFFERS if changed else OK, action.number, action.name, action.operation,
                           _bayeux_summary(recorded), _bayeux_summary({str(r.get("id")): r for r in sent.replies
                                                                       if not is_event(r)}), changed))
        for message in sent.replies:
            if is_event(message):
                self._on_event(message, sent.at)

    @staticmethod
    def _recorded_replies(action: Action) -> dict[str, Message]:
        return {str(i.message.get("id")): i.message for i in action.exchange.reply_items() if not i.is_event}

    def _handshaken(self, reply: Message, recorded: Message | None) -> None:
        if not reply.get("successful"):
            error = str(reply.get("error", ""))
            if error[:3] in ("401", "403") and (recorded is None or recorded.get("successful")):
                raise self._login_refused(f"the CometD handshake failed with {error}")
            return
        if isinstance(reply.get("clientId"), str):
            self.client_id = reply["clientId"]
        advice = reply.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("timeout"), int | float):
            self._hold = advice["timeout"] / 1000
        if self._connects is None:
            self._connects = asyncio.create_task(self._connect_loop())

    async def _handshake_quietly(self) -> None:
        """A session recorded without its handshake (resumed by CometD's reload extension) needs one live."""
        template = self.plan.handshake or {"channel": HANDSHAKE, "version": "1.0", "minimumVersion": "1.0"}
        message = self._outgoing(template)
        try:
            sent = await self._bayeux([message], self.plan.cometd_path, [], self.options.timeout)
        except HttpFailure as e:
            self._unreachable(e)
            raise VerifyError(f"the CometD handshake got no reply: {e}", 1) from None
        reply = next((r for r in sent.replies if r.get("channel") == HANDSHAKE), None)
        if reply is None or not reply.get("successful"):
            raise VerifyError(f"the CometD handshake failed: {reply}", 1)
        self._handshaken(reply, None)

    async def _connect_loop(self) -> None:
        """One /meta/connect outstanding all along: the next goes out as soon as the last came back."""
        templates = self.plan.connect_messages or [{"channel": CONNECT}]
        for n in itertools.count():
            if self._stopping:
                return
            message = self._outgoing(templates[min(n, len(templates) - 1, 1)])
            try:
                sent = await self._bayeux([message], self.plan.connect_path, [], self._hold + self.options.timeout)
            except (HttpFailure, VerifyError) as e:
                if not self._stopping:
                    self._connect_failed(str(e))
                return
            for event in sent.replies:
                if is_event(event):
                    self._on_event(event, sent.at)
            reply = next((r for r in sent.replies if str(r.get("id")) == message["id"]), None)
            if reply is None or not reply.get("successful"):
                if not self._stopping:
                    self._connect_failed(f"the server ended the CometD session: {json.dumps(reply)}")
                return
            advice = reply.get("advice")
            interval = advice.get("interval") if isinstance(advice, dict) else None
            if isinstance(interval, int | float) and interval > 0:
                await asyncio.sleep(interval / 1000)

    def _connect_failed(self, why: str) -> None:
        self._report(Check(OPERATION, FAILED, None, "/meta/connect", "/meta/connect", "held until the next event",
                           None, note=f"{why}; no further notification can come"))

    async def _end_session(self) -> None:
        if not self._stopping and self.client_id is not None:  # a polite end, though the recording had none
            self._stopping = True
            with contextlib.suppress(HttpFailure, VerifyError):
                await self._bayeux([self._outgoing({"channel": DISCONNECT})], self.plan.cometd_path, [],
                                   self.options.timeout)
        self._stopping = True
        if self._connects is not None:
            await asyncio.wait({self._connects}, timeout=_GRACE)

    # ----------------------------------------------------------------------------------------- transports
    async def _bayeux(self, messages: list[Message], path: str, recorded_headers: list[tuple[str, str]],
                      timeout: float) -> _Sent:
        if self.transport == WEBSOCKET:
            return await self._over_websocket(messages, timeout)
        return await self._over_http(messages, path or self.plan.cometd_path, recorded_headers, timeout)

    async def _over_http(self, messages: list[Message], path: str, recorded_headers: list[tuple[str, str]],
                         timeout: float) -> _Sent:
        headers = [*self.live.headers("POST", recorded_headers, rest=False)]
        headers = [h for h in headers if h[0].lower() != "content-type"]
        headers.append(("Content-Type", "application/json;charset=UTF-8"))
        body = json_bytes(messages)
        request = _request("POST", path, headers, body)
        started = time.time()
        try:
            reply = await self.http.request("POST", path, headers, body, timeout=timeout)
        except HttpFailure as e:
            self.listener.exchange(request, None, ExchangeTimes(started, started, None, time.time()), str(e))
            raise
        self.live.learn_headers(reply.headers)
        self.listener.exchange(request, _response(reply), reply.times)  # its own copy: a recorder redacts it
        response = _response(reply)
        if response.kind != "messages":
            if reply.status in _REFUSED:
                raise HttpFailure(f"POST {self.target.url(path)} answered HTTP {reply.status}", refused=reply.status)
            raise VerifyError(f"POST {self.target.url(path)} answered HTTP {reply.status} "
                              f"{reply.header('Content-Type') or 'without a Content-Type'}, not Bayeux: "
                              f"{_snippet(reply.body)}; is CometD at {self.plan.cometd_path} on this server?", 1)
        end = reply.times.response_end or time.time()
        return _Sent(messages, list(response.body), reply.times.response_start or end, end)

    async def _over_websocket(self, messages: list[Message], timeout: float) -> _Sent:
        socket = await self._websocket()
        loop = asyncio.get_running_loop()
        futures = {m["id"]: loop.create_future() for m in messages}
        self._waiting.update(futures)
        try:
            at = await socket.send(json.dumps(messages))
            self.listener.websocket_frame(messages, True, at)
            async with asyncio.timeout(timeout):
                got = [await f for f in futures.values()]
        except TimeoutError:
            raise HttpFailure(f"no reply on the WebSocket within {timeout:g} s", timed_out=True) from None
        finally:
            for key in futures:
                self._waiting.pop(key, None)
        last = max(t for _, t in got)
        return _Sent(messages, [m for m, _ in got], last, last)

    async def _websocket(self) -> WebSocket:
        if self._socket is not None:
            if self._socket.closed:
                raise HttpFailure("the server closed the WebSocket")
            return self._socket
        path = self.plan.cometd_path
        headers = self.live.headers("GET", [], rest=False)
        try:
            self._socket = await WebSocket.connect(self.target, path, headers, self.options.timeout)
        except HttpFailure as e:
            self._unreachable(e)
            if e.refused:
                raise self._login_refused(str(e)) from None
            raise VerifyError(f"{e}; is CometD at {path} on this server, with WebSocket?", 1) from None
        self.live.learn_headers(self._socket.response_headers)
        self.listener.websocket_opened(_request("GET", path, headers, b""))
        self._socket_reader = asyncio.create_task(self._read_websocket(self._socket))
        return self._socket

    async def _read_websocket(self, socket: WebSocket) -> None:
        while (received := await socket.receive()) is not None:
            text, at = received
            try:
                data = json.loads(text)
            except ValueError:
                continue
            messages = [data] if isinstance(data, dict) else data
            if not is_bayeux(messages):
                continue
            self.listener.websocket_frame(messages, False, at)
            for m in messages:
                future = self._waiting.get(str(m.get("id"))) if not is_event(m) else None
                if future is not None and not future.done():
                    future.set_result((m, at))
                elif is_event(m):
                    self._on_event(m, at)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(HttpFailure("the server closed the WebSocket"))


# ---------------------------------------------------------------------------------------------- helpers


def _request(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Request:
    path, _, query = target.partition("?")
    kind, data = wire.parse_body(body, next((v for k, v in headers if k.lower() == "content-type"), None))
    return Request(headers=list(headers), kind=kind, body=data, method=method, path=unquote(path),
                   query=parse_qsl(query, keep_blank_values=True))


def _response(reply: Reply) -> Response:
    kind, body = wire.parse_body(reply.body, reply.header("Content-Type"))
    return Response(headers=list(reply.headers), kind=kind, body=body, status=reply.status)


def _rest_summary(response: Response | None) -> str:
    if response is None:
        return "no reply"
    out = f"HTTP {response.status}"
    body = response.body
    if isinstance(body, dict) and "statusCode" in body:
        out += f", statusCode {body['statusCode']}"
        if body.get("statusMessage"):
            out += f" ({body['statusMessage']})"
    return out


def _bayeux_summary(replies: dict[str, Message]) -> str:
    parts = [("ok" if m.get("successful") else f"failed: {m.get('error', '?')}") for m in replies.values()]
    if len(parts) > 1:
        parts = [f"{m.get('channel')} {part}" for m, part in zip(replies.values(), parts, strict=True)]
    return ", ".join(parts) or "no reply"


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return repr(text[:80] + ("…" if len(text) > 80 else ""))

