"""Secrets never reach disk: redaction applied at record time, by default.

Every secret value is replaced by a placeholder ``REDACTED-<12 hex>`` drawn at random the first time that value
is seen and reused for it afterwards, so one secret maps to one placeholder within a cassette and replay can still
correlate (the same session cookie on REST and CometD). The mapping lives in memory only: a placeholder says
nothing about its secret (no hash of it, nothing a dictionary attack could reverse).

Basic credentials keep the user name (replay ties REST calls to sessions by it) and lose the password; the
header stays valid Basic syntax so every tool can still parse it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gwsvcr import wire
from gwsvcr.cassette import PLACEHOLDER, Exchange, HttpMessage, Request
from gwsvcr.wire import API_KEY_HEADERS

__all__ = ["DEFAULT_HEADERS", "PLACEHOLDER", "SECRET_KEY", "URL_HEADERS", "Redactor", "path_matches"]

DEFAULT_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token",
                   "x-auth-token", "x-xsrf-token", "x-amz-security-token", *API_KEY_HEADERS)
# Headers whose value is a URL: its query may carry a secret (a browser's Referer repeats the page's ?password=,
# a Location the access_token of a redirect).
URL_HEADERS = ("referer", "location", "content-location")
# JSON object keys (any depth) whose string values are secrets: password, passwd, secret, token, apiKey, ...
SECRET_KEY = re.compile(r"pass(word|wd)?$|secret|token|api[-_]?key|credential|authorization|^auth$|^pin$",
                        re.IGNORECASE)


def _json_like(text: str) -> bool:
    return text.lstrip()[:1] in ("[", "{")


def path_matches(rule: Sequence[str], path: Sequence[str]) -> bool:
    """Whether a dotted rule (split, ``*`` any key) names ``path`` (object keys, list indices left out): a rule
    matches the end of the path, so "call.userData.X" also matches "data.call.userData.X"."""
    return 0 < len(rule) <= len(path) and all(r in ("*", p) for r, p in zip(rule, path[-len(rule):], strict=True))


@dataclass
class Redactor:
    extra_headers: tuple[str, ...] = ()
    json_paths: tuple[str, ...] = ()  # dotted paths, e.g. "call.userData.GSIP_REC_FN"; "*" matches any key
    patterns: tuple[str, ...] = ()  # regexes redacted inside any string value
    _map: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._headers = set(DEFAULT_HEADERS) | {h.lower() for h in self.extra_headers}
        self._paths = [p.split(".") for p in self.json_paths]
        # An existing placeholder matches first and is kept, so a pattern never eats the digits inside one.
        self._patterns = [re.compile(f"{PLACEHOLDER.pattern}|(?:{p})") for p in self.patterns]

    def rules(self) -> list[str]:
        """What this redactor removes, for the cassette header."""
        out = ["header Authorization/Proxy-Authorization: Basic password (user name kept), Bearer and other "
               "tokens",
               "header Cookie, Set-Cookie: every cookie value",
               f"headers {', '.join(sorted(self._headers - {'authorization', 'proxy-authorization', 'cookie',
                                                             'set-cookie'}))}: values",
               "JSON fields named like password, secret, token, apiKey, credential: values"]
        out += [f"JSON path {p}" for p in self.json_paths]
        out += [f"pattern {p}" for p in self.patterns]
        return out

    def placeholder(self, secret: str, what: str) -> str:
        if not secret or PLACEHOLDER.fullmatch(secret):
            return secret  # nothing to hide, or hidden already
        self.counts[what] = self.counts.get(what, 0) + 1
        if secret not in self._map:
            self._map[secret] = f"REDACTED-{secrets.token_hex(6)}"
        return self._map[secret]

    # ---------------------------------------------------------------------------------------------- headers
    def header(self, name: str, value: str) -> str:
        lname = name.lower()
        if lname in ("authorization", "proxy-authorization"):
            return self._authorization(value, name)
        if lname == "cookie":
            return "; ".join(self._cookie_pair(part.strip(), name) for part in value.split(";") if part.strip())
        if lname == "set-cookie":
            first, sep, attrs = value.partition(";")
            return self._cookie_pair(first.strip(), name) + sep + attrs
        if lname in self._headers:
            return self.placeholder(value, name)
        if lname in URL_HEADERS:
            return self._url(value)
        return self.text(value)

    def _url(self, value: str) -> str:
        """Query parameters named like secrets redacted as in a request's own query; the rest kept as written."""
        base, sep, rest = value.partition("?")
        query, hash_sep, fragment = rest.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = self.query(pairs)
        if not sep or redacted == pairs:
            return self.text(value)
        return f"{self.text(base)}?{urlencode(redacted)}{hash_sep}{self.text(fragment)}"

    def _authorization(self, value: str, name: str) -> str:
        creds = wire.basic_auth(value)
        if creds is not None:
            user, password = creds
            return wire.basic_header(user, self.placeholder(password, name))
        scheme, sep, token = value.partition(" ")
        if sep and token:
            return f"{scheme} {self.placeholder(token, name)}"
        return self.placeholder(value, name)

    def _cookie_pair(self, pair: str, name: str) -> str:
        key, sep, val = pair.partition("=")
        return f"{key}={self.placeholder(val, name)}" if sep else self.placeholder(pair, name)

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self.header(k, v)) for k, v in headers]

    def redacts_header(self, name: str) -> bool:
        """Whether this header's values reach the cassette as placeholders (then replay cannot match on them)."""
        return name.lower() in self._headers

    # ------------------------------------------------------------------------------------------------- data
    def text(self, value: str) -> str:
        for pattern in self._patterns:
            value = pattern.sub(lambda m: self.placeholder(m.group(0), "pattern"), value)
        return value

    def exchange(self, ex: Exchange) -> None:
        """Redact a whole exchange in place: the one place that knows where secrets live in one."""
        self._url_encoded(ex.request)
        ex.request.query = self.query(ex.request.query)
        self.message(ex.request)
        if ex.response is not None:
            if ex.response.kind == "messages":
                ex.response.headers = self.headers(ex.response.headers)
                for item in ex.response.body:
                    item.message = self.data(item.message)
                    item.event = None if item.event is None else self.text(item.event)
                    item.after = None if item.after is None else self.text(item.after)
            else:
                self.message(ex.response)
        if ex.error is not None:
            ex.error = self.text(ex.error)

    def data(self, value: Any, path: tuple[str, ...] = ()) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                sub = (*path, str(k))
                if isinstance(v, (str, int, float)) and not isinstance(v, bool) and (
                        SECRET_KEY.search(str(k)) or self._on_path(sub)):
                    out[k] = self.placeholder(str(v), f"json {k}")
                else:
                    out[k] = self.data(v, sub)
            return out
        if isinstance(value, list):
            return [self.data(v, path) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def _on_path(self, path: tuple[str, ...]) -> bool:
        return any(path_matches(rule, path) for rule in self._paths)

    def message(self, msg: HttpMessage) -> None:
        """Redact a request or response half in place."""
        msg.headers = self.headers(msg.headers)
        if msg.kind in ("json", "messages"):
            msg.body = self.data(msg.body)
        elif msg.kind == "text":
            msg.body = self._json_text(msg.body, unreadable=self.text) if _json_like(msg.body) else \
                self.text(msg.body)

    def _url_encoded(self, request: Request) -> None:
        """Secrets in URL-encoded data, which would otherwise be seen as plain text: the Bayeux ``message=`` of
        callback-polling (query) and of a form POST (its ext.authToken ...; a form whatever its Content-Type says:
        Faye's cross-origin transport sends one as text/plain), and form fields named like passwords (a login
        form's j_password). Nothing is re-encoded unless a value was redacted: replay matches the rest."""
        request.query = [(k, self._json_text(v) if k == "message" else v) for k, v in request.query]
        body = str(request.body)
        if request.kind == "text" and not _json_like(body) and (
                "message=" in body or "x-www-form-urlencoded" in (request.header("Content-Type") or "").lower()):
            pairs = parse_qsl(body, keep_blank_values=True)
            redacted = [(k, self._json_text(v) if k == "message" else v) for k, v in self.query(pairs)]
            if redacted != pairs:
                request.body = urlencode(redacted)

    def _json_text(self, value: str, unreadable: Callable[[str], str] | None = None) -> str:
        """JSON inside a text (a Bayeux ``message=``, a JSON body sent as text/plain) redacted as data; re-encoded
        only when something was redacted. Unreadable: ``unreadable(value)``, by default nothing of it is kept."""
        if not _json_like(value):
            return value
        try:
            data = json.loads(value)
            redacted = self.data(data)
        except (ValueError, RecursionError):
            return unreadable(value) if unreadable else self.placeholder(value, "message")
        return value if redacted == data else json.dumps(redacted, separators=(",", ":"), ensure_ascii=False)

    def query(self, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self.placeholder(v, f"query {k}") if SECRET_KEY.search(k) else self.text(v)) for k, v in query]
