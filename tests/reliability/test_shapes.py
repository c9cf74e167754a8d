"""Every Bayeux message shape real clients send, and hostile ones, through the recorder core and the replay core.

Hypothesis generates batches of Bayeux messages (handshake, connect, subscribe, publish, disconnect; string and
numeric ids; ``ext`` anywhere, with a token in it) and sends each in one of the shapes clients use: a JSON array, a
single JSON object, a form body ``message=`` (``application/x-www-form-urlencoded`` as the spec says, or
``text/plain`` as Faye's cross-origin transport sends it), JSON as ``text/plain``, callback-polling
(``GET ?jsonp=&message=``), a WebSocket frame holding one object or an array; or something hostile (bytes, deep
nesting, not Bayeux at all). Each request is turned into the model as the recorder's addon does
(``wire.parse_body``), answered the way CometD servers answer (an array, or an error page), and given to the
recorder core, writing a real cassette.

Properties: the recorder never raises and never loses an exchange (the cassette loads, valid, with one exchange
per exchange given, every Bayeux shape recorded as Bayeux); no secret reaches the file (the Basic password, the
session cookie, the ``ext`` token: in any form); and the replay core answers every request of that cassette with
the recorded answer or a clear miss (a Bayeux reply per message, or a JSON explanation), never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwsvcr import cassette as cas
from gwsvcr import wire
from gwsvcr.bayeux import is_event
from gwsvcr.cassette import CassetteWriter, Request, Response, Severity
from gwsvcr.live import MISS_HEADER
from gwsvcr.record.recording import ExchangeTimes, Recorder, WebSocketRecording, reply_messages
from gwsvcr.record.redact import Redactor
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Timing
from tests.fakeclock import FakeClock
from tests.reliability.secretscan import literal_leaks, unredacted

PATH = "/api/v2/notifications"
PASSWORD, COOKIE, TOKEN = "pw-5ecret-Basic-9f2c", "C00KIE-5ecret-77ab31", "tok-5ecret-ext-c0ffee"
AUTH = [("Authorization", wire.basic_header("agent1", PASSWORD)), ("Cookie", f"JSESSIONID={COOKIE}")]
PROPS = settings(max_examples=60, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ids = st.one_of(st.integers(-5, 10**12).map(int), st.text("0123456789abcdef", min_size=1, max_size=6))
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                          st.dictionaries(st.text(max_size=6), c, max_size=3)),
                          max_leaves=8)
# ext anywhere: the extensions clients use, and one that carries a secret
ext = st.one_of(st.just({"authToken": TOKEN}), st.just({"ack": True}), st.just({"timesync": {"tc": 1, "l": 0}}),
                st.dictionaries(st.sampled_from(["replay", "x", "ack"]), json_value, max_size=2))


@st.composite
def message(draw: st.DrawFn) -> dict[str, Any]:
    channel = draw(st.sampled_from(["/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe",
                                    "/meta/disconnect", "/v2/me/calls", "/service/x", "/meta/bogus"]))
    m: dict[str, Any] = {"channel": channel}
    if draw(st.booleans()):
        m["id"] = draw(ids)
    if channel == "/meta/handshake":
        m.update(version="1.0", supportedConnectionTypes=["long-polling", "callback-polling"])
    else:
        m["clientId"] = draw(st.one_of(st.just("c1ient"), st.text("abcdef0123", min_size=1, max_size=8)))
    if channel == "/meta/connect":
        m["connectionType"] = "long-polling"
    if channel.endswith("subscribe"):
        m["subscription"] = draw(st.sampled_from(["/v2/me/calls", "/v2/me/*", ["/a", "/b"]]))
    if not channel.startswith("/meta/"):
        m["data"] = draw(json_value)
    if draw(st.booleans()):
        m["ext"] = draw(ext)
    return m


Replayed = tuple[str, Request, tuple[int, bytes]]  # shape, request, recorded (status, body)
SHAPES = ("array", "object", "form", "form-text", "text-json", "callback", "ws-object", "ws-array")


@st.composite
def bayeux_request(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    shape = draw(st.sampled_from(SHAPES))
    batch = draw(st.lists(message(), min_size=1, max_size=1 if shape.endswith("object") else 4))
    return shape, batch


HOSTILE = st.one_of(
    st.binary(max_size=40).map(lambda b: ("bytes", b)),
    st.integers(900, 3000).map(lambda n: ("deep", b"[" * n + b"]" * n)),
    st.integers(900, 3000).map(lambda n: ("deep-object", b'{"channel":"/meta/connect","ext":' + b"[" * n
                                                        + b"]" * n + b"}")),
    st.just(("not-bayeux", b'[{"no":"channel"}]')),
    st.just(("empty", b"[]")),
    st.just(("big-int", b'[{"channel":"/meta/connect","id":' + b"9" * 5000 + b"}]")),
)


def _reply(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a CometD server answers: a reply per message (same id), an event riding a connect."""
    out: list[dict[str, Any]] = []
    for m in messages:
        reply = {k: m[k] for k in ("channel", "id") if k in m}
        reply.update(successful=True, clientId="c1ient")
        if m["channel"] == "/meta/connect":
            out.append({"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange"}})
        out.append(reply)
    return out


