"""A wire to gwsvcr's simulator core in this process, on a fake clock: what a client sends goes to
``Simulator.handle`` (or, over a WebSocket, ``Simulator.bayeux_replies``) as the cassette model, and the answer
comes back stamped by the clock, so a client's timing is checked without sleeping and without a socket.

:func:`run_on` runs a coroutine to its end, moving the clock from one timer to the next whenever nothing else can
run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from gwsvcr.client.http import Reply, as_request
from gwsvcr.client.target import Headers, Target, TimedOut
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.sim.knobs import Knobs
from gwsvcr.sim.simulator import Simulator, SimulatorConfig
from gwsvcr.timeline import Timeline
from tests.fakeclock import FakeClock

URL = "http://sim.test"


def simulator(clock: FakeClock, recording_state: str = "Recording", knobs: Knobs | None = None,
              event_delay: float = 0.25) -> Simulator:
    config = SimulatorConfig(event_delay=event_delay, recording_state=recording_state, knobs=knobs or Knobs())
    return Simulator(config, timeline=Timeline(clock))


class SimWire:
    """Requests answered by ``sim``; each takes no time unless the simulator holds it (a long-poll)."""

    def __init__(self, sim: Simulator, clock: FakeClock) -> None:
        self.sim, self.clock = sim, clock
        self.target = Target.parse(URL)
        self.sent: list[tuple[str, str, Headers]] = []  # (method, target, headers) of every request

    async def request(self, method: str, target: str, headers: Headers, body: bytes = b"", *,
                      timeout: float | None) -> Reply:
        self.sent.append((method, target, list(headers)))
        start = self.clock.wall()
        task = asyncio.ensure_future(self.sim.handle(as_request(method, target, headers, body)))
        answered = asyncio.Event()
        task.add_done_callback(lambda _: answered.set())
        if timeout is not None and not await self.clock.wait(answered, timeout):
            task.cancel()
            raise TimedOut.of(f"{method} {self.target.url(target)}", f"no reply within {timeout:g} s")
        await answered.wait()
        response = task.result()
        now = self.clock.wall()
        return Reply(response.status, list(response.headers), response.content(),
                     ExchangeTimes(start, start, now, now))

    async def websocket(self, path: str, headers: Headers, timeout: float) -> SimSocket:
        self.sent.append(("GET", path, list(headers)))
        return SimSocket(self, as_request("GET", path, headers, b""))


class SimSocket:
    """A WebSocket to the simulator: each frame answered on its own (a held connect holds no other frame)."""

    def __init__(self, wire: SimWire, upgrade: Any) -> None:
        self.wire, self.upgrade = wire, upgrade
        self.closed = False
        self.response_headers: Headers = []
        self._frames: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, text: str) -> float:
        task = asyncio.ensure_future(self._answer(json.loads(text)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.wire.clock.wall()

    async def _answer(self, messages: list[dict[str, Any]]) -> None:
        replies = await self.wire.sim.bayeux_replies(self.upgrade, messages)
        if not self.closed:
            self._frames.put_nowait((json.dumps(replies), self.wire.clock.wall()))

    async def receive(self) -> tuple[str, float] | None:
        return None if self.closed else await self._frames.get()

    async def close(self) -> None:
        self.closed = True
        self._frames.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()


async def _quiet() -> None:
    """Until nothing is ready to run on the loop but what waits for the clock (or for a socket)."""
    loop = asyncio.get_running_loop()
    for _ in range(10_000):
        await asyncio.sleep(0)
        if not getattr(loop, "_ready", None):
            return


async def run_on[T](clock: FakeClock, work: Awaitable[T], limit: float = 600.0) -> T:
    """``work`` to its end, the clock moved to each next timer whenever nothing else can run."""
    task = asyncio.ensure_future(work)
    end = clock.now() + limit
    while True:
        await _quiet()
        if task.done():
            return task.result()
        due = min((when for when, _, timer in clock._timers if not timer.cancelled), default=None)
        if due is None or due > end:
            task.cancel()
            raise AssertionError(f"stuck at {clock.now():.3f}: nothing left to wait for")
        await clock.advance(max(0.0, due - clock.now()))  # fires every timer due by then, in order
