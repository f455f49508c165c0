"""Height-field stock: removed volume and shapes against geometry (no physics engine)."""

from __future__ import annotations

import numpy as np
import pytest

from robocell.errors import ScenarioError
from robocell.machining.cutters import Cutter
from robocell.machining.stock import HeightField

MM = 1e-3
TOP = 10 * MM


def slot_path(hf: HeightField, cutter: Cutter, p0, p1, step: float) -> float:
    """Sweep p0 -> p1 in steps of ``step``; return the summed Cut.volume."""
    p0 = np.asarray(p0, float)
    p1 = np.asarray(p1, float)
    n = max(1, int(np.ceil(np.linalg.norm(p1 - p0) / step)))
    total = 0.0
    for k in range(n):
        total += hf.sweep(cutter, p0 + (p1 - p0) * k / n, p0 + (p1 - p0) * (k + 1) / n).volume
    return total


def test_pocket_volume_matches_analytic_within_1_percent() -> None:
    # 40 x 30 mm pocket, 3 mm deep, flat 10 mm cutter: corners get radius r = 5 mm, so the
    # analytic volume is depth * (L W - (4 - pi) r^2). Zig-zag rows then a finishing contour.
    cutter = Cutter("flat", 10 * MM)
    r = cutter.radius
    hf = HeightField(60 * MM, 50 * MM, TOP, cell=0.25 * MM)
    x0, y0, length, width, depth = 10 * MM, 10 * MM, 40 * MM, 30 * MM, 3 * MM
    z = TOP - depth
    xs = (x0 + r, x0 + length - r)
    rows = np.linspace(y0 + r, y0 + width - r, 4)  # stepover 6.7 mm < D
    path = [np.array([xs[0], rows[0], TOP + MM]), np.array([xs[0], rows[0], z])]
    for k, y in enumerate(rows):
        a, b = (xs[0], xs[1]) if k % 2 == 0 else (xs[1], xs[0])
        path += [np.array([a, y, z]), np.array([b, y, z])]
    corners = [(xs[0], rows[0]), (xs[1], rows[0]), (xs[1], rows[-1]), (xs[0], rows[-1])]
    path += [np.array([x, y, z]) for x, y in corners + corners[:1]]
    v0 = hf.volume()
    total = sum(hf.sweep(cutter, a, b).volume for a, b in zip(path[:-1], path[1:]))
    analytic = depth * (length * width - (4 - np.pi) * r * r)
    assert total == pytest.approx(v0 - hf.volume(), rel=1e-12)
    assert total == pytest.approx(analytic, rel=0.01)


def test_slot_is_as_wide_as_the_cutter_within_one_cell_and_as_deep_as_commanded() -> None:
    cell = 0.5 * MM
    cutter = Cutter("flat", 10 * MM)
    hf = HeightField(60 * MM, 30 * MM, TOP, cell=cell)
    z = TOP - 2 * MM
    slot_path(hf, cutter, [-6 * MM, 15 * MM, z], [66 * MM, 15 * MM, z], 0.05 * MM)
    xs, ys = hf.centres()
    for i in (10, 60, 100):
        cut = hf.h[:, i] < TOP - 1e-12
        width = ys[cut].max() - ys[cut].min() + cell  # cell-centre extent + one cell
        assert abs(width - cutter.diameter) <= cell
        assert hf.h[cut, i] == pytest.approx(z, abs=1e-12)


