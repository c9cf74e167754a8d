"""The cassette schema: parsed YAML documents checked field by field and built into the model
(:class:`~gwsvcr.cassette.model.Cassette`), each problem named with the line of the field at fault."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from gwsvcr.cassette.documents import Documents, exchange_lines, layout, line_of
from gwsvcr.cassette.model import (
    BODY_KINDS,
    CAUSE_RULES,
    MATCH_KEYS,
    VERSION,
    Cassette,
    Episode,
    Exchange,
    Header,
    Mark,
    Omitted,
    Problem,
    ReplyItem,
    Request,
    Response,
    Severity,
)
from gwsvcr.errors import GwsvcrError

__all__ = ["Invalid", "build"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Invalid(GwsvcrError):
    """A document that does not fit: the keys of the field at fault and what is wrong. :func:`build` turns it into
    a :class:`~gwsvcr.cassette.model.Problem` with the field's line; it never leaves the package."""

    def __init__(self, keys: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.keys = keys
        self.message = message


def _need(doc: dict[str, Any], key: str, types: type | tuple[type, ...], where: tuple[Any, ...] = (),
          optional: bool = False) -> Any:
    if key not in doc or doc[key] is None:
        if optional:
            return None
        raise Invalid(where, f"missing field '{'.'.join(map(str, (*where, key)))}'")
    value = doc[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise Invalid((*where, key), f"field '{key}' must be {_tname(types)}, not a boolean")
    if not isinstance(value, types):
        raise Invalid((*where, key), f"field '{key}' must be {_tname(types)}, got {type(value).__name__}")
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in ts)


def _pairs(value: Any, where: tuple[Any, ...], trusted: bool = False) -> list[tuple[str, str]]:
    if trusted:  # from the parse cache: validated before it was stored
        return [(a, b) for a, b in value]
    if not isinstance(value, list):
        raise Invalid(where, f"'{where[-1]}' must be a list of [name, value] pairs")
    out = []
    for i, pair in enumerate(value):
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
            raise Invalid((*where, i), f"'{where[-1]}' item {i + 1} must be [name, value] (two strings)")
        out.append((pair[0], pair[1]))
    return out


def _body(doc: dict[str, Any], where: tuple[Any, ...], reply: bool) -> tuple[str | None, Any]:
    present = [k for k in BODY_KINDS if k in doc]
    if len(present) > 1:
        raise Invalid(where, f"only one body field allowed, found {', '.join(present)}")
    if not present:
        return None, None
    kind = present[0]
    value = doc[kind]
    if kind in ("text", "base64") and not isinstance(value, str):
        raise Invalid((*where, kind), f"'{kind}' body must be a string")
    if kind == "base64":
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise Invalid((*where, kind), "'base64' body is not valid base64") from None
    if kind == "messages":
        if not isinstance(value, list):
            raise Invalid((*where, kind), "'messages' must be a list of Bayeux messages")
        if reply:
            return kind, [_reply_item(item, (*where, kind, i)) for i, item in enumerate(value)]
        for i, m in enumerate(value):
            if not isinstance(m, dict):
                raise Invalid((*where, kind, i), "each Bayeux message must be a mapping")
    return kind, value


def _omitted(doc: dict[str, Any], where: tuple[Any, ...], kind: str | None) -> Omitted | None:
    value = _need(doc, "omitted", dict, where, optional=True)
    if value is None:
        return None
    at = (*where, "omitted")
    if kind is not None:
        raise Invalid(at, f"'omitted' says the body was not kept: remove it or the '{kind}' body")
    size = _need(value, "size", int, at)
    sha256 = _need(value, "sha256", str, at)
    if size < 0:
        raise Invalid((*at, "size"), "'omitted.size' must be 0 or more (bytes)")
    if not _SHA256.fullmatch(sha256):
        raise Invalid((*at, "sha256"), "'omitted.sha256' must be 64 lower-case hex digits")
    return Omitted(size, sha256)


def _match_section(head: dict[str, Any]) -> dict[str, list[str]]:
    section = _need(head, "match", dict, optional=True) or {}
    for key, names in section.items():
        if key not in MATCH_KEYS:
            raise Invalid(("match", key), f"unknown 'match' key {key!r}; known: {', '.join(MATCH_KEYS)}")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise Invalid(("match", key), f"'match.{key}' must be a list of names")
    return {key: list(names) for key, names in section.items()}


def _reply_item(item: Any, where: tuple[Any, ...]) -> ReplyItem:
    if not isinstance(item, dict):
        raise Invalid(where, "each reply item must be a mapping with a 'message'")
    msg = _need(item, "message", dict, where)
    cause = _need(item, "cause", int, where, optional=True)
    delay = _need(item, "delay", (int, float), where, optional=True)
    hold = _need(item, "hold", (int, float), where, optional=True)
    event = _need(item, "event", str, where, optional=True)
    after = _need(item, "after", str, where, optional=True)
    rule = _need(item, "rule", str, where, optional=True)
    if rule is not None and rule not in CAUSE_RULES:
        raise Invalid((*where, "rule"), f"unknown cause rule {rule!r}; known: {', '.join(CAUSE_RULES)}")
    return ReplyItem(msg, cause, None if delay is None else float(delay), None if hold is None else float(hold),
                     event, after, rule, _marks(item, where, None))


_LOCATION = re.compile(r"(query|header|json|message)\.\S+")


def _marks(doc: dict[str, Any], where: tuple[Any, ...], own: int | None) -> tuple[Mark, ...]:
    """The ``correlate:`` list of an exchange (``own``: its number) or of a reply item."""
    value = _need(doc, "correlate", list, where, optional=True) or []
    marks = []
    for i, mark in enumerate(value):
        at = (*where, "correlate", i)
        if not isinstance(mark, dict):
            raise Invalid(at, "each 'correlate' entry must be a mapping with 'at' and 'paths'")
        exchange = _need(mark, "exchange", int, at, optional=own is not None)
        location = _need(mark, "at", str, at)
        if not _LOCATION.fullmatch(location):
            raise Invalid((*at, "at"), f"'at' must be query.NAME, header.NAME, json.PATH or message.PATH, "
                                       f"not {location!r}")
        paths = _need(mark, "paths", list, at)
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise Invalid((*at, "paths"), "'paths' must be a list of dotted paths")
        marks.append(Mark(exchange if exchange is not None else own or 0, location, tuple(paths)))
    return tuple(marks)


def _exchange(doc: dict[str, Any], episode: int, trusted: bool = False) -> Exchange:
    number = _need(doc, "exchange", int)
    session = _need(doc, "session", str)
    start = float(_need(doc, "start", (int, float)))
    rq = _need(doc, "request", dict)
    method = _need(rq, "method", str, ("request",))
    rpath = _need(rq, "path", str, ("request",))
    query = _pairs(rq.get("query") or [], ("request", "query"), trusted)
    headers = _pairs(rq.get("headers") or [], ("request", "headers"), trusted)
    kind, body = _body(rq, ("request",), reply=False)
    request = Request(headers=headers, kind=kind, body=body, method=method, path=rpath, query=query,
                      omitted=_omitted(rq, ("request",), kind))
    response = None
    rs = _need(doc, "response", dict, optional=True)
    if rs is not None:
        status = _need(rs, "status", int, ("response",))
        rkind, rbody = _body(rs, ("response",), reply=True)
        response = Response(headers=_pairs(rs.get("headers") or [], ("response", "headers"), trusted), kind=rkind,
                            body=rbody, status=status, omitted=_omitted(rs, ("response",), rkind))
    error = _need(doc, "error", str, optional=True)
    if response is None and error is None:
        raise Invalid((), "an exchange needs a 'response' or an 'error'")
    ttfb = _need(doc, "ttfb", (int, float), optional=True)
    ttlb = _need(doc, "ttlb", (int, float), optional=True)
    transport = _need(doc, "transport", str, optional=True) or "http"
    kept_as_http = _need(doc, "kept_as_http", str, optional=True)
    return Exchange(number, session, start, request, response, None if ttfb is None else float(ttfb),
                    None if ttlb is None else float(ttlb), error, transport, episode, kept_as_http,
                    _marks(doc, (), number))


def build(path: str, text: str, parsed: Documents, problems: list[Problem], trusted: bool = False,
          check: Callable[[Any], None] | None = None) -> Cassette:
    """The cassette that ``parsed`` describes; what does not fit the schema goes to ``problems`` with its line.
    ``check`` runs on each document first and raises :class:`Invalid` for one that must not be read at all;
    ``trusted`` documents (from the parse cache) were checked before they were stored."""
    cassette = Cassette(path, Header())
    if not parsed:
        return cassette
    first_line, head = parsed[0]
    try:
        if check is not None:
            check(head)
    except Invalid as bad:
        problems.append(Problem(path, first_line or 1, bad.message))
        return cassette
    if not isinstance(head, dict) or "gwsvcr" not in head:
        problems.append(Problem(path, first_line or 1, "not a gwsvcr cassette: the first document must be the "
                                                       "header with 'gwsvcr: 1'"))
        return cassette
    version = head.get("gwsvcr")
    if version != VERSION:
        problems.append(Problem(path, first_line, f"unknown cassette format version {version!r}: this gwsvcr "
                                                  f"reads version {VERSION}; upgrade gwsvcr or re-record"))
        return cassette
    extra = {k: v for k, v in head.items() if k not in ("gwsvcr", "recorded_at", "upstream", "recorder",
                                                        "redactions", "match")}
    red = head.get("redactions") or []
    try:
        match = _match_section(head)
    except Invalid as bad:
        problems.append(Problem(path, line_of(path, text, first_line, bad.keys) if first_line else 1, bad.message))
        match = {}
    cassette.header = Header(VERSION, str(head.get("recorded_at", "")), str(head.get("upstream", "")),
                             str(head.get("recorder", "")), [str(r) for r in red] if isinstance(red, list) else [],
                             extra, match)
    cassette.episodes.append(Episode(1, cassette.header.recorded_at, cassette.header.upstream))
    episode = 1
    numbers: set[int] = set()
    for line, doc in parsed[1:]:
        try:
            if not isinstance(doc, dict):
                raise Invalid((), f"each document must be a mapping (an exchange), got {type(doc).__name__}")
            if check is not None:
                check(doc)
            if "episode" in doc:
                episode = _need(doc, "episode", int)
                cassette.episodes.append(Episode(episode, str(doc.get("recorded_at", "")),
                                                 str(doc.get("upstream", ""))))
                continue
            ex = _exchange(doc, episode, trusted)
            if ex.number in numbers:
                raise Invalid(("exchange",), f"exchange number {ex.number} used twice")
            numbers.add(ex.number)
            cassette.exchanges.append(ex)
            if ex.kept_as_http is not None:
                cassette.warnings.append(Problem(path, line, f"exchange {ex.number} was kept as plain HTTP by the "
                                                             f"recorder: {ex.kept_as_http}", Severity.NOTE))
        except Invalid as bad:
            problems.append(Problem(path, line_of(path, text, line, bad.keys) if line else 1, bad.message))
    lines_of: dict[int, int] = {}
    for ex in cassette.exchanges:
        for mark in (m for item in ex.reply_items() for m in item.correlate):
            if mark.exchange not in numbers:
                lines_of = lines_of or exchange_lines(parsed)
                problems.append(Problem(path, line_of(path, text, lines_of.get(ex.number, 1), ()),
                                        f"exchange {ex.number}: a correlate mark names exchange {mark.exchange}, "
                                        "which is not in this cassette"))
        for item in ex.reply_items():
            if item.cause is not None and item.cause not in numbers:
                lines_of = lines_of or exchange_lines(parsed)
                problems.append(Problem(path, line_of(path, text, lines_of.get(ex.number, 1), ()),
                                        f"exchange {ex.number}: event cause {item.cause} is not an exchange "
                                        "of this cassette"))
    layout.cache_clear()  # the text's lines were only kept while reporting its problems
    return cassette
