"""Reading cassettes: the safe loader, validation with FILE:LINE problems, and the model built from documents."""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import gc
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from gwsvcr.cassette.cache import cache_get, cache_put
from gwsvcr.cassette.model import (
    BODY_KINDS,
    CAUSE_RULES,
    MATCH_KEYS,
    VERSION,
    Cassette,
    CassetteError,
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

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_EXPANDED = 1_000_000  # values a document may reach through YAML aliases (more and 10x its size: a bomb)
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]")  # a YAML anchor (&name) where a node starts

_DOC_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)
_SHA256 = re.compile(r"[0-9a-f]{64}")

def _doc_starts(text: str) -> list[int]:
    """1-based line numbers where each document starts (the explicit ``---`` lines the writer emits)."""
    starts: list[int] = []
    line, pos = 1, 0
    for m in _DOC_START.finditer(text):
        line += text.count("\n", pos, m.start())  # counted once, as we go: linear in the file
        pos = m.start()
        starts.append(line)
    first = _DOC_START.search(text)
    if first is None or text[: first.start()].strip():
        starts.insert(0, 1)
    return starts


def _parse_documents(path: str, text: str) -> tuple[list[tuple[int, Any]], list[Problem], list[Problem]]:
    """Parse every document; returns (line, data) pairs, errors, and warnings (a dropped truncated tail)."""
    try:
        docs = list(yaml.load_all(text, Loader=_LOADER))
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: e.g. an integer of 5000 digits
        pass
    else:
        starts = _doc_starts(text)
        if len(starts) == len(docs):
            return list(zip(starts, docs, strict=False)), [], []
        return [(starts[0] if i == 0 else 0, d) for i, d in enumerate(docs)], [], []
    # Slow path, only for a broken file: parse document by document to report every problem with its line
    # and to recover what is intact.
    lines = text.splitlines(keepends=True)
    starts = _doc_starts(text)
    out: list[tuple[int, Any]] = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(lines)
        chunk = "".join(lines[start - 1:end])
        try:
            data = yaml.load(chunk, Loader=_LOADER)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            line = start + (mark.line if mark is not None else 0)
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            if isinstance(e, yaml.constructor.ConstructorError) and "tag" in str(what):
                msg = (f"YAML tag not allowed ({what.strip()}); cassettes are plain YAML data: remove the tag "
                       "(no tag ever runs code here)")
                errors.append(Problem(path, line, msg))
            elif i == len(starts) - 1 and i > 0:
                errors.append(Problem(path, start, f"truncated last document ({what}); the writer was probably "
                                                   f"stopped mid-write: delete from line {start} to the end",
                                      Severity.RECOVERABLE))
                warnings.append(Problem(path, start, "ignored a truncated last document", Severity.WARNING))
            else:
                errors.append(Problem(path, line, f"YAML syntax error: {what}"))
            continue
        except (ValueError, RecursionError) as e:
            errors.append(Problem(path, start, f"a value in this document cannot be read: {e}"))
            continue
        out.append((start, data))
    return out, errors, warnings


@functools.lru_cache(maxsize=1)
def _layout(text: str) -> tuple[list[str], list[int]]:
    """Lines and document starts of a text, computed once however many problems it has."""
    return text.splitlines(keepends=True), _doc_starts(text)


def _line_of(path: str, text: str, start: int, keys: tuple[Any, ...]) -> int:
    """Best-effort line of ``keys`` inside the document starting at ``start`` (only used to report errors)."""
    lines, starts = _layout(text)
    idx = bisect.bisect_left(starts, start)
    idx = idx if idx < len(starts) and starts[idx] == start else 0
    end = starts[idx + 1] - 1 if idx + 1 < len(starts) else len(lines)
    try:
        node = yaml.compose("".join(lines[start - 1:end]), Loader=_LOADER)
    except (yaml.YAMLError, RecursionError):  # RecursionError: deep nesting, fine for libyaml, not for Python
        return start
    line = node.start_mark.line if node is not None else 0
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line
        else:
            break
    return start + line


class _Invalid(Exception):
    def __init__(self, keys: tuple[Any, ...], message: str) -> None:
        self.keys = keys
        self.message = message


