"""VCR.py cassettes (``interactions:``, YAML or JSON, format version 1) read into importable entries.

VCR.py records REST traffic in process: each interaction is a request (``method``, ``uri``, ``headers`` as lists
of values, ``body``) and its response (``status: {code, message}``, ``headers``, ``body: {string}``), with no
times at all. The interactions are taken as they come, one millisecond apart and answered at once, so a replay
keeps their order. Read with PyYAML's safe loader (a ``!!python`` tag is an error, as in a cassette); a document
whose aliases expand past a bound (an alias bomb) or nest past Python's recursion limit is refused.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from gwsvcr import wire
from gwsvcr.cassette import Request, Response
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.tools.importing import Entry, ImportProblems, read_bytes

__all__ = ["read"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_VALUES = 2_000_000  # values a VCR.py cassette may reach once its aliases are followed
_STEP = 0.001  # seconds between two interactions: VCR.py keeps no times


class _Invalid(Exception):
    pass


def read(path: str) -> list[Entry]:
    """The interactions of a VCR.py cassette as entries; :class:`ImportProblems` names the file and interaction."""
    raw = read_bytes(path, "a VCR.py cassette")
    try:
        document = yaml.load(raw, Loader=_LOADER)  # the safe loader (CSafeLoader when there)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        what = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise ImportProblems([f"{path}{where}: not a VCR.py cassette that loads safely: {what}"]) from None
    except (RecursionError, ValueError) as e:
        raise ImportProblems([f"{path}: not a VCR.py cassette that loads: {type(e).__name__}: nested too deep or "
                              "a value too large"]) from None
    if not _bounded(document):
        raise ImportProblems([f"{path}: its YAML aliases expand past {_MAX_VALUES} values (an alias bomb?): a "
                              "VCR.py cassette holds plain data"])
    interactions = document.get("interactions") if isinstance(document, dict) else None
    if not isinstance(interactions, list):
        raise ImportProblems([f"{path}: not a VCR.py cassette: no 'interactions' list"])
    entries, problems = [], []
    start = float(int(Path(path).stat().st_mtime))  # when it was written: no better time is known
    for i, interaction in enumerate(interactions):
        try:
            entries.append(_entry(interaction, f"interactions[{i}]", start + i * _STEP))
        except _Invalid as bad:
            problems.append(f"{path}: interactions[{i}]{bad}")
        except (ValueError, TypeError, RecursionError) as bad:
            problems.append(f"{path}: interactions[{i}]: {type(bad).__name__}: {str(bad)[:200]}")
    if problems:
        raise ImportProblems(problems)
    return entries


def _bounded(document: Any) -> bool:
    """Whether walking the document, aliases followed, stays under the bound (no bomb, no cycle)."""
    seen, todo = 0, [document]
    while todo:
        node = todo.pop()
        seen += 1
        if seen > _MAX_VALUES:
            return False
        if isinstance(node, dict):
            todo.extend(node.keys())
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return True


def _need(data: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        name = getattr(kind, "__name__", "value") if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _Invalid(f".{where}{'.' if where else ''}{key}: missing or not a {name}".replace("..", "."))
    return value


def _headers(data: dict[str, Any], where: str) -> list[tuple[str, str]]:
    headers = data.get("headers") or {}
    if not isinstance(headers, dict):
        raise _Invalid(f".{where}.headers: not a mapping of names to lists of values")
    out = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(name, str) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise _Invalid(f".{where}.headers.{str(name)[:40]}: not a text value")
            out.append((name, str(value)))
    return out


def _bytes(body: Any, where: str) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", errors="surrogateescape")
    if isinstance(body, dict) and "string" in body:
        return _bytes(body["string"], f"{where}.string")
    raise _Invalid(f".{where}: not a text or binary body")


_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
_MAX_DECODED = 64 << 20  # bytes a compressed body may grow to


def _decoded(headers: list[tuple[str, str]], content: bytes, where: str) -> bytes:
    """The body as the application saw it: VCR.py keeps a compressed body as it came (Content-Encoding)."""
    encoding = next((v.strip().lower() for k, v in headers if k.lower() == "content-encoding"), "")
    if encoding not in ("gzip", "deflate") or not content:
        return content
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        out = inflater.decompress(content, _MAX_DECODED)
    except (zlib.error, gzip.BadGzipFile) as e:
        raise _Invalid(f".{where}.body: Content-Encoding {encoding}, but {e}") from None
    if inflater.unconsumed_tail:
        raise _Invalid(f".{where}.body: decompresses to more than {_MAX_DECODED >> 20} MB")
    return out


def _unframed(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in _FRAMING]


def _content_type(headers: list[tuple[str, str]]) -> str | None:
    return next((v for k, v in headers if k.lower() == "content-type"), None)


def _entry(interaction: Any, where: str, at: float) -> Entry:
    if not isinstance(interaction, dict):
        raise _Invalid(": not a mapping with request and response")
    request = _need(interaction, "request", dict, "")
    uri = _need(request, "uri", str, "request")
    parts = urlsplit(uri)
    headers = _headers(request, "request")
    kind, body = wire.parse_body(_decoded(headers, _bytes(request.get("body"), "request.body"), "request"),
                                 _content_type(headers))
    headers = _unframed(headers)
    req = Request(headers=headers, kind=kind, body=body, method=_need(request, "method", str, "request").upper(),
                  path=parts.path or "/", query=parse_qsl(parts.query, keep_blank_values=True))
    response = _need(interaction, "response", dict, "")
    status = _need(response, "status", dict, "response")
    code = _need(status, "code", int, "response.status")
    if not 100 <= code <= 999:
        raise _Invalid(f".response.status.code: {code} is not an HTTP status")
    response_headers = _headers(response, "response")
    content = _decoded(response_headers, _bytes(response.get("body"), "response.body"), "response")
    kind, body = wire.parse_body(content, _content_type(response_headers))
    response_headers = _unframed(response_headers)
    resp = Response(headers=response_headers, kind=kind, body=body, status=code)
    return Entry(uri, req, resp, ExchangeTimes(at, at, at, at), where=where)
