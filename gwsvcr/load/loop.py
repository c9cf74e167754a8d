"""One asyncio event loop per process, in a real OS thread, that runs many :class:`SessionDriver`s for Locust.

Locust runs its users as gevent greenlets and monkey-patches the standard library. The drivers are asyncio code:
they all run on this one loop, in a thread started with the *original* ``_thread.start_new_thread`` (not a
greenlet), with the original selector and ``getaddrinfo``, so nothing there waits on gevent's hub. Every timestamp
a measurement uses (a reply's last byte, a notification's arrival) is taken on this loop when the bytes are read,
so how soon a greenlet next runs does not change a figure; what does is how busy this loop is, which is why one
process drives a bounded number of agents (docs/BENCHMARKS.md) and ``--processes`` adds loops.

A user greenlet hands a session to the loop with :meth:`AgentLoop.start` and gets a :class:`Running`: the checks
arrive in a thread-safe deque the greenlet drains, ``done`` says the session ended, ``error`` why it could not go
on; :meth:`Running.cancel` ends it early (the run's end, the user stopped).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gwsvcr.bayeux import CONNECT
from gwsvcr.verify import Check, Listener

__all__ = ["LAG_EVERY", "AgentLoop", "Running"]


def _original(module: str, name: str) -> Any:
    """The standard library's ``module.name`` as it was before gevent patched it (when it did)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched(module):
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


class _Loop(asyncio.SelectorEventLoop):
    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> Any:
        # the default runs it in a thread pool, whose threads gevent turned into greenlets of a hub this thread
        # never runs: resolve inline (a numeric address, the common case, never gets here)
        return _original("socket", "getaddrinfo")(host, port, family, type, proto, flags)


class Running(Listener):
    """One session on the loop, as its greenlet sees it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.checks: deque[tuple[Check, float | None]] = deque()  # each with the seconds its request took
        self.done = False
        self.error: BaseException | None = None
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._sent_at: float | None = None

    # Listener: called on the loop
    def check(self, check: Check) -> None:
        now = self._loop.time()
        self.checks.append((check, None if self._sent_at is None else now - self._sent_at))

    def exchange(self, request: Any, response: Any, times: Any, error: str | None = None) -> None:
        if not _is_connect(request.body):
            self._sent_at = self._loop.time() - max(0.0, (times.response_end or times.request_start)
                                                    - times.request_start)

    def websocket_frame(self, messages: list[Any], from_client: bool, at: float) -> None:
        if from_client and not _is_connect(messages):
            self._sent_at = self._loop.time()

    def cancel(self) -> None:
        """End the session now (from any thread)."""
        if not self.done and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
        self.done = True


def _is_connect(body: Any) -> bool:
    return isinstance(body, list) and any(isinstance(m, dict) and m.get("channel") == CONNECT for m in body)


LAG_EVERY = 0.25  # seconds between two looks at how late the loop runs what is due


class AgentLoop:
    """The process's loop thread; :meth:`get` starts it on first use. ``lags`` collects, every ``LAG_EVERY``
    seconds, how late the loop ran a timer that was due (seconds): as much can be added to any figure measured on
    it, so a load run shows it beside its figures."""

    _instance: AgentLoop | None = None

    def __init__(self) -> None:
        selector = _original("selectors", "DefaultSelector")()
        self.loop = _Loop(selector)
        self.lags: deque[float] = deque(maxlen=10_000)
        _original("_thread", "start_new_thread")(self._run, ())
        self.loop.call_soon_threadsafe(self._measure_lag, None)

    def _measure_lag(self, due: float | None) -> None:
        now = self.loop.time()
        if due is not None:
            self.lags.append(max(0.0, now - due))
        self.loop.call_at(now + LAG_EVERY, self._measure_lag, now + LAG_EVERY)

    @classmethod
    def get(cls) -> AgentLoop:
        if cls._instance is None:
            cls._instance = AgentLoop()
        return cls._instance

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, session: Callable[[Running], Awaitable[Any]]) -> Running:
        """Run ``session(running)`` on the loop; ``running`` is also the driver's listener."""
        running = Running(self.loop)

        def begin() -> None:
            task = asyncio.ensure_future(session(running))
            running._task = task
            task.add_done_callback(running._finished)

        self.loop.call_soon_threadsafe(begin)
        return running
