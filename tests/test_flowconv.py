"""The border with mitmproxy (addons/flowconv.py): a cassette response becomes the same mitmproxy response that
``http.Response.make`` would build, and a live request the same cassette request, with or without a query; a
reply's delivery is told when it was written to the client, or when its connection closed before."""

from __future__ import annotations

import asyncio

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from gwsvcr import wire
from gwsvcr.addons import flowconv
from gwsvcr.addons.flowconv import answer, request_of, to_mitmproxy, when_written
from gwsvcr.cassette import Request, Response
from tests.fakeclock import FakeClock


@pytest.mark.parametrize("resp", [
    Response(headers=[("Content-Type", "application/json"), ("Set-Cookie", "JSESSIONID=x; Path=/"),
                      ("Content-Length", "999"), ("Transfer-Encoding", "chunked")],
             kind="json", body={"statusCode": 0, "name": "Zoë"}, status=200),
    Response(headers=[], kind=None, body=None, status=204),
    Response(headers=[("Content-Type", "text/html")], kind="text", body="<h1>oops</h1>", status=599),
])
def test_to_mitmproxy_builds_what_make_builds(resp: Response) -> None:
    ours = to_mitmproxy(resp)
    theirs = http.Response.make(resp.status, resp.content(),
                                [(k.encode(), v.encode()) for k, v in resp.headers
                                 if k.lower() not in ("content-length", "transfer-encoding")])
    assert (ours.status_code, ours.reason, ours.http_version) == (theirs.status_code, theirs.reason,
                                                                   theirs.http_version)
    assert ours.headers.fields == theirs.headers.fields
    assert ours.raw_content == theirs.raw_content == resp.content()


def test_request_of_reads_the_query_only_when_there_is_one() -> None:
    plain = request_of(http.Request.make("POST", "http://gws/api/v2/me/calls/1", b'{"a":1}',
                                         {"Content-Type": "application/json"}))
    assert (plain.path, plain.query, plain.body) == ("/api/v2/me/calls/1", [], {"a": 1})
    queried = request_of(http.Request.make("GET", "http://gws/api/v2/me?subresources=*&x=1&x=2"))
    assert (queried.path, queried.query) == ("/api/v2/me", [("subresources", "*"), ("x", "1"), ("x", "2")])


def _request(content_type: list[str], body: bytes, encoding: str | None = None) -> http.Request:
    req = http.Request.make("POST", "http://gws/api/v2/notifications", b"", [
        (b"Host", b"gws"), *((b"Content-Type", t.encode()) for t in content_type), (b"X-Name", "Zoë".encode()),
        (b"X-Raw", b"\xff\xfe"), (b"Content-Length", b"1")])
    if encoding is not None:
        req.headers["Content-Encoding"] = encoding
        req.content = body  # encoded as the header says
    else:
        req.raw_content = body
    return req


@pytest.mark.parametrize("req", [
    _request(["application/json"], b'[{"channel":"/meta/connect","clientId":"c1"}]'),
    _request(["application/json"], b'{"operationName":"StopCallRecording"}', encoding="gzip"),
    _request(["text/plain", "charset=utf-8"], b'{"a": 1}'),  # two fields: read as mitmproxy joins them
    _request([], b"[1, 2]"),
    _request(["application/json"], b'{"a": 1}', encoding="no-such-coding"),  # left as it came
], ids=["json", "gzip", "two-types", "no-type", "bad-encoding"])
def test_request_of_reads_what_mitmproxy_headers_give(req: http.Request) -> None:
    """Headers decoded as mitmproxy's own accessors decode them, the body decoded and typed as they say."""
    ours = request_of(req)
    content = req.get_content(strict=False) or b""
    assert (ours.kind, ours.body) == wire.parse_body(content, req.headers.get("content-type"))
    assert ours.headers == [(k, v) for k, v in req.headers.items(multi=True)
                            if k.lower() not in ("content-length", "content-encoding")]
    assert ours.body is not None


class Transport(asyncio.Transport):
    """The socket side of a client connection's writer: what was written, and whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_a_delivery_is_told_at_the_write_and_one_never_written_when_its_connection_closes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock, transport, flow = FakeClock(), Transport(), tflow.tflow()
    writer = asyncio.StreamWriter(transport, asyncio.Protocol(), None, asyncio.get_running_loop())
    monkeypatch.setattr(flowconv, "CLOCK", clock)
    monkeypatch.setattr(flowconv, "_client_writer", lambda f: writer)
    told: list[tuple[str, float]] = []
    when_written(flow, lambda at: told.append(("first", at)))
    clock.t += 0.25  # the event-loop turns between handing the reply over and writing it
    assert told == []
    writer.write(b"HTTP/1.1 200 OK")
    assert (told, transport.written) == ([("first", 1000.25)], [b"HTTP/1.1 200 OK"])
    when_written(flow, lambda at: told.append(("held", at)))  # a held long-poll its client leaves
    clock.t += 1.0
    writer.close()
    assert told[1:] == [("held", 1001.25)] and transport.closed
    writer.write(b"late")  # nothing waits any more: nothing is told twice
    assert len(told) == 2


def test_a_reply_with_no_live_connection_counts_as_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No live TCP connection behind the flow (a test context, an injected flow): its reply counts as written now."""
    clock = FakeClock()
    monkeypatch.setattr(flowconv, "CLOCK", clock)
    monkeypatch.setattr(flowconv, "_client_writer", lambda f: None)
    told: list[float] = []
    when_written(tflow.tflow(), told.append)
    assert told == [1000.0]


async def test_a_reply_json_cannot_encode_is_a_500_naming_the_request() -> None:
    """A Bayeux reply is encoded once, when the flow gets it (a date a hand-written cassette left unquoted in a
    reply's ext cannot be): still the JSON 500 an error in the core gives, never a flow left to go upstream."""
    import datetime

    async def handler(request: Request) -> wire.Served:
        return wire.Frame([{"channel": "/meta/handshake", "ext": {"at": datetime.date(2026, 1, 1)}}]).served(None)

    flow = tflow.tflow()
    await answer(flow, handler)
    assert flow.response is not None and flow.response.status_code == 500
    assert b"gwsvcr could not answer" in flow.response.content
