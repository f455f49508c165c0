"""UNTESTED EXAMPLE: a UR e-Series robot behind the robocell bridge, through the ur_rtde library.

This file has never been run against a robot or URSim: robocell's CI has no UR controller. It
shows the shape of a vendor adapter -- a :class:`robocell.robot.interface.Robot` whose
``state()`` reads the controller and whose ``_apply()`` sends the already-clamped command -- and
how a RobotServer serves it, so a simulated cell can use the real arm as a digital twin:

    # on the robot PC (next to the UR controller)
    python examples/ur_rtde_adapter.py --robot-ip 192.168.1.10 --bind tcp://0.0.0.0:6000 \\
        --keys keys/server.key_secret --allow keys/clients/

    # in the scenario on the engineering PC
    robots:
      - name: r1
        model: ur5e
        control_period: 0.002
        backend: {remote: "tcp://robot-pc:6000", mode: realtime,
                  key: keys/cell.key_secret, server_key: keys/server.key}

Before you run it on a real arm: read the ur_rtde documentation for your PolyScope version,
test in URSim first, keep the teach pendant's emergency stop in reach, and start with low speed
limits. The RobotServer's watchdog and the ``ur_rtde`` profile stop the robot (``servoStop`` /
``speedStop`` through a controlled-stop command) when commands go stale, but the robot's own
safety system is what you rely on.

Requires ``pip install ur_rtde`` (not a robocell dependency).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from spatialmath import SE3

from robocell.bridge.remote import RobotServer
from robocell.robot.interface import JointCommand, Robot, RobotState
from robocell.robot.library import load_model

#: servoJ parameters (ur_rtde): lookahead time [s] and gain, as ur_rtde's examples use them
LOOKAHEAD_S = 0.1
GAIN = 300


class URRtdeRobot(Robot):
    """A UR e-Series arm through ur_rtde's control and receive interfaces (UNTESTED)."""

    def __init__(self, ip: str, model: str = "ur5e", period: float = 0.002) -> None:
        import rtde_control  # from the ur_rtde package
        import rtde_receive

        super().__init__("r1", load_model(model), SE3(), None, period)
        self.rx = rtde_receive.RTDEReceiveInterface(ip, 1.0 / period)
        self.tx = rtde_control.RTDEControlInterface(ip, 1.0 / period)
        self._mode = "position"

    def state(self) -> RobotState:
        q = np.array(self.rx.getActualQ())
        dq = np.array(self.rx.getActualQd())
        tau = np.array(self.rx.getTargetMoment())  # the controller's target joint torques
        return RobotState(self.rx.getTimestamp(), q, dq, tau)

    def _apply(self, cmd: JointCommand) -> None:
        if cmd.mode == "position":
            if self._mode == "velocity":
                self.tx.speedStop()
            v = float(np.max(self.limits.velocity))
            a = float(np.max(self.limits.acceleration))
            self.tx.servoJ(list(cmd.values), v, a, self.control_period, LOOKAHEAD_S, GAIN)
        elif cmd.mode == "velocity":
            if self._mode == "position":
                self.tx.servoStop()
            a = float(np.max(self.limits.acceleration))
            self.tx.speedJ(list(cmd.values), a, self.control_period)
        else:
            raise ValueError("the UR RTDE interface takes position or velocity commands")
        self._mode = cmd.mode

    def close(self) -> None:
        self.tx.servoStop()
        self.tx.stopScript()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--robot-ip", required=True)
    p.add_argument("--model", default="ur5e")
    p.add_argument("--bind", default="tcp://127.0.0.1:6000")
    p.add_argument("--keys", help="the server's .key_secret (CurveZMQ)")
    p.add_argument("--allow", help="allowed client public keys")
    a = p.parse_args()
    security = None
    if a.keys:
        from robocell.bridge.security import ServerSecurity

        security = ServerSecurity(a.keys, a.allow)
    robot = URRtdeRobot(a.robot_ip, a.model)
    # real time: the arm moves on its own; the server paces the exchange at 500 Hz
    server = RobotServer(robot, bind=a.bind, mode="realtime", profile="ur_rtde", security=security)
    try:
        server.serve()
    finally:
        server.close()
        robot.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
