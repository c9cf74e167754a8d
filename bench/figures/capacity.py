"""8. Fleet and 10. Workers: how many agents one gwsvcr replay (or --workers N) serves on time."""

from __future__ import annotations

import os
import resource
from typing import Any

from harness import load_average, percentile

from figures import (
    Context,
    Figure,
    attempt,
    collector,
    gc_stats_dir,
    num,
    pass_lines,
    pauses,
    ratio,
    replay_server,
    rx,
    table,
    verdict,
)

GC_PAUSE_GOAL = (5000, 10.0, 10.0)  # issue 27: longest GC pause <= 10 ms at 5,000 agents, an operation every 10 s


def fig_fleet(ctx: Context) -> Figure:
    """A contact center on one machine (issue 12): N agents, one operation each every 30 s."""
    return _fleet(ctx, "fleet", "Fleet", ctx.fleet_period, ctx.fleet_levels, ctx.fleet_workers, scaling=False)


def fig_workers(ctx: Context) -> Figure:
    """What a second replay process adds (issue 13): the same fleet, busier agents, so that the replay's CPU and
    pauses bound it before the file descriptors do."""
    return _fleet(ctx, "workers", "Workers", ctx.workers_period, ctx.workers_levels, [1, 2], scaling=True)


def _percents(shares: list[float]) -> str:
    """CPU shares of several processes (1.0 = one core), as "27 % + 27 %"."""
    return " + ".join(f"{c * 100:.0f} %" for c in shares)


def _per_minute(rates: list[float]) -> str:
    """Full collections per minute of each replay process, as "1.2 + 0.8 / min"."""
    return " + ".join(f"{x:.1f}" for x in rates) + " / min"


def _within(x: float | None, limit: float) -> bool | None:
    return None if x is None else x <= limit


def _alive(biggest: dict[str, Any] | None) -> str:
    """The pass that left the most objects alive: how many, the most common kinds."""
    if not biggest or not biggest["survived"]:
        return "none"
    kinds = ", ".join(f"{name.rsplit('.', 1)[-1]} {n:,}" for name, n in biggest["kinds"][:5])
    return (f"{biggest['survived']:,} objects after a pass of generation {biggest['generation']} ({kinds}; "
            f"{biggest['frozen']:,} frozen)")


