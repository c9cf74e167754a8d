"""Ctrl-C while a CometD long-poll is held: record and replay end quietly (exit 0, no traceback, no addon error),
name the request that was in flight, and keep everything that completed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from gwsvcr import gws
from gwsvcr.democlient import DemoClient
from tests.procs import ROOT, Proc, gwsvcr

LIFECYCLE = ROOT / "cassettes" / "recording_lifecycle.yaml"
NOISE = ("Traceback", "CancelledError", "Addon error", "closed file", "ERROR")


@pytest.fixture(scope="module")
def sim() -> Iterator[Proc]:
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "50")
    yield proc
    proc.stop()


def wait_for(proc: Proc, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in proc.err):
        assert time.monotonic() < deadline, f"{text!r} never came: {''.join(proc.err)}"
        time.sleep(0.02)


def held_then_interrupted(server: Proc, operation: str | None) -> None:
    """A client logs in, subscribes (and operates); once its next connect is held, Ctrl-C the server."""
    async def agent() -> int:
        client = DemoClient(server.url)
        await client.login()
        await client.connect()
        if operation:
            await client.operate(gws.SEED_CALL_ID, operation)
        await asyncio.to_thread(wait_for, server, "/meta/subscribe")
        await asyncio.sleep(0.3)  # the client's next /meta/connect is on its way and held (no event is due)
        code = await asyncio.to_thread(server.stop, signal.SIGINT)
        with contextlib.suppress(Exception):  # the server is gone: the client's goodbye goes nowhere
            await client.close()
        return code

    assert asyncio.run(agent()) == 0, "".join(server.err)


def assert_quiet_with_what_was_in_flight(server: Proc) -> None:
    err = "".join(server.err)
    assert not [n for n in NOISE if n in err], err
    assert "gwsvcr: stopped with 1 request in flight, left without a reply:" in err, err
    assert "POST /api/v2/notifications/connect /meta/connect, waiting" in err, err


def test_record_interrupted_during_a_held_connect(sim: Proc, tmp_path: Path) -> None:
    path = tmp_path / "held.yaml"
    recorder = gwsvcr("record", "--upstream", sim.url, "--cassette", str(path), "--record-mode", "all",
                      "--port", "0")
    held_then_interrupted(recorder, "StopCallRecording")
    assert_quiet_with_what_was_in_flight(recorder)
    shown = [line.split()[1] for line in recorder.err if line.startswith("s1 #") and "<-" not in line]
    recorded = cas.load(path, use_cache=False)
    assert [f"#{ex.number}" for ex in recorded.exchanges] == shown  # every completed exchange kept
    assert sum(item.is_event for ex in recorded.exchanges for item in ex.reply_items()) == 1
    assert "recorded 6 exchanges" in "".join(recorder.out)


def test_replay_interrupted_during_a_held_connect() -> None:
    replayer = gwsvcr("replay", str(LIFECYCLE), "--port", "0")
    held_then_interrupted(replayer, None)
    assert_quiet_with_what_was_in_flight(replayer)
    assert "served 5 requests" in "".join(replayer.out)
