"""From a G-code program to robot motion: the toolpath in the cell, its feed profile, and the
joint path that follows it (replayed in the control loop by
:class:`robocell.control.machining.ToolpathFollower`).

:func:`plan_toolpath` turns a parsed program into a :class:`ToolpathPlan` before anything moves:

1. every move becomes points of a polyline in the world frame (arcs subdivided to a chord
   tolerance, the program's work offsets mapped to their frames in the cell), resampled so that
   no two points are more than ``max_spacing`` apart;
2. each point gets a speed limit: the programmed feed for cutting moves, ``rapid_speed`` for
   rapids, a junction speed at corners (the speed at which a change of direction stays within
   ``corner_tolerance`` of the sharp corner at the path acceleration ``max_acceleration``), zero
   at dwells and at the ends;
3. the joint path is solved by inverse kinematics point by point (each solution starts from the
   previous one, so the arm keeps its configuration); a point outside the reach, outside the
   joint limits or too close to a singularity fails the plan with the G-code line that asked
   for it;
4. where a joint would have to turn faster than its rated speed at the programmed feed, the
   speed limit of those points is lowered and the plan lists the lines, the programmed feed and
   the feed the robot can hold;
5. a backward and a forward pass make the speed profile respect ``max_acceleration``.

The program is the same one the nominal stock is cut from, so actual and nominal can be
compared cell by cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spatialmath import SE3

from robocell.errors import KinematicsError

#: rows of :attr:`ToolpathPlan.kind`
RAPID, FEED = 0, 1


@dataclass(frozen=True)
class FeedLimit:
    """A G-code line whose programmed feed the robot cannot hold."""

    line: int
    programmed: float  # m/s
    achievable: float  # m/s
    joint: int  # 1-based joint that limits it

    def message(self) -> str:
        return (
            f"line {self.line}: programmed feed {self.programmed * 60e3:.0f} mm/min, the robot "
            f"holds {self.achievable * 60e3:.0f} mm/min ({self.achievable / self.programmed:.0%};"
            f" joint {self.joint} speed limit)"
        )


@dataclass
class ToolpathPlan:
    """A program planned for one robot.

    Arrays have one row per path point: ``points`` (N, 3) tool-tip positions in the world [m],
    ``s`` (N,) path length from the start [m], ``speed`` (N,) the speed profile [m/s], ``line``
    (N,) the G-code line of the move that ends at the point, ``kind`` (N,) RAPID or FEED,
    ``spindle_rpm`` (N,) signed spindle speed (negative for M4), ``q`` (N, n) joint solutions
    [rad], ``dwell`` (N,) seconds to wait at the point, ``t`` (N,) time at each point at full
    feed [s]. ``R`` is the tool orientation in the world (3, 3).
    """

    points: np.ndarray
    s: np.ndarray
    speed: np.ndarray
    line: np.ndarray
    kind: np.ndarray
    spindle_rpm: np.ndarray
    q: np.ndarray
    dwell: np.ndarray
    t: np.ndarray
    R: np.ndarray
    feed_limits: list[FeedLimit] = field(default_factory=list)
    max_acceleration: float = 2.0
    #: (N,) speed limit [m/s] of the segment that ends at each point (the programmed feed or
    #: the rapid speed, lowered where a joint cannot follow); 0 at the first point
    segment_speed: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Time to run the program at full feed [s] (dwells included)."""
        return float(self.t[-1])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def cutting_length(self) -> float:
        ds = np.diff(self.s)
        return float(ds[self.kind[1:] == FEED].sum())


