"""kill -9 the recorder at random moments of a busy session: the cassette always validates and holds every
exchange whose reply a client received before the kill.

Each trial records `gwsvcr sim` through a fresh `gwsvcr record` while three clients keep it busy (REST
operations, REST reads, a CometD long-poll that carries the operations' notifications). Once every client has
had a reply (an event, not a sleep), the recorder is killed after a random delay drawn from a fixed seed.
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import random
import signal
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record
from tests.procs import Proc, gwsvcr
from tests.reliability.netutil import CALL, COMETD, basic, call

TRIALS = 20
SEED = 8
PARALLEL = 4  # trials run side by side (each with its own recorder) to keep the test short
MAX_KILL_DELAY = 1.0  # seconds after every client had its first reply
# Four recorders kept as busy as their clients can make them fill both cores: alone, so that no neighbour's timing
# check runs on a starved machine (tests/conftest.py).
pytestmark = pytest.mark.solo


@pytest.fixture(scope="module")
def upstream() -> Iterator[Proc]:
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "20")
    yield proc
    assert proc.stop() == 0, proc.stderr


@dataclass
class Seen:
    """What the clients of one trial received, noted the moment a reply was read completely."""

    rest: dict[str, int] = field(default_factory=dict)  # probe marker -> status
    bayeux: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # request message id -> reply messages
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client(threading.Thread):
    """Repeats ``step`` until a request fails (the recorder is gone); ``first`` is set after the first reply."""

    def __init__(self, step: Callable[[int], None]) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.first = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        i = 0
        try:
            while True:
                self.step(i)
                self.first.set()
                i += 1
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            return  # refused, reset, or cut mid-reply: the kill
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.failure = e


def busy_clients(url: str, user: str, seen: Seen) -> list[Client]:
    auth = {"Authorization": basic(user, "pw-" + user)}

    def rest(marker: str, method: str, path: str, body: Any = None) -> None:
        status, _, _ = call(f"{url}{path}?probe={marker}", method, body, auth, timeout=20)
        with seen.lock:
            seen.rest[marker] = status

    def operations(i: int) -> None:
        op = "StopCallRecording" if i % 2 == 0 else "StartCallRecording"
        rest(f"op{i}", "POST", CALL, {"operationName": op})

    def reads(i: int) -> None:
        rest(f"get{i}", "GET", "/api/v2/me" if i % 2 == 0 else "/api/v2/me/calls")

    cid: list[str] = []

    def bayeux(i: int) -> None:
        mid = f"b{i}"
        message: dict[str, Any]
        if i == 0:
            message = {"channel": "/meta/handshake", "version": "1.0", "id": mid,
                       "supportedConnectionTypes": ["long-polling"]}
        elif i == 1:
            message = {"channel": "/meta/connect", "clientId": cid[0], "id": mid, "connectionType": "long-polling",
                       "advice": {"timeout": 0}}
        elif i == 2:
            message = {"channel": "/meta/subscribe", "clientId": cid[0], "id": mid, "subscription": "/v2/me/calls"}
        else:
            message = {"channel": "/meta/connect", "clientId": cid[0], "id": mid, "connectionType": "long-polling"}
        status, replies, _ = call(url + COMETD, "POST", [message], auth, timeout=40)
        assert status == 200 and isinstance(replies, list), (status, replies)
        if i == 0:
            cid.append(replies[0]["clientId"])
        with seen.lock:
            seen.bayeux[mid] = replies

    return [Client(operations), Client(reads), Client(bayeux)]


def missing_from(path: Path, seen: Seen) -> list[str]:
    """Every reply a client received that the cassette does not hold, as readable lines."""
    c = cas.load(path, use_cache=False)
    by_marker: dict[str, cas.Exchange] = {}
    by_id: dict[str, cas.Exchange] = {}
    for ex in c.exchanges:
        for name, value in ex.request.query:
            if name == "probe":
                by_marker[value] = ex
        if ex.is_bayeux:
            for m in ex.request.body:
                by_id[str(m.get("id"))] = ex
    out = []
    for marker, status in seen.rest.items():
        rest = by_marker.get(marker)
        if rest is None or rest.response is None or rest.response.status != status:
            out.append(f"REST reply {marker} ({status}) not recorded")
    for mid, replies in seen.bayeux.items():
        bay = by_id.get(mid)
        recorded = [item.message for item in bay.reply_items()] if bay is not None else None
        if recorded is None or [m.get("data") for m in recorded] != [m.get("data") for m in replies] or \
                [m.get("channel") for m in recorded] != [m.get("channel") for m in replies]:
            out.append(f"CometD reply to {mid} not recorded as received: {json.dumps(replies)[:200]}")
    return out


def trial(upstream: Proc, workdir: Path, n: int, delay: float) -> tuple[str, list[str]]:
    path = workdir / f"trial{n}.yaml"
    recorder = record(upstream.url, path)
    seen = Seen()
    clients = busy_clients(recorder.url, f"crash{n}", seen)
    for client in clients:
        client.start()
    for client in clients:
        assert client.first.wait(20), f"trial {n}: a client had no reply: {client.failure!r}"
    time.sleep(delay)  # the one sleep: the random moment of the kill
    recorder.stop(signal.SIGKILL)
    for client in clients:
        client.join(45)
        assert not client.is_alive(), f"trial {n}: a client still waits after the kill"
    failures = [f"client failed: {c.failure!r}" for c in clients if c.failure is not None]
    with seen.lock:
        problems = cas.validate(path)
        failures += [f"does not validate: {p}" for p in problems]
        if not problems:
            failures += missing_from(path, seen)
        replies = len(seen.rest) + len(seen.bayeux)
    events = sum(1 for r in seen.bayeux.values() for m in r if "data" in m)
    summary = f"trial {n:2}: killed {delay:.3f}s in, {replies} replies ({events} events) received"
    return summary, [f"trial {n} (kill after {delay:.3f}s): {f}" for f in failures]


def test_kill_9_during_a_busy_session_loses_nothing_received(upstream: Proc, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    delays = [rng.uniform(0.0, MAX_KILL_DELAY) for _ in range(TRIALS)]
    with cf.ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda nd: trial(upstream, tmp_path, *nd), enumerate(delays, 1)))
    failures = [f for _, fs in results for f in fs]
    print("\n" + "\n".join(s for s, _ in results))
    assert not failures, "\n".join(failures)
