"""Bodies the recorder cannot hold whole: passed on chunk by chunk as they arrive, counted and hashed, kept only
while they stay within the limit (``--max-body``).

A body under the limit is recorded as usual; one over it is written as ``omitted: {size, sha256}``, so memory stays
bounded whatever a client downloads through the recorder.
"""

from __future__ import annotations

import hashlib

from gwsvcr.cassette import Omitted

__all__ = ["DEFAULT_MAX_BODY", "BodyTee", "too_large_or_unknown"]

DEFAULT_MAX_BODY = "16m"  # as the replayer's and the simulator's limit on request bodies


class BodyTee:
    """Called with each chunk of a streaming body (and ``b""`` at its end), returns it unchanged; keeps the chunks
    until their total passes ``limit``, and the size and SHA-256 of everything."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._kept: list[bytes] | None = []

    def __call__(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        self._sha256.update(chunk)
        if self._kept is not None:
            if self.size > self.limit:
                self._kept = None  # too large to record: let go of what was kept so far
            elif chunk:
                self._kept.append(chunk)
        return chunk

    @property
    def kept(self) -> bytes | None:
        """The whole body, or None when it passed the limit."""
        return None if self._kept is None else b"".join(self._kept)

    def omitted(self) -> Omitted:
        return Omitted(self.size, self._sha256.hexdigest())


def too_large_or_unknown(content_length: str | None, limit: int) -> bool:
    """Whether a body must be streamed through a :class:`BodyTee`: announced larger than ``limit``, or of a size not
    known up front (chunked, or until the connection closes)."""
    if content_length is None:
        return True
    try:
        return int(content_length) > limit
    except ValueError:
        return True
