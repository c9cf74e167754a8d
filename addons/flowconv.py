"""Conversions between mitmproxy flows and the cassette model: the only place the core meets mitmproxy (also
for the options the recorder and the replayer share).

Also when a reply reached the client: a core's ``Served.delivered`` is told the moment the reply was written to the
client's socket (:func:`when_written`), not when an addon handed the reply to mitmproxy, which under load can be
several event-loop turns earlier.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.net.http import status_codes

from gwsvcr import wire
from gwsvcr.bayeux import BayeuxServer
from gwsvcr.cassette import Request, Response, json_bytes
from gwsvcr.options import Family, Kind, Surface
from gwsvcr.session import SessionRules
from gwsvcr.timeline import Clock
from gwsvcr.wire import Delivered, Served

logger = logging.getLogger(__name__)
SUMMARY_LOGGER = "gwsvcr.summary"  # what an addon says when it stops; the gwsvcr command prints it on stdout
CLOCK = Clock()  # the cores' clock: when a reply went out, on their time
# Replay, simulation and the replay service answer every request themselves; this upstream is never contacted.
NO_UPSTREAM = "reverse:http://127.0.0.1:9"

# Framing headers are recomputed by mitmproxy for the body we send; a recorded one would be wrong.
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


_TYPES: dict[Kind, Any] = {Kind.BOOL: bool, Kind.FLOAT: float, Kind.CHOICE: str, Kind.NAMES: Sequence[str],
                           Kind.TEXT: str}


def add_options(loader: Any, family: Family) -> None:
    """The mitmproxy options of ``family`` (gwsvcr/options.py declares them), in an addon's ``load``."""
    for option in family.on(Surface.ADDON):
        default = option.default_on(Surface.ADDON)
        loader.add_option(option.addon, _TYPES[option.kind], list(default) if option.kind is Kind.NAMES else default,
                          option.help, choices=list(option.values) or None)


def option_values(options: Any, family: Family) -> dict[str, Any]:
    """The values of ``family``'s mitmproxy options, by option name, checked: OptionsError naming the bad one."""
    values = {}
    for option in family.on(Surface.ADDON):
        try:
            values[option.name] = option.validate(getattr(options, option.addon), option.addon)
        except ValueError as e:
            raise exceptions.OptionsError(str(e)) from None
    return values


def session_rules(options: Any) -> SessionRules:
    return SessionRules(tuple(options.gwsvcr_session_cookies), tuple(options.gwsvcr_session_headers))


def request_of(req: http.Request) -> Request:
    """The cassette view of a live request; the body decoded (gzip etc.) and parsed (JSON as data). The header
    fields are read once, decoded as mitmproxy's ``Headers`` decodes them, where its ``headers.get`` walked them
    again for each name looked up (through the generic ``Mapping.get``) and ``items`` through a generator."""
    headers = []
    types: list[str] = []  # Content-Type fields: ``headers.get`` joins several with ", "
    encoded = False
    for raw_name, raw_value in req.headers.fields:
        name = raw_name.decode("utf-8", "surrogateescape")
        lower = name.lower()
        if lower in _FRAMING:
            encoded = encoded or lower == "content-encoding"
            continue
        value = raw_value.decode("utf-8", "surrogateescape")
        if lower == "content-type":
            types.append(value)
        headers.append((name, value))
    content = (req.get_content(strict=False) if encoded else req.raw_content) or b""
    kind, body = wire.parse_body(content, ", ".join(types) if types else None)
    path, has_query, _ = req.path.partition("?")
    return Request(headers=headers, kind=kind, body=body, method=req.method, path=path,
                   query=list(req.query.items(multi=True)) if has_query else [])


def response_of(resp: http.Response) -> Response:
    content = resp.get_content(strict=False) or b""
    kind, body = wire.parse_body(content, resp.headers.get("content-type"))
    headers = [(k, v) for k, v in resp.headers.items(multi=True) if k.lower() not in _FRAMING]
    return Response(headers=headers, kind=kind, body=body, status=resp.status_code)


def to_mitmproxy(resp: Response) -> http.Response:
    """The mitmproxy response for a cassette one: what ``http.Response.make`` gives, built directly (make sets
    the body through the content-encoding machinery and looks the headers up again: 8.7 µs against 4.5 µs per
    reply under python -O, the larger part of what gwsvcr adds to a replayed request)."""
    content = resp.content()
    fields = [(k.encode(), v.encode()) for k, v in resp.headers if k.lower() not in _FRAMING]
    fields.append((b"content-length", str(len(content)).encode()))
    now = time.time()
    return http.Response(b"HTTP/1.1", resp.status, status_codes.RESPONSES.get(resp.status, "").encode(),
                         http.Headers(fields), content, None, now, now)


