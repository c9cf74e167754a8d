"""The pytest plugin, run the way a user runs it (pytester): offline replay on one service per pytest process,
misses failing their own test, marker scopes, default cassette paths, configuration fixtures, --gws-record,
pytest-xdist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def log_in(url):
    """Log in, handshake, connect and subscribe: the login's headers, the session cookie and the clientId."""
    me, headers = call(url + "/api/v2/me")
    cookie = headers["Set-Cookie"].split(";")[0]
    [hs] = bayeux(url, cookie, channel="/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling"])
    cid = hs["clientId"]
    bayeux(url, cookie, channel="/meta/connect", clientId=cid, connectionType="long-polling", advice={"timeout": 0})
    bayeux(url, cookie, channel="/meta/subscribe", clientId=cid, subscription="/v2/me/calls")
    return headers, cookie, cid


@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")
def test_stop_call_recording(gws_replay):
    headers, cookie, cid = log_in(gws_replay.url)
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
    # hypothesis (this project's, not the user's) would import its pytest plugin into every nested pytest process:
    # 1.2 of the 2 s of CPU each takes to start
    pytester.makeini("[pytest]\naddopts = -p no:hypothesispytest\n")
    (pytester.path / "cassettes").mkdir()
    shutil.copy(ROOT / "cassettes" / "stop_call_recording.yaml", pytester.path / "cassettes")
    pytester.makepyfile(test_gws=USER_TEST)
    return pytester


@pytest.mark.e2e  # starts a process
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


@pytest.mark.e2e  # starts a process
def test_record_needs_upstream(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess("--gws-record")
    assert result.ret != 0
    assert "--gws-record needs --gws-upstream" in result.stderr.str()


@pytest.mark.e2e  # starts a process
def test_unknown_timing_fails_at_setup_naming_the_timings(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_timing='''
import pytest

@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="fast")
def test_fast(gws_replay):
    pass
''')
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_timing.py")
    result.assert_outcomes(errors=1)
    assert "gws_cassette / gws_config: timing: must be one of recorded, instant, not 'fast'" in result.stdout.str()


SCOPES = """
import json, urllib.request, pytest

pytestmark = pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")


def mounted(gws):
    status = gws.status()
    return status["cassette"].rsplit("/", 1)[-1], status["timing"], status["strict"]


def test_module_marker(gws_replay):
    assert mounted(gws_replay) == ("stop_call_recording.yaml", "instant", True)


@pytest.mark.gws_cassette("cassettes/recording_lifecycle.yaml", strict=False)
class TestClass:
    def test_class_marker(self, gws_replay):
        assert mounted(gws_replay) == ("recording_lifecycle.yaml", "instant", False)

    @pytest.mark.gws_cassette(timing="recorded")
    def test_function_marker_without_a_path(self, gws_replay):
        assert mounted(gws_replay) == ("recording_lifecycle.yaml", "recorded", False)


@pytest.mark.gws_cassette("cassettes/recording_lifecycle.yaml", strict=True)
def test_function_marker(gws_replay):
    assert mounted(gws_replay) == ("recording_lifecycle.yaml", "instant", True)
"""

DEFAULTS = """
import pytest


@pytest.fixture
def gws_config():
    return {"timing": "instant", "json_ignore": ["requestId"]}


def test_default(gws_replay):
    assert gws_replay.cassette.relative_to(gws_replay.cassette.parents[2]).as_posix() == \\
        "cassettes/test_defaults/test_default.yaml"
    assert gws_replay.status()["timing"] == "instant"


class TestK:
    def test_in_class(self, gws_replay):
        assert gws_replay.cassette.name == "TestK.test_in_class.yaml"


@pytest.mark.parametrize("who", ["a/b"])
def test_param(gws_replay, who):
    assert gws_replay.cassette.name == "test_param[a-b].yaml"


@pytest.mark.gws_cassette(timing="recorded")
def test_marker_overrides_gws_config(gws_replay):
    assert gws_replay.status()["timing"] == "recorded"
"""

MISSES = """
import base64, json, urllib.error, urllib.request
import pytest

pytestmark = pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml", timing="instant")
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"


def post(url, body):
    req = urllib.request.Request(url + CALL, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_misses(gws_replay):
    assert post(gws_replay.url, {"operationName": "HoldCall"}) == 500


def test_hits_after_the_miss(gws_replay):
    assert post(gws_replay.url, {"operationName": "StopCallRecording"}) == 200


@pytest.mark.gws_cassette(strict=False)
def test_lenient_miss_passes(gws_replay):
    assert post(gws_replay.url, {"operationName": "HoldCall"}) == 404
    assert len(gws_replay.misses) == 1
"""

# Two cassettes that differ only in the call: each test must reach its own. Each test also notes which service
# and which worker served it.
ISOLATION = """
import json, os, urllib.error, urllib.request
import pytest


def post(url, call):
    req = urllib.request.Request(url + "/api/v2/me/calls/" + call, b'{"operationName": "StopCallRecording"}',
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def note(gws_service, gws_replay):
    with open("served.jsonl", "a") as out:
        out.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER"), gws_service.url, gws_replay.url]) + "\\n")


@pytest.mark.parametrize("mine,other", [("CALL-A", "CALL-B"), ("CALL-B", "CALL-A")] * 2)
def test_only_my_recordings(gws_service, gws_replay, request, mine, other):
    note(gws_service, gws_replay)
    assert post(gws_replay.url, other) == 404
    assert post(gws_replay.url, mine) == 200
    [miss] = gws_replay.misses
    assert miss["request"].endswith(other)


@pytest.fixture
def gws_cassette_name(mine):
    return mine + ".yaml"


@pytest.fixture
def gws_config():
    return {"timing": "instant", "strict": False}
"""


FRESH = """
import json, urllib.request

def test_fresh(gws_replay):
    me = urllib.request.Request(gws_replay.url + "/api/v2/me", headers={"Authorization": "Basic YWdlbnQxOnNlY3JldA=="})
    with urllib.request.urlopen(me, timeout=10) as r:
        assert json.loads(r.read())["statusCode"] == 0
"""


def _call_cassettes(directory: Path, *calls: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "cassettes" / "stop_call_recording.yaml").read_text()
    for call in calls:
        (directory / f"{call}.yaml").write_text(text.replace("01RCC3N118B1V0SL8O7GK2LAES00000V", call))


def test_marker_on_a_module_a_class_and_a_function(user_project: pytest.Pytester) -> None:
    shutil.copy(ROOT / "cassettes" / "recording_lifecycle.yaml", user_project.path / "cassettes")
    user_project.makepyfile(test_scopes=SCOPES)
    user_project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "test_scopes.py").assert_outcomes(passed=4)