def _fleet(ctx: Context, key: str, title: str, period: float, levels: list[int], worker_counts: list[int], *,
           scaling: bool) -> Figure:
    """N agents in steady state on one fresh ``gwsvcr replay --workers W`` per level (bench/fleet.py)."""
    import fleet

    kind = "short" if ctx.quick else "long"
    rec = ctx.recordings[(kind, "gwsvcr")]
    levels = [20, 100] if ctx.quick else levels
    period = 4.0 if ctx.quick else period
    steady = 4.0 if ctx.quick else ctx.fleet_steady
    settle, grace = (1.0, 3.0) if ctx.quick else (3.0, 5.0)
    gen = max(1, (os.cpu_count() or 2) - 1)  # load generator processes: the replay keeps a core
    raw: dict[str, Any] = {}
    rows, summary = [], []
    best: dict[int, int | None] = {w: None for w in worker_counts}
    misses = {w: 0 for w in worker_counts}  # misses in a row: two, and the bigger levels are left out
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # HAProxy holds both sides of every connection (each agent's long-poll, the shared pools) in one process
    haproxy_holds = (fd_limit - 100) // 2 - fleet.POOL * gen
    too_many: set[int] = set()  # worker counts with levels left out for that
    for i, n in enumerate(levels):
        ramp = max(2.0, n / ctx.fleet_login_rate)
        order = worker_counts if i % 2 == 0 else list(reversed(worker_counts))  # neither always first
        for w in order:
            if misses[w] >= 2:
                continue
            if w > 1 and n > haproxy_holds:
                too_many.add(w)
                continue

            def one(n: int = n, ramp: float = ramp, w: int = w) -> dict[str, Any]:
                gc_dir = gc_stats_dir(ctx)
                srv = replay_server("gwsvcr", rec, timeout=120, workers=w, gc_stats=gc_dir)
                load = load_average()
                try:
                    result = fleet.fleet_level(srv.url, srv.pid, n, ops=list(rec.ops), recorded_delays=rec.delays,
                                               workers=gen, ramp=ramp, settle=settle, steady=steady,
                                               period=period, grace=grace, work=ctx.work)
                    srv.check_alive()
                    result.update(load=load, load_end=load_average())
                finally:
                    srv.stop(timeout=60)
                return {**result, **collector(gc_dir, result["window"])}

            r = attempt(ctx, f"{key} {n} agents, --workers {w}", one)
            errs = r.pop("errors_ms")
            lags = r.pop("lags_ms")
            r.update(p50_ms=percentile(errs, 50) if errs else None, p99_ms=percentile(errs, 99) if errs else None,
                     max_ms=max(errs) if errs else None, lag_p99_ms=percentile(lags, 99) if lags else None,
                     ramp=ramp, period=period, replay_workers=w)
            raw[f"{w}/{n}"] = r
            ok = (r["p99_ms"] is not None and r["p99_ms"] <= 50 and r["lost"] == 0 and r["duplicated"] == 0
                  and r["wrong"] == 0 and r["agents_ok"] == n)
            if ok:
                best[w] = max(best[w] or 0, n)
            misses[w] = 0 if ok else misses[w] + 1
            rss_per_k = None
            if r["rss_steady_kb"] and r["rss_ready_kb"]:
                rss_per_k = (r["rss_steady_kb"] - r["rss_ready_kb"]) / 1024 * 1000 / n
            r["rss_per_1000_mb"] = rss_per_k
            # what a second of replay CPU carries: the agents over the replay processes' summed CPU (the load
            # generator shares the cores, so the raw count alone understates what more workers add)
            replay_total = sum(r["replay_cpu"] or ())
            r["agents_per_replay_cpu_s"] = n / replay_total if replay_total else None
            replay_cpu = _percents(r["replay_cpu"])
            ctx.log(f"{key} {n} agents, --workers {w}: {r['agents_ok']}/{n} ok, {r['ops']} operations, lost "
                    f"{r['lost']}, duplicated {r['duplicated']}, error p50 {num(r['p50_ms'], 1)} ms p99 "
                    f"{num(r['p99_ms'], 1)} ms, {r['requests'] / steady:.0f} req/s, replay CPU {replay_cpu}, "
                    f"HAProxy CPU {r['haproxy_cpu'] * 100:.0f} %, load generator CPU "
                    f"{[round(c * 100) for c in r['client_cpu']]} %, lag p99 {num(r['lag_p99_ms'], 1)} ms, "
                    f"GC {_per_minute(r['full_per_minute'])}, longest pause in the window "
                    f"{pauses(r['window_pause_ms'], r['window_pause_cpu_ms'])} (generation "
                    f"{r['window_pause_generation']}), in the whole run "
                    f"{pauses(r['longest_pause_ms'], r['longest_pause_cpu_ms'])} (generation "
                    f"{r['longest_pause_generation']}), passes in the window: {pass_lines(r['window_passes'])}; "
                    f"most left alive {_alive(r['biggest_pass'])}, "
                    f"load {r['load']:.1f} -> {r['load_end']:.1f}"
                    + (f"; errors: {r['first_errors']}" if r["first_errors"] else ""))
            rows.append([
                str(w), f"{n:,}", f"{r['agents_ok']:,}/{n:,}", f"{r['ops']:,}",
                f"{r['lost']:,} / {r['duplicated']:,}", f"{num(r['p50_ms'], 1)} ms / {num(r['p99_ms'], 1)} ms",
                num(r["requests"] / steady), f"{num(r['rss_steady_kb'] / 1024)} MB", f"{num(rss_per_k, 1)} MB",
                replay_cpu, num(r["agents_per_replay_cpu_s"]), f"{r['haproxy_cpu'] * 100:.0f} %" if w > 1 else "",
                _percents(r["client_cpu"]), f"{num(r['lag_p99_ms'], 1)} ms",
                f"{_per_minute(r['full_per_minute'])}, {pauses(r['window_pause_ms'], r['window_pause_cpu_ms'])}; "
                f"whole run {pauses(r['longest_pause_ms'], r['longest_pause_cpu_ms'])}",
                f"{r['load']:.1f} / {r['load_end']:.1f}", verdict(ok)])
    rows.sort(key=lambda row: (int(row[0]), int(row[1].replace(",", ""))))
    for w in worker_counts:
        goal = "" if scaling or w != 1 else f"10,000 agents: {verdict((best[w] or 0) >= 10_000)}"
        per_cpu = raw[f"{w}/{best[w]}"]["agents_per_replay_cpu_s"] if best[w] else None
        summary.append([f"{key}, --workers {w}, an operation every {period:g} s: largest N with event timing error "
                        "p99 <= 50 ms and nothing lost (agents per replay CPU-second there)",
                        f"{best[w]:,} agents ({num(per_cpu)})" if best[w] else "none", "", "", goal])
    goal_n, goal_period, goal_ms = GC_PAUSE_GOAL
    for w in worker_counts:
        r = raw.get(f"{w}/{goal_n}")
        if r is not None and period == goal_period:
            summary.append([f"{key}, --workers {w}: longest GC pause at {goal_n:,} agents, an operation every "
                            f"{period:g} s (wall / CPU), in the measured window; in the whole run (logins and "
                            "stop included)", f"{pauses(r['window_pause_ms'], r['window_pause_cpu_ms'])}; "
                            f"{pauses(r['longest_pause_ms'], r['longest_pause_cpu_ms'])}",
                            "", "", f"<= {goal_ms:g} ms: {verdict(_within(r['window_pause_ms'], goal_ms))} "
                            f"(wall), {verdict(_within(r['window_pause_cpu_ms'], goal_ms))} (CPU)"])
    if scaling:
        carried = ratio(best[2], best[1]) if best[1] and best[2] else None
        summary.append([f"{key}: agents carried at --workers 2 / at --workers 1", rx(carried), "", "",
                        f">= 1.7x: {verdict(carried is not None and carried >= 1.7)}"])
    head = ["workers", "agents", "agents ok", "operations", "events lost / duplicated", "timing error p50 / p99",
            "requests/s", "replay RSS", "RSS per 1,000 agents", "replay CPU (per worker)",
            "agents per replay CPU-second", "HAProxy CPU",
            "load generator CPU", "load generator loop lag p99",
            "GC: full collections per minute (per worker), longest pause wall / CPU in the window; whole run",
            "load average (start / end)",
            "p99 <= 50 ms, none lost"]
    skipped = [f"--workers {w} above {max(n for n in levels if f'{w}/{n}' in raw):,}" for w in worker_counts
               if misses[w] >= 2 and any(f"{w}/{n}" not in raw for n in levels)]
    notes = [
        f"Each level: a fresh `gwsvcr replay` of the recorded {len(rec.ops)}-operation agent session, with "
        f"`--workers W` ({', '.join(map(str, worker_counts))}: 1 is one process and no balancer; more is W "
        "replay processes behind HAProxy, with affinity by its cookie or the agent's user name); N agents, each "
        f"its own user, log in staggered over a ramp of N / {ctx.fleet_login_rate:g} s (at least 2 s); each "
        "holds its /meta/connect long-poll all the time on a connection of its own and sends one call-recording "
        f"operation every {period:g} s, at a phase of its own (an even rate of N / {period:g} operations per "
        "second); after the session's last operation it logs in again as a new session. REST, handshake and "
        f"subscribe go through {fleet.POOL} keep-alive connections per load generator process shared by its "
        "agents (each request with the agent's own credentials and cookies, HAProxy's included), as a middleware "
        "serving many agents sends them: two connections per agent would not fit the 20,000 file descriptors a "
        "process may open on this machine.",
        f"Measured: the {steady:g} s window that starts {settle:g} s after the ramp (operations scheduled in it; "
        f"their events awaited {grace:g} s more). Timing error = |replayed delay - recorded delay| of each "
        "operation's event, where a delay is event receipt minus REST reply receipt at the client. Lost: an "
        "operation whose event never came; duplicated: an event with no operation waiting for one. Levels run "
        "in ascending order, the worker counts alternating which goes first; a worker count that missed at two "
        "levels in a row is not run at bigger ones" + (f" ({'; '.join(skipped)})" if skipped else "") + "."
        + (f" Levels above {haproxy_holds:,} agents are not run through HAProxy: it holds "
           f"both sides of every connection in its one process, and a process may open {fd_limit:,} files here "
           "(HAProxy's maxconn follows from that limit)." if too_many else ""),
        "requests/s = HTTP replies the agents received in the window / window (REST, long-polls, logins). CPU = "
        "user+system time in the window / window (100 % = one core), of each replay process, of HAProxy and of "
        "each load generator process: all share these cores, so their sum shows what bounds a level; agents per "
        "replay CPU-second = N / the replay processes' summed CPU (what one core's second of replay carries, "
        "whatever the load generator took of the cores). Replay RSS "
        "= the replay processes' summed RSS at the window's end; per 1,000 agents = (that - the same when "
        "ready) x 1000 / N.",
        "GC = the collector of the replay processes (gc.callbacks, written by GWSVCR_GC_STATS): full collections "
        "per minute of each replay's run, and the longest pause of any generation on the wall clock (what a "
        "client waits) and in CPU time, in the measured window, then over the whole run (the start, the ramp's "
        "logins and the stop, when every agent's connection goes at once, included). After each pass the "
        "replay counts what it left alive (outside the pause timed). Load average = the machine's "
        "1-minute load when the row's replay started and at the end of its window (2 cores, shared).",
        f"Load generator: bench/fleet.py, {gen} process(es) (cores - 1), "
        f"{next(iter(raw.values()))['loop'] if raw else ''} event loop, gwsvcr's Bayeux client (gwsvcr.client: "
        "asyncio streams, no HTTP library), connections spread over source addresses 127.0.0.2-9. How late its "
        "loop woke up (a 10 ms probe, p99) shows whether it kept up: a late loop makes every delay it measures "
        "later by as much.",
    ]
    bad = [f"{k}: {r['first_errors']}" for k, r in raw.items() if r.get("first_errors")]
    if bad:
        notes.append("First errors per level (workers/agents): " + "; ".join(bad[:4]))
    raw["summary"] = summary
    return Figure(key, title, [table(head, rows)], notes, raw)
