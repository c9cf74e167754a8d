"""``--record``: the live session written as a cassette, through the recorder's own logic (sessions, causes and
delays of events, redaction) and the cassette writer, so ``show``, ``diff`` and ``report`` read it as any other."""

from __future__ import annotations

import os
import time

from gwsvcr.bayeux import Message
from gwsvcr.cassette import CassetteWriter, Header, Request, Response, now_iso
from gwsvcr.record.recording import ExchangeTimes, Recorder, WebSocketRecording
from gwsvcr.record.redact import Redactor
from gwsvcr.session import DEFAULT_RULES, HEADER_KEY
from gwsvcr.verify.driver import Listener
from gwsvcr.version import __version__


class LiveRecording(Listener):
    """Writes every exchange of a driven session to ``path`` the moment it completed (OSError if it cannot)."""

    def __init__(self, path: str | os.PathLike[str], upstream: str) -> None:
        redactor = Redactor()
        header = Header(recorded_at=now_iso(), upstream=upstream, recorder=f"gwsvcr {__version__} verify",
                        redactions=redactor.rules(), extra={HEADER_KEY: DEFAULT_RULES.to_header()})
        self.writer = CassetteWriter(path, header, upstream=upstream)
        self.recorder = Recorder(self.writer, redactor, time.time())
        self.socket: WebSocketRecording | None = None

    def exchange(self, request: Request, response: Response | None, times: ExchangeTimes,
                 error: str | None = None) -> None:
        self.recorder.complete(request, response, times, error)

    def websocket_opened(self, upgrade: Request) -> None:
        self.socket = WebSocketRecording(self.recorder, upgrade)

    def websocket_frame(self, messages: list[Message], from_client: bool, at: float) -> None:
        if self.socket is not None:
            (self.socket.client_frame if from_client else self.socket.server_frame)(messages, at)

    def websocket_closed(self, at: float) -> None:
        if self.socket is not None:
            self.socket.close(at)
            self.socket = None

    def close(self) -> None:
        self.writer.close()
