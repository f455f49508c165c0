"""The robot library: both readers of every URDF agree, UR kinematics match UR's DH tables,
Jacobians match finite differences, IK round-trips, robots hold themselves, limits are enforced."""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

import robocell as rc
from robocell.cli import main
from robocell.robot import FakeRobot, JointCommand, SimRobot, available_models, load_model
from robocell.sim import World

MODELS = available_models()
EXPECTED = {"ur5e", "ur10e", "kr6_r900", "irb120", "panda", "iiwa14"}

# UR's published DH parameters (standard DH): d [m], a [m], alpha [rad]
UR_DH = {
    "ur5e": ([0.1625, 0, 0, 0.1333, 0.0997, 0.0996], [0, -0.425, -0.3922, 0, 0, 0]),
    "ur10e": ([0.1807, 0, 0, 0.17415, 0.11985, 0.11655], [0, -0.6127, -0.57155, 0, 0, 0]),
}
UR_ALPHA = [np.pi / 2, 0, 0, np.pi / 2, -np.pi / 2, 0]


def _random_q(model, rng, n=30):
    lo, hi = model.limits.lower, model.limits.upper
    return rng.uniform(np.maximum(lo, -np.pi), np.minimum(hi, np.pi), size=(n, model.dof))


def test_library_has_the_required_robots() -> None:
    assert EXPECTED <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_pybullet_and_roboticstoolbox_agree(name: str) -> None:
    model = load_model(name)
    rng = np.random.default_rng(11)
    with World() as w:
        robot = SimRobot(w, model, name="r")
        kin = robot.kinematics
        worst_p, worst_r = 0.0, 0.0
        for q in _random_q(model, rng):
            for j, qj in zip(robot.joint_ids, q):
                pb.resetJointState(robot.body, j, qj, physicsClientId=w.client)
            T_pb = robot.flange_pose()
            T_rtb = kin.flange(q)
            worst_p = max(worst_p, float(np.linalg.norm(T_pb.t - T_rtb.t)))
            dR = T_pb.R.T @ T_rtb.R
            worst_r = max(worst_r, float(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1))))
    assert worst_p < 1e-6, f"{name}: position disagreement {worst_p:.3g} m"
    assert worst_r < 1e-6, f"{name}: orientation disagreement {worst_r:.3g} rad"


def _dh_fk(q: np.ndarray, d: list[float], a: list[float]) -> np.ndarray:
    T = np.eye(4)
    for qi, di, ai, al in zip(q, d, a, UR_ALPHA):
        ct, st, ca, sa = np.cos(qi), np.sin(qi), np.cos(al), np.sin(al)
        T = T @ np.array(
            [
                [ct, -st * ca, st * sa, ai * ct],
                [st, ct * ca, -ct * sa, ai * st],
                [0, sa, ca, di],
                [0, 0, 0, 1],
            ]
        )
    return T


@pytest.mark.parametrize("name", sorted(UR_DH))
def test_ur_forward_kinematics_match_published_dh(name: str) -> None:
    model = load_model(name)
    d, a = UR_DH[name]
    kin = rc.Robot.kinematics.fget(FakeRobot("r", model))  # kinematics from the URDF
    rng = np.random.default_rng(3)
    for q in _random_q(model, rng, 50):
        T_dh = _dh_fk(q, d, a)
        T = kin.flange(q).A
        assert np.linalg.norm(T[:3, 3] - T_dh[:3, 3]) < 1e-6
        assert np.abs(T[:3, :3] - T_dh[:3, :3]).max() < 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_batch_forward_kinematics_match_one_at_a_time(name: str) -> None:
    """The recorder's vectorised flange poses equal roboticstoolbox's, pose by pose."""
    model = load_model(name)
    kin = FakeRobot("r", model).kinematics
    Q = _random_q(model, np.random.default_rng(9), 40)
    batch = kin.flange_batch(Q)
    assert batch.shape == (40, 4, 4)
    for q, T in zip(Q, batch, strict=True):
        assert np.abs(T - kin.flange(q).A).max() < 1e-12


