"""Places where parts end up: bins, pallets, fixtures, and the monitor that decides where a
released part came to rest (placed, dropped, or back on a conveyor).

Stations are static bodies built from boxes. They only know their geometry (``contains``,
``slot_of``) and count what is placed in them; :class:`PartMonitor` watches the parts that a
gripper let go of and tells the part registry what became of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device, Part
from robocell.errors import ScenarioError
from robocell.pnp.conveyor import Conveyor

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

#: a released part is at rest when it moves slower than this [m/s] ...
REST_SPEED = 0.02
#: ... and turns slower than this [rad/s] ...
REST_SPIN = 0.5
#: ... for this long [s] (so the top of a bounce does not count)
REST_TIME = 0.02
#: a part at rest outside every station for this long is dropped [s]
OUTSIDE_TIME = 0.3
#: a part below this height has fallen out of the cell [m]
FALL_Z = -0.5
#: how far above a station's surface a part's centre may be and still be in it [m]
STATION_REACH = 0.2
#: rim of a fixture's plate around the seated part [m]
FIXTURE_RIM = 0.01
#: thickness of a fixture's plate [m]
FIXTURE_PLATE = 0.01


def _vec(value: Any, n: int, what: str, fld: str) -> tuple[float, ...]:
    try:
        v = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        v = ()
    if len(v) != n or not all(math.isfinite(x) and x > 0 for x in v):
        raise ScenarioError(f"{what} must be {n} positive lengths in m, got {value!r}", field=fld)
    return v


def _pose(pose: Any, fld: str) -> SE3:
    if not isinstance(pose, SE3):
        raise ScenarioError(f"pose must be a spatialmath SE3, got {type(pose).__name__}", field=fld)
    return SE3(pose)


class Station(Device):
    """A static target for parts (base of :class:`Bin`, :class:`Pallet`, :class:`Fixture`).

    Publishes ``station.<name>.count``: the number of parts placed in it (ever).

    ``unload_after`` [s] models what takes the parts away (an operator emptying a bin, a pallet
    exchange, the next machine taking a part out of a fixture): a bin or fixture removes each
    part that long after it was placed; a pallet removes all its parts that long after it became
    full (event ``unloaded``). None keeps every part (a long run then piles them up).
    """

    kind = "station"

    def __init__(self, name: str, pose: SE3, unload_after: float | None = None) -> None:
        self.name = name
        self.pose = _pose(pose, f"devices.{name}.pose")
        if unload_after is not None and not (math.isfinite(unload_after) and unload_after >= 0):
            raise ScenarioError(
                f"unload_after must be >= 0 s, got {unload_after!r}",
                field=f"devices.{name}.unload_after",
            )
        self.unload_after = None if unload_after is None else float(unload_after)
        self.unloaded = 0
        self._held: list[tuple[float, Part]] = []  # (placed at, part), oldest first
        self._inv = self.pose.inv()
        self.bodies: list[int] = []
        self.count = 0
        self.errors: list[float] = []
        self.slot_taken = 0
        self._cell: Cell | None = None
        self._sig = f"station.{name}.count"

    def local(self, xyz: Sequence[float]) -> np.ndarray:
        """A world point in the station's frame [m]."""
        return self._inv.A[:3, :3] @ np.asarray(xyz, dtype=float) + self._inv.A[:3, 3]

    def _box(self, cell: Cell, size: Sequence[float], at: Sequence[float], color: Any) -> None:
        """A static box of full ``size`` [m] centred at ``at`` in the station's frame."""
        pose = self.pose * SE3(*at)
        self.bodies.append(cell.world.add_box(size, pose, mass=0.0, color=color, friction=0.6))

    def attach(self, cell: Cell) -> None:
        self._cell = cell
        self.build(cell)

    def build(self, cell: Cell) -> None:
        """Create the station's bodies."""

    def start(self, cell: Cell) -> None:
        cell.signals[self._sig] = self.count

    def contains(self, xyz: Sequence[float]) -> bool:
        """Whether a part whose centre is at ``xyz`` (world) [m] is in the station."""
        raise NotImplementedError

    def accept(self, part: Part, xyz: Sequence[float]) -> dict[str, Any]:
        """Count a part that came to rest at ``xyz`` in the station; returns what the
        ``placed`` event reports (slot, error_m, ...)."""
        self.count += 1
        if self._cell is not None:
            self._cell.signals[self._sig] = self.count
            if self.unload_after is not None:
                self._held.append((self._cell.time, part))
        return {}

    def sense(self, cell: Cell) -> None:
        if self._held and cell.time >= self._held[0][0] + self.unload_after - 1e-9:
            self._unload(cell, cell.time - self.unload_after)

    def _unload(self, cell: Cell, placed_before: float) -> None:
        """Take away the parts placed at or before ``placed_before`` [s]."""
        gone = 0
        while self._held and self._held[0][0] <= placed_before + 1e-9:
            _, part = self._held.pop(0)
            cell.parts.remove(part)
            gone += 1
        if gone:
            self.unloaded += gone
            cell.emit("unloaded", station=self.name, parts=gone)

    def kpis(self) -> dict[str, Any]:
        return {"unloaded": self.unloaded} if self.unload_after is not None else {}

    def info(self) -> dict[str, Any]:
        return {"type": self.kind, "pose": SE3(self.pose), "drop": SE3(self.pose)}


