"""The replay timeline on a fake clock: events fall due after the reply of their cause, never before; connects
are held as the protocol and the recording say. No sleeping: the test moves time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gwsvcr import cassette as cas
from gwsvcr.bayeux import BayeuxServer, ServerConfig
from gwsvcr.cassette import Request
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Schedule, Timeline, Timing
from tests.fakeclock import FakeClock
from tests.procs import ROOT

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
COMETD = "/api/v2/notifications"
AUTH = ("Authorization", "Basic YWdlbnQxOnNlY3JldA==")  # agent1:secret


def test_scale_and_instant() -> None:
    assert Timeline(speed=2.0).scale(0.5) == 0.25
    assert Timeline(timing=Timing.INSTANT).scale(0.5) == 0.0
    assert Timeline().scale(None) == 0.0
    with pytest.raises(ValueError, match="speed"):
        Timeline(speed=0)
    with pytest.raises(ValueError, match="recorded, instant"):
        Timing.parse("fast")


@pytest.mark.parametrize("alone,connected,queued,client_timeout,expected", [
    (True, True, False, None, 30.0),  # held until advice.timeout
    (False, True, False, None, 0.0),  # not alone in its request: answered at once
    (True, False, False, None, 0.0),  # the first connect after a handshake: at once
    (True, True, True, None, 0.0),  # something queued: at once
    (True, True, False, 0, 0.0),  # the client asked for timeout 0
])
def test_connect_hold_follows_the_protocol(alone: bool, connected: bool, queued: bool, client_timeout: Any,
                                           expected: float) -> None:
    held = Timeline().connect_hold(alone=alone, connected=connected, queued=queued, client_timeout=client_timeout,
                                   timeout=30.0)
    assert held == expected


def test_connect_hold_replays_a_recorded_empty_hold() -> None:
    timeline = Timeline(speed=2.0)
    hold = {"alone": True, "connected": True, "queued": False, "client_timeout": None, "timeout": 30.0}
    assert timeline.connect_hold(**hold, recorded=(4.0, False)) == 2.0  # ended empty after 4 s, at speed 2
    assert timeline.connect_hold(**hold, recorded=(4.0, True)) == 15.0  # it carried events: wait for them
    assert timeline.connect_hold(**hold, recorded=(99.0, False)) == 15.0  # never past advice.timeout
    assert Timeline(timing=Timing.INSTANT).connect_hold(**hold, recorded=(4.0, False)) == 30.0


async def test_schedule_releases_in_time_then_recorded_order() -> None:
    clock = FakeClock()
    released: list[str] = []
    late: list[float] = []

    def release(item: str, after: float) -> None:
        released.append(item)
        late.append(after)

    due = Schedule(clock, release)
    due.add(clock.now() + 0.3, "late", order=1)
    due.add(clock.now() + 0.1, "second", order=2)
    due.add(clock.now() + 0.1, "first", order=0)
    await clock.advance(0.099)
    assert released == []
    await clock.advance(0.001)
    assert released == ["first", "second"]
    await clock.advance(0.2)
    assert released == ["first", "second", "late"]
    assert late == [0.0, 0.0, 0.0]  # the fake clock's timer fires on time
    due.add(clock.now() + 0.1, "behind", order=3)
    due.add(clock.now() + 0.15, "further behind", order=4)
    clock.t += 0.25  # the process was busy: its timer fires only when the clock is past both items
    await clock.advance(0)
    assert released[3:] == ["behind", "further behind"]
    assert [round(x, 3) for x in late[3:]] == [0.15, 0.1]
    due.close()


async def test_held_connect_ends_on_the_fake_clock() -> None:
    clock = FakeClock()
    server: BayeuxServer[str] = BayeuxServer(config=ServerConfig(timeout_ms=5000), timeline=Timeline(clock))
    [hs] = (await server.handle([{"channel": "/meta/handshake", "id": "1", "version": "1.0"}], "c")).replies
    cid = hs["clientId"]
    connect = {"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling"}
    await server.handle([{**connect, "id": "2"}])
    held = asyncio.create_task(server.handle([{**connect, "id": "3"}]))
    await clock.advance(4.9)
    assert not held.done(), "held until advice.timeout"
    await clock.advance(0.2)
    assert held.done() and held.result().replies[-1]["successful"] is True


def _request(*messages: dict[str, Any], cookie: str | None = None) -> Request:
    headers = [AUTH, ("Content-Type", "application/json")] + ([("Cookie", f"JSESSIONID={cookie}")] if cookie else [])
    return Request(headers=headers, kind="messages", body=list(messages), method="POST", path=COMETD)


async def test_events_fall_due_after_the_client_got_their_cause() -> None:
    """The sample's notification comes 250 ms after StopCallRecording's reply: not one tick earlier, counted from
    the moment the transport says the client got that reply, however late the client sends it."""
    clock = FakeClock()
    cassette = cas.load(SAMPLE)
    core = Replayer(cassette, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock)
    stop = next(ex for ex in cassette.exchanges if ex.request.method == "POST" and ex.request.kind == "json")
    [event] = [item for ex in cassette.exchanges for item in ex.reply_items() if item.is_event]
    assert event.cause == stop.number and event.delay is not None

    hs = (await core.handle(_request({"channel": "/meta/handshake", "id": "1", "version": "1.0",
                                      "supportedConnectionTypes": ["long-polling"]}))).response
    assert hs is not None
    cid = hs.body[0]["clientId"]
    client = next(iter(core.by_cookie.values()))
    await core.handle(_request({"channel": "/meta/connect", "id": "2", "clientId": cid,
                                "connectionType": "long-polling"}, cookie=client.cookie))
    await core.handle(_request({"channel": "/meta/subscribe", "id": "3", "clientId": cid,
                                "subscription": "/v2/me/calls"}, cookie=client.cookie))
    poll = asyncio.create_task(core.handle(_request({"channel": "/meta/connect", "id": "4", "clientId": cid,
                                                     "connectionType": "long-polling"}, cookie=client.cookie)))
    await clock.advance(5.0)  # the client waits: nothing is released before its request
    assert not poll.done() and core.counters.events_released == 0

    post = Request(headers=[AUTH, ("Cookie", f"JSESSIONID={client.cookie}"), ("Content-Type", "application/json")],
                   kind="json", body=stop.request.body, method="POST", path=stop.request.path)
    answering = asyncio.create_task(core.handle(post))
    await clock.advance(stop.ttfb or 0.0)  # the recorded server latency
    served = await answering
    assert served.response is not None and served.response.status == 200 and served.delivered is not None
    await clock.advance(1.0)  # the reply is on its way, not yet delivered: the event's clock has not started
    assert core.counters.events_released == 0
    served.delivered(clock.now())
    await clock.advance(event.delay - 0.001)
    assert not poll.done(), "the event is not due yet"
    await clock.advance(0.002)
    assert poll.done(), "the held connect returns with the event when it falls due"
    replies = poll.result().response
    assert replies is not None and any(m.get("data") == event.message["data"] for m in replies.body)
    core.close()
