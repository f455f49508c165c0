"""Interface profiles: the timing contract of real robot interfaces.

A profile fixes the control rate, the command modes the interface accepts and its failure rule.
A :class:`TimingMonitor` is fed one outcome per control period (``ok``, ``late`` or ``missed``)
and reports the first time the rule trips, plus how close the session came to it.

Sources (see docs/bridge-profiles.md):

* UR e-Series RTDE: 500 Hz (CB3: 125 Hz), Universal Robots "Real-Time Data Exchange (RTDE)
  Guide"; input watchdog via URScript ``rtde_set_watchdog(variable, min_frequency, action)``.
* Franka FCI: 1 kHz, libfranka documentation ("Real-time commands"; the
  ``communication_constraints_violation`` reflex when too many consecutive packets are lost).
* KUKA RSI: 4 ms IPO cycle (12 ms on older controllers), KUKA.RobotSensorInterface manual; the
  ETHERNET object's limit on consecutive late packets (plus a percentage limit).
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from robocell.errors import BridgeError

OUTCOMES = ("ok", "late", "missed")


@dataclass(frozen=True)
class InterfaceProfile:
    """The timing contract of one robot interface.

    Args:
        name: profile key (``--profile``).
        title: human name.
        rate_hz: control rate [Hz].
        command_modes: the command modes the interface accepts.
        max_consecutive_misses: fault when this many consecutive periods have no on-time command
            (late ones count as lost); None: no such rule.
        late_limit: fault when the counter of consecutive late or missed packets reaches this;
            None: no such rule.
        watchdog_s: fault when no command has arrived for this long [s]; None: no such rule.
        fault: the fault's name, as the real interface reports it.
        sources: where the numbers come from.
    """

    name: str
    title: str
    rate_hz: float
    command_modes: tuple[str, ...]
    max_consecutive_misses: int | None
    late_limit: int | None
    watchdog_s: float | None
    fault: str
    sources: tuple[str, ...] = ()

    @property
    def period(self) -> float:
        """Control period [s]."""
        return 1.0 / self.rate_hz

    @property
    def watchdog_periods(self) -> int | None:
        """The watchdog as a whole number of periods (exact, no float drift): the first period
        count that covers ``watchdog_s``."""
        if self.watchdog_s is None:
            return None
        return max(1, math.ceil(self.watchdog_s * self.rate_hz - 1e-9))


_UR_SOURCES = (
    "Universal Robots, Real-Time Data Exchange (RTDE) Guide: 500 Hz on e-Series, 125 Hz on CB3",
    "URScript manual: rtde_set_watchdog(variable_name, min_frequency, action='pause'|'stop')",
)

PROFILES: dict[str, InterfaceProfile] = {
    p.name: p
    for p in (
        InterfaceProfile(
            name="ur_rtde",
            title="Universal Robots e-Series RTDE (servoj / speedj)",
            rate_hz=500.0,
            command_modes=("position", "velocity"),
            max_consecutive_misses=None,
            late_limit=None,
            watchdog_s=0.1,  # rtde_set_watchdog with min_frequency 10 Hz, action stop
            fault="rtde_watchdog",
            sources=_UR_SOURCES,
        ),
        InterfaceProfile(
            name="ur_rtde_cb3",
            title="Universal Robots CB3 RTDE (servoj / speedj)",
            rate_hz=125.0,
            command_modes=("position", "velocity"),
            max_consecutive_misses=None,
            late_limit=None,
            watchdog_s=0.1,
            fault="rtde_watchdog",
            sources=_UR_SOURCES,
        ),
        InterfaceProfile(
            name="franka_fci",
            title="Franka Control Interface (libfranka), 1 kHz",
            rate_hz=1000.0,
            command_modes=("position", "velocity", "torque"),
            max_consecutive_misses=20,
            late_limit=None,
            watchdog_s=None,
            fault="communication_constraints_violation",
            sources=(
                "libfranka documentation: real-time commands at 1 kHz; the robot stops with "
                "communication_constraints_violation after too many consecutive lost packets "
                "(20)",
            ),
        ),
        InterfaceProfile(
            name="kuka_rsi",
            title="KUKA RobotSensorInterface (RSI), 4 ms",
            rate_hz=250.0,
            command_modes=("position",),
            max_consecutive_misses=None,
            late_limit=100,
            watchdog_s=None,
            fault="rsi_timeout",
            sources=(
                "KUKA.RobotSensorInterface manual: 4 ms IPO_FAST cycle (12 ms IPO), IPOC echo",
                "KUKA.Ethernet RSI XML manual: ETHERNET object limit on consecutive late packets "
                "(maxLatePackages; default taken as 100) and on their percentage",
            ),
        ),
    )
}


def get_profile(name: str) -> InterfaceProfile:
    """The profile named ``name``; an unknown name is an error naming the known ones."""
    p = PROFILES.get(name)
    if p is None:
        near = difflib.get_close_matches(name, PROFILES, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise BridgeError(
            f"unknown interface profile '{name}'{hint} (known: {', '.join(PROFILES)})",
            exit_code=2,
        )
    return p


class TimingMonitor:
    """Judges a session period by period against a profile's failure rule."""

    def __init__(self, profile: InterfaceProfile) -> None:
        self.profile = profile
        self.periods = 0
        self.counts: Counter[str] = Counter()
        self.consecutive_misses = 0  # periods without an on-time command
        self.max_consecutive_misses = 0
        self.late_counter = 0  # consecutive late or missed packets (RSI)
        self.late_counter_max = 0
        self.stale = 0  # consecutive periods without any command (watchdog)
        self.stale_max = 0
        self.faulted = False
        self.fault: str | None = None
        self.fault_period: int | None = None

    def period(self, outcome: str) -> str | None:
        """Feed one period's outcome; the fault name the first time a rule trips, else None."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self.periods += 1
        self.counts[outcome] += 1
        ok = outcome == "ok"
        self.consecutive_misses = 0 if ok else self.consecutive_misses + 1
        self.max_consecutive_misses = max(self.max_consecutive_misses, self.consecutive_misses)
        self.late_counter = 0 if ok else self.late_counter + 1
        self.late_counter_max = max(self.late_counter_max, self.late_counter)
        self.stale = self.stale + 1 if outcome == "missed" else 0
        self.stale_max = max(self.stale_max, self.stale)
        if self.faulted:
            return None
        p = self.profile
        tripped = (
            (
                p.max_consecutive_misses is not None
                and self.consecutive_misses >= p.max_consecutive_misses
            )
            or (p.late_limit is not None and self.late_counter >= p.late_limit)
            or (p.watchdog_periods is not None and self.stale >= p.watchdog_periods)
        )
        if tripped:
            self.faulted = True
            self.fault = p.fault
            self.fault_period = self.periods
            return p.fault
        return None

    def report(self) -> dict[str, Any]:
        """Counts, and for each rule of the profile its limit and the share of it reached."""
        p = self.profile
        out: dict[str, Any] = {
            "profile": p.name,
            "periods": self.periods,
            "ok": self.counts["ok"],
            "late": self.counts["late"],
            "missed": self.counts["missed"],
            "max_consecutive_misses": self.max_consecutive_misses,
            "late_counter_max": self.late_counter_max,
            "faulted": self.faulted,
            "fault": self.fault,
            "fault_period": self.fault_period,
        }
        if p.max_consecutive_misses is not None:
            out["consecutive_miss_limit"] = p.max_consecutive_misses
            out["consecutive_miss_margin"] = self.max_consecutive_misses / p.max_consecutive_misses
        if p.late_limit is not None:
            out["late_limit"] = p.late_limit
            out["late_margin"] = self.late_counter_max / p.late_limit
        if p.watchdog_periods is not None:
            out["watchdog_periods"] = p.watchdog_periods
            out["watchdog_margin"] = self.stale_max / p.watchdog_periods
        return out
