"""Helpers that turn controller parameters (plain YAML data) into poses and joint targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from spatialmath import SE3

from robocell.control.controller import RobotInfo
from robocell.errors import KinematicsError, ScenarioError


def _vec(value: Any, n: int, what: str, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ScenarioError(f"{what} must be {n} numbers, got {value!r}", field=field) from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ScenarioError(f"{what} must be {n} finite numbers, got {value!r}", field=field)
    return arr


def pose_from_params(d: Any, field: str) -> SE3:
    """``{xyz: [m,m,m], rpy_deg: [deg,deg,deg]}`` (or ``rpy`` in rad) -> SE3 (world frame)."""
    if not isinstance(d, Mapping):
        raise ScenarioError(f"a pose is a mapping with xyz and rpy_deg, got {d!r}", field=field)
    unknown = set(d) - {"xyz", "rpy_deg", "rpy"}
    if unknown:
        raise ScenarioError(
            f"unknown pose key(s) {sorted(unknown)}; use xyz, rpy_deg or rpy", field=field
        )
    if "xyz" not in d:
        raise ScenarioError("a pose needs xyz [m]", field=field)
    xyz = _vec(d["xyz"], 3, "xyz", f"{field}.xyz")
    if "rpy_deg" in d and "rpy" in d:
        raise ScenarioError("give either rpy_deg or rpy, not both", field=field)
    rpy = np.zeros(3)
    if "rpy_deg" in d:
        rpy = np.radians(_vec(d["rpy_deg"], 3, "rpy_deg", f"{field}.rpy_deg"))
    elif "rpy" in d:
        rpy = _vec(d["rpy"], 3, "rpy", f"{field}.rpy")
    return SE3(*xyz) * SE3.RPY(rpy, order="zyx")


def joint_target(d: Any, robot: RobotInfo, q_seed: np.ndarray, field: str) -> np.ndarray:
    """A target given as ``{joints_deg: [...]}`` or as a world pose ``{xyz, rpy_deg}`` -> joints.

    Pose targets are solved by IK seeded with ``q_seed`` (the previous target) so consecutive
    targets stay on one configuration branch.
    """
    lim = robot.limits
    if isinstance(d, Mapping) and "joints_deg" in d:
        if len(d) != 1:
            raise ScenarioError("a joint target has only 'joints_deg'", field=field)
        q = np.radians(_vec(d["joints_deg"], robot.dof, "joints_deg", f"{field}.joints_deg"))
        bad = np.flatnonzero((q < lim.lower) | (q > lim.upper))
        if bad.size:
            j = int(bad[0])
            raise KinematicsError(
                f"joint {j + 1} target {np.degrees(q[j]):.1f} deg is outside its limits "
                f"[{np.degrees(lim.lower[j]):.1f}, {np.degrees(lim.upper[j]):.1f}] deg",
                field=field,
            )
        return q
    T_world = pose_from_params(d, field)
    T = robot.to_base(T_world)
    q = robot.kinematics.ik(T, q_seed, search=True)
    if q is None:
        x, y, z = (T_world.t * 1000).round(1)
        raise KinematicsError(
            f"target unreachable for robot '{robot.name}': TCP at ({x}, {y}, {z}) mm "
            "(world frame) with the given orientation has no joint solution within the limits",
            field=field,
        )
    return q


def targets_list(value: Any, field: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ScenarioError("needs a non-empty list of targets", field=field)
    return value


def number(
    value: Any,
    field: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    whole: bool = False,
) -> float:
    """A controller parameter that must be a number (optionally within bounds), or a
    ScenarioError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ScenarioError(f"must be a number, got {value!r}", field=field)
    if whole and int(value) != value:
        raise ScenarioError(f"must be a whole number, got {value!r}", field=field)
    if low is not None and (value <= low if low_open else value < low):
        raise ScenarioError(
            f"must be {'>' if low_open else '>='} {low:g}, got {value!r}", field=field
        )
    if high is not None and value > high:
        raise ScenarioError(f"must be <= {high:g}, got {value!r}", field=field)
    return float(value)
