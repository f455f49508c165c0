"""Part types, seeded arrival processes and the part source that puts parts on a conveyor.

Randomness: a :class:`PartSource` draws from two generators seeded with
``[cell.seed, crc32(name), k]``: ``k = 0`` for the arrival times and ``k = 1`` for the part types
and the pose jitter, so changing the part mix does not move the arrival times. Every draw for an
arrival is made when the arrival happens, in time order, so a backed-up queue (which depends on the
physics) never changes which part comes next or where it lands.
"""

from __future__ import annotations

import bisect
import math
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device
from robocell.errors import ScenarioError
from robocell.pnp.conveyor import Conveyor, stable_id
from robocell.sim.world import World, pose_to_pb

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

SHAPES = ("box", "cylinder", "mesh")
#: parts are spawned this far above the surface so they never start in contact [m]
SPAWN_CLEARANCE = 2e-4
#: free space kept around a new part when checking that its spawn spot is clear [m]
SPAWN_GAP = 0.005


def _positive(value: Any, what: str, fld: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ScenarioError(f"{what} must be > 0, got {value!r}", field=fld)
    return float(value)


def mesh_bounds(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corner of the vertices of an OBJ or STL mesh, in the file's units.

    Raises:
        ScenarioError: the file cannot be read or holds no vertex.
    """
    path = Path(path)
    data = path.read_bytes()
    pts: np.ndarray
    if path.suffix.lower() == ".obj":
        rows = [
            line.split()[1:4]
            for line in data.decode("utf-8", "replace").splitlines()
            if line.startswith("v ")
        ]
        pts = np.array(rows, dtype=float) if rows else np.zeros((0, 3))
    elif path.suffix.lower() == ".stl":
        n = struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else -1
        if n >= 0 and len(data) == 84 + 50 * n:  # binary STL
            rec = np.frombuffer(data, dtype=np.uint8, count=50 * n, offset=84).reshape(n, 50)
            pts = rec[:, 12:48].copy().view("<f4").reshape(-1, 3).astype(float)
        else:
            words = data.decode("utf-8", "replace").split()
            idx = [i for i, w in enumerate(words) if w == "vertex"]
            pts = np.array([words[i + 1 : i + 4] for i in idx], dtype=float)
            pts = pts.reshape(-1, 3)
    else:
        raise ScenarioError(f"mesh must be an .obj or .stl file, got {path.name}")
    if len(pts) == 0:
        raise ScenarioError(f"mesh {path} has no vertices")
    return pts.min(axis=0), pts.max(axis=0)


@dataclass(frozen=True)
class PartType:
    """A kind of part: its shape, size, mass and share of the mix.

    Args:
        name: type name (reported in part events and KPIs).
        shape: ``"box"`` (``size``), ``"cylinder"`` (``radius``, ``height``; axis along the part's
            z) or ``"mesh"`` (``file``, ``scale``; collides with its convex hull).
        size: full box size (x, y, z) [m].
        radius: cylinder radius [m].
        height: cylinder height [m].
        file: mesh file (.obj or .stl); its units x ``scale`` = m.
        scale: mesh scale.
        mass: part mass [kg].
        friction: friction coefficient of the part's surface.
        color: RGBA.
        share: relative weight of this type in the mix (the shares need not sum to 1).
    """

    name: str
    shape: str
    size: tuple[float, float, float] | None = None
    radius: float | None = None
    height: float | None = None
    file: str | Path | None = None
    scale: float = 1.0
    mass: float = 0.1
    friction: float = 0.6
    color: tuple[float, float, float, float] = (0.85, 0.45, 0.1, 1.0)
    share: float = 1.0
    #: (lower, upper) corner of the part's geometry in its body frame [m]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        f = f"part_types.{self.name}"
        if self.shape not in SHAPES:
            raise ScenarioError(
                f"unknown part shape {self.shape!r} (choose {', '.join(SHAPES)})",
                field=f"{f}.shape",
            )
        _positive(self.mass, "mass [kg]", f"{f}.mass")
        if not (math.isfinite(self.friction) and self.friction >= 0):
            raise ScenarioError(
                f"friction must be >= 0, got {self.friction!r}", field=f"{f}.friction"
            )
        if not (math.isfinite(self.share) and self.share >= 0):
            raise ScenarioError(f"share must be >= 0, got {self.share!r}", field=f"{f}.share")
        if len(self.color) != 4:
            raise ScenarioError(f"color must be RGBA, got {self.color!r}", field=f"{f}.color")
        if self.shape == "box":
            if self.size is None or len(self.size) != 3:
                raise ScenarioError(
                    f"a box needs size: (x, y, z) in m, got {self.size!r}", field=f"{f}.size"
                )
            s = tuple(_positive(v, "every box size", f"{f}.size") for v in self.size)
            object.__setattr__(self, "size", s)
            lo, hi = tuple(-v / 2 for v in s), tuple(v / 2 for v in s)
        elif self.shape == "cylinder":
            r = _positive(self.radius, "cylinder radius [m]", f"{f}.radius")
            h = _positive(self.height, "cylinder height [m]", f"{f}.height")
            lo, hi = (-r, -r, -h / 2), (r, r, h / 2)
        else:
            if self.file is None:
                raise ScenarioError("a mesh part needs file", field=f"{f}.file")
            path = Path(self.file)
            if not path.is_file():
                raise ScenarioError(f"mesh file not found: {path}", field=f"{f}.file")
            sc = _positive(self.scale, "mesh scale", f"{f}.scale")
            a, b = mesh_bounds(path)
            lo, hi = tuple(float(v) for v in a * sc), tuple(float(v) for v in b * sc)
        object.__setattr__(self, "bounds", (lo, hi))

    @property
    def half_height(self) -> float:
        """Half the part's height along its z axis [m]."""
        lo, hi = self.bounds
        return (hi[2] - lo[2]) / 2

    @property
    def rest_offset(self) -> float:
        """Height of the part's body origin above a surface it stands on upright [m] (the
        half height for boxes and cylinders; for meshes it depends on where the origin is)."""
        return -self.bounds[0][2]

    @property
    def footprint_radius(self) -> float:
        """Radius of a circle around the body origin that covers the part seen from above
        [m]."""
        lo, hi = self.bounds
        return math.hypot(max(-lo[0], hi[0]), max(-lo[1], hi[1]))

    def create(
        self, world: World, pose: SE3, shapes: dict[str, tuple[int, int]] | None = None
    ) -> int:
        """Create a dynamic body of this type at ``pose``; returns the pybullet body id.

        With ``shapes`` (a cache owned by the caller, one per world), the collision and visual
        shapes are made once per type and shared by its bodies: pybullet keeps every shape ever
        created, so a long run that spawns thousands of parts would otherwise grow without end
        (and creating shapes is two thirds of the cost of a spawn).
        """
        if shapes is None:
            common = {
                "pose": pose,
                "mass": self.mass,
                "color": self.color,
                "friction": self.friction,
            }
            if self.shape == "box":
                assert self.size is not None
                return world.add_box(self.size, **common)
            if self.shape == "cylinder":
                assert self.radius is not None and self.height is not None
                return world.add_cylinder(self.radius, self.height, **common)
            assert self.file is not None
            return world.add_mesh(self.file, scale=self.scale, **common)
        cid = world.client
        if self.name not in shapes:
            shapes[self.name] = self._shapes(cid)
        col, vis = shapes[self.name]
        pos, orn = pose_to_pb(pose)
        body = pb.createMultiBody(self.mass, col, vis, pos, orn, physicsClientId=cid)
        # as World's bodies: no air damping
        pb.changeDynamics(
            body,
            -1,
            lateralFriction=self.friction,
            linearDamping=0.0,
            angularDamping=0.0,
            physicsClientId=cid,
        )
        return body

    def _shapes(self, cid: int) -> tuple[int, int]:
        """A (collision, visual) shape pair of this type in client ``cid``."""
        rgba = list(self.color)
        if self.shape == "box":
            assert self.size is not None
            half = [v / 2 for v in self.size]
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=cid)
            vis = pb.createVisualShape(
                pb.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=cid
            )
        elif self.shape == "cylinder":
            r, h = self.radius, self.height
            col = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=r, height=h, physicsClientId=cid)
            vis = pb.createVisualShape(
                pb.GEOM_CYLINDER, radius=r, length=h, rgbaColor=rgba, physicsClientId=cid
            )
        else:
            sc = [self.scale] * 3
            f = str(self.file)
            try:
                col = pb.createCollisionShape(
                    pb.GEOM_MESH, fileName=f, meshScale=sc, physicsClientId=cid
                )
                vis = pb.createVisualShape(
                    pb.GEOM_MESH, fileName=f, meshScale=sc, rgbaColor=rgba, physicsClientId=cid
                )
            except pb.error as exc:
                raise ScenarioError(f"pybullet cannot read mesh {f}: {exc}") from None
            if col < 0:
                raise ScenarioError(f"pybullet cannot read mesh {f}")
        return col, vis

    def describe(self) -> dict[str, Any]:
        """Geometry and mass as plain values (for a controller's ``info``)."""
        out: dict[str, Any] = {"shape": self.shape}
        if self.shape == "box":
            out["size"] = self.size
        elif self.shape == "cylinder":
            out["radius"] = self.radius
            out["height"] = self.height
        else:
            out["file"] = str(self.file)
            out["scale"] = self.scale
            out["bounds"] = self.bounds
        out["mass"] = self.mass
        out["half_height"] = self.half_height
        return out


