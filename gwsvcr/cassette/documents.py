"""A cassette's YAML documents and their line map: every document parsed with the safe loader (document by document
when the file is broken, to name every problem's line and keep what is intact), and the line of a field inside a
document, found again only when a problem is reported."""

from __future__ import annotations

import bisect
import functools
import re
from typing import Any

import yaml

from gwsvcr.cassette.model import Problem, Severity

__all__ = ["LOADER", "Documents", "doc_starts", "document_texts", "exchange_lines", "layout", "line_of",
           "parse_documents"]

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOC_START = re.compile(r"^---(?:[ \t]|$)", re.MULTILINE)

Documents = list[tuple[int, Any]]  # (1-based line where a document starts, or 0 when unknown; its data)


def doc_starts(text: str) -> list[int]:
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


def parse_documents(path: str, text: str) -> tuple[Documents, list[Problem], list[Problem]]:
    """Parse every document; returns (line, data) pairs, errors, and warnings (a dropped truncated tail)."""
    try:
        docs = list(yaml.load_all(text, Loader=LOADER))
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: e.g. an integer of 5000 digits
        pass
    else:
        starts = doc_starts(text)
        if len(starts) == len(docs):
            return list(zip(starts, docs, strict=False)), [], []
        return [(starts[0] if i == 0 else 0, d) for i, d in enumerate(docs)], [], []
    # Slow path, only for a broken file: parse document by document to report every problem with its line
    # and to recover what is intact.
    lines = text.splitlines(keepends=True)
    starts = doc_starts(text)
    out: Documents = []
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(lines)
        chunk = "".join(lines[start - 1:end])
        try:
            data = yaml.load(chunk, Loader=LOADER)
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
def layout(text: str) -> tuple[list[str], list[int]]:
    """Lines and document starts of a text, computed once however many problems it has."""
    return text.splitlines(keepends=True), doc_starts(text)


def line_of(path: str, text: str, start: int, keys: tuple[Any, ...]) -> int:
    """Best-effort line of ``keys`` inside the document starting at ``start`` (only used to report errors)."""
    lines, starts = layout(text)
    idx = bisect.bisect_left(starts, start)
    idx = idx if idx < len(starts) and starts[idx] == start else 0
    end = starts[idx + 1] - 1 if idx + 1 < len(starts) else len(lines)
    try:
        node = yaml.compose("".join(lines[start - 1:end]), Loader=LOADER)
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


def exchange_lines(parsed: Documents) -> dict[int, int]:
    """Exchange number -> line of its document (the first one, when a number is used twice)."""
    out: dict[int, int] = {}
    for line, doc in parsed:
        if isinstance(doc, dict) and isinstance(doc.get("exchange"), int):
            out.setdefault(doc["exchange"], line)
    return out


def document_texts(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each document; anything before the first ``---`` belongs to the first."""
    starts = [m.start() for m in _DOC_START.finditer(text)]
    if not starts or text[:starts[0]].strip():
        starts.insert(0, 0)
    bounds = [*starts[1:], len(text)]
    return [(text.count("\n", 0, a) + 1, text[a:b]) for a, b in zip(starts, bounds, strict=True)]
