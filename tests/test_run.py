"""Runs end to end: KPIs, outputs, determinism (in-process and across processes), SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENARIOS, strip_timing

import robocell as rc
from robocell.record.recorder import column

CYCLE = SCENARIOS / "cycle_test.yaml"


def _cli_run(out: Path, duration: float, scenario: Path = CYCLE) -> list[str]:
    """`robocell run` of the cycle test (or ``scenario``) in a fresh interpreter."""
    cmd = ["-m", "robocell.cli", "run", str(scenario), "--out", str(out)]
    return [sys.executable, *cmd, "--duration", str(duration)]


def _long_cycle(tmp_path: Path) -> Path:
    """The cycle test with 1000 cycles: a run that cannot end by itself while a test waits
    to interrupt it (the default five cycles take well under a second of wall time)."""
    text = CYCLE.read_text()
    assert "cycles: 5" in text
    path = tmp_path / "cycle_long.yaml"
    path.write_text(text.replace("cycles: 5", "cycles: 1000"))
    return path


@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory) -> rc.RunResult:
    return rc.run(CYCLE, out_dir=tmp_path_factory.mktemp("cycle"))


def test_cycle_test_reports_cycle_time_and_outputs(cycle_run: rc.RunResult) -> None:
    k = cycle_run.kpis
    assert k["cycles"] == 5
    assert 0.5 < k["cycle_time_s"] < 5.0
    # every cycle is the same motion: measured times agree within two control periods
    assert k["cycle_time_max_s"] - k["cycle_time_min_s"] <= 0.004 + 1e-9
    r1 = k["robots"]["r1"]
    assert r1["limit_violations"] == 0
    # full speed: some joint reaches its rated speed, none goes beyond it
    assert 0.95 <= r1["peak_joint_speed_share"] <= 1.0 + 1e-9
    assert k["collisions_environment"] == 0 and k["collisions_self"] == 0
    out = cycle_run.out_dir
    assert out is not None
    for name in ("kpis.json", "recording.arrows", "events.jsonl", "joints_r1.png", "tcp_path.png"):
        assert (out / name).stat().st_size > 0, name
    assert strip_timing(json.loads((out / "kpis.json").read_text())) == strip_timing(k)


def test_recorded_tcp_path_is_the_cycle(cycle_run: rc.RunResult) -> None:
    """The TCP visits the four corners: 25 mm up, 305 mm across (from the recording)."""
    table = rc.read_recording(cycle_run.out_dir)
    tcp = column(table, "r1.tcp")
    t = column(table, "t")
    assert np.all(np.diff(t) > 0)
    after = t > 3.0  # after the approach
    z, y = tcp[after, 2], tcp[after, 1]
    assert z.max() - z.min() == pytest.approx(0.025, abs=0.0015)
    assert y.max() - y.min() == pytest.approx(0.305, abs=0.0015)


def test_path_length_kpi_matches_recording(cycle_run: rc.RunResult) -> None:
    tcp = column(rc.read_recording(cycle_run.out_dir), "r1.tcp")
    length = float(np.linalg.norm(np.diff(tcp, axis=0), axis=1).sum())
    assert cycle_run.kpis["robots"]["r1"]["path_length_m"] == pytest.approx(length, rel=1e-9)


def test_same_seed_same_kpis_and_recording(tmp_path: Path, cycle_run: rc.RunResult) -> None:
    again = rc.run(CYCLE, out_dir=tmp_path)
    assert strip_timing(again.kpis) == strip_timing(cycle_run.kpis)
    a = (cycle_run.out_dir / "recording.arrows").read_bytes()
    b = (tmp_path / "recording.arrows").read_bytes()
    assert a == b
    assert (cycle_run.out_dir / "events.jsonl").read_bytes() == (
        tmp_path / "events.jsonl"
    ).read_bytes()


def test_same_seed_identical_in_two_processes(tmp_path: Path) -> None:
    outs = []
    for i in range(2):
        out = tmp_path / f"p{i}"
        proc = subprocess.run(
            [
                *_cli_run(out, 4),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": str(i)},
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    ka, kb = (strip_timing(json.loads((o / "kpis.json").read_text())) for o in outs)
    assert ka == kb
    rec_a, rec_b = ((o / "recording.arrows").read_bytes() for o in outs)
    assert rec_a == rec_b


def test_step_by_step_equals_run(tmp_path: Path, cycle_run: rc.RunResult) -> None:
    """An external driver stepping the cell sees exactly what run() computes."""
    loaded = rc.load_scenario(CYCLE)
    cell = rc.cell_from_scenario(loaded)
    try:
        obs = cell.start()
        n = round(2.0 / cell.control_period)
        for _ in range(n):
            obs = cell.step()
        assert obs.t == pytest.approx(2.0)
        q_step = obs.robots["r1"].q
    finally:
        cell.close()
    table = rc.read_recording(cycle_run.out_dir)
    t = column(table, "t")
    row = int(np.flatnonzero(np.isclose(t, 2.0))[0])
    assert np.array_equal(column(table, "r1.q")[row], q_step)


def test_recording_survives_sigkill(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    scenario = _long_cycle(tmp_path)
    proc = subprocess.Popen(
        _cli_run(out, 600, scenario),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rec = out / "recording.arrows"
    deadline = time.monotonic() + 120
    try:
        # wait until at least three seconds of cell time have been flushed
        while time.monotonic() < deadline:
            if rec.exists() and rec.stat().st_size > 0:
                t = column(rc.read_recording(out), "t")
                if len(t) and t[-1] >= 3.0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the run did not record 3 s of cell time in 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    table = rc.read_recording(out)
    t = column(table, "t")
    assert t[-1] >= 3.0
    # contiguous from the start, one sample per control period
    assert t[0] == 0.0
    assert np.allclose(np.diff(t), 0.002)
    # and the samples are the deterministic run's samples
    full = rc.run(scenario, duration=float(np.floor(t[-1])), out_dir=tmp_path / "full")
    ref = rc.read_recording(full.out_dir)
    n = min(len(t), ref.num_rows)
    assert n >= 1500
    assert np.array_equal(column(table, "r1.q")[:n], column(ref, "r1.q")[:n])


def test_cartesian_square_is_tracked(tmp_path: Path) -> None:
    """The Cartesian path controller keeps the TCP on the drawn square (z constant, inside the
    square's bounds) and completes both cycles."""
    res = rc.run(SCENARIOS / "cartesian_square.yaml", out_dir=tmp_path)
    assert res.kpis["cycles"] == 2
    table = rc.read_recording(tmp_path)
    t, tcp = column(table, "t"), column(table, "r1.tcp")
    events = rc.read_events(tmp_path)
    first_cycle_end = next(e["t"] for e in events if e["kind"] == "cycle")
    start = first_cycle_end - res.kpis["cycle_time_s"]
    on_path = (t > start + 0.01) & (t <= t[-1])
    p = tcp[on_path]
    assert np.abs(p[:, 2] - 0.2).max() < 0.5e-3
    assert p[:, 0].min() > 0.35 - 1e-3 and p[:, 0].max() < 0.55 + 1e-3
    assert p[:, 1].min() > -0.1 - 1e-3 and p[:, 1].max() < 0.1 + 1e-3
    # it really went round: both x and y span the square
    assert np.ptp(p[:, 0]) > 0.19 and np.ptp(p[:, 1]) > 0.19


@pytest.mark.slow
def test_long_run_keeps_every_sample(tmp_path: Path) -> None:
    """Two minutes of cell time: every control tick is recorded once, in order, and the KPIs of
    the held pose after the cycles stay clean."""
    cell = rc.cell_from_scenario(rc.load_scenario(CYCLE))
    cell.end_when_done = False
    try:
        res = cell.run(120.0, out_dir=tmp_path, plots=False)
    finally:
        cell.close()
    t = column(rc.read_recording(tmp_path), "t")
    assert len(t) == 60001
    assert np.allclose(np.diff(t), 0.002)
    assert res.kpis["cycles"] == 5
    assert res.kpis["limit_violations"] == 0


def _recorded(path: Path) -> dict[str, np.ndarray]:
    table = rc.read_recording(path)
    return {name: column(table, name) for name in table.column_names}


def _assert_close(a: object, b: object, where: str = "kpis") -> None:
    """Equal nested KPIs, floats to 1e-12 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), where
    else:
        assert a == b, where


def test_deferred_staged_flushes_record_what_the_tick_flushes_record(tmp_path: Path) -> None:
    """A driver that flushes in stages at irregular moments (as the real-time bridge server
    does), while the ticks go on into the second buffer, ends with the same recording —
    including the record-period subsampling across flushes cut at odd rows — and the same
    KPIs as the cell flushing by itself (to the last bits of sums over other blocks)."""
    scenario = rc.load_scenario(SCENARIOS / "pick_and_place.yaml")

    def drive(out: Path, deferred: bool) -> dict:
        cell = rc.cell_from_scenario(scenario)
        rng = np.random.default_rng(7)
        flushes = 0
        try:
            cell.start(out, record_period=0.004, flush_period=0.05, defer_flush=deferred)
            stages = None
            for _ in range(1000):
                cell.step()
                if not deferred:
                    continue
                if stages is None and cell.flush_due and rng.random() < 0.3:
                    stages, flushes = cell.flush_stages(), flushes + 1
                if stages is not None and rng.random() < 0.5 and next(stages, False) is False:
                    stages = None
            res = cell.run(0.1, plots=False)
        finally:
            cell.close()
        if deferred:
            assert flushes > 20  # 2 s in flushes of 50 ms, started late by chance
        return strip_timing(res.kpis)

    kpis_tick = drive(tmp_path / "tick", deferred=False)
    kpis_deferred = drive(tmp_path / "deferred", deferred=True)
    _assert_close(kpis_deferred, kpis_tick)
    a, b = _recorded(tmp_path / "tick"), _recorded(tmp_path / "deferred")
    assert list(a) == list(b) and any(n.startswith("sig.") for n in a)
    assert len(a["t"]) == 1 + 1050 // 2  # every other tick of 2.1 s, and the start
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_start_builds_the_kinematics_before_the_first_flush() -> None:
    """Building the kinematics (URDF parse, roboticstoolbox import) takes about half a second;
    paid at start, it cannot stall a running (real-time) session at its first flush."""
    cell = rc.Cell(seed=1)  # no controller, which would plan with the kinematics
    try:
        robot = cell.add_robot("ur5e", name="r1")
        assert robot._kin is None
        cell.start()
        assert robot._kin is not None
    finally:
        cell.close()