class Bin(Station):
    """An open box that parts are dropped into.

    Args:
        name: device name.
        pose: centre of the bin's floor (its inside surface) in the world; z is up.
        size: outer length x, width y and wall height z above the floor [m].
        wall: thickness of the walls and the floor [m].
    """

    kind = "bin"

    def __init__(
        self,
        name: str,
        pose: SE3,
        size: Sequence[float] = (0.4, 0.3, 0.15),
        wall: float = 0.01,
        unload_after: float | None = None,
    ) -> None:
        super().__init__(name, pose, unload_after)
        f = f"devices.{name}"
        self.size = _vec(size, 3, "bin size", f"{f}.size")
        self.wall = _vec([wall], 1, "wall", f"{f}.wall")[0]
        x, y, _ = self.size
        if 2 * self.wall >= min(x, y):
            raise ScenarioError(
                f"walls of {self.wall} m leave no room inside a {x} x {y} m bin",
                field=f"{f}.wall",
            )
        self.inner = (x - 2 * self.wall, y - 2 * self.wall)

    def build(self, cell: Cell) -> None:
        x, y, h = self.size
        w = self.wall
        color = (0.2, 0.35, 0.6, 1.0)
        self._box(cell, (x, y, w), (0, 0, -w / 2), color)
        for s in (-1, 1):
            self._box(cell, (w, y, h), (s * (x - w) / 2, 0, h / 2), color)
            self._box(cell, (x - 2 * w, w, h), (0, s * (y - w) / 2, h / 2), color)

    def contains(self, xyz: Sequence[float]) -> bool:
        lx, ly, lz = self.local(xyz)
        return (
            abs(lx) <= self.inner[0] / 2
            and abs(ly) <= self.inner[1] / 2
            and -self.wall <= lz <= self.size[2] + STATION_REACH
        )

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["size"] = self.size
        out["inner"] = self.inner
        out["wall"] = self.wall
        return out


