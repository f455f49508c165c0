"""Grippers for pick-and-place: a vacuum gripper and a parallel-jaw gripper, as cell devices
mounted on a robot's tool.

Both are :class:`~robocell.cell.devices.Device` objects named ``"<robot>.gripper"``. The robot
must be built with the gripper's :meth:`tool_spec` (its TCP, mass and, for the parallel gripper,
its fingers); :meth:`mount` does the three steps::

    g = VacuumGripper(cup_diameter=0.03)
    r = g.mount(cell, "ur5e", base=SE3(0, 0, 0.8))
    # = r = cell.add_robot("ur5e", base=..., tool=g.tool_spec()); g.robot = r.name;
    #   cell.add_device(g)

Signals (``<g>`` is ``"<robot>.gripper"``):

==========================  ========  ==================================================
``<g>.vacuum``              command   bool, vacuum on (vacuum gripper)
``<g>.close``               command   bool, close the fingers (parallel gripper)
``<g>.open_width``          command   float [m], opening when not closed (parallel)
``<g>.holding``             output    int, id of the held part, 0 for none
``<g>.attached``            output    bool, a part is held
``<g>.vacuum_kpa``          output    float, vacuum level [kPa gauge] (vacuum gripper)
``<g>.width``               output    float [m], measured opening (parallel gripper)
``<g>.closed``              output    bool, the fingers are commanded closed (parallel)
``<g>.grip_force_n``        output    float [N], the grip force now (vacuum: the holding
                                      force cups x level x area; parallel: the force of
                                      each finger's drive)
==========================  ========  ==================================================

``command(...)`` writes the same command signals, so a controller's signal writes and Python
calls take one path. Events: the part registry's ``picked`` (when a part is gripped) and, when a
part is lost without a command, ``grip_lost`` (part, robot, reason, force_n, limit_n) after the
part is marked released (a station or the drop detector then decides where it ended up).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device, Part
from robocell.errors import ScenarioError
from robocell.robot.interface import Tool, ToolFingers
from robocell.robot.sim_robot import SimRobot

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

#: share of the set vacuum level from which a held part can be lost (below it the vacuum is still
#: building up after the cup sealed, and the cup carries what the level allows)
BUILT_UP = 0.9

Vec = tuple[float, float, float]
Quat = tuple[float, float, float, float]  # x, y, z, w


class GripperState(NamedTuple):
    """What a gripper reports.

    Attributes:
        holding: id of the held part (0: none).
        vacuum_kpa: vacuum level [kPa gauge] (0 for a parallel gripper).
        width_m: opening between the fingers [m] (NaN for a vacuum gripper).
        grip_force_n: the grip now [N]: the vacuum gripper's holding force (cups x level x cup
            area), the force of each finger's drive of a parallel gripper.
        closed: vacuum on / fingers commanded closed.
        load_n: the load on the grip now [N] (vacuum: the equivalent pull, see
            :class:`VacuumGripper`; parallel: the held part's weight), 0 when not holding.
        peak_load_n: the largest ``load_n`` of the current or the last hold [N].
    """

    holding: int
    vacuum_kpa: float
    width_m: float
    grip_force_n: float
    closed: bool
    load_n: float
    peak_load_n: float


class Gripper(Protocol):
    """What every gripper offers (besides being a :class:`Device`)."""

    name: str

    @property
    def robot(self) -> str: ...

    def tool_spec(self) -> Tool: ...

    def state(self) -> GripperState: ...

    def command(self, **kw: Any) -> None: ...


def mount_gripper(
    cell: Cell, gripper: VacuumGripper | ParallelGripper, model: str, **robot_kw: Any
) -> SimRobot:
    """Add a robot built with ``gripper``'s tool to ``cell`` and the gripper as its device.

    Args:
        cell: the cell (not started).
        gripper: a :class:`VacuumGripper` or :class:`ParallelGripper`.
        model: robot model name (``"ur5e"``) or URDF path, as for :meth:`Cell.add_robot`.
        robot_kw: further arguments of :meth:`Cell.add_robot` (name, base, q0, ...); ``tool``
            is the gripper's.
    Returns:
        The robot (``robot.gripper`` is the gripper).
    """
    if "tool" in robot_kw:
        raise ScenarioError("the gripper defines the robot's tool; do not pass tool=", field="tool")
    robot = cell.add_robot(model, tool=gripper.tool_spec(), **robot_kw)
    gripper.robot = robot.name
    cell.add_device(gripper)
    return robot


def _positive(name: str, value: float, strict: bool = True) -> float:
    v = float(value)
    ok = math.isfinite(v) and (v > 0 if strict else v >= 0)
    if not ok:
        raise ScenarioError(
            f"{name} must be {'>' if strict else '>='} 0, got {value!r}", field=f"gripper.{name}"
        )
    return v


def _sim_robot(cell: Cell, robot: str, what: str) -> SimRobot:
    if not robot:
        raise ScenarioError(
            f"{what}: set gripper.robot to the robot's name before cell.add_device "
            "(or use gripper.mount(cell, model, ...))",
            field="gripper.robot",
        )
    r = cell.robots.get(robot)
    if r is None:
        raise ScenarioError(
            f"{what}: no robot named '{robot}'; robots: {', '.join(cell.robots) or 'none'}",
            field="gripper.robot",
        )
    if not isinstance(r, SimRobot):
        raise ScenarioError(f"{what}: robot '{robot}' is not simulated", field="gripper.robot")
    return r


def _release(cell: Cell, part: Part, by: str) -> None:
    """The gripper let go of ``part``: it is free again, unless a station has claimed it (or it
    was otherwise accounted for) meanwhile."""
    if part.state == "held" and part.where == by:
        cell.parts.released(part)


def _lost(
    cell: Cell, part: Part, by: str, robot: str, reason: str, force_n: float, limit_n: float
) -> None:
    """An uncommanded loss: the part is free, and ``grip_lost`` says why."""
    _release(cell, part, by)
    cell.emit(
        "grip_lost",
        part=part.id,
        robot=robot,
        reason=reason,
        force_n=round(force_n, 6),
        limit_n=round(limit_n, 6),
    )


# pybullet calls of the per-physics-step cup spring, bound once
_link_state = pb.getLinkState
_mul_tf = pb.multiplyTransforms
_base_pose = pb.getBasePositionAndOrientation
_base_vel = pb.getBaseVelocity
_matrix = pb.getMatrixFromQuaternion
_force = pb.applyExternalForce
_torque = pb.applyExternalTorque
_WORLD = pb.WORLD_FRAME
_NO_TURN = (0, 0, 0, 1)
#: the vacuum gripper's signals after its name: the command, then the outputs
_VACUUM_SIGNALS = ("vacuum", "holding", "attached", "vacuum_kpa", "grip_force_n")


# -- small vector maths on tuples (per physics step, cheaper than numpy for 3-vectors) ----------
def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _qmul(a: Quat, b: Quat) -> Quat:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def _qconj(q: Quat) -> Quat:
    return (-q[0], -q[1], -q[2], q[3])


def _rotvec(q: Quat) -> Vec:
    """Rotation vector [rad] of unit quaternion ``q`` (the shorter way round)."""
    x, y, z, w = q
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-12:
        return (2 * x, 2 * y, 2 * z)
    k = 2 * math.atan2(s, w) / s
    return (k * x, k * y, k * z)


class VacuumGripper(Device):
    """A vacuum gripper: suction cups whose holding force is the vacuum times the cup area.

    The cup is a stiff spring-damper between the cup face and the part (all six directions),
    acting on both the part and the robot's tool link through the physics. That is what a cup
    is (a compliant lip), and it lets the gripper measure exactly the force the cup carries: the
    spring force, which already includes gravity, inertia when the robot swings the part, and
    any push from a surface the part touches. Every physics step the load is compared with the
    holding force ``F_hold = cups x level x pi d^2 / 4``; the part falls when the equivalent
    pull ::

        F_eq = pull + shear / cup_friction + 8 |M_bend| / D + 3 |M_twist| / (cup_friction D)

    exceeds ``F_hold`` (``pull``: force along the cup axis away from the cup; ``M_bend``,
    ``M_twist``: moment about the cup centre across and about the cup axis; ``D`` the diameter of
    the cups' combined area: 8 M / D is the edge pull of a disc under a linear pressure change,
    3 M / (mu D) the twist a disc's friction can take). Pressing on the part costs nothing.

    A spring force needs no noise filter: the spring and damper are the cup's own, physical low
    pass (the part on the cup rings at ``cup_frequency_hz``, critically damped). The stiffness is
    set from the held part's mass and inertia so that frequency is the same for every part and
    the explicit spring stays stable (``2 pi f dt`` is kept <= 0.15).

    The vacuum builds up only while a part seals the cup, with time constant ``rise_time_s``,
    and decays with ``release_time_s`` when switched off (a cup open to the air stays at 0).
    A part is gripped when the vacuum is switched on and a registered part's surface lies within
    ``attach_distance`` of the cup face; one switch-on grips at most one part (after a loss the
    vacuum must be switched off and on again). Until the level has built up to
    :data:`BUILT_UP` of its setting the cup carries at most what the level holds and does not
    let go (the lip slides). A commanded release lets go when the falling
    holding force no longer carries the part, or when the level is below 2 % of its setting.

    Args:
        cup_diameter: diameter of one cup [m].
        cups: number of cups (their forces add up).
        vacuum_kpa: vacuum level reached with a sealed cup [kPa, gauge].
        cup_friction: friction coefficient between cup lip and part.
        rise_time_s: time constant of the vacuum build-up [s].
        release_time_s: time constant of the vacuum decay [s].
        tcp_offset: distance flange -> cup face along the flange's z axis [m] (the TCP).
        mass: gripper mass [kg].
        attach_distance: largest gap between cup face and part that seals [m].
        cup_frequency_hz: natural frequency of a part on the cup [Hz].
        robot: name of the robot it is mounted on (may be set later, before ``add_device``).
    """

    per_step = True

    def __init__(
        self,
        cup_diameter: float,
        cups: int = 1,
        vacuum_kpa: float = 60.0,
        cup_friction: float = 0.5,
        rise_time_s: float = 0.05,
        release_time_s: float = 0.03,
        tcp_offset: float = 0.12,
        mass: float = 0.4,
        attach_distance: float = 0.003,
        cup_frequency_hz: float = 25.0,
        robot: str = "",
    ) -> None:
        self.cup_diameter = _positive("cup_diameter", cup_diameter)
        if not isinstance(cups, int) or isinstance(cups, bool) or cups < 1:
            raise ScenarioError(f"cups must be a whole number >= 1, got {cups!r}", field="cups")
        self.cups = cups
        self.vacuum_kpa = _positive("vacuum_kpa", vacuum_kpa)
        if self.vacuum_kpa >= 101.325:
            raise ScenarioError(
                f"vacuum_kpa is a gauge vacuum below one atmosphere (101.3 kPa), got {vacuum_kpa}",
                field="gripper.vacuum_kpa",
            )
        self.cup_friction = _positive("cup_friction", cup_friction)
        self.rise_time_s = _positive("rise_time_s", rise_time_s)
        self.release_time_s = _positive("release_time_s", release_time_s)
        self.tcp_offset = _positive("tcp_offset", tcp_offset)
        self.mass = _positive("mass", mass, strict=False)
        self.attach_distance = _positive("attach_distance", attach_distance)
        self.cup_frequency_hz = _positive("cup_frequency_hz", cup_frequency_hz)
        #: the cups' combined area [m²]
        self.area = cups * math.pi * self.cup_diameter**2 / 4
        #: diameter of a disc of the cups' combined area [m]
        self.pad_diameter = self.cup_diameter * math.sqrt(cups)
        self._robot = ""
        self.name = "gripper"
        self.robot = robot
        self._cell: Cell | None = None
        self._sim: SimRobot | None = None
        self._level_pa = 0.0
        self._target_pa = 0.0
        self._keep = 1.0  # share of (level - target) left after one physics step
        self._keep_tau = math.nan  # the time constant ``_keep`` was computed for
        self._on = False
        self._armed = False
        self._part: Part | None = None
        self._releasing = False
        self._load_n = 0.0
        self._peak_n = 0.0
        self._stats = {"picks": 0, "releases": 0, "losses": 0}
        self._peak_all_n = 0.0

    # -- identity ------------------------------------------------------------------------------
    @property
    def robot(self) -> str:
        """Name of the robot the gripper is mounted on."""
        return self._robot

    @robot.setter
    def robot(self, value: str) -> None:
        self._robot = str(value)
        n = self.name = f"{self._robot}.gripper" if self._robot else "gripper"
        # the signal keys, made once (vacuum, holding, attached, vacuum_kpa, grip_force_n)
        self._keys = tuple(f"{n}.{k}" for k in _VACUUM_SIGNALS)

    def tool_spec(self) -> Tool:
        """The tool the robot must be built with: TCP at the cup face, the gripper's mass, a
        body as wide as the cups' combined area."""
        return Tool(
            name="vacuum",
            tcp=SE3(0, 0, self.tcp_offset),
            mass=self.mass,
            radius=self.pad_diameter / 2,
        )

    def mount(self, cell: Cell, model: str, **robot_kw: Any) -> SimRobot:
        """Add a robot carrying this gripper to ``cell`` (see :func:`mount_gripper`)."""
        return mount_gripper(cell, self, model, **robot_kw)

    def hold_force_n(self, level_kpa: float | None = None) -> float:
        """Holding force [N] at vacuum ``level_kpa`` [kPa gauge] (default: the level now)."""
        lvl = self._level_pa if level_kpa is None else level_kpa * 1e3
        return lvl * self.area

    # -- commands and state --------------------------------------------------------------------
    def command(self, vacuum: bool | None = None, **kw: Any) -> None:
        """Switch the vacuum on or off (writes the ``<g>.vacuum`` signal, read at the next
        tick)."""
        if kw:
            raise ScenarioError(
                f"unknown vacuum gripper command(s) {sorted(kw)}; valid: vacuum",
                field="gripper.command",
            )
        if self._cell is None:
            raise ScenarioError(f"{self.name}: add the gripper to a cell before commanding it")
        if vacuum is not None:
            self._cell.signals[f"{self.name}.vacuum"] = bool(vacuum)

    def state(self) -> GripperState:
        return GripperState(
            holding=self._part.id if self._part is not None else 0,
            vacuum_kpa=self._level_pa / 1e3,
            width_m=math.nan,
            grip_force_n=self._level_pa * self.area,
            closed=self._on,
            load_n=self._load_n if self._part is not None else 0.0,
            peak_load_n=self._peak_n,
        )

    # -- device hooks --------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        robot = _sim_robot(cell, self._robot, "vacuum gripper")
        if robot.tool_link is None or abs(robot.tool.tcp.t[2] - self.tcp_offset) > 1e-9:
            raise ScenarioError(
                f"vacuum gripper: robot '{robot.name}' must be built with the gripper's tool "
                "(tool=gripper.tool_spec())",
                field="gripper.robot",
            )
        self._cell, self._sim = cell, robot
        robot.gripper = self
        # what the per-step spring needs, looked up once
        self._cid, self._rbody, self._tool = cell.world.client, robot.body, robot.tool_link
        tcp = robot.tool.tcp
        self._tcp_p: Vec = tuple(float(v) for v in tcp.t)  # type: ignore[assignment]
        q = pb.getQuaternionFromEuler(tcp.rpy(order="zyx").tolist())
        self._tcp_q: Quat = tuple(q)  # type: ignore[assignment]
        self._dt = cell.world.physics_step
        g = cell.world.gravity
        self._g = math.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)

    def start(self, cell: Cell) -> None:
        cell.signals.setdefault(self._keys[0], False)
        self._publish(cell)

    def apply(self, cell: Cell) -> None:
        on = bool(cell.signals.get(self._keys[0], False))
        if on and not self._on:
            self._armed = True
        self._on = on
        if self._part is None:
            if on and self._armed:
                self._try_attach(cell)
        else:
            self._releasing = not on
        self._set_target()

    def before_step(self, cell: Cell) -> None:
        if self._level_pa != self._target_pa:
            tgt = self._target_pa
            lvl = tgt + (self._level_pa - tgt) * self._keep
            self._level_pa = tgt if abs(lvl - tgt) < 1e-6 else lvl
        if self._part is not None:
            self._cup_step()

    def sense(self, cell: Cell) -> None:
        self._publish(cell)

    def info(self) -> dict[str, Any]:
        return {
            "type": "vacuum",
            "robot": self._robot,
            "cup_diameter": self.cup_diameter,
            "cups": self.cups,
            "vacuum_kpa": self.vacuum_kpa,
            "hold_force_n": self.hold_force_n(self.vacuum_kpa),
            "cup_friction": self.cup_friction,
            "tcp_offset": self.tcp_offset,
            "rise_time_s": self.rise_time_s,
            "release_time_s": self.release_time_s,
        }

    def kpis(self) -> dict[str, Any]:
        return {
            **self._stats,
            "peak_load_n": round(self._peak_all_n, 6),
            "hold_force_n": round(self.hold_force_n(self.vacuum_kpa), 6),
        }

    # -- internals -----------------------------------------------------------------------------
    def _publish(self, cell: Cell) -> None:
        sig = cell.signals
        _, k_holding, k_attached, k_kpa, k_force = self._keys
        held = self._part.id if self._part is not None else 0
        sig[k_holding] = held
        sig[k_attached] = held != 0
        sig[k_kpa] = self._level_pa / 1e3
        sig[k_force] = self._level_pa * self.area

    def _set_target(self) -> None:
        """The vacuum heads to its setting while on and sealed, to 0 otherwise."""
        sealed = self._part is not None
        if self._on and sealed:
            tgt, tau = self.vacuum_kpa * 1e3, self.rise_time_s
        else:
            tgt, tau = 0.0, self.release_time_s
        self._target_pa = tgt
        if tau != self._keep_tau:  # (called every tick; the decay changes only with tau)
            self._keep_tau = tau
            self._keep = math.exp(-self._dt / tau)

    def _cup_pose(self) -> tuple[Vec, Quat, Vec, Vec, Vec]:
        """Cup centre [m] and orientation in the world, the tool link's COM [m], linear [m/s]
        and angular [rad/s] velocity."""
        r = self._sim
        assert r is not None
        ls = pb.getLinkState(
            r.body,
            r.tool_link,
            computeLinkVelocity=1,
            computeForwardKinematics=1,
            physicsClientId=r.world.client,
        )
        p, q = pb.multiplyTransforms(ls[4], ls[5], self._tcp_p, self._tcp_q)
        return p, q, ls[0], ls[6], ls[7]

    def _try_attach(self, cell: Cell) -> None:
        r = self._sim
        assert r is not None
        cid = r.world.client
        cup_p, cup_q, *_ = self._cup_pose()
        reach = self.pad_diameter / 2 + self.attach_distance
        lo = [c - reach for c in cup_p]
        hi = [c + reach for c in cup_p]
        near = pb.getOverlappingObjects(lo, hi, physicsClientId=cid) or ()
        m = pb.getMatrixFromQuaternion(cup_q)
        axis = (m[2], m[5], m[8])
        best: tuple[float, Part] | None = None
        for body, _link in near:
            if body == r.body:
                continue
            part = cell.parts.by_body(body)
            if part is None or part.state not in ("on_conveyor", "free"):
                continue
            pts = pb.getClosestPoints(
                r.body,
                body,
                self.attach_distance,
                linkIndexA=r.tool_link,
                linkIndexB=-1,
                physicsClientId=cid,
            )
            for pt in pts:
                pa = pt[5]
                d = [pa[i] - cup_p[i] for i in range(3)]
                along = d[0] * axis[0] + d[1] * axis[1] + d[2] * axis[2]
                if along < -self.attach_distance:
                    continue  # the closest point is on the gripper's side, not its face
                if best is None or pt[8] < best[0]:
                    best = (pt[8], part)
        if best is not None:
            self._grip(cell, best[1], cup_p, cup_q)

    def _grip(self, cell: Cell, part: Part, cup_p: Vec, cup_q: Quat) -> None:
        r = self._sim
        assert r is not None
        cid = r.world.client
        bp, bq = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)
        inv_p, inv_q = pb.invertTransform(bp, bq)
        # the cup centre in the part's frame, and the part's orientation in the cup's frame
        self._anchor, _ = pb.multiplyTransforms(inv_p, inv_q, cup_p, (0, 0, 0, 1))
        self._q_rel = _qmul(_qconj(cup_q), tuple(bq))  # type: ignore[arg-type]
        dyn = pb.getDynamicsInfo(part.body, -1, physicsClientId=cid)
        m, inertia = float(dyn[0]), dyn[2]
        w = 2 * math.pi * self.cup_frequency_hz
        w = min(w, 0.15 / self._dt)
        i_min = max(min(inertia), 1e-9)
        self._k, self._c = m * w * w, 2 * m * w
        self._kr, self._cr = i_min * w * w, 2 * i_min * w
        self._weight_tol = 0.01 * m * self._g
        # the cup's spring replaces the contact between cup face and part
        pb.setCollisionFilterPair(r.body, part.body, r.tool_link, -1, 0, physicsClientId=cid)
        self._part = part
        self._armed = False
        self._releasing = False
        self._load_n = 0.0
        self._peak_n = 0.0
        self._stats["picks"] += 1
        cell.parts.picked(part, by=self.name)

    def _cup_step(self) -> None:
        """One physics step of the cup spring: apply its force and moment to the part and, in
        reaction, to the tool link; let go when the load exceeds the holding force."""
        r, part = self._sim, self._part
        assert r is not None and part is not None
        body = part.body
        if body < 0:
            self._part = None
            return
        # (runs every physics step while holding: plain floats and locals, no helper tuples,
        # positional pybullet arguments (keywords cost more than some of the calls); the
        # arithmetic is exactly that of the vector helpers above, in the same order)
        cid = self._cid
        # tool link state with its velocity and a fresh forward kinematics (without it the
        # pose would be the one before the last physics step)
        ls = _link_state(self._rbody, self._tool, 1, 1, cid)
        cup_p, cup_q = _mul_tf(ls[4], ls[5], self._tcp_p, self._tcp_q)
        com, v_t, w_t = ls[0], ls[6], ls[7]
        bp, bq = _base_pose(body, cid)
        v_p, w_p = _base_vel(body, cid)
        anc, _ = _mul_tf(bp, bq, self._anchor, _NO_TURN)
        ax, ay, az = anc
        cx, cy, cz = cup_p
        rax, ray, raz = ax - bp[0], ay - bp[1], az - bp[2]  # part origin -> anchor
        rcx, rcy, rcz = cx - com[0], cy - com[1], cz - com[2]  # tool COM -> cup centre
        wpx, wpy, wpz = w_p
        wtx, wty, wtz = w_t
        k, c = self._k, self._c
        # spring on the anchor-cup offset, damper on the velocity of the anchor (on the part,
        # v + w x r) relative to the cup centre (on the tool)
        f = (
            -k * (ax - cx)
            - c * ((v_p[0] + (wpy * raz - wpz * ray)) - (v_t[0] + (wty * rcz - wtz * rcy))),
            -k * (ay - cy)
            - c * ((v_p[1] + (wpz * rax - wpx * raz)) - (v_t[1] + (wtz * rcx - wtx * rcz))),
            -k * (az - cz)
            - c * ((v_p[2] + (wpx * ray - wpy * rax)) - (v_t[2] + (wtx * rcy - wty * rcx))),
        )
        phi = _rotvec(_qmul(bq, _qconj(_qmul(cup_q, self._q_rel))))  # type: ignore[arg-type]
        kr, cr = self._kr, self._cr
        tq = (
            -kr * phi[0] - cr * (wpx - wtx),
            -kr * phi[1] - cr * (wpy - wty),
            -kr * phi[2] - cr * (wpz - wtz),
        )
        # the load in the cup's frame (force and moment on the part, about the cup centre)
        m = _matrix(cup_q)
        z0, z1, z2 = m[2], m[5], m[8]
        f0, f1, f2 = f
        fz = f0 * z0 + f1 * z1 + f2 * z2
        x = f0**2 + f1**2 + f2**2 - fz * fz
        shear = math.sqrt(0.0 if 0.0 > x else x)  # (= max(x, 0.0), NaN included)
        t0, t1, t2 = tq
        tz = t0 * z0 + t1 * z1 + t2 * z2
        x = t0**2 + t1**2 + t2**2 - tz * tz
        bend = math.sqrt(0.0 if 0.0 > x else x)
        mu, d = self.cup_friction, self.pad_diameter
        pull = -fz if fz < 0 else 0.0
        slide = shear / mu
        peel = 8 * bend / d
        twist = 3 * abs(tz) / (mu * d)
        load = pull + slide + peel + twist
        self._load_n = load
        if load > self._peak_n:
            self._peak_n = load
            if load > self._peak_all_n:
                self._peak_all_n = load
        hold = self._level_pa * self.area
        if self._on and not self._releasing and self._level_pa < BUILT_UP * self.vacuum_kpa * 1e3:
            # the vacuum is still building up: the sealed lip passes on what the level holds
            # now and slides for the rest (a cup does not let go of a part it is sealing): the
            # force is capped and the anchor slides with it, so no stretch is stored
            if load > hold:
                s = hold / load
                f = (f[0] * s, f[1] * s, f[2] * s)
                tq = (tq[0] * s, tq[1] * s, tq[2] * s)
                slid = tuple(cup_p[i] + (anc[i] - cup_p[i]) * s for i in range(3))
                inv_p, inv_q = pb.invertTransform(bp, bq)
                self._anchor, _ = pb.multiplyTransforms(inv_p, inv_q, slid, (0, 0, 0, 1))
        elif load > hold + self._weight_tol or (
            self._releasing and self._level_pa < 0.02 * self.vacuum_kpa * 1e3
        ):
            terms = (("pull", pull), ("shear", slide), ("peel", peel), ("twist", twist))
            reason = max(terms, key=lambda t: t[1])[0]
            self._let_go(load, hold, reason)
            return
        _force(body, -1, f, anc, _WORLD, cid)
        _torque(body, -1, tq, _WORLD, cid)
        neg_f = (-f[0], -f[1], -f[2])
        _force(self._rbody, self._tool, neg_f, cup_p, _WORLD, cid)
        neg_t = (-tq[0], -tq[1], -tq[2])
        _torque(self._rbody, self._tool, neg_t, _WORLD, cid)

    def _let_go(self, load: float, hold: float, reason: str) -> None:
        r, part, cell = self._sim, self._part, self._cell
        assert r is not None and part is not None and cell is not None
        pb.setCollisionFilterPair(
            r.body, part.body, r.tool_link, -1, 1, physicsClientId=r.world.client
        )
        self._part = None
        self._set_target()
        if self._releasing:
            self._stats["releases"] += 1
            _release(cell, part, self.name)
        else:
            self._stats["losses"] += 1
            _lost(cell, part, self.name, self._robot, reason, load, hold)


