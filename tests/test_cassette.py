"""Cassette format v1: writing, loading, and a validator that names FILE:LINE for every problem."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwsvcr import cassette as cas
from gwsvcr.cassette import CassetteWriter, Exchange, ReplyItem, Request, Response
from gwsvcr.cli.main import main


def _exchange(number: int, *, bayeux: bool = False) -> Exchange:
    if bayeux:
        req = Request(kind="messages", body=[{"channel": "/meta/connect", "clientId": "c1", "id": "3"}],
                      method="POST", path="/api/v2/notifications/connect")
        items = [ReplyItem({"channel": "/v2/me/calls", "data": {"notificationType": "CallRecordingStateChange",
                                                                "call": {"recordingState": "Stopped",
                                                                         "userData": {"GSIP_RECORD": "OFF"}}}},
                           cause=1, delay=0.252, event="CallRecordingStateChange (Stopped)",
                           after="StopCallRecording"),
                 ReplyItem({"channel": "/meta/connect", "successful": True, "id": "3"}, hold=0.252)]
        return Exchange(number, "s1", 1.5, req, Response(kind="messages", body=items), 0.252, 0.253,
                        transport="long-polling")
    req = Request(headers=[("Content-Type", "application/json")], kind="json",
                  body={"operationName": "StopCallRecording"}, method="POST",
                  path="/api/v2/me/calls/01RCC3N118B1V0SL8O7GK2LAES00000V")
    return Exchange(number, "s1", 1.0, req, Response(kind="json", body={"statusCode": 0}), 0.004, 0.005)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    w = CassetteWriter(path, upstream="http://gws.example")
    w.write(_exchange(w.take_number()))
    w.write(_exchange(w.take_number(), bayeux=True))
    w.close()
    return path


def test_round_trip_keeps_every_field(good: Path) -> None:
    c = cas.load(good, use_cache=False)
    assert c.header.upstream == "http://gws.example"
    assert [e.number for e in c.exchanges] == [1, 2]
    assert c.exchanges[0].request.body == {"operationName": "StopCallRecording"}
    assert c.exchanges[0].request.header("content-type") == "application/json"
    event, connect = c.exchanges[1].reply_items()
    assert (event.cause, event.delay, event.is_event) == (1, 0.252, True)
    assert event.message["data"]["call"]["userData"]["GSIP_RECORD"] == "OFF"  # stays a string, not false
    assert connect.hold == 0.252 and not connect.is_event


def test_cassette_reads_at_a_glance(good: Path) -> None:
    text = good.read_text()
    assert "event: CallRecordingStateChange (Stopped)" in text
    assert "after: StopCallRecording" in text and "delay: 0.252" in text
    assert "operationName: StopCallRecording" in text  # JSON stored as YAML data, not an escaped string


def test_cache_gives_identical_objects(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GWSVCR_CACHE_DIR", str(tmp_path / "cache"))
    cold = cas.load(good)
    assert list((tmp_path / "cache").glob("*.json")), "the first load fills the cache"
    warm = cas.load(good)
    assert warm.exchanges == cold.exchanges and warm.header == cold.header


def test_cache_is_keyed_by_content(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GWSVCR_CACHE_DIR", str(tmp_path / "cache"))
    cas.load(good)
    good.write_text(good.read_text().replace("StopCallRecording", "StartCallRecording"))
    assert cas.load(good).exchanges[0].request.body == {"operationName": "StartCallRecording"}


def test_cache_drops_the_least_recently_used(good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gwsvcr.cassette import cache

    monkeypatch.setenv("GWSVCR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_CACHE_KEEP", 3)
    entries = []
    for i in range(4):
        copy = tmp_path / f"c{i}.yaml"
        copy.write_text(good.read_text().replace("StopCallRecording", f"Op{i}"))
        entries.append(tmp_path / "cache" / f"{hashlib.sha256(copy.read_bytes()).hexdigest()}.json")
        if i < 3:
            cas.load(copy)
            os.utime(entries[i], (100 * (i + 1), 100 * (i + 1)))  # loaded in this order, long ago
    cas.load(tmp_path / "c0.yaml")  # used again: no longer the oldest
    cas.load(tmp_path / "c3.yaml")  # a fourth, over the limit: trimmed to 90 % of it (2), the least recently used
    assert [e.exists() for e in entries] == [True, False, False, True]


def test_cache_is_walked_on_a_first_put_and_then_only_when_over_its_limits(
        good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Walking the cache stats every entry (55 ms at 2,000): not on every cold load."""
    from gwsvcr.cassette import cache

    monkeypatch.setenv("GWSVCR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_CACHE_KEEP", 10)
    walks = []
    trim = cache._trim
    monkeypatch.setattr(cache, "_trim", lambda d: walks.append(len(list(d.glob("*.json")))) or trim(d))
    for i in range(12):
        copy = tmp_path / f"c{i}.yaml"
        copy.write_text(good.read_text().replace("StopCallRecording", f"Op{i}"))
        cas.load(copy)
    assert walks == [1, 11]  # the first put, then the one that made 11 entries of 10 (trimmed to 9)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 10


