"""Checking a G-code program against a machining cell before anything moves
(``robocell gcode FILE --scenario S``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from robocell.errors import ScenarioError


def check_program(
    scenario: str | Path, program: str | Path, station: str | None = None
) -> dict[str, Any]:
    """Plan ``program`` in the machining station of ``scenario`` (its robot, stock, work
    offsets, cutter and motion limits) and report what a machinist checks before a run.

    Raises ScenarioError (exit code 2) naming the G-code line of the first point out of reach,
    outside the joint limits or too close to a singularity.
    """
    from robocell.cell.build import cell_from_scenario
    from robocell.machining.device import MachiningStation, crash_summary
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(scenario)
    jobs = [st.name for st in loaded.scenario.stations if st.type == "machining"]
    if station is None:
        if len(jobs) != 1:
            raise ScenarioError(
                f"{loaded.file} has {len(jobs)} machining stations"
                + (f" ({', '.join(jobs)}): name one with --station" if jobs else "")
            )
        station = jobs[0]
    elif station not in jobs:
        raise ScenarioError(
            f"no machining station '{station}' in {loaded.file}; stations: "
            f"{', '.join(jobs) or 'none'}"
        )
    cell = cell_from_scenario(loaded, programs={station: Path(program)})
    try:
        st = cell.devices[station]
        assert isinstance(st, MachiningStation) and st.plan is not None
        plan = st.plan
        lim = st.robot.limits
        q = plan.q
        lo, hi = q.min(axis=0), q.max(axis=0)
        margin = np.minimum(lo - lim.lower, lim.upper - hi)
        j = int(np.argmin(margin))
        kin = st.robot.kinematics
        manip = min(kin.manipulability(qq) for qq in q[:: max(1, len(q) // 200)])
        nominal = st.stock.volume() - st.nominal.volume() if st.nominal is not None else 0.0
        return {
            "scenario": str(loaded.file),
            "station": station,
            "robot": st.robot_name,
            "model": st.robot.model.name,
            "points_checked": int(len(q)),
            "reachable": True,
            "joint_range_deg": [
                [round(math.degrees(a), 2), round(math.degrees(b), 2)] for a, b in zip(lo, hi)
            ],
            "closest_joint_limit": {"joint": j + 1, "margin_deg": math.degrees(margin[j])},
            "min_manipulability": float(manip),
            "planned_time_s": plan.duration,
            "rapid_speed_m_per_s": st.setup.rapid_speed,
            "feed_limits": [
                {
                    "line": fl.line,
                    "programmed_mm_per_min": fl.programmed * 6e4,
                    "achievable_mm_per_min": fl.achievable * 6e4,
                    "joint": fl.joint,
                }
                for fl in plan.feed_limits
            ],
            "rapid_moves_into_material": list(st.rapid_cuts),
            "planned_crashes": crash_summary(st.crash_lines),
            "nominal_removed_volume_cm3": nominal * 1e6,
        }
    finally:
        cell.close()


def format_check(c: dict[str, Any]) -> str:
    """The check as text for a machinist (mm, mm/min, degrees)."""
    lines = [
        f"check against {c['scenario']} (station '{c['station']}', robot '{c['robot']}', "
        f"{c['model']})",
        f"  reachable          all {c['points_checked']} path points, within the joint limits",
        f"  closest limit      joint {c['closest_joint_limit']['joint']}, "
        f"{c['closest_joint_limit']['margin_deg']:.1f} deg of margin",
        f"  min manipulability {c['min_manipulability']:.3g}",
        f"  planned time       {c['planned_time_s']:.1f} s at full feed, with the robot's "
        "acceleration and corner speeds",
        f"  nominal removal    {c['nominal_removed_volume_cm3']:.3f} cm³",
        "  joint ranges [deg] "
        + "  ".join(f"J{i + 1} {a:.0f}..{b:.0f}" for i, (a, b) in enumerate(c["joint_range_deg"])),
    ]
    if c["feed_limits"]:
        lines.append("  feed NOT held on:")
        for fl in c["feed_limits"]:
            share = fl["achievable_mm_per_min"] / fl["programmed_mm_per_min"]
            lines.append(
                f"    line {fl['line']}: programmed {fl['programmed_mm_per_min']:.0f} mm/min, "
                f"the robot holds {fl['achievable_mm_per_min']:.0f} mm/min ({share:.0%}, "
                f"joint {fl['joint']} speed limit)"
            )
    else:
        lines.append("  feeds              every programmed feed is held")
    for crash in c["planned_crashes"]:
        lines.append(f"  WARNING            the program {crash} (a tool crash)")
    if c["rapid_moves_into_material"]:
        lines.append(
            "  WARNING            rapid moves cut material on lines "
            + ", ".join(map(str, c["rapid_moves_into_material"]))
        )
    return "\n".join(lines)
