"""Genesys' Statistics API v3 SDK (npm genesys-statistics-client-js) with two agents recorded at once, replayed in
the recorded order, in the reverse order and 500 ms slower before each operation: a Bearer token and an API key
only (no session cookie of its own; the CometD server sets BAYEUX_BROWSER), so nothing but what each agent sends
tells the replay which recorded agent it is. Each agent names its statistics subscription by a uuid it makes,
which the update carries back. Upstream: tests/peers/statistics_server.js on the CometD project's Node server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.e2e.released import assert_never_early, on_time, recorded_delays, releases, replayed_to
from tests.e2e.twoagents import Recording, Sdk

pytestmark = pytest.mark.node

SDK = Sdk("statistics", "service")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return SDK.record(tmp_path_factory.mktemp("statistics") / "two-agents.yaml")


def agents_of(path: Path) -> dict[str, str]:
    """Recorded session -> the agent whose statistics it subscribed to."""
    return {ex.session: ex.request.body["data"]["statistics"][0]["objectId"] for ex in cas.load(path).exchanges
            if ex.request.method == "POST" and ex.request.path.endswith("/subscriptions")}


def test_the_recording_holds_two_sessions_the_uuid_each_made_and_the_snapshot_the_subscribe_caused(
        recording: Recording) -> None:
    c = cas.load(recording.path)
    assert c.sessions() == ["s1", "s2"]
    events = [(item, ex) for ex in c.exchanges for item in ex.reply_items() if item.is_event]
    snapshots = [item for item, _ in events if item.message["channel"].endswith("/service")]
    assert len(snapshots) == 2 and all(s.rule == "subscribe" and "/meta/subscribe" in (s.after or "")
                                       for s in snapshots), [(s.rule, s.after) for s in snapshots]
    opened = [ex for ex in c.exchanges if ex.request.path.endswith("/subscriptions")]
    # the uuid, and the statistic's name (state-agent1: made by the client, echoed), but not the short objectId
    assert [[m.at for m in ex.correlate] for ex in opened] == [["json.operationId",
                                                                "json.data.statistics.0.statisticId"]] * 2
    updates = [item for item, _ in events if item.message["channel"].endswith("/updates")]
    assert [(u.correlate[0].at, u.correlate[0].paths) for u in updates] == [("json.operationId",
                                                                             ("data.subscriptionId",))] * 2
    assert all(u.rule == "value" for u in updates)


@pytest.mark.parametrize("first,pause_ms", [("agent1", 0), ("agent2", 0), ("agent2", 500)],
                         ids=["recorded-order", "reverse-order", "500ms-slower"])
def test_each_agent_gets_only_its_own_events_at_their_recorded_delays(recording: Recording, first: str,
                                                                      pause_ms: int) -> None:
    """Other tokens than recorded (a cassette holds placeholders anyway), another start order, another pace."""
    on_time(lambda: replayed(recording.path, first, pause_ms))


def replayed(path: Path, first: str, pause_ms: int) -> dict[str, float]:
    """One replay of the two agents: each gets only its own update, nothing is missed or left unused, the replay
    releases nothing before its recorded delay; returns how far from it each event came as the agents saw it.

    Each event is compared with the recorded event the replay says it released (its live view names the cause):
    an agent's update must be its own session's; its snapshot, alike in both sessions, is its own session's when
    the agent's subscription decided before the snapshot fell due, else the session it was answered from until
    then."""
    sessions, server = replayed_to(path, lambda url: SDK.replayed(url, first, pause_ms))
    recorded, released = recorded_delays(path), releases(server.stderr)
    assert_never_early(released, recorded)
    by_number, agent_of = cas.load(path).by_number(), agents_of(path)
    errors = {}
    for name, session in sessions.items():
        [event] = session.events
        assert event["own"], event
        [update] = [r for r in released if r.channel.endswith("/updates") and
                    agent_of[by_number[r.cause].session] == name]
        [service] = [r for r in released if r.client == update.client and r.channel.endswith("/service")]
        got = {"update": event["delay_ms"], "service": session.of("service")[0]["delay_ms"]}
        for kind, release in (("update", update), ("service", service)):
            errors[f"{name} {kind} #{release.cause}"] = got[kind] - recorded[(release.cause, release.channel)]
    return errors
