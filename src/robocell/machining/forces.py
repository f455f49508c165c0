"""Milling forces from the Kienzle law, and a table of workpiece materials.

Kienzle law (h and b in mm, k_c1.1 in N/mm^2): the specific cutting force is
``k_c = k_c1.1 * h^(-m_c)`` and the cutting (tangential) force on one cutting edge is
``F_c = k_c * b * h = k_c1.1 * b * h^(1 - m_c)``, with h the undeformed chip thickness and b the
chip width (the axial depth of cut a_p for a peripheral edge). Inside the code everything is SI:
``F_c = k_c1.1[N/m^2] * b[m] * h[m] * (h / 1 mm)^(-m_c)``.

Milling (mean-force model, per control tick):

* feed per tooth ``f_z = v_f / (n z)`` with v_f the tool's horizontal speed relative to the stock,
  n the spindle speed [rev/s] and z the number of flutes;
* engagement angle from the radial engagement a_e and the effective diameter D_e:
  ``phi = arccos(1 - 2 a_e / D_e)`` for side milling (material on one side of the feed; a_e = D_e
  gives phi = pi, slotting), ``phi = 2 arcsin(a_e / D_e)`` for an arc centred on the feed
  direction (material straight ahead only, e.g. a rib narrower than the tool);
* the chip thickness at an edge angle theta measured from the feed direction is
  ``h = f_z cos(theta)``, so its mean over the engaged arc [theta_st, theta_ex] is
  ``h_m = f_z (sin theta_ex - sin theta_st) / phi`` (side milling: ``f_z (1 - cos phi) / phi``,
  slotting: ``2 f_z / pi``);
* mean tangential force per engaged tooth ``F_cm = k_c1.1 b h_m^(1 - m_c)``, mean number of teeth
  in cut ``z phi / (2 pi)``; total ``F_t = z phi / (2 pi) F_cm``, torque ``F_t D_e / 2``, power
  ``P = F_t v_c`` with ``v_c = pi D_e n``. This equals ``k_c(h_m) * MRR`` with
  ``MRR = a_e a_p v_f`` exactly (tested), because ``h_m phi D_e / 2 = f_z a_e``.

Force direction (force of the material ON THE TOOL, stock frame). Spindle sense: ``spindle_dir``
+1 is M3, clockwise seen from the spindle looking toward the workpiece, i.e. looking down -z: the
angular velocity is along -z. -1 is M4. At an edge at angle alpha (position R (cos a, sin a)) the
edge velocity is along ``s (sin a, -cos a)`` for M3 (s = +1) and reversed for M4; the tangential
force on the tool opposes it, ``s F (-sin a, cos a)``; the radial force pushes the tool away from
the material, ``-k_r F (cos a, sin a)``. Both are averaged over the engaged arc with the weight
h(theta)^(1 - m_c) of the local Kienzle force, and scaled to the total tangential force F_t (so
the magnitude of the mean force vector is below F_t: edges on different sides partly cancel).
Worked example, slotting along +x with M3: the engaged arc is theta in [-90, 90] deg around +x;
the tangential parts' x components cancel by symmetry and their y components are all positive
(at the front edge, theta = 0, the edge moves toward -y, so the material pushes the tool toward
+y); the radial parts' y components cancel and their x components are negative. The tool is
pushed against the feed (-x) and toward +y (to the left of the feed, the up-milling side).

Plunging / ramping / drilling (the cutter's end edges, from ``Cut.plunge``): axial feed per tooth
``f_a = v_down / (n z)`` (the chip thickness of a flat end edge, entering angle 90 deg); each of
the z end edges cuts a width ``eta R`` where ``eta = plunge / (pi R^2 v_down dt)`` is the
engaged fraction of the bottom (not clipped at 1: the grid's disc of cells can be slightly larger
than pi R^2, and power must stay ``k_c * plunge / dt``); tangential force per edge
``F_ce = k_c(f_a) eta R f_a``, torque ``z F_ce R / 2`` (uniform load along the edge), power
``k_c(f_a) * plunge / dt``; thrust (axial force on the tool, +z) ``thrust_ratio * z F_ce``.

Assumptions and simplifications (users must know these):

* mean forces over a revolution; the per-tooth oscillation at the tooth-passing frequency
  (n z, e.g. 333 Hz at 10 000 rpm and 2 flutes) is not resolved, nor is run-out or chatter;
* the helix angle is ignored (it does not change the mean tangential and radial forces of a
  full-revolution average but adds an axial component that is not modelled);
* k_c1.1 and m_c are the table values for a sharp tool with rake angle 0 deg (see the source:
  values are for a neutral insert); no correction for rake angle, cutting speed, tool wear or
  coolant (each moves k_c by of the order of 10 %);
* the feed-normal (radial) force is a fixed fraction ``radial_ratio`` of the tangential force
  (Material field); the thrust of the end edges a fixed fraction ``thrust_ratio``;
* the axial chip width b is the axial depth a_p (capped at the flute length) for every cutter;
  for ball / bull-nose cutters the effective diameter at depth a_p is used for the engagement
  angle and the cutting speed, but the curved edge's varying entering angle is not;
* below a chip thickness of 0.01 mm (:data:`H_MIN`) k_c is held constant instead of growing;
* rubbing (a tool touching material without feed) gives no force; a non-rotating tool fed into
  material raises an error instead of returning a force.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robocell.errors import RobocellError, ScenarioError
from robocell.machining.cutters import Cutter
from robocell.machining.stock import Cut

_MM = 1e-3  # [m] reference chip thickness and width of k_c1.1
_N_PER_MM2 = 1e6  # [N/m^2] per N/mm^2
_ARC_NODES = 32

ISCAR_TABLE = (
    "ISCAR, 'Material groups based on ISO 513 and VDI 3323' (ISO materials and grades user "
    "guide), https://docs.steelcam.org/iscar/katalog-iscar-rastochnye-sistemy-2022-page111"
)
RADIAL_SOURCE_AL = (
    "K_r = 0.212 K_t (K_tc = 796, K_rc = 168 N/mm^2) for 7075 aluminium, the mechanistic "
    "coefficients of Y. Altintas, Manufacturing Automation (Cambridge Univ. Press) chatter examples"
)
RADIAL_ASSUMED = "assumed 0.3 (typical of mechanistic K_rc/K_tc for steels; no single source)"


@dataclass(frozen=True)
class Material:
    """A workpiece material for the Kienzle law.

    Attributes:
        name: key in :data:`MATERIALS`.
        kc11: specific cutting force k_c1.1 for h = b = 1 mm [N/m^2] (tables give N/mm^2).
        mc: Kienzle exponent m_c [-].
        source: where kc11 and mc come from.
        density: [kg/m^3], for chip mass if needed.
        radial_ratio: feed-normal (radial) force / tangential force in milling [-].
        thrust_ratio: axial thrust of the end edges / their tangential force when plunging [-].
        radial_source: where radial_ratio comes from.
    """

    name: str
    kc11: float
    mc: float
    source: str
    density: float = 0.0
    radial_ratio: float = 0.3
    thrust_ratio: float = 0.5
    radial_source: str = RADIAL_ASSUMED


def _table(name: str, kc11_n_per_mm2: float, mc: float, group: str, density: float, **kw):  # type: ignore[no-untyped-def]
    return Material(
        name=name,
        kc11=kc11_n_per_mm2 * _N_PER_MM2,
        mc=mc,
        source=f"{ISCAR_TABLE}, group {group}",
        density=density,
        **kw,
    )


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        _table(
            "aluminium_wrought",
            700.0,
            0.25,
            "21 (Al wrought alloy, not hardenable)",
            2700.0,
            radial_ratio=0.212,
            radial_source=RADIAL_SOURCE_AL,
        ),  # fmt: skip
        _table("steel_c_lt_0_25", 1350.0, 0.21, "1 (non-alloy steel < 0.25 % C, annealed)", 7850.0),
        _table(
            "steel_c45_qt", 1675.0, 0.24, "3 (non-alloy steel < 0.55 % C, Q+T, 850 MPa)", 7850.0
        ),
        _table("steel_42crmo4_qt", 1725.0, 0.24, "8 (low-alloy steel, Q+T, 1000 MPa)", 7850.0),
        _table(
            "stainless_austenitic", 2150.0, 0.20, "14 (austenitic stainless, e.g. 1.4301)", 7900.0
        ),
        _table("grey_cast_iron", 1150.0, 0.20, "15 (grey cast iron, ferritic/pearlitic)", 7200.0),
        _table("brass", 700.0, 0.27, "27 (copper alloys, brass)", 8500.0),
    )
}


def material(name: str) -> Material:
    """The material called ``name``; an unknown name raises an error listing the known ones."""
    try:
        return MATERIALS[name]
    except KeyError:
        raise ScenarioError(
            f"unknown material {name!r}; known materials: {', '.join(sorted(MATERIALS))}",
            field="material",
        ) from None


@dataclass(frozen=True)
class CuttingLoad:
    """Mean cutting load over one control tick.

    Attributes:
        force: (3,) force of the material ON THE TOOL, stock frame [N].
        power: spindle cutting power [W].
        torque: spindle torque [N m] (resisting the rotation; always >= 0).
        chip_thickness: mean chip thickness h_m [m] of the peripheral edges (the axial feed per
            tooth when only plunging).
        feed_per_tooth: f_z [m].
        engagement_deg: engagement angle phi [deg].
        kc: specific cutting force k_c at h_m [N/m^2] (0 if no peripheral cut).
        mrr: material removal rate of the peripheral cut a_e a_p v_f plus the plunge [m^3/s].
    """

    force: np.ndarray
    power: float
    torque: float
    chip_thickness: float
    feed_per_tooth: float
    engagement_deg: float
    kc: float = 0.0
    mrr: float = 0.0


#: the thinnest chip the Kienzle law is applied to [m]; below it k_c is held at its value here
H_MIN = 0.01 * _MM


def specific_cutting_force(mat: Material, h: float) -> float:
    """k_c = k_c1.1 (h / 1 mm)^(-m_c) [N/m^2] for chip thickness h [m] > 0.

    The power law is fitted to chips of roughly 0.05-1 mm and grows without bound as h -> 0;
    below :data:`H_MIN` (0.01 mm) k_c is held at its value there, so that a cut with an
    almost-zero feed (a tool drifting a few µm into the material) gives an almost-zero force
    instead of a singular one."""
    return mat.kc11 * (max(h, H_MIN) / _MM) ** (-mat.mc)


def _zero_load() -> CuttingLoad:
    return CuttingLoad(np.zeros(3), 0.0, 0.0, 0.0, 0.0, 0.0)


def cutting_load(
    material: Material,
    cutter: Cutter,
    spindle_rpm: float,
    spindle_dir: int,
    feed_velocity: np.ndarray,
    cut: Cut,
    dt: float,
) -> CuttingLoad:
    """Mean cutting load of ``cut`` (see the module docstring for the model and assumptions).

    Args:
        material: workpiece material.
        cutter: the cutter that made the cut.
        spindle_rpm: spindle speed [rev/min], >= 0.
        spindle_dir: +1 for M3 (clockwise looking down -z), -1 for M4.
        feed_velocity: (3,) tool-tip velocity relative to the stock, stock frame [m/s].
        cut: what the sweep of this tick removed and the engagement (from HeightField.sweep).
        dt: duration of the tick [s], > 0.
    """
    if spindle_dir not in (1, -1):
        raise ScenarioError(f"spindle_dir must be +1 (M3) or -1 (M4), got {spindle_dir!r}")
    if not (dt > 0.0):
        raise ScenarioError(f"dt must be positive [s], got {dt!r}")
    v = np.asarray(feed_velocity, dtype=float)
    vf = float(np.hypot(v[0], v[1]))
    v_down = max(0.0, -float(v[2]))
    side = cut.width > 0.0 and cut.depth > 0.0 and vf > 0.0
    end = cut.plunge > 0.0 and v_down > 0.0
    if not (side or end):
        return _zero_load()
    if not (spindle_rpm > 0.0):
        raise RobocellError(
            f"the cutter is fed into material with the spindle at {spindle_rpm!r} rpm "
            "(spindle not running: start it with M3/M4 before cutting)"
        )
    n = spindle_rpm / 60.0
    z = cutter.flutes
    force = np.zeros(3)
    power = torque = h_m = f_z = phi = kc = mrr = 0.0

    if side:
        a_p = min(cut.depth, cutter.flute_length)
        r_e = max(cutter.radius_at_height(a_p), 1e-12)
        d_e = 2.0 * r_e
        a_e = min(cut.width, d_e)
        f_z = vf / (n * z)
        ux, uy = v[0] / vf, v[1] / vf
        dx, dy = float(cut.direction[0]), float(cut.direction[1])
        lateral = ux * dy - uy * dx  # > 0: material to the left of the feed
        if a_e >= d_e * (1.0 - 1e-9):
            phi, th_st, th_ex = np.pi, -0.5 * np.pi, 0.5 * np.pi
        elif abs(lateral) > 1e-9:
            phi = float(np.arccos(1.0 - 2.0 * a_e / d_e))
            if lateral > 0.0:
                th_st, th_ex = 0.5 * np.pi - phi, 0.5 * np.pi
            else:
                th_st, th_ex = -0.5 * np.pi, -0.5 * np.pi + phi
        else:
            phi = 2.0 * float(np.arcsin(a_e / d_e))
            th_st, th_ex = -0.5 * phi, 0.5 * phi
        if phi > 0.0:
            h_m = f_z * (np.sin(th_ex) - np.sin(th_st)) / phi
            kc = specific_cutting_force(material, h_m)
            f_tooth = kc * a_p * h_m  # = k_c1.1 b h_m^(1 - m_c)
            f_t = z * phi / (2.0 * np.pi) * f_tooth
            torque += f_t * r_e
            power += f_t * 2.0 * np.pi * n * r_e
            mrr += a_e * a_p * vf
            # direction: average of the local force directions over the arc, Kienzle-weighted
            theta = th_st + (np.arange(_ARC_NODES) + 0.5) * (phi / _ARC_NODES)
            w = np.cos(theta) ** (1.0 - material.mc)
            w /= w.sum()
            alpha = theta + np.arctan2(uy, ux)
            ca, sa = np.cos(alpha), np.sin(alpha)
            s = float(spindle_dir)
            k_r = material.radial_ratio
            force[0] += f_t * float((w * (-s * sa - k_r * ca)).sum())
            force[1] += f_t * float((w * (s * ca - k_r * sa)).sum())

    if end:
        radius = cutter.radius
        f_a = v_down / (n * z)
        eta = cut.plunge / (np.pi * radius * radius * v_down * dt)
        kc_a = specific_cutting_force(material, f_a)
        f_edge = kc_a * eta * radius * f_a
        torque += z * f_edge * 0.5 * radius
        power += z * f_edge * 0.5 * radius * 2.0 * np.pi * n
        force[2] += material.thrust_ratio * z * f_edge
        mrr += cut.plunge / dt
        if not side:
            h_m, f_z, kc = f_a, f_a, kc_a

    return CuttingLoad(
        force=force,
        power=float(power),
        torque=float(torque),
        chip_thickness=float(h_m),
        feed_per_tooth=float(f_z),
        engagement_deg=float(np.degrees(phi)),
        kc=float(kc),
        mrr=float(mrr),
    )
