"""Grippers on a UR5e: the vacuum cup holds what its suction force can carry through a move and
drops what it cannot; the parallel gripper holds by friction (mu 2 F against m g) alone.

The robot stands at the origin in its home pose, tool pointing down; parts sit on a pedestal
under the TCP. Moves are jerk-limited joint moves at a share of the UR5e's limits.
"""

from __future__ import annotations

import math

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

from robocell.cell.cell import Cell
from robocell.control.controller import Commands
from robocell.control.motion import JointMove
from robocell.errors import ScenarioError
from robocell.pnp.grippers import GripperState, ParallelGripper, VacuumGripper
from robocell.robot.interface import JointCommand, Tool
from robocell.robot.sim_robot import SimRobot

G = 9.81
PART = (0.05, 0.05, 0.04)  # vacuum test part, m
SWING = 1.5  # base rotation of the swing, rad


def _hold(cell: Cell, r: SimRobot, q: np.ndarray, seconds: float, **signals: object) -> None:
    for _ in range(round(seconds / cell.control_period)):
        cell.step(Commands(joints={r.name: JointCommand.position(q)}, signals=signals))


def _move(cell: Cell, r: SimRobot, q_to: np.ndarray, speed_scale: float) -> JointMove:
    """A rest-to-rest joint move from where the robot is, then 0.1 s of settling."""
    lim = r.limits
    q_from = r.state().q.copy()
    m = JointMove(q_from, q_to, lim.velocity, lim.acceleration, lim.jerk, speed_scale)
    t0, dt = cell.time, cell.control_period
    while cell.time - t0 < m.duration + 0.1:
        q, dq, _ = m.sample(cell.time - t0 + dt)
        cell.step(Commands(joints={r.name: JointCommand.position(q, dq)}))
    return m


def _pedestal_part(
    cell: Cell, xy: np.ndarray, top: float, size: tuple[float, float, float], mass: float
) -> int:
    """A static pedestal whose top is at ``top`` [m] and a registered box part on it."""
    cell.add_object("pedestal", "box", pose=SE3(xy[0], xy[1], top / 2), size=[0.1, 0.1, top])
    body = cell.add_object(
        "part",
        "box",
        pose=SE3(xy[0], xy[1], top + size[2] / 2 + 1e-4),
        mass=mass,
        size=list(size),
        friction=1.0,
    )
    cell.parts.spawn(body, "box")
    return body


def _vacuum_cell(mass: float, **kw: float) -> tuple[Cell, VacuumGripper, SimRobot, int, SE3]:
    cell = Cell(seed=1)
    g = VacuumGripper(cup_diameter=0.03, **kw)
    r = g.mount(cell, "ur5e")
    T = r.tcp_pose()
    assert T.R[2, 2] == pytest.approx(-1.0)  # the cup faces down
    body = _pedestal_part(cell, T.t, T.t[2] - 0.001 - PART[2], PART, mass)
    cell.start()
    _hold(cell, r, r.state().q.copy(), 0.02)  # the part settles on the pedestal
    return cell, g, r, body, T


def _z(cell: Cell, body: int) -> float:
    return pb.getBasePositionAndOrientation(body, physicsClientId=cell.world.client)[0][2]


def _events(cell: Cell, kind: str) -> list[dict]:
    return [e for e in cell._events if e["kind"] == kind]


def _swing(mass: float, speed_scale: float) -> tuple[GripperState, float, Cell, float]:
    """Pick a box of ``mass`` [kg], lift it 0.1 m slowly, swing the base by SWING rad at
    ``speed_scale``; returns the gripper state, its full holding force [N], the cell and how far
    the part is below its carrying height at the end [m]."""
    cell, g, r, body, T = _vacuum_cell(mass)
    z_carry = _z(cell, body) + 0.1
    q0 = r.state().q.copy()
    _hold(cell, r, q0, 0.25, **{f"{g.name}.vacuum": True})  # 5 time constants
    q_lift = r.kinematics.ik(SE3(0, 0, 0.1) * T, q0)
    _move(cell, r, q_lift, 0.3)
    q_swing = q_lift.copy()
    q_swing[0] += SWING
    _move(cell, r, q_swing, speed_scale)
    return g.state(), g.hold_force_n(g.vacuum_kpa), cell, z_carry - _z(cell, body)


