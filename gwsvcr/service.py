"""The replay service's core: mounts (one :class:`~gwsvcr.replay.Replayer` each, with its own options, state,
misses and unused exchanges), the cassettes they were built from kept loaded, and the control API's documents.

No mitmproxy here: ``addons/service.py`` gives each mount a listener of its own and routes requests to it. A mount
request is the JSON document ``POST /__gwsvcr__/mounts`` carries: ``{"cassette": "/abs/path.yaml", "timing":
"instant", "speed": 1.0, "strict": true, "allow_repeats": true, "json_ignore": [...], ...}``: the cassette and
``gwsvcr replay``'s options, by the names :data:`gwsvcr.options.REPLAY` gives them.

The same control API answers on a Unix socket (:class:`ControlSocket`) for the programs of the user who started the
service, on this machine: the pytest plugin's mount and unmount of every test, without mitmproxy's proxy layers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import guard
from gwsvcr.cassette import CassetteCache, CassetteError
from gwsvcr.errors import GwsvcrError
from gwsvcr.options import REPLAY, OptionProblems, Surface, replay_config
from gwsvcr.replay import Miss, ReplayConfig, Replayer, faults

__all__ = ["CONTROL_PREFIX", "CONTROL_SOCKET", "KEEP_MB", "MB", "MOUNTS_PATH", "MOUNT_OPTIONS", "ControlSocket",
           "Mount", "MountError", "MountRequest", "Service", "is_private_socket", "parse_mount"]

logger = logging.getLogger(__name__)

CONTROL_PREFIX = guard.ENDPOINTS
MOUNTS_PATH = "/__gwsvcr__/mounts"
CONTROL_SOCKET = "control_socket"  # the field of the service's status that names its control socket
CONTROL_LINE_LIMIT = 1024 * 1024  # bytes of one request on the control socket
KEEP_MB = 256  # loaded cassettes kept for their next mount, up to this many megabytes of cassette files
MB = 1024 * 1024

# Every option a mount takes besides its cassette (an upstream is for gwsvcr replay only).
MOUNT_OPTIONS = tuple(o.name for o in REPLAY.on(Surface.MOUNT))


class MountError(GwsvcrError):
    """A mount request the service cannot serve: a bad option, a missing or invalid cassette, an unknown mount."""

    def __init__(self, message: str, problems: list[str] | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"error": str(self), "problems": self.problems}


@dataclass(frozen=True)
class MountRequest:
    cassette: str
    config: ReplayConfig
    allow_host_header: tuple[str, ...] = ()


def parse_mount(doc: Any) -> MountRequest:
    """The mount a control request asks for; :class:`MountError` names every bad field."""
    if not isinstance(doc, dict):
        raise MountError('a mount is a JSON object such as {"cassette": "/abs/path.yaml", "timing": "instant"}')
    problems = []
    cassette = doc.get("cassette")
    if not isinstance(cassette, str) or not os.path.isabs(cassette):
        problems.append(f"cassette must be an absolute path, not {cassette!r}")
    try:
        values = REPLAY.read(doc, Surface.MOUNT, others=("cassette",))
    except OptionProblems as e:
        problems += e.problems
    if problems:
        raise MountError("bad mount request: " + "; ".join(problems), problems)
    return MountRequest(str(cassette), replay_config(values), values["allow_host_header"])


@dataclass
class Mount:
    """One cassette served to its own clients at its own base URL."""

    id: str
    cassette: str
    replayer: Replayer
    allow_host_header: tuple[str, ...] = ()
    url: str = ""
    mounted_at: float = field(default_factory=time.time)

    def host_names(self) -> tuple[str, ...]:
        """The Host names its listener admits besides the service's: its own, its cassette's upstream."""
        header, episodes = self.replayer.cassette.header, self.replayer.cassette.episodes
        return (*self.allow_host_header, *guard.upstream_names(header.upstream, *(e.upstream for e in episodes)))

    def status(self) -> dict[str, Any]:
        """The shape of ``/__gwsvcr__/status`` of ``gwsvcr replay``, with the mount's id, url and cassette."""
        config = self.replayer.config
        return {"id": self.id, "url": self.url, "cassette": self.cassette, "timing": config.timing.value,
                "speed": config.speed, "strict": config.strict, **self.replayer.status()}


