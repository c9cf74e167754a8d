"""Recording an HTTPS upstream whose certificate comes from an internal CA (a test CA made here): trusted with
``--upstream-ca``, refused with a 502 naming the problem without it, accepted with a warning under ``--insecure``."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record
from tests.procs import GWSVCR, gwsvcr
from tests.reliability.netutil import basic
from tests.tlsgws import HttpsGws, TestCA

AUTH = {"Authorization": basic("agent1", "secret")}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.make(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def https_gws(pki: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsGws]:
    """``gwsvcr sim`` behind TLS, its certificate issued by the test CA for localhost and 127.0.0.1."""
    sim = gwsvcr("sim", "--port", "0")
    cert, key = pki.issue(tmp_path_factory.mktemp("gws"))
    front = HttpsGws(sim.url, cert, key)
    yield front
    front.stop()
    assert sim.stop() == 0, sim.stderr


def get_me(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/api/v2/me", headers=AUTH), timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_trusted_with_upstream_ca_records(https_gws: HttpsGws, pki: TestCA, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(https_gws.url, path, "--upstream-ca", str(pki.cert))
    status, body = get_me(rec.url)
    assert rec.stop() == 0, rec.stderr
    assert status == 200 and '"statusCode":0' in body.replace(" ", "")
    [ex] = cas.load(path, use_cache=False).exchanges
    assert ex.response is not None and ex.response.status == 200 and ex.error is None
    assert "WARNING" not in rec.stderr


def test_untrusted_without_upstream_ca_is_a_502_naming_the_certificate_problem(https_gws: HttpsGws,
                                                                                tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(https_gws.url, path)
    status, body = get_me(rec.url)
    assert rec.stop() == 0, rec.stderr
    # mitmproxy's own 502 page: the client learns why, and so does the cassette.
    assert status == 502 and "Certificate verify failed: unable to get local issuer certificate" in body, body
    [ex] = cas.load(path, use_cache=False).exchanges
    assert ex.response is None and ex.error is not None and "Certificate verify failed" in ex.error
    assert f"upstream {https_gws.url}/api/v2/me failed" in ex.error


def test_another_ca_is_not_trusted_either(https_gws: HttpsGws, tmp_path: Path) -> None:
    stranger = TestCA.make(tmp_path / "other", "some other CA")
    rec = record(https_gws.url, tmp_path / "c.yaml", "--upstream-ca", str(stranger.cert))
    status, body = get_me(rec.url)
    assert rec.stop() == 0, rec.stderr
    assert status == 502 and "Certificate verify failed" in body


def test_insecure_records_and_warns(https_gws: HttpsGws, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    rec = record(https_gws.url, path, "--insecure")
    status, _ = get_me(rec.url)
    assert rec.stop() == 0, rec.stderr
    assert status == 200
    assert "gwsvcr: WARNING: --insecure: the upstream's TLS certificate is NOT verified" in rec.stderr
    assert cas.load(path, use_cache=False).exchanges[0].response is not None


@pytest.mark.parametrize("args,words", [
    (["--upstream-ca", "{ca}", "--insecure"], "give one of them"),
    (["--upstream-ca", "{junk}"], "holds no PEM certificate"),
    (["--upstream-ca", "{missing}"], "does not exist"),
])
def test_bad_upstream_ca_use_is_refused_up_front(pki: TestCA, tmp_path: Path, args: list[str], words: str) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    values = {"ca": str(pki.cert), "junk": str(junk), "missing": str(tmp_path / "none.pem")}
    done = subprocess.run([GWSVCR, "record", "--upstream", "https://localhost:9", "--cassette",
                           str(tmp_path / "c.yaml"), *[a.format(**values) for a in args]],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert not (tmp_path / "c.yaml").exists()
