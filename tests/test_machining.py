"""Machining cells: compliant joints, toolpath planning and following, the machining station,
the strategies, and `robocell gcode --scenario`."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENARIOS, strip_timing
from spatialmath import SE3

import robocell as rc
from robocell.control.controller import Commands
from robocell.control.machining import ToolpathFollower
from robocell.errors import KinematicsError
from robocell.machining.gcode import parse
from robocell.machining.toolpath import FEED, plan_toolpath
from robocell.robot.interface import JointCommand, Tool

POCKET = SCENARIOS / "machining_pocket.yaml"
DOWN = SE3.Rx(math.pi).R  # tool axis pointing down


def _cell(model: str = "kr6_r900") -> tuple[rc.Cell, object]:
    cell = rc.Cell(seed=1)
    r = cell.add_robot(model, tool=Tool("spindle", SE3(0, 0, 0.12), 1.2, 0.035))
    return cell, r


@pytest.mark.parametrize("model", ["kr6_r900", "ur5e"])
def test_static_deflection_matches_the_stiffness_model(model: str) -> None:
    """A known force at the TCP deflects the tool by C F, C = J_v K^-1 J_v^T, within 10 %;
    the encoders (motor side) do not see the deflection."""
    cell, r = _cell(model)
    q0 = r.model.home
    hold = Commands(joints={r.name: JointCommand.position(q0)})
    for _ in range(100):
        cell.step(hold)
    p0 = r.tcp_pose().t.copy()
    tau0 = r.state().tau.copy()
    F = np.array([25.0, -15.0, 30.0])
    r.set_tcp_load(F)
    for _ in range(200):
        cell.step(hold)
    moved = r.tcp_pose().t - p0
    J = r.kinematics.jacob0(r.state().q)[:3]
    R = r.base.R
    predicted = R @ (J / r.model.joint_stiffness) @ J.T @ R.T @ F
    assert np.linalg.norm(predicted) > 1e-4  # a tenth of a millimetre at least
    assert np.linalg.norm(moved - predicted) < 0.1 * np.linalg.norm(predicted)
    np.testing.assert_allclose(r.state().q, q0, atol=1e-5)
    # the load shows in the measured joint torques: the servos hold -J^T F more (10 %)
    Jfull = r.kinematics.jacob0(r.state().q)
    expected = -(Jfull[:3].T @ (R.T @ F))
    dtau = r.state().tau - tau0
    assert np.linalg.norm(dtau - expected) < 0.1 * np.linalg.norm(expected)
    r.set_tcp_load(np.zeros(3))
    for _ in range(200):
        cell.step(hold)
    np.testing.assert_allclose(r.tcp_pose().t, p0, atol=2e-6)
    cell.close()


def _plan(text: str, frame: SE3, **kw: object) -> object:
    cell, r = _cell()
    cell.start()
    info = cell.context().robot(r.name)
    plan = plan_toolpath(parse(text), info, {"G54": frame}, DOWN, r.state().q, **kw)
    cell.close()
    return plan, info


def test_plan_names_the_unreachable_line() -> None:
    text = "G21 G90\nG0 X0 Y0 Z5\nG1 Z0 F600\nX50\nX2000 (far outside the reach)\nM30\n"
    with pytest.raises(KinematicsError, match="line 5"):
        _plan(text, SE3(0.5, 0, 0.1))


def test_plan_reports_a_feed_the_robot_cannot_hold() -> None:
    text = "G21 G90\nG0 X0 Y0 Z5\nG1 Z0 F600\nY80 F600000\nM30\n"
    plan, _ = _plan(text, SE3(0.45, -0.04, 0.1))
    assert [fl.line for fl in plan.feed_limits] == [4]
    fl = plan.feed_limits[0]
    assert fl.programmed == pytest.approx(10.0)
    assert 0 < fl.achievable < 10.0
    assert "line 4" in fl.message()


def test_follower_holds_the_programmed_feed() -> None:
    """Mid-way along a long straight cut the tool moves at the programmed feed within 1 %."""
    text = "G21 G90\nG0 X0 Y0 Z5\nG1 Z0 F600\nX100 F1200\nM30\n"
    plan, info = _plan(text, SE3(0.4, 0.0, 0.1), max_acceleration=1.0)
    f = ToolpathFollower(plan, info)
    dt = 0.002
    xs, ts = [], []
    t = 0.0
    while not f.done and t < 60:
        f.step(dt)
        t += dt
        if plan.kind[f.i + 1] == FEED and f.line == 4:
            xs.append(f.target_point().copy())
            ts.append(t)
    xs_a = np.array(xs)
    mid = len(xs_a) // 2
    v = np.linalg.norm(xs_a[mid + 50] - xs_a[mid - 50]) / (ts[mid + 50] - ts[mid - 50])
    assert v == pytest.approx(0.02, rel=0.01)
    assert f.done
    # the plan's time estimate agrees with the follower's clock within 2 %
    assert t == pytest.approx(plan.duration, rel=0.02)


def test_follower_holds_a_feed_below_one_tick_of_acceleration() -> None:
    """F60 (1 mm/s) is slower than max_acceleration x tick (2 mm/s): 20 mm take 20 s."""
    text = "G21 G90\nG0 X0 Y0 Z5\nG1 Z0 F600\nX20 F60\nM30\n"
    plan, info = _plan(text, SE3(0.4, 0.0, 0.1), max_acceleration=1.0)
    f = ToolpathFollower(plan, info)
    t = t_cut = 0.0
    while not f.done and t < 60:
        f.step(0.002)
        t += 0.002
        if f.line == 4:
            t_cut += 0.002
    assert t_cut == pytest.approx(20.0, rel=0.01)
    assert t == pytest.approx(plan.duration, rel=0.01)


def test_a_leading_dwell_counts_in_the_plan_time() -> None:
    text = "G21 G90\nS1000 M3\nG4 P0.5\nG0 X0 Y0 Z5\nG1 Z0 F600\nX20\nM30\n"
    plan, _ = _plan(text, SE3(0.4, 0.0, 0.1))
    assert np.all(np.diff(plan.t) >= 0)
    assert plan.t[0] == pytest.approx(0.5)
    assert plan.spindle_rpm[0] == 1000


def test_pocket_nominal_part_removes_the_analytic_volume() -> None:
    """The nominal part (the program cut by a rigid machine) of the default pocket: 2 mm deep,
    40 x 30 mm with R5 corners, V = 2 (40 * 30 - (4 - pi) 5^2) mm^3, within 1 %."""
    cell = rc.cell_from_scenario(rc.load_scenario(POCKET))
    st = cell.devices["mill"]
    full = st.stock.volume()
    removed = full - st.nominal.volume()
    analytic = 2.0 * (40 * 30 - (4 - math.pi) * 25) * 1e-9
    assert removed == pytest.approx(analytic, rel=0.01)
    assert st.rapid_cuts == []
    cell.close()


SIDE_MILL = """\
G21 G90 G94 G17
T1 M6
S18000 M3
G0 X-5 Y-1 Z5
G1 Z-2 F300
X35 F720 (side milling the front face, 2 mm deep, 1 mm radial engagement)
G0 Z5
M5 M30
"""


def _side_mill_scenario(tmp_path: Path, controller: str, program: str = SIDE_MILL) -> Path:
    (tmp_path / "side.ngc").write_text(program)
    text = (POCKET.read_text().split("controller:")[0]).replace(
        "program: machining/pocket.ngc", f"program: {tmp_path / 'side.ngc'}"
    )
    text = text.replace("duration: 120", "duration: 20")
    path = tmp_path / f"side_{controller}.yaml"
    path.write_text(text + f"controller:\n  use: {SCENARIOS.parent / 'controllers' / controller}\n")
    return path


def test_compensation_halves_the_error_of_a_side_milling_cut(tmp_path: Path) -> None:
    """A 30 mm side-milling pass (quick): the arm deflects away from the wall; compensation with
    the predicted force brings the RMS surface error and the path deviation down by more than
    half."""
    runs = {}
    for c in (
        "machining_baseline.py:StiffBaseline",
        "machining_compensation.py:DeflectionCompensation",
    ):
        runs[c.split(".")[0]] = rc.run(_side_mill_scenario(tmp_path, c)).kpis["machining"]
    base, comp = runs["machining_baseline"], runs["machining_compensation"]
    assert base["cycle_time_s"] is not None and comp["cycle_time_s"] is not None
    assert base["surface_error_rms_mm"] > 0.01
    assert comp["surface_error_rms_mm"] <= 0.5 * base["surface_error_rms_mm"]
    assert comp["path_deviation_rms_mm"] <= 0.5 * base["path_deviation_rms_mm"]
    assert base["mean_force_n"] > 5.0


def test_cutting_with_the_spindle_stopped_is_one_crash(tmp_path: Path) -> None:
    """One continuous cut with M5 is one tool_crash, however the removal bursts per tick."""
    path = _side_mill_scenario(
        tmp_path, "machining_baseline.py:StiffBaseline", SIDE_MILL.replace("S18000 M3", "M5")
    )
    res = rc.run(path, out_dir=tmp_path / "run")
    k = res.kpis["machining"]
    assert k["tool_crashes"] == 1
    assert [e["kind"] for e in rc.read_events(tmp_path / "run")].count("tool_crash") == 1
    assert k["peak_force_n"] == 0.0  # a stopped spindle cuts nothing: no cutting force model
    assert k["cutting_time_s"] == pytest.approx(40 / 12, rel=0.1)  # 40 mm at 720 mm/min


@pytest.fixture(scope="module")
def pocket_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, rc.RunResult]:
    out = tmp_path_factory.mktemp("pocket")
    runs = {}
    for key, name in (
        ("baseline", "machining_pocket.yaml"),
        ("compensation", "machining_pocket_compensation.yaml"),
    ):
        runs[key] = rc.run(SCENARIOS / name, out_dir=out / key)
    return runs


@pytest.mark.slow
def test_compensation_halves_the_surface_error(pocket_runs: dict[str, rc.RunResult]) -> None:
    base = pocket_runs["baseline"].kpis["machining"]
    comp = pocket_runs["compensation"].kpis["machining"]
    assert base["cycle_time_s"] is not None and comp["cycle_time_s"] is not None
    assert base["surface_error_rms_mm"] > 0.01  # the deflection is visible
    assert comp["surface_error_rms_mm"] <= 0.5 * base["surface_error_rms_mm"]
    assert comp["path_deviation_rms_mm"] < base["path_deviation_rms_mm"]
    for k in (base, comp):
        assert k["tool_crashes"] == 0
        assert k["removed_volume_cm3"] == pytest.approx(k["nominal_removed_volume_cm3"], rel=0.05)
        assert k["peak_force_n"] > k["mean_force_n"] > 0


@pytest.mark.slow
def test_machining_run_writes_its_report(pocket_runs: dict[str, rc.RunResult]) -> None:
    res = pocket_runs["baseline"]
    names = {p.name for p in res.plots}
    assert {"surface_error.png", "cutting_force.png", "toolpath.png"} <= names
    data = np.load(res.out_dir / "machining.npz")
    assert data["actual_height"].shape == data["nominal_height"].shape
    table = res.table()
    assert "surface error RMS" in table and "material removal rate" in table


def test_machining_run_is_deterministic(tmp_path: Path) -> None:
    a = rc.run(POCKET, duration=3.0, out_dir=tmp_path / "a")
    b = rc.run(POCKET, duration=3.0, out_dir=tmp_path / "b")
    assert strip_timing(a.kpis) == strip_timing(b.kpis)
    na, nb = np.load(tmp_path / "a" / "machining.npz"), np.load(tmp_path / "b" / "machining.npz")
    assert np.array_equal(na["actual_height"], nb["actual_height"])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robocell", *args], capture_output=True, text=True, timeout=120
    )


def test_gcode_check_with_a_scenario() -> None:
    r = _cli("gcode", str(SCENARIOS / "machining" / "pocket.ngc"), "--scenario", str(POCKET))
    assert r.returncode == 0, r.stderr
    assert "reachable" in r.stdout


def test_gcode_check_names_the_unreachable_line(tmp_path: Path) -> None:
    prog = tmp_path / "far.ngc"
    prog.write_text("G21 G90\nG0 X0 Y0 Z5\nG1 Z-1 F300\nX900 F600\nM30\n")
    r = _cli("gcode", str(prog), "--scenario", str(POCKET))
    assert r.returncode == 2
    assert f"{prog}:4: " in r.stderr and "Traceback" not in r.stderr


def _variant(tmp_path: Path, old: str, new: str, program: str | None = None) -> Path:
    text = POCKET.read_text().replace(old, new)
    assert text != POCKET.read_text() or old == new
    if program is not None:
        (tmp_path / "bad.ngc").write_text(program)
        text = text.replace("program: machining/pocket.ngc", f"program: {tmp_path / 'bad.ngc'}")
    text = text.replace("program: machining/", f"program: {SCENARIOS / 'machining'}/")
    text = text.replace("use: controllers/", f"use: {SCENARIOS.parent / 'controllers'}/")
    path = tmp_path / "variant.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("old", "new", "program", "expected"),
    [
        (
            "material: aluminium_wrought",
            "material: aluminum",
            None,
            ["variant.yaml:25", "stations[0].material", "aluminium_wrought"],
        ),
        (
            "type: flat, diameter: 0.006",
            "type: flat, diameter: -0.006",
            None,
            ["variant.yaml:24", "cutter.diameter"],
        ),
        (
            "program: machining/pocket.ngc",
            "program: machining/missing.ngc",
            None,
            ["variant.yaml:19", "stations[0].program", "missing.ngc"],
        ),
        ("seed: 1", "seed: 1", "G21 G90\nG0 X0 Y0 Z5\nG41 D1\nM30\n", ["bad.ngc:3", "G41"]),
        (
            "seed: 1",
            "seed: 1",
            "G21 G90\nG0 X10 Y10 Z5\nS30000 M3\nG1 Z-1 F300\nM30\n",
            ["bad.ngc:3", "S30000", "max_rpm 24000", "line 4"],
        ),
        (
            "grid: 0.0005",
            "grid: 0.000001",
            None,
            ["variant.yaml:23", "stations[0].stock.grid", "cells", "at least"],
        ),
        (
            "StiffBaseline",
            "StiffBaseline\n  params: {approach_speed: fast}",
            None,
            ["variant.yaml:31", "controller.params.approach_speed", "must be a number"],
        ),
    ],
    ids=[
        "unknown-material",
        "negative-diameter",
        "missing-program",
        "gcode-error",
        "spindle",
        "grid-too-fine",
        "param-type",
    ],
)
def test_a_broken_machining_scenario_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, program: str | None, expected: list[str]
) -> None:
    path = _variant(tmp_path, old, new, program)
    r = _cli("validate", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for text in expected:
        assert text in r.stderr, r.stderr


def test_compare_tabulates_machining_kpis() -> None:
    r = _cli(
        "compare",
        str(POCKET),
        str(SCENARIOS / "machining_pocket_compensation.yaml"),
        "--duration",
        "3",
    )
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.strip().splitlines()
    assert "surface RMS mm" in head and "floor RMS mm" in head and "throughput" not in head
    assert [row.split()[0] for row in rows] == [
        "machining_pocket.yaml",
        "machining_pocket_compensation.yaml",
    ]


def test_validate_reports_the_planned_program() -> None:
    r = _cli("validate", str(POCKET))
    assert r.returncode == 0, r.stderr
    assert "machining 'mill': pocket.ngc reachable at all" in r.stdout
    assert "every feed held" in r.stdout


def test_gcode_check_blames_the_program_not_the_scenario(tmp_path: Path) -> None:
    far = tmp_path / "far.ngc"
    far.write_text("G21 G90\nG0 X0 Y0 Z5\nS12000 M3\nG0 X900 Y0\nM30\n")
    r = _cli("gcode", str(far), "--scenario", str(POCKET))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"robocell: error: {far}:4: ")
    assert "out of reach" in r.stderr and "machining_pocket.yaml" in r.stderr
    r = _cli("gcode", str(far), "--station", "mill")
    assert r.returncode == 2 and "--scenario" in r.stderr


def test_materials_command_lists_the_table() -> None:
    r = _cli("materials")
    assert r.returncode == 0
    rows = {line.split()[0]: line.split()[1:3] for line in r.stdout.splitlines()[1:8]}
    assert rows["aluminium_wrought"] == ["700", "0.25"]
    assert rows["steel_c_lt_0_25"] == ["1350", "0.21"]


def test_an_unfinished_program_is_flagged(tmp_path: Path) -> None:
    r = _cli("run", str(POCKET), "--duration", "2", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "program not finished" in r.stdout
    kpis = json.loads((tmp_path / "run" / "kpis.json").read_text())
    assert kpis["machining"]["program_finished"] is False


def test_validate_warns_of_cuts_the_plan_already_shows_as_crashes(tmp_path: Path) -> None:
    prog = "G21 G90\nG0 X10 Y10 Z5\nS12000 M3\nG1 Z-1 F300\nM5\nG1 X20 F300\nG0 Z5\nM30\n"
    path = _variant(tmp_path, "seed: 1", "seed: 1", prog)
    r = _cli("validate", str(path))
    assert r.returncode == 0, r.stderr
    assert "cuts with the spindle stopped on line 6 (a tool crash)" in r.stdout
    clean = _cli("validate", str(POCKET))
    assert clean.returncode == 0 and "tool crash" not in clean.stdout
