"""Failures the server gave, recorded and live, as verify compares them: how a request failed (:class:`Failure`: a
connect answered unsuccessfully, with its reply; an error page where Bayeux was awaited; no reply at all), which
recorded failures were the server's (:func:`server_failure`: a client that left or closed its WebSocket ended the
exchange itself), what the live side met (:func:`live_failure`), and the fields two failures are compared on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gwsvcr import compare, wire
from gwsvcr.bayeux import CONNECT, Message
from gwsvcr.cassette import Exchange
from gwsvcr.client.bayeux import ConnectEnd, NotBayeux
from gwsvcr.client.target import HttpFailure

__all__ = ["Failure", "failure_fields", "live_failure", "refused_connect", "server_failure"]

# How the recorder names an exchange the client itself ended (it left, closed its WebSocket, awaited nothing)
_CLIENT_ENDED = ("client gone", "WebSocket closed", "no reply awaited", "pushed after")


@dataclass(frozen=True)
class Failure:
    """How the server failed a request: it answered a connect unsuccessfully (``reply``), answered an error page
    where Bayeux was awaited (``status``), or gave no reply (``error`` says why)."""

    reply: Message | None = None
    status: int | None = None
    error: str | None = None

    @property
    def kind(self) -> str:
        return "refused" if self.reply is not None else f"HTTP {self.status}" if self.status else "no reply"

    @property
    def summary(self) -> str:
        if self.reply is not None:
            advice = self.reply.get("advice")
            reconnect = advice.get("reconnect") if isinstance(advice, dict) else None
            return f"failed: {self.reply.get('error') or '?'}" + (f", advice {reconnect}" if reconnect else "")
        if self.status is not None:
            return f"HTTP {self.status}, not Bayeux"
        return f"no reply ({self.error})" if self.error else "no reply"


def server_failure(ex: Exchange) -> Failure | None:
    """How the server failed ``ex`` when recorded, or None: it answered (an HTTP error status of a REST request is
    an answer, compared as one), or the client ended the exchange itself."""
    if ex.response is None:
        return None if not ex.error or ex.error.startswith(_CLIENT_ENDED) else Failure(error=ex.error)
    if wire.bayeux_of(ex.request) is not None and ex.response.status >= 400 and not ex.reply_items():
        return Failure(status=ex.response.status)
    return None


def refused_connect(ex: Exchange) -> Failure | None:
    """The recorded connect of ``ex`` if the server answered it unsuccessfully."""
    reply = next((i.message for i in ex.reply_items() if not i.is_event and i.message.get("channel") == CONNECT
                  and i.message.get("successful") is False), None)
    return Failure(reply=reply) if reply is not None else None


def live_failure(met: ConnectEnd | HttpFailure | NotBayeux) -> Failure:
    """What the live server did, as a :class:`Failure`."""
    if isinstance(met, ConnectEnd):
        if met.reply is not None:
            return Failure(reply=met.reply)
        if met.failure is None:
            return Failure(error="the reply holds no answer to the connect")
        met = met.failure
    if isinstance(met, NotBayeux):
        return Failure(status=met.reply.status)
    return Failure(error=str(met))


def failure_fields(failure: Failure | None, volatility: compare.Volatility) -> dict[str, Any]:
    """What two failures are compared on: their kind, and a refusal's reply (ids and the like left out)."""
    if failure is None:
        return {}
    out: dict[str, Any] = {"failure": failure.kind}
    return compare.reply_fields(failure.reply, volatility, out) if failure.reply is not None else out
