"""A clock the test moves by hand: timers fire and waits end only when it is advanced, so timing is checked
without sleeping."""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from gwsvcr.timeline import Clock


class _Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock(Clock):
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> _Timer:
        timer = _Timer(when, functools.partial(callback, *args) if args else callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def run_due(self) -> None:
        """Fire the timers due at the clock's time (as :meth:`Clock.run_due`): nothing, unless it was advanced past
        them with no one looking."""
        while self._timers and self._timers[0][0] <= self.t:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        done = asyncio.get_running_loop().create_future()
        self.call_at(self.t + seconds, lambda: done.done() or done.set_result(None))
        await done

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        timeout = asyncio.Event()
        timer = self.call_at(self.t + seconds, timeout.set)
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(timeout.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            for w in waiters:
                w.cancel()
        return event.is_set()

    async def settle(self) -> None:
        """Let every task that can run without time passing run."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing each timer at its own time, letting tasks run in between."""
        end = self.t + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self.t = max(self.t, when)
            timer.callback()
            await self.settle()
        self.t = end
        await self.settle()

    async def drive(self, work: Awaitable[Any]) -> Any:
        """Await ``work``, moving time a millisecond at a time while it waits (a recorded latency)."""
        task = asyncio.ensure_future(work)
        await self.settle()
        while not task.done():
            await self.advance(0.001)
        return task.result()
