"""Stiff position-controlled machining: follow the program as planned, and nothing else.

This is the baseline the other machining strategies are measured against. The robot's servos
hold the commanded joint angles, but its gearing is compliant: the cutting force pushes the
tool off the path by ``C F`` (``C`` the tip compliance of the arm in its current pose), and the
part comes out as the robot's stiffness allows.

Copy this file and change it. Parameters (scenario ``controller.params``):
    station: the machining station to run (default: the only one).
    approach_speed: share of the joint limits for the move to the program's first point.
"""

from __future__ import annotations

from robocell import Commands, ControllerContext, Observation
from robocell.control.machining import ProgramRunner


class StiffBaseline:
    """Follow the toolpath at the programmed feed with plain position control."""

    def __init__(self, station: str | None = None, approach_speed: float = 0.5) -> None:
        self.station = station
        self.approach_speed = approach_speed

    def reset(self, ctx: ControllerContext) -> None:
        self.job = ProgramRunner(ctx, self.station, self.approach_speed)

    def step(self, obs: Observation) -> Commands:
        return self.job.commands(obs)
