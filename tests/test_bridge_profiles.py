"""Interface profiles: each failure rule trips at exactly its limit, and the report's margins."""

from __future__ import annotations

import dataclasses
import json

import pytest

from robocell.bridge.profiles import PROFILES, InterfaceProfile, TimingMonitor, get_profile
from robocell.errors import BridgeError

FRANKA_FAULT = "communication_constraints_violation"


def _feed(mon: TimingMonitor, outcomes: list[str]) -> list[str | None]:
    return [mon.period(o) for o in outcomes]


# -- Franka FCI: 20 consecutive lost packets -------------------------------------------------
def test_franka_19_consecutive_misses_do_not_fault():
    mon = TimingMonitor(get_profile("franka_fci"))
    assert _feed(mon, ["ok"] + ["missed"] * 19) == [None] * 20
    assert not mon.faulted and mon.fault is None and mon.fault_period is None


def test_franka_faults_at_exactly_the_20th_consecutive_miss():
    p = get_profile("franka_fci")
    assert p.rate_hz == 1000 and p.period == pytest.approx(0.001)
    mon = TimingMonitor(p)
    got = _feed(mon, ["ok"] + ["missed"] * 20)
    assert got[:20] == [None] * 20 and got[20] == FRANKA_FAULT
    assert mon.faulted and mon.fault == FRANKA_FAULT and mon.fault_period == 21


def test_franka_fresh_ok_resets_the_count():
    mon = TimingMonitor(get_profile("franka_fci"))
    # 19 + ok + 19 + ok + 19: 57 misses in all, never 20 in a row
    outcomes = (["missed"] * 19 + ["ok"]) * 2 + ["missed"] * 19
    assert _feed(mon, outcomes) == [None] * len(outcomes)
    assert mon.report()["max_consecutive_misses"] == 19


def test_franka_late_packets_count_as_lost():
    """FCI drops a packet that misses the 1 ms budget: late and missed make one run."""
    mon = TimingMonitor(get_profile("franka_fci"))
    got = _feed(mon, ["late"] * 10 + ["missed"] * 9 + ["late"])
    assert got[-1] == FRANKA_FAULT and got.count(FRANKA_FAULT) == 1


def test_after_a_fault_the_monitor_keeps_counting_and_reports_once():
    mon = TimingMonitor(get_profile("franka_fci"))
    _feed(mon, ["missed"] * 20)
    assert _feed(mon, ["missed", "ok", "missed"]) == [None, None, None]
    rep = mon.report()
    assert rep["periods"] == 23 and rep["missed"] == 22 and rep["ok"] == 1
    assert rep["fault_period"] == 20 and rep["faulted"] is True


# -- KUKA RSI: the ETHERNET object's late counter ------------------------------------------
def test_rsi_counts_late_and_missed_answers_to_its_limit():
    p = get_profile("kuka_rsi")
    assert p.period == pytest.approx(0.004) and p.command_modes == ("position",)
    assert p.late_limit == 100 and p.late_counting == "consecutive"
    mon = TimingMonitor(p)
    assert _feed(mon, ["late"] * 99 + ["ok"]) == [None] * 100  # 99 then reset
    got = _feed(mon, ["late", "missed"] * 50)  # unmatched IPOCs, late or absent, add up
    assert got[:99] == [None] * 99 and got[99] == "rsi_timeout"
    assert mon.fault_period == 200


def test_rsi_cumulative_counting_does_not_reset():
    p = dataclasses.replace(get_profile("kuka_rsi"), late_limit=5, late_counting="cumulative")
    mon = TimingMonitor(p)
    got = _feed(mon, ["late", "ok"] * 4 + ["missed"])
    assert got[:-1] == [None] * 8 and got[-1] == "rsi_timeout"
    # the same sequence under the consecutive rule never trips
    mon = TimingMonitor(dataclasses.replace(p, late_counting="consecutive"))
    assert _feed(mon, ["late", "ok"] * 4 + ["missed"]) == [None] * 9


# -- UR RTDE: the input watchdog, in whole periods ----------------------------------------
@pytest.mark.parametrize(
    ("name", "rate_hz", "periods"),
    [("ur_rtde", 500.0, 50), ("ur_rtde_cb3", 125.0, 13)],
    ids=["e-series-500Hz", "cb3-125Hz"],
)
def test_ur_watchdog_trips_at_the_first_period_count_covering_0_1_s(
    name: str, rate_hz: float, periods: int
):
    """0.1 s at 500 Hz is exactly 50 periods; at 125 Hz 12 periods are 96 ms, the 13th covers it."""
    p = get_profile(name)
    assert p.rate_hz == rate_hz and p.watchdog_s == 0.1 and p.watchdog_periods == periods
    assert (periods - 1) * p.period < p.watchdog_s <= periods * p.period + 1e-12
    mon = TimingMonitor(p)
    assert _feed(mon, ["ok"] + ["missed"] * (periods - 1)) == [None] * periods
    got = _feed(mon, ["missed"])
    assert got == ["rtde_watchdog"] and mon.fault_period == periods + 1


def test_ur_late_command_still_feeds_the_watchdog():
    """The RTDE watchdog waits for an input update; a late command is one."""
    p = get_profile("ur_rtde")
    n = p.watchdog_periods
    assert n is not None
    mon = TimingMonitor(p)
    assert _feed(mon, (["missed"] * (n - 1) + ["late"]) * 3) == [None] * (3 * n)


