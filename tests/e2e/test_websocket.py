"""CometD over WebSocket: recorded frame by frame, replayed with timing, served by the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import LIFECYCLE, assert_lifecycle, run
from tests.conftest import record, replay
from tests.procs import Proc

WS = ["--transport", "websocket"]


@pytest.fixture(scope="module")
def ws_cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.procs import gwsvcr
    sim = gwsvcr("sim", "--port", "0")
    path = tmp_path_factory.mktemp("ws") / "ws.yaml"
    rec = record(sim.url, path)
    run("node", rec.url, LIFECYCLE, extra=WS)
    assert rec.stop() == 0 and sim.stop() == 0
    return path


def test_websocket_frames_recorded_with_causes(ws_cassette: Path) -> None:
    c = cas.load(ws_cassette, use_cache=False)
    frames = [e for e in c.exchanges if e.transport == "websocket"]
    assert frames and all(e.request.method == "WS" for e in frames)
    events = [i for e in frames for i in e.reply_items() if i.is_event]
    assert [i.event for i in events] == ["CallRecordingStateChange (Stopped)", "CallRecordingStateChange (Recording)",
                                         "CallRecordingStateChange (Paused)", "CallRecordingStateChange (Recording)"]
    by_number = c.by_number()
    for item in events:
        assert by_number[item.cause].request.body["operationName"] == item.after
        assert 0.2 <= item.delay <= 0.4


@pytest.mark.parametrize("transport", ["websocket", "long-polling"])
@pytest.mark.parametrize("client", ["node", "python"])
def test_websocket_recording_replays(ws_cassette: Path, client: str, transport: str) -> None:
    server = replay(ws_cassette)
    session = run(client, server.url, LIFECYCLE, extra=["--transport", transport])
    assert server.stop() == 0
    assert_lifecycle(session)
    recorded = [i.delay * 1000 for e in cas.load(ws_cassette).exchanges for i in e.reply_items() if i.is_event]
    for got, want in zip(session.delays().values(), recorded, strict=False):
        assert abs(got - want) <= 15, (session.delays(), recorded)
    assert "crashed" not in server.stderr and "Traceback" not in server.stderr


@pytest.mark.parametrize("client", ["node", "python"])
def test_sim_over_websocket(sim: Proc, client: str) -> None:
    assert_lifecycle(run(client, sim.url, LIFECYCLE, user=f"ws-{client}", extra=WS))
    assert "crashed" not in sim.stderr
