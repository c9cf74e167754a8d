"""gwsvcr verify's parts in process: the plan of a recorded session, the live values carried forward, the checks'
text; and whole runs against the simulator core on the fake clock, where delays, lateness and timeouts are exact."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr.bayeux import CONNECT, SUBSCRIBE
from gwsvcr.client import Dropped, Headers, Reply
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.sim import Simulator
from gwsvcr.sim.knobs import Knobs, Refusal
from gwsvcr.timeline import Timing
from gwsvcr.verify import Listener, Options, SessionDriver, checks
from gwsvcr.verify.live import Credentials, LiveValues
from gwsvcr.verify.plan import PlanError, build, choose_session
from tests.fakeclock import FakeClock
from tests.procs import ROOT
from tests.simwire import URL, SimWire, run_on, simulator

LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"
STOP = ROOT / "cassettes" / "stop_call_recording.yaml"
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


def test_a_plan_meets_again_the_connects_the_server_failed_not_one_the_disconnect_ended() -> None:
    edited = cas.load(LIFECYCLE)
    assert build(edited, "s1").failures == []
    by_number = edited.by_number()
    refused = {"successful": False, "error": "402::session_unknown", "advice": {"reconnect": "handshake"}}
    pause_connect = next(i for i in by_number[8].reply_items() if i.message.get("channel") == CONNECT)
    pause_connect.message.update(refused)  # the connect that brought Pause's notification
    ended, disconnect = by_number[13], by_number[14]  # the connect the disconnect ended: refused after it went out
    ended.response, ended.error = copy.deepcopy(by_number[8].response), None
    ended.ttfb = disconnect.start - ended.start + 0.001
    plan = build(edited, "s1")
    assert [(f.exchange, f.failure.summary) for f in plan.failures] == [
        (8, "failed: 402::session_unknown, advice handshake")]
    resume = next(a for a in plan.actions if a.operation == "ResumeCallRecording")
    assert resume.after_failures == plan.failures
    assert [a.after_failures for a in plan.actions if a.offset < plan.failures[0].at] == [[]] * 5


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
                ("Cookie", "JSESSIONID=REDACTED-ea09f74c16cb; lang=en"), ("X-CSRF-TOKEN", "REDACTED-438f2a376fc3"),
                ("X-Api-Key", "REDACTED-aaaaaaaaaaaa"), ("Content-Type", "application/json"), ("Host", "old:1"),
                ("Origin", "https://wwe.example.com")]
    live.learn_headers([("Set-Cookie", "JSESSIONID=abc; Path=/; HttpOnly"), ("Set-Cookie", "BAYEUX_BROWSER=b1"),
                        ("X-CSRF-HEADER", "X-CSRF-TOKEN"), ("X-CSRF-TOKEN", "tok-1")])
    assert live.headers(recorded) == [  # in the recorded order; the client's own cookie kept, the API key not
        Credentials("agent7", "pw").header(), ("Cookie", "JSESSIONID=abc; BAYEUX_BROWSER=b1; lang=en"),
        ("X-CSRF-TOKEN", "tok-1"), ("Content-Type", "application/json"), ("Origin", "https://wwe.example.com")]


def test_a_client_that_sent_no_cookie_and_no_token_sends_none() -> None:
    live = LiveValues.with_binds(Credentials("agent7", "pw"), [])
    live.learn_headers([("Set-Cookie", "JSESSIONID=abc"), ("X-CSRF-TOKEN", "tok-1")])
    curl = [("Authorization", "Basic YWdlbnQxOlJFREFDVEVELWFmOWI3MGRlMzhmNw=="), ("User-Agent", "curl/8.5.0"),
            ("Content-Type", "application/json")]
    assert live.headers(curl) == [Credentials("agent7", "pw").header(), *curl[1:]]
    browser = [("Cookie", "JSESSIONID=REDACTED-ea09f74c16cb")]  # its login came before the recording began
    assert live.headers(browser) == [("Cookie", "JSESSIONID=abc")]
    assert LiveValues.with_binds(Credentials("agent7", "pw"), []).headers(browser) == [
        Credentials("agent7", "pw").header()]  # no live cookie yet: the credentials stand in for the session


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


# ------------------------------------------------------------------------------ timing, on the fake clock


def _driven(cassette: Path, knobs: Knobs | None = None, *, timing: Timing = Timing.RECORDED, timeout: float = 2.0,
            transport: str | None = None, event_delay: float = 0.25, recorded: cas.Cassette | None = None,
            failing: dict[str, bytes | None] | None = None) -> tuple[list[checks.Check], float]:
    """The checks of verifying ``cassette`` (or ``recorded``, edited from it) against the simulator core in this
    process, and the virtual seconds it took: every hold, delay and timeout on the fake clock. ``failing``: paths
    the server fails instead, with the reply it gives (None: no reply at all)."""
    clock = FakeClock()
    recorded = recorded or cas.load(cassette)
    sim = simulator(clock, START_STATE[cassette], knobs, event_delay)
    heard: list[checks.Check] = []

    class Heard(Listener):
        def check(self, check: checks.Check) -> None:
            heard.append(check)

    driver = SessionDriver(build(recorded, "s1"), URL, Credentials("agent1", "secret"),
                           Options(timing, timeout=timeout, transport=transport), Heard(), clock=clock,
                           wire=FailingWire(sim, clock, failing or {}))
    started = clock.now()
    asyncio.run(run_on(clock, driver.run()))
    return heard, clock.now() - started


START_STATE = {LIFECYCLE: "Stopped", STOP: "Recording"}  # the sim's call when each sample was recorded


class FailingWire(SimWire):
    """The simulator, but some requests fail (those to a path given, or whose body holds it, e.g. a channel): a
    raw reply instead of the simulator's, or none."""

    def __init__(self, sim: Simulator, clock: FakeClock, failing: dict[str, bytes | None]) -> None:
        super().__init__(sim, clock)
        self.failing = failing

    async def request(self, method: str, target: str, headers: Headers, body: bytes = b"", *,
                      timeout: float | None) -> Reply:
        key = next((k for k in self.failing if k == target or k.encode() in body), None)
        if key is None:
            return await super().request(method, target, headers, body, timeout=timeout)
        raw, now = self.failing[key], self.clock.wall()
        if raw is None:
            raise Dropped.of(f"{method} {self.target.url(target)}", "the server closed the connection without a reply")
        return Reply(503, [("Content-Type", "text/html")], raw, ExchangeTimes(now, now, now, now))


