"""gwsvcr: record and replay Genesys Web Services sessions, CometD long-polls included, with their timing.

The public API: the cassette format (:mod:`gwsvcr.cassette`), the replay core (:mod:`gwsvcr.replay`), the
simulator (:mod:`gwsvcr.sim`), what a client session is (:mod:`gwsvcr.session`), a recorded session's client side
driven against a live server (:mod:`gwsvcr.verify`), the harness API (:func:`replaying`, :func:`recording`, from
:mod:`gwsvcr.api`, imported on first use) and the pytest plugin (:mod:`gwsvcr.pytest_plugin`, registered through
the ``pytest11`` entry point).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gwsvcr.errors import GwsvcrError
from gwsvcr.version import __version__

if TYPE_CHECKING:
    from gwsvcr.api import Recording, Replay, ReplayMiss, ServiceClient, ServiceError, recording, replaying

__all__ = ["GwsvcrError", "Recording", "Replay", "ReplayMiss", "ServiceClient", "ServiceError", "__version__",
           "recording", "replaying"]
_API = frozenset(__all__) - {"GwsvcrError", "__version__"}


def __getattr__(name: str) -> Any:
    """The harness API on first use: ``import gwsvcr`` stays cheap for the command line and the core."""
    if name in _API:
        from gwsvcr import api

        return getattr(api, name)
    raise AttributeError(f"module 'gwsvcr' has no attribute {name!r}")