async def answer(flow: http.HTTPFlow, handler: Callable[[Request], Awaitable[Served | Response]],
                 shown: Callable[[http.HTTPFlow, Request, Served], None] | None = None) -> None:
    """Answer ``flow`` with ``handler``; a bug or hostile input becomes a JSON 500 naming the request, and the
    server goes on serving others. No response leaves the flow to go upstream, unless the answer is to close the
    connection without one (``Served.cut``). ``shown``, when given, is told the request and its answer first (the
    live view), with no function made per request for it."""
    try:
        request = request_of(flow.request)
        answering = handler(request)
        # While it is answered (a held connect: as long as its hold) the request is kept for the live view's line
        # only, and without its headers, which the line does not show: the core has kept what it needs of it. Nor
        # is the handler (a bound method) kept.
        shown_as = None if shown is None else Request(kind=request.kind, body=request.body, omitted=request.omitted,
                                                      method=request.method, path=request.path, query=request.query)
        del request, handler
        served = await answering
        if isinstance(served, Response):
            served = Served(served)
        if shown is not None and shown_as is not None:
            shown(flow, shown_as, served)
        # encoded here, inside the try: a reply the core built but JSON cannot encode is a 500 as well
        response = None if served.cut is not None or served.response is None else to_mitmproxy(served.response)
    except Exception as e:
        logger.exception("gwsvcr: cannot answer %s %s", flow.request.method, flow.request.path)
        flow.response = http.Response.make(500, json_bytes({
            "error": f"gwsvcr could not answer {flow.request.method} {flow.request.path}: {type(e).__name__}"}),
            {"Content-Type": "application/json"})
        return
    if served.cut is not None:  # a recorded reset, an injected one: the connection closes without a reply
        logger.debug("gwsvcr: closing %s %s without a reply (%s)", flow.request.method, flow.request.path, served.cut)
        flow.kill()
        return
    if response is not None:
        flow.response = response
        flow.is_replay = "response"
        if served.delivered is not None:
            when_written(flow, served.delivered)


# ------------------------------------------------------------------------------------- when a reply was written
# mitmproxy has no hook after a reply is written: the `response` hook runs before, and the write follows one or
# more event-loop turns later (the connection's event lock). So the client connection's writer is watched: its
# next write after a reply was set is that reply (HTTP/1.1 has one reply in flight per connection). A reply that
# is never written (the client left) is told when the connection is closed: no addon has to clean up after it.


def when_written(flow: http.HTTPFlow, sent: Delivered) -> None:
    """Call ``sent(CLOCK.now())`` once ``flow``'s reply was written to the client's socket, exactly once."""
    writer = _client_writer(flow)
    if type(writer) is asyncio.StreamWriter:
        writer.__class__ = WatchedWriter
        writer.waiting = []  # type: ignore[attr-defined]
    if not isinstance(writer, WatchedWriter):  # not a live TCP connection (a test context, an injected flow)
        sent(CLOCK.now())  # now is all we know
        return
    writer.waiting.append(sent)


def _client_writer(flow: http.HTTPFlow) -> Any | None:
    server = ctx.master.addons.get("proxyserver") if hasattr(ctx, "master") else None
    handler = getattr(server, "connections", {}).get(flow.client_conn.id)
    io = getattr(handler, "transports", {}).get(flow.client_conn)
    return getattr(io, "writer", None)


class WatchedWriter(asyncio.StreamWriter):
    """A client connection's writer, watched: its write and close tell what waited for them. The writer becomes one
    of these in place (its class, not its methods, changes: no bound methods, object or table entry of its own per
    connection, 120 bytes a connection where those took 640, and no reference cycle), keeping only the list of what
    waits: a held long-poll's connection lives as long as its agent (a list, not a deque: 56 bytes against 760, with
    one reply at a time in flight on an HTTP/1.1 connection)."""

    waiting: list[Delivered]

    def _tell(self) -> None:
        at = CLOCK.now()
        while self.waiting:
            told, self.waiting = self.waiting, []
            for sent in told:
                sent(at)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        if self.waiting:
            self._tell()

    def close(self) -> None:
        # The connection ends: what still waited for a write is told now (its events then wait for the client's
        # next connect, as any event due while it was away).
        self._tell()
        super().close()


def requeue_if_dropped(flow: http.HTTPFlow, server: BayeuxServer) -> None:
    """The client left while its reply was held: give the reply's events to its next connect."""
    if flow.response is None or flow.is_replay != "response":
        return
    request = request_of(flow.request)
    bayeux = wire.bayeux_of(request)
    if bayeux is None:
        return
    try:
        replies = json.loads(flow.response.get_content(strict=False) or b"[]")
    except ValueError:
        return
    if isinstance(replies, list):
        server.requeue(bayeux.messages, [m for m in replies if isinstance(m, dict)])