@pytest.mark.parametrize("name", ["ur5e", "panda", "kr6_r900"])
def test_jacobian_matches_finite_differences(name: str) -> None:
    model = load_model(name)
    robot = FakeRobot("r", model, tool=rc.Tool("t", SE3(0.01, 0.02, 0.1)))
    kin = robot.kinematics
    rng = np.random.default_rng(5)
    h = 1e-6
    for q in _random_q(model, rng, 5):
        J = kin.jacob0(q)
        T0 = kin.fkine(q)
        for i in range(model.dof):
            dq = np.zeros(model.dof)
            dq[i] = h
            T1 = kin.fkine(q + dq)
            v = (T1.t - T0.t) / h
            dR = T1.R @ T0.R.T
            w = np.array([dR[2, 1] - dR[1, 2], dR[0, 2] - dR[2, 0], dR[1, 0] - dR[0, 1]]) / (2 * h)
            assert np.allclose(J[:3, i], v, atol=1e-5)
            assert np.allclose(J[3:, i], w, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_inverse_kinematics_round_trip(name: str) -> None:
    model = load_model(name)
    kin = FakeRobot("r", model).kinematics
    rng = np.random.default_rng(9)
    for q in _random_q(model, rng, 5):
        T = kin.fkine(q)
        sol = kin.ik(T, q + rng.normal(0, 0.05, model.dof))
        assert sol is not None
        err = kin.fkine(sol)
        assert np.linalg.norm(err.t - T.t) < 1e-6
        assert np.all(sol >= model.limits.lower) and np.all(sol <= model.limits.upper)


@pytest.mark.parametrize("name", MODELS)
def test_robot_holds_home_and_has_no_self_contact(name: str) -> None:
    with World() as w:
        robot = SimRobot(w, load_model(name), name="r")
        q0 = robot.state().q.copy()
        w.step(1000)
        assert np.abs(robot.state().q - q0).max() < 1e-3
        assert w.contacts(body_a=robot.body, body_b=robot.body) == []
        tau = np.abs(robot.state().tau) / robot.limits.effort
        assert tau.max() < 0.6  # holding itself costs well under the torque limits


def test_position_commands_are_clamped_and_reported() -> None:
    model = load_model("ur5e")
    r = FakeRobot("r1", model, control_period=0.002)
    q = r.state().q.copy()
    # beyond the elbow's position limit, and a jump faster than the velocity limit
    target = q.copy()
    target[2] = model.limits.upper[2] + 1.0
    applied = r.command(JointCommand.position(target), t=0.0)
    step = model.limits.velocity[2] * 0.002
    assert applied.values[2] == pytest.approx(q[2] + step)
    events = r.pop_events()
    kinds = {(e.joint, e.kind) for e in events}
    assert (2, "position") in kinds and (2, "velocity") in kinds
    # keeps clamping: no new event for the same episode
    r.command(JointCommand.position(target), t=0.002)
    assert r.pop_events() == []
    assert r.limit_episodes == 2


def test_torque_and_velocity_commands_are_clamped() -> None:
    model = load_model("ur5e")
    r = FakeRobot("r1", model)
    tau = r.command(JointCommand.torque(np.full(6, 1000.0)), t=0.0).values
    assert np.array_equal(tau, model.limits.effort)
    dq = r.command(JointCommand.velocity_cmd(np.full(6, -100.0)), t=0.0).values
    assert np.array_equal(dq, -model.limits.velocity)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_command_is_refused(bad: float) -> None:
    r = FakeRobot("r1", load_model("ur5e"))
    q = r.state().q.copy()
    q[0] = bad
    with pytest.raises(rc.LimitError, match="NaN or infinite"):
        r.command(JointCommand.position(q), t=0.0)


def test_robots_command_lists_library(capsys) -> None:
    assert main(["robots"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert name in out
    assert "0.850 m" in out and "5 kg" in out  # UR5e reach and payload


def test_any_urdf_can_be_used(tmp_path) -> None:
    """A user's own URDF (not in the library) loads for both physics and kinematics."""
    urdf = tmp_path / "two_link.urdf"
    urdf.write_text("""<robot name="two_link">
  <link name="base_link"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01"
    ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="l1"><inertial><origin xyz="0.25 0 0"/><mass value="1"/><inertia ixx="0.001"
    iyy="0.02" izz="0.02" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tip"><inertial><mass value="0.1"/><inertia ixx="1e-4" iyy="1e-4" izz="1e-4"
    ixy="0" ixz="0" iyz="0"/></inertial></link>
  <joint name="j1" type="revolute"><parent link="base_link"/><child link="l1"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" velocity="2" effort="50"/></joint>
  <joint name="j2" type="revolute"><parent link="l1"/><child link="tip"/>
    <origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" velocity="2" effort="20"/></joint>
</robot>""")
    model = load_model(str(urdf))
    assert model.dof == 2 and model.flange_link == "tip"
    assert "acceleration_limits" in model.estimates
    with World() as w:
        r = SimRobot(w, model, name="r", q0=np.array([0.5, -0.3]))
        T = r.kinematics.flange(np.array([0.5, -0.3]))
        assert np.linalg.norm(r.flange_pose().t - T.t) < 1e-6
