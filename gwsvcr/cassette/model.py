"""The cassette model: the schema version, exchanges, reply items, the header and the problems a check finds."""

from __future__ import annotations

import base64
import copy
import json
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gwsvcr import bayeux
from gwsvcr.errors import GwsvcrError

VERSION = 1
BODY_KINDS = ("json", "messages", "text", "base64")
# What the header's ``match:`` section may say (how replay compares REST requests; gwsvcr.matching.RestMatch;
# which locations hold values the client makes, gwsvcr.correlate).
MATCH_KEYS = ("json_ignore", "ignore_query", "match_headers", "correlate", "no_correlate")
# How a recorded event's cause was found (gwsvcr.record.causes).
CAUSE_RULES = ("value", "subscribe", "last", "none")
# What a secret reads as in a cassette: gwsvcr.record.redact writes it; the tools show it, verify and replay know it.
PLACEHOLDER = re.compile(r"REDACTED-[0-9a-f]{12}")


class CassetteError(GwsvcrError):
    """A cassette that cannot be used; ``problems`` holds every ``FILE:LINE: what is wrong`` line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Severity(StrEnum):
    ERROR = "error"  # the cassette cannot be used
    RECOVERABLE = "recoverable"  # validation reports it; loading drops the part and warns (a truncated last document)
    WARNING = "warning"  # loading went on
    NOTE = "note"  # valid, but worth a look: validation and the tools point at it (an exchange kept as plain HTTP)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


# --------------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Mark:
    """A value the client made (gwsvcr.correlate): the request of exchange ``exchange`` held it at ``at``
    (``query.NAME``, ``header.NAME``, ``json.PATH``, ``message.PATH``); it stands at ``paths`` of the reply body or
    event message that carries this mark."""

    exchange: int
    at: str
    paths: tuple[str, ...]


@dataclass(slots=True)
class ReplyItem:
    """One Bayeux message of a recorded reply with what the timeline needs to replay it."""

    message: dict[str, Any]
    cause: int | None = None  # exchange number of the request that caused this event
    delay: float | None = None  # seconds after the cause's reply completed
    hold: float | None = None  # for a /meta/connect reply: how long the server held it
    event: str | None = None  # human summary, e.g. "CallRecordingStateChange (Stopped)"
    after: str | None = None  # human summary of the cause, e.g. "StopCallRecording"
    rule: str | None = None  # how the cause was found: one of CAUSE_RULES
    correlate: tuple[Mark, ...] = ()  # client-made values of earlier requests this event carries

    @property
    def is_event(self) -> bool:
        return bayeux.is_event(self.message)


@dataclass(frozen=True, slots=True)
class Omitted:
    """A body the recorder passed through without keeping it (over ``--max-body``): its size in bytes and the
    SHA-256 of its bytes as sent (before any Content-Encoding is undone)."""

    size: int
    sha256: str

    def text(self) -> str:
        return f"body not kept: {self.size:,} bytes, sha256 {self.sha256[:12]}…"


@dataclass(slots=True)
class HttpMessage:
    """The request or response half of an exchange. ``kind`` tells which body field is set; ``omitted`` that
    the body was too large to keep (``kind`` is then None)."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    kind: str | None = None  # one of BODY_KINDS or None (no body)
    body: Any = None  # json data, list[dict] (request messages), list[ReplyItem] (reply messages), str
    omitted: Omitted | None = None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def content(self) -> bytes:
        """The body as bytes on the wire."""
        if self.kind is None:
            return b""
        if self.kind == "base64":
            return base64.b64decode(self.body)
        if self.kind == "text":
            return str(self.body).encode()
        if self.kind == "messages" and self.body and isinstance(self.body[0], ReplyItem):
            return json_bytes([item.message for item in self.body])
        return json_bytes(self.body)


@dataclass(slots=True)
class Request(HttpMessage):
    method: str = "GET"
    path: str = "/"
    query: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Response(HttpMessage):
    status: int = 200


