"""gwsvcr: record and replay Genesys Web Services sessions, CometD long-polls included, with their timing.

The public API: the cassette format (:mod:`gwsvcr.cassette`), the replay core (:mod:`gwsvcr.replay`), the
simulator (:mod:`gwsvcr.sim`), what a client session is (:mod:`gwsvcr.session`), a recorded session's client side
driven against a live server (:mod:`gwsvcr.verify`), and the pytest plugin (:mod:`gwsvcr.pytest_plugin`, registered
through the ``pytest11`` entry point).
"""

from gwsvcr.errors import GwsvcrError

__version__ = "0.1.0"

__all__ = ["GwsvcrError", "__version__"]
