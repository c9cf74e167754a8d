"""4. Cassette load time and 5. Matching cost: gwsvcr's loader (cold and from its parse cache) against PyYAML's and
vcrpy's, and a request's recorded answer found by gwsvcr's keys against vcrpy's matchers.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import synth
from harness import ROOT, BenchError, median

from figures import HERE, Context, Figure, ratio, rx, table, verdict
from gwsvcr.cassette import json_bytes


def load_worker(loader: str, path: Path, budget: float, cache: Path | None) -> dict[str, Any]:
    env = {**os.environ}
    env.pop("GWSVCR_NO_CACHE", None)
    if cache is not None:
        env["GWSVCR_CACHE_DIR"] = str(cache)
    cmd = [sys.executable, str(HERE / "loadtime.py"), loader, str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"timeout": budget}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fig_load(ctx: Context) -> Figure:
    pat = synth.pattern_of(ctx.recordings[("short", "gwsvcr")].path)
    synth.check_template(pat, ctx.work)
    budgets = {"csafe": 200.0, "gwsvcr-warm": 120.0, "gwsvcr-cold": 10.0 if ctx.quick else 120.0,
               "vcr": 10.0 if ctx.quick else 20.0}
    loaders = ["gwsvcr-cold", "gwsvcr-warm", "csafe", "vcr"]
    overran: dict[str, int] = {}  # loader -> the size at which it overran its budget
    raw: dict[str, Any] = {}
    files: dict[int, tuple[Path, Path, int]] = {}
    for size in ctx.load_sizes:
        path, vpath = ctx.work / f"events-{size}.yaml", ctx.work / f"events-{size}.vcr.yaml"
        synth.write_fast(pat, size, path)
        files[size] = (path, vpath, synth.write_vcr(pat, size, vpath))
        ctx.synthetic[size] = path
    samples = {size: {k: [] for k in loaders} for size in ctx.load_sizes}  # type: dict[int, dict[str, list[dict[str, Any]]]]
    warm: dict[int, Path | None] = {size: None for size in ctx.load_sizes}

    def runs_at(size: int) -> int:
        return 1 if size >= 100_000 else ctx.runs

    # Runs are interleaved across sizes so that the samples of one size are spread over the figure's time.
    for run in range(ctx.runs):
        for size in ctx.load_sizes:
            if run >= runs_at(size):
                continue
            path, vpath, _ = files[size]
            got = samples[size]
            for loader in loaders:
                if loader == "gwsvcr-warm" and warm[size] is None and "gwsvcr-warm" not in overran:
                    # No cold load filled a cache (it overran its budget): fill one as load() would.
                    cache = ctx.work / f"cache-primed-{size}"
                    shutil.rmtree(cache, ignore_errors=True)
                    p = load_worker("prime", path, budgets["csafe"] + 120, cache)
                    raw[f"{size}/primed"] = p
                    if "seconds" in p:
                        warm[size] = cache
                        if len(got["csafe"]) < runs_at(size):
                            got["csafe"].append({**p, "from": "prime"})  # the same parse, timed the same way
                    ctx.log(f"fig 4 {size} events: primed the parse cache (CSafeLoader parse "
                            f"{p.get('seconds', p)})")
                if loader in overran or (loader == "gwsvcr-warm" and warm[size] is None):
                    continue
                if loader == "csafe" and len(got["csafe"]) >= runs_at(size):
                    continue
                if loader == "gwsvcr-cold":
                    cache = ctx.work / f"cache-cold-{size}-{run}"
                    shutil.rmtree(cache, ignore_errors=True)
                    r = load_worker("gwsvcr", path, budgets[loader], cache)
                    if "seconds" in r and warm[size] is None:
                        warm[size] = cache  # a successful cold load filled this cache: warm runs read it
                elif loader == "gwsvcr-warm":
                    r = load_worker("gwsvcr", path, budgets[loader], warm[size])
                elif loader == "csafe":
                    r = load_worker("csafe", path, budgets[loader], None)
                else:
                    r = load_worker("vcr", vpath, budgets[loader], None)
                got[loader].append(r)
                if "timeout" in r:
                    overran[loader] = size
                ctx.log(f"fig 4 {size} events run {run + 1}: {loader}: "
                        f"{r.get('seconds', r.get('timeout', r.get('error')))}")
    rows = []
    for size in ctx.load_sizes:
        path, vpath, interactions = files[size]
        if warm[size] is not None:
            ctx.warm_caches[size] = warm[size]  # type: ignore[assignment]
        runs = runs_at(size)
        raw[str(size)] = {"samples": samples[size], "bytes": path.stat().st_size,
                          "vcr_bytes": vpath.stat().st_size, "interactions": interactions}
        size_samples = samples[size]

        def cell(loader: str, size_samples: dict[str, list[dict[str, Any]]] = size_samples,
                 size: int = size) -> tuple[str, float | None]:
            got = size_samples[loader]
            secs = median([s.get("seconds") for s in got if "seconds" in s])
            if secs is not None:
                return f"{secs:.3f} s", secs
            if any("timeout" in s for s in got):
                return f"> {budgets[loader]:g} s (stopped)", None
            if any("error" in s for s in got):
                return "error: " + next(s["error"] for s in got if "error" in s)[:80], None
            if loader in overran and overran[loader] < size:
                return f"not run (> {budgets[loader]:g} s at {overran[loader]:,} events)", None
            return "not run", None

        c_txt, c = cell("csafe")
        cold_txt, cold = cell("gwsvcr-cold")
        warm_txt, warm_s = cell("gwsvcr-warm")
        v_txt, v = cell("vcr")
        cold_bound = budgets["gwsvcr-cold"] if cold is None and any(
            "timeout" in s for s in size_samples["gwsvcr-cold"]) else None
        rows.append([
            f"{size:,}", f"{path.stat().st_size / 1e6:.1f} MB", c_txt, cold_txt, warm_txt, v_txt,
            rx(ratio(c, warm_s)), (rx(ratio(c, cold)) if cold else (f"< {c / cold_bound:.2f}x" if c and cold_bound
                                                                   else "n/a")),
            rx(ratio(v, warm_s)) if v else ("> " + rx(ratio(budgets['vcr'], warm_s)) if warm_s and any(
                "timeout" in s for s in size_samples["vcr"]) else "n/a"),
            verdict(None if c is None or warm_s is None else c / warm_s >= 5) + " (warm)",
            f"{runs}",
        ])
    notes = [
        "Cassettes: the recorded short session's operation pairs (REST POST + the /meta/connect that carried "
        "its event) repeated with fresh numbers, start times and causes; written by gwsvcr's CassetteWriter "
        "(pairs from a template proven byte-identical to CassetteWriter.write on a small file). "
        "VCR.py gets the same interactions in its own format (its serializer).",
        "Each load runs in a fresh process (timing includes reading the file). cold = gwsvcr.cassette.load with "
        "an empty cache directory (it parses and then writes its cache); warm = the same call again (cache "
        "hit). Where no cold load finished within its budget, the warm cache was filled with the documents "
        "CSafeLoader parsed, through gwsvcr.cassette._cache_put (what load() stores after parsing).",
        f"Budgets per load: CSafeLoader {budgets['csafe']:g} s, gwsvcr warm {budgets['gwsvcr-warm']:g} s, gwsvcr "
        f"cold {budgets['gwsvcr-cold']:g} s, VCR.py {budgets['vcr']:g} s. A load that overruns is stopped and "
        "not tried again at bigger sizes. 100k-event loads run once (each takes tens of seconds); the runs of "
        "the other sizes are interleaved over the figure's time.",
        "speed-up = CSafeLoader seconds / gwsvcr seconds (goal >= 5x, on the warm load); VCR.py = VCR.py "
        "seconds / gwsvcr warm seconds.",
    ]
    raw["summary"] = [[f"load {r[0]} events ({r[1]}): gwsvcr cold / warm", f"{r[3]} / {r[4]}",
                       f"CSafeLoader {r[2]}; VCR.py {r[5]}", f"{r[6]} (warm), {r[7]} (cold)",
                       f">= 5x: {r[9]}"] for r in rows]
    head = ["events", "file", "CSafeLoader", "gwsvcr cold", "gwsvcr warm", "VCR.py", "warm speed-up vs CSafe",
            "cold speed-up vs CSafe", "VCR.py / gwsvcr warm", "goal >= 5x", "runs"]
    return Figure("load", "Cassette load time", [table(head, rows)], notes, raw)


def _vcr_cassette(n: int):  # type: ignore[no-untyped-def]
    from vcr.cassette import Cassette
    from vcr.matchers import body, host, method, path, port, query, scheme
    from vcr.record_mode import RecordMode
    from vcr.request import Request

    cas = Cassette(str(ROOT / "never-written.yaml"), record_mode=RecordMode.NONE,
                   match_on=(method, scheme, host, port, path, query, body), allow_playback_repeats=True)
    ops = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
    for i in range(n):
        req = Request("POST", "http://127.0.0.1:8090" + synth.call_path(i), json_bytes({"operationName": ops[i % 4]}),
                      {"Content-Type": "application/json;charset=UTF-8"})
        cas.append(req, {"status": {"code": 200, "message": "OK"},
                         "headers": {"Content-Type": ["application/json;charset=UTF-8"]},
                         "body": {"string": b'{"statusCode":0}'}})
    return cas, Request


def _time_loop(fn: Any, items: list[Any], budget: float) -> tuple[float, int]:
    """Seconds per call of fn over items, stopping after ``budget`` seconds (at least 3 calls)."""
    t0 = time.perf_counter()
    done = 0
    for it in items:
        fn(it)
        done += 1
        if done >= 3 and time.perf_counter() - t0 > budget:
            break
    return (time.perf_counter() - t0) / done, done


def fig_matching(ctx: Context) -> Figure:
    from gwsvcr import cassette as C
    from gwsvcr.matching import rest_key
    from gwsvcr.replay import ReplayConfig, Replayer
    from gwsvcr.timeline import Timing

    rng = random.Random(7)
    raw: dict[str, Any] = {}
    rows = []
    lookups = 2000 if ctx.quick else 20_000
    budget = 0.5 if ctx.quick else 1.5
    flat: dict[str, list[float | None]] = {}
    for n in ctx.match_sizes:
        cas = synth.rest_cassette(n)
        t0 = time.perf_counter()
        rp = Replayer(cas, ReplayConfig(timing=Timing.INSTANT), on_miss=lambda m: None)
        build = time.perf_counter() - t0
        vcas, VRequest = _vcr_cassette(n)
        idx = [rng.randrange(n) for _ in range(lookups)]
        ops = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
        hdrs = [("Content-Type", "application/json;charset=UTF-8"), ("Authorization", "Basic YWdlbnQxOnNlY3JldA==")]
        reqs = [C.Request(headers=list(hdrs), kind="json", body={"operationName": ops[i % 4]}, method="POST",
                          path=synth.call_path(i)) for i in idx]
        vreqs = [VRequest("POST", "http://127.0.0.1:8090" + synth.call_path(i),
                          json_bytes({"operationName": ops[i % 4]}), {"Content-Type": "application/json;charset=UTF-8"})
                 for i in idx]
        table_ = rp.scripts[0].rest

        def key_lookup(req: C.Request, table_: Any = table_) -> None:
            if not table_.answers[rest_key(req)]:
                raise AssertionError("no match")

        # The full REST path of the replayer, as a request from one live client (its session cookie).
        asyncio.run(rp.handle(reqs[0]))  # the first request makes the client's agent (and its cookie)
        agent_cookie = next(iter(rp.by_cookie), "")
        for r in reqs:
            r.headers.append(("Cookie", f"JSESSIONID={agent_cookie}"))

        def handle_all(batch: list[C.Request], rp: Replayer = rp) -> tuple[float, int]:
            async def go() -> tuple[float, int]:
                t0 = time.perf_counter()
                done = 0
                for r in batch:
                    resp = (await rp.handle(r)).response
                    if resp is None or resp.status != 200:
                        raise AssertionError(f"replayer answered {resp and resp.status}")
                    done += 1
                    if done >= 3 and time.perf_counter() - t0 > budget:
                        break
                return (time.perf_counter() - t0) / done, done
            return asyncio.run(go())

        def vcr_lookup(req: Any, vcas: Any = vcas) -> None:
            vcas.play_response(req)

        samples: dict[str, list[float]] = {"key": [], "handle": [], "vcr": []}
        counts: dict[str, int] = {}
        for _ in range(ctx.runs):
            s, counts["key"] = _time_loop(key_lookup, reqs, budget)
            samples["key"].append(s)
            s, counts["handle"] = handle_all(reqs)
            samples["handle"].append(s)
            s, counts["vcr"] = _time_loop(vcr_lookup, vreqs, budget)
            samples["vcr"].append(s)
        if len(rp.by_cookie) != 1 or rp.misses:
            raise BenchError(f"matching benchmark: {len(rp.by_cookie)} clients, {len(rp.misses)} misses")
        med = {k: median(v) for k, v in samples.items()}
        for k, v in med.items():
            flat.setdefault(k, []).append(v)
        raw[str(n)] = {"samples": samples, "lookups": counts, "build_seconds": build}
        rows.append([f"{n:,}", f"{med['key'] * 1e6:.2f} µs", f"{med['handle'] * 1e6:.1f} µs",
                     f"{med['vcr'] * 1e6:,.1f} µs", rx(ratio(med["vcr"], med["handle"]), 1),
                     f"{build:.3f} s", f"{counts['key']:,} / {counts['handle']:,} / {counts['vcr']:,}"])
        ctx.log(f"fig 5 {n} exchanges: key {med['key'] * 1e6:.2f} µs, handle {med['handle'] * 1e6:.1f} µs, "
                f"vcr {med['vcr'] * 1e6:.1f} µs")
    growth = {k: ratio(v[-1], v[0]) for k, v in flat.items()}
    small, big = ctx.match_sizes[0], ctx.match_sizes[-1]
    flat_ok = growth["handle"] is not None and growth["handle"] <= 1.5 and growth["key"] is not None \
        and growth["key"] <= 1.5
    rows.append([f"growth {big:,} / {small:,}", rx(growth["key"]), rx(growth["handle"]), rx(growth["vcr"]),
                 "", "", f"goal flat (<= 1.5x): {verdict(flat_ok)}"])
    raw["summary"] = [[f"time per REST lookup at {small:,} / {big:,} recorded exchanges",
                       f"{flat['handle'][0] * 1e6:.1f} / {flat['handle'][-1] * 1e6:.1f} µs",
                       f"VCR.py {flat['vcr'][0] * 1e6:,.0f} / {flat['vcr'][-1] * 1e6:,.0f} µs",
                       f"{rx(ratio(flat['vcr'][-1], flat['handle'][-1]), 0)} faster at {big:,}",
                       f"flat (growth {rx(growth['handle'])} <= 1.5x): {verdict(flat_ok)}"]]
    notes = [
        "Each recorded exchange is a distinct POST /api/v2/me/calls/{id} operation; the looked-up requests are "
        "drawn at random (fixed seed) from the recorded ones, the same list for every matcher.",
        "gwsvcr key = matching.rest_key(request) + the replay script's dict lookup; gwsvcr REST path = "
        "Replayer.handle(request) with --timing instant for one client holding its session cookie (cookie "
        "parse, agent lookup, key, cursor, reply rewrite). VCR.py = Cassette.play_response over the same "
        "requests, match_on method, scheme, host, port, path, query, body, allow_playback_repeats=True.",
        f"Time per lookup: median of {ctx.runs} run(s) of up to {lookups:,} lookups, each run stopped after "
        f"{budget:g} s (the last column shows how many lookups a run made: key / REST path / VCR.py). "
        "'build' = Replayer construction (index building) for that cassette.",
    ]
    head = ["recorded exchanges", "gwsvcr key + dict", "gwsvcr REST path", "VCR.py matcher",
            "VCR.py / gwsvcr REST path", "gwsvcr build", "lookups per run"]
    return Figure("matching", "Matching cost", [table(head, rows)], notes, raw)
