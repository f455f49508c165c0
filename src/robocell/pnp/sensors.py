"""Pick-and-place sensors: a break beam, a presence box and a smart camera.

All three are :class:`~robocell.cell.devices.Device` objects that the cell calls after every
tick's physics (``sense``). Their outputs are PLC-like signals and cell events:

* :class:`BreakBeam` ``<name>``: signal ``beam.<name>`` (True while the light barrier is broken),
  one-tick pulses ``beam.<name>.rise`` / ``beam.<name>.fall`` and events
  ``beam {name, edge: "rise" | "fall", part}``.
* :class:`PresenceSensor` ``<name>``: signal ``presence.<name>`` (True while a part's origin is
  inside the box), the same pulses and events ``presence {name, edge, part}``.
* :class:`Camera` ``<name>``: events ``detected {camera, part, type, xyz, yaw, t_capture}``
  delivered ``latency_s`` after each frame, with seeded noise and misses.

Times are cell times [s]; sampling periods are counted in physics steps so they never drift.
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device
from robocell.errors import ScenarioError
from robocell.record.video import render_rgb

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

_ray_test = pb.rayTest  # (every tick)

#: part states a camera reports (parts in a gripper or already placed are not looked for)
CAMERA_PART_STATES = ("on_conveyor", "free")


# -- input checks ----------------------------------------------------------------------------
def _vec3(value: Any, field: str) -> np.ndarray:
    """Three finite floats, or ScenarioError naming ``field``."""
    try:
        v = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ScenarioError(f"expected three numbers, got {value!r}", field=field) from None
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ScenarioError(f"expected three finite numbers, got {value!r}", field=field)
    return v


def _size3(value: Any, field: str) -> np.ndarray:
    v = _vec3(value, field)
    if np.any(v <= 0):
        raise ScenarioError(f"sizes must be > 0 m, got {value!r}", field=field)
    return v


def _se3(value: Any, field: str) -> SE3:
    if not isinstance(value, SE3) or len(value) != 1:
        raise ScenarioError(f"expected one spatialmath SE3 pose, got {value!r}", field=field)
    return value


def _number(
    value: Any, field: str, low: float, high: float = math.inf, low_open: bool = False
) -> float:
    """A finite float in [low, high] ((low, high] when ``low_open``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"expected a number, got {value!r}", field=field) from None
    bad_low = x <= low if low_open else x < low
    if not math.isfinite(x) or bad_low or x > high:
        bracket = "(" if low_open else "["
        raise ScenarioError(
            f"must be in {bracket}{low}, {high}], got {value!r}",
            field=field,
        )
    return x


def _name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"a sensor needs a non-empty name, got {name!r}", field=field)
    return name


