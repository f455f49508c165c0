"""Scenario files: YAML -> typed, validated :class:`Scenario` with located errors."""

from robocell.scenario.loader import LoadedScenario, json_schema, load_scenario
from robocell.scenario.model import (
    ControllerSpec,
    ObjectSpec,
    OutputsSpec,
    Pose,
    RobotSpec,
    Scenario,
    ToolSpec,
    WorldSpec,
)

__all__ = [
    "ControllerSpec",
    "LoadedScenario",
    "ObjectSpec",
    "OutputsSpec",
    "Pose",
    "RobotSpec",
    "Scenario",
    "ToolSpec",
    "WorldSpec",
    "json_schema",
    "load_scenario",
]
