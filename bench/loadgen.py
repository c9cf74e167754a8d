"""HTTP load generators: Debian's ``wrk`` when installed, else an aiohttp client (said so in the tables).

Both send the same request over ``connections`` keep-alive connections for ``duration`` seconds and report
requests/s, p50/p99 latency and errors (non-2xx answers, connection errors). Nothing is installed here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from harness import percentile


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def tool_name() -> str:
    return "wrk" if have_wrk() else "aiohttp (wrk not installed)"


def _lua(s: str) -> str:
    return "[==[" + s + "]==]"


def _wrk(url: str, method: str, body: bytes, headers: dict[str, str], connections: int,
         duration: float) -> Load:
    script = [f"wrk.method = {_lua(method)}", f"wrk.body = {_lua(body.decode())}"]
    script += [f"wrk.headers[ {_lua(k)} ] = {_lua(v)}" for k, v in headers.items()]
    script.append("""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"errors\\":%d,"
    .. "\\"p50\\":%d,\\"p99\\":%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write("\n".join(script))
        lua = fh.name
    try:
        threads = min(connections, 2)
        secs = max(1, round(duration))
        proc = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{secs}s", "--timeout", "5s",
                               "-s", lua, url], capture_output=True, text=True, timeout=secs + 30)
    finally:
        Path(lua).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    r = json.loads(line[len("WRKJSON "):])
    return Load(r["requests"] / (r["duration_us"] / 1e6), r["p50"] / 1000, r["p99"] / 1000, r["requests"],
                r["errors"], "wrk")


async def _aiohttp_load(url: str, method: str, body: bytes, headers: dict[str, str], connections: int,
                        duration: float) -> Load:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + duration

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                async with http.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok = 200 <= resp.status < 400
            except (TimeoutError, aiohttp.ClientError, OSError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    conn = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("User-Agent",)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    ms = [x * 1000 for x in latencies]
    return Load(len(ms) / elapsed, percentile(ms, 50), percentile(ms, 99), len(ms), errors, "aiohttp")


def run(url: str, method: str, body: bytes, headers: dict[str, str], connections: int,
        duration: float) -> Load:
    if have_wrk():
        return _wrk(url, method, body, headers, connections, duration)
    return asyncio.run(_aiohttp_load(url, method, body, headers, connections, duration))
