"""The ``gwsvcr`` command's first step, before click, mitmproxy or the cassette code is imported: a serving command
(record, replay, service, sim) re-runs itself under ``python -O`` here, so that its start pays for the imports once.

mitmproxy type-checks every request and response it builds unless ``__debug__`` is off, which costs about a fifth
of the requests/s (docs/BENCHMARKS.md). The process replaces itself (same pid, same streams); GWSVCR_DEBUG=1 keeps
the checks on. Safe for the serving path: mitmproxy's only assert with a side effect is in Flow.set_state (loading
saved flows), which gwsvcr's servers never call."""

from __future__ import annotations

import os
import sys
from typing import Any

from gwsvcr.optimized import serving_optimized


def main() -> None:
    if wants_optimized(sys.argv):
        script = sys.argv[0]
        entry = ["-m", "gwsvcr"] if script.endswith("__main__.py") or not os.path.isfile(script) else [script]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-O", *entry, *sys.argv[1:]])
    lean_addons_package()
    from gwsvcr.cli.main import main as command

    command(prog_name="gwsvcr")


def wants_optimized(argv: list[str]) -> bool:
    """A serving command started as ``gwsvcr`` or ``python -m gwsvcr`` (gwsvcr.optimized says which), not yet under
    -O."""
    return (bool(argv) and os.path.basename(argv[0]) in ("gwsvcr", "__main__.py") and not sys.flags.optimize
            and bool(sys.executable) and serving_optimized(argv[1:]))


def lean_addons_package() -> None:
    """``mitmproxy.addons`` without running its ``__init__``, which imports all 34 default addons (flask for the
    onboarding page, ldap3 for proxyauth, pyparsing's filter grammar...): a third of every start's imports, for addons
    this engine never holds. The rest of the package (``default_addons``, for mitmdump's own masters in the same
    process) is run on first use of a name the package does not have yet."""
    import importlib
    import importlib.util

    name = "mitmproxy.addons"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)

    def rest_of_package(attr: str) -> Any:
        if importlib.util.find_spec(f"{name}.{attr}") is not None:  # `from mitmproxy.addons import core`
            return importlib.import_module(f"{name}.{attr}")
        del package.__getattr__  # type: ignore[attr-defined]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, attr)

    package.__getattr__ = rest_of_package  # type: ignore[method-assign]
    sys.modules[name] = package
