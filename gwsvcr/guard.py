"""Who may talk to a local gwsvcr server, decided in one place (no mitmproxy here: ``addons/guard.py`` applies it
to every serving command).

Loopback is no boundary against the developer's own browser: any page it opens may send requests to 127.0.0.1,
and a page whose host name its owner points at 127.0.0.1 (DNS rebinding) even reads the answers as its own. So:

* **The Host check** (:class:`HostRule`). A request is answered only when its ``Host`` names the server the way a
  local program does: a loopback name (``localhost``, ``*.localhost``), an IP literal (a browser sends one only
  for an address it was given, never for a rebound name), the name the server listens on, a host name of the
  upstream (the recorder's, or the one a cassette was recorded from), or a name the user allowed
  (``--allow-host-header NAME``). A request without a Host (HTTP/1.0: HAProxy's health checks) comes from no
  browser and passes. Anything else gets a 403 that names the option admitting it.
* **gwsvcr's own endpoints** under ``/__gwsvcr__/`` (the status, the service's control API) answer programs,
  never web pages (:class:`Gate`): a request a page sent from another origin (its ``Origin`` or
  ``Sec-Fetch-Site`` says so) is refused; a body must be ``application/json`` (a ``text/plain`` or form POST,
  which any page may send without asking, is not); and the token made at start must come with every request, in
  the ``X-Gwsvcr-Token`` header (``?token=`` in a URL typed by hand). The health path HAProxy checks is left open:
  it answers ``{"ok": true}`` and nothing else.

The token is ``$GWSVCR_TOKEN`` when set (replays on several hosts that ask each other for their status share
one), else made at random at start. A parent process gives its children theirs through that variable
(:mod:`gwsvcr.served`), and ``gwsvcr service`` prints it inside the URL it prints (``?token=``), so that
``GWSVCR_SERVICE`` carries it to every harness: a header on the wire, never in a request line that logs keep.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import re
import secrets
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ALLOW_OPTION", "ENDPOINTS", "TOKEN_ENV", "TOKEN_HEADER", "TOKEN_QUERY", "Gate", "HostRule", "Refusal",
           "bad_names", "host_of", "new_token", "split_token", "token_from_environment", "upstream_names", "with_token"]

ENDPOINTS = "/__gwsvcr__/"  # gwsvcr's own paths on every port it serves
TOKEN_ENV = "GWSVCR_TOKEN"
TOKEN_HEADER = "X-Gwsvcr-Token"
TOKEN_QUERY = "token"
ALLOW_OPTION = "--allow-host-header"
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class Refusal:
    """Why a request is not answered: its HTTP status, what was refused (``host``, ``origin``, ``token``,
    ``media-type``) and the message, which says what would admit it."""

    status: int
    refused: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "refused": self.refused}


# ------------------------------------------------------------------------------------------------- the Host check


def host_of(value: str) -> str:
    """The host name in a ``Host`` header (or an Origin's authority): without port or brackets, lower case, without
    a final dot."""
    value = value.strip().lower()
    if value.startswith("["):
        host = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        host = value.partition(":")[0]
    else:  # a name, or an IPv6 address without brackets
        host = value
    return host.rstrip(".")


def bad_names(names: Iterable[str]) -> list[str]:
    """The problems of host names given to ``--allow-host-header`` (a URL, a port, a space): one per bad name."""
    return [f"{name!r} is not a host name such as gws.example.com (no scheme, port or path)" for name in names
            if not _HOST_NAME.match(name.lower())]


def upstream_names(*upstreams: str) -> tuple[str, ...]:
    """The host names of upstream URLs (the recorder's, a cassette header's): the names a client that was pointed at
    the real server by name, with that name mapped to this machine, sends."""
    names = []
    for upstream in upstreams:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme and parts.hostname:
            names.append(parts.hostname)
    return tuple(names)


@dataclass(frozen=True)
class HostRule:
    """The Host values one listener answers: loopback names and IP literals always, ``names`` besides."""

    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str]) -> HostRule:
        """The rule admitting ``names`` (Host values or bare names) besides those always admitted."""
        return cls(frozenset(n for n in (host_of(name) for name in names) if n and not _admitted(frozenset(), n)))

    def admits(self, host_header: str | None) -> bool:
        return not host_header or _admitted(self.names, host_header)

    def refusal(self, host_header: str | None) -> Refusal | None:
        if self.admits(host_header):
            return None
        assert host_header is not None
        name = host_of(host_header)
        also = f", {', '.join(sorted(self.names))}" if self.names else ""
        return Refusal(403, "host", (
            f"gwsvcr refused a request for Host {host_header!r}: this server answers only a loopback name "
            f"(localhost), an IP address{also}, so that a web page whose name was pointed at this machine (DNS "
            f"rebinding) cannot read it. To reach it as {name!r} on purpose, start it with {ALLOW_OPTION} {name} "
            f"(a mount of gwsvcr service, gwsvcr.replaying(), @pytest.mark.gws_cassette: "
            f"allow_host_header=[{name!r}])."))


@functools.lru_cache(maxsize=1024)
def _admitted(names: frozenset[str], host_header: str) -> bool:
    host = host_of(host_header)
    if host in names or host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------- gwsvcr's own endpoints


def new_token() -> str:
    return secrets.token_hex(16)


def token_from_environment() -> str:
    """The token of a server starting now: ``$GWSVCR_TOKEN``, else a new one."""
    return os.environ.get(TOKEN_ENV) or new_token()


def with_token(url: str, token: str) -> str:
    """``http://HOST:PORT`` with the token, as ``gwsvcr service`` prints it: ``http://HOST:PORT/?token=T``."""
    return f"{url.rstrip('/')}/?{TOKEN_QUERY}={token}"


def split_token(url: str) -> tuple[str, str]:
    """(``http://HOST:PORT``, token) from a URL :func:`with_token` made; the token is "" when it has none."""
    parts = urllib.parse.urlsplit(url)
    token = urllib.parse.parse_qs(parts.query).get(TOKEN_QUERY, [""])[0]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", "")), token


@dataclass(frozen=True)
class Gate:
    """What a request to ``/__gwsvcr__/`` (but the ``open_paths``) must show: no foreign origin, the token, JSON."""

    token: str
    open_paths: frozenset[str] = frozenset()

    def covers(self, path: str) -> bool:
        return path.startswith(ENDPOINTS) and path.partition("?")[0] not in self.open_paths

    def refusal(self, *, method: str, host_header: str | None, origin: str | None, fetch_site: str | None,
                token: str | None, content_type: str | None) -> Refusal | None:
        if _foreign(origin, host_header) or (fetch_site or "").lower() in ("cross-site", "same-site"):
            return Refusal(403, "origin", (
                f"gwsvcr's own endpoints ({ENDPOINTS}) answer programs, not web pages: refused a request sent by "
                f"{origin or 'a page of another site'}"))
        if not token or not hmac.compare_digest(token.encode(), self.token.encode()):
            return Refusal(403, "token", (
                f"{ENDPOINTS} needs the token this gwsvcr made at start, in the {TOKEN_HEADER} header (or "
                f"?{TOKEN_QUERY}=): gwsvcr service prints it in its URL (give GWSVCR_SERVICE that whole URL), "
                f"gwsvcr replay with its status URL on stderr; {TOKEN_ENV} chooses it"
                + ("" if not token else ": the token sent is not this server's")))
        media = (content_type or "").partition(";")[0].strip().lower()
        if method.upper() in _BODY_METHODS and media != "application/json":
            return Refusal(415, "media-type", (
                f"{ENDPOINTS} takes only application/json bodies, not {content_type or 'a body without Content-Type'}"))
        return None


def _foreign(origin: str | None, host_header: str | None) -> bool:
    """An Origin other than the request's own (``null``, from a sandbox or a file, included)."""
    if origin is None:
        return False
    parts = urllib.parse.urlsplit(origin.strip())
    return parts.scheme not in ("http", "https") or parts.netloc.lower() != (host_header or "").strip().lower()
