"""What one client session is (gwsvcr/session.py): the identifiers of an exchange, the tracker that links them,
the rules a user can name, and the sessions listed from a cassette."""

from __future__ import annotations

import base64
from typing import Any

from gwsvcr import session as sess
from gwsvcr import wire
from gwsvcr.cassette import Cassette, Exchange, Header, ReplyItem, Request, Response
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.session import Identifier, SessionRules, SessionTracker
from gwsvcr.timeline import Timing
from gwsvcr.tools import report, show

TOKEN, KEY = "tok-0123456789abcdef", "key-fedcba9876543210"
BASE = "/workspace/v3"


def rest(path: str, *headers: tuple[str, str], method: str = "POST") -> Request:
    return Request(headers=list(headers), method=method, path=BASE + path)


def bayeux(*messages: dict[str, Any], cookie: str | None = None) -> Request:
    headers = [("x-api-key", KEY)] + ([("Cookie", cookie)] if cookie else [])
    return Request(headers=headers, kind="messages", body=list(messages), method="POST",
                   path=BASE + "/notifications")


def reply(*set_cookies: str, status: int = 200) -> Response:
    return Response(headers=[("Set-Cookie", c) for c in set_cookies], status=status)


def basic(user: str, password: str = "secret") -> tuple[str, str]:
    return "Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def workspace_sdk(tracker: SessionTracker, token: str = TOKEN, ws: str = "W1", browser: str = "B1",
                  client: str = "c1") -> list[str]:
    """The requests the Workspace SDK sends, in order; the session label each one gets."""
    cookie = f"WORKSPACE_SESSIONID={ws}"
    both = f"{cookie}; BAYEUX_BROWSER={browser}"
    steps: list[tuple[Request, Response | None, list[dict[str, Any]]]] = [
        (rest("/initialize-workspace", ("Authorization", f"Bearer {token}"), ("x-api-key", KEY)),
         reply(f"{cookie}; Path=/; HttpOnly"), []),
        (bayeux({"channel": "/meta/handshake", "id": "1"}, cookie=cookie), reply(f"BAYEUX_BROWSER={browser}"),
         [{"channel": "/meta/handshake", "id": "1", "clientId": client, "successful": True}]),
        (bayeux({"channel": "/meta/subscribe", "clientId": client, "subscription": f"{BASE}/voice"}, cookie=both),
         reply(), []),
        (rest("/voice/calls/C1/stop-recording", ("x-api-key", KEY), ("Cookie", both)), reply(), []),
        (rest("/logout", ("x-api-key", KEY), ("Cookie", both)), reply(), []),
    ]
    return [tracker.assign(req, resp, replies).label for req, resp, replies in steps]


def test_the_workspace_sdk_is_one_session() -> None:
    """Bearer token and API key, then the WORKSPACE_SESSIONID cookie, then CometD with BAYEUX_BROWSER."""
    tracker = SessionTracker()
    assert workspace_sdk(tracker) == ["s1"] * 5
    assert tracker.kinds() == ["cookie WORKSPACE_SESSIONID", "bearer", "api-key x-api-key", "cookie BAYEUX_BROWSER",
                               "clientId"]


def test_two_sdk_clients_with_one_api_key_stay_apart() -> None:
    """The API key is the application's: it joins nothing. Different tokens and cookies: different clients."""
    tracker = SessionTracker()
    assert workspace_sdk(tracker) == ["s1"] * 5
    assert workspace_sdk(tracker, token="other", ws="W2", browser="B2", client="c2") == ["s2"] * 5


def test_a_request_with_only_an_api_key_joins_the_newest_session_with_it() -> None:
    tracker = SessionTracker()
    workspace_sdk(tracker)
    workspace_sdk(tracker, token="other", ws="W2", browser="B2", client="c2")
    assert tracker.assign(rest("/current-session", ("x-api-key", KEY)), reply(), []).label == "s2"
    assert tracker.assign(rest("/other", ("x-api-key", "unknown")), reply(), []).label == "s3"


def test_gws_v2_links_jsessionid_basic_user_and_client_id() -> None:
    tracker = SessionTracker()
    me = tracker.assign(Request(headers=[basic("agent1")], path="/api/v2/me"), reply("JSESSIONID=J1; Path=/"), [])
    handshake = tracker.assign(bayeux({"channel": "/meta/handshake"}, cookie="JSESSIONID=J1"), reply(),
                               [{"channel": "/meta/handshake", "clientId": "c9", "successful": True}])
    connect = tracker.assign(bayeux({"channel": "/meta/connect", "clientId": "c9"}), reply(), [])
    other = tracker.assign(Request(headers=[basic("agent2")], path="/api/v2/me"), reply("JSESSIONID=J2"), [])
    assert [me.label, handshake.label, connect.label, other.label] == ["s1", "s1", "s1", "s2"]


