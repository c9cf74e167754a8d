"""REST matching keys (JSON as data, ignored paths) and the explanation of a miss."""

from __future__ import annotations

from gwsvcr.cassette import Request
from gwsvcr.matching import bayeux_key, closest, differences, rest_key


def post(body: object, path: str = "/api/v2/me/calls/C1", query: list[tuple[str, str]] | None = None) -> Request:
    return Request(kind="json", body=body, method="POST", path=path, query=query or [])


def test_json_compared_as_data() -> None:
    a = post({"operationName": "StopCallRecording", "n": [1, 2]})
    b = post({"n": [1, 2], "operationName": "StopCallRecording"})
    assert rest_key(a) == rest_key(b)
    assert rest_key(a) != rest_key(post({"operationName": "StopCallRecording", "n": [2, 1]}))


def test_ignored_paths_do_not_count() -> None:
    a = post({"operationName": "X", "requestId": "1", "meta": {"ts": 5, "keep": 1}})
    b = post({"operationName": "X", "requestId": "2", "meta": {"ts": 9, "keep": 1}})
    assert rest_key(a) != rest_key(b)
    assert rest_key(a, ("requestId", "meta.ts")) == rest_key(b, ("requestId", "meta.ts"))
    c = post({"operationName": "X", "requestId": "2", "meta": {"ts": 9, "keep": 2}})
    assert rest_key(a, ("requestId", "meta.ts")) != rest_key(c, ("requestId", "meta.ts"))


def test_query_order_does_not_count_but_values_do() -> None:
    assert rest_key(post(None, query=[("a", "1"), ("b", "2")])) == rest_key(post(None, query=[("b", "2"), ("a", "1")]))
    assert rest_key(post(None, query=[("a", "1")])) != rest_key(post(None, query=[("a", "2")]))


def test_bayeux_key_ignores_what_clients_vary() -> None:
    one = {"channel": "/service/x", "data": {"a": 1}, "id": "7", "clientId": "c1", "ext": {"ack": 3}}
    two = {"channel": "/service/x", "data": {"a": 1}, "id": "1", "clientId": "zz", "advice": {"timeout": 0}}
    assert bayeux_key(one) == bayeux_key(two)
    assert bayeux_key(one) != bayeux_key({**two, "data": {"a": 2}})


def test_closest_names_each_difference() -> None:
    live = rest_key(post({"operationName": "HoldCall"}))
    recorded = [(rest_key(post({"operationName": "StopCallRecording"})), 5, "s1", "POST /api/v2/me/calls/C1"),
                (rest_key(Request(method="GET", path="/api/v2/me")), 1, "s1", "GET /api/v2/me")]
    best = closest(live, recorded)
    assert [c.exchange for c in best] == [5, 1]
    assert best[0].differences == ["body.operationName: 'HoldCall' here, 'StopCallRecording' recorded"]
    assert any(d.startswith("method: POST here, GET recorded") for d in best[1].differences)
    assert differences(live, live) == []
