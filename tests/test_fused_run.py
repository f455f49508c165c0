"""``Cell.run``'s fused loop (one SimRobot) against the reference tick, ``Cell.step``.

The fused loop must leave exactly the same recording, events and KPIs, and hand every rare tick
(clamped commands, mode changes, markers, signals, ...) to ``Cell.step``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import robocell as rc
from robocell.cell import fused
from robocell.cell.cell import Cell

SCENARIOS = Path(__file__).parents[1] / "scenarios"


class Mixed:
    """Walks through the cases the fused loop takes itself and those it hands on, in phases
    of ``n`` ticks: streamed targets with and without feed-forward, a feed-forward over the
    velocity limit, a jump the velocity limit clamps, a target past the joint limit, velocity
    mode and back, held commands, markers, signals and ``done``."""

    def __init__(self, n: int = 40) -> None:
        self.n = n

    def reset(self, ctx: rc.ControllerContext) -> None:
        info = ctx.robot("r1")
        self.q0 = info.q0.copy()
        self.vmax = info.limits.velocity
        self.upper = info.limits.upper
        self.k = 0

    def step(self, obs: rc.Observation) -> rc.Commands:
        k, n = self.k, self.n
        self.k += 1
        phase = k // n
        t = obs.t
        w = 0.4 * np.sin(np.arange(6) + 3.0 * t)
        q = self.q0 + 0.1 * np.sin(np.arange(6) + 3.0 * t) / 3.0 + 0.2
        out = rc.Commands()
        if phase == 0:
            out.joints["r1"] = rc.JointCommand.position(q, w * 0.1)
        elif phase == 1:
            out.joints["r1"] = rc.JointCommand.position(q)  # no feed-forward
        elif phase == 2:
            ff = w * 0.1
            ff[0] = 1.5 * self.vmax[0]  # over the limit: silently clamped
            out.joints["r1"] = rc.JointCommand.position(q, ff)
        elif phase == 3:
            q2 = q.copy()
            q2[1] += 0.5 if k % 2 else -0.5  # a jump: clamped by the velocity limit
            out.joints["r1"] = rc.JointCommand.position(q2, w * 0.1)
        elif phase == 4:
            q2 = q.copy()
            q2[5] = self.upper[5] + 0.3  # past the joint limit
            out.joints["r1"] = rc.JointCommand.position(q2, np.zeros(6))
        elif phase == 5:
            out.joints["r1"] = rc.JointCommand.velocity_cmd(w * 0.05)
        elif phase == 6:
            if k % n == 0:  # one command, then held
                out.joints["r1"] = rc.JointCommand.position(q, np.zeros(6))
        elif phase == 7:
            out.joints["r1"] = rc.JointCommand.position(q, w * 0.1)
            if k % 7 == 0:
                out.markers.append(rc.Marker("tick", {"k": k}))
            if k % 11 == 0:
                out.signals["level"] = float(k)
        else:
            out.joints["r1"] = rc.JointCommand.position(q, w * 0.1)
            out.done = phase >= 9
        return out


def _run(make_cell, tmp: Path, monkeypatch, fuse: bool, duration: float) -> tuple[dict, int]:
    """Run a fresh cell with or without the fused loop; returns its outputs and the number of
    ticks that went through Cell.step."""
    calls = [0]
    step = Cell.step

    def counted(self, commands=None):
        calls[0] += 1
        return step(self, commands)

    with monkeypatch.context() as m:
        m.setattr(Cell, "step", counted)
        if not fuse:
            m.setattr(fused, "fusable", lambda cell: False)
        cell = make_cell()
        res = cell.run(duration, out_dir=tmp, plots=False)
        ticks = cell._ticks
        cell.close()
    kpis = dict(res.kpis)
    kpis.pop("timing", None)
    return {
        "recording": (tmp / "recording.arrows").read_bytes(),
        "events": (tmp / "events.jsonl").read_text(),
        "kpis": json.dumps(kpis, sort_keys=True, default=str),
        "ticks": ticks,
    }, calls[0]


def _mixed_cell() -> Cell:
    cell = rc.Cell(seed=3)
    cell.add_robot("ur5e", name="r1", control_period=0.002)
    cell.signals["level"] = 0.0
    cell.controller = Mixed()
    return cell


def test_fused_loop_equals_the_reference_tick_through_every_case(tmp_path, monkeypatch) -> None:
    a, general_a = _run(_mixed_cell, tmp_path / "fused", monkeypatch, True, 0.8)
    b, general_b = _run(_mixed_cell, tmp_path / "step", monkeypatch, False, 0.8)
    assert a["ticks"] == b["ticks"] == 400
    assert general_b == 400
    # both kinds of tick happened in the fused run
    assert 80 < general_a < 300, general_a
    assert a["events"] == b["events"]
    assert a["kpis"] == b["kpis"]
    assert a["recording"] == b["recording"]
    kinds = {json.loads(line)["kind"] for line in a["events"].splitlines()}
    assert {"limit", "tick", "controller_done"} <= kinds


def test_fused_loop_runs_the_default_scenario_identically(tmp_path, monkeypatch) -> None:
    """The cycle test to past its last cycle (the hold without feed-forward after ``done``)."""

    def make() -> Cell:
        cell = rc.cell_from_scenario(rc.load_scenario(SCENARIOS / "cycle_test.yaml"))
        cell.end_when_done = False
        return cell

    a, general_a = _run(make, tmp_path / "fused", monkeypatch, True, 13.0)
    b, _ = _run(make, tmp_path / "step", monkeypatch, False, 13.0)
    assert general_a < 0.01 * a["ticks"]  # almost every tick fused
    assert a == b


@pytest.mark.parametrize("fuse", [True, False])
def test_controller_errors_read_the_same_in_both_loops(fuse, monkeypatch) -> None:
    class Boom:
        def reset(self, ctx):
            self.q0 = ctx.robot("r1").q0

        def step(self, obs):
            if obs.t > 0.01:
                raise RuntimeError("sensor unplugged")
            return rc.Commands(joints={"r1": rc.JointCommand.position(self.q0, np.zeros(6))})

    class NotCommands(Boom):
        def step(self, obs):
            return super().step(obs) if obs.t < 0.01 else {"r1": None}

    if not fuse:
        monkeypatch.setattr(fused, "fusable", lambda cell: False)
    for ctl, msg in (
        (Boom(), r"Boom.step\(\) raised at t=0.012 s: RuntimeError: sensor unplugged"),
        (NotCommands(), r"NotCommands.step\(\) must return Commands, got dict"),
    ):
        cell = rc.Cell()
        cell.add_robot("ur5e", name="r1")
        cell.controller = ctl
        with pytest.raises(rc.RobocellError, match=msg):
            cell.run(0.1)
        cell.close()


def test_overhead_benchmark_times_all_three_loops() -> None:
    """benchmarks/sim_overhead.py's loops run and cover the same cell time (a smoke test: the
    figures themselves live in benchmarks/README.md, not in assertions)."""
    from robocell.bench.overhead import measure_overhead

    r = measure_overhead(SCENARIOS / "cycle_test.yaml", duration=0.2, repeats=1, stepped=True)
    assert r.cell_time_s == 0.2
    assert len(r.pair_ratios) == len(r.stepped_ratios) == 1
    assert min(r.plain_steps_per_s, r.robocell_steps_per_s, r.stepped_steps_per_s) > 0