class ParallelGripper(Device):
    """A parallel-jaw gripper: two fingers on force-limited prismatic drives.

    The fingers are two prismatic links of the robot's multibody (see
    :class:`~robocell.robot.interface.ToolFingers`); their pads are centred on the TCP and close
    along the TCP's x axis. Closing drives each finger inwards at ``close_speed / 2`` until it is
    blocked, and then it squeezes with ``grip_force_n``. The part is held only by the friction of
    the pads in the physics (no constraint): it stays when ``mu 2 F`` exceeds what gravity and
    the motion ask, and slips out otherwise. pybullet multiplies friction coefficients, so the
    pad-part friction is ``finger_friction`` times the part's own coefficient.

    A part counts as picked when both fingers touch it while the gripper is closed, and as lost
    when it has not touched both for ``loss_time_s`` (contacts of a held part flicker for a step
    or two as the solver settles; a real gripper's part-present check filters the same way).

    Args:
        max_width: stroke: the largest opening [m].
        grip_force_n: force limit of each finger's drive [N].
        finger_length: pad length along the TCP's z axis [m].
        finger_friction: pad friction coefficient.
        close_speed: speed of the opening change [m/s].
        tcp_offset: distance flange -> TCP (the middle of the pads) along flange z [m].
        mass: gripper mass with its fingers [kg].
        finger_thickness: finger thickness along the closing axis [m].
        finger_depth: finger width across the closing axis [m].
        finger_mass: mass of one finger [kg].
        loss_time_s: how long a held part may not touch both fingers before it counts as lost.
        robot: name of the robot it is mounted on (may be set later, before ``add_device``).
    """

    def __init__(
        self,
        max_width: float = 0.085,
        grip_force_n: float = 40.0,
        finger_length: float = 0.05,
        finger_friction: float = 1.0,
        close_speed: float = 0.1,
        tcp_offset: float = 0.15,
        mass: float = 0.9,
        finger_thickness: float = 0.01,
        finger_depth: float = 0.02,
        finger_mass: float = 0.05,
        loss_time_s: float = 0.02,
        robot: str = "",
    ) -> None:
        self.max_width = _positive("max_width", max_width)
        self.grip_force_n = _positive("grip_force_n", grip_force_n)
        self.finger_length = _positive("finger_length", finger_length)
        self.finger_friction = _positive("finger_friction", finger_friction, strict=False)
        self.close_speed = _positive("close_speed", close_speed)
        self.tcp_offset = _positive("tcp_offset", tcp_offset)
        self.mass = _positive("mass", mass)
        self.finger_thickness = _positive("finger_thickness", finger_thickness)
        self.finger_depth = _positive("finger_depth", finger_depth)
        self.finger_mass = _positive("finger_mass", finger_mass)
        self.loss_time_s = _positive("loss_time_s", loss_time_s, strict=False)
        if self.tcp_offset <= self.finger_length / 2:
            raise ScenarioError(
                f"tcp_offset ({tcp_offset} m) must exceed half the finger length "
                f"({finger_length / 2} m): the TCP is the middle of the pads",
                field="gripper.tcp_offset",
            )
        if self.mass <= 2 * self.finger_mass:
            raise ScenarioError(
                f"mass ({mass} kg) must exceed the two fingers' mass ({2 * finger_mass} kg)",
                field="gripper.mass",
            )
        self._robot = ""
        self.name = "gripper"
        self.robot = robot
        self._cell: Cell | None = None
        self._sim: SimRobot | None = None
        self._closed = False
        self._open_width = self.max_width
        self._part: Part | None = None
        self._off_steps = 0
        self._tick = 0.0  # the cell's control tick [s], known at start
        self._width = self.max_width
        self._force = 0.0
        self._load_n = 0.0
        self._peak_n = 0.0
        self._stats = {"picks": 0, "releases": 0, "losses": 0}

    # -- identity ------------------------------------------------------------------------------
    @property
    def robot(self) -> str:
        """Name of the robot the gripper is mounted on."""
        return self._robot

    @robot.setter
    def robot(self, value: str) -> None:
        self._robot = str(value)
        self.name = f"{self._robot}.gripper" if self._robot else "gripper"

    def fingers(self) -> ToolFingers:
        """The finger description the robot's tool carries."""
        return ToolFingers(
            stroke=self.max_width,
            length=self.finger_length,
            thickness=self.finger_thickness,
            depth=self.finger_depth,
            mass=self.finger_mass,
            friction=self.finger_friction,
            force_n=self.grip_force_n,
            speed=self.close_speed / 2,
        )

    def tool_spec(self) -> Tool:
        """The tool the robot must be built with: TCP between the pads, the gripper's mass
        (fingers included), a palm as wide as the open fingers, and the fingers."""
        return Tool(
            name="parallel",
            tcp=SE3(0, 0, self.tcp_offset),
            mass=self.mass,
            radius=self.max_width / 2 + self.finger_thickness,
            fingers=self.fingers(),
        )

    def mount(self, cell: Cell, model: str, **robot_kw: Any) -> SimRobot:
        """Add a robot carrying this gripper to ``cell`` (see :func:`mount_gripper`)."""
        return mount_gripper(cell, self, model, **robot_kw)

    # -- commands and state --------------------------------------------------------------------
    def command(
        self, close: bool | None = None, open_width: float | None = None, **kw: Any
    ) -> None:
        """Close or open the fingers; ``open_width`` [m] is the opening when not closed
        (writes the ``<g>.close`` / ``<g>.open_width`` signals, read at the next tick)."""
        if kw:
            raise ScenarioError(
                f"unknown parallel gripper command(s) {sorted(kw)}; valid: close, open_width",
                field="gripper.command",
            )
        if self._cell is None:
            raise ScenarioError(f"{self.name}: add the gripper to a cell before commanding it")
        if open_width is not None:
            self._cell.signals[f"{self.name}.open_width"] = self._check_width(open_width)
        if close is not None:
            self._cell.signals[f"{self.name}.close"] = bool(close)

    def _check_width(self, w: Any) -> float:
        v = float(w)
        if not (math.isfinite(v) and 0 <= v <= self.max_width):
            raise ScenarioError(
                f"open_width must be between 0 and max_width {self.max_width} m, got {w!r}",
                field=f"{self.name}.open_width",
            )
        return v

    def state(self) -> GripperState:
        return GripperState(
            holding=self._part.id if self._part is not None else 0,
            vacuum_kpa=0.0,
            width_m=self._width,
            grip_force_n=self._force,
            closed=self._closed,
            load_n=self._load_n if self._part is not None else 0.0,
            peak_load_n=self._peak_n,
        )

    def friction_limit_n(self, part: Part) -> float:
        """What the pads' friction can carry [N]: mu 2 F with mu = finger_friction x the part's
        friction coefficient (pybullet's combination)."""
        r = self._sim
        assert r is not None
        mu_part = pb.getDynamicsInfo(part.body, -1, physicsClientId=r.world.client)[1]
        return self.finger_friction * mu_part * 2 * self.grip_force_n

    # -- device hooks --------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        robot = _sim_robot(cell, self._robot, "parallel gripper")
        if len(robot.finger_joints) != 2 or robot.tool.fingers != self.fingers():
            raise ScenarioError(
                f"parallel gripper: robot '{robot.name}' must be built with the gripper's tool "
                "(tool=gripper.tool_spec())",
                field="gripper.robot",
            )
        self._cell, self._sim = cell, robot
        robot.gripper = self
        g = cell.world.gravity
        self._g = math.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)

    def start(self, cell: Cell) -> None:
        n = self.name
        cell.signals.setdefault(f"{n}.close", False)
        cell.signals.setdefault(f"{n}.open_width", self.max_width)
        self._tick = cell.control_period
        self._publish(cell)

    def apply(self, cell: Cell) -> None:
        sig = cell.signals
        close = bool(sig.get(f"{self.name}.close", False))
        width = self._check_width(sig.get(f"{self.name}.open_width", self.max_width))
        if close == self._closed and (close or width == self._open_width):
            return
        r = self._sim
        assert r is not None
        self._closed, self._open_width = close, width
        speed = self.close_speed / 2
        if close:
            r.drive_fingers(None, self.grip_force_n, speed)
            return
        r.drive_fingers(width, self.grip_force_n, speed)
        if self._part is not None:
            part, self._part = self._part, None
            self._stats["releases"] += 1
            _release(cell, part, self.name)

    def sense(self, cell: Cell) -> None:
        r = self._sim
        assert r is not None
        fs = r.finger_state()
        self._width = fs.width
        self._force = fs.force if self._closed else 0.0
        if self._closed:
            both = self._touching_both(cell)
            part = self._part
            if part is None:
                if both is not None and both.state in ("on_conveyor", "free"):
                    self._part = both
                    self._off_steps = 0
                    mass = pb.getDynamicsInfo(both.body, -1, physicsClientId=r.world.client)[0]
                    self._load_n = self._peak_n = mass * self._g
                    self._stats["picks"] += 1
                    cell.parts.picked(both, by=self.name)
            elif both is part:
                self._off_steps = 0
            else:
                self._off_steps += 1
                if self._off_steps * self._tick > self.loss_time_s + 1e-12:
                    self._part = None
                    self._stats["losses"] += 1
                    limit = self.friction_limit_n(part) if part.body >= 0 else math.nan
                    _lost(cell, part, self.name, self._robot, "slip", self._load_n, limit)
        self._publish(cell)

    def info(self) -> dict[str, Any]:
        return {
            "type": "parallel",
            "robot": self._robot,
            "max_width": self.max_width,
            "grip_force_n": self.grip_force_n,
            "finger_length": self.finger_length,
            "finger_friction": self.finger_friction,
            "close_speed": self.close_speed,
            "tcp_offset": self.tcp_offset,
        }

    def kpis(self) -> dict[str, Any]:
        return dict(self._stats)

    # -- internals -----------------------------------------------------------------------------
    def _touching_both(self, cell: Cell) -> Part | None:
        """The registered part that both fingers touch (None if there is none)."""
        r = self._sim
        assert r is not None
        cid = r.world.client
        left, right = r.finger_joints
        a = {
            c[2]
            for c in pb.getContactPoints(bodyA=r.body, linkIndexA=left, physicsClientId=cid)
            if c[8] <= 1e-4
        }
        if not a:
            return None
        for c in pb.getContactPoints(bodyA=r.body, linkIndexA=right, physicsClientId=cid):
            if c[2] in a and c[8] <= 1e-4:
                p = cell.parts.by_body(c[2])
                if p is not None:
                    return p
        return None

    def _publish(self, cell: Cell) -> None:
        n, sig = self.name, cell.signals
        held = self._part.id if self._part is not None else 0
        sig[f"{n}.holding"] = held
        sig[f"{n}.attached"] = held != 0
        sig[f"{n}.width"] = self._width
        sig[f"{n}.closed"] = self._closed
        sig[f"{n}.grip_force_n"] = self._force


__all__ = [
    "Gripper",
    "GripperState",
    "ParallelGripper",
    "VacuumGripper",
    "mount_gripper",
]
