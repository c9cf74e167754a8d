"""gwsvcr record in front of real upstreams (gwsvcr sim, Faye) with real CometD clients."""

from __future__ import annotations

import base64
import signal
import statistics
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import LIFECYCLE, assert_lifecycle, run
from tests.conftest import record
from tests.procs import GWSVCR, Proc

FAYE_OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")


def rest_exchanges(c: cas.Cassette) -> list[cas.Exchange]:
    return [e for e in c.exchanges if not e.is_bayeux]


def events(c: cas.Cassette) -> list[cas.ReplyItem]:
    return [i for e in c.exchanges for i in e.reply_items() if i.is_event]


@pytest.mark.parametrize("upstream", ["sim", "faye"])
@pytest.mark.parametrize("client", ["python", "node"])
def test_everything_recorded_with_cause_and_delay_and_no_added_delay(
        request: pytest.FixtureRequest, tmp_path: Path, upstream: str, client: str) -> None:
    server: Proc = request.getfixturevalue(upstream)
    ops = LIFECYCLE if upstream == "sim" else FAYE_OPS
    direct = run(client, server.url, ops, extra=["--call-id", "DIRECT"] if upstream == "faye" else [])
    if upstream == "sim":  # the sim keeps state per user: a fresh agent for the recorded run
        kw = {"user": "agent2"}
    else:
        kw = {}
    path = tmp_path / "c.yaml"
    rec = record(server.url, path)
    through = run(client, rec.url, ops, **kw)
    assert rec.stop() == 0, rec.stderr
    assert_lifecycle(through, ops)
    assert "gwsvcr: recorded" in rec.stdout and "4 events" in rec.stdout
    c = cas.load(path, use_cache=False)
    rest = [e for e in rest_exchanges(c) if e.request.method == "POST"]
    assert [e.request.body["operationName"] for e in rest] == list(ops)
    evs = events(c)
    assert [e.message["data"]["call"]["recordingState"] for e in evs] == \
        [r["recordingState"] for r in through.events]
    for ev, ex in zip(evs, rest, strict=False):
        assert ev.cause == ex.number and ev.after == ex.request.body["operationName"]
        assert 0.24 <= ev.delay <= 0.40
    # The recorder passes long-polls through live: the client sees the delays it sees without it.
    gap = statistics.median(through.delays().values()) - statistics.median(direct.delays().values())
    assert abs(gap) < 10, (direct.delays(), through.delays())


def test_no_secret_reaches_disk(sim: Proc, tmp_path: Path) -> None:
    rec = record(sim.url, tmp_path / "c.yaml")
    run("node", rec.url, ("StopCallRecording",), user="agent7", password="hunter2-Pa55")
    run("python", rec.url, ("StopCallRecording",), user="agent8", password="hunter2-Pa55")
    assert rec.stop() == 0
    text = (tmp_path / "c.yaml").read_text()
    for secret in ("hunter2-Pa55", base64.b64encode(b"agent7:hunter2-Pa55").decode(),
                   base64.b64encode(b"agent8:hunter2-Pa55").decode()):
        assert secret not in text
    c = cas.load(tmp_path / "c.yaml", use_cache=False)
    cookies = {v for e in c.exchanges for k, v in e.request.headers if k.lower() == "cookie"}
    assert cookies and all("REDACTED-" in v for v in cookies)
    tokens = {v for e in c.exchanges if e.response for k, v in e.response.headers if k.lower() == "x-csrf-token"}
    assert tokens and all(v.startswith("REDACTED-") for v in tokens)
    assert "agent7" in text, "the Basic user name is kept"
    assert any("Authorization" in r for r in c.header.redactions)


