"""Start and stop the real programs the tests talk to: gwsvcr commands and the Node peers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "tests" / "peers"
GWSVCR = str(Path(sys.executable).with_name("gwsvcr"))
LISTENING = re.compile(r"^gwsvcr: listening on (http://\S+)$")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(ok: bool, what: str) -> None:
    """Skip loudly when a peer is missing; under CI fail instead, so nothing is silently skipped there."""
    if ok:
        return
    message = f"PEER MISSING: {what} (run 'make test', which installs the peers)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need_node() -> str:
    node = shutil.which("node")
    need(node is not None and (PEERS / "node_modules" / "cometd").is_dir()
         and (PEERS / "node_modules" / "faye").is_dir(), "Node.js with npm cometd, cometd-nodejs-client, faye")
    return str(node)


@dataclass
class Proc:
    """A server process that printed its listening line; its output is collected as it comes."""

    popen: subprocess.Popen[str]
    url: str = ""
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def start(cmd: list[str], *, timeout: float = 30, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Proc:
    """Run ``cmd`` and wait (on its output, not a sleep) for ``gwsvcr: listening on URL``."""
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                             env={**os.environ, **(env or {})}, start_new_session=True)
    proc = Proc(popen)
    ready = threading.Event()

    def pump_out() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            proc.out.append(line)
            m = LISTENING.match(line.strip())
            if m and not proc.url:
                proc.url = m.group(1)
                ready.set()
        ready.set()

    def pump_err() -> None:
        assert popen.stderr is not None
        for line in popen.stderr:
            proc.err.append(line)

    threading.Thread(target=pump_out, daemon=True).start()
    threading.Thread(target=pump_err, daemon=True).start()
    ready.wait(timeout)
    if not proc.url:
        proc.stop(signal.SIGKILL)
        raise RuntimeError(f"{cmd} did not say it was listening:\n{proc.stdout}\n{proc.stderr}")
    return proc


def gwsvcr(*args: str, **kw) -> Proc:  # type: ignore[no-untyped-def]
    return start([GWSVCR, *args], **kw)