def test_vacuum_holds_light_part_and_drops_heavy_one_in_the_same_fast_move() -> None:
    light, f_hold, cell_l, fall_l = _swing(0.2, 1.0)
    heavy, _, cell_h, fall_h = _swing(1.0, 1.0)
    slow, _, cell_s, fall_s = _swing(1.0, 0.3)
    # F_hold = cups x vacuum x area = 60 kPa x pi (0.03 m)^2 / 4
    assert f_hold == pytest.approx(60e3 * math.pi * 0.03**2 / 4)
    assert light.holding == 1, (
        f"light part lost: peak load {light.peak_load_n:.1f} N, F_hold {f_hold:.1f} N"
    )
    assert light.peak_load_n < 0.5 * f_hold, (
        f"light part, fast move: peak {light.peak_load_n:.1f} N vs F_hold {f_hold:.1f} N"
    )
    assert heavy.holding == 0, (
        f"heavy part held through the fast move: peak {heavy.peak_load_n:.1f} N "
        f"vs F_hold {f_hold:.1f} N"
    )
    (lost,) = _events(cell_h, "grip_lost")
    assert lost["robot"] == "r1" and lost["part"] == 1
    assert lost["force_n"] > lost["limit_n"] == pytest.approx(f_hold, rel=1e-3), lost
    assert cell_h.parts.get(1).state == "free"
    assert fall_h > 0.09, fall_h  # it fell (onto the pedestal or the floor)
    assert slow.holding == 1, (
        f"heavy part lost in the slow move: peak {slow.peak_load_n:.1f} N vs F_hold {f_hold:.1f} N"
    )
    assert slow.peak_load_n < 0.6 * f_hold, (
        f"heavy part, slow move: peak {slow.peak_load_n:.1f} N vs F_hold {f_hold:.1f} N"
    )
    assert not _events(cell_s, "grip_lost") and not _events(cell_l, "grip_lost")
    assert abs(fall_l) < 2e-3 and abs(fall_s) < 2e-3, (fall_l, fall_s)  # carried level
    # the static part of the load is the weight: the slow move's peak is above m g
    assert slow.peak_load_n > 1.0 * G


def test_vacuum_level_rises_with_its_time_constant_once_the_cup_seals() -> None:
    cell, g, r, body, _ = _vacuum_cell(0.2, rise_time_s=0.05)
    q0 = r.state().q.copy()
    n = g.name
    assert cell.signals[f"{n}.vacuum_kpa"] == 0.0 and cell.signals[f"{n}.holding"] == 0
    # the first tick reads the command and seals; the level then builds for the next 25 ticks
    _hold(cell, r, q0, cell.control_period, **{f"{n}.vacuum": True})
    assert g.state().holding == 1 and cell.signals[f"{n}.attached"] is True
    (picked,) = _events(cell, "picked")
    assert picked["by"] == "r1.gripper"
    levels = []
    for _ in range(125):
        _hold(cell, r, q0, cell.control_period)
        levels.append(cell.signals[f"{n}.vacuum_kpa"])
    after_tau = levels[24] + 0  # 0.05 s after the seal (plus the sealing tick)
    expect = 60.0 * (1 - math.exp(-(0.05 + 0.002) / 0.05))
    assert after_tau == pytest.approx(expect, rel=0.02), (after_tau, expect)
    assert levels[-1] == pytest.approx(60.0 * (1 - math.exp(-0.252 / 0.05)), rel=0.01)
    assert np.all(np.diff(levels) > 0)
    assert cell.signals[f"{n}.grip_force_n"] == pytest.approx(levels[-1] * 1e3 * g.area)


def test_vacuum_on_without_a_part_grips_nothing_and_builds_no_vacuum() -> None:
    cell = Cell(seed=1)
    g = VacuumGripper(cup_diameter=0.03)
    r = g.mount(cell, "ur5e")
    T = r.tcp_pose()
    # a part 1 cm below the cup face: too far to seal
    _pedestal_part(cell, T.t, T.t[2] - 0.01 - PART[2], PART, 0.2)
    cell.start()
    _hold(cell, r, r.state().q.copy(), 0.2, **{f"{g.name}.vacuum": True})
    assert g.state().holding == 0 and g.state().vacuum_kpa == 0.0
    assert not _events(cell, "picked")


