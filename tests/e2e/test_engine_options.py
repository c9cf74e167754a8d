"""The lean engine (cli/serve.py, docs/ENGINE.md): each serving command still honours the mitmproxy options users
pass (``--set``, ``--confdir``), keeps the default addons users rely on (Block, TlsConfig, Onboarding, ProxyAuth),
and every addon still loads into plain ``mitmdump -s``. The listen-host warning of each command is tested in
tests/reliability/test_exposure.py (test_binding_wider_warns_loudly).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

from gwsvcr import cassette as cas
from gwsvcr import guard
from gwsvcr.api import ServiceClient
from gwsvcr.cli import serve
from tests import forkserver
from tests.procs import GWSVCR, ROOT, Proc, gwsvcr

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
MITMDUMP = str(Path(GWSVCR).with_name("mitmdump"))
MITMDUMP_TOKEN = guard.new_token()
AUTH = {"Authorization": "Basic " + base64.b64encode(b"agent1:secret").decode()}
RECORD_UPSTREAM = "http://127.0.0.1:9"  # nothing listens there: these tests only start the recorder
COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "sim": lambda tmp: ["sim"],
    "replay": lambda tmp: ["replay", str(SAMPLE)],
    "record": lambda tmp: ["record", "--upstream", RECORD_UPSTREAM, "--cassette", str(tmp / "c.yaml")],
    "service": lambda tmp: ["service"],
}


def run_serving(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A serving command run to its end, started as tests.procs.gwsvcr starts one (forked from the prepared
    interpreter of tests/forkserver.py: the command's own code, after the imports every start would pay for)."""
    proc = forkserver.spawner(cmd, None)(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                         start_new_session=True)
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(stderr.read()), daemon=True)
    reader.start()
    out = stdout.read()
    code = proc.wait(timeout)
    reader.join(timeout)
    return subprocess.CompletedProcess(cmd, code, out, "".join(err))


def names(addons: list[object]) -> set[str]:
    return {type(a).__name__ for a in addons}


def test_each_engine_holds_only_what_its_command_needs() -> None:
    base = {"Core", "Proxyserver", "NextLayer", "TlsConfig", "Block"}
    assert names(serve.engine(serve.NO_UPSTREAM)) == base  # replay, sim
    assert names(serve.engine("reverse:https://gws:8443")) == base | {"DisableH2C", "UpdateAltSvc"}  # record
    assert names(serve.engine("regular")) == base | {"DisableH2C", "Onboarding", "ProxyAuth"}  # record --mode regular


@pytest.mark.parametrize("mode", [serve.NO_UPSTREAM, "reverse:http://127.0.0.1:9", "regular"])
@pytest.mark.parametrize("sets,killed", [((), True), (("block_global=false",), False)])
async def test_block_global_is_honoured_in_every_engine(mode: str, sets: tuple[str, ...], killed: bool) -> None:
    """A client from a public address is refused unless --set block_global=false (loopback cannot show it)."""
    master = serve.build([], host="127.0.0.1", port=0, mode=mode, settings={}, sets=sets)
    try:
        client = tflow.tclient_conn()
        client.peername = ("8.8.8.8", 40000)  # a public address (no traffic: a fake connection)
        client.proxy_mode = ProxyMode.parse(mode)
        master.addons.get("block").client_connected(client)
        assert bool(client.error) is killed, client.error
    finally:
        master.addons.get("errorcheck").finish()


