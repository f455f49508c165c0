"""Motion-planning utilities: jerk-limited profiles, joint moves and Cartesian paths.

Everything here works in SI units (m, rad, s). Joint vectors have shape ``(n,)``; a batch of
joint vectors sampled at ``k`` times has shape ``(k, n)``.

The building blocks are

* :class:`SCurveProfile` -- a rest-to-rest, jerk-limited (7-segment) 1-D profile,
* :class:`JointMove` -- a synchronised straight-line move in joint space,
* :class:`SampledTrajectory` -- a joint trajectory given by samples (cubic Hermite),
* :func:`cartesian_line` / :func:`cartesian_arc` -- TCP paths turned into joint trajectories
  by inverse kinematics at every control period (:class:`CartesianSegment`),
* :class:`TrajectorySequence` / :func:`plan_joint_path` -- concatenations of segments.

Every trajectory object offers ``duration`` [s] and ``sample(t) -> (q, dq, ddq)``; ``sample``
accepts a scalar time (returns arrays of shape ``(n,)``) or an array of ``k`` times (returns
arrays of shape ``(k, n)``). Times are clipped to ``[0, duration]``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from spatialmath import SE3

from robocell.errors import KinematicsError, LimitError

__all__ = [
    "CartesianSegment",
    "InvalidLimitError",
    "JointMove",
    "KinematicsLike",
    "SCurveProfile",
    "SampledTrajectory",
    "Trajectory",
    "TrajectorySequence",
    "cartesian_arc",
    "cartesian_line",
    "plan_joint_path",
]

FloatArray = NDArray[np.float64]
#: A sample: position, velocity and acceleration, each of shape ``(n,)`` or ``(k, n)``.
JointSample = tuple[FloatArray, FloatArray, FloatArray]

#: Joints whose displacement is below this [rad] count as not moving in a :class:`JointMove`.
_STILL_RAD = 1e-12
#: Boundary mismatch [rad] tolerated between consecutive segments of a sequence.
_CONTINUITY_TOL = 1e-6
#: Types taken as a scalar time without further checks (fast path of ``sample``).
_SCALARS = (float, int, np.floating, np.integer)
#: Pose error [m, rad] below which an IK solution is not refined further.
_REFINE_TOL = 1e-10


class InvalidLimitError(LimitError, ValueError):
    """A motion limit or distance is non-positive, non-finite or has the wrong shape.

    Derives from both :class:`~robocell.errors.LimitError` and :class:`ValueError` so callers
    can catch it either way.
    """


@runtime_checkable
class KinematicsLike(Protocol):
    """The kinematics a Cartesian planner needs (duck-typed; e.g. a wrapped RTB robot).

    ``n`` is the number of joints, ``qlim`` the joint limits of shape ``(2, n)`` (lower row,
    upper row) [rad].
    """

    n: int
    qlim: np.ndarray

    def fkine(self, q: np.ndarray) -> SE3:
        """TCP pose in the robot base frame for joint vector ``q`` of shape ``(n,)`` [rad]."""
        ...

    def jacob0(self, q: np.ndarray) -> np.ndarray:
        """Geometric Jacobian ``(6, n)`` at the TCP in the base frame, rows ``[v; omega]``."""
        ...

    def ik(self, T: SE3, q0: np.ndarray) -> np.ndarray | None:
        """Joint solution ``(n,)`` for pose ``T`` closest to ``q0``, within ``qlim``, or None."""
        ...


class Trajectory(Protocol):
    """Anything with a ``duration`` [s] and ``sample(t) -> (q, dq, ddq)``."""

    @property
    def duration(self) -> float:
        """Total time [s]."""
        ...

    def sample(self, t: float | ArrayLike) -> JointSample:
        """Joint position [rad], velocity [rad/s], acceleration [rad/s²] at time(s) ``t``."""
        ...


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _positive(name: str, value: float) -> float:
    """Return ``value`` as float, raising :class:`InvalidLimitError` unless finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise InvalidLimitError(f"{name} must be a positive number, got {value!r}") from err
    if not math.isfinite(v) or v <= 0.0:
        raise InvalidLimitError(f"{name} must be positive and finite, got {value!r}")
    return v


