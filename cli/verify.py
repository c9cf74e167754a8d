"""``gwsvcr verify``: a thin click adapter over :mod:`gwsvcr.verify`. The report streams to stdout, one line per
operation and notification as it is checked; bad input is one message on stderr and exit 2; a server that behaves
differently exits 1."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import click

from gwsvcr import cassette as cassettes
from gwsvcr import compare
from gwsvcr.cli.tools import BadInput, load
from gwsvcr.client.bayeux import TRANSPORTS
from gwsvcr.errors import GwsvcrError
from gwsvcr.timeline import Timing
from gwsvcr.tools import report as html_report
from gwsvcr.verify import (
    Check,
    Credentials,
    Listener,
    Listeners,
    Options,
    PlanError,
    Result,
    SessionDriver,
    Target,
    VerifyError,
    build,
    choose_session,
)
from gwsvcr.verify.record import LiveRecording


class BadVerifyInput(BadInput):
    exit_code = 2  # 1 means "the server behaves differently"


class _Report(Listener):
    """Prints each check as it comes, and keeps its lines for --report."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, bool]] = []

    def check(self, check: Check) -> None:
        for line in check.lines():
            click.echo(line)
            self.lines.append((line, check.ok))
        sys.stdout.flush()


def _credentials(user: str | None, password: str | None, password_env: str | None) -> Credentials | None:
    if password is not None and password_env is not None:
        raise click.UsageError("give --password or --password-env, not both")
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise click.UsageError(f"--password-env {password_env}: that environment variable is not set")
    if user is None:
        if password is not None:
            raise click.UsageError("--password needs --user")
        return None
    if password is None:
        raise click.UsageError("--user needs --password or --password-env")
    return Credentials(user, password)


@click.command()
@click.argument("cassette_path", metavar="CASSETTE")
@click.option("--against", required=True, metavar="URL",
              help="The live server: its base URL, e.g. https://gws-lab.example.com:8443.")
@click.option("--user", default=None, help="Log in as this user (Basic auth); never the cassette's.")
@click.option("--password", default=None, help="The password of --user (visible to other users of this machine: "
                                               "prefer --password-env).")
@click.option("--password-env", default=None, metavar="VAR", help="Read the password from this environment variable.")
@click.option("--session", "-s", default=None, metavar="S", help="The recorded session to drive (s1, s2, s1@2, ...); "
                                                                 "needed when the cassette holds several.")
@click.option("--timing", type=click.Choice([t.value for t in Timing]), default=Timing.RECORDED.value,
              show_default=True, help="recorded: each request at its recorded offset; instant: as soon as the "
                                      "notifications the client had seen before it came.")
@click.option("--threshold-ms", default=50.0, show_default=True, type=click.FloatRange(min=0),
              help="Report a notification whose delay after its cause differs from the recorded one by more.")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for each expected notification, each reply and the connection.")
@click.option("--bind", multiple=True, metavar="PATH",
              help="A JSON path (call.id, calls.id, data.call.id) whose value the server assigns anew: its first "
                   "live value replaces the recorded one in every later request.")
@click.option("--ignore", multiple=True, metavar="FIELD",
              help="Also ignore this field when comparing, as gwsvcr diff --ignore does (e.g. user.userName).")
@click.option("--transport", type=click.Choice(TRANSPORTS), default=None,
              help="CometD transport; default: as recorded.")
@click.option("--record", "record_path", default=None, metavar="OUT.yaml",
              help="Write the live session as a cassette (redacted), for show, diff and report.")
@click.option("--report", "report_path", default=None, metavar="OUT.html",
              help="Write an HTML page drawing the recording and the live session side by side.")