@pytest.mark.parametrize("transport", ["long-polling", "websocket"])
@pytest.mark.parametrize("timing", [Timing.RECORDED, Timing.INSTANT])
def test_the_simulator_behaves_as_recorded_on_the_fake_clock(timing: Timing, transport: str) -> None:
    heard, took = _driven(LIFECYCLE, timing=timing, transport=transport)
    assert [c.status for c in heard if not c.ok] == [], [c.lines() for c in heard if not c.ok]
    events = [c for c in heard if c.kind == checks.NOTIFICATION]
    assert len(events) == 4
    assert all(c.delay == pytest.approx(0.25) for c in events)  # the simulator's delay, to the microsecond
    if timing == Timing.RECORDED:  # each request at its recorded offset: the session lasts as recorded
        last = cas.load(LIFECYCLE).exchanges[-1]
        assert took >= last.start - cas.load(LIFECYCLE).exchanges[0].start


def test_a_late_notification_is_late_by_what_the_server_added() -> None:
    heard, _ = _driven(LIFECYCLE, Knobs(extra_delay={"StartCallRecording": 0.3}))
    [late] = [c for c in heard if not c.ok]
    assert (late.status, late.operation) == (checks.LATE, "#5 StartCallRecording")
    assert late.delay == pytest.approx(0.55) and late.note == "299 ms later than recorded (threshold 50 ms)"


