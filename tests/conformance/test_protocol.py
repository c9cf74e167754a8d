"""CometD and GWS protocol behaviours exercised with real CometD clients against ``gwsvcr replay`` and, where it means
something, ``gwsvcr sim``: batching, re-handshake after a 402, advice, the ack and timesync extensions, the JS
reload extension, non-Bayeux error bodies, URL suffixes."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gwsvcr import cassette as cas
from gwsvcr import wire
from tests.clients import LIFECYCLE, Session, assert_lifecycle, run
from tests.conformance.harness import (
    BROKEN_CHANNEL,
    FAYE_OPS,
    SPRING_ERROR_PAGE,
    TOLERANCE_MS,
    ErrorPageUpstream,
    Peers,
    Played,
    Replayer,
)
from tests.conftest import record, replay
from tests.procs import status as proc_status

pytestmark = pytest.mark.node

CONNECT, HANDSHAKE, SUBSCRIBE = "/meta/connect", "/meta/handshake", "/meta/subscribe"
TARGETS = ("replay", "sim")
OPS = {"replay": FAYE_OPS, "sim": LIFECYCLE}


def finished(s: Session) -> Session:
    errors = [r for r in s.records if r.get("type") == "error"]
    assert s.of("done"), f"the client failed: {errors or s.stderr[-1500:]}"
    return s


def received(s: Session, *channels: str) -> list[tuple[dict[str, Any], float]]:
    return [(r["message"], r["t"]) for r in s.of("in") if r["message"].get("channel") in channels]


def sent(s: Session, *channels: str) -> list[tuple[dict[str, Any], float]]:
    return [(r["message"], r["t"]) for r in s.of("out") if r["message"].get("channel") in channels]


def misses_during(replayer: Replayer | None, client: str, url: str, ops: tuple[str, ...], user: str,
                  extra: list[str]) -> Played:
    before = len(replayer.status()["misses"]) if replayer else 0
    session = run(client, url, ops, user=user, extra=["--transport", "long-polling", *extra], check=False)
    return Played(session, replayer.status()["misses"][before:] if replayer else [])


def session_on(peers: Peers, target: str, client: str, extra: list[str],
               tag: str) -> tuple[Played, tuple[str, ...]]:
    """The recording lifecycle with ``client`` against the replay (at speed 4) of its own Faye recording, or against
    the sim itself (a user of its own: the sim keeps each user's call state); and the operations it ran."""
    if target == "replay":
        replayer = peers.replayer(peers.recording(client, "faye", "long-polling"))
        return peers.play(client, replayer, "long-polling", extra=extra, check=False), replayer.recording.ops
    return misses_during(None, client, peers.upstream("sim").url, LIFECYCLE, f"{client}-{tag}", extra), LIFECYCLE


# -------------------------------------------------------------------------------------------- batching
@pytest.mark.protocol("batching: several messages in one request",
                      "record (sim), replay: CometD JS (Node), aiocometd-ng")
def test_batched_subscribes_recorded_and_replayed_per_message(peers: Peers, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    """A CometD JS batch (two subscribes in one POST) is one recorded exchange, replayed message by message to a
    batching client (CometD JS) and to one that sends them one per request (aiocometd-ng), with no miss and
    every recorded exchange used."""
    path = tmp_path / "batch.yaml"
    recorder = record(peers.upstream("sim").url, path)
    also = ["--subscribe-also", "/v2/me/devices"]
    try:
        recorded = run("node", recorder.url, LIFECYCLE, user="node-batch", extra=["--batch", "--trace", *also])
    finally:
        assert recorder.stop() == 0
    assert_lifecycle(recorded)
    bodies = [[m["channel"] for m in b.messages] for e in cas.load(path, use_cache=False).exchanges
              if (b := wire.bayeux_of(e.request)) is not None]
    assert [SUBSCRIBE, SUBSCRIBE] in bodies, bodies
    server = replay(path, "--speed", "4")  # strict: a miss fails the run
    try:
        batching = run("node", server.url, LIFECYCLE, user="node-batch", extra=["--batch", "--trace", *also])
        one_by_one = run("python", server.url, LIFECYCLE, user="node-batch", extra=["--trace", *also])
        status = proc_status(server.url, server.token)
    finally:
        code = server.stop()
    assert code == 0, server.stderr
    for s in (batching, one_by_one):
        assert_lifecycle(s)
        assert [r["successful"] for r in s.of("subscribe")] == [True]
    assert any(r["channels"] == [SUBSCRIBE, SUBSCRIBE] for r in batching.of("http"))
    assert all(r["channels"].count(SUBSCRIBE) <= 1 for r in one_by_one.of("http"))
    assert status["misses"] == [] and status["unused"] == []
    request.node.user_properties.append(("recorded request bodies", " ".join(
        "[" + ", ".join(c.split("/")[-1] for c in b) + "]" for b in bodies)))


# ------------------------------------------------------------------------------------ 402 + re-handshake
@pytest.mark.protocol("re-handshake after 402::session_unknown", "{target}, {client}")
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("client", ["python", "node"])
def test_rehandshake_after_402(peers: Peers, client: str, target: str, request: pytest.FixtureRequest) -> None:
    """A /meta/connect with a clientId the server does not know is answered 402::session_unknown with advice
    reconnect:"handshake"; the client re-handshakes, subscribes again and gets every later notification."""
    first = OPS[target][0]
    played, ops = session_on(peers, target, client, ["--trace", "--forget-session-after", first], "402")
    s = finished(played.session)
    assert len(s.of("forged_client_id")) == 1
    failed = [m for m, _ in received(s, CONNECT) if not m.get("successful")]
    assert len(failed) == 1 and failed[0]["error"].startswith("402::"), failed
    assert failed[0]["advice"]["reconnect"] == "handshake"
    [again] = s.of("rehandshake")
    if client == "python":  # aiocometd-ng resends its subscriptions inside the next connect's request
        resent = [r["channels"] for r in s.of("http") if r["t"] >= again["t"] and SUBSCRIBE in r["channels"]]
        assert resent and resent[0] == [CONNECT, SUBSCRIBE], resent
    else:
        assert [r["successful"] for r in s.of("resubscribe")] == [True]
    assert_lifecycle(s, ops)
    assert played.misses == []
    request.node.user_properties.append(("reply", f"{failed[0]['error']}, advice {failed[0]['advice']}"))


# ---------------------------------------------------------------------------------------------- advice
def with_advice(source: Path, target: Path, **advice: int) -> None:
    """A copy of a cassette whose handshake and connect replies carry other advice values."""
    loaded = cas.load(source, use_cache=False)
    writer = cas.CassetteWriter(target, loaded.header)
    for ex in loaded.exchanges:
        for item in ex.reply_items():
            if item.message.get("channel") in (HANDSHAKE, CONNECT) and isinstance(item.message.get("advice"), dict):
                item.message["advice"].update(advice)
        writer.write(ex)
    writer.close()


@pytest.mark.protocol("advice honoured (interval, timeout from the cassette)", "replay, CometD JS (Node)")
def test_advice_from_the_cassette_reaches_the_client(peers: Peers, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    """A cassette whose replies advise interval 400 ms and timeout 1500 ms: every reply the client gets says so,
    CometD JS waits the interval before each connect, and a connect with nothing due is held the advised
    timeout, not the recorded one."""
    recording = peers.recording("node", "sim", "long-polling")
    path = tmp_path / "advice.yaml"
    with_advice(recording.path, path, interval=400, timeout=1500)
    ops = LIFECYCLE[:2]
    server = replay(path)
    try:  # 2.2 s between the operations: one connect waits with nothing due
        s = finished(run("node", server.url, ops, user=recording.user,
                         extra=["--trace", "--extra-pause", f"{ops[1]}=2200"], check=False))
    finally:
        code = server.stop()
    assert code == 0, server.stderr
    assert_lifecycle(s, ops)
    replies = [(m, t) for m, t in received(s, HANDSHAKE, CONNECT) if m.get("successful")]
    assert replies and all((m["advice"]["interval"], m["advice"]["timeout"]) == (400, 1500) for m, _ in replies)
    [final] = s.of("advice")
    assert (final["advice"]["interval"], final["advice"]["timeout"]) == (400, 1500)
    waits = []
    for _, at in sent(s, CONNECT):
        previous = max(t for _, t in replies if t < at)
        waits.append(at - previous)
    assert min(waits) >= 399, waits
    answered = {m["id"]: t for m, t in received(s, CONNECT)}
    holds = [answered[m["id"]] - t for m, t in sent(s, CONNECT) if m["id"] in answered]
    assert any(1450 <= h <= 1750 for h in holds) and max(holds) <= 1750, holds
    request.node.user_properties += [("least wait before a connect ms", round(min(waits))),
                                     ("longest hold ms", round(max(holds)))]


# ------------------------------------------------------------------------------------------- ext.ack
@pytest.mark.protocol("ext.ack round-trip (CometD JS AckExtension)", "{target}, CometD JS (Node)")
@pytest.mark.parametrize("target", TARGETS)
def test_ack_extension_round_trip(peers: Peers, target: str, request: pytest.FixtureRequest) -> None:
    """The handshake agrees on acks; every connect reply carries the next batch number and every connect
    acknowledges the last batch received; each notification arrives once."""
    played, ops = session_on(peers, target, "node", ["--ack", "--trace"], "ack")
    s = finished(played.session)
    [(hs_out, _)] = sent(s, HANDSHAKE)
    [(hs_in, _)] = received(s, HANDSHAKE)
    assert hs_out["ext"]["ack"] is True and hs_in["ext"]["ack"] is True
    replies = [(m, t) for m, t in received(s, CONNECT) if m.get("successful")]
    batches = [m["ext"]["ack"] for m, _ in replies]
    assert all(isinstance(b, int) for b in batches) and batches == sorted(set(batches)), batches
    for message, at in sent(s, CONNECT):
        last = [m["ext"]["ack"] for m, t in replies if t < at]
        assert message["ext"]["ack"] == (last[-1] if last else 0)
    assert_lifecycle(s, ops)
    assert played.misses == []
    request.node.user_properties.append(("batches", batches))


# -------------------------------------------------------------------------------------- ext.timesync
@pytest.mark.protocol("ext.timesync round-trip (CometD JS TimeSyncExtension)", "{target}, CometD JS (Node)")
@pytest.mark.parametrize("target", TARGETS)
def test_timesync_round_trip(peers: Peers, target: str, request: pytest.FixtureRequest) -> None:
    """Every handshake and connect reply echoes the request's tc, gives ts = when the request arrived and p = how
    long it was held; so the client, on the same machine as the server, computes a clock offset near 0."""
    played, ops = session_on(peers, target, "node", ["--timesync", "--trace"], "timesync")
    s = finished(played.session)
    requests = {m["id"]: (m, t) for m, t in sent(s, HANDSHAKE, CONNECT)}
    holds = []
    for reply, at in received(s, HANDSHAKE, CONNECT):
        sync = reply["ext"]["timesync"]
        asked, left = requests[reply["id"]]
        round_trip = at - left
        assert sync["tc"] == asked["ext"]["timesync"]["tc"]
        assert -1 <= round_trip - sync["p"] <= 40, (round_trip, sync)
        arrival = sync["tc"] + (round_trip - sync["p"]) / 2  # on the client's clock, which is the server's
        assert abs(sync["ts"] - arrival) <= 25, (sync, round_trip)
        holds.append(sync["p"])
    assert max(holds) >= 50, "a held connect was measured"
    [final] = s.of("timesync")
    assert abs(final["offset"]) <= 20, final
    assert_lifecycle(s, ops)
    assert played.misses == []
    request.node.user_properties += [("longest p ms", max(holds)), ("client offset ms", final["offset"]),
                                     ("client lag ms", final["lag"])]


# ---------------------------------------------------------------------------------------- reload ext.
@pytest.mark.protocol("JS reload extension: a session resumed without a handshake", "{target}, CometD JS (Node)")
@pytest.mark.parametrize("session_state", ["known", "forgotten"])
@pytest.mark.parametrize("target", TARGETS)
def test_reload_extension_resumes_without_handshake(peers: Peers, target: str, session_state: str,
                                                    tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A page reloads after two operations (cometd.reload(), no disconnect); the new page's first CometD request
    is a /meta/connect with the old clientId. If the server knows it the session goes on; if not (forgotten) it
    answers 402 and the client re-handshakes. Either way the last two operations get their notifications."""
    state = tmp_path / "reload.json"
    first, second = OPS[target][:2], OPS[target][2:]
    if target == "replay":
        recording = peers.recording("node", "faye", "long-polling")
        replayer: Replayer | None = peers.replayer(recording)
        assert replayer is not None
        url, user = replayer.url, recording.user
        reload_extra = ["--call-id", recording.call_id or ""]
    else:
        replayer, recording = None, None
        url, user = peers.upstream("sim").url, f"node-reload-{session_state}"
        reload_extra = []
    reload = ["--reload-state", str(state), "--trace", *reload_extra]
    before = misses_during(replayer, "node", url, first, user, [*reload, "--reload-after", first[-1]])
    s1 = finished(before.session)
    assert s1.of("reloaded") and [e["op"] for e in s1.events] == list(first)
    issued = s1.of("handshake")[0]["clientId"]
    if session_state == "forgotten":
        saved = json.loads(state.read_text())
        kept = json.loads(saved["sessionStorage"]["org.cometd.reload"])
        kept["handshakeResponse"]["clientId"] = f"forgotten{issued}"
        saved["sessionStorage"]["org.cometd.reload"] = json.dumps(kept)
        state.write_text(json.dumps(saved))
    after = misses_during(replayer, "node", url, second, user, reload)
    s2 = finished(after.session)
    assert s2.of("resumed") and s2.of("handshake")[0].get("reload") is True
    wire = [r["channels"] for r in s2.of("http")]
    assert wire[0] == [CONNECT], wire  # no handshake on the wire first
    first_reply = received(s2, CONNECT)[0][0]
    if session_state == "known":
        assert first_reply["successful"] and first_reply["clientId"] == issued
        assert [HANDSHAKE] not in wire
        seen = "resumed: first connect answered successfully for the old clientId"
    else:
        assert first_reply["error"].startswith("402::") and first_reply["advice"]["reconnect"] == "handshake"
        assert [HANDSHAKE] in wire and len(s2.of("rehandshake")) == 1
        assert [r["successful"] for r in s2.of("resubscribe")] == [True]
        seen = f"first connect answered {first_reply['error']}; re-handshake, resubscribe"
    assert_lifecycle(s2, second)
    assert before.misses == [] and after.misses == []
    if recording is not None:
        assert replayer is not None
        recorded = [d / replayer.speed for d in recording.delays_ms()[len(first):]]
        errors = [abs(e["delay_ms"] - r) for e, r in zip(s2.events, recorded, strict=True)]
        assert max(errors) <= TOLERANCE_MS, (s2.delays(), recorded)
        seen += f"; max delay error {max(errors):.1f} ms after the resume"
    request.node.user_properties.append(("seen", seen))


# ------------------------------------------------------------------------------ non-Bayeux error bodies
def error_cassette(peers: Peers, transport: str) -> Path:
    """A node session through gwsvcr record whose subscribe to BROKEN_CHANNEL the upstream answered with an HTML
    500, recorded once per transport."""
    path = peers.tmp / f"error-page-{transport}.yaml"
    if not path.exists():
        upstream = ErrorPageUpstream(peers.upstream("sim").url)
        recorder = record(upstream.url, path)
        try:
            session = run("node", recorder.url, LIFECYCLE[:1], user=f"node-error-{transport}",
                          extra=["--transport", transport, "--subscribe-also", BROKEN_CHANNEL])
        finally:
            code = recorder.stop()
            upstream.stop()
        assert code == 0, recorder.stderr
        [subscribe] = session.of("subscribe")
        assert subscribe["successful"] is False
    return path


@pytest.mark.protocol("non-Bayeux error body (HTML 500 to a subscribe) recorded", "record, CometD JS (Node)")
@pytest.mark.parametrize("transport", ["long-polling", "callback-polling"])
def test_error_page_is_recorded_unparsed(peers: Peers, transport: str, request: pytest.FixtureRequest) -> None:
    """The upstream answers a subscribe with a Spring error page (HTTP 500, text/html): the client sees the
    failure and the cassette keeps the page byte for byte, unparsed."""
    loaded = cas.load(error_cassette(peers, transport), use_cache=False)
    [ex] = [e for e in loaded.exchanges if e.response is not None and e.response.status == 500]
    assert ex.transport == transport
    bayeux = wire.bayeux_of(ex.request)
    assert bayeux is not None and [m.get("subscription") for m in bayeux.messages] == [BROKEN_CHANNEL]
    assert ex.response is not None and ex.response.kind == "text" and ex.response.body == SPRING_ERROR_PAGE
    assert (ex.response.header("Content-Type") or "").startswith("text/html")
    request.node.user_properties.append(("recorded", f"exchange {ex.number}: {ex.request.method} {ex.request.path}"
                                                     f" -> {ex.response.status} {ex.response.kind}"))


@pytest.mark.protocol("non-Bayeux error body replayed as is", "replay, CometD JS (Node)")
@pytest.mark.parametrize("transport", ["long-polling", "callback-polling"])
def test_error_page_is_replayed_as_is(peers: Peers, transport: str, tmp_path: Path) -> None:
    """Replayed, that subscribe gets the same HTTP 500 and page; the rest of the session goes on."""
    path = tmp_path / "error.yaml"
    shutil.copy(error_cassette(peers, transport), path)
    server = replay(path)
    try:
        s = run("node", server.url, LIFECYCLE[:1], user=f"node-error-{transport}",
                extra=["--transport", transport, "--subscribe-also", BROKEN_CHANNEL])
        status, page = _raw_subscribe(server.url, f"node-error-{transport}", transport)
    finally:
        server.stop()
    assert_lifecycle(s, LIFECYCLE[:1])
    [subscribe] = s.of("subscribe")
    assert subscribe["successful"] is False
    assert (status, page) == (500, SPRING_ERROR_PAGE)


def _raw_subscribe(url: str, user: str, transport: str) -> tuple[int, str]:
    """Log in, handshake and subscribe to BROKEN_CHANNEL by hand: the HTTP status and body of that subscribe."""
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:secret".encode()).decode()}
    with urllib.request.urlopen(urllib.request.Request(url + "/api/v2/me", headers=auth), timeout=10) as r:
        headers = {**auth, "Cookie": r.headers["Set-Cookie"].split(";")[0], "Content-Type": "application/json"}

    def bayeux(messages: list[dict[str, Any]]) -> tuple[int, str]:
        if transport == "callback-polling":
            query = urllib.parse.urlencode({"jsonp": "cb", "message": json.dumps(messages)})
            req = urllib.request.Request(f"{url}/api/v2/notifications?{query}", headers=headers)
        else:
            req = urllib.request.Request(url + "/api/v2/notifications", json.dumps(messages).encode(), headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    _, text = bayeux([{"channel": HANDSHAKE, "version": "1.0", "id": "1",
                       "supportedConnectionTypes": [transport]}])
    client_id = json.loads(text[text.index("["):text.rindex("]") + 1])[0]["clientId"]
    return bayeux([{"channel": SUBSCRIBE, "clientId": client_id, "id": "2", "subscription": BROKEN_CHANNEL}])


# ------------------------------------------------------------------------------------------ URL suffixes
@pytest.mark.protocol("URL suffixes appended by clients (/handshake, /connect, ...)", "replay, {client}")
@pytest.mark.parametrize(("recorded_with", "client", "extra"), [
    ("node", "python", []), ("python", "node", []), ("node", "node", ["--no-append-message-type"])],
    ids=["suffixed-to-plain", "plain-to-suffixed", "suffixed-to-node-without-suffix"])
def test_url_suffixes_are_matched(peers: Peers, recorded_with: str, client: str, extra: list[str],
                                  request: pytest.FixtureRequest) -> None:
    """CometD JS appends the message type to the URL (/api/v2/notifications/connect), aiocometd-ng does not; a
    recording made with one replays to the other, and to CometD JS told not to append, without a miss."""
    recording = peers.recording(recorded_with, "faye", "long-polling")
    recorded = {e.request.path for e in cas.load(recording.path, use_cache=False).exchanges if e.is_bayeux}
    base = "/api/v2/notifications"
    if recorded_with == "node":
        assert {f"{base}/handshake", f"{base}/connect", f"{base}/disconnect"} <= recorded, recorded
    else:
        assert recorded == {base}, recorded
    played = peers.play(client, peers.replayer(recording), "long-polling", extra=["--trace", *extra], check=False)
    s = finished(played.session)
    assert_lifecycle(s, recording.ops)
    assert played.misses == []
    used = {r["path"] for r in s.of("http") if "path" in r}
    if client == "node":
        assert (used == {base}) if extra else (f"{base}/connect" in used), used
    request.node.user_properties.append(("paths", f"recorded {sorted(recorded)}; sent "
                                                  f"{sorted(used) if used else [base]}"))