class Service:
    """The mounts of one replay service, by id."""

    def __init__(self, keep_bytes: int = KEEP_MB * MB) -> None:
        self.cassettes = CassetteCache(keep_bytes)
        self.mounts: dict[str, Mount] = {}
        self._ids = itertools.count(1)
        self.unmounted = 0

    def mount(self, request: MountRequest) -> Mount:
        """A new mount (its url set by whoever gives it a listener); :class:`MountError` for a bad cassette."""
        try:
            cassette = self.cassettes.get(request.cassette)
        except CassetteError as e:
            raise MountError(f"cannot mount {request.cassette}:\n{e}", [str(p) for p in e.problems]) from None
        for warning in cassette.warnings:
            logger.warning("gwsvcr: warning: %s", warning)
        mount_id = str(next(self._ids))

        def on_miss(miss: Miss) -> None:
            logger.warning("gwsvcr: mount %s (%s): %s", mount_id, request.cassette, miss.text())

        try:
            replayer = Replayer(cassette, request.config, on_miss=on_miss, memo=self.cassettes.memo(cassette))
        except faults.FaultError as e:
            raise MountError(f"cannot mount {request.cassette}: {e}", [str(e)]) from None
        mount = Mount(mount_id, request.cassette, replayer, request.allow_host_header)
        self.mounts[mount_id] = mount
        return mount

    def get(self, mount_id: str) -> Mount:
        mount = self.mounts.get(mount_id)
        if mount is None:
            raise MountError(f"no mount {mount_id!r} (mounted: {', '.join(self.mounts) or 'none'})", status=404)
        return mount

    def unmount(self, mount_id: str) -> Mount:
        """Forget the mount and close its replayer (held connects answered, timers cancelled)."""
        mount = self.get(mount_id)
        del self.mounts[mount_id]
        mount.replayer.close()
        self.unmounted += 1
        return mount

    def status(self) -> dict[str, Any]:
        return {"mounts": [m.status() for m in self.mounts.values()], "unmounted": self.unmounted,
                "cassettes_loaded": len(self.cassettes), "cassette_loads": self.cassettes.loads,
                "cassette_hits": self.cassettes.hits}

    def close(self) -> list[Mount]:
        """Unmount everything; the mounts that were still there."""
        return [self.unmount(mount_id) for mount_id in list(self.mounts)]


# The control API without HTTP: ``handle(method, path, body)`` answers a control request as the HTTP control API
# does, ``body()`` giving the request's JSON document.
Handler = Callable[[str, str, Callable[[], Any]], Awaitable[tuple[int, Any]]]


class ControlSocket:
    """The control API on a Unix socket, for the programs of the user who started the service, on this machine (the
    pytest plugin mounts and unmounts a cassette for every test): the same requests and answers as over HTTP, one JSON
    object a line each way, ``{"token", "method", "path", "body"}`` -> ``{"status", "body"}``, without mitmproxy's
    proxy layers in between (they cost an HTTP control request about 1 ms of the service's CPU before the service's
    own code runs). Not HTTP: mitmproxy stays the only HTTP engine, and the HTTP control API is unchanged.

    Only that user reaches it: the socket (0600) is in a directory of its own (``mkdtemp``: 0700), and every request
    carries the service's token, checked as over HTTP. The service's status names it (``control_socket``) to whoever
    gave the token; a client uses it only when :func:`is_private_socket` says it is this user's own."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.gate = guard.Gate("")
        self.path = ""  # "" when there is none (no Unix sockets here): the HTTP control API only
        self._server: asyncio.AbstractServer | None = None

    async def start(self, token: str) -> None:
        """Listen, for requests that carry ``token`` (none without one: no token, no socket)."""
        if not token or not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid"):
            return
        self.gate = guard.Gate(token)
        try:
            self.path = os.path.join(tempfile.mkdtemp(prefix="gwsvcr-"), "control")
            self._server = await asyncio.start_unix_server(self._serve, self.path, limit=CONTROL_LINE_LIMIT)
            os.chmod(self.path, 0o600)
        except OSError as e:  # no temporary directory, a path too long for a socket, a file system without them
            logger.info("gwsvcr: no control socket (%s): the control API is on HTTP only", e)
            self.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.path:
            shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)
            self.path = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                status, body = await self._answer(line)
                writer.write(json.dumps({"status": status, "body": body}, separators=(",", ":")).encode() + b"\n")
        except (OSError, ValueError):  # the client went away; a line over the limit
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str) \
                or not isinstance(request.get("path"), str):
            return 400, {"error": 'a control request on the socket is one JSON object a line: {"token": ..., '
                                  '"method": "POST", "path": "/__gwsvcr__/mounts", "body": {...}}'}
        token = request.get("token")
        refusal = self.gate.refusal(method=request["method"], host_header=None, origin=None, fetch_site=None,
                                    token=token if isinstance(token, str) else None, content_type="application/json")
        if refusal is not None:
            return refusal.status, refusal.as_dict()
        try:
            return await self.handle(request["method"], request["path"], lambda: request.get("body"))
        except Exception as e:  # as mitmproxy logs an addon's error, and the client hears of it
            logger.error("gwsvcr: control request %s %s failed: %s", request["method"], request["path"], e,
                         exc_info=True)
            return 500, {"error": f"the service failed {request['method']} {request['path']}: {e}"}


def is_private_socket(path: str) -> bool:
    """A socket that only this user can reach: theirs, in a directory of theirs that no one else may enter."""
    if not hasattr(os, "getuid") or not os.path.isabs(path):
        return False
    try:
        sock, directory = os.stat(path), os.stat(os.path.dirname(path))
    except OSError:
        return False
    return (stat.S_ISSOCK(sock.st_mode) and sock.st_uid == directory.st_uid == os.getuid()
            and not directory.st_mode & 0o077)
