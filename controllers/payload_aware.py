"""Payload-aware conveyor tracking: as fast as the grip allows, part by part.

The same on-the-fly picking as :mod:`conveyor_tracking`, with one change in how fast it moves.
Empty moves run at full speed (nothing can fall off). Before each carry move the strategy
predicts the load on the vacuum cup along the planned move, for the part it holds, and picks the
highest speed share at which that load stays within the cup's holding force divided by a safety
factor. A light box then travels at full speed and a heavy cylinder as fast as it safely can:
the time-optimal move under the grip limit.

The prediction uses the kinematics only (no physics): the planned joint move is sampled, the
part's centre of mass (half the part's height below the cup face) is differentiated twice, and
the force the cup must exert, ``F = m (a - g)``, is split into pull (along the cup axis) and
shear; the load is rated as the gripper rates it::

    F_eq = pull + shear / mu + 8 |M_bend| / D,   M_bend = (h / 2) x shear

(``mu`` cup friction, ``D`` cup diameter, ``h`` part height). The first speed in ``speeds``
whose predicted peak ``F_eq`` is below ``hold_force / safety`` is used.

Parameters: those of :class:`ConveyorTracking` (``speed`` is the free-move speed, default 1.0),
plus
    safety: safety factor on the cup's holding force (default 1.5).
    speeds: candidate speed shares, tried from the first (default [1.0, 0.9, ..., 0.3]).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from robocell import ControllerContext
from robocell.control.motion import JointMove
from robocell.control.targets import number
from robocell.errors import ScenarioError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conveyor_tracking import ConveyorTracking  # noqa: E402

#: gravity [m/s²]
G = np.array([0.0, 0.0, -9.81])


class PayloadAwareTracking(ConveyorTracking):
    """Conveyor tracking whose carry speed is chosen per part from the predicted cup load."""

    def __init__(
        self,
        window: tuple[float, float],
        speed: float = 1.0,
        safety: float = 1.5,
        speeds: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3),
        **kw: Any,
    ) -> None:
        super().__init__(window, speed=speed, **kw)
        self.safety = number(safety, "safety", low=1.0)
        try:
            self.speeds = sorted((float(k) for k in speeds), reverse=True)
        except (TypeError, ValueError):
            raise ScenarioError(f"speeds must be numbers, got {speeds!r}", field="speeds") from None
        if not self.speeds or not all(0 < k <= 1 for k in self.speeds):
            raise ScenarioError("speeds must be shares in (0, 1]", field="speeds")
        #: part type -> speed share chosen for its last carry (for reports)
        self.chosen: dict[str, float] = {}

    def reset(self, ctx: ControllerContext) -> None:
        super().reset(ctx)
        g = self.cell.gripper
        if g.get("type") != "vacuum":
            raise ScenarioError("payload-aware tracking models a vacuum gripper", field="robot")
        self.hold_n = float(g["hold_force_n"])
        self.mu = float(g["cup_friction"])
        self.pad = float(g["cup_diameter"]) * math.sqrt(float(g.get("cups", 1)))

    def predicted_load(self, part_type: str, move: JointMove) -> float:
        """Peak equivalent cup load [N] of carrying a part of this type along ``move``."""
        n = max(20, int(move.duration / 0.01))
        ts = np.linspace(0.0, move.duration, n)
        q = move.sample(ts)[0]
        info = self.cell.robot
        T = info.base.A @ info.kinematics.flange_batch(q) @ info.tcp.A
        z = T[:, :3, 2]  # the cup axis, pointing out of the cup into the part
        h = self.cell.height(part_type)
        com = T[:, :3, 3] + z * (h / 2)
        dt = ts[1] - ts[0]
        acc = np.gradient(np.gradient(com, dt, axis=0), dt, axis=0)
        F = self.cell.mass(part_type) * (acc - G)  # what the cup must exert on the part
        fz = np.einsum("ij,ij->i", F, z)
        pull = np.maximum(-fz, 0.0)
        shear = np.linalg.norm(F - fz[:, None] * z, axis=1)
        bend = (h / 2) * shear
        return float(np.max(pull + shear / self.mu + 8 * bend / self.pad))

    def carry_speed_for(self, part_type: str, targets: list[np.ndarray]) -> float:
        arm = self.arm
        limit = self.hold_n / self.safety
        q_goal = arm.ik(arm.tool_down(targets[0]), what="over place")
        lim = arm.lim
        for k in self.speeds:
            move = JointMove(arm.q_end, q_goal, lim.velocity, lim.acceleration, lim.jerk, k)
            if self.predicted_load(part_type, move) <= limit:
                self.chosen[part_type] = k
                return k
        k = self.speeds[-1]
        self.chosen[part_type] = k
        return k
