"""The benchmark figures: what they share (the run's :class:`Context`, a :class:`Figure`, the formatting of its
tables, the recordings every figure replays, the servers a load figure keeps up). The figures live by what they
measure: ``sessions`` (1 timing, 6 instant, 7 memory), ``proxies`` (2 throughput, 3 recorder), ``cassettes``
(4 load time, 5 matching), ``capacity`` (8 fleet, 10 workers); bench/suite.py is figure 9. Each returns a
:class:`Figure`: markdown tables, notes and the raw numbers.

Every figure is measured against its peer in the same run, on loopback, with real processes; each run is
repeated ``ctx.runs`` times (tool order alternating between runs) and medians are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import harness
import loadgen
from bayeux_client import CALL_ID, SHORT_OPS, Batch, long_ops, run_sessions
from harness import BenchError, Server, gwsvcr, mitmdump, percentile

from gwsvcr.cassette import json_bytes

HERE = Path(__file__).resolve().parent.parent  # bench/
OP_PATH = f"/api/v2/me/calls/{CALL_ID}"
STOP_BODY = json_bytes({"operationName": "StopCallRecording"})


# ------------------------------------------------------------------------------------------------- context


@dataclass
class Recording:
    tool: str  # gwsvcr | mitmdump
    path: Path
    user: str
    ops: tuple[str, ...]
    delays: list[float]  # client-observed delay of each operation's event while recording (seconds)
    duration: float  # client-observed session duration while recording (seconds)
    requests: int


@dataclass
class Context:
    work: Path
    quick: bool
    runs: int
    log: Any
    recordings: dict[tuple[str, str], Recording] = field(default_factory=dict)  # (kind, tool)
    memory_sessions: list[dict[str, Any]] = field(default_factory=list)  # from figure 1's biggest level
    warm_caches: dict[int, Path] = field(default_factory=dict)  # events -> primed cache dir (figure 4)
    synthetic: dict[int, Path] = field(default_factory=dict)
    retries: list[str] = field(default_factory=list)  # measurements repeated (a server ended under us)
    max_events: int = 100_000
    fleet_levels: list[int] = field(default_factory=lambda: [2000, 4000, 6000, 8000, 9500, 10_000])
    fleet_workers: list[int] = field(default_factory=lambda: [1, 2])  # gwsvcr replay --workers N
    workers_levels: list[int] = field(default_factory=lambda: [2000, 2500, 3000, 3500, 4000, 5000, 6000, 7000,
                                                                8000, 9000])
    workers_period: float = 10.0
    fleet_period: float = 30.0  # seconds between one agent's operations
    fleet_steady: float = 30.0  # seconds of the measured window
    fleet_login_rate: float = 120.0  # agents logging in per second during the ramp

    @property
    def levels(self) -> list[int]:
        return [1, 8] if self.quick else [1, 100, 500]

    @property
    def load_seconds(self) -> float:
        return 1.0 if self.quick else 2.0

    @property
    def long_ops(self) -> int:
        return 24  # quick mode replays the short session instead (no long recording)

    @property
    def warmup(self) -> bool:
        return not self.quick

    @property
    def load_sizes(self) -> list[int]:
        sizes = [100, 300] if self.quick else [1000, 10_000, 100_000]
        return [n for n in sizes if n <= self.max_events] or sizes[:1]

    @property
    def match_sizes(self) -> list[int]:
        return [10, 100, 1000] if self.quick else [10, 1000, 100_000]

    @property
    def memory_events(self) -> int:
        return 1000 if self.quick else 10_000


@dataclass
class Figure:
    key: str
    title: str
    tables: list[str]
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        parts = list(self.tables)
        if self.notes:
            parts.append("\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts)


# ----------------------------------------------------------------------------------------------- formatting


def ms(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x * 1000:.{digits}f} ms"


def num(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def ratio(x: float | None, y: float | None) -> float | None:
    if x is None or y is None or y == 0:
        return None
    return x / y


def rx(r: float | None, digits: int = 2) -> str:
    if r is None:
        return "n/a"
    while digits < 4 and r != 1.0 and round(r, digits) == 1.0:
        digits += 1  # 0.998x must not read as 1.00x next to a missed goal
    return f"{r:.{digits}f}x"


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def attempt(ctx: Context, label: str, fn: Any) -> Any:
    """Run one measurement; if it fails (typically: a server ended under us, the machine is shared), say so
    and run it once more. A second failure is a failure."""
    try:
        return fn()
    except (BenchError, RuntimeError, OSError, aiohttp.ClientError) as e:
        ctx.retries.append(f"{label}: {' '.join(str(e).split())[:200]}")
        ctx.log(f"{label} failed ({' '.join(str(e).split())[:300]}); measuring it again")
        return fn()


def orders(ctx: Context, tools: list[str]) -> list[list[str]]:
    """Tool order per run: alternate so that neither always goes first on a noisy machine."""
    return [tools if i % 2 == 0 else list(reversed(tools)) for i in range(ctx.runs)]


def load_rounds(ctx: Context, fleet: Fleet, names: list[str], figure: str) -> dict[str, Any]:
    """Every server of the fleet under load at 1 and 10 connections, run after run, in alternating order."""
    raw: dict[str, Any] = {}
    for name in names:
        fleet.up(name)
    for run, order in enumerate(orders(ctx, names)):
        for conns in (1, 10):
            for name in order:
                load = fleet.load(name, conns, ctx.load_seconds, f"{figure} run {run + 1} {name} c={conns}")
                raw.setdefault(f"{conns}/{name}", []).append(load.__dict__)
                ctx.log(f"{figure} run {run + 1}: {name} c={conns}: {load.rps:.0f} req/s p50 "
                        f"{load.p50_ms:.2f} ms, {load.errors} errors")
    return raw


# ----------------------------------------------------------------------------------------------- recordings


def session(url: str, ops: tuple[str, ...], user: str, n: int = 1, deadline: float = 120, *,
            own_cpu: bool = True, together: Callable[[], None] | None = None) -> Batch:
    """``n`` sessions of the bench's client at once, on a CPU of its own unless ``own_cpu`` is False
    (:func:`harness.own_cpu`); ``together``: see :class:`bayeux_client.Together`."""
    with harness.own_cpu() if own_cpu else contextlib.nullcontext():
        return asyncio.run(run_sessions(url, n, ops, user=user, deadline=deadline, together=together))


def record_all(ctx: Context) -> None:
    """Record the short (4 operations) and the long session against ``gwsvcr sim``, through ``gwsvcr record``
    and through ``mitmdump -w``, with the bench client."""
    sim = gwsvcr("gwsvcr sim", "sim", "--event-delay-ms", "250")
    try:
        kinds = [("short", SHORT_OPS)] + ([] if ctx.quick else [("long", long_ops(ctx.long_ops))])
        for kind, ops in kinds:
            for tool in ("gwsvcr", "mitmdump"):
                user = f"{kind}-{tool}"
                if tool == "gwsvcr":
                    path = ctx.work / f"{kind}.yaml"
                    proxy = gwsvcr("gwsvcr record", "record", "--upstream", sim.url, "--cassette", str(path),
                                   "--record-mode", "all")
                else:
                    path = ctx.work / f"{kind}.mitm"
                    proxy = mitmdump("mitmdump -w", "--mode", f"reverse:{sim.url}", "-w", str(path))
                try:
                    batch = session(proxy.url, ops, user)
                finally:
                    rc = proxy.stop()
                res = batch.sessions[0]
                if not res.ok:
                    raise BenchError(f"recording {kind} through {tool} failed: {res.error}\n{proxy.stderr[-2000:]}")
                if tool == "gwsvcr" and rc != 0:
                    raise BenchError(f"gwsvcr record exited {rc}: {proxy.stderr[-2000:]}")
                ctx.recordings[(kind, tool)] = Recording(tool, path, user, ops, [d or 0.0 for d in res.delays],
                                                         res.duration, res.requests)
                ctx.log(f"recorded {kind} session through {tool}: {len(ops)} operations, "
                        f"{res.duration:.2f} s, delays {[round(d * 1000, 1) for d in res.delays if d][:4]} ms")
    finally:
        sim.stop()


def replay_server(tool: str, rec: Recording, *, timing: str = "recorded", env: dict[str, str] | None = None,
                  timeout: float = 120, workers: int = 1, gc_stats: Path | None = None) -> Server:
    """A replay of ``rec``; gwsvcr's with ``gc_stats``: each of its processes writes its collector's passes there
    when it stops (:func:`collector` reads them)."""
    if tool == "gwsvcr":
        more = ("--workers", str(workers)) if workers > 1 else ()
        if gc_stats is not None:
            env = {**(env or {}), GC_STATS_ENV: str(gc_stats)}
        return gwsvcr("gwsvcr replay", "replay", str(rec.path), "--timing", timing, *more, env=env, timeout=timeout)
    return mitmdump("mitmdump --server-replay", *MITM_REPLAY, "--server-replay", str(rec.path),
                    timeout=timeout)


# Server replay of a recording made in reverse mode: the same reverse target (never contacted: lazy
# connections, and an unmatched request is killed instead of forwarded), every flow reusable by every client.
MITM_REPLAY = ("--mode", "reverse:http://127.0.0.1:9", "--set", "connection_strategy=lazy",
               "--set", "server_replay_reuse=true", "--set", "server_replay_extra=kill",
               "--set", "server_replay_ignore_host=true", "--set", "server_replay_ignore_port=true")



# ------------------------------------------------------------------------------------------------ collector

GC_STATS_ENV = "GWSVCR_GC_STATS"  # cli/serve.py's GcStats: where each serving process writes its collector's pauses


def gc_stats_dir(ctx: Context) -> Path:
    """A fresh directory for one replay's collector figures (``replay_server(gc_stats=...)``)."""
    return Path(tempfile.mkdtemp(prefix="gc-", dir=ctx.work))