def _need(doc: dict[str, Any], key: str, types: type | tuple[type, ...], where: tuple[Any, ...] = (),
          optional: bool = False) -> Any:
    if key not in doc or doc[key] is None:
        if optional:
            return None
        raise _Invalid(where, f"missing field '{'.'.join(map(str, (*where, key)))}'")
    value = doc[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _Invalid((*where, key), f"field '{key}' must be {_tname(types)}, not a boolean")
    if not isinstance(value, types):
        raise _Invalid((*where, key), f"field '{key}' must be {_tname(types)}, got {type(value).__name__}")
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    names = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in ts)


def _pairs(value: Any, where: tuple[Any, ...], trusted: bool = False) -> list[tuple[str, str]]:
    if trusted:  # from the parse cache: validated before it was stored
        return [(a, b) for a, b in value]
    if not isinstance(value, list):
        raise _Invalid(where, f"'{where[-1]}' must be a list of [name, value] pairs")
    out = []
    for i, pair in enumerate(value):
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
            raise _Invalid((*where, i), f"'{where[-1]}' item {i + 1} must be [name, value] (two strings)")
        out.append((pair[0], pair[1]))
    return out


def _body(doc: dict[str, Any], where: tuple[Any, ...], reply: bool) -> tuple[str | None, Any]:
    present = [k for k in BODY_KINDS if k in doc]
    if len(present) > 1:
        raise _Invalid(where, f"only one body field allowed, found {', '.join(present)}")
    if not present:
        return None, None
    kind = present[0]
    value = doc[kind]
    if kind in ("text", "base64") and not isinstance(value, str):
        raise _Invalid((*where, kind), f"'{kind}' body must be a string")
    if kind == "base64":
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _Invalid((*where, kind), "'base64' body is not valid base64") from None
    if kind == "messages":
        if not isinstance(value, list):
            raise _Invalid((*where, kind), "'messages' must be a list of Bayeux messages")
        if reply:
            return kind, [_reply_item(item, (*where, kind, i)) for i, item in enumerate(value)]
        for i, m in enumerate(value):
            if not isinstance(m, dict):
                raise _Invalid((*where, kind, i), "each Bayeux message must be a mapping")
    return kind, value


def _omitted(doc: dict[str, Any], where: tuple[Any, ...], kind: str | None) -> Omitted | None:
    value = _need(doc, "omitted", dict, where, optional=True)
    if value is None:
        return None
    at = (*where, "omitted")
    if kind is not None:
        raise _Invalid(at, f"'omitted' says the body was not kept: remove it or the '{kind}' body")
    size = _need(value, "size", int, at)
    sha256 = _need(value, "sha256", str, at)
    if size < 0:
        raise _Invalid((*at, "size"), "'omitted.size' must be 0 or more (bytes)")
    if not _SHA256.fullmatch(sha256):
        raise _Invalid((*at, "sha256"), "'omitted.sha256' must be 64 lower-case hex digits")
    return Omitted(size, sha256)


def _match_section(head: dict[str, Any]) -> dict[str, list[str]]:
    section = _need(head, "match", dict, optional=True) or {}
    for key, names in section.items():
        if key not in MATCH_KEYS:
            raise _Invalid(("match", key), f"unknown 'match' key {key!r}; known: {', '.join(MATCH_KEYS)}")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _Invalid(("match", key), f"'match.{key}' must be a list of names")
    return {key: list(names) for key, names in section.items()}


