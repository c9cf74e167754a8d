"""A WebSocket client over asyncio streams for CometD's websocket transport: wsproto frames (it comes with
mitmproxy), text messages in, text messages out, pings answered, a clean close; arrival times from the clock."""

from __future__ import annotations

import asyncio
import contextlib

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from gwsvcr.client.target import Headers, HttpFailure, Refused, Target, TimedOut
from gwsvcr.timeline import Clock

__all__ = ["UpgradeLoginRefused", "UpgradeRefused", "UpgradeTimeout", "WebSocket"]

_READ = 65536


class UpgradeRefused(HttpFailure):
    """The server is there but gave no WebSocket: it refused the upgrade, closed, or answered something else."""


class UpgradeLoginRefused(UpgradeRefused, Refused):
    """The server refused the upgrade for the credentials (HTTP 401 or 403)."""


class UpgradeTimeout(UpgradeRefused, TimedOut):
    """No answer to the upgrade within the deadline."""


class WebSocket:
    """One open WebSocket; ``receive()`` gives each text message with its wall-clock arrival time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: WSConnection,
                 accepted: AcceptConnection, clock: Clock) -> None:
        self._reader, self._writer, self._ws, self._clock = reader, writer, ws, clock
        self.response_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in accepted.extra_headers]
        self._parts: list[str] = []
        self._pending: list[tuple[str, float]] = []
        self.closed = False

    @classmethod
    async def connect(cls, target: Target, path: str, headers: Headers, timeout: float,
                      clock: Clock | None = None) -> WebSocket:
        reader, writer = await target.open(timeout)
        ws = WSConnection(ConnectionType.CLIENT)
        url = target.websocket_url(path)
        try:
            async with asyncio.timeout(timeout):
                writer.write(ws.send(Request(host=target.authority, target=target.prefix + path,
                                             extra_headers=[(k.encode(), v.encode()) for k, v in headers])))
                await writer.drain()
                while True:
                    data = await reader.read(_READ)
                    ws.receive_data(data or None)
                    for event in ws.events():
                        if isinstance(event, AcceptConnection):
                            return cls(reader, writer, ws, event, clock or Clock())
                        if isinstance(event, RejectConnection):
                            what = f"the server refused the WebSocket upgrade with HTTP {event.status_code}"
                            if event.status_code in (401, 403):
                                raise UpgradeLoginRefused(f"{url}: {what}", event.status_code, url)
                            raise UpgradeRefused.of(url, what)
                    if not data:
                        raise UpgradeRefused.of(url, "the server closed the connection during the upgrade")
        except TimeoutError:
            writer.close()
            raise UpgradeTimeout.of(url, f"no WebSocket upgrade within {timeout:g} s") from None
        except HttpFailure:
            writer.close()
            raise
        except (RemoteProtocolError, LocalProtocolError, h11.ProtocolError) as e:  # a reply that is no upgrade
            writer.close()
            raise UpgradeRefused.of(url, f"not a WebSocket upgrade ({e})") from None

    async def send(self, text: str) -> float:
        """Send one text message; the wall-clock time it went out."""
        self._writer.write(self._ws.send(Message(data=text)))
        await self._writer.drain()
        return self._clock.wall()

    async def receive(self) -> tuple[str, float] | None:
        """The next text message and when it arrived; None once the socket closed."""
        while not self._pending:
            if self.closed:
                return None
            try:
                data = await self._reader.read(_READ)
            except OSError:
                data = b""
            arrived = self._clock.wall()
            self._ws.receive_data(data or None)
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    self._parts.append(event.data)
                    if event.message_finished:
                        self._pending.append(("".join(self._parts), arrived))
                        self._parts.clear()
                elif isinstance(event, Ping):
                    self._writer.write(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(Exception):
                        self._writer.write(self._ws.send(event.response()))
                    self.closed = True
            if not data:
                self.closed = True
        return self._pending.pop(0)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self._writer.write(self._ws.send(CloseConnection(code=1000)))
                await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
