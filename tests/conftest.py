from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import PEERS, Proc, gwsvcr, need_node, start


@pytest.fixture
def sim() -> Iterator[Proc]:
    """``gwsvcr sim`` on a free loopback port; must stop cleanly (exit 0) on SIGTERM."""
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "250")
    yield proc
    assert proc.stop() == 0, proc.stderr


@pytest.fixture
def faye() -> Iterator[Proc]:
    """A real Bayeux server (npm faye) with GWS-like REST in front of it (tests/peers/faye_gws.js)."""
    proc = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "250"])
    yield proc
    proc.stop()


def record(upstream: str, cassette: Path, *args: str) -> Proc:
    return gwsvcr("record", "--upstream", upstream, "--cassette", str(cassette), "--port", "0", *args)


def replay(cassette: Path, *args: str) -> Proc:
    return gwsvcr("replay", str(cassette), "--port", "0", *args)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No cassette any test recorded holds a secret: every recording under pytest's basetemp is scanned."""
    from tests.reliability.secretscan import scan_tree

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    leaks = scan_tree(factory.getbasetemp())
    if leaks:
        session.config.get_terminal_writer().line("SECRETS IN CASSETTES:\n" + "\n".join(leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
