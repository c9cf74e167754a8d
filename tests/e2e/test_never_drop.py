"""gwsvcr record never drops an exchange: its redactor broken on purpose for one exchange, that exchange is still
in the cassette (headers redacted by the header rules, bodies omitted with their size and SHA-256), the live view
says so at once, the stop summary counts it, ``validate`` and ``show`` point at it, and no secret is on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from gwsvcr import cassette as cas
from tests.procs import GWSVCR, PEERS, need_node, start
from tests.reliability.secretscan import literal_leaks, unredacted

SECRET = "pw-never-on-disk-8d1f"
BODY_SECRET = "tok-never-on-disk-51c0"
# gwsvcr record with a redactor that fails on any exchange whose JSON body asks it to: the way a redaction bug
# would hit one exchange in the field.
BROKEN_RECORDER = """
import sys
from gwsvcr.record.redact import Redactor
redact = Redactor.exchange
def exchange(self, ex):
    if isinstance(ex.request.body, dict) and ex.request.body.get("breakRedaction"):
        raise RuntimeError("redactor broken on purpose")
    redact(self, ex)
Redactor.exchange = exchange
from gwsvcr.cli.main import main
sys.argv[0] = "gwsvcr-broken"
main()
"""


def _post(url: str, body: dict) -> dict:
    auth = base64.b64encode(f"agent1:{SECRET}".encode()).decode()
    req = urllib.request.Request(url, json.dumps(body, separators=(",", ":")).encode(),
                                 {"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as reply:
        return json.loads(reply.read())


def test_an_exchange_the_redactor_fails_on_is_kept_without_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    faye = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--password", SECRET])
    recorder = start([sys.executable, "-c", BROKEN_RECORDER, "record", "--upstream", faye.url, "--cassette",
                      str(path), "--port", "0"])
    broken = {"operationName": "StopCallRecording", "token": BODY_SECRET, "breakRedaction": True}
    try:
        assert _post(recorder.url + "/api/v2/me/calls/C1", {"operationName": "StartCallRecording"}) == \
            {"statusCode": 0}
        assert _post(recorder.url + "/api/v2/me/calls/C1", broken) == {"statusCode": 0}  # the client never knew
    finally:
        code = recorder.stop()
        faye.stop()
    assert code == 0, recorder.stderr
    [live] = [line for line in recorder.stderr.splitlines() if line.startswith("s1 #2 POST /api/v2/me/calls/C1 200")]
    assert live.endswith("KEPT AS PLAIN HTTP: redaction failed, bodies omitted (RuntimeError)"), live  # at once
    assert "exchange 2 POST /api/v2/me/calls/C1 kept as plain HTTP: redaction failed, bodies omitted (RuntimeError): " \
        "redactor broken on purpose" in recorder.stderr
    assert "gwsvcr: recorded 2 exchanges" in recorder.stdout
    assert "gwsvcr: 1 exchanges kept as plain HTTP: redaction failed, bodies omitted (RuntimeError)" \
        in recorder.stdout, recorder.stdout

    first, kept = cas.load(path, use_cache=False).exchanges
    assert first.kept_as_http is None and first.request.body == {"operationName": "StartCallRecording"}
    assert kept.kept_as_http and "redaction failed" in kept.kept_as_http
    sent = json.dumps(broken, separators=(",", ":")).encode()
    assert kept.request.kind is None
    assert kept.request.omitted == cas.Omitted(len(sent), hashlib.sha256(sent).hexdigest())
    assert kept.response is not None and kept.response.status == 200 and kept.response.omitted is not None
    assert dict(kept.request.headers)["Authorization"].startswith("Basic ")  # redacted by the header rule
    assert literal_leaks(path, {SECRET, BODY_SECRET}) == [] and unredacted(path) == []

    validate = subprocess.run([GWSVCR, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stderr  # still a valid cassette ...
    assert f"{path}: ok (1 exchange(s) kept as plain HTTP)" in validate.stdout
    assert f"{path}:" in validate.stderr and "note: exchange 2 was kept as plain HTTP by the recorder: " \
        "redaction failed" in validate.stderr  # ... that points at the exchange, by line
    show = subprocess.run([GWSVCR, "show", str(path)], capture_output=True, text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "KEPT AS PLAIN HTTP" in show.stdout and "note: " in show.stderr, (show.stdout, show.stderr)
