"""HTTPS for the tests: a test CA made with ``cryptography`` (as a customer's internal CA), server certificates it
issues, an HTTPS GWS stand-in, and a browser profile that trusts a CA the way a user sets it up.

The stand-in is ``gwsvcr sim`` behind a TLS front (the sim itself speaks plain HTTP): the front serves the browser
page under ``/conformance/`` from the static file server, as GWS serves Workspace Web Edition from its own origin,
and forwards everything else to the sim.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conformance.browser import PAGE_PREFIX
from tests.conformance.harness import _Forward
from tests.procs import need


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gwsvcr tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class TestCA:
    """A certificate authority made for one test: ``cert`` is the PEM file a client is told to trust."""

    __test__ = False  # not a pytest test class
    cert: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def make(cls, folder: Path, common_name: str = "gwsvcr test internal CA") -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{common_name.replace(' ', '-')}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(path, key, certificate)

    def issue(self, folder: Path, host: str = "localhost", ip: str = "127.0.0.1") -> tuple[Path, Path]:
        """A server certificate for ``host`` and ``ip``: (certificate chain file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host),
                                                        x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / f"{host}.pem", folder / f"{host}.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_pem_key(key))
        return cert_file, key_file


class _Front(_Forward):
    """Forwards to the sim; the page and its scripts come from the static file server."""

    static: tuple[str, int]

    def _handle(self) -> None:
        if self.path.startswith(PAGE_PREFIX):
            self.upstream = self.static
        super()._handle()

    do_GET = do_POST = _handle


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake in the request's own thread: a slow client does not hold up accepting others.
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust us: its problem is what the test looks at
        super().finish_request(wrapped, client_address)


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


class HttpsGws:
    """``https://localhost:PORT``: the sim at ``upstream`` behind TLS with ``cert``/``key``; ``static``, when
    given, serves the browser page under /conformance/."""

    def __init__(self, upstream: str, cert: Path, key: Path, static: str | None = None) -> None:
        handler = type("Front", (_Front,), {"upstream": _address(upstream),
                                            "static": _address(static or upstream)})
        self.server = _TlsServer(("127.0.0.1", 0), handler)
        self.server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.tls.load_cert_chain(cert, key)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def trust_in_nss(home: Path, ca_cert: Path, nickname: str = "gwsvcr") -> Path:
    """Trust ``ca_cert`` for web sites in a fresh NSS database at ``home/.pki/nssdb``, as README.md tells a user
    to do: Chromium (and Chrome) on Linux read it when HOME is ``home``."""
    certutil = shutil.which("certutil")
    need(certutil is not None, "certutil (apt-get install -y libnss3-tools; .ci/run installs it)")
    assert certutil is not None
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    for args in (["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", nickname, "-i", str(ca_cert)]):
        subprocess.run([certutil, "-d", f"sql:{db}", *args], check=True, capture_output=True, timeout=30)
    listed = subprocess.run([certutil, "-d", f"sql:{db}", "-L"], check=True, capture_output=True, text=True,
                            timeout=30).stdout
    assert nickname in listed, listed
    return db