def test_any_cookie_the_server_set_counts_and_others_do_not() -> None:
    tracker = SessionTracker()
    tracker.assign(rest("/login"), reply("ACME_SESSION=A1"), [])
    assert tracker.assign(rest("/x", ("Cookie", "ACME_SESSION=A1")), reply(), []).label == "s1"
    # a cookie the server never set (analytics, a preference) ties nothing
    assert tracker.assign(rest("/y", ("Cookie", "_ga=G1")), reply(), []).label == "s2"
    assert tracker.assign(rest("/z", ("Cookie", "_ga=G1")), reply(), []).label == "s3"


def test_cookie_headers_read_as_simplecookie_reads_them() -> None:
    """The plain headers clients send are read by splitting; every header reads as SimpleCookie reads it."""
    from http.cookies import CookieError, SimpleCookie

    headers = ["JSESSIONID=gwsvcr12-0a1b2c3d4e5f6789", "a=1; b=2;c=3 ;  d=", "t=YWJj==; t=2", "x$y=z; _ga=GA1.2.3",
               "a=1; Path=/; b=2", "$Version=1; a=1", "a=1; $Path=/", "a=\"q;v\"; b=2", "a=1 b=2", "a = 1",
               "a=1; secure", "a=1;;b=2", ";", "", "  ", "é=1", "a=é", "a=[1]; b={2}", "a=1; expires=x", "a=b\n"]
    for header in headers:
        parsed = SimpleCookie()
        try:
            parsed.load(header)
            expected = {k: m.value for k, m in parsed.items()}
        except CookieError:
            expected = {}
        assert wire.cookies(Request(headers=[("Cookie", header)])) == expected, header


def test_named_rules_replace_the_guess() -> None:
    """--session-cookie names the only session cookies; --session-header the only session headers."""
    rules = SessionRules(cookies=("SID",), headers=("X-Agent",))
    req = rest("/x", ("Cookie", "JSESSIONID=J; SID=S"), ("Authorization", f"Bearer {TOKEN}"), ("X-Agent", "a1"),
               ("x-api-key", KEY))
    assert sess.identifiers(req, None, [], rules) == [Identifier("cookie", "SID", "S"),
                                                      Identifier("header", "x-agent", "a1")]
    tracker = SessionTracker(rules)
    assert tracker.assign(rest("/a", ("X-Agent", "a1")), None, []).label == "s1"
    assert tracker.assign(rest("/b", ("Cookie", "JSESSIONID=J"), ("X-Agent", "a2")), None, []).label == "s2"
    assert tracker.assign(rest("/c", ("Cookie", "JSESSIONID=J"), ("X-Agent", "a1")), None, []).label == "s1"


def test_rules_round_trip_through_the_cassette_header() -> None:
    for rules in (SessionRules(), SessionRules(("WORKSPACE_SESSIONID",), ("x-api-key",))):
        assert SessionRules.from_header({sess.HEADER_KEY: rules.to_header()}) == rules
    assert SessionRules.from_header({}) == SessionRules()
    assert SessionRules().with_overrides(cookies=["A"]) == SessionRules(("A",))


def test_credential_places_cookie_less_requests() -> None:
    assert sess.credential(rest("/a", basic("agent1"))) == Identifier("basic", "", "agent1")
    assert sess.credential(rest("/a", ("x-api-key", KEY), ("Authorization", f"Bearer {TOKEN}"))) == \
        Identifier("bearer", "", TOKEN)
    assert sess.credential(rest("/a", ("apikey", KEY))) == Identifier("api-key", "apikey", KEY)
    assert sess.credential(rest("/a")) is None


def test_display_never_shows_a_secret_in_clear() -> None:
    assert Identifier("bearer", "", TOKEN).display() == f"bearer=<{len(TOKEN)} characters, not redacted>"
    assert Identifier("cookie", "JSESSIONID", "REDACTED-0123456789ab").display() == \
        "cookie JSESSIONID=REDACTED-0123456789ab"
    assert Identifier("basic", "", "agent1").display() == "basic=agent1"


