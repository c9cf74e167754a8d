"""Hostile input over real HTTP against `gwsvcr replay` and `gwsvcr sim`: malformed HTTP, invalid JSON, arrays
that are not Bayeux, Bayeux messages with fields of the wrong type, unknown clientIds, huge bodies, deep nesting.

Every request gets a clear reply within a bound: a JSON error (or a Bayeux reply with ``successful: false``) for
anything well framed, mitmproxy's 4xx for what is not HTTP at all. Never a 502 or an HTML page because one of our
hooks raised, never a traceback on stderr, and afterwards a well-formed client is served as if nothing happened.
"""

from __future__ import annotations

import json
import string
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import replay
from tests.procs import ROOT, Proc, gwsvcr
from tests.reliability.netutil import CALL, COMETD, BayeuxClient, Reply, basic, call, http_request, raw_exchange

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
AUTH = basic("agent1", "secret")
BOUND = 5.0  # seconds: every reply, however hostile the request (loopback)
FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TRIED: dict[str, int] = {}
BAD_STDERR = ("Traceback", "Addon error", "could not answer", "cannot answer")


@dataclass
class Server:
    """The server under test; its repr stays short in hypothesis' reports."""

    name: str
    proc: Proc = field(repr=False)

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="module", params=["replay", "sim"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    proc = replay(SAMPLE) if request.param == "replay" else gwsvcr("sim", "--port", "0", "--event-delay-ms", "50")
    yield Server(request.param, proc)
    code = proc.stop()
    assert code == (1 if request.param == "replay" else 0), proc.stderr[-5000:]  # strict replay: misses exit 1
    for bad in BAD_STDERR:
        assert bad not in proc.stderr, proc.stderr[-5000:]
    print(f"\nhostile input, {request.param}: " + ", ".join(f"{k}={v}" for k, v in sorted(TRIED.items())))
    TRIED.clear()


# ------------------------------------------------------------------------------------------- what a reply is

def assert_clear(reply: Reply, what: str, bound: float = BOUND) -> None:
    """A well-framed request's reply: in time, not a gateway error, JSON (or JSONP) that says what went wrong."""
    assert reply.elapsed < bound, f"{what}: answered after {reply.elapsed:.1f}s"
    assert reply.status != 502 and "text/html" not in reply.headers.get("content-type", ""), (what, reply)
    text = reply.body.decode("utf-8", "replace")
    for bad in BAD_STDERR:
        assert bad not in text, (what, text[:500])
    if reply.headers.get("content-type", "").startswith("text/javascript"):
        callback, _, rest = text.partition("(")
        assert callback and rest.endswith(")"), (what, text[:300])
        text = rest[:-1]
    body = json.loads(text)
    if reply.status == 200 and isinstance(body, list):
        for message in body:  # a Bayeux reply: every failure names its error
            assert isinstance(message, dict), (what, body)
            if message.get("successful") is False:
                assert isinstance(message.get("error"), str) and message["error"], (what, message)
    else:
        assert 400 <= reply.status < 600 or reply.status == 200, (what, reply.status)
        if reply.status >= 400:
            assert isinstance(body, (dict, list)) and body, (what, body)


def assert_rejected(reply: Reply, what: str) -> None:
    """Bytes that are not a valid HTTP request: mitmproxy's own 4xx at once, or, for what mitmproxy still
    parses as a request (it accepts a method of "\\x00" or HTTP/0.0), our clear error."""
    assert reply.elapsed < BOUND, f"{what}: answered after {reply.elapsed:.1f}s"
    if 400 <= reply.status < 500 and reply.headers.get("content-type", "").startswith("text/html"):
        assert reply.body.startswith(b"<html>") and b"<p>" in reply.body, (what, reply)  # says why
        return
    assert_clear(reply, what)


# ----------------------------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
CHANNELS = ["/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect",
            "/meta/nope", "/v2/me/calls", "/service/x", "/", "", "meta/connect", "/meta/connect/x"]
FIELDS = {
    "channel": st.one_of(st.sampled_from(CHANNELS), json_values),
    "clientId": st.one_of(st.text(string.hexdigits, max_size=26), json_values),
    "id": json_values,
    "subscription": st.one_of(st.sampled_from(["/v2/me/calls", "/**", "/v2/*", "", "x"]), json_values,
                              st.lists(st.sampled_from(["/v2/me/calls", "/a"]), max_size=3)),
    "advice": st.one_of(st.fixed_dictionaries({"timeout": json_values, "interval": json_values}), json_values),
    "ext": st.one_of(st.fixed_dictionaries({"ack": json_values, "timesync": json_values}), json_values),
    "connectionType": json_values,
    "supportedConnectionTypes": st.one_of(st.just(["long-polling"]), json_values),
    "version": json_values,
    "data": json_values,
}
bayeux_message = st.fixed_dictionaries({"channel": FIELDS["channel"]},
                                       optional={k: v for k, v in FIELDS.items() if k != "channel"})
bayeux_batch = st.lists(bayeux_message, min_size=1, max_size=4)


def _post(path: str, body: bytes, ctype: str = "application/json;charset=UTF-8") -> bytes:
    return http_request("POST", path, body, {"Content-Type": ctype, "Authorization": AUTH})


@st.composite
def framed_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """Well-framed HTTP requests carrying hostile content, each labelled with its kind."""
    kind = draw(st.sampled_from(["invalid-json", "not-bayeux", "wrong-types", "unknown-client", "jsonp",
                                 "form", "rest-garbage", "odd-path"]))
    if kind == "invalid-json":
        body = draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                              st.sampled_from([b"[", b"[{", b'[{"channel":', b"{]", b"\xff\xfe", b"nul",
                                               b'[{"channel":"/meta/handshake"}', b"[1,]", b"\x00[]"])))
        return kind, _post(draw(st.sampled_from([COMETD, COMETD + "/connect", CALL])), body)
    if kind == "not-bayeux":
        body = draw(st.one_of(st.lists(json_values, max_size=5), json_values,
                              st.lists(st.dictionaries(st.sampled_from(["channel", "id"]), json_values), max_size=4)))
        return kind, _post(COMETD, json.dumps(body).encode())
    if kind == "wrong-types":
        return kind, _post(COMETD, json.dumps(draw(bayeux_batch)).encode())
    if kind == "unknown-client":
        messages = [{"channel": draw(st.sampled_from(CHANNELS[1:6])), "id": "1", "subscription": "/v2/me/calls",
                     "clientId": draw(st.one_of(st.text(string.hexdigits, max_size=40), st.integers(), st.none())),
                     "connectionType": "long-polling"}]
        return kind, _post(COMETD, json.dumps(messages).encode())
    if kind == "jsonp":
        callback = draw(st.one_of(st.just("cb"), st.text(max_size=12)))
        message = draw(st.one_of(bayeux_batch.map(json.dumps), st.text(max_size=40)))
        query = urllib.parse.urlencode({"jsonp": callback, "message": message})
        return kind, http_request("GET", f"{COMETD}?{query}", headers={"Authorization": AUTH})
    if kind == "form":
        message = draw(st.one_of(bayeux_batch.map(json.dumps), st.text(max_size=40)))
        body = urllib.parse.urlencode({"message": message}).encode()
        return kind, _post(COMETD, body, "application/x-www-form-urlencoded")
    if kind == "rest-garbage":
        body = json.dumps(draw(json_values)).encode()
        method = draw(st.sampled_from(["POST", "PUT", "DELETE", "GET", "PATCH"]))
        return kind, http_request(method, CALL, body if method != "GET" else b"",
                                  {"Content-Type": "application/json", "Authorization": AUTH})
    path = "/" + urllib.parse.quote(draw(st.text(max_size=30)), safe="/?&=%;")
    return kind, http_request("GET", path, headers={"Authorization": AUTH})


