"""Soak: 200 concurrent sessions replayed for 10 minutes (--soak-minutes, --soak-clients).

Each client logs in, opens CometD (handshake, connect, subscribe), keeps a long-poll outstanding and posts a
recording operation every PERIOD seconds; the replayer answers and pushes each operation's notification DELAY
after the replayed reply. The run checks that no event is lost or duplicated, that the replayer's RSS grows by
at most 10% after warm-up, and that the timing error (arrival - reply - recorded delay) keeps its p99 from the
first minute to the last. It stops by itself at the deadline and prints its figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import replay
from tests.procs import Proc
from tests.reliability.netutil import COMETD, basic, rss_kb
from tests.soak import longsession

PERIOD = 3.0  # seconds between one client's operations
DELAY = 0.25  # recorded delay of each notification after its operation's reply
SAMPLE_EVERY = 5.0  # seconds between RSS samples
DRAIN = 10.0  # seconds a client waits after its last operation for the last event


@dataclass
class ClientLog:
    replied: dict[int, float] = field(default_factory=dict)  # seq -> when the operation's reply arrived
    events: list[tuple[int, float]] = field(default_factory=list)  # (seq, when it arrived)
    errors: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client(i: int, base: str, first_op: float, deadline: float, log: ClientLog) -> None:
    loop = asyncio.get_running_loop()
    auth = {"Authorization": basic(f"soak{i}", "pw")}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.get(base + "/api/v2/me", headers=auth) as r:
            assert r.status == 200, await r.text()
            headers = {**auth, "Cookie": r.headers["Set-Cookie"].split(";")[0]}

        async def bayeux(message: dict[str, Any]) -> list[dict[str, Any]]:
            async with http.post(base + COMETD, json=[message], headers=headers) as r:
                body = await r.json(content_type=None)
                assert r.status == 200 and isinstance(body, list), (r.status, body)
                return body

        [hs] = await bayeux({"channel": "/meta/handshake", "version": "1.0", "id": "h",
                             "supportedConnectionTypes": ["long-polling"]})
        cid = hs["clientId"]
        await bayeux({"channel": "/meta/connect", "clientId": cid, "id": "c0", "connectionType": "long-polling",
                      "advice": {"timeout": 0}})
        [sub] = await bayeux({"channel": "/meta/subscribe", "clientId": cid, "id": "s",
                              "subscription": "/v2/me/calls"})
        assert sub["successful"], sub
        stopping = asyncio.Event()
        caught_up = asyncio.Event()

        async def poll() -> None:
            n = 0
            while not stopping.is_set():
                n += 1
                replies = await bayeux({"channel": "/meta/connect", "clientId": cid, "id": f"c{n}",
                                        "connectionType": "long-polling"})
                now = loop.time()
                for m in replies:
                    if "data" in m:
                        log.events.append((m["data"]["seq"], now))
                    elif m.get("channel") == "/meta/connect" and not m.get("successful") and not stopping.is_set():
                        log.errors.append(f"connect failed: {m}")
                        return
                if log.replied and len(log.events) >= len(log.replied):
                    caught_up.set()

        poller = asyncio.create_task(poll())
        seq = 0
        while (at := first_op + seq * PERIOD) < deadline:
            seq += 1
            await asyncio.sleep(max(0.0, at - loop.time()))
            caught_up.clear()
            async with http.post(base + longsession.CALL_PATH, json={"operationName": longsession.operation(seq)},
                                 headers=headers) as r:
                body = await r.json(content_type=None)
                log.replied[seq] = loop.time()
                if r.status != 200 or body != {"statusCode": 0}:
                    log.errors.append(f"operation {seq}: {r.status} {body}")
        try:
            await asyncio.wait_for(caught_up.wait(), DRAIN)
        except TimeoutError:
            pass  # counted as lost below
        stopping.set()
        await bayeux({"channel": "/meta/disconnect", "clientId": cid, "id": "d"})  # releases the held connect
        await asyncio.wait_for(poller, 35)


async def sample_rss(pid: int, until: float, out: list[tuple[float, int]]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        out.append((loop.time(), rss_kb(pid)))
        await asyncio.sleep(SAMPLE_EVERY)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


async def loop_lag(out: list[float]) -> None:
    """How late this process's own event loop wakes up: the harness's share of any timing error."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.05
        await asyncio.sleep(0.05)
        out.append(loop.time() - due)


@dataclass
class Run:
    logs: list[ClientLog]
    rss: list[tuple[float, int]]
    start: float
    lag: list[float]


