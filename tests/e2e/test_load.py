"""gwsvcr load against gwsvcr sim and gwsvcr replay as stand-ins for GWS: 50 recorded agents headless, a dropped
notification counted as failures of its entry, and distributed runs (--processes, and locust -f with a master and
two workers) with every user accounted for. Loopback only; each run is bounded by its --run-time."""

from __future__ import annotations

import csv
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients import record_cookieless
from tests.procs import GWSVCR, ROOT, Proc, gwsvcr, need


@pytest.fixture(autouse=True)
def _locust_installed() -> None:
    # Looked up, never imported here: importing locust monkey-patches this process's standard library (gevent),
    # which breaks every asyncio test that runs after it.
    need(importlib.util.find_spec("locust") is not None, "locust (pip install -e '.[load]')")

LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"  # Start, Pause, Resume, Stop: ends where it began
OPERATIONS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
EVENT = "CallRecordingStateChange"
EVENT_DELAY_MS = 150
RECORDED_DELAY_MS = 251  # the cassette's notifications, each after its operation's reply


# A run lasts long enough for every agent to finish a whole session (about 1.5 s) at least once after the last one
# started (50 at 25/s: 2 s), with room for a loaded machine; longer only costs make test its CPU.
RUN_TIME = "6s"
# The agents keep their recorded pacing, so the work of a run is bounded: on a quiet machine 50 agents against the
# sim or the replay take about 0.75 of a core (the server 0.5, Locust 0.2), --processes 2 0.55, a master and two
# workers 0.75 (1.3 cores for the 2 s the three Locust processes take to start). These tests run beside others.


def load(url: str, csv_prefix: Path, *args: str, users: int = 50, run_time: str = RUN_TIME,
         timeout: float = 90, cassette: Path = LIFECYCLE, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([GWSVCR, "load", str(cassette), "--against", url, "--user", "agent{i}", "--password",
                           "secret", "--users", str(users), "--spawn-rate", "25", "--run-time", run_time,
                           "--headless", "--csv", str(csv_prefix), *args, "--", "--only-summary"],
                          capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    return done


def stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f) if row["Name"] != "Aggregated"}


def users_seen(prefix: Path) -> int:
    with Path(f"{prefix}_stats_history.csv").open(newline="") as f:
        return max(int(row["User Count"]) for row in csv.DictReader(f))


def count(row: dict[str, str], column: str = "Request Count") -> int:
    return int(row[column])


@pytest.fixture
def sim() -> Iterator[Proc]:
    proc = gwsvcr("sim", "--port", "0", "--recording-state", "Stopped", "--event-delay-ms", str(EVENT_DELAY_MS))
    yield proc
    proc.stop()


def assert_all_entries(rows: dict[tuple[str, str], dict[str, str]], users: int, delay_ms: float) -> None:
    for op in OPERATIONS:
        assert count(rows["POST", f"POST {op}"]) >= users, rows.keys()
        notify = rows["NOTIFY", f"{op} -> {EVENT}"]
        assert count(notify) >= users
        median = statistics.median([float(notify["50%"]), float(notify["Average Response Time"])])
        assert delay_ms * 0.9 <= median <= delay_ms + 60, (op, notify["50%"], notify["Average Response Time"])
    assert count(rows["GET", "GET /api/v2/me"]) >= users
    for name in ("/meta/handshake", "/meta/subscribe"):
        assert count(rows["COMETD", name]) >= users
    assert {key: count(row, "Failure Count") for key, row in rows.items() if count(row, "Failure Count")} == {}


