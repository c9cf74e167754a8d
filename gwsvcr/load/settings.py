"""What a load run is told (cassette, credentials per agent, pacing) and how what a driver checks reads in Locust.

No Locust here: :mod:`gwsvcr.load.user` reads Locust's options into :class:`LoadSettings`; :func:`entry` turns a
verify :class:`~gwsvcr.verify.Check` into one Locust request entry.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from gwsvcr import cassette as cassettes
from gwsvcr import compare
from gwsvcr.errors import GwsvcrError
from gwsvcr.timeline import Timing
from gwsvcr.verify import Check, Credentials, Options, Plan, build, choose_session
from gwsvcr.verify.checks import DIFFERS, FAILED, LATE, MISSING, NOTIFICATION, OK, UNEXPECTED

__all__ = ["COMETD", "DEFAULT_IGNORE", "LOOP", "LOOP_LAG", "NOTIFY", "PASSWORD_ENV", "SESSION",
           "CredentialSource", "Entry", "LoadSettings", "LoadSettingsError", "agent_number", "entry", "paced"]

PASSWORD_ENV = "GWSVCR_PASSWORD"  # where gwsvcr load hands the password to locust (never on its command line)
NOTIFY = "NOTIFY"  # the request_type of a notification's entry
COMETD = "COMETD"  # the request_type of a Bayeux request's entry (handshake, subscribe, disconnect, connect)
LOOP, LOOP_LAG = "LOOP", "asyncio loop lag"  # how late the process's loop ran: what any figure may be off by
SESSION = "SESSION"  # the request_type of a session that could not go on (login refused, server unreachable)
# every agent logs in as itself, not as the recorded agent: its user name is not a difference
DEFAULT_IGNORE = ("user.userName",)
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


class LoadSettingsError(GwsvcrError, ValueError):
    """A setting is missing or wrong; the message names it."""


@dataclass(frozen=True)
class LoadSettings:
    cassette: str
    session: str | None = None
    user: str = "agent{i}"  # {i}: the simulated agent's number, from 1
    password: str | None = None
    users_csv: str | None = None  # user,password rows; agent i gets row i (wrapping around)
    timing: Timing = Timing.RECORDED
    interval: float | None = None  # seconds between REST operations instead of the recorded pacing
    timeout: float = 10.0
    threshold: float = 0.05
    transport: str | None = None
    binds: tuple[str, ...] = ()
    ignore: tuple[str, ...] = DEFAULT_IGNORE  # fields not compared (gwsvcr diff --ignore)

    def plan(self) -> Plan:
        try:
            recorded = cassettes.load(self.cassette)
        except cassettes.CassetteError as e:
            raise LoadSettingsError(f"{self.cassette}: " + "; ".join(map(str, e.problems[:3]))) from None
        except OSError as e:
            raise LoadSettingsError(f"{self.cassette}: cannot read: {e.strerror}") from None
        try:
            plan = build(recorded, choose_session(recorded, self.session))
        except ValueError as e:
            raise LoadSettingsError(str(e)) from None
        return paced(plan, self.interval) if self.interval is not None else plan

    def options(self) -> Options:
        timing = Timing.RECORDED if self.interval is not None else self.timing
        return Options(timing, self.threshold, self.timeout, self.transport, self.binds,
                       compare.Volatility(ignore=self.ignore))

    def credentials(self) -> CredentialSource:
        if self.users_csv is not None:
            return CredentialSource.from_csv(self.users_csv)
        if self.password is None:
            raise LoadSettingsError(f"no password: give --gwsvcr-password, set {PASSWORD_ENV}, or give "
                                    "--gwsvcr-users-csv")
        if "{i}" not in self.user:
            raise LoadSettingsError(f"--gwsvcr-user {self.user!r} has no {{i}}: every agent would log in as the "
                                    "same user")
        return CredentialSource(pattern=self.user, password=self.password)


@dataclass(frozen=True)
class CredentialSource:
    pattern: str = ""
    password: str = ""
    rows: tuple[Credentials, ...] = ()

    @classmethod
    def from_csv(cls, path: str) -> CredentialSource:
        try:
            with Path(path).open(newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        except OSError as e:
            raise LoadSettingsError(f"{path}: cannot read: {e.strerror}") from None
        if rows and [c.strip().lower() for c in rows[0][:2]] == ["user", "password"]:
            rows = rows[1:]
        bad = [n for n, r in enumerate(rows, 1) if len(r) < 2 or not r[0].strip()]
        if not rows or bad:
            raise LoadSettingsError(f"{path}: needs user,password rows" + (f" (row {bad[0]} is not)" if bad else ""))
        return cls(rows=tuple(Credentials(r[0].strip(), r[1]) for r in rows))

    def for_agent(self, i: int) -> Credentials:
        """Agent ``i`` (from 1): the pattern with ``{i}``, or row ``i`` of the CSV (wrapping around)."""
        if self.rows:
            return self.rows[(i - 1) % len(self.rows)]
        return Credentials(self.pattern.replace("{i}", str(i)), self.password)


def agent_number(n: int, worker_index: int, workers: int) -> int:
    """The number of the ``n``-th user (from 0) started by worker ``worker_index`` of ``workers`` (1 and 0 when
    not distributed): worker 0 numbers 1, 1+W, 1+2W, ..., worker 1 numbers 2, 2+W, ...; unique across the run."""
    return worker_index + 1 + n * max(workers, 1)


def paced(plan: Plan, interval: float) -> Plan:
    """The plan with its REST operations ``interval`` seconds apart (the first at once), Bayeux requests as soon as
    the request before them; run with recorded timing."""
    at, actions = 0.0, []
    for k, action in enumerate(plan.actions):
        if action.messages is None and k > 0:
            at += interval
        actions.append(dataclasses.replace(action, offset=at))
    return dataclasses.replace(plan, actions=actions)


@dataclass(frozen=True)
class Entry:
    """One Locust request entry."""

    request_type: str
    name: str
    response_time: float  # milliseconds
    failure: str | None  # None: a success


def entry(check: Check, elapsed: float | None = None, timeout: float = 10.0) -> Entry:
    """A check as Locust shows it: a REST operation as ``POST StopCallRecording`` (its reply time), a notification
    as ``NOTIFY StopCallRecording -> CallRecordingStateChange`` (its delay after the reply to its cause), a
    Bayeux request as ``COMETD /meta/handshake``. A failure: an operation without a reply, a notification that did
    not come within the timeout or differs from the recording, one the recording does not have. A notification
    later than recorded is a success: its response time says how late. ``elapsed`` (seconds): the time measured
    for an operation whose check holds none."""
    if check.kind == NOTIFICATION:
        event = (check.actual if check.status == UNEXPECTED else check.expected) or "?"
        kind = event.split(" ")[0]
        cause = check.operation.split(" ", 1)[1] if check.operation.startswith("#") else check.operation
        if check.status == UNEXPECTED:
            return Entry(NOTIFY, f"(not recorded) -> {kind}", _ms(check.delay), _failure(check))
        delay = check.delay if check.status != MISSING else timeout
        return Entry(NOTIFY, f"{cause} -> {kind}", _ms(delay), None if check.status in (OK, LATE) else _failure(check))
    method = check.name.split(" ", 1)[0]
    if method in _METHODS:
        operation = check.operation if check.operation.startswith(method) else f"{method} {check.operation}"
        request_type, name = method, operation
    else:
        request_type, name = COMETD, check.operation
    delay = check.delay if check.delay is not None else elapsed
    return Entry(request_type, name, _ms(delay), None if check.status in (OK, LATE) else _failure(check))


def _failure(check: Check) -> str:
    if check.status == MISSING:
        return f"missing: {check.note}"
    if check.status == UNEXPECTED:
        return f"not in the recording: {check.actual}" + (f" ({check.note})" if check.note else "")
    if check.status == FAILED:
        return f"failed: {check.note or 'no reply'}"
    if check.status == DIFFERS:
        if check.kind == NOTIFICATION and check.actual != check.expected:
            return f"differs: expected {check.expected}, came {check.actual}"
        return "differs: " + "; ".join(check.differences[:3])
    return check.status


def _ms(seconds: float | None) -> float:
    return 0.0 if seconds is None else max(0.0, seconds * 1000)