def _reply_item(item: Any, where: tuple[Any, ...]) -> ReplyItem:
    if not isinstance(item, dict):
        raise _Invalid(where, "each reply item must be a mapping with a 'message'")
    msg = _need(item, "message", dict, where)
    cause = _need(item, "cause", int, where, optional=True)
    delay = _need(item, "delay", (int, float), where, optional=True)
    hold = _need(item, "hold", (int, float), where, optional=True)
    event = _need(item, "event", str, where, optional=True)
    after = _need(item, "after", str, where, optional=True)
    rule = _need(item, "rule", str, where, optional=True)
    if rule is not None and rule not in CAUSE_RULES:
        raise _Invalid((*where, "rule"), f"unknown cause rule {rule!r}; known: {', '.join(CAUSE_RULES)}")
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
            raise _Invalid(at, "each 'correlate' entry must be a mapping with 'at' and 'paths'")
        exchange = _need(mark, "exchange", int, at, optional=own is not None)
        location = _need(mark, "at", str, at)
        if not _LOCATION.fullmatch(location):
            raise _Invalid((*at, "at"), f"'at' must be query.NAME, header.NAME, json.PATH or message.PATH, "
                                        f"not {location!r}")
        paths = _need(mark, "paths", list, at)
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise _Invalid((*at, "paths"), "'paths' must be a list of dotted paths")
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
        raise _Invalid((), "an exchange needs a 'response' or an 'error'")
    ttfb = _need(doc, "ttfb", (int, float), optional=True)
    ttlb = _need(doc, "ttlb", (int, float), optional=True)
    transport = _need(doc, "transport", str, optional=True) or "http"
    kept_as_http = _need(doc, "kept_as_http", str, optional=True)
    return Exchange(number, session, start, request, response, None if ttfb is None else float(ttfb),
                    None if ttlb is None else float(ttlb), error, transport, episode, kept_as_http,
                    _marks(doc, (), number))


def _build(path: str, text: str, parsed: list[tuple[int, Any]], problems: list[Problem],
           trusted: bool = False) -> Cassette:
    cassette = Cassette(path, Header())
    if not parsed:
        return cassette
    first_line, head = parsed[0]
    # Only a text with a YAML anchor can hold aliases (cached documents came from JSON, which has none).
    aliased = not trusted and _ANCHOR.search(text) is not None
    try:
        if aliased:
            _check_aliases(head)
    except _Invalid as bad:
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
    except _Invalid as bad:
        problems.append(Problem(path, _line_of(path, text, first_line, bad.keys) if first_line else 1, bad.message))
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
                raise _Invalid((), f"each document must be a mapping (an exchange), got {type(doc).__name__}")
            if aliased:
                _check_aliases(doc)
            if "episode" in doc:
                episode = _need(doc, "episode", int)
                cassette.episodes.append(Episode(episode, str(doc.get("recorded_at", "")),
                                                 str(doc.get("upstream", ""))))
                continue
            ex = _exchange(doc, episode, trusted)
            if ex.number in numbers:
                raise _Invalid(("exchange",), f"exchange number {ex.number} used twice")
            numbers.add(ex.number)
            cassette.exchanges.append(ex)
            if ex.kept_as_http is not None:
                cassette.warnings.append(Problem(path, line, f"exchange {ex.number} was kept as plain HTTP by the "
                                                             f"recorder: {ex.kept_as_http}", Severity.NOTE))
        except _Invalid as bad:
            problems.append(Problem(path, _line_of(path, text, line, bad.keys) if line else 1, bad.message))
    lines_of: dict[int, int] = {}
    for ex in cassette.exchanges:
        for mark in (m for item in ex.reply_items() for m in item.correlate):
            if mark.exchange not in numbers:
                lines_of = lines_of or _exchange_lines(parsed)
                problems.append(Problem(path, _line_of(path, text, lines_of.get(ex.number, 1), ()),
                                        f"exchange {ex.number}: a correlate mark names exchange {mark.exchange}, "
                                        "which is not in this cassette"))
        for item in ex.reply_items():
            if item.cause is not None and item.cause not in numbers:
                lines_of = lines_of or _exchange_lines(parsed)
                problems.append(Problem(path, _line_of(path, text, lines_of.get(ex.number, 1), ()),
                                        f"exchange {ex.number}: event cause {item.cause} is not an exchange "
                                        "of this cassette"))
    _layout.cache_clear()  # the text's lines were only kept while reporting its problems
    return cassette