def _http(shape: str, batch: list[dict[str, Any]]) -> tuple[Request, Response]:
    """The request as the recorder's addon sees it (flowconv.request_of: bodies parsed from bytes) and the reply."""
    body = json.dumps(batch[0] if shape == "object" else batch).encode()
    headers = list(AUTH)
    method, query, ctype = "POST", [], "application/json;charset=UTF-8"
    if shape in ("form", "form-text"):
        body = urlencode({"message": body.decode()}).encode()
        ctype = "application/x-www-form-urlencoded" if shape == "form" else "text/plain;charset=UTF-8"
    elif shape == "text-json":
        ctype = "text/plain;charset=UTF-8"
    elif shape == "callback":
        method, query, body, ctype = "GET", [("jsonp", "cb_1"), ("message", body.decode())], b"", ""
    headers.append(("Content-Type", ctype))
    kind, parsed = wire.parse_body(body, ctype)
    request = Request(headers=headers, kind=kind, body=parsed, method=method, path=PATH, query=query)
    replies = json.dumps(_reply(batch))
    if shape == "callback":
        rkind, rbody = wire.parse_body(f"/**/cb_1({replies});".encode(), "text/javascript")
    else:
        rkind, rbody = wire.parse_body(replies.encode(), "application/json")
    return request, Response(headers=[("Set-Cookie", f"JSESSIONID={COOKIE}; Path=/")], kind=rkind, body=rbody)


def _hostile(body: bytes) -> tuple[Request, Response]:
    kind, parsed = wire.parse_body(body, "application/json")
    page = "<html><body><h1>HTTP Status 500</h1></body></html>"
    return (Request(headers=[*AUTH, ("Content-Type", "application/json")], kind=kind, body=parsed, method="POST",
                    path=PATH),
            Response(headers=[("Content-Type", "text/html")], kind="text", body=page, status=500))


def _record(path: Path, traffic: list[tuple[str, Any]]) -> tuple[list[Replayed], list[str]]:
    """Give every exchange to the recorder core; returns the HTTP ones (for replay) and, for each exchange written,
    the shape it came from. A WebSocket frame whose messages carry no id is written at once, and the replies to it
    then as one more exchange."""
    recorder = Recorder(CassetteWriter(path), Redactor(), time.time())
    http: list[Replayed] = []
    written: list[str] = []
    t = time.time()
    for what, item in traffic:
        t += 0.01
        before = recorder.stats.exchanges
        if what.startswith("ws-"):
            socket = WebSocketRecording(recorder, Request(headers=list(AUTH), method="GET", path=PATH))
            socket.client_frame(item, t, single=what == "ws-object")
            socket.server_frame(_reply(item), t + 0.001)
            socket.close(t + 0.002)
            assert recorder.stats.exchanges - before in (1, 2)  # 2: replies with no frame waiting, kept apart
        else:
            request, response = _http(what, item) if what in SHAPES else _hostile(item)
            replay_copy = (Request(headers=list(request.headers), kind=request.kind, body=request.body,
                                   method=request.method, path=request.path, query=list(request.query)))
            answer = (response.status, response.content())
            recorder.complete(request, response, ExchangeTimes(t, t, t + 0.001, t + 0.002))
            http.append((what, replay_copy, answer))
        written += [what] * (recorder.stats.exchanges - before)
    assert recorder.writer is not None
    recorder.writer.close()
    return http, written