def verify(cassette_path: str, against: str, user: str | None, password: str | None, password_env: str | None,
           session: str | None, timing: str, threshold_ms: float, timeout: float, bind: tuple[str, ...],
           ignore: tuple[str, ...], transport: str | None, record_path: str | None,
           report_path: str | None) -> None:
    """Drive a recorded session's client side against a live server and report, per operation and per
    notification, where it now behaves differently. Exit 0 when it behaves as recorded, 1 when not, 2 on bad
    input (a missing cassette, an unreachable server, a refused login).

    It logs in with --user and the password given, replays the CometD handshake and subscriptions with a
    long-poll held all along, sends each recorded REST request again, and carries the live session cookies,
    CSRF token, clientId and --bind values forward. Replies and notifications are compared as gwsvcr diff
    compares (volatile values ignored); a notification's delay after its cause is compared too.

    \b
    Examples:
      gwsvcr verify field.yaml --against https://gws-lab:8443 --user agent1 --password-env GWS_PASSWORD
      gwsvcr verify cassettes/stop_call_recording.yaml --against http://127.0.0.1:8090 \\
          --user agent1 --password secret --timing instant --record live.yaml --report side-by-side.html
      gwsvcr verify lab.yaml --against https://gws-lab:8443 --user agent1 --password-env P --bind calls.id
    """
    credentials = _credentials(user, password, password_env)
    try:
        target = Target.parse(against)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--against") from None
    recorded = load(cassette_path, BadVerifyInput)
    try:
        plan = build(recorded, choose_session(recorded, session))
    except PlanError as e:
        raise BadVerifyInput(str(e)) from None
    for out in (record_path, report_path):
        if out is not None and Path(out).resolve() == Path(cassette_path).resolve():
            raise BadVerifyInput(f"{out} is the cassette being verified: write elsewhere")
    options = Options(Timing.parse(timing), threshold_ms / 1000, timeout, transport, bind,
                      compare.Volatility(ignore=ignore))
    with tempfile.TemporaryDirectory(prefix="gwsvcr-verify-") as scratch:
        live_path = record_path or (str(Path(scratch) / "live.yaml") if report_path else None)
        try:
            recording = LiveRecording(live_path, target.url()) if live_path else None
        except OSError as e:
            raise BadVerifyInput(f"{live_path}: cannot write: {e.strerror}") from None
        report = _Report()
        click.echo(f"gwsvcr verify: {plan.summary()}")
        click.echo(f"  against {target.url()} over {options.transport or plan.transport}, timing {timing}, "
                   f"threshold {threshold_ms:g} ms, timeout {timeout:g} s")
        driver = SessionDriver(plan, target, credentials, options, Listeners(report, recording))
        try:
            result = asyncio.run(driver.run())
        except GwsvcrError as e:
            click.echo(f"gwsvcr verify: {e}", err=True)
            sys.exit(e.exit_code if isinstance(e, VerifyError) else 1)
        except OSError as e:  # the live cassette cannot be written
            raise BadVerifyInput(f"{live_path}: cannot write: {e.strerror}") from None
        finally:
            if recording is not None:
                recording.close()
        for binding in driver.live.bindings:
            click.echo(f"bound {binding.rule}: {binding.recorded!r} recorded -> {binding.live!r} live (from "
                       f"{binding.where})" if binding.bound else f"bound {binding.rule}: never seen in a reply")
        if record_path:
            click.echo(f"gwsvcr verify: wrote the live session to {record_path}", err=True)
        if report_path and live_path:
            _write_report(report_path, recorded, live_path, bool(record_path), report.lines, result)
    click.echo(f"verify: {result.summary()}")
    sys.exit(0 if result.ok else 1)


def _write_report(path: str, recorded: cassettes.Cassette, live_path: str, saved: bool,
                  lines: list[tuple[str, bool]], result: Result) -> None:
    live = cassettes.load(live_path, use_cache=False)
    if not saved:
        live.path = f"{live.header.upstream} (not saved: --record saves it)"
    page = html_report.render(recorded, live, [*lines, (f"verify: {result.summary()}", result.ok)])
    try:
        cassettes.write_atomically(path, page)
    except OSError as e:
        raise BadVerifyInput(f"{path}: cannot write: {e.strerror}") from None
    click.echo(f"gwsvcr verify: wrote {path}", err=True)
