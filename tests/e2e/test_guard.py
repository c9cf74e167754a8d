"""Local servers for local code only, over real sockets: every serving command refuses a request whose Host a web
page rebinding its own name to this machine would send (403, naming the option that admits it), WebSocket upgrades
included, and gwsvcr's own /__gwsvcr__/ endpoints refuse pages, strangers without the token and non-JSON bodies.
The rules themselves: tests/test_guard.py; a --workers replay through HAProxy: tests/e2e/test_workers.py (on the
workers a test there starts anyway)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import gwsvcr
from gwsvcr import api, guard
from gwsvcr import cassette as cas
from gwsvcr.addons.recorder import GwsRecorder
from gwsvcr.addons.replayer import GwsReplayer
from gwsvcr.api import ServiceClient, ServiceError
from gwsvcr.cli import serve
from gwsvcr.replay import HEALTH_PATH, STATUS_PATH
from gwsvcr.service import MOUNTS_PATH
from tests.procs import ROOT, Proc
from tests.procs import gwsvcr as gwsvcr_proc
from tests.reliability.netutil import address, call

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
AUTH = {"Authorization": "Basic YWdlbnQxOnNlY3JldA=="}  # agent1:secret
ALLOWED = "gws.test"
FOREIGN = "attacker.example"


def local_names(url: str) -> list[str]:
    """Host values a local program sends to the server at ``url``: a loopback name, IP literals of either family
    (any: a rebound name is never one), a name under .localhost, the one allowed."""
    port = address(url)[1]
    return [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "127.3.4.5", f"192.0.2.7:{port}",
            "app.localhost", ALLOWED]


def ask(url: str, path: str, host: str | None = None, method: str = "GET", body: bytes | None = None,
        **headers: str) -> tuple[int, Any]:
    """(status, JSON or text) of one request to the server at ``url`` sent with this Host header."""
    status, answer, _ = call(guard.split_token(url)[0] + path, method, data=body,
                             headers={**({"Host": host} if host else {}), **headers})
    return status, answer


def assert_guarded(url: str, path: str, **headers: str) -> None:
    """The server at ``url`` refuses a foreign Host, naming the option, and answers every local name."""
    status, body = ask(url, path, f"{FOREIGN}:{address(url)[1]}", **headers)
    assert status == 403 and body["refused"] == "host", body
    assert f"--allow-host-header {FOREIGN}" in body["error"]
    assert {host: ask(url, path, host, **headers)[0] for host in local_names(url)} == dict.fromkeys(
        local_names(url), 200)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Proc]]:
    """A replay, a simulator and a service, each told that ``gws.test`` is a name of this machine."""
    commands = {"replay": ["replay", str(SAMPLE)], "sim": ["sim"], "service": ["service"]}
    with ThreadPoolExecutor(len(commands)) as pool:
        started = dict(zip(commands, pool.map(
            lambda args: gwsvcr_proc(*args, "--port", "0", "--allow-host-header", ALLOWED), commands.values()),
            strict=True))
    yield started
    for proc in started.values():
        assert proc.stop() == 0, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def svc(servers: dict[str, Proc]) -> Iterator[ServiceClient]:
    client = ServiceClient(servers["service"].url)  # the printed URL: its token in it
    yield client
    client.close()


def target(kind: str, servers: dict[str, Proc], svc: ServiceClient) -> tuple[str, str, dict[str, str]]:
    """(base URL, path, headers) of an ordinary request to that server."""
    if kind == "service control port":
        return servers["service"].url, STATUS_PATH, {guard.TOKEN_HEADER: servers["service"].token}
    if kind == "service mount":
        return svc.mount(SAMPLE, timing="instant")["url"], "/api/v2/me", AUTH
    return servers[kind].url, "/api/v2/me", AUTH


@pytest.mark.parametrize("kind", ["replay", "sim", "service control port", "service mount"])
def test_a_foreign_host_is_refused_and_local_names_answered(kind: str, servers: dict[str, Proc],
                                                            svc: ServiceClient) -> None:
    url, path, headers = target(kind, servers, svc)
    assert_guarded(url, path, **headers)


def upgrade(url: str, host: str) -> bytes:
    """The status line a WebSocket upgrade request with this Host gets."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(f"GET /api/v2/notifications HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_a_websocket_upgrade_with_a_foreign_host_is_refused(servers: dict[str, Proc]) -> None:
    assert upgrade(servers["replay"].url, FOREIGN) == b"HTTP/1.1 403 Forbidden"
    assert upgrade(servers["replay"].url, "localhost") == b"HTTP/1.1 101 Switching Protocols"
    assert upgrade(servers["sim"].url, FOREIGN) == b"HTTP/1.1 403 Forbidden"


