"""The 25 / 305 / 25 mm test cycle ("gate" cycle) used to compare robots' cycle times.

From a start pose the TCP goes up 25 mm, across 305 mm, down 25 mm, and back the same way (up,
across, down). ``motion: joint`` moves joint-interpolated between the four corners at a share of
the robot's joint limits (how catalogues quote cycle times); ``motion: linear`` moves in straight
lines at a TCP speed. The robot comes to rest, in position, at every corner.

Parameters (scenario ``controller.params``):
    start: world-frame TCP pose of the cycle's first corner ``{xyz: [...], rpy_deg: [...]}``.
    up: height of the vertical legs [m] (default 0.025).
    across: length of the horizontal leg [m] (default 0.305).
    direction: world direction of the horizontal leg (default [0, 1, 0]); made horizontal and
        unit length.
    motion: ``joint`` or ``linear``.
    speed: share of the joint limits (joint motion) in (0, 1].
    tcp_speed, tcp_accel, tcp_jerk: TCP limits for linear motion [m/s, m/s², m/s³].
    cycles: number of cycles; each one is a ``cycle`` event with its measured time.
    robot: robot name (default: the first robot).
    in_position_mrad: in-position tolerance [mrad] at each corner.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from spatialmath import SE3

from robocell import Commands, ControllerContext, Observation
from robocell.control.motion import JointMove, cartesian_line
from robocell.control.sequencer import MoveSequencer
from robocell.control.targets import number, pose_from_params
from robocell.errors import KinematicsError, ScenarioError

CORNERS = ("start", "start+up", "start+up+across", "start+across")


class CycleTest:
    """Up / across / down and back, repeated, with measured cycle times."""

    def __init__(
        self,
        start: dict[str, Any],
        up: float = 0.025,
        across: float = 0.305,
        direction: tuple[float, float, float] = (0.0, 1.0, 0.0),
        motion: str = "joint",
        speed: float = 1.0,
        tcp_speed: float = 1.0,
        tcp_accel: float = 10.0,
        tcp_jerk: float = 200.0,
        cycles: int = 5,
        robot: str | None = None,
        in_position_mrad: float = 1.0,
    ) -> None:
        if motion not in ("joint", "linear"):
            raise ScenarioError(
                f"motion must be 'joint' or 'linear', got {motion!r}", field="motion"
            )
        speed = number(speed, "speed", low=0, low_open=True, high=1)
        up, across = number(up, "up", low=0, low_open=True), number(across, "across", low=0)
        tcp_speed = number(tcp_speed, "tcp_speed", low=0, low_open=True)
        tcp_accel = number(tcp_accel, "tcp_accel", low=0, low_open=True)
        tcp_jerk = number(tcp_jerk, "tcp_jerk", low=0, low_open=True)
        in_position_mrad = number(in_position_mrad, "in_position_mrad", low=0, low_open=True)
        cycles = int(number(cycles, "cycles", low=1, whole=True))
        try:
            d = np.array(direction, dtype=float)
        except (TypeError, ValueError):
            d = np.zeros(0)
        if d.shape != (3,) or not np.all(np.isfinite(d)):
            raise ScenarioError(
                f"direction must be three numbers, got {direction!r}", field="direction"
            )
        d[2] = 0.0
        if np.linalg.norm(d) < 1e-9:
            raise ScenarioError("direction must have a horizontal component", field="direction")
        self.start_pose = pose_from_params(start, "start")
        self.up, self.across = float(up), float(across)
        self.direction = d / np.linalg.norm(d)
        self.motion = motion
        self.speed = float(speed)
        self.tcp = (float(tcp_speed), float(tcp_accel), float(tcp_jerk))
        self.cycles = int(cycles)
        self.robot_name = robot
        self.tol = in_position_mrad * 1e-3

    def corners(self) -> list[SE3]:
        """World poses of the four corners: start, up, up+across, across."""
        z = np.array([0.0, 0.0, self.up])
        a = self.direction * self.across
        return [SE3(off) * self.start_pose for off in (np.zeros(3), z, z + a, a)]

    def reset(self, ctx: ControllerContext) -> None:
        info = ctx.robot(self.robot_name)
        self.robot = info.name
        lim = info.limits
        kin = info.kinematics
        poses = [info.to_base(T) for T in self.corners()]
        qs = []
        q = info.q0
        for name, T in zip(CORNERS, poses):
            q = kin.ik(T, q, search=True)
            if q is None:
                x, y, z = np.round(T.t * 1000, 1)
                raise KinematicsError(
                    f"cycle corner '{name}' at ({x}, {y}, {z}) mm (robot base frame) is not "
                    "reachable",
                    field="start",
                )
            qs.append(q)
        order = [0, 1, 2, 3, 2, 1, 0]  # up, across, down, up, back across, down
        approach = [JointMove(info.q0, qs[0], lim.velocity, lim.acceleration, lim.jerk, self.speed)]
        cycle: list[Any] = []
        q_now = qs[0]
        for j in order[1:]:
            if self.motion == "joint":
                seg: Any = JointMove(
                    q_now, qs[j], lim.velocity, lim.acceleration, lim.jerk, self.speed
                )
            else:
                v, a, jk = self.tcp
                seg = cartesian_line(
                    kin,
                    q_now,
                    poses[j],
                    v_max=v,
                    a_max=a,
                    j_max=jk,
                    dt=info.control_period,
                    field="start",
                    joint_v_max=lim.velocity * self.speed,
                )
            cycle.append(seg)
            q_now = np.asarray(seg.sample(seg.duration)[0], float)
        self.seq = MoveSequencer(approach, cycle, self.cycles, self.tol)
        self.seq.start(ctx.t0)

    def step(self, obs: Observation) -> Commands:
        cmd, markers = self.seq.step(obs.t, obs.robots[self.robot].q)
        return Commands(joints={self.robot: cmd}, markers=markers, done=self.seq.done)
