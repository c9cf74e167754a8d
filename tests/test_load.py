"""gwsvcr.load without Locust: credentials per agent, agent numbers across workers, pacing, and how a check reads
as a Locust entry."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr.load.settings import (
    COMETD,
    NOTIFY,
    CredentialSource,
    LoadSettings,
    LoadSettingsError,
    agent_number,
    entry,
    paced,
)
from gwsvcr.verify import Check, build
from gwsvcr.verify.checks import DIFFERS, FAILED, LATE, MISSING, NOTIFICATION, OK, OPERATION, UNEXPECTED

ROOT = Path(__file__).resolve().parent.parent
LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"


def test_agent_numbers_are_unique_across_workers() -> None:
    numbers = [agent_number(n, w, 3) for w in range(3) for n in range(10)]
    assert sorted(numbers) == list(range(1, 31))
    assert [agent_number(n, 0, 1) for n in range(3)] == [1, 2, 3]


def test_credentials_from_a_pattern_or_a_csv(tmp_path: Path) -> None:
    pattern = LoadSettings(str(LIFECYCLE), user="agent{i}", password="pw").credentials()
    assert (pattern.for_agent(7).user, pattern.for_agent(7).password) == ("agent7", "pw")
    path = tmp_path / "agents.csv"
    path.write_text("user,password\nalice,a1\nbob,b,2\n\n")
    rows = CredentialSource.from_csv(str(path))
    assert [(rows.for_agent(i).user, rows.for_agent(i).password) for i in (1, 2, 3)] == [
        ("alice", "a1"), ("bob", "b"), ("alice", "a1")]


@pytest.mark.parametrize(("settings", "says"), [
    (LoadSettings(str(LIFECYCLE)), "no password"),
    (LoadSettings(str(LIFECYCLE), user="agent", password="p"), "has no {i}"),
])
def test_credentials_missing_or_shared_are_refused(settings: LoadSettings, says: str) -> None:
    with pytest.raises(LoadSettingsError, match=says):
        settings.credentials()


def test_a_csv_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agents.csv"
    path.write_text("user,password\nonlyname\n")
    with pytest.raises(LoadSettingsError, match="row 1"):
        CredentialSource.from_csv(str(path))


def test_paced_puts_rest_operations_interval_apart() -> None:
    plan = build(cas.load(LIFECYCLE), "s1")
    offsets = [(a.messages is None, a.offset) for a in paced(plan, 2.0).actions]
    rest = [at for is_rest, at in offsets if is_rest]
    assert rest == [2.0 * k for k in range(len(rest))]
    assert all(b >= a for (_, a), (_, b) in itertools.pairwise(offsets))


def _notification(status: str, delay: float | None, actual: str | None = "CallRecordingStateChange (Stopped)",
                  note: str = "") -> Check:
    return Check(NOTIFICATION, status, 12, "<- /v2/me/calls CallRecordingStateChange (Stopped)",
                 "#11 StopCallRecording", "CallRecordingStateChange (Stopped)", actual, delay=delay, note=note)


def test_entries_name_the_operation_and_the_event() -> None:
    ok = entry(_notification(OK, 0.251))
    assert (ok.request_type, ok.name, round(ok.response_time), ok.failure) == (
        NOTIFY, "StopCallRecording -> CallRecordingStateChange", 251, None)
    assert entry(_notification(LATE, 0.6)).failure is None  # how late is its response time
    missing = entry(_notification(MISSING, None, None, "nothing within 2 s"), timeout=2)
    assert (missing.name, missing.response_time, missing.failure) == (
        "StopCallRecording -> CallRecordingStateChange", 2000, "missing: nothing within 2 s")
    differs = entry(_notification(DIFFERS, 0.25, "CallRecordingStateChange (Recording)"))
    assert differs.failure == ("differs: expected CallRecordingStateChange (Stopped), came CallRecordingStateChange "
                               "(Recording)")
    extra = entry(_notification(UNEXPECTED, 0.3))
    assert extra.name == "(not recorded) -> CallRecordingStateChange" and extra.failure


def test_entries_of_operations() -> None:
    rest = Check(OPERATION, OK, 11, "POST /api/v2/me/calls/01RCC3… StopCallRecording", "StopCallRecording",
                 "HTTP 200", "HTTP 200", delay=0.004)
    got = entry(rest)
    assert (got.request_type, got.name, round(got.response_time)) == ("POST", "POST StopCallRecording", 4)
    login = Check(OPERATION, FAILED, 1, "GET /api/v2/me", "GET /api/v2/me", "HTTP 200", None, note="timed out")
    got = entry(login, elapsed=0.5)
    assert (got.name, got.response_time, got.failure) == ("GET /api/v2/me", 500, "failed: timed out")
    handshake = Check(OPERATION, OK, 2, "/meta/handshake", "/meta/handshake", "ok", "ok")
    assert (entry(handshake, 0.01).request_type, entry(handshake).name) == (COMETD, "/meta/handshake")
