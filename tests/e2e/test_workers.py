"""gwsvcr replay --workers N: replay workers behind HAProxy, each client kept on one worker, real CometD peers.

The cassette is one agent's lifecycle recorded from `gwsvcr sim` through `gwsvcr record`; every replaying client is
its own user, and each test picks users so that every worker has clients (HAProxy places a user by a consistent hash
of its credential: :func:`placed` asks where, through the balancer's health path, without touching a replay).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr.guard import TOKEN_ENV, new_token
from gwsvcr.replay import HEALTH_PATH, STATUS_PATH, balancer
from tests.clients import LIFECYCLE, Running, Session, assert_lifecycle, run
from tests.conftest import record_from_sim
from tests.e2e.test_guard import ALLOWED, ask, assert_guarded
from tests.procs import ROOT, Proc, gwsvcr, need_haproxy, need_node, status

pytestmark = pytest.mark.node
TOLERANCE_MS = 15.0  # as for a single replay process (tests/e2e/test_replay.py, tests/conformance)
STAGGER = 0.4  # seconds between client starts: the sessions overlap, their processes' start-ups do not


@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One agent's recording-state lifecycle, recorded with aiocometd-ng from gwsvcr sim."""
    path = tmp_path_factory.mktemp("workers") / "lifecycle.yaml"
    record_from_sim(path)
    return path


def recorded_delays(path: Path) -> list[float]:
    return [i.delay * 1000 for e in cas.load(path).exchanges for i in e.reply_items() if i.is_event and i.delay]


def workers(n: int, path: Path, *args: str) -> Proc:
    need_haproxy()
    need_node()
    return gwsvcr("replay", str(path), "--workers", str(n), "--port", "0", *args)


def started(proc: Proc) -> dict[str, tuple[str, int]]:
    """Each worker's URL and process id, from the lines the parent prints when they start."""
    return {name: (url, int(pid)) for name, url, pid in re.findall(r"worker (w\d+) on (\S+) \(pid (\d+)\)",
                                                                   proc.stderr)}


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:secret".encode()).decode()


def placed(url: str, user: str) -> str:
    """The worker HAProxy sends ``user``'s requests to (before any cookie), read from the cookie it inserts."""
    req = urllib.request.Request(url + HEALTH_PATH, headers={"Authorization": basic(user)})
    with urllib.request.urlopen(req, timeout=10) as reply:
        found = re.search(rf"{balancer.COOKIE}=([^;]+)", reply.headers.get("Set-Cookie", ""))
    assert found, "HAProxy inserted no cookie"
    return found.group(1)


def users_per_worker(url: str, names: list[str], each: int) -> dict[str, list[str]]:
    """``each`` users placed on every worker named."""
    chosen: dict[str, list[str]] = {name: [] for name in names}
    for i in range(1, 500):
        user = f"agent{i:03d}"
        mine = chosen[placed(url, user)]
        if len(mine) < each:
            mine.append(user)
        if all(len(v) == each for v in chosen.values()):
            return chosen
    raise AssertionError(f"HAProxy placed no {each} users on each of {names}: {chosen}")


def timing_error(session: Session, recorded: list[float]) -> float:
    got = list(session.delays().values())
    assert len(got) == len(recorded), (got, recorded)
    return max(abs(g - r) for g, r in zip(got, recorded, strict=True))


def on_time(session: Session, recorded: list[float], again: Callable[[], Session]) -> int:
    """Assert that the session's events came on time. A session that was only late (the machine busy for a
    moment: other test runs share its two cores) is played once more, alone, as tests/conformance does: 1 then."""
    first = timing_error(session, recorded)
    if first <= TOLERANCE_MS:
        return 0
    second = again()
    assert_lifecycle(second, LIFECYCLE)
    assert timing_error(second, recorded) <= TOLERANCE_MS, (first, session.delays(), second.delays(), recorded)
    return 1


def play_all(url: str, jobs: list[tuple[str, str, list[str]]], recorded: list[float]) -> int:
    """Run every (client, user, options) session at once (their starts staggered); each must get exactly its own
    events, in order, on time. Returns how many clients that took (a session only late was played again)."""
    def play(i: int, wait: float = 0) -> Session:
        time.sleep(wait)
        client, user, extra = jobs[i]
        return run(client, url, LIFECYCLE, user=user, extra=extra)

    with ThreadPoolExecutor(len(jobs)) as pool:
        sessions = list(pool.map(lambda i: play(i, i * STAGGER), range(len(jobs))))
    again = 0
    for i, session in enumerate(sessions):
        assert_lifecycle(session, LIFECYCLE)
        assert not session.of("rehandshake")
        again += on_time(session, recorded, functools.partial(play, i))
    return len(jobs) + again