def _expansion(data: Any) -> tuple[int, int]:
    """(values once YAML aliases are expanded, values the document actually holds), the first capped just past
    _MAX_EXPANDED; (-1, 0) when an alias refers to one of its own parents (a cycle)."""
    memo: dict[int, int] = {}  # id of a container -> values it expands to
    held = 0
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            memo[id(node)] = min(_MAX_EXPANDED + 1, 1 + sum(memo.get(id(c), 1) for c in children))
            continue
        if id(node) in memo:
            continue
        if id(node) in visiting:
            return -1, held
        visiting.add(id(node))
        held += 1 + len(children)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in memo)
    return memo.get(id(data), 1), held


def _check_aliases(doc: Any) -> None:
    if not isinstance(doc, (dict, list)):
        return
    expanded, held = _expansion(doc)
    if expanded < 0:
        raise _Invalid((), "a YAML alias refers to its own parent (a cycle): a cassette holds plain data")
    if expanded > _MAX_EXPANDED and expanded > 10 * held:
        raise _Invalid((), f"YAML aliases expand this document to more than {_MAX_EXPANDED} values from {held} "
                           "(an alias bomb?): a cassette holds plain data; remove the &anchors and *aliases")


def _exchange_lines(parsed: list[tuple[int, Any]]) -> dict[int, int]:
    """Exchange number -> line of its document (the first one, when a number is used twice)."""
    out: dict[int, int] = {}
    for line, doc in parsed:
        if isinstance(doc, dict) and isinstance(doc.get("exchange"), int):
            out.setdefault(doc["exchange"], line)
    return out


def _read_bytes(path: str) -> bytes | Problem:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return Problem(path, 0, "no such file; record one with 'gwsvcr record' or check the path")
    except IsADirectoryError:
        return Problem(path, 0, "is a directory, not a cassette file")
    except OSError as e:
        return Problem(path, 0, f"cannot read: {e.strerror}")
    if not raw or raw.isspace():
        return Problem(path, 1, "empty file: not a cassette (a cassette starts with the header 'gwsvcr: 1')")
    if b"\x00" in raw:
        return Problem(path, 1, "binary data: a cassette is UTF-8 YAML text")
    return raw


def _decode(path: str, raw: bytes) -> str | Problem:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Problem(path, raw[: e.start].count(b"\n") + 1, "not UTF-8 text: a cassette is UTF-8 YAML")


def _load(path: str, use_cache: bool) -> tuple[Cassette, list[Problem]]:
    raw = _read_bytes(path)
    if isinstance(raw, Problem):
        return Cassette(path, Header()), [raw]
    digest = hashlib.sha256(raw).hexdigest()
    if use_cache:
        docs = cache_get(digest)
        if docs is not None:
            problems: list[Problem] = []
            cassette = _build(path, "", [(0, d) for d in docs], problems, trusted=True)
            if not problems:
                cassette.sha256 = digest
                return cassette, []
    text = _decode(path, raw)
    if isinstance(text, Problem):
        return Cassette(path, Header()), [text]
    parsed, problems, warnings = _parse_documents(path, text)
    if not parsed and not problems:
        problems.append(Problem(path, 1, "no YAML document found"))
    cassette = _build(path, text, parsed, problems)
    cassette.sha256 = digest
    cassette.warnings.extend(warnings)
    if use_cache and not problems:
        cache_put(digest, [d for _, d in parsed])
    return cassette, problems


def validate(path: str | os.PathLike[str]) -> list[Problem]:
    """Every problem of the cassette at ``path`` as ``FILE:LINE: message``, then its notes (exchanges the recorder
    kept as plain HTTP, :attr:`Severity.NOTE`); none of severity ERROR or RECOVERABLE when it is valid."""
    cassette, problems = _load(os.fspath(path), use_cache=False)
    return problems + [w for w in cassette.warnings if w.severity is Severity.NOTE]


def load(path: str | os.PathLike[str], *, use_cache: bool = True) -> Cassette:
    """Load a valid cassette. A truncated last document (a writer killed mid-write) is dropped with a warning;
    any other problem raises :class:`CassetteError` listing them all."""
    # Building many small containers triggers the cyclic GC again and again; they hold no cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        cassette, problems = _load(os.fspath(path), use_cache)
    finally:
        if collecting:
            gc.enable()
    fatal = [p for p in problems if p.severity is Severity.ERROR]
    if fatal:
        raise CassetteError(problems)
    return cassette

