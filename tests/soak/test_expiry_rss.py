"""Over HTTP, with real time: rounds of 500 clients that log in, handshake, subscribe and vanish. After each
round their sessions expire (maxInterval = recorded advice.timeout + 30 s = 31 s here: a connect with their
clientId is answered 402::session_unknown) and the replayer's memory (VmRSS) comes back to where the first round
left it, while /__gwsvcr__/status keeps counting every request served.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gwsvcr.bayeux import SESSION_UNKNOWN
from gwsvcr.guard import TOKEN_HEADER
from gwsvcr.replay import STATUS_PATH
from tests.conftest import replay
from tests.procs import Proc
from tests.reliability.netutil import COMETD, basic, rss_kb
from tests.soak import longsession

FLEET = 500
ROUNDS = 4  # the first one warms up
ADVICE_TIMEOUT_MS = 1000
MAX_INTERVAL = ADVICE_TIMEOUT_MS / 1000 + 30  # the replay's session expiry: advice.timeout + 30 s
AUTH = {"Authorization": basic("agent1", "pw")}


async def vanish(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(base + "/api/v2/me", headers=AUTH) as r:
        assert r.status == 200
        headers = {**AUTH, "Cookie": r.headers["Set-Cookie"].split(";")[0]}

    async def bayeux(message: dict[str, Any]) -> dict[str, Any]:
        async with http.post(base + COMETD, json=[message], headers=headers) as r:
            [reply] = await r.json(content_type=None)
            return reply  # type: ignore[no-any-return]

    hs = await bayeux({"channel": "/meta/handshake", "version": "1.0", "id": "1",
                       "supportedConnectionTypes": ["long-polling"]})
    cid = hs["clientId"]
    await bayeux({"channel": "/meta/connect", "clientId": cid, "id": "2", "connectionType": "long-polling",
                  "advice": {"timeout": 0}})
    sub = await bayeux({"channel": "/meta/subscribe", "clientId": cid, "id": "3", "subscription": "/v2/me/calls"})
    assert sub["successful"], sub
    return str(cid)


async def connect_reply(http: aiohttp.ClientSession, base: str, cid: str) -> dict[str, Any]:
    async with http.post(base + COMETD, headers=AUTH, json=[{
            "channel": "/meta/connect", "clientId": cid, "id": "x", "connectionType": "long-polling",
            "advice": {"timeout": 0}}]) as r:
        [reply] = await r.json(content_type=None)
        return reply  # type: ignore[no-any-return]


async def expire(http: aiohttp.ClientSession, base: str, cids: list[str], last_seen: float) -> None:
    """Expiry is a matter of time: wait until maxInterval has passed since the last of them spoke, let a request
    that touches none of them run the sweep, then check that every session is gone (asking about a session
    that is gone does not bring it back)."""
    await asyncio.sleep(max(0.0, last_seen + MAX_INTERVAL + 1.5 - time.monotonic()))
    assert (await connect_reply(http, base, "not-a-client"))["error"] == SESSION_UNKNOWN
    for cid in (cids[0], cids[len(cids) // 2], cids[-1]):
        reply = await connect_reply(http, base, cid)
        assert reply.get("error") == SESSION_UNKNOWN, f"session {cid} still alive after maxInterval: {reply}"


async def status(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, Any]:
    async with http.get(base + STATUS_PATH, headers={TOKEN_HEADER: token}) as r:
        return await r.json()  # type: ignore[no-any-return]


async def rounds(server: Proc) -> list[dict[str, Any]]:
    out = []
    gate = asyncio.Semaphore(50)

    async def one(http: aiohttp.ClientSession) -> str:
        async with gate:
            return await vanish(http, server.url)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for r in range(ROUNDS):
            cids = await asyncio.gather(*(one(http) for _ in range(FLEET)))
            last_seen = time.monotonic()
            live_kb = rss_kb(server.popen.pid)
            await expire(http, server.url, list(cids), last_seen)
            counts = await status(http, server.url, server.token)
            out.append({"round": r + 1, "rss_live_kb": live_kb, "rss_expired_kb": rss_kb(server.popen.pid),
                        "served": counts["served"], "clients": counts["clients"]})
    return out


def test_vanished_sessions_expire_and_memory_comes_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short-timeout.yaml"
    longsession.write(path, 2, period=1.0, delay=0.1, advice_timeout_ms=ADVICE_TIMEOUT_MS)
    server = replay(path)
    try:
        figures = asyncio.run(rounds(server))
    finally:
        code = server.stop()
    with capsys.disabled():
        print("\ngwsvcr expiry soak: " + json.dumps(figures))
    assert code == 0 and "Traceback" not in server.stderr, server.stderr[-3000:]
    first, last = figures[1], figures[-1]  # after the warm-up round
    assert last["rss_expired_kb"] <= first["rss_expired_kb"] * 1.10, figures
    # every request went through the replay core; "clients" counts clients ever seen, not live sessions
    assert [f["served"] for f in figures] == [(r + 1) * (4 * FLEET + 4) for r in range(ROUNDS)], figures
