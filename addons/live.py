"""The live view's printer: the lines of :mod:`gwsvcr.live` go to the logger ``gwsvcr.live`` at INFO (stderr under
the ``gwsvcr`` command unless ``--quiet``; mitmproxy's own event log under mitmdump)."""

from __future__ import annotations

import logging

from gwsvcr.live import LOGGER

logger = logging.getLogger(LOGGER)


def showing() -> bool:
    return logger.isEnabledFor(logging.INFO)


def show(line: str) -> None:
    logger.info("%s", line)