def _world_polyline(
    program: Any, frames: Mapping[str, SE3], chord: float
) -> tuple[np.ndarray, list[int], list[int], list[float], list[float]]:
    pts: list[np.ndarray] = []
    lines: list[int] = []
    kinds: list[int] = []
    rpm: list[float] = []
    dwell: list[float] = []
    for mv in program.moves:
        if mv.offset not in frames:
            raise KinematicsError(
                f"line {mv.line}: work offset {mv.offset} has no frame in the cell; "
                f"defined: {', '.join(sorted(frames))}",
                field="work_offsets",
            )
        T = frames[mv.offset]
        R, t = T.R, T.t
        if mv.kind == "dwell":
            if not pts:
                pts.append(R @ np.asarray(mv.start, float) + t)
                lines.append(mv.line)
                kinds.append(RAPID)
                rpm.append(mv.spindle_rpm * mv.spindle_dir)
                dwell.append(0.0)
            dwell[-1] += float(mv.dwell)
            continue
        p = np.asarray(mv.points(chord), float) @ R.T + t
        if not pts:
            pts.append(p[0])
            lines.append(mv.line)
            kinds.append(RAPID)
            rpm.append(mv.spindle_rpm * mv.spindle_dir)
            dwell.append(0.0)
        for q in p[1:]:
            if np.linalg.norm(q - pts[-1]) < 1e-9:
                continue
            pts.append(q)
            lines.append(mv.line)
            kinds.append(RAPID if mv.kind == "rapid" else FEED)
            rpm.append(mv.spindle_rpm * mv.spindle_dir)
            dwell.append(0.0)
    if len(pts) < 2:
        raise KinematicsError("the program has no motion")
    return np.array(pts), lines, kinds, rpm, dwell


