"""Figure 9: a test suite on gwsvcr's pytest plugin against the same suite's REST part on VCR.py (pytest-recording).

Three generated suites of N tests (N = 200; 40 in quick mode), each run by a fresh ``python -m pytest``, serial and
with ``-n 2`` (pytest-xdist):

* ``gwsvcr``: each test mounts its own cassette (a copy of cassettes/stop_call_recording.yaml with a call id of its
  own, at the plugin's default path ``cassettes/test_gws/test_op[CALLnnnn].yaml``), instant timing, and over HTTP
  on one kept-alive connection: handshake, subscribe, first connect, the ``StopCallRecording`` POST, and the
  connect that brings its notification (5 requests through mitmproxy);
* ``VCR.py``: ``@pytest.mark.vcr`` and the same POST (1 request, answered inside the test process by VCR.py from
  ``cassettes/test_vcr/test_op[CALLnnnn].yaml``, written by VCR.py's own serializer);
* ``empty``: the same N tests doing nothing: the baseline (pytest, its plugins, xdist start-up).

Overhead per test = (suite time - empty suite time) / N. Also: the time to mount a cassette on the service, cold
(first load, YAML parsed), from the parse cache (a new service process) and warm (kept in the service).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from figures import Context, Figure, ms, rx, table, verdict
from harness import ROOT, BenchError, median

from gwsvcr.api import ServiceClient
from gwsvcr.served import gwsvcr_command, start

GOAL = 0.015  # overhead per test (seconds)
SEED = ROOT / "cassettes" / "stop_call_recording.yaml"
SEED_CALL = "01RCC3N118B1V0SL8O7GK2LAES00000V"
VCR_HOST = "gws.invalid"  # never resolved: VCR.py answers inside the test process

COMMON = '''
import base64, http.client, json
import pytest
from gwsvcr.bayeux import CONNECT, HANDSHAKE, SUBSCRIBE

CALLS = [f"CALL{{i:04d}}" for i in range({n})]
HEADERS = {{"Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode(),
           "Content-Type": "application/json"}}


def send(conn, path, body):
    conn.request("POST", path, json.dumps(body), HEADERS)
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read())
'''

GWS_SUITE = '''

@pytest.fixture
def gws_config():
    return {{"timing": "instant"}}


@pytest.mark.parametrize("call", CALLS)
def test_op(gws_replay, call):
    host, port = gws_replay.url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    _, [hs] = send(conn, "/api/v2/notifications/handshake", [{{"channel": HANDSHAKE, "version": "1.0",
                   "supportedConnectionTypes": ["long-polling"], "id": "1"}}])
    cid = hs["clientId"]
    send(conn, "/api/v2/notifications/", [{{"channel": SUBSCRIBE, "clientId": cid,
                                            "subscription": "/v2/me/calls", "id": "2"}}])
    send(conn, "/api/v2/notifications/connect", [{{"channel": CONNECT, "clientId": cid,
         "connectionType": "long-polling", "advice": {{"timeout": 0}}, "id": "3"}}])
    stop = send(conn, "/api/v2/me/calls/" + call, {{"operationName": "StopCallRecording"}})
    assert stop == (200, {{"statusCode": 0}})
    _, messages = send(conn, "/api/v2/notifications/connect", [{{"channel": CONNECT, "clientId": cid,
                                                                 "connectionType": "long-polling", "id": "4"}}])
    [event] = [m for m in messages if m.get("channel") == "/v2/me/calls"]
    assert event["data"]["call"]["id"] == call and event["data"]["call"]["recordingState"] == "Stopped"
    conn.close()
'''

VCR_SUITE = '''

@pytest.mark.vcr
@pytest.mark.parametrize("call", CALLS)
def test_op(call):
    conn = http.client.HTTPConnection("{host}", 8090, timeout=30)
    stop = send(conn, "/api/v2/me/calls/" + call, {{"operationName": "StopCallRecording"}})
    assert stop == (200, {{"statusCode": 0}})
    conn.close()
'''

EMPTY_SUITE = '''

@pytest.mark.parametrize("call", CALLS)
def test_op(call):
    pass
'''

PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest"]


def _calls(n: int) -> list[str]:
    return [f"CALL{i:04d}" for i in range(n)]


def write_suites(work: Path, n: int) -> dict[str, Path]:
    """The three suites, each in a directory of its own, with their cassettes."""
    seed = SEED.read_text(encoding="utf-8")
    common = COMMON.format(n=n)
    dirs = {}
    for name, body in (("gwsvcr", GWS_SUITE), ("vcr", VCR_SUITE), ("empty", EMPTY_SUITE)):
        d = work / f"suite-{name}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        module = {"gwsvcr": "test_gws", "vcr": "test_vcr", "empty": "test_empty"}[name]
        (d / f"{module}.py").write_text(common + body.format(host=VCR_HOST), encoding="utf-8")
        dirs[name] = d
    home = dirs["gwsvcr"] / "cassettes" / "test_gws"
    home.mkdir(parents=True)
    for call in _calls(n):
        (home / f"test_op[{call}].yaml").write_text(seed.replace(SEED_CALL, call), encoding="utf-8")
    _write_vcr_cassettes(dirs["vcr"] / "cassettes" / "test_vcr", n)
    return dirs


def _write_vcr_cassettes(home: Path, n: int) -> None:
    from vcr.cassette import Cassette
    from vcr.record_mode import RecordMode
    from vcr.request import Request

    home.mkdir(parents=True)
    for call in _calls(n):
        cas = Cassette(str(home / f"test_op[{call}].yaml"), record_mode=RecordMode.ALL)
        req = Request("POST", f"http://{VCR_HOST}:8090/api/v2/me/calls/{call}",
                      json.dumps({"operationName": "StopCallRecording"}), {"Content-Type": "application/json"})
        cas.append(req, {"status": {"code": 200, "message": "OK"},
                         "headers": {"Content-Type": ["application/json;charset=UTF-8"]},
                         "body": {"string": b'{"statusCode":0}'}})
        cas._save(force=True)


def run_suite(directory: Path, n: int, workers: int, service: str | None = None) -> float:
    """Seconds for ``python -m pytest`` over the suite, start to exit; every test must pass. Each run starts its
    own replay service, unless ``service`` names one already running (``GWSVCR_SERVICE``)."""
    args = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *(["-n", str(workers)] if workers > 1 else [])]
    env = {k: v for k, v in os.environ.items() if k != "GWSVCR_SERVICE"}
    if service:
        env["GWSVCR_SERVICE"] = service
    t = time.perf_counter()
    done = subprocess.run(args, cwd=directory, capture_output=True, text=True, timeout=600, env=env, check=False)
    took = time.perf_counter() - t
    if done.returncode != 0 or not re.search(rf"\b{n} passed\b", done.stdout):
        raise BenchError(f"pytest in {directory.name} (-n {workers}) failed:\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-2000:]}")
    return took


def mount_times(work: Path, count: int) -> dict[str, float | None]:
    """Median seconds to mount (POST, 201) a cassette: first load, from the parse cache, kept in the service."""
    home = work / "suite-gwsvcr" / "cassettes" / "test_gws"
    paths = sorted(home.glob("*.yaml"))[:count]
    out: dict[str, list[float]] = {"cold": [], "parse cache": [], "warm": [], "unmount": []}
    cache = work / "mount-parse-cache"  # empty: the first service parses the YAML, the second reads the cache
    shutil.rmtree(cache, ignore_errors=True)
    for phase in ("first service", "second service"):
        proc = start(gwsvcr_command("service", "--port", "0"), timeout=60, env={"GWSVCR_CACHE_DIR": str(cache)})
        client = ServiceClient(proc.url)
        try:
            for repeat in range(2 if phase == "first service" else 1):
                for path in paths:
                    t = time.perf_counter()
                    mounted = client.mount(path, timing="instant")
                    took = time.perf_counter() - t
                    t = time.perf_counter()
                    client.unmount(mounted["id"])
                    out["unmount"].append(time.perf_counter() - t)
                    key = "warm" if repeat else ("cold" if phase == "first service" else "parse cache")
                    out[key].append(took)
        finally:
            client.close()
            proc.stop()
    return {k: median(list(v)) for k, v in out.items()}


def fig_suite(ctx: Context) -> Figure:
    n = 40 if ctx.quick else 200
    dirs = write_suites(ctx.work, n)
    raw: dict[str, Any] = {"tests": n, "runs": {}}
    rounds = ctx.runs if ctx.quick else max(ctx.runs, 5)  # pytest start-up is noisy: more rounds than the others
    shared = start(gwsvcr_command("service", "--port", "0"), timeout=60)  # for the "service running" rows
    try:
        for workers in (1, 2):
            for run in range(rounds):
                order = ["gwsvcr", "vcr", "empty"] if run % 2 == 0 else ["empty", "vcr", "gwsvcr"]
                if workers == 1:
                    order.insert(1, "running")
                for name in order:
                    took = run_suite(dirs["gwsvcr" if name == "running" else name], n, workers,
                                     shared.url if name == "running" else None)
                    raw["runs"].setdefault(f"{name}/{workers}", []).append(took)
                    ctx.log(f"fig 9 run {run + 1}: {name} suite of {n} tests, -n {workers}: {took:.2f} s")
    finally:
        shared.stop()
    raw["mount"] = mount_times(ctx.work, 10 if ctx.quick else 40)
    ctx.log(f"fig 9 mount: {json.dumps({k: round(v * 1000, 2) if v else v for k, v in raw['mount'].items()})} ms")

    rows, summary = [], []
    labels = {"gwsvcr": "gwsvcr (gws_replay: a mount per test, 5 requests)",
              "running": "gwsvcr, the service already running (GWSVCR_SERVICE)",
              "vcr": "VCR.py via pytest-recording (the POST only)", "empty": "empty suite (baseline)"}
    for workers in (1, 2):
        empty = raw["runs"][f"empty/{workers}"]
        totals = {name: median(raw["runs"].get(f"{name}/{workers}", [])) for name in labels}
        # Each round's suite against the same round's empty suite: the machine's load drifts between rounds.
        per: dict[str, float | None] = {
            name: None if name == "empty" or f"{name}/{workers}" not in raw["runs"]
            else median([(t - e) / n for t, e in zip(raw["runs"][f"{name}/{workers}"], empty, strict=True)])
            for name in labels}
        for name, total in totals.items():
            if total is None:
                continue
            overhead, mine = per[name], name in ("gwsvcr", "running")
            rows.append([labels[name], "serial" if workers == 1 else "-n 2", f"{total:.2f} s",
                         "" if name == "empty" else ms(overhead, 2),
                         verdict(overhead is not None and overhead <= GOAL) if mine else "",
                         rx(None if not per["vcr"] or overhead is None else overhead / per["vcr"]) if mine else ""])
        g, v = per["gwsvcr"], per["vcr"]
        summary.append([f"pytest suite of {n} tests, overhead per test ({'serial' if workers == 1 else '-n 2'})",
                        ms(g, 2), ms(v, 2), rx(None if not v or g is None else g / v),
                        f"<= 15 ms: {verdict(g is not None and g <= GOAL)}"])
    mount = raw["mount"]
    mount_table = table(["mount a cassette on the service", "median"], [
        ["cold: first mount, YAML parsed", ms(mount["cold"], 2)],
        ["a new service, from the parse cache", ms(mount["parse cache"], 2)],
        ["warm: mounted before (kept in the service)", ms(mount["warm"], 2)],
        ["unmount (listener and connections closed)", ms(mount["unmount"], 2)]])
    head = ["suite", "workers", "total (median)", "overhead per test", "goal <= 15 ms", "vs VCR.py"]
    notes = [
        f"{n} tests per suite, each run by a fresh `python -m pytest` (interpreter and plugins start-up included, "
        f"the same for all); {rounds} rounds, the order of the suites alternating; totals are medians.",
        "overhead per test = median over the rounds of (suite total - the same round's empty suite total) / tests. "
        "gwsvcr's includes starting and stopping "
        "the service (once per process, once per xdist worker; the 'already running' row leaves that out), a "
        "mount and an unmount per test and 5 HTTP requests through mitmproxy; VCR.py's includes one request "
        "answered inside the test process. They test different things: VCR.py has no CometD side.",
        "Mount times over the control API (one kept-alive connection), the cassette being "
        "cassettes/stop_call_recording.yaml with another call id.",
    ]
    raw["summary"] = summary
    return Figure("suite", "Test suites (pytest)", [table(head, rows), mount_table], notes, raw)
