"""Part types, arrival processes and the part source: exact schedules, the Poisson rate and the
type shares within statistical bounds, determinism, and a backed-up queue."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import Cell
from robocell.errors import ScenarioError
from robocell.pnp.conveyor import Conveyor
from robocell.pnp.parts import (
    FixedInterval,
    ListArrivals,
    PartSource,
    PartType,
    PoissonArrivals,
)
from robocell.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BOX = PartType("box", "box", size=(0.08, 0.06, 0.04), mass=0.2)
CAN = PartType("can", "cylinder", radius=0.03, height=0.07, mass=0.15)


def make_cell(seed: int = 1, ground: bool = True) -> Cell:
    cell = Cell(seed=seed, ground=ground)
    cell.add_robot("ur5e", base=SE3(-2.5, 0, 0))
    return cell


def belt(cell: Cell, **kw: object) -> Conveyor:
    args: dict = {"pose": SE3(0, 0, 0.8), "length": 1.5, "width": 0.4, "speed": 0.4}
    args.update(kw)
    return cell.add_device(Conveyor("in", **args))  # type: ignore[return-value]


def run(cell: Cell, seconds: float) -> None:
    for _ in range(round(seconds / cell.control_period)):
        cell.step()


def spawned(cell: Cell) -> list[dict]:
    return [e for e in cell._events if e["kind"] == "spawned"]


# -- arrival processes -----------------------------------------------------------------------
def test_fixed_interval_is_exact() -> None:
    arr = FixedInterval(0.7, start_s=1.5)
    rng = np.random.default_rng(0)
    t, times = -math.inf, []
    for _ in range(10_000):
        t = arr.next_time(t, rng)
        times.append(t)
    assert times[:3] == [1.5, 1.5 + 0.7, 1.5 + 1.4]
    # computed from the start, not by adding up intervals: no drift after 10 000 arrivals
    assert times[-1] == 1.5 + 9999 * 0.7
    assert np.diff(times) == pytest.approx(0.7, abs=1e-9)


def test_list_arrivals_are_exact_and_end() -> None:
    arr = ListArrivals((0.0, 0.25, 3.0))
    rng = np.random.default_rng(0)
    assert arr.next_time(-math.inf, rng) == 0.0
    assert arr.next_time(0.0, rng) == 0.25
    assert arr.next_time(0.25, rng) == 3.0
    assert arr.next_time(3.0, rng) is None


def test_poisson_arrivals_have_the_configured_mean_rate() -> None:
    rate_per_min = 30.0  # mean gap 2 s
    arr = PoissonArrivals(rate_per_min)
    rng = np.random.default_rng(123)
    n = 20_000
    t, times = -math.inf, []
    for _ in range(n):
        t = arr.next_time(t, rng)
        times.append(t)
    gaps = np.diff([0.0, *times])
    # mean of n exponential gaps: standard error = mean / sqrt(n) = 0.014 s; allow 4 of them
    assert gaps.mean() == pytest.approx(2.0, abs=4 * 2.0 / math.sqrt(n))
    assert n / times[-1] * 60 == pytest.approx(rate_per_min, rel=0.03)
    # exponential gaps: standard deviation equals the mean
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)


def test_poisson_arrivals_begin_at_their_start() -> None:
    """``start`` shifts the whole seeded sequence: the gaps are the same draws."""
    a, b = PoissonArrivals(30.0), PoissonArrivals(30.0, start_s=40.0)
    ra, rb = np.random.default_rng(5), np.random.default_rng(5)
    ta, tb = a.next_time(-math.inf, ra), b.next_time(-math.inf, rb)
    assert tb == pytest.approx(ta + 40.0, abs=1e-12)
    assert tb > 40.0
    assert b.next_time(tb, rb) - tb == pytest.approx(a.next_time(ta, ra) - ta, abs=1e-12)


def test_a_scenario_poisson_start_delays_the_first_part(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "pick_and_place.yaml").read_text()
    old = "arrivals: {process: poisson, rate_per_min: 24}"
    assert old in text
    f = tmp_path / "late.yaml"
    f.write_text(
        text.replace(old, old[:-1] + ", start: 3.0}").replace(
            "controllers/", f"{ROOT}/controllers/"
        )
    )
    cell = cell_from_scenario(load_scenario(f))
    try:
        res = cell.run(4.0)
    finally:
        cell.close()
    spawned = [e["t"] for e in res.events if e["kind"] == "spawned"]
    assert spawned and min(spawned) >= 3.0


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: FixedInterval(0.0), "arrivals.interval_s"),
        (lambda: PoissonArrivals(1.0, start_s=-2.0), "arrivals.start_s"),
        (lambda: PoissonArrivals(-1.0), "arrivals.rate_per_min"),
        (lambda: ListArrivals((0.0, 2.0, 1.0)), "arrivals.times_s[2]"),
    ],
    ids=["zero-interval", "negative-start", "negative-rate", "unsorted-list"],
)
def test_bad_arrivals_are_scenario_errors(make: object, field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        make()  # type: ignore[operator]
    assert err.value.field == field


# -- part types ------------------------------------------------------------------------------
def block_obj(tmp_path: Path) -> Path:
    """An OBJ block 0.06 x 0.04 x 0.03 (file units) with its origin on the bottom face."""
    obj = tmp_path / "block.obj"
    corners = [(x, y, z) for x in (-0.03, 0.03) for y in (-0.02, 0.02) for z in (0.0, 0.03)]
    faces = "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n"
    obj.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in corners) + faces)
    return obj


def test_part_type_geometry(tmp_path: Path) -> None:
    assert BOX.half_height == pytest.approx(0.02)
    assert CAN.half_height == pytest.approx(0.035)
    assert CAN.rest_offset == pytest.approx(0.035)
    mesh = PartType("block", "mesh", file=block_obj(tmp_path), scale=2.0, mass=0.1)
    assert mesh.half_height == pytest.approx(0.03)
    assert mesh.rest_offset == pytest.approx(0.0)
    assert mesh.describe()["half_height"] == pytest.approx(0.03)


def test_mesh_parts_spawn_resting_on_the_belt(tmp_path: Path) -> None:
    mesh = PartType("block", "mesh", file=block_obj(tmp_path), scale=2.0, mass=0.1)
    cell = make_cell()
    conv = belt(cell, speed=0.0)
    cell.add_device(PartSource("feed", [mesh], ListArrivals((0.0,)), conv, at=0.3))
    cell.start()
    run(cell, 0.5)
    (part,) = cell.parts.active()
    p = pb.getBasePositionAndOrientation(part.body, physicsClientId=cell.world.client)[0]
    assert conv.local(p) == pytest.approx([0.3, 0.0, 0.0], abs=1e-3)  # origin on the surface
    cell.close()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"shape": "box", "size": (0.1, -0.1, 0.1)}, "part_types.p.size"),
        ({"shape": "box", "size": (0.1, 0.1, 0.1), "mass": 0.0}, "part_types.p.mass"),
        ({"shape": "cylinder", "radius": 0.05}, "part_types.p.height"),
        ({"shape": "mesh", "file": "no/such.obj"}, "part_types.p.file"),
        ({"shape": "sphere"}, "part_types.p.shape"),
    ],
    ids=["negative-size", "zero-mass", "cylinder-without-height", "missing-mesh", "bad-shape"],
)
def test_bad_part_types_are_scenario_errors(kw: dict, field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        PartType("p", **kw)
    assert err.value.field == field


# -- the source ------------------------------------------------------------------------------
def test_fixed_arrivals_spawn_on_time_on_the_belt_surface() -> None:
    cell = make_cell()
    conv = belt(cell, speed=0.5, end="remove")
    src = cell.add_device(PartSource("feed", [BOX], FixedInterval(0.5, start_s=0.1), conv, at=0.1))
    cell.start()
    run(cell, 2.05)
    ev = spawned(cell)
    assert [e["t"] for e in ev] == pytest.approx([0.1, 0.6, 1.1, 1.6], abs=1e-9)
    assert all(e["delay_s"] == 0 and e["where"] == "in" for e in ev)
    first = cell.parts.get(ev[-1]["part"])
    assert first is not None
    p = pb.getBasePositionAndOrientation(first.body, physicsClientId=cell.world.client)[0]
    # resting on the belt 0.45 s x 0.5 m/s downstream of the spawn spot
    assert p[2] == pytest.approx(0.8 + BOX.half_height, abs=1e-3)
    assert conv.along(p) == pytest.approx(0.1 + 0.5 * 0.45, abs=0.005)
    assert src.kpis()["spawned"] == 4
    assert src.info()["types"]["box"]["half_height"] == pytest.approx(0.02)
    cell.close()


def test_list_arrivals_spawn_at_the_listed_times_and_max_parts() -> None:
    cell = make_cell()
    conv = belt(cell)
    cell.add_device(
        PartSource("feed", [BOX], ListArrivals((0.0, 0.3, 0.9, 1.2)), conv, max_parts=3)
    )
    cell.start()
    run(cell, 1.5)
    assert [e["t"] for e in spawned(cell)] == pytest.approx([0.0, 0.3, 0.9], abs=1e-9)
    cell.close()


def test_shares_are_respected_over_many_spawns() -> None:
    # no floor: each part falls away from the spawn spot, so one can spawn every tick
    cell = make_cell(ground=False)
    a = PartType("a", "box", size=(0.02, 0.02, 0.02), share=3.0)
    b = PartType("b", "box", size=(0.02, 0.02, 0.02), share=1.0)
    src = PartSource("feed", [a, b], FixedInterval(0.002), pose=SE3(0, 0, 1.0), max_parts=3000)
    cell.add_device(src)
    cell.start()
    for _ in range(3010):
        cell.step()
        for part in cell.parts.active():
            cell.parts.missed(part, "test", remove=True)  # keep the world small
    by_type = src.kpis()["by_type"]
    n = sum(by_type.values())
    assert n == 3000
    share_a = by_type["a"] / n
    # binomial: standard error sqrt(0.75 * 0.25 / 3000) = 0.0079; allow 4 of them
    assert share_a == pytest.approx(0.75, abs=4 * math.sqrt(0.75 * 0.25 / n))
    cell.close()


def _spawn_log(seed: int) -> list[tuple]:
    cell = make_cell(seed=seed)
    conv = belt(cell, speed=0.5, end="remove")
    cell.add_device(
        PartSource(
            "feed",
            [BOX, CAN],
            PoissonArrivals(60.0),
            conv,
            jitter_lateral=0.05,
            jitter_yaw_deg=30.0,
        )
    )
    log: list[tuple] = []
    cell.start()
    seen = 0
    for _ in range(2500):  # 5 s
        cell.step()
        ev = spawned(cell)
        for e in ev[seen:]:
            part = cell.parts.get(e["part"])
            assert part is not None
            p, q = pb.getBasePositionAndOrientation(part.body, physicsClientId=cell.world.client)
            log.append((e["t"], e["type"], e["arrival_t"], p, q))
        seen = len(ev)
    cell.close()
    return log


def test_same_seed_gives_identical_spawns_and_another_seed_does_not() -> None:
    first, again, other = _spawn_log(7), _spawn_log(7), _spawn_log(8)
    assert len(first) >= 3
    assert first == again  # exact: times, types and poses
    assert first != other


def test_jitter_stays_within_its_bounds() -> None:
    cell = make_cell()
    conv = belt(cell, speed=1.0, length=1.0, end="remove")
    cell.add_device(
        PartSource(
            "feed",
            [CAN],
            FixedInterval(0.1),
            conv,
            at=0.1,
            jitter_lateral=0.08,
            jitter_yaw_deg=20.0,
        )
    )
    lateral, cid = [], cell.world.client
    cell.start()
    seen = 0
    for _ in range(500):
        cell.step()
        ev = spawned(cell)
        for e in ev[seen:]:
            part = cell.parts.get(e["part"])
            assert part is not None
            p = pb.getBasePositionAndOrientation(part.body, physicsClientId=cid)[0]
            lateral.append(conv.local(p)[1])
        seen = len(ev)
    lat = np.array(lateral)
    assert len(lat) == 10
    assert np.all(np.abs(lat) <= 0.08 + 1e-3)
    assert lat.std() > 0.02  # it does spread
    cell.close()


def test_a_backed_up_queue_delays_spawns_and_counts_them() -> None:
    cell = make_cell()
    conv = belt(cell, speed=0.3, running=False)
    src = cell.add_device(PartSource("feed", [BOX], FixedInterval(0.2), conv, at=0.1))
    cell.start()
    run(cell, 1.0)  # the belt stands: the first part blocks the spot for the next ones
    assert src.kpis()["spawned"] == 1
    assert cell.signals["source.feed.waiting"] == 4
    cell.signals["conveyor.in.running"] = True
    run(cell, 2.0)
    k = src.kpis()
    assert k["spawned"] >= 5
    assert k["delayed_spawns"] == k["spawned"] - 1
    assert k["worst_delay_s"] > 0.5
    ev = spawned(cell)
    assert ev[1]["arrival_t"] == pytest.approx(0.2)
    assert ev[1]["delay_s"] > 0.5
    # the parts queue up without overlapping: at least a part length apart along the belt
    cid = cell.world.client
    along = sorted(
        conv.along(pb.getBasePositionAndOrientation(p.body, physicsClientId=cid)[0])
        for p in cell.parts.active()
    )
    assert np.min(np.diff(along)) >= BOX.size[0] - 1e-3  # type: ignore[index]
    cell.close()


def test_source_needs_its_conveyor_in_the_cell_first() -> None:
    cell = make_cell()
    conv = Conveyor("in", SE3(0, 0, 0.8), length=1.0, width=0.3, speed=0.2)
    with pytest.raises(ScenarioError, match="add it before the source"):
        cell.add_device(PartSource("feed", [BOX], FixedInterval(1.0), conv))
    with pytest.raises(ScenarioError) as err:
        PartSource("feed", [BOX], FixedInterval(1.0), conv, jitter_lateral=0.2)
    assert err.value.field == "devices.feed.jitter_lateral"
    cell.close()