def test_fifty_agents_against_the_sim(sim: Proc, tmp_path: Path) -> None:
    done = load(sim.url, tmp_path / "run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert users_seen(tmp_path / "run") == 50
    assert_all_entries(stats(tmp_path / "run"), 50, EVENT_DELAY_MS)


def test_runs_from_a_folder_that_holds_a_folder_named_gwsvcr(sim: Proc, tmp_path: Path) -> None:
    # The parent folder of a clone: ./gwsvcr has no __init__.py, and Locust puts the working directory first on
    # sys.path; the locustfile must still import the installed gwsvcr, not that folder as a namespace package.
    (tmp_path / "gwsvcr").mkdir()
    done = load(sim.url, Path("run"), users=2, run_time="4s", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_all_entries(stats(tmp_path / "run"), 2, EVENT_DELAY_MS)


def test_fifty_agents_against_replay(tmp_path: Path) -> None:
    replay = gwsvcr("replay", str(LIFECYCLE), "--port", "0", "-q")
    try:
        done = load(replay.url, tmp_path / "run")
    finally:
        replay.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert users_seen(tmp_path / "run") == 50
    assert_all_entries(stats(tmp_path / "run"), 50, RECORDED_DELAY_MS)


def test_a_dropped_notification_fails_its_entry(tmp_path: Path) -> None:
    sim = gwsvcr("sim", "--port", "0", "--recording-state", "Stopped", "--event-delay-ms", str(EVENT_DELAY_MS),
                 "--drop-notification", "PauseCallRecording")
    try:
        done = load(sim.url, tmp_path / "run", "--timeout", "2", users=20, run_time="8s")  # a session waits 2 s more
    finally:
        sim.stop()
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    rows = stats(tmp_path / "run")
    dropped = rows["NOTIFY", f"PauseCallRecording -> {EVENT}"]
    assert count(dropped) >= 20 and count(dropped, "Failure Count") == count(dropped)
    failing = {name for (_, name), row in rows.items() if count(row, "Failure Count")}
    assert failing == {f"PauseCallRecording -> {EVENT}"}
    with Path(f"{tmp_path / 'run'}_failures.csv").open(newline="") as f:
        errors = list(csv.DictReader(f))
    assert errors and all("missing: nothing within 2 s" in e["Error"] for e in errors), errors
    assert count(rows["NOTIFY", f"ResumeCallRecording -> {EVENT}"]) >= 20  # the session went on after it


def test_a_cookieless_recording_loads_without_failures(tmp_path: Path) -> None:
    """Agents of a curl-style recording (Basic auth on each request, no cookie jar) send no cookie either, so the
    server's cookie session never asks them for a CSRF token."""
    cassette = record_cookieless(tmp_path / "curl.yaml")
    curl_sim = gwsvcr("sim", "--port", "0", "--event-delay-ms", str(EVENT_DELAY_MS))
    try:
        done = load(curl_sim.url, tmp_path / "run", users=10, cassette=cassette)  # a session: about 0.6 s
    finally:
        curl_sim.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = stats(tmp_path / "run")
    for op in ("StopCallRecording", "StartCallRecording"):
        assert count(rows["POST", f"POST {op}"]) >= 10 and count(rows["NOTIFY", f"{op} -> {EVENT}"]) >= 10
    assert {key: count(row, "Failure Count") for key, row in rows.items() if count(row, "Failure Count")} == {}


def test_two_processes_account_for_every_user(sim: Proc, tmp_path: Path) -> None:
    done = load(sim.url, tmp_path / "run", "--processes", "2", users=30)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert users_seen(tmp_path / "run") == 30
    assert_all_entries(stats(tmp_path / "run"), 30, EVENT_DELAY_MS)


def test_locust_master_and_two_workers_with_the_documented_locustfile(sim: Proc, tmp_path: Path) -> None:
    locustfile = subprocess.run([GWSVCR, "load", "--locustfile"], capture_output=True, text=True, check=True,
                                timeout=30).stdout.strip()
    locust = [sys.executable, "-m", "locust", "-f", locustfile]
    env = {**os.environ, "GWSVCR_PASSWORD": "secret"}
    port = _free_port()
    master = subprocess.Popen([*locust, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                               port, "--expect-workers", "2", "--headless", "-u", "30", "-r", "30", "-t",
                               RUN_TIME, "--host", sim.url, "--gwsvcr-cassette", str(LIFECYCLE), "--csv",
                               str(tmp_path / "run"), "--only-summary"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers = [subprocess.Popen([*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", port],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(2)]
        out, _ = master.communicate(timeout=90)
        for w in workers:
            w.wait(timeout=30)
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in out, out[-3000:]
    assert master.returncode == 0, out[-3000:]
    assert users_seen(tmp_path / "run") == 30
    assert_all_entries(stats(tmp_path / "run"), 30, EVENT_DELAY_MS)


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_bad_input_exits_2_with_one_message(tmp_path: Path) -> None:
    for args, says in ((["--password", "p", "--password-env", "NOPE_UNSET"], "give one of"),
                       (["--password", "p", "--run-time", "forever"], "--run-time"),
                       (["--password-env", "GWSVCR_TEST_UNSET_VAR"], "not set")):
        run_time = [] if "--run-time" in args else ["--run-time", "5s"]
        done = subprocess.run([GWSVCR, "load", str(LIFECYCLE), "--against", "http://127.0.0.1:9", "-u", "1", "-r",
                               "1", *run_time, *args], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = subprocess.run([GWSVCR, "load", str(tmp_path / "none.yaml"), "--against", "http://127.0.0.1:9", "-u", "1",
                           "-r", "1", "-t", "5s", "--password", "p"], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 2 and "none.yaml" in done.stderr, done.stderr

