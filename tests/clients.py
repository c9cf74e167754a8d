"""Drive the third-party CometD clients (tests/peers) as separate processes and read their JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from tests.procs import PEERS, need_node, need_workspace_sdk

LIFECYCLE = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
EXPECTED_STATES = {"StopCallRecording": ("Stopped", "OFF"), "StartCallRecording": ("Recording", "ON"),
                   "PauseCallRecording": ("Paused", "PAUSED"), "ResumeCallRecording": ("Recording", "ON")}


@dataclass
class Session:
    records: list[dict]
    stderr: str

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.records if r.get("type") == kind]

    @property
    def replies(self) -> list[dict]:
        return self.of("reply")

    @property
    def events(self) -> list[dict]:
        return self.of("event")

    def delays(self) -> dict[str, float]:
        return {e["op"]: e["delay_ms"] for e in self.events}


def _args(url: str, ops: tuple[str, ...], user: str, password: str, extra: list[str]) -> list[str]:
    return ["--url", url, "--ops", ",".join(ops), "--user", user, "--password", password, *extra]


def run(client: str, url: str, ops: tuple[str, ...] = LIFECYCLE, *, user: str = "agent1",
        password: str = "secret", extra: list[str] | None = None, check: bool = True,
        timeout: float = 90) -> Session:
    """Run one scripted session with ``client`` ("node" = official CometD JS, "python" = aiocometd-ng)."""
    args = _args(url, ops, user, password, extra or [])
    if client == "node":
        cmd = [need_node(), str(PEERS / "cometd_client.js"), *args]
    else:
        cmd = [sys.executable, str(PEERS / "aiocometd_client.py"), *args]
    return _session(subprocess.run(cmd, capture_output=True, text=True, timeout=timeout), client, check)


def run_workspace_sdk(url: str, ops: tuple[str, ...], token: str, api_key: str, *, extra: list[str] | None = None,
                      check: bool = True, timeout: float = 90) -> Session:
    """Run one scripted agent session with Genesys' Workspace SDK (tests/peers/workspace_client.js)."""
    cmd = [need_workspace_sdk(), str(PEERS / "workspace_client.js"), "--url", url, "--ops", ",".join(ops),
           "--token", token, "--api-key", api_key, *(extra or [])]
    return _session(subprocess.run(cmd, capture_output=True, text=True, timeout=timeout), "workspace SDK", check)


def _session(done: subprocess.CompletedProcess[str], client: str, check: bool) -> Session:
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    session = Session(records, done.stderr)
    if check:
        assert done.returncode == 0 and session.of("done"), f"{client} session failed: {done.stdout}\n{done.stderr}"
    return session


def assert_lifecycle(session: Session, ops: tuple[str, ...] = LIFECYCLE) -> None:
    """Every operation answered {"statusCode":0} and followed by its own notification, in order."""
    assert [r["op"] for r in session.replies] == list(ops)
    assert all(r["status"] == 200 and r["body"] == {"statusCode": 0} for r in session.replies)
    assert [e["op"] for e in session.events] == list(ops)
    for event in session.events:
        assert event["notificationType"] == "CallRecordingStateChange"
        assert (event["recordingState"], event["gsipRecord"]) == EXPECTED_STATES[event["op"]]