# -- shared machinery ----------------------------------------------------------------------------
class _Sampler:
    """Decides on which ticks a sensor samples: every tick (``period_s`` None) or the first tick
    at or after each multiple of the period after the start (counted in physics steps)."""

    def __init__(self, period_s: float | None, field: str) -> None:
        self.period_s = None if period_s is None else _number(period_s, field, 0.0, low_open=True)
        self.field = field
        self._every = 0
        self._next = 0

    def start(self, cell: Cell) -> None:
        if self.period_s is None:
            self._every = 0
            return
        self._every = cell.world.steps_for(self.period_s, self.field)
        self._next = cell.world.steps + self._every

    def due(self, cell: Cell) -> bool:
        if self._every == 0:
            return True
        steps = cell.world.steps
        if steps < self._next:
            return False
        # skip the multiples that fell inside this tick (period shorter than the tick)
        self._next += self._every * ((steps - self._next) // self._every + 1)
        return True


class _EdgeSignals:
    """A boolean signal ``key`` with one-tick pulses ``key.rise`` / ``key.fall`` and an event per
    edge."""

    def __init__(self, key: str, kind: str, name: str) -> None:
        self.key = key
        self.rise_key = f"{key}.rise"
        self.fall_key = f"{key}.fall"
        self.kind = kind
        self.name = name
        self.state = False
        self.part = 0  # the part that caused the last rise
        self.rises = 0
        self._pulse = False

    def start(self, cell: Cell) -> None:
        sig = cell.signals
        sig[self.key] = self.state
        sig[self.rise_key] = False
        sig[self.fall_key] = False

    def clear_pulses(self, cell: Cell) -> None:
        if self._pulse:
            cell.signals[self.rise_key] = False
            cell.signals[self.fall_key] = False
            self._pulse = False

    def update(self, cell: Cell, state: bool, part: int) -> None:
        if state == self.state:
            return
        self.state = state
        self._pulse = True
        sig = cell.signals
        sig[self.key] = state
        if state:
            self.part = part
            self.rises += 1
            sig[self.rise_key] = True
            cell.emit(self.kind, name=self.name, edge="rise", part=part)
        else:
            sig[self.fall_key] = True
            cell.emit(self.kind, name=self.name, edge="fall", part=self.part)


class _Box:
    """An oriented box: centre pose and full size [m]; point tests in plain Python floats (a
    few numpy calls on 3-vectors cost more than the whole test)."""

    def __init__(self, pose: SE3, size: np.ndarray) -> None:
        R = np.array(pose.R, dtype=float)
        self.centre = np.array(pose.t, dtype=float)
        self.half = size / 2.0
        self._c = tuple(float(v) for v in self.centre)
        self._h = tuple(float(v) for v in self.half)
        self._axes = tuple(tuple(float(v) for v in R[:, i]) for i in range(3))
        ext = np.abs(R) @ self.half
        #: world axis-aligned bounds [m]
        self.aabb_min = [float(v) for v in self.centre - ext]
        self.aabb_max = [float(v) for v in self.centre + ext]

    def contains(self, p: Sequence[float]) -> bool:
        """Whether world point ``p`` [m] is inside (or on) the box."""
        cx, cy, cz = self._c
        dx, dy, dz = p[0] - cx, p[1] - cy, p[2] - cz
        for (ax, ay, az), h in zip(self._axes, self._h):
            if abs(dx * ax + dy * ay + dz * az) > h:
                return False
        return True


def _yaw(quat_xyzw: Sequence[float]) -> float:
    """Heading of a body's x axis about the world z axis [rad]."""
    x, y, z, w = quat_xyzw
    return math.atan2(2.0 * (x * y + z * w), 1.0 - 2.0 * (y * y + z * z))


# -- break beam ----------------------------------------------------------------------------------
class BreakBeam(Device):
    """A light barrier between two world points; broken by any body in the ray's way.

    Args:
        name: device name; the signal is ``beam.<name>``.
        start: emitter position, world frame [m].
        end: receiver position, world frame [m].
        period_s: sampling period [s], a multiple of the physics step (None: every tick).

    Signals: ``beam.<name>`` (bool, True while broken), ``beam.<name>.rise`` and
    ``beam.<name>.fall`` (True for exactly the one tick on which the edge was seen). Events:
    ``beam {name, edge, part}``, ``part`` the id of the registered part that broke the beam or 0
    for any other body (the fall names the part of the rise).

    The ray is Bullet's ``rayTest``: it sees the first body along it, exact to about 0.7 mm
    against a box's face, and not a body it starts inside.
    """

    def __init__(
        self,
        name: str,
        start: Sequence[float],
        end: Sequence[float],
        period_s: float | None = None,
    ) -> None:
        self.name = _name(name)
        self.start_xyz = _vec3(start, f"{name}.start")
        self.end_xyz = _vec3(end, f"{name}.end")
        if np.linalg.norm(self.end_xyz - self.start_xyz) < 1e-6:
            raise ScenarioError(
                f"beam start and end are the same point {list(self.start_xyz)}", field=f"{name}.end"
            )
        self._sampler = _Sampler(period_s, f"{name}.period_s")
        self._edges = _EdgeSignals(f"beam.{name}", "beam", name)
        self._from = [float(v) for v in self.start_xyz]
        self._to = [float(v) for v in self.end_xyz]
        self._client = -1
        self._samples = 0

    @classmethod
    def across(
        cls,
        name: str,
        conveyor_info: Mapping[str, Any],
        at: float,
        height: float,
        period_s: float | None = None,
        overhang: float = 0.0,
    ) -> BreakBeam:
        """A beam straight across a conveyor, perpendicular to its travel.

        Args:
            name: device name.
            conveyor_info: the conveyor's ``info()``: ``start`` (xyz [m] of the belt's centreline
                start on its surface), ``direction`` (unit travel vector), ``width`` [m],
                ``surface_z`` [m] (and optionally ``length`` [m], checked against ``at``).
            at: distance along the belt from its start [m].
            height: height of the beam above the belt surface [m].
            period_s: sampling period [s] (None: every tick).
            overhang: how far the beam's ends reach beyond the belt's edges [m] (keep them
                clear of side rails: a ray that starts inside a body does not see it).
        """
        missing = [
            k for k in ("start", "direction", "width", "surface_z") if k not in conveyor_info
        ]
        if missing:
            raise ScenarioError(
                f"conveyor info lacks {', '.join(missing)} (has {', '.join(conveyor_info)})",
                field=f"{name}.conveyor",
            )
        start = _vec3(conveyor_info["start"], f"{name}.conveyor.start")
        direction = _vec3(conveyor_info["direction"], f"{name}.conveyor.direction")
        width = _number(conveyor_info["width"], f"{name}.conveyor.width", 0.0, low_open=True)
        surface_z = _number(conveyor_info["surface_z"], f"{name}.conveyor.surface_z", -math.inf)
        length = conveyor_info.get("length")
        top = math.inf if length is None else float(length)
        at = _number(at, f"{name}.at", 0.0, top)
        height = _number(height, f"{name}.height", 0.0, low_open=True)
        overhang = _number(overhang, f"{name}.overhang", 0.0)
        horizontal = np.array([direction[0], direction[1], 0.0])
        if np.linalg.norm(horizontal) < 1e-9:
            raise ScenarioError(
                f"conveyor direction must not be vertical, got {list(direction)}",
                field=f"{name}.conveyor.direction",
            )
        direction = direction / np.linalg.norm(direction)
        lateral = np.cross([0.0, 0.0, 1.0], horizontal)
        lateral /= np.linalg.norm(lateral)
        centre = start + at * direction
        centre[2] = surface_z + at * direction[2] + height
        half = width / 2.0 + overhang
        return cls(name, centre - half * lateral, centre + half * lateral, period_s)

    def attach(self, cell: Cell) -> None:
        self._client = cell.world.client

    def start(self, cell: Cell) -> None:
        self._sampler.start(cell)
        self._edges.start(cell)

    def sense(self, cell: Cell) -> None:
        edges = self._edges
        edges.clear_pulses(cell)
        if not self._sampler.due(cell):
            return
        self._samples += 1
        body = _ray_test(self._from, self._to, physicsClientId=self._client)[0][0]
        broken = body >= 0
        if broken == edges.state:
            return  # no edge (what update() would find)
        part = 0
        if broken:
            p = cell.parts.by_body(body)
            part = p.id if p is not None else 0
        edges.update(cell, broken, part)

    def info(self) -> dict[str, Any]:
        return {
            "type": "beam",
            "start": self.start_xyz.copy(),
            "end": self.end_xyz.copy(),
            "signal": self._edges.key,
            "period_s": self._sampler.period_s,
        }

    def kpis(self) -> dict[str, Any]:
        return {"breaks": self._edges.rises}


# -- presence ------------------------------------------------------------------------------------
class PresenceSensor(Device):
    """A box region that reports whether any registered part's origin is inside it.

    Args:
        name: device name; the signal is ``presence.<name>``.
        pose: pose of the box's centre, world frame.
        size: full box size along its own x, y, z [m].
        period_s: sampling period [s] (None: every tick).

    Signals: ``presence.<name>`` (bool), ``presence.<name>.rise`` / ``.fall`` (one-tick pulses),
    ``presence.<name>.count`` (int, parts inside). Events: ``presence {name, edge, part}``.
    """

    def __init__(
        self,
        name: str,
        pose: SE3,
        size: Sequence[float],
        period_s: float | None = None,
    ) -> None:
        self.name = _name(name)
        self.pose = _se3(pose, f"{name}.pose")
        self.size = _size3(size, f"{name}.size")
        self._box = _Box(self.pose, self.size)
        self._sampler = _Sampler(period_s, f"{name}.period_s")
        self._edges = _EdgeSignals(f"presence.{name}", "presence", name)
        self._count_key = f"presence.{name}.count"
        self._client = -1
        self._inside: list[int] = []

    def attach(self, cell: Cell) -> None:
        self._client = cell.world.client

    def start(self, cell: Cell) -> None:
        self._sampler.start(cell)
        self._edges.start(cell)
        cell.signals[self._count_key] = 0

    def parts_inside(self, cell: Cell) -> list[int]:
        """Ids of the registered parts whose origin is inside the box now (ascending)."""
        cid = self._client
        hits = pb.getOverlappingObjects(self._box.aabb_min, self._box.aabb_max, physicsClientId=cid)
        if not hits:
            return []
        found: list[int] = []
        seen: set[int] = set()
        for body, _link in hits:
            if body in seen:
                continue
            seen.add(body)
            p = cell.parts.by_body(body)
            if p is None:
                continue
            pos, _ = pb.getBasePositionAndOrientation(body, physicsClientId=cid)
            if self._box.contains(pos):
                found.append(p.id)
        found.sort()
        return found

    def sense(self, cell: Cell) -> None:
        edges = self._edges
        edges.clear_pulses(cell)
        if not self._sampler.due(cell):
            return
        inside = self.parts_inside(cell)
        if len(inside) != len(self._inside):
            cell.signals[self._count_key] = len(inside)
        if inside and not edges.state:
            edges.update(cell, True, inside[0])
        elif not inside and edges.state:
            # the fall names the last part that left
            edges.part = self._inside[-1] if self._inside else edges.part
            edges.update(cell, False, 0)
        self._inside = inside

    def info(self) -> dict[str, Any]:
        return {
            "type": "presence",
            "pose": self.pose,
            "size": self.size.copy(),
            "signal": self._edges.key,
            "period_s": self._sampler.period_s,
        }

    def kpis(self) -> dict[str, Any]:
        return {"arrivals": self._edges.rises}


# -- camera --------------------------------------------------------------------------------------
class Camera(Device):
    """A smart camera that reports the poses and types of the parts in its field of view.

    Every ``period_s`` it captures a frame: each registered part in state ``on_conveyor`` or
    ``free`` whose origin is inside ``region`` is missed with probability ``miss_rate``, else
    detected with Gaussian noise on x, y (std ``noise_xy_m``) and yaw (std ``noise_yaw_deg``).
    Detections are delivered ``latency_s`` later (rounded up to the tick) as cell events
    ``detected {camera, part, type, xyz: [x, y, z] m world, yaw: rad, t_capture: s}``; the
    event's ``t`` is the delivery time. Noise and misses come from a generator seeded by the
    cell seed and the camera name, so the same seed gives the same detections.

    Args:
        name: device name.
        pose: camera pose for :meth:`render`, world frame, optical axis along its z, image x
            along its x, image y (down) along its y (None: straight down onto the region).
        region: the field of view as a box: (centre pose SE3, full size (x, y, z) [m]).
        period_s: frame period [s], a multiple of the physics step.
        noise_xy_m: standard deviation of the reported x and y [m].
        noise_yaw_deg: standard deviation of the reported yaw [deg].
        miss_rate: probability that a part in view is not reported in a frame, in [0, 1].
        latency_s: delay from capture to delivery [s].
        image_size: (width, height) of :meth:`render` [px].
        fov_deg: vertical field of view of :meth:`render` [deg].
    """

    def __init__(
        self,
        name: str,
        pose: SE3 | None = None,
        region: tuple[SE3, Sequence[float]] | None = None,
        period_s: float = 0.1,
        noise_xy_m: float = 0.0,
        noise_yaw_deg: float = 0.0,
        miss_rate: float = 0.0,
        latency_s: float = 0.0,
        image_size: tuple[int, int] = (320, 240),
        fov_deg: float = 60.0,
    ) -> None:
        self.name = _name(name)
        if region is None:
            raise ScenarioError(
                "a camera needs a region: (centre pose SE3, size (x, y, z) in m)",
                field=f"{name}.region",
            )
        try:
            centre, size = region
        except (TypeError, ValueError):
            raise ScenarioError(
                f"region must be (centre pose SE3, size (x, y, z) in m), got {region!r}",
                field=f"{name}.region",
            ) from None
        self.region_pose = _se3(centre, f"{name}.region")
        self.region_size = _size3(size, f"{name}.region.size")
        self.pose = None if pose is None else _se3(pose, f"{name}.pose")
        self.period_s = _number(period_s, f"{name}.period_s", 0.0, low_open=True)
        self._sampler = _Sampler(self.period_s, f"{name}.period_s")
        self.noise_xy_m = _number(noise_xy_m, f"{name}.noise_xy_m", 0.0)
        self.noise_yaw_deg = _number(noise_yaw_deg, f"{name}.noise_yaw_deg", 0.0)
        self.miss_rate = _number(miss_rate, f"{name}.miss_rate", 0.0, 1.0)
        self.latency_s = _number(latency_s, f"{name}.latency_s", 0.0)
        try:
            w, h = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ScenarioError(
                f"image_size must be (width, height) in px, got {image_size!r}",
                field=f"{name}.image_size",
            ) from None
        if w < 1 or h < 1 or w > 4096 or h > 4096:
            raise ScenarioError(
                f"image_size must be 1..4096 px each, got {image_size!r}",
                field=f"{name}.image_size",
            )
        self.image_size = (w, h)
        self.fov_deg = _number(fov_deg, f"{name}.fov_deg", 0.0, 170.0, low_open=True)
        self._box = _Box(self.region_pose, self.region_size)
        self._noise_yaw = math.radians(self.noise_yaw_deg)
        self._rng = np.random.default_rng(0)
        self._client = -1
        self._latency_steps = 0
        #: detections waiting for delivery: (delivery step, capture time, event data)
        self._pending: deque[tuple[int, float, dict[str, Any]]] = deque()
        self._frames = 0
        self._detections = 0
        self._misses = 0
        self._latency_sum = 0.0

    # -- device hooks ----------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        self._client = cell.world.client
        self._rng = np.random.default_rng([cell.seed, zlib.crc32(self.name.encode())])

    def start(self, cell: Cell) -> None:
        self._sampler.start(cell)
        # a latency between steps is delivered on the next step (then on the next tick)
        self._latency_steps = math.ceil(self.latency_s / cell.world.physics_step - 1e-9)

    def sense(self, cell: Cell) -> None:
        steps = cell.world.steps
        if self._sampler.due(cell):
            self._capture(cell, steps)
        pending = self._pending
        while pending and pending[0][0] <= steps:
            _, t_capture, data = pending.popleft()
            self._detections += 1
            self._latency_sum += cell.time - t_capture
            cell.emit("detected", **data)

    def _capture(self, cell: Cell, steps: int) -> None:
        """Look at the parts in view now and queue their (noisy) detections."""
        self._frames += 1
        cid = self._client
        t = cell.time
        rng = self._rng
        due = steps + self._latency_steps
        for part in cell.parts.active():
            if part.state not in CAMERA_PART_STATES or part.body < 0:
                continue
            pos, quat = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)
            if not self._box.contains(pos):
                continue
            # always draw the same four numbers per part in view, so that changing one setting
            # (the miss rate) does not reshuffle the noise of the others
            u = float(rng.random())
            nx, ny, nyaw = rng.standard_normal(3)
            if u < self.miss_rate:
                self._misses += 1
                continue
            yaw = _yaw(quat) + self._noise_yaw * float(nyaw)
            yaw = math.remainder(yaw, math.tau)
            data = {
                "camera": self.name,
                "part": part.id,
                "type": part.type,
                "xyz": [
                    float(pos[0] + self.noise_xy_m * nx),
                    float(pos[1] + self.noise_xy_m * ny),
                    float(pos[2]),
                ],
                "yaw": yaw,
                "t_capture": round(t, 9),
            }
            self._pending.append((due, t, data))

    def info(self) -> dict[str, Any]:
        return {
            "type": "camera",
            "pose": self.view_pose(),
            "region": (self.region_pose, self.region_size.copy()),
            "period_s": self.period_s,
            "latency_s": self.latency_s,
            "noise_xy_m": self.noise_xy_m,
            "noise_yaw_deg": self.noise_yaw_deg,
            "miss_rate": self.miss_rate,
        }

    def kpis(self) -> dict[str, Any]:
        return {
            "frames": self._frames,
            "detections": self._detections,
            "misses": self._misses,
            "mean_latency_s": (
                self._latency_sum / self._detections if self._detections else float("nan")
            ),
        }

    # -- image -----------------------------------------------------------------------------------
    def view_pose(self) -> SE3:
        """The pose :meth:`render` looks from: ``pose``, or straight down onto the region's
        centre from the distance at which the region's footprint fills the image."""
        if self.pose is not None:
            return self.pose
        w, h = self.image_size
        tan_v = math.tan(math.radians(self.fov_deg) / 2.0)
        sx, sy, sz = self.region_size
        dist = 1.05 * max(sy / 2.0 / tan_v, sx / 2.0 / (tan_v * w / h))
        dist = max(dist, sz / 2.0 + 0.05)
        # optical z down the region's -z, image x along the region's x, image y down its -y
        return self.region_pose * SE3(0.0, 0.0, dist) * SE3.Rx(math.pi)

    def render(self, cell: Cell) -> np.ndarray:
        """An image from :meth:`view_pose` by pybullet's TinyRenderer, shape (H, W, 3) uint8."""
        T = self.view_pose()
        R = np.array(T.R)
        eye = np.array(T.t)
        far = max(10.0, 4.0 * float(np.linalg.norm(eye - self._box.centre)))
        return render_rgb(
            cell.world.client,
            eye,
            eye + R[:, 2],
            -R[:, 1],
            self.image_size,
            self.fov_deg,
            near=0.01,
            far=far,
        )


__all__ = ["CAMERA_PART_STATES", "BreakBeam", "Camera", "PresenceSensor"]
