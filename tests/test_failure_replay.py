"""Recorded failures replay as they happened, on the fake clock: a connect that failed falls due at its recorded
time after its cause, ends the session when it did, and the client's recovery takes the recorded handshake and
subscribes; HTTP errors and resets replay in kind; a replay whose recorded recovery went unused fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gwsvcr.bayeux import BayeuxServer, Failure, ServerConfig, ends_session, unknown_client
from gwsvcr.cassette import Cassette, Exchange, Header, ReplyItem, Request, Response
from gwsvcr.record.recording import Recorder, WebSocketRecording
from gwsvcr.record.redact import Redactor
from gwsvcr.replay.script import build_scripts
from gwsvcr.timeline import Timeline
from tests.agent import (
    AUTH,
    CALL,
    COMETD,
    NEW,
    OLD,
    Agent,
    bayeux,
    carrying,
    connect,
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

FORGOTTEN = {"channel": "/meta/connect", "successful": False, "error": f"401:{OLD}:Unknown client",
             "advice": {"reconnect": "handshake"}}

# ------------------------------------------------------------------------------------------ the Bayeux core


async def test_a_failure_answers_the_held_connect_and_ends_the_session() -> None:
    clock = FakeClock()
    server: BayeuxServer[str] = BayeuxServer(config=ServerConfig(timeout_ms=30_000), timeline=Timeline(clock))
    [hs] = (await server.handle([{"channel": "/meta/handshake", "id": "1", "version": "1.0"}], "c")).replies
    cid = hs["clientId"]
    connect = {"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling"}
    await server.handle([{**connect, "id": "2"}])
    held = asyncio.create_task(server.handle([{**connect, "id": "3"}]))
    await clock.advance(1.0)
    session = server.sessions[cid]
    session.deliver({"channel": "/x", "data": 1})  # woke it: goes out with it
    await clock.advance(0)
    assert [m.get("data") for m in held.result().replies] == [1, None]
    held = asyncio.create_task(server.handle([{**connect, "id": "4"}]))
    await clock.advance(1.0)
    session.deliver({"channel": "/x", "data": 2})
    session.fail(Failure(unknown_client(), ends=True, source=8))
    await clock.advance(0)
    handled = held.result()
    assert handled.replies == [{"channel": "/meta/connect", "id": "4", **unknown_client()}]
    assert handled.sources == [8]
    assert cid not in server.sessions and session.ended
    assert session.queue == [{"channel": "/x", "data": 2}], "the event waits for whatever comes next"
    [again] = (await server.handle([{**connect, "id": "5"}])).replies
    assert again["error"] == "402::session_unknown"


async def test_a_failure_after_queued_events_answers_the_connect_after_them() -> None:
    clock = FakeClock()
    server: BayeuxServer[str] = BayeuxServer(timeline=Timeline(clock))
    [hs] = (await server.handle([{"channel": "/meta/handshake", "id": "1", "version": "1.0"}], "c")).replies
    connect = {"channel": "/meta/connect", "clientId": hs["clientId"], "connectionType": "long-polling"}
    await server.handle([{**connect, "id": "2"}])
    held = asyncio.create_task(server.handle([{**connect, "id": "3"}]))
    await clock.advance(0.5)
    server.sessions[hs["clientId"]].deliver({"channel": "/x", "data": 1})
    server.sessions[hs["clientId"]].fail(Failure(unknown_client(), ends=True, after_queued=True))
    await clock.advance(0)
    assert held.result().replies[-1]["successful"] is True and held.result().replies[0]["data"] == 1
    [failed] = (await server.handle([{**connect, "id": "4"}])).replies  # at once: not held
    assert failed["error"] == "402::session_unknown"


async def test_a_failure_that_is_not_bayeux_is_handed_back_and_keeps_the_session() -> None:
    server: BayeuxServer[str] = BayeuxServer()
    [hs] = (await server.handle([{"channel": "/meta/handshake", "id": "1", "version": "1.0"}], "c")).replies
    server.sessions[hs["clientId"]].fail(Failure(instead="reset"))
    handled = await server.handle([{"channel": "/meta/connect", "clientId": hs["clientId"], "id": "2",
                                    "connectionType": "long-polling"}])
    assert handled.instead == "reset" and hs["clientId"] in server.sessions


@pytest.mark.parametrize("reply,ends", [
    (FORGOTTEN, True),  # Faye
    ({"successful": False, "error": "402::session_unknown", "advice": {"reconnect": "handshake"}}, True),
    ({"successful": False, "error": "402::Unknown Client ID"}, True),  # the spec's example, no advice
    ({"successful": True, "advice": {"reconnect": "none"}}, True),
    ({"successful": False, "error": "500::busy", "advice": {"reconnect": "retry"}}, False),
    ({"successful": True, "advice": {"reconnect": "retry", "timeout": 30000}}, False),
])
def test_which_replies_end_a_session(reply: dict[str, Any], ends: bool) -> None:
    assert ends_session(reply) is ends


# ------------------------------------------------------------------------------------------ a recorded failure


def forgotten_session(*, failed_connect: Exchange | None = None) -> Cassette:
    """A Faye node forgets the client 100 ms after the reply of operation 2 (#7): the held connect #8 is answered
    401 Unknown client; the client handshakes (#9) and subscribes (#10) again; operation 3 (#11)'s event comes on
    the new session. ``failed_connect`` replaces #8 (an HTTP failure instead)."""
    exchanges = [
        login(), handshake(2, 0.10, "1", OLD), opened(3, 0.11, "2", OLD),
        subscribe(4, 0.12, "3", OLD), rest(5, 0.20, "StartCallRecording"), carrying(6, 0.13, "4", OLD, "Recording", 5),
        rest(7, 0.50, "PauseCallRecording"),
        failed_connect or bayeux(8, 0.46, [connect("5", OLD)], [ReplyItem({**FORGOTTEN, "id": "5"}, hold=0.143)],
                                 0.143),
        handshake(9, 0.61, "6", NEW), subscribe(10, 0.62, "7", NEW), rest(11, 0.70, "ResumeCallRecording"),
        carrying(12, 0.63, "8", NEW, "Recording", 11),
    ]
    return Cassette("forgotten.yaml", Header(), exchanges)



async def test_the_forgotten_client_fails_at_its_recorded_time_and_recovers_on_the_recorded_exchanges() -> None:
    clock = FakeClock()
    agent = await started(forgotten_session(), clock)
    core = agent.core
    first = agent.client_id
    await agent.operation("StartCallRecording")
    poll = agent.poll()
    await clock.advance(0.25)
    assert replies(await poll)[0]["data"]["call"]["recordingState"] == "Recording"
    poll = agent.poll()
    await agent.operation("PauseCallRecording")
    # recorded: #8 answered 0.46 + 0.143 = 0.603, #7's reply completed 0.503: 100 ms after it
    await clock.advance(0.099)
    assert not poll.done(), "not before its recorded time after its cause"
    await clock.advance(0.002)
    [failed] = replies(await poll)
    assert failed == {"channel": "/meta/connect", "id": failed["id"], "successful": False,
                      "error": f"401:{first}:Unknown client", "advice": {"reconnect": "handshake"}}
    assert first not in core.bayeux.sessions, "the session is over"
    [stale] = await agent.connect(first)
    assert stale["error"] == "402::session_unknown"

    await agent.handshake()  # the recovery: the same replay client, a new clientId
    assert agent.client_id != first and agent.live is core.by_cookie[agent.cookie]
    poll = agent.poll()
    await agent.operation("ResumeCallRecording")
    await clock.advance(0.25)
    [later, reply] = replies(await poll)
    assert later["data"]["call"]["recordingState"] == "Recording" and reply["clientId"] == agent.client_id
    assert core.unused() == [] and core.unused_recovery() == {} and not core.failed
    status = core.status()
    assert status["failures_replayed"] == 1 and status["events_released"] == 2 and status["clients"] == 1
    assert "1 recorded failures replayed" in core.summary()
    core.close()


async def test_events_due_before_the_resubscribe_wait_for_it() -> None:
    """A server does not send a new session events of channels it did not subscribe to yet."""
    clock = FakeClock()
    agent = await started(forgotten_session(), clock)
    core = agent.core
    await agent.operation("StartCallRecording")
    await clock.advance(0.25)
    await agent.operation("PauseCallRecording")
    await clock.advance(0.2)  # the failure is due; no connect outstanding: the next gets it
    [failed] = await agent.connect()
    assert failed["successful"] is False
    await agent.operation("ResumeCallRecording")  # sent before the client handshook again
    await clock.advance(0.3)  # its event is due
    [hs] = await agent.bayeux({"channel": "/meta/handshake", "version": "1.0"})
    [first] = await agent.connect(hs["clientId"])
    assert "data" not in first, "not subscribed yet: the event waits"
    agent.client_id = hs["clientId"]
    await agent.bayeux({"channel": "/meta/subscribe", "clientId": hs["clientId"], "subscription": "/v2/me/calls"})
    came = await agent.connect(hs["clientId"])
    assert [m["data"]["call"]["recordingState"] for m in came if "data" in m] == ["Recording", "Recording"]
    core.close()


async def test_a_client_that_does_not_recover_fails_a_strict_replay_naming_what_went_unused() -> None:
    clock = FakeClock()
    agent = await started(forgotten_session(), clock)
    core = agent.core
    await agent.operation("StartCallRecording")
    await clock.advance(0.25)
    assert core.unused_recovery() == {8: f"/meta/connect failed: 401:{OLD}:Unknown client", 9: "/meta/handshake",
                                      10: "/meta/subscribe /v2/me/calls"}
    assert core.failed
    assert ("the recorded failure and recovery did not replay: #8 /meta/connect failed: "
            f"401:{OLD}:Unknown client; #9 /meta/handshake; #10 /meta/subscribe /v2/me/calls never used"
            in core.summary())
    lenient = replayer(forgotten_session(), clock, strict=False)
    assert not lenient.failed, "lenient replay reports it, does not fail on it"
    core.close()
    lenient.close()


@pytest.mark.parametrize("answer,expect", [
    (Response(headers=[("Content-Type", "text/html")], kind="text", body="<h1>503</h1>", status=503), 503),
    (None, "cut"),
])
async def test_a_connect_the_server_failed_at_the_http_level_fails_at_its_time(answer: Response | None,
                                                                              expect: int | str) -> None:
    """A held connect cut by the server (a 503 page from a gateway, a reset) replays in kind at its recorded time
    from its cause; the session goes on (the client connects again)."""
    failed = Exchange(8, "s1", 0.46, Request(headers=[AUTH], kind="messages", body=[connect("5", OLD)],
                                             method="POST", path=COMETD),
                      answer, 0.143 if answer else None, 0.143,
                      None if answer else "upstream http://gws/api/v2/notifications failed: server closed connection",
                      transport="long-polling")
    clock = FakeClock()
    agent = await started(forgotten_session(failed_connect=failed), clock)
    core = agent.core
    await agent.operation("StartCallRecording")
    await clock.advance(0.25)
    assert "data" in (await agent.connect())[0]
    poll = agent.poll()
    await agent.operation("PauseCallRecording")
    await clock.advance(0.099)
    assert not poll.done()
    await clock.advance(0.002)
    served = await poll
    if expect == "cut":
        assert served.response is None and served.cut == f"recorded: {failed.error}"
    else:
        assert served.response is not None and served.response.status == expect
        assert served.response.body == "<h1>503</h1>"
    assert agent.client_id in core.bayeux.sessions, "an HTTP failure does not end the CometD session"
    assert core.status()["failures_replayed"] == 1 and 8 not in core.unused()
    core.close()


@pytest.mark.parametrize("error,expect", [
    ("upstream http://gws/api/v2/me/calls/X failed: peer closed connection without sending complete message body",
     "cut"),
    ("client gone before the reply (Client disconnected.)", "cut"),  # the server stalled until the client left
    ("upstream https://gws/api/v2/me/calls/X failed: Certificate verify failed: unable to get local issuer", 502),
])
async def test_a_rest_request_the_upstream_never_answered_replays_in_kind(error: str, expect: int | str) -> None:
    clock = FakeClock()
    cassette = Cassette("reset.yaml", Header(), [rest(1, 0.0, "StopCallRecording", ttfb=0.04, error=error),
                                                 rest(2, 0.3, "StopCallRecording")])
    core = replayer(cassette, clock)
    agent = Agent(core, clock)
    answering = asyncio.ensure_future(agent.send(agent.request(method="POST", path=CALL, kind="json",
                                                               body={"operationName": "StopCallRecording"})))
    await clock.advance(0.039)
    assert not answering.done(), "at its recorded time"
    await clock.advance(0.002)
    served = await answering
    if expect == "cut":
        assert served.response is None and served.cut == f"recorded: {error}"
    else:
        assert served.response is not None and served.response.status == 502 and error in str(served.response.body)
    retried = await agent.operation("StopCallRecording")  # the client's retry takes the next recorded answer
    assert retried.response is not None and retried.response.status == 200
    assert core.status()["failures_replayed"] == 1
    core.close()


@pytest.mark.parametrize("by_client,error,failure", [
    (True, "client gone before the reply (it closed the WebSocket, code 1000)", False),
    (False, "upstream closed the WebSocket before the reply (code 1006)", True),
    (None, "WebSocket closed before the reply", False),  # who closed it is not known: not taken for a failure
])
def test_a_websocket_the_server_closed_mid_session_is_a_failure_one_the_client_closed_is_not(
        by_client: bool | None, error: str, failure: bool) -> None:
    recorder = Recorder(None, Redactor(), 0.0)
    socket = WebSocketRecording(recorder, Request(headers=[AUTH], method="GET", path=COMETD))
    written: list[Exchange] = []
    recorder.on_exchange = written.append
    socket.client_frame([{"channel": "/meta/handshake", "id": "1", "version": "1.0"}], 0.1)
    socket.server_frame([{"channel": "/meta/handshake", "id": "1", "successful": True, "clientId": OLD}], 0.11)
    socket.client_frame([connect("2", OLD)], 0.2)
    socket.close(1.0, by_client, None if by_client is None else 1000 if by_client else 1006)
    held = written[-1]
    assert held.error == error
    [script] = build_scripts(Cassette("ws.yaml", Header(), written))
    assert [f.exchange.number for f in script.timeline_failures()] == ([held.number] if failure else [])


async def test_a_recorded_disconnect_failure_replays_as_recorded() -> None:
    refused = {"channel": "/meta/disconnect", "id": "9", "successful": False, "error": "402::session_unknown"}
    cassette = Cassette("bye.yaml", Header(), [
        login(), handshake(2, 0.1, "1", OLD), opened(3, 0.11, "2", OLD), subscribe(4, 0.12, "3", OLD),
        bayeux(5, 0.2, [{"channel": "/meta/disconnect", "id": "9", "clientId": OLD}], [ReplyItem(refused)])])
    clock = FakeClock()
    agent = await started(cassette, clock)
    [bye] = await agent.bayeux({"channel": "/meta/disconnect", "clientId": agent.client_id})
    assert (bye["successful"], bye["error"]) == (False, "402::session_unknown")
    assert agent.client_id not in agent.core.bayeux.sessions, "the session ends either way"
    assert agent.core.status()["failures_replayed"] == 1
    agent.core.close()
