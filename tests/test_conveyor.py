"""Conveyor physics against its configuration: parts ride at the belt speed (measured), the belt
ramps on start/stop, blocked parts slip, and parts leave at the end as configured."""

from __future__ import annotations

import math

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

from robocell.cell.cell import Cell
from robocell.cell.devices import Part
from robocell.errors import ScenarioError
from robocell.pnp.conveyor import Conveyor

SURFACE_Z = 0.8


def make_cell(seed: int = 1, **belt: object) -> tuple[Cell, Conveyor]:
    """A cell with a robot out of the way and one belt (defaults overridable)."""
    cell = Cell(seed=seed)
    cell.add_robot("ur5e", base=SE3(-2.5, 0, 0))
    kw: dict = {"pose": SE3(0, 0, SURFACE_Z), "length": 2.0, "width": 0.4, "speed": 0.3}
    kw.update(belt)
    conv = Conveyor("in", **kw)
    cell.add_device(conv)
    return cell, conv


def put_part(cell: Cell, conv: Conveyor, along: float, shape: str = "box") -> Part:
    """A part resting on the belt at ``along`` [m] from its start, registered on the belt."""
    pose = SE3(conv.pose) * SE3.Tx(along - conv.length / 2)
    if shape == "box":
        body = cell.world.add_box((0.1, 0.08, 0.05), pose * SE3.Tz(0.025 + 1e-4), mass=0.3)
    else:
        body = cell.world.add_cylinder(0.04, 0.06, pose * SE3.Tz(0.03 + 1e-4), mass=0.2)
    return cell.parts.spawn(body, shape, where=conv.name)


def pos(cell: Cell, part: Part) -> np.ndarray:
    return np.array(
        pb.getBasePositionAndOrientation(part.body, physicsClientId=cell.world.client)[0]
    )


def run(cell: Cell, seconds: float) -> None:
    for _ in range(round(seconds / cell.control_period)):
        cell.step()


@pytest.mark.parametrize(
    ("speed", "shape", "yaw_deg"),
    [(0.2, "box", 0), (0.5, "box", 0), (0.3, "cylinder", 0), (0.5, "cylinder", 90)],
    ids=["box-0.2", "box-0.5", "cylinder-0.3", "cylinder-0.5-yawed"],
)
def test_part_moves_at_belt_speed(speed: float, shape: str, yaw_deg: float) -> None:
    cell, conv = make_cell(pose=SE3(0, 0, SURFACE_Z) * SE3.Rz(math.radians(yaw_deg)), speed=speed)
    cell.start()
    part = put_part(cell, conv, 0.1, shape)
    run(cell, 0.3)  # the part comes up to belt speed (friction accelerates it at ~6 m/s²)
    p0 = pos(cell, part)
    run(cell, 2.0)
    p1 = pos(cell, part)
    moved = p1 - p0
    measured = float(moved @ conv.direction) / 2.0
    assert measured == pytest.approx(speed, rel=0.01)
    lateral = float(moved @ conv.lateral)
    assert abs(lateral) < 1e-3  # the part keeps its lane
    assert cell.signals["conveyor.in.actual_speed"] == pytest.approx(speed)
    # it lags the belt by what it lost while friction (mu = 0.6 x 1.0) accelerated it
    lag = speed**2 / (2 * 0.6 * 9.81)
    assert conv.along(p1) == pytest.approx(0.1 + speed * 2.3 - lag, abs=0.003)
    cell.close()


def test_start_stop_by_signal_ramps_and_the_part_follows() -> None:
    cell, conv = make_cell(speed=0.4, running=False, accel=2.0)
    cell.start()
    part = put_part(cell, conv, 0.3)
    run(cell, 0.3)
    p0 = pos(cell, part)
    run(cell, 0.5)
    assert np.linalg.norm(pos(cell, part) - p0) < 1e-4  # a stopped belt holds the part
    assert cell.signals["conveyor.in.actual_speed"] == 0.0

    cell.signals["conveyor.in.running"] = True
    run(cell, 0.1)
    # ramp: 2 m/s² for 0.1 s
    assert cell.signals["conveyor.in.actual_speed"] == pytest.approx(0.2, abs=0.005)
    run(cell, 0.5)
    assert cell.signals["conveyor.in.actual_speed"] == pytest.approx(0.4)

    p_stop = pos(cell, part)
    cell.signals["conveyor.in.running"] = False
    run(cell, 0.5)
    ramp_distance = 0.4**2 / (2 * 2.0)  # 0.04 m
    coasted = float((pos(cell, part) - p_stop) @ conv.direction)
    assert 0.0 < coasted <= ramp_distance + 0.002
    p_still = pos(cell, part)
    run(cell, 0.3)
    assert np.linalg.norm(pos(cell, part) - p_still) < 1e-4
    cell.close()


