"""Tests of robocell.control.motion: S-curves, joint moves, Cartesian paths, sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roboticstoolbox as rtb
from spatialmath import SE3

from robocell.control.motion import (
    CartesianSegment,
    InvalidLimitError,
    JointMove,
    KinematicsLike,
    SampledTrajectory,
    SCurveProfile,
    TrajectorySequence,
    cartesian_arc,
    cartesian_line,
    plan_joint_path,
)
from robocell.errors import KinematicsError, LimitError

# UR-like joint limits [rad/s], [rad/s²], [rad/s³].
V_UR = np.array([2.0, 2.0, 3.0, 3.0, 3.0, 3.0])
A_UR = np.array([4.0, 4.0, 6.0, 8.0, 8.0, 8.0])
J_UR = np.array([40.0, 40.0, 60.0, 80.0, 80.0, 80.0])

Q_HOME = np.array([0.3, -1.2, 1.5, -1.9, -1.57, 0.2])
# Cartesian limits used by most path tests: m/s, m/s², m/s³ (and the same numbers in rad).
LIN = {"v_max": 0.25, "a_max": 1.0, "j_max": 10.0}


class UR5Kin:
    """Adapter giving the DH UR5 of the Robotics Toolbox the ``KinematicsLike`` interface."""

    def __init__(self) -> None:
        self.robot = rtb.models.DH.UR5()
        self.n: int = self.robot.n
        self.qlim: np.ndarray = np.asarray(self.robot.qlim, dtype=float)

    def fkine(self, q: np.ndarray) -> SE3:
        return self.robot.fkine(q)

    def jacob0(self, q: np.ndarray) -> np.ndarray:
        return self.robot.jacob0(q)

    def ik(self, T: SE3, q0: np.ndarray) -> np.ndarray | None:
        sol = self.robot.ik_LM(T, q0=q0)
        if not sol.success:
            return None
        q = np.asarray(sol.q, dtype=float)
        if np.any(q < self.qlim[0]) or np.any(q > self.qlim[1]):
            return None
        return q


@pytest.fixture(scope="module")
def kin() -> UR5Kin:
    return UR5Kin()


def fine_times(duration: float, step: float) -> np.ndarray:
    """``0, step, 2 step, ...`` and ``duration`` itself (no duplicate at the end)."""
    t = np.arange(0.0, duration, step)
    if duration - t[-1] > 1e-12:
        t = np.append(t, duration)
    return t


def tcp_positions(kin: UR5Kin, q: np.ndarray) -> np.ndarray:
    return np.array([kin.fkine(qi).t for qi in q])


def rot_angle(R: np.ndarray) -> float:
    return math.acos(min(max((np.trace(R) - 1.0) / 2.0, -1.0), 1.0))


# --------------------------------------------------------------------------------------------
# S-curve
# --------------------------------------------------------------------------------------------

DISTANCES = [1e-6, 1e-3, 0.05, 0.5, 5.0]
LIMITS = [(1.0, 2.0, 5.0), (0.5, 10.0, 3.0), (2.0, 0.5, 100.0), (0.3, 0.3, 0.3)]


@pytest.mark.parametrize("d", DISTANCES)
@pytest.mark.parametrize("lim", LIMITS)
def test_scurve_limits_and_end(d: float, lim: tuple[float, float, float]) -> None:
    v_max, a_max, j_max = lim
    prof = SCurveProfile(d, v_max, a_max, j_max)
    t = fine_times(prof.duration, 1e-4)
    s, v, a = prof.sample(t)
    assert abs(s[-1] - d) <= 1e-9
    assert s[0] == 0.0
    assert abs(v[0]) < 1e-12 and abs(v[-1]) < 1e-12
    assert abs(a[0]) < 1e-12 and abs(a[-1]) < 1e-12
    assert np.all(np.abs(v) <= v_max * (1 + 1e-9))
    assert np.all(np.abs(a) <= a_max * (1 + 1e-9))
    assert np.all(v >= -1e-15)  # never goes backwards
    dt = np.diff(t)
    jerk = np.diff(a) / dt
    assert np.all(np.abs(jerk) <= j_max * (1 + 1e-6))
    # Self-consistency: s, v and a integrate into each other. Within a segment s is a cubic,
    # for which the end-corrected trapezoid rule is exact; segment joins cost O(j h^3).
    h = 1e-4
    trap_s = 0.5 * (v[1:] + v[:-1]) * dt + (a[:-1] - a[1:]) * dt**2 / 12.0
    assert np.allclose(np.diff(s), trap_s, rtol=0, atol=j_max * h**3 + 1e-14 * max(d, 1.0))
    trap_v = 0.5 * (a[1:] + a[:-1]) * dt
    assert np.allclose(np.diff(v), trap_v, rtol=0, atol=j_max * h**2 + 1e-14)
    # A rest-to-rest profile is time optimal only if some limit is actually reached.
    ratio = max(v.max() / v_max, np.abs(a).max() / a_max, np.abs(jerk).max() / j_max)
    assert ratio > 0.99


@pytest.mark.parametrize(
    ("d", "lim", "expected"),
    [
        # Cruise with const-accel segments: T = d/v + v/a + a/j.
        (10.0, (1.0, 2.0, 5.0), 10.0 / 1.0 + 1.0 / 2.0 + 2.0 / 5.0),
        # Cruise, a_max never reached (v < a^2/j): T = d/v + 2 sqrt(v/j) = 3 + 1.
        (3.0, (1.0, 10.0, 4.0), 4.0),
        # No cruise, a_max reached: vp = (-a^2/j + sqrt(a^4/j^2 + 4 d a))/2 = 2,
        # T = 2 (vp/a + a/j) = 6.
        (6.0, (10.0, 1.0, 1.0), 6.0),
        # Pure jerk phases: d = 2 j Tj^3 -> Tj = 1, T = 4 Tj.
        (2.0, (10.0, 10.0, 1.0), 4.0),
        (0.0, (1.0, 1.0, 1.0), 0.0),
    ],
)
def test_scurve_analytic_durations(
    d: float, lim: tuple[float, float, float], expected: float
) -> None:
    prof = SCurveProfile(d, *lim)
    assert prof.duration == pytest.approx(expected, rel=1e-12, abs=1e-15)
    s, v, a = prof.sample(prof.duration)
    assert s == d and v == pytest.approx(0.0, abs=1e-12) and a == pytest.approx(0.0, abs=1e-12)


def test_scurve_scalar_matches_array_and_clips() -> None:
    prof = SCurveProfile(0.7, 0.8, 1.5, 9.0)
    ts = np.linspace(-0.5, prof.duration + 0.5, 57)
    s, v, a = prof.sample(ts)
    for i, t in enumerate(ts):
        si, vi, ai = prof.sample(float(t))
        assert (si, vi, ai) == pytest.approx((s[i], v[i], a[i]), abs=1e-15)
    assert prof.sample(-1.0) == (0.0, 0.0, 0.0)
    assert prof.sample(prof.duration + 3.0)[0] == 0.7


def test_scurve_zero_distance() -> None:
    prof = SCurveProfile(0.0, 1.0, 1.0, 1.0)
    assert prof.duration == 0.0
    s, v, a = prof.sample(np.array([0.0, 1.0]))
    assert np.all(s == 0.0) and np.all(v == 0.0) and np.all(a == 0.0)


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        ((1.0, 0.0, 1.0, 1.0), "v_max"),
        ((1.0, 1.0, -2.0, 1.0), "a_max"),
        ((1.0, 1.0, 1.0, float("nan")), "j_max"),
        ((1.0, float("inf"), 1.0, 1.0), "v_max"),
        ((-1.0, 1.0, 1.0, 1.0), "distance"),
    ],
)
def test_scurve_rejects_bad_limits(args: tuple[float, ...], bad: str) -> None:
    with pytest.raises(ValueError, match=bad) as info:
        SCurveProfile(*args)
    assert isinstance(info.value, LimitError)
    bad_value = [x for x in args if not (math.isfinite(x) and x > 0)][0]
    assert repr(bad_value) in str(info.value)


# --------------------------------------------------------------------------------------------
# JointMove
# --------------------------------------------------------------------------------------------


def random_moves(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    moves = []
    for _ in range(count):
        q0 = rng.uniform(-2.8, 2.8, 6)
        q1 = q0 + rng.uniform(-1.5, 1.5, 6) * (rng.uniform(size=6) > 0.2)
        moves.append((q0, np.clip(q1, -3.1, 3.1)))
    # A tiny move (only jerk limited) and a single-joint move.
    q0 = rng.uniform(-1, 1, 6)
    moves.append((q0, q0 + 1e-4))
    moves.append((q0, q0 + np.array([0, 0, 0, 0, 0, 2.5])))
    return moves


@pytest.mark.parametrize(("q0", "q1"), random_moves(seed=7, count=8))
def test_joint_move_limits_and_sync(q0: np.ndarray, q1: np.ndarray) -> None:
    move = JointMove(q0, q1, V_UR, A_UR, J_UR)
    assert move.duration > 0
    step = 1e-4
    t = fine_times(move.duration, step)
    q, dq, ddq = move.sample(t)
    assert q.shape == dq.shape == ddq.shape == (t.size, 6)
    # Exact endpoints, at rest.
    assert np.array_equal(q[0], q0) and np.array_equal(q[-1], q1)
    assert np.array_equal(move.sample(move.duration)[0], q1)
    assert np.allclose(dq[[0, -1]], 0.0, atol=1e-12) and np.allclose(ddq[[0, -1]], 0.0, atol=1e-9)
    # Each joint within its own limits, analytically and by finite differences.
    tol = 1 + 1e-9
    assert np.all(np.abs(dq) <= V_UR * tol)
    assert np.all(np.abs(ddq) <= A_UR * tol)
    h = np.diff(t)[:, None]
    assert np.all(np.abs(np.diff(q, axis=0)) / h <= V_UR * tol)
    assert np.all(np.abs(np.diff(dq, axis=0)) / h <= A_UR * tol)
    jerk = np.abs(np.diff(ddq, axis=0)) / h
    assert np.all(jerk <= J_UR * (1 + 1e-6))
    # Some joint reaches one of its limits (the move is as fast as the binding joint allows).
    ratio = max(np.max(np.abs(dq) / V_UR), np.max(np.abs(ddq) / A_UR), np.max(jerk / J_UR))
    assert ratio > 0.99
    # Synchronised straight line: every moving joint has the same normalised progress.
    delta = q1 - q0
    moving = np.abs(delta) > 1e-12
    progress = (q[:, moving] - q0[moving]) / delta[moving]
    assert np.allclose(progress, progress[:, :1], atol=1e-9)
    assert np.all(q[:, ~moving] == q0[~moving])
    # Started and still moving together strictly inside (0, T): no joint finishes early.
    inner = (t > 0.01 * move.duration) & (t < 0.99 * move.duration)
    assert np.all(np.abs(dq[inner][:, moving]) > 0)


def test_joint_move_speed_scale_is_time_scaling() -> None:
    q0, q1 = np.zeros(6), np.array([1.0, -0.5, 2.0, 0.3, 0.0, -1.0])
    full = JointMove(q0, q1, V_UR, A_UR, J_UR)
    half = JointMove(q0, q1, V_UR, A_UR, J_UR, speed_scale=0.5)
    assert half.duration == pytest.approx(2.0 * full.duration, rel=1e-12)
    t = np.linspace(0.0, full.duration, 101)
    qf, dqf, ddqf = full.sample(t)
    qh, dqh, ddqh = half.sample(2.0 * t)
    assert np.allclose(qh, qf, atol=1e-12)
    assert np.allclose(dqh, 0.5 * dqf, atol=1e-12)
    assert np.allclose(ddqh, 0.25 * ddqf, atol=1e-12)
    with pytest.raises(LimitError, match="speed_scale"):
        JointMove(q0, q1, V_UR, A_UR, J_UR, speed_scale=1.5)
    with pytest.raises(ValueError, match="speed_scale"):
        JointMove(q0, q1, V_UR, A_UR, J_UR, speed_scale=0.0)


def test_joint_move_qlim_rejects_target() -> None:
    qlim = np.array([[-math.pi] * 6, [math.pi] * 6])
    q1 = np.array([0.0, 0.0, math.radians(200.0), 0.0, 0.0, 0.0])
    with pytest.raises(LimitError) as info:
        JointMove(np.zeros(6), q1, V_UR, A_UR, J_UR, qlim=qlim)
    msg = str(info.value)
    assert "joint 3" in msg and "200.000 deg" in msg and "-180.000" in msg and "180.000" in msg
    # Inside the limits is fine.
    JointMove(np.zeros(6), 0.5 * q1, V_UR, A_UR, J_UR, qlim=qlim)


def test_joint_move_shapes_and_no_motion() -> None:
    q0 = np.array([0.1, 0.2, 0.3])
    still = JointMove(q0, q0, 1.0, 1.0, 1.0)
    assert still.duration == 0.0
    q, dq, ddq = still.sample(0.3)
    assert np.array_equal(q, q0) and not dq.any() and not ddq.any()
    assert still.sample(np.zeros(4))[0].shape == (4, 3)
    move = JointMove(q0, q0 + 1.0, 1.0, 2.0, 10.0)
    assert move.sample(0.2)[0].shape == (3,)
    assert move.sample(np.linspace(0, 1, 5))[1].shape == (5, 3)
    # The scalar fast path agrees with the vectorised one everywhere.
    ts = np.linspace(-0.1, move.duration + 0.1, 41)
    batch = move.sample(ts)
    for i, t in enumerate(ts):
        for got, want in zip(move.sample(float(t)), batch, strict=True):
            assert np.allclose(got, want[i], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        JointMove(q0, np.zeros(4), 1.0, 1.0, 1.0)
    with pytest.raises(LimitError, match=r"a_max\[1\]"):
        JointMove(q0, q0 + 1, 1.0, [1.0, 0.0, 1.0], 1.0)


# --------------------------------------------------------------------------------------------
# SampledTrajectory
# --------------------------------------------------------------------------------------------


def test_sampled_trajectory_hermite_exact_for_cubic() -> None:
    rng = np.random.default_rng(3)
    times = np.concatenate(([0.0], np.cumsum(rng.uniform(0.05, 0.3, 12))))
    c = rng.normal(size=(4, 2))  # q(t) = c0 + c1 t + c2 t^2 + c3 t^3 per joint

    def poly(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = t[:, None]
        return (
            c[0] + c[1] * t + c[2] * t**2 + c[3] * t**3,
            c[1] + 2 * c[2] * t + 3 * c[3] * t**2,
            2 * c[2] + 6 * c[3] * t,
        )

    q, dq, _ = poly(times)
    traj = SampledTrajectory(times, q, dq)
    assert traj.duration == times[-1]
    t = rng.uniform(0, times[-1], 200)
    for got, want in zip(traj.sample(t), poly(t), strict=True):
        assert np.allclose(got, want, atol=1e-9)
    qs, dqs, _ = traj.sample(float(t[0]))
    assert qs.shape == (2,) and np.allclose(qs, poly(t[:1])[0][0])
    assert np.array_equal(traj.sample(times)[0], q)


def test_sampled_trajectory_finite_difference_velocity() -> None:
    times = np.array([0.0, 0.1, 0.3, 0.6])
    q = np.outer(times, [2.0, -1.0]) + [0.5, 0.0]
    traj = SampledTrajectory(times, q)
    qs, dqs, ddqs = traj.sample(np.array([0.05, 0.2, 0.45, 0.6, 9.0]))
    assert np.allclose(dqs, [2.0, -1.0]) and np.allclose(ddqs, 0.0)
    assert np.allclose(qs[-1], q[-1])


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ([0.1, 0.2, 0.3], "start at 0"),
        ([0.0, 0.2, 0.2], "strictly increasing"),
        ([0.0, 1.0], "shape"),
    ],
)
def test_sampled_trajectory_validation(times: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SampledTrajectory(times, np.zeros((3, 2)))


# --------------------------------------------------------------------------------------------
# Cartesian line and arc (DH UR5)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def line_case(kin: UR5Kin) -> tuple[SE3, SE3, CartesianSegment]:
    T0 = kin.fkine(Q_HOME)
    T1 = SE3.Trans(0.15, -0.1, 0.1) * T0 * SE3.Rz(0.2)
    seg = cartesian_line(kin, Q_HOME, T1, dt=0.01, field="moves[0]", **LIN)
    return T0, T1, seg


def test_adapter_satisfies_protocol(kin: UR5Kin) -> None:
    assert isinstance(kin, KinematicsLike)


def test_cartesian_line_geometry(kin: UR5Kin, line_case: tuple[SE3, SE3, CartesianSegment]) -> None:
    T0, T1, seg = line_case
    assert seg.slowdown == 1.0 and seg.field == "moves[0]"
    length = float(np.linalg.norm(T1.t - T0.t))
    assert seg.tcp_path_length == pytest.approx(length, rel=1e-12)
    # Sampled every dt; the last interval may differ (end of the profile).
    assert np.allclose(np.diff(seg.times)[:-1], 0.01)
    t = fine_times(seg.duration, 2e-3)
    q, dq, _ = seg.sample(t)
    P = tcp_positions(kin, q)
    u = (T1.t - T0.t) / length
    rel = P - T0.t
    along = rel @ u
    deviation = np.linalg.norm(rel - np.outer(along, u), axis=1)
    assert deviation.max() < 1e-4
    assert along.min() > -1e-6 and along.max() < length + 1e-6
    assert np.all(np.diff(along) > -1e-7)  # moves forward only
    # End pose reached, at rest at both ends.
    T_last = kin.fkine(seg.sample(seg.duration)[0])
    assert np.linalg.norm(T_last.t - T1.t) < 1e-5
    assert rot_angle(T_last.R.T @ T1.R) < 1e-5
    assert np.array_equal(seg.sample(0.0)[0], Q_HOME)
    assert np.abs(dq[[0, -1]]).max() < 1e-9
    # TCP speed within v_max (finite differences on the interpolated trajectory).
    speed = np.linalg.norm(np.diff(P, axis=0), axis=1) / np.diff(t)
    assert speed.max() <= LIN["v_max"] * (1 + 1e-3)
    # Orientation and position share the normalised path parameter (slerp about one axis).
    angle = rot_angle(T0.R.T @ T1.R)
    assert seg.rotation_angle == pytest.approx(0.2, abs=1e-9)
    for qi in seg.q[:: max(seg.q.shape[0] // 15, 1)]:
        Ti = kin.fkine(qi)
        s_pos = float((Ti.t - T0.t) @ u) / length
        s_rot = rot_angle(T0.R.T @ Ti.R) / angle
        assert s_rot == pytest.approx(s_pos, abs=1e-6)


def test_cartesian_line_velocities_match_positions(
    line_case: tuple[SE3, SE3, CartesianSegment],
) -> None:
    _, _, seg = line_case
    t = fine_times(seg.duration, 1e-3)
    q, dq, _ = seg.sample(t)
    fd = np.diff(q, axis=0) / np.diff(t)[:, None]
    assert np.allclose(fd, 0.5 * (dq[1:] + dq[:-1]), atol=2e-3)


def test_cartesian_pure_rotation_uses_angular_limits(kin: UR5Kin) -> None:
    T0 = kin.fkine(Q_HOME)
    seg = cartesian_line(kin, Q_HOME, T0 * SE3.Rx(0.4), dt=0.02, **LIN)
    # 0.4 rad with 0.25 rad/s, 1 rad/s², 10 rad/s³: T = 0.4/0.25 + 0.25/1 + 1/10.
    assert seg.duration == pytest.approx(1.95, rel=1e-12)
    assert seg.tcp_path_length == 0.0
    P = tcp_positions(kin, seg.q)
    assert np.abs(P - T0.t).max() < 1e-6
    T_last = kin.fkine(seg.q[-1])
    assert rot_angle(T_last.R.T @ (T0 * SE3.Rx(0.4)).R) < 1e-6


def test_cartesian_line_unreachable_target(kin: UR5Kin) -> None:
    T0 = kin.fkine(Q_HOME)
    with pytest.raises(KinematicsError, match=r"target unreachable: pose .* mm") as info:
        cartesian_line(kin, Q_HOME, SE3.Trans(2.0, 0, 0) * T0, dt=0.01, field="moves[3]", **LIN)
    assert info.value.field == "moves[3]"
    assert "1434.5" in str(info.value)  # x of the target in mm


def test_cartesian_line_through_wrist_singularity(kin: UR5Kin) -> None:
    q_sing = np.array([0.3, -1.2, 1.5, -1.9, 0.0, 0.2])  # q5 = 0: wrist singular
    T_sing = kin.fkine(q_sing)
    Ta = SE3.Trans(0, -0.1, 0) * T_sing
    Tb = SE3.Trans(0, 0.1, 0) * T_sing
    qa = kin.ik(Ta, q_sing + np.array([0, 0, 0, 0, 0.3, 0]))
    assert qa is not None and kin.robot.manipulability(qa) > 5e-3
    with pytest.raises(KinematicsError, match="manipulability") as info:
        cartesian_line(kin, qa, Tb, dt=0.01, field="waypoints[1]", **LIN)
    assert info.value.field == "waypoints[1]"
    assert "singularity" in str(info.value) and "mm" in str(info.value)


def test_cartesian_line_leaving_workspace_or_flipping(kin: UR5Kin) -> None:
    # Passes next to the base column (shoulder singularity): the wrist would have to spin.
    T0 = kin.fkine(Q_HOME)
    T1 = SE3.Trans(np.array([0.4, 0.3, 0.3]) - T0.t) * T0
    with pytest.raises(
        KinematicsError, match="reachable workspace or flips configuration at s="
    ) as info:
        cartesian_line(kin, Q_HOME, T1, dt=0.02, field="f", v_max=0.5, a_max=2.0, j_max=20.0)
    assert info.value.field == "f"


def test_cartesian_line_joint_speed_slowdown(
    kin: UR5Kin, line_case: tuple[SE3, SE3, CartesianSegment]
) -> None:
    _, T1, fast = line_case
    t = fine_times(fast.duration, 1e-3)
    assert np.abs(fast.sample(t)[1]).max() > 0.4  # the programmed speed needs > 0.4 rad/s
    limit = np.full(6, 0.2)
    seg = cartesian_line(kin, Q_HOME, T1, dt=0.01, joint_v_max=limit, **LIN)
    assert seg.slowdown > 1.5
    assert seg.duration > fast.duration * 1.5
    t = fine_times(seg.duration, 1e-3)
    q, dq, _ = seg.sample(t)
    assert np.all(np.abs(dq) <= limit * (1 + 1e-9))
    assert np.all(np.abs(np.diff(q, axis=0)) / np.diff(t)[:, None] <= limit * (1 + 1e-6))
    assert np.linalg.norm(kin.fkine(q[-1]).t - T1.t) < 1e-5
    # A generous limit leaves the programmed speed alone.
    generous = cartesian_line(kin, Q_HOME, T1, dt=0.02, joint_v_max=10.0, **LIN)
    assert generous.slowdown == 1.0


def test_cartesian_arc_semicircle(kin: UR5Kin) -> None:
    T0 = kin.fkine(Q_HOME)
    p0 = T0.t
    via = p0 + np.array([0.1, 0.1, 0.0])
    T_end = SE3.Trans(0.2, 0.0, 0.0) * T0
    seg = cartesian_arc(kin, Q_HOME, via, T_end, dt=0.02, field="arc", **LIN)
    centre = p0 + np.array([0.1, 0.0, 0.0])  # half circle of radius 0.1 m
    assert seg.tcp_path_length == pytest.approx(0.1 * math.pi, rel=1e-12)
    assert seg.arc_radius == pytest.approx(0.1, rel=1e-12)
    q = seg.sample(fine_times(seg.duration, 5e-3))[0]
    P = tcp_positions(kin, q)
    radius = np.linalg.norm(P - centre, axis=1)
    assert np.abs(radius - 0.1).max() < 1e-4
    assert np.abs(P[:, 2] - p0[2]).max() < 1e-4  # stays in the plane of the three points
    assert np.all(P[:, 1] >= p0[1] - 1e-4)  # goes round the via-point side
    assert np.linalg.norm(kin.fkine(q[-1]).t - T_end.t) < 1e-5
    speed = np.linalg.norm(np.diff(P, axis=0), axis=1) / 5e-3
    assert speed.max() <= LIN["v_max"] * (1 + 1e-3)


def test_cartesian_arc_collinear_points(kin: UR5Kin) -> None:
    T0 = kin.fkine(Q_HOME)
    via = T0.t + np.array([0.05, 0.05, 0.0])
    T_end = SE3.Trans(0.1, 0.1, 0.0) * T0
    with pytest.raises(KinematicsError, match="collinear") as info:
        cartesian_arc(kin, Q_HOME, via, T_end, dt=0.02, field="moves[2].via", **LIN)
    assert info.value.field == "moves[2].via"
    with pytest.raises(KinematicsError, match="coincide"):
        cartesian_arc(kin, Q_HOME, T0.t, T_end, dt=0.02, **LIN)


# --------------------------------------------------------------------------------------------
# sequences
# --------------------------------------------------------------------------------------------


def test_sequence_continuity_and_lookup(line_case: tuple[SE3, SE3, CartesianSegment]) -> None:
    _, _, line = line_case
    q_a = np.zeros(6)
    approach = JointMove(q_a, Q_HOME, V_UR, A_UR, J_UR)
    back = JointMove(line.q[-1], q_a, V_UR, A_UR, J_UR)
    seq = TrajectorySequence([approach, line, back])
    assert seq.duration == pytest.approx(approach.duration + line.duration + back.duration)
    b1, b2 = approach.duration, approach.duration + line.duration
    assert seq.segment_at(0.0) == 0
    assert seq.segment_at(0.5 * b1) == 0
    assert seq.segment_at(b1) == 1
    assert seq.segment_at(0.5 * (b1 + b2)) == 1
    assert seq.segment_at(b2 + 1e-9) == 2
    assert seq.segment_at(seq.duration + 5.0) == 2
    t = np.array([0.0, 0.3 * b1, b1 - 1e-12, b1, 0.5 * (b1 + b2), b2, seq.duration, 99.0])
    q, dq, ddq = seq.sample(t)
    assert q.shape == (t.size, 6)
    for i, ti in enumerate(t):
        qi, dqi, ddqi = seq.sample(float(ti))
        assert np.allclose(qi, q[i]) and np.allclose(dqi, dq[i]) and np.allclose(ddqi, ddq[i])
    assert np.allclose(q[2], q[3], atol=1e-9)  # continuous across the boundary
    assert np.array_equal(q[-1], q_a)


def test_sequence_rejects_discontinuity() -> None:
    m1 = JointMove(np.zeros(3), np.ones(3), 1.0, 1.0, 1.0)
    m2 = JointMove(np.ones(3) + [0.0, 2e-6, 0.0], np.zeros(3), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"discontinuity between segment 0 and 1: joint 2"):
        TrajectorySequence([m1, m2])
    ok = JointMove(np.ones(3) + 5e-7, np.zeros(3), 1.0, 1.0, 1.0)
    TrajectorySequence([m1, ok])
    with pytest.raises(ValueError):
        TrajectorySequence([])


def test_plan_joint_path_stops_at_waypoints() -> None:
    q0 = np.zeros(6)
    wps = [np.full(6, 0.5), np.array([1.0, -1.0, 0.5, 0.0, 0.2, 0.0]), np.zeros(6)]
    seq = plan_joint_path(q0, wps, V_UR, A_UR, J_UR, speed_scale=0.8)
    durations = [
        JointMove(a, b, V_UR, A_UR, J_UR, speed_scale=0.8).duration
        for a, b in zip([q0, *wps[:-1]], wps, strict=True)
    ]
    assert seq.duration == pytest.approx(sum(durations), rel=1e-12)
    bounds = np.cumsum(durations)
    for tb, wp in zip(bounds, wps, strict=True):
        q, dq, _ = seq.sample(tb)
        assert np.allclose(q, wp, atol=1e-12) and np.allclose(dq, 0.0, atol=1e-12)
    qlim = np.array([[-1.0] * 6, [1.0] * 6])
    with pytest.raises(LimitError, match=r"waypoints\[1\]: target joint 1"):
        plan_joint_path(q0, [wps[0], np.array([1.2, 0, 0, 0, 0, 0])], V_UR, A_UR, J_UR, qlim=qlim)
    with pytest.raises(InvalidLimitError):
        plan_joint_path(q0, wps, 0.0, A_UR, J_UR)
