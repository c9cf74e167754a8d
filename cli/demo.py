"""``gwsvcr demo``: simulator -> recorder -> cassette -> replayer, each a real gwsvcr process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from gwsvcr import gws
from gwsvcr.democlient import DemoClient, Observed
from gwsvcr.served import NotListening, Proc, gwsvcr_command, start


def _serve(*args: str) -> Proc:
    try:
        return start(gwsvcr_command(*args), timeout=60)
    except NotListening as e:
        raise click.ClickException(f"gwsvcr {args[0]} did not start: {e}") from None


def _summary(proc: Proc) -> str:
    """Stop a server; its last line is the one-line summary every gwsvcr server prints on stop."""
    proc.stop(timeout=30)
    return proc.out[-1].strip() if proc.out else ""


async def _agent(url: str, operations: tuple[str, ...]) -> list[Observed]:
    async with DemoClient(url) as client:
        await client.login()
        await client.connect()
        return [await client.operate(gws.SEED_CALL_ID, op) for op in operations]


def _session(url: str, operations: tuple[str, ...]) -> list[Observed]:
    return asyncio.run(_agent(url, operations))


def run_demo(cassette: Path, operations: tuple[str, ...]) -> int:
    cassette.parent.mkdir(parents=True, exist_ok=True)
    sim = _serve("sim", "--port", "0")
    try:
        click.echo(f"1. gwsvcr sim (simulated GWS) on {sim.url}")
        recorder = _serve("record", "--upstream", sim.url, "--cassette", str(cassette), "--record-mode", "all",
                           "--port", "0")
        click.echo(f"2. gwsvcr record on {recorder.url} -> {cassette}")
        recorded = _session(recorder.url, operations)
        click.echo(f"   {_summary(recorder)}")
    finally:
        sim.stop(timeout=30)
    replayer = _serve("replay", str(cassette), "--port", "0")
    click.echo(f"3. gwsvcr replay {cassette} on {replayer.url} (simulator stopped: offline)")
    try:
        replayed = _session(replayer.url, operations)
    finally:
        click.echo(f"   {_summary(replayer)}")
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