@pytest.mark.parametrize(
    ("watchdog_s", "rate_hz", "periods"),
    [(0.1, 500.0, 50), (0.07, 100.0, 7), (0.1, 125.0, 13), (0.002, 500.0, 1), (0.01, 125.0, 2)],
    ids=["0.1s@500", "0.07s@100", "0.1s@125", "one-period", "below-two"],
)
def test_watchdog_periods_are_exact(watchdog_s: float, rate_hz: float, periods: int):
    """No float drift: 0.07 * 100 is 7.000000000000001 in floating point, where a plain ceil
    would give 8 periods."""
    p = dataclasses.replace(get_profile("ur_rtde"), rate_hz=rate_hz, watchdog_s=watchdog_s)
    assert p.watchdog_periods == periods


# -- get_profile and validation -------------------------------------------------------------
def test_profiles_are_the_four_known():
    assert set(PROFILES) == {"ur_rtde", "ur_rtde_cb3", "franka_fci", "kuka_rsi"}
    for key, p in PROFILES.items():
        assert p.name == key and p.sources and p.fault
        assert set(p.command_modes) <= {"position", "velocity", "torque"}


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("franka", "franka_fci"), ("kuka_rsl", "kuka_rsi")]
)
def test_unknown_profile_names_the_known_and_suggests(typo: str, suggestion: str):
    with pytest.raises(BridgeError) as e:
        get_profile(typo)
    msg = str(e.value)
    assert e.value.exit_code == 2
    assert f"did you mean '{suggestion}'" in msg
    assert all(n in msg for n in PROFILES)


def test_unknown_profile_without_a_near_name_has_no_suggestion():
    with pytest.raises(BridgeError) as e:
        get_profile("abb_egm")
    assert "did you mean" not in str(e.value) and "kuka_rsi" in str(e.value)


@pytest.mark.parametrize(
    "change",
    [
        {"rate_hz": 0.0},
        {"command_modes": ("current",)},
        {"command_modes": ()},
        {"max_consecutive_misses": 0},
        {"late_limit": 2.5},
        {"watchdog_s": -0.1},
        {"late_counting": "sometimes"},
    ],
    ids=["rate", "mode", "no-mode", "misses", "late-limit", "watchdog", "counting"],
)
def test_a_bad_profile_is_refused(change: dict):
    with pytest.raises(BridgeError) as e:
        dataclasses.replace(get_profile("franka_fci"), **change)
    assert e.value.exit_code == 2


def test_bad_outcome_is_refused():
    with pytest.raises(ValueError, match="ok"):
        TimingMonitor(get_profile("ur_rtde")).period("fine")


# -- the report ----------------------------------------------------------------------------
def test_report_margins_are_the_share_of_each_limit():
    mon = TimingMonitor(get_profile("franka_fci"))
    _feed(mon, ["ok"] * 5 + ["missed"] * 9 + ["ok"] + ["late"] * 3 + ["ok"])
    rep = mon.report()
    assert rep["consecutive_miss_limit"] == 20
    assert rep["consecutive_miss_margin"] == pytest.approx(9 / 20)
    assert (rep["ok"], rep["late"], rep["missed"], rep["periods"]) == (7, 3, 9, 19)
    assert "late_margin" not in rep and "watchdog_margin" not in rep
    json.dumps(rep)

    mon = TimingMonitor(get_profile("kuka_rsi"))
    _feed(mon, ["late"] * 30 + ["ok"] + ["missed"] * 12)
    rep = mon.report()
    assert rep["late_counter_max"] == 30 and rep["late_margin"] == pytest.approx(0.30)
    assert rep["late_counting"] == "consecutive" and "consecutive_miss_margin" not in rep

    mon = TimingMonitor(get_profile("ur_rtde_cb3"))
    _feed(mon, ["ok"] + ["missed"] * 6 + ["late"] + ["missed"] * 2)
    rep = mon.report()
    assert rep["watchdog_periods"] == 13 and rep["max_stale_periods"] == 6
    assert rep["watchdog_margin"] == pytest.approx(6 / 13)
    assert rep["faulted"] is False and rep["fault"] is None


def test_every_profile_runs_clean_on_all_ok_and_faults_when_starved():
    for p in PROFILES.values():
        mon = TimingMonitor(p)
        assert _feed(mon, ["ok"] * 1000) == [None] * 1000
        rep = mon.report()
        margins = {k: v for k, v in rep.items() if k.endswith("_margin")}
        assert len(margins) == 1 and all(v == 0 for v in margins.values())
        faults = [f for f in _feed(mon, ["missed"] * 200) if f is not None]
        assert faults == [p.fault]
        assert mon.report()[next(iter(margins))] >= 1.0


def test_no_profile_only_counts():
    mon = TimingMonitor(None)
    assert _feed(mon, ["missed"] * 500 + ["late", "ok"]) == [None] * 502
    rep = mon.report()
    assert rep["profile"] is None and rep["missed"] == 500 and not rep["faulted"]
    assert not any(k.endswith("_margin") for k in rep)


def test_profile_is_frozen():
    p = get_profile("franka_fci")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rate_hz = 500.0  # type: ignore[misc]
    assert isinstance(p, InterfaceProfile)
