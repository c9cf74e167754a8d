"""Field recording as it really happens: a browser over HTTPS, through ``gwsvcr record --mode regular``.

Headless Chromium runs the CometD JS session page (tests/peers/browser) from an HTTPS GWS stand-in (``gwsvcr sim``
behind TLS, its certificate from a test CA: an internal CA, given to the recorder with ``--upstream-ca``). The
browser trusts mitmproxy's CA the way README.md tells a user to: the CA certificate from the recorder's
``--confdir`` imported with ``certutil`` into a fresh NSS database under HOME. No flag turns verification off; a
recorder whose CA the browser does not trust is refused. The cassette (page, scripts, REST and CometD) then replays
to the same page offline, strict, with the conformance matrix's tolerance on every event's delay.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gwsvcr import cassette as cas
from tests.clients import LIFECYCLE, Session, assert_lifecycle
from tests.conformance.browser import PAGE_PREFIX, Chromium, StaticFiles, chromium_binary
from tests.conformance.harness import TOLERANCE_MS, delay_errors
from tests.conftest import record, replay
from tests.procs import Proc, gwsvcr, need, need_node, status
from tests.tlsgws import HttpsGws, TestCA, trust_in_nss

pytestmark = [pytest.mark.node, pytest.mark.browser]

USER, PASSWORD = "chromium-https", "Field-Pa55-9271"


def page_query() -> str:
    params = {"transport": "long-polling", "ops": ",".join(LIFECYCLE), "user": USER, "password": PASSWORD,
              "eventTimeoutMs": "10000"}
    return "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items())


def run_page(browser: Chromium, base: str, proxy: str | None = None) -> Session:
    text = browser.run_page(f"{base}{PAGE_PREFIX}index.html?{page_query()}", timeout=60, proxy=proxy)
    session = Session([json.loads(line) for line in text.splitlines() if line.startswith("{")], "")
    assert session.of("done"), f"the browser session failed: {session.records[-3:]}"
    return session


def navigation_error(browser: Chromium, url: str, proxy: str) -> str:
    """What Chromium says when it opens ``url`` through ``proxy`` ("" when the page loaded)."""
    context = browser.new_context(proxy)
    target = browser.call("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
    try:
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return str(browser.call("Page.navigate", {"url": url}, session, timeout=30).get("errorText", ""))
    finally:
        browser.call("Target.closeTarget", {"targetId": target})
        browser.call("Target.disposeBrowserContext", {"browserContextId": context})


def test_browser_over_https_records_and_the_cassette_replays_to_the_same_page(tmp_path: Path) -> None:
    binary = chromium_binary()
    need(binary is not None, "Debian chromium (apt-get install -y chromium; .ci/run installs it)")
    assert binary is not None
    need_node()  # the page imports the npm cometd modules
    pki = TestCA.make(tmp_path / "pki")
    cert, key = pki.issue(tmp_path / "gws")
    sim = gwsvcr("sim", "--port", "0", "--event-delay-ms", "250")
    static = StaticFiles()
    gws = HttpsGws(sim.url, cert, key, static.url)
    path, confdir = tmp_path / "browser.yaml", tmp_path / "mitmproxy"
    procs: list[Proc] = [sim]
    browser = None
    try:
        # The password in the page's URL is redacted in the cassette: replay must not compare it.
        rec = record("localhost", path, "--mode", "regular", "--allow-host", "localhost", "--confdir", str(confdir),
                     "--upstream-ca", str(pki.cert), "--ignore-query", "password")
        procs.append(rec)
        stranger = record("localhost", tmp_path / "unused.yaml", "--mode", "regular", "--record-mode", "none",
                          "--confdir", str(tmp_path / "untrusted-mitmproxy"), "--upstream-ca", str(pki.cert))
        procs.append(stranger)
        home = tmp_path / "home"
        trust_in_nss(home, confdir / "mitmproxy-ca-cert.pem")  # the step README.md gives for Chrome on Linux
        browser = Chromium(binary, tmp_path / "profile", env={**os.environ, "HOME": str(home)})

        assert navigation_error(browser, f"{gws.url}{PAGE_PREFIX}index.html", stranger.url) == \
            "net::ERR_CERT_AUTHORITY_INVALID", "a CA the browser was not told to trust is refused"
        recorded_session = run_page(browser, gws.url, proxy=rec.url)
        assert rec.stop() == 0, rec.stderr
        assert_lifecycle(recorded_session, LIFECYCLE)

        cassette = cas.load(path, use_cache=False)
        assert cassette.header.match == {"ignore_query": ["password"]}
        paths = [ex.request.path for ex in cassette.exchanges]
        assert f"{PAGE_PREFIX}index.html" in paths and f"{PAGE_PREFIX}cometd/cometd.js" in paths, paths
        assert all(ex.error is None and ex.response is not None and ex.response.status == 200
                   for ex in cassette.exchanges), [(ex.request.path, ex.error) for ex in cassette.exchanges]
        recorded_ms = [item.delay * 1000 for ex in cassette.exchanges for item in ex.reply_items()
                       if item.is_event and item.delay is not None]
        assert len(recorded_ms) == len(LIFECYCLE) and all(240 <= d <= 400 for d in recorded_ms), recorded_ms
        assert PASSWORD not in path.read_text()

        # Offline: no upstream at all, strict; the page and its scripts come from the cassette too.
        server = replay(path)
        procs.append(server)
        measured = []
        for _ in range(2):  # as the matrix: one more run when only the timing failed (a busy machine)
            played = run_page(browser, server.url)
            assert_lifecycle(played, LIFECYCLE)
            measured.append(max(delay_errors(played, recorded_ms, 1.0)))
            if measured[-1] <= TOLERANCE_MS:
                break
        assert status(server.url, server.token)["misses"] == []
        assert server.stop() == 0, server.stderr
        print(f"\nbrowser over HTTPS: recorded delays {[round(d, 1) for d in recorded_ms]} ms; replayed max error "
              f"{[round(m, 1) for m in measured]} ms (tolerance {TOLERANCE_MS} ms); {browser.version}")
        assert measured[-1] <= TOLERANCE_MS, (played.delays(), recorded_ms, measured)
    finally:
        if browser is not None:
            browser.close()
        for proc in procs:
            proc.stop()
        gws.stop()
        static.stop()
