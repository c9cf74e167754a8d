"""gwsvcr replay: recordings of real CometD clients against Faye, replayed offline to both clients."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import Session, assert_lifecycle, run
from tests.conftest import record, replay
from tests.procs import PEERS, ROOT, need_node, start

OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
CLIENTS = ("python", "node")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One cassette per client, recorded through gwsvcr record in front of a real Faye server of its own (Faye's
    /v2/me/calls is one channel for everybody): the two recorded side by side."""
    folder = tmp_path_factory.mktemp("rec")  # here: pytest's first mktemp of a run is not thread-safe

    def recorded(client: str) -> Path:
        path = folder / f"{client}.yaml"
        faye = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "250"])
        try:
            rec = record(faye.url, path)
            run(client, rec.url, OPS, extra=["--call-id", f"CALL-{client}"])
            assert rec.stop() == 0
        finally:
            faye.stop()  # replay runs with the upstream gone
        return path

    with ThreadPoolExecutor(len(CLIENTS)) as pool:
        return dict(zip(CLIENTS, pool.map(recorded, CLIENTS), strict=True))


def recorded_delays(path: Path) -> list[float]:
    c = cas.load(path)
    return [i.delay * 1000 for e in c.exchanges for i in e.reply_items() if i.is_event]


@pytest.mark.parametrize("replayed_to", CLIENTS)
@pytest.mark.parametrize("recorded_with", CLIENTS)
def test_replay_to_any_client_with_recorded_timing(recordings: dict[str, Path], recorded_with: str,
                                                   replayed_to: str) -> None:
    path = recordings[recorded_with]
    server = replay(path)
    session = run(replayed_to, server.url, OPS, extra=["--call-id", f"CALL-{recorded_with}"])
    assert server.stop() == 0, server.stderr
    assert_lifecycle(session, OPS)
    for got, want in zip(session.delays().values(), recorded_delays(path), strict=False):
        assert abs(got - want) <= 15, (session.delays(), recorded_delays(path))
    assert "0 misses" in server.stdout


def test_late_client_gets_no_event_early(recordings: dict[str, Path]) -> None:
    server = replay(recordings["python"])
    session = run("node", server.url, OPS, extra=["--call-id", "CALL-python", "--extra-pause",
                                                  "StopCallRecording=1500"])
    assert server.stop() == 0
    assert_lifecycle(session, OPS)
    replies = {r["op"]: r["t"] for r in session.replies}
    for event, want in zip(session.events, recorded_delays(recordings["python"]), strict=False):
        assert event["t"] > replies[event["op"]], "an event never comes before the request that caused it"
        assert abs(event["delay_ms"] - want) <= 15


def test_instant_timing_keeps_order(recordings: dict[str, Path]) -> None:
    server = replay(recordings["node"], "--timing", "instant")
    session = run("node", server.url, OPS, extra=["--call-id", "CALL-node"])
    assert server.stop() == 0
    assert_lifecycle(session, OPS)
    handshake = session.of("handshake")[0]["t"]
    last = session.events[-1]["t"]
    assert last - handshake < 500, f"instant replay took {last - handshake:.0f} ms"
    assert all(d < 50 for d in session.delays().values())


def _sequence(s: Session) -> list[tuple[str, str, str]]:
    return [(r["type"], r.get("op", ""), r.get("recordingState", "")) for r in s.records
            if r["type"] in ("reply", "event")]


def test_same_cassette_same_client_same_messages(recordings: dict[str, Path]) -> None:
    server = replay(recordings["python"], "--speed", "4")
    runs = [run("python", server.url, OPS, extra=["--call-id", "CALL-python"]) for _ in range(3)]
    assert server.stop() == 0
    assert _sequence(runs[0]) == _sequence(runs[1]) == _sequence(runs[2])
    assert [e["data"] for e in runs[0].events] == [e["data"] for e in runs[2].events]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_strict_miss_explains_closest_and_fails_the_run(recordings: dict[str, Path]) -> None:
    server = replay(recordings["python"])
    status, body = _post(server.url + "/api/v2/me/calls/CALL-python", {"operationName": "HoldCall"})
    assert status == 500
    assert body["error"] == "gwsvcr: no recorded request matches"
    top = body["closest"][0]
    assert top["request"] == "POST /api/v2/me/calls/CALL-python"
    assert any(d.startswith("body.operationName: 'HoldCall' here,") for d in top["differences"])
    assert server.stop() == 1, "strict replay with a miss exits 1"
    assert "MISS POST /api/v2/me/calls/CALL-python" in server.stderr
    assert "1 misses" in server.stdout


def test_lenient_miss_is_404_and_exit_0(recordings: dict[str, Path]) -> None:
    server = replay(recordings["python"], "--lenient")
    assert _post(server.url + "/nowhere", {"a": 1})[0] == 404
    assert server.stop() == 0


async def test_200_clients_each_get_their_own_events(recordings: dict[str, Path]) -> None:
    from tests.peers.aiocometd_client import run_session

    server = replay(recordings["python"])
    try:
        sessions = await asyncio.gather(*(
            run_session(server.url, call_id="CALL-python", ops=OPS, event_timeout=60) for _ in range(200)))
    finally:
        code = server.stop()
    assert code == 0, server.stderr[-2000:]
    for records in sessions:
        events = [r for r in records if r["type"] == "event"]
        assert [e["op"] for e in events] == list(OPS)
    assert "to 200 clients" in server.stdout and "800 events released" in server.stdout


def test_lenient_misses_go_upstream_and_are_appended(tmp_path: Path, sim) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    shutil.copy(ROOT / "cassettes" / "stop_call_recording.yaml", path)
    before = len(cas.load(path, use_cache=False).exchanges)
    server = replay(path, "--lenient", "--upstream", sim.url)
    req = urllib.request.Request(server.url + "/api/v2/me/calls", headers={
        "Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()})
    with urllib.request.urlopen(req, timeout=10) as r:  # not in the cassette: the simulator answers
        assert json.loads(r.read())["calls"][0]["id"] == "01RCC3N118B1V0SL8O7GK2LAES00000V"
    assert server.stop() == 0
    assert "appended 1 upstream exchanges" in server.stdout
    after = cas.load(path, use_cache=False)
    assert len(after.exchanges) == before + 1
    new = after.exchanges[-1]
    assert (new.episode, new.request.path, new.response.status) == (2, "/api/v2/me/calls", 200)
    assert base64.b64encode(b"agent1:secret").decode() not in path.read_text(), "appended exchanges are redacted"