@pytest.fixture
def three(cassette: Path) -> Iterator[Proc]:
    proc = workers(3, cassette)
    yield proc
    proc.stop()


# Every transport of both peers: CometD JS over long-polling, callback-polling and WebSocket, aiocometd-ng over
# long-polling and WebSocket; one more aiocometd-ng long-polling session makes two clients per worker.
CLIENTS = ("python", "node")
SESSIONS = [("node", "long-polling"), ("node", "callback-polling"), ("node", "websocket"),
            ("python", "long-polling"), ("python", "websocket"), ("python", "long-polling")]


def test_every_client_gets_its_own_events_in_order_on_time_over_each_transport(cassette: Path, three: Proc) -> None:
    users = [u for group in users_per_worker(three.url, ["w1", "w2", "w3"], 2).values() for u in group]
    clients = play_all(three.url, [(client, user, ["--transport", transport])
                                   for (client, transport), user in zip(SESSIONS, users, strict=True)],
                       recorded_delays(cassette))
    whole = status(three.url, three.token)
    # Affinity: each session is one client on one worker; a request that strayed would have made another
    # client (or a miss) on the worker it reached.
    assert (whole["clients"], whole["events_released"], whole["misses"], whole["lost"]) == (clients, 4 * clients,
                                                                                          [], [])
    assert all(w["clients"] >= 2 for w in whole["workers"]), whole["workers"]
    assert whole["unused"] == []
    assert three.stop() == 0, three.stderr
    assert (f"to {clients} clients, {4 * clients} events released, 0 misses, 0 recorded exchanges never used "
            "(3 workers)") in three.stdout


def test_a_killed_worker_loses_only_its_own_clients_which_handshake_again(cassette: Path, three: Proc) -> None:
    placement = users_per_worker(three.url, ["w1", "w2", "w3"], 2)
    victim = "w2"
    running = {user: Running(client, three.url, LIFECYCLE, user=user,
                             extra=["--hold-before", "PauseCallRecording", "--trace"])
                          for group in placement.values() for client, user in zip(CLIENTS, group, strict=True)}
    for background in running.values():  # every client holds before its third operation
        background.wait_for("holding")
    victim_url, victim_pid = started(three)[victim]
    os.kill(victim_pid, signal.SIGKILL)
    for user in placement[victim]:  # its held connect broken, each of the victim's clients is back elsewhere
        running[user].wait_for("rehandshake")
    for background in running.values():
        background.release()
    sessions = {user: r.finish() for user, r in running.items()}
    recorded = recorded_delays(cassette)
    again = 0
    for user, session in sessions.items():
        assert_lifecycle(session, LIFECYCLE)
        if user in placement[victim]:  # lost its session: told so by the worker it reached, and back
            errors = [r["message"].get("error", "") for r in session.of("in")]
            assert any(e.startswith("402::") for e in errors), errors
            assert session.of("rehandshake")
        else:  # unaffected: no new handshake, every event on time across the kill
            assert not session.of("rehandshake")
            client = running[user].client
            again += on_time(session, recorded, functools.partial(run, client, three.url, LIFECYCLE, user=user))
    whole = status(three.url, three.token)
    assert whole["lost"] == [victim_url] and whole["misses"] == []
    # the four unaffected clients and the two victims, again, on the workers left
    assert sum(w.get("clients", 0) for w in whole["workers"]) == 6 + again
    assert three.stop() == 0, three.stderr
    assert f"worker {victim} ({victim_url}) was lost (killed by SIGKILL)" in three.stdout, three.stdout


def test_a_replay_too_busy_to_answer_for_seconds_is_not_taken_for_down(cassette: Path) -> None:
    """As busy as a burst of logins keeps it (answering nothing for seconds), a replay keeps its clients: before,
    health checks timed out at 500 ms, HAProxy marked it down and sent its clients where their sessions are unknown."""
    proc = workers(2, cassette)
    try:
        (user,) = users_per_worker(proc.url, ["w1", "w2"], 1)["w1"]
        pid = started(proc)["w1"][1]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(3)  # the pause is what is tested: six health checks meanwhile
        finally:
            os.kill(pid, signal.SIGCONT)
        assert placed(proc.url, user) == "w1"
    finally:
        assert proc.stop() == 0, proc.stderr
    assert " is DOWN" not in proc.stderr, proc.stderr