def test_a_dropped_notification_is_missing_exactly_after_the_timeout() -> None:
    heard, took = _driven(STOP, Knobs(drop_notification=frozenset({"StopCallRecording"})), timing=Timing.INSTANT,
                          timeout=1.5)
    [missing] = [c for c in heard if not c.ok]
    assert missing.lines()[0] == ("MISS  #6   <- /v2/me/calls CallRecordingStateChange (Stopped): after #5 "
                                  "StopCallRecording: nothing within 1.5 s (recorded 246 ms after)")
    assert took == pytest.approx(1.5)  # the timeout; then the disconnect answers the held connect at once


@pytest.mark.parametrize(("knobs", "status", "says"), [
    (Knobs(wrong_state={"PauseCallRecording": "Recording"}), checks.DIFFERS,
     'event.data.call.recordingState: "Paused" recorded, "Recording" live'),
    (Knobs(refuse={"StopCallRecording": Refusal(503, 2)}), checks.DIFFERS, "response.status: 200 recorded, 503 live"),
])
def test_a_server_that_answers_otherwise_differs_in_that_field(knobs: Knobs, status: str, says: str) -> None:
    heard, _ = _driven(LIFECYCLE, knobs)
    bad = [c for c in heard if not c.ok]
    assert bad[0].status == status and says in bad[0].differences, bad[0].lines()
    assert all(c.status == checks.MISSING for c in bad[1:])  # a refused operation's notification, and that is all


def _failed_when_recorded(number: int, error: str) -> cas.Cassette:
    """STOP with exchange ``number`` given no reply when recorded, and the notification it caused gone."""
    edited = cas.load(STOP)
    failed = edited.by_number()[number]
    failed.response, failed.error = None, error
    for ex in edited.exchanges:
        if ex.response is not None and ex.response.kind == "messages":
            ex.response.body = [item for item in ex.reply_items() if not item.is_event or item.cause != number]
    return edited


CALL_PATH = f"/api/v2/me/calls/{CALL}"
RESET = "upstream http://gws/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V failed: connection reset by peer"


def test_a_request_the_server_failed_when_recorded_and_answers_live_differs() -> None:
    heard, _ = _driven(STOP, recorded=_failed_when_recorded(5, RESET))
    bad = [c for c in heard if not c.ok]
    assert [(c.status, c.number) for c in bad] == [(checks.DIFFERS, 5), (checks.UNEXPECTED, None)]
    assert bad[0].expected == f"no reply ({RESET})" and bad[0].actual == "HTTP 200, statusCode 0"
    assert bad[0].differences == [f"failure: no reply ({RESET}) recorded, none live"]


def test_a_request_that_fails_live_as_it_did_when_recorded_is_as_recorded() -> None:
    heard, _ = _driven(STOP, recorded=_failed_when_recorded(5, RESET), failing={CALL_PATH: None})
    assert [c.status for c in heard if not c.ok] == [], [c.lines() for c in heard if not c.ok]
    [stop] = [c for c in heard if c.number == 5]
    assert stop.actual.startswith("no reply (POST http://sim.test/api/v2/me/calls/")


def test_a_request_that_fails_live_only_fails() -> None:
    heard, _ = _driven(STOP, failing={CALL_PATH: None})
    bad = [c for c in heard if not c.ok]
    assert [(c.status, c.number) for c in bad] == [(checks.FAILED, 5), (checks.MISSING, 6)]
    assert bad[0].note.endswith("the server closed the connection without a reply")


def test_an_error_page_on_a_bayeux_request_is_checked_not_fatal() -> None:
    """Where the recorded subscribe got its reply, the live one gets an error page: a FAIL, and the run goes on."""
    heard, _ = _driven(LIFECYCLE, failing={SUBSCRIBE: b"<html>Service Unavailable</html>"},
                       timing=Timing.INSTANT, timeout=0.5)
    bad = [c for c in heard if not c.ok]
    assert (bad[0].status, bad[0].operation) == (checks.FAILED, "/meta/subscribe")
    assert bad[0].actual == "HTTP 503, not Bayeux"
    assert bad[0].note == ("POST http://sim.test/api/v2/notifications answered HTTP 503 text/html, not Bayeux: "
                           "'<html>Service Unavailable</html>'")
    assert {c.status for c in bad[1:]} == {checks.MISSING}  # subscribed nowhere: no notification comes