@pytest.mark.parametrize(
    "cutter",
    [Cutter("ball", 10 * MM), Cutter("bullnose", 10 * MM, corner_radius=2 * MM)],
    ids=["ball", "bullnose"],
)
def test_groove_cross_section_is_the_cutter_profile(cutter: Cutter) -> None:
    # a level groove's cross-section is the cutter's lower surface: h(y) = z + height(|y - yc|)
    cell = 0.25 * MM
    hf = HeightField(40 * MM, 20 * MM, TOP, cell=cell)
    z, yc = TOP - 3 * MM, 10 * MM
    slot_path(hf, cutter, [-6 * MM, yc, z], [46 * MM, yc, z], 0.05 * MM)
    xs, ys = hf.centres()
    expected = np.minimum(TOP, z + cutter.height(np.abs(ys - yc)))
    for i in (40, 80, 120):
        # ball: closed form, exact; bull-nose corner: sampled every cell/4 along the path
        assert np.max(np.abs(hf.h[:, i] - expected)) < (1e-12 if cutter.kind == "ball" else 1e-6)


@pytest.mark.parametrize(
    "cutter",
    [
        Cutter("flat", 10 * MM),
        Cutter("ball", 10 * MM),
        Cutter("bullnose", 10 * MM, corner_radius=2 * MM),
    ],
    ids=["flat", "ball", "bullnose"],
)
def test_one_large_step_removes_the_same_as_200_small_steps(cutter: Cutter) -> None:
    # a 20 mm diagonal ramp in one sweep vs 200 sweeps of 0.1 mm: nothing is skipped
    a = np.array([5 * MM, 6 * MM, TOP - 0.5 * MM])
    b = np.array([21 * MM, 18 * MM, TOP - 2.5 * MM])
    one = HeightField(30 * MM, 25 * MM, TOP, cell=0.25 * MM)
    many = one.copy()
    v_one = one.sweep(cutter, a, b).volume
    v_many = slot_path(many, cutter, a, b, np.linalg.norm(b - a) / 200)
    tol = 1e-12 if cutter.kind != "bullnose" else 2e-6
    assert np.max(np.abs(one.h - many.h)) < tol
    assert v_one == pytest.approx(v_many, rel=1e-3 if cutter.kind == "bullnose" else 1e-9)


def test_ramp_cuts_the_exact_inclined_floor() -> None:
    # flat cutter descending from z_a to z_b while moving +x: a cell at x (on the path's centre
    # line) is last covered when the axis is at x + R, so its floor is z(x + R) where still on
    # the ramp, and z_b beyond its end.
    cutter = Cutter("flat", 10 * MM)
    cell = 0.25 * MM
    hf = HeightField(50 * MM, 20 * MM, TOP, cell=cell)
    xa, xb, za, zb, yc = 5 * MM, 35 * MM, TOP, TOP - 3 * MM, 10.125 * MM
    cut = hf.sweep(cutter, [xa, yc, za], [xb, yc, zb])
    xs, ys = hf.centres()
    j = int(np.argmin(np.abs(ys - yc)))
    x_last = np.minimum(xs + cutter.radius, xb)
    floor = za + (zb - za) * (x_last - xa) / (xb - xa)
    inside = (xs > xa - cutter.radius) & (xs < xb + cutter.radius)
    assert np.max(np.abs(hf.h[j, inside] - np.minimum(floor[inside], TOP))) < 1e-12
    assert cut.plunge > 0.0  # everything below the start height was cut by the bottom


def test_ball_ramp_matches_brute_force_minimum_over_the_segment() -> None:
    cutter = Cutter("ball", 8 * MM)
    hf = HeightField(30 * MM, 30 * MM, TOP, cell=0.5 * MM)
    a = np.array([6 * MM, 8 * MM, TOP - 1 * MM])
    b = np.array([22 * MM, 20 * MM, TOP - 4 * MM])
    hf.sweep(cutter, a, b)
    xs, ys = hf.centres()
    gx, gy = np.meshgrid(xs, ys)
    brute = np.full(gx.shape, TOP)
    for t in np.linspace(0.0, 1.0, 4001):
        p = a + t * (b - a)
        brute = np.minimum(brute, p[2] + cutter.height(np.hypot(gx - p[0], gy - p[1])))
    # dense sampling overestimates the true minimum by at most ~(spacing)^2 / (2R)
    assert np.max(np.abs(hf.h - brute)) < 1e-7
    assert np.all(hf.h <= brute + 1e-12)


