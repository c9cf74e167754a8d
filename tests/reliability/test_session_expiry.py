"""Clients that handshake and vanish while replaying: their sessions expire (maxInterval) and what they held is
freed, so memory stays bounded however many come and go.

This drives the replay core directly (gwsvcr.replay.Replayer, the code behind `gwsvcr replay`) with a fake clock
for BayeuxServer.expire: the replay's maxInterval is the recorded advice.timeout + 30 s, a minute of real time for
the sample cassette. Memory is measured with tracemalloc (bytes allocated by Python, exact and deterministic).
The same check over HTTP, by the process's VmRSS and /__gwsvcr__/status with real expiry, is in tests/soak.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from gwsvcr import cassette as cas
from gwsvcr.bayeux import SESSION_UNKNOWN
from gwsvcr.cassette import Request
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Timing
from tests.fakeclock import FakeClock
from tests.procs import ROOT
from tests.reliability.netutil import COMETD, basic

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
FLEET = 500


@pytest.fixture
def replayer() -> Iterator[tuple[Replayer, FakeClock]]:
    clock = FakeClock()
    core = Replayer(cas.load(SAMPLE), ReplayConfig(timing=Timing.INSTANT), on_miss=lambda miss: None, clock=clock)
    yield core, clock
    core.close()


def _request(user: str, *messages: dict[str, Any]) -> Request:
    return Request(headers=[("Authorization", basic(user, "pw"))], kind="messages", body=list(messages),
                   method="POST", path=COMETD)


async def vanish(core: Replayer, user: str) -> str:
    """Handshake, first connect, subscribe: then never come back. Returns the clientId it had."""
    reply = (await core.handle(_request(user, {"channel": "/meta/handshake", "version": "1.0", "id": "1",
                                               "supportedConnectionTypes": ["long-polling"]}))).response
    assert reply is not None and reply.body[0]["successful"] is True, reply
    cid: str = reply.body[0]["clientId"]
    await core.handle(_request(user, {"channel": "/meta/connect", "clientId": cid, "id": "2",
                                      "connectionType": "long-polling", "advice": {"timeout": 0}}))
    await core.handle(_request(user, {"channel": "/meta/subscribe", "clientId": cid, "id": "3",
                                      "subscription": "/v2/me/calls"}))
    return cid


def allocated() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def rounds(core: Replayer, clock: FakeClock, users: list[str], count: int) -> tuple[list[int], list[int]]:
    """``count`` rounds of FLEET clients that vanish, each round expired: bytes allocated while they were
    live, and after they expired, per round."""
    limit = core.bayeux.config.max_interval_ms / 1000
    live, after = [], []
    for r in range(count):
        for i in range(FLEET):
            await vanish(core, users[r * FLEET + i] if len(users) > 1 else users[0])
        live.append(allocated())
        clock.t += limit + 1
        assert len(core.bayeux.expire()) == FLEET
        after.append(allocated())
    return live, after


async def test_vanished_clients_expire_after_max_interval_and_are_freed(replayer: tuple[Replayer, FakeClock]) -> None:
    core, clock = replayer
    limit = core.bayeux.config.max_interval_ms / 1000
    assert limit == 30 + 30, "the sample's advice.timeout (30 s) + 30 s"
    cids = [await vanish(core, "agent1") for _ in range(FLEET)]
    assert len(core.bayeux.sessions) == FLEET and core.status()["clients"] == FLEET
    clients = [session.context for session in core.bayeux.sessions.values()]

    clock.t += limit - 1  # not yet: a session lives maxInterval after its last message
    assert core.bayeux.expire() == [] and len(core.bayeux.sessions) == FLEET
    clock.t += 2
    # The sweep runs on the next request (at most once a second); a late client's connect is how one notices.
    late = (await core.handle(_request("agent1", {"channel": "/meta/connect", "clientId": cids[0], "id": "9",
                                                 "connectionType": "long-polling"}))).response
    assert late is not None
    [answer] = late.body
    assert answer["error"] == SESSION_UNKNOWN and answer["advice"]["reconnect"] == "handshake", answer
    assert core.bayeux.sessions == {}
    assert core.by_cookie == {}, "an expired client's cookie no longer finds it"
    for client in clients:
        assert client.session is None and not client.pending and not len(client._due) and not client.cursors._next
    status = core.status()
    assert status["clients"] == FLEET and status["misses"] == []


async def test_memory_stays_flat_over_rounds_of_vanishing_clients(replayer: tuple[Replayer, FakeClock]) -> None:
    """A CI fleet on one account: 4 x 500 clients vanish; what the first round left is all that ever stays."""
    core, clock = replayer
    tracemalloc.start()
    try:
        base = allocated()
        await rounds(core, clock, ["agent1"], 1)  # warm-up: caches, interned strings
        live, after = await rounds(core, clock, ["agent1"], 4)
    finally:
        tracemalloc.stop()
    live_cost = (live[-1] - after[-2]) / FLEET
    kept = (after[-1] - base) / FLEET
    print(f"\n{FLEET} vanished clients per round: {live_cost:.0f} bytes each while live, {kept:.0f} kept each "
          f"after expiry; allocated after each round {after}")
    assert kept < 0.1 * live_cost, "expired clients are freed"
    assert after[-1] - after[0] < 20_000, f"no growth from round to round: {after}"


async def test_memory_stays_flat_with_distinct_users(replayer: tuple[Replayer, FakeClock]) -> None:
    core, clock = replayer
    users = [f"user{i}" for i in range(5 * FLEET)]
    tracemalloc.start()
    try:
        await rounds(core, clock, users[:FLEET], 1)
        _, after = await rounds(core, clock, users[FLEET:], 4)
    finally:
        tracemalloc.stop()
    per_client = (after[-1] - after[0]) / (3 * FLEET)
    print(f"\ndistinct users: {per_client:.0f} bytes kept per expired client")
    assert per_client < 100, after
