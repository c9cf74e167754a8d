from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.procs import Proc, gwsvcr


@pytest.fixture
def sim() -> Iterator[Proc]:
    """``gwsvcr sim`` on a free loopback port; must stop cleanly (exit 0) on SIGTERM."""
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "250")
    yield proc
    assert proc.stop() == 0, proc.stderr
