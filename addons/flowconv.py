"""Conversions between mitmproxy flows and the cassette model: the only place the core meets mitmproxy."""

from __future__ import annotations

from mitmproxy import http

from gwsvcr import wire
from gwsvcr.cassette import Request, Response

# Framing headers are recomputed by mitmproxy for the body we send; a recorded one would be wrong.
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


def request_of(req: http.Request) -> Request:
    """The cassette view of a live request; the body decoded (gzip etc.) and parsed (JSON as data)."""
    content = req.get_content(strict=False) or b""
    kind, body = wire.parse_body(content, req.headers.get("content-type"))
    headers = [(k, v) for k, v in req.headers.items(multi=True) if k.lower() not in _FRAMING]
    return Request(headers=headers, kind=kind, body=body, method=req.method, path=req.path.split("?", 1)[0],
                   query=list(req.query.items(multi=True)))


def response_of(resp: http.Response) -> Response:
    content = resp.get_content(strict=False) or b""
    kind, body = wire.parse_body(content, resp.headers.get("content-type"))
    headers = [(k, v) for k, v in resp.headers.items(multi=True) if k.lower() not in _FRAMING]
    return Response(headers=headers, kind=kind, body=body, status=resp.status_code)


def to_mitmproxy(resp: Response) -> http.Response:
    headers = [(k.encode(), v.encode()) for k, v in resp.headers if k.lower() not in _FRAMING]
    return http.Response.make(resp.status, resp.content(), headers)