def test_sessions_of_several_clients_kept_apart(sim: Proc, tmp_path: Path) -> None:
    import concurrent.futures as cf
    rec = record(sim.url, tmp_path / "c.yaml")
    with cf.ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(run, client, rec.url, LIFECYCLE, user=f"agent-{i}")
                for i, client in enumerate(["node", "python", "node"])]
        for job in jobs:
            assert_lifecycle(job.result())
    assert rec.stop() == 0
    c = cas.load(tmp_path / "c.yaml", use_cache=False)
    assert len(c.sessions()) == 3
    for label in c.sessions():
        mine = [e for e in c.exchanges if e.session == label]
        users = {e.request.header("Authorization") for e in mine}
        assert len(users) == 1, "a session holds one agent's traffic only"
        assert sum(1 for e in mine for i in e.reply_items() if i.is_event) == 4


def test_killed_recorder_leaves_a_valid_cassette(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(sim.url, path)
    session = run("python", rec.url, LIFECYCLE)
    rec.stop(signal.SIGKILL)
    assert cas.validate(path) == []
    c = cas.load(path, use_cache=False)
    posts = [e for e in rest_exchanges(c) if e.request.method == "POST"]
    assert len(posts) == len(session.replies) == 4
    assert len(events(c)) == 4


def test_unreachable_upstream_gives_clear_502_and_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record("http://127.0.0.1:9", path)
    req = urllib.request.Request(rec.url + "/api/v2/me")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    body = info.value.read().decode()
    # mitmproxy writes this 502 itself (no hook can replace it): it names the address and the reason.
    assert info.value.code == 502 and "127.0.0.1&#x27;, 9)" in body and "connect call failed" in body.lower()
    assert rec.stop() == 0
    assert "1 upstream failures" in rec.stdout
    [ex] = cas.load(path, use_cache=False).exchanges
    assert ex.response is None and "127.0.0.1:9" in ex.error


def test_record_modes(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(sim.url, path)
    run("python", rec.url, ("StopCallRecording",))
    assert rec.stop() == 0
    first = path.read_text()
    with pytest.raises(RuntimeError, match=r"once \(the default\) never touches an existing cassette"):
        record(sim.url, path)
    assert path.read_text() == first
    rec = record(sim.url, path, "--record-mode", "new_episodes")
    run("python", rec.url, ("StartCallRecording",))
    assert rec.stop() == 0
    c = cas.load(path, use_cache=False)
    assert {e.episode for e in c.exchanges} == {1, 2} and path.read_text().startswith(first)
    rec = record(sim.url, path, "--record-mode", "none")
    run("python", rec.url, ("StopCallRecording",))
    assert rec.stop() == 0
    assert cas.load(path, use_cache=False).exchanges == c.exchanges
    rec = record(sim.url, path, "--record-mode", "all")
    run("python", rec.url, ("StopCallRecording",), user="fresh")
    assert rec.stop() == 0
    assert {e.episode for e in cas.load(path, use_cache=False).exchanges} == {1}


def test_unwritable_cassette_is_refused_up_front(sim: Proc, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = subprocess.run([GWSVCR, "record", "--upstream", sim.url, "--cassette", str(blocker / "c.yaml")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "cannot write cassette" in done.stderr and "Traceback" not in done.stderr


def test_regular_proxy_mode_records_only_allowed_hosts(sim: Proc, tmp_path: Path) -> None:
    import json
    path = tmp_path / "c.yaml"
    rec = record(sim.url, path, "--mode", "regular", "--allow-host", "127.0.0.1")
    proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": rec.url}))
    auth = {"Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()}
    other = sim.url.replace("127.0.0.1", "localhost")
    for url in (sim.url + "/api/v2/me", other + "/api/v2/me/calls"):
        with proxy.open(urllib.request.Request(url, headers=auth), timeout=10) as reply:
            assert json.loads(reply.read())["statusCode"] == 0
    assert rec.stop() == 0
    [ex] = cas.load(path, use_cache=False).exchanges  # localhost is not an allowed host: passed, not recorded
    assert ex.request.path == "/api/v2/me" and ex.response.status == 200
