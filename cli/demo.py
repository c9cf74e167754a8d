"""``gwsvcr demo``: simulator -> recorder -> cassette -> replayer, each a real gwsvcr process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import click

from gwsvcr import gws
from gwsvcr.democlient import DemoClient, Observed


class _Server:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "gwsvcr", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = ""
        self.lines: list[str] = []
        for line in self.proc.stdout:
            if line.startswith("gwsvcr: listening on "):
                self.url = line.split()[-1]
                break
        if not self.url:
            raise click.ClickException(f"gwsvcr {args[0]} did not start: {self.proc.stderr.read()}")  # type: ignore
        out = self.proc.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(out), daemon=True)
        self._reader.start()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._reader.join(5)
        return "".join(self.lines).strip()


def _session(url: str, operations: tuple[str, ...]) -> list[Observed]:
    client = DemoClient(url)
    client.login()
    client.connect()
    try:
        return [client.operate(gws.SEED_CALL_ID, op) for op in operations]
    finally:
        client.close()


def run_demo(cassette: Path, operations: tuple[str, ...]) -> int:
    cassette.parent.mkdir(parents=True, exist_ok=True)
    sim = _Server("sim", "--port", "0")
    try:
        click.echo(f"1. gwsvcr sim (simulated GWS) on {sim.url}")
        recorder = _Server("record", "--upstream", sim.url, "--cassette", str(cassette), "--record-mode", "all",
                           "--port", "0")
        click.echo(f"2. gwsvcr record on {recorder.url} -> {cassette}")
        recorded = _session(recorder.url, operations)
        click.echo(f"   {recorder.stop()}")
    finally:
        sim.stop()
    replayer = _Server("replay", str(cassette), "--port", "0")
    click.echo(f"3. gwsvcr replay {cassette} on {replayer.url} (simulator stopped: offline)")
    try:
        replayed = _session(replayer.url, operations)
    finally:
        click.echo(f"   {replayer.stop()}")
    click.echo("")
    click.echo(f"{'operation':<22}{'notification':<38}{'recorded':>10}{'replayed':>10}{'diff':>8}")
    worst = 0.0
    for rec, rep in zip(recorded, replayed, strict=False):
        diff = (rep.delay - rec.delay) * 1000
        worst = max(worst, abs(diff))
        click.echo(f"{rec.operation:<22}{rec.notification:<38}{rec.delay * 1000:>8.0f}ms"
                   f"{rep.delay * 1000:>8.0f}ms{diff:>+6.0f}ms")
    same = [r.notification for r in recorded] == [r.notification for r in replayed]
    click.echo("")
    click.echo(f"Same notifications in the same order: {'yes' if same else 'NO'}; "
               f"largest timing difference {worst:.0f} ms.")
    click.echo(f"The cassette: {cassette}  (read it: it is YAML)")
    click.echo(f"Replay it yourself:  .venv/bin/gwsvcr replay {cassette} --port 8090")
    return 0 if same else 1
