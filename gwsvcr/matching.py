"""Request matching: a hashed key per request (O(1) lookup), the tables of recorded answers a client walks
through in recorded order, and, only on a miss, why nothing matched.

REST: method, path, query and body; JSON compared as data (key order and whitespace ignored), headers ignored,
``ignore`` paths (``--json-ignore``) dropped before comparing. What a :class:`RestMatch` adds, as VCR.py's
``filter_query_parameters`` and ``match_on`` do: query parameters left out (``--ignore-query _``, a cache buster)
and headers compared (``--match-header``). Bayeux: per message, never per HTTP body; a
handshake by its order, a subscribe by its subscription, a publish by channel and data; never on the fields in
:data:`VOLATILE` (nor a request's ``advice``). A Bayeux request the server answered with something else than
Bayeux (an HTML 500) is matched by :func:`failure_key`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from gwsvcr.bayeux import CONNECT
from gwsvcr.cassette import Request

__all__ = ["VOLATILE", "VOLATILE_REQUEST", "Closest", "Cursors", "Key", "RestMatch", "Table", "bayeux_key", "canonical",
           "closest", "differences", "failure_key", "rest_key"]

# method, path, query pairs, canonical body, compared headers (lower-case name, values joined; None: absent)
Key = tuple[str, str, tuple[tuple[str, str], ...], str, tuple[tuple[str, str | None], ...]]
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
    # (name, key) of each key: what every client's Cursors count under, made once, not per client and request
    slots: dict[K, tuple[str, K]] = field(default_factory=dict)

    def add(self, key: K, answer: V) -> None:
        self.answers.setdefault(key, []).append(answer)
        self.slots.setdefault(key, (self.name, key))

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
    again once all were used, unless ``allow_repeats`` is off (VCR.py's ``allow_playback_repeats=False``): then
    a key asked more often than recorded gets nothing."""

    __slots__ = ("_next", "allow_repeats")  # one per live client, as long as it lives

    def __init__(self, allow_repeats: bool = True) -> None:
        self._next: dict[tuple[str, Any], int] = {}
        self.allow_repeats = allow_repeats

    def take[K, V](self, table: Table[K, V], key: K) -> V | None:
        answers = table.answers.get(key)
        if not answers:
            return None
        slot = table.slots[key]  # the recorded key, shared by every client: this one keeps only its count
        i = self._next.get(slot, 0)
        if i >= len(answers) and not self.allow_repeats:
            return None
        self._next[slot] = i + 1
        return answers[min(i, len(answers) - 1)]

    def fresh[K, V](self, table: Table[K, V], key: K) -> bool:
        """Whether ``key`` still has an answer not used yet."""
        return self._next.get((table.name, key), 0) < len(table.answers.get(key, ()))

    def asked(self, table: str, key: Any) -> int:
        """How often ``key`` was taken from the table named ``table``: the index of its next answer."""
        return self._next.get((table, key), 0)

    def taken(self) -> Iterator[tuple[str, Any, int]]:
        """Every answer taken so far, as (table name, key, index): the same whichever session answered it."""
        for (table, key), n in self._next.items():
            for i in range(n):
                yield table, key, i

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
    """A body as a comparable string: JSON data sorted and compact (a value JSON has no type for, such as a date a
    hand-written cassette left unquoted, as its text), text as is."""
    if kind in ("json", "messages"):
        for path in ignore:
            body = _drop(body, path.split("."))
        return "j:" + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    if kind is None:
        return ""
    return f"{kind[0]}:{body}"


def rest_key(request: Request, ignore: tuple[str, ...] = (), ignore_query: tuple[str, ...] = (),
             match_headers: tuple[str, ...] = ()) -> Key:
    query = request.query if not ignore_query else [p for p in request.query if p[0] not in ignore_query]
    return (request.method.upper(), request.path, tuple(sorted(query)), canonical(request.kind, request.body, ignore),
            tuple(_header_value(request, name) for name in match_headers))


def _header_value(request: Request, name: str) -> tuple[str, str | None]:
    lname = name.lower()
    values = [v for k, v in request.headers if k.lower() == lname]
    return lname, ", ".join(values) if values else None


@dataclass(frozen=True, slots=True)
class RestMatch:
    """How REST requests are compared beyond method, path, query and body: JSON body paths dropped
    (``--json-ignore``), query parameters dropped (``--ignore-query``), headers compared (``--match-header``).
    A cassette's header may carry the same in its ``match:`` section; replay uses both."""

    json_ignore: tuple[str, ...] = ()
    ignore_query: tuple[str, ...] = ()
    match_headers: tuple[str, ...] = ()

    @classmethod
    def from_section(cls, section: dict[str, list[str]]) -> RestMatch:
        """From a cassette header's ``match:`` section (validated by the loader)."""
        return cls(tuple(section.get("json_ignore", ())), tuple(section.get("ignore_query", ())),
                   tuple(section.get("match_headers", ())))

    def section(self) -> dict[str, list[str]]:
        """The ``match:`` section of a cassette header; empty when nothing is set."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)}

    def merged(self, other: RestMatch) -> RestMatch:
        def union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys((*a, *b)))

        headers = {h.lower(): h for h in (*other.match_headers, *self.match_headers)}  # one per name, any case
        return RestMatch(union(self.json_ignore, other.json_ignore), union(self.ignore_query, other.ignore_query),
                         tuple(sorted(headers.values(), key=str.lower)))

    def key(self, request: Request) -> Key:
        return rest_key(request, self.json_ignore, self.ignore_query,
                        tuple(sorted({h.lower() for h in self.match_headers})))

    def describe(self) -> str:
        """What differs from plain matching, for a miss explanation; empty when nothing does."""
        parts = []
        if self.ignore_query:
            parts.append(f"query parameters ignored: {', '.join(self.ignore_query)}")
        if self.match_headers:
            parts.append(f"headers compared: {', '.join(self.match_headers)}")
        if self.json_ignore:
            parts.append(f"JSON paths ignored: {', '.join(self.json_ignore)}")
        return "; ".join(parts)


def bayeux_key(message: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """What identifies a publish: its channel and data (everything volatile dropped, and the dotted ``ignore``
    paths: values the client makes)."""
    stable: Any = {k: v for k, v in message.items() if k not in VOLATILE_REQUEST}
    for path in ignore:
        stable = _drop(stable, path.split("."))
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
        names = sorted({k for k, _ in set(live[2]) ^ set(recorded[2])})
        hint = f" (--ignore-query {' --ignore-query '.join(names)} would leave it out)" if names else ""
        out.append(f"query: {dict(live[2])} here, {dict(recorded[2])} recorded{hint}")
    if live[3] != recorded[3]:
        if live[3].startswith("j:") and recorded[3].startswith("j:"):
            a, b = _flatten(json.loads(live[3][2:])), _flatten(json.loads(recorded[3][2:]))
            for field in sorted(set(a) | set(b)):
                if a.get(field, "<absent>") != b.get(field, "<absent>"):
                    out.append(f"body.{field}: {a.get(field, '<absent>')!r} here, "
                               f"{b.get(field, '<absent>')!r} recorded")
        else:
            out.append("body differs")
    for (name, here), (_, there) in zip(live[4], recorded[4], strict=False):
        if here != there:
            out.append(f"header {name}: {_shown(here)} here, {_shown(there)} recorded (compared: --match-header)")
    return out


def _shown(value: str | None) -> str:
    return "<absent>" if value is None else repr(value)


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
