"""The tests' fork server (tests/forkserver.py) gives a forked serving command what its own process would have: the
command line, working directory and environment asked for, its own pipes and session, its exit status and its death
by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests import forkserver
from tests.procs import GWSVCR, ROOT, gwsvcr, status

pytestmark = [pytest.mark.e2e,  # it starts processes
              pytest.mark.skipif(not forkserver.ENABLED, reason="GWSVCR_TEST_FORK=0: every command its own process")]

CASSETTE = ROOT / "cassettes" / "recording_lifecycle.yaml"


def forked(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> forkserver.Forked:
    return forkserver.CLIENT.popen([GWSVCR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=cwd, env={**os.environ, **(env or {})})


def test_exit_status_output_and_working_directory(tmp_path: Path) -> None:
    (tmp_path / "here.yaml").write_text("not: a cassette\n")
    child = forked("replay", "here.yaml", cwd=tmp_path)  # relative: found only in the directory asked for
    assert child.wait(30) == 2  # as the console script exits (a ClickException)
    assert "here.yaml:1: not a gwsvcr cassette" in child.stderr.read() and child.stdout.read() == ""
    child = forked("replay", "--no-such-option", str(CASSETTE))
    assert child.wait(30) == 2 and "No such option" in child.stderr.read()


def test_a_server_in_a_session_of_its_own_stops_on_a_signal_and_dies_by_kill() -> None:
    proc = gwsvcr("replay", str(CASSETTE), "--quiet", "--port", "0")
    assert isinstance(proc.popen, forkserver.Forked)
    assert os.getsid(proc.popen.pid) == proc.popen.pid and proc.popen.poll() is None
    assert proc.stop() == 0 and "served 0 requests" in proc.stdout  # SIGTERM: its summary, exit 0
    proc = gwsvcr("replay", str(CASSETTE), "--quiet", "--port", "0")
    assert proc.stop(signal.SIGKILL) == -signal.SIGKILL


def test_the_environment_asked_for_and_the_fork_server_as_the_parent_it_watches() -> None:
    proc = gwsvcr("replay", str(CASSETTE), "--quiet", "--port", "0")
    try:
        assert status(proc.url, proc.token)["served"] == 0  # its token came in the environment sent
        parent = int(Path(f"/proc/{proc.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent != os.getpid() and b"forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()
    finally:
        proc.stop()
    # A server that watches the process that started it (gwsvcr.served.PARENT_ENV, here the fork server) leaves
    # its token unsaid: that process knows it. One that could not would print it.
    assert proc.token not in proc.stderr


def test_what_an_interpreter_reads_at_its_start_is_not_forked() -> None:
    assert forkserver.eligible([GWSVCR, "replay", "x.yaml"], {"GWSVCR_TOKEN": "t"})
    assert not forkserver.eligible([GWSVCR, "replay", "x.yaml"], {"PYTHONHASHSEED": "1"})
    assert not forkserver.eligible([GWSVCR, "replay", "x.yaml"], {"GWSVCR_DEBUG": "1"})
    assert not forkserver.eligible([GWSVCR, "show", "x.yaml"], None)
    assert not forkserver.eligible([GWSVCR, "replay", "--help"], None)
