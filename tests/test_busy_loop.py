"""Timing in a busy replay (issue 27): the event loop runs its timers once a turn, after all the work the turn began
with, and lets a waiting task go on only in the next turn. Here: timers run as soon as a request is taken
(``Clock.run_due``), a held connect whose time came goes on before the work already queued (``wake_first``), and a
hook that returned at once is reported in the same turn (cli/serve.py ``PromptHooks``). And a burst of connections
the busy loop has not accepted yet waits in the kernel's queue, not dropped to retry a second later
(``WideBacklogLoop``)."""

from __future__ import annotations

import asyncio
import select
import socket
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.proxy import mode_servers

from gwsvcr import cassette as cas
from gwsvcr import wire
from gwsvcr.addons.flowconv import NO_UPSTREAM
from gwsvcr.cli import serve
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Clock, wake_first
from tests.fakeclock import FakeClock
from tests.procs import ROOT


class _Thing:
    pass


async def test_due_timers_run_when_asked_in_time_order_each_once() -> None:
    clock, ran = Clock(), []
    now = clock.now()
    clock.call_at(now + 0.004, ran.append, "second")
    clock.call_at(now + 0.002, ran.append, "first")
    clock.call_at(now + 60, ran.append, "not yet").cancel()
    clock.call_at(now, ran.append, "cancelled").cancel()
    time.sleep(0.01)  # the process is busy: the loop cannot run its timers meanwhile
    clock.run_due()
    assert ran == ["first", "second"]
    await asyncio.sleep(0.01)  # the loop's own timers go off later and find them run
    assert ran == ["first", "second"]


async def test_a_clock_nobody_asks_forgets_its_timers_once_they_went_off() -> None:
    clock, ran = Clock(), []
    kept = _Thing()
    gone = weakref.ref(kept)
    clock.call_at(clock.now() + 0.001, ran.append, kept)
    clock.call_at(clock.now() + 30, ran.append, _Thing()).cancel()
    del kept
    await asyncio.sleep(0.01)
    assert len(ran) == 1
    ran.clear()
    assert gone() is None  # neither the heap of timers nor the timer keeps what it ran with


async def test_timers_cancelled_before_they_went_off_leave_the_clock() -> None:
    """A clock whose timers are all cancelled (a verify run's deadlines, a hold answered by its event) keeps none."""
    clock = Clock()
    timers = [clock.call_at(clock.now() + 30 + n, lambda: None) for n in range(5)]
    for timer in reversed(timers):  # the earliest last: until then each one cancelled is behind a live one
        timer.cancel()
    assert clock._pending == []


@pytest.mark.parametrize("first", [True, False], ids=["wake_first", "set_result"])
async def test_a_woken_waiter_goes_on_before_the_work_already_queued(first: bool) -> None:
    loop, order = asyncio.get_running_loop(), []
    woken = loop.create_future()

    async def held() -> None:
        await woken
        order.append("held")

    task = asyncio.ensure_future(held())
    await asyncio.sleep(0)  # it waits
    loop.call_soon(order.append, "queued before")
    if first:
        wake_first(woken)
    else:
        woken.set_result(None)
    await task
    await asyncio.sleep(0)
    assert order == (["held", "queued before"] if first else ["queued before", "held"])


async def test_waiters_woken_first_go_on_in_the_order_they_were_woken() -> None:
    loop, order = asyncio.get_running_loop(), []
    woken = [loop.create_future() for _ in range(3)]

    async def held(n: int) -> None:
        await woken[n]
        order.append(n)

    tasks = [asyncio.ensure_future(held(n)) for n in range(3)]
    await asyncio.sleep(0)
    loop.call_soon(order.append, "queued before")
    for future in woken:
        wake_first(future)
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)
    assert order == [0, 1, 2, "queued before"]


async def test_what_was_woken_first_is_not_kept_once_it_went_on() -> None:
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    async def held() -> None:
        await woken

    task = asyncio.ensure_future(held())
    await asyncio.sleep(0)
    wake_first(woken)
    await task
    gone = weakref.ref(task)
    del task
    await asyncio.sleep(0)
    assert gone() is None


async def test_waking_no_one_leaves_the_queue_as_it_was() -> None:
    loop, order = asyncio.get_running_loop(), []
    loop.call_soon(order.append, 1)
    loop.call_soon(order.append, 2)
    nobody = loop.create_future()
    wake_first(nobody)
    wake_first(nobody)  # already done: nothing
    await asyncio.sleep(0)
    assert order == [1, 2] and nobody.result() is None


