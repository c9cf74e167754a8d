"""Drive one recorded session's client side against a live server and check what comes back.

:class:`SessionDriver` does it, for ``gwsvcr verify`` and for a load test that runs many at once: it steps through
the :class:`~gwsvcr.verify.plan.Plan` (REST requests, the CometD handshake, subscribes, publishes, the
disconnect), sends each with the live values it carries (:mod:`gwsvcr.verify.live`) through the one Bayeux client
(:class:`~gwsvcr.client.bayeux.BayeuxClient`, which keeps a ``/meta/connect`` outstanding all along, as a CometD
client does) and reports through a :class:`Listener`, as it happens, one :class:`~gwsvcr.verify.checks.Check` per
operation and per expected notification, and every exchange on the wire (for ``--record``). Every wait and
deadline is on the injected :class:`~gwsvcr.timeline.Clock` (tests move a fake one).

When to send (``timing``): a request goes out after the reply to the one before it and after the notifications the
recorded client had received before it sent it (or their ``timeout``); with ``recorded`` timing also not before its
recorded offset from the session's start; with ``instant`` timing at once.

Comparing: with ``gwsvcr diff``'s rules (:mod:`gwsvcr.compare`): volatile values ignored, a notification's delay
after its cause compared with the recorded one within ``threshold``. A live notification is matched to the first
expected one of the same kind (channel and notificationType) whose cause was sent and which has not come yet; its
cause's live reply is what its delay counts from.

Failures (:mod:`gwsvcr.verify.failures`), both ways: a request the server failed live (no reply, an error page where
Bayeux was awaited) or when recorded is checked against the other side; a connect the live server ends (an unknown
client, advice to handshake again, an error) is matched to the next connect the server failed when recorded, and
the recorded client's next request waits for it as for a notification (``MISS`` when it does not come). A connect
failure the recording does not have ends the notifications (``FAIL``); after an expected one the connects go on as
the server advised: again (retry), or from the recorded client's re-handshake.

Bad input ends the run with a :class:`VerifyError` naming what happened: the server is unreachable or refuses the
login (exit 2), or answers something else than Bayeux on the CometD path (exit 1). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from gwsvcr import compare, gws
from gwsvcr.bayeux import CONNECT, HANDSHAKE, Message, is_event
from gwsvcr.cassette import Request, Response
from gwsvcr.client.bayeux import BayeuxClient, ConnectEnd, NotBayeux, Sent, Wire
from gwsvcr.client.http import HttpClient, Observer, Reply, as_response
from gwsvcr.client.target import Headers, HttpFailure, Refused, Target, Unreachable
from gwsvcr.client.websocket import UpgradeRefused
from gwsvcr.describe import event_key
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.timeline import Cancellable, Clock, Timing
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
from gwsvcr.verify.failures import Failure, failure_fields, live_failure
from gwsvcr.verify.live import Credentials, LiveValues
from gwsvcr.verify.plan import Action, ConnectFailure, ExpectedEvent, Plan

_REFUSED = (401, 403)
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


class Listener(Observer):
    """What a driver reports, as it happens: each check, and (as an :class:`~gwsvcr.client.http.Observer`) every
    exchange on the wire; override what you need (the CLI prints, ``--record`` writes, a load test counts)."""

    def check(self, check: Check) -> None:
        """One operation or notification checked."""


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
    timer: Cancellable | None = None  # when it is given up


@dataclass
class _Met:
    """A connect the server failed when recorded, to meet again live."""

    failure: ConnectFailure
    came: asyncio.Event = field(default_factory=asyncio.Event)  # met live, or given up


class SessionDriver:
    """Runs ``plan`` against ``target``; ``wire`` (default: HTTP/1.1 to the target) and ``clock`` can be given."""

    def __init__(self, plan: Plan, target: Target | str, credentials: Credentials | None = None,
                 options: Options | None = None, listener: Listener | None = None, *, clock: Clock | None = None,
                 wire: Wire | None = None) -> None:
        self.plan = plan
        self.target = Target.parse(target) if isinstance(target, str) else target
        self.options = options or Options()
        self.listener = listener or Listener()
        self.clock = clock or Clock()
        self.transport = self.options.transport or plan.transport
        self.live = LiveValues.with_binds(credentials, self.options.binds)
        self.checks: list[Check] = []
        self._http: HttpClient | None = None  # the wire this driver made, and closes
        if wire is None:
            wire = self._http = HttpClient(self.target, connect_timeout=self.options.timeout, clock=self.clock,
                                           observer=self.listener)
        self.wire = wire
        self.bayeux = BayeuxClient(self.wire, plan.cometd_path, transport=self.transport, clock=self.clock,
                                   timeout=self.options.timeout, headers=self._connect_headers,
                                   learn=self.live.learn_headers, on_event=self._on_event, observer=self.listener,
                                   connect_path=plan.connect_path)
        self._expected = [_Expectation(e) for e in plan.events]
        self._failures = [_Met(f) for f in plan.failures]
        self._replied: dict[int, float] = {}  # recorded exchange number -> wall clock its live reply completed

    @property
    def client_id(self) -> str | None:
        return self.bayeux.client_id

    # ------------------------------------------------------------------------------------------------- run
    async def run(self) -> Result:
        """Drive the session to its end; VerifyError when it cannot go on."""
        start = self.clock.now()
        t0, causes = self.plan.actions[0].exchange.start, {a.number for a in self.plan.actions}
        for x in self._expected:
            if x.event.cause not in causes:  # none recorded, or one verify does not send
                x.open = True
                self._give_up_at(x, start + x.event.delivered - t0 + self.options.timeout)
        try:
            for i, action in enumerate(self.plan.actions):
                waits_for = {id(e) for e in action.waits_for}
                await self._seen([x for x in self._expected if id(x.event) in waits_for])
                await self._met(action.after_failures)
                if self.options.timing == Timing.RECORDED:
                    await self.clock.sleep(start + action.offset - self.clock.now())
                await self._send(action, first=i == 0)
            await self._seen(self._expected)
            await self._met(self.plan.failures)
            await self._end_session()
        finally:
            await self.close()
        return Result(self.checks)

    async def close(self) -> None:
        for x in self._expected:
            if x.timer is not None:
                x.timer.cancel()
        await self.bayeux.close()
        if self._http is not None:
            await self._http.close()

    def _report(self, check: Check) -> None:
        self.checks.append(check)
        self.listener.check(check)

    # --------------------------------------------------------------------------------------- notifications
    def _give_up_at(self, x: _Expectation, deadline: float) -> None:
        """At ``deadline`` (the clock's time) ``x`` is missing if it has not come."""
        if x.timer is None and not x.came.is_set():
            x.timer = self.clock.call_at(deadline, lambda: self._missing(x))

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
        deadline = self.clock.now() + self.options.timeout
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
        body = Request(kind=recorded.kind, body=self.live.bind(recorded.body)).content() if recorded.kind else b""
        headers = self.live.headers(recorded.headers)
        if body and recorded.header("Content-Type") is None:
            headers.append(("Content-Type", "application/json"))
        try:
            reply = await self.wire.request(recorded.method, target, headers, body, timeout=self.options.timeout)
        except HttpFailure as e:
            if action.failed is None:
                self._unreachable(e, first)
            self._replied_to(action, self.clock.wall())
            self._failed(action, e, _rest_summary(action.exchange.response))
            return
        self.live.learn_headers(reply.headers)
        self._replied_to(action, reply.times.response_end or self.clock.wall())
        expected_response = action.exchange.response
        live = as_response(reply)
        if expected_response is None:  # the server failed it when recorded
            self._answered(action, _rest_summary(live))
            return
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

    def _login_refused(self, what: str) -> VerifyError:
        hint = "check --user and the password" if self.live.credentials else "give --user and --password"
        return VerifyError(f"{self.target.url()} refused the login: {what}; {hint}", 2)

    def _unreachable(self, failure: HttpFailure, first: bool = False) -> None:
        """A server that cannot be reached, or does not answer the session's first request, is bad input."""
        if isinstance(failure, Unreachable):
            raise VerifyError(str(failure), 2)
        if first and not isinstance(failure, Refused):
            raise VerifyError(f"{failure}: is {self.target.url()} the server, and up?", 2)

    # ------------------------------------------------------------------------------------------------ Bayeux
    def _connect_headers(self) -> Headers:
        return self.live.headers(self.plan.connect_headers)

    async def _bayeux(self, messages: list[Message], path: str, recorded_headers: Headers, timeout: float) -> Sent:
        """One Bayeux request through the client; what the server said that CometD cannot take, as verify says it."""
        try:
            return await self.bayeux.send(messages, path=path or self.plan.cometd_path,
                                          headers=self.live.headers(recorded_headers),
                                          timeout=timeout)
        except UpgradeRefused as e:
            if isinstance(e, Refused):
                raise self._login_refused(str(e)) from None
            raise VerifyError(f"{e}; is CometD at {self.plan.cometd_path} on this server, with WebSocket?",
                              1) from None

    def _not_cometd(self, e: NotBayeux) -> VerifyError:
        return VerifyError(f"{e}; is CometD at {self.plan.cometd_path} on this server?", 1)

    async def _bayeux_action(self, action: Action, first: bool) -> None:
        if self.bayeux.client_id is None and HANDSHAKE not in action.channels:
            await self._handshake_quietly()
        if HANDSHAKE in action.channels:  # a new session: the old one's connect (if it still goes on) is dropped
            await self.bayeux.stop_connects()
        messages = [self.bayeux.stamp(self.live.bind(m)) for m in action.messages or []]
        try:
            sent = await self._bayeux(messages, action.exchange.request.path, action.exchange.request.headers,
                                      self.options.timeout)
        except (HttpFailure, NotBayeux) as e:
            if isinstance(e, Refused) and first:
                raise self._login_refused(str(e)) from None
            if action.failed is None:  # a server that fails what it did not fail when recorded
                if isinstance(e, NotBayeux) and HANDSHAKE in action.channels:
                    raise self._not_cometd(e) from None
                if isinstance(e, HttpFailure):
                    self._unreachable(e, first)
                if HANDSHAKE in action.channels:
                    raise VerifyError(f"the CometD handshake got no reply, so nothing further can be checked: {e}",
                                      1) from None
            self._replied_to(action, self.clock.wall())
            self._failed(action, e, _bayeux_summary(self._recorded_replies(action)))
            return
        self._replied_to(action, sent.done)
        recorded = self._recorded_replies(action)
        if action.failed is not None:  # the server failed it when recorded
            self._answered(action, _bayeux_summary({str(r.get("id")): r for r in sent.replies if not is_event(r)}))
            for message, recorded_message in zip(messages, action.messages or [], strict=True):
                reply = sent.reply_to(message)
                if reply is not None and recorded_message.get("channel") == HANDSHAKE:
                    self._handshaken(reply, None)
            return
        changed: list[str] = []
        for recorded_message, message in zip(action.messages or [], messages, strict=True):
            reply = sent.reply_to(message)
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
        for message in sent.events:
            self._on_event(message, sent.at)

    @staticmethod
    def _recorded_replies(action: Action) -> dict[str, Message]:
        return {str(i.message.get("id")): i.message for i in action.exchange.reply_items() if not i.is_event}

    def _handshaken(self, reply: Message, recorded: Message | None) -> None:
        if not self.bayeux.take_handshake(reply):
            error = str(reply.get("error", ""))
            if error[:3] in ("401", "403") and (recorded is None or recorded.get("successful")):
                raise self._login_refused(f"the CometD handshake failed with {error}")
            return
        self.bayeux.start_connects(self.plan.connect_messages, self._connect_ended)

    async def _handshake_quietly(self) -> None:
        """A session recorded without its handshake (resumed by CometD's reload extension) needs one live."""
        template = self.plan.handshake or {"channel": HANDSHAKE, "version": "1.0", "minimumVersion": "1.0"}
        message = self.bayeux.stamp(self.live.bind(template))
        try:
            sent = await self._bayeux([message], self.plan.cometd_path, self.plan.bayeux_headers, self.options.timeout)
        except NotBayeux as e:
            raise self._not_cometd(e) from None
        except HttpFailure as e:
            self._unreachable(e)
            raise VerifyError(f"the CometD handshake got no reply: {e}", 1) from None
        reply = sent.reply_to(message)
        if reply is None or not reply.get("successful"):
            raise VerifyError(f"the CometD handshake failed: {reply}", 1)
        self._handshaken(reply, None)

    # -------------------------------------------------------------------------------------------- failures
    def _failed(self, action: Action, error: HttpFailure | NotBayeux, recorded_reply: str) -> None:
        """``action`` got no usable reply live: as recorded, otherwise, or where the recording had one."""
        live = live_failure(error)
        if action.failed is None:
            self._report(Check(OPERATION, FAILED, action.number, action.name, action.operation, recorded_reply,
                               live.summary if live.status else None, note=str(error)))
            return
        changed = self._failure_differences(action.failed, live)
        self._report(Check(OPERATION, DIFFERS if changed else OK, action.number, action.name, action.operation,
                           action.failed.summary, live.summary, changed))

    def _answered(self, action: Action, live: str) -> None:
        """``action`` got its reply live, where the server failed it when recorded."""
        assert action.failed is not None
        self._report(Check(OPERATION, DIFFERS, action.number, action.name, action.operation, action.failed.summary,
                           live, [f"failure: {action.failed.summary} recorded, none live"]))

    def _failure_differences(self, recorded: Failure | None, live: Failure | None) -> list[str]:
        volatility = self.options.volatility
        return compare.changed_fields(failure_fields(recorded, volatility), failure_fields(live, volatility),
                                      "recorded", "live")

    def _connect_ended(self, end: ConnectEnd) -> bool:
        """The live server ended the connects: the next failure the recording has, or one it does not have. Says
        whether to connect again (the server advised a retry, or failed without advice, after a failure the
        recording has too)."""
        live = live_failure(end)
        x = next((x for x in self._failures if not x.came.is_set()), None)
        if x is None:
            why = f"{end.failure}; " if end.failure is not None else ""
            self._report(Check(OPERATION, FAILED, None, CONNECT, CONNECT, "held until the next event", live.summary,
                               note=f"{why}the recording has no such failure; no further notification can come"))
            return False
        x.came.set()
        recorded = x.failure.failure
        changed = self._failure_differences(recorded, live)
        self._report(Check(OPERATION, DIFFERS if changed else OK, x.failure.exchange, CONNECT, CONNECT,
                           recorded.summary, live.summary, changed))
        advice = end.reply.get("advice") if end.reply is not None else None
        return (advice.get("reconnect") if isinstance(advice, dict) else "retry") == "retry"

    async def _met(self, failures: list[ConnectFailure]) -> None:
        """The connect failures the recorded client had met by now: each has ``timeout`` to come live."""
        for x in self._failures:
            if x.came.is_set() or not any(x.failure is f for f in failures):
                continue
            if await self.clock.wait(x.came, self.options.timeout):
                continue
            x.came.set()
            failure = x.failure.failure
            self._report(Check(OPERATION, MISSING, x.failure.exchange, CONNECT, CONNECT, failure.summary,
                               f"no failure within {self.options.timeout:g} s (recorded {failure.summary})",
                               note=f"no failure within {self.options.timeout:g} s"))

    async def _end_session(self) -> None:
        if not self.bayeux.stopping and self.bayeux.client_id is not None:  # a polite end, though none recorded
            with contextlib.suppress(HttpFailure, NotBayeux):
                await self.bayeux.disconnect(path=self.plan.cometd_path,
                                             headers=self.live.headers(self.plan.bayeux_headers))
        await self.bayeux.stop_connects(_GRACE)


# ---------------------------------------------------------------------------------------------- helpers


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


__all__ = ["Listener", "Listeners", "Options", "Reply", "SessionDriver", "VerifyError"]
