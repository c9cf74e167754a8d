"""The guard of every serving command: the rules of ``gwsvcr/guard.py`` applied to every request a reverse-mode
listener gets (WebSocket upgrades included), in ``requestheaders``, before a body is read or anything goes upstream.
It is first in every serving chain (cli/serve.py ``build``; the ``addons`` list of each serving module for
``mitmdump -s``), so no serving addon has to remember it: a refused request already has its 403, and every
addon's request hook leaves a flow that has a response alone. A regular proxy is not guarded: there the Host is
the site's the client asked for.

mitmproxy puts the upstream's address into ``Host`` in reverse mode before any hook runs, so the client's would be
lost: the guard turns ``keep_host_header`` on, checks the client's Host, and then writes the upstream's back (and
names the upstream in TLS SNI) as mitmproxy would have, unless the user set ``keep_host_header`` themselves. A
command that answers every request itself (replay without --upstream, sim, service) leaves its addons the
client's Host (no core reads it): that saves the rewrite, a few microseconds per request.

Serving addons add names the rule admits (:func:`admit`): the replayer its cassette's upstream, the service each
mount's upstream and ``allow_host_header``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mitmproxy import ctx, http
from mitmproxy.net.http import url
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.mode_specs import ProxyMode, ReverseMode

from gwsvcr import guard
from gwsvcr.addons.flowconv import add_options, option_values
from gwsvcr.cassette import json_bytes
from gwsvcr.options import GUARD
from gwsvcr.replay.status import HEALTH_PATH

logger = logging.getLogger(__name__)
_TLS_SCHEMES = ("https", "http3", "quic", "tls", "dtls")  # the upstreams mitmproxy gives an SNI in reverse mode
_TOLD_AT_MOST = 100  # distinct refusals logged; after that a flood of them stays quiet


class Guard:
    def __init__(self, endpoints: bool = True, upstream: bool = True) -> None:
        """``endpoints``: the server has gwsvcr's own ``/__gwsvcr__/`` endpoints to gate (not the recorder, which
        passes every path upstream); ``upstream``: a request may go to a real upstream (False: the command answers
        every one itself)."""
        self.token = guard.token_from_environment()
        self.gate = guard.Gate(self.token, frozenset({HEALTH_PATH})) if endpoints else None
        self.upstream = upstream
        self.keep_host = False  # the user's keep_host_header
        self.admitted: dict[ProxyMode | None, tuple[str, ...]] = {}  # None: every listener
        self.rules: dict[ProxyMode, guard.HostRule] = {}
        self.allowed: tuple[str, ...] = ()  # --allow-host-header
        self.told: set[tuple[str, str]] = set()
        self._forcing: bool | None = None  # None until the guard took keep_host_header over

    def load(self, loader):  # type: ignore[no-untyped-def]
        add_options(loader, GUARD)  # gwsvcr_allow_host_header (gwsvcr/options.py)

    def configure(self, updated: set[str]) -> None:
        if self._forcing is None or ("keep_host_header" in updated and not self._forcing):
            self._see_the_clients_host()
        if updated & {"gwsvcr_allow_host_header", "listen_host", "mode"}:
            self.allowed = option_values(ctx.options, GUARD)["allow_host_header"]
            self.rules.clear()

    def running(self) -> None:
        if self._forcing is None:  # no option was ever set (an in-process master built without settings)
            self._see_the_clients_host()

    def _see_the_clients_host(self) -> None:
        """Remember whether the user wants mitmproxy to keep the client's Host, and make it keep it for the check."""
        self.keep_host = ctx.options.keep_host_header
        self._forcing = True
        try:
            if not self.keep_host:
                ctx.options.update(keep_host_header=True)
        finally:
            self._forcing = False

    def admit(self, names: Iterable[str], listener: ProxyMode | None = None) -> None:
        """Admit ``names`` on ``listener`` (None: on every listener), in place of those admitted there before."""
        self.admitted[listener] = tuple(names)
        self.rules.clear()

    def forget(self, listener: ProxyMode) -> None:
        self.admitted.pop(listener, None)
        self.rules.pop(listener, None)

    def _rule(self, mode: ReverseMode) -> guard.HostRule:
        rule = self.rules.get(mode)
        if rule is None:
            rule = self.rules[mode] = guard.HostRule.of([
                mode.listen_host(ctx.options.listen_host), mode.address[0], *self.allowed,
                *self.admitted.get(None, ()), *self.admitted.get(mode, ())])
        return rule

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        mode = flow.client_conn.proxy_mode
        if not isinstance(mode, ReverseMode):
            return
        req = flow.request
        host = req.host_header
        refusal = self._rule(mode).refusal(host)
        if refusal is None and self.gate is not None and self.gate.covers(req.path):
            refusal = self.gate.refusal(method=req.method, host_header=host, origin=req.headers.get("origin"),
                                        fetch_site=req.headers.get("sec-fetch-site"),
                                        token=req.headers.get(guard.TOKEN_HEADER) or req.query.get(guard.TOKEN_QUERY),
                                        content_type=req.headers.get("content-type"))
        if refusal is not None:
            self._refuse(flow, refusal)
        elif self.upstream and not self.keep_host:
            server = flow.server_conn
            assert server.address is not None
            req.host_header = url.hostport("https" if server.tls else "http", *server.address)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        mode = data.client.proxy_mode
        if (not self.keep_host and isinstance(mode, ReverseMode) and mode.scheme in _TLS_SCHEMES
                and data.server.sni is None):
            data.server.sni = mode.address[0]

    def _refuse(self, flow: http.HTTPFlow, refusal: guard.Refusal) -> None:
        flow.response = http.Response.make(refusal.status, json_bytes(refusal.as_dict()),
                                           {"Content-Type": "application/json"})
        flow.is_replay = "response"
        told = (refusal.refused, guard.host_of(flow.request.host_header or ""))
        if told not in self.told and len(self.told) < _TOLD_AT_MOST:
            self.told.add(told)
            logger.warning("gwsvcr: %s %s: %s", flow.request.method, flow.request.path.partition("?")[0],
                           refusal.error)


def _this() -> Guard | None:
    """This master's guard (None in a test context that has none)."""
    found = ctx.master.addons.get("guard") if hasattr(ctx, "master") else None
    return found if isinstance(found, Guard) else None


def admit(names: Iterable[str], listener: ProxyMode | None = None) -> None:
    """Admit ``names`` on this master's guard, as :meth:`Guard.admit`."""
    if (this := _this()) is not None:
        this.admit(names, listener)


def forget(listener: ProxyMode) -> None:
    if (this := _this()) is not None:
        this.forget(listener)


def token() -> str:
    """The token of this master's endpoints, which its peers share ("" without a guard)."""
    this = _this()
    return this.token if this is not None else ""
