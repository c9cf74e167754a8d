"""The pytest plugin, run the way a user runs it (pytester): offline replay, misses, --gws-record."""

from __future__ import annotations

import shutil

import pytest

from gwsvcr import cassette as cas
from tests.procs import ROOT, Proc

pytest_plugins = ["pytester"]

USER_TEST = '''
import base64, json, urllib.request, urllib.error
import pytest

AUTH = {"Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()}
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"


def call(url, body=None, headers=None):
    req = urllib.request.Request(url, None if body is None else json.dumps(body).encode(),
                                 {**AUTH, "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read()), r.headers


def bayeux(url, cookie, **message):
    return call(url + "/api/v2/notifications", [dict(message, id="1")], {"Cookie": cookie})[0]


@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")
def test_stop_call_recording(gws_replay):
    me, headers = call(gws_replay.url + "/api/v2/me")
    cookie = headers["Set-Cookie"].split(";")[0]
    [hs] = bayeux(gws_replay.url, cookie, channel="/meta/handshake", version="1.0",
                  supportedConnectionTypes=["long-polling"])
    cid = hs["clientId"]
    bayeux(gws_replay.url, cookie, channel="/meta/connect", clientId=cid, connectionType="long-polling",
           advice={"timeout": 0})
    bayeux(gws_replay.url, cookie, channel="/meta/subscribe", clientId=cid, subscription="/v2/me/calls")
    reply, _ = call(gws_replay.url + CALL, {"operationName": "StopCallRecording"},
                    {"Cookie": cookie, "X-CSRF-TOKEN": headers["X-CSRF-TOKEN"]})
    assert reply == {"statusCode": 0}
    messages = bayeux(gws_replay.url, cookie, channel="/meta/connect", clientId=cid, connectionType="long-polling")
    [event] = [m for m in messages if "data" in m]
    assert event["data"]["call"]["recordingState"] == "Stopped"
    assert event["data"]["call"]["userData"]["GSIP_RECORD"] == "OFF"
    assert gws_replay.misses == []


@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml")
def test_not_in_cassette(gws_replay):
    try:
        call(gws_replay.url + CALL, {"operationName": "HoldCall"})
    except urllib.error.HTTPError as e:
        assert e.code == 500


@pytest.mark.gws_cassette("cassettes/nowhere.yaml")
def test_missing_cassette(gws_replay):
    pass
'''


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "cassettes").mkdir()
    shutil.copy(ROOT / "cassettes" / "stop_call_recording.yaml", pytester.path / "cassettes")
    pytester.makepyfile(test_gws=USER_TEST)
    return pytester


def test_replay_offline_miss_and_missing_cassette(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)  # a missing cassette fails at setup
    out = result.stdout.str()
    assert "request(s) not in" in out and "body.operationName: 'HoldCall' here, 'StopCallRecording' recorded" in out
    assert "cassettes/nowhere.yaml not found" in out and "--gws-record --gws-upstream" in out


def test_gws_record_rerecords_against_sim(user_project: pytest.Pytester, sim: Proc) -> None:
    target = user_project.path / "cassettes" / "stop_call_recording.yaml"
    before = cas.load(target, use_cache=False)
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_stop_call_recording",
                                               "--gws-record", "--gws-upstream", sim.url)
    result.assert_outcomes(passed=1)
    after = cas.load(target, use_cache=False)
    assert after.header.upstream == sim.url != before.header.upstream
    events = [i for e in after.exchanges for i in e.reply_items() if i.is_event]
    assert [e.event for e in events] == ["CallRecordingStateChange (Stopped)"]
    # and the fresh recording replays offline
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_stop_call_recording"
                                      ).assert_outcomes(passed=1)


def test_record_needs_upstream(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess("--gws-record")
    assert result.ret != 0
    assert "--gws-record needs --gws-upstream" in result.stderr.str()


def test_unknown_timing_fails_at_setup_naming_the_timings(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_timing='''
import pytest

@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="fast")
def test_fast(gws_replay):
    pass
''')
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_timing.py")
    result.assert_outcomes(errors=1)
    assert "@gws_cassette(timing='fast'): timing is one of recorded, instant" in result.stdout.str()


def test_sample_cassettes_validate() -> None:
    samples = sorted((ROOT / "cassettes").glob("*.yaml"))
    assert {p.name for p in samples} >= {"stop_call_recording.yaml", "recording_lifecycle.yaml"}
    for path in samples:
        assert cas.validate(path) == [], path
    life = cas.load(ROOT / "cassettes" / "recording_lifecycle.yaml", use_cache=False)
    states = [i.message["data"]["call"]["recordingState"] for e in life.exchanges for i in e.reply_items()
              if i.is_event]
    assert states == ["Recording", "Paused", "Recording", "Stopped"]