def test_speed_signal_changes_speed_and_negative_is_clamped_with_an_event() -> None:
    cell, conv = make_cell(speed=0.2, accel=10.0)
    cell.start()
    cell.signals["conveyor.in.speed"] = 0.35
    run(cell, 0.1)
    assert cell.signals["conveyor.in.actual_speed"] == pytest.approx(0.35)
    cell.signals["conveyor.in.speed"] = -0.5
    run(cell, 0.1)
    assert cell.signals["conveyor.in.speed"] == 0.0
    assert cell.signals["conveyor.in.actual_speed"] == 0.0
    clamped = [e for e in cell._events if e["kind"] == "signal_clamped"]
    assert len(clamped) == 1
    assert clamped[0]["signal"] == "conveyor.in.speed"
    assert clamped[0]["used"] == 0.0
    cell.close()


def test_blocked_part_stays_put_and_slips() -> None:
    cell, conv = make_cell(speed=0.3)
    # a stop across the belt at 0.6 m, 1 mm above the surface so only the part touches it
    stop_x = 0.6 - conv.length / 2
    cell.add_object(
        "stop", "box", pose=SE3(stop_x + 0.01, 0, SURFACE_Z + 0.001 + 0.05), size=(0.02, 0.5, 0.1)
    )
    cell.start()
    part = put_part(cell, conv, 0.2)
    run(cell, 2.0)  # it reaches the stop after ~1.2 s
    p0 = pos(cell, part)
    assert conv.along(p0) == pytest.approx(0.6 - 0.05, abs=0.002)  # touching the stop
    run(cell, 1.0)
    assert np.linalg.norm(pos(cell, part) - p0) < 5e-4  # it slips: the belt keeps running
    assert cell.signals["conveyor.in.actual_speed"] == pytest.approx(0.3)
    assert part.state == "on_conveyor"
    cell.close()


def test_end_fall_parts_fall_off_and_are_missed() -> None:
    cell, conv = make_cell(length=1.0, speed=0.5, end="fall")
    cell.start()
    part = put_part(cell, conv, 0.2)
    run(cell, 1.4)  # centre reaches the end after 1.6 s
    assert part.state == "on_conveyor"
    run(cell, 1.2)
    assert part.state == "missed"
    assert part.where == "in"
    assert part.body >= 0  # fell by physics, still in the world
    assert pos(cell, part)[2] < 0.1  # on the floor
    assert cell.parts.counts["missed"] == 1
    assert [e["part"] for e in cell._events if e["kind"] == "missed"] == [part.id]
    assert cell.kpis()["devices"]["in"]["missed"] == 1
    cell.close()


def test_end_remove_removes_parts_at_the_end() -> None:
    cell, conv = make_cell(length=1.0, speed=0.5, end="remove")
    cell.start()
    n_bodies = cell.world.num_bodies()
    part = put_part(cell, conv, 0.2)
    run(cell, 1.5)
    assert part.state == "on_conveyor"
    run(cell, 0.2)  # the centre reaches the end at ~1.6 s
    assert part.state == "missed"
    assert part.body == -1
    assert cell.world.num_bodies() == n_bodies
    assert cell.parts.counts["missed"] == 1
    cell.close()


def test_outfeed_counts_a_released_part_placed_and_removes_it_quietly() -> None:
    cell, conv = make_cell(length=1.0, speed=0.5, outfeed=True)
    cell.start()
    pose = SE3(conv.pose) * SE3.Tx(0.2 - conv.length / 2) * SE3.Tz(0.03)
    body = cell.world.add_box((0.1, 0.08, 0.05), pose, mass=0.3)
    part = cell.parts.spawn(body, "box", where="gripper")
    cell.parts.released(part)
    run(cell, 0.3)
    assert part.state == "placed"
    assert part.where == "in"
    run(cell, 2.0)
    assert part.body == -1  # removed at the end
    assert cell.parts.counts == {"spawned": 1, "picked": 0, "placed": 1, "dropped": 0, "missed": 0}
    assert cell.kpis()["devices"]["in"]["placed"] == 1
    cell.close()


def test_info_and_geometry_helpers() -> None:
    conv = Conveyor("c", SE3(1, 2, 0.7) * SE3.Rz(math.pi / 2), length=1.5, width=0.3, speed=0.2)
    info = conv.info()
    assert info["type"] == "conveyor"
    assert info["direction"] == pytest.approx([0, 1, 0], abs=1e-12)
    assert info["start"] == pytest.approx([1, 1.25, 0.7])
    assert info["end"] == pytest.approx([1, 2.75, 0.7])
    assert info["surface_z"] == pytest.approx(0.7)
    assert conv.along([1.1, 1.75, 0.75]) == pytest.approx(0.5)
    assert conv.on_belt([1.1, 1.75, 0.75])
    assert not conv.on_belt([1.2, 1.75, 0.75])  # beside the belt
    assert conv.on_belt([1.2, 1.75, 0.75], margin=0.06)
    assert not conv.on_belt([1.0, 1.75, 0.6])  # under the surface


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"speed": -0.1}, "devices.c.speed"),
        ({"length": 0.0}, "devices.c.length"),
        ({"end": "drop"}, "devices.c.end"),
    ],
    ids=["negative-speed", "zero-length", "bad-end"],
)
def test_bad_configuration_is_a_scenario_error(kw: dict, field: str) -> None:
    args: dict = {"pose": SE3(), "length": 1.0, "width": 0.3, "speed": 0.2}
    args.update(kw)
    with pytest.raises(ScenarioError) as err:
        Conveyor("c", **args)
    assert err.value.field == field
