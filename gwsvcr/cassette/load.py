"""Reading cassettes safely: the bytes checked (a file, UTF-8 text), YAML aliases checked (no cycle, no alias
bomb), the parse cache used and filled, and :func:`load` / :func:`validate`, the package's way in. The documents
and their lines are :mod:`~gwsvcr.cassette.documents`' job, the schema :mod:`~gwsvcr.cassette.schema`'s."""

from __future__ import annotations

import gc
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from gwsvcr.cassette.cache import cache_get, cache_put
from gwsvcr.cassette.documents import parse_documents
from gwsvcr.cassette.model import Cassette, CassetteError, Header, Problem, Severity
from gwsvcr.cassette.schema import Invalid, build

__all__ = ["load", "validate"]

_MAX_EXPANDED = 1_000_000  # values a document may reach through YAML aliases (more and 10x its size: a bomb)
_ANCHOR = re.compile(r"(?:^|[\s\[{,])&[^\s\[\]{},]")  # a YAML anchor (&name) where a node starts


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


def check_aliases(doc: Any) -> None:
    if not isinstance(doc, (dict, list)):
        return
    expanded, held = _expansion(doc)
    if expanded < 0:
        raise Invalid((), "a YAML alias refers to its own parent (a cycle): a cassette holds plain data")
    if expanded > _MAX_EXPANDED and expanded > 10 * held:
        raise Invalid((), f"YAML aliases expand this document to more than {_MAX_EXPANDED} values from {held} "
                           "(an alias bomb?): a cassette holds plain data; remove the &anchors and *aliases")


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
            cassette = build(path, "", [(0, d) for d in docs], problems, trusted=True)
            if not problems:
                cassette.sha256 = digest
                return cassette, []
    text = _decode(path, raw)
    if isinstance(text, Problem):
        return Cassette(path, Header()), [text]
    parsed, problems, warnings = parse_documents(path, text)
    if not parsed and not problems:
        problems.append(Problem(path, 1, "no YAML document found"))
    # Only a text with a YAML anchor can hold aliases (cached documents came from JSON, which has none).
    cassette = build(path, text, parsed, problems, check=check_aliases if _ANCHOR.search(text) else None)
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

