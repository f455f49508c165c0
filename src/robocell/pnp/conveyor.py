"""A belt conveyor whose parts ride on it by contact and friction.

The belt is a thin slab on a prismatic joint of a fixed frame. Each control tick the joint is put
back to zero travel with the belt speed kept (``resetJointState``) and a velocity motor with a large
force holds that speed during the tick's physics steps. So the belt surface moves at the belt speed
but never travels away, and a part on it is carried by friction only: a part that is blocked or
held slips against the belt as on a real conveyor. Measured: a box or a cylinder on a running belt
moves at the belt speed within 0.03 % (see ``tests/test_conveyor.py``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device, Part
from robocell.errors import ScenarioError
from robocell.sim.world import pose_to_pb

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

#: thickness of the belt slab [m]
BELT_THICKNESS = 0.02
#: force of the belt drive [N]: far above any friction a part can put on it
BELT_FORCE = 1e5
#: mass of the belt slab [kg]
BELT_MASS = 5.0
#: cell time between two looks at the parts on the belt [s]
CHECK_PERIOD = 0.01
#: a released part rests on the belt when its velocity differs from the belt's by less [m/s]
REST_SPEED = 0.02
#: ... for this long [s]
REST_TIME = 0.02
#: height above the belt surface within which a part counts as on the belt [m]
ON_BELT_HEIGHT = 0.3
#: a part this far past the end of a belt with ``end="fall"`` is missed even if it did not fall [m]
FALL_DISTANCE = 1.0

END_MODES = ("fall", "remove")

_reset_joint = pb.resetJointState  # (every control tick)


def stable_id(name: str) -> int:
    """A stable 32-bit integer from a device name (for seeding its random generator)."""
    return zlib.crc32(name.encode("utf-8"))


class Conveyor(Device):
    """A belt conveyor running along its local +x axis.

    Args:
        name: device name; its signals are ``conveyor.<name>.running``, ``.speed`` (commanded
            belt speed [m/s], both writable by controllers) and ``.actual_speed`` [m/s].
        pose: centre of the belt's top surface in the world; the belt runs along local +x and
            local +z is the surface normal.
        length: belt length along x [m].
        width: belt width along y [m].
        speed: commanded belt speed [m/s], >= 0.
        running: whether the belt runs at the start (then at full speed from t = 0).
        accel: how fast the belt speed ramps up or down [m/s²].
        end: what happens at the end of the belt: ``"fall"`` (parts fall off by physics and are
            counted missed once they are below the surface past the end) or ``"remove"`` (parts
            are removed and counted missed when their centre reaches the end).
        outfeed: the belt takes finished parts away: a part that a gripper released and that
            comes to rest on it counts as placed, and parts reaching its end are removed quietly.
        friction: friction coefficient of the belt surface (pybullet multiplies it with the
            part's).
        color: RGBA of the belt; the frame under it is drawn grey.
    """

    def __init__(
        self,
        name: str,
        pose: SE3,
        length: float,
        width: float,
        speed: float,
        running: bool = True,
        accel: float = 2.0,
        end: str = "fall",
        outfeed: bool = False,
        friction: float = 1.0,
        color: Sequence[float] = (0.15, 0.15, 0.15, 1.0),
    ) -> None:
        f = f"devices.{name}"
        if not isinstance(pose, SE3):
            raise ScenarioError(
                f"conveyor pose must be a spatialmath SE3, got {type(pose).__name__}",
                field=f"{f}.pose",
            )
        for key, value in (("length", length), ("width", width), ("accel", accel)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ScenarioError(f"{key} must be > 0, got {value!r}", field=f"{f}.{key}")
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed >= 0):
            raise ScenarioError(
                f"speed must be >= 0 m/s (the belt runs along its +x axis; turn the pose to "
                f"run the other way), got {speed!r}",
                field=f"{f}.speed",
            )
        if end not in END_MODES:
            raise ScenarioError(
                f"end must be one of {', '.join(END_MODES)}, got {end!r}", field=f"{f}.end"
            )
        if not (math.isfinite(friction) and friction >= 0):
            raise ScenarioError(f"friction must be >= 0, got {friction!r}", field=f"{f}.friction")
        self.name = name
        self.pose = SE3(pose)
        self.length = float(length)
        self.width = float(width)
        self.speed = float(speed)
        self.running = bool(running)
        self.accel = float(accel)
        self.end = end
        self.outfeed = bool(outfeed)
        self.friction = float(friction)
        self.color = tuple(float(c) for c in color)
        #: belt speed now [m/s] (ramps toward the commanded speed)
        self.actual_speed = 0.0
        R = self.pose.R
        self.direction: np.ndarray = R[:, 0].copy()
        self.lateral: np.ndarray = R[:, 1].copy()
        self.normal: np.ndarray = R[:, 2].copy()
        self.centre: np.ndarray = self.pose.t.copy()
        self.start_xyz: np.ndarray = self.centre - self.direction * self.length / 2
        self.end_xyz: np.ndarray = self.centre + self.direction * self.length / 2
        self._s = tuple(float(v) for v in self.start_xyz)
        self._axes = tuple(tuple(float(v) for v in a) for a in (R[:, 0], R[:, 1], R[:, 2]))
        self.body = -1
        self._cid = -1
        self._dt = 0.0
        self._motor_speed = math.nan
        self._check_every = 1
        self._ticks = 0
        self._rest_since: dict[int, float] = {}
        self._carried: list[Part] = []  # placed parts riding an outfeed belt to its end
        self._sig = {k: f"conveyor.{name}.{k}" for k in ("running", "speed", "actual_speed")}
        self._k_running, self._k_speed, self._k_actual = self._sig.values()
        self._counts = {"missed": 0, "placed": 0, "landed": 0, "removed": 0}
        self._travel = 0.0

    # -- geometry ------------------------------------------------------------------------------
    @property
    def surface_z(self) -> float:
        """Height of the belt surface at its centre [m]."""
        return float(self.centre[2])

    def along(self, xyz: Sequence[float]) -> float:
        """Distance of a point from the start of the belt along its running direction [m]."""
        return self.local(xyz)[0]

    def local(self, xyz: Sequence[float]) -> tuple[float, float, float]:
        """A world point in belt coordinates: (along from the start, lateral from the
        centreline, height above the surface) [m]."""
        # plain floats: called for every part several times a tick, where numpy's call
        # overhead is ten times the arithmetic
        sx, sy, sz = self._s
        dx, dy, dz = float(xyz[0]) - sx, float(xyz[1]) - sy, float(xyz[2]) - sz
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = self._axes
        return (
            dx * ax + dy * ay + dz * az,
            dx * bx + dy * by + dz * bz,
            dx * cx + dy * cy + dz * cz,
        )

    def on_belt(self, xyz: Sequence[float], margin: float = 0.0) -> bool:
        """Whether a point is over the belt (within ``margin`` [m] of its edges) and at most
        :data:`ON_BELT_HEIGHT` above its surface (not below it by more than ``margin``)."""
        a, lat, h = self.local(xyz)
        return (
            -margin <= a <= self.length + margin
            and abs(lat) <= self.width / 2 + margin
            and -margin <= h <= ON_BELT_HEIGHT
        )

    def belt_velocity(self) -> np.ndarray:
        """Velocity of the belt surface in the world [m/s]."""
        return self.direction * self.actual_speed

    # -- device --------------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        cid = self._cid = cell.world.client
        t = BELT_THICKNESS
        L, W = self.length, self.width
        pos, orn = pose_to_pb(self.pose)
        # the frame reaches down to the floor (for a level belt) under the belt slab
        frame_h = float(self.pose.t[2]) - t
        frame_col, frame_vis = -1, -1
        if frame_h > 0.005:
            half = [L / 2, W / 2, frame_h / 2]
            at = [0.0, 0.0, -t - frame_h / 2]
            frame_col = pb.createCollisionShape(
                pb.GEOM_BOX, halfExtents=half, collisionFramePosition=at, physicsClientId=cid
            )
            frame_vis = pb.createVisualShape(
                pb.GEOM_BOX,
                halfExtents=half,
                visualFramePosition=at,
                rgbaColor=[0.55, 0.55, 0.58, 1.0],
                physicsClientId=cid,
            )
        belt_half = [L / 2, W / 2, t / 2]
        belt_col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=belt_half, physicsClientId=cid)
        belt_vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=belt_half, rgbaColor=list(self.color), physicsClientId=cid
        )
        self.body = pb.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=frame_col,
            baseVisualShapeIndex=frame_vis,
            basePosition=pos,
            baseOrientation=orn,
            linkMasses=[BELT_MASS],
            linkCollisionShapeIndices=[belt_col],
            linkVisualShapeIndices=[belt_vis],
            linkPositions=[[0.0, 0.0, -t / 2]],
            linkOrientations=[[0.0, 0.0, 0.0, 1.0]],
            linkInertialFramePositions=[[0.0, 0.0, 0.0]],
            linkInertialFrameOrientations=[[0.0, 0.0, 0.0, 1.0]],
            linkParentIndices=[0],
            linkJointTypes=[pb.JOINT_PRISMATIC],
            linkJointAxis=[[1.0, 0.0, 0.0]],
            physicsClientId=cid,
        )
        pb.changeDynamics(
            self.body,
            0,
            lateralFriction=self.friction,
            linearDamping=0.0,
            angularDamping=0.0,
            jointDamping=0.0,
            physicsClientId=cid,
        )
        pb.changeDynamics(self.body, -1, lateralFriction=0.5, physicsClientId=cid)
        if self.name not in cell.objects:
            cell.objects[self.name] = self.body  # names the belt in collision events

    def start(self, cell: Cell) -> None:
        self._dt = cell.control_period
        self._check_every = max(1, round(CHECK_PERIOD / self._dt))
        self.actual_speed = self.speed if self.running else 0.0
        cell.signals[self._sig["running"]] = self.running
        cell.signals[self._sig["speed"]] = self.speed
        cell.signals[self._sig["actual_speed"]] = self.actual_speed
        self._drive()

    def apply(self, cell: Cell) -> None:
        sig = cell.signals
        self.running = bool(sig.get(self._k_running, self.running))
        requested = sig.get(self._k_speed, self.speed)
        if requested != self.speed:
            self.speed = self._checked_speed(cell, requested)
        target = self.speed if self.running else 0.0
        v = self.actual_speed
        if v != target:
            dv = self.accel * self._dt
            v = target if abs(target - v) <= dv else v + math.copysign(dv, target - v)
            self.actual_speed = v
        self._travel += v * self._dt
        self._drive()

    def _checked_speed(self, cell: Cell, requested: Any) -> float:
        """A commanded speed as the belt can run it: negative or invalid values become 0 m/s,
        with a ``signal_clamped`` event (the signal then shows the speed in use)."""
        try:
            value = float(requested)
        except (TypeError, ValueError):
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
        used = 0.0
        cell.signals[self._sig["speed"]] = used
        cell.emit(
            "signal_clamped",
            signal=self._sig["speed"],
            requested=repr(requested),
            used=used,
            reason="belt speed must be a number >= 0 m/s",
        )
        return used

    def _drive(self) -> None:
        """Put the belt back at zero travel, moving at the belt speed, for this tick."""
        v = self.actual_speed
        cid = self._cid
        _reset_joint(self.body, 0, 0.0, v, cid)  # (positional: cheaper every tick)
        if v != self._motor_speed:
            pb.setJointMotorControl2(
                self.body,
                0,
                pb.VELOCITY_CONTROL,
                targetVelocity=v,
                force=BELT_FORCE,
                physicsClientId=cid,
            )
            self._motor_speed = v

    def sense(self, cell: Cell) -> None:
        cell.signals[self._k_actual] = self.actual_speed
        self._ticks += 1
        if self._ticks % self._check_every == 0:
            self._check_parts(cell)

    def _check_parts(self, cell: Cell) -> None:
        cid = self._cid
        parts = cell.parts
        for part in parts.active():
            if part.body < 0:
                continue
            if part.state == "on_conveyor" and part.where == self.name:
                pos = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
                a, _, h = self.local(pos)
                if a < self.length:
                    continue
                if self.outfeed:
                    self._counts["removed"] += 1
                    parts.remove(part)
                elif self.end == "remove":
                    self._counts["missed"] += 1
                    parts.missed(part, self.name, remove=True)
                elif h < 0 or a > self.length + FALL_DISTANCE:
                    self._counts["missed"] += 1
                    parts.missed(part, self.name, remove=False)
            elif part.state == "free":
                pos = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
                self.settle(cell, part, pos)
        if self._carried:
            keep = []
            for part in self._carried:
                if part.body < 0 or part.where != self.name:
                    continue
                pos = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
                if self.along(pos) >= self.length:
                    self._counts["removed"] += 1
                    parts.remove(part)
                else:
                    keep.append(part)
            self._carried = keep

    def settle(self, cell: Cell, part: Part, pos: Sequence[float]) -> bool:
        """Look at a released (``free``) part at ``pos``: when it has come to rest on the belt
        (moving with it) it is the belt's again (``on_conveyor``, event ``landed``) or, on an
        outfeed belt, placed. Returns whether the belt took the part.

        Called by the belt itself and by :class:`~robocell.pnp.stations.PartMonitor`.
        """
        if part.state != "free" or not self.on_belt(pos):
            self._rest_since.pop(part.id, None)
            return False
        lin = pb.getBaseVelocity(part.body, physicsClientId=self._cid)[0]
        slip = np.asarray(lin) - self.belt_velocity()
        if float(slip @ slip) >= REST_SPEED * REST_SPEED:
            self._rest_since.pop(part.id, None)
            return False
        since = self._rest_since.setdefault(part.id, cell.time)
        if cell.time - since < REST_TIME - 1e-9:
            return False
        self._rest_since.pop(part.id, None)
        if self.outfeed:
            self._counts["placed"] += 1
            cell.parts.placed(part, self.name)
            self._carried.append(part)
        else:
            part.state, part.where = "on_conveyor", self.name
            self._counts["landed"] += 1
            cell.emit("landed", part=part.id, type=part.type, conveyor=self.name)
        return True

    def info(self) -> dict[str, Any]:
        return {
            "type": "conveyor",
            "pose": SE3(self.pose),
            "length": self.length,
            "width": self.width,
            "speed": self.speed,
            "running": self.running,
            "accel": self.accel,
            "direction": self.direction.copy(),
            "start": self.start_xyz.copy(),
            "end": self.end_xyz.copy(),
            "surface_z": self.surface_z,
            "end_mode": self.end,
            "outfeed": self.outfeed,
        }

    def kpis(self) -> dict[str, Any]:
        out: dict[str, Any] = {"belt_travel_m": round(self._travel, 6)}
        if self.outfeed:
            out["placed"] = self._counts["placed"]
        else:
            out["missed"] = self._counts["missed"]
            out["landed"] = self._counts["landed"]
        return out


__all__ = ["Conveyor", "stable_id"]