def test_a_cross_site_text_plain_post_mounts_nothing(servers: dict[str, Proc], svc: ServiceClient) -> None:
    """What any web page the developer opens can send without asking (a "simple" request), and its variants."""
    url, token = servers["service"].url, servers["service"].token
    before = svc.status()
    doc = json.dumps({"cassette": str(SAMPLE)}).encode()
    page = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}
    tries = {
        "the page's request": ask(url, MOUNTS_PATH, method="POST", body=doc, **page),
        "with the token (leaked)": ask(url, MOUNTS_PATH, method="POST", body=doc, **page,
                                       **{guard.TOKEN_HEADER: token}),
        "from no page, as text/plain": ask(url, MOUNTS_PATH, method="POST", body=doc, **{guard.TOKEN_HEADER: token,
                                                                                     "Content-Type": "text/plain"}),
        "as JSON, without the token": ask(url, MOUNTS_PATH, method="POST", body=doc,
                                          **{"Content-Type": "application/json"}),
        "rebound: all else right": ask(url, MOUNTS_PATH, FOREIGN, method="POST", body=doc,
                                       **{guard.TOKEN_HEADER: token, "Content-Type": "application/json"}),
    }
    assert {name: (status, body["refused"]) for name, (status, body) in tries.items()} == {
        "the page's request": (403, "origin"), "with the token (leaked)": (403, "origin"),
        "from no page, as text/plain": (415, "media-type"), "as JSON, without the token": (403, "token"),
        "rebound: all else right": (403, "host")}
    after = svc.status()
    assert (after["mounts"], after["unmounted"]) == (before["mounts"], before["unmounted"]), "nothing was mounted"


def test_status_endpoints_need_the_token_and_health_does_not(servers: dict[str, Proc], svc: ServiceClient) -> None:
    replay = servers["replay"]
    assert ask(replay.url, STATUS_PATH)[0] == 403
    assert ask(replay.url, STATUS_PATH, **{guard.TOKEN_HEADER: "0" * 32})[1]["refused"] == "token"
    assert "misses" in ask(replay.url, STATUS_PATH, **{guard.TOKEN_HEADER: replay.token})[1]
    assert "misses" in ask(replay.url, f"{STATUS_PATH}?token={replay.token}")[1]  # typed by hand
    assert ask(replay.url, STATUS_PATH, Origin="http://127.0.0.1:1", **{guard.TOKEN_HEADER: replay.token})[0] == 403
    assert ask(replay.url, HEALTH_PATH) == (200, {"ok": True})
    with gwsvcr.replaying(SAMPLE, service=svc) as mount:  # a mount's own status: the service's token
        assert ask(mount.url, STATUS_PATH)[0] == 403
        assert ask(mount.url, STATUS_PATH, **{guard.TOKEN_HEADER: servers["service"].token})[1]["id"] == mount.id
    assert ask(servers["sim"].url, STATUS_PATH)[0] == 403  # the prefix is gwsvcr's on every server


def test_a_mount_admits_its_own_names_and_its_cassettes_upstream(servers: dict[str, Proc], svc: ServiceClient,
                                                                  tmp_path: Path) -> None:
    field = tmp_path / "field.yaml"
    shutil.copy(SAMPLE, field)
    field.write_text(field.read_text().replace(f"upstream: {cas.load(SAMPLE).header.upstream}",
                                               "upstream: https://gws.example.com:8443", 1))
    with gwsvcr.replaying(field, allow_host_header=["mount.test"], service=svc) as mine, \
            gwsvcr.replaying(SAMPLE, service=svc) as other:
        assert [ask(mine.url, "/api/v2/me", host, **AUTH)[0]
                for host in ("mount.test", "gws.example.com:8443", ALLOWED, FOREIGN)] == [200, 200, 200, 403]
        assert [ask(other.url, "/api/v2/me", host, **AUTH)[0]
                for host in ("mount.test", "gws.example.com", ALLOWED)] == [403, 403, 200]
        assert ask(svc.url, STATUS_PATH, "mount.test", **{guard.TOKEN_HEADER: servers["service"].token})[0] == 403


@contextlib.asynccontextmanager
async def in_process(addon: Any, mode: str, settings: dict[str, Any], **build: Any) -> AsyncIterator[str]:
    """A serving master as cli/serve.py builds it, in this process (a process start saved); yields its URL."""
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    master = serve.build([addon], host="127.0.0.1", port=0, mode=mode, settings=settings,
                         on_ready=listening.set_result, **build)
    running = asyncio.ensure_future(master.run())
    try:
        yield await asyncio.wait_for(listening, 30)
    finally:
        master.shutdown()
        await asyncio.wait_for(running, 30)