def collector(directory: Path, window: tuple[float, float] | None = None) -> dict[str, Any]:
    """What the collector did in the replay processes that wrote to ``directory`` (cli/serve.py GcStats, on their
    stop): full collections, in all and per minute of each process's run; the longest pause of any generation on
    the wall clock and in CPU time, and the generation of the longest on the wall clock, over the whole run
    (start, ramp and stop included) and, given the measured ``window`` (time.monotonic() at its start and end), in
    it alone (``window_*``; 0 when no pass in it took GcStats.SLOW_MS) with the passes in it per generation
    (:func:`pass_figures`); the pass that left the most objects alive (how many, the most common kinds); each
    process's report as it wrote it."""
    reports = [json.loads(p.read_text()) for p in sorted(directory.glob("gc-*.json"))]
    passes = [(g["longest_ms"], g["longest_cpu_ms"], generation) for r in reports
              for generation, g in enumerate(r["generations"])]
    wall = max(passes, default=(None, None, None))
    biggest = max((r["biggest_pass"] for r in reports), key=lambda b: b["survived"], default=None)
    found = {"full_collections": sum(r["generations"][2]["collections"] for r in reports),
             "full_per_minute": [r["generations"][2]["collections"] * 60 / r["seconds"] for r in reports],
             "longest_pause_ms": wall[0], "longest_pause_generation": wall[2],
             "longest_pause_cpu_ms": max((cpu for _, cpu, _ in passes), default=None),
             "biggest_pass": biggest, "gc": reports}
    if window is not None:
        inside = [(wall_ms, cpu_ms, int(generation)) for r in reports
                  for at, generation, wall_ms, cpu_ms, _ in r["slow_passes"] if window[0] <= at < window[1]]
        longest = max(inside, default=(0.0, 0.0, None))
        found.update(window_pause_ms=longest[0], window_pause_generation=longest[2],
                     window_pause_cpu_ms=max((cpu for _, cpu, _ in inside), default=0.0),
                     window_passes=pass_figures(reports, window))
    return found


