"""The Python API for any test harness (pytest, unittest, behave, Robot Framework): replay a cassette on the
shared replay service, or record one.

    with gwsvcr.replaying("cassettes/stop.yaml", timing="instant") as gws:
        client = MyGwsClient(base_url=gws.url)     # the recorded paths, unchanged, at the mount's own port
        ...
    gws.misses, gws.unused                         # final once the block is left

    with gwsvcr.recording("cassettes/stop.yaml", upstream="https://gws:8443") as gws:
        client = MyGwsClient(base_url=gws.url)     # through ``gwsvcr record`` to the real GWS

``replaying`` mounts the cassette on the service named by ``GWSVCR_SERVICE`` (``http://127.0.0.1:PORT/?token=T``,
the URL a ``gwsvcr service`` someone started printed), else on one this process starts the first time it is
needed, keeps for its life and stops at exit; its token goes with every control request (gwsvcr/guard.py). Each
mount has its own state, timing, strictness, misses and unused exchanges.
"""

from __future__ import annotations

import atexit
import http.client
import ipaddress
import json
import os
import signal
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gwsvcr import guard
from gwsvcr.errors import GwsvcrError
from gwsvcr.options import RECORD, REPLAY, Surface
from gwsvcr.replay import STATUS_PATH
from gwsvcr.served import NotListening, Proc, gwsvcr_command, start
from gwsvcr.service import CONTROL_SOCKET, MOUNTS_PATH, is_private_socket

__all__ = ["SERVICE_ENV", "Recording", "Replay", "ReplayMiss", "ServiceClient", "ServiceError", "explain_misses",
           "recording", "replaying", "shared_service", "start_shared_service"]

SERVICE_ENV = "GWSVCR_SERVICE"
TIMEOUT = 30.0


