"""robocell: a physics-based simulator and testbed for industrial robot cells.

Quick use::

    import robocell as rc
    result = rc.run("scenarios/cycle_test.yaml")
    print(result.table())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from robocell import _quiet  # noqa: F401  (must come first)

__version__ = "0.1.0"

#: public name -> the module it lives in. They are imported on first use (PEP 562), so that
#: ``robocell --help`` and a Ctrl-C right after start-up do not wait for roboticstoolbox & co.
_EXPORTS = {
    "run": "robocell.api",
    "cell_from_scenario": "robocell.cell.build",
    "Cell": "robocell.cell.cell",
    "RunResult": "robocell.cell.cell",
    "Commands": "robocell.control.controller",
    "Controller": "robocell.control.controller",
    "ControllerContext": "robocell.control.controller",
    "Marker": "robocell.control.controller",
    "Observation": "robocell.control.controller",
    "RobotInfo": "robocell.control.controller",
    "KinematicsError": "robocell.errors",
    "LimitError": "robocell.errors",
    "RobocellError": "robocell.errors",
    "ScenarioError": "robocell.errors",
    "read_events": "robocell.record.recorder",
    "read_recording": "robocell.record.recorder",
    "JointCommand": "robocell.robot.interface",
    "Robot": "robocell.robot.interface",
    "RobotState": "robocell.robot.interface",
    "Tool": "robocell.robot.interface",
    "load_model": "robocell.robot.library",
    "load_scenario": "robocell.scenario.loader",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robocell' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
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