@pytest.mark.parametrize("command", COMMANDS)
def test_set_is_passed_to_the_engine(command: str, tmp_path: Path) -> None:
    proc = gwsvcr(*COMMANDS[command](tmp_path), "--port", "0", "--set", "block_global=false",
                  "--set", "tcp_timeout=120")
    assert proc.stop() == 0, proc.stderr


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("spec,says", [
    ("block_global=maybe", "block_global"),
    ("anticache=true", "anticache: no such option"),
    ("listen_port=8080", "set it with --port"),
])
def test_bad_set_exits_2_with_a_clear_message(command: str, spec: str, says: str, tmp_path: Path) -> None:
    done = run_serving([GWSVCR, *COMMANDS[command](tmp_path), "--port", "0", "--set", spec])
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "listening" not in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_confdir_holds_the_ca_that_https_clients_trust(command: str, tmp_path: Path, sim: Proc) -> None:
    """Every command accepts TLS clients on its port with mitmproxy's CA from --confdir (as under DumpMaster)."""
    conf = tmp_path / "conf"
    args = COMMANDS[command](tmp_path)
    if command == "record":
        args[args.index(RECORD_UPSTREAM)] = sim.url
    proc = gwsvcr(*args, "--port", "0", "--confdir", str(conf))
    try:
        ca = conf / "mitmproxy-ca-cert.pem"
        assert ca.exists(), sorted(p.name for p in conf.iterdir()) if conf.exists() else "no confdir"
        context = ssl.create_default_context(cafile=str(ca))
        base = ServiceClient(proc.url).mount(SAMPLE)["url"] if command == "service" else proc.url
        url = base.replace("http://", "https://") + "/api/v2/me"
        with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), context=context, timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["statusCode"] == 0
    finally:
        assert proc.stop() == 0, proc.stderr


def test_regular_mode_records_https_with_onboarding_and_proxyauth(tls_upstream: int, tmp_path: Path) -> None:
    """Regular-proxy recording of an HTTPS upstream: CONNECT, interception with the --confdir CA, http://mitm.it
    serving that CA, and --set proxyauth guarding the proxy."""
    conf, path = tmp_path / "conf", tmp_path / "c.yaml"
    upstream = f"127.0.0.1:{tls_upstream}"
    rec = gwsvcr("record", "--mode", "regular", "--upstream", upstream, "--allow-host", "127.0.0.1", "--cassette",
                 str(path), "--port", "0", "--confdir", str(conf), "--insecure", "--set", "proxyauth=rec:pw")
    try:
        proxy = rec.url.replace("http://", "http://rec:pw@")
        no_auth = urllib.request.build_opener(urllib.request.ProxyHandler({"http": rec.url}))
        with pytest.raises(urllib.error.HTTPError) as refused:
            no_auth.open("http://mitm.it/cert/pem", timeout=10)
        assert refused.value.code == 407
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        with opener.open("http://mitm.it/cert/pem", timeout=10) as r:
            assert r.read() == (conf / "mitmproxy-ca-cert.pem").read_bytes()
        context = ssl.create_default_context(cafile=str(conf / "mitmproxy-ca-cert.pem"))
        https = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy}),
                                            urllib.request.HTTPSHandler(context=context))
        with https.open(urllib.request.Request(f"https://{upstream}/api/v2/me", headers=AUTH), timeout=10) as r:
            assert json.loads(r.read()) == {"statusCode": 0}
    finally:
        assert rec.stop() == 0, rec.stderr
    [ex] = cas.load(path, use_cache=False).exchanges
    assert ex.request.path == "/api/v2/me" and ex.response is not None and ex.response.status == 200


# ------------------------------------------------------------------------------------------- mitmdump -s addons


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mitmdump:
    """A ``mitmdump -s`` process started on a chosen loopback port: its URL is known at once, :meth:`ready` waits
    until the port accepts connections."""

    def __init__(self, proc: subprocess.Popen[bytes], script: str, port: int) -> None:
        self.proc, self.script, self.url = proc, script, f"http://127.0.0.1:{port}"

    def ready(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", int(self.url.rsplit(":", 1)[1])), timeout=0.2).close()
                return self.url
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"mitmdump -s {self.script} did not listen: "
                             f"{self.proc.stderr.read().decode(errors='replace') if self.proc.stderr else ''}")


