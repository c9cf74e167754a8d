"""A small, fast YAML emitter for cassette documents (JSON-like data), block style for people to read.

PyYAML's representer is pure Python and costs about 0.2 ms per exchange, which the recorder would add to every
request it forwards. Cassette documents only hold dicts, lists, strings, numbers, booleans and None, so this
writes them directly. A string is written plain only when the YAML 1.1 resolver cannot mistake it for anything
else; otherwise it is double-quoted with JSON escaping (a subset of YAML's). Every output reads back identically
with PyYAML's safe loader: tests/test_yamlemit.py checks that property on generated data.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from gwsvcr.errors import GwsvcrError

# Plain only if it starts with a letter, '/' or '_' and holds no indicator YAML could read as structure.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+;=()-]*(?: [A-Za-z0-9_./@+;=()-]+)*")
# Words the YAML 1.1 resolver turns into booleans or null.
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
# Characters YAML does not allow raw in a double-quoted scalar, or would read as line breaks.
_ESCAPE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\x85\u2028\u2029]")
_LITERAL_OK = re.compile("[^\x0a\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]")


class Flow(list):  # type: ignore[type-arg]
    """A short list of scalars written on one line, e.g. a header ``[Content-Type, application/json]``."""


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    return f"\\u{code:04x}"


@functools.lru_cache(maxsize=8192)
def _string(value: str) -> str:
    """Header names, channels, operation names repeat in every exchange: each is worked out once."""
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    return _ESCAPE.sub(_escape, json.dumps(value, ensure_ascii=False))


def scalar(value: Any) -> str:
    if type(value) is str:
        return _string(value) if len(value) < 200 else _string.__wrapped__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value).lower()
        # YAML 1.1 floats need a dot: 1e-05 would read back as a string
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if isinstance(value, str):  # a str subclass
        return _string.__wrapped__(str(value))
    raise TypeError(f"cannot write {type(value).__name__} to a cassette")


def _literal(value: str, indent: int) -> str | None:
    """A multi-line string as a literal block (HTML error pages, JSONP), when that is exact."""
    if "\n" not in value or _LITERAL_OK.search(value) or value[:1] in (" ", "\t", "\n"):
        return None
    body = value[:-1] if value.endswith("\n") else value
    if body.endswith("\n") or any(line != line.rstrip() for line in body.split("\n")):
        return None
    pad = " " * (indent + 2)
    header = "|" if value.endswith("\n") else "|-"
    return header + "\n" + "\n".join(pad + line if line else "" for line in body.split("\n"))


def _value(value: Any, indent: int, out: list[str], prefix: str) -> None:
    """Append a line ``prefix`` + ``value`` for anything that fits on it (scalars, empties, flow lists, blocks)."""
    if isinstance(value, dict):
        out.append(prefix + "{}")  # non-empty mappings are written by _mapping / _sequence
    elif isinstance(value, Flow):
        out.append(prefix + "[" + ", ".join(scalar(v) for v in value) + "]")
    elif isinstance(value, list):
        out.append(prefix + "[]")
    else:
        block = _literal(value, indent) if isinstance(value, str) else None
        out.append(prefix + (block if block is not None else scalar(value)))


# YAML loaders refuse deep nesting (libyaml at 1000 levels, PyYAML's Python loader near 500): what is nested more
# deeply than this is refused here, so no cassette is written that cannot be read back.
MAX_INDENT = 400


class TooDeep(GwsvcrError, ValueError):
    """Data nested too deeply to be written as YAML that reads back."""


def _mapping(data: dict[str, Any], indent: int, out: list[str]) -> None:
    if indent > MAX_INDENT:
        raise TooDeep(f"nested more than {MAX_INDENT // 2} levels deep: YAML loaders would refuse it")
    pad = " " * indent
    for key, value in data.items():
        head = f"{pad}{scalar(key)}:"
        if isinstance(value, dict) and value:
            out.append(head)
            _mapping(value, indent + 2, out)
        elif isinstance(value, list) and value and not isinstance(value, Flow):
            out.append(head)
            _sequence(value, indent, out)  # sequences under a key are not indented (PyYAML's style)
        else:
            _value(value, indent, out, head + " ")


def _sequence(items: list[Any], indent: int, out: list[str]) -> None:
    if indent > MAX_INDENT:
        raise TooDeep(f"nested more than {MAX_INDENT // 2} levels deep: YAML loaders would refuse it")
    pad = " " * indent
    for item in items:
        if isinstance(item, dict) and item:
            first = len(out)
            _mapping(item, indent + 2, out)
            out[first] = pad + "- " + out[first][indent + 2:]
        elif isinstance(item, list) and item and not isinstance(item, Flow):
            first = len(out)
            _sequence(item, indent + 2, out)
            out[first] = pad + "- " + out[first][indent + 2:]
        else:
            _value(item, indent, out, pad + "- ")


def document(data: dict[str, Any]) -> str:
    """One YAML document, starting with ``---`` and ending with a newline."""
    out = ["---"]
    _mapping(data, 0, out)
    return "\n".join(out) + "\n"
