"""HAR 1.2 interchange with browser DevTools, Charles, Fiddler and mitmproxy.

Export writes every exchange as an entry whose bodies are the bytes on the wire (a callback-polling reply
wrapped in its callback again) and whose ``timings`` carry the recorded time to first and last byte;
mitmproxy's HAR reader loads it.

Import goes through the recorder's own logic (:class:`gwsvcr.record.recording.Recorder`): sessions are linked by
cookie, Basic user and clientId, Bayeux bodies become ``messages``, every event gets its cause and delay, and
secrets are redacted, exactly as if the traffic had passed through ``gwsvcr record``. Entries are fed in order
of completion, as a live recorder sees them: a long-poll that started before a REST call but completed after
it must find that call done when its events are attributed. A browser's HAR also holds pages, scripts and
images: only API traffic (Bayeux, or JSON either way) is kept unless asked otherwise.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from gwsvcr import __version__, wire
from gwsvcr.cassette import Cassette, Episode, Exchange, Header, Request, Response
from gwsvcr.cassette.write import write_atomically
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.recording import ExchangeTimes, Recorder, reply_messages
from gwsvcr.record.redact import Redactor

__all__ = ["Entry", "HarError", "export", "parse_entries", "parse_entry", "read", "to_cassette", "write"]

# Recomputed for the body as stored: a HAR holds bodies decoded, and HTTP/2 pseudo-headers are no headers.
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
_JSON_KINDS = ("json", "messages")


class HarError(GwsvcrError):
    """A HAR file that cannot be imported; ``problems`` holds ``FILE:LINE: what`` or ``FILE: what`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# ------------------------------------------------------------------------------------------------- export


def export(cassette: Cassette) -> dict[str, Any]:
    """The cassette as a HAR 1.2 document, entries in the order their requests started."""
    origins = {e.number: _epoch(e.recorded_at) for e in cassette.episodes}
    base = _base_url(cassette.header.upstream)
    timed = sorted(((origins.get(ex.episode, 0.0) + ex.start, ex) for ex in cassette.exchanges),
                   key=lambda pair: (pair[0], pair[1].number))
    return {"log": {"version": "1.2", "creator": {"name": "gwsvcr", "version": __version__}, "pages": [],
                    "entries": [_entry(ex, base, started) for started, ex in timed]}}


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


@dataclass
class Entry:
    """One HAR entry in the recorder's terms."""

    url: str
    request: Request
    response: Response | None
    timing: ExchangeTimes
    error: str | None = None

    @property
    def is_api(self) -> bool:
        """Bayeux, or JSON either way: what a GWS client exchanges (pages, scripts and images are not)."""
        if wire.bayeux_of(self.request) is not None or self.request.kind in _JSON_KINDS:
            return True
        if self.response is None:
            return False
        return self.response.kind in _JSON_KINDS or bool(reply_messages(self.response))


def read(path: str) -> list[dict[str, Any]]:
    """The entries of a HAR file; :class:`HarError` names the file (and line) of what is wrong."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise HarError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise HarError([f"{path}: is a directory, not a HAR file"]) from None
    except OSError as e:
        raise HarError([f"{path}: cannot read: {e.strerror}"]) from None
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise HarError([f"{path}: not UTF-8 text: a HAR file is JSON"]) from None
    except json.JSONDecodeError as e:
        raise HarError([f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})"]) from None
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


def _request(data: dict[str, Any], where: str) -> Request:
    parts = urlsplit(_field(data, "url", str, where))
    headers = _headers(data, where)
    post = data["postData"] if isinstance(data.get("postData"), dict) else {}
    content_type = post.get("mimeType") or _content_type(headers)
    kind, body = wire.parse_body(_body(post, "text", "_encoding"), content_type)
    return Request(headers=headers, kind=kind, body=body, method=_field(data, "method", str, where),
                   path=parts.path or "/", query=parse_qsl(parts.query, keep_blank_values=True))


def _response(data: dict[str, Any], where: str) -> Response:
    content = _field(data, "content", dict, where)
    headers = _headers(data, where)
    kind, body = wire.parse_body(_body(content, "text", "encoding"),
                                 _content_type(headers) or content.get("mimeType"))
    return Response(headers=headers, kind=kind, body=body, status=data["status"])


def parse_entry(data: Any, where: str) -> Entry:
    started = _epoch(_field(data, "startedDateTime", str, where))
    if started == 0.0:
        raise _Invalid(f"{where}.startedDateTime: not an ISO 8601 date")
    har_request = _field(data, "request", dict, where)
    request = _request(har_request, f"{where}.request")
    url = har_request["url"]
    timings = data["timings"] if isinstance(data.get("timings"), dict) else {}
    request_end = started + sum(_seconds(timings, n) for n in ("blocked", "dns", "connect", "send"))
    first_byte = request_end + (_seconds(timings, "wait") if timings else _seconds(data, "time"))
    har_response = data["response"] if isinstance(data.get("response"), dict) else {}
    if not isinstance(har_response.get("status"), int) or har_response["status"] <= 0:
        # a browser's request still pending when the HAR was saved, or failed (blocked, aborted, offline)
        error = har_response.get("_error") or data.get("_error") or "no response in the HAR"
        return Entry(url, request, None, ExchangeTimes(started, request_end, None, first_byte), str(error))
    response = _response(har_response, f"{where}.response")
    last_byte = first_byte + _seconds(timings, "receive")
    return Entry(url, request, response, ExchangeTimes(started, request_end, first_byte, last_byte))


def parse_entries(path: str, entries: list[Any]) -> Iterator[Entry]:
    problems = []
    for i, data in enumerate(entries):
        try:
            yield parse_entry(data, f"log.entries[{i}]")
        except _Invalid as bad:
            problems.append(f"{path}: {bad}")
        except (ValueError, TypeError) as bad:  # a body that is not valid base64, a date out of range
            problems.append(f"{path}: log.entries[{i}]: {bad}")
    if problems:
        raise HarError(problems)


def to_cassette(path: str, entries: list[Entry], redactor: Redactor, rules: list[str] | None = None, *,
                keep_all: bool = False, hosts: tuple[str, ...] = (),
                on_progress: Callable[[int], None] = lambda done: None) -> Cassette:
    """Entries through the recorder: sessions, Bayeux messages, causes and delays, secrets redacted.

    ``rules`` describe the redaction in the header (default: the redactor's own); ``hosts`` keeps only
    those; ``on_progress(n)`` hears of every n entries handled."""
    kept = [e for e in entries if (keep_all or e.is_api) and (not hosts or urlsplit(e.url).hostname in hosts)]
    on_progress(len(entries) - len(kept))
    # whole seconds, as recorded_at is written: recorded_at + start is then exactly when a request started
    t0 = float(math.floor(min((e.timing.request_start for e in kept), default=0.0)))
    servers = Counter(urlsplit(e.url).netloc for e in kept)
    scheme = next((urlsplit(e.url).scheme for e in kept), "http")
    header = Header(recorded_at=_iso(t0)[:19] + "Z" if kept else "",
                    upstream=f"{scheme}://{servers.most_common(1)[0][0]}" if servers else "",
                    recorder=f"gwsvcr {__version__} har import {Path(path).name}",
                    redactions=redactor.rules() if rules is None else rules)
    recorder = Recorder(None, redactor, t0)
    exchanges = []
    for entry in sorted(kept, key=lambda e: (_completed(e.timing), e.timing.request_start)):
        exchanges.append(recorder.complete(entry.request, entry.response, entry.timing, entry.error))
        on_progress(1)
    return Cassette(path, header, exchanges, [Episode(1, header.recorded_at, header.upstream)])


def _completed(timing: ExchangeTimes) -> float:
    """When the exchange ended: its reply's last byte, else its first, else the end of the request (never None)."""
    for moment in (timing.response_end, timing.response_start):
        if moment is not None:
            return moment
    return timing.request_end
