"""The Bayeux server core, driven directly (no HTTP): how replies are rewritten (ids echoed, clientId,
negotiation, 402 for an unknown client) and the long-poll rules (when a connect is held, queues, one held connect
per client)."""

from __future__ import annotations

import asyncio

import pytest

from gwsvcr.bayeux import SESSION_UNKNOWN, BayeuxServer, Message, ServerConfig, channel_matches, is_bayeux
from gwsvcr.timeline import Timeline
from tests.fakeclock import FakeClock

HS = {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"], "id": "a1"}


async def ask(server: BayeuxServer[str], messages: list[Message]) -> list[Message]:
    """The replies to one request; a handshake in it starts a session of the client "test"."""
    return (await server.handle(messages, "test")).replies


async def connected(server: BayeuxServer, *subscriptions: str) -> str:
    [reply] = await ask(server, [HS])
    cid = reply["clientId"]
    await ask(server, [{"channel": "/meta/connect", "clientId": cid, "id": "c0", "connectionType": "long-polling",
                          "advice": {"timeout": 0}}])
    for sub in subscriptions:
        await ask(server, [{"channel": "/meta/subscribe", "clientId": cid, "subscription": sub, "id": "s"}])
    return cid


def connect(cid: str, id_: str = "c1") -> dict:
    return {"channel": "/meta/connect", "clientId": cid, "id": id_, "connectionType": "long-polling"}


async def test_handshake_issues_client_id_and_echoes_id() -> None:
    server = BayeuxServer()
    [reply] = await ask(server, [HS])
    assert reply["successful"] is True and reply["id"] == "a1"
    assert reply["clientId"] in server.sessions
    assert reply["supportedConnectionTypes"] == ["long-polling"]


async def test_handshake_without_common_transport_fails() -> None:
    [reply] = await ask(BayeuxServer(), [{**HS, "supportedConnectionTypes": ["flash"]}])
    assert reply["successful"] is False and "clientId" not in reply


async def test_first_connect_answers_at_once_then_held_until_event() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=5000))
    cid = await connected(server, "/v2/me/calls")
    held = asyncio.create_task(ask(server, [connect(cid)]))
    await asyncio.sleep(0)
    assert not held.done(), "a lone connect of a connected session is held"
    assert server.publish("/v2/me/calls", {"n": 1}) == 1
    event, reply = await asyncio.wait_for(held, 1)
    assert event == {"channel": "/v2/me/calls", "data": {"n": 1}}
    assert reply["id"] == "c1" and reply["successful"] is True


async def test_held_connect_times_out_empty() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=50))
    cid = await connected(server)
    [reply] = await asyncio.wait_for(ask(server, [connect(cid)]), 2)
    assert reply["successful"] is True and reply["advice"]["timeout"] == 50


async def test_connect_in_a_batch_or_with_queue_is_not_held() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    cid = await connected(server, "/a")
    sub = {"channel": "/meta/subscribe", "clientId": cid, "subscription": "/b", "id": "9"}
    replies = await asyncio.wait_for(ask(server, [sub, connect(cid)]), 1)
    assert [r["channel"] for r in replies] == ["/meta/subscribe", "/meta/connect"]
    server.publish("/a", 1)
    replies = await asyncio.wait_for(ask(server, [connect(cid, "c2")]), 1)
    assert replies[0]["data"] == 1 and replies[-1]["id"] == "c2"


async def test_events_due_between_connects_wait_for_the_next() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    cid = await connected(server, "/a")
    server.publish("/a", 1)
    server.publish("/a", 2)
    replies = await asyncio.wait_for(ask(server, [connect(cid)]), 1)
    assert [r.get("data") for r in replies] == [1, 2, None]


async def test_other_requests_never_wait_behind_a_held_connect() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    cid = await connected(server)
    held = asyncio.create_task(ask(server, [connect(cid)]))
    await asyncio.sleep(0)
    [sub] = await asyncio.wait_for(ask(server, [{"channel": "/meta/subscribe", "clientId": cid,
                                                   "subscription": "/x", "id": "7"}]), 1)
    assert sub["successful"] and not held.done()
    held.cancel()


async def test_second_connect_answers_the_first() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    cid = await connected(server, "/a")
    first = asyncio.create_task(ask(server, [connect(cid, "c1")]))
    await asyncio.sleep(0)
    second = asyncio.create_task(ask(server, [connect(cid, "c2")]))
    [reply] = await asyncio.wait_for(first, 1)
    assert reply["id"] == "c1"
    await asyncio.sleep(0)
    assert not second.done() and server.sessions[cid].held, "the second connect is held once the first answered"
    assert server.publish("/a", 1) == 1
    event, reply = await asyncio.wait_for(second, 1)
    assert event["data"] == 1 and reply["id"] == "c2", "an event wakes the connect held now"