class Pallet(Station):
    """A flat pallet with a grid of slots, one part per slot.

    Slot ``i = row * cols + col`` is at x = (col - (cols - 1) / 2) * pitch x and
    y = (row - (rows - 1) / 2) * pitch y in the pallet's frame.

    Args:
        name: device name.
        pose: centre of the pallet's top surface in the world; z is up.
        rows: slots along y.
        cols: slots along x.
        pitch: slot spacing (dx, dy) [m].
        size: pallet length x, width y and thickness [m]; its top is at ``pose``.
        unload_after: the full pallet is exchanged for an empty one this long after its last
            slot was filled [s] (None: never).

    Publishes ``station.<name>.next_slot``: the lowest free slot index, -1 while full.
    """

    kind = "pallet"

    def __init__(
        self,
        name: str,
        pose: SE3,
        rows: int,
        cols: int,
        pitch: Sequence[float] = (0.1, 0.1),
        size: Sequence[float] = (0.4, 0.4, 0.02),
        unload_after: float | None = None,
    ) -> None:
        super().__init__(name, pose, unload_after)
        f = f"devices.{name}"
        for key, value in (("rows", rows), ("cols", cols)):
            if not (isinstance(value, int) and value >= 1):
                raise ScenarioError(
                    f"{key} must be an integer >= 1, got {value!r}", field=f"{f}.{key}"
                )
        self.rows, self.cols = rows, cols
        self.pitch = _vec(pitch, 2, "pitch", f"{f}.pitch")
        self.size = _vec(size, 3, "pallet size", f"{f}.size")
        span = ((cols - 1) * self.pitch[0], (rows - 1) * self.pitch[1])
        if span[0] > self.size[0] or span[1] > self.size[1]:
            raise ScenarioError(
                f"a {rows} x {cols} grid at pitch {self.pitch} m spans {span[0]:.3f} x "
                f"{span[1]:.3f} m, more than the pallet's {self.size[0]} x {self.size[1]} m",
                field=f"{f}.pitch",
            )
        cx = (np.arange(cols) - (cols - 1) / 2) * self.pitch[0]
        cy = (np.arange(rows) - (rows - 1) / 2) * self.pitch[1]
        #: slot centres in the pallet frame, shape (rows * cols, 2) [m]
        self.slot_xy = np.array([(x, y) for y in cy for x in cx])
        self.occupied: dict[int, int] = {}  # slot -> part id
        self._full_since: float | None = None

    def next_slot(self) -> int:
        """The lowest free slot, -1 when the pallet is full."""
        return next((i for i in range(self.rows * self.cols) if i not in self.occupied), -1)

    def start(self, cell: Cell) -> None:
        super().start(cell)
        cell.signals[f"station.{self.name}.next_slot"] = self.next_slot()

    def sense(self, cell: Cell) -> None:
        if self.unload_after is None or self._full_since is None:
            return
        if cell.time >= self._full_since + self.unload_after - 1e-9:
            self._unload(cell, cell.time)
            self.occupied.clear()
            self._full_since = None
            cell.signals[f"station.{self.name}.next_slot"] = self.next_slot()

    def build(self, cell: Cell) -> None:
        x, y, t = self.size
        self._box(cell, (x, y, t), (0, 0, -t / 2), (0.75, 0.6, 0.4, 1.0))

    def slots(self) -> list[SE3]:
        """World poses of the slot centres on the top surface."""
        return [self.pose * SE3(float(x), float(y), 0.0) for x, y in self.slot_xy]

    def contains(self, xyz: Sequence[float]) -> bool:
        lx, ly, lz = self.local(xyz)
        return (
            abs(lx) <= self.size[0] / 2
            and abs(ly) <= self.size[1] / 2
            and -self.size[2] <= lz <= STATION_REACH
        )

    def slot_of(self, xyz: Sequence[float]) -> tuple[int, float] | None:
        """The slot whose cell (pitch x pitch around its centre) holds ``xyz`` and the distance
        from the slot centre in the pallet plane [m]; None off the grid or off the pallet."""
        if not self.contains(xyz):
            return None
        lx, ly, _ = self.local(xyz)
        d = self.slot_xy - (lx, ly)
        i = int(np.argmin((d * d).sum(axis=1)))
        dx, dy = abs(d[i, 0]), abs(d[i, 1])
        if dx > self.pitch[0] / 2 or dy > self.pitch[1] / 2:
            return None
        return i, float(math.hypot(dx, dy))

    def accept(self, part: Part, xyz: Sequence[float]) -> dict[str, Any]:
        super().accept(part, xyz)
        found = self.slot_of(xyz)
        if found is None:
            return {"slot": None}
        slot, err = found
        taken = slot in self.occupied
        if taken:
            self.slot_taken += 1
        else:
            self.occupied[slot] = part.id
        self.errors.append(err)
        if self._cell is not None:
            nxt = self.next_slot()
            self._cell.signals[f"station.{self.name}.next_slot"] = nxt
            if nxt < 0 and self._full_since is None:
                self._full_since = self._cell.time
        return {"slot": slot, "error_m": round(err, 6), "slot_taken": taken}

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(
            size=self.size, rows=self.rows, cols=self.cols, pitch=self.pitch, slots=self.slots()
        )
        return out