def test_a_strict_miss_on_one_worker_fails_the_whole_run(cassette: Path) -> None:
    proc = workers(2, cassette, "--allow-host-header", ALLOWED)
    # These workers also show the guard through HAProxy, which passes Host on: a foreign one refused, local names and
    # the allowed one (given to every worker) answered; the token every worker shares; the health path open.
    assert_guarded(proc.url, HEALTH_PATH)
    assert status(proc.url, proc.token)["lost"] == [] and ask(proc.url, STATUS_PATH)[1]["refused"] == "token"
    assert f"gwsvcr: status at {proc.url}{STATUS_PATH}?token={proc.token}" in proc.stderr
    req = urllib.request.Request(proc.url + "/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V",
                                 json.dumps({"operationName": "HoldCall"}).encode(),
                                 {"Authorization": basic("agent7"), "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(req, timeout=10)
    assert answered.value.code == 500
    assert json.loads(answered.value.read())["error"] == "gwsvcr: no recorded request matches"
    [miss] = status(proc.url, proc.token)["misses"]
    assert miss["request"] == "POST /api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V"
    assert miss["worker"] in [w["url"] for w in status(proc.url, proc.token)["workers"]]
    assert proc.stop() == 1, "strict replay with a miss on any worker exits 1"
    assert "1 misses" in proc.stdout and "(2 workers)" in proc.stdout
    assert "MISS POST /api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V" in proc.stderr  # the worker's own report


def proc_stat(pid: int) -> tuple[str, str, int] | None:
    """A process's name, state and parent, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, rest = text.split(" (", 1)[1].rsplit(")", 1)
    state, parent = rest.split()[:2]
    return name, state, int(parent)


def running_pid(pid: int) -> bool:
    """The process exists and has not ended (a zombie nobody reaped yet has)."""
    st = proc_stat(pid)
    return st is not None and st[1] != "Z"


def test_a_parent_killed_with_sigkill_takes_its_workers_and_haproxy_with_it(cassette: Path) -> None:
    proc = workers(2, cassette)
    try:
        stats = {int(d.name): proc_stat(int(d.name)) for d in Path("/proc").iterdir() if d.name.isdigit()}
        children = [pid for _, pid in started(proc).values()] + [
            pid for pid, st in stats.items() if st is not None and st[0] == "haproxy" and st[2] == proc.popen.pid]
        assert len(children) == 3 and all(map(running_pid, children))
        os.kill(proc.popen.pid, signal.SIGKILL)  # no summary, no clean-up: only what the children do themselves
        proc.popen.wait(10)
        deadline = time.monotonic() + 20
        while any(map(running_pid, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if running_pid(pid)], "workers or HAProxy outlived their parent"
        with pytest.raises(OSError):  # the port is free again: nothing answers there
            urllib.request.urlopen(proc.url + HEALTH_PATH, timeout=5)
    finally:
        proc.stop()


# ------------------------------------------------------------------------------------ HAProxy started by hand


def free_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` right now."""
    for _ in range(20):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            try:
                for host in hosts[1:]:
                    with socket.socket() as other:
                        other.bind((host, port))
            except OSError:
                continue
        return int(port)
    raise AssertionError(f"no port free on all of {hosts}")


@contextlib.contextmanager
def haproxy(config: str, directory: Path) -> Iterator[str]:
    """HAProxy run with ``config`` (whose frontend binds 127.0.0.1:PORT) until it answers; yields its URL."""
    path = directory / "haproxy.cfg"
    path.write_text(config)
    front = re.search(r"bind (127\.0\.0\.1:\d+)", config)
    assert front, config
    proc = subprocess.Popen([need_haproxy(), "-db", "-f", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://{front.group(1)}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                with urllib.request.urlopen(url + HEALTH_PATH, timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "HAProxy does not answer"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def doc_config() -> str:
    """The HAProxy configuration in docs/SCALING.md."""
    found = re.search(r"```haproxy\n(.*?)```", (ROOT / "docs" / "SCALING.md").read_text(), re.S)
    assert found, "docs/SCALING.md has no haproxy block"
    return found.group(1)


def test_the_multi_host_layout_of_docs_scaling_on_loopback_addresses(cassette: Path, tmp_path: Path) -> None:
    need_node()
    hosts = {"10.0.0.11": "127.0.0.2", "10.0.0.12": "127.0.0.3"}  # the doc's hosts, and who stands in for them
    port = free_port(*hosts.values())
    token = new_token()  # GWSVCR_TOKEN on every host: the replays ask each other for their status with it
    replays: list[Proc] = []
    try:
        # 1. the same cassette on every host
        for ip in hosts.values():
            (tmp_path / ip).mkdir()
            shutil.copy(cassette, tmp_path / ip / "fleet.yaml")
        # 2. a replay on each host, each knowing the other
        for ip in hosts.values():
            others = [f"--peer=http://{o}:{port}" for o in hosts.values() if o != ip]
            replays.append(gwsvcr("replay", str(tmp_path / ip / "fleet.yaml"), "--host", ip, "--port", str(port),
                                  *others, env={TOKEN_ENV: token}))
        # 3. HAProxy from the doc's configuration, the hosts' addresses replaced by their stand-ins'
        config = doc_config().replace("bind :8100", f"bind 127.0.0.1:{free_port('127.0.0.1')}")
        for doc_ip, ip in hosts.items():
            config = config.replace(f"{doc_ip}:8101", f"{ip}:{port}")
        with haproxy(config, tmp_path) as url:
            placement = users_per_worker(url, ["replay-a", "replay-b"], 2)
            clients = play_all(url, [(client, user, []) for group in placement.values()
                                     for client, user in zip(CLIENTS, group, strict=True)], recorded_delays(cassette))
            # 4. the totals, through the balancer
            whole = status(url, token)
        assert (whole["clients"], whole["events_released"], whole["misses"], whole["lost"]) == (clients, 4 * clients,
                                                                                              [], [])
        assert sorted(w["url"] for w in whole["workers"]) == [f"http://{ip}:{port}" for ip in hosts.values()]
        assert all(w["clients"] >= 2 for w in whole["workers"])
        assert whole["cassette_sha256"] == hashlib.sha256(cassette.read_bytes()).hexdigest()
    finally:
        codes = [r.stop() for r in replays]
    assert codes == [0, 0], [r.stderr for r in replays]


def test_haproxys_cookie_never_reaches_a_replay_its_cassette_or_a_replayed_reply(cassette: Path, sim: Proc,
                                                                                  tmp_path: Path) -> None:
    copy = tmp_path / "lenient.yaml"
    shutil.copy(cassette, copy)
    replay = gwsvcr("replay", str(copy), "--port", "0", "--lenient", "--upstream", sim.url)
    try:
        config = balancer.config(f"127.0.0.1:{free_port('127.0.0.1')}",
                                 [("w1", replay.url.removeprefix("http://"))], 30)
        with haproxy(config, tmp_path) as url:
            auth = {"Authorization": basic("agent1")}
            with urllib.request.urlopen(urllib.request.Request(url + "/api/v2/me", headers=auth), timeout=10) as r:
                set_cookies = r.headers.get_all("Set-Cookie")
            assert [c.split("=")[0] for c in set_cookies] == ["JSESSIONID", balancer.COOKIE], set_cookies
            assert set_cookies[0].startswith("JSESSIONID=gwsvcr"), "the replay's own value, not a recorded one"
            cookies = "; ".join(c.split(";")[0] for c in set_cookies)
            # not in the cassette: a lenient miss, answered by the simulator and appended to the cassette with the
            # request as the replay received it
            req = urllib.request.Request(url + "/api/v2/me/calls", headers={**auth, "Cookie": cookies})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert json.loads(r.read())["calls"]
                assert not any(balancer.COOKIE in c for c in r.headers.get_all("Set-Cookie") or [])
    finally:
        assert replay.stop() == 0, replay.stderr
    appended = cas.load(copy, use_cache=False).exchanges[-1]
    assert appended.request.path == "/api/v2/me/calls"
    sent = {name.lower(): value for name, value in appended.request.headers}["cookie"]  # HAProxy lower-cases
    assert sent.startswith("JSESSIONID=") and balancer.COOKIE not in sent
    assert balancer.COOKIE not in copy.read_text()
