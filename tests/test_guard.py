"""Who may talk to a local server (gwsvcr/guard.py), and its guard addon in process (addons/guard.py): the Host
check against DNS rebinding, and the token, Origin and JSON rules of the /__gwsvcr__/ endpoints. Over real
sockets, for every serving command: tests/e2e/test_guard.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

from gwsvcr import guard
from gwsvcr.addons.guard import Guard
from gwsvcr.cli.main import main
from gwsvcr.replay import HEALTH_PATH, STATUS_PATH
from gwsvcr.service import MountError, parse_mount
from tests.procs import ROOT

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("host", [None, "", "localhost", "LOCALHOST:8090", "localhost.", "app.localhost:3000",
                                  "127.0.0.1", "127.0.0.1:8090", "127.42.0.7", "[::1]:8090", "[::1]", "10.1.2.3:80",
                                  "[fe80::1]", "gws.test", "GWS.test.:443"])
def test_loopback_names_ip_literals_and_allowed_names_pass(host: str | None) -> None:
    assert guard.HostRule.of(["gws.test"]).refusal(host) is None


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8090", "localhost.attacker.example",
                                  "127.0.0.1.attacker.example", "gws.test.attacker.example", "test", "0x7f.1",
                                  "2130706433.example"])
def test_any_other_name_is_refused_naming_the_option_that_admits_it(host: str) -> None:
    refusal = guard.HostRule.of(["gws.test"]).refusal(host)
    assert refusal is not None and refusal.status == 403 and refusal.refused == "host"
    name = guard.host_of(host)
    assert f"--allow-host-header {name}" in refusal.error and f"allow_host_header=[{name!r}]" in refusal.error
    assert "DNS rebinding" in refusal.error


def test_host_names_of_upstreams_and_bad_names() -> None:
    assert guard.upstream_names("https://GWS.example.com:8443", "http://127.0.0.1:9", "regular", "") == (
        "gws.example.com", "127.0.0.1")
    assert guard.HostRule.of(["127.0.0.1", "localhost", "", "gws.example.com"]).names == {"gws.example.com"}
    assert guard.bad_names(["gws.example.com", "dev_box", "a-b.c."]) == []
    problems = guard.bad_names(["http://gws:8443", "gws:8443", "a b", ""])
    assert len(problems) == 4 and "not a host name such as gws.example.com" in problems[0]


def test_a_token_rides_in_the_url_the_service_prints() -> None:
    url = guard.with_token("http://127.0.0.1:8090", TOKEN)
    assert url == f"http://127.0.0.1:8090/?token={TOKEN}"
    assert guard.split_token(url) == ("http://127.0.0.1:8090", TOKEN)
    assert guard.split_token("http://127.0.0.1:8090/") == ("http://127.0.0.1:8090", "")


GATE = guard.Gate(TOKEN, frozenset({HEALTH_PATH}))


def ask(method: str = "GET", *, host: str = "127.0.0.1:8090", origin: str | None = None, site: str | None = None,
        token: str | None = TOKEN, ctype: str | None = None) -> guard.Refusal | None:
    return GATE.refusal(method=method, host_header=host, origin=origin, fetch_site=site, token=token,
                        content_type=ctype)


def test_the_gate_covers_gwsvcrs_own_paths_but_health() -> None:
    assert GATE.covers(STATUS_PATH) and GATE.covers("/__gwsvcr__/mounts/1") and GATE.covers(STATUS_PATH + "?local=1")
    assert not GATE.covers(HEALTH_PATH) and not GATE.covers("/api/v2/me") and not GATE.covers("/__gwsvcr__")


def test_the_gate_answers_programs_with_the_token() -> None:
    assert ask() is None
    assert ask("POST", ctype="application/json; charset=utf-8") is None
    assert ask("GET", origin="http://127.0.0.1:8090", site="same-origin") is None  # a page of its own: same origin
    assert ask("DELETE", site="none") is None  # typed by hand


@pytest.mark.parametrize("kwargs,refused,status", [
    ({"origin": "http://attacker.example"}, "origin", 403),
    ({"origin": "http://127.0.0.1:3000"}, "origin", 403),  # another local page is another origin
    ({"origin": "null"}, "origin", 403),  # a sandboxed frame, a file
    ({"site": "cross-site"}, "origin", 403),  # a no-cors request carries no Origin, but Sec-Fetch-Site
    ({"site": "same-site"}, "origin", 403),
    ({"token": None}, "token", 403),
    ({"token": "f" * 32}, "token", 403),
    ({"method": "POST", "ctype": "text/plain"}, "media-type", 415),  # a "simple" request any page can send
    ({"method": "POST", "ctype": "application/x-www-form-urlencoded"}, "media-type", 415),
    ({"method": "POST", "ctype": None}, "media-type", 415),
])
def test_the_gate_refuses_pages_strangers_and_forms(kwargs: dict, refused: str, status: int) -> None:
    refusal = ask(**kwargs)
    assert refusal is not None and (refusal.refused, refusal.status) == (refused, status), refusal


def test_a_mount_takes_host_names_and_refuses_urls() -> None:
    request = parse_mount({"cassette": str(SAMPLE), "allow_host_header": ["gws.test"]})
    assert request.allow_host_header == ("gws.test",)
    with pytest.raises(MountError, match=r"allow_host_header: 'http://gws.test' is not a host name"):
        parse_mount({"cassette": str(SAMPLE), "allow_host_header": ["http://gws.test"]})


def test_the_command_line_refuses_a_url_as_a_host_name() -> None:
    done = CliRunner().invoke(main, ["replay", str(SAMPLE), "--allow-host-header", "https://gws.test:8443"])
    assert done.exit_code == 2 and "is not a host name such as gws.example.com" in done.output, done.output
    done = CliRunner().invoke(main, ["record", "--mode", "regular", "--upstream", "x", "--cassette", "c.yaml",
                                     "--allow-host-header", "gws.test"])
    assert done.exit_code == 2 and "--allow-host-header is for --mode reverse" in done.output, done.output


# -------------------------------------------------------------------------------------------- the addon in process

REVERSE = ProxyMode.parse("reverse:https://gws.example.com:8443")


def flow(host: str, path: str = "/api/v2/me", mode: ProxyMode = REVERSE, **headers: str) -> tflow.HTTPFlow:
    fields = ((b"Host", host.encode()), *((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()))
    f = tflow.tflow(req=tutils.treq(path=path.encode(), headers=fields))
    f.client_conn.proxy_mode = mode
    f.server_conn.address = ("gws.example.com", 8443)
    f.server_conn.tls = True
    return f


def test_the_guard_sees_the_clients_host_then_gives_the_upstream_its_own() -> None:
    addon = Guard()
    with taddons.context(Proxyserver(), addon) as tctx:
        tctx.configure(addon, gwsvcr_allow_host_header=["gws.test"])
        assert tctx.options.keep_host_header, "mitmproxy must keep the client's Host for the check"
        admitted = flow("gws.test:8090")
        addon.requestheaders(admitted)
        assert admitted.response is None and admitted.request.host_header == "gws.example.com:8443"
        upstream_name = flow("gws.example.com")  # the upstream's own name, mapped to this machine
        addon.requestheaders(upstream_name)
        assert upstream_name.response is None
        refused = flow("attacker.example:8090", upgrade="websocket", sec_websocket_key="x")
        addon.requestheaders(refused)
        assert refused.response is not None and refused.response.status_code == 403
        assert refused.is_replay == "response" and b"--allow-host-header attacker.example" in refused.response.content
        regular = flow("attacker.example", mode=ProxyMode.parse("regular"))  # a proxy: the site's own name
        addon.requestheaders(regular)
        assert regular.response is None and regular.request.host_header == "attacker.example"
        tctx.configure(addon, listen_host="devbox.test")  # --host NAME: the name the server listens on
        listened = flow("devbox.test:8090")
        addon.requestheaders(listened)
        assert listened.response is None
        tctx.configure(addon, keep_host_header=True)  # the user's choice: the client's Host goes upstream
        kept = flow("localhost:8090")
        addon.requestheaders(kept)
        assert kept.response is None and kept.request.host_header == "localhost:8090"


def test_the_guard_admits_what_its_addons_add_per_listener() -> None:
    addon = Guard()
    mount = ProxyMode.parse("reverse:http://127.0.0.1:9@127.0.0.1:40001")
    with taddons.context(Proxyserver(), addon):
        addon.admit(["mount.test"], mount)
        for mode, admitted in ((mount, True), (REVERSE, False)):
            f = flow("mount.test", mode=mode)
            addon.requestheaders(f)
            assert (f.response is None) is admitted
        addon.forget(mount)
        f = flow("mount.test", mode=mount)
        addon.requestheaders(f)
        assert f.response is not None


def test_the_guard_gates_the_endpoints_but_not_the_recorders_paths() -> None:
    for endpoints, status in ((True, 403), (False, None)):
        addon = Guard(endpoints)
        with taddons.context(Proxyserver(), addon):
            f = flow("127.0.0.1:8090", STATUS_PATH)
            addon.requestheaders(f)
            assert (f.response.status_code if f.response else None) == status
            good = flow("127.0.0.1:8090", STATUS_PATH, **{guard.TOKEN_HEADER: addon.token})
            addon.requestheaders(good)
            assert good.response is None


def test_the_upstream_is_named_in_tls_as_mitmproxy_names_it() -> None:
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData

    addon = Guard()
    with taddons.context(Proxyserver(), addon) as tctx:
        for keep, sni in ((False, "gws.example.com"), (True, None)):
            tctx.configure(addon, keep_host_header=keep)
            data = ServerConnectionHookData(tflow.tserver_conn(), tflow.tclient_conn())
            data.server.sni, data.client.proxy_mode = None, REVERSE
            addon.server_connect(data)
            assert data.server.sni == sni


def test_a_command_that_answers_everything_itself_leaves_the_clients_host() -> None:
    addon = Guard(upstream=False)  # replay without --upstream, sim, service
    with taddons.context(Proxyserver(), addon):
        answered_here = flow("localhost:8090")
        addon.requestheaders(answered_here)
        assert answered_here.response is None and answered_here.request.host_header == "localhost:8090"


def test_a_command_without_replay_options_checks_the_names_too() -> None:
    """(Each command has the option from its one declaration: tests/test_options.py.)"""
    done = CliRunner().invoke(main, ["sim", "--allow-host-header", "gws.test:8090"])
    assert done.exit_code == 2 and "'gws.test:8090' is not a host name" in done.output, done.output