def test_append_starts_a_new_episode(good: Path) -> None:
    w = CassetteWriter(good, append=True, upstream="http://other")
    assert w.take_number() == 3
    w.write(_exchange(3))
    w.close()
    c = cas.load(good, use_cache=False)
    assert [(e.number, e.episode) for e in c.exchanges] == [(1, 1), (2, 1), (3, 2)]


BROKEN = {
    "empty": ("", 1, "empty file"),
    "binary": (b"\x89PNG\x00\x01\x02", 1, "binary data"),
    "version": ("--- {gwsvcr: 7}\n", 1, "unknown cassette format version 7"),
    "not-cassette": ("--- {hello: world}\n", 1, "not a gwsvcr cassette"),
    "missing-field": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: 0.1\nrequest:\n  path: /x\n"
                      "response: {status: 200}\n", 6, "missing field 'request.method'"),
    "mistyped": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: soon\nrequest: {method: GET, path: /}\n"
                 "response: {status: 200}\n", 5, "field 'start' must be"),
    "truncated": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: 0.1\nrequest: {method: GET, path: /}\n"
                  "response: {status: 200}\n---\nexchange: 2\nrequest: {method: 'GE\n", 8, "truncated last document"),
    "python-tag": ("--- {gwsvcr: 1}\n---\nexchange: !!python/object/apply:os.system ['touch PWNED']\n", 3,
                   "YAML tag not allowed"),
    "custom-tag": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: !secret s1\n", 4, "YAML tag not allowed"),
    "bad-cause": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: 0.1\nrequest: {method: POST, path: /c}\n"
                  "response:\n  status: 200\n  messages:\n  - {cause: 99, message: {channel: /a, data: 1}}\n", 3,
                  "event cause 99 is not an exchange"),
    "omitted-and-body": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: 0.1\nrequest: {method: GET, path: /}\n"
                         "response:\n  status: 200\n  text: hi\n  omitted: {size: 2, sha256: x}\n", 10,
                         "remove it or the 'text' body"),
    "omitted-hash": ("--- {gwsvcr: 1}\n---\nexchange: 1\nsession: s1\nstart: 0.1\nrequest: {method: GET, path: /}\n"
                     "response:\n  status: 200\n  omitted:\n    size: 2\n    sha256: abc\n", 11,
                     "64 lower-case hex digits"),
    "match-key": ("---\ngwsvcr: 1\nmatch:\n  ignore_headers: [X-Foo]\n", 4, "unknown 'match' key 'ignore_headers'"),
    "match-names": ("---\ngwsvcr: 1\nmatch: {ignore_query: _}\n", 3, "'match.ignore_query' must be a list of names"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_validator_names_file_and_line(tmp_path: Path, name: str) -> None:
    content, line, words = BROKEN[name]
    path = tmp_path / f"{name}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    problems = cas.validate(path)
    assert problems, f"{name} should be invalid"
    assert any(p.line == line and words in p.message for p in problems), [str(p) for p in problems]
    assert all(str(p).startswith(f"{path}:") for p in problems)


def test_omitted_body_and_match_section_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    w = CassetteWriter(path, cas.Header(recorded_at="now", match={"ignore_query": ["_"], "match_headers": ["X-T"]}))
    ex = _exchange(w.take_number())
    assert ex.response is not None
    ex.response.kind, ex.response.body = None, None
    ex.response.omitted = cas.Omitted(209_715_200, "ab" * 32)
    w.write(ex)
    w.close()
    text = path.read_text()
    assert "omitted:" in text and "size: 209715200" in text and "match:" in text and "ignore_query: [_]" in text
    for use_cache in (False, True, True):  # parsed, then stored in the cache, then read from it
        c = cas.load(path, use_cache=use_cache)
        assert c.header.match == {"ignore_query": ["_"], "match_headers": ["X-T"]} and c.header.extra == {}
        [loaded] = c.exchanges
        assert loaded.response is not None and loaded.response.omitted == cas.Omitted(209_715_200, "ab" * 32)
        assert loaded.response.kind is None and loaded.request.omitted is None


def test_cli_validate_exit_codes_and_no_traceback(tmp_path: Path, good: Path) -> None:
    tag = tmp_path / "tag.yaml"
    tag.write_text(BROKEN["python-tag"][0])
    ok = CliRunner().invoke(main, ["validate", str(good)], catch_exceptions=False)
    assert ok.exit_code == 0 and "ok" in ok.stdout
    bad = CliRunner().invoke(main, ["validate", str(good), str(tag), str(tmp_path / "missing.yaml")],
                             catch_exceptions=False)
    assert bad.exit_code == 1
    assert f"{tag}:3: YAML tag not allowed" in bad.stderr
    assert "missing.yaml: no such file" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    assert not (tmp_path / "PWNED").exists(), "a python tag must never run"


def test_load_drops_truncated_tail_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(BROKEN["truncated"][0])
    c = cas.load(path, use_cache=False)
    assert [e.number for e in c.exchanges] == [1]
    assert c.warnings and "truncated" in c.warnings[0].message


def test_load_refuses_invalid_with_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(BROKEN["mistyped"][0] + "---\nexchange: 2\n")
    with pytest.raises(cas.CassetteError) as info:
        cas.load(path, use_cache=False)
    assert len(info.value.problems) == 2
    assert os.fspath(path) in str(info.value)


def test_json_copy_is_a_deep_copy() -> None:
    import copy
    import datetime

    data = {"a": [1, 2.5, {"b": None, "c": True}], "d": "x", "e": {1, 2}, "f": datetime.date(2026, 1, 1)}
    copied = cas.json_copy(data)
    assert copied == copy.deepcopy(data)
    copied["a"][2]["b"] = "changed"
    copied["e"].add(3)
    assert data["a"][2]["b"] is None and data["e"] == {1, 2}, "the copy shares nothing mutable with the original"


def test_an_encoded_object_gives_the_bytes_json_gives_and_does_not_change() -> None:
    import copy
    import json
    import pickle

    event = {"channel": "/v2/me/calls", "data": {"call": {"id": "1", "participants": [{"name": "Zoë"}]}}}
    encoded = cas.Encoded(event)
    reply = [encoded, {"channel": "/meta/connect", "successful": True}, encoded]
    plain = [event, reply[1], event]
    assert encoded == event and isinstance(encoded, dict)
    assert cas.json_bytes(encoded) == json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    assert cas.json_bytes(reply) == cas.json_bytes(plain) == \
        json.dumps(plain, separators=(",", ":"), ensure_ascii=False).encode()
    assert cas.json_bytes([]) == b"[]"
    for change in (lambda: encoded.__setitem__("clientId", "c"), lambda: encoded.update(id="2"),
                   lambda: encoded.pop("data"), lambda: encoded.setdefault("ext", {}), encoded.clear):
        with pytest.raises(TypeError):
            change()
    assert encoded == event
    # it does not change: copies of it, and of what holds it, share it
    assert cas.json_copy(encoded) is encoded and cas.json_copy(reply)[0] is encoded
    assert copy.deepcopy(reply)[2] is encoded and copy.copy(encoded) is encoded
    again = pickle.loads(pickle.dumps(encoded))
    assert type(again) is cas.Encoded and again == event and cas.json_bytes(again) == cas.json_bytes(encoded)
    changed = dict(encoded)
    changed["id"] = "2"
    assert "id" not in encoded
