"""What one client session is: the one module that decides which requests come from the same client, for the
recorder (which exchanges share a timeline), the replayer (which live client a request belongs to, which cookies it
is issued) and the tools that list the sessions of a cassette (show, report).

By default a session is linked by any value its client and the server share:

* a cookie the server set, whatever its name (``JSESSIONID``, ``WORKSPACE_SESSIONID``, ``BAYEUX_BROWSER``, ...):
  in a ``Set-Cookie`` of a reply, then in the ``Cookie`` header the client sends back;
* the ``Authorization`` credential: the Basic user name, or the Bearer (or other scheme's) token, compared as sent,
  which in a cassette is its redaction placeholder, stable within the cassette;
* the CometD ``clientId``, sent by the client or issued in a handshake reply.

API-key headers (``x-api-key``, ``apikey``, ...) name an application, not a client: every agent of one application
sends the same key. They place a request that carries nothing else, and never join two sessions.

When the default guesses wrong, :class:`SessionRules` names the session cookies or headers instead (``gwsvcr record
--session-cookie NAME --session-header NAME``); the cassette header records the rules a recording used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import wire
from gwsvcr.bayeux import HANDSHAKE
from gwsvcr.cassette import PLACEHOLDER, Cassette, Request, Response
from gwsvcr.wire import API_KEY_HEADERS

__all__ = ["API_KEY", "API_KEY_HEADERS", "BASIC", "BEARER", "CLIENT_ID", "COOKIE", "DEFAULT_RULES", "HEADER",
           "HEADER_KEY", "WELL_KNOWN_COOKIES", "Identifier", "SessionRules", "SessionSummary", "SessionTracker",
           "TrackedSession", "credential", "credentials", "identifiers", "sent_cookies", "server_cookies",
           "split_warnings", "summarize"]

# Session cookies a client may send before the recording saw the server set them (a recording started mid-session).
WELL_KNOWN_COOKIES = ("JSESSIONID", "WORKSPACE_SESSIONID", "BAYEUX_BROWSER")
HEADER_KEY = "session_identifiers"  # the cassette header's entry for the rules (see SessionRules.to_header)

COOKIE, BASIC, BEARER, HEADER, API_KEY, CLIENT_ID = "cookie", "basic", "bearer", "header", "api-key", "clientId"


@dataclass(frozen=True, slots=True)
class Identifier:
    """One value that ties requests to a client: ``kind``, the cookie or header ``name`` (else ""), its value."""

    kind: str
    name: str
    value: str

    @property
    def links(self) -> bool:
        """Whether it joins requests into one session (an API key only places requests that have nothing else)."""
        return self.kind != API_KEY

    def label(self) -> str:
        """What it is, without its value: ``cookie WORKSPACE_SESSIONID``, ``bearer``, ``clientId``."""
        return f"{self.kind} {self.name}" if self.name else self.kind

    def display(self) -> str:
        """For people: the value only if it is not a secret, or already a redaction placeholder."""
        shown = self.value if self.kind in (BASIC, CLIENT_ID) or PLACEHOLDER.fullmatch(self.value) else \
            f"<{len(self.value)} characters, not redacted>"
        return f"{self.label()}={shown}"


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Which values identify a session. Empty ``cookies``: any cookie the server sets (and the well-known session
    cookies); empty ``headers``: Authorization and the API-key headers. Naming either replaces that guess."""

    cookies: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()

    def session_cookie(self, name: str, server_set: Iterable[str] = ()) -> bool:
        if self.cookies:
            return name.lower() in {c.lower() for c in self.cookies}
        return name in WELL_KNOWN_COOKIES or name in server_set

    def to_header(self) -> dict[str, Any]:
        """The cassette header entry: what linked the exchanges of each session (lists when named)."""
        return {"cookies": list(self.cookies) or "any cookie the server set",
                "headers": list(self.headers) or f"Authorization; API keys ({', '.join(API_KEY_HEADERS)}) only "
                                                 "for requests that carry nothing else",
                "bayeux": "clientId"}

    @classmethod
    def from_header(cls, extra: dict[str, Any]) -> SessionRules:
        """The rules a cassette was recorded with (the defaults for a cassette that does not say)."""
        entry = extra.get(HEADER_KEY)
        if not isinstance(entry, dict):
            return cls()
        named = [tuple(str(n) for n in v) if isinstance(v, list) else () for v in (entry.get("cookies"),
                                                                                   entry.get("headers"))]
        return cls(*named)

    def with_overrides(self, cookies: Iterable[str] = (), headers: Iterable[str] = ()) -> SessionRules:
        return SessionRules(tuple(cookies) or self.cookies, tuple(headers) or self.headers)


DEFAULT_RULES = SessionRules()


# ------------------------------------------------------------------------------------------- one request


def server_cookies(response: Response | None) -> dict[str, str]:
    """The cookies a reply sets: name -> value."""
    return {} if response is None else wire.set_cookie_values(response.headers)


def credentials(request: Request, rules: SessionRules = DEFAULT_RULES) -> list[Identifier]:
    """The credentials a request sends: Basic user or Authorization token, named session headers, API keys."""
    out = []
    wanted = {h.lower() for h in rules.headers}
    for name, value in request.headers:
        lname = name.lower()
        if not value or (wanted and lname not in wanted):
            continue
        if lname == "authorization":
            creds = wire.basic_auth(value)
            if creds is not None:
                out.append(Identifier(BASIC, "", creds[0]))
            else:
                scheme, sep, token = value.strip().partition(" ")
                out.append(Identifier(BEARER if scheme.lower() == "bearer" else HEADER,
                                      "" if scheme.lower() == "bearer" else name, token.strip() if sep else value))
        elif wanted:
            out.append(Identifier(HEADER, lname, value))
        elif lname in API_KEY_HEADERS:
            out.append(Identifier(API_KEY, lname, value))
    return out


