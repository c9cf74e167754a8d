"""The replay service as a mitmproxy addon: one process serves many cassettes, each mounted at run time on a
listener of its own (``http://HOST:PORT`` with the recorded paths unchanged), and a control API under
``/__gwsvcr__/`` on the port the service was started on.

    mitmdump --mode reverse:http://127.0.0.1:9 --set connection_strategy=lazy -s addons/service.py

    POST   /__gwsvcr__/mounts      {"cassette": "/abs/stop.yaml", "timing": "instant"}  -> 201 {"id", "url"}
    GET    /__gwsvcr__/mounts/ID   the mount's status (served, clients, events_released, misses, unused)
    DELETE /__gwsvcr__/mounts/ID   its final status; its listener and its clients' connections closed
    GET    /__gwsvcr__/mounts      every mount's status
    GET    /__gwsvcr__/status      the whole service, and its control socket (gwsvcr.service.ControlSocket)

A mount's listener is one more proxy mode (``reverse:...@PORT``) that mitmproxy's Proxyserver starts and stops at
run time. A request finds its mount from the mode its connection came in on.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.proxy import mode_specs

from gwsvcr.addons import guard
from gwsvcr.addons.cycles import FreeFinishedStreams
from gwsvcr.addons.flowconv import NO_UPSTREAM, SUMMARY_LOGGER, answer, requeue_if_dropped
from gwsvcr.addons.websocket import WebSocketServer, is_upgrade
from gwsvcr.cassette import json_bytes
from gwsvcr.replay import STATUS_PATH
from gwsvcr.service import (
    CONTROL_PREFIX,
    CONTROL_SOCKET,
    KEEP_MB,
    MB,
    MOUNTS_PATH,
    ControlSocket,
    Mount,
    MountError,
    Service,
    parse_mount,
)

logger = logging.getLogger(__name__)
summary = logging.getLogger(SUMMARY_LOGGER)
LISTEN_ATTEMPTS = 5  # a port found free may be taken before we bind it: try another


def free_port(host: str) -> int:
    """A port nothing listens on now (the kernel's pick for port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _reply(flow: http.HTTPFlow, status: int, doc: Any) -> None:
    flow.response = http.Response.make(status, json_bytes(doc), {"Content-Type": "application/json"})
    flow.is_replay = "response"


class ServedMount:
    """A mount with what serving it takes beside its replayer: its proxy mode and its WebSocket clients."""

    def __init__(self, mount: Mount, mode: mode_specs.ProxyMode) -> None:
        self.mount = mount
        self.mode = mode
        self.websockets = WebSocketServer()


class GwsService:
    def __init__(self) -> None:
        self.service = Service()
        self.by_mode: dict[mode_specs.ProxyMode, ServedMount] = {}
        self.by_id: dict[str, ServedMount] = {}
        self.control_socket = ControlSocket(self.control)

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("gwsvcr_service_keep_mb", int, KEEP_MB,
                          "Loaded cassettes the service keeps for their next mount, in megabytes of cassette files.")

    def configure(self, updated: set[str]) -> None:
        if "gwsvcr_service_keep_mb" in updated:
            self.service.cassettes.keep_bytes = max(ctx.options.gwsvcr_service_keep_mb, 0) * MB

    # ------------------------------------------------------------------------------------------- serving
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        served = self.by_mode.get(flow.client_conn.proxy_mode)
        if served is None:
            await self._control(flow)
            return
        if is_upgrade(flow):
            served.websockets.accept(flow)
        elif flow.request.path == STATUS_PATH:
            _reply(flow, 200, served.mount.status())
        else:
            await answer(flow, served.mount.replayer.handle)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        served = self.by_mode.get(flow.client_conn.proxy_mode)
        if served is not None:
            served.websockets.message(flow, served.mount.replayer.bayeux_replies)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        served = self.by_mode.get(flow.client_conn.proxy_mode)
        if served is not None:
            served.websockets.end(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        served = self.by_mode.get(flow.client_conn.proxy_mode)
        if served is not None:
            requeue_if_dropped(flow, served.mount.replayer.bayeux)

    # ------------------------------------------------------------------------------------------- control
    async def running(self) -> None:
        await self.control_socket.start(guard.token())

    async def _control(self, flow: http.HTTPFlow) -> None:
        def body() -> Any:
            try:
                return json.loads(flow.request.get_content(strict=False) or b"")
            except ValueError:
                raise MountError("a mount request is a JSON object with the cassette's absolute path") from None

        status, doc = await self.control(flow.request.method, flow.request.path, body)
        _reply(flow, status, doc)

    async def control(self, method: str, path: str, body: Callable[[], Any]) -> tuple[int, Any]:
        """The answer to a control request, over HTTP or the control socket; ``body()`` is its JSON document."""
        path = path.split("?", 1)[0].rstrip("/")
        try:
            if path == STATUS_PATH and method == "GET":
                return 200, {**self.service.status(), CONTROL_SOCKET: self.control_socket.path}
            if path == MOUNTS_PATH and method == "GET":
                return 200, [m.status() for m in self.service.mounts.values()]
            if path == MOUNTS_PATH and method == "POST":
                mount = await self.mount(body())
                return 201, {"id": mount.id, "url": mount.url}
            if path.startswith(MOUNTS_PATH + "/") and method in ("GET", "DELETE"):
                mount_id = path[len(MOUNTS_PATH) + 1:]
                if method == "GET":
                    return 200, self.service.get(mount_id).status()
                return 200, (await self.unmount(mount_id)).status()
            where = "the control API" if path.startswith(CONTROL_PREFIX.rstrip("/")) else "this control port"
            return 404, {"error": f"{method} {path} is not part of {where}: mount a cassette with "
                                  f"POST {MOUNTS_PATH} and send your client to the url it answers"}
        except MountError as e:
            return e.status, e.as_dict()

    async def mount(self, doc: Any) -> Mount:
        """Mount the cassette a control request names on a listener of its own."""
        mount = self.service.mount(parse_mount(doc))
        # Its cassette lives as long as the mount: kept out of the collector's passes, as replay's is (no collection
        # first: the other mounts are serving; what is frozen is still freed by reference counting, its cycles when
        # cli/serve.py's FreezeSurvivors next walks everything).
        gc.freeze()
        try:
            served = await self._listen(mount)
        except BaseException:
            self.service.unmount(mount.id)
            raise
        self.by_id[mount.id] = served
        return mount

    async def _listen(self, mount: Mount) -> ServedMount:
        proxyserver = ctx.master.addons.get("proxyserver")
        host = ctx.options.listen_host or "127.0.0.1"
        failures = []
        for _ in range(LISTEN_ATTEMPTS):
            # The host named too: under mitmdump the control port may listen on every interface (listen_host
            # empty); a mount never does unless asked to.
            mode = mode_specs.ProxyMode.parse(f"{NO_UPSTREAM}@{host}:{free_port(host)}")
            await self._set_modes([*self._modes(), mode])
            instance = proxyserver.servers[mode]
            if instance.is_running:
                guard.admit(mount.host_names(), mode)
                mount.url = f"http://{'[' + host + ']' if ':' in host else host}:{instance.listen_addrs[0][1]}"
                served = ServedMount(mount, mode)
                self.by_mode[mode] = served
                return served
            failures.append(str(instance.last_exception))
            await self._set_modes(self._modes())  # without the one that failed
        raise MountError(f"cannot listen on {host} for {mount.cassette}: " + "; ".join(failures), status=503)

    def _modes(self) -> list[mode_specs.ProxyMode]:
        """The listeners there are: the ``mode`` option's (the control port) and the mounts'."""
        return [*(mode_specs.ProxyMode.parse(m) for m in ctx.options.mode), *self.by_mode]

    @staticmethod
    async def _set_modes(modes: list[mode_specs.ProxyMode]) -> None:
        """Start and stop listeners until they are ``modes``. The mounts' listeners are not written into the
        ``mode`` option: setting an option deep-copies every option (a third of a mount's cost), and a later
        change of ``mode`` (none in ``gwsvcr service``) would make Proxyserver stop them."""
        await ctx.master.addons.get("proxyserver").servers.update(modes)

    async def unmount(self, mount_id: str) -> Mount:
        """Close the mount's listener and its clients' connections (so a port used again later never reaches a
        stale connection of this mount), then its replayer."""
        self.service.get(mount_id)  # a clear 404 first
        served = self.by_id.pop(mount_id)
        mode = served.mode
        self.by_mode.pop(mode, None)
        guard.forget(mode)
        await self._set_modes(self._modes())
        for handler in list(ctx.master.addons.get("proxyserver").connections.values()):
            if handler.client.proxy_mode == mode and handler.transports.get(handler.client) is not None:
                try:
                    handler.close_connection(handler.client)
                except (AssertionError, KeyError):
                    pass  # not started yet, or gone meanwhile
        return self.service.unmount(mount_id)

    def done(self) -> None:
        self.control_socket.close()
        for mount in self.service.close():
            summary.info("gwsvcr: mount %s (%s): %s", mount.id, mount.cassette,
                         mount.replayer.summary().removeprefix("gwsvcr: "))


addons = [FreeFinishedStreams(), guard.Guard(), GwsService()]
