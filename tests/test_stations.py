"""Stations and the part monitor: released parts that come to rest in a bin, a pallet slot or a
fixture count placed there; on the floor or out of the cell they count dropped; on a belt they
ride on."""

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
from robocell.pnp.stations import Bin, Fixture, Pallet, PartMonitor

SIZE = (0.06, 0.05, 0.04)


def make_cell(*devices: object, ground: bool = True) -> Cell:
    cell = Cell(seed=3, ground=ground)
    cell.add_robot("ur5e", base=SE3(-2.5, 0, 0))
    for d in devices:
        cell.add_device(d)  # type: ignore[arg-type]
    cell.add_device(PartMonitor())
    cell.start()
    return cell


def release(cell: Cell, xyz: tuple[float, float, float], size: tuple = SIZE) -> Part:
    """A part let go of by a gripper at ``xyz`` (its centre) [m]."""
    body = cell.world.add_box(size, SE3(*xyz), mass=0.2)
    part = cell.parts.spawn(body, "box", where="gripper")
    cell.parts.picked(part, "gripper")
    cell.parts.released(part)
    return part


def run(cell: Cell, seconds: float) -> None:
    for _ in range(round(seconds / cell.control_period)):
        cell.step()


def events(cell: Cell, kind: str) -> list[dict]:
    return [e for e in cell._events if e["kind"] == kind]


def test_part_dropped_into_a_bin_counts_placed() -> None:
    bin_ = Bin("bin", SE3(0.5, 0.3, 0.01), size=(0.3, 0.2, 0.12))
    cell = make_cell(bin_)
    assert cell.signals["station.bin.count"] == 0
    part = release(cell, (0.52, 0.28, 0.25))
    run(cell, 0.8)
    assert part.state == "placed"
    assert part.where == "bin"
    assert cell.signals["station.bin.count"] == 1
    (ev,) = events(cell, "placed")
    assert ev["station"] == "bin" and ev["part"] == part.id
    assert cell.kpis()["devices"]["parts"]["placed"] == {"bin": 1}
    assert bin_.info()["drop"].t == pytest.approx([0.5, 0.3, 0.01])
    cell.close()


def test_part_on_a_pallet_counts_the_right_slot_and_its_error() -> None:
    pallet = Pallet(
        "pal", SE3(0.6, -0.2, 0.1), rows=2, cols=3, pitch=(0.1, 0.08), size=(0.4, 0.25, 0.02)
    )
    cell = make_cell(pallet)
    slots = pallet.info()["slots"]
    assert len(slots) == 6
    # slot 4 = row 1, col 1: x = 0, y = +0.04 in the pallet frame
    assert slots[4].t == pytest.approx([0.6, -0.16, 0.1])
    target = slots[4].t + [0.003, 0.0, 0.0]
    part = release(cell, (target[0], target[1], 0.1 + 0.02 + 0.005))
    run(cell, 0.6)
    assert part.state == "placed"
    (ev,) = events(cell, "placed")
    assert ev["station"] == "pal"
    assert ev["slot"] == 4
    assert ev["slot_taken"] is False
    assert ev["error_m"] == pytest.approx(0.003, abs=0.001)
    # a second part on the same slot counts, flagged
    release(cell, (target[0] - 0.003, target[1], 0.1 + 0.06 + 0.02 + 0.005))
    run(cell, 0.6)
    second = events(cell, "placed")[1]
    assert second["slot"] == 4 and second["slot_taken"] is True
    k = cell.kpis()["devices"]["parts"]
    assert k["placed"] == {"pal": 2}
    assert k["slot_taken"] == 1
    assert k["pallet_error_max_m"] == pytest.approx(0.003, abs=0.001)
    assert cell.signals["station.pal.count"] == 2
    cell.close()


def test_slot_of_and_contains() -> None:
    pallet = Pallet("pal", SE3(1, 0, 0.1) * SE3.Rz(math.pi / 2), rows=2, cols=2, pitch=(0.1, 0.1))
    # turned 90 degrees: the pallet's x is the world's y, its y the world's -x
    assert pallet.slot_of([0.95, 0.05, 0.12]) == (3, pytest.approx(0.0, abs=1e-12))
    assert pallet.slot_of([1.05, 0.05, 0.12]) == (1, pytest.approx(0.0, abs=1e-12))
    assert pallet.slot_of([0.96, 0.07, 0.12]) == (3, pytest.approx(math.hypot(0.02, 0.01)))
    assert pallet.slot_of([1.3, 0.0, 0.12]) is None  # off the pallet
    assert not pallet.contains([1.05, 0.05, 0.5])  # far above it
    with pytest.raises(ScenarioError) as err:
        Pallet("p", SE3(), rows=3, cols=3, pitch=(0.3, 0.1), size=(0.4, 0.4, 0.02))
    assert err.value.field == "devices.p.pitch"


