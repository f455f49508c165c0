"""SimRobot: the Robot interface implemented on a pybullet World."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.errors import ScenarioError
from robocell.robot.interface import JointCommand, Robot, RobotState, Tool
from robocell.robot.library import RobotModel
from robocell.sim.world import World, pb_to_pose


class SimRobot(Robot):
    """A robot simulated by pybullet from its URDF.

    Joint servos are pybullet's motor constraints limited to the joints' effort limits, so a
    position command is tracked as well as the torque limits allow, and the measured torque is the
    motor's applied torque (gravity and inertia included).

    Args:
        world: the World to live in.
        model: the robot model (URDF + limits).
        name: unique robot name in the cell.
        base: world pose of the robot's base link.
        tool: the tool on the flange.
        control_period: control period [s], a multiple of the physics step.
        q0: initial joint positions [rad] (default: the model's home pose, else zeros).
        position_gain: pybullet motor position gain (share of the position error corrected per
            physics step); ``velocity_gain`` the same for the velocity error.
    """

    def __init__(
        self,
        world: World,
        model: RobotModel,
        name: str = "r1",
        base: SE3 | None = None,
        tool: Tool | None = None,
        control_period: float = 0.002,
        q0: np.ndarray | None = None,
        position_gain: float = 0.3,
        velocity_gain: float = 1.0,
    ) -> None:
        super().__init__(name, model, base if base is not None else SE3(), tool, control_period)
        world.steps_for(control_period, f"robot '{name}' control_period")
        self.world = world
        cid = world.client
        self.body = world.load_urdf(
            self._urdf_with_tool(), self.base, fixed_base=True, self_collision=True
        )
        by_name: dict[str, int] = {}
        link_by_name: dict[str, int] = {}
        for j in range(pb.getNumJoints(self.body, physicsClientId=cid)):
            info = pb.getJointInfo(self.body, j, physicsClientId=cid)
            by_name[info[1].decode()] = j
            link_by_name[info[12].decode()] = j
        self.joint_ids = [by_name[n] for n in model.joint_names]
        self._link_names = {v: k for k, v in link_by_name.items()}
        if model.flange_link not in link_by_name:
            raise ScenarioError(f"{model.urdf}: no link named '{model.flange_link}'")
        self.flange_index = link_by_name[model.flange_link]
        self.link_indices = sorted(link_by_name.values())
        self._gains = (
            [position_gain] * self.n,
            [velocity_gain] * self.n,
        )
        self._effort = list(model.limits.effort)
        for link in [-1, *self.link_indices]:
            pb.changeDynamics(
                self.body,
                link,
                linearDamping=0.0,
                angularDamping=0.0,
                jointDamping=0.0,
                physicsClientId=cid,
            )
        # the drives cannot turn a joint faster than its rated speed, whatever the servo asks
        for j, vmax in zip(self.joint_ids, model.limits.velocity):
            pb.changeDynamics(self.body, j, maxJointVelocity=float(vmax), physicsClientId=cid)
        home = q0 if q0 is not None else model.home
        q_init = np.array(home if home is not None else np.zeros(self.n), float)
        lim = model.limits
        if q_init.shape != (self.n,):
            raise ScenarioError(f"robot '{name}': q0 needs {self.n} values, got {len(q_init)}")
        if np.any(q_init < lim.lower) or np.any(q_init > lim.upper):
            raise ScenarioError(f"robot '{name}': initial joint positions are outside the limits")
        for j, qj in zip(self.joint_ids, q_init):
            pb.resetJointState(self.body, j, float(qj), 0.0, physicsClientId=cid)
        self._torque_mode = False
        self._interp: tuple[list[float], list[float]] | None = None
        self._zeros_l = [0.0] * self.n
        self._lower_l = model.limits.lower.tolist()
        self._upper_l = model.limits.upper.tolist()
        self._cmd_step = 0
        self._tau_cmd = np.zeros(self.n)
        self._apply(JointCommand.position(q_init))
        self._state_step = -1
        self._state: RobotState = RobotState(0.0, q_init, np.zeros(self.n), np.zeros(self.n))
        self._rows = np.zeros((3, self.n))

    # -- tool ----------------------------------------------------------------------------------
    def _tool_link_xml(self) -> str:
        """URDF text of the tool as a link fixed to the flange: a cylinder from the flange to
        the TCP carrying the tool's mass (part of the multibody, so it costs the solver nothing
        extra, unlike a separate body held by a constraint)."""
        tool = self.tool
        offset = np.asarray(tool.tcp.t, float)
        length = float(np.linalg.norm(offset))
        if length < 1e-3 and tool.mass <= 0:
            return ""
        length = max(length, 1e-3)
        z = offset / length if np.linalg.norm(offset) > 1e-9 else np.array([0.0, 0.0, 1.0])
        # cylinder axis along flange->TCP: rotate z onto that direction (roll-pitch-yaw)
        pitch = float(np.arctan2(np.hypot(z[0], z[1]), z[2]))
        yaw = float(np.arctan2(z[1], z[0]))
        mid = offset / 2
        m = max(tool.mass, 1e-3)
        r = tool.radius
        ixx = m * (3 * r * r + length * length) / 12
        izz = m * r * r / 2
        xyz = f"{mid[0]:.9g} {mid[1]:.9g} {mid[2]:.9g}"
        org = f'<origin xyz="{xyz}" rpy="0 {pitch:.9g} {yaw:.9g}"/>'
        geom = f'<geometry><cylinder radius="{r:.9g}" length="{length:.9g}"/></geometry>'
        return (
            f'<link name="robocell_tool"><inertial>{org}<mass value="{m:.9g}"/>'
            f'<inertia ixx="{ixx:.9g}" iyy="{ixx:.9g}" izz="{izz:.9g}" ixy="0" ixz="0" iyz="0"/>'
            f'</inertial><visual>{org}{geom}<material name="robocell_tool">'
            f'<color rgba="0.25 0.25 0.3 1"/></material></visual>'
            f"<collision>{org}{geom}</collision></link>"
            f'<joint name="robocell_tool_mount" type="fixed">'
            f'<parent link="{self.model.flange_link}"/>'
            f'<child link="robocell_tool"/><origin xyz="0 0 0" rpy="0 0 0"/></joint>'
        )

    def _urdf_with_tool(self) -> Path:
        """The model's URDF, with the tool link added when there is one (written to a cache
        file; relative mesh paths are made absolute so that the copy still finds them)."""
        extra = self._tool_link_xml()
        if not extra:
            return self.model.urdf
        text = self.model.urdf.read_text(encoding="utf-8")
        base = self.model.urdf.parent

        def absolute(mt: re.Match[str]) -> str:
            fn = mt.group(2)
            if fn.startswith(("/", "package://", "file://")):
                return mt.group(0)
            return f"{mt.group(1)}{(base / fn).resolve()}{mt.group(3)}"

        text = re.sub(r'(filename=")([^"]+)(")', absolute, text)
        end = text.rindex("</robot>")
        text = text[:end] + extra + "\n" + text[end:]
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        cache = Path(tempfile.gettempdir()) / "robocell-urdf"
        cache.mkdir(exist_ok=True)
        path = cache / f"{self.model.urdf.stem}-{digest}.urdf"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)  # atomic: parallel workers may write the same file
        return path

    def link_name(self, link: int) -> str:
        """Name of pybullet link index ``link`` (-1 is the base)."""
        if link == -1:
            return self.model.base_link
        return self._link_names.get(link, f"link{link}")

    def mount_tool(self, tool: Tool) -> None:
        """Change the TCP (kinematics and recorded TCP). The tool's body and mass stay those
        given when the robot was created (they are part of the loaded multibody)."""
        super().mount_tool(tool)

    # -- state & commands ----------------------------------------------------------------------
    def state(self) -> RobotState:
        step = self.world._steps
        if step != self._state_step:
            js = pb.getJointStates(self.body, self.joint_ids, physicsClientId=self.world.client)
            q, dq, _, tau = zip(*js)
            # one (3, n) array whose rows are q, dq, tau (cheaper than three small arrays)
            a = np.array((q, dq, tau))
            if self._torque_mode:
                a[2] = self._tau_cmd
            self._rows = a
            self._state = RobotState(step * self.world.physics_step, a[0], a[1], a[2])
            self._state_step = step
        return self._state

    def state_rows(self) -> np.ndarray:
        self.state()
        return self._rows

    def _apply(self, cmd: JointCommand) -> None:
        cid = self.world.client
        if cmd.mode == "torque":
            self._interp = None
            if not self._torque_mode:
                # release the motors so that only the commanded torques act
                pb.setJointMotorControlArray(
                    self.body,
                    self.joint_ids,
                    pb.VELOCITY_CONTROL,
                    forces=[0.0] * self.n,
                    physicsClientId=cid,
                )
                self._torque_mode = True
            self._tau_cmd = np.array(cmd.values, float)
            pb.setJointMotorControlArray(
                self.body,
                self.joint_ids,
                pb.TORQUE_CONTROL,
                forces=list(cmd.values),
                physicsClientId=cid,
            )
            return
        self._torque_mode = False
        if cmd.mode == "position":
            vals = cmd.values if isinstance(cmd.values, list) else list(cmd.values)
            ff = cmd.velocity  # the clamped command always carries its feed-forward
            ffl = self._zeros_l if ff is None else (ff if isinstance(ff, list) else list(ff))
            self._interp = (vals, ffl)
            self._cmd_step = self.world._steps
            self._send_position(vals, ffl)
            return
        self._interp = None
        if cmd.mode == "velocity":
            pb.setJointMotorControlArray(
                self.body,
                self.joint_ids,
                pb.VELOCITY_CONTROL,
                targetVelocities=list(cmd.values),
                forces=self._effort,
                physicsClientId=cid,
            )

    def _send_position(self, q: list[float], dq: list[float]) -> None:
        pb.setJointMotorControlArray(
            self.body,
            self.joint_ids,
            pb.POSITION_CONTROL,
            targetPositions=q,
            targetVelocities=dq,
            forces=self._effort,
            positionGains=self._gains[0],
            velocityGains=self._gains[1],
            physicsClientId=self.world.client,
        )

    def pre_step(self) -> None:
        """Called before every physics step. Between two control ticks the joint drives move
        their position setpoint along the commanded velocity, as real drives interpolate the
        controller's setpoints at their own, faster rate. Holding the setpoint still for the
        whole period would make the servo brake and re-accelerate every physics step, with
        torque spikes that no real robot shows."""
        interp = self._interp
        if interp is None:
            return
        i = self.world._steps - self._cmd_step
        if i <= 0:
            return
        dt = i * self.world.physics_step
        q, dq = interp
        target = []
        for a, w, lo, hi in zip(q, dq, self._lower_l, self._upper_l):
            x = a + w * dt
            target.append(lo if x < lo else (hi if x > hi else x))
        self._send_position(target, dq)

    # -- poses from the physics ----------------------------------------------------------------
    def _link_pose(self, link: int) -> SE3:
        ls = pb.getLinkState(
            self.body, link, computeForwardKinematics=True, physicsClientId=self.world.client
        )
        return pb_to_pose(ls[4], ls[5])

    def flange_pose(self) -> SE3:
        """Flange pose in the world frame as the physics has it."""
        return self._link_pose(self.flange_index)

    def tcp_pose(self) -> SE3:
        return self.flange_pose() * self.tool.tcp
