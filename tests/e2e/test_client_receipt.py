"""Events are timed from when the client got the reply that caused them, not from when the replayer handed that
reply to mitmproxy: a reply whose write is held back (as under load, where it waits event-loop turns for its
connection) still has its event arrive the recorded delay after the client received it.
"""

from __future__ import annotations

import asyncio

from mitmproxy import http

from gwsvcr import cassette as cas
from gwsvcr.addons.replayer import GwsReplayer
from gwsvcr.cli import serve
from tests.clients import run
from tests.procs import ROOT

SAMPLE = ROOT / "cassettes" / "stop_call_recording.yaml"
HOLD = 0.4  # seconds the REST reply is held back after the replayer answered it: longer than the event's delay


class HoldReplies:
    """Holds every call operation's reply back before mitmproxy writes it (its `response` hook runs first)."""

    async def response(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "POST" and "/me/calls/" in flow.request.path:
            await asyncio.sleep(HOLD)


async def test_event_delay_runs_from_the_clients_receipt() -> None:
    recorded = [i.delay for e in cas.load(SAMPLE).exchanges for i in e.reply_items() if i.is_event]
    assert recorded and recorded[0] is not None and recorded[0] < HOLD
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    master = serve.build([GwsReplayer(), HoldReplies()], host="127.0.0.1", port=0, mode=serve.NO_UPSTREAM,
                         settings={"gwsvcr_replay_cassette": str(SAMPLE)}, on_ready=listening.set_result)
    running = asyncio.ensure_future(master.run())
    try:
        url = await asyncio.wait_for(listening, 30)
        session = await asyncio.to_thread(run, "python", url, ("StopCallRecording",))
    finally:
        master.shutdown()
        await asyncio.wait_for(running, 30)
    [reply], [event] = session.replies, session.events
    assert reply["status"] == 200
    # Timed from the hand-over, the event would come HOLD - delay (about 150 ms) before the reply.
    assert event["delay_ms"] is not None and abs(event["delay_ms"] - recorded[0] * 1000) <= 30, (event, recorded)
