"""HAR 1.2 interchange with browser DevTools, Charles, Fiddler and mitmproxy.

Export writes every exchange as an entry whose bodies are the bytes on the wire (a callback-polling reply
wrapped in its callback again) and whose ``timings`` carry the recorded time to first and last byte;
mitmproxy's HAR reader loads it. A CometD WebSocket is written as browsers' DevTools and mitmproxy's ``savehar``
write one: a ``GET`` entry answered ``101`` with ``_resourceType: websocket`` and its frames in
``_webSocketMessages`` (``type`` send/receive, ``time`` in seconds since the epoch, ``opcode``, ``data``), each at
the time it was recorded.

Import reads each entry (a WebSocket's frames from ``_webSocketMessages``) into :class:`Entry` objects that
:func:`gwsvcr.tools.importing.to_cassette` feeds to the recorder's own logic, as ``gwsvcr record`` would have heard
them live. A browser's HAR also holds pages, scripts and images: only API traffic (Bayeux, or JSON either way) is
kept unless asked otherwise.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from gwsvcr import wire
from gwsvcr.bayeux import CONNECT, is_bayeux
from gwsvcr.cassette import Cassette, Exchange, ReplyItem, Request, Response
from gwsvcr.cassette.write import write_atomically
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.tools.importing import Entry, Frame, ImportProblems, read_bytes, to_cassette
from gwsvcr.version import __version__

__all__ = ["Entry", "Frame", "HarError", "export", "parse_entries", "parse_entry", "read", "to_cassette", "write"]

# Recomputed for the body as stored: a HAR holds bodies decoded, and HTTP/2 pseudo-headers are no headers.
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
_JSON_KINDS = ("json", "messages")


class HarError(ImportProblems):
    """A HAR file that cannot be imported; ``problems`` holds ``FILE:LINE: what`` or ``FILE: what`` lines."""


# ------------------------------------------------------------------------------------------------- export


def export(cassette: Cassette) -> dict[str, Any]:
    """The cassette as a HAR 1.2 document, entries in the order their requests started."""
    origins = {e.number: _epoch(e.recorded_at) for e in cassette.episodes}
    base = _base_url(cassette.header.upstream)
    timed = sorted(((origins.get(ex.episode, 0.0) + ex.start, ex) for ex in cassette.exchanges),
                   key=lambda pair: (pair[0], pair[1].number))
    entries: list[tuple[float, dict[str, Any]]] = []
    sockets: dict[tuple[str, int, str], list[Exchange]] = {}  # one WebSocket per session, episode and path
    for started, ex in timed:
        if ex.transport == "websocket":
            sockets.setdefault((ex.session, ex.episode, ex.request.path), []).append(ex)
        else:
            entries.append((started, _entry(ex, base, started)))
    numbers = {ex.number: ex for ex in cassette.exchanges}
    for frames in sockets.values():
        origin = origins.get(frames[0].episode, 0.0)
        entries.append((origin + frames[0].start, _websocket_entry(frames, numbers, base, origin)))
    entries.sort(key=lambda pair: pair[0])
    return {"log": {"version": "1.2", "creator": {"name": "gwsvcr", "version": __version__}, "pages": [],
                    "entries": [entry for _, entry in entries]}}


def write(document: dict[str, Any], path: str | os.PathLike[str]) -> None:
    write_atomically(path, json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _base_url(upstream: str) -> str | None:
    parts = urlsplit(upstream)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def _pairs(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]


def _content_type(headers: list[tuple[str, str]]) -> str | None:
    return next((v for k, v in headers if k.lower() == "content-type"), None)


def _mime(headers: list[tuple[str, str]], kind: str | None) -> str:
    fallback = "application/json" if kind in _JSON_KINDS else "application/octet-stream"
    return _content_type(headers) or fallback


def _text(data: bytes) -> tuple[str, str | None]:
    """(text, encoding): UTF-8 as is, anything else base64."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _entry(ex: Exchange, base: str | None, started: float) -> dict[str, Any]:
    request = ex.request
    host = request.header("Host")
    origin = base or f"http://{host or 'gws.invalid'}"
    url = origin + request.path + (f"?{urlencode(request.query)}" if request.query else "")
    body = request.content()
    har_request: dict[str, Any] = {
        "method": request.method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _pairs(request.headers), "queryString": _pairs(request.query), "headersSize": -1,
        "bodySize": len(body)}
    if body:
        text, encoding = _text(body)
        har_request["postData"] = {"mimeType": _mime(request.headers, request.kind), "text": text,
                                   **({"_encoding": encoding} if encoding else {})}
    wait = round((ex.ttfb or 0.0) * 1000, 3)
    receive = round(max(0.0, ((ex.ttlb if ex.ttlb is not None else ex.ttfb) or 0.0) * 1000 - wait), 3)
    return {"startedDateTime": _iso(started), "time": round(wait + receive, 3), "request": har_request,
            "response": _har_response(ex), "cache": {},
            "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": wait,
                        "receive": receive},
            "_gwsvcr": {"exchange": ex.number, "session": ex.session, "episode": ex.episode}}


