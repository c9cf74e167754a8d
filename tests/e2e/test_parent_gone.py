"""A server started through gwsvcr.served.start (the pytest plugin, ``gwsvcr demo``, gwsvcr.replaying) stops by
itself when the process that started it is killed, even though its standard output and error were pipes to that
process, now closed: no server outlives its owner with its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gwsvcr.served import PARENT_ENV, gwsvcr_command
from tests.procs import ROOT

OWNER = """
import sys
from gwsvcr.served import gwsvcr_command, start
proc = start(gwsvcr_command("sim", "--port", "0"))
print(proc.popen.pid, flush=True)
sys.stdin.read()  # until the test kills this process
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_server_whose_owner_is_killed_stops_by_itself() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        assert owner.stdout is not None
        server = int(owner.stdout.readline())
        assert alive(server)
        os.kill(owner.pid, signal.SIGKILL)  # its pipes to the server close with it
        owner.wait(10)
        deadline = time.monotonic() + 20
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(server), "the server outlived the process that started it"
    finally:
        if owner.poll() is None:
            owner.kill()
        try:
            os.kill(server, signal.SIGKILL)
        except (NameError, ProcessLookupError):
            pass


def test_a_server_whose_owner_ended_before_it_was_up_stops_by_itself() -> None:
    """The owner can end while its server still starts (a pytest run over before its background service was up):
    the server, handed to another parent before it could look, sees the process it names is gone and stops."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # reaped: its pid names no process
    server = subprocess.Popen(gwsvcr_command("sim", "--port", "0"), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, PARENT_ENV: str(gone.pid)})
    try:
        _, err = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.communicate()
        raise AssertionError("the server outlived the process that started it, gone before it was up") from None
    assert f"the process that started this server (pid {gone.pid}) is gone: stopping" in err
