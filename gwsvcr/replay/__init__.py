"""Replay: the cassette stands in for the server, with the recorded timing, in causal order, per client."""

from gwsvcr.replay.replayer import Miss, ReplayConfig, Replayer

__all__ = ["Miss", "ReplayConfig", "Replayer"]