def test_heights_never_increase_and_the_volume_is_accounted() -> None:
    rng = np.random.default_rng(7)
    cutters = [
        Cutter("flat", 6 * MM),
        Cutter("ball", 8 * MM),
        Cutter("bullnose", 10 * MM, corner_radius=1 * MM),
    ]
    hf = HeightField(40 * MM, 40 * MM, TOP, cell=0.5 * MM)
    v0 = hf.volume()
    total = 0.0
    p = np.array([20 * MM, 20 * MM, TOP + 1 * MM])
    for k in range(150):
        q = np.array([*rng.uniform(-5 * MM, 45 * MM, 2), rng.uniform(-2 * MM, TOP + MM)])
        before = hf.h.copy()
        total += hf.sweep(cutters[k % 3], p, q).volume
        assert np.all(hf.h <= before)
        p = q
    assert np.all(hf.h >= hf.bottom)
    assert total == pytest.approx(v0 - hf.volume(), rel=1e-12)
    assert hf.h.min() == hf.bottom  # some moves went below the bottom: clipped (through-cut)


def test_engagement_of_a_slot_and_of_side_milling() -> None:
    cell = 0.5 * MM
    cutter = Cutter("flat", 10 * MM)
    hf = HeightField(60 * MM, 30 * MM, TOP, cell=cell)
    z, step = TOP - 2 * MM, 1000 / 60 * MM * 0.002  # 1000 mm/min at 2 ms ticks
    p = np.array([0.0, 15 * MM, z])
    cuts = []
    while p[0] < 30 * MM:
        q = p + [step, 0.0, 0.0]
        cuts.append(hf.sweep(cutter, p, q))
        p = q
    steady = cuts[len(cuts) // 2 :]  # the cutter is fully in the material
    assert all(abs(c.width - cutter.diameter) <= cell for c in steady)
    assert all(c.depth == pytest.approx(2 * MM, abs=1e-12) for c in steady)
    assert all(c.direction @ [1.0, 0.0] > 0.999 for c in steady)
    assert all(c.plunge == 0.0 for c in steady)
    # side milling along the stock's edge with a_e = 3 mm, material on the left (+y)
    side = HeightField(60 * MM, 30 * MM, TOP, cell=cell)
    y = -cutter.radius + 3 * MM  # the stock starts at y = 0
    p = np.array([0.0, y, z])
    for _ in range(400):
        q = p + [step, 0.0, 0.0]
        c = side.sweep(cutter, p, q)
        p = q
    assert abs(c.width - 3 * MM) <= cell
    assert c.direction[1] > 0.5


def test_plunge_volume_is_the_cylinder_below_the_start() -> None:
    cutter = Cutter("flat", 10 * MM)
    hf = HeightField(20 * MM, 20 * MM, TOP, cell=0.25 * MM)
    cut = hf.sweep(cutter, [10 * MM, 10 * MM, TOP], [10 * MM, 10 * MM, TOP - 4 * MM])
    cylinder = np.pi * cutter.radius**2 * 4 * MM
    assert cut.plunge == pytest.approx(cut.volume, rel=1e-12)
    assert cut.volume == pytest.approx(cylinder, rel=0.01)  # the disc's cell count
    assert cut.depth == pytest.approx(4 * MM)


def test_bad_inputs_give_clear_errors() -> None:
    with pytest.raises(ScenarioError, match="flat, ball, bullnose"):
        Cutter("conical", 10 * MM)
    with pytest.raises(ScenarioError, match="0 < r < D/2"):
        Cutter("bullnose", 10 * MM, corner_radius=6 * MM)
    with pytest.raises(ScenarioError, match="whole number"):
        HeightField(10.1 * MM, 10 * MM, TOP, cell=0.25 * MM)
