"""What a replay says it released (its live view on stderr), against what the cassette recorded: for the end-to-end
tests that must tell an event the replay released early (always a bug) from one a client on a loaded machine saw
early or late by its own clock (its process stalled between a reply and the next event).

TOLERANCE_MS is what the issue asked of these SDK tests: each event within 25 ms of its recorded delay, as the
client saw it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gwsvcr import cassette as cas
from tests.conftest import replay
from tests.procs import Proc

TOLERANCE_MS = 25.0
RELEASE = re.compile(r"^client (\d+)   <- (\S+) .*?  (\d+) ms after #(\d+)")


@dataclass(frozen=True)
class Release:
    client: int
    channel: str
    ms: int  # after the reply of its cause reached the client, as the replay measured it
    cause: int  # the recorded exchange whose event it is


def replayed_to[T](path: Path, clients: Callable[[str], T]) -> tuple[T, Proc]:
    """Replay ``path`` (strict, its live view on) to ``clients(url)``, the replay stopped whatever they did; what
    they gave and the stopped replay, which served everything: exit 0, 0 misses, 0 recorded exchanges unused."""
    server = replay(path)
    try:
        given = clients(server.url)
    finally:
        code = server.stop()
    assert code == 0, server.stderr
    assert "0 misses, 0 recorded exchanges never used" in server.stdout, server.stdout + server.stderr
    return given, server


def releases(stderr: str) -> list[Release]:
    """Every event the replay released, in order, from its live view."""
    found = (RELEASE.match(line) for line in stderr.splitlines())
    return [Release(int(m[1]), m[2], int(m[3]), int(m[4])) for m in found if m]


def recorded_delays(path: Path) -> dict[tuple[int, str], float]:
    """(cause, channel) -> the recorded delay of that event after its cause's reply, in ms."""
    return {(item.cause, item.message["channel"]): item.delay * 1000 for ex in cas.load(path).exchanges
            for item in ex.reply_items() if item.is_event and item.cause is not None and item.delay is not None}


def assert_never_early(released: list[Release], recorded: dict[tuple[int, str], float]) -> None:
    """No event went out before its recorded delay after its cause (the live view rounds to the millisecond)."""
    early = [(r, recorded[(r.cause, r.channel)]) for r in released if r.ms < recorded[(r.cause, r.channel)] - 1]
    assert not early, f"released before their recorded delay: {early}"


def on_time(play: Callable[[], dict[str, float]]) -> list[float]:
    """Run ``play`` (one replay and its clients, asserting everything but what the clients' clocks saw, and
    returning each event's error against its recorded delay, in ms). A run whose only fault is that timing (a
    client process stalled on the shared machine; the replay itself released nothing early) is played once
    more, as tests/conformance does; the worst error of each run is returned."""
    measured = []
    for _ in range(2):
        errors = play()
        measured.append(round(max(abs(e) for e in errors.values()), 1))
        if measured[-1] <= TOLERANCE_MS:
            return measured
    raise AssertionError(f"off by more than {TOLERANCE_MS} ms twice: {measured}; the second time: {errors}")
