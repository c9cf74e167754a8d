"""The fleet load generator: N agents on one ``gwsvcr replay``, in steady state.

Each agent is its own user (agent00001, ...) with its own CometD session and its own keep-alive HTTP/1.1
connection for its ``/meta/connect`` long-poll, which is held all the time (sent again the moment it returns). Its
REST requests, handshake and subscribe go through a pool of keep-alive connections shared by the agents of a
worker, each request with the agent's own credentials and session cookie, as a middleware or CRM connector serving
many agents sends them (and as 10,000 agents fit the 20,000 file descriptors a process may have here: two
connections per agent would need 20,000 on each side). Agents log in staggered over a ramp; then each sends one
operation of the recorded session every ``period`` seconds, at a phase of its own so that operations arrive at an
even rate; after the recorded session's last operation an agent disconnects and logs in again as a new session.
Only the operations of the steady window (after the ramp and a settle time) are measured.

Written for cost, so that the generator is not what is measured: gwsvcr's own Bayeux client (``gwsvcr.client``:
asyncio streams, replies read with the stream's own buffer, no HTTP library), uvloop when installed, and one worker
process per core given to it. Each worker reports its own CPU time and how late its
event loop woke up (a probe every 10 ms): the floor of what it can measure.

    python bench/fleet.py worker SPEC.json    # one worker (run by fleet_level); writes its results as JSON
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwsvcr.cassette import json_bytes
from gwsvcr.client import BayeuxClient, ConnectEnd, HttpClient, HttpFailure, Login, NotBayeux, Reply, Sent, Target

CALL_PATH = "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
COMETD = "/api/v2/notifications"
CHANNEL = "/v2/me/calls"
STATE = {"StopCallRecording": "Stopped", "StartCallRecording": "Recording", "PauseCallRecording": "Paused",
         "ResumeCallRecording": "Recording"}
POOL = 64  # keep-alive connections per load generator process for the agents' REST, handshake and subscribe
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]  # spread over source addresses: 20,000 connections need ports
JSON = ("Content-Type", "application/json;charset=UTF-8")


def raise_fd_limit(want: int = 65536) -> int:
    """Allow each process (and its children) enough sockets: two per agent, on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (max(want, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (ValueError, OSError):
            continue
    return soft


class HttpError(Exception):
    pass


@dataclass
class Op:
    index: int  # position in the recorded session: which recorded delay it is compared with
    name: str
    replied: float | None = None  # when its REST reply came (the client's wall clock, as it stamps replies)
    events: list[float] = field(default_factory=list)
    measured: bool = False


class Agent:
    """One agent on gwsvcr's Bayeux client: its REST, handshake and subscribe through the worker's shared pool,
    its long-poll on a connection of its own."""

    def __init__(self, number: int, spec: dict[str, Any], pool: HttpClient) -> None:
        self.number = number
        self.spec = spec
        self.user = f"agent{number:05d}"
        self.rest = pool
        self.poll = HttpClient(pool.target, sources=[SOURCES[number % len(SOURCES)]])  # one connect at a time
        self.login_state = Login()
        self.bayeux = self._session()
        self.ops: list[Op] = []
        self.pending: list[Op] = []  # operations whose event has not come yet, oldest first
        self.extra_events = 0  # events with no operation waiting for one: duplicates
        self.wrong = 0
        self.errors: list[str] = []
        self.logins = 0

    def _session(self) -> BayeuxClient:
        """A new login (no cookie, no token yet) and a new CometD session (message ids from 1)."""
        self.login_state = Login.basic(self.user, "secret")  # every cookie it is given (the replay's, a balancer's)
        return BayeuxClient(self.rest, COMETD, poll=self.poll, timeout=None, headers=self.login_state.headers,
                            learn=self.login_state.learn, on_event=self._event)

    async def _rest(self, method: str, path: str, body: bytes = b"") -> Reply:
        headers = self.login_state.headers() + ([JSON] if body else [])
        reply = await self.rest.request(method, path, headers, body, timeout=None)
        self.login_state.learn(reply.headers)
        if reply.status != 200:
            raise HttpError(f"{method} {path}: HTTP {reply.status} {reply.body[:120]!r}")
        return reply

    async def login(self) -> None:
        self.logins += 1
        self.bayeux = self._session()
        await self._rest("GET", "/api/v2/me")
        _checked(await self.bayeux.handshake())
        if not self.bayeux.client_id:
            raise HttpError("handshake gave no clientId")
        _checked(await self.bayeux.connect())
        _checked(await self.bayeux.subscribe(CHANNEL))
        self.bayeux.start_connects(on_end=self._poll_ended)  # the long-poll, held all the time

    def _event(self, message: dict[str, Any], at: float) -> None:
        """Each event is matched with the oldest operation waiting for one."""
        if message.get("channel") != CHANNEL:
            return
        if not self.pending:
            self.extra_events += 1
            return
        op = self.pending.pop(0)
        op.events.append(at)
        state = ((message.get("data") or {}).get("call") or {}).get("recordingState")
        self.wrong += state != STATE.get(op.name)

    def _poll_ended(self, end: ConnectEnd) -> bool:
        self.errors.append(f"long-poll: {end.why}")
        return False

    async def logout(self) -> None:
        await self.bayeux.stop_connects()  # its held connect cannot be taken back: the connection goes, as a tab's
        with contextlib.suppress(HttpFailure, NotBayeux):
            await self.bayeux.disconnect()

    async def operate(self, index: int, name: str, measured: bool) -> None:
        op = Op(index, name, measured=measured)
        self.ops.append(op)
        self.pending.append(op)
        reply = await self._rest("POST", CALL_PATH, json_bytes({"operationName": name}))
        op.replied = reply.times.response_end

    async def run(self, login_at: float, first_op: float, stop_at: float, window: tuple[float, float]) -> None:
        ops, period = self.spec["ops"], self.spec["period"]
        try:
            await asyncio.sleep(max(0.0, login_at - time.monotonic()))
            await self.login()
            k, at = 0, first_op
            while at < stop_at:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                if k == len(ops):  # the recorded session is over: a new session, as the next shift would
                    await self.logout()
                    await self.login()
                    k = 0
                await self.operate(k, ops[k], window[0] <= at < window[1])
                k, at = k + 1, at + period
        except asyncio.CancelledError:
            raise
        except (HttpError, HttpFailure, NotBayeux) as e:
            self.errors.append(f"{type(e).__name__}: {e}")

    async def close(self) -> None:
        await self.bayeux.close()
        await self.poll.close()


def _checked(sent: Sent) -> Sent:
    refused = sent.refusal()
    if refused is not None:
        raise HttpError(f"{refused.get('channel')} refused: {refused.get('error')}")
    return sent


# ------------------------------------------------------------------------------------------------ one worker


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = spec["t0"]
    ramp, settle, steady, period, grace = spec["ramp"], spec["settle"], spec["steady"], spec["period"], spec["grace"]
    window = (t0 + ramp + settle, t0 + ramp + settle + steady)
    pool = HttpClient(Target("http", spec["host"], spec["port"]), limit=spec["pool"], sources=SOURCES)
    agents = [Agent(n, spec, pool) for n in spec["agents"]]

    def replies() -> int:
        return pool.replies + sum(a.poll.replies for a in agents)

    total = spec["total"]
    tasks = []
    for a in agents:
        login_at = t0 + ramp * (a.number - 1) / total
        # Operations at an even rate over the window: agent n at phase n/total of the period (plus a little
        # jitter), starting in the settle time so that the window opens in steady state.
        phase = ((a.number - 1) / total + random.uniform(0, 0.5 / total)) * period
        first = window[0] - period + phase
        while first < login_at + 1.0:
            first += period
        tasks.append(asyncio.ensure_future(a.run(login_at, first, window[1], window)))
    lags: list[float] = []

    async def probe() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            if window[0] <= t < window[1]:
                lags.append(max(0.0, (time.monotonic() - t - 0.01) * 1000))

    prober = asyncio.ensure_future(probe())
    await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
    cpu0, requests0 = time.process_time(), replies()
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
    cpu1, requests1 = time.process_time(), replies()
    await asyncio.sleep(grace)  # the events of the window's last operations
    prober.cancel()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(a.close() for a in agents))
    await pool.close()
    recorded = spec["recorded_delays"]
    errors_ms, lost, dup, wrong, measured = [], 0, 0, 0, 0
    for a in agents:
        wrong += a.wrong
        dup += a.extra_events + sum(max(0, len(op.events) - 1) for op in a.ops)
        for op in a.ops:
            if not op.measured:
                continue
            measured += 1
            if op.replied is None or not op.events:
                lost += 1
                continue
            errors_ms.append(abs((op.events[0] - op.replied) - recorded[op.index]) * 1000)
    return {
        "agents": len(agents), "agents_ok": sum(1 for a in agents if not a.errors and a.logins),
        "first_errors": [e for a in agents for e in a.errors][:3], "ops": measured, "lost": lost,
        "duplicated": dup, "wrong": wrong, "errors_ms": errors_ms, "requests": requests1 - requests0,
        "cpu": cpu1 - cpu0, "lags_ms": lags, "loop": type(asyncio.get_running_loop()).__module__,
        "pool_connections": pool.opened,
    }


def worker_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    raise_fd_limit()
    try:
        import uvloop  # type: ignore[import-not-found]
        result = uvloop.run(_worker(spec))
    except ImportError:
        result = asyncio.run(_worker(spec))
    # A file, not stdout: a large result through a pipe the event loop left non-blocking can be cut short.
    Path(spec["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------- one level


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3 on), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_cpu_seconds(pid: int) -> float | None:
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it: a ``gwsvcr replay --workers N`` is its workers and HAProxy too."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def tree_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each of ``pids``."""
    return {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids}


def fleet_level(url: str, server_pid: int, n: int, *, ops: list[str], recorded_delays: list[float],
                workers: int, ramp: float, settle: float, steady: float, period: float, grace: float,
                work: Path, pool: int = POOL) -> dict[str, Any]:
    """Run ``n`` agents against the replay at ``url`` (process ``server_pid`` and its children: workers and
    HAProxy under ``--workers``) and measure the steady window."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    t0 = time.monotonic() + 2.0  # the workers start and import meanwhile
    window = (t0 + ramp + settle, t0 + ramp + settle + steady)
    procs = []
    for w in range(workers):
        spec = {"host": host, "port": int(port), "agents": list(range(w + 1, n + 1, workers)), "total": n,
                "t0": t0, "ramp": ramp, "settle": settle, "steady": steady, "period": period, "grace": grace,
                "ops": ops, "recorded_delays": recorded_delays, "pool": pool}
        path = work / f"fleet-{n}-{w}.json"
        spec["result"] = str(work / f"fleet-{n}-{w}.result.json")
        path.write_text(json.dumps(spec))
        procs.append((subprocess.Popen([sys.executable, __file__, "worker", str(path)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True), Path(spec["result"])))
    # The replays: the process itself, or under --workers its workers (the parent only waits); and HAProxy.
    tree = process_tree(server_pid)
    balancers = [p for p in tree if proc_name(p) == "haproxy"]
    replays = [p for p in tree if p not in balancers and (len(tree) == 1 or p != server_pid)]
    rss_ready = sum(proc_kb(p, "VmRSS") or 0 for p in replays)
    time.sleep(max(0.0, window[0] - time.monotonic()))
    cpu0 = tree_cpu(tree)
    time.sleep(max(0.0, window[1] - time.monotonic()))
    cpu1 = tree_cpu(tree)
    rss_steady = sum(proc_kb(p, "VmRSS") or 0 for p in replays)
    used = {p: (cpu1[p] - cpu0[p]) / steady for p in tree}
    results = []
    for p, result in procs:
        _, err = p.communicate(timeout=grace + 120)
        if p.returncode != 0 or not result.exists():
            raise RuntimeError(f"fleet worker exited {p.returncode}: {err[-1500:]}")
        results.append(json.loads(result.read_text()))
    errors = [e for r in results for e in r["errors_ms"]]
    lags = [x for r in results for x in r["lags_ms"]]
    return {
        "n": n, "workers": workers, "loop": results[0]["loop"],
        "pool_connections": sum(r["pool_connections"] for r in results),
        "agents_ok": sum(r["agents_ok"] for r in results), "ops": sum(r["ops"] for r in results),
        "lost": sum(r["lost"] for r in results), "duplicated": sum(r["duplicated"] for r in results),
        "wrong": sum(r["wrong"] for r in results), "first_errors": [e for r in results for e in r["first_errors"]][:3],
        "errors_ms": errors, "requests": sum(r["requests"] for r in results), "steady": steady,
        "replay_cpu": [used[p] for p in replays], "haproxy_cpu": sum(used[p] for p in balancers),
        "client_cpu": [r["cpu"] / steady for r in results], "lags_ms": lags,
        "rss_ready_kb": rss_ready, "rss_steady_kb": rss_steady, "window": window,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    else:
        sys.exit(__doc__)
