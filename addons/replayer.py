"""The replayer as a mitmproxy addon: the cassette answers every request; nothing reaches the network unless
lenient mode sends a miss to an upstream.

    mitmdump --mode reverse:http://127.0.0.1:9 --set connection_strategy=lazy -s addons/replayer.py \\
        --set gwsvcr_replay_cassette=cassettes/stop_call_recording.yaml
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Sequence

from mitmproxy import ctx, exceptions, http

from gwsvcr import guard as rules
from gwsvcr import live, wire
from gwsvcr.addons import guard
from gwsvcr.addons import live as live_view
from gwsvcr.addons.cycles import FreeFinishedStreams
from gwsvcr.addons.flowconv import (
    SUMMARY_LOGGER,
    add_options,
    answer,
    option_values,
    request_of,
    requeue_if_dropped,
    response_of,
)
from gwsvcr.addons.websocket import WebSocketServer, is_upgrade
from gwsvcr.cassette import CassetteCache, CassetteError, CassetteWriter, Request, json_bytes
from gwsvcr.options import REPLAY, replay_config
from gwsvcr.record.recording import ExchangeTimes, Recorder
from gwsvcr.record.redact import Redactor
from gwsvcr.replay import HEALTH_PATH, STATUS_PATH, Replayer, status
from gwsvcr.replay.faults import FaultError

logger = logging.getLogger(__name__)
summary = logging.getLogger(SUMMARY_LOGGER)


def _peer(flow: http.HTTPFlow) -> str:
    """The client's address, as mitmdump's flow list shows it."""
    host, port = flow.client_conn.peername[:2] if flow.client_conn.peername else ("?", 0)
    return f"{host}:{port}"


class GwsReplayer:
    def __init__(self) -> None:
        self.core: Replayer | None = None
        self.appender: Recorder | None = None
        self.websockets = WebSocketServer()
        self.in_a_whole = False  # started with peers (a worker of --workers, a host of a multi-host layout)
        self.loaded = CassetteCache()  # the last cassette: parsed again only when its file changed
        self.stopped = False  # done: what the core lets go of now is not shown
        self.shown = self._show  # made once: answer() keeps it through a held connect

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("gwsvcr_replay_cassette", str, "", "Path of the cassette to replay.")
        add_options(loader, REPLAY)
        loader.add_option("gwsvcr_replay_upstream", str, "",
                          "Lenient mode: where unmatched requests go (empty: answered 404 here); their "
                          "exchanges are appended to the cassette as a new episode.")
        loader.add_option("gwsvcr_replay_peers", Sequence[str], [],
                          "Other replays of the same cassette (base URLs, or @FILE listing them): the status "
                          "adds up their figures (?local=1: this replay's own).")

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith(("gwsvcr_replay_", "gwsvcr_session_")) for name in updated):
            return
        path = ctx.options.gwsvcr_replay_cassette
        if not path:
            self.core = None
            logger.debug("gwsvcr replayer: gwsvcr_replay_cassette is not set, nothing is replayed")
            return
        values = option_values(ctx.options, REPLAY)
        try:
            cassette = self.loaded.get(path)
        except CassetteError as e:
            raise exceptions.OptionsError(f"cannot replay {path}:\n{e}") from e
        for warning in cassette.warnings:
            logger.warning("gwsvcr: warning: %s", warning)
        config = replay_config(values, has_upstream=bool(ctx.options.gwsvcr_replay_upstream))
        try:
            core = Replayer(cassette, config, show=live_view.show if live_view.showing() else None)
        except FaultError as e:
            raise exceptions.OptionsError(f"cannot replay {path}: {e}") from e
        if self.core is not None:
            self.core.close()
        self.core = core
        self.in_a_whole = bool(ctx.options.gwsvcr_replay_peers)
        guard.admit(rules.upstream_names(cassette.header.upstream, *(e.upstream for e in cassette.episodes)))
        # The cassette lives as long as the process: keep the collector from walking it again and again
        # (full passes of ~110 ms each under load were the p99 of event timing in the soak).
        gc.collect()
        gc.freeze()

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """What answers ``flow`` (mitmproxy awaits it), not a coroutine of its own: a held connect keeps one frame
        less."""
        if self.core is None or flow.response is not None:
            return None
        if is_upgrade(flow):
            self.websockets.accept(flow)
            return None
        route = flow.request.path.partition("?")[0]
        if route in (STATUS_PATH, HEALTH_PATH):
            return self.own_endpoint(flow, route)
        # answer() tells the events a reply causes when the reply was written to the client (when_written).
        # No answer: a lenient miss goes to the upstream.
        return answer(flow, self.core.handle, self.shown if live_view.showing() else None)

    async def own_endpoint(self, flow: http.HTTPFlow, route: str) -> None:
        local = flow.request.query.get("local") == "1"
        figures = await self.figures(flow, local=local) if route == STATUS_PATH else {"ok": True}
        flow.response = http.Response.make(200, json_bytes(figures), {"Content-Type": "application/json"})
        flow.is_replay = "response"

    def _show(self, flow: http.HTTPFlow, request: Request, served: wire.Served) -> None:
        """The live view's line for an exchange the replay answered (a lenient miss: when the upstream has)."""
        if (served.response is not None or served.cut is not None) and not self.stopped:  # not at stop
            closed = None if served.cut is None else f"closed without a reply ({served.cut})"
            arrived = flow.request.timestamp_end or flow.request.timestamp_start
            live_view.show(live.exchange_line(_peer(flow), request, served.response, closed,
                                              hold=time.time() - arrived))

    async def figures(self, flow: http.HTTPFlow, *, local: bool) -> dict[str, object]:
        """This replay's figures; with peers (and not asked for its own only), the whole: its own and theirs."""
        assert self.core is not None
        own = self.core.status()
        peers = status.peer_urls(ctx.options.gwsvcr_replay_peers)
        if local or not peers:
            return own
        host, port = flow.client_conn.sockname[:2]  # where this replay accepted the request: its own address
        me = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        parts = await asyncio.to_thread(status.gather, peers, guard.token())
        return status.combine([status.Part(me, own), *parts])

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if self.core is not None:
            self.websockets.message(flow, self.core.bayeux_replies)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.websockets.end(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        """A lenient miss answered by the upstream is appended to the cassette as a new episode."""
        if (self.core is None or flow.is_replay == "response" or flow.response is None
                or not ctx.options.gwsvcr_replay_upstream):
            return
        if self.appender is None:
            upstream = ctx.options.gwsvcr_replay_upstream
            writer = CassetteWriter(ctx.options.gwsvcr_replay_cassette, append=True, upstream=upstream)
            self.appender = Recorder(writer, Redactor(self.core.rules.headers), time.time(), self.core.rules)
        req, resp = flow.request, flow.response
        request, response = request_of(req), response_of(resp)
        if live_view.showing():
            live_view.show(live.exchange_line(_peer(flow), request, response,
                                              miss=f"answered by {ctx.options.gwsvcr_replay_upstream}"))
        self.appender.complete(request, response, ExchangeTimes(
            req.timestamp_start, req.timestamp_end or req.timestamp_start, resp.timestamp_start,
            resp.timestamp_end or resp.timestamp_start))

    def error(self, flow: http.HTTPFlow) -> None:
        if self.core is not None:
            requeue_if_dropped(flow, self.core.bayeux)

    @property
    def failed(self) -> bool:
        """Strict replay with a miss, recorded recovery unused or a fault that never struck: the run failed (exit
        status 1). A replay with peers fails on its own misses only: another may have replayed the recovery or met
        the fault (the whole is judged where it is added up: cli/workers.py, /__gwsvcr__/status)."""
        if self.core is None:
            return False
        if self.in_a_whole:
            return self.core.config.strict and bool(self.core.misses)
        return self.core.failed

    def done(self) -> None:
        self.stopped = True
        if self.core is not None:
            summary.info(self.core.summary())
            self.core.close()
        if self.appender is not None and self.appender.writer is not None:
            self.appender.writer.close()
            summary.info("gwsvcr: appended %d upstream exchanges to %s", self.appender.stats.exchanges,
                         ctx.options.gwsvcr_replay_cassette)


addons = [FreeFinishedStreams(), guard.Guard(), GwsReplayer()]
