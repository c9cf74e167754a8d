from __future__ import annotations

import asyncio
import datetime
import fcntl
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.clients import LIFECYCLE, Session, assert_lifecycle, run
from tests.procs import PEERS, Proc, gwsvcr, need_node, start

# The end-to-end tier (make e2e): these folders, the tests that use a server process (fixtures below,
# tests/test_tools.py's recordings), Node peers or a browser, and those marked e2e by hand. The rest is make check:
# unit and in-process tests. Both run in parallel (pytest-xdist).
E2E_FOLDERS = {"e2e", "conformance", "reliability"}
PROCESS_FIXTURES = {"sim", "faye", "recordings"}
PROCESS_MARKERS = {"node", "browser"}
# Tests that run with no other test beside them, even under pytest-xdist: a headless Chromium measures its events'
# timing on its own clock and, with another test's processes on the same two cores, its timers lag.
SOLO_MARKERS = {"browser", "solo"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        folder = item.path.resolve().relative_to(tests).parts[0]
        if (folder in E2E_FOLDERS or PROCESS_FIXTURES & set(getattr(item, "fixturenames", ()))
                or any(m.name in PROCESS_MARKERS for m in item.iter_markers())):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """make e2e's ``--dist loadscope``: a module's tests on one worker (their module fixtures start once), and the
    whole conformance package on one (its recordings are made once, and that worker writes docs/CONFORMANCE.md).
    pytest-xdist's own grouping (loadgroup) renames node ids, which pytest 9.2 no longer lets it do."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/conformance" if nodeid.startswith("tests/conformance/") else super()._split_scope(nodeid)

    return Scopes(config, log)


CONFORMANCE_NOTE = "gwsvcr_conformance_note"  # what tests/conformance/conftest.py did with docs/CONFORMANCE.md
FAILED_FILE = "GWSVCR_FAILED_FILE"  # set by make e2e: the node ids of the tests that failed, one per line
_CONFORMANCE_NOTE = pytest.StashKey[str]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's controller: the worker that ran the conformance package says what it wrote."""
    note = getattr(node, "workeroutput", {}).get(CONFORMANCE_NOTE)
    if note:
        node.config.stash[_CONFORMANCE_NOTE] = note


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    note = config.stash.get(_CONFORMANCE_NOTE, "")
    if note:
        terminalreporter.write_line(note)
    failed_file = os.environ.get(FAILED_FILE)
    if failed_file and not hasattr(config, "workerinput"):  # make e2e: what its second pass runs alone
        reports = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
        failed = sorted({r.nodeid for r in reports if getattr(r, "nodeid", "")})
        Path(failed_file).write_text("".join(f"{n}\n" for n in failed), encoding="utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Under pytest-xdist, a solo test (SOLO_MARKERS) runs alone: it waits for the test running on the other
    workers to end, and they start none until it is done. A readers-writer lock over two lock files: every test
    passes a turnstile, then holds the main lock shared; a solo test holds the turnstile (so that no new test
    starts while it waits) and the main lock alone."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    solo = any(m.name in SOLO_MARKERS for m in item.iter_markers())
    # In the run's base temporary folder, which the workers share (theirs are popen-gwN inside it) and pytest removes
    # with the runs it no longer keeps.
    locks = item.config._tmp_path_factory.getbasetemp().parent / "solo-locks"  # type: ignore[attr-defined]
    locks.mkdir(exist_ok=True)
    with open(locks / "turnstile", "a") as turnstile, open(locks / "main", "a") as main:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not solo:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(main, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(main, fcntl.LOCK_UN)
            if solo:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture
def sim() -> Iterator[Proc]:
    """``gwsvcr sim`` on a free loopback port; must stop cleanly (exit 0) on SIGTERM."""
    proc = gwsvcr("sim", "--port", "0", "--event-delay-ms", "250")
    yield proc
    assert proc.stop() == 0, proc.stderr


@pytest.fixture
def faye() -> Iterator[Proc]:
    """A real Bayeux server (npm faye) with GWS-like REST in front of it (tests/peers/faye_gws.js)."""
    proc = start([need_node(), str(PEERS / "faye_gws.js"), "--port", "0", "--event-delay-ms", "250"])
    yield proc
    proc.stop()


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


def record(upstream: str, cassette: Path, *args: str) -> Proc:
    return gwsvcr("record", "--upstream", upstream, "--cassette", str(cassette), "--port", "0", *args)


def replay(cassette: Path, *args: str) -> Proc:
    return gwsvcr("replay", str(cassette), "--port", "0", *args)


def record_from_sim(cassette: Path, extra: list[str] | None = None) -> Session:
    """The recording-state lifecycle of one aiocometd-ng client (``extra``: its options), recorded into
    ``cassette`` from a ``gwsvcr sim`` of its own (each notification 250 ms after its operation's reply)."""
    sim = gwsvcr("sim", "--port", "0", "--event-delay-ms", "250")
    try:
        recorder = record(sim.url, cassette)
        session = run("python", recorder.url, LIFECYCLE, extra=extra)
        assert recorder.stop() == 0, recorder.stderr
    finally:
        sim.stop()
    assert_lifecycle(session, LIFECYCLE)
    return session


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No cassette any test recorded holds a secret: every recording under pytest's basetemp is scanned."""
    from tests.reliability.secretscan import scan_tree

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    leaks = scan_tree(factory.getbasetemp())
    if leaks:
        session.config.get_terminal_writer().line("SECRETS IN CASSETTES:\n" + "\n".join(leaks), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
