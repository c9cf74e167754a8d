"""A client that keeps no cookies (aiocometd-ng with ``--no-cookies``: Basic auth on every request, REST and CometD
alike, as curl without a cookie jar; the JSESSIONID the server sets is never sent back), recorded against ``gwsvcr
sim`` and replayed to two such clients of the same user, one after the other and both at once: nothing but what
each asks tells the replay which is which. Each gets its own complete session: every operation answered, every
notification on its own CometD connection after its own operation, within 25 ms of the recorded delay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import LIFECYCLE, Running, Session, assert_lifecycle, run
from tests.conftest import record_from_sim
from tests.e2e.released import assert_never_early, on_time, recorded_delays, releases, replayed_to

COOKIELESS = ["--no-cookies"]


@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cookieless") / "basic-only.yaml"
    record_from_sim(path, COOKIELESS)
    sent = [h[0].lower() for ex in cas.load(path).exchanges for h in ex.request.headers]
    assert "authorization" in sent and "cookie" not in sent
    return path


def played(path: Path, clients: Callable[[str], list[Session]]) -> dict[str, float]:
    """One replay of ``path`` to the clients ``clients(url)`` runs: each did the whole lifecycle, nothing was
    missed or left unused, each client took a session of its own, the replay released nothing before its recorded
    delay; returns how far from it each event came as the clients saw it."""
    sessions, server = replayed_to(path, clients)
    recorded = recorded_delays(path)
    released = releases(server.stderr)
    assert_never_early(released, recorded)
    assert sorted(r.client for r in released) == [1] * len(LIFECYCLE) + [2] * len(LIFECYCLE), released
    want = {ex.request.body["operationName"]: recorded[(ex.number, "/v2/me/calls")]
            for ex in cas.load(path).exchanges if ex.request.kind == "json" and "operationName" in ex.request.body}
    errors = {}
    for n, session in enumerate(sessions, 1):
        assert_lifecycle(session, LIFECYCLE)
        errors.update({f"client {n} {e['op']}": e["delay_ms"] - want[e["op"]] for e in session.events})
    return errors


def test_two_cookie_less_clients_of_one_user_one_after_the_other(cassette: Path) -> None:
    """The second connects once the first has disconnected: its handshake is not the spent session's."""
    on_time(lambda: played(cassette, lambda url: [run("python", url, LIFECYCLE, extra=COOKIELESS)
                                                  for _ in range(2)]))


def test_two_cookie_less_clients_of_one_user_at_once(cassette: Path) -> None:
    """The second starts once the first had the reply to its first operation: from then on both run the same
    operations, each a step behind or ahead of the other."""
    def both(url: str) -> list[Session]:
        first = Running("python", url, LIFECYCLE, extra=COOKIELESS)
        first.wait_for("reply", op=LIFECYCLE[0])
        second = Running("python", url, LIFECYCLE, extra=COOKIELESS)
        return [first.finish(), second.finish()]

    on_time(lambda: played(cassette, both))