# -- arrival processes ---------------------------------------------------------------------------
class Arrivals(Protocol):
    """An arrival process: when the next part comes."""

    def next_time(self, after: float, rng: np.random.Generator) -> float | None:
        """The arrival that follows one at time ``after`` [s] (``-inf`` asks for the first
        arrival); None when no more parts come."""
        ...


def _start(start_s: float) -> None:
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ScenarioError(f"start_s must be >= 0 s, got {start_s!r}", field="arrivals.start_s")


@dataclass(frozen=True)
class FixedInterval:
    """One part every ``interval_s`` [s], the first at ``start_s`` [s]."""

    interval_s: float
    start_s: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.interval_s, "interval_s", "arrivals.interval_s")
        _start(self.start_s)

    def next_time(self, after: float, rng: np.random.Generator) -> float | None:
        if after < self.start_s:
            return self.start_s
        # computed from the start, so many intervals never accumulate rounding errors
        k = math.floor((after - self.start_s) / self.interval_s + 1e-6) + 1
        return self.start_s + k * self.interval_s


@dataclass(frozen=True)
class PoissonArrivals:
    """Arrivals at random with a mean rate of ``rate_per_min`` [1/min] (exponential gaps; the
    first gap counts from ``start_s`` [s])."""

    rate_per_min: float
    start_s: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.rate_per_min, "rate_per_min", "arrivals.rate_per_min")
        _start(self.start_s)

    @property
    def mean_interval_s(self) -> float:
        """Mean time between arrivals [s]."""
        return 60.0 / self.rate_per_min

    def next_time(self, after: float, rng: np.random.Generator) -> float | None:
        base = after if math.isfinite(after) else self.start_s
        return base + float(rng.exponential(self.mean_interval_s))


