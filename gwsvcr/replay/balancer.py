"""HAProxy in front of several replays of one cassette (``gwsvcr replay --workers N`` on one host, or replays on
several hosts: docs/SCALING.md): its configuration, and where HAProxy is. The balancing is HAProxy's.

A client's timeline lives in one replay, so all of its requests must reach that replay:

* HAProxy inserts its own cookie (``GWSVCR_WORKER``) in the first reply a client gets. Being ``indirect``, it is
  taken out of every request before a replay sees it: it never reaches a replay, a cassette or a replayed reply,
  and the client's own cookies (the session cookies the replay issues, whatever their name) go through untouched.
* Before a client has that cookie (its first requests), and for clients that keep no cookies, a consistent hash
  of what :mod:`gwsvcr.session` places a cookie-less request by decides: the Basic user, else the Bearer token,
  else the whole Authorization header. A client's first request lands where its later ones will; requests with no
  credential go round robin.
* HAProxy asks every replay for :data:`~gwsvcr.replay.status.HEALTH_PATH` every 500 ms; after two failures the
  replay is down and its clients go to another (``option redispatch``), whose Bayeux answers their next connect
  ``402::session_unknown``: they handshake again there. Consistent hashing moves no other client. A check fails
  when the replay refuses it (it is gone) or leaves it unanswered as long as a client would wait, never because a
  burst of logins keeps the replay busy for a few seconds: with checks timed out at 500 ms, a burst of 500 logins
  in 1 s on two replays marked one of them down and broke the sessions of up to half its clients.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path

from gwsvcr.replay.status import HEALTH_PATH

COOKIE = "GWSVCR_WORKER"
INSTALL = "apt-get install haproxy"
# Seconds a CometD client waits for a held connect past the server's advice.timeout (CometD JS maxNetworkDelay).
MAX_NETWORK_DELAY = 10
MARGIN = 20  # seconds more before HAProxy gives up on a quiet connection
PLACES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")  # Debian's, and a source build's: not on every PATH


def find() -> str | None:
    """The haproxy program, or None."""
    return shutil.which("haproxy") or next((p for p in PLACES if Path(p).is_file()), None)


def missing() -> str:
    return (f"--workers needs HAProxy, which is not installed (looked on PATH and in {', '.join(PLACES)}). "
            f"Install it: {INSTALL} (Debian, Ubuntu), dnf install haproxy (Fedora), brew install haproxy (macOS).")


def patience(longest_wait: float) -> int:
    """Seconds HAProxy lets a connection stay quiet: past the longest a replay holds a request (a long-poll's
    advice.timeout, scaled by --speed) plus what a CometD client itself waits more."""
    return math.ceil(longest_wait) + MAX_NETWORK_DELAY + MARGIN


def config(bind: str, servers: Sequence[tuple[str, str]], longest_wait: float) -> str:
    """HAProxy's configuration: listen on ``bind`` (``HOST:PORT``, or ``fd@N`` for a socket handed over) and
    balance over ``servers`` (name, ``HOST:PORT``) with affinity, replays that may hold a request
    ``longest_wait`` seconds."""
    quiet = patience(longest_wait)
    lines = [
        "# HAProxy prints its alerts (a replay going down) on its standard error: no log section",
        "global",
        "    # keep connections to the replays open between requests until 90 % of the file descriptors are in",
        "    # use (default 20 %: with two per held long-poll, a few thousand clients made every request open one)",
        "    tune.pool-low-fd-ratio 90",
        "    tune.pool-high-fd-ratio 95",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    # longer than a replay holds a long-poll (advice.timeout / --speed) and a CometD client waits more",
        f"    timeout client {quiet}s",
        f"    timeout server {quiet}s",
        f"    timeout tunnel {quiet}s",
        "    # a replay busy with a burst of logins answers its health check late, not never: down only when it does",
        "    # not answer for as long as a client would wait (a replay that is gone refuses the check at once)",
        f"    timeout check {quiet}s",
        "    # a request for a replay that is down goes to another one",
        "    option redispatch 1",
        "    # a client gone while its long-poll is held: the replay sees it go, and keeps its events for the next",
        "    option abortonclose",
        "    retries 2",
        "",
        "frontend gwsvcr",
        f"    bind {bind}",
        "    default_backend replays",
        "",
        "backend replays",
        "    # before a client has the cookie: by credential, as gwsvcr places a request that has no session cookie",
        "    http-request set-var(txn.client) http_auth_user",
        "    http-request set-var(txn.client) http_auth_bearer unless { var(txn.client) -m found }",
        "    http-request set-var(txn.client) req.hdr(authorization) unless { var(txn.client) -m found }",
        "    balance hash var(txn.client)",
        "    hash-type consistent",
        f"    cookie {COOKIE} insert indirect nocache httponly",
        f"    option httpchk GET {HEALTH_PATH}",
        "    http-check expect status 200",
        "    # weight 256: the most points each on the hash ring, the evenest shares",
        "    default-server check inter 500ms fall 2 rise 2 weight 256",
        *(f"    server {name} {address} cookie {name}" for name, address in servers),
    ]
    return "\n".join(lines) + "\n"
