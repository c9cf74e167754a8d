"""The client side, written once: ``gwsvcr verify`` and ``gwsvcr load`` drive recorded sessions with it, ``gwsvcr
demo`` runs its scripted agent with it, and the benchmarks generate their load with it. No mitmproxy here.

Modules: ``target`` (where requests go, why one failed: :class:`HttpFailure` by cause), ``http`` (HTTP/1.1 over
asyncio streams, kept-alive connections, what an :class:`~gwsvcr.client.http.Observer` hears), ``websocket``
(WebSocket frames with wsproto), ``login`` (Basic credentials, cookies, the CSRF token) and ``bayeux``
(:class:`BayeuxClient`: one CometD session over long-polling or WebSocket).
"""

from gwsvcr.client.bayeux import (
    LONG_POLLING,
    TRANSPORTS,
    WEBSOCKET,
    BayeuxClient,
    ConnectEnd,
    NotBayeux,
    Sent,
    Wire,
)
from gwsvcr.client.http import HttpClient, Observer, Reply
from gwsvcr.client.login import Login
from gwsvcr.client.target import (
    ConnectTimeout,
    Dropped,
    Headers,
    HttpFailure,
    NotHttp,
    Refused,
    Target,
    TimedOut,
    Unreachable,
)
from gwsvcr.client.websocket import UpgradeRefused

__all__ = ["LONG_POLLING", "TRANSPORTS", "WEBSOCKET", "BayeuxClient", "ConnectEnd", "ConnectTimeout", "Dropped",
           "Headers", "HttpClient", "HttpFailure", "Login", "NotBayeux", "NotHttp", "Observer", "Refused", "Reply",
           "Sent", "Target", "TimedOut", "Unreachable", "UpgradeRefused", "Wire"]
