"""The Robot interface: the one seam between controllers and hardware.

A controller never knows whether it talks to a :class:`~robocell.robot.sim_robot.SimRobot`, a
remote robot over the bridge or a user's adapter around a vendor driver: all offer state, commands,
limits, flange/TCP pose, a tool mount and kinematics. Commands are clamped to the limits here, in
one place, and every clamping episode is reported as a :class:`LimitEvent`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from spatialmath import SE3

from robocell.errors import LimitError
from robocell.robot.kinematics import Kinematics
from robocell.robot.library import JointLimits, RobotModel

#: builds a NamedTuple without its Python-level ``__new__`` (for the per-tick command)
_new_tuple = tuple.__new__


def setpoint_rate(q: list[float], prev: list[float], period: float) -> list[float]:
    """The feed-forward of position targets given without one: the rate at which they move
    from the previous targets over one control period [rad/s]."""
    return [(a - b) / period for a, b in zip(q, prev)]


def clamp_feed_forward(ff: list[float], vmax: list[float]) -> list[float]:
    """A velocity feed-forward inside ±``vmax`` (conditional expressions: builtin min/max cost
    several times more here)."""
    return [vm if w > vm else (-vm if w < -vm else w) for w, vm in zip(ff, vmax)]


CommandMode = Literal["position", "velocity", "torque"]
LimitKind = Literal["position", "velocity", "effort"]


class RobotState(NamedTuple):
    """Measured joint state at time ``t`` [s]: ``q`` [rad], ``dq`` [rad/s], ``tau`` [N·m]."""

    t: float
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray


class JointCommand(NamedTuple):
    """A joint-space command for one control period.

    ``mode`` is ``position`` (``values`` = target q [rad], optional ``velocity`` feed-forward
    [rad/s]), ``velocity`` (``values`` = dq [rad/s]) or ``torque`` (``values`` = tau [N·m]).
    """

    mode: CommandMode
    values: np.ndarray
    velocity: np.ndarray | None = None

    @staticmethod
    def position(q: np.ndarray, dq: np.ndarray | None = None) -> JointCommand:
        return JointCommand("position", q, dq)

    @staticmethod
    def velocity_cmd(dq: np.ndarray) -> JointCommand:
        return JointCommand("velocity", dq)

    @staticmethod
    def torque(tau: np.ndarray) -> JointCommand:
        return JointCommand("torque", tau)


@dataclass(frozen=True)
class LimitEvent:
    """A command was clamped to a limit (reported once per episode, when clamping starts)."""

    t: float
    robot: str
    joint: int
    kind: LimitKind
    requested: float
    limit: float

    def event_fields(self) -> dict[str, Any]:
        """The fields of the cell's ``limit`` event (joints numbered from 1)."""
        return {
            "robot": self.robot,
            "joint": self.joint + 1,
            "limit_kind": self.kind,
            "requested": self.requested,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class ToolFingers:
    """Two parallel fingers on a tool, driven by force-limited prismatic joints.

    The fingers close along the TCP's x axis; their pads are centred on the TCP along its z axis
    (so the TCP is the point between the pads). The tool's body ends at the palm,
    ``length / 2`` before the TCP.

    Args:
        stroke: largest opening between the pads [m].
        length: pad length along the TCP's z axis [m].
        thickness: finger thickness along the closing axis [m].
        depth: finger width across the closing axis (TCP y) [m].
        mass: mass of one finger [kg].
        friction: pybullet lateral friction of the pads (the contact friction with a part is
            this times the part's own friction coefficient, as pybullet multiplies them).
        force_n: force limit of each finger's drive [N].
        speed: closing speed of each finger [m/s] (the opening changes twice as fast).
    """

    stroke: float = 0.085
    length: float = 0.05
    thickness: float = 0.01
    depth: float = 0.02
    mass: float = 0.05
    friction: float = 1.0
    force_n: float = 40.0
    speed: float = 0.05


@dataclass(frozen=True)
class Tool:
    """A tool on the flange: its TCP relative to the flange, and its mass.

    Args:
        name: tool name.
        tcp: pose of the tool centre point in the flange frame.
        mass: tool mass [kg] (carried by the robot in the physics when > 0).
        radius: radius [m] of the cylinder that stands for the tool body (flange to TCP, or to
            the palm when the tool has fingers).
        fingers: two parallel fingers (a parallel gripper), or None.
    """

    name: str = "flange"
    tcp: SE3 = field(default_factory=SE3)
    mass: float = 0.0
    radius: float = 0.03
    fingers: ToolFingers | None = None


class Robot(ABC):
    """Abstract robot: what every implementation (simulated, remote, fake) provides."""

    def __init__(
        self, name: str, model: RobotModel, base: SE3, tool: Tool | None, control_period: float
    ) -> None:
        self.name = name
        self.model = model
        self._n = model.dof  # (the tick's checks: the property costs more than the check)
        self.base = base
        self.tool = tool if tool is not None else Tool()
        self.control_period = float(control_period)
        self._kin: Kinematics | None = None
        self._clamping = np.zeros((3, model.dof), dtype=bool)
        self._events: list[LimitEvent] = []
        self.limit_episodes = 0
        # (a hair of slack so that a command exactly at the limit is not reported as clamped)
        self._vel_step = model.limits.velocity * self.control_period * (1 + 1e-9)
        self._neg_vel = -model.limits.velocity
        self._lower_l = model.limits.lower.tolist()
        self._upper_l = model.limits.upper.tolist()
        self._step_l = self._vel_step.tolist()
        self._vmax_l = model.limits.velocity.tolist()
        self._last_target_list: list[float] | None = None
        self._mode: str = "position"
        self._any_clamping = False

    # -- static facts --------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.model.dof

    @property
    def limits(self) -> JointLimits:
        return self.model.limits

    @property
    def kinematics(self) -> Kinematics:
        """Kinematics of this robot with its current tool's TCP (built lazily from the URDF)."""
        if self._kin is None:
            lim = self.limits
            self._kin = Kinematics(
                self.model.urdf,
                self.model.flange_link,
                np.vstack([lim.lower, lim.upper]),
                self.tool.tcp,
            )
        return self._kin

    def mount_tool(self, tool: Tool) -> None:
        """Mount ``tool`` (its TCP becomes the kinematics' end frame)."""
        self.tool = tool
        if self._kin is not None:
            self._kin = self._kin.with_tcp(tool.tcp)

    # -- live interface ------------------------------------------------------------------------
    @abstractmethod
    def state(self) -> RobotState:
        """The latest measured joint state."""

    def state_rows(self) -> np.ndarray:
        """The latest state as one (3, n) array: rows q, dq, tau (for the recorder)."""
        st = self.state()
        return np.array((st.q, st.dq, st.tau))

    @abstractmethod
    def _apply(self, cmd: JointCommand) -> None:
        """Send an already-clamped command to the hardware or the physics.

        Position commands from :meth:`apply_command` arrive through :meth:`_apply_position`,
        which calls this one unless a subclass sends them directly (as :class:`SimRobot`
        does): a subclass of such a robot that overrides this method must override that one
        too.
        """

    def command(self, cmd: JointCommand, t: float) -> JointCommand:
        """Clamp ``cmd`` to the limits, apply it, and return what was applied.

        Raises LimitError for a wrong joint count or a NaN/infinite value (never applied).
        """
        applied = self.apply_command(cmd, t)
        return JointCommand(
            applied.mode,
            np.array(applied.values, float),
            None if applied.velocity is None else np.array(applied.velocity),
        )

    def apply_command(self, cmd: JointCommand, t: float) -> JointCommand:
        """:meth:`command` for the run loop: the returned command may hold plain lists.

        Position targets are clamped inside the joint limits and no further from the previous
        target than the velocity limit allows in one control period; the velocity feed-forward
        within the velocity limits.

        This runs every control tick, so a position command is clamped here, on Python floats
        (for six joints several times cheaper than a chain of small numpy operations), and goes
        straight to :meth:`_apply_position`: each layer of calls costs about as much as its work.
        """
        vals = cmd.values
        if cmd.mode != "position":
            vals = np.asarray(vals, float)
            if vals.shape != (self.n,):
                raise LimitError(
                    f"{self.name}: command needs {self.n} joint values, got {vals.shape}"
                )
            if not np.isfinite(vals).all():
                raise LimitError(f"{self.name}: command contains NaN or infinite values: {vals}")
            applied = self._clamp(cmd, vals, t)
            self._apply(applied)
            return applied
        is_array = isinstance(vals, np.ndarray)
        req = vals.tolist() if is_array else [float(v) for v in vals]
        if len(req) != self._n or (is_array and vals.ndim != 1):
            raise LimitError(
                f"{self.name}: command needs {self.n} joint values, got {np.shape(vals)}"
            )
        if self._mode != "position":
            self._clamping[:] = False  # a new command mode starts new limit episodes
            self._any_clamping = False
            self._mode = "position"
        prev = self._last_target_list
        if prev is None:
            prev = self.state().q.tolist()
        # one sum catches any NaN or infinity (huge finite values may overflow it: then look)
        if not math.isfinite(sum(req)) and not all(map(math.isfinite, req)):
            raise LimitError(f"{self.name}: command contains NaN or infinite values: {req}")
        out = []
        clamped = False
        for v, p, lo, hi, st in zip(req, prev, self._lower_l, self._upper_l, self._step_l):
            a = p - st
            b = p + st
            if lo > a:
                a = lo
            if hi < b:
                b = hi
            if v < a:
                v = a
                clamped = True
            elif v > b:
                v = b
                clamped = True
            out.append(v)
        if clamped or self._any_clamping:
            self._limit_report(np.asarray(req), np.asarray(prev), t)
        self._last_target_list = out
        ff = cmd.velocity
        if ff is None:
            # no feed-forward given: the drive follows the setpoints at their own rate
            ffl = setpoint_rate(out, prev, self.control_period)
        else:
            ffl = ff.tolist() if isinstance(ff, np.ndarray) else [float(w) for w in ff]
            if len(ffl) != self._n:
                raise LimitError(f"{self.name}: velocity feed-forward needs {self.n} values")
            if not math.isfinite(sum(ffl)) and not all(map(math.isfinite, ffl)):
                raise LimitError(f"{self.name}: velocity feed-forward contains NaN or inf")
            ffl = clamp_feed_forward(ffl, self._vmax_l)
        self._apply_position(out, ffl)
        return _new_tuple(JointCommand, ("position", out, ffl))  # type: ignore[return-value]

    def _apply_position(self, q: list[float], dq: list[float]) -> None:
        """Send a clamped position command (targets and their feed-forward, as lists)."""
        self._apply(JointCommand("position", q, dq))  # type: ignore[arg-type]

    def flange_pose(self) -> SE3:
        """Flange pose in the world frame, from the measured joint positions."""
        return self.base * self.kinematics.flange(self.state().q)

    def tcp_pose(self) -> SE3:
        """TCP pose in the world frame, from the measured joint positions."""
        return self.base * self.kinematics.fkine(self.state().q)

    def pop_events(self) -> list[LimitEvent]:
        ev, self._events = self._events, []
        return ev

    # -- limits --------------------------------------------------------------------------------
    def _limit_report(self, vals: np.ndarray, prev: np.ndarray, t: float) -> None:
        """Which limits a position command hit (the slow path, only while clamping)."""
        lim = self.limits
        q = np.minimum(np.maximum(vals, lim.lower), lim.upper)
        self._note(0, q != vals, t, vals, np.where(vals > lim.upper, lim.upper, lim.lower))
        q_rate = np.minimum(np.maximum(q, prev - self._vel_step), prev + self._vel_step)
        req_v = (q - prev) / self.control_period
        self._note(1, q_rate != q, t, req_v, np.sign(req_v) * lim.velocity)
        self._note(2, np.zeros(self.n, dtype=bool), t, vals, lim.effort)

    def _note(
        self, kind_idx: int, mask: np.ndarray, t: float, req: np.ndarray, lim: np.ndarray
    ) -> None:
        kinds: tuple[LimitKind, ...] = ("position", "velocity", "effort")
        started = mask & ~self._clamping[kind_idx]
        for j in np.flatnonzero(started):
            self._events.append(
                LimitEvent(t, self.name, int(j), kinds[kind_idx], float(req[j]), float(lim[j]))
            )
            self.limit_episodes += 1
        self._clamping[kind_idx] = mask
        self._any_clamping = bool(self._clamping.any())

    def _clamp(self, cmd: JointCommand, vals: np.ndarray, t: float) -> JointCommand:
        lim = self.limits
        if self._last_target_list is not None or self._mode != cmd.mode:
            self._clamping[:] = False  # a new command mode starts new limit episodes
            self._any_clamping = False
        self._mode = cmd.mode
        self._last_target_list = None
        if cmd.mode == "velocity":
            dq = np.clip(vals, -lim.velocity, lim.velocity)
            self._note(1, dq != vals, t, vals, np.sign(vals) * lim.velocity)
            q = self.state().q
            # never drive further into a position limit
            blocked = ((q >= lim.upper) & (dq > 0)) | ((q <= lim.lower) & (dq < 0))
            self._note(0, blocked, t, q, np.where(q >= lim.upper, lim.upper, lim.lower))
            return JointCommand("velocity", np.where(blocked, 0.0, dq))
        if cmd.mode == "torque":
            tau = np.clip(vals, -lim.effort, lim.effort)
            self._note(2, tau != vals, t, vals, np.sign(vals) * lim.effort)
            return JointCommand("torque", tau)
        raise LimitError(f"{self.name}: unknown command mode '{cmd.mode}'")


class FakeRobot(Robot):
    """An in-memory robot that follows its commands perfectly (for fast controller tests).

    Position commands are reached at the end of the period; velocity commands are integrated;
    torque commands are recorded but do not move the joints.
    """

    def __init__(
        self,
        name: str,
        model: RobotModel,
        base: SE3 | None = None,
        tool: Tool | None = None,
        control_period: float = 0.002,
        q0: np.ndarray | None = None,
    ) -> None:
        super().__init__(name, model, base if base is not None else SE3(), tool, control_period)
        home = q0 if q0 is not None else model.home
        self._q = np.array(home if home is not None else np.zeros(model.dof), float)
        self._dq = np.zeros(model.dof)
        self._tau = np.zeros(model.dof)
        self.t = 0.0

    def state(self) -> RobotState:
        return RobotState(self.t, self._q.copy(), self._dq.copy(), self._tau.copy())

    def _apply(self, cmd: JointCommand) -> None:
        dt = self.control_period
        vals = np.array(cmd.values, float)
        if cmd.mode == "position":
            self._dq = (vals - self._q) / dt
            self._q = vals
        elif cmd.mode == "velocity":
            self._dq = vals
            self._q = self._q + vals * dt
        else:
            self._tau = vals
        self.t += dt
