"""``gwsvcr replay CASSETTE --workers N``: N replay processes behind HAProxy, one address, one summary.

This process serves nothing itself. It starts N ``gwsvcr replay`` workers on loopback ports of their own (each
knowing the others, so that ``/__gwsvcr__/status`` through the balancer answers for all of them), writes HAProxy's
configuration (:mod:`gwsvcr.replay.balancer`), runs HAProxy on the address asked for, and prints the one
listening line when HAProxy answers. On SIGINT or SIGTERM it stops HAProxy, asks every worker for its own figures,
stops the workers and prints the figures of the whole; a worker that died meanwhile is named as lost.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource

from gwsvcr import guard
from gwsvcr.cli.serve import StartFailed, listen_failure
from gwsvcr.replay import HEALTH_PATH, balancer, status
from gwsvcr.served import NotListening, Proc, gwsvcr_command, start

READY_TIMEOUT = 20.0  # seconds HAProxy may take to answer its first request
PR_SET_PDEATHSIG = 1  # Linux prctl(2): a signal for this process when the thread that started it ends


class MissingBalancer(click.ClickException):
    exit_code = 2


@dataclass
class Worker:
    name: str
    proc: Proc
    lost: str = ""  # why it is gone, once it is

    @property
    def url(self) -> str:
        return self.proc.url

    def gone(self) -> str:
        """Why the process ended, or "" while it runs."""
        code = self.proc.popen.poll()
        if code is None:
            return ""
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"


def forwarded(ctx: click.Context, leave_out: Collection[str]) -> list[str]:
    """The options given to this command (not their defaults), but ``leave_out``, as a worker's command line."""
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        if (not isinstance(param, click.Option) or name in leave_out
                or ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE):
            continue
        value, flag = ctx.params[name], max(param.opts, key=len)
        if param.is_flag:
            args.append(flag if value or not param.secondary_opts else max(param.secondary_opts, key=len))
        else:
            args += [item for v in (value if param.multiple else [value]) for item in (flag, str(v))]
    return args


def run(cassette_path: str, count: int, host: str, port: int, args: list[str], longest_wait: float,
        strict: bool = True) -> int:
    """Serve ``cassette_path`` with ``count`` workers behind HAProxy on ``host:port`` until SIGINT/SIGTERM; the
    exit status: 1 after a strict miss on any worker, or, strict, a recorded recovery no worker replayed or a fault
    that struck on none."""
    program = balancer.find()
    if program is None:
        raise MissingBalancer(balancer.missing())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _more_files()
    listener = _listen(host, port)
    token = guard.token_from_environment()  # every worker's: each asks the others for their status with it
    if host not in ("", "0.0.0.0", "::") and not guard.HostRule().admits(host):  # a name: the workers admit it
        args = [*args, guard.ALLOW_OPTION, host]
    with listener, tempfile.TemporaryDirectory(prefix="gwsvcr-workers-") as tmp:
        workers = _start_workers(cassette_path, count, args, Path(tmp), token)
        haproxy: subprocess.Popen[bytes] | None = None
        try:
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(balancer.config(f"fd@{listener.fileno()}", [(w.name, w.url.removeprefix("http://"))
                                                                     for w in workers], longest_wait))
            haproxy = subprocess.Popen([program, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, pass_fds=[listener.fileno()],
                                       start_new_session=True, preexec_fn=_ended_with_this())
            url = _url(host, listener.getsockname()[1])
            listener.close()  # HAProxy has it now
            if _ready(url, haproxy, stop):  # else stopped while starting: no listening line
                click.echo(f"gwsvcr: listening on {url}")
                sys.stdout.flush()
                click.echo(f"gwsvcr: status at {status.url_with_token(url, token)}", err=True)
                _watch(workers, haproxy, stop)
        finally:
            if haproxy is not None:
                _end(haproxy)
            failed = _stop_workers(workers, strict, token)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------ starting


def _more_files() -> None:
    """Every held long-poll is a connection on both sides of HAProxy: allow this process and its children as
    many as the system lets them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _ended_with_this() -> Callable[[], None] | None:
    """What HAProxy's process runs before HAProxy (on Linux): SIGTERM for it when this process ends, however it
    ends. The workers see to that themselves (gwsvcr.served.PARENT_ENV); HAProxy cannot. Started from the main
    thread: the signal is tied to the thread that started the process."""
    if sys.platform != "linux":
        return None
    prctl, me = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != me:  # ended before the signal was asked for
            os._exit(1)

    return arm


def _listen(host: str, port: int) -> socket.socket:
    """The balancer's socket, bound and listening here, then handed to HAProxy: port 0 picks a free port with no
    race, and a port in use is reported before anything starts."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(1024)
    except OSError as e:
        raise StartFailed(listen_failure(host, port, e.errno, e.strerror or str(e))) from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _start_workers(cassette_path: str, count: int, args: list[str], tmp: Path, token: str) -> list[Worker]:
    """Start the workers side by side, all with ``token``; once all listen, tell each where the others are."""
    names = [f"w{i + 1}" for i in range(count)]

    def one(name: str) -> Proc:
        return start(gwsvcr_command("replay", cassette_path, "--host", "127.0.0.1", "--port", "0",
                                    "--peer", f"@{tmp / f'peers-{name}'}", *args), timeout=60, share_stderr=True,
                     env={guard.TOKEN_ENV: token})

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, name) for name in names]
        started: list[Worker] = []
        failure: BaseException | None = None
        for name, future in zip(names, futures, strict=True):
            try:
                started.append(Worker(name, future.result()))
            except NotListening as e:
                failure = e
    if failure is not None:
        for w in started:
            w.proc.stop()
        raise click.ClickException(f"a replay worker did not start: {failure}")
    for w in started:
        (tmp / f"peers-{w.name}").write_text("".join(f"{o.url}\n" for o in started if o is not w))
        click.echo(f"gwsvcr: worker {w.name} on {w.url} (pid {w.proc.popen.pid})", err=True)
    return started


