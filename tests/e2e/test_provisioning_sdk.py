"""Genesys' Provisioning API v3 SDK (npm genesys-provisioning-client-js): each asynchronous operation is tagged with
a uuid the SDK makes (POST .../operations/get-users?_aioId=<uuid>&limit=1) and its callback is called only for the
CometD result that carries that uuid back. Two agents recorded at once, each with several operations in flight,
then replayed with no option: every result reaches its own callback within 25 ms of its recorded delay, in the
recorded order and pace, and with the agents started the other way round and 300 ms slower before each operation.
Upstream: tests/peers/provisioning_server.js on the CometD project's Node server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import Running, Session
from tests.conftest import record, replay
from tests.e2e.released import assert_never_early, on_time, recorded_delays, releases
from tests.procs import PEERS, need_genesys_sdks, start
from tests.reliability.secretscan import remember

pytestmark = pytest.mark.node

API_KEY = "prKey-" + secrets.token_hex(12)
TOKENS = {"agent1": "prTokA-" + secrets.token_hex(12), "agent2": "prTokB-" + secrets.token_hex(12)}
remember(API_KEY, *TOKENS.values())
OPS = ("users:1", "users:2", "skills")


def agent(url: str, name: str, token: str, pause_ms: int = 0) -> Running:
    cmd = [need_genesys_sdks(), str(PEERS / "provisioning_client.js"), "--url", url, "--token", token,
           "--api-key", API_KEY, "--agent", name, "--ops", ",".join(OPS), "--pause-ms", str(pause_ms)]
    return Running(f"provisioning SDK {name}", url, cmd=cmd)


def two_agents(url: str, first: str, pause_ms: int = 0, tokens: dict[str, str] = TOKENS) -> dict[str, Session]:
    """``first`` starts; the other once the first has the reply to its first operation; both run to the end."""
    second = "agent2" if first == "agent1" else "agent1"
    running = {first: agent(url, first, tokens[first], pause_ms)}
    running[first].wait_for("reply")
    running[second] = agent(url, second, tokens[second], pause_ms)
    return {name: run.finish() for name, run in running.items()}


@dataclass
class Recording:
    path: Path
    sessions: dict[str, Session]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    path = tmp_path_factory.mktemp("provisioning") / "two-agents.yaml"
    server = start([need_genesys_sdks(), str(PEERS / "provisioning_server.js"), "--port", "0", "--api-key", API_KEY,
                    *(f for name, token in TOKENS.items() for f in ("--agent", f"{token}={name}"))])
    try:
        rec = record(server.url, path)
        sessions = two_agents(rec.url, "agent1")
        assert rec.stop() == 0, rec.stderr
    finally:
        server.stop()
    yield Recording(path, sessions)


def operations(path: Path) -> dict[int, tuple[str, str]]:
    """Recorded operation exchange -> (agent, operation), the agent named by its users' filter."""
    c = cas.load(path)
    ops = {ex.number: ex for ex in c.exchanges if "/operations/" in ex.request.path}
    agent_of = {ex.session: dict(ex.request.query)["filterParameters"] for ex in ops.values()
                if ex.request.path.endswith("/get-users")}
    return {n: (agent_of[ex.session], f"users:{dict(ex.request.query)['limit']}"
                if ex.request.path.endswith("/get-users") else "skills") for n, ex in ops.items()}


def test_the_recording_marks_each_uuid_and_ties_each_result_to_its_operation(recording: Recording) -> None:
    c = cas.load(recording.path)
    assert c.sessions() == ["s1", "s2"]
    ops = operations(recording.path)
    assert sorted(ops.values()) == sorted((name, op) for name in TOKENS for op in OPS)
    assert all([m.at for m in c.by_number()[n].correlate] == [] for n in ops)  # the uuid is not in the reply
    results = [item for ex in c.exchanges for item in ex.reply_items() if item.is_event]
    assert sorted(r.cause for r in results) == sorted(ops), [(r.cause, r.rule) for r in results]
    assert all(r.rule == "value" and [(m.exchange, m.at) for m in r.correlate] == [(r.cause, "query._aioId")]
               for r in results), [(r.rule, r.correlate) for r in results]
    for session in recording.sessions.values():
        assert [e["own"] for e in session.events] == [True] * len(OPS)


@pytest.mark.parametrize("first,pause_ms", [("agent1", 0), ("agent2", 300)],
                         ids=["recorded-order", "reverse-order-300ms-slower"])
def test_every_result_reaches_its_own_callback_at_its_recorded_delay(recording: Recording, first: str,
                                                                      pause_ms: int) -> None:
    """No option: the uuids are found in the recording. Other tokens than recorded."""
    on_time(lambda: replayed(recording.path, first, pause_ms))


def replayed(path: Path, first: str, pause_ms: int) -> dict[str, float]:
    """One replay of the two agents: every result reaches its own callback, nothing is missed or left unused, the
    replay releases nothing before its recorded delay; returns how far from it each result came as the agents saw
    it."""
    server = replay(path)
    tokens = {name: f"live-{name}-" + secrets.token_hex(8) for name in TOKENS}
    sessions = two_agents(server.url, first, pause_ms, tokens)
    assert server.stop() == 0, server.stderr
    assert "0 misses, 0 recorded exchanges never used" in server.stdout, server.stdout + server.stderr
    recorded, ops = recorded_delays(path), operations(path)
    released = releases(server.stderr)
    assert_never_early(released, recorded)
    assert sorted(ops[r.cause] for r in released) == sorted((name, op) for name in TOKENS for op in OPS)
    want = {ops[cause]: ms for (cause, _), ms in recorded.items()}
    errors = {}
    for name, session in sessions.items():
        assert sorted(e["op"] for e in session.events if e["own"]) == sorted(OPS), session.records
        errors.update({f"{name} {e['op']}": e["delay_ms"] - want[(name, e["op"])] for e in session.events})
    return errors
