"""The serving commands the tests start (``gwsvcr record|replay|sim|service``), forked from one interpreter that has
imported gwsvcr and mitmproxy once, instead of each starting a Python of its own.

A start of ``gwsvcr replay`` costs about 1.2 s of CPU and 1 s of waiting, nearly all of it imports; the end-to-end
tier starts some 270 of them. Each pytest process gets one fork server (this file, run as ``python -O``, the way the
``gwsvcr`` entry re-runs a serving command), which imports what those commands import and then waits on a Unix
socket. A start sends it the command line, the working directory, the environment and the two pipe ends for the
child's standard output and error; it forks, and the child runs the ``gwsvcr`` command itself (click's parsing, the
command, mitmproxy, signals, exit status) exactly as the console script would after its imports. The test sees a
:class:`Forked` in place of a :class:`subprocess.Popen`: its pid (a process group of its own, as ``start_new_session``
makes), its pipes, ``poll``/``wait`` (the exit status reported by the fork server, which reaps it) and signals.

What the fork cannot give is what an interpreter reads at its start (``PYTHON*`` variables, ``GWSVCR_DEBUG``): a
start whose environment sets one runs as its own process, as does every start when ``GWSVCR_TEST_FORK=0``. The
console script's own first step (the ``-O`` re-exec, the lean addons package) is tested in tests/test_entry.py and
runs in every test that starts ``gwsvcr`` through ``subprocess`` directly.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from gwsvcr.optimized import SERVING
from gwsvcr.served import PARENT_ENV

ENABLED = os.environ.get("GWSVCR_TEST_FORK", "1") != "0"


def eligible(cmd: Sequence[str], env: dict[str, str] | None) -> bool:
    """A serving command whose environment adds nothing an interpreter reads at its start."""
    return (ENABLED and len(cmd) > 1 and cmd[1] in SERVING and "--help" not in cmd
            and not any(k.startswith("PYTHON") or k == "GWSVCR_DEBUG" for k in (env or {})))


class Forked(subprocess.Popen):  # type: ignore[type-arg]
    """A child of the fork server, seen as a :class:`subprocess.Popen` of this process: the calls the tests and
    gwsvcr.served make (pid, args, stdout, stderr, returncode, poll, wait, send_signal, terminate, kill)."""

    def __init__(self, args: list[str], pid: int, channel: socket.socket, stdout: Any, stderr: Any) -> None:
        # subprocess.Popen.__init__ would start a process: set what its other methods read instead.
        self.args = args
        self.pid = pid
        self.stdin = None
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self._child_created = False  # no ResourceWarning from Popen.__del__: the fork server reaps it
        self._channel = channel
        self._lock = threading.Lock()

    def _status(self, timeout: float | None) -> int | None:
        """The exit status the fork server sends when it reaps the child, waiting up to ``timeout``."""
        with self._lock:
            if self.returncode is None:
                self._channel.settimeout(timeout)
                try:
                    data = self._channel.recv(64)
                except (TimeoutError, BlockingIOError):
                    return None
                self.returncode = os.waitstatus_to_exitcode(int(data)) if data else -signal.SIGKILL
                self._channel.close()
            return self.returncode

    def poll(self) -> int | None:
        return self._status(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Client:
    """This process's fork server, started on first use; it ends with this process (its standard input closes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._path = ""

    def _address(self) -> str:
        with self._lock:
            # A new one when there is none, it ended, or its socket was removed (a clean-up of the temporary folder)
            if self._server is None or self._server.poll() is not None or not os.path.exists(self._path):
                self._path = os.path.join(tempfile.mkdtemp(prefix="gwsvcr-fork-"), "socket")
                self._server = subprocess.Popen([sys.executable, "-O", __file__, self._path],
                                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
                deadline = time.monotonic() + 60
                while not os.path.exists(self._path):  # it binds once its imports are done
                    if self._server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the tests' fork server ({__file__}) did not start")
                    time.sleep(0.01)
            return self._path

    def popen(self, cmd: Sequence[str], *, stdout: int, stderr: int | None, text: bool, cwd: Any = None,
              start_new_session: bool = True, env: dict[str, str] | None = None) -> Forked:
        """:class:`subprocess.Popen`'s call as gwsvcr.served.start makes it (pipes for stdout and, unless shared,
        stderr; text; a session of its own)."""
        assert stdout == subprocess.PIPE and stderr in (None, subprocess.PIPE) and text and start_new_session
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if stderr == subprocess.PIPE else (-1, -1)
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            channel.connect(self._address())
            request = {"argv": list(cmd), "cwd": os.fspath(cwd or os.getcwd()), "env": env or dict(os.environ)}
            socket.send_fds(channel, [json.dumps(request).encode()], [out_w, err_w if err_w >= 0 else 2])
            pid = int(channel.recv(64))
        except BaseException:
            channel.close()
            for fd in (out_r, err_r):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w):
                if fd >= 0:
                    os.close(fd)
        return Forked(list(cmd), pid, channel, open(out_r), open(err_r) if err_r >= 0 else None)


