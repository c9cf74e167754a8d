"""Synthetic big cassettes, made from a real recorded exchange pattern.

The pattern is the short session recorded through ``gwsvcr record`` against ``gwsvcr sim``: a prologue (log in,
handshake, first connect, subscribe), then per operation a REST ``POST`` and the ``/meta/connect`` whose reply
carried the operation's event, then the disconnect. A cassette of E events repeats the recorded operation pairs
(cycling through them) E times with fresh exchange numbers, start times and causes.

Writing is done by gwsvcr's own writer: ``CassetteWriter`` writes the header and the prologue, and each pair is
``dump_document`` output (what ``CassetteWriter.write`` emits) turned into a text template whose only holes are the
exchange number, the start time and the cause. :func:`check_template` proves on a small cassette that the result
is byte for byte what ``CassetteWriter.write`` produces for every exchange; templating only makes 100k events
take seconds instead of a minute.

The same exchanges are also written as a VCR.py cassette (VCR.py's own serializer for one cycle, repeated) and as
a mitmproxy flow file (mitmproxy's own serializer for each recorded flow, repeated).
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gwsvcr import cassette as C
from gwsvcr.bayeux import CONNECT

_NUM_A, _NUM_B, _START_A, _START_B = 987650001, 987650002, 876543.125, 876543.375


@dataclass
class Pattern:
    header: C.Header
    prologue: list[C.Exchange]
    pairs: list[tuple[C.Exchange, C.Exchange]]  # (REST operation, the connect that carried its event)
    epilogue: list[C.Exchange]
    period: float  # seconds one cycle of the recorded pairs took


def pattern_of(path: str | Path) -> Pattern:
    cas = C.load(path, use_cache=False)
    exs = sorted(cas.exchanges, key=lambda e: e.number)
    by_number = {e.number: e for e in exs}
    pairs: list[tuple[C.Exchange, C.Exchange]] = []
    members: set[int] = set()
    for ex in exs:
        events = [i for i in ex.reply_items() if i.is_event and i.cause is not None]
        if len(events) == 1 and events[0].cause in by_number:
            post = by_number[events[0].cause]
            if not post.is_bayeux:
                pairs.append((post, ex))
                members.update((post.number, ex.number))
    if not pairs:
        raise ValueError(f"{path}: no REST operation with its event: not a recording of the bench session")
    first, last = min(members), max(members)
    prologue = [e for e in exs if e.number < first and e.number not in members]
    epilogue = [e for e in exs if e.number > last]
    begin = min(min(p.start, c.start) for p, c in pairs)
    end = max(c.start + (c.ttlb or 0) for _, c in pairs)
    return Pattern(cas.header, prologue, pairs, epilogue, period=end - begin + 0.01)


def _float_text(x: float) -> str:
    """A float as PyYAML's SafeRepresenter writes it (what the writer emits for ``start``)."""
    value = repr(x).lower()
    if "." not in value and "e" in value:
        value = value.replace("e", ".0e", 1)
    return value


def _prologue(pat: Pattern) -> list[C.Exchange]:
    return [dataclasses.replace(ex, number=i + 1) for i, ex in enumerate(pat.prologue)]


