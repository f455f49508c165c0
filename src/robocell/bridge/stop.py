"""A controlled stop: every joint brakes to rest within its deceleration limit, then holds."""

from __future__ import annotations

import numpy as np

from robocell.robot.interface import JointCommand
from robocell.robot.library import JointLimits

#: share of the joints' acceleration limits a controlled stop brakes with (a margin for the
#: servo's tracking lag, so the measured deceleration stays within the limit)
STOP_DECEL_SHARE = 0.8


class ControlledStop:
    """Position setpoints that bring each joint from ``dq`` to rest at ``share`` of its
    acceleration limit, starting at ``q``; once at rest the last position is held.

    Each joint brakes on its own (the shortest stop each joint can make), so the arm stops as
    fast as its limits allow; a stop does not keep the path, as a category-1 stop on a real
    controller does not.
    """

    def __init__(
        self,
        q: np.ndarray,
        dq: np.ndarray,
        limits: JointLimits,
        period: float,
        share: float = STOP_DECEL_SHARE,
    ) -> None:
        self.period = float(period)
        self.decel = np.asarray(limits.acceleration, float) * share
        self.q = np.array(q, float)
        self.v = np.clip(np.array(dq, float), -limits.velocity, limits.velocity)
        self.lower = np.asarray(limits.lower, float)
        self.upper = np.asarray(limits.upper, float)
        #: time the stop needs [s] (the slowest joint's braking time)
        self.duration = float(np.max(np.abs(self.v) / self.decel)) if len(self.v) else 0.0

    @property
    def at_rest(self) -> bool:
        return not np.any(self.v)

    def next(self) -> JointCommand:
        """The setpoint for the next control period: the position at its start and the speed
        the drives interpolate along during it (as for any position command with
        feed-forward), one deceleration step slower than the last."""
        dv = self.decel * self.period
        self.v = np.where(np.abs(self.v) <= dv, 0.0, self.v - np.sign(self.v) * dv)
        cmd = JointCommand("position", self.q.copy(), self.v.copy())
        self.q = np.clip(self.q + self.v * self.period, self.lower, self.upper)
        return cmd
