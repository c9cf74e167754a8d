"""Which recorded session answers a live request that carries no cookie and no user (a browser's page and scripts,
each recorded as a session of its own), in process."""

from __future__ import annotations

import pytest

from gwsvcr import wire
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


async def test_a_recorded_event_goes_to_each_client_as_one_object_encoded_once() -> None:
    """An event without client-made values or a clientId is neither copied nor encoded again per client."""
    import asyncio

    from gwsvcr import cassette as cas
    from tests.fakeclock import FakeClock
    from tests.procs import ROOT

    clock = FakeClock()
    sample = cas.load(ROOT / "cassettes" / "stop_call_recording.yaml")
    core = Replayer(sample, ReplayConfig(), on_miss=lambda miss: pytest.fail(miss.text()), clock=clock)
    stop = next(ex for ex in sample.exchanges if ex.request.method == "POST" and ex.request.kind == "json")
    [recorded] = [item.message for ex in sample.exchanges for item in ex.reply_items() if item.is_event]
    for user in ("agent1", "agent2"):  # two users: two clients of the one recorded session
        login = cas.Request(headers=[("Authorization", wire.basic_header(user, "secret"))], kind="json",
                            body=stop.request.body, method="POST", path=stop.request.path)
        answering = asyncio.create_task(core.handle(login))
        await clock.advance(stop.ttfb or 0.0)
        served = await answering
        assert served.delivered is not None
        served.delivered(clock.now())
    await clock.advance(1.0)
    first, second = (client.pending for client in core.by_cookie.values())  # no CometD session: they wait
    assert len(first) == len(second) == 1 and first[0] is second[0]
    assert type(first[0]) is cas.Encoded and first[0] == recorded and first[0] is not recorded
    assert wire.bayeux_reply(first).content() == wire.bayeux_reply([recorded]).content()


async def test_a_recorded_json_reply_is_encoded_once_for_every_client() -> None:
    exchanges = [Exchange(1, "s1", 0.1, Request(method="GET", path="/api/v2/me"),
                          Response(headers=[("Content-Type", "application/json")], kind="json",
                                   body={"statusCode": 0, "user": {"userName": "Zoë"}}))]
    core = Replayer(Cassette("me.yaml", Header(), exchanges), ReplayConfig(timing=Timing.INSTANT),
                    on_miss=lambda miss: pytest.fail(miss.text()))
    first, second = [await core.handle(Request(headers=[("Authorization", wire.basic_header(user, "x"))],
                                               method="GET", path="/api/v2/me")) for user in ("a1", "a2")]
    assert first.response is not None and second.response is not None
    assert first.response.body is second.response.body, "one object for both clients"
    assert first.response.content() == second.response.content() == \
        '{"statusCode":0,"user":{"userName":"Zoë"}}'.encode()
