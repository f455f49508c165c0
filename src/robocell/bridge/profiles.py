"""Interface profiles: the timing contract of real robot interfaces.

A profile fixes the control rate, the command modes the interface accepts and its failure rule.
A :class:`TimingMonitor` is fed one outcome per control period (``ok``, ``late`` or ``missed``),
reports the first time the rule trips, and how close a session came to it. Pure Python: the
bridge's session layer (:mod:`robocell.bridge.server`) decides what an outcome is and stops the
robot on a fault.

Sources (details, and what is our own choice, in docs/bridge-profiles.md):

* UR RTDE: 500 Hz on e-Series, 125 Hz on CB3 -- Universal Robots Client Library PR #85 ("the
  maximum frequency (i.e. 125 or 500)",
  https://github.com/UniversalRobots/Universal_Robots_Client_Library/pull/85) and the ur_rtde
  examples ("500Hz for e-Series ... 125Hz for the CB-series", https://sdurobotics.gitlab.io/ur_rtde/).
  Input watchdog: URScript ``rtde_set_watchdog(variable_name, min_frequency, action='pause')``,
  actions "ignore", "pause", "stop" (URScript manual,
  https://www.universal-robots.com/manuals/EN/HTML/SW5_19/Content/prod-scriptmanual/G5/rtde_set_watchdog_variable_name.htm).
  Default 10 Hz (0.1 s), as ur_rtde's ``RTDEControlInterface::setWatchdog(double min_frequency =
  10.0)``, whose default action shuts the control down.
* Franka FCI: 1 kHz real-time loop (https://frankaemika.github.io/docs/libfranka.html); a command
  packet that misses the 1 ms budget is dropped by FCI, "After 20 dropped packets, your robot will
  stop" (Franka docs, Minimum system and network requirements,
  https://frankaemika.github.io/docs/requirements.html; the same page also says "more than 20 ...
  in a row"); the reflex is ``communication_constraints_violation``.
* KUKA RSI: 4 ms cycle (IPO_FAST; 12 ms in IPO mode), the IPOC timestamp echoed in every answer;
  an unmatched IPOC increments a counter and RSI stops when it reaches the ETHERNET object's
  ``Timeout`` parameter, default 100 (ros-industrial kuka_experimental,
  kuka_rsi_hw_interface/krl/KR_C4/README.md, https://github.com/ros-industrial/kuka_experimental;
  kroshu/kuka_drivers wiki 2_KSS_RSI for the 4 ms / 12 ms cycles). Whether the counter is
  consecutive or cumulative is not stated in the sources we found: we count consecutively by
  default (``late_counting``), and offer the cumulative rule.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from robocell.errors import BridgeError

#: what happened in one control period (see :meth:`TimingMonitor.period`)
OUTCOMES = ("ok", "late", "missed")
#: command modes a profile may accept
COMMAND_MODES = ("position", "velocity", "torque")
#: how an RSI-style late counter counts: reset by an on-time answer, or never
LATE_COUNTING = ("consecutive", "cumulative")


def _bad(message: str) -> BridgeError:
    return BridgeError(message, exit_code=2)


def _check_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(f"{name} must be a whole number >= 1 or None, got {value!r}")


@dataclass(frozen=True)
class InterfaceProfile:
    """The timing contract of one robot interface.

    Args:
        name: profile key (``--profile``), e.g. ``franka_fci``.
        title: human name.
        rate_hz: control rate [Hz].
        command_modes: the command modes the interface accepts, a subset of
            :data:`COMMAND_MODES`.
        max_consecutive_misses: fault when this many consecutive periods have no on-time command
            (late ones count as lost, as FCI drops them); None: no such rule.
        late_limit: fault when the counter of late or missed answers reaches this (RSI's ETHERNET
            ``Timeout``); None: no such rule.
        watchdog_s: fault when no command at all has arrived for this long [s] (an RTDE input
            watchdog of ``1 / watchdog_s`` Hz); None: no such rule.
        fault: the fault name the bridge reports when a rule trips.
        sources: where the numbers come from.
        late_counting: ``consecutive`` (an on-time answer resets the late counter) or
            ``cumulative`` (it never resets during a session).
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
    late_counting: str = "consecutive"

    def __post_init__(self) -> None:
        if not (isinstance(self.rate_hz, (int, float)) and math.isfinite(self.rate_hz)):
            raise _bad(
                f"profile '{self.name}': rate_hz must be a finite number, got {self.rate_hz!r}"
            )
        if self.rate_hz <= 0:
            raise _bad(f"profile '{self.name}': rate_hz must be > 0 Hz, got {self.rate_hz}")
        modes = tuple(self.command_modes)
        unknown = [m for m in modes if m not in COMMAND_MODES]
        if not modes or unknown:
            raise _bad(
                f"profile '{self.name}': command_modes must be a non-empty subset of "
                f"{COMMAND_MODES}, got {modes!r}"
            )
        object.__setattr__(self, "command_modes", modes)
        object.__setattr__(self, "sources", tuple(self.sources))
        _check_count(f"profile '{self.name}': max_consecutive_misses", self.max_consecutive_misses)
        _check_count(f"profile '{self.name}': late_limit", self.late_limit)
        wd = self.watchdog_s
        if wd is not None and not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd > 0):
            raise _bad(f"profile '{self.name}': watchdog_s must be > 0 s or None, got {wd!r}")
        if self.late_counting not in LATE_COUNTING:
            raise _bad(
                f"profile '{self.name}': late_counting must be one of {LATE_COUNTING}, "
                f"got {self.late_counting!r}"
            )

    @property
    def period(self) -> float:
        """Control period [s]."""
        return 1.0 / self.rate_hz

    @property
    def watchdog_periods(self) -> int | None:
        """The watchdog as a whole number of periods: the first count of command-less periods
        that covers ``watchdog_s`` (``ceil(watchdog_s * rate_hz)``, computed on the decimal
        values as written, so 0.1 s at 500 Hz is exactly 50 and at 125 Hz is 13)."""
        if self.watchdog_s is None:
            return None
        exact = Fraction(repr(float(self.watchdog_s))) * Fraction(repr(float(self.rate_hz)))
        return max(1, math.ceil(exact))


