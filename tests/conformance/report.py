"""docs/CONFORMANCE.md from the outcomes of the conformance tests of one run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pytest

from tests.conformance.harness import EVENT_DELAY_MS
from tests.conformance.matrix import NAMES, RECORDED_WITH, REPLAYED_TO, TRANSPORTS, UPSTREAMS, Cell, not_applicable
from tests.procs import PEERS

MODULES = {"tests.conformance.test_matrix", "tests.conformance.test_protocol", "tests.conformance.test_shapes",
           "tests.conformance.test_websocket"}


def is_conformance(item: pytest.Item) -> bool:
    return item.nodeid.startswith("tests/conformance/")


@dataclass
class Outcome:
    nodeid: str
    status: str  # pass | FAIL | error | n/a | skipped | known gap
    reason: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    protocol: tuple[str, str] | None = None
    doc: str = ""


@dataclass
class Results:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    expected: list[str] = field(default_factory=list)
    modules: set[str] = field(default_factory=set)
    partial: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def add(self, item: pytest.Item, rep: pytest.TestReport) -> None:
        status, reason = None, ""
        if rep.when in ("setup", "call"):
            if hasattr(rep, "wasxfail"):
                status, reason = ("known gap", rep.wasxfail) if rep.skipped else ("FAIL", "passes now: " + rep.wasxfail)
            elif rep.failed:
                status, reason = ("FAIL" if rep.when == "call" else "error"), _first_line(rep)
            elif rep.skipped:
                text = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
                text = text.removeprefix("Skipped: ")
                status, reason = ("n/a", text[5:]) if text.startswith("n/a: ") else ("skipped", text)
            elif rep.when == "call":
                status = "pass"
        elif rep.failed:  # teardown
            status, reason = "error", "teardown: " + _first_line(rep)
        if status is None:
            return
        marker = item.get_closest_marker("protocol")
        callspec = getattr(item, "callspec", None)
        doc = (getattr(item, "function", None).__doc__ or "").strip()  # type: ignore[union-attr]
        self.outcomes[item.nodeid] = Outcome(
            item.nodeid, status, reason, dict(item.user_properties), dict(callspec.params) if callspec else {},
            _protocol(marker, callspec), " ".join(doc.split("\n\n")[0].split()))

    def incomplete(self) -> str:
        if self.partial:
            return "part of the conformance suite was deselected"
        if self.modules != MODULES:
            return "not every conformance module was collected"
        missing = [n for n in self.expected if n not in self.outcomes]
        if missing:
            return f"{len(missing)} conformance tests did not run"
        return ""

    def cell(self, cell: Cell) -> Outcome | None:
        return next((o for o in self.outcomes.values() if o.params.get("cell") == cell), None)


def _protocol(marker: pytest.Mark | None, callspec: Any) -> tuple[str, str] | None:
    """(behaviour, against) of a ``protocol`` marker; ``against`` may name a parameter: "{target}"."""
    if marker is None:
        return None
    behaviour, against = marker.args
    params = {k: NAMES.get(v, v) if isinstance(v, str) else v for k, v in (callspec.params if callspec else {}).items()}
    return behaviour, against.format(**params)


def _first_line(rep: pytest.TestReport) -> str:
    crash = getattr(rep.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(rep.longrepr)
    return " ".join(text.split())[:300]


def _versions(extra: dict[str, str]) -> str:
    out = []
    for dist in ("aiocometd-ng", "python-bayeux", "mitmproxy"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    for package in ("cometd", "cometd-nodejs-client", "faye"):
        try:
            version = json.loads((PEERS / "node_modules" / package / "package.json").read_text())["version"]
            out.append(f"npm {package} {version}")
        except (OSError, ValueError, KeyError):
            pass
    out += [f"{k} {v}" for k, v in sorted(extra.items())]
    return ", ".join(out)


def _cell_text(cell: Cell, outcome: Outcome | None, notes: list[str]) -> str:
    def note(text: str) -> str:
        return f"[{_note(notes, text)}]"

    if outcome is None:
        reason = not_applicable(cell)
        return f"n/a {note(reason)}" if reason else "not run"
    if outcome.status == "pass":
        p = outcome.props
        text = f"pass, max Δ {p.get('max delay error ms', '?')} ms (x{p.get('speed', 1):g})"
        if "page misses" in p:
            text += f", {p['page misses']} page misses"
        if "first attempt max delay error ms" in p:
            text += f", 2nd run (1st: Δ {p['first attempt max delay error ms']} ms)"
        return text
    if outcome.status == "n/a":
        return f"n/a {note(outcome.reason)}"
    if outcome.status == "known gap":
        return f"**fails: known gap** {note(outcome.reason)}"
    return f"**{outcome.status}** {note(outcome.reason or 'see the test output')}"


def render(results: Results) -> str:
    notes: list[str] = []
    lines = [
        "# CometD conformance",
        "",
        "Generated by the conformance tests (`tests/conformance`, written at the end of a `make test` or "
        "`pytest tests/conformance` run that ran all of them); do not edit by hand.",
        "",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Peers: {_versions(results.versions)}.",
        "",
        "## The matrix",
        "",
        "Each cassette is recorded once through `gwsvcr record` by the recording client against the upstream "
        f"(4 recording operations, each followed by its `CallRecordingStateChange` notification "
        f"{EVENT_DELAY_MS['faye']} ms later from Faye, {EVENT_DELAY_MS['sim']} ms later from `gwsvcr sim`), "
        "then replayed by `gwsvcr replay` to each client over the same transport. A cell passes when every "
        "operation is answered `{\"statusCode\":0}`, every notification arrives in order after the operation "
        "that caused it, each event's delay is within 15 ms of the recorded delay divided by the replay speed, "
        "and the client caused no miss. Cassettes recorded against Faye replay at `--speed 4` (x4), those "
        "recorded against `gwsvcr sim` at speed 1 (x1). Δ is the largest difference between a replayed delay and "
        "its recorded delay / speed.",
        "",
        "The browser loads its page (tests/peers/browser) and the npm `cometd` ES modules from the replayer's "
        "own origin: the replayer runs `--lenient --upstream <static server>`, so those requests are lenient "
        "misses forwarded upstream. The replayer counts them as misses in its summary (\"page misses\" below); "
        "that is expected. The browser is driven over the DevTools pipe and results are read from the page's "
        "`#result` element once its session promise settled.",
        "",
    ]
    counts: dict[str, int] = {}
    header = "| recorded with | upstream | replayed to | " + " | ".join(TRANSPORTS) + " |"
    rows = [header, "|" + "---|" * (3 + len(TRANSPORTS))]
    for rec in RECORDED_WITH:
        for up in UPSTREAMS:
            for to in REPLAYED_TO:
                texts = []
                for transport in TRANSPORTS:
                    cell = Cell(rec, up, to, transport)
                    outcome = results.cell(cell)
                    status = outcome.status if outcome else ("n/a" if not_applicable(cell) else "not run")
                    counts[status] = counts.get(status, 0) + 1
                    texts.append(_cell_text(cell, outcome, notes))
                rows.append(f"| {NAMES[rec]} | {NAMES[up]} | {NAMES[to]} | " + " | ".join(texts) + " |")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines += [f"Cells: {summary}.", "", *rows, ""]
    lines += [f"[{i}] {text}" + "  " for i, text in enumerate(notes, 1)]
    matrix_notes = len(notes)
    lines += ["", "## WebSocket recordings", "",
              "What the websocket cassettes hold (tests/conformance/test_websocket.py): the CometD traffic as "
              "WebSocket frames, not a fallback to HTTP.", ""]
    ws = [o for o in results.outcomes.values() if o.nodeid.startswith("tests/conformance/test_websocket.py")]
    for o in ws:
        seen = "; ".join(f"{k}: {v}" for k, v in o.props.items())
        lines.append(f"- `{o.nodeid.split('::', 1)[1]}`: {o.status}" + (f" ({o.reason})" if o.reason else "")
                     + (f". {seen}" if seen else "") + ".")
    lines += ["", "## Protocol behaviours (CometD/Bayeux and GWS rules a replay must keep)", "",
              "| behaviour | against | result | what is checked | measured / seen | test |",
              "|---|---|---|---|---|---|"]
    order = {nodeid: i for i, nodeid in enumerate(results.expected)}
    for o in sorted((o for o in results.outcomes.values() if o.protocol), key=lambda o: order.get(o.nodeid, 0)):
        behaviour, against = o.protocol or ("", "")
        seen = "; ".join(f"{k}: {v}" for k, v in o.props.items())
        result = o.status + (f" [{_note(notes, o.reason)}]" if o.reason and o.status != "pass" else "")
        lines.append(f"| {behaviour} | {against} | {_cell(result)} | {_cell(o.doc)} | {_cell(seen)} "
                     f"| `{o.nodeid.split('::', 1)[1]}` |")
    lines += ["", "## Notes", "", *[f"[{i}] {text}" + "  " for i, text in enumerate(notes, 1)
                                      if i > matrix_notes], ""] if len(notes) > matrix_notes else []
    lines += PEER_NOTES
    others = [o for o in results.outcomes.values() if not o.protocol and o.status not in ("pass", "n/a")
              and not o.nodeid.startswith(("tests/conformance/test_matrix.py", "tests/conformance/test_websocket.py"))]
    if others:
        lines += ["", "Other outcomes:", ""] + [f"- `{o.nodeid}`: {o.status} {o.reason}" for o in others]
    return "\n".join(lines).rstrip() + "\n"


def _note(notes: list[str], text: str) -> int:
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


RESULTS = pytest.StashKey[Results]()

PEER_NOTES = [
    "",
    "## Peer behaviour worth knowing",
    "",
    "- aiocometd-ng 0.5.6 waits `advice.interval` in seconds (the Bayeux unit is milliseconds: it passes the value "
    "to `asyncio.sleep`), so a cassette whose server advised an interval > 0 stalls it; the advice test uses "
    "CometD JS.",
    "- aiocometd-ng has no callback-polling transport and always handshakes over long-polling, even for websocket; "
    "after a re-handshake it sends its subscriptions in the same request as the next `/meta/connect`.",
    "- CometD JS clears its subscriptions on every handshake: the Node client and a real application subscribe "
    "again in their `/meta/handshake` listener. After a reload the extension flushes a subscribe with the saved "
    "clientId before it learns (402) that the server forgot the session; that subscribe fails with 402 too.",
    "- Faye wraps JSONP replies as `/**/callback([...]);`.",
    "- In a browser, callback-polling `<script>` GETs and the WebSocket upgrade carry no `Authorization` header: "
    "the replayer knows the client by the `JSESSIONID` cookie it issued.",
]
