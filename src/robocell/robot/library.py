"""The robot library: folders in ``robots/`` (URDF + ``robot.yaml`` + README), or any URDF file.

A model is named either by a library folder name (``ur5e``) or by a path to a URDF file. Limits
come from the URDF (position, velocity, effort) and from ``robot.yaml`` (acceleration, jerk,
stiffness); for a bare URDF without ``robot.yaml`` the acceleration and jerk limits are derived
from the velocity limits (see :data:`DEFAULT_ACCEL_PER_VEL`) and marked as estimates.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from robocell.errors import ScenarioError

#: For a bare URDF: acceleration limit = this x velocity limit [1/s], jerk = 10 x acceleration.
DEFAULT_ACCEL_PER_VEL = 5.0


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits, arrays of shape (n,), SI units (rad, rad/s, rad/s², rad/s³, N·m)."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    acceleration: np.ndarray
    jerk: np.ndarray

    @property
    def n(self) -> int:
        return len(self.lower)


@dataclass(frozen=True)
class RobotModel:
    """Everything static about a robot model: its URDF, frames, limits and datasheet figures."""

    name: str
    urdf: Path
    joint_names: tuple[str, ...]
    limits: JointLimits
    base_link: str = "base_link"
    flange_link: str = "flange"
    vendor: str = ""
    model: str = ""
    reach_m: float | None = None
    payload_kg: float | None = None
    home: np.ndarray | None = None
    joint_stiffness: np.ndarray | None = None
    estimates: tuple[str, ...] = field(default_factory=tuple)

    @property
    def dof(self) -> int:
        return len(self.joint_names)


def library_dirs() -> list[Path]:
    """Folders searched for robot models, in order.

    ``ROBOCELL_ROBOT_PATH`` (os.pathsep-separated) first, then the project's ``robots/`` (source
    checkout), then the copy installed inside the package.
    """
    dirs: list[Path] = []
    env = os.environ.get("ROBOCELL_ROBOT_PATH")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve()
    dirs.append(here.parents[3] / "robots")  # src/robocell/robot/library.py -> project root
    dirs.append(here.parents[1] / "_data" / "robots")
    return [d for d in dirs if d.is_dir()]


def available_models() -> list[str]:
    """Names of all library robots (folders holding a ``robot.yaml``)."""
    names: set[str] = set()
    for d in library_dirs():
        names.update(p.parent.name for p in d.glob("*/robot.yaml"))
    return sorted(names)


def _float_attr(el: ET.Element | None, key: str, default: float) -> float:
    if el is None or el.get(key) is None:
        return default
    return float(el.get(key))  # type: ignore[arg-type]


def _parse_urdf_joints(urdf: Path) -> tuple[list[str], np.ndarray]:
    """Names and (4, n) [lower, upper, velocity, effort] of the movable joints, in chain order."""
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as exc:
        raise ScenarioError(f"{urdf}: not a valid URDF (XML error: {exc})") from None
    names: list[str] = []
    rows: list[list[float]] = []
    for j in root.iter("joint"):
        jtype = j.get("type")
        if jtype in ("fixed", "floating", "planar"):
            continue
        lim = j.find("limit")
        if jtype == "continuous":
            lo, hi = -2 * np.pi, 2 * np.pi
        else:
            lo, hi = _float_attr(lim, "lower", -np.pi), _float_attr(lim, "upper", np.pi)
        vel = _float_attr(lim, "velocity", 0.0)
        eff = _float_attr(lim, "effort", 0.0)
        if vel <= 0 or eff <= 0:
            raise ScenarioError(
                f"{urdf}: joint '{j.get('name')}' needs <limit velocity=.. effort=..> > 0 "
                "(robocell enforces velocity and torque limits)"
            )
        names.append(j.get("name", f"joint{len(names)}"))
        rows.append([lo, hi, vel, eff])
    if not names:
        raise ScenarioError(f"{urdf}: the URDF has no movable joints")
    return names, np.array(rows).T


def _per_joint(meta: dict, key: str, n: int, src: Path) -> np.ndarray | None:
    val = meta.get(key)
    if val is None:
        return None
    arr = np.asarray(val, dtype=float)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ScenarioError(f"{src}: '{key}' must list {n} numbers, got {val!r}")
    return arr


@functools.lru_cache(maxsize=64)
def load_model(name_or_path: str, base_dir: str | None = None) -> RobotModel:
    """Resolve a model name (library folder) or a URDF path into a :class:`RobotModel`.

    Relative URDF paths are resolved against ``base_dir`` (the scenario's folder), then the
    current directory.
    """
    meta: dict = {}
    meta_path: Path | None = None
    cand = Path(name_or_path)
    if cand.suffix.lower() == ".urdf":
        tries = [Path(base_dir) / cand] if base_dir and not cand.is_absolute() else []
        tries.append(cand)
        urdf = next((p for p in tries if p.is_file()), None)
        if urdf is None:
            raise ScenarioError(f"URDF file not found: {name_or_path}")
        urdf = urdf.resolve()
        if (urdf.parent / "robot.yaml").is_file():
            meta_path = urdf.parent / "robot.yaml"
    else:
        folder = next(
            (
                d / name_or_path
                for d in library_dirs()
                if (d / name_or_path / "robot.yaml").is_file()
            ),
            None,
        )
        if folder is None:
            import difflib

            known = available_models()
            close = difflib.get_close_matches(name_or_path, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ScenarioError(
                f"unknown robot model '{name_or_path}'{hint}; library: {', '.join(known)}; "
                "or give a path to a .urdf file"
            )
        meta_path = folder / "robot.yaml"
        urdf = folder / "robot.urdf"
    if meta_path is not None:
        with open(meta_path) as fh:
            meta = yaml.safe_load(fh) or {}
    names, lim = _parse_urdf_joints(urdf)
    n = len(names)
    src = meta_path or urdf
    acc = _per_joint(meta, "acceleration_limits", n, src)
    jerk = _per_joint(meta, "jerk_limits", n, src)
    estimates = list(meta.get("estimates", []))
    if acc is None:
        acc = DEFAULT_ACCEL_PER_VEL * lim[2]
        estimates.append("acceleration_limits")
    if jerk is None:
        jerk = 10.0 * acc
        estimates.append("jerk_limits")
    home = _per_joint(meta, "home_deg", n, src)
    limits = JointLimits(
        lower=lim[0], upper=lim[1], velocity=lim[2], effort=lim[3], acceleration=acc, jerk=jerk
    )
    for arr in (limits.lower, limits.upper, limits.velocity, limits.effort, acc, jerk):
        arr.setflags(write=False)
    return RobotModel(
        name=str(meta.get("name", urdf.stem if meta_path is None else urdf.parent.name)),
        urdf=urdf,
        joint_names=tuple(names),
        limits=limits,
        base_link=str(meta.get("base_link", "base_link")),
        flange_link=str(meta.get("flange_link", _last_link(urdf))),
        vendor=str(meta.get("vendor", "")),
        model=str(meta.get("model", "")),
        reach_m=meta.get("reach_m"),
        payload_kg=meta.get("payload_kg"),
        home=np.radians(home) if home is not None else None,
        joint_stiffness=_per_joint(meta, "joint_stiffness_nm_per_rad", n, src),
        estimates=tuple(dict.fromkeys(estimates)),
    )


def _last_link(urdf: Path) -> str:
    """The child link of the last joint in the file (the flange of a serial chain)."""
    root = ET.parse(urdf).getroot()
    children = [j.find("child") for j in root.iter("joint")]
    names = [c.get("link") for c in children if c is not None and c.get("link")]
    if not names:
        raise ScenarioError(f"{urdf}: no joints")
    return str(names[-1])
