"""Scripted GWS call-recording session driven by the PyPI CometD client aiocometd-ng.

The Python twin of cometd_client.js: same arguments, same JSON-lines output.

    python aiocometd_client.py --url http://127.0.0.1:PORT [--cometd-path /api/v2/notifications]
        [--call-id ID] [--ops StartCallRecording,...] [--user agent1] [--password secret]
        [--pause-ms 0] [--extra-pause StopCallRecording=1500 ...]
        [--transport long-polling|websocket] [--event-timeout-ms 10000] [--timeout-ms 60000]
        [--trace] [--subscribe-also CHANNEL ...] [--forget-session-after OP] [--retry-ms MS]
        [--no-cookies] [--hold-before OP]

Importable too: ``await run_session(url, ...)`` returns the records instead of printing them.
Times ``t`` are ms from time.perf_counter() (monotonic) since this module was imported, which for
the command line is process start.

Options for the protocol conformance tests (tests/conformance), all off by default, as in the JS twin:
``--trace`` also emits every request payload ("http": the channels it carries, so batching shows), every
message sent ("out") and received ("in"), and "rehandshake" records; ``--subscribe-also`` subscribes to more
channels (a "subscribe" record each, a failure is reported, not fatal); ``--forget-session-after OP`` sends the
/meta/connect after OP's notification with a clientId the server never issued (once): a server that lost the
session answers 402 and aiocometd re-handshakes. ``--retry-ms MS``: an operation answered HTTP 5xx, or whose
connection broke, is reported ("reply" with its status, or "broken") and sent again MS later, up to 3 times.
``--no-cookies`` never sends a cookie back (curl with Basic auth on each request and no cookie jar): what
identifies it is its Basic user alone. ``--hold-before OP``: before OP (after its pause), emit "holding" and wait
for a line on stdin (or its end), so that a test acts while the session is between operations.

aiocometd-ng notes (0.5.6):
- It has no request-header option; extensions get ``outgoing(payload, headers)`` before every
  request (long-polling POST and the websocket upgrade alike), so HeaderExtension adds
  Authorization and Cookie there. It also timestamps the handshake reply (``incoming``).
- callback-polling is not implemented (only long-polling and websocket); the handshake always goes
  over long-polling, the switch to websocket happens afterwards.
- ``Client(connection_timeout=...)`` makes every receive() race a watcher that calls
  ``asyncio.wait_for(..., loop=...)``, which Python >= 3.10 rejects with TypeError as soon as the
  transport starts reconnecting; so it is 0 (off) here and we time out on our own.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp
from aiocometd_ng import Client, ConnectionType
from aiocometd_ng.extensions import Extension

CALLS_CHANNEL = "/v2/me/calls"
DEFAULT_CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"
DEFAULT_OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording",
               "StopCallRecording")
TRANSPORTS = {"long-polling": ConnectionType.LONG_POLLING, "websocket": ConnectionType.WEBSOCKET}

_T0 = time.perf_counter()


def _now() -> float:
    return round((time.perf_counter() - _T0) * 1000, 3)


class SessionError(Exception):
    """The scripted session failed (bad HTTP status, CometD failure, missing event)."""


class HeaderExtension(Extension):
    """Adds fixed headers to every CometD request; notes when the handshake reply arrived."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.handshake: dict[str, Any] | None = None

    async def outgoing(self, payload, headers) -> None:
        headers.update(self.headers)

    async def incoming(self, payload, headers=None) -> None:
        for message in payload:
            if message.get("channel") == "/meta/handshake" and self.handshake is None:
                self.handshake = {"message": message, "t": _now()}


class TraceExtension(Extension):
    """--trace and --forget-session-after: sees each payload after aiocometd finalized it."""

    def __init__(self, emit: Callable[[dict], None], trace: bool) -> None:
        self.emit = emit
        self.trace = trace
        self.forget = False
        self.handshakes = 0

    async def outgoing(self, payload, headers) -> None:
        for message in payload:
            if self.forget and message.get("channel") == "/meta/connect":
                self.forget = False
                issued = message.get("clientId")
                message["clientId"] = f"forgotten{issued}"
                self.emit({"type": "forged_client_id", "issued": issued, "sent": message["clientId"],
                           "t": _now()})
        if self.trace:
            self.emit({"type": "http", "channels": [m.get("channel") for m in payload], "t": _now()})
            for message in payload:
                self.emit({"type": "out", "message": message, "t": _now()})

    async def incoming(self, payload, headers=None) -> None:
        for message in payload:
            if self.trace:
                self.emit({"type": "in", "message": message, "t": _now()})
            if message.get("channel") == "/meta/handshake" and message.get("successful"):
                self.handshakes += 1
                if self.handshakes > 1 and self.trace:
                    self.emit({"type": "rehandshake", "clientId": message.get("clientId"), "t": _now()})


