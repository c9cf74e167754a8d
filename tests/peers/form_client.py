"""Scripted GWS call-recording session over the Bayeux spec's form-encoded long-polling, written from the spec.

No maintained client sends it any more (older browser clients did): each request is a POST with
``Content-Type: application/x-www-form-urlencoded`` and the body ``message=<url-encoded JSON array>``; the server
answers with a JSON array. Same arguments and JSON-lines output as the other twins (aiocometd_client.py):

    python form_client.py --url http://127.0.0.1:PORT [--cometd-path /api/v2/notifications] [--call-id ID]
        [--ops StartCallRecording,...] [--user agent1] [--password secret] [--event-timeout-ms 10000]
        [--timeout-ms 60000] [--transport long-polling]

One /meta/connect is outstanding at a time (held by the server until an event or its timeout); subscribes and
operations go on other connections meanwhile, as the spec asks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import twin
from twin import CALLS_CHANNEL, SessionError, now, out


class FormBayeux:
    """The client side of Bayeux over form-encoded long-polling: ids, clientId, the connect loop."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        self.http, self.url, self.headers = http, url, headers
        self.client_id: str | None = None
        self.next_id = 0
        self.events: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()

    async def send(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        batch = []
        for m in messages:
            self.next_id += 1
            batch.append({**m, "id": str(self.next_id), **({"clientId": self.client_id} if self.client_id else {})})
        body = urlencode({"message": json.dumps(batch)})
        headers = {**self.headers, "Content-Type": "application/x-www-form-urlencoded"}
        async with self.http.post(self.url, data=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise SessionError(f"{[m['channel'] for m in batch]} answered HTTP {resp.status}: {text[:200]}")
        replies = json.loads(text)
        for reply in replies:
            if "data" in reply and not str(reply.get("channel")).startswith("/meta/"):
                self.events.put_nowait((reply, now()))
        return [r for r in replies if str(r.get("channel")).startswith("/meta/")]

    async def handshake(self) -> None:
        [reply] = await self.send({"channel": "/meta/handshake", "version": "1.0",
                                   "supportedConnectionTypes": ["long-polling"]})
        if not reply.get("successful"):
            raise SessionError(f"handshake failed: {reply}")
        self.client_id = reply["clientId"]

    async def connect_loop(self) -> None:
        while True:
            [reply] = await self.send({"channel": "/meta/connect", "connectionType": "long-polling"})
            if not reply.get("successful"):
                raise SessionError(f"connect failed: {reply}")


async def run_session(args: argparse.Namespace) -> None:
    url = args.url.rstrip("/")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()}
    timeout = args.event_timeout_ms / 1000
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(f"{url}/api/v2/me", headers=auth) as resp:
            if resp.status != 200:
                raise SessionError(f"GET /api/v2/me answered {resp.status}")
            cookie = "; ".join(c.split(";")[0] for c in resp.headers.getall("Set-Cookie", []))
            csrf = {resp.headers.get("X-CSRF-HEADER", "X-CSRF-TOKEN"): resp.headers["X-CSRF-TOKEN"]} \
                if "X-CSRF-TOKEN" in resp.headers else {}
        headers = {**auth, **({"Cookie": cookie} if cookie else {})}
        bayeux = FormBayeux(http, url + args.cometd_path, headers)
        await bayeux.handshake()
        out({"type": "handshake", "clientId": bayeux.client_id, "t": now()})
        [first] = await bayeux.send({"channel": "/meta/connect", "connectionType": "long-polling",
                                     "advice": {"timeout": 0}})
        [subscribed] = await bayeux.send({"channel": "/meta/subscribe", "subscription": CALLS_CHANNEL})
        if not (first.get("successful") and subscribed.get("successful")):
            raise SessionError(f"connect or subscribe failed: {first} {subscribed}")
        loop = asyncio.ensure_future(bayeux.connect_loop())
        try:
            for op in args.ops:
                async with http.post(f"{url}/api/v2/me/calls/{quote(args.call_id, safe='')}",
                                     json={"operationName": op}, headers={**headers, **csrf}) as resp:
                    body = await resp.json(content_type=None)
                    reply_t = now()
                    out({"type": "reply", "op": op, "status": resp.status, "body": body, "t": reply_t})
                    if resp.status != 200:
                        raise SessionError(f"{op} answered HTTP {resp.status}")
                while True:
                    waiting = asyncio.ensure_future(bayeux.events.get())
                    done, _ = await asyncio.wait([waiting, loop], timeout=timeout, return_when="FIRST_COMPLETED")
                    if waiting not in done:
                        waiting.cancel()
                        if loop in done:
                            loop.result()  # raises what ended the connect loop
                        raise SessionError(f"no {CALLS_CHANNEL} notification within {timeout:g} s after {op}")
                    message, t = waiting.result()
                    record, awaited = twin.event(message, op, t, reply_t, args.call_id)
                    out(record)
                    if awaited:
                        break
        finally:
            loop.cancel()
            with contextlib.suppress(aiohttp.ClientError, SessionError):
                await bayeux.send({"channel": "/meta/disconnect"})


def run(args: argparse.Namespace) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(args.timeout_ms / 1000):
            await run_session(args)

    asyncio.run(bounded())


if __name__ == "__main__":
    sys.exit(twin.main(run, __doc__.splitlines()[0]))
