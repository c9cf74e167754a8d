"""What an exchange is, in words: the GWS operation a REST request asks for, what a Bayeux message a client sent
is about, the kind of a pushed event, a path cut to fit a column. ``gwsvcr show``, ``diff`` and ``report`` name
things with it, and so does ``gwsvcr verify``."""

from __future__ import annotations

from typing import Any

from gwsvcr import gws
from gwsvcr.bayeux import SUBSCRIBE, is_meta
from gwsvcr.cassette import Request

__all__ = ["bayeux_request_summary", "event_key", "rest_operation", "shorten_path"]

_LONG_SEGMENT = 12  # path segments longer than this (call ids, uuids) are cut in the terminal view


def rest_operation(request: Request) -> str:
    """The GWS operation a REST request asks for (``StopCallRecording``), or ``""``."""
    summary = gws.summarize_request(request.method, request.path, request.body)
    return "" if summary == f"{request.method} {request.path}" else summary


def bayeux_request_summary(message: dict[str, Any]) -> str:
    """What a message a client sent is about: the subscription, a publish's notification, ``""`` for the rest."""
    channel = str(message.get("channel"))
    if channel == SUBSCRIBE:
        return str(message.get("subscription"))
    if not is_meta(channel):
        return gws.summarize_notification(message.get("data")) or "publish"
    return ""


def event_key(message: dict[str, Any]) -> str:
    """What a pushed event is: ``event /v2/me/calls CallRecordingStateChange``."""
    data = message.get("data")
    kind = (data.get("notificationType") or data.get("messageType")) if isinstance(data, dict) else None
    return f"event {message.get('channel')} {kind or ''}".rstrip()


def shorten_path(target: str) -> str:
    """Cut long path segments (call ids, uuids) so a REST call fits a terminal column."""
    words = target.split(" ", 1)
    if len(words) < 2 or not words[1].startswith("/"):
        return target
    segments = [s if len(s) <= _LONG_SEGMENT else s[:6] + "…" for s in words[1].split("/")]
    return f"{words[0]} {'/'.join(segments)}"
