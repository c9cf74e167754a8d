"""Loaded cassettes kept in memory for their next use: the replay service mounts the same files again and again,
and a replayer whose timing or strictness changes replays the same file."""

from __future__ import annotations

import collections
import os

from gwsvcr.cassette.load import load
from gwsvcr.cassette.model import Cassette

__all__ = ["CassetteCache"]


class CassetteCache:
    """Loaded cassettes, the least recently used dropped first, keyed by what tells a changed file: its path,
    modification time and size; as many as fit in ``keep_bytes`` of cassette files, and always the last one
    (``keep_bytes=0``: just that one, what a replayer whose options change needs). Building a Replayer from a
    loaded Cassette is cheap; loading is not."""

    def __init__(self, keep_bytes: int = 0) -> None:
        self.keep_bytes = keep_bytes
        self._loaded: collections.OrderedDict[tuple[str, int, int], Cassette] = collections.OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.loads = 0

    def get(self, path: str) -> Cassette:
        """The cassette at ``path``; :class:`CassetteError` when it is invalid."""
        try:
            st = os.stat(path)
        except OSError:
            return load(path)  # raises CassetteError naming the file and what to do
        key = (path, st.st_mtime_ns, st.st_size)
        cassette = self._loaded.get(key)
        if cassette is not None:
            self._loaded.move_to_end(key)
            self.hits += 1
            return cassette
        cassette = load(path)
        self.loads += 1
        for old in [k for k in self._loaded if k[0] == path]:
            self._drop(old)  # an older version of the same file
        self._loaded[key] = cassette
        self._bytes += st.st_size
        while len(self._loaded) > 1 and self._bytes > self.keep_bytes:
            self._drop(next(iter(self._loaded)))
        return cassette

    def _drop(self, key: tuple[str, int, int]) -> None:
        del self._loaded[key]
        self._bytes -= key[2]

    def __len__(self) -> int:
        return len(self._loaded)
