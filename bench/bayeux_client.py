"""A lightweight asyncio/aiohttp GWS client for the benchmarks: many concurrent sessions in one process.

One session does what an agent desktop does for the call-recording operations:

1. ``GET /api/v2/me`` with Basic auth: keeps the JSESSIONID cookie and the CSRF token;
2. CometD over long-polling at ``/api/v2/notifications``: handshake, first connect, subscribe ``/v2/me/calls``;
3. for each operation: a ``/meta/connect`` is sent (and held by the server), then ``POST /api/v2/me/calls/{id}``
   ``{"operationName": OP}``; the client long-polls until the ``CallRecordingStateChange`` event arrives;
4. ``/meta/disconnect``.

Every body is compact JSON with message ids "1", "2", ... in a fixed order, so the same session sends the same
bytes every time (``mitmdump --server-replay`` matches whole bodies byte for byte). Cookies are kept by hand:
each session keeps the JSESSIONID the server (or the replayer) set, so each is its own replay session.

Per operation it notes the *observed delay*: when the reply carrying the event arrived minus when the
operation's REST reply arrived (monotonic clock of this process). An event that arrives before the REST reply
(as ``mitmdump --server-replay`` does: it answers every held connect at once) gives a negative delay.
Every wait is bounded: a per-event timeout and a per-session deadline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CALLS_CHANNEL = "/v2/me/calls"
COMETD_PATH = "/api/v2/notifications"
CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"
# Each operation leaves the call in a state that allows the next one; the cycle ends where it starts.
SHORT_OPS = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
CYCLE = ("PauseCallRecording", "ResumeCallRecording", "StopCallRecording", "StartCallRecording")
EXPECTED_STATE = {"StopCallRecording": "Stopped", "StartCallRecording": "Recording",
                  "PauseCallRecording": "Paused", "ResumeCallRecording": "Recording"}


def long_ops(n: int) -> tuple[str, ...]:
    return tuple(CYCLE[i % len(CYCLE)] for i in range(n))


def compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class SessionResult:
    ok: bool = False
    error: str = ""
    delays: list[float | None] = field(default_factory=list)  # seconds, per operation; None: no event
    states: list[str | None] = field(default_factory=list)  # recordingState of each operation's event
    wrong_events: int = 0  # events whose state is not the one the operation leads to
    requests: int = 0
    started: float = 0.0
    ended: float = 0.0

    @property
    def duration(self) -> float:
        return self.ended - self.started


class _Failed(Exception):
    pass


class Session:
    def __init__(self, http: aiohttp.ClientSession, base: str, user: str, password: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.auth = basic(user, password)
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self.next_id = 0
        self.client_id: str | None = None
        self.result = SessionResult()

    def _headers(self, json_body: bool) -> dict[str, str]:
        h = {"Authorization": self.auth}
        if json_body:
            h["Content-Type"] = "application/json;charset=UTF-8"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.csrf:
            h["X-CSRF-TOKEN"] = self.csrf
        return h

    def _keep_cookies(self, resp: aiohttp.ClientResponse) -> None:
        for value in resp.headers.getall("Set-Cookie", []):
            first = value.split(";", 1)[0]
            if "=" in first:
                k, v = first.split("=", 1)
                if k.strip() != "BAYEUX_BROWSER":
                    self.cookies[k.strip()] = v.strip()

    async def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes, float]:
        self.result.requests += 1
        async with self.http.request(method, self.base + path, data=body,
                                     headers=self._headers(body is not None)) as resp:
            raw = await resp.read()
            t = time.monotonic()
            self._keep_cookies(resp)
            if method == "GET" and resp.headers.get("X-CSRF-TOKEN"):
                self.csrf = resp.headers["X-CSRF-TOKEN"]
            return resp.status, raw, t

    def _msg(self, channel: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        m: dict[str, Any] = {"channel": channel, "id": str(self.next_id)}
        if self.client_id is not None and channel != "/meta/handshake":
            m["clientId"] = self.client_id
        m.update(fields)
        return m

    async def _bayeux(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
        status, raw, t = await self._request("POST", COMETD_PATH, compact(messages))
        if status != 200:
            raise _Failed(f"{messages[0]['channel']}: HTTP {status} {raw[:160]!r}")
        try:
            replies = json.loads(raw)
        except ValueError:
            raise _Failed(f"{messages[0]['channel']}: not JSON: {raw[:160]!r}") from None
        if not isinstance(replies, list):
            raise _Failed(f"{messages[0]['channel']}: not a Bayeux array: {raw[:160]!r}")
        for r in replies:
            if isinstance(r, dict) and str(r.get("channel", "")).startswith("/meta/") \
                    and r.get("successful") is False:
                raise _Failed(f"{r.get('channel')} refused: {r.get('error')}")
        return replies, t

    async def run(self, ops: tuple[str, ...], event_timeout: float) -> SessionResult:
        res = self.result
        res.started = time.monotonic()
        try:
            status, raw, _ = await self._request("GET", "/api/v2/me", None)
            if status != 200:
                raise _Failed(f"GET /api/v2/me: HTTP {status} {raw[:160]!r}")
            replies, _ = await self._bayeux([self._msg("/meta/handshake", version="1.0",
                                                        supportedConnectionTypes=["long-polling"])])
            self.client_id = next((r.get("clientId") for r in replies
                                   if r.get("channel") == "/meta/handshake"), None)
            if not self.client_id:
                raise _Failed("handshake gave no clientId")
            await self._bayeux([self._msg("/meta/connect", connectionType="long-polling")])
            await self._bayeux([self._msg("/meta/subscribe", subscription=CALLS_CHANNEL)])
            for op in ops:
                await self._operation(op, event_timeout)
            await self._bayeux([self._msg("/meta/disconnect")])
            res.ok = all(d is not None for d in res.delays) and not res.wrong_events
            if not res.ok and not res.error:
                res.error = "missing or wrong events"
        except _Failed as e:
            res.error = str(e)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            res.error = f"{type(e).__name__}: {e}"
        res.ended = time.monotonic()
        return res

    async def _operation(self, op: str, event_timeout: float) -> None:
        res = self.result
        deadline = time.monotonic() + event_timeout
        connect = asyncio.ensure_future(self._bayeux([self._msg("/meta/connect",
                                                                connectionType="long-polling")]))
        try:
            status, raw, t_reply = await self._request(
                "POST", f"/api/v2/me/calls/{CALL_ID}", compact({"operationName": op}))
            if status != 200:
                raise _Failed(f"{op}: HTTP {status} {raw[:160]!r}")
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    res.delays.append(None)
                    res.states.append(None)
                    return
                replies, t_event = await asyncio.wait_for(asyncio.shield(connect), remaining)
                event = next((r for r in replies if r.get("channel") == CALLS_CHANNEL and "data" in r), None)
                if event is not None:
                    state = ((event.get("data") or {}).get("call") or {}).get("recordingState")
                    res.delays.append(t_event - t_reply)
                    res.states.append(state)
                    res.wrong_events += state != EXPECTED_STATE.get(op)
                    return
                connect = asyncio.ensure_future(self._bayeux([self._msg("/meta/connect",
                                                                        connectionType="long-polling")]))
        finally:
            if not connect.done():
                connect.cancel()


@dataclass
class Batch:
    sessions: list[SessionResult]
    loop_lag_ms: list[float]  # how late this client's own event loop woke up (its measuring error)


async def run_sessions(base: str, n: int, ops: tuple[str, ...], *, user: str = "agent1",
                       password: str = "secret", event_timeout: float = 10.0,
                       deadline: float = 120.0) -> Batch:
    """``n`` sessions at once, each with its own connections and cookies; all bounded by ``deadline``."""

    async def one() -> SessionResult:
        conn = aiohttp.TCPConnector(limit=4, force_close=False)
        timeout = aiohttp.ClientTimeout(total=event_timeout + 5)
        async with aiohttp.ClientSession(connector=conn, cookie_jar=aiohttp.DummyCookieJar(),
                                         timeout=timeout, skip_auto_headers=("User-Agent",)) as http:
            return await Session(http, base, user, password).run(ops, event_timeout)

    lags: list[float] = []

    async def lag_probe() -> None:
        while len(lags) < 100_000:
            t = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(max(0.0, (time.monotonic() - t - 0.005) * 1000))

    probe = asyncio.ensure_future(lag_probe())
    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    probe.cancel()
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    out = []
    for t in tasks:
        if t in done and not t.cancelled() and t.exception() is None:
            out.append(t.result())
        else:
            out.append(SessionResult(error="did not finish before the deadline" if t in pending
                                     else repr(t.exception())))
    return Batch(out, lags)


def main() -> None:  # a manual check: python bench/bayeux_client.py URL [N]
    import sys

    url, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    results = asyncio.run(run_sessions(url, n, SHORT_OPS)).sessions
    for r in results[:5]:
        print(r.ok, r.error, [None if d is None else round(d * 1000, 1) for d in r.delays], r.states,
              round(r.duration, 3))
    print("ok:", sum(r.ok for r in results), "/", n)


if __name__ == "__main__":
    main()
