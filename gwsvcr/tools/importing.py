"""Recordings other tools made (a HAR, a VCR.py cassette, a mitmproxy flow file) turned into a gwsvcr cassette
through the recorder's own logic (:class:`gwsvcr.record.recording.Recorder`): sessions linked by cookie, Basic user
and clientId, Bayeux bodies as ``messages``, every event with its cause and delay, secrets redacted, exactly as if
the traffic had passed through ``gwsvcr record``.

Each reader (``gwsvcr/tools/har.py``, ``gwsvcr/tools/vcrpy.py``, the flow file reader in ``addons/flowfile.py``,
which needs mitmproxy) turns its file into :class:`Entry` objects; :func:`to_cassette` feeds them to the recorder
in the order a live recorder would have heard them: an HTTP exchange when it completed (a long-poll that started
before a REST call but completed after it must find that call done when its events are attributed), a WebSocket
frame when it was sent or received. :func:`kind_of` tells which tool wrote a file, so that the commands given one
can say how to convert it.

Imported files are untrusted input, as cassettes are: a reader reports what is wrong as :class:`ImportProblems`
(``FILE: where: what``), never a traceback.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gwsvcr import wire
from gwsvcr.cassette import Cassette, Episode, Exchange, Header, Request, Response
from gwsvcr.errors import GwsvcrError
from gwsvcr.record.recording import ExchangeTimes, Recorder, WebSocketRecording, reply_messages
from gwsvcr.record.redact import Redactor
from gwsvcr.version import __version__

__all__ = ["CONVERT", "Entry", "Frame", "ImportProblems", "convert_hint", "keeps", "kind_of", "read_bytes",
           "to_cassette"]

_JSON_KINDS = ("json", "messages")
# How to turn each kind of file into a cassette.
CONVERT = {"har": "gwsvcr har import {path} -o {out}", "vcrpy": "gwsvcr import {path} -o {out}",
           "flows": "gwsvcr import {path} -o {out}"}


class ImportProblems(GwsvcrError):
    """A file that cannot be imported; ``problems`` holds ``FILE:LINE: what`` or ``FILE: where: what`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def read_bytes(path: str, what: str) -> bytes:
    """The file's bytes, or :class:`ImportProblems` saying why not (``what``: "a HAR file")."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImportProblems([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ImportProblems([f"{path}: is a directory, not {what}"]) from None
    except OSError as e:
        raise ImportProblems([f"{path}: cannot read: {e.strerror}"]) from None


def kind_of(path: str | Path, head: bytes | None = None) -> str | None:
    """Which tool wrote this file, from its first bytes: ``har`` (JSON with ``log``), ``vcrpy`` (a VCR.py
    cassette, YAML or JSON with ``interactions``), ``flows`` (mitmproxy's ``-w``, tnetstrings), ``gwsvcr``, or
    None."""
    if head is None:
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"[") and b'"log"' in text[:200]:
        return "har"
    if b"interactions:" in text[:200] or b'"interactions"' in text[:200]:
        return "vcrpy"
    digits = text[:text.find(b":")] if b":" in text[:12] else b""
    if digits.isdigit() and text[len(digits) + 1:len(digits) + 40].find(b":") > 0:
        return "flows"  # mitmproxy's tnetstring: LENGTH:DATA, a dict of LENGTH:KEY,...
    if text.startswith((b"---", b"gwsvcr:")) or b"\ngwsvcr:" in text[:200]:
        return "gwsvcr"
    return None


def convert_hint(path: str | Path) -> str | None:
    """``this is a HAR file: convert it with gwsvcr har import F -o F.yaml`` for a file another tool wrote."""
    kind = kind_of(path)
    if kind not in CONVERT:
        return None
    names = {"har": "a HAR file", "vcrpy": "a VCR.py cassette", "flows": "a mitmproxy flow file"}
    out = Path(path).with_suffix(".yaml").name if Path(path).suffix != ".yaml" else f"{Path(path).stem}.gwsvcr.yaml"
    return f"{path} is {names[kind]}, not a gwsvcr cassette: convert it with {CONVERT[kind].format(path=path, out=out)}"


@dataclass
class Frame:
    """A Bayeux WebSocket frame (a HAR's ``_webSocketMessages``, a flow's WebSocket messages)."""

    from_client: bool
    at: float  # seconds since the epoch
    messages: list[dict[str, Any]]


@dataclass
class Entry:
    """One exchange of an imported file in the recorder's terms; a WebSocket has its Bayeux ``frames``."""

    url: str
    request: Request
    response: Response | None
    timing: ExchangeTimes
    error: str | None = None
    frames: list[Frame] | None = None
    where: str = ""  # which entry of its file (log.entries[3], interactions[2], flow 4)

    @property
    def is_api(self) -> bool:
        """Bayeux, or JSON either way: what a GWS client exchanges (pages, scripts and images are not)."""
        if self.frames is not None:
            return bool(self.frames)
        if wire.bayeux_of(self.request) is not None or self.request.kind in _JSON_KINDS:
            return True
        if self.response is None:
            return False
        return self.response.kind in _JSON_KINDS or bool(reply_messages(self.response))




def keeps(entry: Entry, keep_all: bool = False, hosts: tuple[str, ...] = ()) -> bool:
    """Whether an import keeps an entry: API traffic (or everything), to those hosts; a WebSocket with frames."""
    return ((keep_all or entry.is_api) and (not hosts or urlsplit(entry.url).hostname in hosts)
            and entry.frames != [])


def to_cassette(path: str, entries: list[Entry], redactor: Redactor, rules: list[str] | None = None, *,
                keep_all: bool = False, hosts: tuple[str, ...] = (), source: str = "", origin: str = "",
                on_progress: Callable[[int], None] = lambda done: None) -> Cassette:
    """Entries through the recorder: sessions, Bayeux messages, causes and delays, secrets redacted.

    ``rules`` describe the redaction in the header (default: the redactor's own); ``hosts`` keeps only
    those; ``source`` says what was imported (``har import x.har``), ``origin`` the file (for the problems);
    ``on_progress(n)`` hears of every n entries handled."""
    kept = [e for e in entries if keeps(e, keep_all, hosts)]
    on_progress(len(entries) - len(kept))
    # whole seconds, as recorded_at is written: recorded_at + start is then exactly when a request started
    t0 = float(math.floor(min((e.timing.request_start for e in kept), default=0.0)))
    servers = Counter(urlsplit(e.url).netloc for e in kept)
    scheme = next((urlsplit(e.url).scheme for e in kept), "http")
    header = Header(recorded_at=_iso(t0)[:19] + "Z" if kept else "",
                    upstream=f"{scheme}://{servers.most_common(1)[0][0]}" if servers else "",
                    recorder=f"gwsvcr {__version__} {source or 'import'}",
                    redactions=redactor.rules() if rules is None else rules)
    exchanges: list[Exchange] = []
    recorder = Recorder(None, redactor, t0, on_exchange=exchanges.append)
    problems: list[str] = []
    for _, _, entry, happen in sorted(_happenings(kept, recorder, on_progress), key=lambda h: (h[0], h[1])):
        try:
            happen()
        except Exception as e:  # noqa: BLE001 - untrusted input: what the recorder cannot take is that entry's problem
            problems.append(f"{origin or path}: {entry.where or entry.url[:80]}: cannot be recorded: "
                            f"{type(e).__name__}: {str(e)[:200]}")
    if problems:
        raise ImportProblems(problems)
    return Cassette(path, header, exchanges, [Episode(1, header.recorded_at, header.upstream)])


Happening = tuple[float, float, Entry, Callable[[], None]]  # when, by when its entry started: what the recorder hears


def _happenings(entries: list[Entry], recorder: Recorder, on_progress: Callable[[int], None]) -> list[Happening]:
    """What the recorder hears, and when, as it would live: an HTTP exchange when it completed, a WebSocket frame
    when it was sent or received (so a REST reply that came before an event is done when the event arrives)."""
    out: list[Happening] = []
    for entry in entries:
        started = entry.timing.request_start
        if entry.frames is None:
            def complete(e: Entry = entry) -> None:
                recorder.complete(e.request, e.response, e.timing, _failure(e.error))
                on_progress(1)
            out.append((_completed(entry.timing), started, entry, complete))
            continue
        socket = WebSocketRecording(recorder, entry.request)
        for frame in entry.frames:
            on = socket.client_frame if frame.from_client else socket.server_frame
            out.append((frame.at, started, entry, lambda on=on, f=frame: on(f.messages, f.at)))  # type: ignore[misc]
        end = entry.timing.response_end or started

        def close(s: WebSocketRecording = socket, at: float = end) -> None:
            s.close(at)
            on_progress(1)
        out.append((end, started, entry, close))
    return out


def _failure(error: str | None) -> str | None:
    """An entry's error as ``gwsvcr record`` words it: a client that left before the reply (a long-poll cut at
    the end of a session, "Client disconnected.") is no failure of the server, and replay does not expect it."""
    if error is not None and "client disconnected" in error.lower() and not error.startswith("client gone"):
        return f"client gone before the reply ({error})"
    return error


def _completed(timing: ExchangeTimes) -> float:
    """When the exchange ended: its reply's last byte, else its first, else the end of the request (never None)."""
    for moment in (timing.response_end, timing.response_start):
        if moment is not None:
            return moment
    return timing.request_end


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
