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

Each layer mitmproxy makes also keeps a queue of the events that reach it while it waits for a hook: a
``collections.deque``, 760 bytes even empty, in five layers per agent (its two connections' proxy and HTTP layers,
the HTTP/1 connection, the stream of its held long-poll), where the queue is nearly always empty. The same table
type (and :class:`_Connections`, the HTTP layer's connections) gives each layer it meets a :class:`_Queue` instead,
with what was queued: a list, 56 bytes, that does what mitmproxy asks of the queue (append, popleft, iterate).
"""

from __future__ import annotations

import asyncio
import collections
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


class _Queue(list[Any]):
    """A queue that is nearly always empty, as a list (the module docstring says why): it does what mitmproxy and
    asyncio ask of theirs."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


def _lean(owner: Any, name: str) -> None:
    """``owner``'s deque ``name`` as a :class:`_Queue`, with what it holds; anything else is left alone."""
    queue = getattr(owner, name, None)
    if type(queue) is collections.deque:
        setattr(owner, name, _Queue(queue))


def lean_queue(layer: Any) -> None:
    """Give ``layer`` a :class:`_Queue` for mitmproxy's deque of paused events."""
    _lean(layer, "_paused_event_queue")


def lean_connection(handler: Any) -> None:
    """The queues a client connection starts with, empty, in asyncio's objects under mitmproxy's handler (what its
    socket could not send yet, the tasks waiting for that to drain, those waiting for its idle timeout to be allowed
    again), as :class:`_Queue` lists; anything else is left alone. mitmdump's connections keep the deques."""
    io = getattr(handler, "transports", {}).get(getattr(handler, "client", None))
    writer = getattr(io, "writer", None)
    watchdog = getattr(handler, "timeout_watchdog", None)
    _lean(getattr(writer, "transport", None), "_buffer")
    _lean(getattr(writer, "_protocol", None), "_drain_waiters")
    _lean(getattr(watchdog, "can_timeout", None), "_waiters")


class _Streams(dict[Any, Any]):
    """An HTTP layer's ``streams`` table: a stream put in it gets a lean queue; a stream popped from it is unlinked
    once the current event is handled."""

    __slots__ = ()

    def __setitem__(self, key: Any, stream: Any) -> None:
        lean_queue(stream)
        super().__setitem__(key, stream)

    def pop(self, key: Any, *default: Any) -> Any:
        stream = super().pop(key, *default)
        if stream is not None:
            asyncio.get_running_loop().call_soon(unlink, stream, self)
        return stream


class _Connections(dict[Any, Any]):
    """An HTTP layer's ``connections``: the layer of a connection put in it gets a lean queue."""

    __slots__ = ()

    def __setitem__(self, key: Any, layer: Any) -> None:
        lean_queue(layer)
        super().__setitem__(key, layer)

    def setdefault(self, key: Any, layer: Any = None) -> Any:
        lean_queue(layer)
        return super().setdefault(key, layer)


class FreeFinishedStreams:
    """Gives every HTTP layer mitmproxy starts a :class:`_Streams` table and :class:`_Connections`, and the layers
    of its connection lean queues (the module docstring says why)."""

    def next_layer(self, nextlayer: Any) -> None:
        layer: Any = getattr(nextlayer, "layer", None)  # what mitmproxy's NextLayer addon chose, earlier in the chain
        for above in (nextlayer, layer, *getattr(getattr(nextlayer, "context", None), "layers", ())):
            lean_queue(above)
        # By name, not imported: another mitmproxy without it must still start (and then serve, only less lean).
        if type(layer).__name__ == "HttpLayer" and type(getattr(layer, "streams", None)) is dict and not layer.streams:
            layer.streams = _Streams()
            if type(getattr(layer, "connections", None)) is dict and not layer.connections:
                layer.connections = _Connections()
