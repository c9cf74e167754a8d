"""The addons in process, with mitmproxy's own test helpers: options checked at configure time, requests answered
in the request hook, exchanges recorded with their secrets redacted. No proxy, no socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import exceptions, hooks
from mitmproxy.addons import script
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow, tutils

from gwsvcr import cassette as cas
from gwsvcr.addons.recorder import GwsRecorder
from gwsvcr.addons.replayer import GwsReplayer
from gwsvcr.addons.simulator import GwsSimulator
from gwsvcr.replay import STATUS_PATH
from tests.procs import ROOT

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
BASIC = "Basic YWdlbnQxOnNlY3JldA=="  # agent1:secret


def _flow(method: str, path: str, body: object = None) -> tflow.HTTPFlow:
    content = b"" if body is None else json.dumps(body).encode()
    headers = ((b"Authorization", BASIC.encode()), (b"Content-Type", b"application/json"))
    return tflow.tflow(req=tutils.treq(method=method.encode(), path=path.encode(), content=content,
                                       headers=headers))


def _recorded_rest(path: Path) -> cas.Exchange:
    return next(ex for ex in cas.load(path).exchanges if ex.request.kind == "json" and ex.request.method == "POST")


async def test_replayer_answers_a_recorded_request_and_reports_status() -> None:
    addon = GwsReplayer()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, gwsvcr_replay_cassette=str(SAMPLE), gwsvcr_replay_timing="instant")
        stop = _recorded_rest(SAMPLE)
        flow = _flow("POST", stop.request.path, stop.request.body)
        await addon.request(flow)
        assert flow.is_replay == "response" and flow.response is not None
        assert flow.response.status_code == stop.response.status  # type: ignore[union-attr]
        status = _flow("GET", STATUS_PATH)
        await addon.request(status)
        figures = json.loads(status.response.content)  # type: ignore[union-attr]
        assert figures["served"] == 1 and figures["misses"] == [] and stop.number not in figures["unused"]
        addon.done()


async def test_replayer_strict_miss_is_a_500_with_the_explanation() -> None:
    addon = GwsReplayer()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, gwsvcr_replay_cassette=str(SAMPLE))
        flow = _flow("POST", "/api/v2/me/calls/NOT-RECORDED", {"operationName": "StopCallRecording"})
        await addon.request(flow)
        assert flow.response is not None and flow.response.status_code == 500
        assert flow.response.headers["X-Gwsvcr-Miss"] == "1"
        body = json.loads(flow.response.content or b"")
        assert body["request"] == "POST /api/v2/me/calls/NOT-RECORDED" and body["closest"]
        assert addon.failed
        addon.done()


def test_replayer_refuses_bad_options(tmp_path: Path) -> None:
    addon = GwsReplayer()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="more than 0"):
            tctx.configure(addon, gwsvcr_replay_cassette=str(SAMPLE), gwsvcr_replay_speed=0.0)
        broken = tmp_path / "broken.yaml"
        broken.write_text("gwsvcr: 99\n")
        with pytest.raises(exceptions.OptionsError, match=r"broken.yaml:1: unknown cassette format version 99"):
            tctx.configure(addon, gwsvcr_replay_cassette=str(broken), gwsvcr_replay_speed=1.0)


def test_replayer_parses_its_cassette_again_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(SAMPLE.read_bytes())
    addon = GwsReplayer()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, gwsvcr_replay_cassette=str(path))
        first = addon.core.cassette  # type: ignore[union-attr]
        tctx.configure(addon, gwsvcr_replay_timing="instant", gwsvcr_replay_speed=2.0)
        assert addon.core.cassette is first  # type: ignore[union-attr]
        path.write_bytes(SAMPLE.read_bytes() + b"# edited\n")
        tctx.configure(addon, gwsvcr_replay_speed=3.0)
        assert addon.core.cassette is not first  # type: ignore[union-attr]
        addon.done()


def test_recorder_once_refuses_an_existing_cassette(tmp_path: Path) -> None:
    existing = tmp_path / "c.yaml"
    existing.write_text("gwsvcr: 1\n")
    addon = GwsRecorder()
    with (taddons.context(addon, Proxyserver()) as tctx,
          pytest.raises(exceptions.OptionsError, match=r"once \(the default\) never touches")):
        tctx.configure(addon, mode=["reverse:http://127.0.0.1:9"], gwsvcr_record_cassette=str(existing))
    assert existing.read_text() == "gwsvcr: 1\n", "the cassette is untouched"


def test_recorder_writes_an_exchange_with_its_secrets_redacted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    addon = GwsRecorder()
    with taddons.context(addon, Proxyserver()) as tctx:
        tctx.configure(addon, mode=["reverse:http://127.0.0.1:9"], gwsvcr_record_cassette=str(path),
                       gwsvcr_record_mode="all")
        flow = _flow("POST", "/api/v2/me/calls/C1", {"operationName": "StopCallRecording"})
        flow.response = tutils.tresp(status_code=200, content=b'{"statusCode":0}',
                                     headers=((b"Content-Type", b"application/json"),
                                              (b"Set-Cookie", b"JSESSIONID=s3cr3t-session; Path=/")))
        addon.response(flow)
        addon.done()
    text = path.read_text()
    assert "s3cr3t-session" not in text and "YWdlbnQxOnNlY3JldA" not in text
    [ex] = cas.load(path).exchanges
    assert ex.request.body == {"operationName": "StopCallRecording"} and ex.response is not None
    assert ex.response.body == {"statusCode": 0}


async def test_simulator_answers_an_operation_and_checks_its_options() -> None:
    addon = GwsSimulator()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="go together"):
            tctx.configure(addon, gwsvcr_sim_user="agent1")
        tctx.configure(addon, gwsvcr_sim_user="", gwsvcr_sim_recording_state="Stopped")
        flow = _flow("POST", "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V",
                     {"operationName": "StartCallRecording"})
        await addon.request(flow)
        assert flow.response is not None and flow.response.status_code == 200
        assert json.loads(flow.response.content or b"") == {"statusCode": 0}
        refused = _flow("POST", "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V",
                        {"operationName": "ResumeCallRecording"})  # recording, not paused: refused by GWS rules
        await addon.request(refused)
        assert refused.response is not None and refused.response.status_code != 200
        addon.done()


async def test_simulator_knobs_are_options() -> None:
    addon = GwsSimulator()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, gwsvcr_sim_refuse=["StopCallRecording=503:1"], gwsvcr_sim_new_call_ids=True,
                       gwsvcr_sim_wrong_state=["StartCallRecording=Paused"])
        assert addon.core.config.knobs.wrong_state == {"StartCallRecording": "Paused"}
        assert "01RCC3N118B1V0SL8O7GK2LAES00000V" not in addon.core.agent("agent1").calls  # a new id
        [call_id] = addon.core.agent("agent1").calls
        flow = _flow("POST", f"/api/v2/me/calls/{call_id}", {"operationName": "StopCallRecording"})
        await addon.request(flow)
        assert flow.response is not None and flow.response.status_code == 503
        assert json.loads(flow.response.content or b"")["statusCode"] == 1
        with pytest.raises(exceptions.OptionsError, match="gwsvcr_sim options: drop-notification: unknown operation"):
            tctx.configure(addon, gwsvcr_sim_drop_notification=["Nope"])
        addon.done()


@pytest.mark.parametrize("name", ["recorder", "replayer", "simulator"])
def test_addon_scripts_hold_no_module_level_hooks(name: str) -> None:
    """``mitmdump -s addons/NAME.py`` calls every module-level function named like a hook (load, request, ...):
    an imported helper of that name would be called with the hook's arguments."""
    module = script.load_script(str(ROOT / "addons" / f"{name}.py"))
    assert module is not None and module.addons
    assert [hook for hook in hooks.all_hooks if hasattr(module, hook)] == []
