"""Finished HTTP streams freed by reference counting the moment mitmproxy drops them, not by the cycle collector.

mitmproxy (12.x) builds each request's stream (``mitmproxy.proxy.layers.http.HttpStream``) as a reference cycle:
the stream keeps its states as bound methods of itself (``client_state``, ``server_state``) and sits in its own
context's list of layers. When the HTTP layer drops a finished stream, the stream, its flow, the request, the
response and their buffers (28 objects a request) are garbage that only a collection frees. A long-poll held until
its agent's event lives long enough to reach the oldest generation, so its garbage waits for a full pass, which
walks it (and cli/serve.py's FreezeSurvivors freezes what a pass finds alive, until it next walks everything): at a
shift start, the memory above ``mitmdump --server-replay``'s and the longest pauses (docs/BENCHMARKS.md).

:class:`FreeFinishedStreams` gives each HTTP layer a ``streams`` table that, when mitmproxy pops a stream from it
(the stream's ``DropStream``: nothing routes to it any more), unlinks the stream on the next turn of the event loop,
once the event that finished it has been handled: each state that is a bound method of the stream becomes
:func:`_dropped` (which swallows an event, as mitmproxy's ``state_done`` does), and the stream leaves its context's
list of layers. Whatever it does not recognise (another table type, a stream still paused on a command or grown a
child layer such as a WebSocket, one put back in the table) it leaves alone: serving stays correct, the garbage is
merely collected later. tests/test_cycles.py fails if it stops taking effect.

A connection's own objects (its handler, layers and contexts: about 55 objects) stay cycles: a hook of one of its
flows (a long-poll held after its client left) may still run after the connection ended and go through them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any


def _dropped(_event: object) -> Iterator[Any]:
    """The state of a stream mitmproxy has dropped: an event that still reaches it yields nothing."""
    yield from ()


def unlink(stream: Any, streams: dict[Any, Any]) -> None:
    """Break the cycles of ``stream``, dropped from its HTTP layer's ``streams``, unless it is still in use."""
    state = getattr(stream, "__dict__", None)
    if (not isinstance(state, dict) or state.get("_paused") is not None or state.get("child_layer") is not None
            or any(s is stream for s in streams.values())):
        return
    for name, value in list(state.items()):
        if getattr(value, "__self__", None) is stream:  # a state kept as a bound method of the stream itself
            state[name] = _dropped
    layers = getattr(state.get("context"), "layers", None)
    if isinstance(layers, list):
        for i, layer in enumerate(layers):
            if layer is stream:
                del layers[i]
                break


class _Streams(dict[Any, Any]):
    """An HTTP layer's ``streams`` table: a stream popped from it is unlinked once the current event is handled."""

    __slots__ = ()

    def pop(self, key: Any, *default: Any) -> Any:
        stream = super().pop(key, *default)
        if stream is not None:
            asyncio.get_running_loop().call_soon(unlink, stream, self)
        return stream


class FreeFinishedStreams:
    """Gives every HTTP layer mitmproxy starts a :class:`_Streams` table (the module docstring says why)."""

    def next_layer(self, nextlayer: Any) -> None:
        layer: Any = getattr(nextlayer, "layer", None)  # what mitmproxy's NextLayer addon chose, earlier in the chain
        # By name, not imported: another mitmproxy without it must still start (and then serve, only less lean).
        if type(layer).__name__ == "HttpLayer" and type(getattr(layer, "streams", None)) is dict and not layer.streams:
            layer.streams = _Streams()
