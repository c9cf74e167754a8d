"""The GWS simulator as a mitmproxy addon: every request is answered here, nothing goes upstream.

    mitmdump --mode reverse:http://127.0.0.1:9 --set connection_strategy=lazy -s addons/simulator.py
"""

from __future__ import annotations

from collections.abc import Sequence

from mitmproxy import ctx, exceptions, http

from gwsvcr import gws
from gwsvcr.addons.cycles import FreeFinishedStreams
from gwsvcr.addons.flowconv import answer, requeue_if_dropped
from gwsvcr.addons.guard import Guard
from gwsvcr.addons.websocket import WebSocketServer, is_upgrade
from gwsvcr.sim import Simulator, knobs


class GwsSimulator:
    def __init__(self) -> None:
        self.core = Simulator()
        self.websockets = WebSocketServer()

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("gwsvcr_sim_event_delay_ms", int, 250,
                          "Delay between an operation's reply and its CometD notification, in milliseconds.")
        loader.add_option("gwsvcr_sim_user", str, "", "The only user name accepted (empty: any user).")
        loader.add_option("gwsvcr_sim_password", str, "", "The password of gwsvcr_sim_user.")
        loader.add_option("gwsvcr_sim_recording_state", str, "Recording",
                          "Recording state of each agent's call at the start.", choices=list(gws.RECORDING_STATES))
        loader.add_option("gwsvcr_sim_drop_notification", Sequence[str], [],
                          "Operations (e.g. StopCallRecording) whose notification is never sent.")
        loader.add_option("gwsvcr_sim_wrong_state", Sequence[str], [],
                          "OP=STATE: the notification of operation OP reports this recordingState instead.")
        loader.add_option("gwsvcr_sim_extra_delay_ms", Sequence[str], [],
                          "OP=MS: the notification of operation OP comes this many milliseconds later.")
        loader.add_option("gwsvcr_sim_refuse", Sequence[str], [],
                          "OP=HTTP[:STATUSCODE]: operation OP is refused with this HTTP status and GWS statusCode "
                          "(default 2).")
        loader.add_option("gwsvcr_sim_new_call_ids", bool, False,
                          "Give each agent's call a new id (GET /api/v2/me/calls tells it) instead of the seed's.")
        loader.add_option("gwsvcr_sim_forget_after", Sequence[str], [],
                          "Operations after whose notification the agent's CometD sessions are forgotten, as a node "
                          "restart does: the next connect meets an unknown client and is told to handshake again.")

    def configure(self, updated: set[str]) -> None:
        if any(name.startswith("gwsvcr_sim_") for name in updated):
            self._configure_knobs()
        names = {"gwsvcr_sim_event_delay_ms", "gwsvcr_sim_user", "gwsvcr_sim_password", "gwsvcr_sim_recording_state"}
        if not names & updated:
            return
        if ctx.options.gwsvcr_sim_event_delay_ms < 0:
            raise exceptions.OptionsError("gwsvcr_sim_event_delay_ms must be 0 or more")
        if bool(ctx.options.gwsvcr_sim_user) != bool(ctx.options.gwsvcr_sim_password):
            raise exceptions.OptionsError("gwsvcr_sim_user and gwsvcr_sim_password go together")
        cfg = self.core.config
        cfg.event_delay = ctx.options.gwsvcr_sim_event_delay_ms / 1000
        cfg.user = ctx.options.gwsvcr_sim_user or None
        cfg.password = ctx.options.gwsvcr_sim_password or None
        cfg.recording_state = ctx.options.gwsvcr_sim_recording_state

    def _configure_knobs(self) -> None:
        o = ctx.options
        try:
            self.core.config.knobs = knobs.parse(o.gwsvcr_sim_drop_notification, o.gwsvcr_sim_wrong_state,
                                                 o.gwsvcr_sim_extra_delay_ms, o.gwsvcr_sim_refuse,
                                                 o.gwsvcr_sim_new_call_ids, o.gwsvcr_sim_forget_after)
        except ValueError as e:
            raise exceptions.OptionsError(f"gwsvcr_sim options: {e}") from e

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        if is_upgrade(flow):
            self.websockets.accept(flow)
            return
        await answer(flow, self.core.handle)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        self.websockets.message(flow, self.core.bayeux_replies)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.websockets.end(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        requeue_if_dropped(flow, self.core.bayeux)

    def done(self) -> None:
        self.core.bayeux.close()


addons = [FreeFinishedStreams(), Guard(), GwsSimulator()]
