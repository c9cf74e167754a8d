"""Field failures replay as they happened: a real Bayeux server (Faye) that forgets its clients after the second
operation, as a node restart does, recorded through gwsvcr record with aiocometd-ng and CometD JS over long-polling,
WebSocket and callback-polling, then replayed offline to the same client: the failure comes at the same point, the
client handshakes and subscribes again on the recorded exchanges, every event comes on time, nothing is missed or
left unused. A recorded HTTP 503 and a recorded connection reset in the middle of a session replay as such.

One recorder and one Faye serve every recording (a session each); each session is replayed on its own mount of the
shared replay service, one through ``gwsvcr replay`` for its exit status and stop summary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import gwsvcr
from gwsvcr import cassette as cas
from tests.clients import Session, run
from tests.conftest import record, replay
from tests.procs import PEERS, need_node, start

OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
COMBOS = [("python", "long-polling"), ("node", "long-polling"), ("python", "websocket"),
          ("node", "callback-polling")]
FAILURE_TOLERANCE_MS = 50
EVENT_TOLERANCE_MS = 25


@dataclass
class Run:
    session: Session
    failure_ms: float  # when the failed connect reached the client, after the reply before it
    delays: list[float]  # each event's delay after its operation's reply, as the client saw it


def observed(session: Session) -> Run:
    """What the client saw: the connect failure (its time after the last reply before it) and the event delays."""
    last_reply, failure = None, None
    for r in session.records:
        if r["type"] == "reply":
            last_reply = r["t"]
        elif (r["type"] == "in" and r["message"].get("channel") == "/meta/connect"
              and r["message"].get("successful") is False and failure is None):
            assert last_reply is not None
            failure = r["t"] - last_reply
    assert failure is not None, f"no connect failure reached the client: {session.records}"
    assert session.of("rehandshake"), "the client did not handshake again"
    assert [e["op"] for e in session.events] == list(OPS), session.events
    return Run(session, failure, [e["delay_ms"] for e in session.events])


def client_args(client: str, transport: str) -> list[str]:
    return ["--transport", transport, "--trace", "--call-id", f"CALL-{client}-{transport}"]


def user(client: str, transport: str) -> str:
    """A user per recording: sessions of one user are one agent's (gwsvcr/session.py)."""
    return f"agent-{client}-{transport}"


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], tuple[Path, Run]]]:
    """Each client and transport recorded through one gwsvcr record in front of a Faye that forgets every CometD
    client 100 ms after a login's second operation's notification; the cassette split into one per session."""
    faye = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "250",
                  "--forget-clients-after", "2"])
    whole = tmp_path_factory.mktemp("field") / "field.yaml"
    runs = {}
    try:
        recorder = record(faye.url, whole, "--quiet")
        for combo in COMBOS:
            runs[combo] = observed(run(combo[0], recorder.url, OPS, user=user(*combo), extra=client_args(*combo)))
        assert recorder.stop() == 0, recorder.stderr
    finally:
        faye.stop()  # replay runs with the upstream gone
    recorded = cas.load(whole)
    assert recorded.sessions() == ["s1", "s2", "s3", "s4"], "one session per recorded client"
    out = {}
    for combo, label in zip(COMBOS, recorded.sessions(), strict=True):
        path = whole.with_name(f"{combo[0]}-{combo[1]}.yaml")
        cas.save(cas.Cassette(str(path), recorded.header, [ex for ex in recorded.exchanges if ex.session == label]),
                 path)
        out[combo] = (path, runs[combo])
    yield out


def assert_as_recorded(recorded: Run, replayed: Run) -> None:
    assert abs(replayed.failure_ms - recorded.failure_ms) <= FAILURE_TOLERANCE_MS, (recorded, replayed)
    for got, want in zip(replayed.delays, recorded.delays, strict=True):
        assert abs(got - want) <= EVENT_TOLERANCE_MS, (recorded.delays, replayed.delays)
    [first] = replayed.session.of("handshake")
    assert all(r["clientId"] != first["clientId"] for r in replayed.session.of("rehandshake")), "a new clientId"


