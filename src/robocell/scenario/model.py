"""The scenario format as typed, frozen models (pydantic). Raw dicts never travel inward.

Units: SI everywhere (m, s, kg, rad); a key ending in ``_deg`` is in degrees and is converted once,
here, at the edge.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from spatialmath import SE3

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Vec3 = tuple[Finite, Finite, Finite]
Unit = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


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
    solver_iterations: int = Field(50, ge=1, le=1000)
    ground: bool = Field(True, description="add a ground plane at z = 0")


class ToolSpec(_Model):
    """The tool on a robot's flange."""

    name: str = "tool"
    tcp: Pose = Field(default_factory=Pose, description="TCP in the flange frame")
    mass: NonNegFloat = Field(0.0, description="tool mass [kg]")
    radius: PositiveFloat = Field(0.03, description="radius of the tool body [m]")


class GainsSpec(_Model):
    """Joint servo gains of a simulated robot."""

    position: PositiveFloat = Field(0.3, le=1.0)
    velocity: PositiveFloat = Field(1.0, le=2.0)


class RobotSpec(_Model):
    """A robot in the cell."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    model: str = Field(description="library model (e.g. ur5e) or path to a URDF file")
    base: Pose = Field(default_factory=Pose)
    control_period: PositiveFloat = Field(0.002, description="control period [s]")
    tool: ToolSpec | None = None
    q0_deg: list[Finite] | None = Field(None, description="initial joints [deg] (default: home)")
    gains: GainsSpec = Field(default_factory=GainsSpec)


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

    name: str
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    duration: PositiveFloat = Field(description="cell time to simulate [s]")
    world: WorldSpec = Field(default_factory=WorldSpec)
    robots: list[RobotSpec] = Field(min_length=1)
    objects: list[ObjectSpec] = Field(default_factory=list)
    controller: ControllerSpec | None = None
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)

    @field_validator("robots")
    @classmethod
    def _unique_robots(cls, v: list[RobotSpec]) -> list[RobotSpec]:
        names = [r.name for r in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"robot names must be unique: {', '.join(sorted(dup))}")
        return v

    @field_validator("duration")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("duration must be finite")
        return v