def _ready(url: str, haproxy: subprocess.Popen[bytes], stop: threading.Event) -> bool:
    """Wait until HAProxy answers a request through to a worker (True), or a signal came first (False)."""
    probe = url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:") + HEALTH_PATH
    deadline = time.monotonic() + READY_TIMEOUT
    while not stop.is_set():
        if haproxy.poll() is not None:
            raise click.ClickException(f"haproxy exited with status {haproxy.returncode} (its errors are above)")
        try:
            with urllib.request.urlopen(probe, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except OSError:  # not yet (urllib's errors are OSErrors)
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"haproxy did not answer on {url} within {READY_TIMEOUT:g} s")
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------------------- running


def _watch(workers: list[Worker], haproxy: subprocess.Popen[bytes], stop: threading.Event) -> None:
    """Until a signal: say when a worker dies (HAProxy sends its clients to the others); HAProxy dying ends it."""
    while not stop.wait(0.2):
        for w in workers:
            if not w.lost and (why := w.gone()):
                w.lost = why
                click.echo(f"gwsvcr: worker {w.name} ({w.url}) {why}: its clients' sessions are lost; HAProxy "
                           "sends them to the other workers, where they handshake again", err=True)
        if haproxy.poll() is not None:
            raise click.ClickException(f"haproxy exited with status {haproxy.returncode}: stopping the workers")


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_workers(workers: list[Worker], strict: bool, token: str) -> bool:
    """Ask each worker for its own figures, stop it, print the figures of the whole. True when the run failed:
    a strict miss on any worker; strict, a recorded recovery that no worker replayed or a fault that struck on
    none (a worker alone cannot tell)."""
    parts = status.gather([w.url for w in workers if not w.gone()], token)
    by_url = {p.url: p for p in parts}
    codes = [w.proc.stop() for w in workers]
    ordered = []
    for w in workers:
        part = by_url.get(w.url) or status.Part(w.url, None, w.lost or w.gone())
        if part.figures is None:
            w.lost = w.lost or part.lost
        ordered.append(part)
    whole = status.combine(ordered)
    click.echo(status.summary_line(whole, f"({len(workers)} workers)"))
    for w in workers:
        if w.lost:
            click.echo(f"gwsvcr: worker {w.name} ({w.url}) was lost ({w.lost}): its figures are not in the totals")
    sys.stdout.flush()
    idle = [f for f in whole["faults"] if not f["applied"]]
    return 1 in codes or (strict and bool(whole["unused_recovery"] or idle))