def _websocket_entry(frames: list[Exchange], numbers: dict[int, Exchange], base: str | None,
                     origin: float) -> dict[str, Any]:
    """The exchanges of one CometD WebSocket as DevTools writes a WebSocket: the upgrade (GET, 101) and every
    frame sent and received, each at the time it was recorded."""
    first = frames[0]
    upgrade = Exchange(first.number, first.session, first.start, Request(
        headers=first.request.headers, kind=None, body=None, method="GET", path=first.request.path,
        query=first.request.query), Response(headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")],
                                             kind=None, body=None, status=101), 0.0, 0.0, episode=first.episode)
    entry = _entry(upgrade, base, origin + first.start)
    messages: list[tuple[float, str, list[dict[str, Any]]]] = []
    for ex in frames:
        messages.append((ex.start, "send", list(ex.request.body or [])))
        for at, items in itertools.groupby(ex.reply_items(), key=lambda item: _delivered(ex, item, numbers)):
            messages.append((at, "receive", [item.message for item in items]))
    messages.sort(key=lambda m: m[0])
    entry["_resourceType"] = "websocket"
    entry["_webSocketMessages"] = [{"type": kind, "time": round(origin + at, 6), "opcode": 1,
                                    "data": json.dumps(sent, separators=(",", ":"), ensure_ascii=False)}
                                   for at, kind, sent in messages]
    return entry


def _delivered(ex: Exchange, item: ReplyItem, numbers: dict[int, Exchange]) -> float:
    """When a reply message reached the client, from the cassette: an event its delay after its cause's reply, a
    connect reply after its hold, any other with the exchange's first byte."""
    cause = numbers.get(item.cause) if item.cause is not None else None
    if item.is_event and cause is not None and item.delay is not None:
        return cause.start + _reply_end(cause) + item.delay
    if item.hold is not None and item.message.get("channel") == CONNECT:
        return ex.start + item.hold
    return ex.start + (ex.ttfb or 0.0)


def _reply_end(ex: Exchange) -> float:
    return ex.ttlb if ex.ttlb is not None else ex.ttfb or 0.0


def _har_response(ex: Exchange) -> dict[str, Any]:
    if ex.response is None:
        return {"status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1,
                "bodySize": -1, "_error": ex.error or "no reply"}
    response = ex.response
    body = response.content()
    bayeux = wire.bayeux_of(ex.request)
    if bayeux is not None and bayeux.jsonp is not None and response.kind == "messages":
        # the recorder keeps callback-polling replies unwrapped; on the wire they were wrapped
        body = f"{bayeux.jsonp}(".encode() + body + b")"
    text, encoding = _text(body)
    content: dict[str, Any] = {"size": len(body), "mimeType": _mime(response.headers, response.kind),
                               "text": text}
    if encoding:
        content["encoding"] = encoding
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    return {"status": response.status, "statusText": reason, "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": _pairs(response.headers), "content": content, "redirectURL": "", "headersSize": -1,
            "bodySize": len(body)}


# ------------------------------------------------------------------------------------------------- import


def read(path: str) -> list[dict[str, Any]]:
    """The entries of a HAR file; :class:`HarError` names the file (and line) of what is wrong."""
    try:
        raw = read_bytes(path, "a HAR file")
    except ImportProblems as e:
        raise HarError(e.problems) from None
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise HarError([f"{path}: not UTF-8 text: a HAR file is JSON"]) from None
    except json.JSONDecodeError as e:
        raise HarError([f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})"]) from None
    except RecursionError:
        raise HarError([f"{path}: nested too deep to be a HAR file"]) from None
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        what = "not a HAR file: no 'log.entries' list (save it with 'Export HAR' / 'Save all as HAR')"
        raise HarError([f"{path}: {what}"])
    return entries


class _Invalid(Exception):
    pass