@dataclass(frozen=True)
class ListArrivals:
    """Arrivals at the listed times [s] (strictly increasing, >= 0)."""

    times_s: tuple[float, ...]

    def __post_init__(self) -> None:
        t = tuple(float(v) for v in self.times_s)
        if any(not math.isfinite(v) or v < 0 for v in t):
            raise ScenarioError(f"times_s must be >= 0 s, got {list(t)}", field="arrivals.times_s")
        bad = [i for i in range(1, len(t)) if t[i] <= t[i - 1]]
        if bad:
            i = bad[0]
            raise ScenarioError(
                f"times_s must increase strictly; times_s[{i}] = {t[i]} follows {t[i - 1]}",
                field=f"arrivals.times_s[{i}]",
            )
        object.__setattr__(self, "times_s", t)

    def next_time(self, after: float, rng: np.random.Generator) -> float | None:
        i = bisect.bisect_right(self.times_s, after)
        return self.times_s[i] if i < len(self.times_s) else None


@dataclass
class _Arrival:
    """An arrival that has come and waits for its spawn spot to be clear."""

    t: float
    type: PartType
    lateral: float  # m
    yaw: float  # rad
    blocked: bool = False
    #: world pose of the part's body, and the box that must be clear of parts (computed at the
    #: first look: a blocked arrival is looked at again every tick)
    pose: SE3 | None = None
    box: tuple[list[float], list[float]] | None = None


