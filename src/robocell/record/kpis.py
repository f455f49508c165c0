"""Motion KPIs, accumulated batch by batch (constant memory, vectorised: the run loop only
copies samples into a buffer; this module reduces a full buffer at once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robocell.robot.library import JointLimits


@dataclass
class MotionKpis:
    """Running motion figures of one robot.

    Fed with blocks of control-tick samples: measured ``q`` [rad], ``dq`` [rad/s], ``tau``
    [N·m], the applied position target ``q_cmd`` [rad] (NaN when not in position mode) and the
    TCP position [m], each of shape (k, n) or (k, 3).
    """

    name: str
    limits: JointLimits
    dt: float  # control period [s]
    energy_j: float = 0.0
    peak_speed_share: float = 0.0
    peak_torque_share: float = 0.0
    peak_speed_joint: int = 0
    peak_torque_joint: int = 0
    err_sq_sum: float = 0.0
    err_max: float = 0.0
    err_count: int = 0
    path_length_m: float = 0.0
    measured_violations: int = 0
    _last_tcp: np.ndarray | None = None
    _violating: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._violating = np.zeros(len(self.limits.velocity), dtype=bool)

    def update(
        self, q: np.ndarray, dq: np.ndarray, tau: np.ndarray, q_cmd: np.ndarray, tcp: np.ndarray
    ) -> None:
        """Add a block of k samples (rows in time order)."""
        if len(q) == 0:
            return
        lim = self.limits
        self.energy_j += float(np.abs(np.einsum("ij,ij->i", tau, dq)).sum()) * self.dt
        sv = np.abs(dq) / lim.velocity
        st = np.abs(tau) / lim.effort
        i, j = np.unravel_index(int(sv.argmax()), sv.shape)
        if sv[i, j] > self.peak_speed_share:
            self.peak_speed_share, self.peak_speed_joint = float(sv[i, j]), int(j)
        i, j = np.unravel_index(int(st.argmax()), st.shape)
        if st[i, j] > self.peak_torque_share:
            self.peak_torque_share, self.peak_torque_joint = float(st[i, j]), int(j)
        err = np.abs(q_cmd - q).max(axis=1)
        err = err[np.isfinite(err)]
        if err.size:
            self.err_sq_sum += float(err @ err)
            self.err_count += int(err.size)
            self.err_max = max(self.err_max, float(err.max()))
        # measured excursions beyond the limits (1 mrad / 2 % tolerance for solver noise),
        # counted as episodes: a joint that starts violating
        bad = (q < lim.lower - 1e-3) | (q > lim.upper + 1e-3) | (sv > 1.02)
        prev = np.vstack([self._violating[None, :], bad[:-1]])
        self.measured_violations += int(np.count_nonzero(bad & ~prev))
        self._violating = bad[-1].copy()
        pts = tcp if self._last_tcp is None else np.vstack([self._last_tcp[None, :], tcp])
        self.path_length_m += float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        self._last_tcp = tcp[-1].copy()

    def summary(self, clamp_episodes: int) -> dict[str, Any]:
        rms = np.sqrt(self.err_sq_sum / self.err_count) if self.err_count else 0.0
        return {
            "path_length_m": self.path_length_m,
            "tracking_error_rms_rad": float(rms),
            "tracking_error_max_rad": self.err_max,
            "peak_joint_speed_share": self.peak_speed_share,
            "peak_joint_speed_joint": self.peak_speed_joint + 1,
            "peak_torque_share": self.peak_torque_share,
            "peak_torque_joint": self.peak_torque_joint + 1,
            "energy_j": self.energy_j,
            "limit_violations": clamp_episodes + self.measured_violations,
            "limit_clamps": clamp_episodes,
        }