@pytest.mark.parametrize("client,transport", COMBOS[1:])
def test_a_forgotten_client_replays_as_recorded(field: dict[tuple[str, str], tuple[Path, Run]], client: str,
                                                transport: str) -> None:
    path, recorded = field[(client, transport)]
    failed = [item.message for ex in cas.load(path).exchanges for item in ex.reply_items()
              if item.message.get("channel") == "/meta/connect" and item.message.get("successful") is False]
    assert len(failed) == 1 and failed[0]["error"].endswith(":Unknown client"), failed
    with gwsvcr.replaying(path) as gws:
        replayed = observed(run(client, gws.url, OPS, user=user(client, transport),
                                extra=client_args(client, transport)))
    assert_as_recorded(recorded, replayed)
    status = gws.status()
    assert (status["misses"], status["unused"], status["unused_recovery"]) == ([], [], [])
    assert status["failures_replayed"] == 1 and not gws.failed


def test_gwsvcr_replay_reproduces_the_failure_and_exits_0(field: dict[tuple[str, str], tuple[Path, Run]]) -> None:
    path, recorded = field[("python", "long-polling")]
    server = replay(path, "--quiet")
    combo = ("python", "long-polling")
    replayed = observed(run("python", server.url, OPS, user=user(*combo), extra=client_args(*combo)))
    assert server.stop() == 0, server.stdout + server.stderr
    assert_as_recorded(recorded, replayed)
    [summary] = [line for line in server.stdout.splitlines() if line.startswith("gwsvcr: served")]
    assert summary.endswith(
        "0 misses, 0 recorded exchanges never used, 1 recorded failures replayed, 0 faults injected")


def test_a_client_that_does_not_recover_fails_a_strict_replay(field: dict[tuple[str, str], tuple[Path, Run]]) -> None:
    """The same recording, a client that stops after the first operation: the recorded failure and recovery never
    replay, and the replay says so and exits 1."""
    path, _ = field[("node", "long-polling")]
    server = replay(path, "--quiet")
    run("node", server.url, OPS[:1], user=user("node", "long-polling"), extra=client_args("node", "long-polling"))
    assert server.stop() == 1
    [_, why] = server.stdout.strip().splitlines()[-2:]
    assert why.startswith("gwsvcr: the recorded failure and recovery did not replay: #") and "Unknown client" in why
    assert "/meta/handshake" in why and "/meta/subscribe /v2/me/calls never used" in why


def test_a_recorded_503_and_reset_mid_session_replay_as_such(tmp_path: Path) -> None:
    """The upstream answers the second operation request 503 and resets the fourth; CometD JS retries each."""
    faye = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "100",
                  "--fail-request", "2=503", "--fail-request", "4=reset"])
    path = tmp_path / "http.yaml"
    try:
        recorder = record(faye.url, path, "--quiet")
        recorded = run("node", recorder.url, OPS, extra=["--retry-ms", "100"])
        assert recorder.stop() == 0
    finally:
        faye.stop()
    # while recording, the client met the reset as the recorder's 502; the cassette says what the upstream did
    assert [(r["op"], r["status"]) for r in recorded.replies] == [
        (OPS[0], 200), (OPS[1], 503), (OPS[1], 200), (OPS[2], 502), (OPS[2], 200), (OPS[3], 200)]
    reset = next(ex for ex in cas.load(path).exchanges if ex.error)
    assert reset.response is None and reset.error.startswith("upstream ")

    with gwsvcr.replaying(path) as gws:
        replayed = run("node", gws.url, OPS, extra=["--retry-ms", "100"])
    attempts = [(r["type"], r["op"], r.get("status")) for r in replayed.records if r["type"] in ("reply", "broken")]
    assert attempts == [("reply", OPS[0], 200), ("reply", OPS[1], 503), ("reply", OPS[1], 200),
                        ("broken", OPS[2], None), ("reply", OPS[2], 200), ("reply", OPS[3], 200)]
    assert [e["op"] for e in replayed.events] == list(OPS)
    status = gws.status()
    assert (status["misses"], status["unused"], status["failures_replayed"]) == ([], [], 2)
