"""The live view: what gwsvcr shows while it records or replays, one line per exchange and one per CometD event,
like mitmdump's flow list.

An exchange line: who (the recorded session and exchange number, or the replay client's address), method, path,
status, and a summary (operationName and statusCode for REST; the Bayeux channels, failures, a connect's hold and
the events it carried for CometD). A miss is flagged ``MISS`` with its reason; a body not kept says so; an
exchange the recorder kept as plain HTTP says ``KEPT AS PLAIN HTTP`` and why. An event
line: its channel, a summary of the GWS notification and its delay after the reply of the request that caused it.

Pure formatting: the addons print the lines through the logger :data:`LOGGER` (stderr; ``--quiet`` silences it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from gwsvcr import gws, wire
from gwsvcr.bayeux import CONNECT, SUBSCRIBE, is_event
from gwsvcr.cassette import Exchange, ReplyItem, Request, Response

__all__ = ["LOGGER", "MISS_HEADER", "event_line", "exchange_line", "pending_line", "recorded_lines", "target"]

LOGGER = "gwsvcr.live"
MISS_HEADER = "X-Gwsvcr-Miss"  # set by the replayer on the answer to a request it could not match


def target(request: Request) -> str:
    query = "?" + urlencode(request.query) if request.query else ""
    return f"{request.method} {request.path}{query}"


def exchange_line(who: str, request: Request, response: Response | None, error: str | None = None,
                  hold: float | None = None, miss: str | None = None) -> str:
    """One exchange: ``who METHOD PATH STATUS summary``; ``---`` for the status when there was no response; a
    replayer's miss (``miss``, or the replayer's answer to one) flagged ``MISS`` with its reason."""
    if response is None:
        return f"{who} {target(request)} --- {error or 'no response'}"
    if miss is None and response.header(MISS_HEADER) is not None:
        reason = response.body.get("reason") if isinstance(response.body, dict) else None
        miss = reason or "nothing recorded matches"
    if miss is not None:
        return f"{who} {target(request)} {response.status} MISS {miss}"
    bayeux = wire.bayeux_of(request)
    if bayeux is not None:
        summary = _bayeux_summary(bayeux.messages, _reply_messages(response), hold)
    else:
        summary = _rest_summary(request, response)
    return f"{who} {target(request)} {response.status} {summary}".rstrip()


def pending_line(who: str, request: Request, waited: float) -> str:
    """A request still waiting for its reply (a held long-poll when the server stops): ``who METHOD PATH what,
    waiting N ms``."""
    bayeux = wire.bayeux_of(request)
    what = _bayeux_summary(bayeux.messages, [], None) if bayeux is not None else ""
    return f"{who} {target(request)} {what}{', ' if what else ''}waiting {waited * 1000:.0f} ms"


def event_line(who: str, message: dict[str, Any], delay: float | None, cause: int | None = None,
               after: str | None = None) -> str:
    """One pushed event: ``who   <- CHANNEL summary  N ms after #CAUSE WHAT``."""
    summary = gws.summarize_notification(message.get("data")) or "event"
    line = f"{who}   <- {message.get('channel')} {summary}"
    if delay is None:
        return line
    cause_text = " ".join(part for part in (f"#{cause}" if cause is not None else "", after or "") if part)
    return f"{line}  {delay * 1000:.0f} ms after {cause_text or 'its cause'}"


def recorded_lines(ex: Exchange) -> list[str]:
    """The recorder's lines for one written exchange: the exchange (with why it was kept as plain HTTP, when it
    was), then each event it carried."""
    who = f"{ex.session} #{ex.number}"
    holds = [item.hold for item in ex.reply_items() if item.hold is not None]
    line = exchange_line(who, ex.request, ex.response, ex.error, holds[0] if holds else None)
    if ex.kept_as_http is not None:
        line += f" KEPT AS PLAIN HTTP: {ex.kept_as_http}"
    lines = [line]
    lines += [event_line(who, item.message, item.delay, item.cause, item.after)
              for item in ex.reply_items() if item.is_event]
    return lines


def _rest_summary(request: Request, response: Response) -> str:
    parts = []
    operation = gws.summarize_request(request.method, request.path, request.body)
    if operation != f"{request.method} {request.path}":
        parts.append(operation)
    body = response.body
    if isinstance(body, dict) and "statusCode" in body:
        parts.append(f"statusCode {body['statusCode']}")
        if body.get("statusMessage"):
            parts.append(str(body["statusMessage"]))
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        parts.append(body["error"])
    if response.omitted is not None:
        parts.append(response.omitted.text())
    if request.omitted is not None:
        parts.append(f"request {request.omitted.text()}")
    return ", ".join(parts)


def _reply_messages(response: Response) -> list[dict[str, Any]]:
    body = response.body
    if response.kind not in ("json", "messages") or not isinstance(body, list):
        return []
    messages = [item.message if isinstance(item, ReplyItem) else item for item in body]
    return [m for m in messages if isinstance(m, dict)]


def _bayeux_summary(sent: list[dict[str, Any]], replies: list[dict[str, Any]], hold: float | None) -> str:
    asked = []
    for m in sent:
        channel = str(m.get("channel"))
        asked.append(f"{channel} {m.get('subscription')}" if channel == SUBSCRIBE else channel)
    parts = [" + ".join(asked)]
    parts += [f"failed: {m.get('error', '?')}" for m in replies if m.get("successful") is False]
    if hold is not None and any(m.get("channel") == CONNECT for m in sent):
        parts.append(f"held {hold * 1000:.0f} ms")
    events = sum(1 for m in replies if is_event(m))
    if events:
        parts.append(f"{events} event{'s' if events > 1 else ''}")
    return ", ".join(parts)