async def soak(server: Proc, clients: int, seconds: float) -> Run:
    loop = asyncio.get_running_loop()
    start = loop.time() + 2.0  # every client logged in before the first operation
    deadline = start + seconds
    run = Run([ClientLog() for _ in range(clients)], [], start, [])
    sampler = asyncio.create_task(sample_rss(server.popen.pid, deadline + DRAIN, run.rss))
    lag = asyncio.create_task(loop_lag(run.lag))
    await asyncio.gather(*(client(i, server.url, start + i * PERIOD / clients, deadline, log)
                           for i, log in enumerate(run.logs)))
    sampler.cancel()
    lag.cancel()
    return run


def test_200_sessions_for_10_minutes(request: pytest.FixtureRequest, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    minutes = float(request.config.getoption("--soak-minutes"))
    clients = int(request.config.getoption("--soak-clients"))
    seconds = minutes * 60
    path = tmp_path / "long.yaml"
    longsession.write(path, int(seconds / PERIOD) + 10, period=PERIOD, delay=DELAY)
    server = replay(path)
    began = time.monotonic()
    cpu0 = cpu_seconds(server.popen.pid)
    try:
        run = asyncio.run(soak(server, clients, seconds))
        logs, rss, start = run.logs, run.rss, run.start
        cpu = cpu_seconds(server.popen.pid) - cpu0
    finally:
        code = server.stop()
    wall = time.monotonic() - began
    assert code == 0, server.stderr[-3000:]
    assert "Traceback" not in server.stderr, server.stderr[-3000:]

    errors = [e for log in logs for e in log.errors]
    operations = sum(len(log.replied) for log in logs)
    received = sum(len(log.events) for log in logs)
    lost = sum(len(set(log.replied) - {s for s, _ in log.events}) for log in logs)
    duplicated = sum(len(log.events) - len({s for s, _ in log.events}) for log in logs)
    unexpected = sum(len({s for s, _ in log.events} - set(log.replied)) for log in logs)
    timing = [(log.replied[s] - start, arrived - log.replied[s] - DELAY)
              for log in logs for s, arrived in log.events if s in log.replied]
    first = [abs(e) for t, e in timing if t < 60]
    last = [abs(e) for t, e in timing if t >= seconds - 60]
    warmup = min(60.0, seconds / 4)
    after = [kb for t, kb in rss if t - start >= warmup]
    base_kb = after[0] if after else rss[-1][1]
    growth = max(after or [base_kb]) / base_kb - 1
    figures = {
        "clients": clients, "minutes": minutes, "wall_s": round(wall, 1), "operations": operations,
        "events": received, "lost": lost, "duplicated": duplicated, "unexpected": unexpected,
        "errors": len(errors), "replayer_cpu_s": round(cpu, 1),
        "rss_kb": {"start": rss[0][1], "after_warmup": base_kb, "max": max(kb for _, kb in rss),
                   "end": rss[-1][1], "growth_after_warmup_pct": round(100 * growth, 2)},
        "timing_error_ms": {
            "p50": round(1000 * statistics.median(abs(e) for _, e in timing), 2),
            "p99_first_minute": round(1000 * percentile(first, 0.99), 2),
            "p99_last_minute": round(1000 * percentile(last, 0.99), 2),
            "max": round(1000 * max(abs(e) for _, e in timing), 2),
            "mean_signed": round(1000 * statistics.fmean(e for _, e in timing), 2),
            "p99_per_minute": [round(1000 * percentile([abs(e) for t, e in timing if m * 60 <= t < m * 60 + 60],
                                                       0.99), 1) for m in range(int(-(-seconds // 60)))]},
        "harness_loop_lag_ms": {"p50": round(1000 * percentile(run.lag, 0.5), 2),
                                "p99": round(1000 * percentile(run.lag, 0.99), 2),
                                "max": round(1000 * max(run.lag), 2)},
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }
    with capsys.disabled():
        print("\ngwsvcr soak: " + json.dumps(figures, indent=2))
    assert not errors, errors[:20]
    assert operations >= clients * int(seconds / PERIOD) * 0.95, figures
    assert lost == 0 and duplicated == 0 and unexpected == 0, figures
    assert growth <= 0.10, figures
    # Stable, not identical: on a shared machine a minute's p99 moves by tens of ms with other processes' load
    # (see load_average and harness_loop_lag_ms); a leak or a timer pile-up makes it climb far past this.
    p99_first, p99_last = percentile(first, 0.99), percentile(last, 0.99)
    assert p99_last <= 2 * p99_first + 0.050, f"timing error p99 grew: {figures}"
    assert p99_last < DELAY, f"timing error p99 as large as the recorded delay: {figures}"
    assert wall < seconds + 120, f"did not stop by itself in time: {figures}"
