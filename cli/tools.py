"""Cassette tools for field issues: ``show``, ``diff``, ``redact``, ``har import/export`` and ``report``.

Thin click adapters over gwsvcr.tools (show, diff, har, report) and gwsvcr.record.privacy; ``register(main)``
adds them to the ``gwsvcr`` command group. Bad input (a missing file, an invalid cassette or HAR) is one clear
message per problem on stderr, ``FILE:LINE: what``, and exit 1 (exit 2 for ``diff``, whose 1 means "they differ").
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from gwsvcr import cassette as cassettes
from gwsvcr import session as sessions
from gwsvcr.cassette import Cassette, Problem
from gwsvcr.record import privacy
from gwsvcr.record.redact import Redactor
from gwsvcr.tools import diff as semantic_diff
from gwsvcr.tools import har as har_format
from gwsvcr.tools import importing, vcrpy
from gwsvcr.tools import report as html_report
from gwsvcr.tools import show as timeline
from gwsvcr.tools.progress import Progress


class BadInput(click.ClickException):
    """Printed as is (``FILE:LINE: what`` lines), without click's ``Error:`` prefix."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class BadDiffInput(BadInput):
    """For ``diff``, whose exit 1 means "they differ"."""

    exit_code = 2


def _problem_text(problem: Problem) -> str:
    return f"{problem.path}: {problem.message}" if problem.line <= 0 else str(problem)


def not_foreign(path: str, error: type[click.ClickException] = BadInput) -> None:
    """Raise ``error`` saying how to convert the file when another tool wrote it (a HAR, a VCR.py cassette, a
    mitmproxy flow file)."""
    hint = importing.convert_hint(path)
    if hint is not None:
        raise error(hint)


def load(path: str, error: type[BadInput] = BadInput) -> Cassette:
    """A valid cassette, or ``error`` listing every problem; a long parse shows progress on stderr."""
    not_foreign(path, error)
    with Progress(f"loading {path}"):
        try:
            loaded = cassettes.load(path)
        except cassettes.CassetteError as e:
            raise error("\n".join(_problem_text(p) for p in e.problems)) from None
    for warning in loaded.warnings:
        click.echo(f"gwsvcr: {warning.severity.value}: {_problem_text(warning)}", err=True)
    return loaded


