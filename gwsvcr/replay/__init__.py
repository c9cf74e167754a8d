"""Replay: the cassette stands in for the server, with the recorded timing, in causal order, per client."""

from gwsvcr.replay.replayer import Miss, ReplayConfig, Replayer, longest_wait
from gwsvcr.replay.status import HEALTH_PATH, STATUS_PATH

__all__ = ["HEALTH_PATH", "STATUS_PATH", "Miss", "ReplayConfig", "Replayer", "longest_wait"]
