"""The simulator's knobs, which make it differ from a recording on purpose: parsed from text, and what they change
in the simulator's answers and notifications (tests/test_addons.py has them as mitmproxy options;
tests/e2e/test_verify.py shows gwsvcr verify finding each)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from gwsvcr import gws
from gwsvcr.bayeux import CONNECT, HANDSHAKE, SESSION_UNKNOWN, SUBSCRIBE
from gwsvcr.cassette import Request
from gwsvcr.sim import knobs
from tests.fakeclock import FakeClock
from tests.simwire import run_on, simulator

CALL = gws.SEED_CALL_ID


def test_knobs_parse_or_say_what_is_wrong() -> None:
    parsed = knobs.parse(["StopCallRecording"], ["PauseCallRecording=Stopped"], ["StartCallRecording=300"],
                         ["ResumeCallRecording=503:1", "StopCallRecording=400"], True, ["PauseCallRecording"])
    assert parsed.drop_notification == {"StopCallRecording"}
    assert parsed.wrong_state == {"PauseCallRecording": "Stopped"}
    assert parsed.extra_delay == {"StartCallRecording": 0.3}
    assert parsed.refuse == {"ResumeCallRecording": knobs.Refusal(503, 1), "StopCallRecording": knobs.Refusal(400, 2)}
    assert parsed.new_call_ids
    assert parsed.forget_after == {"PauseCallRecording"}
    for bad, says in [({"drop_notification": ["Hold"]}, "unknown operation 'Hold'"),
                      ({"wrong_state": ["StopCallRecording"]}, "is not OP=STATE"),
                      ({"wrong_state": ["StopCallRecording=Off"]}, "unknown recordingState 'Off'"),
                      ({"extra_delay_ms": ["StopCallRecording=-5"]}, "negative"),
                      ({"refuse": ["StopCallRecording=ok"]}, "is not HTTP"),
                      ({"refuse": ["StopCallRecording=302"]}, "not an error"),
                      ({"forget_after": ["Reboot"]}, "forget-after: unknown operation 'Reboot'")]:
        with pytest.raises(ValueError, match=says):
            knobs.parse(**bad)  # type: ignore[arg-type]


def test_the_knobs_change_what_the_simulator_answers_and_pushes() -> None:
    clock = FakeClock()
    sim = simulator(clock, recording_state="Stopped", event_delay=0.01, knobs=knobs.parse(
        ["PauseCallRecording"], ["ResumeCallRecording=Stopped"], ["StartCallRecording=200"], ["StopCallRecording=503"]))
    auth = [("Authorization", "Basic " + base64.b64encode(b"agent1:secret").decode())]

    async def session() -> list[Any]:
        [shake] = (await sim.bayeux.handle([{"channel": HANDSHAKE, "version": "1.0"}], context="agent1")).replies
        await sim.bayeux.handle([{"channel": SUBSCRIBE, "clientId": shake["clientId"],
                                  "subscription": gws.CALLS_CHANNEL}])
        queue = sim.bayeux.sessions[shake["clientId"]].queue

        async def operate(operation: str) -> tuple[int, dict[str, object], list[str]]:
            request = Request(headers=auth, kind="json", body={"operationName": operation}, method="POST",
                              path=f"/api/v2/me/calls/{CALL}")
            reply = await sim.handle(request)
            await clock.advance(0.02)  # the usual event delay (10 ms) has passed
            pushed = [m["data"]["call"]["recordingState"] for m in queue]
            queue.clear()
            return reply.status, reply.body, pushed

        started = await operate("StartCallRecording")  # its event 200 ms later than the usual 10 ms
        await clock.advance(0.2)
        late = [m["data"]["call"]["recordingState"] for m in queue]
        queue.clear()
        return [started, late, await operate("PauseCallRecording"), await operate("ResumeCallRecording"),
                await operate("StopCallRecording")]

    started, late, paused, resumed, (status, body, pushed) = asyncio.run(run_on(clock, session()))
    assert started == (200, {"statusCode": 0}, [])
    assert late == ["Recording"]
    assert paused == (200, {"statusCode": 0}, [])  # dropped; the call is paused
    assert resumed == (200, {"statusCode": 0}, ["Stopped"])  # the wrong state
    assert (status, body["statusCode"], pushed) == (503, 2, [])
    assert sim.agent("agent1").calls[CALL]["recordingState"] == "Recording"  # refused: nothing changed


def test_a_forgetting_simulator_delivers_the_notification_then_meets_an_unknown_client() -> None:
    """As a node restart does: the held connect brings the notification; the next connect is told to handshake."""
    clock = FakeClock()
    sim = simulator(clock, knobs=knobs.Knobs(forget_after=frozenset({"StopCallRecording"})))
    auth = [("Authorization", "Basic " + base64.b64encode(b"agent1:secret").decode())]

    async def session() -> list[dict[str, Any]]:
        [shake] = (await sim.bayeux.handle([{"channel": HANDSHAKE, "version": "1.0"}], context="agent1")).replies
        client = shake["clientId"]
        await sim.bayeux.handle([{"channel": SUBSCRIBE, "clientId": client, "subscription": gws.CALLS_CHANNEL}])
        await sim.bayeux.handle([{"channel": CONNECT, "clientId": client, "id": "1"}])  # the first: answered at once
        held = asyncio.ensure_future(sim.bayeux.handle([{"channel": CONNECT, "clientId": client, "id": "2"}]))
        await sim.handle(Request(headers=auth, kind="json", body={"operationName": "StopCallRecording"},
                                 method="POST", path=f"/api/v2/me/calls/{CALL}"))
        carried = (await held).replies
        after = (await sim.bayeux.handle([{"channel": CONNECT, "clientId": client, "id": "3"}])).replies
        return [*carried, *after]

    event, carried, refused = asyncio.run(run_on(clock, session()))
    assert event["data"]["call"]["recordingState"] == "Stopped" and carried["successful"] is True
    assert (refused["successful"], refused["error"], refused["advice"]["reconnect"]) == (
        False, SESSION_UNKNOWN, "handshake")
