"""Values the client made that the server sends back: found at record time with no configuration, marked in the
cassette, and at replay left out of matching and answered with the live client's value.

An SDK tags an operation with a uuid it made (``POST .../get-users?_aioId=<uuid>``) and accepts the result only
when it carries that uuid back; a statistics subscription is named by the client and echoed in every update. A
replay that answered with the recorded uuid would never reach the live client's callback.

Where a value stands in a request (a *location*): ``query.NAME``, ``header.NAME`` (lower case), ``json.PATH`` (a
JSON body, dotted, list indices as numbers) or ``message.PATH`` (a message the client published on CometD, from its
``data``). Bayeux's own ids (``id``, ``clientId``, ``ext``, the meta channels) are not client values: replay issues
and echoes those already. Neither are credentials, cookies and the standard headers.

The rule (record time): a value is client-made when it is *distinctive* (a string of at least
:data:`MIN_LENGTH` characters with a digit in it, or a number of at least :data:`MIN_LENGTH` digits: uuids,
timestamps, big counters), nothing the server sent before in the recording contains it, and it appears in the reply
to its request or in a later event of the same session. Short values ("1", "true", "agent1") are never found
alone: they would match by chance; ``--correlate NAME`` names such a location (a query parameter, header or JSON
field name, or the end of a dotted path), and then any value there counts, found in its own reply and in the events
its request caused. ``--no-correlate NAME`` turns a location off.

In the cassette: an exchange whose reply carries its own request's value says ``correlate: [{at: LOCATION,
paths: [...]}]`` (paths in the reply body); an event carrying an earlier request's value says ``correlate:
[{exchange: N, at: LOCATION, paths: [...]}]`` (paths in the message).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gwsvcr.bayeux import Message, is_meta
from gwsvcr.cassette import Cassette, Mark, Request
from gwsvcr.matching import VOLATILE
from gwsvcr.wire import API_KEY_HEADERS, bayeux_of

__all__ = ["MIN_LENGTH", "Correlator", "Plan", "distinctive", "find", "named", "request_values", "substitute",
           "value_at"]

MIN_LENGTH = 8
_KINDS = ("query", "header", "json", "message")
_TOKEN = re.compile(rf"[\w\-:.+]{{{MIN_LENGTH},}}")
# Headers a client sends on every request, or that carry secrets and session state: never client-made values.
_NOT_VALUES = frozenset({"host", "user-agent", "accept", "accept-encoding", "accept-language", "accept-charset",
                         "content-type", "content-length", "content-encoding", "transfer-encoding", "connection",
                         "keep-alive", "cookie", "authorization", "proxy-authorization", "proxy-connection", "origin",
                         "referer", "te", "upgrade", "cache-control", "pragma", "if-none-match", "if-modified-since",
                         "x-csrf-token", "x-xsrf-token", "x-requested-with", "dnt", "expect", "range",
                         *API_KEY_HEADERS})


def distinctive(value: Any) -> bool:
    """A value long and particular enough that finding it elsewhere is no chance: a uuid, a timestamp, an id."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return len(str(abs(int(value)))) >= MIN_LENGTH
    return isinstance(value, str) and len(value) >= MIN_LENGTH and any(c.isdigit() for c in value)