@dataclass(slots=True)
class Exchange:
    number: int
    session: str
    start: float  # seconds since the episode began, when the request started
    request: Request
    response: Response | None = None
    ttfb: float | None = None  # seconds from the end of the request to the first byte of the reply
    ttlb: float | None = None  # seconds from the end of the request to the last byte of the reply
    error: str | None = None  # what went wrong when there is no response (upstream unreachable, ...)
    transport: str = "http"  # http | long-polling | callback-polling | websocket
    episode: int = 1
    # Why the recorder kept this exchange as plain HTTP (its parsing or redaction failed), else None
    kept_as_http: str | None = None
    correlate: tuple[Mark, ...] = ()  # client-made values of this request that its reply body carries

    @property
    def is_bayeux(self) -> bool:
        return self.transport != "http" or self.request.kind == "messages"

    def reply_items(self) -> list[ReplyItem]:
        if self.response is not None and self.response.kind == "messages":
            return self.response.body  # type: ignore[no-any-return]
        return []


@dataclass(slots=True)
class Header:
    version: int = VERSION
    recorded_at: str = ""
    upstream: str = ""
    recorder: str = ""
    redactions: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    match: dict[str, list[str]] = field(default_factory=dict)  # MATCH_KEYS -> names, for replay


@dataclass(slots=True)
class Episode:
    number: int
    recorded_at: str
    upstream: str = ""


@dataclass(slots=True)
class Cassette:
    path: str
    header: Header
    exchanges: list[Exchange] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    sha256: str = ""  # of the file's bytes: replays of one cassette on several hosts compare it

    def by_number(self) -> dict[int, Exchange]:
        return {ex.number: ex for ex in self.exchanges}

    def sessions(self) -> list[str]:
        seen: dict[str, None] = {}
        for ex in self.exchanges:
            seen.setdefault(ex.session, None)
        return list(seen)


def json_bytes(data: Any) -> bytes:
    """Compact JSON, as UTF-8. An :class:`Encoded` object, alone or in a list, gives the bytes it encoded to once:
    a list is ``[`` and its items' encodings joined by ``,`` and ``]`` (what ``json.dumps`` writes for it too)."""
    kind = type(data)
    if kind is Encoded:
        return data.encoded  # type: ignore[no-any-return]
    if kind is list and any(type(item) is Encoded for item in data):
        return b"[" + b",".join([json_bytes(item) for item in data]) + b"]"
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class Encoded(dict[str, Any]):
    """A JSON object that does not change (a recorded event that a replay sends to each of its clients alike), with
    the bytes it encodes to, encoded once, when first asked: :func:`json_copy` gives it back as it is where a dict
    would be copied, and :func:`json_bytes` uses its bytes where a dict would be encoded again (a 1.3 KB event: 25
    and 41 µs under -O). Changing it raises TypeError, since its bytes would no longer say what it holds; it holds
    what it was made from, not a copy: that must not change either (a cassette's data does not)."""

    __slots__ = ("_encoded",)

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._encoded: bytes | None = None

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = json.dumps(self, separators=(",", ":"), ensure_ascii=False).encode()
        return self._encoded

    def _unchanged(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an Encoded JSON object does not change: change a copy of it (dict(it))")

    __setitem__ = __delitem__ = update = pop = popitem = setdefault = clear = __ior__ = _unchanged

    def __copy__(self) -> Encoded:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Encoded:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return Encoded, (dict(self),)


_SCALARS = (str, int, float, bool, type(None))


def json_copy(data: Any) -> Any:
    """What ``copy.deepcopy(data)`` gives, for cassette data (dicts, lists, scalars) at a third of its cost: no memo,
    no dispatch per scalar. Anything else (a set or a date a YAML tag made) is deep-copied as before; an
    :class:`Encoded` object, which does not change, is shared."""
    kind = type(data)
    if kind is dict:
        return {k: json_copy(v) for k, v in data.items()}
    if kind is list:
        return [json_copy(v) for v in data]
    if kind in _SCALARS or kind is Encoded:
        return data
    return copy.deepcopy(data)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

