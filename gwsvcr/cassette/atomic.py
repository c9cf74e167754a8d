"""Replacing a file in one step: whole-cassette saves (cassette.write) and the parse cache (cassette.cache) write
through it, so a reader, or a crash, never sees half a file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike[str], chunks: str | Iterable[str]) -> None:
    """Replace ``path`` in one step: a reader (or a crash) never sees half a file, and no temporary is left."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines([chunks] if isinstance(chunks, str) else chunks)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