def test_part_on_the_floor_counts_dropped_after_resting_there() -> None:
    cell = make_cell(Bin("bin", SE3(0.5, 0.3, 0.0)))
    part = release(cell, (0.0, 0.6, 0.1))
    run(cell, 0.4)  # it lands after ~0.14 s and must rest 0.3 s outside every station
    assert part.state == "free"
    run(cell, 0.3)
    assert part.state == "dropped"
    (ev,) = events(cell, "dropped")
    assert ev["reason"] == "outside"
    assert 0.4 < ev["t"] < 0.55
    assert cell.kpis()["devices"]["parts"]["dropped"] == {"outside": 1}
    cell.close()


def test_part_falling_out_of_the_cell_counts_dropped() -> None:
    cell = make_cell(ground=False)
    part = release(cell, (0.0, 0.6, 0.1))
    run(cell, 0.5)
    assert part.state == "dropped"
    assert events(cell, "dropped")[0]["reason"] == "fell"
    cell.close()


def test_fixture_reports_its_seating_error_and_tolerance() -> None:
    seat = SE3(0.4, -0.4, 0.3)
    fix = Fixture("nest", seat, size=SIZE, tolerance=0.005)
    fix2 = Fixture("nest2", SE3(0.4, 0.4, 0.3), size=SIZE, tolerance=0.005)
    cell = make_cell(fix, fix2)
    release(cell, (0.401, -0.4, 0.3 + 0.003))
    release(cell, (0.41, 0.4, 0.3 + 0.003))  # 10 mm off
    run(cell, 0.5)
    placed = {e["station"]: e for e in events(cell, "placed")}
    assert placed["nest"]["in_tolerance"] is True
    assert placed["nest"]["error_m"] == pytest.approx(0.001, abs=0.001)
    assert placed["nest2"]["in_tolerance"] is False
    assert placed["nest2"]["error_m"] == pytest.approx(0.01, abs=0.001)
    assert cell.kpis()["devices"]["parts"]["fixture_out_of_tolerance"] == 1
    cell.close()


def test_part_released_onto_a_belt_rides_on() -> None:
    conv = Conveyor("in", SE3(0, 0, 0.8), length=2.0, width=0.4, speed=0.3)
    cell = make_cell(conv)
    part = release(cell, (-0.5, 0.0, 0.8 + 0.02 + 0.01))
    run(cell, 0.3)
    assert part.state == "on_conveyor"
    assert part.where == "in"
    (ev,) = events(cell, "landed")
    assert ev["conveyor"] == "in"
    cid = cell.world.client
    x0 = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0][0]
    run(cell, 1.0)
    x1 = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0][0]
    assert x1 - x0 == pytest.approx(0.3, rel=0.01)
    cell.close()


def test_part_falling_off_the_side_of_a_belt_counts_dropped() -> None:
    conv = Conveyor("in", SE3(0, 0, 0.5), length=2.0, width=0.3, speed=0.2)
    cell = make_cell(conv)
    body = cell.world.add_box(SIZE, SE3(-0.5, 0.0, 0.5 + 0.0201), mass=0.2)
    part = cell.parts.spawn(body, "box", where="in")
    run(cell, 0.2)
    cid = cell.world.client
    pb.resetBaseVelocity(body, [0.2, 1.5, 0.0], [0, 0, 0], physicsClientId=cid)  # a shove
    run(cell, 1.0)
    assert part.state == "dropped"
    (ev,) = events(cell, "dropped")
    assert ev["reason"] == "fell_off_conveyor"
    assert np.asarray(pb.getBasePositionAndOrientation(body, physicsClientId=cid)[0])[2] < 0.1
    cell.close()


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Bin("b", SE3(), size=(0.3, 0.2)), "devices.b.size"),
        (lambda: Bin("b", SE3(), size=(0.3, 0.2, 0.1), wall=0.2), "devices.b.wall"),
        (lambda: Pallet("p", SE3(), rows=0, cols=2), "devices.p.rows"),
        (lambda: Fixture("f", SE3(), size=(0.1, 0.1, 0.1), tolerance=-1.0), "devices.f.tolerance"),
    ],
    ids=["bin-size", "bin-wall", "pallet-rows", "fixture-tolerance"],
)
def test_bad_stations_are_scenario_errors(make: object, field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        make()  # type: ignore[operator]
    assert err.value.field == field
