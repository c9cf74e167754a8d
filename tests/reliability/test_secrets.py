"""No secret reaches a cassette: sessions recorded with distinctive credentials along every path a GWS client
uses, then every cassette scanned for each secret as is, URL-encoded, JSON-escaped and in base64 at every
alignment (so a password inside a Basic header, a cookie or a token blob is found too).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record
from tests.procs import Proc, gwsvcr
from tests.reliability.netutil import CALL, COMETD, basic, call
from tests.reliability.secretscan import forms, recorded_by_gwsvcr, unredacted

USER = "agent-sec"
PASSWORD = "Pw-" + secrets.token_hex(8)


def _secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(10)}"


def leaks(text: str, named: dict[str, str]) -> list[str]:
    return [f"{what} ({secret}) as {form!r}" for what, secret in named.items() for form in forms(secret)
            if form in text]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Proc]:
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "20", "--user", USER, "--password", PASSWORD)
    yield proc
    assert proc.stop() == 0, proc.stderr


def record_every_path(url: str, named: dict[str, str]) -> None:
    """A session through the recorder at ``url``: every way a credential travels to or from GWS."""
    auth = basic(USER, PASSWORD)
    extra = {"X-Agent-Key": named["custom header"], "Proxy-Authorization": basic("proxy", named["proxy password"]),
             "Cookie": f"BAYEUX_BROWSER={named['browser cookie']}; tracker={named['other cookie']}"}
    status, _, headers = call(url + "/api/v2/me", headers={"Authorization": auth, **extra})
    assert status == 200, status
    named["session cookie"] = headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    named["CSRF token"] = headers["X-CSRF-TOKEN"]
    session = {"Cookie": f"JSESSIONID={named['session cookie']}", "X-CSRF-TOKEN": named["CSRF token"]}
    # JSON secrets in a REST body
    call(url + CALL, "POST", {"operationName": "StopCallRecording", "password": named["JSON password"],
                              "credentials": {"apiKey": named["JSON apiKey"], "token": named["JSON token"]}},
         session)
    # CometD over long-polling, a token in the handshake's ext
    handshake = {"channel": "/meta/handshake", "version": "1.0", "id": "1", "supportedConnectionTypes":
                 ["long-polling", "callback-polling"], "ext": {"authToken": named["handshake authToken"]}}
    status, replies, _ = call(url + COMETD, "POST", [handshake], session)
    assert status == 200 and replies[0]["successful"], replies
    # ... over callback-polling (GET ?jsonp=&message=) and as a form field (message=)
    jsonp = {**handshake, "ext": {"authToken": named["JSONP authToken"]}}
    query = urllib.parse.urlencode({"jsonp": "cb", "message": json.dumps([jsonp])})
    status, text, _ = call(f"{url}{COMETD}?{query}", headers=session)
    assert status == 200 and str(text).startswith("cb("), text
    form = urllib.parse.urlencode({"message": json.dumps([{**handshake, "ext": {"authToken":
                                                                                named["form authToken"]}}])})
    status, _, _ = call(url + COMETD, "POST", None, {**session, "Content-Type": "application/x-www-form-urlencoded"},
                        data=form.encode())
    assert status == 200
    # a login form (Spring security, as older GWS web clients post it)
    login = urllib.parse.urlencode({"j_username": USER, "j_password": named["login form password"]})
    call(url + "/j_spring_security_check", "POST", None, {"Content-Type": "application/x-www-form-urlencoded"},
         data=login.encode())
    # a Bearer token, a token in the query string
    call(url + "/api/v2/me", headers={"Authorization": "Bearer " + named["Bearer token"]})
    call(url + "/api/v2/me?" + urllib.parse.urlencode({"access_token": named["query token"], "page": "1"}),
         headers={"Authorization": auth})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_secret_in_any_cassette(upstream: Proc, tmp_path: Path) -> None:
    named = {what: _secret(what.split()[0]) for what in (
        "custom header", "proxy password", "browser cookie", "other cookie", "JSON password", "JSON apiKey",
        "JSON token", "handshake authToken", "JSONP authToken", "form authToken", "login form password",
        "Bearer token", "query token",
        "failed query token")}
    named["Basic password"] = PASSWORD
    recorder = record(upstream.url, tmp_path / "live.yaml", "--redact-header", "X-Agent-Key")
    try:
        record_every_path(recorder.url, named)
    finally:
        assert recorder.stop() == 0, recorder.stderr
    # an upstream that is down: the failure (with its URL) is recorded too
    down = record(f"http://127.0.0.1:{free_port()}", tmp_path / "down.yaml")
    try:
        call(down.url + "/api/v2/me?" + urllib.parse.urlencode({"access_token": named["failed query token"]}),
             headers={"Authorization": basic(USER, PASSWORD)})
    finally:
        assert down.stop() == 0, down.stderr

    found = []
    for path in sorted(tmp_path.glob("*.yaml")):
        assert cas.validate(path) == [] and recorded_by_gwsvcr(path), path
        found += [f"{path.name}: {leak}" for leak in leaks(path.read_text(encoding="utf-8"), named)]
        found += unredacted(path)  # and, without knowing any value, every place a secret lives
    assert not found, "secrets on disk:\n" + "\n".join(found)
    live = (tmp_path / "live.yaml").read_text(encoding="utf-8")
    assert USER in live, "the Basic user name is kept (replay ties sessions by it)"
    assert "REDACTED-" in (tmp_path / "down.yaml").read_text(encoding="utf-8")


def test_the_scan_finds_what_it_looks_for() -> None:
    """The scanner itself: each form of a secret is found (a scanner that finds nothing proves nothing)."""
    secret = "tok-" + secrets.token_hex(10)
    for text in (f"a {secret} b", urllib.parse.quote(f"x={secret}&"), json.dumps({"k": secret}),
                 "Basic " + base64.b64encode(f"user:{secret}".encode()).decode(),
                 base64.b64encode(f"ab{secret}cd".encode()).decode(),
                 base64.urlsafe_b64encode(f"a{secret}".encode()).decode()):
        assert leaks(text, {"t": secret}), text
    assert not leaks("REDACTED-0123456789ab " + base64.b64encode(b"user:REDACTED-0123456789ab").decode(),
                     {"t": secret})


def test_the_structural_scan_finds_unredacted_places(tmp_path: Path) -> None:
    """The value-free scan: a cassette with one secret in each place is flagged once per place."""
    path = tmp_path / "leaky.yaml"
    req = cas.Request(headers=[("Authorization", basic("u", "pw")), ("Cookie", "JSESSIONID=abc"),
                               ("X-CSRF-TOKEN", "t0k"), ("Content-Type", "application/x-www-form-urlencoded"),
                               ("Referer", "https://gws/app/index.html?user=u&password=pw")],
                      kind="text", body="j_password=pw&message=" + urllib.parse.quote(json.dumps(
                          [{"channel": "/meta/handshake", "ext": {"authToken": "tk"}}])),
                      method="POST", path="/x", query=[("access_token", "qt")])
    resp = cas.Response(headers=[("Set-Cookie", "JSESSIONID=abc; Path=/")], kind="json",
                        body={"user": {"password": "pw"}}, status=200)
    writer = cas.CassetteWriter(path)
    writer.write(cas.Exchange(1, "s1", 0.0, req, resp))
    writer.close()
    found = unredacted(path)
    for where in ("header Authorization", "header Cookie", "header X-CSRF-TOKEN", "form field j_password",
                  "form field message[0].ext.authToken", "query access_token", "header Set-Cookie",
                  "body .user.password", "header Referer URL query password"):
        assert any(where in f for f in found), (where, found)
    assert len(found) == 9, found


def test_urls_in_headers_lose_their_secret_query_parameters() -> None:
    """A browser sends its page's URL as Referer with every request: ?password= there is a secret too."""
    from gwsvcr.record.redact import Redactor

    redactor = Redactor()
    referer = redactor.header("Referer", "https://gws:8443/app/index.html?user=agent1&password=pw1&ops=a%2Cb#top")
    assert referer.startswith("https://gws:8443/app/index.html?user=agent1&password=REDACTED-")
    assert referer.endswith("&ops=a%2Cb#top") and "pw1" not in referer
    location = redactor.header("Location", "/callback?access_token=tk1&state=s")
    assert "tk1" not in location and location.endswith("&state=s")
    plain = "https://gws:8443/app/index.html?ops=a,b"
    assert redactor.header("Referer", plain) == plain, "nothing secret: left exactly as it was"
