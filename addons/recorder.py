"""The recorder as a mitmproxy addon: every exchange passes through live and is written to the cassette the
moment its reply completed, secrets redacted.

    mitmdump --mode reverse:https://gws.example.com -s addons/recorder.py \\
        --set gwsvcr_record_cassette=session.yaml --set gwsvcr_record_mode=all
"""

from __future__ import annotations

import json
import logging
import os
import time

from mitmproxy import ctx, exceptions, http
from mitmproxy.utils import human

from gwsvcr import live
from gwsvcr.addons import live as live_view
from gwsvcr.addons.cycles import FreeFinishedStreams
from gwsvcr.addons.flowconv import SUMMARY_LOGGER, add_options, request_of, response_of, session_rules
from gwsvcr.addons.guard import Guard
from gwsvcr.bayeux import is_bayeux
from gwsvcr.cassette import CassetteWriter, Exchange, Header, Omitted, Request, Response, json_bytes, now_iso
from gwsvcr.correlate import Correlator
from gwsvcr.matching import RestMatch
from gwsvcr.options import RECORD
from gwsvcr.record import modes
from gwsvcr.record.bodies import DEFAULT_MAX_BODY, BodyTee, too_large_or_unknown
from gwsvcr.record.modes import RecordMode
from gwsvcr.record.recording import ExchangeTimes, Recorder, WebSocketRecording
from gwsvcr.record.redact import Redactor
from gwsvcr.session import HEADER_KEY
from gwsvcr.version import __version__

logger = logging.getLogger(__name__)
summary = logging.getLogger(SUMMARY_LOGGER)


def upstream_of(mode: str) -> str:
    return mode.split(":", 1)[1] if mode.startswith("reverse:") else mode


def _kept(message: http.Message) -> Omitted | None:
    """A body that streamed through a BodyTee: put back what it kept, so it converts as any other; or, when it was
    too large to keep, what the cassette says instead."""
    tee = message.stream
    if not isinstance(tee, BodyTee):
        return None
    kept = tee.kept
    if kept is None:
        return tee.omitted()
    message.raw_content = kept
    return None


def request_kept(req: http.Request) -> Request:
    omitted = _kept(req)
    request = request_of(req)
    request.omitted = omitted
    return request


def response_kept(resp: http.Response) -> Response:
    omitted = _kept(resp)
    response = response_of(resp)
    response.omitted = omitted
    return response