class PartSource(Device):
    """Puts parts on a conveyor (or at a fixed pose) at the times of an arrival process.

    Args:
        name: device name; signals ``source.<name>.spawned`` (int) and ``source.<name>.waiting``
            (arrivals waiting for a clear spot).
        types: the part types; each arrival picks one with probability proportional to its
            ``share``.
        arrivals: :class:`FixedInterval`, :class:`PoissonArrivals`, :class:`ListArrivals` or any
            object with ``next_time(after, rng)``.
        conveyor: the belt to put parts on (added to the cell before the source).
        at: distance of the spawn spot from the start of the belt [m].
        pose: the spot on the supporting surface under the part's centre, when there is no
            conveyor (the part's z is the surface's normal).
        jitter_lateral: the part lands up to this far [m] either side of the spot (uniform),
            across the belt (along the pose's y without a belt).
        jitter_yaw_deg: the part is turned up to this far [deg] either way about the surface
            normal (uniform).
        max_parts: stop after this many arrivals (None: no limit).

    An arrival whose spot is still occupied by an earlier part (the queue backed up) waits until
    it is clear; such delays are counted in the KPIs and reported in the ``spawned`` event
    (``arrival_t``, ``delay_s``).
    """

    def __init__(
        self,
        name: str,
        types: Sequence[PartType],
        arrivals: Arrivals,
        conveyor: Conveyor | None = None,
        at: float = 0.1,
        pose: SE3 | None = None,
        jitter_lateral: float = 0.0,
        jitter_yaw_deg: float = 0.0,
        max_parts: int | None = None,
    ) -> None:
        f = f"devices.{name}"
        types = list(types)
        if not types or not all(isinstance(t, PartType) for t in types):
            raise ScenarioError("types must be a non-empty list of PartType", field=f"{f}.types")
        names = [t.name for t in types]
        if len(set(names)) != len(names):
            raise ScenarioError(f"part type names must be unique, got {names}", field=f"{f}.types")
        shares = np.array([t.share for t in types], dtype=float)
        if shares.sum() <= 0:
            raise ScenarioError("at least one part type needs a share > 0", field=f"{f}.types")
        if not hasattr(arrivals, "next_time"):
            raise ScenarioError(
                "arrivals must be FixedInterval, PoissonArrivals or ListArrivals, got "
                f"{type(arrivals).__name__}",
                field=f"{f}.arrivals",
            )
        if (conveyor is None) == (pose is None):
            raise ScenarioError(
                "give either a conveyor or a pose (where parts appear), not both or neither",
                field=f"{f}.conveyor",
            )
        if conveyor is not None:
            if not 0 <= at <= conveyor.length:
                raise ScenarioError(
                    f"at must be within the belt (0 to {conveyor.length} m), got {at!r}",
                    field=f"{f}.at",
                )
            if not 0 <= jitter_lateral < conveyor.width / 2:
                raise ScenarioError(
                    f"jitter_lateral must be >= 0 and less than half the belt width "
                    f"({conveyor.width / 2} m), got {jitter_lateral!r}",
                    field=f"{f}.jitter_lateral",
                )
        if not (math.isfinite(jitter_lateral) and jitter_lateral >= 0):
            raise ScenarioError(
                f"jitter_lateral must be >= 0 m, got {jitter_lateral!r}",
                field=f"{f}.jitter_lateral",
            )
        if not (math.isfinite(jitter_yaw_deg) and 0 <= jitter_yaw_deg <= 180):
            raise ScenarioError(
                f"jitter_yaw_deg must be between 0 and 180, got {jitter_yaw_deg!r}",
                field=f"{f}.jitter_yaw_deg",
            )
        if max_parts is not None and (not isinstance(max_parts, int) or max_parts < 0):
            raise ScenarioError(
                f"max_parts must be an integer >= 0 or None, got {max_parts!r}",
                field=f"{f}.max_parts",
            )
        self.name = name
        self.types = types
        self.arrivals = arrivals
        self.conveyor = conveyor
        self.at = float(at)
        self.pose = SE3(pose) if pose is not None else None
        self.jitter_lateral = float(jitter_lateral)
        self.jitter_yaw = math.radians(jitter_yaw_deg)
        self.max_parts = max_parts
        self._p = shares / shares.sum()
        self._rng_t: np.random.Generator | None = None
        self._rng_p: np.random.Generator | None = None
        self._next: float | None = None
        self._arrived = 0
        self._queue: deque[_Arrival] = deque()
        self._cell: Cell | None = None
        self._spot = SE3()
        self._shapes: dict[str, tuple[int, int]] = {}
        self._spawned = 0
        self._by_type = {n: 0 for n in names}
        self._delayed = 0
        self._worst_delay = 0.0
        self._sig_spawned = f"source.{name}.spawned"
        self._sig_waiting = f"source.{name}.waiting"

    def attach(self, cell: Cell) -> None:
        c = self.conveyor
        if c is not None:
            if cell.devices.get(c.name) is not c:
                raise ScenarioError(
                    f"conveyor '{c.name}' is not in the cell; add it before the source",
                    field=f"devices.{self.name}.conveyor",
                )
            # the spot on the belt surface; the belt frame's x runs along the belt
            self._spot = SE3(c.pose) * SE3.Tx(self.at - c.length / 2)
        else:
            assert self.pose is not None
            self._spot = SE3(self.pose)
        self._cell = cell
        sid = stable_id(self.name)
        self._rng_t = np.random.default_rng([cell.seed, sid, 0])
        self._rng_p = np.random.default_rng([cell.seed, sid, 1])

    def start(self, cell: Cell) -> None:
        assert self._rng_t is not None
        self._next = self._draw_next(-math.inf)
        cell.signals[self._sig_spawned] = 0
        cell.signals[self._sig_waiting] = 0

    def _draw_next(self, after: float) -> float | None:
        if self.max_parts is not None and self._arrived >= self.max_parts:
            return None
        assert self._rng_t is not None
        return self.arrivals.next_time(after, self._rng_t)

    def apply(self, cell: Cell) -> None:
        now = cell.time + 1e-9
        while self._next is not None and self._next <= now:
            self._queue.append(self._draw_arrival(self._next))
            self._arrived += 1
            self._next = self._draw_next(self._next)
        if self._queue:
            head = self._queue[0]
            pose, box = head.pose, head.box
            if pose is None or box is None:
                pose = head.pose = self._pose_of(head)
                box = head.box = self._spot_box(head.type, pose)
            if self._box_clear(cell, box):
                self._queue.popleft()
                self._spawn(cell, head, pose)
            else:
                head.blocked = True
            cell.signals[self._sig_waiting] = len(self._queue)

    def _draw_arrival(self, t: float) -> _Arrival:
        rng = self._rng_p
        assert rng is not None
        i = int(rng.choice(len(self.types), p=self._p))
        lateral = float(rng.uniform(-1.0, 1.0)) * self.jitter_lateral
        yaw = float(rng.uniform(-1.0, 1.0)) * self.jitter_yaw
        return _Arrival(t, self.types[i], lateral, yaw)

    def _pose_of(self, a: _Arrival) -> SE3:
        """World pose of the part's body for an arrival."""
        z = a.type.rest_offset + SPAWN_CLEARANCE
        return self._spot * SE3(0.0, a.lateral, z) * SE3.Rz(a.yaw)

    def _clear(self, cell: Cell, ptype: PartType, pose: SE3) -> bool:
        """Whether no part overlaps the space the new part will take (with a small gap)."""
        return self._box_clear(cell, self._spot_box(ptype, pose))

    @staticmethod
    def _box_clear(cell: Cell, box: tuple[list[float], list[float]]) -> bool:
        """Whether no registered part's bounding box overlaps ``box`` (world min, max [m])."""
        hits = pb.getOverlappingObjects(box[0], box[1], physicsClientId=cell.world.client)
        if not hits:
            return True
        by_body = cell.parts.by_body
        return not any(by_body(body) is not None for body, _link in hits)

    def _spot_box(self, ptype: PartType, pose: SE3) -> tuple[list[float], list[float]]:
        """World box (min, max corner [m]) around the space a part at ``pose`` takes, with a
        small gap, clear of the surface below."""
        r = ptype.footprint_radius + SPAWN_GAP
        lo, hi = ptype.bounds
        c = pose.t
        n = self._spot.R[:, 2]
        # world box around a vertical cylinder of radius r over the part's height
        bottom, top = c + n * lo[2], c + n * hi[2]
        ext = np.full(3, r)
        amin = np.minimum(bottom, top) - ext
        amax = np.maximum(bottom, top) + ext
        amin[2] = max(amin[2], min(bottom[2], top[2]) + 1e-3)  # not the surface below
        return amin.tolist(), amax.tolist()

    def _spawn(self, cell: Cell, a: _Arrival, pose: SE3) -> None:
        body = a.type.create(cell.world, pose, self._shapes)
        c = self.conveyor
        if c is not None and c.actual_speed != 0.0:
            # the part arrives moving with the belt, as if handed over from an upstream belt
            pb.resetBaseVelocity(
                body, c.belt_velocity().tolist(), [0.0, 0.0, 0.0], physicsClientId=cell.world.client
            )
        delay = max(0.0, cell.time - a.t)
        if a.blocked:
            self._delayed += 1
            self._worst_delay = max(self._worst_delay, delay)
        self._spawned += 1
        self._by_type[a.type.name] += 1
        cell.parts.spawn(
            body,
            a.type.name,
            where=c.name if c is not None else self.name,
            source=self.name,
            arrival_t=round(a.t, 9),
            delay_s=round(delay, 9),
        )
        cell.signals[self._sig_spawned] = self._spawned

    def info(self) -> dict[str, Any]:
        return {
            "type": "source",
            "conveyor": self.conveyor.name if self.conveyor is not None else None,
            "at": self.at,
            "spot": SE3(self._spot),
            "types": {t.name: t.describe() for t in self.types},
        }

    def kpis(self) -> dict[str, Any]:
        return {
            "spawned": self._spawned,
            "by_type": dict(self._by_type),
            "delayed_spawns": self._delayed,
            "worst_delay_s": round(self._worst_delay, 9),
            "waiting": len(self._queue),
        }


__all__ = [
    "Arrivals",
    "FixedInterval",
    "ListArrivals",
    "PartSource",
    "PartType",
    "PoissonArrivals",
    "mesh_bounds",
]
