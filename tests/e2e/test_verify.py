"""gwsvcr verify against live servers: gwsvcr sim (as recorded, and with each knob that makes it differ), a Faye
upstream, a server that assigns call ids anew, and servers that are not there, refuse the login or are no CometD."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwsvcr import cassette as cas
from gwsvcr.cli.main import main
from gwsvcr.democlient import DemoClient
from tests.clients import record_cookieless, run
from tests.conftest import record
from tests.procs import GWSVCR, PEERS, ROOT, Proc, gwsvcr, need_node, start

STOP = ROOT / "cassettes" / "stop_call_recording.yaml"
LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"
START_STATE = {STOP: "Recording", LIFECYCLE: "Stopped"}  # the sim's call when each sample was recorded
FAYE_OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")
LOGIN = ["--user", "agent1", "--password", "secret"]


def verify(cassette: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``gwsvcr verify`` in this process (it is a client: the servers it checks are real processes); its exit
    status, standard output and error. The command line in a process of its own: the bad-argument tests below."""
    argv = ["verify", str(cassette), "--against", url, *args]
    done = CliRunner().invoke(main, argv, catch_exceptions=False)  # an uncaught exception fails the test
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    return subprocess.CompletedProcess(argv, done.exit_code, done.stdout, done.stderr)


def sim_for(cassette: Path, *knobs: str) -> Proc:
    return gwsvcr("sim", "--port", "0", "--recording-state", START_STATE[cassette], *knobs)


@pytest.fixture
def stopped_sim() -> Iterator[Proc]:
    proc = sim_for(LIFECYCLE)
    yield proc
    assert proc.stop() == 0, proc.stderr


def failing_lines(output: str) -> list[str]:
    """The report's lines that are not ok, each with its detail lines."""
    blocks, current = [], ""
    for line in output.splitlines():
        if line.startswith(("ok ", "DIFF", "LATE", "MISS", "EXTRA", "FAIL")):
            if current:
                blocks.append(current)
            current = line
        elif line.startswith("           ") and current:
            current += "\n" + line.strip()
        else:
            if current:
                blocks.append(current)
            current = ""
    return [b for b in [*blocks, current] if b and not b.startswith("ok ")]


# --------------------------------------------------------------------------------------------- as recorded


@pytest.mark.parametrize(("cassette", "timing", "transport"), [
    (STOP, "recorded", "long-polling"), (STOP, "instant", "websocket"),
    (LIFECYCLE, "instant", "long-polling"), (LIFECYCLE, "recorded", "websocket"),
])
def test_the_sim_behaves_as_the_samples_recorded(cassette: Path, timing: str, transport: str) -> None:
    sim = sim_for(cassette)
    try:
        done = verify(cassette, sim.url, *LOGIN, "--timing", timing, "--transport", transport)
    finally:
        assert sim.stop() == 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert failing_lines(done.stdout) == []
    recorded = cas.load(cassette)
    events = sum(i.is_event for e in recorded.exchanges for i in e.reply_items())
    assert done.stdout.count("<- /v2/me/calls CallRecordingStateChange") == events
    assert done.stdout.splitlines()[-1].startswith("verify: as recorded:")


@pytest.fixture(scope="module")
def faye_recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, dict[str, Path]]]:
    """Sessions of the official CometD JS client and of aiocometd-ng, recorded in front of a Faye server;
    verify then drives them against that server."""
    faye = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "250",
                  "--check-csrf"])
    out = {}
    try:
        for client, transport in (("python", "long-polling"), ("node", "websocket")):
            path = tmp_path_factory.mktemp("faye") / f"{client}.yaml"
            rec = record(faye.url, path)
            run(client, rec.url, FAYE_OPS, extra=["--call-id", f"CALL-{client}", "--transport", transport])
            assert rec.stop() == 0
            out[client] = path
        yield faye, out
    finally:
        faye.stop()


