"""SimRobot: the Robot interface implemented on a pybullet World."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.errors import ScenarioError
from robocell.robot.interface import JointCommand, Robot, RobotState, Tool, ToolFingers
from robocell.robot.library import RobotModel
from robocell.sim.world import World, pb_to_pose


class FingerState(NamedTuple):
    """Measured state of a tool's two fingers: ``width`` between the pads [m], ``speed`` the
    rate of change of the width [m/s] and ``force`` the mean force of the two drives [N]
    (positive when squeezing)."""

    width: float
    speed: float
    force: float


def drive_setpoint(
    q: list[float], dq: list[float], dt: float, lower: list[float], upper: list[float]
) -> list[float]:
    """The drives' setpoint ``dt`` after the command: targets ``q`` moved along their
    feed-forward ``dq``, inside the joint limits."""
    return [
        lo if (x := a + w * dt) < lo else (hi if x > hi else x)
        for a, w, lo, hi in zip(q, dq, lower, upper)
    ]


# pybullet calls made every control tick or physics step, bound once
_joint_states = pb.getJointStates
_motors = pb.setJointMotorControlArray
_POSITION_CONTROL = pb.POSITION_CONTROL
#: builds a NamedTuple without its Python-level ``__new__`` (for the per-tick state)
_new_tuple = tuple.__new__

#: time constant [s] with which the joints' deflection follows a change of the TCP load (see
#: :meth:`SimRobot.set_tcp_load`)
DEFLECTION_TIME_CONSTANT = 0.005

#: pybullet link names of the tool and its fingers
TOOL_LINK = "robocell_tool"
FINGER_LINKS = ("robocell_finger_left", "robocell_finger_right")


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
        #: pybullet link index of the tool body (None without a tool body)
        self.tool_link: int | None = link_by_name.get(TOOL_LINK)
        #: pybullet joint (= link) indices of the tool's two fingers (empty without fingers);
        #: they are not arm joints: ``n``, ``joint_ids``, limits and ``state()`` exclude them
        self.finger_joints: tuple[int, ...] = tuple(
            link_by_name[f] for f in FINGER_LINKS if f in link_by_name
        )
        #: the gripper device mounted on this robot (set by the gripper when it attaches)
        self.gripper: Any = None
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
        if self.finger_joints:
            self._setup_fingers()
        self._torque_mode = False
        self._interp: tuple[list[float], list[float]] | None = None
        self._zeros_l = [0.0] * self.n
        self._lower_l = model.limits.lower.tolist()
        self._upper_l = model.limits.upper.tolist()
        self._cmd_step = 0
        self._tau_cmd = np.zeros(self.n)
        #: joint deflection [rad] under the external TCP load (see :meth:`set_tcp_load`)
        self._q_offset: np.ndarray | None = None
        self._offset_goal: np.ndarray | None = None
        #: share of the remaining deflection the joints take per physics step
        self._offset_rate = min(1.0, world.physics_step / DEFLECTION_TIME_CONSTANT)
        self._load: tuple[list[float], list[float], list[float]] | None = None
        self._loaded = False  # any of load, offset goal or offset is set
        self._last_sent: tuple[list[float], list[float]] | None = None
        self._apply(JointCommand.position(q_init))
        self._state_step = -1
        self._state: RobotState = RobotState(0.0, q_init, np.zeros(self.n), np.zeros(self.n))
        self._rows = np.zeros((3, self.n))

    # -- tool ----------------------------------------------------------------------------------
    def _tool_link_xml(self) -> str:
        """URDF text of the tool as a link fixed to the flange: a cylinder from the flange to
        the TCP carrying the tool's mass (part of the multibody, so it costs the solver nothing
        extra, unlike a separate body held by a constraint). A tool with fingers ends at its palm
        and carries two prismatic finger links (see :class:`ToolFingers`)."""
        tool = self.tool
        offset = np.asarray(tool.tcp.t, float)
        length = float(np.linalg.norm(offset))
        fingers = tool.fingers
        if length < 1e-3 and tool.mass <= 0 and fingers is None:
            return ""
        z = offset / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
        if fingers is not None:
            _check_fingers(fingers)
            palm = length - fingers.length / 2
            if palm < 1e-3:
                raise ScenarioError(
                    f"tool '{tool.name}': the TCP ({length:.4g} m from the flange) must be more "
                    f"than half the finger length ({fingers.length / 2:.4g} m) away from it",
                    field="tool.tcp",
                )
            length = palm
            offset = z * palm
        length = max(length, 1e-3)
        # cylinder axis along flange->TCP: rotate z onto that direction (roll-pitch-yaw)
        pitch = float(np.arctan2(np.hypot(z[0], z[1]), z[2]))
        yaw = float(np.arctan2(z[1], z[0]))
        mid = offset / 2
        m = tool.mass - (2 * fingers.mass if fingers is not None else 0.0)
        m = max(m, 1e-3)
        r = tool.radius
        ixx = m * (3 * r * r + length * length) / 12
        izz = m * r * r / 2
        xyz = f"{mid[0]:.9g} {mid[1]:.9g} {mid[2]:.9g}"
        org = f'<origin xyz="{xyz}" rpy="0 {pitch:.9g} {yaw:.9g}"/>'
        geom = f'<geometry><cylinder radius="{r:.9g}" length="{length:.9g}"/></geometry>'
        xml = (
            f'<link name="{TOOL_LINK}"><inertial>{org}<mass value="{m:.9g}"/>'
            f'<inertia ixx="{ixx:.9g}" iyy="{ixx:.9g}" izz="{izz:.9g}" ixy="0" ixz="0" iyz="0"/>'
            f'</inertial><visual>{org}{geom}<material name="robocell_tool">'
            f'<color rgba="0.25 0.25 0.3 1"/></material></visual>'
            f"<collision>{org}{geom}</collision></link>"
            f'<joint name="robocell_tool_mount" type="fixed">'
            f'<parent link="{self.model.flange_link}"/>'
            f'<child link="{TOOL_LINK}"/><origin xyz="0 0 0" rpy="0 0 0"/></joint>'
        )
        if fingers is not None:
            xml += self._finger_xml(fingers)
        return xml

    def _finger_xml(self, f: ToolFingers) -> str:
        """Two box fingers on prismatic joints whose frames are the TCP: the left finger moves
        along -x, the right along +x; joint position s [m] puts the pad at x = ∓s, so the
        opening is the sum of the two joint positions."""
        tcp = self.tool.tcp
        t = tcp.t
        roll, pitch, yaw = (float(a) for a in tcp.rpy(order="zyx"))
        rpy = f"{roll:.9g} {pitch:.9g} {yaw:.9g}"
        frame = f'<origin xyz="{t[0]:.9g} {t[1]:.9g} {t[2]:.9g}" rpy="{rpy}"/>'
        m = f.mass
        a, b, c = f.thickness, f.depth, f.length
        ixx, iyy, izz = m * (b * b + c * c) / 12, m * (a * a + c * c) / 12, m * (a * a + b * b) / 12
        box = f'<geometry><box size="{a:.9g} {b:.9g} {c:.9g}"/></geometry>'
        out = ""
        for name, sign in zip(FINGER_LINKS, (-1.0, 1.0)):
            org = f'<origin xyz="{sign * a / 2:.9g} 0 0" rpy="0 0 0"/>'
            out += (
                f'<link name="{name}"><inertial>{org}<mass value="{m:.9g}"/>'
                f'<inertia ixx="{ixx:.9g}" iyy="{iyy:.9g}" izz="{izz:.9g}" '
                f'ixy="0" ixz="0" iyz="0"/></inertial>'
                f'<visual>{org}{box}<material name="robocell_finger">'
                f'<color rgba="0.15 0.15 0.15 1"/></material></visual>'
                f"<collision>{org}{box}</collision></link>"
                f'<joint name="{name}_joint" type="prismatic">'
                f'<parent link="{TOOL_LINK}"/><child link="{name}"/>{frame}'
                f'<axis xyz="{sign:.1f} 0 0"/>'
                f'<limit lower="0" upper="{f.stroke / 2:.9g}" effort="{f.force_n:.9g}" '
                f'velocity="{f.speed:.9g}"/></joint>'
            )
        return out

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

    # -- fingers -------------------------------------------------------------------------------
    def _setup_fingers(self) -> None:
        """Pad friction, no finger-finger contacts (the drives' end stop is the joint limit), the
        two fingers coupled, and the fingers open, held there by their drives."""
        f = self.tool.fingers
        assert f is not None
        cid = self.world.client
        left, right = self.finger_joints
        for j in self.finger_joints:
            pb.changeDynamics(self.body, j, lateralFriction=f.friction, physicsClientId=cid)
            pb.resetJointState(self.body, j, f.stroke / 2, 0.0, physicsClientId=cid)
        pb.setCollisionFilterPair(self.body, self.body, left, right, 0, physicsClientId=cid)
        # the fingers move together, as a rack and pinion couples them: without the coupling a
        # part squeezed by two equal forces could float sideways between them
        gear = pb.createConstraint(
            self.body,
            left,
            self.body,
            right,
            pb.JOINT_GEAR,
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            physicsClientId=cid,
        )
        pb.changeConstraint(gear, gearRatio=-1.0, maxForce=10 * f.force_n, physicsClientId=cid)
        self.drive_fingers(f.stroke, f.force_n, f.speed)

    def drive_fingers(self, opening: float | None, force_n: float, speed: float) -> None:
        """Command the fingers (each drive limited to ``force_n`` [N] and ``speed`` [m/s]).

        Args:
            opening: target width between the pads [m], reached at ``speed`` per finger; None
                closes the fingers: each drive moves inwards at ``speed`` until it is blocked,
                and then squeezes with ``force_n``.
            force_n: force limit of each finger's drive [N].
            speed: speed limit of each finger [m/s].
        """
        if not self.finger_joints:
            raise ScenarioError(f"robot '{self.name}': its tool has no fingers", field="tool")
        cid = self.world.client
        for j in self.finger_joints:
            if opening is None:
                pb.setJointMotorControl2(
                    self.body,
                    j,
                    pb.VELOCITY_CONTROL,
                    targetVelocity=-float(speed),
                    force=float(force_n),
                    physicsClientId=cid,
                )
            else:
                pb.setJointMotorControl2(
                    self.body,
                    j,
                    pb.POSITION_CONTROL,
                    targetPosition=float(opening) / 2,
                    force=float(force_n),
                    maxVelocity=float(speed),
                    physicsClientId=cid,
                )

    def finger_state(self) -> FingerState:
        """Measured opening, its rate and the drives' squeezing force (see :class:`FingerState`)."""
        if not self.finger_joints:
            raise ScenarioError(f"robot '{self.name}': its tool has no fingers", field="tool")
        (ql, vl, _, fl), (qr, vr, _, fr) = pb.getJointStates(
            self.body, list(self.finger_joints), physicsClientId=self.world.client
        )
        return FingerState(ql + qr, vl + vr, -(fl + fr) / 2)

    # -- state & commands ----------------------------------------------------------------------
    def state(self) -> RobotState:
        world = self.world
        step = world._steps
        if step != self._state_step:
            js = _joint_states(self.body, self.joint_ids, world.client)
            q, dq, _, tau = zip(*js)
            # one (3, n) array whose rows are q, dq, tau, made from one flat tuple (numpy converts
            # that faster than a nested one, and three small arrays cost more still)
            a = np.array(q + dq + tau)
            a.shape = (3, self._n)
            if self._torque_mode:
                a[2] = self._tau_cmd
            elif self._q_offset is not None:
                # the encoders sit on the motor side of the compliant gearing: they do not see
                # the deflection under an external load
                a[0] -= self._q_offset
            self._rows = a
            q, dq, tau = a
            self._state = _new_tuple(RobotState, (step * world.physics_step, q, dq, tau))
            self._state_step = step
        return self._state

    def state_rows(self) -> np.ndarray:
        if self._state_step != self.world._steps:
            self.state()
        return self._rows

    def _apply_position(self, q: list[float], dq: list[float]) -> None:
        self._torque_mode = False
        self._interp = (q, dq)
        self._cmd_step = self.world._steps
        self._send_position(q, dq)

    def _apply(self, cmd: JointCommand) -> None:
        mode = cmd.mode
        if mode == "position":
            vals = cmd.values if type(cmd.values) is list else list(cmd.values)
            ff = cmd.velocity  # the clamped command always carries its feed-forward
            ffl = self._zeros_l if ff is None else (ff if type(ff) is list else list(ff))
            self._apply_position(vals, ffl)
            return
        cid = self.world.client
        if mode == "torque":
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
        self._interp = None
        if mode == "velocity":
            pb.setJointMotorControlArray(
                self.body,
                self.joint_ids,
                pb.VELOCITY_CONTROL,
                targetVelocities=list(cmd.values),
                forces=self._effort,
                physicsClientId=cid,
            )

    def _send_position(self, q: list[float], dq: list[float]) -> None:
        self._last_sent = (q, dq)
        off = self._q_offset
        if off is not None:
            q = [a + b for a, b in zip(q, off.tolist())]
        # positional arguments, in pybullet's order (bodyUniqueId, jointIndices, controlMode,
        # targetPositions, targetVelocities, forces, positionGains, velocityGains,
        # physicsClientId): parsing the keywords cost more than the call itself
        _motors(
            self.body,
            self.joint_ids,
            _POSITION_CONTROL,
            q,
            dq,
            self._effort,
            self._gains[0],
            self._gains[1],
            self.world.client,
        )

    def pre_step(self) -> None:
        """Called before every physics step. Between two control ticks the joint drives move
        their position setpoint along the commanded velocity, as real drives interpolate the
        controller's setpoints at their own, faster rate. Holding the setpoint still for the
        whole period would make the servo brake and re-accelerate every physics step, with
        torque spikes that no real robot shows."""
        interp = self._interp
        if self._loaded:  # an external TCP load or its joint deflection is active
            self._pre_step_loaded(interp)
        if interp is None:
            return
        world = self.world
        i = world._steps - self._cmd_step
        if i <= 0:
            return
        dt = i * world.physics_step
        q, dq = interp
        self._send_position(drive_setpoint(q, dq, dt, self._lower_l, self._upper_l), dq)

    def _pre_step_loaded(self, interp: tuple[list[float], list[float]] | None) -> None:
        """The TCP load's part of :meth:`pre_step`: apply the load for this physics step and
        move the joint deflection towards its goal."""
        load = self._load
        if load is not None:
            cid = self.world.client
            pb.applyExternalForce(
                self.body, self.flange_index, load[0], load[2], pb.WORLD_FRAME, physicsClientId=cid
            )
            pb.applyExternalTorque(
                self.body, self.flange_index, load[1], pb.WORLD_FRAME, physicsClientId=cid
            )
        goal, cur = self._offset_goal, self._q_offset
        if goal is not None or cur is not None:
            g = goal if goal is not None else 0.0
            new = (cur if cur is not None else 0.0) + self._offset_rate * (
                g - (cur if cur is not None else 0.0)
            )
            if goal is None and float(np.max(np.abs(new))) < 1e-12:
                new = None
            self._q_offset = new
            self._state_step = -1
            if interp is None and self._last_sent is not None and not self._torque_mode:
                self._send_position(*self._last_sent)
        self._loaded = (
            self._load is not None or self._offset_goal is not None or self._q_offset is not None
        )

    def set_tcp_load(self, force: np.ndarray, moment: np.ndarray | None = None) -> None:
        """Apply an external load at the TCP until it is changed: ``force`` [N] and ``moment``
        [N m], shape (3,), in the world frame (a cutting force is the material's force on the
        tool).

        The load acts on the flange link in the physics (so the measured joint torques carry
        it), and each joint deflects by its share of the load over its stiffness,
        ``dq = K^-1 J^T w`` with ``K`` the diagonal joint stiffness of the robot model and ``J``
        the TCP Jacobian: the link-side angle leaves the motor-side angle that the servo holds
        and the encoders measure, so the TCP moves off its commanded pose while
        :meth:`state` still reports the commanded joints, as on a real robot with compliant
        gearing. The spring is quasi-static: the deflection follows a change of the load as a
        first-order lag of :data:`DEFLECTION_TIME_CONSTANT` (5 ms, standing in for the arm's
        structural response of a few tens of Hz, so that a load that vanishes at once does not
        snap the joints back within one physics step); vibration of the arm on its joint
        springs is not modelled. A robot model without joint stiffness is rigid: the load only
        shows in the torques.
        """
        f = np.asarray(force, float).reshape(3)
        m = np.zeros(3) if moment is None else np.asarray(moment, float).reshape(3)
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(m))):
            raise ValueError(f"robot '{self.name}': TCP load must be finite, got {f}, {m}")
        if not f.any() and not m.any():
            self._load = None
            offset = None
        else:
            self._load = (f.tolist(), m.tolist(), self.tcp_position().tolist())
            k = self.model.joint_stiffness
            if k is None:
                offset = None
            else:
                R = self.base.R.T  # world -> base
                w = np.concatenate([R @ f, R @ m])
                J = self.kinematics.jacob0(self.state().q)
                offset = (J.T @ w) / k
        self._offset_goal = offset
        self._loaded = (
            self._load is not None or self._offset_goal is not None or self._q_offset is not None
        )

    def mirror(self, q: np.ndarray, dq: np.ndarray) -> None:
        """Put the joints at measured positions ``q`` and speeds ``dq`` and hold them there (a
        digital twin of a robot measured elsewhere)."""
        cid = self.world.client
        for j, qj, vj in zip(self.joint_ids, q, dq):
            pb.resetJointState(self.body, j, float(qj), float(vj), physicsClientId=cid)
        self._interp = None
        pb.setJointMotorControlArray(
            self.body,
            self.joint_ids,
            pb.POSITION_CONTROL,
            targetPositions=[float(x) for x in q],
            targetVelocities=[float(x) for x in dq],
            forces=self._effort,
            physicsClientId=cid,
        )

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

    def setpoint(self) -> np.ndarray:
        """The joint position setpoint [rad] the servos hold right now (motor side, before any
        deflection under a TCP load); the measured joints while in torque mode."""
        if self._last_sent is None or self._torque_mode:
            return self.state().q
        return np.array(self._last_sent[0], float)

    def tcp_position(self) -> np.ndarray:
        """TCP position in the world frame [m], shape (3,), as the physics has it (the cheap
        form of ``tcp_pose().t`` for per-tick use)."""
        ls = pb.getLinkState(
            self.body,
            self.flange_index,
            computeForwardKinematics=True,
            physicsClientId=self.world.client,
        )
        R = np.array(pb.getMatrixFromQuaternion(ls[5])).reshape(3, 3)
        return np.asarray(ls[4]) + R @ self.tool.tcp.t


def _check_fingers(f: ToolFingers) -> None:
    """Positive, finite finger dimensions, mass, friction, force and speed."""
    for key in ("stroke", "length", "thickness", "depth", "mass", "force_n", "speed"):
        v = getattr(f, key)
        if not (np.isfinite(v) and v > 0):
            raise ScenarioError(f"finger {key} must be > 0, got {v!r}", field=f"tool.fingers.{key}")
    if not (np.isfinite(f.friction) and f.friction >= 0):
        raise ScenarioError(
            f"finger friction must be >= 0, got {f.friction!r}", field="tool.fingers.friction"
        )
