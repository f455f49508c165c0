"""Sensors: a break beam and a presence box see a part pass at the times its motion predicts; the
camera's noise, misses and latency match their settings and its detections are seeded."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

from robocell.cell.cell import Cell
from robocell.errors import ScenarioError
from robocell.pnp.sensors import BreakBeam, Camera, PresenceSensor

TICK = 0.002  # s, the cell tick of a ur5e at its default control period
HALF = 0.025  # m, half the side of the test parts
SURFACE_Z = 0.5  # m
#: a conveyor-like path along world x: 2 m long, 0.3 m wide, surface at 0.5 m
BELT = {
    "start": [0.0, 0.0, SURFACE_Z],
    "direction": [1.0, 0.0, 0.0],
    "width": 0.3,
    "surface_z": SURFACE_Z,
    "length": 2.0,
}


def _cell(seed: int = 1) -> Cell:
    """A cell without gravity (parts stay where they are put) and a robot out of the way."""
    cell = Cell(seed=seed, gravity=(0.0, 0.0, 0.0))
    cell.add_robot("ur5e", base=SE3(0.0, 3.0, 0.0))
    return cell


def _part(cell: Cell, x: float, y: float = 0.0, yaw: float = 0.0) -> int:
    body = cell.world.add_box(
        [2 * HALF] * 3,
        SE3(x, y, SURFACE_Z + HALF) * SE3.Rz(yaw),
        mass=0.1,
        color=(0.9, 0.1, 0.1, 1.0),
    )
    cell.parts.spawn(body, "box")
    return body


def _drive(cell: Cell, body: int, x0: float, v: float, ticks: int) -> list[dict]:
    """Move ``body`` along x at ``v`` [m/s]: before tick k it is put at x0 + v·k·TICK.

    Returns the signal snapshots after each tick (with the time)."""
    cid = cell.world.client
    snaps = []
    for k in range(ticks):
        pb.resetBasePositionAndOrientation(
            body, [x0 + v * k * TICK, 0.0, SURFACE_Z + HALF], [0, 0, 0, 1], physicsClientId=cid
        )
        cell.step()
        snaps.append({"t": cell.time, **cell.signals})
    return snaps


def _crossing_ticks(x0: float, v: float, lo: float, hi: float) -> tuple[int, int]:
    """Indices k of the first tick on which the part's x (x0 + v·k·TICK) satisfies x >= lo, and
    the first on which x > hi."""
    k_in = math.ceil((lo - x0) / (v * TICK))
    k_out = math.floor((hi - x0) / (v * TICK)) + 1
    return k_in, k_out


def _events(cell: Cell, kind: str) -> list[dict]:
    return [e for e in cell._events if e["kind"] == kind]


# -- break beam ----------------------------------------------------------------------------------
def test_beam_across_a_belt_sees_a_part_pass_at_the_predicted_times() -> None:
    cell = _cell()
    body = _part(cell, 0.1)
    beam = cell.add_device(BreakBeam.across("b1", BELT, at=0.5, height=0.02))
    assert isinstance(beam, BreakBeam)
    np.testing.assert_allclose(beam.start_xyz, [0.5, -0.15, SURFACE_Z + 0.02])
    np.testing.assert_allclose(beam.end_xyz, [0.5, 0.15, SURFACE_Z + 0.02])
    # the faces cross x = 0.5 half-way between ticks (2.5 mm from either): Bullet's ray cast
    # against a box is exact to about 0.7 mm
    x0, v = 0.1225, 2.5  # m, m/s
    snaps = _drive(cell, body, x0, v, 120)
    # the beam is broken while the part's faces straddle x = 0.5
    k_rise, k_fall = _crossing_ticks(x0, v, 0.5 - HALF, 0.5 + HALF)
    t_rise, t_fall = (k_rise + 1) * TICK, (k_fall + 1) * TICK  # the tick ends after the move
    ev = _events(cell, "beam")
    assert [(e["edge"], e["part"], e["name"]) for e in ev] == [("rise", 1, "b1"), ("fall", 1, "b1")]
    assert ev[0]["t"] == pytest.approx(t_rise, abs=1e-9)
    assert ev[1]["t"] == pytest.approx(t_fall, abs=1e-9)
    # the broken time is the part's length over its speed, to the tick
    assert ev[1]["t"] - ev[0]["t"] == pytest.approx(2 * HALF / v, abs=TICK)
    broken = [s["t"] for s in snaps if s["beam.b1"]]
    assert broken[0] == pytest.approx(t_rise) and broken[-1] == pytest.approx(t_fall - TICK)
    rises = [s["t"] for s in snaps if s["beam.b1.rise"]]
    falls = [s["t"] for s in snaps if s["beam.b1.fall"]]
    assert rises == [pytest.approx(t_rise)] and falls == [pytest.approx(t_fall)]
    assert beam.kpis() == {"breaks": 1}


def test_beam_with_a_period_samples_on_its_multiples() -> None:
    cell = _cell()
    body = _part(cell, 0.1)
    cell.add_device(BreakBeam("b2", [0.5, -0.2, 0.52], [0.5, 0.2, 0.52], period_s=0.01))
    x0, v = 0.1225, 2.5
    _drive(cell, body, x0, v, 120)
    k_rise, k_fall = _crossing_ticks(x0, v, 0.5 - HALF, 0.5 + HALF)
    ev = _events(cell, "beam")
    # the first sample at or after the crossing tick
    assert ev[0]["t"] == pytest.approx(math.ceil((k_rise + 1) * TICK / 0.01 - 1e-9) * 0.01)
    assert ev[1]["t"] == pytest.approx(math.ceil((k_fall + 1) * TICK / 0.01 - 1e-9) * 0.01)


def test_beam_broken_by_a_body_that_is_not_a_part_names_part_0() -> None:
    cell = _cell()
    cell.world.add_box([0.05, 0.05, 0.05], SE3(0.5, 0.0, 0.52))
    cell.add_device(BreakBeam("b3", [0.5, -0.2, 0.52], [0.5, 0.2, 0.52]))
    cell.step()
    assert cell.signals["beam.b3"] is True
    assert _events(cell, "beam") == [
        {"t": pytest.approx(TICK), "kind": "beam", "name": "b3", "edge": "rise", "part": 0}
    ]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: BreakBeam("b", [0, 0, 1], [0, 0, 1]), "b.end"),
        (lambda: BreakBeam("b", [0, 0], [0, 0, 1]), "b.start"),
        (lambda: BreakBeam("b", [0, 0, 0], [1, 0, 0], period_s=0), "b.period_s"),
        (lambda: BreakBeam.across("b", {"start": [0, 0, 0]}, 0.5, 0.02), "b.conveyor"),
        (lambda: BreakBeam.across("b", BELT, at=2.5, height=0.02), "b.at"),
        (lambda: BreakBeam.across("b", BELT, at=0.5, height=-0.01), "b.height"),
        (lambda: PresenceSensor("p", SE3(), (0.1, 0.0, 0.1)), "p.size"),
        (lambda: PresenceSensor("p", [0, 0, 0], (0.1, 0.1, 0.1)), "p.pose"),
        (lambda: Camera("c"), "c.region"),
        (lambda: Camera("c", region=(SE3(), (1, 1, 1)), miss_rate=1.5), "c.miss_rate"),
        (lambda: Camera("c", region=(SE3(), (1, 1, 1)), latency_s=-0.1), "c.latency_s"),
        (lambda: Camera("c", region=(SE3(), (1, 1, 1)), noise_xy_m=math.nan), "c.noise_xy_m"),
    ],
    ids=[
        "beam-zero-length",
        "beam-short-vector",
        "beam-zero-period",
        "across-missing-keys",
        "across-beyond-belt",
        "across-negative-height",
        "presence-zero-size",
        "presence-not-se3",
        "camera-no-region",
        "camera-miss-rate",
        "camera-negative-latency",
        "camera-nan-noise",
    ],
)
def test_bad_sensor_settings_raise_scenario_errors(make: Callable[[], object], field: str) -> None:
    with pytest.raises(ScenarioError) as err:
        make()
    assert err.value.field == field


# -- presence ------------------------------------------------------------------------------------
def test_presence_box_sees_a_part_origin_inside() -> None:
    cell = _cell()
    body = _part(cell, 0.1)
    # an obstacle inside the box that is not a part is not a presence
    cell.world.add_box([0.02, 0.02, 0.02], SE3(0.5, 0.1, 0.53))
    # rotated by 90° about z: its x extent (0.3) lies along world y, its y extent (0.2) along x
    cell.add_device(
        PresenceSensor("p1", SE3(0.5, 0.0, 0.55) * SE3.Rz(math.pi / 2), (0.3, 0.2, 0.1))
    )
    x0, v = 0.1225, 2.5
    snaps = _drive(cell, body, x0, v, 120)
    k_in, k_out = _crossing_ticks(x0, v, 0.4, 0.6)
    ev = _events(cell, "presence")
    assert [(e["edge"], e["part"]) for e in ev] == [("rise", 1), ("fall", 1)]
    assert ev[0]["t"] == pytest.approx((k_in + 1) * TICK)
    assert ev[1]["t"] == pytest.approx((k_out + 1) * TICK)
    assert [s["t"] for s in snaps if s["presence.p1.rise"]] == [pytest.approx(ev[0]["t"])]
    assert [s["t"] for s in snaps if s["presence.p1.fall"]] == [pytest.approx(ev[1]["t"])]
    assert max(s["presence.p1.count"] for s in snaps) == 1


# -- camera --------------------------------------------------------------------------------------
def _camera_cell(seed: int = 1, **camera: object) -> tuple[Cell, Camera, dict[int, tuple]]:
    """20 parts at rest in a 1 m x 0.4 m region (yaw 0.3 rad); returns their true poses."""
    cell = _cell(seed)
    truth: dict[int, tuple] = {}
    for i in range(20):
        x, y = 0.05 + 0.045 * i, 0.1 * ((i % 3) - 1)
        _part(cell, x, y, yaw=0.3)
        truth[i + 1] = (x, y, 0.3)
    cam = Camera("cam1", region=(SE3(0.5, 0.0, 0.55), (1.0, 0.4, 0.2)), **camera)  # type: ignore[arg-type]
    cell.add_device(cam)
    return cell, cam, truth


def _run(cell: Cell, seconds: float) -> None:
    for _ in range(round(seconds / TICK)):
        cell.step()


def test_camera_noise_matches_its_settings() -> None:
    cell, cam, truth = _camera_cell(noise_xy_m=0.003, noise_yaw_deg=2.0, period_s=0.01)
    _run(cell, 0.5)
    det = _events(cell, "detected")
    assert len(det) == 50 * 20  # 50 frames of 20 parts, none missed
    dx = np.array([d["xyz"][0] - truth[d["part"]][0] for d in det])
    dy = np.array([d["xyz"][1] - truth[d["part"]][1] for d in det])
    dyaw = np.array([d["yaw"] - truth[d["part"]][2] for d in det])
    for err, std in ((dx, 0.003), (dy, 0.003), (dyaw, math.radians(2.0))):
        assert np.std(err) == pytest.approx(std, rel=0.15)
        assert abs(np.mean(err)) < 4 * std / math.sqrt(len(err))
    z = np.array([d["xyz"][2] for d in det])
    np.testing.assert_allclose(z, SURFACE_Z + HALF, atol=1e-6)  # z is not noised
    assert {d["type"] for d in det} == {"box"} and {d["camera"] for d in det} == {"cam1"}


def test_camera_miss_rate_is_within_its_statistical_bound() -> None:
    rate = 0.2
    cell, cam, _ = _camera_cell(miss_rate=rate, period_s=0.01)
    _run(cell, 0.5)
    k = cam.kpis()
    n = k["frames"] * 20
    assert k["frames"] == 50 and k["misses"] + k["detections"] == n
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(k["misses"] - n * rate) < 4.5 * sigma
    assert len(_events(cell, "detected")) == k["detections"]


@pytest.mark.parametrize(
    ("latency", "delay"),
    [(0.0, 0.0), (0.05, 0.05), (0.005, 0.006)],
    ids=["none", "whole-ticks", "rounded-up-to-the-tick"],
)
def test_camera_latency_is_exact_to_the_tick(latency: float, delay: float) -> None:
    cell, cam, _ = _camera_cell(latency_s=latency, period_s=0.1)
    _run(cell, 0.5)
    det = _events(cell, "detected")
    captures = sorted({d["t_capture"] for d in det})
    frames_delivered = 5 if latency == 0 else 4  # else the frame at 0.5 s is on its way
    assert captures == pytest.approx([0.1 * (i + 1) for i in range(frames_delivered)])
    for d in det:
        assert d["t"] - d["t_capture"] == pytest.approx(delay, abs=1e-9)
    assert cam.kpis()["mean_latency_s"] == pytest.approx(delay, abs=1e-9)


def _detections(seed: int) -> list[dict]:
    cell, _, _ = _camera_cell(seed, noise_xy_m=0.002, noise_yaw_deg=1.0, miss_rate=0.1)
    _run(cell, 0.3)
    out = _events(cell, "detected")
    cell.close()
    return out


def test_camera_detections_are_seeded() -> None:
    first, again, other = _detections(7), _detections(7), _detections(8)
    assert len(first) > 0
    assert first == again
    assert first != other


def test_camera_detections_reach_the_controller() -> None:
    cell, _, _ = _camera_cell(latency_s=0.01)
    seen = []
    for _ in range(round(0.12 / TICK)):
        obs = cell.step()
        seen += [e for e in obs.events if e["kind"] == "detected"]
    assert len(seen) == 20 and all(e["t"] == pytest.approx(0.11) for e in seen)


def test_camera_render_shows_the_parts() -> None:
    cell, cam, _ = _camera_cell()
    cell.step()
    img = cam.render(cell)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 1
    red = (img[:, :, 0] > 150) & (img[:, :, 1] < 80) & (img[:, :, 2] < 80)
    assert red.sum() > 20  # the red parts are in the picture
    for p in cell.parts:
        cell.parts.remove(p)
    empty = cam.render(cell)
    assert (np.abs(img.astype(int) - empty).sum(axis=2) > 30).sum() > 20