def _resample(
    P: np.ndarray, arrays: list[list[Any]], feeds: list[float], max_spacing: float
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Insert points so that no segment is longer than ``max_spacing``; marks original
    vertices (True) so that corners are kept."""
    out = [P[:1]]
    cols: list[list[Any]] = [[a[0]] for a in arrays]
    fe = [feeds[0]]
    vertex = [True]
    for i in range(1, len(P)):
        d = float(np.linalg.norm(P[i] - P[i - 1]))
        k = max(1, math.ceil(d / max_spacing))
        f = np.linspace(0.0, 1.0, k + 1)[1:]
        out.append(P[i - 1] + f[:, None] * (P[i] - P[i - 1]))
        for c, a in zip(cols, arrays):
            c.extend([a[i]] * k)
        fe.extend([feeds[i]] * k)
        vertex.extend([False] * (k - 1) + [True])
    return np.vstack(out), [np.array(c) for c in cols], np.array(fe), np.array(vertex)


def _corner_speeds(P: np.ndarray, a_max: float, tol: float) -> np.ndarray:
    """Junction speed at each point: the speed at which a circular blend through the corner
    that stays within ``tol`` of it needs no more than ``a_max`` of centripetal acceleration
    (v^2 = a r, r = tol c / (1 - c) with c = cos(θ/2), θ the change of direction: a straight
    join (θ = 0) has no limit, a reversal (θ = π) stops)."""
    n = len(P)
    v = np.full(n, np.inf)
    d = np.diff(P, axis=0)
    L = np.linalg.norm(d, axis=1)
    u = d / np.maximum(L, 1e-15)[:, None]
    cosang = np.clip(np.sum(u[:-1] * u[1:], axis=1), -1.0, 1.0)
    theta = np.arccos(cosang)  # change of direction at points 1..n-2
    c = np.cos(theta / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(1 - c > 1e-12, tol * c / np.maximum(1 - c, 1e-12), np.inf)
    v[1:-1] = np.sqrt(a_max * r)
    v[0] = v[-1] = 0.0
    return v


def _pose_error(A: np.ndarray, p: np.ndarray, R: np.ndarray) -> np.ndarray:
    E = R @ A[:3, :3].T
    rot = 0.5 * np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
    return np.concatenate((p - A[:3, 3], rot))


def newton_ik(
    kin: Any, q: np.ndarray, p: np.ndarray, R: np.ndarray, iters: int = 8, tol: float = 1e-7
) -> tuple[np.ndarray, float]:
    """Gauss-Newton IK from ``q`` toward TCP position ``p`` and orientation ``R`` (base frame).
    Returns the solution and its remaining position+rotation error norm."""
    fk = getattr(kin, "fkine_array", None) or (lambda x: np.asarray(kin.fkine(x).A, float))
    err = math.inf
    for k in range(iters + 1):
        e = _pose_error(fk(q), p, R)
        err = float(np.linalg.norm(e))
        if err < tol or k == iters:
            break
        J = np.asarray(kin.jacob0(q), float)
        if J.shape[0] == J.shape[1]:
            try:
                q = q + np.linalg.solve(J, e)
                continue
            except np.linalg.LinAlgError:
                pass
        q = q + np.linalg.lstsq(J, e, rcond=None)[0]
    return q, err


def plan_toolpath(
    program: Any,
    robot: Any,
    frames: Mapping[str, SE3],
    tool_rotation: np.ndarray,
    q_start: np.ndarray,
    rapid_speed: float = 0.25,
    max_acceleration: float = 2.0,
    corner_tolerance: float = 2e-5,
    max_spacing: float = 1e-3,
    chord_tolerance: float = 1e-5,
    min_manipulability: float = 1e-3,
) -> ToolpathPlan:
    """Plan ``program`` for ``robot`` (a :class:`~robocell.control.RobotInfo`: kinematics,
    limits, base), checking reach, joint limits and joint speeds over the whole program.

    Args:
        program: a parsed :class:`~robocell.machining.gcode.Program`.
        frames: world pose of each work offset's program frame (``{"G54": SE3, ...}``).
        tool_rotation: orientation of the TCP frame in the world, (3, 3); its z axis is the tool
            axis pointing out of the spindle.
        q_start: joints [rad] to start the IK from (the arm's configuration is kept from here).
        rapid_speed: tool speed of G0 moves [m/s] (lowered where a joint cannot follow).
        max_acceleration: tool path acceleration [m/s^2].
        corner_tolerance: how far [m] the tool may round a sharp corner at speed.
        max_spacing: largest distance [m] between two planned points.
        chord_tolerance: arc subdivision tolerance [m].
        min_manipulability: below this the path is reported as too close to a singularity.

    Raises:
        KinematicsError: naming the G-code line of the first point that cannot be reached.
    """
    if not (rapid_speed > 0 and max_acceleration > 0):
        raise KinematicsError(
            f"rapid_speed and max_acceleration must be > 0, got {rapid_speed}, {max_acceleration}"
        )
    P0, lines0, kinds0, rpm0, dwell0 = _world_polyline(program, frames, chord_tolerance)
    feeds0: list[float] = []
    line_feed: dict[int, float] = {}
    for mv in program.moves:
        if mv.kind in ("feed", "arc"):
            line_feed[mv.line] = float(mv.feed)
    for ln, k in zip(lines0, kinds0):
        feeds0.append(rapid_speed if k == RAPID else line_feed.get(ln, rapid_speed))
    for ln, k, f in zip(lines0, kinds0, feeds0):
        if k == FEED and not f > 0:
            raise KinematicsError(f"line {ln}: a cutting move without a feed rate (F)")
    P, (line, kind, rpm, dwell_r), feeds, vertex = _resample(
        P0, [lines0, kinds0, rpm0, dwell0], feeds0, max_spacing
    )
    # dwell only at the original vertex, not at the inserted points before it
    dwell = np.where(vertex, dwell_r, 0.0).astype(float)
    line = line.astype(int)
    kind = kind.astype(int)
    base_inv = robot.base.inv()
    Pb = P @ base_inv.R.T + base_inv.t
    Rb = base_inv.R @ np.asarray(tool_rotation, float)
    kin = robot.kinematics
    lim = robot.limits
    n = len(P)
    Q = np.empty((n, len(lim.lower)))
    T0 = SE3.Rt(Rb, Pb[0])
    q = kin.ik(T0, np.asarray(q_start, float), search=True)
    if q is None:
        raise KinematicsError(
            f"line {line[0]}: the start point {_mm(P[0])} (world) is out of reach of robot "
            f"'{robot.name}' with the tool axis as configured",
            field="program",
        )
    for i in range(n):
        q, err = newton_ik(kin, q, Pb[i], Rb)
        if err > 1e-5:
            sol = kin.ik(SE3.Rt(Rb, Pb[i]), q, search=False)
            if sol is None:
                raise KinematicsError(
                    f"line {line[i]}: point {_mm(P[i])} (world) is out of reach of robot "
                    f"'{robot.name}'",
                    field="program",
                )
            q = sol
        bad = np.nonzero((q < lim.lower - 1e-9) | (q > lim.upper + 1e-9))[0]
        if bad.size:
            j = int(bad[0])
            raise KinematicsError(
                f"line {line[i]}: point {_mm(P[i])} (world) needs joint {j + 1} at "
                f"{math.degrees(q[j]):.1f} deg, outside its limits "
                f"[{math.degrees(lim.lower[j]):.1f}, {math.degrees(lim.upper[j]):.1f}] deg",
                field="program",
            )
        if kin.manipulability(q) < min_manipulability:
            raise KinematicsError(
                f"line {line[i]}: point {_mm(P[i])} (world) is too close to a singularity "
                f"(manipulability {kin.manipulability(q):.2g})",
                field="program",
            )
        Q[i] = q
    # joint speed check: |dq/ds| * v <= vmax
    ds = np.linalg.norm(np.diff(P, axis=0), axis=1)
    dq = np.abs(np.diff(Q, axis=0)) / np.maximum(ds, 1e-12)[:, None]
    v_joint = np.min(lim.velocity[None, :] / np.maximum(dq, 1e-12), axis=1)  # per segment
    limit_joint = np.argmin(lim.velocity[None, :] / np.maximum(dq, 1e-12), axis=1)
    seg_feed = feeds[1:]
    capped = np.minimum(seg_feed, v_joint)
    feed_limits: list[FeedLimit] = []
    slow = np.nonzero(capped < seg_feed * (1 - 1e-9))[0]
    seen: dict[int, FeedLimit] = {}
    for k in slow:
        ln = int(line[k + 1])
        if kind[k + 1] != FEED:
            continue
        fl = FeedLimit(ln, float(seg_feed[k]), float(capped[k]), int(limit_joint[k]) + 1)
        if ln not in seen or fl.achievable < seen[ln].achievable:
            seen[ln] = fl
    feed_limits = [seen[k] for k in sorted(seen)]
    vlim = np.empty(n)
    vlim[0] = 0.0
    vlim[1:] = capped  # the speed at point i is limited by the segment ending there ...
    vlim[:-1] = np.minimum(vlim[:-1], np.concatenate(([np.inf], capped[1:])))  # ... and after
    vlim[0] = 0.0
    corner = _corner_speeds(P, max_acceleration, corner_tolerance)
    vlim = np.minimum(vlim, np.where(vertex, corner, np.inf))
    vlim[dwell > 0] = 0.0
    # where the motion kind changes (rapid <-> feed) stop, as a CNC does between G0 and G1
    change = np.nonzero(np.diff(kind) != 0)[0]
    vlim[change] = 0.0
    vlim[-1] = 0.0
    v = vlim.copy()
    a2 = 2 * max_acceleration
    for i in range(n - 2, -1, -1):
        v[i] = min(v[i], math.sqrt(v[i + 1] ** 2 + a2 * ds[i]))
    for i in range(1, n):
        v[i] = min(v[i], math.sqrt(v[i - 1] ** 2 + a2 * ds[i - 1]))
    s = np.concatenate(([0.0], np.cumsum(ds)))
    # time of each segment: accelerate from v0 to the peak speed, cruise, decelerate to v1
    # (the peak is the segment's speed limit or, on a short segment, where the ramps meet)
    a = max_acceleration
    v0, v1 = v[:-1], v[1:]
    vp = np.minimum(
        np.maximum(capped, np.maximum(v0, v1)), np.sqrt(0.5 * (2 * a * ds + v0**2 + v1**2))
    )
    vp = np.maximum(vp, np.maximum(v0, v1))
    cruise = np.maximum(ds - (2 * vp**2 - v0**2 - v1**2) / (2 * a), 0.0)
    dt = (2 * vp - v0 - v1) / a + np.where(vp > 1e-12, cruise / np.maximum(vp, 1e-12), 0.0)
    t = dwell[0] + np.concatenate(([0.0], np.cumsum(dt + dwell[1:])))
    return ToolpathPlan(
        points=P,
        s=s,
        speed=v,
        line=line,
        kind=kind,
        spindle_rpm=rpm.astype(float),
        q=Q,
        dwell=dwell,
        t=t,
        R=np.asarray(tool_rotation, float),
        feed_limits=feed_limits,
        max_acceleration=max_acceleration,
        segment_speed=np.concatenate(([0.0], capped)),
    )


def _mm(p: np.ndarray) -> str:
    return "(" + ", ".join(f"{x * 1e3:.1f}" for x in p) + ") mm"