def _positive_vector(name: str, value: float | ArrayLike, n: int) -> FloatArray:
    """Broadcast a scalar or ``(n,)`` limit to shape ``(n,)``; every entry finite and > 0."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InvalidLimitError(f"{name} must be a scalar or have shape ({n},), got {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0.0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InvalidLimitError(
            f"{name}[{i}] must be positive and finite, got {arr[i]!r} (all: {arr.tolist()})"
        )
    return arr


def _joint_vector(name: str, value: ArrayLike, n: int | None = None) -> FloatArray:
    """Return a finite float vector of shape ``(n,)`` (any length if ``n`` is None)."""
    arr = np.array(value, dtype=float)
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        want = f"({n},)" if n is not None else "(n,)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def _speed_scale(value: float) -> float:
    """Validate a speed scale in ``(0, 1]``."""
    k = _positive("speed_scale", value)
    if k > 1.0:
        raise InvalidLimitError(f"speed_scale must be in (0, 1], got {value!r}")
    return k


# --------------------------------------------------------------------------------------------
# S-curve profile
# --------------------------------------------------------------------------------------------


class SCurveProfile:
    """Rest-to-rest jerk-limited ("7-segment S-curve") profile over a distance ``d``.

    The segments are: jerk +j, constant acceleration, jerk -j, cruise, jerk -j, constant
    deceleration, jerk +j. Durations are closed-form; segments shrink to zero length when a
    limit is not reached (short moves never cruise, very short moves never reach ``a_max``).
    The profile is symmetric: ``s(T - t) = d - s(t)``, which makes ``s(T) == d`` exact.

    Args:
        d: distance to travel, >= 0 (any unit ``u``: m, rad or a dimensionless path parameter).
        v_max: velocity limit [u/s], > 0.
        a_max: acceleration limit [u/s²], > 0.
        j_max: jerk limit [u/s³], > 0.

    Attributes:
        d: the distance [u].
        duration: total time [s].
        t_jerk: duration of each of the four jerk segments [s].
        t_accel: duration of each constant-acceleration segment [s].
        t_cruise: duration of the cruise segment [s].
        v_peak: velocity reached [u/s] (``<= v_max``).
        a_peak: acceleration reached [u/s²] (``<= a_max``).

    Raises:
        InvalidLimitError: (a ``LimitError`` and ``ValueError``) on a non-positive or
            non-finite limit, or a negative / non-finite distance.
    """

    __slots__ = (
        "_a0",
        "_half",
        "_jk",
        "_s0",
        "_starts",
        "_v0",
        "a_max",
        "a_peak",
        "d",
        "duration",
        "j_max",
        "t_accel",
        "t_cruise",
        "t_jerk",
        "v_max",
        "v_peak",
    )

    def __init__(self, d: float, v_max: float, a_max: float, j_max: float) -> None:
        try:
            dist = float(d)
        except (TypeError, ValueError) as err:
            raise InvalidLimitError(f"distance d must be a number >= 0, got {d!r}") from err
        if not math.isfinite(dist) or dist < 0.0:
            raise InvalidLimitError(f"distance d must be finite and >= 0, got {d!r}")
        v = _positive("v_max", v_max)
        a = _positive("a_max", a_max)
        j = _positive("j_max", j_max)
        self.d = dist
        self.v_max, self.a_max, self.j_max = v, a, j

        if dist == 0.0:
            tj = ta = tv = vp = 0.0
        else:
            # Acceleration phase that reaches v_max (with or without a const-accel segment).
            tj, ta = self._accel_phase(v, a, j)
            d_acc = v * (2.0 * tj + ta) / 2.0  # velocity curve is point-symmetric: mean v/2
            if 2.0 * d_acc <= dist:
                vp = v
                tv = (dist - 2.0 * d_acc) / v
            else:
                tv = 0.0
                if dist >= 2.0 * a**3 / j**2:
                    # a_max reached: d = vp * (a/j + vp/a)  ->  quadratic in vp.
                    vp = 0.5 * (-(a * a) / j + math.sqrt((a * a / j) ** 2 + 4.0 * dist * a))
                    tj, ta = a / j, max(vp / a - a / j, 0.0)
                else:
                    # Pure jerk phases: d = 2 * j * tj^3.
                    tj = (dist / (2.0 * j)) ** (1.0 / 3.0)
                    ta = 0.0
                    vp = j * tj * tj
        self.t_jerk, self.t_accel, self.t_cruise, self.v_peak = tj, ta, tv, vp
        self.a_peak = j * tj
        self.duration = 4.0 * tj + 2.0 * ta + tv
        self._half = 0.5 * self.duration

        # Piecewise-cubic description of the first half: segment start times, states, jerk.
        a1 = j * tj
        v1 = 0.5 * j * tj * tj
        s1 = j * tj**3 / 6.0
        v2 = v1 + a1 * ta
        s2 = s1 + v1 * ta + 0.5 * a1 * ta * ta
        v3 = v2 + a1 * tj - 0.5 * j * tj * tj
        s3 = s2 + v2 * tj + 0.5 * a1 * tj * tj - j * tj**3 / 6.0
        self._starts = (0.0, tj, tj + ta, 2.0 * tj + ta)
        self._s0 = (0.0, s1, s2, s3)
        self._v0 = (0.0, v1, v2, v3)
        self._a0 = (0.0, a1, a1, 0.0)
        self._jk = (j, 0.0, -j, 0.0)

    @staticmethod
    def _accel_phase(v: float, a: float, j: float) -> tuple[float, float]:
        """Jerk and const-accel durations [s] of a 0 -> ``v`` acceleration under ``a``, ``j``."""
        if v * j >= a * a:
            return a / j, v / a - a / j
        return math.sqrt(v / j), 0.0

    def _half_scalar(self, tau: float) -> tuple[float, float, float]:
        """State ``(s, v, a)`` at time ``tau`` in ``[0, duration/2]`` (first half)."""
        i = bisect.bisect_right(self._starts, tau) - 1
        u = tau - self._starts[i]
        jk, a0, v0 = self._jk[i], self._a0[i], self._v0[i]
        return (
            self._s0[i] + u * (v0 + u * (0.5 * a0 + u * jk / 6.0)),
            v0 + u * (a0 + 0.5 * jk * u),
            a0 + jk * u,
        )

    def sample(
        self, t: float | ArrayLike
    ) -> tuple[float, float, float] | tuple[FloatArray, FloatArray, FloatArray]:
        """Position, velocity and acceleration at time(s) ``t`` [s].

        Args:
            t: a scalar or an array of times [s]; clipped to ``[0, duration]``.

        Returns:
            ``(s, sd, sdd)`` in [u], [u/s], [u/s²]: floats for a scalar ``t``, arrays of the
            shape of ``t`` otherwise.
        """
        if isinstance(t, _SCALARS) or np.ndim(t) == 0:
            return self._sample_scalar(float(t))  # type: ignore[arg-type]
        return self._sample_array(np.asarray(t, dtype=float))

    def _sample_scalar(self, t: float) -> tuple[float, float, float]:
        """:meth:`sample` for one time [s] (pure Python, no array overhead)."""
        d = self.duration
        tt = 0.0 if t < 0.0 else (d if t > d else t)
        if tt <= self._half:
            return self._half_scalar(tt)
        s, v, a = self._half_scalar(self.duration - tt)
        return self.d - s, v, -a

    def _sample_array(self, t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Vectorised :meth:`sample` for an array of times."""
        tt = np.clip(t, 0.0, self.duration)
        second = tt > self._half
        tau = np.where(second, self.duration - tt, tt)
        starts = np.asarray(self._starts)
        i = np.clip(np.searchsorted(starts, tau, side="right") - 1, 0, 3)
        u = tau - starts[i]
        jk = np.asarray(self._jk)[i]
        a0 = np.asarray(self._a0)[i]
        v0 = np.asarray(self._v0)[i]
        s = np.asarray(self._s0)[i] + u * (v0 + u * (0.5 * a0 + u * jk / 6.0))
        v = v0 + u * (a0 + 0.5 * jk * u)
        a = a0 + jk * u
        s = np.where(second, self.d - s, s)
        a = np.where(second, -a, a)
        return s, v, a

    def __repr__(self) -> str:
        return (
            f"SCurveProfile(d={self.d:g}, v_max={self.v_max:g}, a_max={self.a_max:g}, "
            f"j_max={self.j_max:g}, duration={self.duration:.6g})"
        )


# --------------------------------------------------------------------------------------------
# joint-space move
# --------------------------------------------------------------------------------------------


