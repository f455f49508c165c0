"""Machining results: KPI table rows, ``machining.npz`` and the plots (surface-error heat map,
cutting force over time, programmed vs actual tool path)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robocell.machining.device import MachiningStation

#: KPI key -> (label, unit, digits)
MACHINING_LABELS = {
    "cycle_time_s": ("machining cycle time", "s", 2),
    "planned_time_s": ("planned time at full feed", "s", 2),
    "removed_volume_cm3": ("removed volume", "cm³", 3),
    "nominal_removed_volume_cm3": ("nominal removed volume", "cm³", 3),
    "material_removal_rate_cm3_per_min": ("material removal rate", "cm³/min", 2),
    "surface_error_max_mm": ("surface error max", "mm", 3),
    "surface_error_rms_mm": ("surface error RMS", "mm", 4),
    "floor_error_max_mm": ("floor error max", "mm", 3),
    "floor_error_rms_mm": ("floor error RMS", "mm", 4),
    "overcut_volume_mm3": ("over-cut volume", "mm³", 1),
    "undercut_volume_mm3": ("under-cut volume", "mm³", 1),
    "path_deviation_max_mm": ("path deviation max", "mm", 3),
    "path_deviation_rms_mm": ("path deviation RMS", "mm", 4),
    "peak_force_n": ("cutting force peak", "N", 1),
    "mean_force_n": ("cutting force mean", "N", 1),
    "peak_spindle_power_w": ("spindle power peak", "W", 0),
    "mean_spindle_power_w": ("spindle power mean", "W", 0),
    "tool_crashes": ("tool crashes", "", 0),
}


def machining_kpi_rows(k: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the KPI table for a machining summary."""
    rows: list[tuple[str, str]] = []
    if k.get("program_finished") is False:
        rows.append(
            ("WARNING", "program not finished: the surface figures compare a part cut partly")
        )
    for key, (label, unit, digits) in MACHINING_LABELS.items():
        v = k.get(key)
        if v is None:
            if key == "cycle_time_s":
                rows.append((label, "not finished"))
            continue
        text = f"{v:.{digits}f}" if isinstance(v, float) else str(v)
        rows.append((label, f"{text} {unit}".rstrip()))
    peak, rated = k.get("peak_spindle_power_w"), k.get("spindle_power_limit_w")
    if peak is not None and rated is not None and peak > rated:
        rows.append(("WARNING", f"spindle power peaked at {peak:.0f} W, rated {rated:.0f} W"))
    if k.get("feed_limited_lines"):
        lines = ", ".join(str(n) for n in k["feed_limited_lines"][:8])
        rows.append(("feed not held on lines", lines))
    for text in k.get("planned_crashes") or []:
        rows.append(("WARNING", f"the program {text} (a tool crash)"))
    if k.get("rapid_moves_into_material"):
        rows.append(
            ("rapid moves into material", ", ".join(map(str, k["rapid_moves_into_material"])))
        )
    return rows


def path_deviation(
    path: np.ndarray, cutting_segment: np.ndarray, tip: np.ndarray, cutting: np.ndarray
) -> np.ndarray:
    """Distance [m] of each tool-tip sample ``tip`` (k, 3) from the programmed path, NaN where
    ``cutting`` (k,) is False. ``path`` (N, 3) are the programmed points (same frame);
    ``cutting_segment`` (N,) marks the points whose incoming segment counts as path."""
    import math

    from scipy.spatial import cKDTree

    out = np.full(len(cutting), np.nan)
    pts = []  # the programmed path, sampled every 20 µm
    for i in range(1, len(path)):
        if not cutting_segment[i]:
            continue
        d = float(np.linalg.norm(path[i] - path[i - 1]))
        k = max(1, math.ceil(d / 2e-5))
        f = np.linspace(0.0, 1.0, k + 1)[:, None]
        pts.append(path[i - 1] + f * (path[i] - path[i - 1]))
    if pts and cutting.any():
        out[cutting] = cKDTree(np.vstack(pts)).query(tip[cutting])[0]
    return out