def _leaves(data: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _leaves(value, f"{prefix}.{i}" if prefix else str(i))
    elif isinstance(data, str | int | float) and not isinstance(data, bool):
        yield prefix, data


def request_values(request: Request, sent: list[dict[str, Any]] | None = None) -> Iterator[tuple[str, Any]]:
    """(location, value) of every value a client put in a request, outside Bayeux's own ids and credentials.
    ``sent``: the request's Bayeux messages when the caller has read them already (``[]``: none)."""
    for name, value in request.query:
        yield f"query.{name}", value
    for name, value in request.headers:
        if name.lower() not in _NOT_VALUES:
            yield f"header.{name.lower()}", value
    if sent is None:
        bayeux = bayeux_of(request)
        sent = bayeux.messages if bayeux else []
    if sent:
        for message in sent:
            if not is_meta(str(message.get("channel", ""))):
                yield from ((f"message.{path}", v) for path, v in _leaves(message.get("data"), "data"))
    elif request.kind == "json":
        yield from ((f"json.{path}", v) for path, v in _leaves(request.body, ""))


def value_at(request: Request, location: str) -> Any:
    """The value at ``location`` in a request, or None."""
    kind, _, rest = location.partition(".")
    if kind == "query":
        return next((v for k, v in request.query if k == rest), None)
    if kind == "header":
        return next((v for k, v in request.headers if k.lower() == rest), None)
    if kind == "json":
        return _get(request.body if request.kind == "json" else None, rest)
    if kind == "message":
        bayeux = bayeux_of(request)
        for message in bayeux.messages if bayeux else []:
            found = _get(message, rest)
            if found is not None:
                return found
    return None


def _get(data: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return None if isinstance(data, dict | list) else data


def named(location: str, name: str) -> bool:
    """Whether ``--correlate NAME`` names ``location``: the whole location, or its last dotted parts (list indices
    transparent), e.g. ``_aioId`` names ``query._aioId``, ``statistics.objectId`` names
    ``json.data.statistics.0.objectId``."""
    if location == name:
        return True
    if name.split(".", 1)[0] in _KINDS and "." in name:
        return False  # a whole location, and another one
    parts = [p for p in location.split(".")[1:] if not p.isdigit()]
    wanted = name.split(".")
    return parts[-len(wanted):] == wanted


def find(value: Any, data: Any, prefix: str = "") -> list[str]:
    """Where ``value`` stands in ``data``: leaves equal to it, and (a distinctive string) strings containing it."""
    text = str(value)
    inside = isinstance(value, str) and distinctive(value)
    return [path for path, leaf in _leaves(data, prefix)
            if str(leaf) == text or (inside and isinstance(leaf, str) and text in leaf)]


def _tokens(data: Any) -> set[str]:
    out = set()
    for _, leaf in _leaves(data, ""):
        text = str(leaf)
        out.add(text)
        if len(text) > MIN_LENGTH:
            out.update(_TOKEN.findall(text))
    return out


# ------------------------------------------------------------------------------------------------- record time


@dataclass
class _Open:
    number: int
    at: str
    value: Any
    forced: bool  # named by --correlate: found only in its own reply and the events it caused
    seq: int = 0  # the order values were seen in: marks come in that order


@dataclass
class Correlator:
    """Finds client-made values as a recording goes, exchange by exchange (see the module's rule)."""

    forced: tuple[str, ...] = ()  # --correlate NAME
    off: tuple[str, ...] = ()  # --no-correlate NAME
    _server: set[str] = field(default_factory=set)  # everything the server sent, as text and tokens
    _open: dict[str, dict[str, list[_Open]]] = field(default_factory=dict)  # session -> value text -> candidates
    _limit: int = 1000  # open values kept per session, the oldest dropped first
    _seen: int = 0

    def request(self, session: str, number: int, request: Request, sent: list[dict[str, Any]] | None = None) -> None:
        """The values of a completed exchange's request that may come back (``sent``: as :func:`request_values`)."""
        table = self._open.setdefault(session, {})
        for at, value in request_values(request, sent):
            if any(named(at, n) for n in self.off):
                continue
            forced = any(named(at, n) for n in self.forced)
            text = str(value)
            if forced or (distinctive(value) and text not in self._server):
                self._seen += 1
                table.setdefault(text, []).append(_Open(number, at, value, forced, self._seen))
        while len(table) > self._limit:
            del table[next(iter(table))]

    def reply(self, session: str, number: int, body: Any) -> list[Mark]:
        """Marks for the values of request ``number`` that its own reply body carries."""
        return [Mark(number, c.at, tuple(paths)) for c in self._candidates(session, body, number)
                if c.number == number and (paths := find(c.value, body))]

    def event(self, session: str, message: Message, cause: int | None = None) -> list[Mark]:
        """Marks for the values of earlier requests an event carries (a forced short value only when ``cause`` is
        its request)."""
        data = {k: v for k, v in message.items() if k not in VOLATILE and k != "channel"}
        return [Mark(c.number, c.at, tuple(paths)) for c in self._candidates(session, data, None)
                if (not c.forced or distinctive(c.value) or c.number == cause) and (paths := find(c.value, data))]

    def _candidates(self, session: str, data: Any, number: int | None) -> list[_Open]:
        table = self._open.get(session)
        if not table:
            return []
        found = [c for token in _tokens(data) for c in table.get(token, ()) if number is None or c.number == number]
        return sorted({(c.number, c.at): c for c in found}.values(), key=lambda c: c.seq)

    def server_sent(self, headers: Iterable[tuple[str, str]], body: Any) -> None:
        """What the server sent (headers, a body, events): values in it are not the client's."""
        self._server.update(t for t in _tokens([v for _, v in headers]) if len(t) >= MIN_LENGTH)
        self._server.update(t for t in _tokens(body) if len(t) >= MIN_LENGTH)


# -------------------------------------------------------------------------------------------------- replay time


@dataclass
class Plan:
    """What a replay does with a cassette's client-made values: the locations left out of matching, and the marks
    that put live values in replies (``reply``, by exchange) and events (``events``, by exchange and item)."""

    reply: dict[int, tuple[Mark, ...]] = field(default_factory=dict)
    events: dict[tuple[int, int], tuple[Mark, ...]] = field(default_factory=dict)
    locations: set[str] = field(default_factory=set)
    requests: dict[int, Request] = field(default_factory=dict)  # the requests that made a value, by exchange

    def recorded(self, exchange: int | None, location: str) -> Any:
        """The value recorded at ``location`` in the request of ``exchange``."""
        request = self.requests.get(exchange) if exchange is not None else None
        return None if request is None else value_at(request, location)

    def apply(self, data: Any, marks: Iterable[Mark], live: Callable[[Mark], Any]) -> Any:
        """``data`` with the live value (``live(mark)``, None when not known) wherever a mark's recorded one
        stood."""
        pairs = []
        for mark in marks:
            value = live(mark)
            if value is not None:
                pairs.append((self.recorded(mark.exchange, mark.at), value, mark.paths))
        return substitute(data, pairs) if pairs else data

    @classmethod
    def of(cls, cassette: Cassette, add: Iterable[str] = (), off: Iterable[str] = ()) -> Plan:
        """The cassette's marks, without the locations ``off`` names (the header's and replay's
        ``--no-correlate``), with those ``add`` names found anew (``--correlate`` at replay)."""
        section = cassette.header.match
        off = (*section.get("no_correlate", ()), *off)
        add = tuple(n for n in add if n not in section.get("correlate", ()))
        found = _detect(cassette, add) if add else {}
        plan = cls()

        def kept(marks: Iterable[Mark]) -> tuple[Mark, ...]:
            out = tuple(m for m in marks if not any(named(m.at, n) for n in off))
            plan.locations.update(m.at for m in out)
            return out

        for ex in cassette.exchanges:
            if marks := kept((*ex.correlate, *found.get((ex.number, -1), ()))):
                plan.reply[ex.number] = marks
            for i, item in enumerate(ex.reply_items()):
                if marks := kept((*item.correlate, *found.get((ex.number, i), ()))):
                    plan.events[(ex.number, i)] = marks
        sources = {m.exchange for marks in (*plan.reply.values(), *plan.events.values()) for m in marks}
        plan.requests = {ex.number: ex.request for ex in cassette.exchanges if ex.number in sources}
        return plan

    def ignore_query(self) -> tuple[str, ...]:
        return tuple(sorted({loc.split(".", 1)[1] for loc in self.locations if loc.startswith("query.")}))

    def json_ignore(self) -> tuple[str, ...]:
        return self._paths("json.")

    def message_ignore(self) -> tuple[str, ...]:
        return self._paths("message.")

    def _paths(self, kind: str) -> tuple[str, ...]:
        return tuple(sorted({".".join("*" if p.isdigit() else p for p in loc.split(".")[1:])
                             for loc in self.locations if loc.startswith(kind)}))


def _detect(cassette: Cassette, names: tuple[str, ...]) -> dict[tuple[int, int], list[Mark]]:
    """Marks for the locations ``names`` names, found in a loaded cassette as the recorder finds them."""
    found: dict[tuple[int, int], list[Mark]] = {}
    correlator = Correlator(forced=names)
    correlator._server = {"\0"}  # forced names skip the novelty test: nothing needs remembering
    for ex in sorted(cassette.exchanges, key=lambda e: (e.episode, e.start, e.number)):
        for i, item in enumerate(ex.reply_items()):
            if item.is_event:
                marks = [m for m in correlator.event(ex.session, item.message, item.cause) if _named(m, names)]
                if marks:
                    found[(ex.number, i)] = marks
        correlator.request(ex.session, ex.number, ex.request)
        body = ex.response.body if ex.response is not None and ex.response.kind == "json" else None
        marks = [m for m in correlator.reply(ex.session, ex.number, body) if _named(m, names)]
        if marks:
            found[(ex.number, -1)] = marks
    return found


def _named(mark: Mark, names: tuple[str, ...]) -> bool:
    return any(named(mark.at, n) for n in names)


def substitute(data: Any, marks: Iterable[tuple[Any, Any, tuple[str, ...]]]) -> Any:
    """``data`` (a copy) with each (recorded, live, paths) put in: a leaf equal to the recorded value becomes the
    live one; a string holding it has it replaced."""
    for recorded, live, paths in marks:
        if recorded is None:
            continue
        for path in paths:
            data = _put(data, path.split("."), str(recorded), live)
    return data


def _put(data: Any, parts: list[str], recorded: str, live: Any) -> Any:
    if not parts:
        if str(data) == recorded and not isinstance(data, bool):
            return live
        if isinstance(data, str) and recorded in data:
            return data.replace(recorded, str(live))
        return data
    head, rest = parts[0], parts[1:]
    if isinstance(data, dict) and head in data:
        return {**data, head: _put(data[head], rest, recorded, live)}
    if isinstance(data, list) and head.isdigit() and int(head) < len(data):
        out = list(data)
        out[int(head)] = _put(data[int(head)], rest, recorded, live)
        return out
    return data
