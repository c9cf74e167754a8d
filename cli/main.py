"""The ``gwsvcr`` command."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from gwsvcr import cassette, gws
from gwsvcr.cli.load import load
from gwsvcr.cli.options import options_of
from gwsvcr.cli.tools import register as register_tools
from gwsvcr.cli.verify import verify
from gwsvcr.options import GUARD, RECORD, REPLAY
from gwsvcr.record import modes as record_modes
from gwsvcr.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gwsvcr")
def main() -> None:
    """Record and replay Genesys Web Services sessions (REST + CometD long-polls) with their timing."""


def live_view(f):  # type: ignore[no-untyped-def]
    return click.option("--quiet", "-q", is_flag=True,
                        help="No live view: without it, one line per exchange and per CometD event goes to stderr "
                             "while it runs.")(f)


def show_live_view(quiet: bool) -> None:
    """The live view (logger gwsvcr.live) goes to stderr with gwsvcr's other messages (cli/serve.py
    configure_logging), unless quiet; stdout is left alone."""
    import logging

    from gwsvcr.live import LOGGER

    logging.getLogger(LOGGER).setLevel(logging.WARNING if quiet else logging.NOTSET)


def host_port(f):  # type: ignore[no-untyped-def]
    """The options every serving command shares: where it listens, mitmproxy's confdir, --set."""
    f = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Set a mitmproxy option of the engine, as mitmdump --set does, e.g. block_global=false "
                          "(docs/ENGINE.md lists what each command has).")(f)
    f = click.option("--confdir", type=click.Path(file_okay=False), default=None,
                     help="mitmproxy configuration directory holding its CA, for HTTPS clients and regular-mode "
                          "interception (default ~/.mitmproxy).")(f)
    f = click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
                     help="Port to listen on; 0 picks a free one (printed when ready).")(f)
    return click.option("--host", default="127.0.0.1", show_default=True,
                        help="Address to listen on. Anything but loopback exposes your data.")(f)


def engine_settings(confdir: str | None) -> dict[str, object]:
    return {"confdir": confdir} if confdir else {}


@main.command()
@host_port
@click.option("--event-delay-ms", default=250, show_default=True, type=click.IntRange(0),
              help="Delay between an operation's reply and its CometD notification.")
@click.option("--user", default=None, help="Accept only this user name (default: any user, any password).")
@click.option("--password", default=None, help="The password that goes with --user.")
@click.option("--recording-state", type=click.Choice(list(gws.RECORDING_STATES)), default="Recording",
              show_default=True, help="Recording state of each agent's call at the start.")
@click.option("--drop-notification", multiple=True, metavar="OP",
              help="Never send the notification of operation OP (it still succeeds).")
@click.option("--wrong-state", multiple=True, metavar="OP=STATE",
              help="The notification of OP reports this recordingState instead.")
@click.option("--extra-delay-ms", multiple=True, metavar="OP=MS", help="The notification of OP comes MS later.")
@click.option("--refuse", multiple=True, metavar="OP=HTTP[:CODE]",
              help="Refuse OP with this HTTP status and GWS statusCode (default 2), e.g. StopCallRecording=503.")
@options_of(GUARD)
@click.option("--new-call-ids", is_flag=True,
              help="Each agent's call gets a new id (listed by GET /api/v2/me/calls) instead of the seed's.")
@click.option("--forget-after", multiple=True, metavar="OP",
              help="After OP's notification, forget the agent's CometD sessions (as a node restart does): the next "
                   "connect is answered 402::session_unknown with advice to handshake again.")
