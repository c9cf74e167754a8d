"""mitmproxy flow files (``mitmdump -w``, mitmproxy's "Save") read into importable entries: mitmproxy's own reader
(``mitmproxy.io.FlowReader``) turns the file into flows, :mod:`gwsvcr.addons.flowconv` turns each flow into the
cassette model, and ``gwsvcr import`` feeds the entries to the recorder (gwsvcr/tools/importing.py). Here, not in
the core, because reading flows needs mitmproxy.

A flow file is untrusted input: whatever mitmproxy's reader or a flow's state makes of it, the problem is reported
as :class:`~gwsvcr.tools.importing.ImportProblems` naming the file and the flow, never a traceback.
"""

from __future__ import annotations

import json

from mitmproxy import http, io

from gwsvcr.addons.flowconv import request_of, response_of
from gwsvcr.bayeux import is_bayeux
from gwsvcr.record.recording import ExchangeTimes
from gwsvcr.tools.importing import Entry, Frame, ImportProblems

__all__ = ["read"]


def read(path: str) -> list[Entry]:
    """The HTTP flows of a mitmproxy flow file as entries (a WebSocket with its Bayeux frames)."""
    entries: list[Entry] = []
    try:
        with open(path, "rb") as f:
            for i, flow in enumerate(io.FlowReader(f).stream()):
                if isinstance(flow, http.HTTPFlow):
                    try:
                        entries.append(_entry(flow, f"flow {i + 1}"))
                    except Exception as e:  # noqa: BLE001 - untrusted input: any failure is this flow's problem
                        what = f"{flow.request.method} {flow.request.path[:80]}"
                        raise ImportProblems([f"{path}: flow {i + 1} ({what}): {type(e).__name__}: "
                                              f"{str(e)[:200]}"]) from None
    except FileNotFoundError:
        raise ImportProblems([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ImportProblems([f"{path}: is a directory, not a mitmproxy flow file"]) from None
    except ImportProblems:
        raise
    except Exception as e:  # noqa: BLE001 - mitmproxy's reader on untrusted bytes: anything it raises is the file's
        where = f"after flow {len(entries)}" if entries else "at its start"
        raise ImportProblems([f"{path}: not a mitmproxy flow file that loads ({where}): "
                              f"{type(e).__name__}: {str(e)[:200] or 'unreadable'}"]) from None
    return entries


def _entry(flow: http.HTTPFlow, where: str) -> Entry:
    req, resp = flow.request, flow.response
    request = request_of(req)
    request_end = req.timestamp_end or req.timestamp_start
    if flow.websocket is not None:
        frames = [Frame(m.from_client, m.timestamp, messages) for m in flow.websocket.messages
                  if (messages := _bayeux(m.content)) is not None]
        end = max((f.at for f in frames), default=request_end)
        return Entry(req.pretty_url, request, None, ExchangeTimes(req.timestamp_start, request_end,
                                                                   request_end, end), frames=frames, where=where)
    if resp is None:
        error = flow.error.msg if flow.error is not None else "no response in the flow file"
        return Entry(req.pretty_url, request, None, ExchangeTimes(req.timestamp_start, request_end), error,
                     where=where)
    times = ExchangeTimes(req.timestamp_start, request_end, resp.timestamp_start,
                          resp.timestamp_end or resp.timestamp_start)
    return Entry(req.pretty_url, request, response_of(resp), times, where=where)


def _bayeux(content: bytes) -> list[dict[str, object]] | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    messages = [data] if isinstance(data, dict) else data
    return messages if is_bayeux(messages) else None
