"""The replay service (`gwsvcr service`) through its control API and the Python API: a port per mount, each mount
with its own state, misses and unused exchanges, cassettes kept warm, CometD clients over both transports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import gwsvcr
from gwsvcr import api
from gwsvcr.api import ServiceClient, ServiceError
from gwsvcr.replay import STATUS_PATH
from gwsvcr.service import CONTROL_SOCKET, MOUNTS_PATH, is_private_socket
from tests.clients import LIFECYCLE, assert_lifecycle, run
from tests.procs import ROOT, Proc
from tests.procs import gwsvcr as gwsvcr_proc

STOP = ROOT / "cassettes" / "stop_call_recording.yaml"
LIFE = ROOT / "cassettes" / "recording_lifecycle.yaml"
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
AUTH = {"Authorization": "Basic YWdlbnQxOnNlY3JldA==", "Content-Type": "application/json"}  # agent1:secret


@pytest.fixture(scope="module")
def service() -> Iterator[Proc]:
    proc = gwsvcr_proc("service", "--port", "0")
    yield proc
    assert proc.stop() == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def svc(service: Proc) -> Iterator[ServiceClient]:
    client = ServiceClient(service.url)
    yield client
    client.close()


def post(url: str, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), AUTH)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(params=["control socket", "HTTP"])
def control(request: pytest.FixtureRequest, service: Proc, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceClient]:
    """A client of the service over its control socket, or over HTTP (as where Unix sockets are missing)."""
    if request.param == "HTTP":
        monkeypatch.setattr(api, "is_private_socket", lambda path: False)
    client = ServiceClient(service.url)
    yield client
    assert (client._socket is not None) == (request.param == "control socket")
    client.close()


def test_each_mount_has_its_own_port_state_and_misses(control: ServiceClient) -> None:
    with gwsvcr.replaying(STOP, timing="instant", service=control) as stop, \
            gwsvcr.replaying(LIFE, timing="instant", strict=False, service=control) as life:
        assert stop.url != life.url and stop.url.startswith("http://127.0.0.1:")
        assert post(stop.url + CALL, {"operationName": "StopCallRecording"}) == (200, {"statusCode": 0})
        # the other mount never answers from this one's recordings (lenient: 404 with the explanation)
        status, body = post(life.url + CALL, {"operationName": "HoldCall"})
        assert status == 404 and body["request"] == f"POST {CALL}"
        assert stop.misses == [] and [m["request"] for m in life.misses] == [f"POST {CALL}"]
        assert 5 not in stop.unused
        whole = control.status()
        assert {m["id"] for m in whole["mounts"]} >= {stop.id, life.id}
    assert stop.closed and stop.status()["served"] == 1  # final, read after the unmount
    assert {stop.id, life.id}.isdisjoint(m["id"] for m in control.status()["mounts"])


def test_unmount_closes_the_port_and_raise_on_miss(svc: ServiceClient) -> None:
    with pytest.raises(gwsvcr.ReplayMiss) as caught, \
            gwsvcr.replaying(STOP, timing="instant", service=svc) as gws:
        status, body = post(gws.url + CALL, {"operationName": "HoldCall"})
        assert status == 500 and "StopCallRecording" in json.dumps(body)
    assert "body.operationName: 'HoldCall' here, 'StopCallRecording' recorded" in str(caught.value)
    assert caught.value.cassette == STOP
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(gws.url + "/api/v2/me", timeout=5)
    with pytest.raises(ServiceError, match="no mount"):
        svc.mount_status(gws.id)


def test_bad_cassette_and_bad_options_are_400_with_the_problems(svc: ServiceClient, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gwsvcr: 1\n---\nexchange: x\n")
    with pytest.raises(ServiceError) as caught:
        gwsvcr.replaying(bad, service=svc)
    assert caught.value.problems == [f"{bad}:3: field 'exchange' must be an integer, got str"]
    with pytest.raises(ServiceError, match="no such file"):
        gwsvcr.replaying(tmp_path / "nowhere.yaml", service=svc)
    code, answer = svc.call("POST", "/__gwsvcr__/mounts", {"cassette": "relative.yaml", "timing": "slow", "x": 1})
    assert code == 400
    assert len(answer["problems"]) == 3 and "absolute path" in answer["error"] and "'x'" in answer["error"]
    code, answer = svc.call("GET", "/api/v2/me")
    assert code == 404 and "POST /__gwsvcr__/mounts" in answer["error"]


def test_a_warm_mount_costs_milliseconds_and_a_changed_file_is_reloaded(svc: ServiceClient, tmp_path: Path) -> None:
    path = tmp_path / "stop.yaml"
    shutil.copy(STOP, path)
    svc.mount(path)  # cold: loaded once
    loads = svc.status()["cassette_loads"]
    took = []
    for _ in range(5):
        t = time.perf_counter()
        mounted = svc.mount(path, timing="instant")
        took.append(time.perf_counter() - t)
        svc.unmount(mounted["id"])
    assert svc.status()["cassette_loads"] == loads and min(took) < 0.05, took
    path.write_text(path.read_text().replace("StopCallRecording", "HoldCall"))
    with gwsvcr.replaying(path, timing="instant", service=svc) as gws:
        assert post(gws.url + CALL, {"operationName": "HoldCall"})[0] == 200
    assert svc.status()["cassette_loads"] == loads + 1


@pytest.mark.parametrize("transport", ["websocket", "long-polling"])
def test_cometd_clients_on_two_mounts_at_once(svc: ServiceClient, transport: str) -> None:
    with gwsvcr.replaying(LIFE, timing="instant", service=svc) as one, \
            gwsvcr.replaying(LIFE, timing="instant", service=svc) as two:
        for mount in (one, two):
            assert_lifecycle(run("python", mount.url, LIFECYCLE, extra=["--transport", transport]))
        assert one.misses == two.misses == []
        assert one.status()["events_released"] == two.status()["events_released"] == 4


def test_sigterm_stops_the_service_cleanly_with_a_summary_per_mount() -> None:
    proc = gwsvcr_proc("service", "--port", "0")
    client = ServiceClient(proc.url)
    client.mount(STOP)
    control_socket = client.status()[CONTROL_SOCKET]
    assert proc.stop(signal.SIGTERM) == 0, proc.stderr
    assert "gwsvcr: mount 1 (" in proc.stdout and "recorded exchanges never used" in proc.stdout
    assert not os.path.exists(os.path.dirname(control_socket))  # its directory goes with it


def test_the_control_api_on_a_unix_socket_only_its_user_reaches(service: Proc, svc: ServiceClient) -> None:
    path = svc.status()[CONTROL_SOCKET]
    assert is_private_socket(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(path)
        replies = conn.makefile("rb")

        def ask(line: bytes) -> tuple[int, dict]:
            conn.sendall(line + b"\n")
            answer = json.loads(replies.readline())
            return answer["status"], answer["body"]

        assert ask(json.dumps({"method": "GET", "path": STATUS_PATH}).encode())[0] == 403
        status, refused = ask(json.dumps({"method": "GET", "path": STATUS_PATH, "token": "not-it"}).encode())
        assert (status, refused["refused"]) == (403, "token")
        assert ask(b"GET /__gwsvcr__/status HTTP/1.1")[0] == 400  # JSON lines, not HTTP
        status, mounted = ask(json.dumps({"token": service.token, "method": "POST", "path": MOUNTS_PATH,
                                          "body": {"cassette": str(STOP), "timing": "instant"}}).encode())
        assert status == 201 and mounted["url"].startswith("http://127.0.0.1:")
        assert post(mounted["url"] + CALL, {"operationName": "StopCallRecording"}) == (200, {"statusCode": 0})
        status, final = ask(json.dumps({"token": service.token, "method": "DELETE",
                                        "path": f"{MOUNTS_PATH}/{mounted['id']}"}).encode())
        assert status == 200 and final["served"] == 1
