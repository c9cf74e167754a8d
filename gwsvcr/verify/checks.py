"""What verify finds, one :class:`Check` per recorded operation and per expected notification, and how it reads.

A check names the recorded exchange (``#11``), the operation (``StopCallRecording``; for a notification, the
operation that caused it), what was expected, what came, the fields that differ (``gwsvcr diff``'s paths and
volatility rules) and, for a notification, its delay after its cause, live and recorded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OPERATION, NOTIFICATION = "operation", "notification"
OK, DIFFERS, LATE, MISSING, UNEXPECTED, FAILED = "ok", "differs", "late", "missing", "unexpected", "failed"
_TAG = {OK: "ok", DIFFERS: "DIFF", LATE: "LATE", MISSING: "MISS", UNEXPECTED: "EXTRA", FAILED: "FAIL"}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@dataclass
class Check:
    kind: str  # OPERATION or NOTIFICATION
    status: str
    number: int | None  # the recorded exchange: the request, or the one that delivered the notification
    name: str  # "POST /api/v2/me/calls/01RCC3… StopCallRecording", "<- /v2/me/calls CallRecordingStateChange"
    operation: str  # StopCallRecording; for a notification, what caused it ("#11 StopCallRecording")
    expected: str  # the recorded reply or notification, in words
    actual: str | None  # the live one, in words; None when nothing came
    differences: list[str] = field(default_factory=list)  # "path: value recorded, value live"
    delay: float | None = None  # live: a notification's seconds after its cause's reply; an operation's reply time
    recorded_delay: float | None = None
    note: str = ""  # why it failed, or what was late

    @property
    def ok(self) -> bool:
        return self.status == OK

    def headline(self) -> str:
        number = f"#{self.number}" if self.number is not None else ""
        head = f"{_TAG[self.status]:<5} {number:<4} {self.name}"
        if self.kind == NOTIFICATION:
            return f"{head}: {self._timing()}"
        return f"{head}: {self.actual or 'no reply'}{self._timing()}"

    def _timing(self) -> str:
        if self.kind == OPERATION:
            if self.delay is None:
                return ""
            recorded = f", recorded {ms(self.recorded_delay)}" if self.recorded_delay is not None else ""
            return f" ({ms(self.delay)}{recorded})"
        if self.status == UNEXPECTED:
            after = f"{ms(self.delay)} after {self.operation}" if self.delay is not None else f"after {self.operation}"
            return f"{after}: {self.note or 'not in the recording'}"
        if self.status == MISSING:
            recorded = f" (recorded {ms(self.recorded_delay)} after)" if self.recorded_delay is not None else ""
            return f"after {self.operation}: {self.note}{recorded}"
        live = f"{ms(self.delay)} after" if self.delay is not None else "after"
        recorded = f", recorded {ms(self.recorded_delay)}" if self.recorded_delay is not None else ""
        return f"{live} {self.operation}{recorded}"

    def lines(self) -> list[str]:
        details = list(self.differences)
        if self.status == DIFFERS and self.kind == NOTIFICATION and self.actual != self.expected:
            details.insert(0, f"expected {self.expected}, came {self.actual}")
        if self.note and self.status not in (MISSING, UNEXPECTED):
            details.append(self.note)
        return [self.headline(), *(f"           {d}" for d in details)]


@dataclass
class Result:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        operations = sum(c.kind == OPERATION for c in self.checks)
        notifications = len(self.checks) - operations
        counted = f"{operations} operations, {notifications} notifications"
        if self.ok:
            return f"as recorded: {counted}"
        bad = Counter(c.status for c in self.checks if not c.ok)
        parts = ", ".join(f"{n} {status}" for status, n in sorted(bad.items()))
        return f"DIFFERENT: {sum(bad.values())} of {len(self.checks)} checks ({counted}): {parts}"