CLIENT = Client()


def spawner(cmd: Sequence[str], env: dict[str, str] | None) -> Any:
    """What gwsvcr.served.start should start ``cmd`` with: the fork server when it can, else subprocess.Popen."""
    return CLIENT.popen if eligible(cmd, env) else subprocess.Popen


# The fork server itself (``python -O tests/forkserver.py SOCKET``).

# What the serving commands import (cli/main.py imports each lazily): a regular-mode recorder also takes mitmproxy's
# onboarding and proxyauth addons.
PREPARED = ("gwsvcr.cli.main", "gwsvcr.cli.serve", "gwsvcr.cli.workers", "gwsvcr.replay", "gwsvcr.addons.recorder",
            "gwsvcr.addons.replayer", "gwsvcr.addons.service", "gwsvcr.addons.simulator",
            "mitmproxy.addons.onboarding", "mitmproxy.addons.proxyauth")


def prepare() -> Any:
    """Import what the serving commands import, as the console script does (lean addons package first); the
    ``gwsvcr`` command."""
    import importlib

    from gwsvcr.cli.entry import lean_addons_package

    lean_addons_package()
    for name in PREPARED:
        importlib.import_module(name)
    return importlib.import_module("gwsvcr.cli.main").main


def serve(path: str) -> None:
    command = prepare()
    import gc

    gc.collect()
    gc.freeze()  # what the children share stays shared: the collector does not write to it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    waiting: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    selector.register(0, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj == 0:
                if not os.read(0, 4096):  # the test process is gone: so is its fork server, and its socket
                    os.unlink(path)
                    os.rmdir(os.path.dirname(path))
                    os._exit(0)
            elif key.fileobj == wake_r:
                os.read(wake_r, 4096)
            else:
                conn, _ = listener.accept()
                try:
                    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
                    request = json.loads(data)
                except (OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    closing = [listener, conn, *waiting.values()]
                    child(command, request, fds, closing, [wake_r, wake_w])
                for fd in fds:
                    os.close(fd)
                conn.send(str(pid).encode())
                waiting[pid] = conn
        while waiting:  # reap: each status goes to the start that asked for that child
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            asker = waiting.pop(pid, None)
            if asker is not None:
                try:
                    asker.send(str(status).encode())
                except OSError:
                    pass
                asker.close()


def child(command: Any, request: dict[str, Any], fds: list[int], closing: list[socket.socket],
          pipes: list[int]) -> None:
    """In the forked child: become the command's process (its own session, the pipes as stdout and stderr, the
    working directory and environment asked for), run the ``gwsvcr`` command, exit as an interpreter would."""
    code: Any = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for sock in closing:
            sock.close()
        for fd in pipes:
            os.close(fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in {devnull, *fds} - {0, 1, 2}:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if PARENT_ENV in os.environ:  # the server watches its parent, this fork server, which ends with the test
            os.environ[PARENT_ENV] = str(os.getppid())
        sys.argv = list(request["argv"])
        try:
            command(prog_name="gwsvcr")
        finally:
            threading._shutdown()  # type: ignore[attr-defined]  # as at an interpreter's exit
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = -signal.SIGINT
    except Exception:  # noqa: BLE001  (as the interpreter does with an uncaught one)
        traceback.print_exc()
        code = 1
    try:
        import atexit

        atexit._run_exitfuncs()
    finally:
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream
                pass
        if code < 0:
            os.kill(os.getpid(), -code)
        os._exit(code & 0xFF)


if __name__ == "__main__":
    del sys.path[0]  # tests/: its modules must not shadow anything the commands import
    serve(sys.argv[1])
