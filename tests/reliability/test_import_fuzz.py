"""Hostile files given to ``gwsvcr import`` / ``gwsvcr har import``: HARs, VCR.py cassettes and mitmproxy flow
files, truncated, mutated, deeply nested, huge, of the wrong types, with YAML tags. Each gets a cassette or a clear
error whose every line names the file (and the entry), exit 1: never a traceback, never a hang.

Each file is imported in a forked worker with a time and memory limit (tests/reliability/test_cassette_fuzz.py's),
through the command line a user types (click's runner, in that process).
"""

from __future__ import annotations

import io
import json
import random
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.procs import ROOT
from tests.reliability.test_cassette_fuzz import Worker

BROWSER_HAR = (ROOT / "tests" / "data" / "browser_cometd.har").read_bytes()
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
TRIED: dict[str, int] = {}


def _import(path: str, _cache: str) -> str:
    """In the worker: '' when the import behaved (a cassette, or exit 1 with FILE-named lines), else what not."""
    try:
        from gwsvcr.cli.main import main

        command = ["har", "import"] if path.endswith(".har") else ["import"]
        done = CliRunner().invoke(main, [*command, path, "-o", path + ".out.yaml"])
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            return "exception:\n" + "".join(traceback.format_exception(done.exception, limit=-6))
        lines = [line for line in done.output.splitlines() if not line.startswith("gwsvcr: importing ")]
        if done.exit_code == 0:
            return "" if lines and lines[-1].startswith("gwsvcr: imported ") else f"no summary: {done.output}"
        if done.exit_code != 1 or not lines or any(not line.startswith(f"{path}") for line in lines):
            return f"exit {done.exit_code}, not FILE-named lines:\n{done.output[:2000]}"
        return "" if "Traceback" not in done.output else done.output
    except BaseException:  # noqa: BLE001 - exactly what the test looks for
        return "exception:\n" + traceback.format_exc(limit=6)


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(str(tmp_path_factory.mktemp("cache")), _import)
    yield w
    w.stop()
    print("\nimport fuzz, inputs tried: " + ", ".join(f"{k}={v}" for k, v in sorted(TRIED.items())))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("import-fuzz")


def _try(worker: Worker, workdir: Path, name: str, content: bytes) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1
    path = workdir / name
    path.write_bytes(content)
    outcome = worker.check(path)
    assert outcome == "", f"{outcome}\n--- input ({len(content)} bytes) ---\n{content[:600]!r}"


# ------------------------------------------------------------------------------------------------- samples


def _vcr_sample() -> dict[str, Any]:
    def interaction(method: str, path: str, body: str | None, reply: str) -> dict[str, Any]:
        return {"request": {"body": body, "headers": {"Authorization": ["Basic YWdlbnQxOnNlY3JldA=="],
                                                       "Content-Type": ["application/json"]},
                            "method": method, "uri": f"http://127.0.0.1:8090{path}"},
                "response": {"body": {"string": reply}, "headers": {"Content-Type": ["application/json"]},
                             "status": {"code": 200, "message": "OK"}}}
    return {"interactions": [interaction("GET", "/api/v2/me", None, '{"statusCode": 0}'),
                             interaction("POST", "/api/v2/me/calls/01RC", '{"operationName": "StopCallRecording"}',
                                         '{"statusCode": 0}')], "version": 1}


def _flow_sample() -> bytes:
    from mitmproxy import io as mitmio
    from mitmproxy.test import tflow

    out = io.BytesIO()
    writer = mitmio.FlowWriter(out)
    for flow in (tflow.tflow(resp=True), tflow.twebsocketflow()):
        writer.add(flow)
    return out.getvalue()


FLOWS = _flow_sample()
VCR = yaml.safe_dump(_vcr_sample()).encode()
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=12)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=12)


