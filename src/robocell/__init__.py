"""robocell: a physics-based simulator and testbed for industrial robot cells.

Quick use::

    import robocell as rc
    result = rc.run("scenarios/cycle_test.yaml")
    print(result.table())
"""

from robocell import _quiet  # noqa: F401  (must come first)
from robocell.api import run
from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import Cell, RunResult
from robocell.control.controller import (
    Commands,
    Controller,
    ControllerContext,
    Marker,
    Observation,
    RobotInfo,
)
from robocell.errors import KinematicsError, LimitError, RobocellError, ScenarioError
from robocell.record.recorder import read_events, read_recording
from robocell.robot.interface import JointCommand, Robot, RobotState, Tool
from robocell.robot.library import load_model
from robocell.scenario.loader import load_scenario

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "Commands",
    "Controller",
    "ControllerContext",
    "JointCommand",
    "KinematicsError",
    "LimitError",
    "Marker",
    "Observation",
    "Robot",
    "RobotInfo",
    "RobotState",
    "RobocellError",
    "RunResult",
    "ScenarioError",
    "Tool",
    "cell_from_scenario",
    "load_model",
    "load_scenario",
    "read_events",
    "read_recording",
    "run",
]