def test_default_cassette_paths_and_config_fixtures(user_project: pytest.Pytester) -> None:
    home = user_project.path / "cassettes" / "test_defaults"
    home.mkdir()
    for name in ("test_default", "TestK.test_in_class", "test_param[a-b]", "test_marker_overrides_gws_config"):
        shutil.copy(ROOT / "cassettes" / "stop_call_recording.yaml", home / f"{name}.yaml")
    user_project.makepyfile(test_defaults=DEFAULTS)
    user_project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "test_defaults.py").assert_outcomes(passed=4)


def test_a_miss_fails_its_own_test(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_misses=MISSES)
    result = user_project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "test_misses.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_misses.py::test_misses*"])
    assert "'HoldCall' here, 'StopCallRecording' recorded" in result.stdout.str()


@pytest.mark.e2e  # starts a process
def test_tests_in_a_row_on_one_service_see_only_their_cassette(user_project: pytest.Pytester) -> None:
    _call_cassettes(user_project.path / "cassettes" / "test_isolation", "CALL-A", "CALL-B")
    user_project.makepyfile(test_isolation=ISOLATION)
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_isolation.py").assert_outcomes(passed=4)
    served = [json.loads(line) for line in (user_project.path / "served.jsonl").read_text().splitlines()]
    assert len({service for _, service, _ in served}) == 1  # one service for the whole run
    assert len(served) == 4


EARLY = """
import json
from gwsvcr import api


def pytest_collection_finish(session):  # the tests collected, none run yet: is the service on its way?
    with open("early.json", "w") as out:
        json.dump({"starting": api._background is not None, "started": api._shared is not None}, out)
"""


@pytest.mark.e2e  # starts a process
def test_the_service_starts_while_the_tests_are_collected(user_project: pytest.Pytester) -> None:
    _call_cassettes(user_project.path / "cassettes" / "test_isolation", "CALL-A", "CALL-B")
    user_project.makepyfile(test_isolation=ISOLATION)
    user_project.makeconftest(EARLY)
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_isolation.py").assert_outcomes(passed=4)
    assert json.loads((user_project.path / "early.json").read_text()) == {"starting": True, "started": False}
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "test_isolation.py")
    assert json.loads((user_project.path / "early.json").read_text()) == {"starting": False, "started": False}