def sim(host: str, port: int, confdir: str | None, sets: tuple[str, ...], allow_host_header: tuple[str, ...],
        event_delay_ms: int, user: str | None,
        password: str | None, recording_state: str, drop_notification: tuple[str, ...], wrong_state: tuple[str, ...],
        extra_delay_ms: tuple[str, ...], refuse: tuple[str, ...], new_call_ids: bool,
        forget_after: tuple[str, ...]) -> None:
    """Serve a simulated GWS: call-recording operations and their CometD notifications.

    \b
    Examples:
      gwsvcr sim                          # prints: gwsvcr: listening on http://127.0.0.1:PORT
      gwsvcr sim --port 8090 --event-delay-ms 100 --user agent1 --password secret
      gwsvcr sim --wrong-state StopCallRecording=Recording --extra-delay-ms PauseCallRecording=400

    POST /api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V {"operationName":"StopCallRecording"}
    answers {"statusCode":0}; the notification follows on /v2/me/calls via CometD at /api/v2/notifications.
    --drop-notification, --wrong-state, --extra-delay-ms, --refuse, --new-call-ids and --forget-after make it
    differ from a recording on purpose (what `gwsvcr verify` is for).
    """
    from gwsvcr.addons.simulator import GwsSimulator
    from gwsvcr.cli.serve import serve

    if (user is None) != (password is None):
        raise click.UsageError("--user and --password go together")
    serve([GwsSimulator()], host=host, port=port, sets=sets, upstream=False, settings={
        **engine_settings(confdir), **GUARD.addon_settings({"allow_host_header": allow_host_header}),
        "gwsvcr_sim_event_delay_ms": event_delay_ms,
        "gwsvcr_sim_user": user or "", "gwsvcr_sim_password": password or "",
        "gwsvcr_sim_recording_state": recording_state,
        "gwsvcr_sim_drop_notification": list(drop_notification), "gwsvcr_sim_wrong_state": list(wrong_state),
        "gwsvcr_sim_extra_delay_ms": list(extra_delay_ms), "gwsvcr_sim_refuse": list(refuse),
        "gwsvcr_sim_new_call_ids": new_call_ids, "gwsvcr_sim_forget_after": list(forget_after)})


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--repair", is_flag=True,
              help="Keep every document of a damaged cassette that is whole (a truncated or half-copied "
                   "recording), drop the others and say which; the original is kept as FILE.broken.")
def validate(files: tuple[str, ...], repair: bool) -> None:
    """Check cassettes; print FILE:LINE: problem for each problem. Exit 0 when all are valid, 1 otherwise.

    An exchange the recorder kept as plain HTTP (its parsing or redaction failed: its reason is in the cassette)
    is pointed at as FILE:LINE: note: ...; it does not make the cassette invalid.

    \b
    Examples:
      gwsvcr validate cassettes/*.yaml
      gwsvcr validate --repair field.yaml     # a recording cut off mid-write: keep what is complete
    """
    from gwsvcr.cassette.repair import repair as repair_cassette
    from gwsvcr.tools.importing import convert_hint

    bad = 0
    for path in files:
        hint = convert_hint(path)
        if hint is not None:
            click.echo(hint, err=True)
            bad += 1
            continue
        problems = cassette.validate(path)
        notes = [p for p in problems if p.severity is cassette.Severity.NOTE]
        if repair and os.path.isfile(path):
            done = repair_cassette(path)
            for line in done.lines():
                click.echo(line, err=bool(done.failed))
            bad += bool(done.failed)
            continue
        for p in problems:
            click.echo(f"{p.path}:{p.line}: note: {p.message}" if p in notes else str(p), err=True)
        if len(notes) < len(problems):
            bad += 1
        else:
            click.echo(f"{path}: ok" + (f" ({len(notes)} exchange(s) kept as plain HTTP)" if notes else ""))
    sys.exit(1 if bad else 0)


@main.command()
@click.option("--upstream", required=True, help="The GWS server to record (reverse mode), e.g. https://gws:8443.")
@click.option("--cassette", required=True, type=click.Path(dir_okay=False), help="Cassette file to write.")
@host_port
@click.option("--mode", "proxy_mode", type=click.Choice(["reverse", "regular"]), default="reverse",
              show_default=True, help="reverse: clients point at this proxy instead of GWS. regular: an HTTP(S) proxy "
                                      "for a browser or app (trust mitmproxy's CA from --confdir).")
@options_of(RECORD)
@click.option("--upstream-ca", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="Verify the upstream's TLS certificate against the CA certificates in this PEM file (an "
                   "internal CA) instead of the default trust store.")
