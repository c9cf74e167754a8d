"""gwsvcr verify's parts in process: the plan of a recorded session, the live values carried forward, the checks'
text, and the HTTP client's kept-alive connections."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest

from gwsvcr import cassette as cas
from gwsvcr.client import HttpClient, Target
from gwsvcr.verify import Listener, SessionDriver, checks
from gwsvcr.verify.live import Credentials, LiveValues
from gwsvcr.verify.plan import PlanError, build, choose_session
from tests.procs import ROOT

LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"
CALL = "01RCC3N118B1V0SL8O7GK2LAES00000V"


def test_a_plan_sends_every_request_but_connects_after_what_the_client_had_seen() -> None:
    plan = build(cas.load(LIFECYCLE), "s1")
    assert [a.operation for a in plan.actions] == [
        "GET /api/v2/me", "/meta/handshake", "/meta/subscribe", "StartCallRecording", "PauseCallRecording",
        "ResumeCallRecording", "StopCallRecording", "/meta/disconnect"]
    assert [e.summary for e in plan.events] == ["CallRecordingStateChange (Recording)",
                                                "CallRecordingStateChange (Paused)",
                                                "CallRecordingStateChange (Recording)",
                                                "CallRecordingStateChange (Stopped)"]
    pause = plan.actions[4]
    assert [e.after for e in pause.waits_for] == ["StartCallRecording"]  # it came before Pause was sent
    assert len(plan.actions[-1].waits_for) == 4
    assert (plan.transport, plan.cometd_path) == ("long-polling", "/api/v2/notifications")
    assert all(m["channel"] == "/meta/connect" for m in plan.connect_messages)


def test_choosing_a_session() -> None:
    loaded = cas.load(LIFECYCLE)
    assert choose_session(loaded, None) == "s1"
    with pytest.raises(PlanError, match="no session 's2'; it has s1"):
        choose_session(loaded, "s2")
    loaded.exchanges[0].session = "s2"
    with pytest.raises(PlanError, match=r"holds 2 sessions \(s2, s1\): choose one with --session"):
        choose_session(loaded, None)


def test_live_values_replace_what_the_recording_cannot_hold() -> None:
    live = LiveValues.with_binds(Credentials("agent7", "pw"), ["calls.id"])
    recorded = [("Authorization", "Basic YWdlbnQxOlJFREFDVEVELWFmOWI3MGRlMzhmNw=="),
                ("Cookie", "JSESSIONID=REDACTED-ea09f74c16cb"), ("X-CSRF-TOKEN", "REDACTED-438f2a376fc3"),
                ("X-Api-Key", "REDACTED-aaaaaaaaaaaa"), ("Content-Type", "application/json"), ("Host", "old:1"),
                ("Origin", "https://wwe.example.com")]
    live.learn_headers([("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"), ("Set-Cookie", "BAYEUX_BROWSER=b1"),
                        ("X-CSRF-HEADER", "X-CSRF-TOKEN"), ("X-CSRF-TOKEN", "tok-1")])
    sent = live.headers("POST", recorded, rest=True)
    assert sent == [("Content-Type", "application/json"), ("Origin", "https://wwe.example.com"),
                    Credentials("agent7", "pw").header(), ("Cookie", "JSESSIONID=abc; BAYEUX_BROWSER=b1"),
                    ("X-CSRF-TOKEN", "tok-1")]
    assert ("X-CSRF-TOKEN", "tok-1") not in live.headers("GET", [], rest=True)
    assert ("X-CSRF-TOKEN", "tok-1") in live.headers("POST", recorded, rest=False)  # recorded: sent it there too


def test_a_bound_value_replaces_the_recorded_one_in_later_requests() -> None:
    live = LiveValues.with_binds(None, ["calls.id", "nowhere.id"])
    recorded = {"statusCode": 0, "calls": [{"id": CALL, "state": "Established"}]}
    [bound] = live.learn_values(recorded, {"statusCode": 0, "calls": [{"id": "01NEW", "state": "Established"}]},
                                "GET /api/v2/me/calls")
    assert (bound.recorded, bound.live, bound.where) == (CALL, "01NEW", "GET /api/v2/me/calls")
    assert live.learn_values(recorded, {"calls": [{"id": "01OTHER"}]}, "later") == []  # the first one holds
    assert live.bind(f"/api/v2/me/calls/{CALL}") == "/api/v2/me/calls/01NEW"
    assert live.bind({"call": {"id": CALL, "uri": f"http://x/calls/{CALL}"}, "n": 1}) == \
        {"call": {"id": "01NEW", "uri": "http://x/calls/01NEW"}, "n": 1}
    assert [b.bound for b in live.bindings] == [True, False]


def test_a_check_reads_as_one_headline_and_its_fields() -> None:
    late = checks.Check(checks.NOTIFICATION, checks.LATE, 12, "<- /v2/me/calls CallRecordingStateChange (Stopped)",
                        "#11 StopCallRecording", "CallRecordingStateChange (Stopped)",
                        "CallRecordingStateChange (Stopped)", delay=0.552, recorded_delay=0.251,
                        note="301 ms later than recorded (threshold 50 ms)")
    assert late.lines() == [
        "LATE  #12  <- /v2/me/calls CallRecordingStateChange (Stopped): 552 ms after #11 StopCallRecording, "
        "recorded 251 ms",
        "           301 ms later than recorded (threshold 50 ms)"]
    result = checks.Result([late, checks.Check(checks.OPERATION, checks.OK, 11, "POST …", "StopCallRecording",
                                               "HTTP 200", "HTTP 200")])
    assert result.summary() == "DIFFERENT: 1 of 2 checks (1 operations, 1 notifications): 1 late"


async def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    """Node closes an idle keep-alive connection after 5 s: the next request must not fail for it."""
    served = 0

    async def one_reply_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(one_reply_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(Target.parse(f"http://127.0.0.1:{port}"))
    try:
        first = await client.request("GET", "/a", [], timeout=5)
        await asyncio.sleep(0.2)
        second = await client.request("GET", "/b", [], timeout=5)
    finally:
        await client.close()
        server.close()
    assert (first.status, second.status, served) == (200, 200, 2)
    assert first.times.response_end is not None and first.times.response_end >= first.times.request_start


async def test_a_live_notification_is_matched_to_the_first_open_one_of_its_kind() -> None:
    plan = build(cas.load(LIFECYCLE), "s1")
    heard: list[checks.Check] = []

    class Heard(Listener):
        def check(self, check: checks.Check) -> None:
            heard.append(check)

    driver = SessionDriver(plan, "http://127.0.0.1:9", listener=Heard())
    start, pause = driver._expected[0], driver._expected[1]
    recorded_pause = copy.deepcopy(pause.event.message)
    driver._on_event(start.event.message, time.time())  # its cause was not sent yet: not expected
    assert heard[-1].status == checks.UNEXPECTED and heard[-1].note == ""
    start.open = pause.open = True
    driver._missing(start)  # its --timeout passed
    recorded_pause["data"]["call"]["recordingState"] = "Stopped"
    driver._on_event(recorded_pause, time.time())
    assert heard[-2].status == checks.MISSING and heard[-1].status == checks.DIFFERS
    assert heard[-1].number == 8 and heard[-1].operation == "#7 PauseCallRecording"
    assert heard[-1].differences == ['event.data.call.recordingState: "Paused" recorded, "Stopped" live']
    driver._on_event(start.event.message, time.time())  # after all
    assert heard[-1].status == checks.UNEXPECTED
    assert heard[-1].note == "came after the 10 s timeout of #6"
    await driver.close()