async def test_unknown_client_gets_402_with_handshake_advice() -> None:
    [reply] = await ask(BayeuxServer(), [connect("nobody", "5")])
    assert reply["error"] == SESSION_UNKNOWN and reply["id"] == "5"
    assert reply["advice"] == {"reconnect": "handshake", "interval": 0}


async def test_disconnect_releases_held_connect_and_ends_session() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    cid = await connected(server)
    held = asyncio.create_task(ask(server, [connect(cid)]))
    await asyncio.sleep(0)
    [bye] = await ask(server, [{"channel": "/meta/disconnect", "clientId": cid, "id": "d"}])
    assert bye["successful"] and cid not in server.sessions
    [reply] = await asyncio.wait_for(held, 1)
    assert reply["error"] == SESSION_UNKNOWN


async def test_ack_extension_resends_unconfirmed_events() -> None:
    server = BayeuxServer(config=ServerConfig(timeout_ms=60_000))
    [hs] = await ask(server, [{**HS, "ext": {"ack": True}}])
    assert hs["ext"]["ack"] is True
    cid = hs["clientId"]
    await ask(server, [{"channel": "/meta/subscribe", "clientId": cid, "subscription": "/a", "id": "s"}])
    server.publish("/a", "lost")
    first = await ask(server, [{**connect(cid), "ext": {"ack": -1}}])
    assert first[0]["data"] == "lost" and first[-1]["ext"]["ack"] == 1
    # the client never saw batch 1 (its connection dropped): it acks 0, the event comes again
    again = await ask(server, [{**connect(cid, "c2"), "ext": {"ack": 0}}])
    assert again[0]["data"] == "lost"
    server.publish("/a", "next")
    after = await ask(server, [{**connect(cid, "c3"), "ext": {"ack": again[-1]["ext"]["ack"]}}])
    assert [m.get("data") for m in after] == ["next", None]


async def test_sessions_without_connect_expire() -> None:
    clock = FakeClock()
    server: BayeuxServer[str] = BayeuxServer(config=ServerConfig(max_interval_ms=1000), timeline=Timeline(clock))
    cid = await connected(server)
    clock.t += 5.0
    assert [s.client_id for s in server.expire()] == [cid] and not server.sessions


async def test_timesync_round_trip() -> None:
    [reply] = await ask(BayeuxServer(), [{**HS, "ext": {"timesync": {"tc": 123, "l": 0, "o": 0}}}])
    assert reply["ext"]["timesync"]["tc"] == 123 and reply["ext"]["timesync"]["p"] == 0


@pytest.mark.parametrize("pattern,channel,ok", [
    ("/v2/me/calls", "/v2/me/calls", True), ("/v2/me/*", "/v2/me/calls", True), ("/v2/*", "/v2/me/calls", False),
    ("/v2/**", "/v2/me/calls", True), ("/v2/me/calls", "/v2/me/devices", False)])
def test_channel_globbing(pattern: str, channel: str, ok: bool) -> None:
    assert channel_matches(pattern, channel) is ok


def test_bayeux_detection() -> None:
    assert is_bayeux([{"channel": "/meta/connect"}])
    assert not is_bayeux([]) and not is_bayeux({"channel": "/a"}) and not is_bayeux([{"id": 1}])


async def test_one_handshake_per_request() -> None:
    server = BayeuxServer()
    replies = await ask(server, [HS, {**HS, "id": "a2"}, {**HS, "id": "a3"}])
    assert [r["successful"] for r in replies] == [True, False, False] and len(server.sessions) == 1


async def test_subscribe_and_unsubscribe_one_channel_or_several() -> None:
    server = BayeuxServer()
    cid = await connected(server, "/v2/me/calls", "/v2/me/calls")  # twice: subscribed once
    session = server.sessions[cid]
    assert session.subscriptions == ("/v2/me/calls",)
    several = ["/a/*", "/b", "/a/*"]
    [reply] = await ask(server, [{"channel": "/meta/subscribe", "clientId": cid, "subscription": several}])
    assert reply["successful"] and reply["subscription"] == several  # as asked
    assert session.subscriptions == ("/v2/me/calls", "/a/*", "/b") and session.subscribed("/a/x")
    [reply] = await ask(server, [{"channel": "/meta/unsubscribe", "clientId": cid, "subscription": ["/a/*", "/c"]}])
    assert reply["successful"] and reply["subscription"] == ["/a/*", "/c"]
    assert session.subscriptions == ("/v2/me/calls", "/b") and not session.subscribed("/a/x")
    assert server.publish("/b", {"n": 1}) == 1 and server.publish("/a/x", {"n": 2}) == 0
