"""A cassette as a timeline: one row per thing that crossed the wire, in time order, per episode.

Rows: a REST request (``->``) and its reply (``<-``) when the reply completed; each Bayeux message a client
sent, except ``/meta/connect`` (a long-poll is shown once, by its reply, with how long the server held it);
each reply message, and each pushed event with its cause and delay (``first on its channel``: the snapshot a
subscribe caused; ``no cause``: spaced from the event before; the JSON rows name every rule of
gwsvcr/record/causes.py). Values the client made (gwsvcr/correlate.py) are named where they come back:
``client-made query._aioId of #7 at data.id``. ``gwsvcr show`` prints the rows in 100 columns (after the sessions,
each with what identified its client) or as JSON lines; ``gwsvcr report`` draws them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT, channel_matches
from gwsvcr.cassette import Cassette, Exchange, Mark, ReplyItem
from gwsvcr.describe import bayeux_request_summary, rest_operation, shorten_path
from gwsvcr.session import SessionSummary, split_warnings

__all__ = ["ERROR", "EVENT", "REPLY", "REQUEST", "TO_CLIENT", "TO_SERVER", "WIDTH", "Row", "exchange_rows",
           "json_lines", "render", "render_sessions", "select", "timeline"]

REQUEST, REPLY, EVENT, ERROR = "request", "reply", "event", "error"
TO_SERVER, TO_CLIENT = "->", "<-"
WIDTH = 100
_TARGET_WIDTH = 16  # room for the longest /meta channel; longer REST paths push their summary right


@dataclass(frozen=True, slots=True)
class Row:
    episode: int
    time: float  # seconds since the episode began
    session: str
    exchange: int
    direction: str  # TO_SERVER or TO_CLIENT
    kind: str  # REQUEST, REPLY, EVENT or ERROR
    target: str  # "POST /api/v2/me/calls/…", "HTTP 200" or a Bayeux channel
    summary: str
    cause: int | None = None  # events: the exchange whose reply caused it
    after: str | None = None  # events: what that exchange was
    delay: float | None = None  # events: seconds after the cause's reply completed
    hold: float | None = None  # connect replies: seconds the server held the long-poll
    rule: str | None = None  # events: how the cause was found (gwsvcr/record/causes.py)
    made: tuple[Mark, ...] = ()  # client-made values standing in this reply or event

    @property
    def is_bayeux(self) -> bool:
        return self.target.startswith("/")

    def cause_text(self, short: bool = False) -> str:
        made = "" if short else "".join(f"; {_made(m, self.exchange)}" for m in self.made)
        if self.cause is None:
            if self.rule == "none" and self.delay is not None:
                return f"no cause: {self.delay * 1000:.0f} ms after the event before{made}"
            return made[2:]
        delay = "" if self.delay is None else f"{self.delay * 1000:.0f} ms "
        after = "" if short or not self.after else f" {self.after}"
        why = f" ({_RULES[self.rule]})" if self.rule in _RULES and not short else ""
        return f"{delay}after #{self.cause}{after}{why}{made}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"episode": self.episode, "time": round(self.time, 6), "session": self.session,
                               "exchange": self.exchange, "direction": self.direction, "kind": self.kind,
                               "target": self.target, "summary": self.summary}
        if self.cause is not None:
            out.update(cause=self.cause, after=self.after)
        if self.delay is not None:
            out["delay_ms"] = round(self.delay * 1000, 3)
        if self.hold is not None:
            out["hold_ms"] = round(self.hold * 1000, 3)
        if self.rule is not None:
            out["rule"] = self.rule
        if self.made:
            out["client_made"] = [{"exchange": m.exchange, "at": m.at, "paths": list(m.paths)} for m in self.made]
        return out


# How a cause was found, where the text says more than the cause itself (the JSON rows always say it).
_RULES = {"subscribe": "first on its channel"}


def _made(mark: Mark, exchange: int) -> str:
    whose = "" if mark.exchange == exchange else f" of #{mark.exchange}"
    return f"client-made {mark.at}{whose} at {', '.join(mark.paths)}"


# ------------------------------------------------------------------------------------------------ building


def timeline(cassette: Cassette) -> list[Row]:
    rows = [row for ex in cassette.exchanges for row in exchange_rows(ex)]
    # stable: an exchange's request row stays before its replies, an event before the connect reply with it
    rows.sort(key=lambda r: (r.episode, r.time))
    return rows


def exchange_rows(ex: Exchange) -> list[Row]:
    bayeux = wire.bayeux_of(ex.request)
    rows: list[Row] = []
    if bayeux is None:
        rows.append(_row(ex, ex.start, TO_SERVER, REQUEST, rest_target(ex), rest_operation(ex.request)))
    else:
        rows += [_row(ex, ex.start, TO_SERVER, REQUEST, str(m.get("channel")), bayeux_request_summary(m))
                 for m in bayeux.messages if m.get("channel") != CONNECT]
    if ex.response is None:
        done = ex.start + (ex.ttlb or 0.0)
        target = str(bayeux.messages[0].get("channel")) if bayeux else rest_target(ex)
        rows.append(_row(ex, done, TO_CLIENT, ERROR, target, f"no reply: {ex.error or 'none recorded'}"))
    elif ex.reply_items():
        delivered = ex.start + (ex.ttfb or 0.0)
        rows += [_item_row(ex, delivered, item) for item in ex.reply_items()]
    else:
        done = ex.start + (ex.ttlb if ex.ttlb is not None else ex.ttfb or 0.0)
        rows.append(_row(ex, done, TO_CLIENT, REPLY, f"HTTP {ex.response.status}", _reply_summary(ex),
                         made=ex.correlate))
    if ex.kept_as_http is not None:  # the recorder could not take it apart: say so on its last row
        summary = f"KEPT AS PLAIN HTTP: {ex.kept_as_http}; {rows[-1].summary}".rstrip("; ")
        rows[-1] = dataclasses.replace(rows[-1], summary=summary)
    return rows


def _row(ex: Exchange, time: float, direction: str, kind: str, target: str, summary: str, **more: Any) -> Row:
    return Row(ex.episode, time, ex.session, ex.number, direction, kind, target, summary, **more)


def _item_row(ex: Exchange, delivered: float, item: ReplyItem) -> Row:
    channel = str(item.message.get("channel"))
    if item.is_event:
        summary = item.event or gws.summarize_notification(item.message.get("data")) or "event"
        return _row(ex, delivered, TO_CLIENT, EVENT, channel, summary, cause=item.cause, after=item.after,
                    delay=item.delay, rule=item.rule, made=item.correlate)
    ok = item.message.get("successful")
    summary = f"failed: {item.message.get('error', '?')}" if ok is False else "ok"
    if item.hold is not None:
        summary += f", held {item.hold * 1000:.0f} ms"
    return _row(ex, delivered, TO_CLIENT, REPLY, channel, summary, hold=item.hold)


def rest_target(ex: Exchange) -> str:
    query = "?" + "&".join(f"{k}={v}" for k, v in ex.request.query) if ex.request.query else ""
    return f"{ex.request.method} {ex.request.path}{query}"


def _reply_summary(ex: Exchange) -> str:
    assert ex.response is not None
    body = ex.response.body
    parts = []
    if isinstance(body, dict) and "statusCode" in body:
        parts.append(f"statusCode {body['statusCode']}")
        if body.get("statusMessage"):
            parts.append(str(body["statusMessage"]))
    elif ex.response.kind == "text":
        parts.append(" ".join(str(body).split())[:60])
    elif ex.response.omitted is not None:
        parts.append(ex.response.omitted.text())
    if ex.ttlb is not None:
        parts.append(f"in {ex.ttlb * 1000:.0f} ms")
    return ", ".join(parts)


def select(rows: Iterable[Row], session: str | None = None, channel: str | None = None) -> list[Row]:
    """Rows of one session and/or one Bayeux channel (globs like ``/v2/**`` allowed; REST rows drop out)."""
    return [r for r in rows if (session is None or r.session == session)
            and (channel is None or (r.is_bayeux and channel_matches(channel, r.target)))]


# ----------------------------------------------------------------------------------------------- rendering


def render(rows: list[Row], cassette: Cassette, width: int = WIDTH) -> Iterator[str]:
    """The rows as aligned text lines no wider than ``width``."""
    if not rows:
        return
    time_w = max(4, *(len(f"{r.time:.3f}") for r in rows))
    session_w = max(3, *(len(r.session) for r in rows))
    number_w = max(len(f"#{r.exchange}") for r in rows)
    target_w = min(_TARGET_WIDTH, max(len(shorten_path(r.target)) for r in rows))
    yield _fit(f"{'time':>{time_w}} {'ses':<{session_w}} {'#':>{number_w}}    "
               f"{'call / channel':<{target_w}} summary", width)
    episodes = {e.number: e for e in cassette.episodes}
    episode = None
    for row in rows:
        if row.episode != episode and len(episodes) > 1:
            recorded = episodes[row.episode].recorded_at if row.episode in episodes else "?"
            yield f"-- episode {row.episode}, recorded {recorded}"
        episode = row.episode
        head = f"{row.time:>{time_w}.3f} {row.session:<{session_w}} {'#' + str(row.exchange):>{number_w}} " \
               f"{row.direction}"
        target = shorten_path(row.target)
        yield _line(head, target, target_w, row, width)


def render_sessions(summaries: list[SessionSummary], width: int = WIDTH) -> Iterator[str]:
    """Each session with what identified its client (secrets shown as their placeholders), then a warning for
    sessions that share one: a client the recording split."""
    for summary in summaries:
        head = f"{summary.label}: {summary.exchanges} exchanges; identified by"
        yield from _pack(head, [i.display() for i in summary.identifiers] or ["nothing"], width)
    for warning in split_warnings(summaries):
        yield _fit(f"WARNING: {warning}", width)


def _pack(head: str, parts: list[str], width: int) -> Iterator[str]:
    """``head`` then the parts, comma-separated, broken between parts into lines of at most ``width``."""
    line = head
    for i, part in enumerate(parts):
        text = part + ("," if i < len(parts) - 1 else "")
        if len(line) + 1 + len(text) > width and line.strip():
            yield line
            line = "    "
        line = f"{line} {text}" if line.strip() else line + text
    yield _fit(line, width)


def _line(head: str, target: str, target_w: int, row: Row, width: int) -> str:
    """Cause text in full when it fits; else the target unpadded, then the cause without its summary."""
    summary = row.summary
    candidates = []
    for short in (False, True):
        cause = row.cause_text(short)
        text = f"{summary}  {cause}" if cause else summary
        candidates += [f"{head} {target:<{target_w}} {text}".rstrip(), f"{head} {target} {text}".rstrip()]
    return _fit(next((c for c in candidates if len(c) <= width), candidates[-1]), width)


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def json_lines(rows: Iterable[Row]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row.as_json(), ensure_ascii=False)
