"""Loaded cassettes kept in memory for their next use: the replay service mounts the same files again and again,
and a replayer whose timing or strictness changes replays the same file."""

from __future__ import annotations

import collections
import os
from typing import Any

from gwsvcr.cassette.load import load
from gwsvcr.cassette.model import Cassette

__all__ = ["CassetteCache"]


_Key = tuple[str, int, int, int]  # path, modification time, size, inode


class CassetteCache:
    """Loaded cassettes, the least recently used dropped first, keyed by what tells a changed file: its path,
    modification time, size and inode (a file replaced by another); as many as fit in ``keep_bytes`` of cassette
    files, and always the last one (``keep_bytes=0``: just that one, what a replayer whose options change needs).
    Loading is the cost; what is built from a loaded cassette can be kept beside it (:meth:`memo`)."""

    def __init__(self, keep_bytes: int = 0) -> None:
        self.keep_bytes = keep_bytes
        self._loaded: collections.OrderedDict[_Key, Cassette] = collections.OrderedDict()
        self._memos: dict[int, tuple[Cassette, dict[Any, Any]]] = {}  # by id() of a cassette in _loaded
        self._bytes = 0
        self.hits = 0
        self.loads = 0

    def get(self, path: str) -> Cassette:
        """The cassette at ``path``; :class:`CassetteError` when it is invalid."""
        try:
            st = os.stat(path)
        except OSError:
            return load(path)  # raises CassetteError naming the file and what to do
        key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
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
        self._memos[id(cassette)] = (cassette, {})
        self._bytes += st.st_size
        while len(self._loaded) > 1 and self._bytes > self.keep_bytes:
            self._drop(next(iter(self._loaded)))
        return cassette

    def memo(self, cassette: Cassette) -> dict[Any, Any]:
        """A place for what is built from ``cassette`` (as :meth:`get` gave it), kept as long as it is loaded and
        dropped with it when its file changes: the replay service keeps each mount's scripts there
        (:class:`gwsvcr.replay.replayer.Prepared`). A cassette no longer kept gets a new place, kept nowhere."""
        held, memo = self._memos.get(id(cassette), (None, {}))
        return memo if held is cassette else {}

    def _drop(self, key: _Key) -> None:
        del self._memos[id(self._loaded.pop(key))]
        self._bytes -= key[2]

    def __len__(self) -> int:
        return len(self._loaded)
