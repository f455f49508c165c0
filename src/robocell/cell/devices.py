"""Cell devices and the part registry: what a pick-and-place cell adds to robots.

A :class:`Device` is anything in the cell with behaviour over time (a conveyor, a part source, a
gripper, a sensor, a bin that counts what lands in it). The cell calls, in this order:

* ``attach(cell)`` once, from :meth:`Cell.add_device` (build bodies; the cell has not started);
* ``start(cell)`` once, when the run starts (publish initial signals);
* ``apply(cell)`` every control tick, after the controller's commands and signal writes and before
  the physics (read command signals: start a belt, switch the vacuum on);
* ``before_step(cell)`` before every physics step, only for devices with ``per_step = True``
  (keep a belt moving, hold a vacuum cup's force limit);
* ``sense(cell)`` every control tick after the physics (update output signals, emit events);
* ``close(cell)`` at the end of the run (finish files such as a video).

Parts are bodies that the cell tracks in :class:`PartRegistry` (``cell.parts``): every spawned,
picked, placed, dropped or missed part is an event there, and the pick-and-place KPIs are reduced
from those events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robocell.cell.cell import Cell


class Device:
    """Base class of cell devices (override what the device needs)."""

    #: unique name in the cell (also the prefix of the device's signals)
    name: str = "device"
    #: call :meth:`before_step` before every physics step
    per_step: bool = False

    def attach(self, cell: Cell) -> None:
        """Build the device's bodies (called once by :meth:`Cell.add_device`)."""

    def start(self, cell: Cell) -> None:
        """Publish initial signals (called once when the run starts)."""

    def apply(self, cell: Cell) -> None:
        """Read command signals before the tick's physics."""

    def before_step(self, cell: Cell) -> None:
        """Called before every physics step when ``per_step`` is True."""

    def sense(self, cell: Cell) -> None:
        """Update output signals and emit events after the tick's physics."""

    def close(self, cell: Cell) -> None:
        """Finish files the device writes (called at the end of a run and by
        :meth:`Cell.close`; may be called more than once)."""

    def info(self) -> dict[str, Any]:
        """Static facts a controller may use (geometry, poses as SE3 in the world, speeds,
        slot positions ...); given to the controller at reset as ``ctx.devices[name]``."""
        return {}

    def kpis(self) -> dict[str, Any]:
        """Device KPIs merged into the run's KPIs under ``devices.<name>``."""
        return {}

    def write_outputs(self, out: Path, plots: bool = True) -> list[Path]:
        """Write the device's own result files (and plots) into the run directory ``out`` at
        the end of a run; returns the paths of the plots written."""
        return []


#: the states a part goes through
PART_STATES = ("on_conveyor", "free", "held", "placed", "dropped", "missed")


@dataclass
class Part:
    """One part in the cell.

    ``state`` is one of :data:`PART_STATES`; ``where`` names the station or gripper it is on/in.
    """

    id: int
    body: int
    type: str
    spawned_t: float
    state: str = "on_conveyor"
    where: str = ""
    picked_t: float | None = None
    placed_t: float | None = None
    pick_attempts: int = 0
    data: dict[str, Any] = field(default_factory=dict)


class PartRegistry:
    """The parts of a cell, by id and by pybullet body, with their life events."""

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._by_id: dict[int, Part] = {}
        self._by_body: dict[int, Part] = {}
        self._next = 1
        self.counts = {s: 0 for s in ("spawned", "picked", "placed", "dropped", "missed")}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):  # noqa: ANN204
        return iter(list(self._by_id.values()))

    def get(self, part_id: int) -> Part | None:
        return self._by_id.get(part_id)

    def by_body(self, body: int) -> Part | None:
        return self._by_body.get(body)

    def active(self) -> list[Part]:
        """Parts still in play (not placed, dropped or missed)."""
        return [p for p in self._by_id.values() if p.state in ("on_conveyor", "free", "held")]

    def spawn(self, body: int, type_name: str, where: str = "", **data: Any) -> Part:
        """Register a new part body; emits ``spawned``."""
        p = Part(self._next, body, type_name, self._cell.time, where=where, data=dict(data))
        self._next += 1
        self._by_id[p.id] = p
        self._by_body[body] = p
        self.counts["spawned"] += 1
        self._cell.emit("spawned", part=p.id, type=type_name, where=where, **data)
        return p

    def picked(self, part: Part, by: str) -> None:
        part.state, part.where = "held", by
        part.picked_t = self._cell.time
        part.pick_attempts += 1
        self.counts["picked"] += 1
        self._cell.emit("picked", part=part.id, type=part.type, by=by)

    def released(self, part: Part) -> None:
        """The gripper let go: the part is free until a station claims it or it is lost."""
        part.state, part.where = "free", ""

    def placed(self, part: Part, station: str, **data: Any) -> None:
        if part.state in ("placed", "dropped", "missed"):
            return
        part.state, part.where = "placed", station
        part.placed_t = self._cell.time
        self.counts["placed"] += 1
        self._cell.emit("placed", part=part.id, type=part.type, station=station, **data)

    def dropped(self, part: Part, reason: str, **data: Any) -> None:
        if part.state in ("placed", "dropped", "missed"):
            return
        part.state = "dropped"
        self.counts["dropped"] += 1
        self._cell.emit("dropped", part=part.id, type=part.type, reason=reason, **data)

    def missed(self, part: Part, where: str, remove: bool = True) -> None:
        """The part left the cell unpicked (the end of a conveyor)."""
        if part.state in ("placed", "dropped", "missed"):
            return
        part.state, part.where = "missed", where
        self.counts["missed"] += 1
        self._cell.emit("missed", part=part.id, type=part.type, where=where)
        if remove:
            self.remove(part)

    def remove(self, part: Part) -> None:
        """Take the part's body out of the physics (it stays in the registry)."""
        import pybullet as pb

        if part.body in self._by_body:
            del self._by_body[part.body]
            pb.removeBody(part.body, physicsClientId=self._cell.world.client)
            part.body = -1


__all__ = ["PART_STATES", "Device", "Part", "PartRegistry"]
