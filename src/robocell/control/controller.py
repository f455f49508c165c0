"""The Controller protocol and the data it exchanges with the cell.

A controller is reset once with a :class:`ControllerContext` (what it may know about the robots:
limits, kinematics, base poses, control periods, a seeded generator) and is then called once per
control period with an :class:`Observation`, returning :class:`Commands`. It never holds the
simulator, so the same controller drives a simulated cell, a remote robot or a lockstep bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from spatialmath import SE3

from robocell.robot.interface import JointCommand, RobotState
from robocell.robot.kinematics import Kinematics
from robocell.robot.library import JointLimits


@dataclass(frozen=True)
class RobotInfo:
    """Static facts about one robot that a controller may use.

    ``base`` is the robot base pose in the world frame; ``kinematics`` works in the base frame and
    includes the tool's TCP; ``home`` is the model's ready pose [rad] (or None); ``q0`` the joint
    positions [rad] when the controller is reset.
    """

    name: str
    dof: int
    limits: JointLimits
    kinematics: Kinematics
    base: SE3
    tcp: SE3
    control_period: float
    home: np.ndarray | None
    q0: np.ndarray

    def to_base(self, pose_world: SE3) -> SE3:
        """A world-frame pose expressed in this robot's base frame."""
        return self.base.inv() * pose_world


@dataclass(frozen=True)
class ControllerContext:
    """What a controller receives at reset."""

    robots: Mapping[str, RobotInfo]
    rng: np.random.Generator
    physics_step: float
    t0: float = 0.0
    #: static facts of the cell's devices (conveyors, stations, sensors), by device name
    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def robot(self, name: str | None = None) -> RobotInfo:
        """The named robot, or the only/first one when ``name`` is None."""
        if name is None:
            return next(iter(self.robots.values()))
        if name not in self.robots:
            from robocell.errors import ScenarioError

            raise ScenarioError(
                f"no robot named '{name}'; robots: {', '.join(self.robots)}", field="robot"
            )
        return self.robots[name]


@dataclass(frozen=True)
class Marker:
    """An event a controller reports (e.g. ``cycle`` when a test cycle completes)."""

    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Observation(NamedTuple):
    """What a controller sees at time ``t`` [s].

    ``robots`` maps robot names to their measured state; ``due`` names the robots whose control
    tick this is (commands for other robots are held until their own tick); ``signals`` are the
    cell's I/O (read-only here: write them through :attr:`Commands.signals`); ``events`` are the
    cell events since the previous call.
    """

    t: float
    robots: Mapping[str, RobotState]
    due: tuple[str, ...]
    signals: Mapping[str, Any] = MappingProxyType({})
    events: tuple[Any, ...] = ()


@dataclass
class Commands:
    """What a controller returns: joint commands per robot, signal writes, markers.

    ``done`` tells the cell that the controller's task is finished (the run may end early when the
    scenario says so).
    """

    joints: dict[str, JointCommand] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    markers: list[Marker] = field(default_factory=list)
    done: bool = False


@runtime_checkable
class Controller(Protocol):
    """A control strategy: reset once, then one call per control period."""

    def reset(self, ctx: ControllerContext) -> None:
        """Prepare for a run (plan paths, check reachability). May raise KinematicsError."""

    def step(self, obs: Observation) -> Commands:
        """Commands for the next control period."""