def emit(lines: Iterable[str]) -> None:
    """Print lines; a reader that goes away (``| head``) ends the command quietly."""
    try:
        for line in lines:
            click.echo(line)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _writing(path: str, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as e:
        raise BadInput(f"{path}: cannot write: {e.strerror}") from None


# ----------------------------------------------------------------------------------------------------- show


@click.command()
@click.argument("cassette_path", metavar="CASSETTE")
@click.option("--session", "-s", metavar="S", help="Only this session (s1, s2, ...).")
@click.option("--channel", "-c", metavar="C",
              help="Only Bayeux messages on this channel; globs /v2/* and /v2/** work. REST rows drop out.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row instead of text.")
def show(cassette_path: str, session: str | None, channel: str | None, as_json: bool) -> None:
    """Print a cassette as a timeline: time since the episode began, session, exchange, direction, REST
    call or Bayeux channel, a summary (operationName, statusCode, notificationType and recordingState), and
    for each pushed event its cause and delay. Fits 100 columns.

    \b
    Examples:
      gwsvcr show field.yaml
      gwsvcr show field.yaml --session s2 --channel /v2/me/calls
      gwsvcr show field.yaml --json | jq 'select(.kind == "event")'

    \b
    Reading a row:
      2.759 s1  #6 <- /v2/me/calls CallRecordingStateChange (Stopped)  251 ms after #5

    Exchange #6 (a long-poll reply) delivered this event 2.759 s into the episode, 251 ms after the reply to
    exchange #5 (StopCallRecording) completed.
    """
    loaded = load(cassette_path)
    if session is not None and session not in loaded.sessions():
        known = ", ".join(loaded.sessions()) or "none"
        raise BadInput(f"{cassette_path}: no session {session!r}; it has {known}")
    rows = timeline.select(timeline.timeline(loaded), session, channel)
    if as_json:
        emit(timeline.json_lines(rows))
        return
    summaries = [s for s in sessions.summarize(loaded) if session is None or s.label == session]
    emit(itertools.chain(timeline.render_sessions(summaries), timeline.render(rows, loaded)))


# ----------------------------------------------------------------------------------------------------- diff


@click.command("diff")
@click.argument("a_path", metavar="A")
@click.argument("b_path", metavar="B")
@click.option("--threshold-ms", default=50.0, show_default=True, type=click.FloatRange(min=0),
              help="Report an event whose delay after its cause differs by more than this.")
@click.option("--ignore", multiple=True, metavar="FIELD",
              help="Also ignore this field: a key name (duration) or the end of a path (call.userData.X).")
@click.option("--exact", is_flag=True, help="Compare volatile values too (ids, uuids, times, placeholders).")
def diff(a_path: str, b_path: str, threshold_ms: float, ignore: tuple[str, ...], exact: bool) -> None:
    """Compare two recordings semantically: per session, the same REST operations, Bayeux messages and
    notifications in the same order, with the same fields? Exit 0 when equivalent, 1 when not, 2 on bad input.

    Ignored unless --exact: headers (cookies, hosts), Bayeux id, clientId, ext and request advice, fields
    named like an id, uuid, time, date or duration, and inside strings: REDACTED-xxxx placeholders, uuids,
    timestamps and generated ids (call ids, clientIds). /meta/connect long-polls are not compared: how many a
    session needs depends on timing. Differences name the exchanges (A#6, B#6) and the field paths.

    \b
    Examples:
      gwsvcr diff lab.yaml field.yaml
      gwsvcr diff lab.yaml field.yaml --threshold-ms 200 --ignore call.userData.GSIP_REC_FN
    """
    a, b = load(a_path, BadDiffInput), load(b_path, BadDiffInput)
    volatility = semantic_diff.Volatility(exact=exact, ignore=ignore)
    differences, steps = semantic_diff.compare(a, b, threshold_ms / 1000, volatility)
    emit(semantic_diff.report(differences))
    if not differences:
        click.echo(f"equivalent: {a_path} and {b_path} ({steps} steps compared)")
        return
    timing = sum(d.timing_only for d in differences)
    click.echo(f"different: {len(differences)} difference(s), {timing} in timing, between {a_path} (A) and "
               f"{b_path} (B)")
    sys.exit(1)


# --------------------------------------------------------------------------------------------------- redact


def redaction_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--header", "headers", multiple=True, metavar="NAME",
                     help="Also redact this header's values.")(f)
    f = click.option("--pii/--no-pii", default=True, show_default=True,
                     help="Redact GWS fields holding phone numbers and names "
                          f"({', '.join(privacy.PERSONAL_FIELDS)}), and their values inside other strings.")(f)
    f = click.option("--pattern", "patterns", multiple=True, metavar="REGEX",
                     help="Redact what this regex matches inside any string, e.g. "
                          "'(?<!\\d)1500\\d(?!\\d)'.")(f)
    return click.option("--json", "json_paths", multiple=True, metavar="PATH",
                        help="Redact this JSON field: a dotted path end, '*' for any key, e.g. "
                             "call.participants.*.phoneNumber.")(f)


def make_redactor(json_paths: tuple[str, ...], patterns: tuple[str, ...], pii: bool, headers: tuple[str, ...],
                  bodies: Iterable[Any] = ()) -> tuple[Redactor, list[str]]:
    try:
        return privacy.make_redactor(json_paths, patterns, pii, headers, bodies)
    except privacy.RedactionError as e:
        raise click.BadParameter(str(e), param_hint="--pattern") from None


def _counts(redactor: Redactor) -> str:
    total = sum(redactor.counts.values())
    parts = ", ".join(f"{what}: {n}" for what, n in sorted(redactor.counts.items()))
    return f"{total} values redacted" + (f" ({parts})" if parts else "")


def _default_redacted_path(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}.redacted{p.suffix or '.yaml'}"))


@click.command()
@click.argument("cassette_path", metavar="CASSETTE")
@click.option("-o", "--output", metavar="OUT",
              help="Where to write; '-' for stdout. Default: CASSETTE with .redacted before its extension.")
@click.option("--in-place", is_flag=True, help="Replace CASSETTE itself (atomically), like -o CASSETTE.")
@redaction_options
def redact(cassette_path: str, output: str | None, in_place: bool, json_paths: tuple[str, ...],
           patterns: tuple[str, ...], pii: bool, headers: tuple[str, ...]) -> None:
    """Redact an existing cassette before sharing it: every value found becomes a stable placeholder
    (REDACTED-xxxxxxxxxxxx, the same value the same placeholder everywhere), so the cassette still replays.

    The original is never touched unless you say so (--in-place or -o CASSETTE); the new file replaces any
    old one atomically, so a reader never sees half of it. Secrets redacted at record time stay as they are;
    by default phone numbers and names in GWS fields are redacted too (--no-pii keeps them).

    Paths are left as they are (a client asks for them on replay); a value a client sends in a request body is
    redacted there too, so replay that cassette with --json-ignore for that field.

    \b
    Examples:
      gwsvcr redact field.yaml                     # writes field.redacted.yaml
      gwsvcr redact field.yaml --pattern '(?<!\\d)1500\\d(?!\\d)' -o share.yaml
      gwsvcr redact field.yaml --json call.userData.GSIP_REC_FN --in-place
    """
    if in_place and output not in (None, cassette_path):
        raise click.UsageError("--in-place writes CASSETTE itself: drop -o, or drop --in-place")
    target = cassette_path if in_place else output or _default_redacted_path(cassette_path)
    loaded = load(cassette_path)
    redactor, rules = make_redactor(json_paths, patterns, pii, headers, privacy.cassette_bodies(loaded))
    with Progress(f"redacting {cassette_path}"):
        privacy.redact_cassette(loaded, redactor, rules)
    if target == "-":
        emit(cassettes.dump_document(doc).rstrip("\n") for doc in cassettes.iter_documents(loaded))
    else:
        _writing(target, lambda: cassettes.save(loaded, target))
    click.echo(f"gwsvcr: {_counts(redactor)}; wrote {'stdout' if target == '-' else target}", err=True)


