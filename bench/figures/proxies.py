"""2. REST replay throughput and 3. Recorder overhead: a server under load at 1 and 10 connections, gwsvcr replay
against mitmdump --server-replay and gwsvcr record against plain mitmdump --mode reverse.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys

import aiohttp
import loadgen
from harness import Server, gwsvcr, median, mitmdump, start

from figures import (
    HERE,
    OP_PATH,
    STOP_BODY,
    Context,
    Figure,
    Fleet,
    load_rounds,
    num,
    ratio,
    replay_server,
    rx,
    table,
    verdict,
)
from gwsvcr.wire import basic_header

THROUGHPUT_GOAL = 2.0  # gwsvcr replay req/s over mitmdump --server-replay's, at 1 and 10 connections


async def _login(url: str, user: str) -> dict[str, str]:
    """Headers of a logged-in client: Basic auth, the replayer's JSESSIONID cookie, a CSRF token."""
    headers = {"Authorization": basic_header(user, "secret"), "Content-Type": "application/json;charset=UTF-8"}
    async with (aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
                http.get(url + "/api/v2/me", headers={"Authorization": headers["Authorization"]}) as resp):
        await resp.read()
        cookies = [c.split(";", 1)[0] for c in resp.headers.getall("Set-Cookie", [])]
        if cookies:
            headers["Cookie"] = "; ".join(cookies)
        if resp.headers.get("X-CSRF-TOKEN"):
            headers["X-CSRF-TOKEN"] = resp.headers["X-CSRF-TOKEN"]
    return headers