def _recorded(tmp_path_factory: Any, traffic: list[tuple[str, Any]]) -> tuple[Path, tuple[list[Replayed], list[str]]]:
    path = tmp_path_factory.mktemp("shapes") / "shapes.yaml"
    return path, _record(path, traffic)


traffic = st.lists(st.one_of(bayeux_request(), HOSTILE), min_size=1, max_size=6)


@PROPS
@given(traffic=traffic)
def test_recorder_keeps_every_exchange_as_bayeux_and_no_secret(tmp_path_factory: Any,
                                                                traffic: list[tuple[str, Any]]) -> None:
    path, (_, written) = _recorded(tmp_path_factory, traffic)
    problems = cas.validate(path)
    assert [p for p in problems if p.severity is not Severity.NOTE] == []
    loaded = cas.load(path, use_cache=False)
    assert len(loaded.exchanges) == len(written)
    for what, ex in zip(written, loaded.exchanges, strict=True):
        if what in SHAPES and ex.request.body:  # every shape a client sends is Bayeux, its replies on the timeline
            assert ex.kept_as_http is None and ex.is_bayeux, (what, ex)
            assert wire.bayeux_of(ex.request) is not None, (what, ex.request)
            assert ex.reply_items() or ex.error, (what, ex.response)
        if what in ("object", "ws-object") and ex.request.body:
            assert ex.request.kind == "json" and isinstance(ex.request.body, dict)  # kept as it came
    assert unredacted(path) == [] and literal_leaks(path, {PASSWORD, COOKIE, TOKEN}) == []


@PROPS
@given(traffic=traffic)
def test_replay_answers_every_recorded_shape_or_misses_clearly(tmp_path_factory: Any,
                                                                traffic: list[tuple[str, Any]]) -> None:
    path, (http, _) = _recorded(tmp_path_factory, traffic)
    asyncio.run(_replay(path, http))


async def _replay(path: Path, http: list[Replayed]) -> None:
    clock = FakeClock()
    replayer = Replayer(cas.load(path, use_cache=False), ReplayConfig(timing=Timing.INSTANT), clock=clock,
                        on_miss=lambda miss: None)
    try:
        for what, request, recorded in http:
            task = asyncio.ensure_future(replayer.handle(request))
            while not task.done():  # a held connect ends with its timeout, on the fake clock
                await clock.advance(60)
            served = task.result()
            assert served.response is not None
            reply = served.response
            bayeux = wire.bayeux_of(request)
            replies = reply_messages(reply)
            if bayeux is not None and replies:
                # the Bayeux core: an array (whatever shape the client sent), a reply to every message
                answered = [m for m in replies if not is_event(m)]
                assert len(answered) == len(bayeux.messages), (what, bayeux.messages, replies)
                assert all(m.get("successful") is True or m.get("error") for m in answered), replies
                assert reply.kind == ("text" if what == "callback" else "json"), reply  # JSONP: in its callback
            elif reply.header(MISS_HEADER) is not None:
                assert reply.status == 500 and reply.body["reason"], reply.body  # a miss that says why
            else:  # the recorded answer itself (an error page the server sent)
                assert (reply.status, reply.content()) == recorded, (what, reply)
    finally:
        replayer.close()


def test_a_single_object_request_is_bayeux_and_a_rest_body_with_a_channel_field_is_not() -> None:
    single = Request(kind="json", body={"channel": "/meta/handshake", "id": 1}, method="POST", path="/cometd")
    rest = Request(kind="json", body={"channel": "voice", "operationName": "Ready"}, method="POST", path="/api")
    found = wire.bayeux_of(single)
    assert found is not None and found.messages == [single.body] and found.transport == "long-polling"
    assert wire.bayeux_of(rest) is None


def test_base64_of_the_password_is_not_on_disk_either(tmp_path: Path) -> None:
    """The secret scan looks for base64 forms too: a Basic header left as it was would be found."""
    path = tmp_path / "leak.yaml"
    path.write_text(f"Authorization: Basic {base64.b64encode(f'agent1:{PASSWORD}'.encode()).decode()}\n")
    assert literal_leaks(path, {PASSWORD})
