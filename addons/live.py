"""The live view's printer: the lines of :mod:`gwsvcr.live` go to the logger ``gwsvcr.live`` at INFO (stderr under
the ``gwsvcr`` command unless ``--quiet``; mitmproxy's own event log under mitmdump)."""

from __future__ import annotations

import logging
from typing import Any

from gwsvcr.live import LOGGER

logger = logging.getLogger(LOGGER)
_MESSAGE_ONLY = "%(message)s"


def showing() -> bool:
    return logger.isEnabledFor(logging.INFO)


def show(line: str) -> None:
    """Print one line. When the one handler the record would reach writes the message as it is to a stream (the
    ``gwsvcr`` command's stderr: cli/serve.py configure_logging), the line is written to that stream directly, byte
    for byte what the handler writes: a record costs 20-25 µs to make and pass along (the caller's frame looked up,
    the thread, process and task named), a line written 3 µs, and a replay writes a line per request and per
    event. Any other set-up (a filter, another format or handler, pytest's caplog) gets the record as before."""
    handler = _plain_handler()
    if handler is None:
        logger.info("%s", line)
        return
    with handler.lock:  # type: ignore[union-attr]  # None only before createLock: never for a StreamHandler
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: the handler reports it, the server goes on
            handler.handleError(logger.makeRecord(logger.name, logging.INFO, "", 0, "%s", (line,), None))


def _plain_handler() -> logging.StreamHandler[Any] | None:
    """The only handler an INFO record of the live view reaches (as ``Logger.callHandlers`` walks them), when it
    writes such a record as its message alone and nothing on the way could drop or change it; else None."""
    if logger.filters or logger.disabled or not showing():
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            formatter = handler.formatter
            if (found is not None or type(handler) is not logging.StreamHandler or handler.filters
                    or handler.level > logging.INFO or type(formatter) is not logging.Formatter
                    or type(formatter._style) is not logging.PercentStyle or formatter._fmt != _MESSAGE_ONLY):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found