def recorder(path: Path, mode: str) -> contextlib.AbstractAsyncContextManager[str]:
    """The recorder as gwsvcr record builds it."""
    return in_process(GwsRecorder(), mode, {"gwsvcr_record_cassette": str(path), "gwsvcr_record_mode": "all"},
                      endpoints=False)


async def test_reverse_recording_refuses_a_foreign_host_and_gives_the_upstream_its_own(servers: dict[str, Proc],
                                                                                        tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    upstream = servers["sim"].url
    async with recorder(path, f"reverse:{upstream}") as url:
        foreign, local, passed = await asyncio.to_thread(lambda: (
            ask(url, "/api/v2/me", FOREIGN, **AUTH), ask(url, "/api/v2/me", "localhost", **AUTH),
            ask(url, "/__gwsvcr__/anything", **AUTH)))
    assert foreign[0] == 403 and foreign[1]["refused"] == "host"
    assert local[0] == 200
    # the recorder has no endpoints of its own: the path goes upstream, whose own gate (the simulator's) answers
    assert passed[1]["refused"] == "token"
    exchanges = cas.load(path, use_cache=False).exchanges
    assert [ex.request.path for ex in exchanges] == ["/api/v2/me", "/__gwsvcr__/anything"], "the refused one is not"
    hosts = {v for k, v in exchanges[0].request.headers if k.lower() == "host"}
    assert hosts == {upstream.removeprefix("http://")}, "the upstream got its own name, as mitmproxy gives it"


async def test_regular_proxy_recording_passes_every_host_on(servers: dict[str, Proc], tmp_path: Path) -> None:
    """A regular proxy is not guarded: the Host is the site's (here the simulator's, which admits gws.test itself:
    a name not local to the proxy goes through untouched, and the site's own guard still judges it)."""
    path = tmp_path / "c.yaml"
    sim = servers["sim"].url
    async with recorder(path, "regular") as url:
        proxy = urllib.request.build_opener(urllib.request.ProxyHandler({"http": url}))

        def through(host: str) -> int:
            request = urllib.request.Request(sim + "/api/v2/me", headers={**AUTH, "Host": host})
            try:
                with proxy.open(request, timeout=10) as reply:
                    return int(reply.status)
            except urllib.error.HTTPError as e:
                return e.code

        statuses = await asyncio.to_thread(lambda: [through(ALLOWED), through(FOREIGN)])
    assert statuses == [200, 403], "gws.test answered by the site; attacker.example refused by the site, not the proxy"
    recorded = cas.load(path, use_cache=False).exchanges
    assert [(ex.response.status, {v for k, v in ex.request.headers if k.lower() == "host"}) for ex in recorded] == [
        (200, {ALLOWED}), (403, {FOREIGN})], "both went to the site with their own Host, and were recorded"


def test_harnesses_pass_the_token_on_without_the_user_seeing_it(servers: dict[str, Proc], svc: ServiceClient,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    printed = servers["service"].url
    assert printed == guard.with_token(guard.split_token(printed)[0], servers["service"].token)
    monkeypatch.setattr(api, "_shared", None)
    monkeypatch.setenv(api.SERVICE_ENV, printed)  # export GWSVCR_SERVICE=<the URL gwsvcr service printed>
    with gwsvcr.replaying(SAMPLE, timing="instant") as gws:
        assert ask(gws.url, "/api/v2/me", **AUTH)[0] == 200
    assert gws.status()["served"] == 1
    monkeypatch.setattr(api, "_shared", None)
    monkeypatch.setenv(api.SERVICE_ENV, guard.split_token(printed)[0])  # the URL without its token
    with pytest.raises(ServiceError, match="give GWSVCR_SERVICE that whole URL"):
        gwsvcr.replaying(SAMPLE)
    monkeypatch.setattr(api, "_shared", None)


async def test_a_replay_shows_its_status_url_with_the_token(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(guard.TOKEN_ENV, "feedc0de" * 4)
    async with in_process(GwsReplayer(), serve.NO_UPSTREAM, {"gwsvcr_replay_cassette": str(SAMPLE)},
                          show_token="status") as url:
        pass
    out, err = capsys.readouterr()
    assert f"gwsvcr: listening on {url}\n" in out, "the clients' base URL, as it was"
    assert f"gwsvcr: status at {url}{STATUS_PATH}?token={'feedc0de' * 4}" in err
