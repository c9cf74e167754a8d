"""The parse cache: documents the safe loader produced, kept as JSON (never pickle) keyed by the file's SHA-256,
so the same cassette loads fast on every later run with exactly the same objects."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gwsvcr.cassette.atomic import write_atomically

_CACHE_FORMAT = "gwsvcr-parse-cache-1"
# What the cache keeps, the least recently used dropped first: a test suite has a cassette per test, so hundreds.
_CACHE_KEEP = 2000
_CACHE_KEEP_BYTES = 512 * 1024 * 1024
# Over its limits, the cache is trimmed to this share of them: the puts that follow do not each walk it again.
_TRIM_TO = 0.9
# Per cache directory: [entries, bytes] as this process last counted them, plus what it has put since. Walking the
# directory (a stat per entry) took 6 ms at 200 entries, 55 at 2,000: on every put it was most of a cold mount.
_counted: dict[Path, list[int]] = {}

def _cache_dir() -> Path | None:
    if os.environ.get("GWSVCR_NO_CACHE"):
        return None
    base = os.environ.get("GWSVCR_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gwsvcr")
    return Path(base)


def cache_get(digest: str) -> list[Any] | None:
    d = _cache_dir()
    if d is None:
        return None
    path = d / f"{digest}.json"
    try:
        raw = path.read_bytes()
        blob = json.loads(raw)
        os.utime(path)  # used: the last to go
    except (OSError, ValueError):
        return None
    if not isinstance(blob, dict) or blob.get("format") != _CACHE_FORMAT or blob.get("sha256") != digest:
        return None
    docs = blob.get("docs")
    return docs if isinstance(docs, list) else None


def cache_put(digest: str, docs: list[Any]) -> None:
    d = _cache_dir()
    if d is None:
        return
    try:
        text = json.dumps({"format": _CACHE_FORMAT, "sha256": digest, "docs": docs}, separators=(",", ":"))
    except (TypeError, ValueError):
        return  # a timestamp or binary node: JSON cannot hold it identically, so it is not cached
    if json.loads(text)["docs"] != docs:
        return  # e.g. integer mapping keys: JSON would change them; keep the cache exact
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_atomically(d / f"{digest}.json", text)
        _count_put(d, len(text.encode()))
    except OSError:
        pass  # a read-only home must not stop a replay


def _count_put(d: Path, size: int) -> None:
    """Trim the cache on this process's first put into it, then only once its count says the cache went over its
    limits (other processes' puts are seen at the next trim: the limits are kept within what they add meanwhile)."""
    counted = _counted.get(d)
    if counted is not None:
        counted[0] += 1
        counted[1] += size
        if counted[0] <= _CACHE_KEEP and counted[1] <= _CACHE_KEEP_BYTES:
            return
    _counted[d] = _trim(d)


def _trim(d: Path) -> list[int]:
    """When the cache is over the count or the size it keeps, drop the least recently used entries until it is
    at ``_TRIM_TO`` of them; [entries, bytes] left."""
    entries = []
    for path in d.glob("*.json"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    entries.sort(reverse=True)
    kept = [len(entries), sum(size for _, size, _ in entries)]
    if kept[0] <= _CACHE_KEEP and kept[1] <= _CACHE_KEEP_BYTES:
        return kept
    keep, keep_bytes = int(_CACHE_KEEP * _TRIM_TO), int(_CACHE_KEEP_BYTES * _TRIM_TO)
    kept = [0, 0]
    for i, (_, size, path) in enumerate(entries):
        if i == 0 or (kept[0] == i and i < keep and kept[1] + size <= keep_bytes):  # never the entry just written
            kept[0] += 1
            kept[1] += size
        else:  # this one and every less recently used one
            path.unlink(missing_ok=True)
    return kept