def _ignore_cancelled(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def run_session(url: str, *, cometd_path: str = "/api/v2/notifications",
                      call_id: str = DEFAULT_CALL_ID, ops: Iterable[str] = DEFAULT_OPS,
                      user: str = "agent1", password: str = "secret", pause_ms: float = 0,
                      extra_pause: dict[str, float] | None = None, event_timeout: float = 10.0,
                      transport: str = "long-polling",
                      on_record: Callable[[dict], None] | None = None, trace: bool = False,
                      subscribe_also: Iterable[str] = (),
                      forget_session_after: str | None = None, retry_ms: float | None = None,
                      cookies: bool = True, hold_before: str | None = None) -> list[dict]:
    """Run the session; return its records (handshake, reply, event, ..., done).

    Raises SessionError (or aiocometd/aiohttp errors) on failure; ``on_record`` sees each record
    as soon as it exists, so a caller can stream them.
    """
    if transport not in TRANSPORTS:
        raise SessionError(f"transport {transport!r} is not supported by aiocometd-ng")
    url = url.rstrip("/")
    extra_pause = extra_pause or {}
    records: list[dict] = []

    def emit(record: dict) -> None:
        records.append(record)
        if on_record:
            on_record(record)

    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    # DummyCookieJar: cookies are handled by hand, as in the JS client (aiohttp's default jar
    # would also silently drop cookies set by an IP-address host such as 127.0.0.1).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        # 1. Log in: JSESSIONID cookie and CSRF token.
        async with http.get(f"{url}/api/v2/me", headers={"Authorization": authorization}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise SessionError(f"GET /api/v2/me answered {resp.status}: {body[:200]!r}")
            cookie = "; ".join(c.split(";")[0].strip() for c in resp.headers.getall("Set-Cookie", []))
            csrf_header = resp.headers.get("X-CSRF-HEADER", "X-CSRF-TOKEN")
            csrf_token = resp.headers.get("X-CSRF-TOKEN")
        session_headers = {"Authorization": authorization}
        if cookie and cookies:
            session_headers["Cookie"] = cookie

        # 2. CometD: handshake + first connect (open), subscribe.
        ext = HeaderExtension(session_headers)
        tracer = TraceExtension(emit, trace)
        client = Client(url + cometd_path, [TRANSPORTS[transport]], extensions=[ext, tracer],
                        connection_timeout=0)
        events: asyncio.Queue = asyncio.Queue()
        last_op: str | None = None

        async def receiver() -> None:
            # Drain the client's queue as events arrive so that t is the arrival time.
            try:
                while True:
                    message = await client.receive()
                    events.put_nowait((message, _now(), last_op))
            except Exception as exc:  # noqa: BLE001 - the session waits on `events`: hand it the failure
                events.put_nowait(exc)

        receiver_task: asyncio.Task | None = None
        try:
            try:
                await client.open()
            except Exception as exc:  # aiocometd's own errors can be cryptic (e.g. on an HTTP 404)
                raise SessionError(f"CometD handshake/connect to {url + cometd_path} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            assert ext.handshake is not None
            emit({"type": "handshake", "clientId": ext.handshake["message"].get("clientId"),
                  "t": ext.handshake["t"]})
            receiver_task = asyncio.ensure_future(receiver())
            await client.subscribe(CALLS_CHANNEL)
            for channel in subscribe_also:
                try:
                    await client.subscribe(channel)
                except Exception as exc:  # noqa: BLE001 - reported, not fatal: the test decides
                    emit({"type": "subscribe", "subscription": channel, "successful": False,
                          "error": f"{type(exc).__name__}: {exc}", "t": _now()})
                else:
                    emit({"type": "subscribe", "subscription": channel, "successful": True, "t": _now()})

            # 3. Operations, each followed by its CallRecordingStateChange notification.
            reply_t: dict[str, float] = {}
            for op in ops:
                await asyncio.sleep((pause_ms + extra_pause.get(op, 0)) / 1000)
                if op == hold_before:
                    emit({"type": "holding", "op": op, "t": _now()})
                    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                last_op = op
                headers = {**session_headers, "Content-Type": "application/json"}
                if csrf_token:
                    headers[csrf_header] = csrf_token
                for attempt in range(1, 5):
                    retry = retry_ms is not None and attempt <= 3
                    try:
                        async with http.post(f"{url}/api/v2/me/calls/{quote(call_id, safe='')}",
                                             data=json.dumps({"operationName": op}),
                                             headers=headers) as resp:
                            raw = await resp.read()
                            status = resp.status
                    except aiohttp.ClientError as exc:
                        if not retry:
                            raise
                        emit({"type": "broken", "op": op, "error": f"{type(exc).__name__}: {exc}", "t": _now()})
                        await asyncio.sleep(retry_ms / 1000)
                        continue
                    reply_t[op] = _now()
                    emit({"type": "reply", "op": op, "status": status, "body": _json_or_text(raw),
                          "t": reply_t[op]})
                    if not (retry and status >= 500):
                        break
                    await asyncio.sleep(retry_ms / 1000)
                if status != 200:
                    raise SessionError(f"{op} answered HTTP {status}")

                while True:
                    try:
                        item = await asyncio.wait_for(events.get(), event_timeout)
                    except TimeoutError:
                        raise SessionError(f"timed out after {event_timeout * 1000:g} ms waiting "
                                           f"for a {CALLS_CHANNEL} notification after {op}") from None
                    if isinstance(item, Exception):
                        raise SessionError(f"CometD receive failed: {item!r}")
                    message, t, ev_op = item
                    data = message.get("data") or {}
                    call = data.get("call") or {}
                    # A notification about another call (e.g. a late one caused by an earlier
                    # session's POST: the Faye channel is global) does not answer our op.
                    ours = call.get("id") in (None, call_id)
                    emit({"type": "event" if ours else "stray_event", "channel": message.get("channel"),
                          "notificationType": data.get("notificationType"),
                          "recordingState": call.get("recordingState"),
                          "gsipRecord": (call.get("userData") or {}).get("GSIP_RECORD"),
                          "op": ev_op,
                          "delay_ms": (round(t - reply_t[ev_op], 3) if ev_op in reply_t else None),
                          "t": t, "data": data})
                    if ours and data.get("notificationType") == "CallRecordingStateChange":
                        break
                if op == forget_session_after:
                    tracer.forget = True
        finally:
            if receiver_task:
                receiver_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiver_task
            # 4. Disconnect (sends /meta/disconnect if the client is open). Cancelling the held
            # /meta/connect makes aiocometd's done-callback re-raise CancelledError, which the loop
            # would log as an "Exception in callback" traceback: keep that one out of stderr.
            loop = asyncio.get_running_loop()
            previous = loop.get_exception_handler()
            loop.set_exception_handler(_ignore_cancelled)
            try:
                await asyncio.wait_for(client.close(), 5)
            finally:
                loop.set_exception_handler(previous)
    emit({"type": "done"})
    return records


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    def extra(value: str) -> tuple[str, float]:
        op, sep, ms = value.partition("=")
        if not sep or not op:
            raise argparse.ArgumentTypeError("--extra-pause wants OP=MS")
        return op, float(ms)

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8090")
    p.add_argument("--cometd-path", default="/api/v2/notifications")
    p.add_argument("--call-id", default=DEFAULT_CALL_ID)
    p.add_argument("--ops", default=",".join(DEFAULT_OPS))
    p.add_argument("--user", default="agent1")
    p.add_argument("--password", default="secret")
    p.add_argument("--pause-ms", type=float, default=0)
    p.add_argument("--extra-pause", type=extra, action="append", default=[])
    p.add_argument("--transport", default="long-polling",
                   choices=["long-polling", "callback-polling", "websocket"])
    p.add_argument("--event-timeout-ms", type=float, default=10000)
    p.add_argument("--timeout-ms", type=float, default=60000)
    p.add_argument("--trace", action="store_true")
    p.add_argument("--subscribe-also", action="append", default=[])
    p.add_argument("--forget-session-after", default=None)
    p.add_argument("--no-cookies", dest="cookies", action="store_false")
    p.add_argument("--retry-ms", type=float, default=None)
    p.add_argument("--hold-before", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    def out(record: dict) -> None:
        print(json.dumps(record), flush=True)

    session = run_session(
        args.url, cometd_path=args.cometd_path, call_id=args.call_id,
        ops=[op.strip() for op in args.ops.split(",") if op.strip()],
        user=args.user, password=args.password, pause_ms=args.pause_ms,
        extra_pause=dict(args.extra_pause), event_timeout=args.event_timeout_ms / 1000,
        transport=args.transport, on_record=out, trace=args.trace,
        subscribe_also=args.subscribe_also, forget_session_after=args.forget_session_after,
        retry_ms=args.retry_ms, cookies=args.cookies, hold_before=args.hold_before)
    async def guarded() -> None:
        deadline = asyncio.timeout(args.timeout_ms / 1000)
        try:
            async with deadline:
                await session
        except TimeoutError:
            if deadline.expired():  # ours, not some inner timeout
                raise SessionError(f"global timeout: {args.timeout_ms:g} ms") from None
            raise

    try:
        asyncio.run(guarded())
    except Exception as exc:  # noqa: BLE001 - any failure is reported on stdout, as the JS client does
        out({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