class GwsRecorder:
    def __init__(self) -> None:
        self.core: Recorder | None = None
        self.opening: tuple[str, Header, bool, str] | None = None  # the cassette to create once listening
        self.is_running = False
        self.failed: str | None = None
        self.sockets: dict[str, WebSocketRecording] = {}
        self.max_body = human.parse_size(DEFAULT_MAX_BODY) or 0

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("gwsvcr_record_cassette", str, "", "Path of the cassette to record into.")
        add_options(loader, RECORD)

    def configure(self, updated: set[str]) -> None:
        if "gwsvcr_record_max_body" in updated:
            try:
                self.max_body = human.parse_size(ctx.options.gwsvcr_record_max_body) or 0
                if self.max_body < 0:
                    raise ValueError("negative")
            except ValueError as e:
                raise exceptions.OptionsError(f"gwsvcr_record_max_body: {ctx.options.gwsvcr_record_max_body!r} is "
                                              "not a size such as 16m, 512k or 1g") from e
            if ctx.options.stream_large_bodies is None:  # hosts not recorded: mitmproxy streams them alike
                ctx.options.update(stream_large_bodies=ctx.options.gwsvcr_record_max_body)
        if not updated & {"gwsvcr_record_cassette", "gwsvcr_record_mode", "gwsvcr_record_correlate",
                          "gwsvcr_record_no_correlate"}:
            return
        path, mode = ctx.options.gwsvcr_record_cassette, RecordMode(ctx.options.gwsvcr_record_mode)
        if not path:
            self.core = None
            logger.debug("gwsvcr recorder: gwsvcr_record_cassette is not set, nothing is recorded")
            return
        if any(m.startswith("reverse:") for m in ctx.options.mode) and ctx.options.connection_strategy != "lazy":
            # Eager (mitmproxy's default) connects upstream when a client connects: an upstream that refuses then
            # drops the client without an answer and nothing is recorded. Lazy connects per request: the client
            # gets a 502 naming the failure and the cassette records it.
            ctx.options.update(connection_strategy="lazy")
        rules = session_rules(ctx.options)
        # a header that identifies a session is a secret too
        redactor = Redactor((*ctx.options.gwsvcr_redact_headers, *rules.headers), tuple(ctx.options.gwsvcr_redact_json))
        match = RestMatch(ignore_query=tuple(ctx.options.gwsvcr_record_ignore_query),
                          match_headers=tuple(ctx.options.gwsvcr_record_match_headers))
        redacted = [h for h in match.match_headers if redactor.redacts_header(h)]
        if redacted:
            raise exceptions.OptionsError(f"cannot match on {', '.join(redacted)}: its values are redacted in the "
                                          "cassette, so replay could never compare them")
        upstream = upstream_of(ctx.options.mode[0]) if ctx.options.mode else ""
        try:
            modes.check_target(path, mode, "--set gwsvcr_record_mode={}")
        except modes.CassetteExists as e:
            raise exceptions.OptionsError(str(e)) from None
        folder = os.path.dirname(os.path.abspath(path))
        if not os.access(folder, os.W_OK):
            why = "no such folder" if not os.path.isdir(folder) else "not writable"
            raise exceptions.OptionsError(f"cannot write cassette {path}: {why} ({folder})")
        self.opening = None
        if mode is not RecordMode.NONE:
            named = {"correlate": ctx.options.gwsvcr_record_correlate,
                     "no_correlate": ctx.options.gwsvcr_record_no_correlate}
            correlation = {name: list(values) for name, values in named.items() if values}
            header = Header(recorded_at=now_iso(), upstream=upstream, recorder=f"gwsvcr {__version__}",
                            redactions=redactor.rules(), extra={HEADER_KEY: rules.to_header()},
                            match={**match.section(), **correlation})
            self.opening = (path, header, mode is RecordMode.NEW_EPISODES, upstream)
        self.core = Recorder(None, redactor, time.time(), rules,
                             on_exchange=self._show if live_view.showing() else None,
                             correlator=Correlator(tuple(ctx.options.gwsvcr_record_correlate),
                                                   tuple(ctx.options.gwsvcr_record_no_correlate)))
        if self.is_running:
            self.running()

    def running(self) -> None:
        """The cassette is created once the proxy listens: a start that fails (a port taken) leaves no file."""
        self.is_running = True
        try:
            self._open()
        except OSError as e:
            raise exceptions.OptionsError(f"cannot write cassette {e.filename}: {e.strerror}") from e

    def _open(self) -> None:
        """Create the cassette (OSError when it cannot be written)."""
        if self.opening is None or self.core is None:
            return
        path, header, append, upstream = self.opening
        self.opening = None
        self.core.writer = CassetteWriter(path, header, append=append, upstream=upstream)

    @staticmethod
    def _show(ex: Exchange) -> None:
        for line in live.recorded_lines(ex):
            live_view.show(line)

    def _recorded(self, flow: http.HTTPFlow) -> bool:
        """Recorded: a request to a host recorded, answered (or failed) by the upstream, not refused here."""
        if flow.is_replay == "response":
            return False
        hosts = ctx.options.gwsvcr_record_hosts
        return not hosts or flow.request.pretty_host in hosts

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.core is not None and self._recorded(flow):
            self._stream_if_large(flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if (self.core is None or not self._recorded(flow) or flow.response is None
                or flow.request.method == "HEAD" or flow.response.status_code in (101, 204, 304)):
            return
        self._stream_if_large(flow.response)

    def _stream_if_large(self, message: http.Message) -> None:
        """A body announced over the limit, or of unknown size, streams through a BodyTee instead of being
        buffered whole: memory stays bounded, and the tee keeps it when it turns out small enough."""
        if callable(message.stream):
            return  # another addon streams it already
        if message.stream or too_large_or_unknown(message.headers.get("content-length"), self.max_body):
            message.stream = BodyTee(self.max_body)

    def response(self, flow: http.HTTPFlow) -> None:
        if self.core is None or not self._recorded(flow) or flow.response is None or flow.websocket is not None:
            return  # a WebSocket upgrade is recorded frame by frame instead
        req, resp = flow.request, flow.response
        timing = ExchangeTimes(req.timestamp_start, req.timestamp_end or req.timestamp_start,
                        resp.timestamp_start, resp.timestamp_end or resp.timestamp_start)
        self._write(flow, lambda: self.core.complete(request_kept(req), response_kept(resp), timing))  # type: ignore

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        if self.core is not None and self._recorded(flow):
            self.sockets[flow.id] = WebSocketRecording(self.core, request_of(flow.request))

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        socket = self.sockets.get(flow.id)
        if socket is None or flow.websocket is None:
            return
        frame = flow.websocket.messages[-1]
        try:
            data = json.loads(frame.content)
        except (ValueError, RecursionError):
            data = None
        messages = [data] if isinstance(data, dict) else data
        if not is_bayeux(messages):  # kept, outside the timeline
            self._write(flow, lambda: socket.other_frame(frame.content, frame.from_client, frame.timestamp))
        elif frame.from_client:
            self._write(flow, lambda: socket.client_frame(messages, frame.timestamp, isinstance(data, dict)))
        else:
            self._write(flow, lambda: socket.server_frame(messages, frame.timestamp))

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        socket = self.sockets.pop(flow.id, None)
        if socket is not None and flow.websocket is not None:
            ws = flow.websocket
            self._write(flow, lambda: socket.close(time.time(), ws.closed_by_client, ws.close_code))

    def error(self, flow: http.HTTPFlow) -> None:
        """The upstream failed: record the failure; mitmproxy answers the client with a 502 naming it."""
        if self.core is None or not self._recorded(flow) or flow.error is None:
            return
        req = flow.request
        end = req.timestamp_end or req.timestamp_start
        # A response without its end is an upstream that broke off mid-reply, not a client that left.
        complete = flow.response is not None and flow.response.timestamp_end is not None
        if complete or "client disconnected" in flow.error.msg.lower():
            reason = f"client gone before the reply ({flow.error.msg})"
        else:
            # Without the query: it may carry a token (access_token=...); the recorded request has it redacted.
            reason = f"upstream {flow.request.pretty_url.split('?', 1)[0]} failed: {flow.error.msg}"
        times = ExchangeTimes(req.timestamp_start, end, None, time.time())
        self._write(flow, lambda: self.core.complete(request_kept(req), None, times, reason))  # type: ignore[union-attr]

    def _write(self, flow: http.HTTPFlow, record) -> None:  # type: ignore[no-untyped-def]
        if self.failed:
            return
        try:
            self._open()  # an exchange that completed before the running hook came
            record()
        except OSError as e:
            # Never let traffic pass unrecorded: answer with the reason and stop the proxy.
            self.failed = f"gwsvcr: cannot write cassette {ctx.options.gwsvcr_record_cassette}: {e.strerror}"
            logger.error(self.failed)
            flow.response = http.Response.make(
                502, json_bytes({"error": self.failed}), {"Content-Type": "application/json"})
            ctx.master.shutdown()

    def done(self) -> None:
        core, self.core = self.core, None  # what the connections cancelled after this say is not recorded
        self.sockets.clear()
        if core is None:
            return
        if core.writer is not None:
            core.writer.close()
        summary.info(core.summary())


addons = [FreeFinishedStreams(), Guard(endpoints=False), GwsRecorder()]
