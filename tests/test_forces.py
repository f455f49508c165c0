"""Kienzle cutting forces against hand calculations from the formula."""

from __future__ import annotations

import numpy as np
import pytest

from robocell.errors import RobocellError, ScenarioError
from robocell.machining.cutters import Cutter
from robocell.machining.forces import MATERIALS, cutting_load, material
from robocell.machining.stock import Cut, HeightField

MM = 1e-3
AL = material("aluminium_wrought")
CUTTER = Cutter("flat", 10 * MM, flutes=2)
RPM = 10_000.0
DT = 0.002


def feed(fz_mm: float, direction=(1.0, 0.0)) -> np.ndarray:
    """Feed velocity [m/s] for f_z [mm] at RPM with CUTTER's flutes."""
    vf = fz_mm * MM * CUTTER.flutes * RPM / 60.0
    return np.array([direction[0] * vf, direction[1] * vf, 0.0])


def slot(depth=2 * MM, direction=(1.0, 0.0)) -> Cut:
    return Cut(volume=1e-9, depth=depth, width=CUTTER.diameter, direction=np.array(direction))


def test_slotting_in_aluminium_matches_the_hand_calculation() -> None:
    # D = 10 mm, z = 2, f_z = 0.05 mm, a_p = 2 mm, n = 10 000 rpm (v_f = 1000 mm/min).
    # Slotting: phi = 180 deg, h_m = 2 f_z / pi = 0.03183 mm; k_c = 700 h_m^-0.25 = 1657 N/mm^2;
    # per engaged tooth F = k_c a_p h_m = 105.5 N; teeth in cut z phi / 2 pi = 1;
    # v_c = pi D n = 5.236 m/s, P = 552 W, torque = F D / 2 = 0.527 N m.
    load = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), slot(), DT)
    h_m = 2 * 0.05 / np.pi  # mm
    kc = 700.0 * h_m**-0.25  # N/mm^2
    f_t = kc * 2.0 * h_m * (2 * np.pi / (2 * np.pi))  # N
    assert load.chip_thickness == pytest.approx(h_m * MM, rel=1e-12)
    assert load.feed_per_tooth == pytest.approx(0.05 * MM, rel=1e-12)
    assert load.engagement_deg == pytest.approx(180.0)
    assert load.kc == pytest.approx(kc * 1e6, rel=1e-12)
    assert f_t == pytest.approx(105.5, abs=0.05)
    assert load.torque == pytest.approx(f_t * 5 * MM, rel=1e-12)
    assert load.power == pytest.approx(f_t * np.pi * 10 * MM * RPM / 60, rel=1e-12)
    assert load.power == pytest.approx(552.4, abs=0.1)


@pytest.mark.parametrize("a_e_mm", [1.0, 2.5, 5.0, 10.0], ids=lambda a: f"ae{a}")
def test_power_is_kc_times_removal_rate(a_e_mm: float) -> None:
    cut = Cut(volume=1e-9, depth=3 * MM, width=a_e_mm * MM, direction=np.array([0.0, 1.0]))
    load = cutting_load(AL, CUTTER, RPM, 1, feed(0.08), cut, DT)
    mrr = a_e_mm * MM * 3 * MM * np.linalg.norm(feed(0.08))
    assert load.mrr == pytest.approx(mrr, rel=1e-12)
    assert load.power == pytest.approx(load.kc * mrr, rel=1e-9)


def test_slotting_along_x_with_m3_pushes_the_tool_back_and_to_plus_y() -> None:
    # M3: clockwise looking down -z, angular velocity along -z. An edge at angle a moves along
    # (sin a, -cos a); at the front edge (a = 0) it moves toward -y, so the chip pushes the tool
    # toward +y. Over the engaged half [-90, 90] deg the tangential x parts cancel and the radial
    # parts (tool pushed away from the material ahead) point to -x, against the feed.
    m3 = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), slot(), DT)
    assert m3.force[0] < 0.0
    assert m3.force[1] > 0.0
    assert m3.force[1] > abs(m3.force[0])  # tangential dominates (radial ratio 0.21)
    assert m3.force[2] == 0.0
    m4 = cutting_load(AL, CUTTER, RPM, -1, feed(0.05), slot(), DT)
    assert m4.force[0] == pytest.approx(m3.force[0])
    assert m4.force[1] == pytest.approx(-m3.force[1])
    assert m4.power == pytest.approx(m3.power)
    # the same cut fed along +y: the force rotates with the feed
    turned = cutting_load(AL, CUTTER, RPM, 1, feed(0.05, (0, 1)), slot(direction=(0, 1)), DT)
    assert turned.force[:2] == pytest.approx([-m3.force[1], m3.force[0]])