async def _probe(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    async with (aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
                http.post(url + OP_PATH, data=body, headers=headers) as resp):
        return resp.status, await resp.read()


def fig_throughput(ctx: Context) -> Figure:
    rec_g, rec_m = ctx.recordings[("short", "gwsvcr")], ctx.recordings[("short", "mitmdump")]
    names = ["gwsvcr replay --timing instant", "mitmdump --server-replay"]
    notes: list[str] = []
    shared: dict[str, dict[str, str]] = {}

    def prepare(name: str, srv: Server) -> dict[str, str]:
        if name.startswith("gwsvcr") or "gwsvcr" not in shared:
            # A logged-in replay client: the replayer's JSESSIONID, used for every request (mitmdump ignores it).
            gw = fleet.up("gwsvcr replay --timing instant") if not name.startswith("gwsvcr") else srv
            shared["gwsvcr"] = asyncio.run(_login(gw.url, rec_g.user))
        headers = shared["gwsvcr"]
        status, body = asyncio.run(_probe(srv.url, STOP_BODY, headers))
        if status != 200 or json.loads(body or b"{}").get("statusCode") != 0:
            notes.append(f"{name}: the probe POST got HTTP {status} {body[:120]!r}")
        if ctx.warmup:
            loadgen.run(srv.url + OP_PATH, "POST", STOP_BODY, headers, 10, 1.0)  # warm-up, not counted
        return headers

    fleet = Fleet(ctx, {names[0]: lambda: replay_server("gwsvcr", rec_g, timing="instant"),
                        names[1]: lambda: replay_server("mitmdump", rec_m)}, prepare)
    try:
        raw = load_rounds(ctx, fleet, names, "fig 2")
    finally:
        fleet.stop()
    rows, summary = [], []
    for conns in (1, 10):
        peer = median([r["rps"] for r in raw[f"{conns}/mitmdump --server-replay"]])
        for name in names:
            runs = raw[f"{conns}/{name}"]
            rps = median([r["rps"] for r in runs])
            r = ratio(rps, peer)
            is_gw = name.startswith("gwsvcr")
            met = verdict(r is not None and r >= THROUGHPUT_GOAL)
            rows.append([str(conns), name, num(rps), f"{median([x['p50_ms'] for x in runs]):.2f} ms",
                         f"{median([x['p99_ms'] for x in runs]):.2f} ms", str(sum(x["errors"] for x in runs)),
                         rx(r) if is_gw else "1x (peer)", met if is_gw else ""])
            if is_gw:
                summary.append([f"REST replay req/s, {conns} connection(s) (--timing instant)", num(rps), num(peer),
                                rx(r), f">= {THROUGHPUT_GOAL:g}x: {met}"])
    notes += [
        f"Load generator: {loadgen.tool_name()}, {ctx.load_seconds:g} s per run"
        f"{' after a 1 s warm-up' if ctx.warmup else ''}, median of {ctx.runs} run(s) (server order alternating "
        f"between runs); ratio = gwsvcr req/s / mitmdump req/s (goal >= {THROUGHPUT_GOAL:g}x, issue 12).",
        "The request: POST /api/v2/me/calls/{id} {\"operationName\":\"StopCallRecording\"} with the session "
        "cookie the replayer issued at GET /api/v2/me (every request is the same replay session; its recorded "
        "answer is served again once used). --timing instant: mitmdump never waits either; with --timing "
        "recorded each reply would wait its recorded time to first byte, by design.",
    ]
    head = ["connections", "server", "req/s", "latency p50", "latency p99", "errors", "req/s vs peer",
            f"goal >= {THROUGHPUT_GOAL:g}x"]
    raw["summary"] = summary
    return Figure("throughput", "REST replay throughput and latency", [table(head, rows)], notes, raw)


RECORDER_GOAL = 1.0  # gwsvcr record latency and cost over plain mitmdump --mode reverse


def _upstream() -> Server:
    node = shutil.which("node")
    if node:
        return start("fast upstream (node)", [node, str(HERE / "fast_upstream.js")])
    return start("fast upstream (aiohttp)", [sys.executable, str(HERE / "py_upstream.py")])


def fig_recorder(ctx: Context) -> Figure:
    cassette = ctx.work / "overhead.yaml"
    headers = {"Authorization": basic_header("agent1", "secret"), "Content-Type": "application/json;charset=UTF-8"}
    holder: dict[str, Server] = {}

    def upstream() -> Server:
        srv = holder.get("up")
        if srv is None or srv.popen.poll() is not None:
            holder["up"] = srv = _upstream()
        return srv

    def prepare(name: str, srv: Server) -> dict[str, str]:
        if ctx.warmup:
            loadgen.run(srv.url + OP_PATH, "POST", STOP_BODY, headers, 10, 1.0)  # warm-up, not counted
        return headers

    names = ["upstream alone", "mitmdump --mode reverse", "gwsvcr record"]
    fleet = Fleet(ctx, {
        names[0]: upstream,
        names[1]: lambda: mitmdump("mitmdump reverse", "--mode", f"reverse:{upstream().url}"),
        names[2]: lambda: gwsvcr("gwsvcr record", "record", "--upstream", upstream().url, "--cassette",
                                 str(cassette), "--record-mode", "all")}, prepare)
    try:
        raw = load_rounds(ctx, fleet, names, "fig 3")
    finally:
        fleet.stop()
        if "up" in holder:
            holder["up"].stop()
    servers = fleet.servers
    rec_summary = next((ln.strip() for ln in servers["gwsvcr record"].out if ln.startswith("gwsvcr: recorded")),
                       "")
    rows, summary = [], []
    for conns in (1, 10):
        def med(name: str, key: str, conns: int = conns) -> float | None:
            return median([r[key] for r in raw[f"{conns}/{name}"]])

        direct = med("upstream alone", "p50_ms")
        peer_p50, peer_rps = med("mitmdump --mode reverse", "p50_ms"), med("mitmdump --mode reverse", "rps")
        for name in ("upstream alone", "mitmdump --mode reverse", "gwsvcr record"):
            p50, rps = med(name, "p50_ms"), med(name, "rps")
            lat_r, cost_r = ratio(p50, peer_p50), ratio(peer_rps, rps)
            is_gw = name == "gwsvcr record"
            met = verdict(lat_r is not None and cost_r is not None and max(lat_r, cost_r) <= RECORDER_GOAL)
            rows.append([str(conns), name, num(rps), f"{p50:.2f} ms", f"{med(name, 'p99_ms'):.2f} ms",
                         "" if name == "upstream alone" else f"{p50 - direct:+.2f} ms",
                         rx(lat_r) if is_gw else ("1x (peer)" if name.startswith("mitm") else ""),
                         rx(cost_r) if is_gw else ("1x (peer)" if name.startswith("mitm") else ""),
                         met if is_gw else ""])
            if is_gw:
                summary.append([f"recording proxy, {conns} connection(s): latency p50 / req/s",
                                f"{p50:.2f} ms / {num(rps)}", f"{peer_p50:.2f} ms / {num(peer_rps)}",
                                f"{rx(lat_r)} latency, {rx(cost_r)} cost", f"<= {RECORDER_GOAL:g}x: {met}"])
    notes = [
        f"Upstream: a Node HTTP server answering {{\"statusCode\":0}} at once (bench/fast_upstream.js), so the "
        f"proxy's own cost is what is measured. Load generator {loadgen.tool_name()}, {ctx.load_seconds:g} s per "
        f"run{' after a 1 s warm-up' if ctx.warmup else ''}, median of {ctx.runs} run(s).",
        "latency ratio = gwsvcr p50 / mitmdump p50; throughput cost = mitmdump req/s / gwsvcr req/s; the goal "
        f"(<= {RECORDER_GOAL:g}x, issue 12) is on both. 'added p50' is the p50 minus the upstream's own p50.",
        f"gwsvcr record wrote every exchange to its cassette as it went: {rec_summary or 'no summary line'} "
        f"({cassette.stat().st_size / 1e6 if cassette.exists() else 0:.1f} MB).",
    ]
    head = ["connections", "path", "req/s", "latency p50", "latency p99", "added p50", "latency vs peer",
            "throughput cost vs peer", "goal"]
    raw["summary"] = summary
    return Figure("recorder", "Recorder overhead", [table(head, rows)], notes, raw)