class JointMove:
    """Synchronised straight-line move in joint space, rest to rest.

    A single :class:`SCurveProfile` drives a path parameter ``s`` from 0 to 1 and
    ``q(t) = q_start + s(t) * (q_end - q_start)``, so all joints start and stop together and
    the joint path is a straight line. The profile limits are
    ``min_i(limit_i / |dq_i|)`` over the moving joints, so no joint exceeds its own velocity,
    acceleration or jerk limit.

    ``speed_scale = k`` in ``(0, 1]`` scales the limits as ``k * v_max``, ``k**2 * a_max`` and
    ``k**3 * j_max``: that is a pure time scaling, so the move has exactly the same shape and
    lasts ``duration(k=1) / k``.

    Args:
        q_start: start joint vector ``(n,)`` [rad].
        q_end: target joint vector ``(n,)`` [rad].
        v_max: joint velocity limits [rad/s], scalar or ``(n,)``.
        a_max: joint acceleration limits [rad/s²], scalar or ``(n,)``.
        j_max: joint jerk limits [rad/s³], scalar or ``(n,)``.
        speed_scale: fraction of the limits to use, in ``(0, 1]``.
        qlim: optional joint limits ``(2, n)`` [rad]; the target must lie inside them.

    Attributes:
        q_start, q_end: ``(n,)`` [rad]. ``profile``: the path-parameter profile.
        duration: total time [s] (0 if no joint moves).

    Raises:
        LimitError: the target is outside ``qlim`` (message names the joint, the value in
            degrees and the limits).
        InvalidLimitError: a limit or the speed scale is invalid.
        ValueError: vectors of the wrong shape or non-finite.
    """

    __slots__ = ("_dq", "_duration", "_prof", "n", "q_end", "q_start", "speed_scale")

    def __init__(
        self,
        q_start: ArrayLike,
        q_end: ArrayLike,
        v_max: float | ArrayLike,
        a_max: float | ArrayLike,
        j_max: float | ArrayLike,
        speed_scale: float = 1.0,
        *,
        qlim: ArrayLike | None = None,
    ) -> None:
        q0 = _joint_vector("q_start", q_start)
        n = q0.size
        q1 = _joint_vector("q_end", q_end, n)
        k = _speed_scale(speed_scale)
        v = _positive_vector("v_max", v_max, n) * k
        a = _positive_vector("a_max", a_max, n) * k**2
        j = _positive_vector("j_max", j_max, n) * k**3
        if qlim is not None:
            _check_qlim(q1, qlim, "target")
        self.n = n
        self.q_start, self.q_end, self.speed_scale = q0, q1, k
        self._dq = q1 - q0
        moving = np.abs(self._dq) > _STILL_RAD
        if np.any(moving):
            adq = np.abs(self._dq[moving])
            self._prof: SCurveProfile | None = SCurveProfile(
                1.0,
                float(np.min(v[moving] / adq)),
                float(np.min(a[moving] / adq)),
                float(np.min(j[moving] / adq)),
            )
            self._duration = self._prof.duration
        else:
            self._prof = None
            self._duration = 0.0

    @property
    def duration(self) -> float:
        """Total time [s]."""
        return self._duration

    @property
    def profile(self) -> SCurveProfile | None:
        """The profile of the path parameter ``s`` in [0, 1] (None if nothing moves)."""
        return self._prof

    def sample(self, t: float | ArrayLike) -> JointSample:
        """Joint position [rad], velocity [rad/s] and acceleration [rad/s²] at time(s) ``t``.

        Args:
            t: scalar or array of ``k`` times [s], clipped to ``[0, duration]``.

        Returns:
            ``(q, dq, ddq)`` each ``(n,)`` for a scalar ``t`` or ``(k, n)`` for an array.
            ``q`` equals ``q_start`` exactly at ``t <= 0`` and ``q_end`` exactly at
            ``t >= duration``.
        """
        prof = self._prof
        if isinstance(t, _SCALARS) or np.ndim(t) == 0:
            if prof is None:
                z = np.zeros(self.n)
                return self.q_start.copy(), z, z.copy()
            s, sd, sdd = prof._sample_scalar(float(t))  # type: ignore[arg-type]
            dq = self._dq
            # Interpolate from the nearer end so both endpoints are reproduced exactly.
            q = self.q_start + s * dq if s < 0.5 else self.q_end - (1.0 - s) * dq
            return q, sd * dq, sdd * dq
        tt = np.asarray(t, dtype=float).reshape(-1)
        if prof is None:
            z = np.zeros((tt.size, self.n))
            return np.tile(self.q_start, (tt.size, 1)), z, z.copy()
        s, sd, sdd = prof._sample_array(tt)
        dq = self._dq
        sc = s[:, None]
        q = np.where(sc < 0.5, self.q_start + sc * dq, self.q_end - (1.0 - sc) * dq)
        return q, sd[:, None] * dq, sdd[:, None] * dq

    def __repr__(self) -> str:
        return (
            f"JointMove(n={self.n}, duration={self._duration:.6g}, speed_scale={self.speed_scale})"
        )


def _check_qlim(q: FloatArray, qlim: ArrayLike, what: str) -> None:
    """Raise :class:`LimitError` naming the first joint of ``q`` outside ``qlim`` ``(2, n)``."""
    lim = np.asarray(qlim, dtype=float)
    if lim.shape != (2, q.size):
        raise ValueError(f"qlim must have shape (2, {q.size}), got {lim.shape}")
    bad = (q < lim[0]) | (q > lim[1])
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise LimitError(
            f"{what} joint {i + 1} (index {i}) = {math.degrees(q[i]):.3f} deg is outside its "
            f"limits [{math.degrees(lim[0, i]):.3f}, {math.degrees(lim[1, i]):.3f}] deg"
        )


# --------------------------------------------------------------------------------------------
# sampled trajectory
# --------------------------------------------------------------------------------------------


