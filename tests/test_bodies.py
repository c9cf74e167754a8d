"""Bodies too large to keep (gwsvcr/record/bodies.py) and how replay answers an exchange whose body was not kept."""

from __future__ import annotations

import hashlib

import pytest

from gwsvcr.cassette import Cassette, Exchange, Header, Omitted, Request, Response
from gwsvcr.record.bodies import BodyTee, too_large_or_unknown
from gwsvcr.replay import ReplayConfig, Replayer
from gwsvcr.timeline import Timing


def test_tee_passes_every_chunk_and_keeps_a_body_within_the_limit() -> None:
    tee = BodyTee(limit=10)
    assert [tee(c) for c in (b"abc", b"defg", b"")] == [b"abc", b"defg", b""]
    assert tee.kept == b"abcdefg"
    assert tee.omitted() == Omitted(7, hashlib.sha256(b"abcdefg").hexdigest())


def test_tee_lets_go_of_a_body_over_the_limit_but_counts_and_hashes_all_of_it() -> None:
    tee = BodyTee(limit=5)
    for chunk in (b"abc", b"def", b"ghi", b""):
        assert tee(chunk) is chunk
    assert tee.kept is None
    assert tee.omitted() == Omitted(9, hashlib.sha256(b"abcdefghi").hexdigest())
    exact = BodyTee(limit=3)
    exact(b"abc")
    assert exact.kept == b"abc", "the limit itself is still kept"


@pytest.mark.parametrize("content_length,streamed", [("10", False), ("11", True), (None, True), ("x", True)])
def test_what_streams(content_length: str | None, streamed: bool) -> None:
    assert too_large_or_unknown(content_length, 10) is streamed


async def test_replay_answers_an_omitted_body_with_a_502_that_says_why() -> None:
    omitted = Omitted(209_715_200, "ab" * 32)
    download = Exchange(1, "s1", 0.1, Request(method="GET", path="/files/big.bin"),
                        Response(headers=[("Content-Type", "application/octet-stream")], status=200, omitted=omitted))
    core = Replayer(Cassette("big.yaml", Header(), [download]), ReplayConfig(timing=Timing.INSTANT),
                    on_miss=lambda miss: pytest.fail(miss.text()))
    served = await core.handle(Request(method="GET", path="/files/big.bin"))
    response = served.response
    assert response is not None and response.status == 502 and ("X-Gwsvcr-Omitted", "1") in response.headers
    assert "209715200 bytes that was not recorded" in response.body["error"]
    assert response.body["recorded"] == {"exchange": 1, "status": 200, "size": 209_715_200, "sha256": "ab" * 32}
    assert core.misses == [] and core.unused() == [], "a hit, answered honestly"
