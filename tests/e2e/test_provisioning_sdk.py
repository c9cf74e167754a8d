"""Genesys' Provisioning API v3 SDK (npm genesys-provisioning-client-js): each asynchronous operation is tagged with
a uuid the SDK makes (POST .../operations/get-users?_aioId=<uuid>&limit=1) and its callback is called only for the
CometD result that carries that uuid back. Two agents recorded at once, each with several operations in flight,
then replayed with no option: every result reaches its own callback within 25 ms of its recorded delay, in the
recorded order and pace, and with the agents started the other way round and 300 ms slower before each operation.
Upstream: tests/peers/provisioning_server.js on the CometD project's Node server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.e2e.released import assert_never_early, on_time, recorded_delays, releases, replayed_to
from tests.e2e.twoagents import AGENTS, Recording, Sdk

pytestmark = pytest.mark.node

OPS = ("users:1", "users:2", "skills")
SDK = Sdk("provisioning", "reply", ("--ops", ",".join(OPS)))


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return SDK.record(tmp_path_factory.mktemp("provisioning") / "two-agents.yaml")


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
    assert sorted(ops.values()) == sorted((name, op) for name in AGENTS for op in OPS)
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
    sessions, server = replayed_to(path, lambda url: SDK.replayed(url, first, pause_ms))
    recorded, ops = recorded_delays(path), operations(path)
    released = releases(server.stderr)
    assert_never_early(released, recorded)
    assert sorted(ops[r.cause] for r in released) == sorted((name, op) for name in AGENTS for op in OPS)
    want = {ops[cause]: ms for (cause, _), ms in recorded.items()}
    errors = {}
    for name, session in sessions.items():
        assert sorted(e["op"] for e in session.events if e["own"]) == sorted(OPS), session.records
        errors.update({f"{name} {e['op']}": e["delay_ms"] - want[(name, e["op"])] for e in session.events})
    return errors
