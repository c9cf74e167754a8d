"""Hostile cassettes: the loader answers every file with a cassette or a CassetteError whose problems all carry
FILE:LINE, never another exception and never a hang (a customer's cassette is untrusted input).

Each file is checked in a forked worker process with a time and memory limit, so a hang or a memory blow-up is
reported as such instead of freezing the test run.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwsvcr import cassette as cas
from tests.procs import ROOT

SAMPLES = sorted((ROOT / "cassettes").glob("*.yaml"))
SECONDS_PER_FILE = 10.0
MEMORY_LIMIT = 1 << 30  # bytes more address space for the worker: an alias bomb must not take the machine down
EXAMPLES = 300
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.function_scoped_fixture])
TRIED: dict[str, int] = {}


def _check(path: str, cache_dir: str) -> str:
    """Runs in the worker: '' when the loader behaved, else what went wrong."""
    try:
        problems = cas.validate(path)
        for p in problems:
            if not (isinstance(p, cas.Problem) and p.path == path and p.line >= 1
                    and str(p).startswith(f"{path}:{p.line}: ") and p.message):
                return f"validate: problem without FILE:LINE: {p!r}"
        fatal = [p for p in problems if p.severity is cas.Severity.ERROR]
        os.environ["GWSVCR_CACHE_DIR"] = cache_dir
        for _ in range(2):  # the first load fills the parse cache (when valid), the second reads it
            try:
                loaded = cas.load(path)
            except cas.CassetteError as e:
                if not fatal:
                    return f"load raised although validate found nothing fatal: {e}"
                if not e.problems or any(p.line < 1 or p.path != path for p in e.problems):
                    return f"load: CassetteError without FILE:LINE: {e.problems!r}"
            else:
                if fatal:
                    return f"load accepted a cassette validate rejects: {fatal}"
                if not isinstance(loaded, cas.Cassette):
                    return f"load returned {type(loaded).__name__}"
        return ""
    except BaseException:  # noqa: BLE001 - exactly what the test looks for
        return "exception:\n" + traceback.format_exc(limit=6)


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))


def _serve(conn: Connection, check: Callable[[str, str], str]) -> None:
    limit = _address_space() + MEMORY_LIMIT  # on top of what the forked test process already maps
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(check(*job))


@dataclass
class Worker:
    """A forked process that checks files one at a time (``check(path, cache_dir)``: '' or what went wrong);
    killed and replaced when one hangs."""

    cache_dir: str
    check_file: Callable[[str, str], str] = _check
    proc: Any = None
    conn: Connection | None = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, self.check_file), daemon=True)
        self.proc.start()

    def check(self, path: Path) -> str:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        assert self.conn is not None
        self.conn.send((str(path), self.cache_dir))
        if self.conn.poll(SECONDS_PER_FILE):
            try:
                return str(self.conn.recv())
            except EOFError:
                self.proc = None
                return "the worker died (memory limit or a crash in C code)"
        self.stop()
        return f"hang: no answer within {SECONDS_PER_FILE}s"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(str(tmp_path_factory.mktemp("parse-cache")))
    yield w
    w.stop()


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    """How many inputs each fuzzer tried, printed at the end of the module (pytest -s shows it)."""
    yield
    print("\ncassette loader fuzz, inputs tried: " + ", ".join(f"{k}={v}" for k, v in sorted(TRIED.items()))
          + f" (total {sum(TRIED.values())})")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _try(worker: Worker, workdir: Path, name: str, content: bytes) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1
    path = workdir / f"{name}.yaml"
    path.write_bytes(content)
    outcome = worker.check(path)
    assert outcome == "", f"{outcome}\n--- input ({len(content)} bytes) ---\n{content[:600]!r}"


# ---------------------------------------------------------------------------------------------- strategies

SCALARS = ["-1", "0", "1e309", ".nan", ".inf", "~", "null", "[]", "{}", "''", "true", "0x1F", "2026-01-01",
           "2026-01-01T00:00:00Z", "!!binary aGk=", "!!python/object/apply:os.system ['true']", "!!set {a}",
           "&a x", "*a", "*nowhere", "\"\\x00\"", "'\t'", "|", ">-", "? a", "- x", "{a: [}", "\"\\ud800\"",
           "9" * 5000, "x" * 70000, "<<: {a: 1}"]
KEYS = ["gwsvcr", "recorded_at", "upstream", "recorder", "redactions", "episode", "exchange", "session", "start",
        "ttfb", "ttlb", "transport", "request", "response", "error", "method", "path", "query", "headers", "json",
        "messages", "text", "base64", "status", "message", "cause", "delay", "hold", "event", "after", "channel",
        "data", "clientId", "id"]

leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
                   st.binary(max_size=20), st.sampled_from(KEYS))
yaml_data = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(), st.text(max_size=5)),
                                                 inner, max_size=6)), max_leaves=30)


def _exchange_like() -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like exchanges with every field possibly missing or of the wrong type."""
    request = st.fixed_dictionaries({}, optional={
        "method": st.one_of(st.just("POST"), yaml_data), "path": st.one_of(st.just("/api/v2/notifications"), yaml_data),
        "headers": st.one_of(st.just([["Host", "x"]]), yaml_data), "query": yaml_data,
        "json": yaml_data, "messages": st.one_of(st.lists(st.fixed_dictionaries({"channel": st.just("/meta/connect")},
                                                                                   optional={"id": yaml_data})),
                                                 yaml_data),
        "text": yaml_data, "base64": st.one_of(st.just("aGk="), yaml_data)})
    item = st.fixed_dictionaries({}, optional={"message": st.one_of(st.just({"channel": "/v2/me/calls", "data": {}}),
                                                                     yaml_data),
                                               "cause": st.one_of(st.integers(-2, 5), yaml_data),
                                               "delay": yaml_data, "hold": yaml_data, "event": yaml_data,
                                               "after": yaml_data})
    response = st.fixed_dictionaries({}, optional={"status": st.one_of(st.just(200), yaml_data),
                                                   "headers": yaml_data, "json": yaml_data,
                                                   "messages": st.one_of(st.lists(item, max_size=3), yaml_data)})
    return st.fixed_dictionaries({}, optional={
        "exchange": st.one_of(st.integers(-1, 4), yaml_data), "session": st.one_of(st.just("s1"), yaml_data),
        "start": st.one_of(st.floats(0, 10), yaml_data), "request": st.one_of(request, yaml_data),
        "response": st.one_of(response, yaml_data), "error": yaml_data, "ttfb": yaml_data,
        "transport": yaml_data, "episode": st.one_of(st.integers(0, 3), yaml_data)})


