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
