"""Files users already have, turned into cassettes that replay: a HAR written by mitmproxy's savehar and one in
DevTools' WebSocket layout (CometD over WebSocket, events at their recorded delays), a mitmdump -w flow file, a
VCR.py cassette; and the commands that meet such a file say how to convert it.

One recording feeds them all: the official CometD JS client over WebSocket (agent1, the recording lifecycle) and
aiocometd-ng over long-polling (agent2, the seed's StopCallRecording) through a real mitmdump in front of
``gwsvcr sim``, saving both a flow file (-w) and a HAR (savehar's hardump).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gwsvcr import cassette as cas
from gwsvcr import gws, wire
from gwsvcr.cli.main import main
from tests.clients import LIFECYCLE, assert_lifecycle, run
from tests.conftest import replay
from tests.procs import ROOT, gwsvcr

EVENT_DELAY_MS = 200
TOLERANCE_MS = 25
SEED = ("StopCallRecording",)
CALL = f"/api/v2/me/calls/{gws.SEED_CALL_ID}"


@dataclass
class Saved:
    har: Path
    flows: Path
    folder: Path


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", str(EVENT_DELAY_MS))
    yield proc.url
    proc.stop()


@pytest.fixture(scope="module")
def saved(sim: str, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    folder = tmp_path_factory.mktemp("mitmdump")
    port = _free_port()
    mitmdump = subprocess.Popen([str(Path(sys.executable).with_name("mitmdump")), "--mode", f"reverse:{sim}",
                                 "--listen-host", "127.0.0.1", "--listen-port", str(port), "-q",
                                 "-w", str(folder / "session.flows"), "--set", f"hardump={folder / 'session.har'}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert mitmdump.poll() is None and time.monotonic() < deadline, "mitmdump did not start"
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        assert_lifecycle(run("node", url, LIFECYCLE, extra=["--transport", "websocket"]))
        assert_lifecycle(run("python", url, SEED, user="agent2"), SEED)
    finally:
        mitmdump.send_signal(signal.SIGINT)  # savehar writes its HAR when mitmdump stops
        out, _ = mitmdump.communicate(timeout=30)
    assert mitmdump.returncode == 0, out
    return Saved(folder / "session.har", folder / "session.flows", folder)


def events(path: Path, session: str) -> list[cas.ReplyItem]:
    loaded = cas.load(path, use_cache=False)
    return [i for ex in loaded.exchanges if ex.session == session for i in ex.reply_items() if i.is_event]


def assert_recorded_lifecycle(path: Path, session: str, ops: tuple[str, ...]) -> list[float]:
    """The session's notifications, each caused by its operation, about the simulator's delay after it."""
    found = events(path, session)
    assert [i.after for i in found] == list(ops)
    assert all(abs(i.delay * 1000 - EVENT_DELAY_MS) <= 60 for i in found if i.delay is not None), found
    return [(i.delay or 0) * 1000 for i in found]


def assert_replays_at_recorded_delays(path: Path, client: str, transport: str, recorded: list[float],
                                      ops: tuple[str, ...] = LIFECYCLE, user: str = "agent1") -> None:
    server = replay(path)
    session = run(client, server.url, ops, user=user, extra=["--transport", transport])
    assert server.stop() == 0, server.stderr
    assert_lifecycle(session, ops)
    got = list(session.delays().values())
    assert all(abs(g - r) <= TOLERANCE_MS for g, r in zip(got, recorded, strict=True)), (got, recorded)


def test_a_har_from_mitmproxy_savehar_replays_over_websocket_at_its_delays(saved: Saved) -> None:
    out = saved.folder / "savehar.yaml"
    done = cli("har", "import", saved.har, "-o", out)
    assert done.exit_code == 0, done.output
    assert "2 session(s), 5 event(s)" in done.output and "json phoneNumber" in done.output
    recorded = assert_recorded_lifecycle(out, "s1", LIFECYCLE)
    assert {ex.transport for ex in cas.load(out).exchanges if ex.session == "s1" and ex.is_bayeux} == {"websocket"}
    assert_replays_at_recorded_delays(out, "node", "websocket", recorded)


def test_export_writes_devtools_websocket_entries_that_import_and_replay(saved: Saved) -> None:
    imported, exported, again = (saved.folder / name for name in ("a.yaml", "devtools.har", "again.yaml"))
    assert cli("har", "import", saved.har, "-o", imported).exit_code == 0
    assert cli("har", "export", imported, "-o", exported).exit_code == 0
    entries = json.loads(exported.read_text())["log"]["entries"]
    [socket_entry] = [e for e in entries if e.get("_resourceType") == "websocket"]
    assert socket_entry["request"]["method"] == "GET" and socket_entry["response"]["status"] == 101
    frames = socket_entry["_webSocketMessages"]
    assert {f["type"] for f in frames} == {"send", "receive"} and {f["opcode"] for f in frames} == {1}
    assert all(isinstance(f["time"], float) for f in frames) and [f["time"] for f in frames] == sorted(
        f["time"] for f in frames)
    assert sum('"CallRecordingStateChange"' in f["data"] for f in frames) == 4
    assert not [e for e in entries if e["request"]["method"] == "WS"]
    done = cli("har", "import", exported, "-o", again, "--no-pii")
    assert done.exit_code == 0 and "personal data kept" in done.output, done.output
    assert cli("diff", imported, again).exit_code == 0
    recorded = assert_recorded_lifecycle(again, "s1", LIFECYCLE)
    assert_replays_at_recorded_delays(again, "python", "websocket", recorded)


def test_a_mitmdump_flow_file_imports_and_replays(saved: Saved) -> None:
    out, from_har = saved.folder / "flows.yaml", saved.folder / "from-har.yaml"
    done = cli("import", saved.flows, "-o", out)
    assert done.exit_code == 0, done.output
    assert cli("har", "import", saved.har, "-o", from_har).exit_code == 0
    assert cli("diff", from_har, out).exit_code == 0  # the same traffic, whichever file mitmproxy wrote
    recorded = assert_recorded_lifecycle(out, "s2", SEED)
    assert_replays_at_recorded_delays(out, "python", "long-polling", recorded, SEED, user="agent2")


def test_a_vcrpy_cassette_imports_and_replays(sim: str, tmp_path: Path) -> None:
    vcr = pytest.importorskip("vcr", reason="vcrpy (pip install -e '.[bench]')")
    recorded = tmp_path / "stop.vcr.yml"  # as VCR.py writes it; .yml: not one of the cassettes the secret scan reads
    auth = {"Authorization": wire.basic_header("agent3", "vcr-s3cret")}
    with vcr.use_cassette(str(recorded), record_mode="all"):
        me = call(sim + "/api/v2/me", None, auth)
        headers = {**auth, "Cookie": me.headers["Set-Cookie"].split(";")[0], "X-CSRF-TOKEN": me.headers["X-CSRF-TOKEN"]}
        assert call(sim + CALL, {"operationName": "StopCallRecording"}, headers).body == {"statusCode": 0}
    assert "interactions:" in recorded.read_text() and auth["Authorization"] in recorded.read_text()
    out = tmp_path / "stop.yaml"
    done = cli("import", recorded, "-o", out)
    assert done.exit_code == 0, done.output
    loaded = cas.load(out, use_cache=False)
    assert [(ex.request.method, ex.request.path) for ex in loaded.exchanges] == [("GET", "/api/v2/me"),
                                                                                  ("POST", CALL)]
    assert auth["Authorization"] not in out.read_text() and "REDACTED-" in out.read_text()
    server = replay(out, "--timing", "instant")
    try:
        assert call(server.url + "/api/v2/me", None, auth).status == 200
        assert call(server.url + CALL, {"operationName": "StopCallRecording"}, auth).body == {"statusCode": 0}
    finally:
        assert server.stop() == 0, server.stderr  # strict: a miss would exit 1


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: object


def call(url: str, body: object, headers: dict[str, str]) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {**headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return Reply(reply.status, dict(reply.headers), json.loads(reply.read()))


def test_commands_given_another_tools_file_say_how_to_convert_it(saved: Saved, tmp_path: Path) -> None:
    vcr_file = tmp_path / "other.yml"
    vcr_file.write_text("interactions: []\nversion: 1\n")
    for path, command in ((saved.har, "gwsvcr har import"), (saved.flows, "gwsvcr import"),
                          (vcr_file, "gwsvcr import")):
        for args in (["show", path], ["validate", path], ["replay", path, "--port", "0"]):
            done = cli(*args)
            assert done.exit_code == 1, (args, done.output)
            assert "not a gwsvcr cassette: convert it with " + command + f" {path} -o " in done.output, done.output


def test_validate_repair_keeps_every_complete_exchange(tmp_path: Path) -> None:
    whole = (ROOT / "cassettes" / "recording_lifecycle.yaml").read_bytes()
    cut = tmp_path / "cut.yaml"
    cut.write_bytes(whole[:15_000])  # the 12th exchange cut off mid-write
    done = cli("validate", "--repair", cut)
    assert done.exit_code == 0, done.output
    assert "repaired: kept 11 exchanges, dropped 1 document(s)" in done.output
    assert cut.with_name("cut.yaml.broken").read_bytes() == whole[:15_000]
    kept = cas.load(cut, use_cache=False).exchanges
    assert [ex.number for ex in kept] == [ex.number for ex in cas.load(ROOT / "cassettes" /
                                                                        "recording_lifecycle.yaml").exchanges][:11]
    assert cli("validate", cut).output.strip() == f"{cut}: ok"
