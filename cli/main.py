"""The ``gwsvcr`` command."""

from __future__ import annotations

import sys

import click

from gwsvcr import __version__, cassette


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gwsvcr")
def main() -> None:
    """Record and replay Genesys Web Services sessions (REST + CometD long-polls) with their timing."""


def host_port(f):  # type: ignore[no-untyped-def]
    f = click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
                     help="Port to listen on; 0 picks a free one (printed when ready).")(f)
    return click.option("--host", default="127.0.0.1", show_default=True,
                        help="Address to listen on. Anything but loopback exposes your data.")(f)


@main.command()
@host_port
@click.option("--event-delay-ms", default=250, show_default=True, type=click.IntRange(0),
              help="Delay between an operation's reply and its CometD notification.")
@click.option("--user", default=None, help="Accept only this user name (default: any user, any password).")
@click.option("--password", default=None, help="The password that goes with --user.")
@click.option("--recording-state", type=click.Choice(["Recording", "Paused", "Stopped"]), default="Recording",
              show_default=True, help="Recording state of each agent's call at the start.")
def sim(host: str, port: int, event_delay_ms: int, user: str | None, password: str | None,
        recording_state: str) -> None:
    """Serve a simulated GWS: call-recording operations and their CometD notifications.

    \b
    Examples:
      gwsvcr sim                          # prints: gwsvcr: listening on http://127.0.0.1:PORT
      gwsvcr sim --port 8090 --event-delay-ms 100 --user agent1 --password secret

    POST /api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V {"operationName":"StopCallRecording"}
    answers {"statusCode":0}; the notification follows on /v2/me/calls via CometD at /api/v2/notifications.
    """
    from gwsvcr.addons.simulator import GwsSimulator
    from gwsvcr.cli.serve import serve
    from gwsvcr.simulator import SimulatorConfig

    if (user is None) != (password is None):
        raise click.UsageError("--user and --password go together")
    cfg = SimulatorConfig(event_delay=event_delay_ms / 1000, user=user, password=password,
                          recording_state=recording_state)
    addon = GwsSimulator(cfg)
    serve([addon], host=host, port=port, settings={
        "gwsvcr_sim_event_delay_ms": event_delay_ms, "gwsvcr_sim_user": user or "",
        "gwsvcr_sim_password": password or ""})


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check cassettes; print FILE:LINE: problem for each problem. Exit 0 when all are valid, 1 otherwise.

    \b
    Example:
      gwsvcr validate cassettes/*.yaml
    """
    bad = 0
    for path in files:
        problems = cassette.validate(path)
        for p in problems:
            click.echo(str(p), err=True)
        if problems:
            bad += 1
        else:
            click.echo(f"{path}: ok")
    sys.exit(1 if bad else 0)
