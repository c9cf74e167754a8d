"""Record modes, VCR.py's vocabulary: what recording does with a cassette that already exists."""

from __future__ import annotations

import os
from enum import StrEnum

from gwsvcr.errors import GwsvcrError

__all__ = ["HELP", "CassetteExists", "RecordMode", "check_target"]


class RecordMode(StrEnum):
    ONCE = "once"  # refuse an existing cassette
    NEW_EPISODES = "new_episodes"  # append new sessions as a new episode
    ALL = "all"  # rewrite
    NONE = "none"  # record nothing (pass-through check)


HELP = ("once: refuse an existing cassette; new_episodes: append new sessions; all: rewrite; "
        "none: record nothing (pass-through check).")


class CassetteExists(GwsvcrError):
    """Record mode once met a cassette that is already there."""


def check_target(path: str | os.PathLike[str], mode: RecordMode | str, option: str = "--record-mode {}") -> None:
    """Raise :class:`CassetteExists` when ``mode`` may not touch the cassette at ``path``; the message says how to
    choose another mode with ``option`` (``--record-mode {}`` on the command line, ``mode="{}"`` in Python)."""
    if RecordMode(mode) is RecordMode.ONCE and os.path.exists(path) and os.path.getsize(path) > 0:
        append, rewrite = option.format(RecordMode.NEW_EPISODES), option.format(RecordMode.ALL)
        raise CassetteExists(f"{os.fspath(path)} exists, and record mode once (the default) never touches an "
                             f"existing cassette: replay it, or give {append} to append to it or {rewrite} to "
                             "rewrite it")
