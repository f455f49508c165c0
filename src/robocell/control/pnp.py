"""What a pick-and-place strategy needs to know about its cell, read from the controller context.

:class:`PnpLayout` collects, from ``ctx.devices``, the infeed conveyor's geometry, the part types
of its sources, the place station and the robot's gripper, and answers the questions every
strategy asks: where along the belt is a point, how tall is a part of this type, where do I put
the next part. :class:`Activity` turns state changes into the ``activity`` markers from which the
busy / idle / blocked KPIs are computed. The strategies in ``controllers/`` are state machines
built on these and on :class:`~robocell.control.arm.Arm`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from robocell.control.controller import ControllerContext, Marker
from robocell.errors import ScenarioError

#: gap between the cup face and a part's top when the gripper reaches it [m] (within the vacuum
#: gripper's attach distance, so it seals without pushing the part)
TOUCH_GAP = 0.001


def _device(ctx: ControllerContext, name: str | None, kind: str, param: str) -> tuple[str, Any]:
    found = {
        n: d
        for n, d in ctx.devices.items()
        if d.get("type") in kind.split("|")
        # a place station that is a conveyor is an outfeed; the infeed is not one
        and not (param == "place" and d.get("type") == "conveyor" and not d.get("outfeed"))
    }
    if name is None:
        if len(found) != 1:
            raise ScenarioError(
                f"the cell has {len(found)} {kind} devices ({', '.join(found) or 'none'}); "
                f"name one with '{param}'",
                field=param,
            )
        name = next(iter(found))
    if name not in found:
        raise ScenarioError(
            f"no {kind} named '{name}' (there are: {', '.join(found) or 'none'})", field=param
        )
    return name, found[name]


class PnpLayout:
    """The cell as a pick-and-place strategy sees it.

    Args:
        ctx: the controller context.
        robot: robot name (None: the only robot).
        conveyor: infeed conveyor name (None: the only non-outfeed conveyor).
        place: place station name (a bin, pallet, fixture or outfeed conveyor).
    """

    def __init__(
        self,
        ctx: ControllerContext,
        robot: str | None = None,
        conveyor: str | None = None,
        place: str | None = None,
    ) -> None:
        self.robot = ctx.robot(robot)
        infeeds = {
            n: d
            for n, d in ctx.devices.items()
            if d.get("type") == "conveyor" and not d.get("outfeed")
        }
        if conveyor is None and len(infeeds) == 1:
            conveyor = next(iter(infeeds))
        self.conveyor_name, belt = _device(ctx, conveyor, "conveyor", "conveyor")
        self.belt: Mapping[str, Any] = belt
        self.direction = np.asarray(belt["direction"], float)
        self.belt_start = np.asarray(belt["start"], float)
        self.surface_z = float(belt["surface_z"])
        self.belt_length = float(belt["length"])
        self.belt_speed = float(belt["speed"])
        self.place_name, self.place = _device(ctx, place, "bin|pallet|fixture|conveyor", "place")
        gname = f"{self.robot.name}.gripper"
        self.gripper: Mapping[str, Any] = ctx.devices.get(gname, {})
        if not self.gripper:
            raise ScenarioError(
                f"robot '{self.robot.name}' has no gripper (tool: gripper: ... in the scenario)",
                field="robot",
            )
        self.gripper_name = gname
        #: part type name -> describe() dict (shape, size/radius/height, mass, half_height)
        self.types: dict[str, dict[str, Any]] = {}
        for d in ctx.devices.values():
            if d.get("type") == "source":
                self.types.update(d["types"])
        self._placed = 0

    # -- signals ---------------------------------------------------------------------------------
    @property
    def running_signal(self) -> str:
        return f"conveyor.{self.conveyor_name}.running"

    @property
    def speed_signal(self) -> str:
        return f"conveyor.{self.conveyor_name}.actual_speed"

    def grip_signal(self) -> str:
        """The command signal that grips: vacuum on, or fingers closed."""
        key = "vacuum" if self.gripper.get("type") == "vacuum" else "close"
        return f"{self.gripper_name}.{key}"

    @property
    def attached_signal(self) -> str:
        return f"{self.gripper_name}.attached"

    # -- geometry --------------------------------------------------------------------------------
    def along(self, xyz: Any) -> float:
        """Distance of a point from the belt's start, along the belt [m]."""
        return float(np.dot(np.asarray(xyz, float) - self.belt_start, self.direction))

    def on_belt(self, s: float, lateral: float = 0.0) -> np.ndarray:
        """The point on the belt surface ``s`` [m] from its start, ``lateral`` [m] to the
        left of its centreline."""
        left = np.cross([0.0, 0.0, 1.0], self.direction)
        p = self.belt_start + s * self.direction + lateral * left
        p[2] = self.surface_z
        return p

    def height(self, part_type: str) -> float:
        """Full height of a part of this type standing on the belt [m]."""
        t = self.types.get(part_type)
        if t is None:
            raise ScenarioError(f"unknown part type '{part_type}'", field="types")
        return 2.0 * float(t["half_height"])

    def length(self, part_type: str) -> float:
        """Extent of a part along the belt [m] (box x, cylinder diameter)."""
        t = self.types[part_type]
        if t["shape"] == "box":
            return float(t["size"][0])
        if t["shape"] == "cylinder":
            return 2.0 * float(t["radius"])
        lo, hi = t["bounds"]
        return float(hi[0] - lo[0])

    def mass(self, part_type: str) -> float:
        return float(self.types[part_type]["mass"])

    def pick_point(self, part_xyz: Any, part_type: str) -> np.ndarray:
        """Where the TCP goes to pick a part whose centre is at ``part_xyz`` [m]: the middle of
        its top face (vacuum) or its centre (fingers)."""
        p = np.array(part_xyz, float)
        h = self.height(part_type)
        if self.gripper.get("type") == "vacuum":
            p[2] = self.surface_z + h + TOUCH_GAP
        else:
            p[2] = self.surface_z + h / 2
        return p

    def place_point(
        self,
        part_type: str,
        signals: Mapping[str, Any] | None = None,
        clearance: float = 0.02,
        drop_from: float | None = None,
    ) -> np.ndarray | None:
        """Where the TCP releases the next part [m]; None while the station is full.

        Bin: over its middle, the part's bottom ``clearance`` above the rim, or at height
        ``drop_from`` [m] (world z of the TCP) when that is higher. Pallet: the slot in the
        ``station.<name>.next_slot`` signal, the part set down (None while it is -1, full).
        Fixture: its seat. Outfeed conveyor: over its middle."""
        st = self.place
        kind = st["type"]
        h = self.height(part_type)
        down = h if self.gripper.get("type") == "vacuum" else h / 2
        if kind == "bin":
            p = np.array(st["pose"].t, float)
            p[2] += float(st["size"][2]) + down + clearance
            if drop_from is not None:
                p[2] = max(p[2], drop_from)
            return p
        if kind == "pallet":
            sig = signals or {}
            slot = int(sig.get(f"station.{self.place_name}.next_slot", self._placed))
            if slot < 0:
                return None
            slots = st["slots"]
            p = np.array(slots[slot % len(slots)].t, float)
            p[2] += down + 0.002
            return p
        if kind == "fixture":
            p = np.array(st["pose"].t, float)
            p[2] += down - h / 2 + 0.002
            return p
        p = np.asarray(st["start"], float) + 0.5 * float(st["length"]) * np.asarray(
            st["direction"], float
        )
        p[2] = float(st["surface_z"]) + down + clearance
        return p

    def placed_one(self) -> None:
        """Count a placement (pallets fill slot by slot)."""
        self._placed += 1


class Activity:
    """Emits an ``activity`` marker (robot, state) when the robot's state changes."""

    def __init__(self, robot: str) -> None:
        self.robot = robot
        self.state = ""

    def set(self, state: str, markers: list[Marker]) -> None:
        """Report ``state`` (busy, idle or blocked) if it differs from the last one."""
        if state != self.state:
            self.state = state
            markers.append(Marker("activity", {"robot": self.robot, "state": state}))


def grip_time(gripper: Mapping[str, Any]) -> float:
    """How long to dwell after touching a part before lifting it [s]: three vacuum rise time
    constants (95 % of the level), or the fingers' travel over a part at close speed."""
    if gripper.get("type") == "vacuum":
        return 3.0 * float(gripper.get("rise_time_s", 0.05))
    return 0.15


def release_time(gripper: Mapping[str, Any]) -> float:
    """How long to wait after letting go before moving away [s]."""
    if gripper.get("type") == "vacuum":
        return 4.0 * float(gripper.get("release_time_s", 0.03))
    return 0.15


def distance(a: Any, b: Any) -> float:
    return float(math.dist(a, b))


__all__ = ["Activity", "PnpLayout", "TOUCH_GAP", "grip_time", "release_time"]
