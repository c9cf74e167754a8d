"""The replay service's core: mounts (one :class:`~gwsvcr.replay.Replayer` each, with its own options, state,
misses and unused exchanges), the cassettes they were built from kept loaded, and the control API's documents.

No mitmproxy here: ``addons/service.py`` gives each mount a listener of its own and routes requests to it. A mount
request is the JSON document ``POST /__gwsvcr__/mounts`` carries: ``{"cassette": "/abs/path.yaml", "timing":
"instant", "speed": 1.0, "strict": true, "allow_repeats": true, "json_ignore": [...], ...}``: the cassette and
``gwsvcr replay``'s options, by the names :data:`gwsvcr.options.REPLAY` gives them.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import guard
from gwsvcr.cassette import CassetteCache, CassetteError
from gwsvcr.errors import GwsvcrError
from gwsvcr.options import REPLAY, OptionProblems, Surface, replay_config
from gwsvcr.replay import Miss, ReplayConfig, Replayer, faults

__all__ = ["CONTROL_PREFIX", "KEEP_MB", "MB", "MOUNTS_PATH", "MOUNT_OPTIONS", "Mount", "MountError",
           "MountRequest", "Service", "parse_mount"]

logger = logging.getLogger(__name__)

CONTROL_PREFIX = guard.ENDPOINTS
MOUNTS_PATH = "/__gwsvcr__/mounts"
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
