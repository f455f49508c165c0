"""Play planned moves one after another, the way a robot controller does: a move starts when the
previous one has been commanded to its end *and* the robot is in position (within a tolerance),
so cycle times include settling, and a robot that lags is waited for rather than run over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from robocell.control.controller import Marker
from robocell.robot.interface import JointCommand


class Segment(Protocol):
    duration: float

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class Hold:
    """Stand still at ``q`` for ``duration`` [s] (a dwell)."""

    def __init__(self, q: np.ndarray, duration: float) -> None:
        self.q = np.asarray(q, float)
        self.duration = float(duration)
        self._zero = np.zeros_like(self.q)

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.q, self._zero, self._zero


class MoveSequencer:
    """Runs ``approach`` once, then ``cycle`` ``cycles`` times, with in-position checks.

    Args:
        approach: segments from the start pose to the cycle's start.
        cycle: segments of one cycle (ending where the cycle began).
        cycles: number of cycles.
        in_position_tol: largest joint error [rad] that counts as in position.
        settle_timeout: how long [s] to wait for in-position after a move before moving on
            anyway (reported as a ``not_in_position`` marker).

    Each completed cycle yields a ``cycle`` marker whose ``cycle_time_s`` is the measured time
    from the end of the previous cycle (or of the approach) to the in-position of this one.
    """

    def __init__(
        self,
        approach: Sequence[Segment],
        cycle: Sequence[Segment],
        cycles: int,
        in_position_tol: float = 1e-3,
        settle_timeout: float = 2.0,
    ) -> None:
        self.segments = list(approach) + list(cycle) * cycles
        self.n_approach = len(approach)
        self.per_cycle = len(cycle)
        self.cycles = cycles if cycle else 0
        self.tol = in_position_tol
        self.settle_timeout = settle_timeout
        self._goals = [np.asarray(s.sample(s.duration)[0], float) for s in self.segments]
        self.index = 0
        self._seg_t0 = 0.0
        self._cycle_t0: float | None = None
        self.cycles_done = 0
        self.cycle_times: list[float] = []
        self.done = not self.segments

    @property
    def planned_cycle_time(self) -> float:
        """Commanded duration of one cycle [s] (without settling)."""
        start = self.n_approach
        return float(sum(s.duration for s in self.segments[start : start + self.per_cycle]))

    def start(self, t: float) -> None:
        self._seg_t0 = t
        if self.n_approach == 0:
            self._cycle_t0 = t

    def step(self, t: float, q: np.ndarray) -> tuple[JointCommand, list[Marker]]:
        """The command for time ``t`` [s] given measured joints ``q``; markers of the tick."""
        markers: list[Marker] = []
        while not self.done:
            seg = self.segments[self.index]
            tau = t - self._seg_t0
            if tau < seg.duration:
                break
            err = float(np.max(np.abs(q - self._goals[self.index])))
            late = tau - seg.duration
            if err > self.tol and late < self.settle_timeout:
                break  # commanded to the goal, waiting for the robot to settle
            if err > self.tol:
                markers.append(Marker("not_in_position", {"segment": self.index, "error_rad": err}))
            self._advance(t, markers)
        seg = self.segments[min(self.index, len(self.segments) - 1)] if self.segments else None
        if seg is None:
            return JointCommand.position(q), markers
        if self.done:
            return JointCommand.position(self._goals[-1]), markers
        qd, dqd, _ = seg.sample(min(t - self._seg_t0, seg.duration))
        return JointCommand.position(qd, dqd), markers

    def _advance(self, t: float, markers: list[Marker]) -> None:
        i = self.index
        if i == self.n_approach - 1:
            self._cycle_t0 = t
        elif i >= self.n_approach and (i - self.n_approach + 1) % self.per_cycle == 0:
            assert self._cycle_t0 is not None
            ct = t - self._cycle_t0
            self.cycle_times.append(ct)
            self.cycles_done += 1
            markers.append(
                Marker("cycle", {"index": self.cycles_done, "cycle_time_s": round(ct, 9)})
            )
            self._cycle_t0 = t
        self.index += 1
        self._seg_t0 = t
        if self.index >= len(self.segments):
            self.done = True
            self.index = len(self.segments) - 1
