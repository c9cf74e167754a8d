"""Drive the third-party CometD clients (tests/peers) as separate processes and read their JSON lines; and a
curl-style cookie-less client of the standard library's."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gwsvcr import cassette as cas
from gwsvcr import gws
from tests.procs import PEERS, gwsvcr, need_node, need_workspace_sdk

__all__ = ["LIFECYCLE", "Running", "Session", "assert_lifecycle", "run", "run_workspace_sdk"]

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


# The Python twins of cometd_client.js: aiocometd-ng; python-bayeux, which posts single message objects; a client
# of the spec's form-encoded long-polling (message=), written from the spec.
PYTHON_CLIENTS = {"python": "aiocometd_client.py", "pybayeux": "pybayeux_client.py", "form": "form_client.py"}


def _command(client: str, url: str, ops: tuple[str, ...], user: str, password: str, extra: list[str]) -> list[str]:
    args = ["--url", url, "--ops", ",".join(ops), "--user", user, "--password", password, *extra]
    if client == "node":
        return [need_node(), str(PEERS / "cometd_client.js"), *args]
    return [sys.executable, str(PEERS / PYTHON_CLIENTS[client]), *args]


def run(client: str, url: str, ops: tuple[str, ...] = LIFECYCLE, *, user: str = "agent1",
        password: str = "secret", extra: list[str] | None = None, check: bool = True,
        timeout: float = 90) -> Session:
    """Run one scripted session with ``client`` ("node" = official CometD JS, or one of PYTHON_CLIENTS)."""
    cmd = _command(client, url, ops, user, password, extra or [])
    return _session(subprocess.run(cmd, capture_output=True, text=True, timeout=timeout), client, check)


class Running:
    """A scripted session running in the background (see :func:`run`), its records read as they come, so that a
    test can act at a given point of it (a client run with ``--hold-before OP`` waits there for :meth:`release`)."""

    def __init__(self, client: str, url: str, ops: tuple[str, ...] = LIFECYCLE, *, user: str = "agent1",
                 password: str = "secret", extra: list[str] | None = None, cmd: list[str] | None = None) -> None:
        self.client = client
        self.popen = subprocess.Popen(cmd or _command(client, url, ops, user, password, extra or []),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        self.records: list[dict] = []
        self.stderr: list[str] = []
        self.seen = threading.Condition()
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=lambda: self.stderr.extend(self.popen.stderr or ()), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("{"):
                with self.seen:
                    self.records.append(json.loads(line))
                    self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_for(self, kind: str, timeout: float = 60, **fields: object) -> dict:
        """The first record of type ``kind`` with these fields, once it came."""
        def found() -> dict | None:
            return next((r for r in self.records if r.get("type") == kind
                         and all(r.get(k) == v for k, v in fields.items())), None)

        with self.seen:
            if not self.seen.wait_for(lambda: found() is not None or not self.readers[0].is_alive(), timeout):
                raise AssertionError(f"{self.client}: no {kind} {fields} within {timeout:g} s: {self.records[-3:]}")
            record = found()
        assert record is not None, f"{self.client} ended without a {kind} {fields}: {self.records[-3:]}"
        return record

    def release(self) -> None:
        """Let a client held by ``--hold-before`` go on (a line on its standard input, which then ends)."""
        assert self.popen.stdin is not None
        if not self.popen.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.popen.stdin.write("\n")
                self.popen.stdin.close()

    def finish(self, timeout: float = 90, check: bool = True) -> Session:
        self.release()
        code = self.popen.wait(timeout)
        for reader in self.readers:
            reader.join(10)
        return _session(subprocess.CompletedProcess(self.popen.args, code, "", "".join(self.stderr)), self.client,
                        check, self.records)


def run_workspace_sdk(url: str, ops: tuple[str, ...], token: str, api_key: str, *, extra: list[str] | None = None,
                      check: bool = True, timeout: float = 90) -> Session:
    """Run one scripted agent session with Genesys' Workspace SDK (tests/peers/workspace_client.js)."""
    cmd = [need_workspace_sdk(), str(PEERS / "workspace_client.js"), "--url", url, "--ops", ",".join(ops),
           "--token", token, "--api-key", api_key, *(extra or [])]
    return _session(subprocess.run(cmd, capture_output=True, text=True, timeout=timeout), "workspace SDK", check)


def _session(done: subprocess.CompletedProcess[str], client: str, check: bool,
             records: list[dict] | None = None) -> Session:
    if records is None:
        records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    session = Session(records, done.stderr)
    if check:
        assert done.returncode == 0 and session.of("done"), f"{client} session failed: {records}\n{done.stderr}"
    return session


def assert_lifecycle(session: Session, ops: tuple[str, ...] = LIFECYCLE) -> None:
    """Every operation answered {"statusCode":0} and followed by its own notification, in order."""
    assert [r["op"] for r in session.replies] == list(ops)
    assert all(r["status"] == 200 and r["body"] == {"statusCode": 0} for r in session.replies)
    assert [e["op"] for e in session.events] == list(ops)
    for event in session.events:
        assert event["notificationType"] == "CallRecordingStateChange"
        assert (event["recordingState"], event["gsipRecord"]) == EXPECTED_STATES[event["op"]]


def cookieless_session(url: str, operations: tuple[str, ...]) -> None:
    """A curl-style client (the standard library's, no cookie jar): Basic auth on each request, one request at a
    time, straight to CometD and the operations (no GET /api/v2/me, so never a CSRF token); a connect after each
    operation brings its notification (queued, or held until it comes)."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()}

    def call(path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        headers = {**auth, "Content-Type": "application/json"} if data else auth
        with urllib.request.urlopen(urllib.request.Request(url + path, data, headers), timeout=30) as reply:
            return json.loads(reply.read())

    def bayeux(message: dict[str, object]) -> list[dict[str, object]]:
        replies = call("/api/v2/notifications", [message])
        assert isinstance(replies, list)
        return replies

    [handshake] = bayeux({"channel": "/meta/handshake", "version": "1.0", "id": "1",
                          "supportedConnectionTypes": ["long-polling"]})
    client_id = handshake["clientId"]
    bayeux({"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", "id": "2",
            "advice": {"timeout": 0}})
    bayeux({"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/v2/me/calls", "id": "3"})
    for n, operation in enumerate(operations):
        assert call(f"/api/v2/me/calls/{gws.SEED_CALL_ID}", {"operationName": operation}) == {"statusCode": 0}
        replies = bayeux({"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling",
                          "id": str(4 + n)})
        assert any(m.get("channel") == "/v2/me/calls" for m in replies), replies
    bayeux({"channel": "/meta/disconnect", "clientId": client_id, "id": "99"})


def record_cookieless(path: Path) -> Path:
    """A cookie-less session (:func:`cookieless_session`) recorded through gwsvcr record in front of gwsvcr sim,
    whose cookie session would want a CSRF token: Stop, then Start (the call ends as it began)."""
    sim = gwsvcr("sim", "--port", "0")
    rec = gwsvcr("record", "--upstream", sim.url, "--cassette", str(path), "--port", "0")
    try:
        cookieless_session(rec.url, ("StopCallRecording", "StartCallRecording"))
    finally:
        assert rec.stop() == 0 and sim.stop() == 0
    requests = [ex.request for ex in cas.load(path).exchanges]
    assert all(r.header("Cookie") is None and r.header("X-CSRF-TOKEN") is None for r in requests)
    return path
