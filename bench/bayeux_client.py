"""The benchmarks' agent sessions on gwsvcr's one Bayeux client (``gwsvcr.client``): many concurrent sessions in
one process.

One session does what an agent desktop does for the call-recording operations:

1. ``GET /api/v2/me`` with Basic auth: keeps the cookies and the CSRF token it is given;
2. CometD over long-polling at ``/api/v2/notifications``: handshake, first connect, subscribe ``/v2/me/calls``;
3. for each operation: a ``/meta/connect`` is sent (and held by the server), then ``POST /api/v2/me/calls/{id}``
   ``{"operationName": OP}``; the client long-polls until the ``CallRecordingStateChange`` event arrives;
4. ``/meta/disconnect``.

Every body is compact JSON with message ids "1", "2", ... in a fixed order, so the same session sends the same
bytes every time (``mitmdump --server-replay`` matches whole bodies byte for byte). Each session has its own
connections and its own cookies (the JSESSIONID the server, or the replayer, set): each is its own replay session.

Per operation it notes the *observed delay*: when the reply carrying the event arrived minus when the
operation's REST reply arrived (both as the client stamps its replies). An event that arrives before the REST
reply (as ``mitmdump --server-replay`` does: it answers every held connect at once) gives a negative delay.
Every wait is bounded: a per-event timeout and a per-session deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.cassette import json_bytes
from gwsvcr.client import BayeuxClient, HttpClient, HttpFailure, Login, NotBayeux, Sent, Target

CALLS_CHANNEL = "/v2/me/calls"
COMETD_PATH = "/api/v2/notifications"
CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"
# Each operation leaves the call in a state that allows the next one; the cycle ends where it starts.
SHORT_OPS = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
CYCLE = ("PauseCallRecording", "ResumeCallRecording", "StopCallRecording", "StartCallRecording")
EXPECTED_STATE = {"StopCallRecording": "Stopped", "StartCallRecording": "Recording",
                  "PauseCallRecording": "Paused", "ResumeCallRecording": "Recording"}
_JSON = ("Content-Type", "application/json;charset=UTF-8")


def long_ops(n: int) -> tuple[str, ...]:
    return tuple(CYCLE[i % len(CYCLE)] for i in range(n))


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


def checked(sent: Sent) -> Sent:
    """The replies, unless the server refused a meta message."""
    refused = sent.refusal()
    if refused is not None:
        raise _Failed(f"{refused.get('channel')} refused: {refused.get('error')}")
    return sent


class Session:
    def __init__(self, http: HttpClient, user: str, password: str, timeout: float) -> None:
        self.http = http
        self.timeout = timeout
        self.login = Login.basic(user, password)
        self.bayeux = BayeuxClient(http, COMETD_PATH, timeout=timeout, headers=self.login.headers,
                                   learn=self.login.learn)
        self.result = SessionResult()

    async def _rest(self, method: str, path: str, body: Any = None) -> float:
        """One REST request that must answer 200; when its reply completed."""
        data = b"" if body is None else json_bytes(body)
        headers = [*self.login.headers(), _JSON] if data else self.login.headers()
        reply = await self.http.request(method, path, headers, data, timeout=self.timeout)
        self.login.learn(reply.headers)
        if reply.status != 200:
            raise _Failed(f"{method} {path}: HTTP {reply.status} {reply.body[:160]!r}")
        return reply.times.response_end or time.time()

    async def run(self, ops: tuple[str, ...], event_timeout: float, together: Together | None = None) -> SessionResult:
        res = self.result
        res.started = time.monotonic()
        waited = False
        try:
            await self._rest("GET", "/api/v2/me")
            checked(await self.bayeux.handshake())
            if not self.bayeux.client_id:
                raise _Failed("handshake gave no clientId")
            checked(await self.bayeux.connect())
            checked(await self.bayeux.subscribe(CALLS_CHANNEL))
            for op in ops:
                await self._operation(op, event_timeout)
            if together is not None:
                waited = True
                await together.wait()
            checked(await self.bayeux.disconnect())
            res.ok = all(d is not None for d in res.delays) and not res.wrong_events
            if not res.ok and not res.error:
                res.error = "missing or wrong events"
        except _Failed as e:
            res.error = str(e)
        except (TimeoutError, HttpFailure, NotBayeux) as e:
            res.error = f"{type(e).__name__}: {e}"
        finally:
            if together is not None and not waited:
                together.arrived()
        res.requests = self.http.replies
        res.ended = time.monotonic()
        return res

    async def _operation(self, op: str, event_timeout: float) -> None:
        res = self.result
        deadline = time.monotonic() + event_timeout
        connect = asyncio.ensure_future(self.bayeux.connect())
        try:
            replied = await self._rest("POST", f"/api/v2/me/calls/{CALL_ID}", {"operationName": op})
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    res.delays.append(None)
                    res.states.append(None)
                    return
                sent = checked(await asyncio.wait_for(asyncio.shield(connect), remaining))
                event = next((r for r in sent.events if r.get("channel") == CALLS_CHANNEL), None)
                if event is not None:
                    state = ((event.get("data") or {}).get("call") or {}).get("recordingState")
                    res.delays.append(sent.done - replied)
                    res.states.append(state)
                    res.wrong_events += state != EXPECTED_STATE.get(op)
                    return
                connect = asyncio.ensure_future(self.bayeux.connect())
        finally:
            if not connect.done():
                connect.cancel()


class Together:
    """Every session of a batch alive at once: ``measure`` is called when the last one has done its operations (or
    failed), before any of them disconnects; until then each keeps its connections, cookies and CometD session.
    What a server holds per concurrent session is read there, whatever order and pace the sessions got in."""

    def __init__(self, n: int, measure: Callable[[], None]) -> None:
        self.left = n
        self.measure: Callable[[], None] | None = measure
        self.all_in = asyncio.Event()

    def arrived(self) -> None:
        self.left -= 1
        if self.left <= 0 and self.measure is not None:
            measure, self.measure = self.measure, None
            measure()
            self.all_in.set()

    async def wait(self) -> None:
        self.arrived()
        await self.all_in.wait()


@dataclass
class Batch:
    sessions: list[SessionResult]
    loop_lag_ms: list[float]  # how late this client's own event loop woke up (its measuring error)


async def run_sessions(base: str, n: int, ops: tuple[str, ...], *, user: str = "agent1",
                       password: str = "secret", event_timeout: float = 10.0,
                       deadline: float = 120.0, together: Callable[[], None] | None = None) -> Batch:
    """``n`` sessions at once, each with its own connections and cookies; all bounded by ``deadline``. With
    ``together``: called once all ``n`` are alive at once (:class:`Together`)."""
    target = Target.parse(base)
    meeting = Together(n, together) if together is not None else None

    async def one() -> SessionResult:
        http = HttpClient(target, limit=4)
        try:
            return await Session(http, user, password, event_timeout + 5).run(ops, event_timeout, meeting)
        finally:
            await http.close()

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
