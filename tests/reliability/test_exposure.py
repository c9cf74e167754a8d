"""Exposure: every server binds loopback unless told otherwise and warns loudly when told to bind wider; the
recorder verifies the upstream's TLS certificate unless --insecure (which warns).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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

def self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server with a self-signed certificate, answering every request with {"statusCode":0}."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n'
                         b'{"statusCode":0}')
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the recorder refused our certificate, as it should
        finally:
            writer.close()

    context = self_signed(tmp_path)
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(handle, "127.0.0.1", 0, ssl=context),
                                              loop).result(10)
    yield server.sockets[0].getsockname()[1]
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


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
