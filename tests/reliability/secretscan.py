"""Find secrets a cassette still holds, without knowing their values: every place a secret lives (credential
headers, cookies, CSRF tokens, query parameters of URLs in headers (Referer, Location), JSON fields and query or form
parameters named like passwords and tokens, the Bayeux ``message=`` of callback-polling) must hold a
``REDACTED-...`` placeholder, or nothing.

Usable on any cassette the recorder wrote (see ``recorded_by_gwsvcr``): the tests call it on what they record,
and a session-end hook can call it on every cassette under pytest's basetemp. Tests that know their secrets'
values (a Bearer token, an API key) also ``remember`` them: the hook then greps every cassette for them, as is,
URL-encoded, JSON-escaped or in base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from gwsvcr import cassette as cas
from gwsvcr.record.redact import DEFAULT_HEADERS, PLACEHOLDER, SECRET_KEY, URL_HEADERS


def forms(secret: str) -> set[str]:
    """The ways a secret can appear in a text file."""
    raw = secret.encode()
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
           json.dumps(secret)[1:-1], json.dumps(urllib.parse.quote(secret, safe=""))[1:-1]}
    for pad in range(3):  # base64 of the secret at each of the three alignments inside a longer blob
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            enc = encode(b"\0" * pad + raw).decode().rstrip("=")
            skip = (pad * 8 + 5) // 6  # characters that still mix in the padding bytes
            out.add(enc[skip:-2])  # the last characters may mix in whatever follows
    return {f for f in out if len(f) >= 8}


_REMEMBERED: set[str] = set()


def remember(*values: str) -> None:
    """Secrets the tests used: no cassette written in this test session may hold them, in any form."""
    _REMEMBERED.update(values)


def literal_leaks(path: Path, values: set[str] | None = None) -> list[str]:
    """``FILE: holds the value of secret XXXX... as 'form'`` for every remembered secret found in the file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [f"{path}: holds the value of secret {value[:4]}... as {form!r}"
            for value in sorted(_REMEMBERED if values is None else values) for form in sorted(forms(value))
            if form in text]


def _hidden(value: str) -> bool:
    return value == "" or PLACEHOLDER.fullmatch(value.strip()) is not None


def _header(name: str, value: str) -> str | None:
    """Why this header still shows a secret, or None."""
    lname = name.lower()
    if lname in ("authorization", "proxy-authorization"):
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return f"{name}: undecodable Basic credentials"
            return None if sep and _hidden(password) else f"{name}: Basic password in clear"
        return None if _hidden(token or scheme) else f"{name}: {scheme} token in clear"
    if lname in ("cookie", "set-cookie"):
        pairs = value.split(";")[:1] if lname == "set-cookie" else value.split(";")
        for pair in pairs:
            key, sep, val = pair.strip().partition("=")
            if sep and not _hidden(val):
                return f"{name}: value of cookie {key}"
        return None
    if lname in DEFAULT_HEADERS and not _hidden(value):
        return f"{name}: value"
    if lname in URL_HEADERS and "?" in value:
        found = _params(parse_qsl(value.split("?", 1)[1].split("#", 1)[0]), f"{name} URL query")
        return found[0] if found else None
    return None


def _data(data: Any, where: str) -> list[str]:
    if isinstance(data, dict):
        out = []
        for k, v in data.items():
            if SECRET_KEY.search(str(k)) and isinstance(v, (str, int, float)) and not isinstance(v, bool) \
                    and not _hidden(str(v)):
                out.append(f"{where}.{k}: value in clear")
            else:
                out += _data(v, f"{where}.{k}")
        return out
    if isinstance(data, list):
        return [f for i, v in enumerate(data) for f in _data(v, f"{where}[{i}]")]
    return []


def _params(pairs: list[tuple[str, str]], where: str) -> list[str]:
    out = []
    for k, v in pairs:
        if SECRET_KEY.search(k) and not _hidden(v):
            out.append(f"{where} {k}: value in clear")
        elif k == "message":
            try:
                out += _data(json.loads(v), f"{where} message")
            except (ValueError, RecursionError):
                pass
    return out


def recorded_by_gwsvcr(path: Path) -> bool:
    """A cassette the recorder wrote (its header lists the redaction rules applied)."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return "\nrecorder: gwsvcr " in head and "\nredactions:\n- " in head


def unredacted(path: Path) -> list[str]:
    """``FILE: exchange N request|response: where`` for every secret still in the cassette at ``path``."""
    c = cas.load(path, use_cache=False)
    found = []
    for ex in c.exchanges:
        halves: list[tuple[str, cas.HttpMessage]] = [("request", ex.request)]
        if ex.response is not None:
            halves.append(("response", ex.response))
        for side, msg in halves:
            at = f"{path}: exchange {ex.number} {side}"
            found += [f"{at}: header {why}" for k, v in msg.headers if (why := _header(k, v))]
            if msg.kind in ("json", "messages"):
                body = [getattr(i, "message", i) for i in msg.body] if msg.kind == "messages" else msg.body
                found += [f"{at}: body {why}" for why in _data(body, "")]
            elif msg.kind == "text" and str(msg.body).lstrip()[:1] in ("[", "{"):  # JSON sent as text/plain
                try:
                    found += [f"{at}: body {why}" for why in _data(json.loads(str(msg.body)), "")]
                except (ValueError, RecursionError):
                    pass
            elif msg.kind == "text" and ("x-www-form-urlencoded" in (msg.header("Content-Type") or "").lower()
                                         or "message=" in str(msg.body)):
                found += [f"{at}: {why}" for why in _params(parse_qsl(str(msg.body)), "form field")]
        found += [f"{path}: exchange {ex.number} request: {why}" for why in _params(ex.request.query, "query")]
    return found


def scan_tree(base: Path) -> list[str]:
    """Every secret left in a cassette the recorder wrote anywhere under ``base`` (files that are not loadable
    cassettes, e.g. the loader fuzzer's, are not recordings and are left out), and every remembered secret's
    value in any YAML file there."""
    found = []
    for path in sorted(base.rglob("*.yaml")):
        found += literal_leaks(path)
        if recorded_by_gwsvcr(path):
            try:
                found += unredacted(path)
            except cas.CassetteError:
                continue
    return found
