"""gwsvcr sim with real CometD clients: handshake, subscribe, the four recording operations, notifications."""

from __future__ import annotations

import base64
import json
import signal
import urllib.error
import urllib.request

import pytest

from tests.clients import assert_lifecycle, run
from tests.procs import Proc, gwsvcr


@pytest.mark.parametrize("client", ["python", "node"])
def test_clients_get_each_notification_in_order(sim: Proc, client: str) -> None:
    session = run(client, sim.url)
    assert_lifecycle(session)
    for delay in session.delays().values():
        assert 240 <= delay <= 400, session.delays()  # --event-delay-ms 250, loopback


def _post(url: str, body: object, auth: str | None = "agent1:secret") -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"


def test_gws_style_errors(sim: Proc) -> None:
    assert _post(sim.url + CALL, {"operationName": "StopCallRecording"}, auth=None)[0] == 401
    status, body = _post(sim.url + "/api/v2/me/calls/NOPE", {"operationName": "StopCallRecording"})
    assert (status, body["statusCode"]) == (404, 6)
    status, body = _post(sim.url + CALL, {"operationName": "TransferToMars"})
    assert (status, body["statusCode"]) == (400, 2) and "TransferToMars" in body["statusMessage"]
    status, body = _post(sim.url + CALL, {"operationName": "ResumeCallRecording"})  # not paused
    assert (status, body["statusCode"]) == (400, 2) and "recordingState is Recording" in body["statusMessage"]
    assert _post(sim.url + CALL, {})[1]["statusCode"] == 1


def test_csrf_token_required_inside_a_cookie_session(sim: Proc) -> None:
    req = urllib.request.Request(sim.url + "/api/v2/me", headers={
        "Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()})
    with urllib.request.urlopen(req, timeout=10) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]
        token = r.headers["X-CSRF-TOKEN"]
        assert r.headers["X-CSRF-HEADER"] == "X-CSRF-TOKEN"
    body = json.dumps({"operationName": "StopCallRecording"}).encode()
    forged = urllib.request.Request(sim.url + CALL, body, {"Cookie": cookie, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(forged, timeout=10)
    assert info.value.code == 403
    good = urllib.request.Request(sim.url + CALL, body, {"Cookie": cookie, "X-CSRF-TOKEN": token,
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(good, timeout=10) as r:
        assert json.loads(r.read()) == {"statusCode": 0}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serving_command_conventions(sig: int) -> None:
    proc = gwsvcr("sim", "--port", "0", "--user", "u", "--password", "p")
    assert proc.url.startswith("http://127.0.0.1:")
    assert proc.stdout.splitlines()[0] == f"gwsvcr: listening on {proc.url}"
    assert proc.stop(sig) == 0
    assert "Traceback" not in proc.stderr
