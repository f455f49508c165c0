"""Cell behaviour beyond the single-robot default: mixed control rates, robot-robot collisions,
recorded setpoints, TCP orientation, run-once, and controller failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from spatialmath import SE3

import robocell as rc
from robocell.cli import main
from robocell.record.recorder import column


class Hold:
    """Holds every robot at its start pose (position commands without feed-forward)."""

    def reset(self, ctx: rc.ControllerContext) -> None:
        self.q0 = {n: r.q0 for n, r in ctx.robots.items()}

    def step(self, obs: rc.Observation) -> rc.Commands:
        return rc.Commands(joints={n: rc.JointCommand.position(self.q0[n]) for n in obs.due})


class Ramp:
    """Streams position setpoints (no feed-forward) that ramp joint 1 at a constant rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def reset(self, ctx: rc.ControllerContext) -> None:
        self.q0 = ctx.robot("r1").q0

    def step(self, obs: rc.Observation) -> rc.Commands:
        q = self.q0.copy()
        q[0] += self.rate * (obs.t + 0.004)
        return rc.Commands(joints={"r1": rc.JointCommand.position(q)})


def test_two_robots_with_different_control_periods(tmp_path: Path) -> None:
    cell = rc.Cell(seed=2)
    cell.add_robot("ur5e", name="fast", control_period=0.002)
    cell.add_robot("ur10e", name="slow", base=SE3(2.0, 0, 0), control_period=0.004)
    calls: dict[str, int] = {"fast": 0, "slow": 0}

    class Count(Hold):
        def step(self, obs: rc.Observation) -> rc.Commands:
            for n in obs.due:
                calls[n] += 1
            return super().step(obs)

    cell.controller = Count()
    assert cell.control_period == pytest.approx(0.002)
    res = cell.run(1.0, out_dir=tmp_path)
    cell.close()
    assert calls == {"fast": 500, "slow": 250}  # one call per tick of each robot
    table = rc.read_recording(tmp_path)
    assert table.num_rows == 501
    for r in ("fast", "slow"):
        assert res.kpis["robots"][r]["limit_violations"] == 0
        assert np.abs(column(table, f"{r}.q")[-1] - column(table, f"{r}.q")[0]).max() < 1e-3


def test_robots_touching_each_other_count_one_collision_per_pair() -> None:
    cell = rc.Cell()
    a = cell.add_robot("ur5e", name="a")
    cell.add_robot("ur5e", name="b", base=SE3(0.15, 0, 0))  # bases overlap: links touch
    cell.controller = Hold()
    cell.run(0.01)  # exactly one collision check, at the end
    contacts = {
        tuple(sorted([(c.body_a, c.link_a), (c.body_b, c.link_b)]))
        for c in cell.world.contacts(body_a=a.body)
        if c.body_b != a.body and c.body_b != cell.ground
    }
    k = cell.kpis()
    assert contacts, "the two robots must touch in this layout"
    assert k["collisions_environment"] == len(contacts)
    pairs = [(e["robot"], e["other"]) for e in cell._events if e["kind"] == "collision"]
    assert len(pairs) == len(contacts)  # reported once, not once from each robot
    cell.close()


def test_recorded_setpoint_is_what_the_drive_follows(tmp_path: Path) -> None:
    """Without feed-forward, the drive follows the setpoints' own rate; the recorded q_cmd is
    that setpoint and the measured joint tracks it closely."""
    cell = rc.Cell()
    cell.add_robot("ur5e", name="r1", control_period=0.004)
    cell.controller = Ramp(rate=0.5)
    res = cell.run(1.0, out_dir=tmp_path)
    cell.close()
    table = rc.read_recording(tmp_path)
    t, qc, q = column(table, "t"), column(table, "r1.q_cmd"), column(table, "r1.q")
    late = t > 0.5
    q0 = q[0, 0]
    assert np.allclose(qc[late, 0] - q0, 0.5 * (t[late] + 0.004), atol=1e-9)
    assert res.kpis["robots"]["r1"]["tracking_error_max_rad"] < 5e-3


def test_recorded_tcp_orientation_matches_kinematics(tmp_path: Path) -> None:
    """tcp / tcp_quat in the recording equal the forward kinematics of the recorded joints,
    also with the tool pointing straight down (rotation near 180 degrees)."""
    res = rc.run(
        Path(__file__).parents[1] / "scenarios" / "cycle_test.yaml", duration=4.0, out_dir=tmp_path
    )
    assert res.kpis["duration_s"] > 0
    table = rc.read_recording(tmp_path)
    q, tcp, quat = (column(table, c) for c in ("r1.q", "r1.tcp", "r1.tcp_quat"))
    cell = rc.cell_from_scenario(
        rc.load_scenario(Path(__file__).parents[1] / "scenarios" / "cycle_test.yaml")
    )
    r = cell.robots["r1"]
    for i in range(0, len(q), 97):
        T = r.base * r.kinematics.fkine(q[i])
        assert np.linalg.norm(T.t - tcp[i]) < 1e-9
        x, y, z, w = quat[i]
        R = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        assert np.abs(R - T.R).max() < 1e-9
    cell.close()


def test_a_cell_runs_once() -> None:
    cell = rc.Cell()
    cell.add_robot("ur5e")
    cell.controller = Hold()
    cell.run(0.1)
    with pytest.raises(rc.RobocellError, match="has run already"):
        cell.run(0.1)
    cell.close()


def test_a_failing_controller_is_one_clear_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "boom.py").write_text(
        "from robocell import Commands\n"
        "class Boom:\n"
        "    def reset(self, ctx):\n        pass\n"
        "    def step(self, obs):\n"
        "        if obs.t > 0.01:\n            raise RuntimeError('sensor unplugged')\n"
        "        return Commands()\n"
    )
    scn = tmp_path / "boom.yaml"
    scn.write_text(
        "name: boom\nduration: 1\nrobots:\n  - {name: r1, model: ur5e}\n"
        "controller: {use: boom.py:Boom}\n"
    )
    assert main(["run", str(scn), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Boom.step() raised at t=0.012 s: RuntimeError: sensor unplugged" in err


def test_wrong_parameter_type_names_the_parameter_line(tmp_path: Path, capsys) -> None:
    scn = tmp_path / "s.yaml"
    scn.write_text(
        "name: x\nduration: 1\nrobots:\n  - {name: r1, model: ur5e}\ncontroller:\n"
        f"  use: {Path(__file__).parents[1] / 'controllers/ptp.py'}:PointToPoint\n"
        "  params:\n    targets: [{joints_deg: [0, -90, 90, -90, -90, 0]}]\n"
        "    speed: fast\n"
    )
    assert main(["validate", str(scn)]) == 2
    err = capsys.readouterr().err
    assert f"{scn}:9: controller.params.speed: must be a number" in err
