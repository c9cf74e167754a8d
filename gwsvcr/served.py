"""A gwsvcr serving command (or any server that prints the same line) as a child process: started, ready when it
prints ``gwsvcr: listening on URL``, its output collected as it comes, stopped by a signal. It is given the token of
its ``/__gwsvcr__/`` endpoints (gwsvcr/guard.py), which :attr:`Proc.token` holds.

Used by the pytest plugin, ``gwsvcr demo`` and the project's own tests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gwsvcr import guard
from gwsvcr.errors import GwsvcrError
from gwsvcr.optimized import serving_optimized

__all__ = ["LISTENING", "PARENT_ENV", "NotListening", "Proc", "gwsvcr_command", "start"]

LISTENING = re.compile(r"^gwsvcr: listening on (http://\S+)$")
# The process id of whoever started a gwsvcr server through :func:`start`: the server stops when that process is
# gone, however it ended (even SIGKILL), instead of living on unowned with its port.
PARENT_ENV = "GWSVCR_PARENT_PID"


class NotListening(GwsvcrError, RuntimeError):
    """The process ended, or took too long, without saying where it listens."""


def gwsvcr_command(*args: str) -> list[str]:
    """The command line of ``gwsvcr ARGS`` with this interpreter. A serving command gets ``-O`` here when the
    ``gwsvcr`` entry would re-run it under ``python -O`` (cli/entry.py: same conditions): started so at once, it
    is spared that second interpreter start (about 60 ms of CPU, on every start of the pytest plugin's service)."""
    return [sys.executable, *(["-O"] if serving_optimized(args) else []), "-m", "gwsvcr", *args]


@dataclass
class Proc:
    """A server process that printed its listening line; its output is collected as it comes."""

    popen: subprocess.Popen[str]
    url: str = ""  # as printed: gwsvcr service's holds its token (http://HOST:PORT/?token=T)
    token: str = ""  # of its /__gwsvcr__/ endpoints
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signal it, wait for its exit (killing it after ``timeout``) and for the last of its output."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        for pump in self.pumps:
            pump.join(5)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def start(cmd: Sequence[str], *, timeout: float = 30, cwd: Path | None = None,
          env: dict[str, str] | None = None, share_stderr: bool = False,
          popen: Callable[..., subprocess.Popen[str]] = subprocess.Popen) -> Proc:
    """Run ``cmd`` and wait (on its output, not a sleep) for ``gwsvcr: listening on URL``. ``share_stderr``: its
    standard error is this process's (its warnings reach the user as they come) instead of collected. Its token is
    ``env``'s ``GWSVCR_TOKEN``, else a new one. ``popen`` starts it (the project's tests fork it instead:
    tests/forkserver.py)."""
    token = (env or {}).get(guard.TOKEN_ENV) or guard.new_token()
    process = popen(list(cmd), stdout=subprocess.PIPE, stderr=None if share_stderr else subprocess.PIPE,
                    text=True, cwd=cwd, start_new_session=True,
                    env={**os.environ, PARENT_ENV: str(os.getpid()), **(env or {}), guard.TOKEN_ENV: token})
    proc = Proc(process, token=token)
    ready = threading.Event()

    def pump_out() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            proc.out.append(line)
            m = LISTENING.match(line.strip())
            if m and not proc.url:
                proc.url = m.group(1)
                ready.set()
        ready.set()

    def pump_err() -> None:
        assert process.stderr is not None
        proc.err.extend(process.stderr)

    proc.pumps = [threading.Thread(target=pump_out, daemon=True)]
    if not share_stderr:
        proc.pumps.append(threading.Thread(target=pump_err, daemon=True))
    for pump in proc.pumps:
        pump.start()
    ready.wait(timeout)
    if not proc.url:
        proc.stop(signal.SIGKILL)
        raise NotListening(f"{' '.join(cmd)} did not say it was listening:\n{proc.stdout}\n{proc.stderr}")
    return proc
