"""The values a live session carries forward that a recording cannot hold: the credentials given on the command
line, every cookie the server sets, the CSRF token, and the values bound with ``--bind`` (a call id the server
assigns anew in each run).

A recorded request goes out again with the headers the recorded client sent, each in its place, and no other:
``Authorization`` from the credentials given, ``Cookie`` from the live jar, the CSRF token the server gave, each only
where the recorded request had it (a cookie-less client stays cookie-less, and a client that never sent a token
sends none); framing, and any other header whose value the recording redacted (an API key), left out. When the
recorded request carried only session cookies the live server has not set (the recording began after the login),
the credentials given stand in for them.

Bindings: ``--bind call.id`` names a dotted JSON path (lists are transparent, ``*`` is any key, a rule matches the
end of a path: ``call.id`` also matches ``data.call.id``), as ``gwsvcr redact --json`` does. The first live reply or
notification that has a value there, where its recorded counterpart has one too, binds the recorded value to the
live one; from then on the live value replaces the recorded one in every request (path, query and body) and in
what later replies are compared with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gwsvcr import wire
from gwsvcr.client.login import CSRF_TOKEN, Login
from gwsvcr.client.target import Headers
from gwsvcr.record.redact import PLACEHOLDER, path_matches

# Headers a client never sends as recorded: the connection's own (the live one has its own framing, and this
# client reads no compressed body), and a proxy's credentials.
_FRAMING = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade",
            "accept-encoding", "proxy-authorization", "sec-websocket-key", "sec-websocket-version",
            "sec-websocket-extensions", "sec-websocket-accept", "http2-settings"}


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def header(self) -> tuple[str, str]:
        return "Authorization", wire.basic_header(self.user, self.password)


@dataclass
class Binding:
    rule: str
    recorded: Any = None
    live: Any = None
    where: str = ""  # which reply or notification bound it

    @property
    def bound(self) -> bool:
        return bool(self.where)


def _leaves(data: Any, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(keys without list indices, leaf) of every scalar, in document order."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*keys, str(k)))
    elif isinstance(data, list):
        for v in data:
            yield from _leaves(v, keys)
    elif keys:
        yield keys, data


@dataclass
class LiveValues:
    credentials: Credentials | None = None
    bindings: list[Binding] = field(default_factory=list)
    login: Login = field(default_factory=Login)  # the cookies and the CSRF token the server gave

    @classmethod
    def with_binds(cls, credentials: Credentials | None, binds: Sequence[str]) -> LiveValues:
        return cls(credentials, [Binding(rule) for rule in binds])

    # ----------------------------------------------------------------------------------- what the server said
    def learn_headers(self, headers: list[tuple[str, str]]) -> None:
        """Cookies from Set-Cookie; the CSRF token from X-CSRF-HEADER (its name) and that header."""
        self.login.learn(headers)

    def learn_values(self, recorded: Any, live: Any, where: str) -> list[Binding]:
        """Bind what ``live`` holds at an unbound rule's path, where ``recorded`` has a value at the same path."""
        new = []
        for binding in self.bindings:
            if binding.bound:
                continue
            rule = binding.rule.split(".")
            live_value = next((v for keys, v in _leaves(live) if path_matches(rule, keys)), None)
            recorded_value = next((v for keys, v in _leaves(recorded) if path_matches(rule, keys)), None)
            if live_value is None or recorded_value is None or isinstance(live_value, bool):
                continue
            binding.recorded, binding.live, binding.where = recorded_value, live_value, where
            new.append(binding)
        return new

    # ------------------------------------------------------------------------------------ what goes out
    def bind(self, data: Any) -> Any:
        """``data`` with every bound recorded value replaced by its live value (inside strings too)."""
        active = [b for b in self.bindings if b.bound and b.recorded != b.live]
        if not active:
            return data
        return _replace(data, active)

    def headers(self, recorded: Headers) -> Headers:
        """The headers of a recorded request as this session sends them (see the module's docstring)."""
        csrf = self.login.csrf
        csrf_names = {CSRF_TOKEN.lower(), csrf[0].lower() if csrf else CSRF_TOKEN.lower()}
        authorized = any(k.lower() == "authorization" for k, _ in recorded)
        out: Headers = []
        for k, v in recorded:
            name = k.lower()
            if name == "authorization":
                header = self.credentials.header() if self.credentials else _kept(k, v)
            elif name == "cookie":
                header = self._cookie(v)
                if header is None and not authorized and self.credentials is not None:
                    header = self.credentials.header()  # a login the recording does not show
            elif name in csrf_names:
                header = csrf or _kept(k, v)
            elif name in _FRAMING:
                header = None
            else:
                header = _kept(k, self.bind(v))
            if header is not None:
                out.append(header)
        return out

    def _cookie(self, recorded: str) -> tuple[str, str] | None:
        """Every cookie the live server set, and those the recorded client made itself (their values kept)."""
        jar = dict(self.login.cookies)
        for part in recorded.split(";"):
            name, eq, value = part.strip().partition("=")
            if eq and name not in jar and not PLACEHOLDER.search(value):
                jar[name] = value
        return ("Cookie", "; ".join(f"{k}={v}" for k, v in jar.items())) if jar else None


def _kept(name: str, value: str) -> tuple[str, str] | None:
    """A recorded header as it was, unless the recording redacted its value."""
    return None if PLACEHOLDER.search(value) else (name, value)


def _replace(data: Any, bindings: list[Binding]) -> Any:
    if isinstance(data, dict):
        return {k: _replace(v, bindings) for k, v in data.items()}
    if isinstance(data, list):
        return [_replace(v, bindings) for v in data]
    for b in bindings:
        if data == b.recorded and type(data) is type(b.recorded):
            return b.live
        if isinstance(data, str) and isinstance(b.recorded, str) and b.recorded and b.recorded in data:
            data = data.replace(b.recorded, str(b.live))
    return data