def credential(request: Request, rules: SessionRules = DEFAULT_RULES) -> Identifier | None:
    """What places a request that sends no session cookie: its strongest credential, or None."""
    found = credentials(request, rules)
    return next((c for c in found if c.links), found[0] if found else None)


def sent_cookies(request: Request, rules: SessionRules = DEFAULT_RULES,
                 server_set: Iterable[str] = ()) -> list[Identifier]:
    """The session cookies a request sends back."""
    names = set(server_set)
    return [Identifier(COOKIE, k, v) for k, v in wire.cookies(request).items()
            if v and rules.session_cookie(k, names)]


def identifiers(request: Request, response: Response | None, replies: list[dict[str, Any]],
                rules: SessionRules = DEFAULT_RULES, server_set: Iterable[str] = (),
                sent: list[dict[str, Any]] | None = None) -> list[Identifier]:
    """Everything in one exchange that identifies its client, strongest first: session cookies sent and set,
    CometD clientIds sent and issued, then credentials. ``server_set``: cookie names the server set before;
    ``sent``: the Bayeux messages of the request when the caller has read them already."""
    names = set(server_set) | set(server_cookies(response))
    out = sent_cookies(request, rules, names)
    out += [Identifier(COOKIE, k, v) for k, v in server_cookies(response).items()
            if v and rules.session_cookie(k, names)]
    if sent is None:
        bayeux = wire.bayeux_of(request)
        sent = bayeux.messages if bayeux else []
    issued = [m for m in replies if m.get("channel") == HANDSHAKE]
    out += [Identifier(CLIENT_ID, "", m["clientId"]) for m in [*sent, *issued] if isinstance(m.get("clientId"), str)]
    out += credentials(request, rules)
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------------ tracking


@dataclass
class TrackedSession:
    label: str
    identifiers: list[Identifier] = field(default_factory=list)  # in the order first seen

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(i.label() for i in self.identifiers))


class SessionTracker:
    """Gives each exchange its session: the first session any of its linking identifiers belongs to; else, for an
    exchange with only an API key, the newest session with that key; else a new one. Identifiers are compared as
    they are given: the recorder gives them before redaction, a cassette holds their placeholders."""

    def __init__(self, rules: SessionRules = DEFAULT_RULES) -> None:
        self.rules = rules
        self.sessions: list[TrackedSession] = []
        self._by_id: dict[Identifier, TrackedSession] = {}
        self._server_set: set[str] = set()

    def assign(self, request: Request, response: Response | None, replies: list[dict[str, Any]],
               sent: list[dict[str, Any]] | None = None) -> TrackedSession:
        found = identifiers(request, response, replies, self.rules, self._server_set, sent)
        self._server_set.update(server_cookies(response))
        linking = [i for i in found if i.links]
        session = next((self._by_id[i] for i in linking if i in self._by_id), None)
        if session is None and not linking:
            session = next((self._by_id[i] for i in found if i in self._by_id), None)
        if session is None:
            session = TrackedSession(f"s{len(self.sessions) + 1}")
            self.sessions.append(session)
        for ident in found:
            if ident.links:
                self._by_id.setdefault(ident, session)
            else:
                self._by_id[ident] = session  # an API key places later requests in its newest session
            if ident not in session.identifiers:
                session.identifiers.append(ident)
        return session

    def kinds(self) -> list[str]:
        """Every kind of identifier that linked something, e.g. ``cookie WORKSPACE_SESSIONID``, ``clientId``."""
        return list(dict.fromkeys(k for s in self.sessions for k in s.kinds()))


# ------------------------------------------------------------------------------------------ in a cassette


@dataclass
class SessionSummary:
    label: str
    exchanges: int
    identifiers: list[Identifier]

    def text(self) -> str:
        ids = ", ".join(i.display() for i in self.identifiers) or "nothing that identifies a client"
        return f"{self.label}: {self.exchanges} exchanges; {ids}"

    def as_json(self) -> dict[str, Any]:
        return {"session": self.label, "exchanges": self.exchanges,
                "identifiers": [i.display() for i in self.identifiers]}


def summarize(cassette: Cassette) -> list[SessionSummary]:
    """The sessions of a cassette as recorded, each with the identifiers its exchanges carried."""
    rules = SessionRules.from_header(cassette.header.extra)
    server_set = {name for ex in cassette.exchanges for name in server_cookies(ex.response)}
    out: dict[str, SessionSummary] = {}
    for ex in cassette.exchanges:
        summary = out.setdefault(ex.session, SessionSummary(ex.session, 0, []))
        summary.exchanges += 1
        replies = [item.message for item in ex.reply_items()]
        for ident in identifiers(ex.request, ex.response, replies, rules, server_set):
            if ident not in summary.identifiers:
                summary.identifiers.append(ident)
    return list(out.values())


def split_warnings(summaries: list[SessionSummary]) -> list[str]:
    """Sessions that share a value that should have linked them (a cookie, a clientId, a client's credential; not
    an API key): one client the recording split."""
    owners: dict[Identifier, list[str]] = {}
    for s in summaries:
        for ident in s.identifiers:
            if ident.links:
                owners.setdefault(ident, []).append(s.label)
    return [f"sessions {', '.join(labels)} share {ident.display()}: one client split in {len(labels)}?"
            for ident, labels in owners.items() if len(labels) > 1]
