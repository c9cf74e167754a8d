"""Run mitmproxy with our addons on a lean engine: one listening line when ready, a clean exit 0 on SIGINT or SIGTERM.

The engine is a plain ``mitmproxy.master.Master`` holding only the mitmproxy addons a command needs (:func:`engine`),
not ``DumpMaster`` with its 34: every addon in the chain costs every hook of every request, used or not.
docs/ENGINE.md says, addon by addon, what each command keeps and why.
"""

from __future__ import annotations

import array
import asyncio
import collections
import dataclasses
import difflib
import errno
import gc
import inspect
import json
import logging
import os
import re
import resource
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
from mitmproxy import addonmanager, ctx, exceptions, hooks, options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    errorcheck,
    next_layer,
    proxyserver,
    tlsconfig,
    update_alt_svc,
)
from mitmproxy.flow import Flow
from mitmproxy.master import Master
from mitmproxy.proxy import events, mode_servers

from gwsvcr import guard, live
from gwsvcr.addons.cycles import FreeFinishedStreams, lean_connection
from gwsvcr.addons.flowconv import NO_UPSTREAM, SUMMARY_LOGGER, request_of
from gwsvcr.addons.guard import Guard
from gwsvcr.replay import status
from gwsvcr.served import PARENT_ENV

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PARENT_CHECK = 0.5  # seconds between looks at the process that started this one (gwsvcr.served.PARENT_ENV)
# Options a command line sets through its own flags: ``--set`` must not contradict them.
OWN_FLAGS = {"mode": "--mode / --upstream", "listen_host": "--host", "listen_port": "--port",
             "gwsvcr_allow_host_header": guard.ALLOW_OPTION}


class OptionError(click.ClickException):
    """A bad option (``--set``, or a value an addon refused at start): a usage error, exit status 2."""

    exit_code = 2


logger = logging.getLogger(__name__)
# How mitmproxy words a listener that could not bind (proxy/mode_servers.py), with its hint in mitmdump's terms.
_LISTEN_FAILED = re.compile(r"failed to listen on (?P<host>.*?):(?P<port>\d+) with (?:\[Errno (?P<errno>\d+)\] )?"
                            r"(?P<reason>[^\n]*)")


def listen_failure(host: str, port: int | str, code: int | None, reason: str) -> str:
    """Why a gwsvcr server could not listen, and which of its options to change."""
    where = f"gwsvcr: cannot listen on {host}:{port}"
    if code == errno.EADDRINUSE:
        return (f"{where}: the port is taken (by another program, or a gwsvcr still running): choose another "
                "with --port, or --port 0 for a free one")
    if code == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges): choose another with --port"
    if code == errno.EADDRNOTAVAIL:
        return f"{where}: no such address on this machine: check --host"
    return f"{where}: {reason.rsplit(': ', 1)[-1] or reason}: check --host and --port"


