"""What an agent's requests carry for its login, as GWS has it: Basic credentials, the cookies the server set (a
session cookie, whatever its name, a balancer's too) and the CSRF token it gave (``X-CSRF-HEADER`` names the
header, ``X-CSRF-TOKEN`` by default), which a write inside a cookie session must send back."""

from __future__ import annotations

from dataclasses import dataclass, field

from gwsvcr import wire
from gwsvcr.client.target import Headers

__all__ = ["CSRF_TOKEN", "Login"]

CSRF_TOKEN = "X-CSRF-TOKEN"


@dataclass
class Login:
    authorization: str | None = None  # the Authorization header's value
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: tuple[str, str] | None = None  # (header name, token)
    _sent: Headers | None = field(default=None, repr=False, compare=False)  # headers() until something changes

    @classmethod
    def basic(cls, user: str, password: str) -> Login:
        return cls(wire.basic_header(user, password))

    def learn(self, headers: Headers) -> None:
        """Cookies from Set-Cookie; the CSRF token from X-CSRF-HEADER (its name) and that header."""
        named, token = None, None
        for k, v in headers:
            name = k.lower()
            if name == "set-cookie":
                cookie, eq, value = v.split(";", 1)[0].partition("=")
                if eq and value.strip():
                    self.cookies[cookie.strip()] = value.strip()
                    self._sent = None
            elif name == "x-csrf-header":
                named = v
            elif name == "x-csrf-token":
                token = v
        if named is not None and named.lower() != CSRF_TOKEN.lower():
            token = next((v for k, v in headers if k.lower() == named.lower()), None)
        if token:
            self.csrf = (named or CSRF_TOKEN, token)
            self._sent = None

    def cookie(self, names: list[str] | None = None) -> tuple[str, str] | None:
        """The Cookie header with every cookie the server set, or only those of ``names`` (in that order)."""
        pairs = self.cookies.items() if names is None else [(n, self.cookies[n]) for n in names if n in self.cookies]
        text = "; ".join(f"{k}={v}" for k, v in pairs)
        return ("Cookie", text) if text else None

    def headers(self, *, csrf: bool = True) -> Headers:
        """Authorization, every cookie, and the CSRF token when ``csrf``: what a browser-like client sends (a new
        list each time: the caller may add to it)."""
        if csrf and self._sent is not None:
            return list(self._sent)
        out: Headers = []
        if self.authorization is not None:
            out.append(("Authorization", self.authorization))
        cookie = self.cookie()
        if cookie is not None:
            out.append(cookie)
        if csrf:
            if self.csrf is not None:
                out.append(self.csrf)
            self._sent = out
            return list(out)
        return out