def _dump(docs: list[Any]) -> bytes:
    return yaml.safe_dump_all(docs, explicit_start=True, allow_unicode=True, sort_keys=False).encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A sample cassette with a few line-level edits: deletions, duplicates, swaps, foreign scalars, cuts."""
    text = draw(st.sampled_from(SAMPLES)).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 4))):
        i = rnd.randrange(len(lines))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "scalar", "insert", "indent", "cut"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "scalar" and ": " in lines[i]:
            key = lines[i].split(": ", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(SCALARS))}\n"
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=40)) + "\n")
        elif op == "indent":
            lines[i] = " " * rnd.randrange(1, 5) + lines[i]
        elif op == "cut":
            out = "".join(lines)
            return out[: rnd.randrange(len(out))].encode()
        if not lines:
            break
    return "".join(lines).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------------------------ the fuzzers


@FUZZ_SETTINGS
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace"))))
def test_random_bytes(worker: Worker, workdir: Path, content: bytes) -> None:
    _try(worker, workdir, "random", content)


@FUZZ_SETTINGS
@given(content=mutated())
def test_mutated_samples(worker: Worker, workdir: Path, content: bytes) -> None:
    _try(worker, workdir, "mutated", content)


@FUZZ_SETTINGS
@given(header=st.one_of(st.just({"gwsvcr": 1, "recorded_at": "x", "upstream": "y", "recorder": "z",
                                 "redactions": []}), st.dictionaries(st.sampled_from(KEYS), yaml_data)),
       docs=st.lists(st.one_of(_exchange_like(), yaml_data), max_size=4))
def test_documents_of_the_wrong_shape(worker: Worker, workdir: Path, header: Any, docs: list[Any]) -> None:
    _try(worker, workdir, "shaped", _dump([header, *docs]))


HEADER = "---\ngwsvcr: 1\nrecorded_at: x\nupstream: y\nrecorder: z\nredactions: []\n"


def _exchange(body: str, *, session: bool = True) -> str:
    return ("---\nexchange: 1\n" + ("session: s1\n" if session else "") + "start: 0\n"
            "request:\n  method: GET\n  path: /\nresponse:\n  status: 200\n  json: " + body + "\n")


def _alias_bomb(levels: int, width: int = 10) -> str:
    lines = ["---", "exchange: 1", "session: s1", "start: 0", "request: {method: GET, path: /}", "response:",
             "  status: 200", "  json:", f"    l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,text", [
    ("alias-bomb", HEADER + _alias_bomb(9)),  # a billion leaves once expanded
    ("alias-bomb-in-messages", HEADER + _alias_bomb(9).replace("  json:", "  messages:\n  - message:\n"
                                                                          "      channel: /x\n      data:")
     .replace("    l", "        l")),
    ("deep-flow-100k", HEADER + _exchange("[" * 100_000 + "]" * 100_000)),
    ("deep-flow-900-invalid", HEADER + _exchange("[" * 900 + "]" * 900, session=False)),
    ("deep-block-3000", HEADER + _exchange("\n" + "".join("  " * (i + 2) + "k:\n" for i in range(3000)))),
    ("deep-flow-first", _exchange("[" * 5000 + "]" * 5000) + HEADER),
    ("huge-line", HEADER + _exchange('"' + "x" * 2_000_000 + '"')),
    ("many-invalid-documents", HEADER + "---\n{}\n" * 5_000),
    ("many-unknown-causes", HEADER + "".join(
        f"---\nexchange: {i}\nsession: s1\nstart: 0\nrequest: {{method: GET, path: /}}\n"
        f"response:\n  status: 200\n  messages:\n  - {{cause: 0, message: {{channel: /x, data: 1}}}}\n"
        for i in range(1, 3_001))),
    ("cycle", HEADER + "---\nexchange: 1\nsession: s1\nstart: 0\nrequest: {method: GET, path: /}\n"
              "response:\n  status: 200\n  json: &a [1, *a]\n"),
])
def test_pathological_cassettes(worker: Worker, workdir: Path, name: str, text: str) -> None:
    _try(worker, workdir, name, text.encode())
