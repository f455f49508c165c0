"""The scenario format as typed, frozen models (pydantic). Raw dicts never travel inward.

Units: SI everywhere (m, s, kg, rad); a key ending in ``_deg`` is in degrees and is converted once,
here, at the edge.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from spatialmath import SE3


def _not_bool(value: Any) -> Any:
    # YAML's true/false would pass as 1 and 0 (a bool is an int to Python and to pydantic's lax
    # mode): ``duration: true`` must be an error, not a one-second run
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return value


_NotBool = BeforeValidator(_not_bool)
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False), _NotBool]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False), _NotBool]
Finite = Annotated[float, Field(allow_inf_nan=False), _NotBool]
Vec3 = tuple[Finite, Finite, Finite]
Unit = Annotated[float, Field(ge=0, le=1), _NotBool]
Int = Annotated[int, _NotBool]
#: Names of stations, sensors, objects and devices (they become signal and column names).
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _known_type(kind: str, tags: tuple[str, ...]) -> Callable[[Any], Any]:
    """A check run before a ``type``-discriminated union: a missing or unknown ``type`` gets a
    message that lists the valid types (and the nearest one) instead of pydantic's."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        if "type" not in value:
            raise ValueError(f"a {kind} needs a 'type': {', '.join(tags)}")
        tag = value["type"]
        if tag not in tags:
            close = difflib.get_close_matches(str(tag), tags, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown {kind} type '{tag}'{hint}; types: {', '.join(tags)}")
        return value

    return check


class Pose(_Model):
    """A pose: position ``xyz`` [m] and orientation as roll-pitch-yaw (``rpy_deg`` in degrees or
    ``rpy`` in radians, fixed axes x-y-z)."""

    xyz: Vec3 = (0.0, 0.0, 0.0)
    rpy_deg: Vec3 | None = None
    rpy: Vec3 | None = None

    @model_validator(mode="after")
    def _one_rotation(self) -> Pose:
        if self.rpy_deg is not None and self.rpy is not None:
            raise ValueError("give either rpy_deg or rpy, not both")
        return self

    def se3(self) -> SE3:
        rpy = (
            np.radians(self.rpy_deg)
            if self.rpy_deg is not None
            else np.asarray(self.rpy if self.rpy is not None else (0.0, 0.0, 0.0))
        )
        return SE3(*self.xyz) * SE3.RPY(rpy, order="zyx")


class WorldSpec(_Model):
    """Physics settings."""

    physics_step: PositiveFloat = Field(0.001, ge=1e-5, le=0.05, description="physics step [s]")
    gravity: Vec3 = Field((0.0, 0.0, -9.81), description="gravity [m/s²]")
    solver_iterations: Int = Field(50, ge=1, le=1000)
    ground: bool = Field(True, description="add a ground plane at z = 0")


class VacuumGripperSpec(_Model):
    """A vacuum gripper: holding force = cups x vacuum x cup area."""

    type: Literal["vacuum"]
    cup_diameter: PositiveFloat = Field(0.03, le=0.5, description="suction cup diameter [m]")
    cups: Int = Field(1, ge=1, le=64)
    vacuum_kpa: PositiveFloat = Field(60.0, le=101.0, description="gauge vacuum [kPa]")
    cup_friction: PositiveFloat = Field(0.5, description="cup-part friction coefficient")
    tcp_offset: PositiveFloat = Field(0.12, le=1.0, description="flange to cup face [m]")
    mass: PositiveFloat = Field(0.4, description="gripper mass [kg]")


class ParallelGripperSpec(_Model):
    """A parallel two-finger gripper holding by friction."""

    type: Literal["parallel"]
    max_width: PositiveFloat = Field(0.085, le=0.5, description="finger stroke [m]")
    grip_force: PositiveFloat = Field(40.0, description="grip force limit per finger [N]")
    finger_friction: PositiveFloat = Field(1.0, description="finger-part friction coefficient")
    close_speed: PositiveFloat = Field(0.1, description="finger speed [m/s]")
    finger_length: PositiveFloat = Field(0.05, le=0.5, description="[m]")
    tcp_offset: PositiveFloat = Field(0.15, le=1.0, description="flange to finger centre [m]")
    mass: PositiveFloat = Field(0.9, description="gripper mass with fingers [kg]")


GripperSpec = Annotated[
    VacuumGripperSpec | ParallelGripperSpec,
    Field(discriminator="type"),
    BeforeValidator(_known_type("gripper", ("vacuum", "parallel"))),
]


class ToolSpec(_Model):
    """The tool on a robot's flange (a plain tool, or a gripper)."""

    # the gripper comes first so that tcp and mass, validated after it, can refuse it (and the
    # error points at the tcp or mass line)
    gripper: GripperSpec | None = None
    name: str = "tool"
    tcp: Pose | None = Field(None, description="TCP in the flange frame (a gripper has its own)")
    mass: NonNegFloat | None = Field(None, description="tool mass [kg]")
    radius: PositiveFloat = Field(0.03, description="radius of the tool body [m]")

    @field_validator("tcp", "mass", "radius")
    @classmethod
    def _gripper_owns_tcp(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("gripper") is not None:
            own = {
                "tcp": "use gripper.tcp_offset",
                "mass": "use gripper.mass",
                "radius": "from its cups or fingers",
            }[str(info.field_name)]
            raise ValueError(f"a gripper sets the tool's {info.field_name} itself ({own})")
        return v


class GainsSpec(_Model):
    """Joint servo gains of a simulated robot."""

    position: PositiveFloat = Field(0.3, le=1.0)
    velocity: PositiveFloat = Field(1.0, le=2.0)


class BackendSpec(_Model):
    """Where a robot's commands go: a remote robot over the bridge (a RobotServer or SimServer)."""

    remote: str = Field(
        pattern=r"^(tcp|ipc|inproc)://.+",
        description="endpoint of the robot's server, e.g. tcp://robot-pc:6000",
    )
    mode: Literal["lockstep", "realtime"] = Field("lockstep", description="the server's mode")
    robot: str | None = Field(None, description="the robot's name on the server (default: ours)")
    timeout: PositiveFloat = Field(5.0, description="reply timeout [s]")
    key: str | None = Field(None, description="this cell's CurveZMQ .key_secret file")
    server_key: str | None = Field(None, description="the server's public .key file")

    @model_validator(mode="after")
    def _keys(self) -> BackendSpec:
        if (self.key is None) != (self.server_key is None):
            raise ValueError("CurveZMQ needs both key and server_key")
        return self


class RobotSpec(_Model):
    """A robot in the cell."""

    name: str = Field(pattern=NAME_PATTERN)
    model: str = Field(description="library model (e.g. ur5e) or path to a URDF file")
    base: Pose = Field(default_factory=Pose)
    control_period: PositiveFloat = Field(0.002, description="control period [s]")
    tool: ToolSpec | None = None
    q0_deg: list[Finite] | None = Field(None, description="initial joints [deg] (default: home)")
    gains: GainsSpec = Field(default_factory=GainsSpec)
    backend: BackendSpec | None = Field(
        None, description="a remote robot over the bridge (default: simulated)"
    )


class ObjectSpec(_Model):
    """A static or dynamic body: box (size), cylinder (radius, height), sphere (radius) or mesh
    (file, scale)."""

    name: str
    shape: Literal["box", "cylinder", "sphere", "mesh"]
    pose: Pose = Field(default_factory=Pose)
    mass: NonNegFloat = Field(0.0, description="kg; 0 = static")
    size: Vec3 | None = None
    radius: PositiveFloat | None = None
    height: PositiveFloat | None = None
    file: str | None = None
    scale: PositiveFloat = 1.0
    color: tuple[Unit, Unit, Unit, Unit] = Field((0.6, 0.6, 0.6, 1.0), description="RGBA 0-1")
    friction: NonNegFloat = 0.6

    @model_validator(mode="after")
    def _dims(self) -> ObjectSpec:
        need = {
            "box": ("size",),
            "cylinder": ("radius", "height"),
            "sphere": ("radius",),
            "mesh": ("file",),
        }[self.shape]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.shape} needs {' and '.join(missing)}")
        extra = [
            k
            for k in ("size", "radius", "height", "file")
            if k not in need and getattr(self, k) is not None
        ]
        if extra:
            raise ValueError(
                f"a {self.shape} takes no {' or '.join(extra)} (it needs {', '.join(need)})"
            )
        if self.size is not None and min(self.size) <= 0:
            raise ValueError("size must be three positive lengths [m]")
        return self


def _check_dims(shape: str, obj: Any) -> None:
    need = {
        "box": ("size",),
        "cylinder": ("radius", "height"),
        "sphere": ("radius",),
        "mesh": ("file",),
    }[shape]
    missing = [k for k in need if getattr(obj, k) is None]
    if missing:
        raise ValueError(f"a {shape} needs {' and '.join(missing)}")
    extra = [
        k
        for k in ("size", "radius", "height", "file")
        if k not in need and getattr(obj, k, None) is not None
    ]
    if extra:
        raise ValueError(f"a {shape} takes no {' or '.join(extra)} (it needs {', '.join(need)})")
    if getattr(obj, "size", None) is not None and min(obj.size) <= 0:
        raise ValueError("size must be three positive lengths [m]")


# -- pick and place ------------------------------------------------------------------------------
class ConveyorSpec(_Model):
    """A belt conveyor; ``pose`` is the centre of the belt's top surface, the belt runs along
    its local +x."""

    type: Literal["conveyor"]
    name: str = Field(pattern=NAME_PATTERN)
    pose: Pose
    length: PositiveFloat = Field(le=50.0, description="[m]")
    width: PositiveFloat = Field(le=5.0, description="[m]")
    speed: NonNegFloat = Field(0.2, le=5.0, description="belt speed [m/s]")
    accel: PositiveFloat = Field(2.0, description="belt start/stop ramp [m/s²]")
    running: bool = True
    end: Literal["fall", "remove"] = Field("fall", description="what happens at the belt's end")
    outfeed: bool = Field(False, description="parts released onto it count as placed")
    friction: NonNegFloat = 1.0


class BinSpec(_Model):
    """An open box; ``pose`` is the centre of its floor, ``size`` its outer x, y and its wall
    height above the floor [m]."""

    type: Literal["bin"]
    name: str = Field(pattern=NAME_PATTERN)
    pose: Pose
    size: Vec3
    wall: PositiveFloat = Field(0.01, description="wall thickness [m]")
    unload_after: NonNegFloat | None = Field(
        None, description="each part is taken away this long after it was placed [s]"
    )

    @field_validator("size")
    @classmethod
    def _pos(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) <= 0:
            raise ValueError("size must be three positive lengths [m]")
        return v


class PalletSpec(_Model):
    """A pallet with a grid of slots; ``pose`` is the centre of its top surface."""

    type: Literal["pallet"]
    name: str = Field(pattern=NAME_PATTERN)
    pose: Pose
    rows: Int = Field(ge=1, le=100)
    cols: Int = Field(ge=1, le=100)
    pitch: tuple[PositiveFloat, PositiveFloat] = Field(description="slot pitch x, y [m]")
    thickness: PositiveFloat = Field(0.02, description="[m]")
    unload_after: NonNegFloat | None = Field(
        None, description="the full pallet is exchanged this long after it filled up [s]"
    )


class FixtureSpec(_Model):
    """A fixture: ``pose`` is the seated part's pose, ``size`` the fixture block [m]."""

    type: Literal["fixture"]
    name: str = Field(pattern=NAME_PATTERN)
    pose: Pose
    size: Vec3
    tolerance: PositiveFloat = Field(0.005, description="accepted position error [m]")
    unload_after: NonNegFloat | None = Field(
        None, description="the seated part is taken out this long after it was placed [s]"
    )


class StockSpec(_Model):
    """The raw stock: a block whose frame has its origin at the corner (minimum x, y) of its
    bottom face; the tool axis is the stock's -z."""

    pose: Pose = Field(description="world pose of the stock frame")
    size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = Field(description="x, y, z [m]")
    grid: PositiveFloat = Field(
        0.0005, le=0.01, description="height-field cell [m] (0.5 mm default)"
    )


class CutterSpec(_Model):
    """The milling cutter or drill in the spindle."""

    type: Literal["flat", "ball", "bullnose"] = "flat"
    diameter: PositiveFloat = Field(le=0.1, description="[m]")
    corner_radius: NonNegFloat = Field(0.0, description="bull-nose corner radius [m]")
    flutes: Int = Field(2, ge=1, le=16)
    flute_length: PositiveFloat = Field(0.025, le=0.2, description="cutting length [m]")


class SpindleSpec(_Model):
    max_rpm: PositiveFloat = Field(24000.0, description="[rev/min]")
    power: PositiveFloat = Field(2200.0, description="rated power [W]")


class MachiningSpec(_Model):
    """A machining job: the robot ``robot`` holds the spindle and cuts ``program`` (G-code,
    relative to the scenario file) out of ``stock``."""

    type: Literal["machining"]
    name: str = Field(pattern=NAME_PATTERN)
    robot: str | None = Field(None, description="robot holding the spindle (default: the first)")
    program: str = Field(description="G-code file, relative to the scenario file")
    lenient: bool = Field(False, description="skip unsupported G-code words with a warning")
    stock: StockSpec
    work_offsets: dict[Literal["G54", "G55", "G56", "G57", "G58", "G59"], Pose] | None = Field(
        None,
        description="pose of each work offset's zero in the stock frame (default: G54 at the "
        "top face above the stock frame's origin)",
    )
    cutter: CutterSpec
    material: str = Field(description="a name from the material table (`robocell materials`)")
    spindle: SpindleSpec = Field(default_factory=SpindleSpec)
    tool_spin_deg: Finite = Field(0.0, description="TCP rotation about the tool axis [deg]")
    rapid_speed: PositiveFloat = Field(0.25, le=5.0, description="G0 tool speed [m/s]")
    max_acceleration: PositiveFloat = Field(2.0, le=50.0, description="path acceleration [m/s²]")
    corner_tolerance: PositiveFloat = Field(
        2e-5, le=0.005, description="how far the tool may round a corner at speed [m]"
    )


StationSpec = Annotated[
    ConveyorSpec | BinSpec | PalletSpec | FixtureSpec | MachiningSpec,
    Field(discriminator="type"),
    BeforeValidator(_known_type("station", ("conveyor", "bin", "pallet", "fixture", "machining"))),
]


class PartTypeSpec(_Model):
    """A part type: box (size), cylinder (radius, height) or mesh (file, scale)."""

    name: str | None = None
    shape: Literal["box", "cylinder", "mesh"]
    size: Vec3 | None = None
    radius: PositiveFloat | None = None
    height: PositiveFloat | None = None
    file: str | None = None
    scale: PositiveFloat = 1.0
    mass: PositiveFloat = Field(description="[kg]")
    friction: NonNegFloat = 0.6
    color: tuple[Unit, Unit, Unit, Unit] = Field((0.8, 0.4, 0.1, 1.0), description="RGBA 0-1")
    share: PositiveFloat = Field(1.0, description="relative share in the mix")

    @model_validator(mode="after")
    def _dims(self) -> PartTypeSpec:
        _check_dims(self.shape, self)
        return self


class ArrivalsSpec(_Model):
    """When parts arrive: ``fixed`` (interval), ``poisson`` (rate_per_min) or ``list``
    (times)."""

    process: Literal["fixed", "poisson", "list"]
    interval: PositiveFloat | None = Field(None, description="[s] (fixed)")
    rate_per_min: PositiveFloat | None = Field(None, description="mean arrivals per minute")
    times: list[NonNegFloat] | None = Field(None, description="arrival times [s] (list)")
    start: NonNegFloat = Field(
        0.0, description="[s] first arrival (fixed), or when arrivals begin (poisson)"
    )

    @field_validator("times")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            for i in range(1, len(v)):
                if v[i] <= v[i - 1]:
                    raise ValueError(
                        f"times must increase strictly: times[{i}] = {v[i]} follows {v[i - 1]}"
                    )
        return v

    @model_validator(mode="after")
    def _needs(self) -> ArrivalsSpec:
        need = {"fixed": "interval", "poisson": "rate_per_min", "list": "times"}[self.process]
        if getattr(self, need) is None:
            raise ValueError(f"{self.process} arrivals need '{need}'")
        for k in ("interval", "rate_per_min", "times"):
            if k != need and getattr(self, k) is not None:
                raise ValueError(f"{self.process} arrivals take no '{k}' (they need '{need}')")
        if self.process == "list" and "start" in self.model_fields_set:
            raise ValueError("list arrivals take no 'start' (their times are absolute)")
        return self


class JitterSpec(_Model):
    """Random spawn offsets (uniform within ±)."""

    y: NonNegFloat = Field(0.0, description="lateral offset across the belt [m]")
    yaw_deg: NonNegFloat = Field(0.0, le=180.0, description="[deg]")


class PartSourceSpec(_Model):
    """A source of parts on a conveyor."""

    name: str | None = None
    on: str = Field(description="the conveyor the parts arrive on")
    at: NonNegFloat = Field(0.1, description="spawn position from the belt start [m]")
    arrivals: ArrivalsSpec
    types: list[PartTypeSpec] = Field(min_length=1)
    jitter: JitterSpec = Field(default_factory=JitterSpec)
    max_parts: Annotated[int, Field(ge=1), _NotBool] | None = None


class BeamSpec(_Model):
    """A break-beam light barrier across a conveyor (``station``, ``at`` from its start) or
    between two points (``start``, ``end``)."""

    type: Literal["beam"]
    name: str = Field(pattern=NAME_PATTERN)
    station: str | None = None
    at: NonNegFloat | None = Field(None, description="[m] from the belt start")
    height: PositiveFloat = Field(0.01, description="beam height above the belt [m]")
    start: Vec3 | None = None
    end: Vec3 | None = None

    @model_validator(mode="after")
    def _where(self) -> BeamSpec:
        across = self.station is not None or self.at is not None
        points = self.start is not None or self.end is not None
        if across == points:
            raise ValueError("give either station and at, or start and end")
        if across and (self.station is None or self.at is None):
            raise ValueError("a beam across a conveyor needs both station and at")
        if points and (self.start is None or self.end is None):
            raise ValueError("a beam between two points needs both start and end")
        return self


class PresenceSpec(_Model):
    """A presence sensor watching a box region."""

    type: Literal["presence"]
    name: str = Field(pattern=NAME_PATTERN)
    pose: Pose
    size: Vec3


class CameraSpec(_Model):
    """A camera that reports part poses and types (``looks_at`` a station, or a region)."""

    type: Literal["camera"]
    name: str = Field(pattern=NAME_PATTERN)
    looks_at: str | None = Field(None, description="station whose area the camera sees")
    region_pose: Pose | None = None
    region_size: Vec3 | None = None
    pose: Pose | None = Field(None, description="camera pose for images (default: above)")
    period: PositiveFloat = Field(0.1, description="frame period [s]")
    noise_xy: NonNegFloat = Field(0.0, description="position noise, standard deviation [m]")
    noise_yaw_deg: NonNegFloat = Field(0.0, description="yaw noise, standard deviation [deg]")
    miss_rate: Unit = Field(0.0, description="share of parts not reported in a frame")
    latency: NonNegFloat = Field(0.0, description="capture to delivery [s]")

    @model_validator(mode="after")
    def _where(self) -> CameraSpec:
        if (self.looks_at is None) == (self.region_pose is None):
            raise ValueError("give either looks_at or region_pose and region_size")
        if self.region_pose is not None and self.region_size is None:
            raise ValueError("region_pose needs region_size")
        if self.looks_at is not None and self.region_size is not None:
            raise ValueError(
                "a camera that looks_at a station sees the station's area; region_size goes "
                "with region_pose"
            )
        return self


SensorSpec = Annotated[
    BeamSpec | PresenceSpec | CameraSpec,
    Field(discriminator="type"),
    BeforeValidator(_known_type("sensor", ("beam", "presence", "camera"))),
]


class ControllerSpec(_Model):
    """The control strategy: ``use`` names a class as ``path/to/file.py:Class`` (relative to the
    scenario file or its parent folders) or ``package.module:Class``; ``params`` are passed to its
    constructor."""

    use: str = Field(pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")
    params: dict[str, Any] = Field(default_factory=dict)
    end_when_done: bool = Field(True, description="end the run when the controller is done")


class OutputsSpec(_Model):
    """What a run writes."""

    dir: str | None = Field(None, description="run directory (default runs/<scenario name>)")
    record: bool = True
    record_period: PositiveFloat | None = Field(None, description="[s], default control tick")
    plots: bool = True


class Scenario(_Model):
    """A complete cell description."""

    extends: str | None = Field(
        None,
        description="another scenario file (relative to this one) whose top-level keys this "
        "file takes, each replaced as a whole by this file's own",
    )
    name: str
    description: str = ""
    seed: Int = Field(0, ge=0, le=2**32 - 1)
    duration: PositiveFloat = Field(description="cell time to simulate [s]")
    world: WorldSpec = Field(default_factory=WorldSpec)
    robots: list[RobotSpec] = Field(min_length=1)
    objects: list[ObjectSpec] = Field(default_factory=list)
    stations: list[StationSpec] = Field(default_factory=list)
    parts: list[PartSourceSpec] = Field(default_factory=list)
    sensors: list[SensorSpec] = Field(default_factory=list)
    ideal_cycle_time: PositiveFloat | None = Field(
        None, description="[s] per part, the OEE performance reference"
    )
    controller: ControllerSpec | None = None
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)

    @field_validator("robots")
    @classmethod
    def _unique_robots(cls, v: list[RobotSpec]) -> list[RobotSpec]:
        counts = Counter(r.name for r in v)
        dup = {n for n, c in counts.items() if c > 1}
        if dup:
            raise ValueError(f"robot names must be unique: {', '.join(sorted(dup))}")
        return v

    @field_validator("stations", "sensors")
    @classmethod
    def _unique_names(cls, v: list[Any], info: ValidationInfo) -> list[Any]:
        # sensors come after stations: their names are checked against the stations' too
        # (reported at the list's key, naming the two entries)
        seen: dict[str, str] = {}
        if info.field_name == "sensors":
            for i, st in enumerate(info.data.get("stations") or ()):
                seen.setdefault(st.name, f"stations[{i}]")
        for i, item in enumerate(v):
            here = f"{info.field_name}[{i}]"
            if item.name in seen:
                raise ValueError(
                    f"{here} is named '{item.name}' like {seen[item.name]}; station and sensor "
                    "names must be unique"
                )
            seen[item.name] = here
        return v

    @field_validator("duration")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("duration must be finite")
        return v