@click.option("--insecure", is_flag=True, help="Do not verify the upstream's TLS certificate (warns).")
@live_view
def record(upstream: str, cassette: str, host: str, port: int, confdir: str | None, sets: tuple[str, ...],
           proxy_mode: str, upstream_ca: str | None, insecure: bool, quiet: bool, **options: Any) -> None:
    """Record a live GWS session (REST and CometD) into a cassette, secrets redacted.

    \b
    Examples:
      gwsvcr record --upstream https://gws.example.com:8443 --cassette stop.yaml
      gwsvcr record --upstream http://127.0.0.1:8090 --cassette lab.yaml --record-mode all
      gwsvcr record --mode regular --upstream gws.example.com --allow-host gws.example.com \\
          --cassette wwe.yaml --port 8080     # then set the browser's proxy to 127.0.0.1:8080
      gwsvcr record --upstream https://gws.corp:8443 --upstream-ca corp-ca.pem --ignore-query _ \\
          --cassette wwe.yaml
    """
    from urllib.parse import urlsplit

    from gwsvcr.addons.recorder import GwsRecorder
    from gwsvcr.cli.serve import serve

    if proxy_mode == "reverse":
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise click.BadParameter("give a URL such as https://gws.example.com:8443", param_hint="--upstream")
        proxy_mode = f"reverse:{upstream}"
    elif options["allow_host_header"]:
        raise click.UsageError("--allow-host-header is for --mode reverse: a regular proxy passes every Host on "
                               "(the sites' own names)")
    try:
        record_modes.check_target(cassette, options["mode"])
    except record_modes.CassetteExists as e:
        raise click.UsageError(str(e)) from None
    if upstream_ca and insecure:
        raise click.UsageError("--upstream-ca verifies the upstream, --insecure does not: give one of them")
    if upstream_ca and "-----BEGIN CERTIFICATE-----" not in Path(upstream_ca).read_text(errors="replace"):
        raise click.BadParameter(f"{upstream_ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                                 param_hint="--upstream-ca")
    if insecure:
        click.echo("gwsvcr: WARNING: --insecure: the upstream's TLS certificate is NOT verified", err=True)
    settings: dict[str, object] = {**engine_settings(confdir), "gwsvcr_record_cassette": cassette,
                                   "ssl_insecure": insecure, **RECORD.addon_settings(options)}
    if options["hosts"]:
        settings["allow_hosts"] = [re.escape(h) for h in options["hosts"]]
    if upstream_ca:
        settings["ssl_verify_upstream_trusted_ca"] = str(Path(upstream_ca).resolve())
    show_live_view(quiet)
    serve([GwsRecorder()], host=host, port=port, mode=proxy_mode, settings=settings, sets=sets, endpoints=False)


@main.command()
@click.argument("cassette_path", metavar="CASSETTE", type=click.Path(dir_okay=False))
@host_port
@options_of(REPLAY)
@click.option("--upstream", default=None, help="Lenient mode: send unmatched requests to this server.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Replay processes behind HAProxy (which must be installed), each client kept on one of them; "
                   "1: this process serves alone.")
@click.option("--peer", multiple=True, metavar="URL",
              help="Another replay of the same cassette (on another host, behind the same balancer): "
                   "/__gwsvcr__/status adds up its figures. @FILE: the URLs listed in FILE (docs/SCALING.md).")
@live_view
@click.pass_context
def replay(ctx: click.Context, cassette_path: str, host: str, port: int, confdir: str | None, sets: tuple[str, ...],
           upstream: str | None, workers: int, peer: tuple[str, ...], quiet: bool, **options: Any) -> None:
    """Serve a cassette as the server, with its recorded timing, offline.

    \b
    Examples:
      gwsvcr replay cassettes/stop_call_recording.yaml
      gwsvcr replay cassettes/recording_lifecycle.yaml --timing instant --port 8090
      gwsvcr replay field.yaml --lenient --upstream https://gws-lab:8443
      gwsvcr replay wwe.yaml --ignore-query _ --no-allow-repeats
      gwsvcr replay fleet.yaml --workers 4 --port 8090     # 4 processes behind HAProxy
      gwsvcr replay clean.yaml --fault 'unknown-client after op 2' --fault 'drop-connect event 3'

    The cassette header's match section (written by gwsvcr record --ignore-query/--match-header) adds to
    --ignore-query, --match-header and --json-ignore.

    On stop (Ctrl-C or SIGTERM) it prints what was served, missed and never used, the recorded failures
    replayed and the faults injected; strict replay with a miss, with a recorded failure or the recovery after it
    never used, or with a fault that never struck exits 1 so CI notices.
    """
    from gwsvcr.addons.replayer import GwsReplayer
    from gwsvcr.cli.serve import NO_UPSTREAM, serve
    from gwsvcr.cli.tools import BadInput, not_foreign

    not_foreign(cassette_path, BadInput)
    if upstream and options["strict"]:
        raise click.UsageError("--upstream only serves misses in --lenient mode")
    if workers > 1:
        from gwsvcr.cli import workers as balanced
        from gwsvcr.cli.serve import warn_if_exposed
        from gwsvcr.replay import longest_wait

        if upstream:
            raise click.UsageError("--upstream appends lenient misses to the cassette: one process must, not "
                                   "each of --workers")
        if peer:
            raise click.UsageError("--peer names single replays; the workers of --workers know each other")
        try:
            loaded = cassette.load(cassette_path)
        except cassette.CassetteError as e:
            raise click.ClickException(f"cannot replay {cassette_path}:\n{e}") from None
        warn_if_exposed(host)
        sys.exit(balanced.run(cassette_path, workers, host, port,
                              balanced.forwarded(ctx, {"workers", "host", "port", "peer"}),
                              longest_wait(loaded, options["timing"], options["speed"]), options["strict"]))
    addon = GwsReplayer()  # it loads and checks the cassette: a bad one stops the command with its problems
    show_live_view(quiet)
    serve([addon], host=host, port=port, mode=f"reverse:{upstream}" if upstream else NO_UPSTREAM, sets=sets,
          upstream=bool(upstream), show_token="status", settings={
        **engine_settings(confdir), "gwsvcr_replay_cassette": cassette_path, **REPLAY.addon_settings(options),
        "gwsvcr_replay_upstream": upstream or "", "gwsvcr_replay_peers": list(peer),
        **({"connection_strategy": "lazy"} if upstream else {})})
    sys.exit(1 if addon.failed else 0)


@main.command()
@host_port
@click.option("--keep-mb", default=256, show_default=True, type=click.IntRange(0),
              help="Loaded cassettes kept in memory (megabytes of cassette files), so mounting one again costs "
                   "milliseconds.")
@options_of(GUARD)
def service(host: str, port: int, confdir: str | None, sets: tuple[str, ...], keep_mb: int,
            allow_host_header: tuple[str, ...]) -> None:
    """Serve many cassettes from one process: each mounted at run time on a port of its own, offline.

    \b
    Examples:
      gwsvcr service       # prints: gwsvcr: listening on http://127.0.0.1:PORT/?token=T (the control port)
      export GWSVCR_SERVICE='http://127.0.0.1:PORT/?token=T'   # gwsvcr.replaying() and the pytest plugin use it

    \b
    The control API on that port (JSON only, each request with the token: header X-Gwsvcr-Token):
      POST   /__gwsvcr__/mounts     {"cassette": "/abs/path.yaml", "timing": "instant", "strict": true}
                                    -> 201 {"id": "1", "url": "http://127.0.0.1:PORT2"}
      GET    /__gwsvcr__/mounts/ID  served, clients, events_released, misses, unused
      DELETE /__gwsvcr__/mounts/ID  the same, final; the mount's port is closed
      GET    /__gwsvcr__/status     every mount
    """
    from gwsvcr.addons.service import GwsService
    from gwsvcr.cli.serve import serve

    serve([GwsService()], host=host, port=port, sets=sets, upstream=False, show_token="url",
          settings={**engine_settings(confdir), **GUARD.addon_settings({"allow_host_header": allow_host_header}),
                    "gwsvcr_service_keep_mb": keep_mb})


DEMO_OPERATIONS = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")


@main.command()
@click.option("--cassette", "cassette_path", default="out/demo.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="Where the demo writes its recording.")
def demo(cassette_path: str) -> None:
    """Record a scripted session against the simulator, replay it, and compare the timing.

    \b
    Starts `gwsvcr sim`, records a CometD + REST session (the four recording operations) through
    `gwsvcr record`, replays the cassette with `gwsvcr replay` to the same client, and prints the delay of
    each notification after its operation, recorded vs replayed. Loopback only, a few seconds.

    \b
    Examples:
      gwsvcr demo                          # writes out/demo.yaml
      gwsvcr demo --cassette my.yaml       # then: gwsvcr show my.yaml; gwsvcr replay my.yaml
    """
    from gwsvcr.cli.demo import run_demo

    sys.exit(run_demo(Path(cassette_path), DEMO_OPERATIONS))


register_tools(main)
main.add_command(verify)
main.add_command(load)