# ------------------------------------------------------------------------------------------------------ har


@click.group()
def har() -> None:
    """Exchange recordings with browser DevTools, Charles, Fiddler and mitmproxy as HAR 1.2 files (a CometD
    WebSocket as DevTools and mitmproxy's savehar write it: a GET 101 entry with _webSocketMessages).

    \b
    Examples:
      gwsvcr har export field.yaml -o field.har      # open it in DevTools (Network > Import HAR) or mitmproxy
      gwsvcr har import wwe-session.har -o wwe.yaml  # a HAR saved from DevTools becomes a cassette
    """


@har.command("export")
@click.argument("cassette_path", metavar="CASSETTE")
@click.option("-o", "--output", required=True, metavar="FILE.har", help="The HAR file to write.")
def har_export(cassette_path: str, output: str) -> None:
    """Write a cassette as a HAR 1.2 file (bodies as sent, timings from the recorded first and last byte).

    \b
    Example:
      gwsvcr har export field.yaml -o field.har     # then: mitmproxy -r field.har
    """
    loaded = load(cassette_path)
    document = har_format.export(loaded)
    _writing(output, lambda: har_format.write(document, output))
    click.echo(f"gwsvcr: wrote {len(document['log']['entries'])} entries to {output}", err=True)


PERSONAL_DATA = ("Personal data is redacted too, by default: phone numbers and names in GWS fields ("
                 + ", ".join(privacy.PERSONAL_FIELDS) + ") and their values inside other strings become placeholders "
                 "(REDACTED-xxxxxxxxxxxx); --no-pii keeps them.")


def import_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """What every import takes: where to write, what to keep, what to redact."""
    f = redaction_options(f)
    f = click.option("--host", "hosts", multiple=True, metavar="HOST", help="Keep only requests to this host.")(f)
    f = click.option("--all", "keep_all", is_flag=True,
                     help="Keep every entry; by default only API traffic (Bayeux, or JSON either way) is kept, "
                          "not pages, scripts and images.")(f)
    return click.option("-o", "--output", required=True, metavar="CASSETTE", help="The cassette to write.")(f)


def _import(path: str, read: Callable[[], list[importing.Entry]], source: str, output: str, keep_all: bool,
            hosts: tuple[str, ...], json_paths: tuple[str, ...], patterns: tuple[str, ...], pii: bool,
            headers: tuple[str, ...]) -> None:
    """Entries read from another tool's file, through the recorder, into a cassette; one summary line."""
    try:
        with Progress(f"importing {path}") as progress:
            entries = read()
            progress.total = len(entries)
            bodies = [body for e in entries for body in (e.request.body, e.response and e.response.body)]
            bodies += [f.messages for e in entries for f in e.frames or ()]
            redactor, rules = make_redactor(json_paths, patterns, pii, headers, bodies)
            imported = importing.to_cassette(output, entries, redactor, rules, keep_all=keep_all, hosts=hosts,
                                             source=source, origin=path, on_progress=progress.step)
    except importing.ImportProblems as e:
        raise BadInput(str(e)) from None
    _writing(output, lambda: cassettes.save(imported, output))
    kept = sum(importing.keeps(e, keep_all, hosts) for e in entries)
    events = sum(item.is_event for ex in imported.exchanges for item in ex.reply_items())
    hint = "" if keep_all else ": --all keeps pages, scripts and images"
    plain = sum(ex.kept_as_http is not None for ex in imported.exchanges)
    click.echo(f"gwsvcr: imported {kept} of {len(entries)} entries into {output} ({len(entries) - kept} left out"
               f"{hint}): {len(imported.exchanges)} exchanges, {len(imported.sessions())} session(s), {events} "
               f"event(s); {_counts(redactor)}{'' if pii else ' (--no-pii: personal data kept)'}"
               + (f"; {plain} kept as plain HTTP ('gwsvcr validate' points at them)" if plain else ""), err=True)


