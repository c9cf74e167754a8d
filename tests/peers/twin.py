"""What the Python twins of cometd_client.js that are run as scripts share (pybayeux_client.py, form_client.py):
their command line, their clock and their JSON-lines records. Imported as ``twin`` (the script's folder is first on
``sys.path``)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

CALLS_CHANNEL = "/v2/me/calls"
DEFAULT_CALL_ID = "01RCC3N118B1V0SL8O7GK2LAES00000V"
DEFAULT_OPS = "StartCallRecording,PauseCallRecording,ResumeCallRecording,StopCallRecording"
_T0 = time.perf_counter()


class SessionError(Exception):
    """The scripted session failed (bad HTTP status, CometD failure, missing event)."""


def now() -> float:
    """Milliseconds since the process started (monotonic), as the other twins count."""
    return round((time.perf_counter() - _T0) * 1000, 3)


def out(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """The twins' command line (long-polling only); ``ops`` comes back as a list."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8090")
    p.add_argument("--cometd-path", default="/api/v2/notifications")
    p.add_argument("--call-id", default=DEFAULT_CALL_ID)
    p.add_argument("--ops", default=DEFAULT_OPS)
    p.add_argument("--user", default="agent1")
    p.add_argument("--password", default="secret")
    p.add_argument("--pause-ms", type=float, default=0)
    p.add_argument("--transport", default="long-polling", choices=["long-polling"])
    p.add_argument("--event-timeout-ms", type=float, default=10000)
    p.add_argument("--timeout-ms", type=float, default=60000)
    args = p.parse_args(argv)
    args.ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    return args


def event(message: dict[str, Any], op: str, t: float, reply_t: float, call_id: str) -> tuple[dict[str, Any], bool]:
    """The record of a notification received ``t`` after ``op``'s reply came at ``reply_t``, and whether it is the
    one ``op`` waits for (Faye's channel is global: another call's notification is a stray one)."""
    data = message.get("data") or {}
    call = data.get("call") or {}
    ours = call.get("id") in (None, call_id)
    return ({"type": "event" if ours else "stray_event", "channel": message.get("channel"),
             "notificationType": data.get("notificationType"), "recordingState": call.get("recordingState"),
             "gsipRecord": (call.get("userData") or {}).get("GSIP_RECORD"), "op": op,
             "delay_ms": round(t - reply_t, 3), "t": t, "data": data},
            ours and data.get("notificationType") == "CallRecordingStateChange")


def main(run: Callable[[argparse.Namespace], None], description: str) -> int:
    """Run a session; any failure is reported on stdout as an "error" record, as the other twins do."""
    args = arguments(description)
    try:
        run(args)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        out({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    out({"type": "done"})
    return 0
