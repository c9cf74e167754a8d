"""Cause attribution in the recorder, in process: an event's cause is the last non-connect request of its session
whose reply completed before the event was delivered; its delay runs from that completion."""

from __future__ import annotations

from typing import Any

from gwsvcr.cassette import Request, Response
from gwsvcr.record.recording import ExchangeTimes, Recorder
from gwsvcr.record.redact import Redactor

AUTH = ("Authorization", "Basic YWdlbnQxOnNlY3JldA==")
EVENT = {"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange",
                                             "call": {"recordingState": "Stopped"}}}


def _bayeux(*messages: dict[str, Any]) -> Request:
    return Request(headers=[AUTH], kind="messages", body=list(messages), method="POST", path="/api/v2/notifications")


def _reply(*messages: dict[str, Any]) -> Response:
    return Response(headers=[("Content-Type", "application/json")], kind="json", body=list(messages))


def _operation(name: str) -> Request:
    return Request(headers=[AUTH], kind="json", body={"operationName": name}, method="POST",
                   path="/api/v2/me/calls/C1")


def test_an_event_is_caused_by_the_last_reply_completed_before_it() -> None:
    rec = Recorder(None, Redactor(), t0=100.0)
    hs = rec.complete(_bayeux({"channel": "/meta/handshake", "id": "1"}),
                      _reply({"channel": "/meta/handshake", "id": "1", "successful": True, "clientId": "abc"}),
                      ExchangeTimes(100.0, 100.0, 100.01, 100.02))
    stop = rec.complete(_operation("StopCallRecording"), _reply(), ExchangeTimes(100.5, 100.5, 100.6, 100.7))
    # The long-poll was sent before the operation and completed with the event 250 ms after the operation's reply;
    # a later operation whose reply completed after the event was delivered is no candidate.
    later = rec.complete(_operation("StartCallRecording"), _reply(), ExchangeTimes(100.9, 100.9, 100.96, 101.0))
    poll = rec.complete(_bayeux({"channel": "/meta/connect", "id": "2", "clientId": "abc"}),
                        _reply(EVENT, {"channel": "/meta/connect", "id": "2", "successful": True}),
                        ExchangeTimes(100.1, 100.1, 100.95, 100.95))
    assert len({hs.session, stop.session, later.session, poll.session}) == 1, "one agent, one session"
    [event, connect] = poll.response.body  # type: ignore[union-attr]
    assert event.cause == stop.number and event.after == "StopCallRecording"
    assert abs(event.delay - 0.25) < 1e-9
    assert connect.cause is None and abs(connect.hold - 0.85) < 1e-9


def test_connects_are_never_causes_and_sessions_stay_apart() -> None:
    rec = Recorder(None, Redactor(), t0=0.0)
    other = Request(headers=[("Authorization", "Basic YWdlbnQyOnNlY3JldA==")], kind="json",
                    body={"operationName": "StopCallRecording"}, method="POST", path="/api/v2/me/calls/C2")
    mine = rec.complete(_operation("StopCallRecording"), _reply(), ExchangeTimes(1.0, 1.0, 1.1, 1.2))
    theirs = rec.complete(other, _reply(), ExchangeTimes(1.3, 1.3, 1.35, 1.4))  # agent2: another session
    rec.complete(_bayeux({"channel": "/meta/connect", "id": "1", "clientId": "x"}),
                 _reply({"channel": "/meta/connect", "id": "1", "successful": True}),
                 ExchangeTimes(1.0, 1.0, 1.41, 1.41))
    poll = rec.complete(_bayeux({"channel": "/meta/connect", "id": "2", "clientId": "x"}),
                        _reply(EVENT, {"channel": "/meta/connect", "id": "2", "successful": True}),
                        ExchangeTimes(1.42, 1.42, 1.5, 1.5))
    assert theirs.session != mine.session == poll.session
    [event, _] = poll.response.body  # type: ignore[union-attr]
    assert event.cause == mine.number, "agent2's later operation and the empty connect are not the cause"
    assert abs(event.delay - 0.3) < 1e-9
