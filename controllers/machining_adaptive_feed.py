"""Adaptive feed: slow down when the cutting force exceeds a limit.

The force limit protects the tool, the spindle and the part: the deflection of the arm is
proportional to the force, so capping the force caps the path error, at the cost of cycle
time. Each tick the feed override becomes ``force_limit / |F|`` (at most 1, at least
``min_override``), where ``F`` is the flange force/torque sensor's reading; the override rises
back at ``recovery_per_s`` so the feed does not oscillate, and falls at once when the force
rises (the planned path acceleration still bounds how fast the tool actually slows down).

Copy this file and change it. Parameters (scenario ``controller.params``):
    station: the machining station to run (default: the only one).
    approach_speed: share of the joint limits for the move to the program's first point.
    force_limit: cutting force above which the feed is reduced [N].
    min_override: the lowest feed override, in (0, 1].
    recovery_per_s: how fast the override may rise again [1/s].
"""

from __future__ import annotations

from robocell import Commands, ControllerContext, Observation
from robocell.control.machining import ProgramRunner
from robocell.control.targets import number


class AdaptiveFeed:
    """Follow the toolpath, scaling the feed down to keep the cutting force under a limit."""

    def __init__(
        self,
        force_limit: float = 60.0,
        station: str | None = None,
        approach_speed: float = 0.5,
        min_override: float = 0.1,
        recovery_per_s: float = 2.0,
    ) -> None:
        self.force_limit = number(force_limit, "force_limit", low=0, low_open=True)
        self.min_override = number(min_override, "min_override", low=0, low_open=True, high=1)
        self.recovery = number(recovery_per_s, "recovery_per_s", low=0, low_open=True)
        self.station = station
        self.approach_speed = approach_speed

    def reset(self, ctx: ControllerContext) -> None:
        self.job = ProgramRunner(ctx, self.station, self.approach_speed)
        self.override = 1.0

    def step(self, obs: Observation) -> Commands:
        job = self.job
        f = float((job.force(obs) ** 2).sum() ** 0.5)
        # the force scales roughly with the feed per tooth to the power (1 - mc) ~ 0.75-0.8;
        # scaling the override by the force ratio is a conservative first step
        want = self.override * self.force_limit / f if f > self.force_limit else 1.0
        want = min(1.0, max(self.min_override, want))
        if want < self.override:
            self.override = want
        else:
            self.override = min(want, self.override + self.recovery * job.dt)
        return job.commands(obs, override=self.override)