class SampledTrajectory:
    """Joint trajectory given by samples, interpolated by piecewise cubic Hermite splines.

    Between samples the position is the cubic Hermite interpolant of ``(q_k, dq_k)``, so the
    trajectory is C1 and its velocity is consistent with its position. If ``dq`` is not given
    it is estimated by finite differences (second-order ``np.gradient``; one-sided at the
    ends). ``ddq`` is the second derivative of the interpolant (piecewise linear, may jump at
    samples).

    Args:
        times: ``(m,)`` strictly increasing sample times [s], ``times[0] == 0``.
        q: ``(m, n)`` joint positions [rad].
        dq: optional ``(m, n)`` joint velocities [rad/s] at the samples.

    Raises:
        ValueError: bad shapes, non-finite values, or times not strictly increasing from 0.
    """

    def __init__(self, times: ArrayLike, q: ArrayLike, dq: ArrayLike | None = None) -> None:
        ts = np.array(times, dtype=float).reshape(-1)
        qs = np.array(q, dtype=float)
        if qs.ndim != 2 or qs.shape[0] != ts.size or ts.size == 0:
            raise ValueError(f"q must have shape (len(times), n) = ({ts.size}, n), got {qs.shape}")
        if not (np.all(np.isfinite(ts)) and np.all(np.isfinite(qs))):
            raise ValueError("times and q must be finite")
        if ts[0] != 0.0:
            raise ValueError(f"times must start at 0, got times[0] = {ts[0]!r}")
        if ts.size > 1 and np.any(np.diff(ts) <= 0.0):
            i = int(np.flatnonzero(np.diff(ts) <= 0.0)[0])
            raise ValueError(
                f"times must be strictly increasing: times[{i}] = {ts[i]!r} >= "
                f"times[{i + 1}] = {ts[i + 1]!r}"
            )
        if dq is None:
            if ts.size == 1:
                dqs = np.zeros_like(qs)
            else:
                dqs = np.gradient(qs, ts, axis=0, edge_order=2 if ts.size > 2 else 1)
        else:
            dqs = np.array(dq, dtype=float)
            if dqs.shape != qs.shape or not np.all(np.isfinite(dqs)):
                raise ValueError(f"dq must be finite with shape {qs.shape}, got {dqs.shape}")
        self.times: FloatArray = ts
        self.q: FloatArray = qs
        self.dq: FloatArray = dqs
        self.n: int = qs.shape[1]
        self._duration = float(ts[-1])
        self._tlist = ts.tolist()

    @property
    def duration(self) -> float:
        """Total time [s] (the last sample time)."""
        return self._duration

    def sample(self, t: float | ArrayLike) -> JointSample:
        """Interpolated ``(q, dq, ddq)`` at time(s) ``t`` [s], clipped to ``[0, duration]``.

        Returns arrays of shape ``(n,)`` for a scalar ``t``, ``(k, n)`` for ``k`` times.
        """
        m = self.times.size
        if isinstance(t, _SCALARS) or np.ndim(t) == 0:
            tt = float(t)
            tt = 0.0 if tt < 0.0 else (self._duration if tt > self._duration else tt)
            if m == 1:
                z = np.zeros(self.n)
                return self.q[0].copy(), z, z.copy()
            i = min(bisect.bisect_right(self._tlist, tt) - 1, m - 2)
            h = self._tlist[i + 1] - self._tlist[i]
            return self._hermite(i, (tt - self._tlist[i]) / h, h)
        tt = np.clip(np.asarray(t, dtype=float).reshape(-1), 0.0, self._duration)
        if m == 1:
            z = np.zeros((tt.size, self.n))
            return np.tile(self.q[0], (tt.size, 1)), z, z.copy()
        i = np.clip(np.searchsorted(self.times, tt, side="right") - 1, 0, m - 2)
        h = (self.times[i + 1] - self.times[i])[:, None]
        u = ((tt - self.times[i]) / h[:, 0])[:, None]
        return self._hermite(i, u, h)

    def _hermite(
        self, i: int | NDArray[np.intp], u: float | FloatArray, h: float | FloatArray
    ) -> JointSample:
        """Cubic Hermite on interval ``i`` at normalised time ``u`` in [0, 1], length ``h``."""
        p0, p1 = self.q[i], self.q[i + 1]
        m0, m1 = self.dq[i] * h, self.dq[i + 1] * h
        u2 = u * u
        u3 = u2 * u
        h00 = 2 * u3 - 3 * u2 + 1
        h10 = u3 - 2 * u2 + u
        h01 = -2 * u3 + 3 * u2
        h11 = u3 - u2
        q = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        d00 = 6 * u2 - 6 * u
        d10 = 3 * u2 - 4 * u + 1
        d11 = 3 * u2 - 2 * u
        dq = (d00 * (p0 - p1) + d10 * m0 + d11 * m1) / h
        e00 = 12 * u - 6
        e10 = 6 * u - 4
        e11 = 6 * u - 2
        ddq = (e00 * (p0 - p1) + e10 * m0 + e11 * m1) / (h * h)
        return q, dq, ddq


class CartesianSegment(SampledTrajectory):
    """A :class:`SampledTrajectory` produced by :func:`cartesian_line` / :func:`cartesian_arc`.

    Attributes (besides those of :class:`SampledTrajectory`):
        slowdown: time-stretch factor applied to respect ``joint_v_max`` (1.0 = the programmed
            Cartesian speed was held; 2.0 = the segment takes twice as long).
        tcp_path_length: length of the TCP path [m] (line length or arc length).
        rotation_angle: total TCP rotation [rad].
        field: the name given to the planner (used in error messages).
        s: ``(m,)`` normalised path parameter at each sample, 0 -> 1.
        tcp_positions: ``(m, 3)`` planned TCP positions at the samples [m].
        min_manipulability: smallest Yoshikawa manipulability met on the samples.
        arc_centre, arc_radius: circle centre ``(3,)`` [m] and radius [m] (arcs only; None
            for lines).
    """

    arc_centre: FloatArray | None = None
    arc_radius: float | None = None

    def __init__(
        self,
        times: ArrayLike,
        q: ArrayLike,
        dq: ArrayLike | None,
        *,
        slowdown: float,
        tcp_path_length: float,
        rotation_angle: float,
        field: str,
        s: FloatArray,
        tcp_positions: FloatArray,
        min_manipulability: float,
    ) -> None:
        super().__init__(times, q, dq)
        self.slowdown = slowdown
        self.tcp_path_length = tcp_path_length
        self.rotation_angle = rotation_angle
        self.field = field
        self.s = s
        self.tcp_positions = tcp_positions
        self.min_manipulability = min_manipulability


# --------------------------------------------------------------------------------------------
# Cartesian paths
# --------------------------------------------------------------------------------------------

#: A geometric TCP path: ``s (k,) -> (p (k,3), R (k,3,3), dp/ds (k,3), omega/ds (k,3))``.
_PathFn = Callable[[FloatArray], tuple[FloatArray, FloatArray, FloatArray, FloatArray]]


def _rot_to_quat(R: FloatArray) -> FloatArray:
    """Unit quaternion ``[w, x, y, z]`` (w >= 0) of a rotation matrix ``(3, 3)``."""
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    diag = (R[0, 0], R[1, 1], R[2, 2])
    if tr >= max(diag):
        w = math.sqrt(max(1.0 + tr, 0.0)) / 2.0
        f = 4.0 * w
        q = np.array([w, (R[2, 1] - R[1, 2]) / f, (R[0, 2] - R[2, 0]) / f, (R[1, 0] - R[0, 1]) / f])
    else:
        i = int(np.argmax(diag))
        j, k = (i + 1) % 3, (i + 2) % 3
        r = math.sqrt(max(1.0 + R[i, i] - R[j, j] - R[k, k], 0.0))
        q = np.empty(4)
        q[1 + i] = r / 2.0
        f = 2.0 * r
        q[0] = (R[k, j] - R[j, k]) / f
        q[1 + j] = (R[j, i] + R[i, j]) / f
        q[1 + k] = (R[k, i] + R[i, k]) / f
    if q[0] < 0.0:
        q = -q
    return q / np.linalg.norm(q)