@pytest.mark.node
@pytest.mark.parametrize("client", ["python", "node"])
def test_a_recording_made_against_faye_verifies_against_faye(faye_recordings: tuple[Proc, dict[str, Path]],
                                                               client: str) -> None:
    faye, paths = faye_recordings
    done = verify(paths[client], faye.url, *LOGIN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok    ") >= 12  # 8 operations (login, handshake, subscribe, 4 calls, disconnect) + 4
    expected_transport = "websocket" if client == "node" else "long-polling"
    assert f"over {expected_transport}" in done.stdout


# -------------------------------------------------------------------------------------------- knobs


# Each knob's check, and the timing of late and missing notifications, on the fake clock: tests/test_verify.py.
@pytest.mark.parametrize(("knob", "operation", "status", "says"), [
    (["--drop-notification", "ResumeCallRecording"], "ResumeCallRecording", "MISS", "nothing within 1 s"),
    (["--refuse", "StopCallRecording=503"], "StopCallRecording", "DIFF", "response.status: 200 recorded, 503 live"),
])
def test_each_knob_fails_naming_the_operation_and_the_field(knob: list[str], operation: str, status: str,
                                                            says: str) -> None:
    sim = sim_for(LIFECYCLE, *knob)
    started = time.monotonic()
    try:
        done = verify(LIFECYCLE, sim.url, *LOGIN, "--timeout", "1")
    finally:
        assert sim.stop() == 0
    assert done.returncode == 1, done.stdout + done.stderr
    failures = failing_lines(done.stdout)
    assert failures[0].startswith(status) and operation in failures[0] and says in failures[0], done.stdout
    # nothing else differs: a refused operation's notification is missing too, and that is all
    others = [f for f in failures[1:] if not (f.startswith("MISS") and operation in f)]
    assert others == [], done.stdout
    assert time.monotonic() - started < 15  # a missing notification costs --timeout, not the default 10 s


def test_a_server_assigned_call_id_is_carried_forward_with_bind(tmp_path: Path) -> None:
    """Recorded: GET /api/v2/me/calls gives this run's call id, StopCallRecording acts on it. Live, the call has
    another id: without --bind the operation goes to a call that does not exist; with it, to the live one."""
    path = tmp_path / "new-ids.yaml"
    upstream = gwsvcr("sim", "--port", "0", "--new-call-ids")
    rec = record(upstream.url, path)

    async def agent() -> str:
        async with DemoClient(rec.url) as client:
            await client.login()
            [call_id] = await client.call_ids()
            await client.connect()
            observed = await client.operate(call_id, "StopCallRecording")
            assert observed.notification == "CallRecordingStateChange (Stopped)"
            return call_id

    call_id = asyncio.run(agent())
    assert rec.stop() == 0 and upstream.stop() == 0

    live = gwsvcr("sim", "--port", "0", "--new-call-ids")
    try:
        unbound = verify(path, live.url, *LOGIN, "--timeout", "1", "--timing", "instant")
        bound = verify(path, live.url, "--user", "agent2", "--password", "secret", "--ignore", "user.userName",
                       "--bind", "calls.id", "--record", str(tmp_path / "live.yaml"), "--timing", "instant")
    finally:
        assert live.stop() == 0
    assert unbound.returncode == 1

    [refused, missing] = failing_lines(unbound.stdout)
    assert refused.startswith("DIFF") and "StopCallRecording" in refused and "404 live" in refused
    assert missing.startswith("MISS") and "StopCallRecording" in missing
    assert bound.returncode == 0, bound.stdout + bound.stderr
    assert f"bound calls.id: '{call_id}' recorded -> '" in bound.stdout
    live_cassette = cas.load(tmp_path / "live.yaml", use_cache=False)
    [post] = [e for e in live_cassette.exchanges if e.request.method == "POST" and not e.is_bayeux]
    assert post.request.path.startswith("/api/v2/me/calls/") and call_id not in post.request.path


def test_a_notification_the_recording_does_not_have_is_extra(tmp_path: Path) -> None:
    edited = cas.load(STOP)
    for ex in edited.exchanges:
        if ex.response is not None and ex.response.kind == "messages":
            ex.response.body = [item for item in ex.reply_items() if not item.is_event]
    cas.save(edited, tmp_path / "no-event.yaml")
    sim = sim_for(STOP)
    try:
        done = verify(tmp_path / "no-event.yaml", sim.url, *LOGIN)
    finally:
        assert sim.stop() == 0
    assert done.returncode == 1
    [extra] = failing_lines(done.stdout)
    assert extra.startswith("EXTRA      <- /v2/me/calls CallRecordingStateChange (Stopped): ")
    assert extra.endswith(" ms after #5 StopCallRecording: not in the recording")


# ------------------------------------------------------------------------------ what the recorded client sent


@pytest.fixture(scope="module")
def cookieless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_cookieless(tmp_path_factory.mktemp("cookieless") / "curl.yaml")


def test_a_cookieless_client_is_verified_without_cookies(cookieless: Path, tmp_path: Path) -> None:
    sim = gwsvcr("sim", "--port", "0")
    try:
        done = verify(cookieless, sim.url, *LOGIN, "--record", str(tmp_path / "live.yaml"))
    finally:
        assert sim.stop() == 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert failing_lines(done.stdout) == []
    sent = [ex.request for ex in cas.load(tmp_path / "live.yaml", use_cache=False).exchanges]
    assert sent and all(r.header("Cookie") is None and r.header("X-CSRF-TOKEN") is None for r in sent)
    assert all(r.header("Authorization") is not None for r in sent)


# ----------------------------------------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def forgotten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """aiocometd-ng recorded in front of a simulator that forgets its CometD session after the Pause notification:
    the next connect meets an unknown client, and the client re-handshakes and re-subscribes by itself."""
    path = tmp_path_factory.mktemp("forgotten") / "forgotten.yaml"
    sim = sim_for(LIFECYCLE, "--forget-after", "PauseCallRecording")
    rec = record(sim.url, path)
    try:
        run("python", rec.url, FAYE_OPS)
    finally:
        assert rec.stop() == 0 and sim.stop() == 0
    shown = subprocess.run([GWSVCR, "show", str(path)], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "/meta/connect    failed: 402::session_unknown" in shown and shown.count("-> /meta/handshake") == 2
    return path


@pytest.mark.parametrize(("knobs", "says"), [
    (["--forget-after", "PauseCallRecording"], "ok    #"),  # the failure as recorded, the recovery as recorded
    ([], "MISS  #"),  # the recording has the failure, the live server not
])
def test_a_failure_is_checked_against_the_recorded_one(forgotten: Path, knobs: list[str], says: str) -> None:
    sim = sim_for(LIFECYCLE, *knobs)
    try:
        done = verify(forgotten, sim.url, *LOGIN, "--timeout", "1")
    finally:
        assert sim.stop() == 0
    [connect] = [line for line in done.stdout.splitlines() if "/meta/connect: " in line]
    assert connect.startswith(says) and "failed: 402::session_unknown, advice handshake" in connect, done.stdout
    assert done.returncode == (0 if says.startswith("ok") else 1), done.stdout
    # without the failure the old session goes on: the Resume notification may come there before the re-handshake
    # (EXTRA, then MISS where the recording had it), as it did not when recorded


def test_a_failure_the_recording_does_not_have_fails() -> None:
    sim = sim_for(LIFECYCLE, "--forget-after", "PauseCallRecording")
    try:
        done = verify(LIFECYCLE, sim.url, *LOGIN, "--timeout", "1", "--timing", "instant")
    finally:
        assert sim.stop() == 0
    assert done.returncode == 1
    failed = failing_lines(done.stdout)
    assert failed[0] == ("FAIL       /meta/connect: failed: 402::session_unknown, advice handshake\n"
                         "the recording has no such failure; no further notification can come"), done.stdout
    assert [f.split("  ")[0] for f in failed[1:3]] == ["MISS", "MISS"]  # Resume's and Stop's notifications


# ---------------------------------------------------------------------------------------- --record, --report


def test_record_and_report_show_the_live_session_beside_the_recording(tmp_path: Path) -> None:
    sim = sim_for(STOP, "--wrong-state", "StopCallRecording=Paused")
    password = "Pa55-verify-only"
    try:
        done = verify(STOP, sim.url, "--user", "agent1", "--password", password, "--record",
                      str(tmp_path / "live.yaml"), "--report", str(tmp_path / "side.html"))
    finally:
        assert sim.stop() == 0
    assert done.returncode == 1
    assert cas.validate(tmp_path / "live.yaml") == []
    written = (tmp_path / "live.yaml").read_text() + (tmp_path / "side.html").read_text()
    assert password not in written and base64.b64encode(f"agent1:{password}".encode()).decode() not in written
    diff = subprocess.run([GWSVCR, "diff", str(STOP), str(tmp_path / "live.yaml")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert diff.returncode == 1 and 'recordingState: "Stopped" in A, "Paused" in B' in diff.stdout
    page = (tmp_path / "side.html").read_text()
    data = json.loads(page.split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert data["title"] == str(STOP) and data["live"]["title"] == str(tmp_path / "live.yaml")
    assert data["live"]["events"] == 1
    bad = [c["line"] for c in data["checks"] if not c["ok"]]
    assert bad[0].startswith("DIFF  #6") and "recordingState" in " ".join(bad)


# ------------------------------------------------------------------------------------------------ bad input


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_bad_input() -> None:
    started = time.monotonic()
    done = verify(STOP, f"http://127.0.0.1:{free_port()}", *LOGIN)
    assert done.returncode == 2
    assert "cannot reach http://127.0.0.1:" in done.stderr and "connection refused" in done.stderr
    assert time.monotonic() - started < 10


def test_a_server_that_never_answers_is_bad_input() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        done = verify(STOP, f"http://127.0.0.1:{silent.getsockname()[1]}", *LOGIN, "--timeout", "1")
    assert done.returncode == 2 and "GET http://127.0.0.1:" in done.stderr
    assert "/api/v2/me: no reply within 1 s" in done.stderr
    assert time.monotonic() - started < 10


def test_a_refused_login_is_bad_input() -> None:
    sim = gwsvcr("sim", "--port", "0", "--user", "agent1", "--password", "right")
    try:
        wrong = verify(STOP, sim.url, "--user", "agent1", "--password-env", "GWSVCR_TEST_UNSET_VARIABLE")
        refused = verify(STOP, sim.url, *LOGIN)
        anonymous = verify(STOP, sim.url)
    finally:
        assert sim.stop() == 0
    assert wrong.returncode == 2 and "GWSVCR_TEST_UNSET_VARIABLE" in wrong.stderr
    assert refused.returncode == 2
    assert "refused the login: GET /api/v2/me answered HTTP 401 (recorded 200); check --user" in refused.stderr
    assert anonymous.returncode == 2 and "give --user and --password" in anonymous.stderr


class _NotCometD(http.server.BaseHTTPRequestHandler):
    """GWS REST that answers, and an HTML page where CometD should be."""

    def do_GET(self) -> None:
        self._send(200, "application/json", json.dumps({"statusCode": 0, "user": {
            "userName": "agent1", "employeeId": "agent1", "phoneNumber": "15000"}}))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(404, "text/html", "<html><body><h1>Whitelabel Error Page</h1></body></html>")

    def _send(self, status: int, content_type: str, body: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_without_cometd_is_named_not_bayeux() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotCometD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = verify(STOP, f"http://127.0.0.1:{server.server_port}", *LOGIN, "--timeout", "2")
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert done.stdout.splitlines()[2].startswith("ok    #1   GET /api/v2/me")
    assert "/api/v2/notifications/handshake answered HTTP 404 text/html, not Bayeux: '<html><body><h1>Whitelabel" \
        in done.stderr
    assert "is CometD at /api/v2/notifications on this server?" in done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["missing.yaml"], "missing.yaml: no such file"),
    ([str(STOP), "--session", "s9"], "no session 's9'; it has s1"),
    ([str(STOP), "--record", str(STOP)], "is the cassette being verified"),
    ([str(STOP), "--password", "x"], "--password needs --user"),
])
def test_bad_arguments_exit_2_with_one_clear_message(args: list[str], says: str) -> None:
    done = subprocess.run([GWSVCR, "verify", *args, "--against", "http://127.0.0.1:9"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
