"""Scripted GWS call-recording session driven by the PyPI CometD client python-bayeux (Salesforce.org).

The third twin of cometd_client.js and aiocometd_client.py: same arguments, same JSON-lines output.

    python pybayeux_client.py --url http://127.0.0.1:PORT [--cometd-path /api/v2/notifications]
        [--call-id ID] [--ops StartCallRecording,...] [--user agent1] [--password secret]
        [--pause-ms 0] [--transport long-polling] [--event-timeout-ms 10000] [--timeout-ms 60000]

What makes it worth a peer: python-bayeux POSTs every Bayeux message as ONE JSON object, not an array
(``{"channel":"/meta/handshake",...}``), one message per request, and reads the reply as an array. The CometD
server and Faye accept that and answer with an array.

python-bayeux 1.0.0 notes:
- It runs on gevent and requests; gevent's monkey patching must come before requests is imported (its README).
- It sends its body with ``data=json.dumps(...)`` and no Content-Type. The CometD server reads such a body as
  JSON; Faye reads a body without ``application/json`` as a form (``message=``) and refuses it. So the requests
  session it is given says ``Content-Type: application/json``, as a user of it against Faye must do.
- Long-polling only; no confirmation of a subscribe (it goes out from a greenlet): the subscribe reply is noted
  by wrapping ``_send_message``. Its ``shutdown()`` waits for the held connect to end (up to the server's
  timeout); this script disconnects and kills its greenlets instead.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after gevent's patching, as python-bayeux asks
import base64  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.queue  # noqa: E402
import requests  # noqa: E402
from python_bayeux import BayeuxClient  # noqa: E402

CALLS_CHANNEL = "/v2/me/calls"
DEFAULT_CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"
DEFAULT_OPS = ("StartCallRecording", "PauseCallRecording", "ResumeCallRecording", "StopCallRecording")

_T0 = time.perf_counter()


def _now() -> float:
    return round((time.perf_counter() - _T0) * 1000, 3)


def _out(record: dict) -> None:
    print(json.dumps(record), flush=True)


class SessionError(Exception):
    """The scripted session failed (bad HTTP status, CometD failure, missing event)."""


class Client(BayeuxClient):
    """python-bayeux's client with a subscription callback (it calls callbacks by method name) and a note of
    each subscribe reply."""

    def __init__(self, endpoint: str, session: requests.Session) -> None:
        self.events: gevent.queue.Queue = gevent.queue.Queue()
        self.subscribed = gevent.event.AsyncResult()
        self.handshake_reply: dict[str, Any] | None = None
        super().__init__(endpoint, session, start=False)

    def _send_message(self, payload: dict, **kwargs: Any) -> Any:
        response = super()._send_message(payload, **kwargs)
        channel = payload.get("channel")
        if channel == "/meta/handshake" and isinstance(response, list) and response:
            self.handshake_reply = response[0]
        elif channel == "/meta/subscribe" and isinstance(response, list):
            reply = next((r for r in response if r.get("channel") == "/meta/subscribe"), {})
            self.subscribed.set(reply)
        return response

    def on_call(self, message: dict) -> None:
        self.events.put((message, _now()))


def run_session(url: str, cometd_path: str, call_id: str, ops: list[str], user: str, password: str,
                pause_ms: float, event_timeout: float) -> None:
    url = url.rstrip("/")
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    http = requests.Session()
    http.headers.update({"Authorization": authorization, "Content-Type": "application/json"})

    # 1. Log in: the server's session cookie (kept by requests) and the CSRF token.
    resp = http.get(f"{url}/api/v2/me", timeout=10)
    if resp.status_code != 200:
        raise SessionError(f"GET /api/v2/me answered {resp.status_code}: {resp.text[:200]!r}")
    csrf = {resp.headers.get("X-CSRF-HEADER", "X-CSRF-TOKEN"): resp.headers["X-CSRF-TOKEN"]} \
        if "X-CSRF-TOKEN" in resp.headers else {}

    # 2. CometD: the constructor handshakes and sends the first connect; then subscribe and start the greenlets.
    client = Client(url + cometd_path, http)
    if not (client.handshake_reply or {}).get("successful"):
        raise SessionError(f"handshake failed: {client.handshake_reply}")
    _out({"type": "handshake", "clientId": client.client_id, "t": _now()})
    client.subscribe(CALLS_CHANNEL, "on_call")
    client.start()
    client.go()
    try:
        reply = client.subscribed.get(timeout=event_timeout)
        if not reply.get("successful"):
            raise SessionError(f"subscribe to {CALLS_CHANNEL} failed: {reply}")

        # 3. Operations, each followed by its CallRecordingStateChange notification.
        for op in ops:
            gevent.sleep(pause_ms / 1000)
            resp = http.post(f"{url}/api/v2/me/calls/{quote(call_id, safe='')}",
                             data=json.dumps({"operationName": op}), headers=csrf, timeout=10)
            reply_t = _now()
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            _out({"type": "reply", "op": op, "status": resp.status_code, "body": body, "t": reply_t})
            if resp.status_code != 200:
                raise SessionError(f"{op} answered HTTP {resp.status_code}")
            while True:
                try:
                    message, t = client.events.get(timeout=event_timeout)
                except gevent.queue.Empty:
                    raise SessionError(f"timed out after {event_timeout * 1000:g} ms waiting for a "
                                       f"{CALLS_CHANNEL} notification after {op}") from None
                data = message.get("data") or {}
                call = data.get("call") or {}
                ours = call.get("id") in (None, call_id)  # Faye's channel is global: skip other calls
                _out({"type": "event" if ours else "stray_event", "channel": message.get("channel"),
                      "notificationType": data.get("notificationType"),
                      "recordingState": call.get("recordingState"),
                      "gsipRecord": (call.get("userData") or {}).get("GSIP_RECORD"), "op": op,
                      "delay_ms": round(t - reply_t, 3), "t": t, "data": data})
                if ours and data.get("notificationType") == "CallRecordingStateChange":
                    break
        if client.exception is not None:
            raise SessionError(f"python-bayeux failed: {client.exception!r}")
    finally:
        # 4. Disconnect, then end the greenlets (shutdown() would wait for the held connect to time out).
        client.stop_greenlets = True
        try:
            client.disconnect()
        except requests.RequestException:
            pass
        gevent.killall(client.greenlets, timeout=5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8090")
    p.add_argument("--cometd-path", default="/api/v2/notifications")
    p.add_argument("--call-id", default=DEFAULT_CALL_ID)
    p.add_argument("--ops", default=",".join(DEFAULT_OPS))
    p.add_argument("--user", default="agent1")
    p.add_argument("--password", default="secret")
    p.add_argument("--pause-ms", type=float, default=0)
    p.add_argument("--transport", default="long-polling", choices=["long-polling"],
                   help="python-bayeux has long-polling only")
    p.add_argument("--event-timeout-ms", type=float, default=10000)
    p.add_argument("--timeout-ms", type=float, default=60000)
    args = p.parse_args(argv)
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    try:
        with gevent.Timeout(args.timeout_ms / 1000, SessionError(f"global timeout: {args.timeout_ms:g} ms")):
            run_session(args.url, args.cometd_path, args.call_id, ops, args.user, args.password, args.pause_ms,
                        args.event_timeout_ms / 1000)
    except Exception as exc:  # noqa: BLE001 - any failure is reported on stdout, as the other twins do
        _out({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    _out({"type": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