async def test_an_event_due_while_the_replay_was_busy_goes_with_its_next_request() -> None:
    """Its timer has not gone off (the loop was busy): the next request the replay takes releases it first."""
    clock = FakeClock()
    sample = cas.load(ROOT / "cassettes" / "stop_call_recording.yaml")
    core = Replayer(sample, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock)
    stop = next(ex for ex in sample.exchanges if ex.request.method == "POST" and ex.request.kind == "json")
    agent = [("Authorization", wire.basic_header("agent1", "secret"))]
    answering = asyncio.create_task(core.handle(cas.Request(headers=agent, kind="json", body=stop.request.body,
                                                            method="POST", path=stop.request.path)))
    await clock.advance(stop.ttfb or 0.0)
    served = await answering
    assert served.delivered is not None
    served.delivered(clock.now())
    [client] = core.by_cookie.values()
    clock.t += 1.0  # time passes; no timer fires
    assert client.pending == []
    other = [("Authorization", wire.basic_header("agent2", "secret"))]
    core.handle(cas.Request(headers=other, method="GET", path="/api/v2/me")).close()
    assert len(client.pending) == 1 and client.pending[0]["channel"] == "/v2/me/calls"


class _AtOnce:
    def request(self, flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(200, b"ok")


async def turns_to_answer(prompt: bool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many turns of the loop each of 5 requests on one connection took, from sent to its reply read, on a lean
    engine in this loop whose addon answers every request at once, with PromptHooks or mitmproxy's own handler."""
    monkeypatch.setattr(mode_servers, "ProxyConnectionHandler", serve.PromptHooks.__mro__[1])
    if not prompt:
        monkeypatch.setattr(serve, "prompt_hooks", lambda: None)
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[str] = loop.create_future()
    master = serve.build([_AtOnce()], host="127.0.0.1", port=0, mode=NO_UPSTREAM, upstream=False,
                         settings={}, endpoints=False, on_ready=ready.set_result)
    running = asyncio.ensure_future(master.run())
    turns, took = [0], []

    def tick() -> None:
        turns[0] += 1
        ticking[0] = loop.call_soon(tick)

    ticking: list[Any] = [loop.call_soon(tick)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", int((await ready).rsplit(":", 1)[1]))
        for _ in range(5):
            began = turns[0]
            writer.write(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2) == b"ok"
            took.append(turns[0] - began)
        writer.close()
        await writer.wait_closed()
    finally:
        ticking[0].cancel()
        master.shutdown()
        await running
        serve.release_logging()
        monkeypatch.undo()
    return took[1:]  # the first also opened the connection


async def test_a_hook_that_returned_at_once_is_reported_in_the_same_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """mitmproxy's handler reports each hook a turn (or more) after it returned: the request hook's and the response
    hook's; PromptHooks in the turn the request was read."""
    plain = await turns_to_answer(False, monkeypatch)
    prompt = await turns_to_answer(True, monkeypatch)
    assert len(set(plain)) == len(set(prompt)) == 1, (plain, prompt)  # the same every time: no timing involved
    assert prompt[0] <= plain[0] - 2, (plain, prompt)


def connected_within(loop: asyncio.AbstractEventLoop, attempts: int, seconds: float) -> int:
    """How many of ``attempts`` connections at once to a server on ``loop`` that accepts none (its loop does not
    run) the kernel completes within ``seconds``: those it queued for the server; one it dropped retries in 1 s."""
    async def nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(nothing, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    socks = []
    try:
        for _ in range(attempts):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        done, end = set(), time.monotonic() + seconds
        while len(done) < attempts and time.monotonic() < end:
            _, writable, _ = select.select([], [s for s in socks if s not in done], [], 0.05)
            done.update(s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        return len(done)
    finally:
        for s in socks:
            s.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


@pytest.mark.skipif(int(Path("/proc/sys/net/core/somaxconn").read_text()) < 1000
                    if Path("/proc/sys/net/core/somaxconn").exists() else True,
                    reason="needs Linux with net.core.somaxconn >= 1000")
def test_the_serving_loop_queues_a_burst_of_connections_it_has_not_accepted_yet() -> None:
    assert connected_within(serve.WideBacklogLoop(), 400, 0.5) == 400
    assert connected_within(asyncio.SelectorEventLoop(), 400, 0.5) < 200  # asyncio's own: 100 (the test can fail)
