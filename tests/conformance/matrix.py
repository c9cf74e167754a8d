"""The conformance matrix: who records, against what, who replays, over which transport; what cannot run."""

from __future__ import annotations

from typing import NamedTuple

NAMES = {"python": "aiocometd-ng", "node": "CometD JS (Node)", "chromium": "CometD JS (headless Chromium)",
         "faye": "Faye", "sim": "gwsvcr sim", "replay": "gwsvcr replay", "pybayeux": "python-bayeux",
         "form": "a form-encoded client (spec)"}
RECORDED_WITH = ("python", "node")
UPSTREAMS = ("faye", "sim")
REPLAYED_TO = ("python", "node", "chromium")
TRANSPORTS = ("long-polling", "callback-polling", "websocket")
TRANSPORTS_OF = {"python": ("long-polling", "websocket"),
                 "node": ("long-polling", "callback-polling", "websocket"),
                 "chromium": ("long-polling", "callback-polling", "websocket")}

# Cells that fail today because of a known gwsvcr gap (strict xfail: they flip to a failure the day the gap
# is closed, so the entry is removed then). None at the moment.
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}


class Cell(NamedTuple):
    recorded_with: str
    upstream: str
    replayed_to: str
    transport: str

    @property
    def id(self) -> str:
        return f"{self.recorded_with}-{self.upstream}-to-{self.replayed_to}-{self.transport}"

    @property
    def recording(self) -> tuple[str, str, str]:
        return self.recorded_with, self.upstream, self.transport


def not_applicable(cell: Cell) -> str | None:
    """Why a cell cannot exist, or None."""
    no_record = cell.transport not in TRANSPORTS_OF[cell.recorded_with]
    no_replay = cell.transport not in TRANSPORTS_OF[cell.replayed_to]
    if no_record and no_replay and cell.recorded_with == cell.replayed_to:
        return f"{NAMES[cell.recorded_with]} has no {cell.transport} transport: nothing to record or replay to"
    reasons = []
    if no_record:
        reasons.append(f"nothing to record: {NAMES[cell.recorded_with]} has no {cell.transport} transport")
    if no_replay:
        reasons.append(f"nothing to replay to: {NAMES[cell.replayed_to]} has no {cell.transport} transport")
    return "; ".join(reasons) or None


def known_gap(cell: Cell) -> str | None:
    return KNOWN_GAPS.get(cell.recording)


CELLS = [Cell(r, u, p, t) for r in RECORDED_WITH for u in UPSTREAMS for p in REPLAYED_TO for t in TRANSPORTS]
