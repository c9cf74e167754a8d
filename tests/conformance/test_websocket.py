"""CometD over WebSocket is recorded as WebSocket frames: a websocket cell of the matrix is not a client that
quietly fell back to long-polling (the Node client registers only the transport asked for; aiocometd-ng always
handshakes over long-polling, then switches)."""

from __future__ import annotations

from collections import Counter

import pytest

from gwsvcr import cassette as cas
from gwsvcr import wire
from tests.conformance.harness import EVENT_DELAY_MS, Peers
from tests.conformance.matrix import RECORDED_WITH, UPSTREAMS

pytestmark = pytest.mark.node


@pytest.mark.parametrize("upstream", UPSTREAMS)
@pytest.mark.parametrize("client", RECORDED_WITH)
def test_websocket_session_recorded_as_frames(peers: Peers, client: str, upstream: str,
                                              request: pytest.FixtureRequest) -> None:
    """The CometD exchanges of a websocket recording are WebSocket frames carrying the events and their delays."""
    recording = peers.recording(client, upstream, "websocket")
    loaded = cas.load(recording.path, use_cache=False)
    cometd = [e for e in loaded.exchanges if e.is_bayeux]
    by_transport = Counter(e.transport for e in cometd)
    handshake = next(e for e in cometd if any(m.get("channel") == "/meta/handshake" for m in _messages(e)))
    request.node.user_properties += [("CometD exchanges", dict(sorted(by_transport.items()))),
                                     ("handshake over", handshake.transport)]
    # aiocometd-ng handshakes over long-polling and then opens the WebSocket; CometD JS does all of it there.
    expected_handshake = "long-polling" if client == "python" else "websocket"
    assert handshake.transport == expected_handshake
    assert set(by_transport) <= {"websocket", expected_handshake} and by_transport["websocket"] >= 3
    events = [(e, i) for e in cometd for i in e.reply_items() if i.is_event]
    assert len(events) == len(recording.ops) and all(e.transport == "websocket" for e, _ in events)
    posts = {e.number: e for e in loaded.exchanges if not e.is_bayeux and e.request.method == "POST"}
    delay = EVENT_DELAY_MS[upstream]
    for (_, item), op in zip(events, recording.ops, strict=True):
        assert item.cause in posts and posts[item.cause].request.body == {"operationName": op}
        assert item.delay is not None and delay - 10 <= item.delay * 1000 <= delay + 150


def _messages(exchange: cas.Exchange) -> list[dict[str, object]]:
    bayeux = wire.bayeux_of(exchange.request)
    return bayeux.messages if bayeux else []