_UR_SOURCES = (
    "Universal Robots Client Library PR #85: RTDE maximum frequency 125 Hz (CB3) or 500 Hz "
    "(e-Series) https://github.com/UniversalRobots/Universal_Robots_Client_Library/pull/85",
    "URScript manual, rtde_set_watchdog(variable_name, min_frequency, action='pause'), actions "
    "ignore/pause/stop https://www.universal-robots.com/manuals/EN/HTML/SW5_19/Content/"
    "prod-scriptmanual/G5/rtde_set_watchdog_variable_name.htm",
    "ur_rtde RTDEControlInterface::setWatchdog(double min_frequency = 10.0), default action "
    "stops the control https://sdurobotics.gitlab.io/ur_rtde/",
)

PROFILES: dict[str, InterfaceProfile] = {
    p.name: p
    for p in (
        InterfaceProfile(
            name="ur_rtde",
            title="Universal Robots e-Series RTDE (servoj / speedj), 500 Hz",
            rate_hz=500.0,
            command_modes=("position", "velocity"),
            max_consecutive_misses=None,
            late_limit=None,
            watchdog_s=0.1,  # rtde_set_watchdog at 10 Hz (ur_rtde's default), action stop
            fault="rtde_watchdog",
            sources=_UR_SOURCES,
        ),
        InterfaceProfile(
            name="ur_rtde_cb3",
            title="Universal Robots CB3 RTDE (servoj / speedj), 125 Hz",
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
                "libfranka: real-time commands in 1 kHz control loops "
                "https://frankaemika.github.io/docs/libfranka.html",
                "Franka docs, Minimum system and network requirements: a packet over the 1 ms "
                "budget is dropped; 'After 20 dropped packets, your robot will stop' "
                "https://frankaemika.github.io/docs/requirements.html",
                "Polymetis troubleshooting: the error follows 20 steps in a row without a command "
                "https://facebookresearch.github.io/fairo/polymetis/troubleshooting.html",
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
                "ros-industrial kuka_experimental, kuka_rsi_hw_interface/krl/KR_C4/README.md: "
                "250 Hz (4 ms), IPOC echo, ETHERNET object 'Timeout' default 100 "
                "https://github.com/ros-industrial/kuka_experimental",
                "kroshu/kuka_drivers wiki 2_KSS_RSI: RSI cycle 4 ms or 12 ms "
                "https://github.com/kroshu/kuka_drivers/wiki",
                "consecutive or cumulative counting is not documented in these sources; see "
                "https://github.com/ros-industrial/kuka_experimental/issues/71",
            ),
            late_counting="consecutive",  # not stated by the sources: our documented choice
        ),
    )
}


