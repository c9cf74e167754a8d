"""``gwsvcr report``: one self-contained HTML file drawing a cassette as a sequence diagram.

Client lifelines (one per session) on the left, the server on the right, one row per timeline row (see
:mod:`gwsvcr.tools.show`) top to bottom: requests, replies and pushed events as arrows, each event's cause drawn as
an arc from the reply that caused it, labelled with the delay. Clicking an arrow shows its exchange as JSON.

``gwsvcr verify --report`` draws the recording and the live session side by side, with what verify found.

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
        data["checks"] = [{"line": line, "ok": ok} for line, ok in checks or []]
    return (_page().replace("{{TITLE}}", html.escape(f"gwsvcr timeline: {cassette.path}"))
            .replace("{{DATA}}", _script_json(data)))