class Fixture(Station):
    """A nest that holds one part at a nominal pose: a plate the part sits on.

    Args:
        name: device name.
        pose: the part's nominal pose when seated (its centre) in the world.
        size: the seated part's size (x, y, z) [m]; the plate is :data:`FIXTURE_RIM` larger
            all round and its top is at the part's bottom.
        tolerance: largest distance from the nominal position for a placement in tolerance [m].
    """

    kind = "fixture"

    def __init__(
        self,
        name: str,
        pose: SE3,
        size: Sequence[float],
        tolerance: float = 0.005,
        unload_after: float | None = None,
    ) -> None:
        super().__init__(name, pose, unload_after)
        f = f"devices.{name}"
        self.size = _vec(size, 3, "fixture size", f"{f}.size")
        self.tolerance = _vec([tolerance], 1, "tolerance", f"{f}.tolerance")[0]
        self.holder: int | None = None
        self.out_of_tolerance = 0

    def build(self, cell: Cell) -> None:
        x, y, z = self.size
        plate = (x + 2 * FIXTURE_RIM, y + 2 * FIXTURE_RIM, FIXTURE_PLATE)
        self._box(cell, plate, (0, 0, -z / 2 - FIXTURE_PLATE / 2), (0.4, 0.45, 0.5, 1.0))

    def contains(self, xyz: Sequence[float]) -> bool:
        lx, ly, lz = self.local(xyz)
        x, y, z = self.size
        return (
            abs(lx) <= x / 2 + FIXTURE_RIM
            and abs(ly) <= y / 2 + FIXTURE_RIM
            and -z / 2 - FIXTURE_PLATE <= lz <= z / 2 + STATION_REACH
        )

    def error(self, xyz: Sequence[float]) -> float:
        """Distance of a part's centre from the nominal seated position [m]."""
        return float(np.linalg.norm(np.asarray(xyz, dtype=float) - self.pose.t))

    def accept(self, part: Part, xyz: Sequence[float]) -> dict[str, Any]:
        super().accept(part, xyz)
        err = self.error(xyz)
        ok = err <= self.tolerance
        if not ok:
            self.out_of_tolerance += 1
        taken = self.holder is not None
        if taken:
            self.slot_taken += 1
        else:
            self.holder = part.id
        self.errors.append(err)
        return {"error_m": round(err, 6), "in_tolerance": ok, "slot_taken": taken}

    def _unload(self, cell: Cell, placed_before: float) -> None:
        super()._unload(cell, placed_before)
        if not self._held:
            self.holder = None

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(size=self.size, tolerance=self.tolerance)
        return out