def pass_figures(reports: list[dict[str, Any]], window: tuple[float, float]) -> list[dict[str, Any]]:
    """The collector's passes in ``window``, per generation that ran in it: how many per minute (all processes),
    the median, p99 and longest on the wall clock and in CPU time (ms), the median and most objects left alive."""
    rows = [dict(zip(r["pass_fields"], r["passes"][i:i + len(r["pass_fields"])], strict=True))
            for r in reports for i in range(0, len(r["passes"]), len(r["pass_fields"]))]
    rows = [p for p in rows if window[0] <= p["at"] < window[1]]
    minutes = (window[1] - window[0]) / 60
    figures = []
    for generation in sorted({int(p["generation"]) for p in rows}):
        mine = [p for p in rows if p["generation"] == generation]
        wall, cpu, alive = ([p[k] for p in mine] for k in ("wall_ms", "cpu_ms", "survived"))
        figures.append({"generation": generation, "per_minute": len(mine) / minutes,
                        "wall_ms": [percentile(wall, 50), percentile(wall, 99), max(wall)],
                        "cpu_ms": [percentile(cpu, 50), percentile(cpu, 99), max(cpu)],
                        "survived": [percentile(alive, 50), max(alive)]})
    return figures


def pass_lines(figures: list[dict[str, Any]]) -> str:
    """pass_figures as "generation 0: 1,560 / min, wall 0.8 / 9.2 / 17.3 ms, CPU 0.8 / 3.4 / 4.8 ms (median / p99 /
    longest), 2,382 / 5,582 alive after it (median / most)"; one such text per generation, joined by "; "."""
    return "; ".join(f"generation {f['generation']}: {f['per_minute']:,.0f} / min, wall "
                     f"{' / '.join(num(x, 1) for x in f['wall_ms'])} ms, CPU "
                     f"{' / '.join(num(x, 1) for x in f['cpu_ms'])} ms (median / p99 / longest), "
                     f"{num(f['survived'][0])} / {num(f['survived'][1])} alive after it (median / most)"
                     for f in figures)


