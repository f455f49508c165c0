"""Run outputs: the KPI table, ``kpis.json`` and plots (joint traces, TCP path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robocell.record.recorder import EVENTS_FILE, RECORDING_FILE, iter_batches

if TYPE_CHECKING:
    from robocell.cell.cell import RunResult

#: Plots show at most this many points per trace (the recording keeps every sample).
PLOT_POINTS = 4000

_LABELS = {
    "duration_s": ("duration", "s", 3),
    "cycles": ("cycles", "", 0),
    "cycle_time_s": ("cycle time (mean)", "s", 3),
    "cycle_time_min_s": ("cycle time (min)", "s", 3),
    "cycle_time_max_s": ("cycle time (max)", "s", 3),
    "collisions_self": ("self collisions", "", 0),
    "collisions_environment": ("environment collisions", "", 0),
    "limit_violations": ("limit violations", "", 0),
    "energy_j": ("energy", "J", 1),
    "events": ("events", "", 0),
    "path_length_m": ("TCP path length", "m", 3),
    "tracking_error_rms_rad": ("tracking error RMS", "mrad", 3),
    "tracking_error_max_rad": ("tracking error max", "mrad", 3),
    "peak_joint_speed_share": ("peak joint speed", "% of limit", 1),
    "peak_torque_share": ("peak joint torque", "% of limit", 1),
    "limit_clamps": ("commands clamped", "", 0),
}


def _fmt(key: str, value: Any) -> tuple[str, str] | None:
    if key not in _LABELS:
        return None
    label, unit, digits = _LABELS[key]
    if unit == "mrad":
        value = value * 1e3
    if unit.startswith("%"):
        value = value * 100
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return label, f"{text} {unit}".rstrip()


def kpi_table(kpis: dict[str, Any]) -> str:
    """A two-column text table of the KPIs."""
    rows: list[tuple[str, str]] = []
    for k, v in kpis.items():
        if k in ("robots", "timing", "pick_and_place", "machining"):
            continue
        f = _fmt(k, v)
        if f:
            rows.append(f)
    for name, rk in kpis.get("robots", {}).items():
        for k, v in rk.items():
            f = _fmt(k, v)
            if f is None:
                continue
            label, text = f
            if k == "peak_joint_speed_share":
                text += f" (joint {rk['peak_joint_speed_joint']})"
            if k == "peak_torque_share":
                text += f" (joint {rk['peak_torque_joint']})"
            rows.append((f"{name}: {label}", text))
    if "pick_and_place" in kpis:
        from robocell.record.pnp_report import pnp_kpi_rows

        rows += pnp_kpi_rows(kpis["pick_and_place"])
    if "machining" in kpis:
        from robocell.record.machining_report import machining_kpi_rows

        rows += machining_kpi_rows(kpis["machining"])
    timing = kpis.get("timing")
    if timing:
        rows.append(("wall time", f"{timing['wall_time_s']:.2f} s"))
        rows.append(("real-time factor", f"{timing['real_time_factor']:.1f}x"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {a:<{width}}  {b}" for a, b in rows)


def write_outputs(result: RunResult, plots: bool = True) -> list[Path]:
    """Write ``kpis.json`` and (optionally) the plots into the run directory; a pick-and-place
    run also gets ``events.csv`` and its throughput, cycle-time and activity plots."""
    out = result.out_dir
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "kpis.json", "w", encoding="utf-8") as fh:
        json.dump(result.kpis, fh, indent=2, sort_keys=True)
        fh.write("\n")
    written: list[Path] = []
    if plots and (out / RECORDING_FILE).exists():
        written += plot_recording(out)
    if "pick_and_place" in result.kpis and (out / EVENTS_FILE).exists():
        from robocell.record.pnp_report import write_pnp_outputs

        written += write_pnp_outputs(out, result.kpis, plots=plots)
    return written


def _decimated(path: Path) -> dict[str, np.ndarray]:
    """Every column of the recording, thinned to about PLOT_POINTS rows, read batch by batch
    so memory does not grow with the run length."""
    total = 0
    for b in iter_batches(path):
        total += b.num_rows
    every = max(1, total // PLOT_POINTS)
    parts: dict[str, list[np.ndarray]] = {}
    offset = 0
    for b in iter_batches(path):
        idx = np.arange((-offset) % every, b.num_rows, every)
        offset += b.num_rows
        for name in b.schema.names:
            col = b.column(name)
            if hasattr(col.type, "list_size"):
                arr = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
            else:
                arr = col.to_numpy()
            parts.setdefault(name, []).append(arr[idx])
    return {k: np.concatenate(v) for k, v in parts.items()}


def plot_recording(run_dir: str | Path) -> list[Path]:
    """Joint traces and TCP path plots of a recorded run; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    data = _decimated(run_dir / RECORDING_FILE)
    if "t" not in data or len(data["t"]) < 2:
        return []
    t = data["t"]
    robots = sorted({k.split(".")[0] for k in data if k.endswith(".q") and k[:-2].count(".") == 0})
    written: list[Path] = []
    for r in robots:
        q, qc, dq, tau = (data[f"{r}.{f}"] for f in ("q", "q_cmd", "dq", "tau"))
        n = q.shape[1]
        fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
        for j in range(n):
            (line,) = axes[0].plot(t, np.degrees(q[:, j]), lw=1.2, label=f"J{j + 1}")
            axes[0].plot(t, np.degrees(qc[:, j]), lw=0.8, ls="--", color=line.get_color())
            axes[1].plot(t, np.degrees(dq[:, j]), lw=1.0, color=line.get_color())
            axes[2].plot(t, tau[:, j], lw=1.0, color=line.get_color())
        axes[0].set_ylabel("position [deg]\n(dashed: command)")
        axes[1].set_ylabel("velocity [deg/s]")
        axes[2].set_ylabel("torque [N·m]")
        axes[2].set_xlabel("cell time [s]")
        axes[0].legend(ncol=n, fontsize=8, loc="upper right")
        axes[0].set_title(f"{r}: joint traces")
        for ax in axes:
            ax.grid(alpha=0.3)
        fig.tight_layout()
        p = run_dir / f"joints_{r}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)

    fig = plt.figure(figsize=(11, 5))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    ax2 = fig.add_subplot(1, 2, 2)
    for r in robots:
        p3 = data[f"{r}.tcp"]
        ax3.plot(p3[:, 0], p3[:, 1], p3[:, 2], lw=1.0, label=r)
        ax2.plot(p3[:, 1], p3[:, 2], lw=1.0, label=r)
    ax3.set_xlabel("x [m]")
    ax3.set_ylabel("y [m]")
    ax3.set_zlabel("z [m]")
    ax3.set_title("TCP path (world)")
    ax2.set_xlabel("y [m]")
    ax2.set_ylabel("z [m]")
    ax2.set_title("TCP path, side view (y-z)")
    ax2.set_aspect("equal", adjustable="datalim")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    p = run_dir / "tcp_path.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    written.append(p)
    return written
