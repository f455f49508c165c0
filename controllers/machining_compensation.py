"""Deflection compensation: predict the cutting force and shift the path by the deflection it
will cause.

The arm deflects by ``dx = C(q) F``: ``C = J_v K^-1 J_v^T`` is the tool tip's compliance from
the joint stiffness ``K`` and the Jacobian ``J_v`` in the current pose. This strategy commands
the programmed point minus that deflection, so that the deflected tool lands on the path.

Where the force comes from (``force``):

- ``predicted`` (default): the machining station cuts the nominal part before the run and
  applies the force model to it at the planned feed, so the force is known along the whole
  path before the tool gets there. Pure feed-forward: nothing the tool does during the run
  feeds back into the path, so the correction cannot ring.
- ``measured``: the flange force/torque sensor's latest reading, smoothed by a first-order
  filter of time constant ``filter_time``. It also sees what the model did not predict, but it
  closes a loop: a correction changes the cut, which changes the force, which changes the
  correction. Keep ``filter_time`` of the order of the time the tool takes to cross a few grid
  cells, or the loop rings where the force changes quickly (entries, corners).

Copy this file and change it. Parameters (scenario ``controller.params``):
    station: the machining station to run (default: the only one).
    approach_speed: share of the joint limits for the move to the program's first point.
    force: ``predicted`` or ``measured``.
    filter_time: time constant of the measured-force filter [s].
    gain: share of the predicted deflection to compensate (1 = all of it).
"""

from __future__ import annotations

import numpy as np

from robocell import Commands, ControllerContext, Observation
from robocell.control.machining import ProgramRunner
from robocell.control.targets import number
from robocell.errors import ScenarioError


class DeflectionCompensation:
    """Offset the toolpath by the stiffness model times the predicted cutting force."""

    def __init__(
        self,
        station: str | None = None,
        approach_speed: float = 0.5,
        force: str = "predicted",
        filter_time: float = 0.05,
        gain: float = 1.0,
    ) -> None:
        if force not in ("predicted", "measured"):
            raise ScenarioError(
                f"force must be 'predicted' or 'measured', got {force!r}", field="force"
            )
        self.station = station
        self.approach_speed = approach_speed
        self.mode = force
        self.filter_time = number(filter_time, "filter_time", low=0)
        self.gain = number(gain, "gain", low=0, high=2)

    def reset(self, ctx: ControllerContext) -> None:
        self.job = ProgramRunner(ctx, self.station, self.approach_speed)
        self.force = np.zeros(3)

    def step(self, obs: Observation) -> Commands:
        job = self.job
        if self.mode == "predicted":
            self.force = job.predicted_force()
        else:
            a = 1.0 if self.filter_time == 0 else min(1.0, job.dt / self.filter_time)
            self.force = self.force + a * (job.force(obs) - self.force)
        q = obs.robots[job.robot.name].q
        offset = -self.gain * (job.compliance(q) @ self.force)
        return job.commands(obs, offset=offset)
