"""Request matching: a hashed key per request (O(1) lookup), the tables of recorded answers a client walks
through in recorded order, and, only on a miss, why nothing matched.

REST: method, path, query and body; JSON compared as data (key order and whitespace ignored), headers ignored,
``ignore`` paths (``--json-ignore``) dropped before comparing. Bayeux: per message, never per HTTP body; a
handshake by its order, a subscribe by its subscription, a publish by channel and data; never on the fields in
:data:`VOLATILE` (nor a request's ``advice``). A Bayeux request the server answered with something else than
Bayeux (an HTML 500) is matched by :func:`failure_key`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.bayeux import CONNECT
from gwsvcr.cassette import Request

Key = tuple[str, str, tuple[tuple[str, str], ...], str]
# Bayeux fields that vary between clients and runs, in requests and replies alike: never compared.
VOLATILE = frozenset({"id", "clientId", "connectionType", "supportedConnectionTypes", "version", "minimumVersion",
                      "ext"})
# A request's advice is timing input (a connect's timeout: 0), not what it asks; a reply's tells how the server
# behaves, so it is compared.
VOLATILE_REQUEST = VOLATILE | {"advice"}

@dataclass
class Table[K, V]:
    """Recorded answers by key, in recorded order."""

    name: str
    answers: dict[K, list[V]] = field(default_factory=dict)

    def add(self, key: K, answer: V) -> None:
        self.answers.setdefault(key, []).append(answer)

    def __iter__(self) -> Iterator[K]:
        return iter(self.answers)

    def __contains__(self, key: object) -> bool:
        return key in self.answers

    def __bool__(self) -> bool:
        return bool(self.answers)

    def keys(self) -> list[K]:
        return list(self.answers)

    def values(self) -> list[V]:
        return [answer for answers in self.answers.values() for answer in answers]


class Cursors:
    """One live client's place in each table: the next recorded answer for a key, in recorded order; the last one
    again once all were used."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, Any], int] = {}

    def take[K, V](self, table: Table[K, V], key: K) -> V | None:
        answers = table.answers.get(key)
        if not answers:
            return None
        i = self._next.get((table.name, key), 0)
        self._next[(table.name, key)] = i + 1
        return answers[min(i, len(answers) - 1)]

    def fresh[K, V](self, table: Table[K, V], key: K) -> bool:
        """Whether ``key`` still has an answer not used yet."""
        return self._next.get((table.name, key), 0) < len(table.answers.get(key, ()))

    def clear(self) -> None:
        self._next.clear()


def _drop(data: Any, path: list[str]) -> Any:
    if not path:
        return data
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: (_drop(v, rest) if head in ("*", k) else v) for k, v in data.items()
                if not (not rest and head in ("*", k))}
    if isinstance(data, list) and head == "*":
        return [_drop(v, rest) for v in data]
    return data


def canonical(kind: str | None, body: Any, ignore: tuple[str, ...] = ()) -> str:
    """A body as a comparable string: JSON data sorted and compact, text as is."""
    if kind in ("json", "messages"):
        for path in ignore:
            body = _drop(body, path.split("."))
        return "j:" + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if kind is None:
        return ""
    return f"{kind[0]}:{body}"


def rest_key(request: Request, ignore: tuple[str, ...] = ()) -> Key:
    return (request.method.upper(), request.path, tuple(sorted(request.query)),
            canonical(request.kind, request.body, ignore))


def bayeux_key(message: dict[str, Any]) -> str:
    """What identifies a publish: its channel and data (everything volatile dropped)."""
    stable = {k: v for k, v in message.items() if k not in VOLATILE_REQUEST}
    return json.dumps(stable, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def failure_key(messages: list[dict[str, Any]]) -> str:
    """What a Bayeux request asked, for replaying a non-Bayeux answer: its messages but for connects, with
    everything volatile dropped."""
    return "|".join(sorted(bayeux_key(m) for m in messages if m.get("channel") != CONNECT))


# ------------------------------------------------------------------------------------------- explaining a miss


@dataclass
class Closest:
    """A recorded request near the one that missed, and exactly how it differs."""

    exchange: int
    session: str
    summary: str
    differences: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "session": self.session, "request": self.summary,
                "differences": self.differences}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: data}


def differences(live: Key, recorded: Key) -> list[str]:
    out = []
    if live[0] != recorded[0]:
        out.append(f"method: {live[0]} here, {recorded[0]} recorded")
    if live[1] != recorded[1]:
        out.append(f"path: {live[1]} here, {recorded[1]} recorded")
    if live[2] != recorded[2]:
        out.append(f"query: {dict(live[2])} here, {dict(recorded[2])} recorded")
    if live[3] != recorded[3]:
        if live[3].startswith("j:") and recorded[3].startswith("j:"):
            a, b = _flatten(json.loads(live[3][2:])), _flatten(json.loads(recorded[3][2:]))
            for field in sorted(set(a) | set(b)):
                if a.get(field, "<absent>") != b.get(field, "<absent>"):
                    out.append(f"body.{field}: {a.get(field, '<absent>')!r} here, "
                               f"{b.get(field, '<absent>')!r} recorded")
        else:
            out.append("body differs")
    return out


def closest(live: Key, recorded: list[tuple[Key, int, str, str]], limit: int = 3) -> list[Closest]:
    """The ``limit`` recorded requests with the fewest differences (method and path weigh most)."""
    def score(diffs: list[str]) -> int:
        return sum(5 if d.startswith(("method", "path")) else 1 for d in diffs)

    scored = []
    seen: set[Key] = set()
    for key, number, session, summary in recorded[:50_000]:
        if key in seen:
            continue
        seen.add(key)
        diffs = differences(live, key)
        scored.append((score(diffs), number, Closest(number, session, summary, diffs)))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in scored[:limit]]
