"""``gwsvcr load``: a thin click adapter that checks its input and runs ``locust -f <gwsvcr's locustfile>``
(gwsvcr/load/locustfile.py) for the common case; ``locust -f`` itself does the rest (distributed runs, the web UI
with other settings). Locust is imported by the locust process only, never here."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import click

import gwsvcr.load
from gwsvcr.cli.tools import BadInput
from gwsvcr.client.bayeux import TRANSPORTS
from gwsvcr.load.settings import DEFAULT_IGNORE, PASSWORD_ENV, LoadSettings, LoadSettingsError
from gwsvcr.timeline import Timing
from gwsvcr.verify import Target

LOCUSTFILE = Path(gwsvcr.load.__file__).with_name("locustfile.py")
# Locust puts the working directory first on sys.path before it loads the locustfile: a folder named gwsvcr there (a
# clone of this repository, seen from its parent folder) would then be imported as an empty namespace package in
# place of gwsvcr. So gwsvcr is imported first, with the working directory off sys.path (-P), then locust runs.
LOCUST = [sys.executable, "-P", "-c", "import gwsvcr, runpy; runpy.run_module('locust', run_name='__main__', "
                                      "alter_sys=True)"]
_RUN_TIME = re.compile(r"^(?=\d)(\d+h)?(\d+m)?(\d+s)?$")


class BadLoadInput(BadInput):
    exit_code = 2


def _print_locustfile(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(str(LOCUSTFILE))
        ctx.exit(0)


@click.command(context_settings={"show_default": True})
@click.argument("cassette_path", metavar="CASSETTE")
@click.argument("locust_args", nargs=-1, metavar="[-- LOCUST_ARGS...]")
@click.option("--against", required=True, metavar="URL", help="The GWS to load: its base URL.")
@click.option("--user", default="agent{i}", help="User name pattern; {i} is the simulated agent's number, from 1.")
@click.option("--password", default=None, help="The agents' password (visible in ps: prefer --password-env).")
@click.option("--password-env", default=None, metavar="VAR", help="Read the password from this environment variable.")
@click.option("--users-csv", default=None, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="user,password rows instead of --user and a password: agent i logs in with row i.")
@click.option("--users", "-u", required=True, type=click.IntRange(1), help="How many agents at once.")
@click.option("--spawn-rate", "-r", required=True, type=click.FloatRange(min=0, min_open=True),
              help="Agents started per second.")
@click.option("--run-time", "-t", required=True, metavar="T", help="How long the run lasts: 30s, 10m, 1h30m.")
@click.option("--headless", is_flag=True, help="No web UI (else the UI is at http://127.0.0.1:8089, the run starts "
                                               "at once and ends after --run-time).")
@click.option("--csv", "csv_prefix", default=None, metavar="PREFIX", help="Write Locust's CSV stats to PREFIX_*.csv.")
@click.option("--processes", type=click.IntRange(1), default=None,
              help="Run K worker processes on this machine (one asyncio loop each), with a master.")
@click.option("--session", "-s", default=None, metavar="S", help="The recorded session (s1, s2, s1@2).")
@click.option("--timing", type=click.Choice([t.value for t in Timing]), default=Timing.RECORDED.value,
              help="recorded: each request at its recorded offset; instant: as soon as it may go.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Seconds between an agent's REST operations instead of the recorded pacing.")
@click.option("--timeout", default=10.0, type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for each reply and each expected notification.")
@click.option("--transport", type=click.Choice(TRANSPORTS), default=None, help="CometD transport; default: as "
                                                                                 "recorded.")
@click.option("--bind", multiple=True, metavar="PATH", help="A JSON path whose value the server assigns anew "
                                                             "(calls.id), as gwsvcr verify --bind.")
@click.option("--ignore", multiple=True, metavar="FIELD",
              help="Also ignore this field when comparing (the user name always is).")
@click.option("--locustfile", is_flag=True, expose_value=False, is_eager=True, callback=_print_locustfile,
              help="Print the path of gwsvcr's locustfile (for locust -f) and exit.")
def load(cassette_path: str, locust_args: tuple[str, ...], against: str, user: str, password: str | None,
         password_env: str | None, users_csv: str | None, users: int, spawn_rate: float, run_time: str,
         headless: bool, csv_prefix: str | None, processes: int | None, session: str | None, timing: str,
         interval: float | None, timeout: float, transport: str | None, bind: tuple[str, ...],
         ignore: tuple[str, ...]) -> None:
    """Load a live GWS with recorded agents, on Locust: each of --users agents logs in as itself, holds its own
    CometD long-poll and runs the cassette's recorded session (at its recorded pacing, or --interval) again and
    again until --run-time ends. Locust shows each REST operation as a request (POST StopCallRecording) and each
    expected notification as its own entry (NOTIFY StopCallRecording -> CallRecordingStateChange) whose response
    time is its delay after the operation's reply; one that does not come within --timeout, or differs from the
    recording, is a failure of that entry. Exit: Locust's (1 when anything failed); 2 on bad input.

    Point it only at servers you are allowed to load.

    \b
    Examples:
      gwsvcr load field.yaml --against https://gws-lab:8443 --user 'agent{i}' --password-env GWS_PASSWORD \\
          --users 500 --spawn-rate 20 --run-time 10m --headless --csv out/lab
      gwsvcr load cassettes/recording_lifecycle.yaml --against http://127.0.0.1:8090 --users-csv agents.csv \\
          -u 50 -r 10 -t 60s --processes 2 -- --loglevel WARNING
    """
    if importlib.util.find_spec("locust") is None:
        raise BadLoadInput("gwsvcr load needs Locust: pip install 'gwsvcr[load]'")
    if not _RUN_TIME.match(run_time):
        raise click.BadParameter(f"{run_time!r} is not a duration such as 30s, 10m or 1h30m", param_hint="--run-time")
    try:
        target = Target.parse(against)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--against") from None
    password = _password(password, password_env, users_csv)
    settings = LoadSettings(cassette=str(Path(cassette_path).resolve()), session=session, user=user,
                            password=password, users_csv=str(Path(users_csv).resolve()) if users_csv else None,
                            timing=Timing.parse(timing), interval=interval, timeout=timeout, transport=transport,
                            binds=bind, ignore=(*DEFAULT_IGNORE, *ignore))
    try:
        plan = settings.plan()
        settings.credentials()
    except LoadSettingsError as e:
        raise BadLoadInput(str(e)) from None
    command = [*LOCUST, "-f", str(LOCUSTFILE), "--host", target.url(),
               "--users", str(users), "--spawn-rate", f"{spawn_rate:g}", "--run-time", run_time,
               "--gwsvcr-cassette", settings.cassette, "--gwsvcr-user", user, "--gwsvcr-timing", timing,
               "--gwsvcr-timeout", f"{timeout:g}", "--gwsvcr-ignore", ",".join(settings.ignore)]
    for flag, value in (("--gwsvcr-session", session), ("--gwsvcr-users-csv", settings.users_csv),
                        ("--gwsvcr-interval", None if interval is None else f"{interval:g}"),
                        ("--gwsvcr-transport", transport), ("--gwsvcr-bind", ",".join(bind) or None),
                        ("--csv", csv_prefix), ("--processes", None if processes is None else str(processes))):
        if value is not None:
            command += [flag, value]
    command += ["--headless"] if headless else ["--autostart", "--autoquit", "30", "--web-host", "127.0.0.1"]
    command += list(locust_args)
    env = dict(os.environ)
    env.pop(PASSWORD_ENV, None)
    if password is not None:
        env[PASSWORD_ENV] = password  # to locust by its environment, never on its command line
    click.echo(f"gwsvcr load: {plan.summary()}", err=True)
    click.echo(f"  {users} agents ({users_csv or user}) against {target.url()}, spawn rate "
               f"{spawn_rate:g}/s, for {run_time}" + (f", {processes} processes" if processes else ""), err=True)
    sys.exit(_run(command, env))


def _password(password: str | None, password_env: str | None, users_csv: str | None) -> str | None:
    given = [name for name, v in (("--password", password), ("--password-env", password_env),
                                  ("--users-csv", users_csv)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --password, --password-env and --users-csv" +
                               (f", not {' and '.join(given)}" if given else ""))
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise click.UsageError(f"--password-env {password_env}: that environment variable is not set")
    return password


def _run(command: list[str], env: dict[str, str]) -> int:
    """Run locust; a SIGTERM or Ctrl-C here stops it as its own (it writes its stats and exits)."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
