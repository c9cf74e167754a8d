"""Faults on demand (gwsvcr/replay/faults.py): the grammar, a spec that cannot strike named as an error, and each
fault on the fake clock, on a clean recording: where it strikes, what the client gets, what the status counts."""

from __future__ import annotations

import asyncio

import pytest

from gwsvcr.cassette import Cassette, Header, Request
from gwsvcr.replay import faults
from gwsvcr.replay.faults import FAULT_HEADER, FaultError
from tests.agent import (
    AUTH,
    COMETD,
    OLD,
    Agent,
    carrying,
    handshake,
    login,
    opened,
    replayer,
    replies,
    rest,
    started,
    subscribe,
)
from tests.fakeclock import FakeClock


def clean() -> Cassette:
    """Three operations (#5, #7, #9), each followed 250 ms later by its event (#6, #8, #10)."""
    return Cassette("clean.yaml", Header(), [
        login(), handshake(2, 0.1, "1", OLD), opened(3, 0.11, "2", OLD), subscribe(4, 0.12, "3", OLD),
        rest(5, 0.2, "StartCallRecording"), carrying(6, 0.13, "4", OLD, "Recording", 5),
        rest(7, 0.5, "PauseCallRecording"), carrying(8, 0.46, "5", OLD, "Paused", 7),
        rest(9, 0.8, "ResumeCallRecording"), carrying(10, 0.76, "6", OLD, "Recording", 9)])


@pytest.mark.parametrize("spec,fields", [
    ("unknown-client after op 2", {"kind": "unknown-client", "anchor": faults.Anchor("op", 2)}),
    ("unknown-client   after #7", {"anchor": faults.Anchor("exchange", 7), "spec": "unknown-client after #7"}),
    ("reconnect-none after StopCallRecording", {"anchor": faults.Anchor("name", "StopCallRecording")}),
    ("unknown-client after event 3", {"anchor": faults.Anchor("event", 3)}),
    ("drop-connect event 3", {"kind": "drop-connect", "event": 3}),
    ("delay event 2 by 1.5s", {"event": 2, "delay": 1.5}),
    ("delay event 2 by 250ms", {"delay": 0.25}),
    ("duplicate event 1", {"event": 1}),
    ("reset POST /api/v2/me/calls/*", {"method": "POST", "pattern": "/api/v2/me/calls/*", "times": None}),
    ("http 503 /meta/handshake times 2", {"status": 503, "method": None, "pattern": "/meta/handshake", "times": 2}),
])
def test_the_grammar(spec: str, fields: dict[str, object]) -> None:
    fault = faults.parse(spec)
    for name, value in fields.items():
        assert getattr(fault, name) == value, name


@pytest.mark.parametrize("spec,says", [
    ("", "an empty fault spec"),
    ("explode after op 1", "unknown fault 'explode'; the faults are unknown-client, reconnect-none"),
    ("unknown-client", "say where it strikes: after op N, after #N, after NAME or after event N"),
    ("unknown-client after op two", "an operation must be a number from 1, not 'two'"),
    ("unknown-client after op 0", "from 1, not '0'"),
    ("drop-connect 3", "name the event: event N"),
    ("delay event 2", "write delay event N by DURATION"),
    ("delay event 2 by soon", "'soon' is not a duration such as 500ms or 2s"),
    ("http POST /api/v2/me/calls/*", "http takes a status from 100 to 599 first"),
    ("http 503", "the target is METHOD PATH"),
    ("reset api/v2/me", "the target is METHOD PATH"),
    ("reset POST /api/v2/me times many", "times must be a number from 1"),
])
def test_a_bad_spec_is_an_error_naming_it(spec: str, says: str) -> None:
    with pytest.raises(FaultError) as e:
        faults.parse(spec)
    assert says in str(e.value) and (repr(spec) in str(e.value) or not spec)


@pytest.mark.parametrize("spec,says", [
    ("unknown-client after op 4", "no recorded session has that many operations (s1: 3)"),
    ("unknown-client after #6", "exchange #6 is not a request a client sends"),
    ("unknown-client after HoldCall", "no recorded request is named 'HoldCall' (recorded: PauseCallRecording, "
                                      "ResumeCallRecording, StartCallRecording)"),
    ("duplicate event 4", "no recorded session has that event (they have at most 3)"),
])
def test_a_spec_that_cannot_strike_in_this_cassette_is_an_error(spec: str, says: str) -> None:
    with pytest.raises(FaultError, match="fault '") as e:
        replayer(clean(), FakeClock(), faults=(spec,))
    assert says in str(e.value) and repr(spec) in str(e.value)


async def next_event(agent: Agent, wait: float = 0.25) -> list[str]:
    """The recordingStates the next connect carries, ``wait`` after it was sent."""
    poll = agent.poll()
    await agent.clock.advance(wait)
    return [m["data"]["call"]["recordingState"] for m in replies(await poll) if "data" in m]


@pytest.mark.parametrize("where", ["op 2", "#7", "PauseCallRecording"])
async def test_unknown_client_ends_the_session_when_the_client_gets_the_reply(where: str) -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=(f"unknown-client after {where}",))
    await agent.operation("StartCallRecording")
    assert await next_event(agent) == ["Recording"]
    poll = agent.poll()
    await clock.advance(0.1)
    assert not poll.done()
    await agent.operation("PauseCallRecording")
    [failed] = replies(await poll)  # at once: the held connect
    assert failed["error"] == "402::session_unknown" and failed["advice"] == {"reconnect": "handshake", "interval": 0}
    await agent.handshake()  # recovery: the recorded handshake and subscribe again
    assert await next_event(agent) == ["Paused"], "operation 2's event comes on the new session"
    core = agent.core
    assert core.status()["faults_injected"] == 1 and core.status()["faults"] == [
        {"spec": f"unknown-client after {where}", "applied": 1}]
    assert not core.failed and "1 faults injected" in core.summary()
    core.close()