class PartMonitor(Device):
    """Decides what became of parts that a gripper released, and of parts that fell off a belt.

    Every ``period`` [s] it looks at the parts whose state is ``free``:

    * at rest (slower than :data:`REST_SPEED` for :data:`REST_TIME`) inside a station: placed
      there (event ``placed`` with ``slot``, ``error_m``, ``slot_taken`` for pallets and
      fixtures);
    * at rest on a conveyor's belt (moving with it): back ``on_conveyor`` (event ``landed``), or
      placed when the belt is an outfeed;
    * at rest outside every station for :data:`OUTSIDE_TIME`: dropped (``reason="outside"``);
    * below z = :data:`FALL_Z`: dropped (``reason="fell"``).

    A part ``on_conveyor`` whose centre drops below the belt surface before the belt's end has
    fallen off its side: dropped (``reason="fell_off_conveyor"``).

    Stations and conveyors are found among the cell's devices when the run starts.
    """

    def __init__(self, name: str = "parts", period: float = 0.01) -> None:
        if not (math.isfinite(period) and period > 0):
            raise ScenarioError(f"period must be > 0 s, got {period!r}", field=f"devices.{name}")
        self.name = name
        self.period = float(period)
        self.stations: list[Station] = []
        self.conveyors: dict[str, Conveyor] = {}
        self._every = 1
        self._ticks = 0
        self._cid = -1
        self._rest_since: dict[int, float] = {}
        self._dropped: dict[str, int] = {}

    def start(self, cell: Cell) -> None:
        self._cid = cell.world.client
        self.stations = [d for d in cell.devices.values() if isinstance(d, Station)]
        self.conveyors = {n: d for n, d in cell.devices.items() if isinstance(d, Conveyor)}
        self._every = max(1, round(self.period / cell.control_period))

    def sense(self, cell: Cell) -> None:
        self._ticks += 1
        if self._ticks % self._every:
            return
        cid = self._cid
        now = cell.time
        for part in cell.parts.active():
            if part.body < 0:
                continue
            if part.state == "free":
                pos = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
                self._watch_free(cell, part, pos, now)
            elif part.state == "on_conveyor":
                conv = self.conveyors.get(part.where)
                if conv is None:
                    continue
                pos = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
                a, _, h = conv.local(pos)
                if pos[2] < FALL_Z:
                    self._drop(cell, part, "fell")
                elif h < 0 and a < conv.length:
                    self._drop(cell, part, "fell_off_conveyor", conveyor=conv.name)

    def _watch_free(self, cell: Cell, part: Part, pos: Sequence[float], now: float) -> None:
        if pos[2] < FALL_Z:
            self._drop(cell, part, "fell")
            return
        for conv in self.conveyors.values():
            if conv.on_belt(pos):
                conv.settle(cell, part, pos)
                self._rest_since.pop(part.id, None)
                return
        lin, ang = pb.getBaseVelocity(part.body, physicsClientId=self._cid)
        if math.hypot(*lin) >= REST_SPEED or math.hypot(*ang) >= REST_SPIN:
            self._rest_since.pop(part.id, None)
            return
        since = self._rest_since.setdefault(part.id, now)
        rested = now - since
        if rested < REST_TIME - 1e-9:
            return
        for st in self.stations:
            if st.contains(pos):
                self._rest_since.pop(part.id, None)
                data = st.accept(part, pos)
                cell.parts.placed(part, st.name, **data)
                return
        if rested >= OUTSIDE_TIME - 1e-9:
            self._drop(cell, part, "outside", xyz=[round(float(v), 4) for v in pos])

    def _drop(self, cell: Cell, part: Part, reason: str, **data: Any) -> None:
        self._rest_since.pop(part.id, None)
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        cell.parts.dropped(part, reason=reason, **data)

    def kpis(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "placed": {s.name: s.count for s in self.stations},
            "dropped": dict(self._dropped),
        }
        errors = [e for s in self.stations if isinstance(s, Pallet) for e in s.errors]
        if errors:
            out["pallet_error_mean_m"] = round(float(np.mean(errors)), 6)
            out["pallet_error_max_m"] = round(float(np.max(errors)), 6)
        taken = sum(s.slot_taken for s in self.stations)
        if taken:
            out["slot_taken"] = taken
        fx = [s for s in self.stations if isinstance(s, Fixture)]
        if fx:
            out["fixture_error_max_m"] = round(max((e for s in fx for e in s.errors), default=0), 6)
            out["fixture_out_of_tolerance"] = sum(s.out_of_tolerance for s in fx)
        return out


__all__ = ["Bin", "Fixture", "Pallet", "PartMonitor", "Station"]