def _axis_angle(R: FloatArray) -> tuple[FloatArray, float]:
    """Axis ``(3,)`` (unit) and angle [rad] in ``[0, pi]`` of a rotation matrix."""
    q = _rot_to_quat(R)
    sv = float(np.linalg.norm(q[1:]))
    angle = 2.0 * math.atan2(sv, q[0])
    if sv < 1e-15:
        return np.array([0.0, 0.0, 1.0]), 0.0
    return q[1:] / sv, angle


def _rodrigues(axis: FloatArray, angles: FloatArray) -> FloatArray:
    """Rotation matrices ``(k, 3, 3)`` about the unit ``axis`` by ``angles`` ``(k,)`` [rad]."""
    K = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    K2 = K @ K
    sa = np.sin(angles)[:, None, None]
    ca = np.cos(angles)[:, None, None]
    return np.eye(3) + sa * K + (1.0 - ca) * K2


def _slerp_fn(
    R0: FloatArray, R1: FloatArray
) -> tuple[Callable[[FloatArray], tuple[FloatArray, FloatArray]], float]:
    """Geodesic (slerp) orientation path from ``R0`` to ``R1``.

    Returns ``(fn, angle)`` where ``fn(s) -> (R (k,3,3), omega/ds (k,3))`` with the angular
    velocity per unit ``ds`` expressed in the base frame [rad], and ``angle`` the total
    rotation [rad].
    """
    axis, angle = _axis_angle(R0.T @ R1)
    w_base = R0 @ axis * angle  # constant: R0 exp(s*angle*[a]) a == R0 a

    def fn(s: FloatArray) -> tuple[FloatArray, FloatArray]:
        R = R0 @ _rodrigues(axis, s * angle) if angle > 0.0 else np.tile(R0, (s.size, 1, 1))
        R[s >= 1.0] = R1
        return R, np.tile(w_base, (s.size, 1))

    return fn, angle


def _fmt_mm(p: FloatArray) -> str:
    """Format a position [m] as ``(x, y, z) mm``."""
    return f"({p[0] * 1e3:.1f}, {p[1] * 1e3:.1f}, {p[2] * 1e3:.1f}) mm"


def _manipulability(J: FloatArray) -> float:
    """Yoshikawa manipulability ``sqrt(det(J J^T))`` (``J^T J`` if fewer than 6 joints)."""
    M = J @ J.T if J.shape[1] >= J.shape[0] else J.T @ J
    return math.sqrt(max(float(np.linalg.det(M)), 0.0))


def _pose_matrix(p: FloatArray, R: FloatArray) -> SE3:
    """SE3 from a position ``(3,)`` [m] and rotation ``(3, 3)`` without validity checks."""
    A = np.eye(4)
    A[:3, :3] = R
    A[:3, 3] = p
    return SE3(A, check=False)


def _track(
    kin: KinematicsLike,
    q_start: FloatArray,
    path: _PathFn,
    length: float,
    angle: float,
    *,
    v_max: float,
    a_max: float,
    j_max: float,
    ang_v_max: float | None,
    ang_a_max: float | None,
    ang_j_max: float | None,
    dt: float,
    field: str,
    joint_v_max: ArrayLike | None,
    min_manipulability: float,
    max_step_rad: float,
    T_end: SE3,
) -> CartesianSegment:
    """Time-parametrise a geometric TCP path, solve IK every ``dt`` and check the result.

    The path parameter ``s`` in [0, 1] follows an :class:`SCurveProfile` whose limits are the
    tighter of the linear limits divided by ``length`` [m] and the angular limits divided by
    ``angle`` [rad] (so translation and rotation start and stop together).
    """
    v_max = _positive("v_max", v_max)
    a_max = _positive("a_max", a_max)
    j_max = _positive("j_max", j_max)
    wv = v_max if ang_v_max is None else _positive("ang_v_max", ang_v_max)
    wa = a_max if ang_a_max is None else _positive("ang_a_max", ang_a_max)
    wj = j_max if ang_j_max is None else _positive("ang_j_max", ang_j_max)
    dt = _positive("dt", dt)
    max_step = _positive("max_step_rad", max_step_rad)
    if not math.isfinite(min_manipulability) or min_manipulability < 0.0:
        raise InvalidLimitError(
            f"min_manipulability must be finite and >= 0, got {min_manipulability!r}"
        )
    n = int(kin.n)
    qv = None if joint_v_max is None else _positive_vector("joint_v_max", joint_v_max, n)

    # End target first: a clear message beats a failure somewhere along the path.
    A_end = np.asarray(T_end.A, dtype=float)
    if kin.ik(T_end, q_start) is None:
        rpy = np.degrees(T_end.rpy())
        raise KinematicsError(
            f"target unreachable: pose {_fmt_mm(A_end[:3, 3])}, "
            f"rpy ({rpy[0]:.1f}, {rpy[1]:.1f}, {rpy[2]:.1f}) deg has no IK solution within "
            "the joint limits",
            field=field,
        )

    limits: list[tuple[float, float, float]] = []
    if length > 0.0:
        limits.append((v_max / length, a_max / length, j_max / length))
    if angle > 0.0:
        limits.append((wv / angle, wa / angle, wj / angle))
    if not limits:
        # Nothing to do: a single sample at the start.
        T0 = kin.fkine(q_start)
        p0 = np.asarray(T0.A, dtype=float)[:3, 3]
        return CartesianSegment(
            [0.0],
            q_start[None, :],
            np.zeros((1, n)),
            slowdown=1.0,
            tcp_path_length=0.0,
            rotation_angle=0.0,
            field=field,
            s=np.zeros(1),
            tcp_positions=p0[None, :],
            min_manipulability=_manipulability(np.asarray(kin.jacob0(q_start))),
        )
    base = tuple(min(lim[i] for lim in limits) for i in range(3))

    slowdown = 1.0
    for _ in range(8):
        prof = SCurveProfile(1.0, base[0] / slowdown, base[1] / slowdown**2, base[2] / slowdown**3)
        times = _sample_times(prof.duration, dt)
        s, sd, _ = prof.sample(times)
        s[-1] = 1.0
        p, R, dp_ds, w_ds = path(s)
        q, dq, w_min = _solve_path(
            kin,
            q_start,
            p,
            R,
            dp_ds * sd[:, None],
            w_ds * sd[:, None],
            s,
            T_end,
            field,
            min_manipulability,
            max_step,
        )
        if qv is None:
            break
        # Joint speed: at the samples, averaged over each interval, and at the midpoints of
        # the Hermite interpolant (which can bulge slightly between samples).
        fd = np.abs(np.diff(q, axis=0)) / np.diff(times)[:, None]
        mid = SampledTrajectory(times, q, dq).sample(0.5 * (times[1:] + times[:-1]))[1]
        ratio = float(max(np.max(np.abs(dq) / qv), np.max(fd / qv), np.max(np.abs(mid) / qv)))
        if ratio <= 1.0:
            break
        slowdown *= ratio * 1.002
    else:  # pragma: no cover - the ratio converges in one or two passes in practice
        raise KinematicsError(
            f"could not retime the path to respect joint_v_max (slowdown {slowdown:.3g})",
            field=field,
        )
    return CartesianSegment(
        times,
        q,
        dq,
        slowdown=slowdown,
        tcp_path_length=length,
        rotation_angle=angle,
        field=field,
        s=s,
        tcp_positions=p,
        min_manipulability=w_min,
    )


