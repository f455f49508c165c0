"""Robot layer: the Robot interface, its pybullet implementation, kinematics and the library."""

from robocell.robot.interface import (
    FakeRobot,
    JointCommand,
    LimitEvent,
    Robot,
    RobotState,
    Tool,
)
from robocell.robot.kinematics import Kinematics
from robocell.robot.library import JointLimits, RobotModel, available_models, load_model
from robocell.robot.sim_robot import SimRobot

__all__ = [
    "FakeRobot",
    "JointCommand",
    "JointLimits",
    "Kinematics",
    "LimitEvent",
    "Robot",
    "RobotModel",
    "RobotState",
    "SimRobot",
    "Tool",
    "available_models",
    "load_model",
]