def _paths(data: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, (*at, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, (*at, i))


@st.composite
def mutated_document(draw: st.DrawFn, sample: Any) -> Any:
    """The sample with a few values replaced by others of any type, or removed."""
    data = json.loads(json.dumps(sample))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        *parent_path, key = rnd.choice(paths)
        parent = data
        for step in parent_path:
            parent = parent[step]
        if draw(st.booleans()):
            parent[key] = draw(json_values)
        elif isinstance(parent, dict):
            del parent[key]
    return data


def _cut(draw: st.DrawFn, content: bytes) -> bytes:
    return content[:draw(st.integers(0, len(content)))]


# ------------------------------------------------------------------------------------------------ the fuzzers


def _mutated(kind: str, data: st.DataObject) -> bytes:
    """A sample of ``kind`` with values of any type in place of some (or removed), or with bytes changed, or cut."""
    if data.draw(st.booleans()):
        return _cut(data.draw, {"har": BROWSER_HAR, "vcr.yml": VCR, "flows": FLOWS}[kind])
    if kind == "har":
        return json.dumps(data.draw(mutated_document(json.loads(BROWSER_HAR)))).encode()
    if kind == "vcr.yml":
        return yaml.safe_dump({"interactions": [], **data.draw(mutated_document(_vcr_sample()))}).encode()
    content = bytearray(FLOWS)
    for _ in range(data.draw(st.integers(1, 4))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    return bytes(content)


@pytest.mark.parametrize("kind", ["har", "vcr.yml", "flows"])
@FUZZ
@given(data=st.data())
def test_mutated_files(worker: Worker, workdir: Path, kind: str, data: st.DataObject) -> None:
    _try(worker, workdir, f"mutated.{kind}", _mutated(kind, data) or b"0:~")


def _websocket_har(messages: Any) -> bytes:
    entry = {"startedDateTime": "2026-01-01T00:00:00Z", "time": 1, "_resourceType": "websocket",
             "request": {"method": "GET", "url": "http://gws/api/v2/notifications", "headers": []},
             "response": {"status": 101, "headers": [], "content": {}}, "_webSocketMessages": messages}
    return json.dumps({"log": {"entries": [entry]}}).encode()


ALIAS_BOMB = "interactions:\n- request: &a [" + ", ".join(["x"] * 10) + "]\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*{prev}'] * 10)}]\n" for i, prev in enumerate(["a"] + [f"l{j}" for j in range(8)]))


@pytest.mark.parametrize("name,content", [
    ("deep.har", b'{"log": {"entries": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}}"),
    ("huge.har", _websocket_har([{"type": "receive", "time": 1.0, "opcode": 1,
                                  "data": "[" + '{"channel": "/x", "data": "' + "x" * 20_000_000 + '"}]'}])),
    ("ws-wrong-types.har", _websocket_har([{"type": 1, "time": "x"}, None, "frame"])),
    ("ws-not-a-list.har", _websocket_har({"type": "send"})),
    ("ws-bad-time.har", _websocket_har([{"type": "send", "time": -1, "opcode": 1, "data": "[]"}])),
    ("ws-bad-base64.har", _websocket_har([{"type": "send", "time": 1.0, "opcode": 2, "data": "%%%"}])),
    ("ws-deep-frame.har", _websocket_har([{"type": "send", "time": 1.0, "opcode": 1,
                                           "data": "[" * 50_000 + "]" * 50_000}])),
    ("tag.vcr.yml", b"interactions:\n- !!python/object/apply:os.system ['true']\n"),
    ("tag-in-body.vcr.yml", VCR.replace(b"body: null", b"body: !!python/name:os.system")),
    ("alias-bomb.vcr.yml", ALIAS_BOMB.encode()),
    ("deep.vcr.yml", b"interactions: " + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
    ("deep-block.vcr.yml", b"interactions:\n" + b"".join(b"  " * (i + 1) + b"- k:\n" for i in range(3000))),
    ("huge.vcr.yml", b"interactions:\n- request: {uri: 'http://x/" + b"y" * 20_000_000 + b"'}\n"),
    ("wrong-types.vcr.yml", b"interactions:\n- request: {method: 1, uri: [], headers: 5}\n  response: x\n"),
    ("gzip-bomb.vcr.yml", VCR.replace(b"Content-Type:\n      - application/json\n    status",
                                      b"Content-Encoding: [gzip]\n    status", 1)),
    ("absurd-prefix.flows", b"999999999999:" + b"x" * 10),
    ("deep.flows", b"".join(b"%d:" % (2 * (50_000 - i)) for i in range(50_000))),
    ("not-a-dict.flows", b"5:hello,"),
])
def test_pathological_files(worker: Worker, workdir: Path, name: str, content: bytes) -> None:
    _try(worker, workdir, name, content)
