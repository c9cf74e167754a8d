"""gwsvcr.replay.status: the figures of several replays of one cassette as one, peers named by URL or file, a
peer that does not answer reported as lost."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gwsvcr import cassette as cas
from gwsvcr.replay import Replayer, status
from tests.procs import ROOT


def figures(served: int, clients: int, events: int, unused: list[int], misses: int = 0,
            sha: str = "abc", failures: int = 0, faults: int = 0,
            recovery: tuple[int, ...] = (), late: tuple[int, float] = (0, 0.0)) -> dict[str, Any]:
    return {"served": served, "clients": clients, "live_sessions": clients, "events_released": events,
            "released_late": late[0], "late_max_ms": late[1],
            "failures_replayed": failures, "faults_injected": faults,
            "misses": [{"request": f"GET /x{i}"} for i in range(misses)], "unused": unused,
            "unused_recovery": [{"exchange": n, "what": f"what {n}"} for n in recovery],
            "faults": [{"spec": "duplicate event 1", "applied": faults}], "cassette_sha256": sha}


def test_counts_add_up_unused_is_what_no_replay_used_misses_say_where() -> None:
    whole = status.combine([status.Part("http://a", figures(10, 2, 8, [1, 2, 3])),
                            status.Part("http://b", figures(5, 1, 4, [2, 3, 4], misses=1)),
                            status.Part("http://c", None, "Connection refused")])
    assert (whole["served"], whole["clients"], whole["live_sessions"], whole["events_released"]) == (15, 3, 3, 12)
    assert whole["unused"] == [2, 3]
    assert whole["misses"] == [{"request": "GET /x0", "worker": "http://b"}]
    assert whole["lost"] == ["http://c"]
    assert whole["workers"][2] == {"url": "http://c", "lost": "Connection refused"}
    assert whole["workers"][1]["misses"] == 1 and whole["workers"][0]["unused"] == 3
    assert whole["cassette_sha256"] == "abc"
    assert status.summary_line(whole) == ("gwsvcr: served 15 requests to 3 clients, 12 events released, 1 misses, "
                                          "2 recorded exchanges never used\n"
                                          "gwsvcr: faults that never struck: duplicate event 1")


def test_failures_and_faults_add_up_recovery_unused_only_when_no_replay_used_it() -> None:
    whole = status.combine([status.Part("http://a", figures(4, 1, 2, [9, 10], failures=1, recovery=(9, 10))),
                            status.Part("http://b", figures(4, 1, 2, [10], faults=2, recovery=(10,)))])
    assert (whole["failures_replayed"], whole["faults_injected"]) == (1, 2)
    assert whole["unused_recovery"] == [{"exchange": 10, "what": "what 10"}]
    assert whole["faults"] == [{"spec": "duplicate event 1", "applied": 2}]
    assert status.summary_line(whole, "(2 workers)") == (
        "gwsvcr: served 8 requests to 2 clients, 4 events released, 0 misses, 1 recorded exchanges never used, "
        "1 recorded failures replayed, 2 faults injected (2 workers)\n"
        "gwsvcr: the recorded failure and recovery did not replay: #10 what 10 never used")


def test_events_that_went_out_late_add_up_and_are_told_on_stop() -> None:
    whole = status.combine([status.Part("http://a", figures(20, 2, 1200, [], late=(3, 12.4))),
                            status.Part("http://b", figures(20, 2, 1300, [], late=(40, 57.0))),
                            status.Part("http://c", figures(20, 2, 1000, []))])
    assert (whole["released_late"], whole["late_max_ms"]) == (43, 57.0)
    assert [w["released_late"] for w in whole["workers"]] == [3, 40, 0]
    assert status.summary_line(whole).splitlines()[1:] == [
        "gwsvcr: faults that never struck: duplicate event 1",
        "gwsvcr: 43 of 3,500 events went out more than 10 ms after their recorded time (the latest 57 ms late): "
        "the replay was short of CPU; --workers N or fewer clients per replay keep the timing"]


def test_replays_of_different_files_have_no_common_cassette() -> None:
    whole = status.combine([status.Part("http://a", figures(0, 0, 0, [], sha="abc")),
                            status.Part("http://b", figures(0, 0, 0, [], sha="def"))])
    assert whole["cassette_sha256"] is None
    assert [w["cassette_sha256"] for w in whole["workers"]] == ["abc", "def"]


def test_a_replay_reports_the_sha256_of_its_cassette_file() -> None:
    import hashlib

    path = ROOT / "cassettes" / "stop_call_recording.yaml"
    core = Replayer(cas.load(path))
    try:
        assert core.status()["cassette_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        core.close()


def test_peers_by_url_or_listed_in_a_file_read_when_asked(tmp_path: Path) -> None:
    listed = tmp_path / "peers"
    assert status.peer_urls(["http://h1:8101/", f"@{listed}"]) == ["http://h1:8101"]  # not written yet: none
    listed.write_text("# the other hosts\nhttp://h2:8101\n\n  http://h3:8101  \n")
    assert status.peer_urls(["http://h1:8101/", f"@{listed}"]) == ["http://h1:8101", "http://h2:8101",
                                                                   "http://h3:8101"]


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A web server answering with ``answer["body"]`` (JSON) and ``answer["status"]``."""
    answer: dict[str, Any] = {"status": 200, "body": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer["path"], answer["token"] = self.path, self.headers.get("X-Gwsvcr-Token")
            body = json.dumps(answer["body"]).encode()
            self.send_response(answer["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answer
    httpd.shutdown()
    httpd.server_close()


def test_a_peer_is_asked_for_its_own_figures(server: tuple[str, dict[str, Any]]) -> None:
    url, answer = server
    answer["body"] = figures(3, 1, 2, [5])
    part = status.fetch(url, "t0ken")
    assert answer["path"] == "/__gwsvcr__/status?local=1" and answer["token"] == "t0ken"
    assert part.figures == answer["body"] and part.lost == ""


def test_a_peer_that_does_not_answer_as_a_replay_is_lost_not_an_error(server: tuple[str, dict[str, Any]]) -> None:
    url, answer = server
    answer["body"] = {"hello": "world"}
    assert status.fetch(url, "t").lost == "its status is not a gwsvcr replay's"
    answer["status"] = 404
    assert status.fetch(url, "t").lost == "its status answered HTTP 404"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}"
    parts = status.gather([url, gone], "t")
    assert [p.url for p in parts] == [url, gone]
    assert parts[1].figures is None and "refused" in parts[1].lost
