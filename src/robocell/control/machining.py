"""Machining strategies' building blocks: replay a planned toolpath in the control loop
(:class:`ToolpathFollower`) and run a machining station's program (:class:`ProgramRunner`)."""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from robocell.machining.toolpath import FEED, ToolpathPlan, newton_ik


class ToolpathFollower:
    """Replays a :class:`ToolpathPlan` one control period at a time.

    ``step(dt, override, offset)`` advances the path position by the profile speed times the
    feed ``override`` (0..1; the speed changes no faster than the plan's acceleration), and
    returns the joint target for the tool tip at the new point shifted by ``offset`` [m]
    (world frame), with its joint velocity feed-forward.
    """

    def __init__(self, plan: ToolpathPlan, robot: Any) -> None:
        self.plan = plan
        self.kin = robot.kinematics
        inv = robot.base.inv()
        self._Rbw = inv.R
        self._tb = inv.t
        self._Rb = inv.R @ plan.R
        self.s = 0.0
        self.v = 0.0
        self.i = 0  # segment index: s in [plan.s[i], plan.s[i+1]]
        self._dwell_left = float(plan.dwell[0])
        self._dwell_done = 0
        self.q = plan.q[0].copy()
        self._s_list = plan.s.tolist()
        self._s_end = float(plan.s[-1])
        #: indices of the points where the tool comes to rest (corners at rest, dwells, end)
        self._stops = np.nonzero((plan.speed <= 1e-12) | (plan.dwell > 0))[0]
        self._stops = self._stops[self._stops > 0]
        self._stop_s = plan.s[self._stops].tolist()

    @property
    def done(self) -> bool:
        return self.s >= self._s_end and self._dwell_left <= 0

    @property
    def line(self) -> int:
        """G-code line being executed."""
        return int(self.plan.line[min(self.i + 1, len(self.plan.line) - 1)])

    @property
    def cutting(self) -> bool:
        return bool(self.plan.kind[min(self.i + 1, len(self.plan.kind) - 1)] == FEED)

    @property
    def spindle_rpm(self) -> float:
        return float(self.plan.spindle_rpm[min(self.i + 1, len(self.plan.spindle_rpm) - 1)])

    def target_point(self) -> np.ndarray:
        """Programmed tool-tip position at the current path position (world) [m]."""
        p = self.plan
        i = self.i
        if i >= len(p.s) - 1:
            return p.points[-1].copy()
        L = p.s[i + 1] - p.s[i]
        f = 0.0 if L <= 0 else (self.s - p.s[i]) / L
        return p.points[i] + f * (p.points[i + 1] - p.points[i])

    def _profile_speed(self, s: float) -> float:
        """Planned speed at path position ``s``: within a segment, accelerate from the speed at
        its start, cruise at the segment's limit, decelerate to the speed at its end (the
        model the plan's times are computed with)."""
        p = self.plan
        i = min(max(bisect.bisect_right(self._s_list, s) - 1, 0), len(p.s) - 2)
        x = max(s - p.s[i], 0.0)
        L = p.s[i + 1] - p.s[i]
        a = p.max_acceleration
        v0, v1 = float(p.speed[i]), float(p.speed[i + 1])
        seg = p.segment_speed
        cap = float(seg[i + 1]) if seg is not None else max(v0, v1)
        return min(
            max(cap, v0, v1),
            math.sqrt(v0 * v0 + 2 * a * x),
            math.sqrt(v1 * v1 + 2 * a * max(L - x, 0.0)),
        )

    def step(
        self, dt: float, override: float = 1.0, offset: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance by ``dt`` [s] at ``override`` (0..1) of the planned speed; returns the joint
        target [rad] and its velocity feed-forward [rad/s]."""
        p = self.plan
        a = p.max_acceleration
        if self._dwell_left > 0:
            self._dwell_left -= dt
            v_new = 0.0
        elif self.s < self._s_end:
            ov = min(max(override, 0.0), 1.0)
            # the profile speed half a step ahead: the midpoint rule, so the speed along the
            # path follows the planned acceleration without lagging it
            s_mid = min(self.s + 0.5 * (self.v + a * dt) * dt, self._s_end)
            v_des = ov * self._profile_speed(s_mid)
            if v_des < a * dt:
                # the profile falls to zero at a stop point: creep into it at one tick's worth
                # of acceleration, but never faster than the segment's own (overridden) feed
                seg = self.plan.segment_speed
                cap = ov * float(seg[min(self.i + 1, len(seg) - 1)]) if seg is not None else a * dt
                v_des = max(v_des, min(a * dt, cap))
            v_new = min(max(v_des, self.v - a * dt), self.v + a * dt)
            s_new = self.s + 0.5 * (self.v + v_new) * dt
            k = bisect.bisect_right(self._stop_s, self.s + 1e-12)
            stop = self._stops[min(k, len(self._stops) - 1)]
            if s_new >= p.s[stop]:
                s_new = float(p.s[stop])
                v_new = 0.0
                if p.dwell[stop] > 0 and stop != self._dwell_done:
                    self._dwell_left = float(p.dwell[stop])
                    self._dwell_done = stop
            self.s = s_new
        else:
            v_new = 0.0
        self.v = v_new
        self.i = min(max(bisect.bisect_right(self._s_list, self.s) - 1, 0), len(p.s) - 2)
        x = self.target_point()
        if offset is not None:
            x = x + offset
        # joint target: interpolate the planned joints, then correct with Newton steps
        i = self.i
        L = p.s[i + 1] - p.s[i]
        f = 0.0 if L <= 0 else (self.s - p.s[i]) / L
        q_guess = p.q[i] + f * (p.q[i + 1] - p.q[i])
        xb = self._Rbw @ x + self._tb
        q, _ = newton_ik(self.kin, q_guess, xb, self._Rb, iters=2, tol=1e-8)
        dq = (q - self.q) / dt
        self.q = q
        return q, dq


class ProgramRunner:
    """The common part of machining controllers: approach the program's first point with a
    joint move, then follow the planned toolpath, commanding the spindle speed of each move
    through the station's ``<station>.spindle_rpm`` signal.

    Strategies change *how* the path is followed with the two arguments of :meth:`commands`:
    a feed ``override`` (0..1) and a Cartesian ``offset`` of the tool tip [m] (world frame).

    Args:
        ctx: the controller context (the machining station's ``info`` is in ``ctx.devices``).
        station: name of the machining station (default: the only one in the cell).
        approach_speed: share of the joint limits for the approach move, in (0, 1].
    """

    def __init__(self, ctx: Any, station: str | None = None, approach_speed: float = 0.5) -> None:
        from robocell.control.motion import JointMove
        from robocell.control.targets import number
        from robocell.errors import ScenarioError

        jobs = {n: d for n, d in ctx.devices.items() if d.get("type") == "machining"}
        if station is None:
            if len(jobs) != 1:
                raise ScenarioError(
                    f"the cell has {len(jobs)} machining stations; name one with 'station'",
                    field="station",
                )
            station = next(iter(jobs))
        if station not in jobs:
            raise ScenarioError(
                f"no machining station '{station}'; stations: {', '.join(jobs) or 'none'}",
                field="station",
            )
        approach_speed = number(approach_speed, "approach_speed", low=0, low_open=True, high=1)
        self.station = station
        self.info = jobs[station]
        self.robot = ctx.robot(self.info["robot"])
        self.plan: ToolpathPlan = self.info["plan"]
        self.follower = ToolpathFollower(self.plan, self.robot)
        lim = self.robot.limits
        self.approach = JointMove(
            self.robot.q0, self.plan.q[0], lim.velocity, lim.acceleration, lim.jerk, approach_speed
        )
        self.t0 = ctx.t0
        self.dt = self.robot.control_period
        self.signals = self.info["signals"]
        self.started_at: float | None = None

    def force(self, obs: Any) -> np.ndarray:
        """The force/torque sensor reading: force of the material on the tool (world) [N]."""
        sig = obs.signals
        s = self.signals
        return np.array([sig.get(s["fx"], 0.0), sig.get(s["fy"], 0.0), sig.get(s["fz"], 0.0)])

    def predicted_force(self) -> np.ndarray:
        """The station's force prediction (world) [N] at the tool's current point on the path:
        the cutting force the nominal cut makes there at the planned feed."""
        F = self.info.get("predicted_force")
        f = self.follower
        if F is None or self.started_at is None:
            return np.zeros(3)
        p = self.plan
        i = f.i
        L = p.s[i + 1] - p.s[i]
        a = 0.0 if L <= 0 else (f.s - p.s[i]) / L
        return np.asarray(F[i] + a * (F[i + 1] - F[i]), float)

    def compliance(self, q: np.ndarray) -> np.ndarray:
        """Translational compliance of the tool tip in the world frame (3, 3) [m/N] at joints
        ``q``: ``R J_v K^-1 J_v^T R^T`` with ``K`` the robot's joint stiffness."""
        k = self.info.get("joint_stiffness")
        if k is None:
            return np.zeros((3, 3))
        Jv = np.asarray(self.robot.kinematics.jacob0(q), float)[:3]
        R = self.robot.base.R
        return R @ (Jv / np.asarray(k, float)) @ Jv.T @ R.T

    @property
    def done(self) -> bool:
        return self.follower.done

    def commands(self, obs: Any, override: float = 1.0, offset: np.ndarray | None = None) -> Any:
        from robocell.control.controller import Commands
        from robocell.robot.interface import JointCommand

        name = self.robot.name
        rel = obs.t - self.t0
        f = self.follower
        if rel < self.approach.duration:
            q_a, dq_a, _ = self.approach.sample(rel)
            rpm = float(self.plan.spindle_rpm[min(1, len(self.plan.spindle_rpm) - 1)])
            return Commands(
                joints={name: JointCommand.position(q_a, dq_a)},
                signals={self.signals["spindle_rpm"]: rpm},
            )
        if self.started_at is None:
            self.started_at = obs.t
        q, dq = f.step(self.dt, override, offset)
        return Commands(
            joints={name: JointCommand.position(q, dq)},
            signals={
                self.signals["spindle_rpm"]: 0.0 if f.done else f.spindle_rpm,
                f"{self.station}.line": float(f.line),
                f"{self.station}.override": float(override),
            },
            done=f.done,
        )
