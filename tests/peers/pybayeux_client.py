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
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.queue  # noqa: E402
import requests  # noqa: E402
import twin  # noqa: E402
from python_bayeux import BayeuxClient  # noqa: E402
from twin import CALLS_CHANNEL, SessionError, now, out  # noqa: E402


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
        self.events.put((message, now()))


def run_session(args: argparse.Namespace) -> None:
    with gevent.Timeout(args.timeout_ms / 1000, SessionError(f"global timeout: {args.timeout_ms:g} ms")):
        _session(args.url, args.cometd_path, args.call_id, args.ops, args.user, args.password, args.pause_ms,
                 args.event_timeout_ms / 1000)


def _session(url: str, cometd_path: str, call_id: str, ops: list[str], user: str, password: str,
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
    out({"type": "handshake", "clientId": client.client_id, "t": now()})
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
            reply_t = now()
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            out({"type": "reply", "op": op, "status": resp.status_code, "body": body, "t": reply_t})
            if resp.status_code != 200:
                raise SessionError(f"{op} answered HTTP {resp.status_code}")
            while True:
                try:
                    message, t = client.events.get(timeout=event_timeout)
                except gevent.queue.Empty:
                    raise SessionError(f"timed out after {event_timeout * 1000:g} ms waiting for a "
                                       f"{CALLS_CHANNEL} notification after {op}") from None
                record, awaited = twin.event(message, op, t, reply_t, call_id)
                out(record)
                if awaited:
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


if __name__ == "__main__":
    sys.exit(twin.main(run_session, __doc__.splitlines()[0]))