@pytest.fixture
def mitmdump() -> Iterator[Callable[..., Mitmdump]]:
    """``mitmdump -s addons/FILE ...`` on a free loopback port (the token of its endpoints: MITMDUMP_TOKEN), each
    its own port: several start side by side."""
    procs: list[subprocess.Popen[bytes]] = []
    ports: set[int] = set()

    def start(script: str, *args: str) -> Mitmdump:
        port = free_port()
        while port in ports:
            port = free_port()
        ports.add(port)
        proc = subprocess.Popen([MITMDUMP, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
                                 "-s", str(ROOT / "addons" / script), *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, guard.TOKEN_ENV: MITMDUMP_TOKEN})
        procs.append(proc)
        return Mitmdump(proc, script, port)

    yield start
    for proc in reversed(procs):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_me(url: str) -> dict[str, object]:
    with urllib.request.urlopen(urllib.request.Request(url + "/api/v2/me", headers=AUTH), timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_every_addon_still_loads_in_mitmdump(mitmdump: Callable[..., Mitmdump], tmp_path: Path) -> None:
    # the four start side by side (a start is mostly imports); the recorder reaches the sim at its first request
    lazy = ("--mode", "reverse:http://127.0.0.1:9", "--set", "connection_strategy=lazy")
    path = tmp_path / "c.yaml"
    sim = mitmdump("simulator.py", *lazy)
    replay = mitmdump("replayer.py", *lazy, "--set", f"gwsvcr_replay_cassette={SAMPLE}")
    service = mitmdump("service.py", *lazy)
    rec = mitmdump("recorder.py", "--mode", f"reverse:{sim.url}", "--set", f"gwsvcr_record_cassette={path}")
    assert get_me(sim.ready())["statusCode"] == 0
    assert get_me(replay.ready())["statusCode"] == 0
    mounted = ServiceClient(guard.with_token(service.ready(), MITMDUMP_TOKEN)).mount(SAMPLE, timing="instant")
    assert get_me(mounted["url"])["statusCode"] == 0
    assert get_me(rec.ready())["statusCode"] == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (path.exists() and "/api/v2/me" in path.read_text()):
        time.sleep(0.1)
    assert "/api/v2/me" in path.read_text()


def test_every_collection_freezes_its_survivors_and_all_are_walked_again_when_memory_grew() -> None:
    before = gc.get_threshold()
    policy = serve.FreezeSurvivors(every=3600)
    frozen = gc.get_freeze_count()
    try:
        assert gc.get_threshold() == serve.FreezeSurvivors.THRESHOLDS
        kept = [[i] for i in range(1000)]  # noqa: F841 - alive across the collection
        policy("start", {"generation": 0})
        assert gc.get_freeze_count() == frozen, "a collection freezes when it ends"
        policy("stop", {"generation": 0})
        assert gc.get_freeze_count() >= frozen + 1000, "a young collection freezes what it found alive"
        policy.every, policy.checked_at = 0, 0.0  # due: the first check takes the measure
        policy("stop", {"generation": 1})
        assert policy.blocks is not None and not policy.walking_all
        policy.checked_at = 0.0  # due, but the memory has not grown that much
        policy("stop", {"generation": 0})
        assert gc.get_freeze_count() >= frozen + 1000 and not policy.walking_all
        policy.checked_at, policy.blocks = 0.0, 1  # due, and grown
        policy("stop", {"generation": 0})
        assert gc.get_freeze_count() == 0 and policy.walking_all, "the next full collection walks everything"
        policy("stop", {"generation": 0})
        policy("stop", {"generation": 1})
        assert gc.get_freeze_count() == 0 and policy.walking_all, "nothing frozen before that full collection"
        policy("stop", {"generation": 2})  # that one: what survived it is the new measure
        assert not policy.walking_all and policy.blocks > 1 and gc.get_freeze_count() >= 1000
        policy.checked_at = 0.0
        policy("stop", {"generation": 0})
        assert not policy.walking_all, "memory has not grown since everything was walked"
    finally:
        policy.close()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_young_collection_comes_in_time_whatever_the_collector_counts() -> None:
    """CPython counts its young generation down for every object freed: where as many die as are made, its count
    stays low and no pass comes while the young generation grows. The policy walks it on time all the same: here
    with automatic collection off, only its own passes come, and they freeze what they found alive."""
    loop = asyncio.get_running_loop()
    policy = serve.FreezeSurvivors(every=3600)
    young = asyncio.Event()

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 0:
            loop.call_soon(young.set)

    enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.extend((policy, seen))
    frozen = gc.get_freeze_count()
    try:
        kept = [[i] for i in range(1000)]  # noqa: F841 - alive across the collection
        policy.start(loop)
        await asyncio.wait_for(young.wait(), 30)
        assert gc.get_freeze_count() >= frozen + 1000, "the young pass froze what it found alive"
    finally:
        gc.callbacks.remove(seen)
        gc.callbacks.remove(policy)
        policy.close()
        if enabled:
            gc.enable()
    assert gc.get_freeze_count() == 0


async def test_hook_cache_calls_what_mitmproxy_would(caplog: pytest.LogCaptureFixture) -> None:
    from mitmproxy import exceptions, hooks

    calls: list[str] = []

    class Fails:
        def running(self) -> None:
            calls.append("fails")
            raise ValueError("boom")

    class Halts:
        async def running(self) -> None:
            calls.append("halts")
            raise exceptions.AddonHalt

    class Counts:
        name = "counts"

        def running(self) -> None:
            calls.append("counts")

    master = serve.build([Fails(), Counts()], host="127.0.0.1", port=0, mode=serve.NO_UPSTREAM, settings={})
    try:
        assert isinstance(master.addons, serve.HookCache)
        await master.addons.trigger_event(hooks.RunningHook())
        assert calls[-2:] == ["fails", "counts"] and "Addon error: boom" in caplog.text
        master.addons.remove(master.addons.get("counts"))
        master.addons.add(Halts(), Counts())  # the chain changed: looked up again
        calls.clear()
        await master.addons.trigger_event(hooks.RunningHook())
        assert calls == ["fails", "halts"], "AddonHalt stops the event, as in mitmproxy"
    finally:
        master.addons.get("errorcheck").finish()


async def test_hook_cache_passes_each_hooks_arguments_and_updates_only_when_listened_to() -> None:
    from mitmproxy import hooks
    from mitmproxy.proxy.layers import http as http_layer

    flow = tflow.tflow(resp=True)
    for event in (http_layer.HttpRequestHook(flow), hooks.UpdateHook([flow]), hooks.RunningHook(),
                  hooks.ConfigureHook({"x"})):
        assert serve.hook_args(event) == event.args()
    seen: list[tuple[str, object]] = []

    class Requests:
        def request(self, f: object) -> None:
            seen.append(("request", f))

    class Updates:
        def update(self, flows: list[object]) -> None:
            seen.append(("update", flows[0]))

    master = serve.build([Requests()], host="127.0.0.1", port=0, mode=serve.NO_UPSTREAM, settings={})
    try:
        await master.addons.handle_lifecycle(http_layer.HttpRequestHook(flow))
        assert seen == [("request", flow)], "no addon listens to update: none is sent"
        master.addons.add(Updates())
        seen.clear()
        await master.addons.handle_lifecycle(http_layer.HttpRequestHook(flow))
        assert seen == [("request", flow), ("update", flow)], "as mitmproxy: the flow's update after its event"
    finally:
        master.addons.get("errorcheck").finish()


def test_gc_stats_count_collections_and_their_longest_pause_per_minute(tmp_path: Path) -> None:
    stats = serve.GcStats(str(tmp_path))
    gc.callbacks.append(stats)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(stats)
    stats.write()
    (written,) = tmp_path.glob("gc-*.json")
    report = json.loads(written.read_text())
    assert [g["collections"] for g in report["generations"]][0::2] >= [1, 1]
    assert report["generations"][2]["longest_ms"] > 0
    (minute,) = report["minutes"]
    assert minute["collections"] >= 2 and minute["full"] >= 1
    assert minute["longest_ms"] == max(g["longest_ms"] for g in report["generations"])


def test_gc_stats_list_each_slow_pass_on_the_clock_a_bench_window_uses(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve.GcStats, "SLOW_MS", 0.0)  # every pass is slow enough to be listed
    stats = serve.GcStats(str(tmp_path))
    gc.callbacks.append(stats)
    try:
        before = time.monotonic()
        gc.collect(1)
        between = time.monotonic()
        gc.collect(2)
        after = time.monotonic()
    finally:
        gc.callbacks.remove(stats)
    passes = stats.report()["slow_passes"]
    mine = [p for p in passes if before <= p[0] <= after]
    assert [p[1] for p in mine] == [1, 2]
    assert mine[0][0] <= between <= mine[1][0]
    assert all(wall >= 0 and cpu >= 0 for _, _, wall, cpu, _ in mine)
    monkeypatch.setattr(serve.GcStats, "SLOW_MS", 1e9)
    gc.callbacks.append(stats)
    try:
        gc.collect(2)
    finally:
        gc.callbacks.remove(stats)
    assert stats.report()["slow_passes"] == passes, "a pass shorter than SLOW_MS is not listed"


class _Held:
    """Objects a pass finds alive: tracked, of a kind nothing else makes."""


def test_gc_stats_count_what_each_pass_left_alive_and_of_what_kinds(tmp_path: Path) -> None:
    stats = serve.GcStats(str(tmp_path))
    was = gc.isenabled()
    gc.disable()  # every _Held young until the first pass below
    try:
        held = [_Held() for _ in range(20_000)]
        gc.callbacks.append(stats)
        gc.collect(0)
        gc.freeze()  # as FreezeSurvivors does: what that pass left alive is not counted again
        gc.collect(0)
    finally:
        gc.callbacks.remove(stats)
        gc.unfreeze()
        if was:
            gc.enable()
    report = stats.report()
    fields = report["pass_fields"]
    first, second = (dict(zip(fields, report["passes"][i:i + len(fields)], strict=True))
                     for i in range(0, len(report["passes"]), len(fields)))
    assert first["generation"] == second["generation"] == 0 and first["cpu_ms"] > 0
    assert first["survived"] >= len(held)
    assert second["survived"] < first["survived"] - len(held), "frozen objects are not counted"
    biggest = report["biggest_pass"]
    assert biggest["survived"] == first["survived"] and biggest["generation"] == 0
    kinds = dict(biggest["kinds"])
    assert kinds[f"{__name__}._Held"] >= len(held)


def test_a_mounted_cassette_is_kept_out_of_the_collectors_passes(tmp_path: Path) -> None:
    # CPython's own collector policy (nothing frozen after its passes): what is frozen is the mount's doing
    proc = gwsvcr("service", "--port", "0", env={"GWSVCR_GC": "default", serve.GcStats.ENV: str(tmp_path)})
    try:
        ServiceClient(proc.url).mount(SAMPLE)
    finally:
        assert proc.stop() == 0
    (written,) = tmp_path.glob("gc-*.json")
    assert json.loads(written.read_text())["frozen"] > 1000, "the loaded cassette and what came before it"


def test_python_O_only_where_its_bytecode_is_cached_or_may_be_written(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    import importlib.util
    import sys

    from gwsvcr.optimized import optimized_bytecode

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert optimized_bytecode(), "the first -O run writes its bytecode"
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(importlib.util, "cache_from_source", lambda path, optimization=None: str(tmp_path / "no"))
    assert not optimized_bytecode(), "PYTHONDONTWRITEBYTECODE without a cache: -O would compile at every start"