def _field(data: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Invalid(f"{where}.{key}: missing or not a {getattr(kind, '__name__', 'value')}")
    return value


def _headers(data: Any, where: str) -> list[tuple[str, str]]:
    out = []
    for i, header in enumerate(data.get("headers") or []):
        name = _field(header, "name", str, f"{where}.headers[{i}]")
        value = _field(header, "value", str, f"{where}.headers[{i}]")
        if not name.startswith(":") and name.lower() not in _FRAMING:
            out.append((name, value))
    return out


def _body(data: dict[str, Any], text_key: str, encoding_key: str) -> bytes:
    text = data.get(text_key)
    if not isinstance(text, str):
        return b""
    if data.get(encoding_key) == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def _seconds(timings: dict[str, Any], name: str) -> float:
    value = timings.get(name)
    return value / 1000 if isinstance(value, (int, float)) and value > 0 else 0.0  # -1: not applicable


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _request(data: dict[str, Any], where: str) -> Request:
    parts = urlsplit(_field(data, "url", str, where))
    headers = _headers(data, where)
    post = data["postData"] if isinstance(data.get("postData"), dict) else {}
    content_type = _text_or_none(post.get("mimeType")) or _content_type(headers)
    kind, body = wire.parse_body(_body(post, "text", "_encoding"), content_type)
    return Request(headers=headers, kind=kind, body=body, method=_field(data, "method", str, where),
                   path=parts.path or "/", query=parse_qsl(parts.query, keep_blank_values=True))


def _response(data: dict[str, Any], where: str) -> Response:
    content = _field(data, "content", dict, where)
    headers = _headers(data, where)
    kind, body = wire.parse_body(_body(content, "text", "encoding"),
                                 _content_type(headers) or _text_or_none(content.get("mimeType")))
    return Response(headers=headers, kind=kind, body=body, status=data["status"])


_OPCODES = {1: "text", 2: "binary"}  # data frames; control frames (ping, pong, close) carry no Bayeux


def _frames(data: dict[str, Any], where: str) -> list[Frame] | None:
    """The Bayeux frames of a WebSocket entry (DevTools, mitmproxy savehar); None for any other entry."""
    raw = data.get("_webSocketMessages")
    if raw is None and data.get("_resourceType") != "websocket":
        return None
    if not isinstance(raw, list):
        raise _Invalid(f"{where}._webSocketMessages: missing or not a list (a WebSocket entry)")
    frames = []
    for i, message in enumerate(raw):
        at = f"{where}._webSocketMessages[{i}]"
        kind = _field(message, "type", str, at)
        if kind not in ("send", "receive"):
            raise _Invalid(f"{at}.type: 'send' or 'receive', not {kind[:40]!r}")
        time = _field(message, "time", (int, float), at)
        if not math.isfinite(time) or time <= 0:
            raise _Invalid(f"{at}.time: not a time in seconds since the epoch")
        opcode = message.get("opcode", 1)
        if opcode not in _OPCODES:
            continue
        text = _field(message, "data", str, at)
        if opcode == 2:
            text = base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            continue  # not JSON (or hostile nesting): not Bayeux, nothing for the timeline
        messages = [parsed] if isinstance(parsed, dict) else parsed
        if is_bayeux(messages):
            frames.append(Frame(kind == "send", float(time), messages))
    return frames


def parse_entry(data: Any, where: str) -> Entry:
    started = _epoch(_field(data, "startedDateTime", str, where))
    if started == 0.0:
        raise _Invalid(f"{where}.startedDateTime: not an ISO 8601 date")
    har_request = _field(data, "request", dict, where)
    request = _request(har_request, f"{where}.request")
    url = har_request["url"]
    frames = _frames(data, where)
    if frames is not None:
        end = max((f.at for f in frames), default=started)
        return Entry(url, request, None, ExchangeTimes(started, started, started, end), frames=frames, where=where)
    timings = data["timings"] if isinstance(data.get("timings"), dict) else {}
    request_end = started + sum(_seconds(timings, n) for n in ("blocked", "dns", "connect", "send"))
    first_byte = request_end + (_seconds(timings, "wait") if timings else _seconds(data, "time"))
    har_response = data["response"] if isinstance(data.get("response"), dict) else {}
    if not isinstance(har_response.get("status"), int) or har_response["status"] <= 0:
        # a browser's request still pending when the HAR was saved, or failed (blocked, aborted, offline)
        error = har_response.get("_error") or data.get("_error") or "no response in the HAR"
        return Entry(url, request, None, ExchangeTimes(started, request_end, None, first_byte), str(error),
                     where=where)
    response = _response(har_response, f"{where}.response")
    last_byte = first_byte + _seconds(timings, "receive")
    return Entry(url, request, response, ExchangeTimes(started, request_end, first_byte, last_byte), where=where)


def parse_entries(path: str, entries: list[Any]) -> Iterator[Entry]:
    problems = []
    for i, data in enumerate(entries):
        try:
            yield parse_entry(data, f"log.entries[{i}]")
        except _Invalid as bad:
            problems.append(f"{path}: {bad}")
        except (ValueError, TypeError, RecursionError) as bad:  # a body not valid base64, a date out of range
            problems.append(f"{path}: log.entries[{i}]: {bad}")
    if problems:
        raise HarError(problems)