def _pair(pat: Pattern, k: int, n: int) -> tuple[C.Exchange, C.Exchange]:
    """The k-th operation pair, numbered n+1 (REST) and n+2 (connect)."""
    post, conn = pat.pairs[k % len(pat.pairs)]
    offset = (k // len(pat.pairs)) * pat.period
    p = dataclasses.replace(post, number=n + 1, start=round(post.start + offset, 6))
    c = dataclasses.replace(conn, number=n + 2, start=round(conn.start + offset, 6))
    c.response = copy.copy(conn.response)
    c.response.body = [dataclasses.replace(i, cause=n + 1) if i.is_event else i  # type: ignore[union-attr]
                       for i in conn.reply_items()]
    return p, c


def _epilogue(pat: Pattern, events: int) -> list[C.Exchange]:
    n = len(pat.prologue) + 2 * events
    base = min(min(p.start, c.start) for p, c in pat.pairs)
    last = base + pat.period * ((events - 1) // len(pat.pairs) + 1)
    return [dataclasses.replace(ex, number=n + i + 1, start=round(max(ex.start, last), 6))
            for i, ex in enumerate(pat.epilogue)]


def _renumbered(pat: Pattern, events: int) -> Iterator[C.Exchange]:
    """Every exchange of the synthetic cassette, as objects."""
    yield from _prologue(pat)
    n = len(pat.prologue)
    for k in range(events):
        yield from _pair(pat, k, n)
        n += 2
    yield from _epilogue(pat, events)


def write_with_writer(pat: Pattern, events: int, path: Path) -> None:
    """The reference: every exchange through ``CassetteWriter.write`` (slow for 100k events)."""
    w = C.CassetteWriter(path, pat.header)
    try:
        for ex in _renumbered(pat, events):
            w.write(ex)
    finally:
        w.close()


def _templates(pat: Pattern) -> list[tuple[str, str]]:
    out = []
    for k in range(len(pat.pairs)):
        p, c = _pair(pat, k, _NUM_A - 1)
        p.start, c.start = _START_A, _START_B
        texts = []
        for ex in (p, c):
            t = C.dump_document(C.exchange_to_doc(ex))
            t = t.replace("{", "{{").replace("}", "}}")
            t = t.replace(f"exchange: {_NUM_A}\n", "exchange: {a}\n").replace(f"exchange: {_NUM_B}\n",
                                                                               "exchange: {b}\n")
            t = t.replace(f"cause: {_NUM_A}\n", "cause: {a}\n")
            t = t.replace(f"start: {_float_text(_START_A)}\n", "start: {sa}\n")
            t = t.replace(f"start: {_float_text(_START_B)}\n", "start: {sb}\n")
            texts.append(t)
        out.append((texts[0], texts[1]))
    return out


def write_fast(pat: Pattern, events: int, path: Path) -> None:
    """The same bytes as :func:`write_with_writer`: header and prologue through ``CassetteWriter``, the
    operation pairs from templates, the epilogue through ``dump_document`` (what ``CassetteWriter.write``
    writes)."""
    w = C.CassetteWriter(path, pat.header)
    try:
        for ex in _prologue(pat):
            w.write(ex)
    finally:
        w.close()
    temps = _templates(pat)
    n = len(pat.prologue)
    with open(path, "a", encoding="utf-8") as fh:
        buf: list[str] = []
        for k in range(events):
            post, conn = pat.pairs[k % len(pat.pairs)]
            tp, tc = temps[k % len(temps)]
            offset = (k // len(pat.pairs)) * pat.period
            fields = {"a": n + 1, "b": n + 2, "sa": _float_text(round(post.start + offset, 6)),
                      "sb": _float_text(round(conn.start + offset, 6))}
            buf.append(tp.format(**fields))
            buf.append(tc.format(**fields))
            n += 2
            if len(buf) >= 2000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
        for ex in _epilogue(pat, events):
            fh.write(C.dump_document(C.exchange_to_doc(ex)))


def check_template(pat: Pattern, workdir: Path) -> None:
    """Fail loudly unless the templated cassette is byte for byte the writer's."""
    a, b = workdir / "check-writer.yaml", workdir / "check-template.yaml"
    write_with_writer(pat, 2 * len(pat.pairs) + 1, a)
    write_fast(pat, 2 * len(pat.pairs) + 1, b)
    if a.read_bytes() != b.read_bytes():
        raise AssertionError(f"synthetic cassette template differs from CassetteWriter output: diff {a} {b}")
    a.unlink()
    b.unlink()


# ------------------------------------------------------------------------------------------------ VCR.py


def _vcr_pair(ex: C.Exchange, base: str):  # type: ignore[no-untyped-def]
    from vcr.request import Request

    query = "&".join(f"{k}={v}" for k, v in ex.request.query)
    uri = base + ex.request.path + ("?" + query if query else "")
    req = Request(ex.request.method, uri, ex.request.content() or None, dict(ex.request.headers))
    resp = ex.response or C.Response(status=502)
    response = {"status": {"code": resp.status, "message": "OK" if resp.status == 200 else ""},
                "headers": {k: [v] for k, v in resp.headers}, "body": {"string": resp.content()}}
    return req, response


def _vcr_text(exchanges: list[C.Exchange], base: str) -> list[str]:
    """VCR.py's serializer output for these exchanges, cut into one text block per interaction."""
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    pairs = [_vcr_pair(ex, base) for ex in exchanges]
    text = serialize({"requests": [p[0] for p in pairs], "responses": [p[1] for p in pairs]}, yamlserializer)
    lines = text.splitlines(keepends=True)
    if lines[0] != "interactions:\n" or lines[-1] != "version: 1\n":
        raise AssertionError("unexpected VCR.py cassette layout")
    blocks: list[list[str]] = []
    for line in lines[1:-1]:
        if line.startswith("- "):
            blocks.append([])
        blocks[-1].append(line)
    if len(blocks) != len(exchanges) or "&id" in text:
        raise AssertionError("VCR.py cassette: cannot split into interactions")
    return ["".join(b) for b in blocks]


def write_vcr(pat: Pattern, events: int, path: Path) -> int:
    """A VCR.py cassette with the same interactions; returns how many."""
    base = pat.header.upstream.rstrip("/") or "http://127.0.0.1:8090"
    pro = _vcr_text(pat.prologue, base)
    pairs = _vcr_text([x for pair in pat.pairs for x in pair], base)
    epi = _vcr_text(pat.epilogue, base) if pat.epilogue else []
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("interactions:\n")
        fh.writelines(pro)
        for k in range(events):
            j = k % len(pat.pairs)
            fh.write(pairs[2 * j] + pairs[2 * j + 1])
        fh.writelines(epi)
        fh.write("version: 1\n")
    return len(pro) + 2 * events + len(epi)


# ----------------------------------------------------------------------------------------------- mitmproxy


def write_flows(src: Path, events: int, path: Path) -> int:
    """A mitmproxy flow file with the recorded flows, the operation pairs repeated; returns how many flows."""
    from mitmproxy import io as mio

    with open(src, "rb") as fh:
        flows = list(mio.FlowReader(fh).stream())

    def is_op(f) -> bool:  # type: ignore[no-untyped-def]
        return f.request.method == "POST" and b"operationName" in (f.request.content or b"")

    def is_event(f) -> bool:  # type: ignore[no-untyped-def]
        return f.response is not None and b'"data"' in (f.response.content or b"") \
            and CONNECT.encode() in (f.request.content or b"")

    marks = [i for i, f in enumerate(flows) if is_op(f) or is_event(f)]
    if not marks:
        raise ValueError(f"{src}: no operation flows")
    first, last = marks[0], marks[-1]
    raw = []
    for f in flows:
        b = io.BytesIO()
        mio.FlowWriter(b).add(f)
        raw.append(b.getvalue())
    cycle = [raw[i] for i in range(first, last + 1)]
    per_cycle = sum(1 for i in range(first, last + 1) if is_event(flows[i]))
    count = 0
    with open(path, "wb") as fh:
        for b in raw[:first]:
            fh.write(b)
            count += 1
        done = 0
        while done < events:
            for i, b in enumerate(cycle):
                fh.write(b)
                count += 1
                if is_event(flows[first + i]):
                    done += 1
                    if done >= events:
                        break
        for b in raw[last + 1:]:
            fh.write(b)
            count += 1
    assert per_cycle > 0
    return count


# ---------------------------------------------------------------------------------------------- matching


def rest_cassette(n: int) -> C.Cassette:
    """A cassette of ``n`` distinct REST operations (one call id each), for the matching benchmark."""
    cas = C.Cassette("synthetic", C.Header(recorded_at="synthetic"))
    ops = ("StopCallRecording", "StartCallRecording", "PauseCallRecording", "ResumeCallRecording")
    for i in range(n):
        req = C.Request(headers=[("Content-Type", "application/json;charset=UTF-8"),
                                 ("Authorization", "Basic YWdlbnQxOnNlY3JldA==")], kind="json",
                        body={"operationName": ops[i % 4]}, method="POST", path=call_path(i))
        resp = C.Response(headers=[("Content-Type", "application/json;charset=UTF-8")], kind="json",
                          body={"statusCode": 0}, status=200)
        cas.exchanges.append(C.Exchange(i + 1, "s1", i * 0.01, req, resp, ttfb=0.001, ttlb=0.001))
    return cas


def call_path(i: int) -> str:
    return f"/api/v2/me/calls/01RCC3N118B1V0SL8O{i:014d}"
