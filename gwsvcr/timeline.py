"""Time, in one place: the clock every server part reads, how recorded delays are scaled, REST latency, each
client's schedule of events not yet due, and how long a ``/meta/connect`` is held.

One injected :class:`Clock` serves the Bayeux core (holds, session expiry), the replayer (delays, event schedules)
and the simulator (notification delays). Tests pass a fake clock and move time by hand, so causality and holds are
checked without sleeping.

Replay timing: an event falls due its recorded delay (divided by ``speed``; zero when instant) after the client
got the reply of its cause, never before. A connect is held only as the protocol allows (alone in its request,
after the first connect, nothing queued, the client not asking for ``timeout: 0``); then until an event, the
recorded hold of that connect when it ended empty, or at most ``advice.timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

__all__ = ["Cancellable", "Clock", "Schedule", "Timeline", "Timing", "ready", "wake_first"]


class Timing(StrEnum):
    """How recorded delays are replayed."""

    RECORDED = "recorded"  # the recorded delays, scaled by speed
    INSTANT = "instant"  # no delays; causal order kept

    @classmethod
    def parse(cls, value: str) -> Timing:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"timing must be one of {', '.join(t.value for t in cls)}, not {value!r}") from None


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class _Timer:
    """A timer of :class:`Clock`: what it runs, the loop's handle that runs it in time, and its place in the clock's
    heap of timers (by time, then by the order they were set), so :meth:`Clock.run_due` can run it sooner."""

    __slots__ = ("args", "callback", "handle", "heap", "order", "when")

    def __init__(self, when: float, order: int, callback: Callable[..., None] | None, args: tuple[Any, ...],
                 heap: list[_Timer]) -> None:
        self.when, self.order, self.callback, self.args, self.heap = when, order, callback, args, heap
        self.handle: asyncio.TimerHandle | None = None

    def __lt__(self, other: _Timer) -> bool:
        return self.when < other.when or (self.when == other.when and self.order < other.order)

    def cancel(self) -> None:
        self.callback, self.args = None, ()
        if self.handle is not None:
            self.handle.cancel()
        _forget_over(self.heap)


def _forget_over(heap: list[_Timer]) -> None:
    """Forget from the top of the heap the timers that are over (ran or cancelled): a clock nobody calls
    :meth:`Clock.run_due` on keeps only timers still to come, and those over behind them until they come up."""
    while heap and heap[0].callback is None:
        heapq.heappop(heap)


def _ring(timer: _Timer) -> None:
    """The loop's timer went off: run ``timer`` unless it ran or was cancelled."""
    callback, args = timer.callback, timer.args
    if callback is not None:
        timer.callback, timer.args = None, ()
        callback(*args)
    _forget_over(timer.heap)


