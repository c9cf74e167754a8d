"""Exposure: every server binds loopback unless told otherwise and warns loudly when told to bind wider; the
recorder verifies the upstream's TLS certificate unless --insecure (which warns).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record, replay
from tests.procs import ROOT, Proc, gwsvcr
from tests.reliability.netutil import address, call, wait_for

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
LISTEN = "0A"  # TCP state in /proc/net/tcp*


def listeners(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            hexaddr, hexport = local.split(":")
            if state != LISTEN or int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(hexaddr)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.add(str(ipaddress.ip_address(raw)) if width == 8 else str(ipaddress.IPv6Address(raw)))
    return out


SERVERS: dict[str, Callable[..., Proc]] = {
    "sim": lambda *a: gwsvcr("sim", "--port", "0", *a),
    "replay": lambda *a: replay(SAMPLE, *a),
    "record": lambda path, *a: record("http://127.0.0.1:9", path, *a),
    "service": lambda *a: gwsvcr("service", "--port", "0", *a),
}


def _start(name: str, tmp_path: Path, *args: str) -> Proc:
    if name == "record":
        return SERVERS[name](tmp_path / "c.yaml", *args)
    return SERVERS[name](*args)


@pytest.mark.parametrize("name", SERVERS)
def test_loopback_by_default(name: str, tmp_path: Path) -> None:
    proc = _start(name, tmp_path)
    try:
        host, port = address(proc.url)
        assert host == "127.0.0.1"
        assert listeners(port) == {"127.0.0.1"}, listeners(port)
        assert "WARNING" not in proc.stderr
    finally:
        assert proc.stop() == 0, proc.stderr


@pytest.mark.parametrize("name", SERVERS)
def test_binding_wider_warns_loudly(name: str, tmp_path: Path) -> None:
    proc = _start(name, tmp_path, "--host", "0.0.0.0")
    try:
        _, port = address(proc.url)
        assert listeners(port) == {"0.0.0.0"}
        wait_for(lambda: "WARNING" in proc.stderr, 10, "the warning on stderr")
        warning = next(line for line in proc.err if "WARNING" in line)
        assert "0.0.0.0" in warning and "reachable from other machines" in warning, warning
        assert "WARNING" not in proc.stdout, "the warning goes to stderr, stdout stays machine-readable"
    finally:
        assert proc.stop() == 0, proc.stderr


# ------------------------------------------------------------------------------------------------ upstream TLS

def test_upstream_tls_is_verified(tls_upstream: int, tmp_path: Path) -> None:
    path = tmp_path / "tls.yaml"
    recorder = record(f"https://127.0.0.1:{tls_upstream}", path)
    try:
        status, body, _ = call(recorder.url + "/api/v2/me")
        assert status == 502 and "Certificate verify failed" in body and "self-signed" in body, (status, body)
    finally:
        assert recorder.stop() == 0, recorder.stderr
    [ex] = cas.load(path, use_cache=False).exchanges
    assert ex.response is None and "Certificate verify failed: self-signed certificate" in (ex.error or "")
    assert "--insecure" not in recorder.stderr


def test_insecure_passes_and_warns(tls_upstream: int, tmp_path: Path) -> None:
    recorder = record(f"https://127.0.0.1:{tls_upstream}", tmp_path / "tls.yaml", "--insecure")
    try:
        assert call(recorder.url + "/api/v2/me")[:2] == (200, {"statusCode": 0})
        wait_for(lambda: "WARNING" in recorder.stderr, 10, "the --insecure warning")
        assert "--insecure" in recorder.stderr and "NOT verified" in recorder.stderr, recorder.stderr
    finally:
        assert recorder.stop() == 0, recorder.stderr
