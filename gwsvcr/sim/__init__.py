"""The GWS simulator: call-recording operations answered from a per-user call model, their CometD notifications
pushed through the shared Bayeux core."""

from gwsvcr.sim.knobs import Knobs
from gwsvcr.sim.simulator import Simulator, SimulatorConfig

__all__ = ["Knobs", "Simulator", "SimulatorConfig"]
