"""``gwsvcr report``: one self-contained HTML file drawing a cassette as a sequence diagram.

Client lifelines (one per session) on the left, the server on the right, one row per timeline row (see
:mod:`gwsvcr.tools.show`) top to bottom: requests, replies and pushed events as arrows, each event's cause drawn as
an arc from the reply that caused it, labelled with the delay. Clicking an arrow shows its exchange as JSON.

``gwsvcr verify --report`` draws the recording and the live session side by side, with what verify found, each
diagram as wide as its half of the window. A live exchange is labelled with the number of the recorded exchange it
matches (paired by content, as ``gwsvcr diff`` pairs them, and as verify's lines name them), so the numbers agree
across the two panes even after a notification went missing; one that matches nothing is ``live #N``.

Everything is inline (CSS, script, data): the file opens offline, from an e-mail or a ticket, and loads
nothing. The data sits in a JSON script element that the page only reads with ``JSON.parse`` and writes with
``textContent``, so a cassette's content can never become markup or script.
"""

from __future__ import annotations

import functools
import html
import json
from importlib import resources
from typing import Any

from gwsvcr.cassette import Cassette, exchange_to_doc
from gwsvcr.session import split_warnings, summarize
from gwsvcr.tools.diff import Volatility, paired, steps_by_session
from gwsvcr.tools.show import EVENT, timeline

__all__ = ["render", "report_data"]


def report_data(cassette: Cassette) -> dict[str, Any]:
    rows = timeline(cassette)
    summaries = summarize(cassette)
    return {
        "title": cassette.path,
        "recorded_at": cassette.header.recorded_at,
        "upstream": cassette.header.upstream,
        "sessions": cassette.sessions(),
        "identified_by": [s.as_json() for s in summaries],
        "split": split_warnings(summaries),
        "episodes": len(cassette.episodes),
        "events": sum(1 for r in rows if r.kind == EVENT),
        "rows": [row.as_json() for row in rows],
        "exchanges": {str(ex.number): exchange_to_doc(ex) for ex in cassette.exchanges},
    }


def recorded_numbers(recorded: Cassette, live: Cassette) -> dict[int, int]:
    """Live exchange number -> the recorded exchange it matches, paired by content within the recorded session
    that pairs best (verify drives one)."""
    volatility = Volatility()
    theirs = list(steps_by_session(recorded, volatility).values())
    out: dict[int, int] = {}
    for steps in steps_by_session(live, volatility).values():
        best: dict[int, int] = {}
        for candidate in theirs:
            found: dict[int, int] = {}
            for a, b in paired(candidate, steps):
                if a is not None and b is not None and (a.kind or a.key) == (b.kind or b.key):
                    found.setdefault(b.exchange, a.exchange)
            if len(found) > len(best):
                best = found
        out.update(best)
    return out


def _shown(numbers: dict[int, int], exchange: int) -> str:
    return f"#{numbers[exchange]}" if exchange in numbers else f"live #{exchange}"


def _script_json(data: Any) -> str:
    # <, > and & escaped so that no string in the cassette can close the script element
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.cache
def _page() -> str:
    """The page around the data: gwsvcr/tools/report.html, package data."""
    return resources.files("gwsvcr.tools").joinpath("report.html").read_text(encoding="utf-8")


def render(cassette: Cassette, live: Cassette | None = None, checks: list[tuple[str, bool]] | None = None) -> str:
    """The page; with ``live`` (``gwsvcr verify --report``) the live session is drawn beside the recording, and
    ``checks`` (each line of verify's report, and whether it passed) are listed above both."""
    data = report_data(cassette)
    if live is not None:
        data["live"] = report_data(live)
        numbers = recorded_numbers(cassette, live)
        for row in data["live"]["rows"]:
            row["shown"] = _shown(numbers, row["exchange"])
            if "cause" in row:
                row["cause_shown"] = _shown(numbers, row["cause"])
        data["checks"] = [{"line": line, "ok": ok} for line, ok in checks or []]
    return (_page().replace("{{TITLE}}", html.escape(f"gwsvcr timeline: {cassette.path}"))
            .replace("{{DATA}}", _script_json(data)))
