"""Which gwsvcr commands run under ``python -O``, in one place for the two that start them: the ``gwsvcr`` entry
(cli/entry.py re-runs a serving command so) and :func:`gwsvcr.served.gwsvcr_command` (starts it so at once). Nothing
is imported here beyond the standard library: the entry asks before anything else is loaded."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence

SERVING = frozenset({"record", "replay", "service", "sim"})


def serving_optimized(args: Sequence[str]) -> bool:
    """Whether ``gwsvcr ARGS`` runs under ``python -O``: a serving command (not its help), GWSVCR_DEBUG unset (it
    keeps mitmproxy's type checks), where ``python -O`` finds mitmproxy's bytecode."""
    return (bool(args) and args[0] in SERVING and "--help" not in args[1:] and "-h" not in args[1:]
            and not os.environ.get("GWSVCR_DEBUG") and optimized_bytecode())


def optimized_bytecode() -> bool:
    """Whether ``python -O`` finds mitmproxy's bytecode (``.opt-1.pyc``) or may write it: with PYTHONDONTWRITEBYTECODE
    and no such cache, every start would compile mitmproxy anew (a second or more: not worth it). ``make venv``
    compiles it. mitmproxy is found, not imported."""
    if not sys.dont_write_bytecode:
        return True
    spec = importlib.util.find_spec("mitmproxy")  # a top-level package: found, not imported
    if spec is None or not spec.submodule_search_locations:
        return False
    source = os.path.join(next(iter(spec.submodule_search_locations)), "http.py")
    return os.path.exists(importlib.util.cache_from_source(source, optimization=1))
