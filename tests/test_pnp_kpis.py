"""Pick-and-place KPIs against hand-computed answers, edge cases, and the report files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from robocell.errors import RobocellError
from robocell.record.pnp_kpis import PnpKpis
from robocell.record.pnp_report import CSV_COLUMNS, write_pnp_outputs
from robocell.record.report import kpi_table, write_outputs

MOTION = {"r1": {"peak_torque_share": 0.4, "energy_j": 200.0}}


def ev(t: float, kind: str, **data: Any) -> dict[str, Any]:
    return {"t": t, "kind": kind, **data}


def act(t: float, robot: str, state: str) -> dict[str, Any]:
    return ev(t, "activity", robot=robot, state=state)


def one_robot_run() -> list[dict[str, Any]]:
    """r1 places parts 1-3 at t = 4, 7, 12 (first busy at t = 1), fails a pick, drops part 4.

    Activity: idle 0-1, busy 1-7, blocked 7-8, busy 8-12, idle 12-12.5, busy 12.5-14,
    idle 14-20 -> busy 11.5 s, idle 7.5 s, blocked 1 s."""
    g = "r1.gripper"
    return [
        *(ev(0.5, "spawned", part=p, type="cube", where="feeder") for p in (1, 2, 3, 4)),
        act(1.0, "r1", "busy"),
        ev(1.5, "detected", camera="cam", part=1, type="cube", xyz=[0.5, 0, 0.1], yaw=0.0),
        ev(2.0, "picked", part=1, type="cube", by=g),
        ev(4.0, "placed", part=1, type="cube", station="out", slot=0, error_m=0.001),
        ev(5.0, "picked", part=2, type="cube", by=g),
        ev(7.0, "placed", part=2, type="cube", station="out", slot=1, error_m=0.003),
        act(7.0, "r1", "blocked"),
        act(8.0, "r1", "busy"),
        ev(8.5, "collision", robot="r1", contact="environment", other="table"),
        ev(9.0, "picked", part=3, type="cube", by=g),
        ev(12.0, "placed", part=3, type="cube", station="out"),
        act(12.0, "r1", "idle"),
        act(12.5, "r1", "busy"),
        ev(12.5, "pick_failed", robot="r1", part=4, reason="no contact"),
        ev(13.0, "picked", part=4, type="cube", by=g),
        ev(13.5, "grip_lost", part=4, robot="r1", reason="force", force_n=30.0, limit_n=20.0),
        ev(14.0, "dropped", part=4, type="cube", reason="slip"),
        act(14.0, "r1", "idle"),
        ev(15.0, "collision", robot="r1", contact="self"),
        ev(16.0, "limit", robot="r1", joint=2),
    ]


def summarise(events: list[dict[str, Any]], duration: float = 20.0, **kw: Any) -> dict[str, Any]:
    k = PnpKpis()
    for e in events:
        k.on_event(e)
    out = k.summary(duration, kw.pop("energy_j", 300.0), kw.pop("robots", MOTION), **kw)
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN anywhere
    return out


def test_counts_rates_and_throughput() -> None:
    s = summarise(one_robot_run())
    assert (s["parts_spawned"], s["parts_picked"], s["parts_placed"]) == (4, 4, 3)
    assert (s["parts_dropped"], s["parts_missed"], s["grip_lost"]) == (1, 0, 1)
    assert s["drops_by_reason"] == {"slip": 1}
    assert (s["pick_attempts"], s["pick_failures"]) == (5, 1)
    assert s["grasp_success_rate"] == pytest.approx(4 / 5)
    assert s["pick_success_rate"] == pytest.approx(3 / 4)
    assert (s["collisions"], s["collisions_self"], s["collisions_environment"]) == (2, 1, 1)
    assert s["throughput_per_h"] == pytest.approx(3 / 20 * 3600)  # 540 parts/h
    assert s["energy_per_part_j"] == pytest.approx(100.0)
    assert s["peak_torque_share"] == 0.4
    assert s["place_error_count"] == 2
    assert s["place_error_mean_m"] == pytest.approx(0.002)
    assert s["place_error_max_m"] == pytest.approx(0.003)


def test_cycle_times_and_percentiles() -> None:
    s = summarise(one_robot_run())
    # cycles: 4 - 1 (first busy), 7 - 4, 12 - 7 -> [3, 3, 5]
    assert s["cycles"] == 3
    assert s["cycle_time_mean_s"] == pytest.approx(11 / 3)
    assert s["cycle_time_p50_s"] == pytest.approx(3.0)
    # linear interpolation: rank 0.95 * 2 = 1.9 between 3 and 5
    assert s["cycle_time_p95_s"] == pytest.approx(3.0 + 0.9 * 2.0)
    assert (s["cycle_time_min_s"], s["cycle_time_max_s"]) == (pytest.approx(3.0), 5.0)
    assert s["robots"]["r1"]["cycles"] == 3
    assert s["robots"]["r1"]["parts_placed"] == 3


def test_activity_shares_are_time_weighted() -> None:
    s = summarise(one_robot_run())
    r1 = s["robots"]["r1"]
    assert (r1["busy_s"], r1["idle_s"], r1["blocked_s"]) == pytest.approx((11.5, 7.5, 1.0))
    assert r1["busy_share"] == pytest.approx(11.5 / 20)
    assert r1["idle_share"] == pytest.approx(7.5 / 20)
    assert r1["blocked_share"] == pytest.approx(1.0 / 20)
    assert r1["activity_events"] == 6
    assert s["busy_share"] == pytest.approx(r1["busy_share"])
    assert s["busy_share"] + s["idle_share"] + s["blocked_share"] == pytest.approx(1.0)


def test_oee_factors_by_hand() -> None:
    s = summarise(one_robot_run(), ideal_cycle_time_s=2.5)
    availability = (20.0 - 1.0) / 20.0
    performance = 2.5 * 3 / (20.0 - 1.0)
    quality = 3 / (3 + 1)
    assert s["ideal_cycle_time_s"] == 2.5 and s["ideal_cycle_time_source"] == "given"
    assert s["availability"] == pytest.approx(availability)
    assert s["performance"] == pytest.approx(performance)
    assert s["quality"] == pytest.approx(quality)
    assert s["oee"] == pytest.approx(availability * performance * quality)


def test_oee_ideal_cycle_defaults_to_measured_p5_and_performance_is_capped() -> None:
    s = summarise(one_robot_run())
    assert s["ideal_cycle_time_source"] == "measured_p5"
    assert s["ideal_cycle_time_s"] == pytest.approx(3.0)  # p5 of [3, 3, 5]
    assert s["performance"] == pytest.approx(3.0 * 3 / 19.0)
    fast = summarise(one_robot_run(), ideal_cycle_time_s=100.0)
    assert fast["performance"] == 1.0


def test_two_robots_cycles_shares_and_oee_use_robot_time() -> None:
    events = [
        act(0.0, "a", "busy"),
        act(2.0, "b", "busy"),
        ev(1.0, "picked", part=1, type="x", by="a.gripper"),
        ev(3.0, "picked", part=2, type="x", by="b.gripper"),
        ev(4.0, "placed", part=1, type="x", station="s"),
        ev(5.0, "picked", part=3, type="x", by="a.gripper"),
        ev(6.0, "placed", part=2, type="x", station="s"),
        ev(7.0, "placed", part=3, type="x", station="s"),
        act(7.0, "a", "blocked"),
        act(6.0, "b", "idle"),
    ]
    robots = {"a": {"peak_torque_share": 0.2, "energy_j": 1.0}, "b": {"peak_torque_share": 0.9}}
    s = summarise(sorted(events, key=lambda e: e["t"]), duration=10.0, robots=robots)
    # a: 4 - 0, 7 - 4; b: 6 - 2
    assert s["robots"]["a"]["cycles"] == 2 and s["robots"]["b"]["cycles"] == 1
    assert s["cycles"] == 3
    assert s["cycle_time_mean_s"] == pytest.approx((4 + 3 + 4) / 3)
    a, b = s["robots"]["a"], s["robots"]["b"]
    assert (a["busy_s"], a["idle_s"], a["blocked_s"]) == pytest.approx((7.0, 0.0, 3.0))
    assert (b["busy_s"], b["idle_s"], b["blocked_s"]) == pytest.approx((4.0, 6.0, 0.0))
    assert s["busy_share"] == pytest.approx((0.7 + 0.4) / 2)
    assert s["blocked_share"] == pytest.approx(0.15)
    assert s["availability"] == pytest.approx((20.0 - 3.0) / 20.0)
    assert s["ideal_cycle_time_s"] == pytest.approx(3.1)  # p5 of [3, 4, 4]: 3 + 0.1 * 1
    assert s["performance"] == pytest.approx(3.1 * 3 / 17.0)
    assert s["quality"] == 1.0
    assert s["peak_torque_share"] == 0.9


def test_no_parts_no_activity() -> None:
    s = summarise([], duration=10.0, energy_j=5.0, robots={})
    assert s["parts_placed"] == 0 and s["parts_spawned"] == 0
    assert s["throughput_per_h"] == 0.0
    assert s["cycles"] == 0
    for k in ("mean", "p50", "p95", "min", "max"):
        assert s[f"cycle_time_{k}_s"] is None
    assert s["pick_success_rate"] is None and s["grasp_success_rate"] is None
    assert s["busy_share"] is None and s["robots"] == {}
    assert s["energy_per_part_j"] is None and s["peak_torque_share"] is None
    assert s["place_error_mean_m"] is None
    assert s["availability"] == 1.0  # nothing reported blocked
    assert s["performance"] is None and s["quality"] is None and s["oee"] is None
    given = summarise([], duration=10.0, robots={}, ideal_cycle_time_s=2.0)
    assert given["performance"] == 0.0 and given["oee"] is None


def test_zero_duration_is_undefined_not_nan() -> None:
    s = summarise([], duration=0.0, robots={})
    assert s["throughput_per_h"] is None and s["availability"] is None


def test_robot_without_activity_events_is_idle_and_first_cycle_starts_at_zero() -> None:
    events = [
        ev(1.0, "picked", part=1, type="x", by="r1.gripper"),
        ev(2.5, "placed", part=1, type="x", station="s"),
    ]
    s = summarise(events, duration=5.0)
    assert s["cycle_time_mean_s"] == pytest.approx(2.5)
    r1 = s["robots"]["r1"]
    assert r1["idle_share"] == 1.0 and r1["busy_share"] == 0.0 and r1["activity_events"] == 0


def test_run_that_ends_while_busy_and_summary_does_not_mutate() -> None:
    k = PnpKpis()
    for e in (act(2.0, "r1", "busy"), ev(3.0, "picked", part=1, type="x", by="r1.gripper")):
        k.on_event(e)
    mid = k.summary(4.0, 0.0, {})
    end = k.summary(10.0, 0.0, {})
    assert mid["robots"]["r1"]["busy_s"] == pytest.approx(2.0)
    assert end["robots"]["r1"]["busy_s"] == pytest.approx(8.0)
    assert end["robots"]["r1"]["idle_s"] == pytest.approx(2.0)
    assert end["cycles"] == 0  # the open cycle is not counted
    assert k.summary(10.0, 0.0, {}) == end


def test_placed_without_pick_counts_but_is_no_cycle() -> None:
    s = summarise([ev(1.0, "placed", part=9, type="x", station="s")], duration=2.0)
    assert s["parts_placed"] == 1 and s["cycles"] == 0 and s["robots"] == {}


def test_unknown_activity_state_is_a_helpful_error() -> None:
    with pytest.raises(RobocellError, match="'sleeping'.*busy, idle, blocked"):
        PnpKpis().on_event(act(1.0, "r1", "sleeping"))


# -- report --------------------------------------------------------------------------------------
def _write_events(run_dir: Path, events: list[dict[str, Any]]) -> None:
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, sort_keys=True) + "\n")
        fh.write('{"t": 19.9, "kind": "pla')  # the cut-off line of a killed run


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.exists() and path.stat().st_size > 5000
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    ink = (img[..., :3] < 0.9).any(axis=-1).mean()
    assert 0.02 < ink < 0.9  # drawn on, not a blank (or black) canvas


def test_write_pnp_outputs_csv_and_plots(tmp_path: Path) -> None:
    events = one_robot_run()
    _write_events(tmp_path, events)
    kpis = {"duration_s": 20.0, "pick_and_place": summarise(events)}
    written = write_pnp_outputs(tmp_path, kpis)
    names = [p.name for p in written]
    assert names == ["events.csv", "throughput.png", "cycle_times.png", "activity.png"]
    with open(tmp_path / "events.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(events)  # the truncated line is skipped
    picked = next(r for r in rows if r["kind"] == "picked")
    assert (picked["t"], picked["robot"], picked["part"], picked["type"]) == (
        "2.0",
        "r1",
        "1",
        "cube",
    )
    assert json.loads(picked["data"]) == {"by": "r1.gripper"}
    placed = next(r for r in rows if r["kind"] == "placed")
    assert placed["station"] == "out" and placed["reason"] == ""
    assert json.loads(placed["data"]) == {"error_m": 0.001, "slot": 0}
    dropped = next(r for r in rows if r["kind"] == "dropped")
    assert dropped["reason"] == "slip" and dropped["data"] == "{}"
    grip = next(r for r in rows if r["kind"] == "grip_lost")
    assert grip["robot"] == "r1"
    assert json.loads(grip["data"]) == {"force_n": 30.0, "limit_n": 20.0}
    for p in written[1:]:
        _assert_png(p)


def test_write_outputs_wires_pnp_and_kpi_table_rows(tmp_path: Path) -> None:
    from robocell.cell.cell import RunResult

    events = one_robot_run()
    _write_events(tmp_path, events)
    pnp = summarise(events, ideal_cycle_time_s=2.5)
    kpis = {"duration_s": 20.0, "events": len(events), "pick_and_place": pnp}
    # plots=False keeps the test fast; the CSV shows the wiring (plots are tested above)
    written = write_outputs(RunResult(kpis=kpis, events=[], out_dir=tmp_path), plots=False)
    assert [p.name for p in written] == ["events.csv"]
    assert json.loads((tmp_path / "kpis.json").read_text())["pick_and_place"]["parts_placed"] == 3
    table = kpi_table(kpis)
    assert "throughput" in table and "540.0 parts/h" in table
    assert "pick success (placed / picked)" in table and "75.0 %" in table
    assert "r1: busy / idle / blocked" in table and "57.5 / 37.5 / 5.0 %" in table
    assert "place error (max)" in table and "3.00 mm" in table


def test_empty_run_still_writes_outputs(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("")
    pnp = summarise([], duration=3.0, robots={})
    written = write_pnp_outputs(tmp_path, {"duration_s": 3.0, "pick_and_place": pnp})
    assert len(written) == 4 and all(p.stat().st_size > 0 for p in written)
    assert "n/a" in kpi_table({"duration_s": 3.0, "pick_and_place": pnp})
