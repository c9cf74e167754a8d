"""From bytes on the wire to the cassette model and back: bodies, Bayeux transports, client identity.

Bayeux arrives as a JSON array in a POST (long-polling), as ONE JSON object when a client sends a single message
(the spec says SHOULD for the array; the CometD server and Faye accept both), as a form field ``message=`` (the
spec's form for long-polling), or as ``GET ?jsonp=<callback>&message=<url-encoded array>`` (callback-polling). A
body is Bayeux when it parses to an object, or a non-empty array of objects, that all name a channel, whatever its
path (GWS versions differ in where CometD lives) and whatever its Content-Type says (the CometD server reads any
body that is not a form as JSON). Bodies are kept as they came (a single object stays ``json:``); servers answer
with an array whatever the client sent, and so does the replay.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, Morsel, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from gwsvcr import gws
from gwsvcr.bayeux import CONNECT, is_bayeux
from gwsvcr.cassette import Request, Response, json_bytes

__all__ = ["API_KEY_HEADERS", "BayeuxRequest", "Delivered", "Frame", "Served", "basic_auth", "basic_header",
           "bayeux_of", "bayeux_reply", "cookies", "json_reply", "parse_body", "request_summary", "set_cookie_values"]

# Header names an API key travels in (lower case): a session's credential, a secret redaction hides, no value a
# client made.
API_KEY_HEADERS = ("x-api-key", "apikey", "api-key", "x-apikey", "api_key", "x-api_key")

_JSONP_NAME = re.compile(r"^[A-Za-z_$][\w$.]{0,127}$")
_TEXTUAL = ("text/", "json", "javascript", "xml", "x-www-form-urlencoded", "html")


def parse_body(content: bytes, content_type: str | None) -> tuple[str | None, Any]:
    """(kind, body) for the cassette: JSON as data, text as text, anything else as base64."""
    if not content:
        return None, None
    ctype = (content_type or "").lower()
    looks_json = "json" in ctype or (not ctype and content[:1] in (b"{", b"["))
    if looks_json:
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            pass
        else:
            return ("messages" if is_bayeux(data) else "json"), data
    if any(t in ctype for t in _TEXTUAL) or not ctype:
        try:
            return "text", content.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "base64", base64.b64encode(content).decode("ascii")


@dataclass(slots=True)
class BayeuxRequest:
    messages: list[dict[str, Any]]
    transport: str  # long-polling | callback-polling
    jsonp: str | None = None  # callback name for callback-polling


def _messages(data: Any) -> list[dict[str, Any]] | None:
    """Bayeux messages: an array of them, or one on its own. A lone object must name a Bayeux channel (``/...``),
    so that a REST body with a field called ``channel`` stays REST."""
    if isinstance(data, dict):
        channel = data.get("channel")
        data = [data] if isinstance(channel, str) and channel.startswith("/") else None
    return data if is_bayeux(data) else None


def bayeux_of(request: Request) -> BayeuxRequest | None:
    """The Bayeux messages a request carries, whatever the transport and shape, or None."""
    if request.kind == "messages":
        return BayeuxRequest(request.body, "long-polling")
    if request.kind == "json":
        messages = _messages(request.body)
        return None if messages is None else BayeuxRequest(messages, "long-polling")
    query = dict(request.query)
    raw = query.get("message")
    if raw is None and request.kind == "text":
        text = str(request.body)
        if text.lstrip()[:1] in ("[", "{"):  # JSON under another Content-Type (text/plain)
            raw = text
        elif "message=" in text:
            raw = dict(parse_qsl(text)).get("message")
    if raw is None:
        return None
    try:
        data = _messages(json.loads(raw))
    except (ValueError, RecursionError):
        return None
    if data is None:
        return None
    callback = query.get("jsonp")
    if callback is not None:
        if not _JSONP_NAME.match(callback):
            return None
        return BayeuxRequest(data, "callback-polling", callback)
    return BayeuxRequest(data, "long-polling")


def request_summary(request: Request, sent: list[dict[str, Any]] | None = None) -> str:
    """What a request asked, as a cause is named: its GWS operation (``StopCallRecording``), ``METHOD PATH``, or
    the Bayeux channels it carries other than a connect (``/meta/subscribe``). ``sent``: the request's Bayeux
    messages when the caller has read them already (``[]``: none)."""
    if sent is None:
        bayeux = bayeux_of(request)
        sent = bayeux.messages if bayeux else []
    if sent:
        return " + ".join(str(m.get("channel")) for m in sent if m.get("channel") != CONNECT)
    return gws.summarize_request(request.method, request.path, request.body)


Delivered = Callable[[float], None]


@dataclass(slots=True)
class Served:
    """A server core's answer to an HTTP request. ``response`` None sends the request upstream (lenient replay),
    unless ``cut`` says why the client's connection is closed without a reply instead (a recorded reset, an
    injected one); ``delivered``, when set, is called by the transport with the clock time the client got the
    response (the replayer starts the clock of the events that reply caused)."""

    response: Response | None
    delivered: Delivered | None = None
    cut: str | None = None


@dataclass(slots=True)
class Frame:
    """A server core's Bayeux replies to one HTTP request or WebSocket frame, with ``delivered`` as for
    :class:`Served`; ``set_cookies``: the Set-Cookie headers of the HTTP reply that carries them, if one does."""

    replies: list[dict[str, Any]]
    delivered: Delivered | None = None
    set_cookies: list[tuple[str, str]] = field(default_factory=list)
    # Instead of the replies: an HTTP answer that is not Bayeux (a recorded 503), or why the connection is closed
    # without one (``cut``). A WebSocket cannot carry an HTTP answer: it is closed for either.
    instead: Response | None = None
    cut: str | None = None

    def served(self, jsonp: str | None = None) -> Served:
        """The HTTP answer carrying these replies, or what comes instead of them."""
        if self.cut is not None:
            return Served(None, cut=self.cut)
        if self.instead is not None:
            return Served(self.instead)
        return Served(bayeux_reply(self.replies, jsonp, self.set_cookies), self.delivered)


def bayeux_reply(messages: list[dict[str, Any]], jsonp: str | None = None,
                 headers: list[tuple[str, str]] | None = None) -> Response:
    """The HTTP reply carrying Bayeux messages, wrapped in the live client's callback for callback-polling."""
    out = [h for h in headers or [] if h[0].lower() != "content-type"]
    if jsonp is not None:  # only callback-polling needs the text now; the JSON reply is encoded once, when sent
        text = f"{jsonp}({json_bytes(messages).decode()})"
        return Response(headers=[("Content-Type", "text/javascript;charset=UTF-8"), *out], kind="text",
                        body=text, status=200)
    return Response(headers=[("Content-Type", "application/json;charset=UTF-8"), *out], kind="json",
                    body=messages, status=200)


