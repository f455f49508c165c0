"""Interface profiles: each failure rule trips at exactly its limit, and the report's margins."""

from __future__ import annotations

import pytest

from robocell.bridge.profiles import PROFILES, TimingMonitor, get_profile
from robocell.errors import BridgeError


def _feed(mon: TimingMonitor, outcomes: list[str]) -> list[str | None]:
    return [mon.period(o) for o in outcomes]


def test_franka_faults_at_the_20th_consecutive_miss_not_the_19th():
    p = get_profile("franka_fci")
    assert p.rate_hz == 1000 and p.period == pytest.approx(0.001)
    mon = TimingMonitor(p)
    assert _feed(mon, ["ok"] + ["missed"] * 19 + ["ok"]) == [None] * 21
    assert not mon.faulted and mon.report()["consecutive_miss_margin"] == pytest.approx(0.95)
    # late packets count as lost: 10 late + 9 missed, then an ok resets
    assert _feed(mon, ["late"] * 10 + ["missed"] * 9 + ["ok"]) == [None] * 20
    got = _feed(mon, ["missed"] * 20)
    assert got[:19] == [None] * 19 and got[19] == "communication_constraints_violation"
    assert mon.faulted and mon.fault_period == 21 + 20 + 20
    assert mon.period("missed") is None  # reported once


def test_rsi_counts_consecutive_late_packets_to_its_limit():
    p = get_profile("kuka_rsi")
    assert p.period == pytest.approx(0.004) and p.command_modes == ("position",)
    mon = TimingMonitor(p)
    limit = p.late_limit
    assert limit is not None
    assert _feed(mon, ["late"] * (limit - 1) + ["ok"]) == [None] * limit
    got = _feed(mon, ["late", "missed"] * (limit // 2))
    assert got[-1] == "rsi_timeout" and got.count("rsi_timeout") == 1
    rep = mon.report()
    assert rep["late_counter_max"] == limit and rep["late_margin"] == pytest.approx(1.0)


@pytest.mark.parametrize(("name", "periods"), [("ur_rtde", 50), ("ur_rtde_cb3", 13)])
def test_ur_watchdog_trips_after_its_time_in_periods(name: str, periods: int):
    """0.1 s at 500 Hz is 50 periods; at 125 Hz, 12.5 periods: the 13th covers it."""
    p = get_profile(name)
    assert p.watchdog_periods == periods
    mon = TimingMonitor(p)
    # late commands still feed the watchdog (they are commands)
    assert _feed(mon, ["missed"] * (periods - 1) + ["late"]) == [None] * periods
    got = _feed(mon, ["missed"] * periods)
    assert got[:-1] == [None] * (periods - 1) and got[-1] == "rtde_watchdog"


def test_unknown_profile_suggests_the_nearest():
    with pytest.raises(BridgeError) as e:
        get_profile("franka")
    assert e.value.exit_code == 2 and "franka_fci" in str(e.value)
    assert set(PROFILES) == {"ur_rtde", "ur_rtde_cb3", "franka_fci", "kuka_rsi"}


def test_bad_outcome_is_refused():
    with pytest.raises(ValueError):
        TimingMonitor(get_profile("ur_rtde")).period("fine")