class ServiceError(GwsvcrError):
    """The replay service refused or failed a request: a bad option, an invalid cassette (``problems`` holds its
    ``FILE:LINE: problem`` lines), a service that cannot be reached or started."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class ReplayMiss(GwsvcrError):
    """A strict replay got requests its cassette does not hold (``misses`` has each with the closest recorded), or
    did not replay a recorded failure and the recovery after it, or never struck a fault it was given."""

    def __init__(self, replay: Replay) -> None:
        super().__init__(replay.explain())
        self.cassette = replay.cassette
        self.misses = replay.misses


class ServiceClient:
    """The control API of one replay service, over one kept-alive connection (thread-safe). ``url`` is the one
    ``gwsvcr service`` printed, its token in it (``http://127.0.0.1:PORT/?token=T``). A service on this machine is
    asked over its control socket (:class:`gwsvcr.service.ControlSocket`) when it has one of this user's: the same
    requests, without the cost of HTTP through mitmproxy; over HTTP otherwise."""

    def __init__(self, url: str, process: Proc | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ServiceError("a replay service URL looks like http://127.0.0.1:PORT/?token=..., not "
                               f"{guard.split_token(url)[0]!r}")
        self.url, self._token = guard.split_token(url)  # self.url has no token: it goes into messages
        self.process = process
        self._headers = {guard.TOKEN_HEADER: self._token} if self._token else {}
        self._address = (parts.hostname, parts.port)
        self._conn: http.client.HTTPConnection | None = None
        self._socket: _ControlSocketClient | None = None
        self._looked_for_socket = not _loopback(parts.hostname)  # a service elsewhere: HTTP only
        self._lock = threading.Lock()

    def call(self, method: str, path: str, doc: Any = None) -> tuple[int, Any]:
        with self._lock:
            if not self._looked_for_socket:
                self._socket = self._open_socket()
            if self._socket is not None:
                try:
                    return self._socket.call(method, path, doc)
                except (OSError, ValueError, KeyError):  # the service went away: HTTP says so, or answers
                    self._socket.close()
                    self._socket = None
            return self._http(method, path, doc)

    def _open_socket(self) -> _ControlSocketClient | None:
        """The service's control socket, when it has one and it is this user's own (asked once, over HTTP)."""
        try:
            status, answer = self._http("GET", STATUS_PATH)
        except ServiceError:
            return None  # not up: the request itself says so, and the next one looks again
        self._looked_for_socket = True
        path = answer.get(CONTROL_SOCKET) if status == 200 and isinstance(answer, dict) else None
        if not isinstance(path, str) or not is_private_socket(path):
            return None
        try:
            return _ControlSocketClient(path, self._token)
        except OSError:
            return None

    def _http(self, method: str, path: str, doc: Any = None) -> tuple[int, Any]:
        body = None if doc is None else json.dumps(doc).encode()
        headers = {**self._headers, **({"Content-Type": "application/json"} if body is not None else {})}
        for attempt in (1, 2):  # a kept-alive connection the service closed: once more on a new one
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self._address, timeout=TIMEOUT)
            try:
                self._conn.request(method, path, body, headers)
                reply = self._conn.getresponse()
                raw = reply.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise ServiceError(f"the replay service at {self.url} did not answer {method} {path}: "
                                       f"{e}") from None
        try:
            return reply.status, json.loads(raw)
        except ValueError:
            raise ServiceError(f"{self.url} answered {method} {path} with {reply.status}, not JSON: "
                               f"is it a gwsvcr service?") from None

    def _expect(self, status: int, method: str, path: str, doc: Any = None) -> Any:
        got, answer = self.call(method, path, doc)
        if got != status:
            if isinstance(answer, dict) and "error" in answer:
                raise ServiceError(str(answer["error"]), answer.get("problems") or ())
            raise ServiceError(f"{method} {path} on {self.url}: {got} {answer!r}")
        return answer

    def mount(self, cassette: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        """Mount a cassette: ``{"id", "url"}``. Options as :func:`replaying` takes them."""
        doc = {"cassette": os.path.abspath(cassette), **options}
        return self._expect(201, "POST", MOUNTS_PATH, doc)  # type: ignore[no-any-return]

    def mount_status(self, mount_id: str) -> dict[str, Any]:
        return self._expect(200, "GET", f"{MOUNTS_PATH}/{mount_id}")  # type: ignore[no-any-return]

    def unmount(self, mount_id: str) -> dict[str, Any]:
        """Unmount; the mount's final status."""
        return self._expect(200, "DELETE", f"{MOUNTS_PATH}/{mount_id}")  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        return self._expect(200, "GET", STATUS_PATH)  # type: ignore[no-any-return]

    def close(self, wait: bool = True) -> None:
        """Drop the connection, and stop the service if this client started it; ``wait=False`` (at exit) only
        signals it: its shutdown (a few hundred milliseconds) need not hold up the end of a test run."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._socket is not None:
                self._socket.close()
                self._socket = None
        if self.process is not None:
            if wait:
                self.process.stop(timeout=30)
            elif self.process.popen.poll() is None:
                self.process.popen.send_signal(signal.SIGTERM)
            self.process = None


class _ControlSocketClient:
    """One connection to a service's control socket: a JSON line out, a JSON line back."""

    def __init__(self, path: str, token: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(TIMEOUT)
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._replies = self._sock.makefile("rb")
        self._token = token

    def call(self, method: str, path: str, doc: Any) -> tuple[int, Any]:
        request = {"token": self._token, "method": method, "path": path, "body": doc}
        self._sock.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")
        line = self._replies.readline()
        if not line.endswith(b"\n"):
            raise ConnectionResetError("the service closed its control socket")
        answer = json.loads(line)
        return answer["status"], answer["body"]

    def close(self) -> None:
        self._replies.close()
        self._sock.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_shared: ServiceClient | None = None
_shared_lock = threading.Lock()
# A start under way in the background (start_shared_service): the thread, and its outcome once it has one.
_background: tuple[threading.Thread, list[ServiceClient | ServiceError]] | None = None


def _start_service() -> ServiceClient:
    try:
        proc = start(gwsvcr_command("service", "--port", "0"), timeout=60)
    except NotListening as e:
        raise ServiceError(f"cannot start the replay service:\n{e}") from None
    client = ServiceClient(proc.url, proc)
    atexit.register(client.close, wait=False)
    return client


def start_shared_service() -> None:
    """Start the service :func:`shared_service` will return, in the background, unless ``$GWSVCR_SERVICE`` names
    one or it is started already: for a harness that knows a replay is coming before it needs it (the pytest
    plugin, while it collects), so that the service's start (a second or so, its imports) overlaps the harness's
    own work. An error starting it is raised by :func:`shared_service`."""
    global _background
    with _shared_lock:
        if _shared is not None or _background is not None or os.environ.get(SERVICE_ENV):
            return
        outcome: list[ServiceClient | ServiceError] = []

        def run() -> None:
            try:
                outcome.append(_start_service())
            except ServiceError as e:
                outcome.append(e)

        thread = threading.Thread(target=run, name="gwsvcr-service-start", daemon=True)
        _background = (thread, outcome)
        thread.start()


def shared_service() -> ServiceClient:
    """The replay service this process uses: ``$GWSVCR_SERVICE`` when set, else a ``gwsvcr service`` child
    process started now (once; or the one :func:`start_shared_service` started), kept for the life of the process
    and stopped at its exit."""
    global _shared, _background
    with _shared_lock:
        if _shared is None:
            url = os.environ.get(SERVICE_ENV)
            if url:
                _shared = ServiceClient(url)
            elif _background is not None:
                thread, outcome = _background
                thread.join()
                _background = None
                if not outcome:
                    raise ServiceError("the replay service's start in the background ended without a word")
                if isinstance(outcome[0], ServiceError):
                    raise outcome[0]
                _shared = outcome[0]
            else:
                _shared = _start_service()
        return _shared


def explain_misses(cassette: str | os.PathLike[str], misses: list[dict[str, Any]]) -> str:
    """Misses (as a status lists them) as text: each request, why it missed, the closest recorded ones and how
    they differ, and what to do."""
    lines = [f"gwsvcr: {len(misses)} request(s) not in {os.fspath(cassette)}:"]
    for miss in misses:
        lines.append(f"  {miss['request']}: {miss['reason']}")
        for near in miss["closest"]:
            lines.append(f"    closest: exchange {near['exchange']} {near['request']}")
            lines += [f"      - {d}" for d in near["differences"]]
    lines.append("Re-record it (pytest --gws-record --gws-upstream URL, or gwsvcr.recording), or relax the replay "
                 "with strict=False.")
    return "\n".join(lines)


class Replay:
    """A cassette mounted on a replay service: ``url`` is its base URL (the recorded paths unchanged);
    ``misses`` and ``unused`` are live while it is mounted, final after :meth:`close`."""

    def __init__(self, cassette: str | os.PathLike[str], *, raise_on_miss: bool = True,
                 service: ServiceClient | None = None, **options: Any) -> None:
        """``options``: :func:`replaying`'s (:data:`gwsvcr.options.REPLAY`); the service checks them."""
        self.cassette = Path(os.path.abspath(cassette))
        self.strict = bool(options.get("strict", REPLAY["strict"].default))
        self.raise_on_miss = raise_on_miss
        self.service = service if service is not None else shared_service()
        mounted = self.service.mount(self.cassette, **options)
        self.id: str = mounted["id"]
        self.url: str = mounted["url"]
        self._final: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        """served, clients, events_released, misses, unused (as ``/__gwsvcr__/status`` of ``gwsvcr replay``)."""
        return self._final if self._final is not None else self.service.mount_status(self.id)

    @property
    def misses(self) -> list[dict[str, Any]]:
        """Requests nothing in the cassette matched, each with ``request``, ``reason`` and the ``closest``."""
        return list(self.status()["misses"])

    @property
    def unused(self) -> list[int]:
        """Numbers of the recorded exchanges no request asked for."""
        return list(self.status()["unused"])

    @property
    def unused_recovery(self) -> list[dict[str, Any]]:
        """Recorded connect failures no client got and the recovery after them no client made (``exchange``,
        ``what``): the field failure did not replay."""
        return list(self.status()["unused_recovery"])

    @property
    def faults(self) -> list[dict[str, Any]]:
        """Each fault given (``spec``) and how many times it struck (``applied``)."""
        return list(self.status()["faults"])

    @property
    def failed(self) -> bool:
        """A strict replay that missed, left recorded recovery unused or never struck a fault."""
        status = self.status()
        return self.strict and bool(status["misses"] or status["unused_recovery"]
                                    or any(not f["applied"] for f in status["faults"]))

    @property
    def closed(self) -> bool:
        return self._final is not None

    def close(self) -> dict[str, Any]:
        """Unmount (once); the final status."""
        if self._final is None:
            self._final = self.service.unmount(self.id)
        return self._final

    def check(self) -> None:
        """Raise :class:`ReplayMiss` when a strict replay failed (:attr:`failed`)."""
        if self.failed:
            raise ReplayMiss(self)

    def explain(self) -> str:
        """What failed, as text: each request that missed, why, the closest recorded ones and how they differ;
        the recorded failure and recovery that did not replay; the faults that never struck."""
        status = self.status()
        parts = [explain_misses(self.cassette, status["misses"])] if status["misses"] else []
        if status["unused_recovery"]:
            parts.append(f"gwsvcr: {self.cassette}: the recorded failure and the client's recovery did not replay: "
                         + "; ".join(f"#{r['exchange']} {r['what']}" for r in status["unused_recovery"])
                         + " never used")
        idle = [f["spec"] for f in status["faults"] if not f["applied"]]
        if idle:
            parts.append("gwsvcr: faults that never struck: " + "; ".join(idle))
        return "\n".join(parts)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if self.raise_on_miss and kind is None:
            self.check()


def replaying(cassette: str | os.PathLike[str], *, timing: str = "recorded", speed: float = 1.0,
              strict: bool = True, json_ignore: Sequence[str] = (), ignore_query: Sequence[str] = (),
              match_headers: Sequence[str] = (), allow_repeats: bool = True, correlate: Sequence[str] = (),
              no_correlate: Sequence[str] = (), session_cookies: Sequence[str] = (),
              session_headers: Sequence[str] = (), faults: Sequence[str] = (),
              allow_host_header: Sequence[str] = (), raise_on_miss: bool = True,
              service: ServiceClient | None = None) -> Replay:
    """Mount ``cassette`` (a path, relative to the working directory) and return it, already mounted; use it in a
    ``with`` block or call ``close()`` (e.g. ``self.addCleanup(replay.close)`` in unittest).

    - ``timing``: ``recorded`` (the recorded delays, divided by ``speed``) or ``instant`` (no delays, causal
      order kept);
    - ``strict``: a request the cassette does not hold is answered 500 with the explanation (else 404) and
      listed in ``misses``, and leaving the ``with`` block raises :class:`ReplayMiss` with the explanation (as
      VCR.py raises on a request its cassette does not hold), unless the block itself raised or
      ``raise_on_miss=False``; without a ``with`` block, :meth:`Replay.check` raises it;
    - ``json_ignore`` (dotted JSON body paths), ``ignore_query`` (query parameters) left out of REST matching,
      ``match_headers`` compared too, ``allow_repeats=False``: a request asked more often than recorded is a
      miss (``gwsvcr replay``'s ``--json-ignore``, ``--ignore-query``, ``--match-header``, ``--no-repeat``; the
      cassette header's ``match:`` section adds to them); ``correlate`` / ``no_correlate``: a location of values
      the client makes that the recording did not find, or one it found that is not (``--correlate``,
      ``--no-correlate``; gwsvcr/correlate.py); ``session_cookies`` / ``session_headers``: what identifies a
      client session (gwsvcr/session.py); ``faults``: faults on demand (``gwsvcr replay --fault``, e.g.
      ``["unknown-client after op 2"]``);
    - ``allow_host_header``: host names the mount answers in a request's ``Host`` header besides loopback names,
      IP addresses and the cassette's upstream (others are refused, gwsvcr/guard.py);
    - ``service``: a :class:`ServiceClient`; default the shared one (:func:`shared_service`).

    Raises :class:`ServiceError` for a missing or invalid cassette (its ``FILE:LINE`` problems) or a bad option.
    """
    return Replay(**locals())  # every keyword as given (gwsvcr/options.py declares them; tests/test_options.py)


class Recording:
    """``gwsvcr record`` running for one cassette: ``url`` is where the client goes instead of GWS. ``misses``
    and ``unused`` are empty (nothing is replayed), so harness code reads the same either way."""

    misses: list[dict[str, Any]] = []  # noqa: RUF012 - read-only, the same for every recording
    unused: list[int] = []  # noqa: RUF012

    def __init__(self, cassette: str | os.PathLike[str], *, upstream: str, **options: Any) -> None:
        """``options``: :func:`recording`'s (:data:`gwsvcr.options.RECORD`); ValueError names a bad one."""
        from gwsvcr.record import modes

        values = RECORD.read(options, Surface.API)
        self.cassette = Path(os.path.abspath(cassette))
        modes.check_target(self.cassette, values["mode"], 'mode="{}"')  # CassetteExists for mode once
        self.cassette.parent.mkdir(parents=True, exist_ok=True)
        args = ["record", "--upstream", upstream, "--cassette", str(self.cassette), "--port", "0",
                *RECORD.command_line(values)]
        try:
            self.process: Proc = start(gwsvcr_command(*args), timeout=60)
        except NotListening as e:
            raise ServiceError(f"cannot record {self.cassette} from {upstream}:\n{e}") from None
        self.url = self.process.url
        self.upstream = upstream

    @property
    def closed(self) -> bool:
        return self.process.popen.poll() is not None

    def close(self) -> str:
        """Stop the recorder (its last exchanges written); its summary line. :class:`ServiceError` if it failed."""
        code = self.process.stop(timeout=30)
        if code != 0:
            raise ServiceError(f"gwsvcr record of {self.cassette} exited {code}:\n{self.process.stderr}")
        return self.process.stdout.strip().splitlines()[-1] if self.process.stdout.strip() else ""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.closed:
            self.close()


def recording(cassette: str | os.PathLike[str], *, upstream: str, mode: str = "all",
              redact_headers: Sequence[str] = (), redact_json: Sequence[str] = (), max_body: str = "16m",
              ignore_query: Sequence[str] = (), match_headers: Sequence[str] = (), correlate: Sequence[str] = (),
              no_correlate: Sequence[str] = (), session_cookies: Sequence[str] = (),
              session_headers: Sequence[str] = (), allow_host_header: Sequence[str] = ()) -> Recording:
    """Record ``cassette`` from ``upstream`` (a ``gwsvcr record`` child process, reverse mode) until ``close()``
    or the end of the ``with`` block. ``mode`` as VCR.py's record modes: ``all`` rewrites, ``new_episodes``
    appends, ``once`` refuses an existing cassette (:class:`~gwsvcr.record.modes.CassetteExists`), ``none``
    passes through. Secrets are redacted as ``gwsvcr record`` does; add ``redact_headers`` / ``redact_json``.
    The other options are ``gwsvcr record``'s of the same name (``--max-body``, ``--ignore-query``,
    ``--match-header``, ``--correlate``, ``--no-correlate``, ``--session-cookie``, ``--session-header``,
    ``--allow-host-header``)."""
    return Recording(**locals())  # every keyword as given (gwsvcr/options.py declares them; tests/test_options.py)
