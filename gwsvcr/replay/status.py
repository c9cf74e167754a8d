"""What a replay reports, alone or added up with the other replays of the same cassette (the workers behind one
balancer, on one host or several): the figures of ``/__gwsvcr__/status`` and the line printed on stop.

A replay started with peers answers ``/__gwsvcr__/status`` with the whole: its own figures and each peer's
(asked with ``?local=1``, which any replay answers with its own figures only). Counts add up (failures replayed and
faults injected too, and each fault's strikes); a recorded exchange is unused only if no replay used it, so
``unused`` and ``unused_recovery`` are intersections; a peer that does not answer is reported as lost, never as an
error, and its figures are missing from the sums.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwsvcr import guard

# Where a test harness (the pytest plugin) reads misses and unused exchanges while the replay runs.
STATUS_PATH = "/__gwsvcr__/status"
# What a balancer's health check asks: answered at once, without counting as a request served.
HEALTH_PATH = "/__gwsvcr__/health"
LOCAL = "local=1"  # the query that asks a replay for its own figures only
COUNTS = ("served", "clients", "live_sessions", "events_released", "released_late", "failures_replayed",
          "faults_injected")
LISTS = ("misses", "unused", "unused_recovery", "faults")
PEER_TIMEOUT = 3.0  # seconds a peer may take to answer
# An event that goes out more than this after its recorded time is counted late (``released_late``, and the stop
# summary says how many and by how much): a busy process, not the cassette, set its timing.
LATE = 0.010


@dataclass
class Part:
    """One replay's figures, or None when it did not answer (``lost`` says why)."""

    url: str
    figures: dict[str, Any] | None
    lost: str = ""


def url_with_token(url: str, token: str) -> str:
    """The status URL of the replay at ``url`` (``http://HOST:PORT``) with its token, to type by hand."""
    return f"{url.rstrip('/')}{STATUS_PATH}?{guard.TOKEN_QUERY}={token}"


def fetch(url: str, token: str, timeout: float = PEER_TIMEOUT) -> Part:
    """A replay's own figures, asked at its base URL (``http://HOST:PORT``) with the token of its endpoints."""
    request = urllib.request.Request(f"{url.rstrip('/')}{STATUS_PATH}?{LOCAL}", headers={guard.TOKEN_HEADER: token})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            figures = json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return Part(url, None, f"its status answered HTTP {e.code}")
    except urllib.error.URLError as e:  # refused, unreachable
        return Part(url, None, str(e.reason))
    except (OSError, ValueError) as e:  # reset, timed out, not JSON
        return Part(url, None, f"{type(e).__name__}: {e}")
    if not isinstance(figures, dict) or any(key not in figures for key in (*COUNTS, *LISTS)):
        return Part(url, None, "its status is not a gwsvcr replay's")
    return Part(url, figures)


def gather(urls: Sequence[str], token: str, timeout: float = PEER_TIMEOUT) -> list[Part]:
    """Every replay's own figures, asked at once (replays that answer each other share a token)."""
    if not urls:
        return []
    with ThreadPoolExecutor(min(len(urls), 16)) as pool:
        return list(pool.map(lambda url: fetch(url, token, timeout), urls))


def peer_urls(entries: Sequence[str]) -> list[str]:
    """The peers named by ``--peer``: each a base URL, or ``@FILE`` for the URLs listed in FILE (one a line, ``#``
    for comments), read now: a file that does not exist yet names none."""
    urls: list[str] = []
    for entry in entries:
        if not entry.startswith("@"):
            urls.append(entry)
            continue
        try:
            lines = Path(entry[1:]).read_text().splitlines()
        except FileNotFoundError:
            continue
        urls += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [url.rstrip("/") for url in urls]