def pauses(wall_ms: float | None, cpu_ms: float | None) -> str:
    """A pause on the wall clock and in CPU time, as "12.3 / 9.8 ms"."""
    return f"{num(wall_ms, 1)} / {num(cpu_ms, 1)} ms"


def miss_line(srv: Server) -> str:
    """gwsvcr replay's summary line when it reports misses, else ""."""
    for line in srv.out:
        if line.startswith("gwsvcr: served") and " 0 misses" not in line:
            return line.strip()
    return ""


LATE_LINE = re.compile(r"^gwsvcr: ([\d,]+) of ([\d,]+) events went out more than \d+ ms after their recorded "
                       r"time \(the latest ([\d,]+) ms late\)")


def released_late(srv: Server) -> tuple[int, float]:
    """From gwsvcr replay's stop summary: how many events it released more than 10 ms after their recorded time
    (its process was busy), and the latest of them in seconds; (0, 0.0) when it said none."""
    for line in srv.out:
        m = LATE_LINE.match(line)
        if m:
            return int(m[1].replace(",", "")), int(m[3].replace(",", "")) / 1000
    return 0, 0.0


class Fleet:
    """Long-lived servers for the load figures, each restarted (and its measurement repeated) if it ends under
    us: the machine is shared."""

    def __init__(self, ctx: Context, factories: dict[str, Any], prepare: Any = None) -> None:
        self.ctx = ctx
        self.factories = factories
        self.prepare = prepare  # prepare(name, server) -> headers for the load
        self.servers: dict[str, Server] = {}
        self.headers: dict[str, dict[str, str]] = {}

    def up(self, name: str) -> Server:
        srv = self.servers.get(name)
        if srv is not None and srv.popen.poll() is None:
            return srv
        if srv is not None:
            self.ctx.retries.append(f"{name} (pid {srv.pid}) ended with status {srv.popen.poll()}: restarted")
        srv = self.factories[name]()
        self.servers[name] = srv
        self.headers[name] = self.prepare(name, srv) if self.prepare else {}
        return srv

    def load(self, name: str, conns: int, seconds: float, label: str) -> loadgen.Load:
        def once() -> loadgen.Load:
            srv = self.up(name)
            result = loadgen.run(srv.url + OP_PATH, "POST", STOP_BODY, self.headers[name], conns, seconds)
            srv.check_alive()
            return result
        return attempt(self.ctx, label, once)  # type: ignore[no-any-return]

    def stop(self) -> None:
        for srv in self.servers.values():
            srv.stop()