def test_side_milling_engagement_angle_from_radial_engagement() -> None:
    # a_e = D/4: phi = arccos(1 - 2 a_e / D) = 60 deg; h_m = f_z (1 - cos phi) / phi
    cut = Cut(volume=1e-9, depth=2 * MM, width=2.5 * MM, direction=np.array([0.3, -0.9]))
    load = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), cut, DT)
    assert load.engagement_deg == pytest.approx(60.0)
    assert load.chip_thickness == pytest.approx(0.05 * MM * 0.5 / (np.pi / 3), rel=1e-12)


def test_doubling_feed_per_tooth_raises_force_by_2_to_the_1_minus_mc() -> None:
    one = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), slot(), DT)
    two = cutting_load(AL, CUTTER, RPM, 1, feed(0.10), slot(), DT)
    assert two.torque / one.torque == pytest.approx(2**0.75, rel=1e-12)
    assert np.linalg.norm(two.force) / np.linalg.norm(one.force) == pytest.approx(2**0.75)


def test_steel_to_aluminium_force_ratio() -> None:
    steel = material("steel_c_lt_0_25")
    al = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), slot(), DT)
    st = cutting_load(steel, CUTTER, RPM, 1, feed(0.05), slot(), DT)
    h = 2 * 0.05 / np.pi  # mm
    assert st.torque / al.torque == pytest.approx(1350 * h**-0.21 / (700 * h**-0.25), rel=1e-12)
    assert st.torque / al.torque == pytest.approx(1.680, abs=0.001)


def test_no_cut_no_force() -> None:
    empty = Cut(volume=0.0, depth=0.0, width=0.0)
    load = cutting_load(AL, CUTTER, RPM, 1, feed(0.05), empty, DT)
    assert np.all(load.force == 0.0) and load.power == 0.0 and load.torque == 0.0
    # engaged but not moving: no chip, no force (rubbing is not modelled)
    load = cutting_load(AL, CUTTER, RPM, 1, np.zeros(3), slot(), DT)
    assert np.all(load.force == 0.0) and load.power == 0.0


def test_unknown_material_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as err:
        material("unobtainium")
    for name in MATERIALS:
        assert name in str(err.value)
    assert len(MATERIALS) >= 5
    assert AL.kc11 == 700e6 and AL.mc == 0.25
    assert material("steel_c_lt_0_25").kc11 == 1350e6


def test_spindle_stopped_in_material_is_an_error() -> None:
    with pytest.raises(RobocellError, match="spindle"):
        cutting_load(AL, CUTTER, 0.0, 1, feed(0.05), slot(), DT)


def test_plunge_gives_upward_thrust_and_power_kc_times_rate() -> None:
    hf = HeightField(20 * MM, 20 * MM, 10 * MM, cell=0.25 * MM)
    v_down = 0.2 * MM / DT / 10  # 0.02 mm per 2 ms tick
    p = np.array([10 * MM, 10 * MM, 10 * MM])
    for _ in range(60):  # get the full bottom into the material
        q = p - [0.0, 0.0, v_down * DT]
        cut = hf.sweep(CUTTER, p, q)
        p = q
    load = cutting_load(AL, CUTTER, RPM, 1, np.array([0.0, 0.0, -v_down]), cut, DT)
    assert load.force[2] > 0.0
    assert load.power == pytest.approx(load.kc * cut.plunge / DT, rel=1e-9)


def test_mean_power_over_a_real_slot_matches_kc_times_the_removed_volume() -> None:
    # energy consistency of the engagement measured by the stock with the volume it removes
    hf = HeightField(80 * MM, 30 * MM, 10 * MM, cell=0.5 * MM)
    v = feed(0.05)
    z = 8 * MM
    p = np.array([20 * MM, 15 * MM, z])  # start inside: a 10 mm plunge-free entry is skipped
    hf.sweep(CUTTER, p + [0, 0, 5 * MM], p)
    energy = volume = 0.0
    for _ in range(900):  # 1.8 s, 30 mm of slot
        q = p + v * DT
        cut = hf.sweep(CUTTER, p, q)
        load = cutting_load(AL, CUTTER, RPM, 1, v, cut, DT)
        energy += load.power * DT
        volume += cut.volume
        p = q
    kc = cutting_load(AL, CUTTER, RPM, 1, v, slot(), DT).kc
    assert energy == pytest.approx(kc * volume, rel=0.03)