@pytest.mark.e2e  # starts a process
@pytest.mark.solo  # a nested pytest -n 2 fills both cores: alone (tests/conftest.py)
def test_xdist_workers_each_start_their_own_service(user_project: pytest.Pytester) -> None:
    _call_cassettes(user_project.path / "cassettes" / "test_isolation", "CALL-A", "CALL-B")
    user_project.makepyfile(test_isolation=ISOLATION)
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "test_isolation.py"
                                      ).assert_outcomes(passed=4)
    served = [json.loads(line) for line in (user_project.path / "served.jsonl").read_text().splitlines()]
    services = {worker: service for worker, service, _ in served}
    assert len(served) == 4 and len(services) == 2 and len(set(services.values())) == 2


def test_gws_record_writes_the_default_cassette(user_project: pytest.Pytester, sim: Proc) -> None:
    user_project.makepyfile(test_fresh=FRESH)
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "--gws-record", "--gws-upstream", sim.url,
                                      "test_fresh.py").assert_outcomes(passed=1)
    fresh = cas.load(user_project.path / "cassettes" / "test_fresh" / "test_fresh.yaml", use_cache=False)
    assert [ex.request.path for ex in fresh.exchanges] == ["/api/v2/me"]
    user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_fresh.py").assert_outcomes(passed=1)


def test_sample_cassettes_validate() -> None:
    samples = sorted((ROOT / "cassettes").glob("*.yaml"))
    assert {p.name for p in samples} >= {"stop_call_recording.yaml", "recording_lifecycle.yaml"}
    for path in samples:
        assert cas.validate(path) == [], path
    life = cas.load(ROOT / "cassettes" / "recording_lifecycle.yaml", use_cache=False)
    states = [i.message["data"]["call"]["recordingState"] for e in life.exchanges for i in e.reply_items()
              if i.is_event]
    assert states == ["Recording", "Paused", "Recording", "Stopped"]


# The module of MISSES (its post helper, its module marker), with a fault per test.
FAULTS = MISSES[:MISSES.index("def test_misses")] + """
STOP = {"operationName": "StopCallRecording"}


@pytest.mark.gws_cassette(faults=["http 503 POST /api/v2/me/calls/* times 1"])
def test_retried(gws_replay):
    assert [post(gws_replay.url, STOP), post(gws_replay.url, STOP)] == [503, 200]
    assert gws_replay.faults == [{"spec": "http 503 POST /api/v2/me/calls/* times 1", "applied": 1}]


@pytest.mark.gws_cassette(faults=["drop-connect event 1"])
def test_never_meets_its_fault(gws_replay):  # no CometD session: no connect to drop
    assert post(gws_replay.url, STOP) == 200
"""


def test_the_marker_injects_faults_and_one_that_never_struck_fails_its_test(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_faults=FAULTS)
    result = user_project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "test_faults.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["gwsvcr: faults that never struck: drop-connect event 1",
                                 "FAILED test_faults.py::test_never_meets_its_fault*"])


# The module of USER_TEST (its helpers), a test whose replay service stops for a moment while its event falls due,
# as a busy machine stops it.
LATE = USER_TEST[:USER_TEST.index("@pytest.mark.gws_cassette")] + '''
import os, signal, time


@pytest.mark.gws_cassette("cassettes/stop_call_recording.yaml")
def test_on_a_busy_machine(gws_service, gws_replay):
    headers, cookie, cid = log_in(gws_replay.url)
    call(gws_replay.url + CALL, {"operationName": "StopCallRecording"},
         {"Cookie": cookie, "X-CSRF-TOKEN": headers["X-CSRF-TOKEN"]})
    os.kill(gws_service.process.popen.pid, signal.SIGSTOP)  # its event is due 246 ms after that reply
    time.sleep(0.5)
    os.kill(gws_service.process.popen.pid, signal.SIGCONT)
    messages = bayeux(gws_replay.url, cookie, channel="/meta/connect", clientId=cid, connectionType="long-polling")
    assert [m["data"]["call"]["recordingState"] for m in messages if "data" in m] == ["Stopped"]
'''


@pytest.mark.e2e  # starts a process
def test_a_test_whose_events_went_out_late_is_warned(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_late=LATE)
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "test_late.py")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.re_match_lines([r".*GwsLateEvents: gwsvcr: .*stop_call_recording.yaml: 1 of 1 events went out "
                                  r"more than 10 ms after their recorded time \(the latest \d+ ms late\): the replay "
                                  r"service was short of CPU.*"])
    strict = user_project.runpytest_subprocess("-p", "no:cacheprovider", "-W",
                                               "error::gwsvcr.pytest_plugin.GwsLateEvents", "test_late.py")
    strict.assert_outcomes(failed=1)
