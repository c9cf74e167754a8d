"""Which recorded session answers a live request that carries no cookie and no user (a browser's page and scripts,
each recorded as a session of its own), in process."""

from __future__ import annotations

import pytest

from gwsvcr.cassette import Cassette, Exchange, Header, Request, Response
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Timing

ASSETS = ("/app/index.html", "/app/main.js", "/app/cometd.js", "/app/Transport.js")


async def test_cookie_less_requests_find_the_session_that_recorded_them() -> None:
    exchanges = [Exchange(n, f"s{n}", n / 10, Request(method="GET", path=path),
                          Response(headers=[("Content-Type", "text/javascript")], kind="text", body=f"// {path}"))
                 for n, path in enumerate(ASSETS, 1)]
    core = Replayer(Cassette("browser.yaml", Header(), exchanges), ReplayConfig(timing=Timing.INSTANT),
                    on_miss=lambda miss: pytest.fail(miss.text()))
    for path in reversed(ASSETS):  # a browser fetches modules in parallel: any order
        served = await core.handle(Request(method="GET", path=path))
        assert served.response is not None and served.response.body == f"// {path}"
    assert core.unused() == []
