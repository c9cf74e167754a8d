"""The live view's lines (gwsvcr/live.py), and the replayer core telling each released event with its delay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gwsvcr import cassette as cas
from gwsvcr import live
from gwsvcr.cassette import Exchange, Omitted, ReplyItem, Request, Response
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Timing
from tests.fakeclock import FakeClock
from tests.procs import ROOT

CALL = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
STOPPED = {"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange",
                                               "messageType": "CallStateChangeMessage",
                                               "call": {"recordingState": "Stopped"}}}


def post(body: Any, path: str = CALL) -> Request:
    return Request(kind="json", body=body, method="POST", path=path)


def test_a_rest_exchange_shows_method_path_status_operation_and_status_code() -> None:
    ex = Exchange(5, "s1", 1.2, post({"operationName": "StopCallRecording"}), Response(kind="json",
                                                                                        body={"statusCode": 0}))
    assert live.recorded_lines(ex) == [f"s1 #5 POST {CALL} 200 StopCallRecording, statusCode 0"]
    refused = Response(status=400, kind="json", body={"statusCode": 2, "statusMessage": "not valid now"})
    assert live.exchange_line("s1 #6", post({"operationName": "PauseCallRecording"}), refused) == \
        f"s1 #6 POST {CALL} 400 PauseCallRecording, statusCode 2, not valid now"
    get = Request(method="GET", path="/api/v2/me", query=[("_", "1732800000000")])
    assert live.exchange_line("s1 #1", get, Response()) == "s1 #1 GET /api/v2/me?_=1732800000000 200"


def test_a_cometd_exchange_shows_its_channels_hold_and_each_event_with_its_delay_after_its_cause() -> None:
    connect = Request(kind="messages", body=[{"channel": "/meta/connect", "clientId": "c", "id": "7"}],
                      method="POST", path="/api/v2/notifications/connect")
    items = [ReplyItem(STOPPED, cause=5, delay=0.2514, event="CallRecordingStateChange (Stopped)",
                       after="StopCallRecording"),
             ReplyItem({"channel": "/meta/connect", "successful": True, "id": "7"}, hold=0.252)]
    ex = Exchange(6, "s1", 1.5, connect, Response(kind="messages", body=items), transport="long-polling")
    assert live.recorded_lines(ex) == [
        "s1 #6 POST /api/v2/notifications/connect 200 /meta/connect, held 252 ms, 1 event",
        "s1 #6   <- /v2/me/calls CallRecordingStateChange (Stopped)  251 ms after #5 StopCallRecording"]
    subscribe = Request(kind="messages", method="POST", path="/cometd",
                        body=[{"channel": "/meta/subscribe", "subscription": "/v2/me/x", "id": "3"}])
    refused = Response(kind="json", body=[{"channel": "/meta/subscribe", "successful": False, "error": "403::no"}])
    assert live.exchange_line("s2 #3", subscribe, refused) == \
        "s2 #3 POST /cometd 200 /meta/subscribe /v2/me/x, failed: 403::no"


def test_failures_misses_and_bodies_not_kept_are_flagged() -> None:
    me = Request(method="GET", path="/api/v2/me")
    assert live.exchange_line("s1 #2", me, None, "upstream https://gws:8443/api/v2/me failed: refused") == \
        "s1 #2 GET /api/v2/me --- upstream https://gws:8443/api/v2/me failed: refused"
    miss = Response(status=500, headers=[(live.MISS_HEADER, "1")], kind="json",
                    body={"reason": "nothing recorded matches (query parameters ignored: _)"})
    assert live.exchange_line("127.0.0.1:5000", me, miss) == \
        "127.0.0.1:5000 GET /api/v2/me 500 MISS nothing recorded matches (query parameters ignored: _)"
    assert live.exchange_line("127.0.0.1:5000", me, Response(status=404), miss="answered by http://up") == \
        "127.0.0.1:5000 GET /api/v2/me 404 MISS answered by http://up"
    download = Response(omitted=Omitted(209_715_200, "6f1e" + "0" * 60))
    assert live.exchange_line("s1 #3", Request(method="GET", path="/big"), download) == \
        "s1 #3 GET /big 200 body not kept: 209,715,200 bytes, sha256 6f1e00000000…"


def test_an_event_line_without_a_known_cause() -> None:
    assert live.event_line("client 2", STOPPED, None) == "client 2   <- /v2/me/calls CallRecordingStateChange (Stopped)"
    assert live.event_line("client 2", {"channel": "/x", "data": 1}, 0.01) == \
        "client 2   <- /x event  10 ms after its cause"


@pytest.mark.parametrize("busy", [0.0, 0.5])
async def test_the_replayer_tells_each_released_event_with_its_delay_after_its_cause(busy: float) -> None:
    """``busy``: the process was busy when the event fell due, its timer fired that much later: the event went out
    late, the live view shows when it did, the status and the stop summary count it."""
    clock, lines = FakeClock(), []
    sample = cas.load(ROOT / "cassettes" / "stop_call_recording.yaml")
    core = Replayer(sample, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock,
                    show=lines.append)
    stop = next(ex for ex in sample.exchanges if ex.request.method == "POST" and ex.request.kind == "json")
    answering = asyncio.create_task(core.handle(Request(
        headers=[("Authorization", "Basic YWdlbnQxOnNlY3JldA==")], kind="json", body=stop.request.body,
        method="POST", path=stop.request.path)))
    await clock.advance(stop.ttfb or 0.0)
    served = await answering
    assert served.delivered is not None
    served.delivered(clock.now())
    [event] = [item for ex in sample.exchanges for item in ex.reply_items() if item.is_event]
    assert event.delay is not None
    clock.t += event.delay + busy
    await clock.advance(0)
    assert lines == [f"client 1   <- /v2/me/calls CallRecordingStateChange (Stopped)  "
                     f"{(event.delay + busy) * 1000:.0f} ms after #{stop.number} StopCallRecording"]
    figures = core.status()
    assert (figures["events_released"], figures["released_late"], figures["late_max_ms"]) == \
        ((1, 1, 500.0) if busy else (1, 0, 0.0))
    assert ("went out more than 10 ms after their recorded time (the latest 500 ms late)" in core.summary()) == \
        bool(busy)


async def test_an_instant_replay_counts_no_event_late() -> None:
    """Instant replay keeps no recorded time: an event that went out after a busy moment was not late."""
    clock = FakeClock()
    sample = cas.load(ROOT / "cassettes" / "stop_call_recording.yaml")
    core = Replayer(sample, ReplayConfig(timing=Timing.INSTANT), on_miss=lambda miss: pytest.fail(miss.text()),
                    clock=clock)
    stop = next(ex for ex in sample.exchanges if ex.request.method == "POST" and ex.request.kind == "json")
    served = await core.handle(Request(headers=[("Authorization", "Basic YWdlbnQxOnNlY3JldA==")], kind="json",
                                       body=stop.request.body, method="POST", path=stop.request.path))
    assert served.delivered is not None
    served.delivered(clock.now())
    clock.t += 0.5
    await clock.advance(0)
    figures = core.status()
    assert (figures["events_released"], figures["released_late"], figures["late_max_ms"]) == (1, 0, 0.0)
