"""Run mitmproxy with our addons: one listening line when ready, a clean exit 0 on SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from mitmproxy import ctx, exceptions, options
from mitmproxy.tools.dump import DumpMaster

from gwsvcr.addons.flowconv import SUMMARY_LOGGER

# Replay and simulation answer every request themselves; this upstream is never contacted.
NO_UPSTREAM = "reverse:http://127.0.0.1:9"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class Announce:
    """Prints ``gwsvcr: listening on http://HOST:PORT`` once the port is bound (port 0 picks one)."""

    def __init__(self, on_ready: Callable[[str], None] | None = None) -> None:
        self.url = ""
        self.on_ready = on_ready

    def running(self) -> None:
        addrs = ctx.master.addons.get("proxyserver").listen_addrs()
        host, port = addrs[0][0], addrs[0][1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        click.echo(f"gwsvcr: listening on {self.url}")
        sys.stdout.flush()
        if self.on_ready is not None:
            self.on_ready(self.url)


def warn_if_exposed(host: str) -> None:
    if host not in LOOPBACK:
        click.echo(f"gwsvcr: WARNING: listening on {host}, reachable from other machines; cassettes and "
                   "replies may hold customer data. Use --host 127.0.0.1 unless you mean it.", err=True)


def configure_logging() -> None:
    """stdout holds the listening line and the stop summaries (logger ``gwsvcr.summary``); stderr everything
    else: gwsvcr's messages (misses, warnings) as they are, mitmproxy's warnings and addon errors prefixed."""
    summary = logging.StreamHandler(sys.stdout)
    summary.setFormatter(logging.Formatter("%(message)s"))
    summary_logger = logging.getLogger(SUMMARY_LOGGER)
    summary_logger.addHandler(summary)
    summary_logger.setLevel(logging.INFO)
    summary_logger.propagate = False
    ours = logging.StreamHandler(sys.stderr)
    ours.setFormatter(logging.Formatter("%(message)s"))
    gwsvcr_logger = logging.getLogger("gwsvcr")
    gwsvcr_logger.addHandler(ours)
    gwsvcr_logger.setLevel(logging.INFO)
    gwsvcr_logger.propagate = False
    theirs = logging.StreamHandler(sys.stderr)
    theirs.setLevel(logging.WARNING)
    theirs.setFormatter(logging.Formatter("gwsvcr: %(levelname)s: %(message)s"))
    logging.getLogger().addHandler(theirs)


async def _run(addons: Sequence[Any], host: str, port: int, mode: str, settings: dict[str, Any],
               on_ready: Callable[[str], None] | None) -> None:
    configure_logging()
    opts = options.Options(mode=[mode], listen_host=host, listen_port=port)
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    master.addons.add(*addons, Announce(on_ready))
    # Nothing upstream: answer at once without connecting, and refuse absurd bodies instead of buffering them.
    base = {"connection_strategy": "lazy", "body_size_limit": "16m"} if mode == NO_UPSTREAM else {}
    master.options.update(**base, **settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


def serve(addons: Sequence[Any], *, host: str, port: int, mode: str = NO_UPSTREAM,
          settings: dict[str, Any] | None = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Option errors become a clear message and exit 2, never a traceback."""
    warn_if_exposed(host)
    try:
        asyncio.run(_run(addons, host, port, mode, settings or {}, on_ready))
    except exceptions.OptionsError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror}") from None
