"""Processes, statistics and machine facts for the benchmarks.

Every server the benchmarks talk to is a real process started here and stopped by its own process id (SIGTERM,
then SIGKILL after a bounded wait); every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GWSVCR = str(BIN / "gwsvcr")
MITMDUMP = str(BIN / "mitmdump")
LISTENING = re.compile(r"^gwsvcr: listening on (http://\S+)$")


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@dataclass
class Server:
    """A server process: its URL once ready, its output, its peak RSS."""

    name: str
    popen: subprocess.Popen[str]
    url: str = ""
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def status(self, key: str) -> int | None:
        """A kB figure of /proc/PID/status (VmHWM: peak RSS, VmRSS: current RSS)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        return int(m.group(1)) if m else None

    def check_alive(self) -> None:
        """Raise if the process ended although nobody asked it to (e.g. killed from outside)."""
        code = self.popen.poll()
        if code is not None and self.returncode is None:
            raise BenchError(f"{self.name} (pid {self.pid}) ended unexpectedly with status {code}"
                             f"{' (signal ' + str(-code) + ')' if code < 0 else ''}: {self.stderr[-300:]}")

    def peak_rss_mb(self) -> float | None:
        kb = self.status("VmHWM")
        return None if kb is None else kb / 1024

    def stop(self, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.returncode = self.popen.wait(10)
        return self.returncode

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def _pump(stream: Any, sink: list[str], on_line: Any = None) -> None:
    for line in stream:
        if len(sink) < 5000:  # bounded: a noisy server must not eat the harness's memory
            sink.append(line)
        if on_line is not None:
            on_line(line)


def start(name: str, cmd: list[str], *, port: int | None = None, timeout: float = 60,
          env: dict[str, str] | None = None) -> Server:
    """Start ``cmd``; ready when it prints ``gwsvcr: listening on URL`` or, with ``port``, when that port
    accepts connections (mitmdump and the Node upstream)."""
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})}, start_new_session=True, cwd=ROOT)
    srv = Server(name, popen)
    ready = threading.Event()

    def on_out(line: str) -> None:
        m = LISTENING.match(line.strip())
        if m and not srv.url:
            srv.url = m.group(1)
            ready.set()

    threading.Thread(target=_pump, args=(popen.stdout, srv.out, on_out), daemon=True).start()
    threading.Thread(target=_pump, args=(popen.stderr, srv.err), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and popen.poll() is None:
        if port is not None and _port_open(port):
            srv.url = f"http://127.0.0.1:{port}"
            break
        if ready.wait(0.05):
            break
    if not srv.url:
        exited = popen.poll()
        srv.stop(5)
        why = f"exited with status {exited} before it was ready" if exited is not None else \
            f"did not become ready within {timeout:g} s"
        raise BenchError(f"{name} {why}: {' '.join(cmd)}\n{srv.stdout[-2000:]}\n{srv.stderr[-2000:]}")
    return srv


def gwsvcr(name: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Server:
    """A gwsvcr command on a free loopback port; record and replay without their live view, as mitmdump -q."""
    quiet = ["--quiet"] if args and args[0] in ("record", "replay") else []
    return start(name, [GWSVCR, *args, *quiet, "--port", "0"], timeout=timeout, env=env)


def mitmdump(name: str, *args: str, timeout: float = 60) -> Server:
    """``mitmdump`` on a free loopback port, quiet (no per-flow output: it would cost it CPU)."""
    port = free_port()
    return start(name, [MITMDUMP, "--listen-host", "127.0.0.1", "--listen-port", str(port), "-q", *args],
                 port=port, timeout=timeout)


@contextlib.contextmanager
def running(srv: Server):  # type: ignore[no-untyped-def]
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def own_cpu() -> Iterator[int | None]:
    """The bench's own client runs on a CPU of its own (the last it may use) for the block, and may use the others
    again after it; where there is one CPU, nothing changes. The servers it measures keep every CPU (start them
    outside the block: a process inherits the mask it is started with).

    Without it the kernel often runs the client on the CPU of the server whose reply just woke it, and the server
    waits for the client's turn to end (3-4 times as many involuntary context switches of the replay): that is
    the machine's CPUs shared with the instrument, not the server's timing. Figure 1 reports both
    (docs/BENCHMARKS.md)."""
    try:
        before = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        yield None
        return
    if len(before) < 2:
        yield None
        return
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: list[float | None]) -> float | None:
    xs = [v for v in values if v is not None and v == v]
    if not xs:
        return None
    return percentile(xs, 50)


# ------------------------------------------------------------------------------------------ machine facts


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> float:
    """The machine's load over the last minute (/proc/loadavg)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = m.group(1).strip() if m else ""
    mem = ""
    with contextlib.suppress(OSError):
        m = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        mem = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else ""
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {"cores": str(os.cpu_count() or "?"), "cpu": model or platform.processor() or "?", "memory": mem,
            "kernel": platform.release(), "load average at start": load}


def versions() -> dict[str, str]:
    import aiohttp
    import mitmproxy.version
    import yaml

    try:
        import vcr
        vcr_version = vcr.__version__
    except ImportError:
        vcr_version = "not installed"
    sha = _run(["git", "rev-parse", "--short=12", "HEAD"]) or "unknown"
    if _run(["git", "status", "--porcelain", "--untracked-files=no"]):
        sha += " (+ uncommitted changes)"
    node = _run(["node", "--version"]) or "not found"
    wrk = _run(["sh", "-c", "wrk -v 2>&1 | head -1"]) if _which("wrk") else ""
    return {"python": platform.python_version(), "mitmproxy": mitmproxy.version.VERSION, "node": node,
            "gwsvcr git sha": sha, "PyYAML": f"{yaml.__version__} (libyaml: {hasattr(yaml, 'CSafeLoader')})",
            "vcrpy": vcr_version, "aiohttp": aiohttp.__version__,
            **{name: _dist_version(name) for name in ("pytest", "pytest-xdist", "pytest-recording")},
            "wrk": (wrk.split(" [")[0] if wrk else "not installed (aiohttp load generator used instead)")}


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)