def json_reply(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(headers=[("Content-Type", "application/json;charset=UTF-8"), *(headers or [])],
                    kind="json", body=data, status=status)


# A Cookie header of plain name=value pairs (legal names, values without quotes, spaces or escapes), as clients
# send: read by splitting, what SimpleCookie would read at a sixth of its cost; anything else goes to SimpleCookie.
_PLAIN_COOKIES = re.compile(r"(?:\s*[\w!#%&'*+\-.^`|~:][\w!#$%&'*+\-.^`|~:]*=[\w!#$%&'*+\-./:=?@^`|~]*\s*(?:;|$))+\s*",
                            re.ASCII)
_MORSEL: Morsel[str] = Morsel()  # what tells an attribute (Path, Expires...) from a cookie name


def _plain_cookies(value: str) -> dict[str, str] | None:
    if not _PLAIN_COOKIES.fullmatch(value):
        return None
    jar = {}
    for pair in value.split(";"):
        name, _, cookie = pair.strip().partition("=")
        if name:
            if _MORSEL.isReservedKey(name):
                return None
            jar[name] = cookie
    return jar


def cookies(request: Request) -> dict[str, str]:
    jar: dict[str, str] = {}
    for name, value in request.headers:
        if name.lower() == "cookie":
            plain = _plain_cookies(value)
            if plain is not None:
                jar.update(plain)
                continue
            try:
                parsed = SimpleCookie()
                parsed.load(value)
            except CookieError:
                continue
            jar.update({k: m.value for k, m in parsed.items()})
    return jar


def set_cookie_values(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            first = value.split(";", 1)[0]
            if "=" in first:
                k, v = first.split("=", 1)
                out[k.strip()] = v.strip()
    return out


def basic_auth(value: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` value, or None."""
    if not value or value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic for ``user`` and ``password``: what :func:`basic_auth` reads."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
