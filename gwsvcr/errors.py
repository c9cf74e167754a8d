"""The base of every error gwsvcr raises on purpose: a user-facing message, never a traceback."""

from __future__ import annotations

__all__ = ["GwsvcrError"]


class GwsvcrError(Exception):
    """Bad input or a failed operation, with a message that names the file, line or request and what to do."""