def _sample_times(duration: float, dt: float) -> FloatArray:
    """Times ``0, dt, 2 dt, ...`` plus ``duration`` itself; the last interval is in
    ``[dt/2, 3 dt/2)`` (a grid point closer than ``dt/2`` to the end is dropped)."""
    k = max(int(math.floor(duration / dt + 1e-9)), 0)
    times = np.arange(k + 1, dtype=float) * dt
    if duration - times[-1] < 0.5 * dt and times.size > 1:
        times = times[:-1]
    return np.append(times, duration)


def _pose_error(A: FloatArray, p: FloatArray, R: FloatArray) -> FloatArray:
    """Twist-like error ``(6,)`` [m, rad] (base frame) from pose ``A`` (4x4) to ``(p, R)``.

    The rotation part is the small-angle vee of ``R A_R^T``; it is only used close to the
    solution (IK refinement).
    """
    E = R @ A[:3, :3].T
    rot = 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
    return np.concatenate((p - A[:3, 3], rot))


def _refine(
    kin: KinematicsLike, q: FloatArray, p: FloatArray, R: FloatArray, qlim: FloatArray | None
) -> FloatArray:
    """Polish an IK solution with up to 3 Gauss-Newton steps (IK solvers often stop at
    ~1e-4 m); returns ``q`` unchanged if the refinement would leave ``qlim``."""
    q_ref = q
    for _ in range(3):
        e = _pose_error(np.asarray(kin.fkine(q_ref).A, dtype=float), p, R)
        if np.max(np.abs(e)) < _REFINE_TOL:
            break
        J = np.asarray(kin.jacob0(q_ref), dtype=float)
        q_ref = q_ref + np.linalg.lstsq(J, e, rcond=None)[0]
    if qlim is not None and (np.any(q_ref < qlim[0]) or np.any(q_ref > qlim[1])):
        return q
    return q_ref


def _solve_path(
    kin: KinematicsLike,
    q_start: FloatArray,
    p: FloatArray,
    R: FloatArray,
    v: FloatArray,
    w: FloatArray,
    s: FloatArray,
    T_end: SE3,
    field: str,
    min_manipulability: float,
    max_step: float,
) -> tuple[FloatArray, FloatArray, float]:
    """IK along sampled poses, seeded from the previous solution; checks every sample.

    Args:
        p: ``(k, 3)`` positions [m]; R: ``(k, 3, 3)`` orientations; v, w: ``(k, 3)`` TCP
            linear [m/s] and angular [rad/s] velocities (base frame); s: ``(k,)`` path param.

    Returns:
        ``(q (k, n), dq (k, n), min manipulability)``; ``dq`` solves ``J dq = [v; w]``.
    """
    k = s.size
    n = q_start.size
    q = np.empty((k, n))
    dq = np.empty((k, n))
    q[0] = q_start
    w_min = math.inf
    prev = q_start
    qlim_raw = getattr(kin, "qlim", None)
    qlim = None if qlim_raw is None else np.asarray(qlim_raw, dtype=float)
    for i in range(k):
        if i > 0:
            T = T_end if i == k - 1 else _pose_matrix(p[i], R[i])
            qi = kin.ik(T, prev)
            if qi is None:
                raise KinematicsError(
                    f"path leaves the reachable workspace or flips configuration at "
                    f"s={s[i]:.4f}: no IK solution near the previous one at TCP {_fmt_mm(p[i])}",
                    field=field,
                )
            qi = _refine(kin, np.asarray(qi, dtype=float).reshape(n), p[i], R[i], qlim)
            step = np.abs(qi - prev)
            j = int(np.argmax(step))
            if step[j] > max_step:
                # A branch jump is usually caused by a nearby singularity: say so if it is.
                J_prev = np.asarray(kin.jacob0(prev), dtype=float)
                m_prev = min(_manipulability(J_prev), w_min)
                hint = (
                    f"; manipulability fell to {m_prev:.3g} (singularity nearby)"
                    if m_prev < 10.0 * min_manipulability
                    else ""
                )
                raise KinematicsError(
                    f"path leaves the reachable workspace or flips configuration at "
                    f"s={s[i]:.4f} (TCP {_fmt_mm(p[i])}): joint {j + 1} jumps "
                    f"{math.degrees(step[j]):.1f} deg between samples "
                    f"(max_step_rad = {max_step:.3g}){hint}",
                    field=field,
                )
            q[i] = qi
            prev = qi
        J = np.asarray(kin.jacob0(q[i]), dtype=float)
        m = _manipulability(J)
        w_min = min(w_min, m)
        if m < min_manipulability:
            raise KinematicsError(
                f"path passes through a singularity at s={s[i]:.4f} (TCP {_fmt_mm(p[i])}): "
                f"manipulability {m:.3g} < min_manipulability {min_manipulability:.3g}",
                field=field,
            )
        twist = np.concatenate((v[i], w[i]))
        if not np.any(twist):
            dq[i] = 0.0
        else:
            dq[i] = np.linalg.lstsq(J, twist, rcond=None)[0]
    return q, dq, w_min


def _end_pose(T_end: SE3) -> tuple[FloatArray, FloatArray]:
    """Position ``(3,)`` and rotation ``(3, 3)`` of an SE3 (validated: a single pose)."""
    if not isinstance(T_end, SE3) or len(T_end) != 1:
        raise ValueError(f"T_end must be a single SE3 pose, got {type(T_end).__name__}")
    A = np.asarray(T_end.A, dtype=float)
    return A[:3, 3].copy(), A[:3, :3].copy()