async def test_reconnect_none_tells_the_client_to_stop() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("reconnect-none after op 1",))
    poll = agent.poll()
    await agent.operation("StartCallRecording")
    [failed] = replies(await poll)
    assert failed["successful"] is False and failed["advice"]["reconnect"] == "none"
    assert agent.client_id not in agent.core.bayeux.sessions
    agent.core.close()


async def test_unknown_client_after_an_event_fails_the_connect_after_the_one_that_carried_it() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("unknown-client after event 1",))
    await agent.operation("StartCallRecording")
    assert await next_event(agent) == ["Recording"]
    [failed] = replies(await agent.poll())  # at once
    assert failed["error"] == "402::session_unknown"
    agent.core.close()


async def test_drop_connect_cuts_the_connect_that_would_carry_the_event_and_the_next_gets_it() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("drop-connect event 2",))
    await agent.operation("StartCallRecording")
    assert await next_event(agent) == ["Recording"]
    poll = agent.poll()
    await agent.operation("PauseCallRecording")
    await clock.advance(0.25)
    dropped = await poll
    assert dropped.response is None and dropped.cut == "fault: drop-connect event 2"
    assert await next_event(agent, 0) == ["Paused"], "the event comes on the next connect, at once"
    await agent.operation("ResumeCallRecording")
    assert await next_event(agent) == ["Recording"]
    assert agent.core.status()["faults_injected"] == 1
    agent.core.close()


async def test_delay_makes_the_event_that_much_later() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("delay event 1 by 1.5s",))
    await agent.operation("StartCallRecording")
    poll = agent.poll()
    await clock.advance(1.749)
    assert not poll.done()
    await clock.advance(0.002)
    assert [m["data"]["call"]["recordingState"] for m in replies(await poll) if "data" in m] == ["Recording"]
    agent.core.close()


async def test_duplicate_delivers_the_event_twice() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("duplicate event 1",))
    await agent.operation("StartCallRecording")
    assert await next_event(agent) == ["Recording", "Recording"]
    await agent.operation("PauseCallRecording")
    assert await next_event(agent) == ["Paused"]
    agent.core.close()


async def test_reset_and_http_strike_the_matching_requests_as_many_times_as_said() -> None:
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("reset POST /api/v2/me/calls/* times 1",
                                                   "http 503 /meta/subscribe"))
    cut = await agent.operation("StartCallRecording")
    assert cut.response is None and cut.cut == "fault: reset POST /api/v2/me/calls/* times 1"
    assert 5 in agent.core.unused(), "a request a fault answered takes nothing from the recording"
    again = await agent.operation("StartCallRecording")
    assert again.response is not None and again.response.status == 200
    refused = await agent.send(agent.request({"channel": "/meta/subscribe", "id": "s", "clientId": agent.client_id,
                                              "subscription": "/v2/me/calls"}))
    assert refused.response is not None and refused.response.status == 503
    assert refused.response.header(FAULT_HEADER) == "http 503 /meta/subscribe"
    assert agent.core.status()["faults"] == [{"spec": "reset POST /api/v2/me/calls/* times 1", "applied": 1},
                                             {"spec": "http 503 /meta/subscribe", "applied": 2}]
    agent.core.close()


async def test_over_a_websocket_a_channel_fault_closes_the_socket_and_a_request_fault_does_not_apply() -> None:
    clock = FakeClock()
    core = replayer(clean(), clock, faults=("reset /meta/subscribe times 1", "reset GET /api/v2/notifications"))
    upgrade = Request(headers=[AUTH], method="GET", path=COMETD)
    [hs] = (await core.bayeux_replies(upgrade, [{"channel": "/meta/handshake", "id": "1", "version": "1.0"}])).replies
    assert hs["successful"] is True
    frame = await core.bayeux_replies(upgrade, [{"channel": "/meta/subscribe", "id": "2", "clientId": hs["clientId"],
                                                 "subscription": "/v2/me/calls"}])
    assert frame.cut == "fault: reset /meta/subscribe times 1" and frame.replies == []
    assert core.failed and core.unapplied_faults() == ["reset GET /api/v2/notifications"]
    assert "gwsvcr: faults that never struck: reset GET /api/v2/notifications" in core.summary()
    core.close()


async def test_each_client_meets_the_session_faults_of_its_own_copy() -> None:
    clock = FakeClock()
    core = replayer(clean(), clock, faults=("duplicate event 1",))
    agents = [Agent(core, clock) for _ in range(2)]
    for agent in agents:
        await agent.login()
        await agent.handshake()
        await agent.operation("StartCallRecording")
    polls = [agent.poll() for agent in agents]
    await clock.advance(0.25)
    for poll in polls:
        assert len([m for m in replies(await poll) if "data" in m]) == 2
    assert core.status()["faults"] == [{"spec": "duplicate event 1", "applied": 2}]
    core.close()


def test_check_is_what_the_option_surfaces_call() -> None:
    faults.check(["duplicate event 1", "http 503 /meta/connect times 1"])
    with pytest.raises(ValueError, match="unknown fault 'boom'"):
        faults.check(["duplicate event 1", "boom"])


async def test_faults_take_no_time_of_their_own() -> None:
    """A session-ending fault strikes when the client got the reply, not a recorded delay later."""
    clock = FakeClock()
    agent = await started(clean(), clock, faults=("unknown-client after op 1",))
    poll = agent.poll()
    await asyncio.sleep(0)
    await agent.operation("StartCallRecording")
    await clock.settle()
    assert poll.done()
    agent.core.close()