@st.composite
def malformed_requests(draw: st.DrawFn) -> bytes:
    """Bytes that are not a valid HTTP request, complete up to the blank line (nothing left to wait for)."""
    head = draw(st.one_of(
        # not starting with CR/LF: HTTP lets a server skip blank lines before a request and wait for it
        st.binary(min_size=1, max_size=200).filter(lambda b: b"\r\n\r\n" not in b and b[:1] not in b"\r\n"),
        st.sampled_from([
            b"GET / HTTP/9.9", b"GET /\x00 HTTP/1.1", b"G\x01T / HTTP/1.1", b"GET  HTTP/1.1", b"GET / HTTP/1.1 x",
            b"POST / HTTP/1.1\r\nContent-Length: -1", b"POST / HTTP/1.1\r\nContent-Length: abc",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip",
            b"GET / HTTP/1.1\r\nno colon here", b"GET / HTTP/1.1\r\n: empty name", b"GET / HTTP/1.1\r\n folded",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\x00",
            b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000,
            b"GET /" + b"a" * 70_000 + b" HTTP/1.1"]),
    ))
    return head + b"\r\n\r\n"


# -------------------------------------------------------------------------------------------------- the fuzzers

@FUZZ
@given(request=framed_requests())
def test_hostile_requests_get_clear_errors(server: Server, request: tuple[str, bytes]) -> None:
    kind, data = request
    TRIED[kind] = TRIED.get(kind, 0) + 1
    assert_clear(raw_exchange(server.url, data, timeout=BOUND + 5), f"{kind}: {data[:300]!r}")


@settings(FUZZ, max_examples=200)
@given(data=malformed_requests())
def test_malformed_http_is_rejected(server: Server, data: bytes) -> None:
    TRIED["malformed-http"] = TRIED.get("malformed-http", 0) + 1
    assert_rejected(raw_exchange(server.url, data, timeout=BOUND), repr(data[:300]))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(bayeux_message, min_size=1, max_size=3), mine=st.lists(st.booleans(), min_size=3, max_size=3))