def test_vacuum_release_puts_the_part_down() -> None:
    cell, g, r, body, T = _vacuum_cell(0.5)
    n = g.name
    q0 = r.state().q.copy()
    z_rest = _z(cell, body)
    _hold(cell, r, q0, 0.25, **{f"{n}.vacuum": True})
    q_lift = r.kinematics.ik(SE3(0, 0, 0.05) * T, q0)
    _move(cell, r, q_lift, 0.5)
    assert _z(cell, body) == pytest.approx(z_rest + 0.05, abs=1e-3)
    _move(cell, r, q0, 0.5)  # back down onto the pedestal
    g.command(vacuum=False)
    t_off = cell.time
    while g.state().holding and cell.time - t_off < 0.5:
        _hold(cell, r, q0, cell.control_period)
    t_release = cell.time - t_off
    # the part rests on the pedestal: it goes when the level falls below 2 % (4 time constants)
    assert t_release == pytest.approx(0.03 * math.log(50), abs=0.005), t_release
    assert cell.parts.get(1).state == "free" and not _events(cell, "grip_lost")
    _move(cell, r, q_lift, 0.5)
    assert _z(cell, body) == pytest.approx(z_rest, abs=1e-3)  # the part stayed on the pedestal
    assert cell.signals[f"{n}.holding"] == 0 and cell.signals[f"{n}.vacuum_kpa"] < 1.0
    assert g.kpis() == {
        "picks": 1,
        "releases": 1,
        "losses": 0,
        "peak_load_n": pytest.approx(g.kpis()["peak_load_n"]),
        "hold_force_n": pytest.approx(g.hold_force_n(60.0), rel=1e-6),
    }


# -- parallel gripper ---------------------------------------------------------------------------
PG_PART = (0.04, 0.04, 0.05)  # m; the TCP is the middle of the 5 cm pads


def _parallel_lift(
    force_n: float, mass: float = 0.5, mu: float = 0.5
) -> tuple[Cell, ParallelGripper, float, float, float]:
    """Close on a box on a pedestal, lift it 0.1 m and swing the base by 0.5 rad; returns the
    cell, the gripper, the part's slip along the fingers [m] (max, and at the end) and how far
    the part rose [m]."""
    cell = Cell(seed=1)
    g = ParallelGripper(grip_force_n=force_n, finger_friction=mu)
    r = g.mount(cell, "ur5e")
    T = r.tcp_pose()
    # pads from 25 mm below to 25 mm above the TCP; the part's bottom 30 mm below it
    body = _pedestal_part(cell, T.t, T.t[2] - 0.03, PG_PART, mass)
    cell.start()
    cid = cell.world.client
    finger = r.finger_joints[0]

    def in_finger() -> np.ndarray:
        ls = pb.getLinkState(r.body, finger, computeForwardKinematics=1, physicsClientId=cid)
        bp, bq = pb.getBasePositionAndOrientation(body, physicsClientId=cid)
        ip, iq = pb.invertTransform(ls[4], ls[5])
        return np.array(pb.multiplyTransforms(ip, iq, bp, bq)[0])

    q0 = r.state().q.copy()
    z0 = _z(cell, body)
    _hold(cell, r, q0, 0.6, **{f"{g.name}.close": True})
    p0 = in_finger()
    slip = 0.0
    q_lift = r.kinematics.ik(SE3(0, 0, 0.1) * T, q0)
    q_swing = q_lift.copy()
    q_swing[0] += 0.5
    lim = r.limits
    for q_to in (q_lift, q_swing):
        m = JointMove(r.state().q, q_to, lim.velocity, lim.acceleration, lim.jerk, 0.5)
        t0 = cell.time
        while cell.time - t0 < m.duration + 0.2:
            q, dq, _ = m.sample(cell.time - t0 + cell.control_period)
            cell.step(Commands(joints={r.name: JointCommand.position(q, dq)}))
            slip = max(slip, float(np.linalg.norm(in_finger() - p0)))
    return cell, g, slip, float(np.linalg.norm(in_finger() - p0)), _z(cell, body) - z0


