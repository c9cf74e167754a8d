"""Upstream faults while recording: an upstream that refuses, resets mid-reply, stalls, hangs up or answers
garbage. Each time the client gets a clear error (a 502 naming the reason, or its own timeout for a stall), the
recorder keeps running and records the next good exchange, and the fault is in the cassette as an ``error``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from gwsvcr import cassette as cas
from tests.conftest import record
from tests.reliability.netutil import call

CLIENT_TIMEOUT = 1.5  # seconds; the stalling upstream holds every reply longer than that


class FaultyUpstream:
    """An HTTP upstream on its own event loop thread; ``mode`` says how it treats the next connection."""

    def __init__(self) -> None:
        self.mode = "good"
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.release = asyncio.Event()  # ends the stalls
        self.server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listen()

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def listen(self) -> None:
        async def go() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
            self.port = self.server.sockets[0].getsockname()[1]
        self._run(go())

    def refuse(self) -> None:
        """Stop listening: the next connection is refused."""
        async def go() -> None:
            assert self.server is not None
            self.server.close()
        self._run(go())

    def close(self) -> None:
        async def go() -> None:
            self.release.set()
            if self.server is not None:
                self.server.close()
        self._run(go())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            mode = self.mode
            if mode == "good":
                body = b'{"statusCode":0}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            elif mode == "reset":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                             b'{"statusCode":0,"partial":')
                await writer.drain()
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                           struct.pack("ii", 1, 0))
                writer.transport.abort()  # RST, not FIN
                return
            elif mode == "garbage":
                writer.write(b"\x00\x01\x02SSH-2.0-not-http\xff\xfe\r\n\r\n")
            elif mode == "stall":
                await self.release.wait()
            elif mode == "hangup":
                pass  # close without a byte
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    up = FaultyUpstream()
    yield up
    up.close()


# (mode, what the client must be told, what the cassette's error must say)
FAULTS = [
    ("reset", "peer closed connection without sending complete message body", "peer closed connection"),
    ("garbage", "Cannot parse HTTP response", "Cannot parse HTTP response"),
    ("hangup", "server closed connection", "server closed connection"),
    ("stall", None, "client gone before the reply"),
    ("refuse", "Connect call failed", "Connect call failed"),
]


def test_each_fault_is_a_clear_error_recorded_and_the_next_exchange_recorded(upstream: FaultyUpstream,
                                                                             tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "faults.yaml"
    recorder = record(f"http://127.0.0.1:{upstream.port}", path)
    try:
        assert call(recorder.url + "/api/v2/good/0")[0] == 200
        for n, (mode, told, _) in enumerate(FAULTS, 1):
            if mode == "refuse":
                upstream.refuse()
            else:
                upstream.mode = mode
            if told is None:  # the stall: the client's own timeout ends it
                with pytest.raises(TimeoutError):
                    call(recorder.url + f"/api/v2/fault/{mode}", timeout=CLIENT_TIMEOUT)
            else:
                status, body, _ = call(recorder.url + f"/api/v2/fault/{mode}", timeout=10)
                assert status == 502 and told in body, (mode, status, body)
                if mode == "refuse":  # mitmproxy names the address only for a failed connect
                    assert f"'127.0.0.1', {upstream.port}" in body.replace("&#x27;", "'"), body
            assert recorder.popen.poll() is None, f"the recorder died after {mode}: {recorder.stderr}"
            if mode == "refuse":
                upstream.listen()
            upstream.mode = "good"
            status, body, _ = call(recorder.url + f"/api/v2/good/{n}", timeout=10)
            assert (status, body) == (200, {"statusCode": 0}), (mode, status, body)
    finally:
        code = recorder.stop()
    assert code == 0, recorder.stderr
    assert "Traceback" not in recorder.stderr and "Addon error" not in recorder.stderr, recorder.stderr
    assert "4 upstream failures" in recorder.stdout, recorder.stdout  # the stall is the client's, not upstream's

    assert cas.validate(path) == []
    by_path = {ex.request.path: ex for ex in cas.load(path, use_cache=False).exchanges}
    for n in range(len(FAULTS) + 1):
        good = by_path[f"/api/v2/good/{n}"]
        assert good.response is not None and good.response.status == 200 and good.error is None
    for mode, _, recorded in FAULTS:
        fault = by_path[f"/api/v2/fault/{mode}"]
        assert fault.response is None and fault.error is not None and recorded in fault.error, (mode, fault.error)
        if mode != "stall":  # the cassette names the upstream for every upstream failure
            assert f"upstream http://127.0.0.1:{upstream.port}/api/v2/fault/{mode} failed" in fault.error
