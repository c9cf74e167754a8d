"""The live view of ``gwsvcr record`` and ``gwsvcr replay``: one line per exchange and per CometD event on stderr
while they run, silenced by ``--quiet``; stdout keeps its contract (the listening line, then the summary)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.clients import run
from tests.conftest import record, replay
from tests.procs import Proc

OPS = ("StopCallRecording",)
CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
EVENT = re.compile(r"<- /v2/me/calls CallRecordingStateChange \(Stopped\)  (\d+) ms after #(\d+) StopCallRecording$")


def stdout_contract(proc: Proc, summary: str) -> None:
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("gwsvcr: listening on http://") and \
        lines[1].startswith(summary), proc.stdout


def test_record_and_replay_show_each_exchange_and_event_and_quiet_silences_them(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(sim.url, path)
    run("python", rec.url, OPS)
    assert rec.stop() == 0, rec.stderr
    stdout_contract(rec, "gwsvcr: recorded")
    shown = rec.stderr.splitlines()
    stop = next(line for line in shown if f"POST {CALL} 200 StopCallRecording, statusCode 0" in line)
    number = re.match(r"s1 #(\d+) ", stop)
    assert number, shown
    [event] = [m for m in map(EVENT.search, shown) if m]
    assert event.group(2) == number.group(1) and 240 <= int(event.group(1)) <= 400
    assert any(re.match(r"s1 #\d+ POST /api/v2/notifications\S* 200 /meta/connect, held \d+ ms, 1 event$", line)
               for line in shown), shown

    server = replay(path)
    run("python", server.url, OPS)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + "/api/v2/me?_=1732800000000", timeout=10)
    assert server.stop() == 1
    stdout_contract(server, "gwsvcr: served")
    shown = server.stderr.splitlines()
    assert any(re.match(rf"127\.0\.0\.1:\d+ POST {CALL} 200 StopCallRecording, statusCode 0$", line) for line in shown)
    [replayed] = [m for m in map(EVENT.search, shown) if m]
    assert replayed.group(2) == number.group(1) and 240 <= int(replayed.group(1)) <= 400
    assert any(re.match(r"127\.0\.0\.1:\d+ GET /api/v2/me\?_=1732800000000 500 MISS nothing recorded matches$", line)
               for line in shown), shown

    quiet = replay(path, "--quiet")
    run("python", quiet.url, OPS)
    assert quiet.stop() == 0
    stdout_contract(quiet, "gwsvcr: served")
    assert quiet.stderr == "", quiet.stderr
    rec = record(sim.url, tmp_path / "quiet.yaml", "--quiet")
    run("python", rec.url, OPS, user="agent2")
    assert rec.stop() == 0
    stdout_contract(rec, "gwsvcr: recorded")
    assert rec.stderr == "", rec.stderr
