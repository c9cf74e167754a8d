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

    @classmethod
    def basic(cls, user: str, password: str) -> Login:
        return cls(wire.basic_header(user, password))

    def learn(self, headers: Headers) -> None:
        """Cookies from Set-Cookie; the CSRF token from X-CSRF-HEADER (its name) and that header."""
        self.cookies.update({k: v for k, v in wire.set_cookie_values(headers).items() if v})
        values = {k.lower(): v for k, v in headers}
        name = values.get("x-csrf-header", CSRF_TOKEN)
        token = values.get(name.lower())
        if token:
            self.csrf = (name, token)

    def cookie(self, names: list[str] | None = None) -> tuple[str, str] | None:
        """The Cookie header with every cookie the server set, or only those of ``names`` (in that order)."""
        pairs = self.cookies.items() if names is None else [(n, self.cookies[n]) for n in names if n in self.cookies]
        text = "; ".join(f"{k}={v}" for k, v in pairs)
        return ("Cookie", text) if text else None

    def headers(self, *, csrf: bool = True) -> Headers:
        """Authorization, every cookie, and the CSRF token when ``csrf``: what a browser-like client sends."""
        out: Headers = []
        if self.authorization is not None:
            out.append(("Authorization", self.authorization))
        cookie = self.cookie()
        if cookie is not None:
            out.append(cookie)
        if csrf and self.csrf is not None:
            out.append(self.csrf)
        return out