class Clock:
    """Monotonic seconds, timers and waits on the running asyncio loop (whose time is ``time.monotonic``).

    The loop runs its timers once per turn, after every callback that turn began with: in a busy server that is all
    the requests read in the turn before, so a timer can go off a whole turn late (issue 27: events of a burst of
    500 logins went out 30 ms late at the median). :meth:`run_due` runs the timers already due at once, from
    wherever it is called; the replayer calls it as it takes each request."""

    _orders = itertools.count()

    def __init__(self) -> None:
        self._pending: list[_Timer] = []  # heap: the timers set, until each ran or was cancelled and reached its top

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        """Seconds since the epoch, for what goes on the wire (timesync ``ts``)."""
        return time.time()

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> Cancellable:
        """``callback(*args)`` at ``when`` (or sooner after it, by :meth:`run_due`): its arguments kept by the timer
        itself, not in a partial of their own."""
        timer = _Timer(when, next(self._orders), callback, args, self._pending)
        timer.handle = asyncio.get_running_loop().call_at(when, _ring, timer)
        heapq.heappush(self._pending, timer)
        return timer

    def run_due(self) -> None:
        """Run now, in time order, every timer whose time has come, instead of when the loop gets round to it."""
        timers = self._pending
        if not timers:
            return
        now = self.now()
        while timers and (timers[0].callback is None or timers[0].when <= now):
            timer = heapq.heappop(timers)
            callback, args = timer.callback, timer.args
            if callback is not None:
                timer.cancel()
                callback(*args)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds``; True when it was set."""
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True


class Timeline:
    """The timing policy of one server: the clock, the scale of recorded delays and the connect hold."""

    def __init__(self, clock: Clock | None = None, *, timing: Timing = Timing.RECORDED, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be more than 0")
        self.clock = clock or Clock()
        self.timing = timing
        self.speed = speed

    @property
    def instant(self) -> bool:
        return self.timing is Timing.INSTANT

    def scale(self, seconds: float | None) -> float:
        """A recorded delay as replayed: divided by speed, nothing when instant."""
        if seconds is None or self.instant:
            return 0.0
        return max(0.0, seconds / self.speed)

    async def latency(self, recorded: float | None) -> None:
        """Wait as long as the server took to answer (its recorded time to first byte, scaled)."""
        await self.clock.sleep(self.scale(recorded))

    def connect_hold(self, *, alone: bool, connected: bool, queued: bool, client_timeout: Any, timeout: float,
                     recorded: tuple[float | None, bool] | None = None) -> float:
        """Seconds to hold a ``/meta/connect``; 0 answers at once.

        ``timeout`` is the server's advice.timeout in seconds; ``recorded`` the recorded (hold, carried events) of
        this connect, if any. Instant replay holds the full timeout, so a client waiting for an event does not
        spin; recorded replay holds an empty recorded connect as long as it was held.
        """
        if not alone or not connected or queued or client_timeout == 0:
            return 0.0
        if self.instant:
            return timeout
        cap = timeout / self.speed
        if recorded is not None:
            hold, carried = recorded
            if hold is not None and not carried:
                return min(self.scale(hold), cap)
        return cap


@dataclass(order=True)
class _Due:
    at: float
    order: int
    item: Any = None


class Schedule:
    """Items that fall due at given times, released in time order (recorded order among equal times) by one
    timer on the clock; what the replayer keeps per client for its events. ``release`` gets each item and how late
    it went, in seconds after its time (the clock's timer fired late, or the process was busy when it fell due)."""

    _orders = itertools.count()
    __slots__ = ("_heap", "_timer", "_timer_at", "clock", "release")  # one per live client, as long as it lives

    def __init__(self, clock: Clock, release: Callable[[Any, float], None]) -> None:
        self.clock = clock
        self.release = release
        self._heap: list[_Due] = []
        self._timer: Cancellable | None = None
        self._timer_at = float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, at: float, item: Any, order: int | None = None) -> None:
        heapq.heappush(self._heap, _Due(at, next(self._orders) if order is None else order, item))
        self._arm()

    def _arm(self) -> None:
        if not self._heap:
            return
        due = self._heap[0].at
        if due >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = self.clock.call_at(due, self._pump)

    def _pump(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self.clock.now()
        while self._heap and self._heap[0].at <= now:
            due = heapq.heappop(self._heap)
            self.release(due.item, now - due.at)
        self._arm()

    def drain(self) -> list[Any]:
        """Take back every item not released yet (in no particular order), the timer stopped."""
        items = [due.item for due in self._heap]
        self.close()
        return items

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = float("inf")
        self._heap.clear()


# What wake_first put at the front of the loop's queue, in order: weak references, so that a handle the loop ran and
# dropped (and the task it woke) is not kept until the next wake_first.
_ahead: collections.deque[weakref.ref[Any]] = collections.deque()


def wake_first(future: asyncio.Future[None]) -> None:
    """Set ``future``'s result (unless it has one) and let the one task waiting for it go on next, before the work
    already queued on the loop (after those woken so before that have not gone on yet: first due, first answered):
    a held long-poll whose event fell due is answered before the requests that came meanwhile, not a whole turn of
    the loop after them. asyncio's own loop keeps that queue in ``_ready``; on a loop without it, or when the result
    woke no one or more than one, the waiter goes on in its turn as usual."""
    if future.done():
        return
    queue = getattr(future.get_loop(), "_ready", None)
    if not isinstance(queue, collections.deque):
        future.set_result(None)
        return
    before = len(queue)
    future.set_result(None)
    if len(queue) != before + 1:
        return
    # Those put ahead before that have not run yet are the queue's first, in the order they were put there.
    while _ahead and (not queue or _ahead[0]() is not queue[0]):
        _ahead.popleft()
    waking = queue.pop()
    queue.insert(len(_ahead), waking)
    _ahead.append(weakref.ref(waking))


async def ready[T](value: T) -> T:
    """``value``, to await where an answer is either held (a coroutine that waits) or known at once."""
    return value
