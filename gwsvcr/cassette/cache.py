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
        _trim(d)
    except OSError:
        pass  # a read-only home must not stop a replay


def _trim(d: Path) -> None:
    """Drop the least recently used entries beyond the count and the size the cache keeps."""
    entries = []
    for path in d.glob("*.json"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    entries.sort(reverse=True)
    total = 0
    for i, (_, size, path) in enumerate(entries):
        total += size
        if i > 0 and (i >= _CACHE_KEEP or total > _CACHE_KEEP_BYTES):  # never the entry just written
            path.unlink(missing_ok=True)
