"""Matching knobs that browser recordings need, end to end through ``gwsvcr replay`` and ``gwsvcr record``:
``--ignore-query`` (a cache buster), ``--match-header``, the cassette header's ``match:`` section, ``--no-repeat``."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gwsvcr import cassette as cas
from tests.conftest import record, replay
from tests.procs import GWSVCR, ROOT, Proc
from tests.reliability.netutil import CALL, basic

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"  # GET /api/v2/me, CometD, one StopCallRecording
AUTH = {"Authorization": basic("agent1", "secret")}
BUSTER = "/api/v2/me?_=1732800000000"  # what jQuery's cache: false adds to every GET


def fetch(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, Any], dict[str, str]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {**AUTH, "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def with_header_section(tmp_path: Path, section: str) -> Path:
    """A copy of the sample whose header carries ``section`` (YAML lines)."""
    text = SAMPLE.read_text()
    first, rest = text.split("\n---\n", 1)
    path = tmp_path / "knobs.yaml"
    path.write_text(f"{first}\n{section}\n---\n{rest}")
    assert cas.validate(path) == []
    return path


def test_cache_buster_is_a_miss_without_ignore_query_and_a_hit_with_it() -> None:
    plain = replay(SAMPLE)
    try:
        status, body, _ = fetch(plain.url + BUSTER)
    finally:
        assert plain.stop() == 1, "strict replay with a miss exits 1"
    assert status == 500
    differences = body["closest"][0]["differences"]
    assert differences == ["query: {'_': '1732800000000'} here, {} recorded (--ignore-query _ would leave it out)"]
    relaxed = replay(SAMPLE, "--ignore-query", "_")
    try:
        status, body, _ = fetch(relaxed.url + BUSTER)
    finally:
        assert relaxed.stop() == 0, relaxed.stderr
    assert status == 200 and body["user"]["userName"] == "agent1"


def test_the_cassette_header_match_section_is_used_by_replay(tmp_path: Path) -> None:
    path = with_header_section(tmp_path, "match:\n  ignore_query: [_]\n  match_headers: [X-Tenant]")
    server = replay(path)
    try:
        status, body, _ = fetch(server.url + BUSTER)  # X-Tenant absent, as recorded
        assert status == 200, body
        status, body, _ = fetch(server.url + "/api/v2/me?_=2", headers={"X-Tenant": "blue"})
    finally:
        assert server.stop() == 1
    assert status == 500
    assert "(query parameters ignored: _; headers compared: X-Tenant)" in body["reason"]
    assert "header x-tenant: 'blue' here, <absent> recorded (compared: --match-header)" in \
        body["closest"][0]["differences"]


def test_no_repeat_makes_a_request_repeated_beyond_the_recording_a_miss() -> None:
    def stop_twice(server: Proc) -> list[int]:
        _, _, headers = fetch(server.url + "/api/v2/me")
        cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
        return [fetch(server.url + CALL, {"operationName": "StopCallRecording"}, cookie)[0] for _ in range(2)]

    repeating = replay(SAMPLE, "--timing", "instant")
    try:
        assert stop_twice(repeating) == [200, 200], "the last recorded answer again"
    finally:
        assert repeating.stop() == 0
    once = replay(SAMPLE, "--timing", "instant", "--no-repeat")
    try:
        assert stop_twice(once) == [200, 500]
    finally:
        assert once.stop() == 1
    assert "recorded 1 time(s) in session s1, all used, and --no-repeat answers no more" in once.stderr


def test_match_on_a_redacted_header_is_refused() -> None:
    done = subprocess.run([GWSVCR, "replay", str(SAMPLE), "--match-header", "Cookie"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "recorded values are redaction placeholders" in done.stderr


def test_record_writes_the_match_section(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(sim.url, path, "--ignore-query", "_", "--match-header", "X-Tenant")
    assert fetch(rec.url + BUSTER, headers={"X-Tenant": "blue"})[0] == 200
    assert rec.stop() == 0, rec.stderr
    header = cas.load(path, use_cache=False).header
    assert header.match == {"ignore_query": ["_"], "match_headers": ["X-Tenant"]}
    server = replay(path)
    try:
        status, body, _ = fetch(server.url + "/api/v2/me?_=1732800099999", headers={"X-Tenant": "blue"})
    finally:
        assert server.stop() == 0, server.stderr
    assert status == 200 and body["statusCode"] == 0
