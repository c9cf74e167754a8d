"""The serving commands' logging (cli/serve.py): where records go, however often it is set up."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gwsvcr.addons.flowconv import SUMMARY_LOGGER
from gwsvcr.cli import serve


@pytest.fixture
def restored() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in (SUMMARY_LOGGER, "gwsvcr", None)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def test_configured_twice_each_record_is_written_once_to_its_stream(restored: None,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    serve.configure_logging()
    serve.configure_logging()  # a second server in the same process (the pytest plugin, gwsvcr.replaying)
    logging.getLogger(SUMMARY_LOGGER).info("gwsvcr: replay stopped")
    logging.getLogger("gwsvcr.replay").info("MISS GET /x")
    logging.getLogger("mitmproxy.proxy").info("chatter")
    logging.getLogger("mitmproxy.proxy").warning("addon error")
    out, err = capsys.readouterr()
    assert out == "gwsvcr: replay stopped\n"
    assert err == "MISS GET /x\ngwsvcr: WARNING: addon error\n"
