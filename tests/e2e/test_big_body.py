"""Big bodies through ``gwsvcr record``: over ``--max-body`` they stream through, are not kept, and the cassette says
their size and SHA-256; the recorder's memory stays bounded (a 200 MB download, RSS measured); replay answers such
an exchange with a 502 that says why."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record, replay
from tests.reliability.netutil import rss_kb

MB = 1024 * 1024
BLOCK = bytes(range(256)) * 4096  # 1 MiB
DOWNLOAD = 200 * MB
RSS_GROWTH_LIMIT_MB = 100  # generous: buffering the body even once would pass it


def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for offset in range(0, size, len(BLOCK)):
        digest.update(BLOCK[: min(len(BLOCK), size - offset)])
    return digest.hexdigest()


class _Files(BaseHTTPRequestHandler):
    """GET /download/N (Content-Length), GET /chunked/N (chunked), GET /small-chunked (chunked JSON),
    POST /upload (answers the size and SHA-256 of what it read)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        kind, _, size = self.path.strip("/").partition("/")
        if kind == "small-chunked":
            self._chunked([b'{"statusCode":', b"0}"], "application/json")
            return
        n = int(size)
        blocks = (BLOCK[: min(len(BLOCK), n - offset)] for offset in range(0, n, len(BLOCK)))
        if kind == "chunked":
            self._chunked(blocks, "application/octet-stream")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        for block in blocks:
            self.wfile.write(block)

    def _chunked(self, blocks: Any, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for block in blocks:
            self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        left, digest = int(self.headers["Content-Length"]), hashlib.sha256()
        size = left
        while left:
            chunk = self.rfile.read(min(left, MB))
            digest.update(chunk)
            left -= len(chunk)
        body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def download(url: str) -> tuple[int, int, str]:
    """(status, size, sha256) of a GET, read 1 MiB at a time and never held whole."""
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=120) as reply:
        while chunk := reply.read(MB):
            digest.update(chunk)
            size += len(chunk)
        return reply.status, size, digest.hexdigest()


def test_200_mb_download_streams_through_with_bounded_memory(files: str, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    rec = record(files, path)  # the default --max-body, 16m
    pid = rec.popen.pid
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_kb(pid))
            time.sleep(0.02)

    try:
        assert download(rec.url + "/download/1024")[0] == 200  # warm: every code path has run once
        baseline = rss_kb(pid)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        status, size, sha256 = download(rec.url + f"/download/{DOWNLOAD}")
        seconds = time.monotonic() - started
        done.set()
        sampler.join()
    finally:
        done.set()
        code = rec.stop()
    assert code == 0, rec.stderr
    assert (status, size, sha256) == (200, DOWNLOAD, expected_sha256(DOWNLOAD)), "the client got every byte"
    growth_mb = (max(samples) - baseline) / 1024
    print(f"\ngwsvcr record, 200 MB download: RSS {baseline / 1024:.1f} MB before, peak {max(samples) / 1024:.1f} MB "
          f"({len(samples)} samples), growth {growth_mb:.1f} MB (limit {RSS_GROWTH_LIMIT_MB} MB); "
          f"{DOWNLOAD / MB / seconds:.0f} MB/s through the recorder")
    assert growth_mb < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth_mb:.1f} MB for a 200 MB body"
    small, big = cas.load(path, use_cache=False).exchanges
    assert small.response is not None and small.response.kind == "base64" and small.response.omitted is None
    assert big.response is not None and big.response.status == 200 and big.response.kind is None
    assert big.response.omitted == cas.Omitted(DOWNLOAD, expected_sha256(DOWNLOAD))
    assert path.stat().st_size < 10_000


def test_max_body_chunked_and_uploads_and_their_replay(files: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(files, path, "--max-body", "1m")
    upload = bytes(2 * MB)
    try:
        assert download(rec.url + f"/chunked/{3 * MB}") == (200, 3 * MB, expected_sha256(3 * MB))
        with urllib.request.urlopen(rec.url + "/small-chunked", timeout=30) as reply:
            assert json.loads(reply.read()) == {"statusCode": 0}
        req = urllib.request.Request(rec.url + "/upload", upload, {"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=30) as reply:
            assert json.loads(reply.read()) == {"size": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}
    finally:
        code = rec.stop()
    assert code == 0, rec.stderr
    chunked, small, posted = cas.load(path, use_cache=False).exchanges
    assert chunked.response is not None and chunked.response.omitted == cas.Omitted(3 * MB, expected_sha256(3 * MB))
    assert small.response is not None and small.response.body == {"statusCode": 0}, "under the limit: kept"
    assert posted.request.omitted == cas.Omitted(len(upload), hashlib.sha256(upload).hexdigest())
    assert posted.request.kind is None and posted.response is not None and posted.response.body["size"] == 2 * MB

    server = replay(path, "--timing", "instant")
    try:
        with urllib.request.urlopen(server.url + "/small-chunked", timeout=10) as reply:
            assert json.loads(reply.read()) == {"statusCode": 0}
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + f"/chunked/{3 * MB}", timeout=10)
    finally:
        assert server.stop() == 0, server.stderr
    assert info.value.code == 502 and info.value.headers["X-Gwsvcr-Omitted"] == str(chunked.number)
    answer = json.loads(info.value.read())
    assert "not recorded (larger than gwsvcr record --max-body)" in answer["error"]
    assert answer["recorded"] == {"exchange": chunked.number, "status": 200, "size": 3 * MB,
                                  "sha256": expected_sha256(3 * MB)}


@pytest.mark.parametrize("size", ["lots", "-1"])
def test_a_bad_max_body_is_refused(files: str, tmp_path: Path, size: str) -> None:
    with pytest.raises(RuntimeError, match="not a size such as 16m"):
        record(files, tmp_path / "c.yaml", "--max-body", size)