def test_wrong_types_inside_a_live_session(server: Server, batch: list[dict[str, Any]], mine: list[bool]) -> None:
    """Messages of the wrong shape for a session that exists (its clientId), after a proper handshake."""
    TRIED["live-session"] = TRIED.get("live-session", 0) + 1
    client = BayeuxClient(server.url, {"Authorization": AUTH})
    client.handshake()
    for message, own in zip(batch, mine, strict=False):
        if own:
            message["clientId"] = client.client_id
    if len(batch) == 1 and batch[0].get("channel") == "/meta/connect":
        batch[0].setdefault("advice", {"timeout": 0})  # the first connect is answered at once anyway
    data = _post(COMETD, json.dumps(batch).encode())
    assert_clear(raw_exchange(server.url, data, timeout=BOUND + 5), json.dumps(batch)[:300])


# -------------------------------------------------------------------------------------- huge and deep, by hand

MB = 1024 * 1024


def _chunked(total: int, chunk: int = MB) -> bytes:
    head = (f"POST {COMETD} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {AUTH}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    return head + piece * (total // chunk) + b"0\r\n\r\n"


@pytest.mark.parametrize("what,data", [
    ("17 MB with Content-Length", _post(COMETD, b"[" + b" " * (17 * MB) + b"]")),
    ("17 MB chunked", _chunked(17 * MB)),
    ("a Content-Length of 1 TB", f"POST {COMETD} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {1 << 40}\r\n"
                                 "Content-Type: application/json\r\n\r\n[".encode()),
])
def test_bodies_over_16_mb_are_refused_at_once(server: Server, what: str, data: bytes) -> None:
    reply = raw_exchange(server.url, data, timeout=BOUND + 5)
    assert reply.status == 413 and reply.elapsed < BOUND, (what, reply)


DEEP = 100_000


@pytest.mark.parametrize("what,data", [
    ("100k nested arrays", _post(COMETD, b"[" * DEEP + b"]" * DEEP)),
    ("100k nested objects", _post(COMETD, b'{"a":' * DEEP + b"1" + b"}" * DEEP)),
    ("100k nested in a message", _post(COMETD, b'[{"channel":"/meta/handshake","ext":' + b"[" * DEEP
                                        + b"]" * DEEP + b"}]")),
    ("100k nested, REST", _post(CALL, b"[" * DEEP + b"]" * DEEP)),
    ("100k nested, form", _post(COMETD, b"message=" + b"%5B" * DEEP + b"%5D" * DEEP,
                                "application/x-www-form-urlencoded")),
    ("900 nested in a message", _post(COMETD, b'[{"channel":"/meta/handshake","ext":' + b"[" * 900
                                       + b"]" * 900 + b"}]")),
    ("900 nested subscription", _post(COMETD, b'[{"channel":"/meta/subscribe","clientId":"x","subscription":'
                                       + b"[" * 900 + b"]" * 900 + b"}]")),
    ("900 nested, REST", _post(CALL, b'{"operationName":' + b"[" * 900 + b"]" * 900 + b"}")),
    ("15 MB string in a message", _post(COMETD, json.dumps([{"channel": "/meta/handshake",
                                                             "ext": {"x": "y" * (15 * MB)}}]).encode())),
    ("100k messages", _post(COMETD, b"[" + b",".join([b'{"channel":"/x"}'] * 100_000) + b"]")),
    ("200k numbers, REST", _post(CALL, b"[" + b",".join([b"1"] * 200_000) + b"]")),
])
def test_deep_and_large_documents_get_clear_errors(server: Server, what: str, data: bytes) -> None:
    TRIED["deep-or-large"] = TRIED.get("deep-or-large", 0) + 1
    assert_clear(raw_exchange(server.url, data, timeout=30), what, bound=15.0)  # up to 16 MB to parse


# --------------------------------------------------------------------------------------------- still serving

def test_a_well_formed_client_is_served_afterwards(server: Server) -> None:
    """Runs last in the module: the server survived everything above and serves a complete session."""
    auth = basic("agent-after", "secret")  # a user the fuzzers never touched
    status, me, headers = call(server.url + "/api/v2/me", headers={"Authorization": auth})
    assert status == 200 and me["statusCode"] == 0, me
    cookie = headers["Set-Cookie"].split(";")[0]
    client = BayeuxClient(server.url, {"Authorization": auth, "Cookie": cookie})
    client.handshake()
    client.connect(immediate=True)
    client.subscribe()
    status, body, _ = call(server.url + CALL, "POST", {"operationName": "StopCallRecording"},
                           {"Authorization": auth, "Cookie": cookie, "X-CSRF-TOKEN": headers["X-CSRF-TOKEN"]})
    assert (status, body) == (200, {"statusCode": 0})
    events: list[dict[str, Any]] = []
    while not events:
        events = [m for m in client.connect(timeout=BOUND) if "data" in m]
    assert events[0]["data"]["call"]["recordingState"] == "Stopped"
