"""Point-to-point joint moves: the reference controller for "go there, then there".

Copy this file and change it. Every move is planned at reset (so an unreachable target is reported
before the run starts, naming the target); the moves are then played one per control period, each
starting when the robot is in position after the previous one (see ``MoveSequencer``).

Parameters (scenario ``controller.params``):
    targets: list of targets, each ``{joints_deg: [...]}`` or a world-frame TCP pose
        ``{xyz: [m, m, m], rpy_deg: [deg, deg, deg]}``.
    robot: robot name (default: the first robot).
    speed: share of the joint limits to use, in (0, 1]: velocity x speed, acceleration x speed²,
        jerk x speed³, i.e. the same move, time-scaled.
    dwell: pause at each target [s].
    cycles: how many times to go through the targets (returning to the first between cycles);
        each completed cycle is a ``cycle`` event with its measured cycle time.
    in_position_mrad: joint error [mrad] under which the robot counts as in position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robocell import Commands, ControllerContext, Observation
from robocell.control.motion import JointMove
from robocell.control.sequencer import Hold, MoveSequencer
from robocell.control.targets import joint_target, number, targets_list


class PointToPoint:
    """Joint-interpolated moves through a list of targets, at a share of the robot's limits."""

    def __init__(
        self,
        targets: list[Any],
        robot: str | None = None,
        speed: float = 1.0,
        dwell: float = 0.0,
        cycles: int = 1,
        in_position_mrad: float = 1.0,
    ) -> None:
        speed = number(speed, "speed", low=0, low_open=True, high=1)
        dwell = number(dwell, "dwell", low=0)
        cycles = int(number(cycles, "cycles", low=1, whole=True))
        in_position_mrad = number(in_position_mrad, "in_position_mrad", low=0, low_open=True)
        self.targets = targets_list(targets, "targets")
        self.robot_name = robot
        self.speed = float(speed)
        self.dwell = float(dwell)
        self.cycles = int(cycles)
        self.tol = in_position_mrad * 1e-3

    def reset(self, ctx: ControllerContext) -> None:
        info = ctx.robot(self.robot_name)
        self.robot = info.name
        lim = info.limits
        goals = []
        q = info.q0
        for i, tgt in enumerate(self.targets):
            q = joint_target(tgt, info, q, f"targets[{i}]")
            goals.append(q)

        def move(a: np.ndarray, b: np.ndarray) -> list[Any]:
            m = JointMove(a, b, lim.velocity, lim.acceleration, lim.jerk, self.speed)
            return [m, Hold(b, self.dwell)] if self.dwell > 0 else [m]

        approach = move(info.q0, goals[0])
        cycle: list[Any] = []
        if len(goals) > 1:
            for a, b in zip(goals, [*goals[1:], goals[0]]):
                cycle += move(a, b)
        self.seq = MoveSequencer(approach, cycle, self.cycles, self.tol)
        self.seq.start(ctx.t0)

    def step(self, obs: Observation) -> Commands:
        cmd, markers = self.seq.step(obs.t, obs.robots[self.robot].q)
        return Commands(joints={self.robot: cmd}, markers=markers, done=self.seq.done)
