"""Writing cassettes: the model as documents, appended one ``write()`` each, and whole cassettes atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from gwsvcr.cassette import emit
from gwsvcr.cassette.atomic import write_atomically
from gwsvcr.cassette.load import load
from gwsvcr.cassette.model import Cassette, Episode, Exchange, Header, HttpMessage, Mark, ReplyItem, now_iso
from gwsvcr.version import __version__


def _headers_to_doc(headers: list[tuple[str, str]]) -> list[list[str]]:
    return [emit.Flow([k, v]) for k, v in headers]


def _message_to_doc(msg: HttpMessage, out: dict[str, Any]) -> None:
    if msg.headers:
        out["headers"] = _headers_to_doc(msg.headers)
    if msg.kind == "messages" and msg.body and isinstance(msg.body[0], ReplyItem):
        out["messages"] = [_reply_item_to_doc(item) for item in msg.body]
    elif msg.kind is not None:
        out[msg.kind] = msg.body
    if msg.omitted is not None:
        out["omitted"] = {"size": msg.omitted.size, "sha256": msg.omitted.sha256}


def _reply_item_to_doc(item: ReplyItem) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if item.event is not None:
        doc["event"] = item.event
    if item.cause is not None:
        doc["cause"] = item.cause
    if item.after is not None:
        doc["after"] = item.after
    if item.delay is not None:
        doc["delay"] = round(item.delay, 6)
    if item.hold is not None:
        doc["hold"] = round(item.hold, 6)
    if item.rule is not None:
        doc["rule"] = item.rule
    if item.correlate:
        doc["correlate"] = [_mark_to_doc(m, own=None) for m in item.correlate]
    doc["message"] = item.message
    return doc


def _mark_to_doc(mark: Mark, own: int | None) -> dict[str, Any]:
    """A client-made value's mark; ``own``: the exchange it is written in (its number is then left out)."""
    doc: dict[str, Any] = {} if mark.exchange == own else {"exchange": mark.exchange}
    doc["at"] = mark.at
    doc["paths"] = emit.Flow(mark.paths)
    return doc


def exchange_to_doc(ex: Exchange) -> dict[str, Any]:
    doc: dict[str, Any] = {"exchange": ex.number, "session": ex.session, "start": round(ex.start, 6)}
    if ex.transport != "http":
        doc["transport"] = ex.transport
    if ex.kept_as_http is not None:
        doc["kept_as_http"] = ex.kept_as_http
    if ex.ttfb is not None:
        doc["ttfb"] = round(ex.ttfb, 6)
    if ex.ttlb is not None:
        doc["ttlb"] = round(ex.ttlb, 6)
    req: dict[str, Any] = {"method": ex.request.method, "path": ex.request.path}
    if ex.request.query:
        req["query"] = _headers_to_doc(ex.request.query)
    _message_to_doc(ex.request, req)
    doc["request"] = req
    if ex.response is not None:
        resp: dict[str, Any] = {"status": ex.response.status}
        _message_to_doc(ex.response, resp)
        doc["response"] = resp
    if ex.error is not None:
        doc["error"] = ex.error
    if ex.correlate:
        doc["correlate"] = [_mark_to_doc(m, own=ex.number) for m in ex.correlate]
    return doc


def header_to_doc(h: Header) -> dict[str, Any]:
    doc: dict[str, Any] = {"gwsvcr": h.version, "recorded_at": h.recorded_at, "upstream": h.upstream,
                           "recorder": h.recorder, "redactions": list(h.redactions)}
    if h.match:
        doc["match"] = {k: emit.Flow(v) for k, v in h.match.items() if v}
    doc.update(h.extra)
    return doc


def dump_document(doc: dict[str, Any]) -> str:
    return emit.document(doc)


# ----------------------------------------------------------------------------------------------------- writing


class CassetteWriter:
    """Appends documents to a cassette, each flushed to the OS as one write the moment it is complete.

    A SIGKILL therefore never leaves half a document behind; a full disk raises ``OSError`` to the caller, who
    must stop rather than let traffic pass unrecorded.
    """

    def __init__(self, path: str | os.PathLike[str], header: Header | None = None, *, append: bool = False,
                 upstream: str = "") -> None:
        self.path = Path(path)
        self.next_number = 1
        self.episode = 1
        if append and self.path.exists() and self.path.stat().st_size > 0:
            existing = load(self.path)
            self.next_number = max((ex.number for ex in existing.exchanges), default=0) + 1
            self.episode = max((e.number for e in existing.episodes), default=1) + 1
            self._fh: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open until close()
            self._write({"episode": self.episode, "recorded_at": now_iso(), "upstream": upstream})
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - open until close()
            self._write(header_to_doc(header or Header(recorded_at=now_iso(), upstream=upstream,
                                                       recorder=f"gwsvcr {__version__}")))

    def _write(self, doc: dict[str, Any]) -> None:
        self._fh.write(dump_document(doc))
        self._fh.flush()

    def write(self, ex: Exchange) -> None:
        ex.episode = self.episode
        self._write(exchange_to_doc(ex))

    def take_number(self) -> int:
        n = self.next_number
        self.next_number += 1
        return n

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


# ----------------------------------------------------------------------------------------------------- loading

def iter_documents(cassette: Cassette) -> Iterator[dict[str, Any]]:
    """The cassette as documents again (header first), e.g. to rewrite it after redaction."""
    yield header_to_doc(cassette.header)
    episode = 1
    for ex in cassette.exchanges:
        if ex.episode != episode:
            episode = ex.episode
            ep = next((e for e in cassette.episodes if e.number == episode), Episode(episode, ""))
            yield {"episode": ep.number, "recorded_at": ep.recorded_at, "upstream": ep.upstream}
        yield exchange_to_doc(ex)


def save(cassette: Cassette, path: str | os.PathLike[str]) -> None:
    """Write a whole cassette atomically (tools that rewrite one: redact, har import)."""
    write_atomically(path, (dump_document(doc) for doc in iter_documents(cassette)))