def test_parallel_gripper_holds_by_friction_without_slipping() -> None:
    mass, mu, force = 0.5, 0.5, 10.0
    cell, g, slip_max, slip_end, rise = _parallel_lift(force, mass, mu)
    ratio = mu * 2 * force / (mass * G)
    assert ratio > 2.0  # mu 2 F against m g with a margin of 2
    st = g.state()
    assert st.holding == 1 and st.closed and st.grip_force_n == pytest.approx(force, rel=1e-3)
    assert st.width_m == pytest.approx(PG_PART[0], abs=5e-4)
    assert rise == pytest.approx(0.1, abs=2e-3), f"part rose {rise * 1e3:.1f} mm of 100"
    assert slip_max < 1e-3, f"part slipped {slip_max * 1e3:.2f} mm along the fingers"
    assert slip_end < 1e-3, f"part ended {slip_end * 1e3:.2f} mm from where it was gripped"
    assert not _events(cell, "grip_lost")
    assert cell.signals[f"{g.name}.holding"] == 1


def test_parallel_gripper_loses_a_part_with_too_little_grip_force() -> None:
    mass, mu, force = 0.5, 0.5, 3.0
    cell, g, _, _, rise = _parallel_lift(force, mass, mu)
    assert mu * 2 * force < 0.7 * mass * G
    assert g.state().holding == 0
    assert rise < 0.01, f"part rose {rise * 1e3:.1f} mm with mu 2 F < m g"
    (lost,) = _events(cell, "grip_lost")
    assert lost["reason"] == "slip"
    assert lost["force_n"] == pytest.approx(mass * G, rel=1e-3)
    assert lost["limit_n"] == pytest.approx(mu * 2 * force)
    assert cell.parts.get(1).state == "free"


def test_parallel_gripper_fingers_are_not_arm_joints_and_follow_width_commands() -> None:
    cell = Cell(seed=1)
    g = ParallelGripper(close_speed=0.1)
    r = g.mount(cell, "ur5e")
    assert r.gripper is g and g.name == "r1.gripper"
    assert r.n == 6 and len(r.joint_ids) == 6 and len(r.finger_joints) == 2
    assert not set(r.finger_joints) & set(r.joint_ids)
    assert r.state().q.shape == (6,) and r.limits.lower.shape == (6,)
    cell.start()
    assert cell.signals["r1.gripper.width"] == pytest.approx(0.085)
    q0 = r.state().q.copy()
    g.command(open_width=0.045)
    _hold(cell, r, q0, 0.2)  # 40 mm at 0.1 m/s: 0.4 s
    assert cell.signals["r1.gripper.width"] == pytest.approx(0.085 - 0.1 * 0.2, abs=1e-3)
    _hold(cell, r, q0, 0.3)
    assert g.state().width_m == pytest.approx(0.045, abs=1e-4)
    g.command(close=True)
    _hold(cell, r, q0, 0.5)  # nothing between the fingers: they close fully
    assert g.state().width_m == pytest.approx(0.0, abs=1e-4) and g.state().holding == 0
    assert r.tcp_pose().t == pytest.approx(r.kinematics.fkine(q0).t, abs=1e-4)
    with pytest.raises(ScenarioError, match="open_width"):
        g.command(open_width=0.2)


def test_gripper_input_errors() -> None:
    with pytest.raises(ScenarioError, match="cup_diameter"):
        VacuumGripper(cup_diameter=-0.01)
    with pytest.raises(ScenarioError, match="vacuum_kpa"):
        VacuumGripper(cup_diameter=0.03, vacuum_kpa=120.0)
    with pytest.raises(ScenarioError, match="tcp_offset"):
        ParallelGripper(finger_length=0.1, tcp_offset=0.04)
    cell = Cell(seed=1)
    cell.add_robot("ur5e", tool=Tool("plain", SE3(0, 0, 0.1), 0.3))
    with pytest.raises(ScenarioError, match="gripper.robot"):
        cell.add_device(VacuumGripper(cup_diameter=0.03))  # robot not set
    with pytest.raises(ScenarioError, match="tool_spec"):
        cell.add_device(ParallelGripper(robot="r1"))  # the robot has no fingers
    with pytest.raises(ScenarioError, match="no robot named 'r9'"):
        cell.add_device(VacuumGripper(cup_diameter=0.03, robot="r9"))
    with pytest.raises(ScenarioError, match="tool"):
        VacuumGripper(cup_diameter=0.03).mount(cell, "ur5e", name="r2", tool=Tool())
