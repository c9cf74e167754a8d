"""Client faults while replaying: a dropped held connect loses no event and duplicates none."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import replay
from tests.procs import ROOT, need_haproxy, status

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
AUTH = "Basic " + base64.b64encode(b"agent1:secret").decode()


def post(url: str, body: object, headers: dict[str, str]) -> tuple[object, dict[str, str]]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json",
                                                                  "Authorization": AUTH, **headers})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read()), dict(r.headers)


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2])
def test_event_of_a_dropped_held_connect_comes_with_the_next(tmp_path: Path, workers: int) -> None:
    """Also through HAProxy (--workers 2): it closes the worker's side of a connect its client dropped."""
    if workers > 1:
        need_haproxy()
    server = replay(SAMPLE, "--workers", str(workers))
    try:
        base = server.url
        req = urllib.request.Request(base + "/api/v2/me", headers={"Authorization": AUTH})
        with urllib.request.urlopen(req, timeout=10) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]
        bay = base + "/api/v2/notifications"
        [hs], _ = post(bay, [{"channel": "/meta/handshake", "version": "1.0", "id": "1",
                              "supportedConnectionTypes": ["long-polling"]}], {"Cookie": cookie})
        cid = hs["clientId"]
        post(bay, [{"channel": "/meta/connect", "clientId": cid, "id": "2", "connectionType": "long-polling",
                    "advice": {"timeout": 0}}], {"Cookie": cookie})
        post(bay, [{"channel": "/meta/subscribe", "clientId": cid, "id": "3", "subscription": "/v2/me/calls"}],
             {"Cookie": cookie})
        # a held connect on a raw socket, dropped right away
        host, port = base.removeprefix("http://").split(":")
        body = json.dumps([{"channel": "/meta/connect", "clientId": cid, "id": "4",
                            "connectionType": "long-polling"}]).encode()
        sock = socket.create_connection((host, int(port)))
        sock.sendall(f"POST /api/v2/notifications HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Authorization: {AUTH}\r\nCookie: {cookie}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        wait_for(lambda: status(base, server.token)["served"] >= 5)
        post(base + "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V", {"operationName": "StopCallRecording"},
             {"Cookie": cookie})
        sock.close()
        wait_for(lambda: status(base, server.token)["events_released"] == 1)  # it went to the dropped connect
        seen = []
        for i in range(2):
            replies, _ = post(bay, [{"channel": "/meta/connect", "clientId": cid, "id": f"c{i}",
                                     "connectionType": "long-polling", "advice": {"timeout": 0}}],
                              {"Cookie": cookie})
            seen += [m for m in replies if "data" in m]
        assert [e["data"]["call"]["recordingState"] for e in seen] == ["Stopped"], "exactly once"
    finally:
        assert server.stop() == 0


def test_replay_never_writes_to_its_cassette(tmp_path: Path) -> None:
    import shutil
    path = tmp_path / "c.yaml"
    shutil.copy(SAMPLE, path)
    before = path.read_bytes()
    server = replay(path)
    status(server.url, server.token)
    assert server.stop() == 0
    assert path.read_bytes() == before