class StartFailed(click.ClickException):
    """A server that could not start (a port taken): what went wrong in gwsvcr's terms, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class StartCheck(errorcheck.ErrorCheck):
    """mitmproxy's ErrorCheck (Master.run asks the addon named ``errorcheck`` before and after binding) in gwsvcr's
    words: an error logged while starting ends the command with one message naming the gwsvcr option to change
    (``--port``, not mitmdump's ``--mode ...@PORT``, nor the placeholder upstream of a command that has none),
    raised before any addon's ``running`` (so the recorder has written nothing), instead of the error as
    mitmproxy logged it and ``Error logged during startup, exiting...``."""

    name = "errorcheck"

    def __init__(self) -> None:
        super().__init__()
        self.quiet = _DropErrors()
        for _, handler in _OURS:  # stderr (configure_logging): told once, translated, by shutdown_if_errored
            handler.addFilter(self.quiet)

    def finish(self) -> None:
        super().finish()
        for _, handler in _OURS:
            handler.removeFilter(self.quiet)

    async def shutdown_if_errored(self) -> None:
        await asyncio.sleep(0)  # as ErrorCheck: let the logging tasks finish
        if self.logger.has_errored:
            self.finish()
            raise StartFailed("\n".join(self.explain(r.getMessage()) for r in self.logger.has_errored))

    @staticmethod
    def explain(message: str) -> str:
        failed = _LISTEN_FAILED.search(message)
        if failed is None:
            return f"gwsvcr: cannot start: {message}"
        code = int(failed["errno"]) if failed["errno"] else None
        return listen_failure(failed["host"], failed["port"], code, failed["reason"])


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


_ARG_NAMES: dict[type[hooks.Hook], tuple[str, ...]] = {}
_UPDATE = hooks.UpdateHook([])


def hook_args(event: hooks.Hook) -> list[Any]:
    """``event.args()`` (its dataclass fields in order), the field names looked up once per hook class, not through
    ``dataclasses.fields`` for every event: that was 4 % of a replay's time in a burst of logins."""
    names = _ARG_NAMES.get(type(event))
    if names is None:
        names = _ARG_NAMES[type(event)] = tuple(f.name for f in dataclasses.fields(event))  # type: ignore[arg-type]
    return [getattr(event, name) for name in names]


class HookCache(addonmanager.AddonManager):
    """mitmproxy's AddonManager, which looks every hook up on every addon of the chain for every event of every
    request (through two generators and a context manager per addon, and again for the update event after each),
    remembering instead which functions each hook has. A serving command's chain is fixed once it runs (it has no
    script loader), and the lookup is made again whenever an addon is added or removed. An addon's error is logged
    as mitmproxy logs it; AddonHalt stops the event and OptionsError goes up, as in ``trigger_event``."""

    def __init__(self, master: Master) -> None:
        super().__init__(master)
        self._hooks: dict[str, list[Callable[..., Any]]] = {}

    def add(self, *addons: Any) -> None:
        self._hooks.clear()
        super().add(*addons)

    def remove(self, addon: Any) -> None:
        self._hooks.clear()
        super().remove(addon)

    def clear(self) -> None:
        self._hooks.clear()
        super().clear()

    def _funcs(self, event: hooks.Hook) -> list[Callable[..., Any]]:
        funcs = self._hooks.get(event.name)
        if funcs is None:
            funcs = self._hooks[event.name] = [f for a in self.chain for _, f in self._iter_hooks(a, event)]
        return funcs

    async def handle_lifecycle(self, event: hooks.Hook, *, update: bool = True) -> None:
        """As mitmproxy's, without an ``update`` event nobody listens to after each event of a flow. The hooks run in
        this one coroutine, not in a second one awaited from it: a held long-poll waits in its ``request`` hook as
        long as its agent's next event takes, and each coroutine in that chain is a frame kept that long."""
        funcs = self._funcs(event)
        args = hook_args(event) if funcs else []
        for func in funcs:
            try:
                result = func(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except exceptions.AddonHalt:
                break
            except exceptions.OptionsError:
                raise
            except Exception as e:
                logger.error(f"Addon error: {e}", exc_info=True)
        if update and self._funcs(_UPDATE):
            message = (args or hook_args(event))[0]
            if isinstance(message, Flow):
                await self.handle_lifecycle(hooks.UpdateHook([message]), update=False)

    async def trigger_event(self, event: hooks.Hook) -> None:
        await self.handle_lifecycle(event, update=False)


class PromptHooks(mode_servers.ProxyConnectionHandler):
    """mitmproxy's handler of a client connection, which completes a hook that returned at once in the same turn
    of the event loop instead of the next one.

    mitmproxy starts each hook as an eager task: it runs at once, inside the handling of the event that started it,
    while that holds the connection's event lock. A hook that returns at once (every hook of a replay, but the
    request hook of a held long-poll) then waits for the lock to report that it completed, and the lock lets it go
    on only in a later turn of the loop, after everything else that turn brought. A reply set in the request hook
    goes through the response hook first, so it waited for the lock twice (a client in the same loop read it 8
    turns after sending the request, against 4 here: tests/test_busy_loop.py), and each turn of a busy replay is
    every request read in the turn before.
    Here a hook that completed inside the handling of an event is reported right after it, in the same turn, in
    the order mitmproxy would have; one that waited (a held connect) reports as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A list, not a deque: it holds a hook or two at a time, and a deque is 760 bytes even empty, for every
        # connection (an agent has up to four); so are the queues asyncio gives the connection (addons/cycles.py).
        self._completed: list[Any] = []
        lean_connection(self)

    async def hook_task(self, hook: Any) -> None:
        await self.handle_hook(hook)
        if not hook.blocking:
            return
        # Locked only while an event is handled, which never awaits: that handling started this hook. By name: a
        # mitmproxy without the lock reports the hook as it would.
        lock = getattr(self, "_server_event_lock", None)
        if lock is not None and lock.locked():
            self._completed.append(hook)
        else:
            await self.server_event(events.HookCompleted(hook))

    async def server_event(self, event: events.Event) -> None:
        await super().server_event(event)
        completed = self._completed
        while completed:
            await super().server_event(events.HookCompleted(completed.pop(0)))


def prompt_hooks() -> None:
    """Connections from now on get a :class:`PromptHooks` handler (once for the process: it changes nothing else)."""
    if mode_servers.ProxyConnectionHandler is PromptHooks.__mro__[1]:
        mode_servers.ProxyConnectionHandler = PromptHooks  # type: ignore[misc]


class Announce:
    """Prints ``gwsvcr: listening on http://HOST:PORT`` once the port is bound (port 0 picks one). The token of
    gwsvcr's own endpoints (gwsvcr/guard.py) is shown as ``show_token`` says: ``url`` in that URL
    (``http://HOST:PORT/?token=T``, the service's: its control API is what the URL is for), ``status`` on stderr
    with the status URL (the replay's: its URL is its clients' base URL, which must stay as it is)."""

    def __init__(self, on_ready: Callable[[str], None] | None = None, show_token: str | None = None) -> None:
        self.url = ""
        self.on_ready = on_ready
        self.show_token = show_token

    def running(self) -> None:
        addrs = ctx.master.addons.get("proxyserver").listen_addrs()
        host, port = addrs[0][0], addrs[0][1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        token = ctx.master.addons.get("guard").token
        shown = guard.with_token(self.url, token) if self.show_token == "url" else self.url
        click.echo(f"gwsvcr: listening on {shown}")
        sys.stdout.flush()
        if self.show_token == "status":
            click.echo(f"gwsvcr: status at {status.url_with_token(self.url, token)}", err=True)
        if self.on_ready is not None:
            self.on_ready(self.url)


class InFlight:
    """The requests still waiting for their reply (a held long-poll) when the server stops, named on stderr: a stop
    then reads as what it was. An exchange is kept (recorded, counted) when its reply completes; these had none."""

    def __init__(self) -> None:
        self.flows: dict[str, Any] = {}

    def requestheaders(self, flow: Any) -> None:
        self.flows[flow.id] = flow

    def response(self, flow: Any) -> None:
        self.flows.pop(flow.id, None)

    error = response
    websocket_start = requestheaders  # a WebSocket is in flight from its upgrade's reply to its end
    websocket_end = response

    def done(self) -> None:
        waiting = list(self.flows.values())
        self.flows.clear()
        if not waiting:
            return
        now = time.time()
        lines = [live.pending_line(":".join(map(str, f.client_conn.peername[:2])), request_of(f.request),
                                   now - (f.request.timestamp_end or f.request.timestamp_start)) for f in waiting]
        logger.warning("gwsvcr: stopped with %d request%s in flight, left without a reply:\n  %s", len(lines),
                       "s" if len(lines) > 1 else "", "\n  ".join(lines))


def _ignore_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """On the way out the connections still open are cancelled: that is the stop, not an error to print."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


def engine(mode: str) -> list[Any]:
    """The mitmproxy addons under gwsvcr's own for a proxy ``mode`` (docs/ENGINE.md has the table)."""
    addons: list[Any] = [
        core.Core(),  # option checks of the TLS options, the command manager's basics
        proxyserver.Proxyserver(),  # the listening sockets and every connection
        next_layer.NextLayer(),  # which protocol layer a connection gets (HTTP, TLS, CONNECT, WebSocket)
        tlsconfig.TlsConfig(),  # TLS to clients (the CA in confdir) and to upstreams (verified unless --insecure)
        block.Block(),  # block_global / block_private: refuses clients from public addresses
    ]
    if mode != NO_UPSTREAM:  # a real upstream: record, replay --upstream
        addons.append(disable_h2c.DisableH2C())  # an h2c upgrade passed upstream would end the connection
        if mode.startswith("reverse:"):
            addons.append(update_alt_svc.UpdateAltSvc())  # Alt-Svc would send clients around the proxy
    if mode == "regular":
        from mitmproxy.addons import onboarding, proxyauth  # flask and ldap3: only a regular proxy needs them

        addons += [onboarding.Onboarding(), proxyauth.ProxyAuth()]  # http://mitm.it for the CA; proxyauth
    return addons


def apply_sets(opts: options.Options, sets: Sequence[str]) -> None:
    """``--set KEY=VALUE`` as mitmdump reads it, after gwsvcr's own settings; refused clearly when the engine has no
    such option or the command sets it through a flag of its own."""
    for spec in sets:
        key = spec.partition("=")[0].strip()
        if key in OWN_FLAGS:
            raise exceptions.OptionsError(f"--set {key}: set it with {OWN_FLAGS[key]}")
        if key not in opts:
            near = difflib.get_close_matches(key, list(opts.keys()), n=3)
            raise exceptions.OptionsError(
                f"--set {key}: no such option in this gwsvcr command"
                + (f" (did you mean {', '.join(near)}?)" if near else "")
                + "; docs/ENGINE.md lists the mitmproxy addons, and so the options, each command has")
    if sets:
        opts.set(*sets)


def build(addons: Sequence[Any], *, host: str, port: int, mode: str, settings: dict[str, Any],
          sets: Sequence[str] = (), on_ready: Callable[[str], None] | None = None, endpoints: bool = True,
          upstream: bool = True, show_token: str | None = None) -> Master:
    """The master of one serving command, configured; call inside the event loop that will run it. Its guard
    (addons/guard.py) comes before the command's addons; ``endpoints``: it serves gwsvcr's own ``/__gwsvcr__/``
    endpoints (the recorder does not); ``upstream``: a request may go to a real upstream (False: the command
    answers every one itself); ``show_token`` as :class:`Announce` takes it."""
    check = StartCheck()  # first: it catches errors logged while the others configure
    master = Master(options.Options(mode=[mode], listen_host=host, listen_port=port))
    master.addons = HookCache(master)
    prompt_hooks()
    master.addons.add(*engine(mode), FreeFinishedStreams(), Guard(endpoints, upstream), *addons, InFlight(),
                      Announce(on_ready, show_token), check)
    # Nothing upstream: answer at once without connecting, and refuse absurd bodies instead of buffering them.
    base = {"connection_strategy": "lazy", "body_size_limit": "16m"} if mode == NO_UPSTREAM else {}
    master.options.update(**base, **settings)
    apply_sets(master.options, sets)
    return master


class FreezeSurvivors:
    """Garbage collection for thousands of live connections (issue 27). What each collection finds alive is frozen
    (``gc.freeze``), so the next one walks only what was made since: every pass walks about one young generation
    (700 new objects and what died meanwhile among the older ones), and each object that lives is walked once.
    ``gc.freeze`` also zeroes the collection counts, so no middle or full pass comes while this policy freezes.
    At 5,000 long-polling agents, an operation every 10 s: the longest pause in the measured window 5.8-8.0 ms of
    CPU against 15.9-20.0 ms when only full passes froze (each middle pass, then the full one after it, walked the
    same 7,000-11,000 objects), and the collector's CPU per request a third of it; CPython's own thresholds gave
    68-111 ms (docs/BENCHMARKS.md, "Collector pauses at 5,000 agents"). A young pass comes at least every
    :attr:`YOUNG_EVERY` seconds (:meth:`start`), whatever CPython's counts say (the attribute says why).
    Frozen objects are still freed by reference counting; only cyclic garbage among them waits, until everything is
    walked again: once the process's allocated blocks have grown ``grow`` times over since everything was last
    walked, checked once a minute from ``every`` seconds on (the first check takes the measure: what a fleet grew to
    in its first minutes is what it lives on, not garbage). Then nothing is frozen until a full pass has walked
    everything (thresholds 700, 5, 0: it follows the next middle pass; about a second at 5,000 agents: rare, and
    bounded by memory, not by a clock), which freezes what survives. GWSVCR_GC=default keeps CPython's own
    policy."""

    THRESHOLDS = (700, 5, 0)
    CHECK_EVERY = 60.0  # seconds between two counts of the allocated blocks
    # The longest pass a young generation can make, bounded by time: CPython counts a young generation down for
    # every tracked object freed, frozen ones included, so while as many old objects die as new ones live (a fleet
    # in steady state: each answered long-poll frees what the next one makes) the count stays near 0 and the young
    # generation grows unwalked (22,000 objects, 27 ms of CPU, at 5,000 agents): a young pass at least this often.
    YOUNG_EVERY = 0.1

    def __init__(self, every: float = 600.0, grow: float = 2.0) -> None:
        self.every, self.grow = every, grow
        self.walked_at = self.checked_at = self.passed_at = time.monotonic()
        self._tick: asyncio.TimerHandle | None = None
        self.blocks: int | None = None  # allocated blocks after everything was last walked (or at the first check)
        self.walking_all = False
        self.before = gc.get_threshold()
        gc.set_threshold(*self.THRESHOLDS)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """A young pass every :attr:`YOUNG_EVERY` seconds at least, on ``loop``."""
        self._tick = loop.call_later(self.YOUNG_EVERY, self._young, loop)

    def _young(self, loop: asyncio.AbstractEventLoop) -> None:
        if time.monotonic() - self.passed_at >= self.YOUNG_EVERY:
            gc.collect(0)
        self._tick = loop.call_at(self.passed_at + self.YOUNG_EVERY, self._young, loop)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop":
            return
        now = self.passed_at = time.monotonic()
        if self.walking_all:
            if info.get("generation") != 2:
                return  # nothing frozen until the full pass has walked everything
            self.walking_all = False  # that pass walked everything: what survived it is alive
            self.walked_at, self.blocks = now, sys.getallocatedblocks()
        elif now - self.walked_at >= self.every and now - self.checked_at >= self.CHECK_EVERY:
            self.checked_at, blocks = now, sys.getallocatedblocks()
            if self.blocks is None:
                self.blocks = blocks
            elif blocks > self.grow * self.blocks:
                gc.unfreeze()  # the next full pass walks everything
                self.walking_all = True
                return
        gc.freeze()

    def close(self) -> None:
        """The collector as it was (a server run in a process that goes on: a test through click's runner)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        gc.set_threshold(*self.before)
        gc.unfreeze()


class GcStats:
    """How often the collector ran and how long it paused the process, per generation and per minute
    (``gc.callbacks``): the figures bench/ reports as pauses. Each pause is timed twice: on the wall clock (what a
    client waits) and in the thread's CPU time (what the collector did, whatever else ran on the machine). Written
    as JSON when the server stops, to the file GWSVCR_GC_STATS names (a directory: ``gc-PID.json`` in it, one per
    process of ``--workers``). Every pass is kept (:attr:`PASS_FIELDS`), with the objects it left alive in the
    generation it promoted them to, counted after it (outside the pause timed; a count before it would bring the
    objects it walks into the cache and make it look faster: about half as long in a micro-benchmark); for the
    biggest such count, of what kinds. It comes first among the callbacks: what follows it at a pass's end
    (FreezeSurvivors' ``gc.freeze``, a constant-time move of lists) is not timed."""

    ENV = "GWSVCR_GC_STATS"
    KINDS = 12  # the most common kinds of object reported for the pass that left the most alive
    SLOW_MS = 1.0  # passes listed one by one from this long
    # each pass: when it ended (time.monotonic(), a clock every process of the machine shares, so a bench can keep
    # those of its measured window), its generation, wall ms, CPU ms, objects collected (cyclic garbage, what the
    # collector is there for), uncollectable, and the objects in the generation it promoted to, once it ended
    PASS_FIELDS = ("at", "generation", "wall_ms", "cpu_ms", "collected", "uncollectable", "survived")

    def __init__(self, path: str) -> None:
        self.path = path
        self.began = time.monotonic()
        self.started = (0.0, 0.0)
        # per generation: collections, wall seconds in all, longest wall, CPU seconds in all, longest CPU, objects
        # collected
        self.generations = [[0, 0.0, 0.0, 0.0, 0.0, 0] for _ in range(3)]
        self.minutes: dict[int, list[float]] = {}  # minute -> [collections, full ones, longest wall, longest CPU]
        self.passes = array.array("d")  # PASS_FIELDS numbers a pass: not tracked by the collector, 56 bytes a pass
        # every pass of SLOW_MS or longer on the wall clock, any generation: [at, generation, wall ms, CPU ms,
        # collected]
        self.slow: list[list[float]] = []
        self.biggest: dict[str, Any] = {"survived": 0, "kinds": []}

    def _survivors(self, generation: int) -> int:
        """The objects in the generation a pass of ``generation`` promoted what it found alive to (the oldest keeps
        its own); for the biggest count so far, of what kinds."""
        found = gc.get_objects(min(generation + 1, 2))
        if len(found) > self.biggest["survived"]:
            kinds = collections.Counter(map(type, found)).most_common(self.KINDS)
            self.biggest = {"survived": len(found), "generation": generation, "frozen": gc.get_freeze_count(),
                            "kinds": [[f"{k.__module__}.{k.__qualname__}", n] for k, n in kinds]}
        return len(found)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        generation = info.get("generation", 0)
        if phase == "start":
            self.started = (time.perf_counter(), time.thread_time())
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        wall -= self.started[0]
        cpu -= self.started[1]
        stats = self.generations[generation]
        stats[0] += 1
        stats[1] += wall
        stats[2] = max(stats[2], wall)
        stats[3] += cpu
        stats[4] = max(stats[4], cpu)
        collected = info.get("collected", 0)
        stats[5] += collected
        now = time.monotonic()
        at = now - self.began
        if wall * 1000 >= self.SLOW_MS:
            self.slow.append([now, generation, wall * 1000, cpu * 1000, collected])
        self.passes.extend((now, generation, wall * 1000, cpu * 1000, collected, info.get("uncollectable", 0),
                            self._survivors(generation)))
        minute = self.minutes.setdefault(int(at // 60), [0, 0, 0.0, 0.0])
        minute[0] += 1
        minute[1] += generation == 2
        minute[2] = max(minute[2], wall)
        minute[3] = max(minute[3], cpu)

    def report(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "pid": os.getpid(), "began": self.began, "seconds": time.monotonic() - self.began,
            "cpu": usage.ru_utime + usage.ru_stime,
            "thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects()),
            "generations": [{"collections": n, "wall_ms": w * 1000, "longest_ms": lw * 1000, "cpu_ms": c * 1000,
                             "longest_cpu_ms": lc * 1000, "collected": int(k)}
                            for n, w, lw, c, lc, k in self.generations],
            "minutes": [{"minute": k, "collections": int(n), "full": int(f), "longest_ms": lw * 1000,
                         "longest_cpu_ms": lc * 1000} for k, (n, f, lw, lc) in sorted(self.minutes.items())],
            "pass_fields": self.PASS_FIELDS, "passes": self.passes.tolist(), "biggest_pass": self.biggest,
            "slow_passes": self.slow,
        }

    def write(self) -> None:
        path = os.path.join(self.path, f"gc-{os.getpid()}.json") if os.path.isdir(self.path) else self.path
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.report(), out)


_OURS: list[tuple[logging.Logger, logging.Handler]] = []  # the handlers configure_logging added


def configure_logging() -> None:
    """stdout holds the listening line and the stop summaries (logger ``gwsvcr.summary``); stderr everything
    else: gwsvcr's messages (misses, warnings) as they are, mitmproxy's warnings and addon errors prefixed.
    Called again (a second server in one process), it replaces its handlers instead of adding more."""
    for logger, handler in _OURS:
        logger.removeHandler(handler)
    _OURS.clear()
    for name, stream, level, fmt in ((SUMMARY_LOGGER, sys.stdout, logging.INFO, "%(message)s"),
                                     ("gwsvcr", sys.stderr, logging.INFO, "%(message)s"),
                                     (None, sys.stderr, logging.WARNING, "gwsvcr: %(levelname)s: %(message)s")):
        logger = logging.getLogger(name)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(fmt))
        if name is None:  # the root: mitmproxy's and the libraries' records, warnings and worse only
            handler.setLevel(level)
        else:
            logger.setLevel(level)
            logger.propagate = False
        logger.addHandler(handler)
        _OURS.append((logger, handler))


def release_logging() -> None:
    """Take configure_logging's handlers away again, the loggers as they were: a server run in process (a test
    through click's runner) leaves no handler writing gwsvcr's records to a stream nobody reads."""
    for logger, handler in _OURS:
        logger.removeHandler(handler)
        if logger.name != "root":
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
    _OURS.clear()


async def _run(addons: Sequence[Any], host: str, port: int, mode: str, settings: dict[str, Any],
               sets: Sequence[str], on_ready: Callable[[str], None] | None, endpoints: bool, upstream: bool,
               show_token: str | None) -> None:
    configure_logging()
    # Only the process that started this one names it: its own children must not inherit the name.
    parent = os.environ.pop(PARENT_ENV, "")
    owned = parent.isdigit() and int(parent) == os.getppid()  # else inherited from further up: not ours to watch
    # ... or the process that started this one ended while it started (a pytest run over before its background
    # service was up): this one was handed to another parent before it could look, and must not stay.
    orphaned = parent.isdigit() and not owned and not _running(int(parent))
    if owned and show_token == "status":
        show_token = None  # the token came from that process (gwsvcr.served.start): no one else reads stderr for it
    master = build(addons, host=host, port=port, mode=mode, settings=settings, sets=sets, on_ready=on_ready,
                   endpoints=endpoints, upstream=upstream, show_token=show_token)
    freeze = FreezeSurvivors() if os.environ.get("GWSVCR_GC") != "default" else None
    if freeze is not None:
        gc.callbacks.append(freeze)
        freeze.start(asyncio.get_running_loop())
    pauses = GcStats(os.environ[GcStats.ENV]) if os.environ.get(GcStats.ENV) else None
    if pauses is not None:
        gc.callbacks.insert(0, pauses)  # first: it counts what a pass left alive before the freeze moves it
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    watch = asyncio.ensure_future(_end_with_parent(int(parent), master.shutdown)) if owned or orphaned else None
    try:
        await master.run()
    finally:
        loop.set_exception_handler(_ignore_cancelled)
        if watch is not None:
            watch.cancel()
        if pauses is not None:
            gc.callbacks.remove(pauses)
            pauses.write()
        if freeze is not None:  # the process may go on (a server run in process): its collector as it was
            gc.callbacks.remove(freeze)
            freeze.close()


def _running(pid: int) -> bool:
    """Whether process ``pid`` is still there (not a zombie: a parent that ended but was not yet reaped is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc here: whether it exists is all that can be told
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


async def _end_with_parent(parent: int, shutdown: Callable[[], None]) -> None:
    """Stop when the process that started this one is gone (this one then has another parent)."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK)
    try:
        # Nobody reads this process's standard output any more: its stop summary goes nowhere, not into a broken
        # pipe. Its standard error, when it was a pipe to that process, is closed too: then this line cannot be said.
        _to_devnull(sys.stdout)
        try:
            click.echo(f"gwsvcr: the process that started this server (pid {parent}) is gone: stopping", err=True)
        except OSError:
            _to_devnull(sys.stderr)
    finally:
        shutdown()  # whatever the writes did: a server whose owner is gone never stays


def _to_devnull(stream: Any) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


class WideBacklogLoop(asyncio.SelectorEventLoop):
    """The serving commands' event loop: asyncio's, whose listening sockets queue up to :attr:`BACKLOG` connections
    not accepted yet where asyncio's queue 100 (mitmproxy listens with asyncio's default). 500 agents connecting at
    once overflowed that while the loop was busy: the kernel dropped 409 connections (``ListenOverflows``), each
    of which the client's TCP tried again a second later, and their events came a second late. The kernel caps it
    at ``net.core.somaxconn``."""

    BACKLOG = 4096

    async def create_server(self, *args: Any, backlog: int = BACKLOG, **kwargs: Any) -> asyncio.Server:
        return await super().create_server(*args, backlog=max(backlog, self.BACKLOG), **kwargs)


def serve(addons: Sequence[Any], *, host: str, port: int, mode: str = NO_UPSTREAM,
          settings: dict[str, Any] | None = None, sets: Sequence[str] = (),
          on_ready: Callable[[str], None] | None = None, endpoints: bool = True, upstream: bool = True,
          show_token: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM (``endpoints``, ``upstream``, ``show_token``: as :func:`build` takes them).
    Option errors become a clear message and exit 2, never a traceback."""
    warn_if_exposed(host)
    try:
        asyncio.run(_run(addons, host, port, mode, settings or {}, sets, on_ready, endpoints, upstream, show_token),
                    loop_factory=WideBacklogLoop)
    except exceptions.OptionsError as e:
        raise OptionError(str(e)) from None
    except OSError as e:
        raise StartFailed(listen_failure(host, port, e.errno, e.strerror or str(e))) from None
    finally:
        release_logging()


def warn_if_exposed(host: str) -> None:
    if host not in LOOPBACK:
        click.echo(f"gwsvcr: WARNING: listening on {host}, reachable from other machines; cassettes and "
                   "replies may hold customer data. Use --host 127.0.0.1 unless you mean it.", err=True)