def cartesian_line(
    kin: KinematicsLike,
    q_start: ArrayLike,
    T_end: SE3,
    *,
    v_max: float,
    a_max: float,
    j_max: float,
    dt: float,
    field: str = "target",
    joint_v_max: ArrayLike | None = None,
    min_manipulability: float = 1e-3,
    max_step_rad: float = 0.2,
    ang_v_max: float | None = None,
    ang_a_max: float | None = None,
    ang_j_max: float | None = None,
) -> CartesianSegment:
    """Straight-line TCP move from ``kin.fkine(q_start)`` to ``T_end``, sampled every ``dt``.

    The TCP position moves along the line segment; the orientation follows the geodesic
    (slerp) from the start to the end orientation. A single normalised path parameter ``s``
    in [0, 1] drives both; it follows an :class:`SCurveProfile` whose limits are the tighter
    of (``v_max``, ``a_max``, ``j_max``) / path length and (``ang_v_max``, ``ang_a_max``,
    ``ang_j_max``) / rotation angle. So the TCP speed along the line is an S-curve in path
    length within the linear limits, and the rotation is within the angular limits. The
    angular limits default to the *same numbers* as the linear ones read in rad/s, rad/s²,
    rad/s³ (e.g. ``v_max = 0.25`` -> 0.25 rad/s); a pure rotation uses only them.

    At each sample (every ``dt`` [s], the control period; the last sample is at the end of
    the profile) IK is solved seeded from the previous solution. Joint velocities at the
    samples solve ``J dq = [v; omega]``, so the returned trajectory is C1 and at rest at both
    ends. Each IK solution is polished by up to three Gauss-Newton steps on ``fkine`` /
    ``jacob0`` (many IK solvers stop at ~0.1 mm), unless that would leave ``kin.qlim``.

    Args:
        kin: kinematics (see :class:`KinematicsLike`).
        q_start: start joint vector ``(n,)`` [rad].
        T_end: target TCP pose (SE3, base frame, m).
        v_max, a_max, j_max: TCP path limits [m/s], [m/s²], [m/s³].
        dt: sample period [s].
        field: name used in errors (e.g. ``"waypoints[2]"``).
        joint_v_max: optional joint speed limits [rad/s], scalar or ``(n,)``. If the path
            needs more, the whole segment is slowed uniformly (time-stretched; see
            ``CartesianSegment.slowdown``) and re-sampled.
        min_manipulability: smallest Yoshikawa manipulability ``sqrt(det(J J^T))`` allowed on
            the path (J mixes m and rad; for a UR5-sized arm 1e-3 is close to singular).
        max_step_rad: largest change of any joint between two samples [rad] before the path
            is declared to flip configuration or leave the workspace. It is checked at the
            programmed speed (before any slowdown), so keep it well above
            ``max joint speed * dt``.
        ang_v_max, ang_a_max, ang_j_max: TCP angular limits [rad/s], [rad/s²], [rad/s³].

    Returns:
        A :class:`CartesianSegment`.

    Raises:
        KinematicsError: with ``field`` set: the end target is unreachable, the path leaves
            the workspace or flips configuration, or it passes a singularity.
        InvalidLimitError: invalid limits or ``dt``.
    """
    q0 = _joint_vector("q_start", q_start, int(kin.n))
    p1, R1 = _end_pose(T_end)
    A0 = np.asarray(kin.fkine(q0).A, dtype=float)
    p0, R0 = A0[:3, 3].copy(), A0[:3, :3].copy()
    delta = p1 - p0
    length = float(np.linalg.norm(delta))
    rot, angle = _slerp_fn(R0, R1)

    def path(s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        sc = s[:, None]
        p = np.where(sc < 0.5, p0 + sc * delta, p1 - (1.0 - sc) * delta)
        R, w = rot(s)
        return p, R, np.tile(delta, (s.size, 1)), w

    return _track(
        kin,
        q0,
        path,
        length,
        angle,
        v_max=v_max,
        a_max=a_max,
        j_max=j_max,
        ang_v_max=ang_v_max,
        ang_a_max=ang_a_max,
        ang_j_max=ang_j_max,
        dt=dt,
        field=field,
        joint_v_max=joint_v_max,
        min_manipulability=min_manipulability,
        max_step_rad=max_step_rad,
        T_end=T_end,
    )


def cartesian_arc(
    kin: KinematicsLike,
    q_start: ArrayLike,
    via_xyz: ArrayLike,
    T_end: SE3,
    *,
    v_max: float,
    a_max: float,
    j_max: float,
    dt: float,
    field: str = "target",
    joint_v_max: ArrayLike | None = None,
    min_manipulability: float = 1e-3,
    max_step_rad: float = 0.2,
    ang_v_max: float | None = None,
    ang_a_max: float | None = None,
    ang_j_max: float | None = None,
) -> CartesianSegment:
    """Circular-arc TCP move from the start TCP position through ``via_xyz`` to ``T_end``.

    The arc is the part of the circle through the three points (in their plane) that goes
    from the start through the via point to the end; its length is the arc length. The
    orientation is slerped from start to end with the same normalised ``s`` (the via point
    constrains the position only). Timing, sampling, checks and the result are as in
    :func:`cartesian_line`.

    Args:
        via_xyz: ``(3,)`` via point in the base frame [m].
        Others: see :func:`cartesian_line`.

    Raises:
        KinematicsError: (with ``field``) if the three points are collinear or two coincide,
            plus every error of :func:`cartesian_line`.
    """
    q0 = _joint_vector("q_start", q_start, int(kin.n))
    pv = _joint_vector("via_xyz", via_xyz, 3)
    p1, R1 = _end_pose(T_end)
    A0 = np.asarray(kin.fkine(q0).A, dtype=float)
    p0, R0 = A0[:3, 3].copy(), A0[:3, :3].copy()

    u = pv - p0
    w = p1 - p0
    nvec = np.cross(u, w)
    lu, lw, lvw = (float(np.linalg.norm(x)) for x in (u, w, p1 - pv))
    if min(lu, lw, lvw) < 1e-9:
        raise KinematicsError(
            f"arc points coincide: start {_fmt_mm(p0)}, via {_fmt_mm(pv)}, end {_fmt_mm(p1)}",
            field=field,
        )
    nn = float(np.linalg.norm(nvec))
    if nn < 1e-6 * lu * lw:
        raise KinematicsError(
            f"arc points are collinear, no unique circle: start {_fmt_mm(p0)}, "
            f"via {_fmt_mm(pv)}, end {_fmt_mm(p1)}",
            field=field,
        )
    # Circumcentre of the triangle (p0, pv, p1).
    centre = p0 + np.cross(np.dot(u, u) * w - np.dot(w, w) * u, nvec) / (2.0 * nn * nn)
    radius = float(np.linalg.norm(p0 - centre))
    e1 = (p0 - centre) / radius
    e2 = np.cross(nvec / nn, e1)  # points, seen from +nvec, run counter-clockwise

    def phase(x: FloatArray) -> float:
        d = x - centre
        return math.atan2(float(d @ e2), float(d @ e1)) % (2.0 * math.pi)

    phi_end = phase(p1)
    if not 0.0 < phase(pv) < phi_end:  # pragma: no cover - guaranteed by the orientation
        raise KinematicsError("internal error: via point not between start and end", field=field)
    length = radius * phi_end
    rot, angle = _slerp_fn(R0, R1)

    def path(s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        phi = s * phi_end
        c = np.cos(phi)[:, None]
        sn = np.sin(phi)[:, None]
        p = centre + radius * (c * e1 + sn * e2)
        p[s >= 1.0] = p1
        dp = (radius * phi_end) * (-sn * e1 + c * e2)
        R, wv = rot(s)
        return p, R, dp, wv

    seg = _track(
        kin,
        q0,
        path,
        length,
        angle,
        v_max=v_max,
        a_max=a_max,
        j_max=j_max,
        ang_v_max=ang_v_max,
        ang_a_max=ang_a_max,
        ang_j_max=ang_j_max,
        dt=dt,
        field=field,
        joint_v_max=joint_v_max,
        min_manipulability=min_manipulability,
        max_step_rad=max_step_rad,
        T_end=T_end,
    )
    seg.arc_centre = centre
    seg.arc_radius = radius
    return seg


# --------------------------------------------------------------------------------------------
# sequences
# --------------------------------------------------------------------------------------------


class TrajectorySequence:
    """Segments played one after another; itself a trajectory.

    Args:
        segments: non-empty sequence of objects with ``duration`` [s] and
            ``sample(t) -> (q, dq, ddq)``. Each segment's start position must equal the
            previous segment's end position within 1e-6 rad.

    Attributes:
        segments: the segments (tuple). start_times: ``(len(segments),)`` start times [s].

    Raises:
        ValueError: empty, inconsistent joint counts, or a discontinuity at a boundary.
    """

    def __init__(self, segments: Sequence[Trajectory]) -> None:
        segs = tuple(segments)
        if not segs:
            raise ValueError("a TrajectorySequence needs at least one segment")
        starts = [0.0]
        prev_end = np.asarray(segs[0].sample(segs[0].duration)[0], dtype=float)
        for i, seg in enumerate(segs[1:], start=1):
            begin = np.asarray(seg.sample(0.0)[0], dtype=float)
            if begin.shape != prev_end.shape:
                raise ValueError(
                    f"segment {i} has {begin.size} joints, segment {i - 1} has {prev_end.size}"
                )
            gap = np.abs(begin - prev_end)
            j = int(np.argmax(gap))
            if gap[j] > _CONTINUITY_TOL:
                raise ValueError(
                    f"discontinuity between segment {i - 1} and {i}: joint {j + 1} ends at "
                    f"{prev_end[j]:.9g} rad and restarts at {begin[j]:.9g} rad "
                    f"(gap {gap[j]:.3g} rad > {_CONTINUITY_TOL:g})"
                )
            starts.append(starts[-1] + float(segs[i - 1].duration))
            prev_end = np.asarray(seg.sample(seg.duration)[0], dtype=float)
        self.segments = segs
        self._starts = starts
        self.start_times: FloatArray = np.asarray(starts)
        self._duration = starts[-1] + float(segs[-1].duration)
        self.n = prev_end.size

    @property
    def duration(self) -> float:
        """Total time [s]."""
        return self._duration

    def segment_at(self, t: float) -> int:
        """Index of the segment playing at time ``t`` [s] (clipped to ``[0, duration]``).

        At a boundary the later segment is returned; past the end, the last one.
        """
        tt = float(t)
        tt = 0.0 if tt < 0.0 else (self._duration if tt > self._duration else tt)
        return bisect.bisect_right(self._starts, tt) - 1

    def sample(self, t: float | ArrayLike) -> JointSample:
        """``(q, dq, ddq)`` at time(s) ``t`` [s]; ``(n,)`` for a scalar, ``(k, n)`` for arrays."""
        if isinstance(t, _SCALARS) or np.ndim(t) == 0:
            tt = float(t)
            tt = 0.0 if tt < 0.0 else (self._duration if tt > self._duration else tt)
            i = bisect.bisect_right(self._starts, tt) - 1
            return self.segments[i].sample(tt - self._starts[i])
        tt = np.clip(np.asarray(t, dtype=float).reshape(-1), 0.0, self._duration)
        idx = np.searchsorted(self.start_times, tt, side="right") - 1
        q = np.empty((tt.size, self.n))
        dq = np.empty_like(q)
        ddq = np.empty_like(q)
        for i in np.unique(idx):
            sel = idx == i
            qi, dqi, ddqi = self.segments[i].sample(tt[sel] - self._starts[i])
            q[sel], dq[sel], ddq[sel] = qi, dqi, ddqi
        return q, dq, ddq


def plan_joint_path(
    q_start: ArrayLike,
    waypoints: Sequence[ArrayLike] | ArrayLike,
    v_max: float | ArrayLike,
    a_max: float | ArrayLike,
    j_max: float | ArrayLike,
    speed_scale: float = 1.0,
    qlim: ArrayLike | None = None,
) -> TrajectorySequence:
    """Joint moves from ``q_start`` through each waypoint in turn, stopping at each.

    Args:
        q_start: ``(n,)`` [rad]. waypoints: ``(k, n)`` or a sequence of ``(n,)`` [rad], k >= 1.
        v_max, a_max, j_max, speed_scale, qlim: as for :class:`JointMove`.

    Returns:
        A :class:`TrajectorySequence` of ``k`` :class:`JointMove` segments.

    Raises:
        LimitError: a waypoint is outside ``qlim`` (message starts with ``waypoints[i]``).
    """
    q = _joint_vector("q_start", q_start)
    wps = [np.asarray(w, dtype=float) for w in waypoints]
    if not wps:
        raise ValueError("plan_joint_path needs at least one waypoint")
    moves: list[JointMove] = []
    for i, wp in enumerate(wps):
        try:
            move = JointMove(q, wp, v_max, a_max, j_max, speed_scale, qlim=qlim)
        except LimitError as err:
            if isinstance(err, InvalidLimitError):
                raise
            raise LimitError(f"waypoints[{i}]: {err}") from err
        except ValueError as err:
            raise ValueError(f"waypoints[{i}]: {err}") from err
        moves.append(move)
        q = move.q_end
    return TrajectorySequence(moves)
