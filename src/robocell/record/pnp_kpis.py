"""Pick-and-place KPIs, reduced incrementally from the cell's events.

:class:`PnpKpis` is an event listener (``cell.event_listeners.append(kpis.on_event)``): it keeps
counters, the open activity interval of each robot, the parts in a gripper and one float per
completed cycle and per measured place error, so a run of hours costs kilobytes. ``summary``
does not change the state and can be called at any time (mid-run or at the end).

Definitions (all times are cell time [s]; ``T`` is the run duration given to ``summary``):

* **robots** taking part: every robot named in an ``activity``, ``picked`` (``by`` =
  ``"<robot>.gripper"``), ``pick_failed`` or ``grip_lost`` event. A robot is ``idle`` from t = 0
  until its first ``activity`` event; the state after its last event lasts until ``T``.
* **shares**: ``busy_s + idle_s + blocked_s = T`` per robot, ``*_share = *_s / T``; the cell's
  ``busy_share`` etc. are the means over the robots (so they also sum to 1).
* **cycle**: time between two consecutive ``placed`` events of the same robot (the robot is the
  one whose gripper picked the part). The first cycle of a robot starts at its first ``busy``
  activity event, or at t = 0 when it had none before its first placement. Placements of parts
  that no robot picked and the unfinished cycle at the end of the run are not cycles.
  Percentiles interpolate linearly between order statistics (numpy's default).
* **parts_picked**: ``picked`` events (successful grasps; a part grasped twice counts twice).
  **pick_attempts** = ``parts_picked`` + ``pick_failed`` events.
  **grasp_success_rate** = ``parts_picked / pick_attempts``;
  **pick_success_rate** = ``parts_placed / (parts_picked - parts_in_gripper)``: grasped parts
  that reached a station, of those whose fate is known (a part still on its way at the end of
  the run is not counted; a part lost from the gripper is a failure even if it is picked again).
* **throughput_per_h** = ``parts_placed / T * 3600``.
* **OEE** = availability × performance × quality, over robot time ``R = T × n_robots``
  (``n_robots`` ≥ 1) and the robots' total blocked time ``B``:

  - availability = ``(R − B) / R`` (idle time — starved of parts — counts as available);
  - performance = ``ideal_cycle_time_s × parts_placed / (R − B)``, capped at 1. The ideal cycle
    time is the one given (the scenario's), else the 5th percentile of the measured cycle times
    (``ideal_cycle_time_source`` says which): a robust "best demonstrated" cycle, so
    performance then measures the losses against the cell's own best pace;
  - quality = ``parts_placed / (parts_placed + parts_dropped)``.

  For a single robot, availability is ``(T − blocked) / T`` and performance
  ``ideal × placed / (T − blocked)``.
* **energy_per_part_j** = run energy / ``parts_placed``; **peak_torque_share** = max over robots.
* **place_error_mean_m / max_m**: over the ``placed`` events that carry ``error_m``.

Every value is an int, a float, a string or None (undefined: no cycle, no part, ``T`` = 0);
never NaN.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robocell.errors import RobocellError

#: The states of a robot in ``activity`` events.
ACTIVITY_STATES = ("busy", "idle", "blocked")


@dataclass
class _RobotActivity:
    state: str = "idle"
    since: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ACTIVITY_STATES, 0.0))
    events: int = 0
    cycle_start: float | None = None  # start of the current cycle [s]; None: not started
    placed: int = 0
    cycles: array = field(default_factory=lambda: array("d"))

    def seconds_until(self, t_end: float) -> dict[str, float]:
        """Time in each state from 0 to ``t_end`` [s], closing the open interval."""
        out = dict(self.seconds)
        out[self.state] += max(0.0, t_end - self.since)
        return out


def robot_of(by: str) -> str:
    """The robot of a gripper name: ``"r1.gripper"`` -> ``"r1"``."""
    return by.split(".", 1)[0]


def _none_if_nan(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def cycle_stats(cycles: np.ndarray) -> dict[str, float | int | None]:
    """Count, mean, p50, p95, min and max of cycle times [s] (None when there are none)."""
    keys = ("mean", "p50", "p95", "min", "max")
    if cycles.size == 0:
        return {"cycles": 0, **{f"cycle_time_{k}_s": None for k in keys}}
    p50, p95 = np.percentile(cycles, [50.0, 95.0])
    values = (cycles.mean(), p50, p95, cycles.min(), cycles.max())
    return {
        "cycles": int(cycles.size),
        **{f"cycle_time_{k}_s": float(v) for k, v in zip(keys, values)},
    }


class PnpKpis:
    """Pick-and-place KPIs fed one event at a time (see the module docstring for definitions)."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(
            ("spawned", "picked", "placed", "dropped", "missed", "pick_failed", "grip_lost"), 0
        )
        self.collisions = {"self": 0, "environment": 0}
        self.drops_by_reason: dict[str, int] = {}
        self._robots: dict[str, _RobotActivity] = {}
        self._holder: dict[int, str] = {}  # part id -> robot, while the part is in play
        self._errors = array("d")  # place errors [m]
        self.t_last = 0.0  # time of the latest event [s]

    def _robot(self, name: str) -> _RobotActivity:
        r = self._robots.get(name)
        if r is None:
            r = self._robots[name] = _RobotActivity()
        return r

    @property
    def robots(self) -> tuple[str, ...]:
        """Names of the robots seen so far, in order of appearance."""
        return tuple(self._robots)

    def cycle_times(self, robot: str | None = None) -> np.ndarray:
        """Completed cycle times [s] of one robot, or of all robots (concatenated)."""
        if robot is not None:
            return np.frombuffer(self._robots[robot].cycles, dtype=float).copy()
        parts = [np.frombuffer(r.cycles, dtype=float) for r in self._robots.values()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def on_event(self, ev: Mapping[str, Any]) -> None:
        """Account one cell event (``{"t": s, "kind": ..., ...}``); other kinds are ignored."""
        kind = ev.get("kind")
        t = float(ev.get("t", 0.0))
        self.t_last = max(self.t_last, t)
        if kind == "activity":
            state = ev["state"]
            if state not in ACTIVITY_STATES:
                raise RobocellError(
                    f"activity event of robot '{ev.get('robot')}' at t={t} has state "
                    f"'{state}'; valid states: {', '.join(ACTIVITY_STATES)}"
                )
            r = self._robot(str(ev["robot"]))
            r.seconds[r.state] += max(0.0, t - r.since)
            r.state, r.since = state, t
            r.events += 1
            if state == "busy" and r.cycle_start is None:
                r.cycle_start = t
        elif kind == "picked":
            self.counts["picked"] += 1
            name = robot_of(str(ev.get("by", "")))
            self._robot(name)
            self._holder[int(ev["part"])] = name
        elif kind == "placed":
            self.counts["placed"] += 1
            name = self._holder.pop(int(ev["part"]), None)
            if name is not None:
                r = self._robot(name)
                r.placed += 1
                start = 0.0 if r.cycle_start is None else r.cycle_start
                r.cycles.append(t - start)
                r.cycle_start = t
            err = ev.get("error_m")
            if err is not None and math.isfinite(float(err)):
                self._errors.append(float(err))
        elif kind == "dropped":
            self.counts["dropped"] += 1
            reason = str(ev.get("reason", ""))
            self.drops_by_reason[reason] = self.drops_by_reason.get(reason, 0) + 1
            self._holder.pop(int(ev["part"]), None)
        elif kind == "missed":
            self.counts["missed"] += 1
            self._holder.pop(int(ev["part"]), None)
        elif kind == "spawned":
            self.counts["spawned"] += 1
        elif kind == "pick_failed":
            self.counts["pick_failed"] += 1
            if ev.get("robot") is not None:
                self._robot(str(ev["robot"]))
        elif kind == "grip_lost":
            self.counts["grip_lost"] += 1
            self._holder.pop(int(ev["part"]), None)  # no longer on its way to a station
            if ev.get("robot") is not None:
                self._robot(str(ev["robot"]))
        elif kind == "collision":
            contact = ev.get("contact")
            if contact in self.collisions:
                self.collisions[contact] += 1

    def summary(
        self,
        duration_s: float,
        energy_j: float,
        robots: Mapping[str, Mapping[str, Any]],
        ideal_cycle_time_s: float | None = None,
    ) -> dict[str, Any]:
        """The pick-and-place KPIs of the run so far.

        Args:
            duration_s: run duration ``T`` [s] (cell time at the end).
            energy_j: mechanical energy of all robots over the run [J].
            robots: per-robot motion KPIs (``peak_torque_share`` and ``energy_j`` are read).
            ideal_cycle_time_s: ideal cycle time of one robot [s] for OEE performance; None:
                the 5th percentile of the measured cycle times.
        """
        T = float(duration_s)
        c = self.counts
        placed, picked, dropped = c["placed"], c["picked"], c["dropped"]
        attempts = picked + c["pick_failed"]
        cycles = self.cycle_times()

        per_robot: dict[str, dict[str, Any]] = {}
        blocked_total = 0.0
        share_sums = dict.fromkeys(ACTIVITY_STATES, 0.0)
        for name, r in self._robots.items():
            secs = r.seconds_until(T)
            blocked_total += secs["blocked"]
            shares = {s: _ratio(secs[s], T) for s in ACTIVITY_STATES}
            for s in ACTIVITY_STATES:
                share_sums[s] += shares[s] or 0.0
            rc = np.frombuffer(r.cycles, dtype=float)
            per_robot[name] = {
                "parts_placed": r.placed,
                "cycles": int(rc.size),
                "cycle_time_mean_s": float(rc.mean()) if rc.size else None,
                **{f"{s}_s": secs[s] for s in ACTIVITY_STATES},
                **{f"{s}_share": shares[s] for s in ACTIVITY_STATES},
                "activity_events": r.events,
            }
        n = len(self._robots)
        cell_shares = {
            f"{s}_share": (share_sums[s] / n if n and T > 0 else None) for s in ACTIVITY_STATES
        }

        if ideal_cycle_time_s is not None:
            ideal: float | None = float(ideal_cycle_time_s)
            source = "given"
        elif cycles.size:
            ideal = float(np.percentile(cycles, 5.0))
            source = "measured_p5"
        else:
            ideal, source = None, "none"
        robot_time = T * max(n, 1)
        available = robot_time - blocked_total
        availability = _ratio(available, robot_time)
        performance = (
            min(1.0, ideal * placed / available) if ideal is not None and available > 0 else None
        )
        quality = _ratio(placed, placed + dropped)
        factors = (availability, performance, quality)
        oee = None if None in factors else float(np.prod(factors))

        torque = [float(m["peak_torque_share"]) for m in robots.values()]
        errors = np.frombuffer(self._errors, dtype=float)
        out: dict[str, Any] = {
            "duration_s": T,
            "parts_spawned": c["spawned"],
            "parts_picked": picked,
            "parts_placed": placed,
            "parts_dropped": dropped,
            "parts_missed": c["missed"],
            "pick_attempts": attempts,
            "pick_failures": c["pick_failed"],
            "grasp_success_rate": _ratio(picked, attempts),
            "pick_success_rate": _ratio(placed, picked - len(self._holder)),
            "parts_in_gripper": len(self._holder),
            "grip_lost": c["grip_lost"],
            "drops_by_reason": dict(sorted(self.drops_by_reason.items())),
            "collisions": self.collisions["self"] + self.collisions["environment"],
            "collisions_self": self.collisions["self"],
            "collisions_environment": self.collisions["environment"],
            "throughput_per_h": _ratio(placed * 3600.0, T),
            **cycle_stats(cycles),
            **cell_shares,
            "energy_per_part_j": _ratio(float(energy_j), placed),
            "peak_torque_share": max(torque) if torque else None,
            "ideal_cycle_time_s": ideal,
            "ideal_cycle_time_source": source,
            "availability": availability,
            "performance": performance,
            "quality": quality,
            "oee": oee,
            "place_error_count": int(errors.size),
            "place_error_mean_m": float(errors.mean()) if errors.size else None,
            "place_error_max_m": float(errors.max()) if errors.size else None,
            "robots": per_robot,
        }
        return _finite(out)


def _finite(x: Any) -> Any:
    """Replace any non-finite float by None (recursively), so the KPIs are strict JSON."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, float):
        return _none_if_nan(x)
    return x


__all__ = ["ACTIVITY_STATES", "PnpKpis", "cycle_stats", "robot_of"]
