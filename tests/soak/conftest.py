"""The soak suite runs for minutes: only with --soak (`make soak`), skipped otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gwsvcr soak")
    group.addoption("--soak", action="store_true", default=False,
                    help="Run the soak tests in tests/soak (minutes; `make soak`).")
    group.addoption("--soak-minutes", type=float, default=10.0,
                    help="How long the soak replays its 200 sessions, in minutes (default 10).")
    group.addoption("--soak-clients", type=int, default=200,
                    help="How many concurrent sessions the soak replays (default 200).")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if item.path.is_relative_to(here)]
    if not config.getoption("--soak", default=False):
        skip = pytest.mark.skip(reason="soak test: minutes long; run `make soak` (pytest tests/soak --soak)")
        for item in mine:
            item.add_marker(skip)
        return
    # Bounded: the run's own length plus a margin, instead of the suite's 120 s per test.
    limit = int(config.getoption("--soak-minutes") * 60 + 300)
    for item in mine:
        item.add_marker(pytest.mark.timeout(limit))
