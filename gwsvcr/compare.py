"""What two exchanges are compared on, for ``gwsvcr diff`` (two cassettes) and ``gwsvcr verify`` (a recording
and a live server): REST replies, Bayeux replies and pushed events flattened to ``{"a.b[0].c": leaf}``, with what
differs between two runs of the same thing masked unless ``exact``: Bayeux ``id``/``clientId``/``ext``, fields
named like an id, uuid, time, date or duration, and inside any string redaction placeholders, uuids, timestamps
and long generated ids (call ids, clientIds); then the fields that differ in words, and delays beyond a
threshold."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gwsvcr.cassette import Response
from gwsvcr.matching import VOLATILE

__all__ = ["MASKED", "Volatility", "changed_fields", "delays_differ", "event_fields", "reply_fields",
           "response_fields"]

VOLATILE_KEY = re.compile(r"^(id|uuid|time|date|timestamp|duration)$"
                          r"|(Id|ID|Uuid|UUID|Uid|Time|Timestamp|Date|At|Duration)$")
REDACTED = "<redacted>"  # a redaction placeholder, as masked
_VOLATILE_TEXT = [
    (re.compile(r"REDACTED-[0-9a-f]{12}"), REDACTED),
    (re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\d{4}-\d\d-\d\d[T _]\d\d[:-]\d\d[:-]\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    # generated ids: call ids, connIds, clientIds, session ids: long runs mixing letters and digits
    (re.compile(r"\b(?=[0-9A-Za-z]*[0-9])(?=[0-9A-Za-z]*[A-Za-z])[0-9A-Za-z]{16,}\b"), "<id>"),
]
MASKED = "<volatile>"
_ABSENT = object()


@dataclass(frozen=True)
class Volatility:
    """What the comparison leaves out. ``ignore``: more key names or dotted path ends (``call.duration``)."""

    exact: bool = False
    ignore: tuple[str, ...] = ()

    def text(self, value: str) -> str:
        if self.exact:
            return value
        for pattern, marker in _VOLATILE_TEXT:
            value = pattern.sub(marker, value)
        return value

    def flatten(self, data: Any, prefix: str, out: dict[str, Any] | None = None,
                drop: frozenset[str] = frozenset()) -> dict[str, Any]:
        """``{"a.b[0].c": leaf}``; ``drop`` names top-level keys left out (volatile Bayeux fields)."""
        out = {} if out is None else out
        if isinstance(data, dict) and data:
            for key, value in data.items():
                path = f"{prefix}.{key}"
                if (key in drop and not self.exact) or self._ignored(path):
                    continue
                if not self.exact and VOLATILE_KEY.search(str(key)) and not isinstance(value, (dict, list)):
                    out[path] = MASKED
                else:
                    self.flatten(value, path, out)
        elif isinstance(data, list) and data:
            for i, value in enumerate(data):
                self.flatten(value, f"{prefix}[{i}]", out)
        else:
            out[prefix] = self.text(data) if isinstance(data, str) else data
        return out

    def _ignored(self, path: str) -> bool:
        return any(path == rule or path.endswith("." + rule) for rule in self.ignore)


def response_fields(response: Response, volatility: Volatility, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a comparison looks at in a REST reply: its status and body."""
    out = {} if out is None else out
    out["response.status"] = response.status
    return volatility.flatten(response.body, "response.body", out)


def reply_fields(reply: dict[str, Any], volatility: Volatility, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a comparison looks at in the Bayeux reply to a client's message."""
    return volatility.flatten(reply, "reply", out, drop=VOLATILE)


def event_fields(message: dict[str, Any], volatility: Volatility) -> dict[str, Any]:
    return volatility.flatten(message, "event", drop=VOLATILE)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def changed_fields(a: dict[str, Any], b: dict[str, Any], a_name: str = "in A", b_name: str = "in B") -> list[str]:
    """``path: value a_name, value b_name`` for every flattened field that differs."""
    out = []
    for path in dict.fromkeys([*a, *b]):
        va, vb = a.get(path, _ABSENT), b.get(path, _ABSENT)
        if va != vb and not _redacted_as(va, vb) and not _redacted_as(vb, va):
            out.append(f"{path}: {_show(va)} {a_name}, {_show(vb)} {b_name}")
    return out


def _redacted_as(redacted: Any, value: Any) -> bool:
    """Whether ``value`` may be what was redacted (a value redacted on one side only equals the other's):
    ``redacted`` holds placeholders (as masked) and the rest of it is ``value``'s text around them."""
    if not isinstance(redacted, str) or REDACTED not in redacted or value is _ABSENT:
        return False
    pattern = ".+".join(re.escape(part) for part in redacted.split(REDACTED))
    return re.fullmatch(pattern, value if isinstance(value, str) else json.dumps(value), re.DOTALL) is not None


def delays_differ(a: float | None, b: float | None, threshold: float) -> bool:
    return a is not None and b is not None and abs(a - b) > threshold
