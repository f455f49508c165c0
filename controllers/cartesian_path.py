"""Cartesian path following with a tracking servo: the reference for "draw this line / arc".

Copy this file and change it. The path is planned at reset: a joint move to ``start``, then every
segment (straight line or circular arc) is turned into a joint trajectory by inverse kinematics,
with reachability and singularity checks that name the failing segment. While running, the servo
adds a Cartesian correction to the planned joints: it compares the planned TCP pose with the pose
the measured joints give and feeds the error back through the Jacobian's pseudo-inverse, so the
TCP stays on the path even when the joint servos lag.

Parameters (scenario ``controller.params``):
    start: world pose where the path begins ``{xyz: [...], rpy_deg: [...]}``.
    path: list of segments, each ``{line: POSE}`` or ``{arc: {via: [x, y, z], to: POSE}}``
        (world frame).
    tcp_speed, tcp_accel, tcp_jerk: TCP limits along the path [m/s, m/s², m/s³].
    servo_gain: share of the Cartesian error corrected per control period (0 = plain
        joint-trajectory playback).
    cycles: repetitions (the path must end at ``start`` to repeat).
    robot: robot name (default: the first robot).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from spatialmath import SE3

from robocell import Commands, ControllerContext, JointCommand, Observation
from robocell.control.motion import JointMove, cartesian_arc, cartesian_line
from robocell.control.sequencer import MoveSequencer
from robocell.control.targets import joint_target, number, pose_from_params
from robocell.errors import ScenarioError


def _pose_error(T_ref: np.ndarray, T: np.ndarray) -> np.ndarray:
    """6-vector [dp; dtheta] that moves pose T towards T_ref (base frame, small angles)."""
    dp = T_ref[:3, 3] - T[:3, 3]
    R = T_ref[:3, :3] @ T[:3, :3].T
    dth = 0.5 * np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return np.concatenate([dp, dth])


class CartesianPath:
    """Lines and arcs at a TCP speed, tracked by a resolved-rate Cartesian servo."""

    def __init__(
        self,
        start: dict[str, Any],
        path: list[dict[str, Any]],
        tcp_speed: float = 0.25,
        tcp_accel: float = 2.0,
        tcp_jerk: float = 50.0,
        servo_gain: float = 0.2,
        cycles: int = 1,
        robot: str | None = None,
    ) -> None:
        tcp_speed = number(tcp_speed, "tcp_speed", low=0, low_open=True)
        tcp_accel = number(tcp_accel, "tcp_accel", low=0, low_open=True)
        tcp_jerk = number(tcp_jerk, "tcp_jerk", low=0, low_open=True)
        servo_gain = number(servo_gain, "servo_gain", low=0, high=1)
        cycles = int(number(cycles, "cycles", low=1, whole=True))
        if not isinstance(path, list) or not path:
            raise ScenarioError("path needs at least one segment", field="path")
        self.start = start
        self.segments: list[tuple[str, Any, SE3]] = []
        for i, seg in enumerate(path):
            fld = f"path[{i}]"
            if not isinstance(seg, dict) or len(seg) != 1 or next(iter(seg)) not in ("line", "arc"):
                raise ScenarioError(
                    "a segment is {line: POSE} or {arc: {via: XYZ, to: POSE}}", field=fld
                )
            kind, spec = next(iter(seg.items()))
            if kind == "line":
                self.segments.append(("line", None, pose_from_params(spec, f"{fld}.line")))
            else:
                if not isinstance(spec, dict) or set(spec) != {"via", "to"}:
                    raise ScenarioError(
                        "an arc needs 'via' [x, y, z] and 'to' (a pose)", field=f"{fld}.arc"
                    )
                try:
                    via = np.asarray(spec["via"], float)
                except (TypeError, ValueError):
                    via = np.zeros(0)
                if via.shape != (3,) or not np.all(np.isfinite(via)):
                    raise ScenarioError("via must be three numbers [m]", field=f"{fld}.arc.via")
                self.segments.append(("arc", via, pose_from_params(spec["to"], f"{fld}.arc.to")))
        self.limits = (float(tcp_speed), float(tcp_accel), float(tcp_jerk))
        self.gain = float(servo_gain)
        self.cycles = int(cycles)
        self.robot_name = robot

    def reset(self, ctx: ControllerContext) -> None:
        info = ctx.robot(self.robot_name)
        self.robot = info.name
        self.kin = info.kinematics
        lim = info.limits
        q_start = joint_target(self.start, info, info.q0, "start")
        approach = [JointMove(info.q0, q_start, lim.velocity, lim.acceleration, lim.jerk, 0.5)]
        v, a, j = self.limits
        segs: list[Any] = []
        q = q_start
        for i, (kind, via, T_world) in enumerate(self.segments):
            T = info.to_base(T_world)
            common = dict(
                v_max=v, a_max=a, j_max=j, dt=info.control_period, joint_v_max=lim.velocity
            )
            if kind == "line":
                seg = cartesian_line(self.kin, q, T, field=f"path[{i}]", **common)
            else:
                via_base = info.to_base(SE3(*via)).t
                seg = cartesian_arc(self.kin, q, via_base, T, field=f"path[{i}]", **common)
            segs.append(seg)
            q = np.asarray(seg.sample(seg.duration)[0], float)
        if self.cycles > 1 and np.max(np.abs(q - q_start)) > 1e-4:
            raise ScenarioError("to repeat, the path must end where it starts", field="cycles")
        self.slowdown = max(getattr(s, "slowdown", 1.0) for s in segs)
        self.seq = MoveSequencer(approach, segs, self.cycles, in_position_tol=2e-3)
        self.seq.start(ctx.t0)

    def step(self, obs: Observation) -> Commands:
        q_meas = obs.robots[self.robot].q
        cmd, markers = self.seq.step(obs.t, q_meas)
        if self.gain > 0 and not self.seq.done and self.seq.index >= self.seq.n_approach:
            # resolved-rate correction: push the measured TCP towards the planned one
            T_ref = self.kin.fkine(cmd.values).A
            T = self.kin.fkine(q_meas).A
            err = _pose_error(T_ref, T)
            dq = np.linalg.pinv(self.kin.jacob0(q_meas), rcond=1e-3) @ err
            cmd = JointCommand.position(cmd.values + self.gain * dq, cmd.velocity)
        return Commands(joints={self.robot: cmd}, markers=markers, done=self.seq.done)
