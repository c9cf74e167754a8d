"""REST matching keys (JSON as data, ignored paths) and the explanation of a miss."""

from __future__ import annotations

from gwsvcr.cassette import Request
from gwsvcr.matching import Cursors, Key, RestMatch, Table, bayeux_key, closest, differences, rest_key


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


# ------------------------------------------------------------------------- the knobs browser recordings need
def get(path: str, query: list[tuple[str, str]] | None = None, headers: list[tuple[str, str]] | None = None
        ) -> Request:
    return Request(method="GET", path=path, query=query or [], headers=headers or [])


def test_ignored_query_parameters_do_not_count() -> None:
    buster = get("/api/v2/me", [("_", "1732800000000")])
    plain = get("/api/v2/me")
    assert rest_key(buster) != rest_key(plain)
    assert rest_key(buster, ignore_query=("_",)) == rest_key(plain, ignore_query=("_",))
    assert RestMatch(ignore_query=("_",)).key(buster) == RestMatch(ignore_query=("_",)).key(plain)
    other = get("/api/v2/me", [("_", "1"), ("fields", "id")])
    assert rest_key(other, ignore_query=("_",)) != rest_key(plain, ignore_query=("_",)), "only the named one"


def test_matched_headers_count_by_name_in_any_case() -> None:
    match = RestMatch(match_headers=("X-Tenant",))
    a = get("/api/v2/me", headers=[("x-tenant", "blue")])
    assert match.key(a) == match.key(get("/api/v2/me", headers=[("X-TENANT", "blue"), ("Accept", "*/*")]))
    assert match.key(a) != match.key(get("/api/v2/me", headers=[("X-Tenant", "red")]))
    assert match.key(a) != match.key(get("/api/v2/me")), "absent is not empty"
    assert rest_key(a) == rest_key(get("/api/v2/me")), "headers are ignored unless named"


def test_miss_explanation_names_the_knob_that_would_help() -> None:
    live = rest_key(get("/api/v2/me", [("_", "1732800000000")]))
    [only] = differences(live, rest_key(get("/api/v2/me")))
    assert only == "query: {'_': '1732800000000'} here, {} recorded (--ignore-query _ would leave it out)"
    match = RestMatch(match_headers=("X-Tenant",))
    [header] = differences(match.key(get("/x", headers=[("X-Tenant", "red")])),
                           match.key(get("/x", headers=[("X-Tenant", "blue")])))
    assert header == "header x-tenant: 'red' here, 'blue' recorded (compared: --match-header)"
    assert RestMatch(("id",), ("_",), ("X-Tenant",)).describe() == \
        "query parameters ignored: _; headers compared: X-Tenant; JSON paths ignored: id"
    assert RestMatch().describe() == ""


def test_rest_match_round_trips_through_the_cassette_header_section() -> None:
    match = RestMatch(ignore_query=("_",), match_headers=("X-Tenant",))
    assert match.section() == {"ignore_query": ["_"], "match_headers": ["X-Tenant"]}
    assert RestMatch.from_section(match.section()) == match
    assert RestMatch().section() == {}
    both = RestMatch(("id",), ("_", "v"), ("x-tenant",)).merged(match)
    assert both == RestMatch(("id",), ("_", "v"), ("x-tenant",)), "a union; one header per name, any case"


def test_no_repeat_cursor_answers_each_recording_once() -> None:
    table: Table[str, int] = Table("rest")
    table.add("k", 1)
    table.add("k", 2)
    repeating, once = Cursors(), Cursors(allow_repeats=False)
    assert [repeating.take(table, "k") for _ in range(3)] == [1, 2, 2], "the last one again"
    assert [once.take(table, "k") for _ in range(3)] == [1, 2, None]
    assert once.take(table, "other") is None and not once.fresh(table, "k")


def test_clients_count_under_the_recorded_key_not_their_own_copy() -> None:
    """Each live client's Cursors keep a count per recorded key, under the key the table recorded (one object for
    every client), not the key its request made: a long-lived client keeps no request's key (issue 27)."""
    recorded = ("POST", "/api/v2/me/calls/1", (), 'j:{"operationName":"StopCallRecording"}', ())
    table: Table[Key, int] = Table("rest")
    table.add(recorded, 1)
    clients = [Cursors(), Cursors()]
    for n, cursors in enumerate(clients):
        asked = ("POST", f"/api/v2/me/calls/{n - n + 1}", (), 'j:{"operationName":"StopCallRecording"}', ())
        assert asked == recorded and asked is not recorded  # as a request makes it: equal, not the same object
        assert cursors.take(table, asked) == 1
    assert [[key for _, key, _ in cursors.taken()] for cursors in clients] == [[recorded], [recorded]]
    assert all(key is recorded for cursors in clients for _, key, _ in cursors.taken())