def combine(parts: Sequence[Part]) -> dict[str, Any]:
    """The figures of several replays of one cassette as one: counts summed, misses listed with the replay that
    saw them, unused = what none of them used; each replay's own figures under ``workers``, the silent ones also
    under ``lost``; ``cassette_sha256`` when they all replay the same file, else None."""
    live = [(p.url, p.figures) for p in parts if p.figures is not None]
    whole: dict[str, Any] = {key: sum(figures[key] for _, figures in live) for key in COUNTS}
    whole["late_max_ms"] = max((figures.get("late_max_ms", 0.0) for _, figures in live), default=0.0)
    whole["misses"] = [{**miss, "worker": url} for url, figures in live for miss in figures["misses"]]
    unused = [set(figures["unused"]) for _, figures in live]
    whole["unused"] = sorted(set.intersection(*unused)) if unused else []
    sessions: dict[str, int] = {}
    for _, figures in live:
        for label, clients in figures.get("sessions", {}).items():
            sessions[label] = sessions.get(label, 0) + (clients if isinstance(clients, int) else len(clients))
    whole["sessions"] = sessions  # client numbers are each replay's own: counted, not listed
    recovery = [{r["exchange"]: r["what"] for r in figures["unused_recovery"]} for _, figures in live]
    common = set.intersection(*(set(r) for r in recovery)) if recovery else set()
    whole["unused_recovery"] = [{"exchange": n, "what": recovery[0][n]} for n in sorted(common)]
    applied: dict[str, int] = {}
    for _, figures in live:
        for fault in figures["faults"]:
            applied[fault["spec"]] = applied.get(fault["spec"], 0) + fault["applied"]
    whole["faults"] = [{"spec": spec, "applied": n} for spec, n in applied.items()]
    files = {figures.get("cassette_sha256") for _, figures in live}
    whole["cassette_sha256"] = files.pop() if len(files) == 1 else None
    whole["workers"] = [_own(p) for p in parts]
    whole["lost"] = [p.url for p in parts if p.figures is None]
    return whole


def _own(part: Part) -> dict[str, Any]:
    if part.figures is None:
        return {"url": part.url, "lost": part.lost}
    return {"url": part.url, **{key: part.figures[key] for key in COUNTS}, "misses": len(part.figures["misses"]),
            "unused": len(part.figures["unused"]), "cassette_sha256": part.figures.get("cassette_sha256")}


def summary_line(figures: dict[str, Any], note: str = "") -> str:
    """What a replay prints when it stops: a line of figures (failures replayed and faults injected when there were
    any; which live clients replayed which recorded session when there are several; ``note`` at its end), then a
    line naming the recorded recovery that went unused, one naming the faults that never struck and one counting
    the events that went out late (:data:`LATE`), when there are."""
    first = (f"gwsvcr: served {figures['served']} requests to {figures['clients']} clients, "
             f"{figures['events_released']} events released, {len(figures['misses'])} misses, "
             f"{len(figures['unused'])} recorded exchanges never used")
    if figures["failures_replayed"] or figures["faults_injected"]:
        first += (f", {figures['failures_replayed']} recorded failures replayed, "
                  f"{figures['faults_injected']} faults injected")
    sessions = figures.get("sessions") or {}
    if len(sessions) > 1 or "undecided" in sessions:
        first += "; " + ", ".join(f"{label} <- {_clients(clients)}" for label, clients in sessions.items())
    lines = [f"{first} {note}".rstrip()]
    if figures["unused_recovery"]:
        lines.append("gwsvcr: the recorded failure and recovery did not replay: " + "; ".join(
            f"#{r['exchange']} {r['what']}" for r in figures["unused_recovery"]) + " never used")
    idle = [f["spec"] for f in figures["faults"] if not f["applied"]]
    if idle:
        lines.append("gwsvcr: faults that never struck: " + "; ".join(idle))
    if figures["released_late"]:
        lines.append("gwsvcr: " + late_text(figures) + ": the replay was short of CPU; --workers N or fewer clients "
                     "per replay keep the timing")
    return "\n".join(lines)


def late_text(figures: dict[str, Any]) -> str:
    """How many events went out late and by how much (for figures whose ``released_late`` is not 0)."""
    return (f"{figures['released_late']:,} of {figures['events_released']:,} events went out more than "
            f"{LATE * 1000:.0f} ms after their recorded time (the latest {figures['late_max_ms']:,.0f} ms late)")


def _clients(clients: list[int] | int) -> str:
    if isinstance(clients, int):
        return f"{clients} clients"
    if not clients:
        return "none"
    if len(clients) > 5:
        return f"{len(clients)} clients"
    return ("client " if len(clients) == 1 else "clients ") + " ".join(map(str, clients))
