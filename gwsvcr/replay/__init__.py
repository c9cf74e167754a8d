"""Replay: the cassette stands in for the server, with the recorded timing, in causal order, per client."""

from gwsvcr.replay.replayer import Miss, ReplayConfig, Replayer

# Where a test harness (the pytest plugin) reads misses and unused exchanges while the replay runs.
STATUS_PATH = "/__gwsvcr__/status"

__all__ = ["STATUS_PATH", "Miss", "ReplayConfig", "Replayer"]