def _har_entries(path: str) -> list[importing.Entry]:
    return list(har_format.parse_entries(path, har_format.read(path)))


@har.command("import")
@click.argument("har_path", metavar="FILE.har")
@import_options
def har_import(har_path: str, output: str, keep_all: bool, hosts: tuple[str, ...],
               json_paths: tuple[str, ...], patterns: tuple[str, ...], pii: bool, headers: tuple[str, ...],
               ) -> None:
    """Turn a HAR (saved from a browser's DevTools, mitmproxy's savehar, Charles, Fiddler) into a replayable
    cassette: sessions linked, Bayeux bodies as messages, a CometD WebSocket's frames
    (_webSocketMessages) at their own times, each event's cause and delay computed as 'gwsvcr record' does, and
    secrets redacted (Authorization, cookies, CSRF tokens, password-like fields).

    \b
    Examples:
      gwsvcr har import wwe-session.har -o wwe.yaml --host gws.example.com
      gwsvcr har import wwe-session.har -o wwe.yaml --no-pii     # keep phone numbers and names
      gwsvcr replay wwe.yaml
    """
    _import(har_path, lambda: _har_entries(har_path), f"har import {Path(har_path).name}", output, keep_all, hosts,
            json_paths, patterns, pii, headers)


har_import.help = f"{har_import.help}\n\n{PERSONAL_DATA}"


# --------------------------------------------------------------------------------------------------- import


IMPORTERS = {"har": "a HAR file", "vcrpy": "a VCR.py cassette", "flows": "a mitmproxy flow file (mitmdump -w)"}


def _read_any(path: str) -> list[importing.Entry]:
    kind = importing.kind_of(path)
    if kind == "har":
        return _har_entries(path)
    if kind == "vcrpy":
        return vcrpy.read(path)
    if kind == "flows":
        from gwsvcr.addons import flowfile  # mitmproxy's reader: only when a flow file is given

        return flowfile.read(path)
    if not Path(path).exists():
        raise importing.ImportProblems([f"{path}: no such file"])
    if kind == "gwsvcr":
        raise importing.ImportProblems([f"{path}: already a gwsvcr cassette: replay it, or check it with "
                                        "'gwsvcr validate'"])
    raise importing.ImportProblems([f"{path}: not a file gwsvcr imports: {', '.join(IMPORTERS.values())}"])


@click.command("import")
@click.argument("path", metavar="FILE")
@import_options
def import_file(path: str, output: str, keep_all: bool, hosts: tuple[str, ...], json_paths: tuple[str, ...],
                patterns: tuple[str, ...], pii: bool, headers: tuple[str, ...]) -> None:
    """Turn a recording another tool made into a gwsvcr cassette: a VCR.py cassette (REST only; it keeps no
    times, so its interactions replay in order, at once), a mitmproxy flow file (mitmdump -w, CometD over
    long-polling or WebSocket, with its timing) or a HAR. The file's kind is found from its content. Sessions and
    events are found as 'gwsvcr record' finds them, and secrets redacted as it redacts them.

    \b
    Examples:
      gwsvcr import cassettes/test_stop.yaml -o stop.yaml           # a VCR.py cassette
      mitmdump --mode reverse:https://gws:8443 -w session.flows    # ... then:
      gwsvcr import session.flows -o session.yaml --host gws
      gwsvcr import session.flows -o session.yaml --no-pii         # keep phone numbers and names
    """
    kind = importing.kind_of(path)
    _import(path, lambda: _read_any(path), f"import {Path(path).name} ({kind or 'unknown'})", output, keep_all,
            hosts, json_paths, patterns, pii, headers)


import_file.help = f"{import_file.help}\n\n{PERSONAL_DATA}"


# --------------------------------------------------------------------------------------------------- report


@click.command()
@click.argument("cassette_path", metavar="CASSETTE")
@click.option("-o", "--output", metavar="FILE.html",
              help="Default: CASSETTE with .html instead of its extension.")
def report(cassette_path: str, output: str | None) -> None:
    """Write one self-contained HTML page (no network needed to view it): a sequence diagram of clients and
    server over time with REST calls, CometD events, each event's cause drawn and its delay labelled; click an
    arrow for its exchange as JSON.

    \b
    Example:
      gwsvcr report field.yaml -o timeline.html
    """
    loaded = load(cassette_path)
    target = output or str(Path(cassette_path).with_suffix(".html"))
    page = html_report.render(loaded)
    _writing(target, lambda: cassettes.write_atomically(target, page))
    click.echo(f"gwsvcr: wrote {target}", err=True)


def register(group: click.Group) -> None:
    for command in (show, diff, redact, har, import_file, report):
        group.add_command(command)
