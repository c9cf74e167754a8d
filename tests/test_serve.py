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


def test_the_live_view_writes_its_lines_as_the_handler_would(restored: None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from gwsvcr.addons import live as live_view

    serve.configure_logging()
    handler = live_view._plain_handler()
    assert handler is not None  # the gwsvcr command's stderr: written directly, without a record
    line = "client 3   <- /v2/me/calls CallRecordingStateChange (Stopped)  251 ms after #5 StopCallRecording é"
    live_view.show(line)
    logging.getLogger(live_view.LOGGER).info("%s", line)  # what the handler writes for the same line
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{line}\n{line}\n"


def test_the_live_view_goes_through_logging_when_anything_could_drop_or_change_a_line(
        restored: None, capsys: pytest.CaptureFixture[str]) -> None:
    from gwsvcr.addons import live as live_view

    serve.configure_logging()
    ours = logging.getLogger("gwsvcr").handlers[0]
    seen: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return "secret" not in record.getMessage()

    ours.addFilter(keep)
    try:
        assert live_view._plain_handler() is None
        live_view.show("shown")
        live_view.show("a secret")
    finally:
        ours.removeFilter(keep)
    ours.setFormatter(logging.Formatter("live: %(message)s"))
    assert live_view._plain_handler() is None
    live_view.show("formatted")
    assert seen == ["shown", "a secret"]
    assert capsys.readouterr().err == "shown\nlive: formatted\n"
    logging.getLogger(live_view.LOGGER).setLevel(logging.WARNING)  # --quiet
    try:
        assert live_view._plain_handler() is None
    finally:
        logging.getLogger(live_view.LOGGER).setLevel(logging.NOTSET)
