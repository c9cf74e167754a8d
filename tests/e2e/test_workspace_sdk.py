"""Genesys' own Workspace API v3 SDK (npm genesys-workspace-client-js) recorded and replayed: a Bearer token and
an API key, a WORKSPACE_SESSIONID cookie, CometD with BAYEUX_BROWSER, against the CometD project's Node server
(tests/peers/workspace_server.js). One agent is one session; each event is caused by its operation."""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr.session import HEADER_KEY
from tests.clients import Session, run_workspace_sdk
from tests.conftest import record, replay
from tests.procs import GWSVCR, PEERS, Proc, need_workspace_sdk, start
from tests.reliability.secretscan import forms, literal_leaks, remember, unredacted

pytestmark = pytest.mark.node

TOKEN = "wsTok-" + secrets.token_hex(12)
API_KEY = "wsKey-" + secrets.token_hex(12)
remember(TOKEN, API_KEY)
OPS = ("stop-recording", "start-recording")
DELAY_MS = 250


def workspace_server() -> Proc:
    return start([need_workspace_sdk(), str(PEERS / "workspace_server.js"), "--port", "0", "--event-delay-ms",
                  str(DELAY_MS), "--token", TOKEN, "--api-key", API_KEY])


def sdk(url: str, *extra: str) -> Session:
    return run_workspace_sdk(url, OPS, TOKEN, API_KEY, extra=list(extra))


def assert_events_follow_their_operations(session: Session, low: float = DELAY_MS - 10,
                                          high: float = DELAY_MS + 60) -> None:
    assert [r["op"] for r in session.replies] == list(OPS)
    assert [(e["op"], e["recordingState"]) for e in session.events] == [
        ("stop-recording", "Stopped"), ("start-recording", "Recording")]
    assert all(low <= e["delay_ms"] <= high for e in session.events), session.delays()


@dataclass
class Recording:
    path: Path
    direct: Session  # the SDK against the server, no proxy
    through: Session  # the SDK through gwsvcr record


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    path = tmp_path_factory.mktemp("workspace") / "sdk.yaml"
    server = workspace_server()
    try:
        direct = sdk(server.url)
        rec = record(server.url, path)
        through = sdk(rec.url)
        assert rec.stop() == 0, rec.stderr
    finally:
        server.stop()  # replay runs with the upstream gone
    yield Recording(path, direct, through)


def recorded_events(path: Path) -> list[tuple[str, float]]:
    """(the path of the request that caused it, delay in ms) of each /workspace/v3/voice event."""
    c = cas.load(path)
    by_number = c.by_number()
    return [(by_number[item.cause].request.path, item.delay * 1000) for ex in c.exchanges
            for item in ex.reply_items()
            if item.is_event and item.message.get("channel") == "/workspace/v3/voice" and item.cause is not None
            and item.delay is not None]


def test_direct_events_come_about_250_ms_after_their_reply(recording: Recording) -> None:
    assert_events_follow_their_operations(recording.direct)


def test_the_recording_is_one_session_and_each_event_is_caused_by_its_operation(recording: Recording) -> None:
    assert_events_follow_their_operations(recording.through)
    c = cas.load(recording.path)
    assert c.sessions() == ["s1"], "one agent: its REST calls and its CometD in one session"
    events = recorded_events(recording.path)
    assert [path.rsplit("/", 1)[1] for path, _ in events] == list(OPS)
    assert all(DELAY_MS - 10 <= delay <= DELAY_MS + 60 for _, delay in events), events
    assert c.header.extra[HEADER_KEY]["cookies"] == "any cookie the server set"


def test_show_lists_the_one_session_and_what_identified_it(recording: Recording) -> None:
    shown = gwsvcr_output("show", str(recording.path))
    head = shown.split(" time ses", 1)[0]
    for what in ("cookie WORKSPACE_SESSIONID=REDACTED-", "cookie BAYEUX_BROWSER=REDACTED-", "bearer=REDACTED-",
                 "api-key x-api-key=REDACTED-", "clientId="):
        assert what in head, head
    assert "WARNING" not in shown and head.startswith("s1: ")
    cause = re.search(r"StatePropertiesChanged \(Stopped\)  \d+ ms after #(\d+)", shown)
    assert cause, shown
    assert re.search(rf"#{cause.group(1)} -> POST /workspace/v3/voice/calls/\S+/stop-r", shown), shown


def gwsvcr_output(*args: str) -> str:
    return subprocess.run([GWSVCR, *args], capture_output=True, text=True, timeout=60, check=True).stdout


def test_no_token_or_api_key_on_disk(recording: Recording, tmp_path: Path) -> None:
    leaky = tmp_path / "leaky.txt"  # not .yaml: the session-end scan must not fail on this probe
    leaky.write_text("Authorization: Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode())
    assert literal_leaks(leaky, {TOKEN}), "the scan finds a secret inside base64"
    text = recording.path.read_text(encoding="utf-8")
    assert not [f for secret in (TOKEN, API_KEY) for f in forms(secret) if f in text]
    assert literal_leaks(recording.path, {TOKEN, API_KEY}) == []
    assert unredacted(recording.path) == []


def test_replay_offline_with_the_recorded_delays(recording: Recording) -> None:
    server = replay(recording.path)
    session = sdk(server.url)
    assert server.stop() == 0, server.stderr
    assert "0 misses" in server.stdout and "to 1 clients" in server.stdout, server.stdout
    assert_events_follow_their_operations(session)
    for (_, want), event in zip(recorded_events(recording.path), session.events, strict=True):
        assert abs(event["delay_ms"] - want) <= 15, (session.delays(), recorded_events(recording.path))


def test_two_sdk_clients_replay_one_cassette_at_once_each_with_its_own_events(recording: Recording) -> None:
    """Same token, same API key: the replayer's own WORKSPACE_SESSIONID and BAYEUX_BROWSER keep them apart. The
    second client runs its operations at another pace: an event of the other's would come early or be extra
    (the client fails on an event it did not ask for)."""
    server = replay(recording.path)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(sdk, server.url)
        second = pool.submit(sdk, server.url, "--pause-ms", "400")
        sessions = [first.result(), second.result()]
    assert server.stop() == 0, server.stderr
    assert "to 2 clients" in server.stdout and "0 misses" in server.stdout, server.stdout
    want = [delay for _, delay in recorded_events(recording.path)]
    for session in sessions:
        assert_events_follow_their_operations(session)
        assert [abs(got - w) <= 15 for got, w in zip(session.delays().values(), want, strict=True)] == [True, True], \
            (session.delays(), want)


def test_a_named_session_cookie_is_all_that_links(recording: Recording, tmp_path: Path) -> None:
    """--session-cookie names the one cookie that identifies a client; it is recorded in the header and replay
    follows it."""
    server = workspace_server()
    path = tmp_path / "named.yaml"
    try:
        rec = record(server.url, path, "--session-cookie", "WORKSPACE_SESSIONID")
        sdk(rec.url)
        assert rec.stop() == 0, rec.stderr
    finally:
        server.stop()
    c = cas.load(path)
    assert c.header.extra[HEADER_KEY]["cookies"] == ["WORKSPACE_SESSIONID"]
    assert c.sessions() == ["s1"]  # CometD still meets its REST calls: WORKSPACE_SESSIONID rides on both
    replayer = replay(path)
    session = sdk(replayer.url)
    assert replayer.stop() == 0 and "0 misses" in replayer.stdout, replayer.stdout + replayer.stderr
    assert_events_follow_their_operations(session)
