"""The border with mitmproxy (addons/flowconv.py): a cassette response becomes the same mitmproxy response that
``http.Response.make`` would build, and a live request the same cassette request, with or without a query."""

from __future__ import annotations

import pytest
from mitmproxy import http

from gwsvcr.addons.flowconv import request_of, to_mitmproxy
from gwsvcr.cassette import Response


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
