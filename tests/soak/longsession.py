"""A long recorded GWS session, written with the cassette writer: one agent that logs in, opens CometD and then
stops and starts recording over and over, each operation followed by its notification ``delay`` later.

Every notification carries ``seq`` (the operation's number), so a client can tell a lost or duplicated event.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from gwsvcr import gws
from gwsvcr.cassette import CassetteWriter, Exchange, ReplyItem, Request, Response

CALL_PATH = f"/api/v2/me/calls/{gws.SEED_CALL_ID}"
AUTH = ("Authorization", "Basic " + base64.b64encode(b"agent1:REDACTED-000000000000").decode())
JSON = ("Content-Type", "application/json;charset=UTF-8")
RECORDED_CLIENT_ID = "0123456789abcdef0123456789"


def operation(seq: int) -> str:
    return "StopCallRecording" if seq % 2 else "StartCallRecording"


def _bayeux(message: dict[str, Any]) -> Request:
    return Request(headers=[AUTH, ("Content-Type", "application/json")], kind="messages", body=[message],
                   method="POST", path=gws.COMETD_PATH)


def _replies(*items: ReplyItem) -> Response:
    return Response(headers=[JSON], kind="messages", body=list(items), status=200)


def write(path: Path, operations: int, *, period: float, delay: float, advice_timeout_ms: int = 30_000) -> None:
    """``operations`` operations ``period`` seconds apart, each notification ``delay`` after its reply."""
    writer = CassetteWriter(path, upstream="http://gws.example:8080")
    advice = {"reconnect": "retry", "interval": 0, "timeout": advice_timeout_ms}
    cid = RECORDED_CLIENT_ID
    n = 0

    def add(start: float, request: Request, response: Response, ttfb: float, transport: str = "http") -> int:
        nonlocal n
        n += 1
        writer.write(Exchange(n, "s1", start, request, response, ttfb, ttfb + 0.0005, transport=transport))
        return n

    add(0.0, Request(headers=[AUTH], method="GET", path="/api/v2/me"),
        Response(headers=[JSON, ("Set-Cookie", "JSESSIONID=REDACTED-111111111111; Path=/; HttpOnly")],
                 kind="json", body={"statusCode": 0, "user": {"userName": "agent1"}}, status=200), 0.002)
    add(0.01, _bayeux({"channel": "/meta/handshake", "version": "1.0", "id": "1",
                       "supportedConnectionTypes": ["long-polling"]}),
        _replies(ReplyItem({"channel": "/meta/handshake", "id": "1", "successful": True, "version": "1.0",
                            "supportedConnectionTypes": ["long-polling"], "clientId": cid, "advice": advice})),
        0.002, "long-polling")
    add(0.02, _bayeux({"channel": "/meta/connect", "clientId": cid, "id": "2", "connectionType": "long-polling"}),
        _replies(ReplyItem({"channel": "/meta/connect", "id": "2", "successful": True, "clientId": cid,
                            "advice": advice}, hold=0.001)), 0.001, "long-polling")
    add(0.03, _bayeux({"channel": "/meta/subscribe", "clientId": cid, "id": "3", "subscription": gws.CALLS_CHANNEL}),
        _replies(ReplyItem({"channel": "/meta/subscribe", "id": "3", "successful": True, "clientId": cid,
                            "subscription": gws.CALLS_CHANNEL})), 0.002, "long-polling")
    for seq in range(1, operations + 1):
        at = 1.0 + (seq - 1) * period
        post = add(at, Request(headers=[AUTH, ("Content-Type", "application/json")], kind="json",
                               body={"operationName": operation(seq)}, method="POST", path=CALL_PATH),
                   Response(headers=[JSON], kind="json", body={"statusCode": 0}, status=200), 0.002)
        state = "Stopped" if seq % 2 else "Recording"
        data = {"messageType": "CallStateChangeMessage", "notificationType": "CallRecordingStateChange",
                "call": gws.make_call(gws.SEED_CALL_ID, state), "phoneNumber": "15000", "seq": seq}
        add(at - 0.5, _bayeux({"channel": "/meta/connect", "clientId": cid, "id": str(3 + seq),
                               "connectionType": "long-polling"}),
            _replies(ReplyItem({"channel": gws.CALLS_CHANNEL, "data": data}, cause=post, delay=delay,
                               event=f"CallRecordingStateChange ({state})", after=operation(seq)),
                     ReplyItem({"channel": "/meta/connect", "id": str(3 + seq), "successful": True,
                                "clientId": cid, "advice": advice}, hold=0.5 + delay)),
            0.5 + delay, "long-polling")
    writer.close()