def write_machining_outputs(st: MachiningStation, out: Path, plots: bool = True) -> list[Path]:
    """``machining.npz`` (actual and nominal heights, per-tick tip, force, power) and plots."""
    out.mkdir(parents=True, exist_ok=True)
    ser = st.series()
    P, kind = st.programmed_path()
    assert st.nominal is not None
    np.savez_compressed(
        out / "machining.npz",
        actual_height=st.stock.h,
        nominal_height=st.nominal.h,
        grid=st.setup.grid,
        programmed_path=P,
        programmed_kind=kind,
        **{f"tick_{k}": v for k, v in ser.items()},
    )
    if not plots:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    # surface error heat map
    act, nom = st.stock.h, st.nominal.h
    err = (act - nom) * 1e3
    machined = (nom < st.top - 1e-9) | (act < st.top - 1e-9)
    shown = np.where(machined, err, np.nan)
    # colour scale: the 99th percentile of the error, so that a few wall cells (whose error is
    # the whole wall height, see docs/machining.md) do not wash out the floor
    lim = float(np.nanpercentile(np.abs(shown), 99)) if machined.any() else 1.0
    lim = max(lim, 1e-3)
    peak = float(np.nanmax(np.abs(shown))) if machined.any() else 0.0
    sx, sy, _ = st.setup.stock_size
    fig, ax = plt.subplots(figsize=(7, 5.5))
    im = ax.imshow(
        shown,
        origin="lower",
        extent=(0, sx * 1e3, 0, sy * 1e3),
        cmap="coolwarm",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
    )
    label = "actual - nominal height [mm] (red: material left)"
    if peak > lim:
        label += f"\nscale clipped at ±{lim:.3f} mm; peak {peak:.3f} mm"
    fig.colorbar(im, ax=ax, label=label, extend="both" if peak > lim else "neither")
    ax.set_xlabel("stock x [mm]")
    ax.set_ylabel("stock y [mm]")
    ax.set_title(f"surface error, {st.name} ({Path(st.program.file).name})")
    fig.tight_layout()
    written.append(_save(fig, out / "surface_error.png"))
    # cutting force and spindle power over time
    t = ser["t"]
    F = ser["force"]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for i, c in enumerate("xyz"):
        a1.plot(t, F[:, i], lw=0.7, label=f"F{c}")
    a1.plot(t, np.linalg.norm(F, axis=1), lw=0.9, color="k", label="|F|")
    a1.set_ylabel("force on tool (world) [N]")
    a1.legend(loc="upper right", ncol=4, fontsize=8)
    a2.plot(t, ser["power"], lw=0.8, color="tab:red")
    a2.axhline(st.setup.spindle_power, ls="--", color="grey", lw=0.8, label="spindle rating")
    a2.set_ylabel("spindle power [W]")
    a2.set_xlabel("time [s]")
    a2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "cutting_force.png"))
    # programmed vs actual tool path
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 5))
    feed = kind == 1
    Pm = P * 1e3
    Pf = np.where(feed[:, None], Pm, np.nan)
    a1.plot(Pf[:, 0], Pf[:, 1], color="tab:blue", lw=0.8, label="programmed (cutting)")
    tip = ser["tip"] * 1e3
    cutting = ser["engaged"]
    tc = np.where(cutting[:, None], tip, np.nan)
    a1.plot(tc[:, 0], tc[:, 1], color="tab:orange", lw=0.6, label="actual tool tip (cutting)")
    a1.set_aspect("equal")
    a1.set_xlabel("stock x [mm]")
    a1.set_ylabel("stock y [mm]")
    a1.set_title("tool path, top view")
    a1.legend(fontsize=8)
    dev = path_deviation(P, np.ones(len(P), bool), ser["tip"], cutting) * 1e3
    a2.plot(t, dev, lw=0.6, color="tab:orange")
    a2.set_xlabel("time [s]")
    a2.set_ylabel("distance from programmed path [mm]")
    a2.set_title("path deviation while cutting")
    fig.tight_layout()
    written.append(_save(fig, out / "toolpath.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
