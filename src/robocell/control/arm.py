"""A motion queue for pick-and-place strategies: world-frame targets in, joint commands out.

:class:`Arm` wraps one robot's :class:`~robocell.control.controller.RobotInfo`. A strategy (a
state machine in ``controllers/``) queues moves — joint moves to a pose, straight-down
approaches, belt-tracking pick moves — and asks, every control tick, for the command and whether
the queue has run out::

    arm = Arm(ctx.robot(), speed=0.8)
    arm.move_to(arm.tool_down(pick_xyz + [0, 0, 0.1]))
    arm.move_to(arm.tool_down(pick_xyz), speed=0.3)
    ...
    cmd = arm.command(obs.t, obs.robots[arm.name].q)
    if arm.idle(obs.t, q):
        ...  # next state

Moves play back to back at their commanded times (no waiting for in-position between them, so
a tracking move keeps its appointment with the belt); :meth:`idle` is True when the last move
has been commanded to its end and the robot is within the in-position tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from spatialmath import SE3

from robocell.control.controller import RobotInfo
from robocell.control.motion import JointMove, SampledTrajectory
from robocell.control.sequencer import Hold, Segment
from robocell.errors import KinematicsError
from robocell.robot.interface import JointCommand


def smoothstep(u: np.ndarray) -> np.ndarray:
    """The quintic 0 -> 1 ramp with zero slope and curvature at both ends (u clipped to
    [0, 1]): its speed peaks at 1.875 / duration, its acceleration at 5.77 / duration²."""
    u = np.clip(u, 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u * u)


def smooth_ramp_distance(u: np.ndarray) -> np.ndarray:
    """Integral of :func:`smoothstep` from 0 to ``u`` (a speed ramp's travel, in units of
    duration x final speed); equals 0.5 at u = 1."""
    u = np.clip(u, 0.0, 1.0)
    return u**4 * (2.5 - 3 * u + u * u)


class Arm:
    """One robot's motion queue for pick-and-place.

    Args:
        info: the robot, from ``ctx.robot(name)``.
        speed: share of the joint velocity limits for joint moves, in (0, 1]; acceleration and
            jerk scale with its square and cube (a pure time scaling of the move).
        in_position_mrad: largest joint error [mrad] at which the robot counts as arrived.
        tool_yaw: extra rotation of the tool about its axis [rad] when it points down.
    """

    def __init__(
        self,
        info: RobotInfo,
        speed: float = 1.0,
        in_position_mrad: float = 2.0,
        tool_yaw: float = 0.0,
    ) -> None:
        if not (0 < speed <= 1):
            raise ValueError(f"speed must be in (0, 1], got {speed!r}")
        self.info = info
        self.name = info.name
        self.speed = float(speed)
        self.tol = in_position_mrad * 1e-3
        self.tool_yaw = float(tool_yaw)
        self.lim = info.limits
        self.kin = info.kinematics
        self._base_inv = info.base.inv()
        #: where the queue ends [rad]
        self.q_end = np.asarray(info.q0, float).copy()
        self._queue: list[tuple[float, Segment]] = []  # (start time, segment)
        self._t_end = -math.inf
        self._last: Segment = Hold(self.q_end, 0.0)
        self._last_t0 = 0.0
        #: how long :meth:`idle` waits for in-position after a move [s]
        self.settle_timeout = 2.0
        #: moves after which the robot never got in position
        self.late = 0
        self._late_for = -math.inf

    # -- poses -----------------------------------------------------------------------------------
    def tool_down(self, xyz: Sequence[float], yaw: float = 0.0) -> SE3:
        """World pose with the tool axis pointing straight down at ``xyz`` [m], turned by
        ``yaw`` [rad] (plus ``tool_yaw``) about the vertical."""
        x, y, z = (float(v) for v in xyz)
        return SE3(x, y, z) * SE3.Rz(yaw + self.tool_yaw) * SE3.Rx(math.pi)

    def ik(
        self, pose_world: SE3, near: np.ndarray | None = None, what: str = "target"
    ) -> np.ndarray:
        """Joints [rad] for a world TCP pose, the solution nearest ``near`` (default: the end of
        the queue); raises :class:`KinematicsError` naming ``what`` and the point when there is
        none."""
        seed = self.q_end if near is None else near
        q = self.kin.ik(self._base_inv * pose_world, seed, search=True)
        if q is None:
            x, y, z = np.round(pose_world.t * 1000, 1)
            raise KinematicsError(
                f"{self.name}: {what} at ({x}, {y}, {z}) mm (world) is out of reach", field=what
            )
        return q

    def tcp_world(self, q: np.ndarray) -> SE3:
        """TCP pose in the world at joints ``q``."""
        return self.info.base * self.kin.fkine(q)

    # -- queueing --------------------------------------------------------------------------------
    def end_time(self, now: float) -> float:
        """When the queue's last move ends [s] (``now`` if it is empty)."""
        return max(self._t_end, now)

    def _push(self, seg: Segment, now: float, at: float | None = None) -> float:
        t0 = self.end_time(now)
        if at is not None and at > t0 + 1e-9:
            self._queue.append((t0, Hold(self.q_end, at - t0)))
            t0 = at
        self._queue.append((t0, seg))
        self._t_end = t0 + seg.duration
        self.q_end = np.asarray(seg.sample(seg.duration)[0], float).copy()
        return self._t_end

    def move_to(
        self,
        target: SE3 | np.ndarray,
        now: float,
        speed: float | None = None,
        what: str = "target",
    ) -> float:
        """Queue a synchronised joint move (S-curve, rest to rest) to a world pose or a joint
        vector; returns when it ends [s]."""
        q = self.ik(target, what=what) if isinstance(target, SE3) else np.asarray(target, float)
        k = self.speed if speed is None else speed
        seg = JointMove(self.q_end, q, self.lim.velocity, self.lim.acceleration, self.lim.jerk, k)
        return self._push(seg, now)

    def move_time(self, target: SE3 | np.ndarray, speed: float | None = None) -> float:
        """How long :meth:`move_to` would take from the end of the queue [s]."""
        q = self.ik(target) if isinstance(target, SE3) else np.asarray(target, float)
        k = self.speed if speed is None else speed
        return JointMove(
            self.q_end, q, self.lim.velocity, self.lim.acceleration, self.lim.jerk, k
        ).duration

    def wait(self, duration: float, now: float) -> float:
        """Queue standing still for ``duration`` [s]."""
        return self._push(Hold(self.q_end, duration), now)

    def follow(
        self,
        path: Callable[[np.ndarray], np.ndarray],
        duration: float,
        now: float,
        at: float | None = None,
        yaw: float = 0.0,
        sample: float = 0.01,
        what: str = "path",
    ) -> float:
        """Queue a tool-down move along ``path(t) -> (k, 3)`` world positions [m] for
        ``t`` in [0, duration] (relative time), starting at absolute time ``at`` (or when the
        queue ends). IK every ``sample`` [s] seeded from the previous point; velocities from
        the path's own finite differences. Raises KinematicsError when a point is out of reach
        or a joint would exceed its speed limit."""
        n = max(2, int(math.ceil(duration / sample)) + 1)
        ts = np.linspace(0.0, duration, n)
        pts = np.asarray(path(ts), float)
        qs = np.empty((n, self.info.dof))
        seed = self.q_end
        for i, p in enumerate(pts):
            T = self._base_inv * self.tool_down(p, yaw)
            q = self.kin.ik(T, seed, search=i == 0)
            if q is None:
                x, y, z = np.round(p * 1000, 1)
                raise KinematicsError(
                    f"{self.name}: {what} point ({x}, {y}, {z}) mm (world) is out of reach",
                    field=what,
                )
            qs[i] = q
            seed = q
        traj = SampledTrajectory(ts, qs)
        over = np.max(np.abs(traj.dq) / self.lim.velocity)
        if over > 1.0:
            raise KinematicsError(
                f"{self.name}: {what} needs {over:.0%} of a joint's speed limit", field=what
            )
        if np.max(np.abs(qs[0] - self.q_end)) > 1e-3:
            # join the path's start first (it is where the previous move should have ended)
            self.move_to(qs[0], now)
        return self._push(traj, now, at)

    def clear(self, now: float, q: np.ndarray) -> None:
        """Drop every queued move and hold ``q`` (an abort)."""
        self._queue.clear()
        self.q_end = np.asarray(q, float).copy()
        self._last = Hold(self.q_end, 0.0)
        self._last_t0 = now
        self._t_end = now

    # -- playing ---------------------------------------------------------------------------------
    def command(self, t: float) -> JointCommand:
        """The position command (with velocity feed-forward) for time ``t`` [s]."""
        q = self._queue
        while len(q) > 1 and t >= q[1][0]:
            q.pop(0)  # the queue is contiguous: the next move has started
        if q and t >= q[0][0]:
            self._last_t0, self._last = q[0]
        seg, t0 = self._last, self._last_t0
        qd, dqd, _ = seg.sample(min(max(t - t0, 0.0), seg.duration))
        return JointCommand.position(qd, dqd)

    def moving(self, t: float) -> bool:
        """Moves are still being commanded at ``t``."""
        return t < self._t_end - 1e-9

    def idle(self, t: float, q_measured: np.ndarray) -> bool:
        """The queue has played out and the robot is in position (or has failed to get there
        for ``settle_timeout`` [s]: blocked by a collision, say; counted in ``late``)."""
        if self.moving(t):
            return False
        if float(np.max(np.abs(q_measured - self.q_end))) <= self.tol:
            return True
        if t > self._t_end + self.settle_timeout:
            if self._late_for != self._t_end:
                self._late_for = self._t_end  # count each move once
                self.late += 1
            return True
        return False


__all__ = ["Arm", "smooth_ramp_distance", "smoothstep"]