def get_profile(name: str) -> InterfaceProfile:
    """The profile named ``name``.

    Raises:
        BridgeError: (exit code 2) for an unknown name; the message lists the known profiles
            and suggests the nearest one.
    """
    p = PROFILES.get(name)
    if p is None:
        near = difflib.get_close_matches(name, list(PROFILES), n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise _bad(f"unknown interface profile '{name}'{hint} (known: {', '.join(PROFILES)})")
    return p


class TimingMonitor:
    """Judges a session period by period against a profile's failure rule.

    Fed once per control period with what happened in it. With ``profile=None`` it only counts
    (no rule, never faults).

    Attributes:
        faulted: whether a rule has tripped.
        fault: the fault name, once tripped, else None.
        fault_period: the 1-based period in which the rule tripped, else None.
    """

    def __init__(self, profile: InterfaceProfile | None) -> None:
        self.profile = profile
        self.periods = 0
        self.counts: Counter[str] = Counter()
        self.consecutive_misses = 0  # periods in a row without an on-time command
        self.max_consecutive_misses = 0
        self.late_counter = 0  # RSI counter of unmatched answers (consecutive or cumulative)
        self.late_counter_max = 0
        self.stale = 0  # periods in a row without any command (watchdog)
        self.stale_max = 0
        self.faulted = False
        self.fault: str | None = None
        self.fault_period: int | None = None

    def period(self, outcome: str) -> str | None:
        """Feed one period's outcome.

        Args:
            outcome: ``ok`` (a fresh command arrived in time), ``late`` (one arrived after the
                period's deadline: used, but late) or ``missed`` (no new command).

        Returns:
            The profile's fault name the first time a rule trips, else None. After a fault the
            monitor keeps counting and returns None (the session layer stops the robot).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        self.periods += 1
        self.counts[outcome] += 1
        ok = outcome == "ok"
        # FCI drops a packet that misses the 1 ms budget: late counts as lost
        self.consecutive_misses = 0 if ok else self.consecutive_misses + 1
        self.max_consecutive_misses = max(self.max_consecutive_misses, self.consecutive_misses)
        # RSI: a late answer echoes an old IPOC, a missing one none: both are unmatched
        cumulative = self.profile is not None and self.profile.late_counting == "cumulative"
        if not ok:
            self.late_counter += 1
        elif not cumulative:
            self.late_counter = 0
        self.late_counter_max = max(self.late_counter_max, self.late_counter)
        # the RTDE watchdog waits for an input update; a late one is still an update
        self.stale = self.stale + 1 if outcome == "missed" else 0
        self.stale_max = max(self.stale_max, self.stale)
        p = self.profile
        if self.faulted or p is None:
            return None
        watchdog = p.watchdog_periods
        tripped = (
            (p.max_consecutive_misses is not None
             and self.consecutive_misses >= p.max_consecutive_misses)
            or (p.late_limit is not None and self.late_counter >= p.late_limit)
            or (watchdog is not None and self.stale >= watchdog)
        )  # fmt: skip
        if not tripped:
            return None
        self.faulted = True
        self.fault = p.fault
        self.fault_period = self.periods
        return p.fault

    def report(self) -> dict[str, Any]:
        """A JSON-able summary: counts, and for each rule of the profile its limit and its
        margin, the share of the limit the session reached (1.0 or more: the rule tripped)."""
        p = self.profile
        out: dict[str, Any] = {
            "profile": p.name if p is not None else None,
            "periods": self.periods,
            "ok": self.counts["ok"],
            "late": self.counts["late"],
            "missed": self.counts["missed"],
            "max_consecutive_misses": self.max_consecutive_misses,
            "late_counter_max": self.late_counter_max,
            "max_stale_periods": self.stale_max,
            "faulted": self.faulted,
            "fault": self.fault,
            "fault_period": self.fault_period,
        }
        if p is None:
            return out
        if p.max_consecutive_misses is not None:
            out["consecutive_miss_limit"] = p.max_consecutive_misses
            out["consecutive_miss_margin"] = self.max_consecutive_misses / p.max_consecutive_misses
        if p.late_limit is not None:
            out["late_limit"] = p.late_limit
            out["late_counting"] = p.late_counting
            out["late_margin"] = self.late_counter_max / p.late_limit
        watchdog = p.watchdog_periods
        if watchdog is not None:
            out["watchdog_s"] = p.watchdog_s
            out["watchdog_periods"] = watchdog
            out["watchdog_margin"] = self.stale_max / watchdog
        return out
