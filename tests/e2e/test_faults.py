"""Each fault kind, injected into a clean recording (cassettes/recording_lifecycle.yaml), met by a real client
(aiocometd-ng or CometD JS), and what the client did: it recovered and lost no event, or lost exactly what the
fault says. Every case runs on its own mount of the shared replay service, all at once (they mostly wait), so
times are checked only where the fault is about time, and loosely: eight clients starting together make each
one late to read its replies (the recorded timing itself is checked in test_field_failures.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import gwsvcr
from tests.clients import Running, Session
from tests.procs import ROOT

LIFE = ROOT / "cassettes" / "recording_lifecycle.yaml"
OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
STATES = ["Recording", "Paused", "Recording", "Stopped"]
RECORDED_MS = 251  # each notification, 251 ms after its operation's reply in the recording (gwsvcr show)
LATE_MS = 150  # how late a client busy starting next to seven others may read a reply or an event

CASES: dict[str, tuple[str, str, list[str]]] = {  # name: (fault, client, client arguments)
    "unknown-client-python": ("unknown-client after op 2", "python", ["--trace"]),
    "unknown-client-node": ("unknown-client after op 2", "node", ["--trace"]),
    "reconnect-none": ("reconnect-none after op 2", "node", ["--trace", "--event-timeout-ms", "1500"]),
    "drop-connect": ("drop-connect event 2", "python", ["--trace"]),
    "drop-connect-websocket": ("drop-connect event 2", "node", ["--transport", "websocket"]),  # the socket closed
    "delay": ("delay event 2 by 1s", "node", []),
    "duplicate": ("duplicate event 1", "node", []),
    "reset": ("reset POST /api/v2/me/calls/* times 1", "node", ["--retry-ms", "100"]),
    "http": ("http 503 POST /api/v2/me/calls/* times 1", "python", ["--retry-ms", "100"]),
}


@dataclass
class Met:
    session: Session
    status: dict[str, Any]  # the mount's final status

    def states(self) -> list[str]:
        return [e["recordingState"] for e in self.session.events]

    def failures(self) -> list[dict[str, Any]]:
        return [r["message"] for r in self.session.of("in")
                if r["message"].get("channel") == "/meta/connect" and r["message"].get("successful") is False]


@pytest.fixture(scope="module")
def met() -> Iterator[dict[str, Met]]:
    mounts = {name: gwsvcr.replaying(LIFE, faults=[fault]) for name, (fault, _, _) in CASES.items()}
    try:
        running = {name: Running(client, mounts[name].url, OPS, extra=extra)
                   for name, (_, client, extra) in CASES.items()}
        sessions = {name: r.finish(timeout=60, check=False) for name, r in running.items()}
    finally:
        finals = {name: mount.close() for name, mount in mounts.items()}
    yield {name: Met(sessions[name], finals[name]) for name in CASES}


def assert_struck_once(met: Met) -> None:
    assert met.status["faults_injected"] == 1 and [f["applied"] for f in met.status["faults"]] == [1]
    assert met.status["misses"] == []


@pytest.mark.parametrize("name", ["unknown-client-python", "unknown-client-node"])
def test_unknown_client_the_client_handshakes_again_and_loses_nothing(met: dict[str, Met], name: str) -> None:
    m = met[name]
    assert m.session.of("done"), m.session.records
    [failure] = m.failures()
    assert failure["error"] == "402::session_unknown" and failure["advice"]["reconnect"] == "handshake"
    assert len(m.session.of("rehandshake")) == 1
    assert m.states() == STATES
    assert_struck_once(m)
    assert m.status["unused"] == [], "the recovery repeats the recorded handshake and subscribe"


def test_reconnect_none_the_client_stops_and_gets_nothing_more(met: dict[str, Met]) -> None:
    m = met["reconnect-none"]
    [failure] = m.failures()
    assert failure["advice"]["reconnect"] == "none"
    assert not m.session.of("rehandshake") and not m.session.of("done")
    assert m.states() == STATES[:1], "the events after operation 2 are lost"
    [error] = m.session.of("error")
    assert "waiting for a /v2/me/calls notification after PauseCallRecording" in error["message"]
    assert_struck_once(m)


@pytest.mark.parametrize("name", ["drop-connect", "drop-connect-websocket"])
def test_drop_connect_the_event_comes_on_the_next_connect(met: dict[str, Met], name: str) -> None:
    m = met[name]
    assert m.session.of("done") and not m.session.of("rehandshake")
    assert m.states() == STATES, "not lost"
    delays = [e["delay_ms"] for e in m.session.events]
    assert delays[1] > RECORDED_MS + LATE_MS, f"later: the client had to connect again ({delays})"
    assert_struck_once(m)


def test_delay_the_event_comes_that_much_later(met: dict[str, Met]) -> None:
    m = met["delay"]
    assert m.session.of("done") and m.states() == STATES
    delays = [e["delay_ms"] for e in m.session.events]
    assert RECORDED_MS + 1000 - LATE_MS <= delays[1] <= RECORDED_MS + 1000 + LATE_MS, delays
    assert all(d < RECORDED_MS + LATE_MS for i, d in enumerate(delays) if i != 1), delays
    assert_struck_once(m)


def test_duplicate_the_client_gets_the_event_twice(met: dict[str, Met]) -> None:
    """The scripted client takes one notification per operation: the copy answers the next operation for it,
    out of step from there on, as an application that does not drop duplicates would be."""
    m = met["duplicate"]
    first, copy = m.session.events[:2]
    assert first["op"] == copy["op"] == OPS[0] and first["data"] == copy["data"]
    assert copy["t"] - first["t"] < LATE_MS, "in the same reply"
    assert_struck_once(m)


@pytest.mark.parametrize("name,seen", [("reset", ("broken", None)), ("http", ("reply", 503))])
def test_a_failed_operation_the_client_retries_and_the_recording_answers(met: dict[str, Met], name: str,
                                                                         seen: tuple[str, int | None]) -> None:
    m = met[name]
    attempts = [(r["type"], r["op"], r.get("status")) for r in m.session.records if r["type"] in ("reply", "broken")]
    assert attempts[:2] == [(seen[0], OPS[0], seen[1]), ("reply", OPS[0], 200)], attempts
    assert m.session.of("done") and m.states() == STATES
    assert_struck_once(m)
    assert m.status["unused"] == []