def split_cassette() -> Cassette:
    """A cassette recorded before session.py: one agent split in two sessions that share its cookie."""
    ws = "WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa"
    init = Exchange(1, "s1", 0.0, rest("/initialize-workspace", ("Authorization", "Bearer REDACTED-bbbbbbbbbbbb")),
                    reply(f"{ws}; Path=/"))
    stop = Exchange(2, "s2", 0.1, rest("/voice/calls/C1/stop-recording", ("Cookie", ws)), reply())
    handshake = Exchange(3, "s2", 0.2, bayeux({"channel": "/meta/handshake"}, cookie=ws),
                         Response(kind="messages", body=[ReplyItem({"channel": "/meta/handshake", "clientId": "c1",
                                                                     "successful": True})]))
    return Cassette("x.yaml", Header(), [init, stop, handshake])


def test_summarize_lists_each_session_and_flags_a_split_client() -> None:
    summaries = sess.summarize(split_cassette())
    assert [s.text() for s in summaries] == [
        "s1: 1 exchanges; cookie WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa, bearer=REDACTED-bbbbbbbbbbbb",
        "s2: 2 exchanges; cookie WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa, clientId=c1, api-key x-api-key=<20 "
        "characters, not redacted>",
    ]
    assert sess.split_warnings(summaries) == [
        "sessions s1, s2 share cookie WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa: one client split in 2?"]
    assert summaries[1].as_json()["identifiers"][1] == "clientId=c1"


def test_show_and_report_list_the_sessions_and_the_split() -> None:
    lines = list(show.render_sessions(sess.summarize(split_cassette())))
    assert all(len(line) <= show.WIDTH for line in lines)
    assert lines[0].startswith("s1: 1 exchanges; identified by cookie WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa,")
    assert lines[-1].startswith("WARNING: sessions s1, s2 share cookie WORKSPACE_SESSIONID")
    data = report.report_data(split_cassette())
    assert [s["session"] for s in data["identified_by"]] == ["s1", "s2"]
    assert data["split"] == sess.split_warnings(sess.summarize(split_cassette()))
    assert KEY not in " ".join(lines) + str(data["identified_by"])


async def test_the_replayer_issues_its_own_value_for_every_session_cookie() -> None:
    """Whatever their names: WORKSPACE_SESSIONID on a REST reply, BAYEUX_BROWSER on the handshake. Two clients with
    one token get different values; a request finds its client by any of them; no recorded value goes out."""
    ws, browser = "WORKSPACE_SESSIONID=REDACTED-aaaaaaaaaaaa", "BAYEUX_BROWSER=REDACTED-cccccccccccc"
    init = Exchange(1, "s1", 0.0, rest("/initialize-workspace", ("Authorization", "Bearer REDACTED-bbbbbbbbbbbb")),
                    Response(headers=[("Set-Cookie", f"{ws}; Path=/; HttpOnly")], kind="json",
                             body={"status": {"code": 0}}), ttfb=0.0)
    handshake = Exchange(2, "s1", 0.1, bayeux({"channel": "/meta/handshake", "id": "1"}, cookie=ws),
                         Response(headers=[("Set-Cookie", browser)], kind="messages", body=[ReplyItem(
                             {"channel": "/meta/handshake", "id": "1", "clientId": "rec", "successful": True})]),
                         ttfb=0.0)
    stop = Exchange(3, "s1", 0.2, rest("/voice/calls/C1/stop-recording", ("Cookie", ws)),
                    Response(kind="json", body={"status": {"code": 1}}), ttfb=0.0)
    core = Replayer(Cassette("x.yaml", Header(), [init, handshake, stop]), ReplayConfig(timing=Timing.INSTANT))
    live_init = rest("/initialize-workspace", ("Authorization", f"Bearer {TOKEN}"), ("x-api-key", KEY))
    first, second = [(await core.handle(live_init)).response for _ in range(2)]
    assert first is not None and second is not None
    a, b = (wire.set_cookie_values(r.headers)["WORKSPACE_SESSIONID"] for r in (first, second))
    assert a != b and "REDACTED" not in a + b and core.counters.clients == 2
    hs = (await core.handle(bayeux({"channel": "/meta/handshake", "id": "7", "version": "1.0",
                                     "supportedConnectionTypes": ["long-polling"]},
                                    cookie=f"WORKSPACE_SESSIONID={a}"))).response
    assert hs is not None and wire.set_cookie_values(hs.headers) == {"BAYEUX_BROWSER": a}
    # a request that sends only the issued BAYEUX_BROWSER is client a's: its recorded stop-recording answers
    served = await core.handle(rest("/voice/calls/C1/stop-recording", ("Cookie", f"BAYEUX_BROWSER={a}")))
    assert served.response is not None and served.response.status == 200 and core.counters.clients == 2
    assert core.misses == []
    core.close()
