"""Pick-and-place run outputs: ``events.csv``, throughput, cycle-time and activity plots, and
the pick-and-place rows of the KPI table.

Everything reads ``events.jsonl`` line by line (a truncated last line of a killed run is
skipped), so memory grows only with the number of placed parts, cycles and activity changes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robocell.record.pnp_kpis import ACTIVITY_STATES, PnpKpis, robot_of
from robocell.record.recorder import EVENTS_FILE

EVENTS_CSV = "events.csv"
#: Columns of ``events.csv``; ``data`` holds every other field as compact JSON.
CSV_COLUMNS = ("t", "kind", "robot", "part", "type", "station", "reason", "data")
_STATE_COLORS = {"busy": "tab:green", "idle": "tab:gray", "blocked": "tab:red"}

#: KPI table rows: key -> (label, unit, digits); unit "%" scales a share by 100, "mm" a length
#: in m by 1000.
PNP_LABELS: dict[str, tuple[str, str, int]] = {
    "parts_placed": ("parts placed", "", 0),
    "throughput_per_h": ("throughput", "parts/h", 1),
    "cycle_time_mean_s": ("pick-and-place cycle (mean)", "s", 2),
    "cycle_time_p50_s": ("pick-and-place cycle (p50)", "s", 2),
    "cycle_time_p95_s": ("pick-and-place cycle (p95)", "s", 2),
    "pick_success_rate": ("pick success (placed / picked)", "%", 1),
    "grasp_success_rate": ("grasp success (picked / attempts)", "%", 1),
    "parts_dropped": ("parts dropped", "", 0),
    "parts_missed": ("parts missed", "", 0),
    "busy_share": ("robots busy", "%", 1),
    "idle_share": ("robots idle", "%", 1),
    "blocked_share": ("robots blocked", "%", 1),
    "energy_per_part_j": ("energy per placed part", "J", 1),
    "place_error_mean_m": ("place error (mean)", "mm", 2),
    "place_error_max_m": ("place error (max)", "mm", 2),
    "oee": ("OEE", "%", 1),
    "availability": ("OEE availability", "%", 1),
    "performance": ("OEE performance", "%", 1),
    "quality": ("OEE quality", "%", 1),
}


def _fmt(value: Any, unit: str, digits: int) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        value = value * 100
    elif unit == "mm":
        value = value * 1e3
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip()


def pnp_kpi_rows(pnp: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the KPI table for a pick-and-place summary."""
    rows = [
        (label, _fmt(pnp[k], unit, digits))
        for k, (label, unit, digits) in PNP_LABELS.items()
        if k in pnp and not (k.startswith("place_error") and pnp[k] is None)
    ]
    for name, r in pnp.get("robots", {}).items():
        shares = [_fmt(r[f"{s}_share"], "%", 1).removesuffix(" %") for s in ACTIVITY_STATES]
        rows.append((f"{name}: busy / idle / blocked", " / ".join(shares) + " %"))
    return rows


# -- events ------------------------------------------------------------------------------------
def iter_events(run_dir: str | Path) -> Iterator[dict[str, Any]]:
    """Events of a run (file or run directory), streamed; complete lines only."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / EVENTS_FILE
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                yield json.loads(line)


def _csv_row(ev: Mapping[str, Any]) -> list[Any]:
    rest = dict(ev)
    row: list[Any] = [rest.pop(k, None) for k in CSV_COLUMNS[:-1]]
    if row[2] is None and isinstance(ev.get("by"), str):
        row[2] = robot_of(ev["by"])  # the gripper's robot; "by" stays in data
    row = ["" if v is None else v for v in row]
    row.append(json.dumps(rest, separators=(",", ":"), sort_keys=True))
    return row


def write_events_csv(run_dir: str | Path) -> Path:
    """``events.jsonl`` -> ``events.csv`` (columns :data:`CSV_COLUMNS`) in the run directory.

    ``robot`` is the event's robot, or the robot of the gripper in ``by`` (``picked``); empty
    cells mean the event has no such field; ``data`` is ``{}`` when nothing else remains.
    """
    run_dir = Path(run_dir)
    out = run_dir / EVENTS_CSV
    with open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for ev in iter_events(run_dir):
            w.writerow(_csv_row(ev))
    return out


# -- plots -------------------------------------------------------------------------------------
class _Timeline:
    """What the plots need from one pass over the events: placement times, the activity
    intervals of every robot and a :class:`PnpKpis` for the cycle times."""

    def __init__(self) -> None:
        self.kpis = PnpKpis()
        self.placed_t: list[float] = []
        self.intervals: dict[str, dict[str, list[tuple[float, float]]]] = {}
        self._open: dict[str, tuple[str, float]] = {}

    def add(self, ev: Mapping[str, Any]) -> None:
        self.kpis.on_event(ev)
        kind = ev.get("kind")
        if kind == "placed":
            self.placed_t.append(float(ev["t"]))
        elif kind == "activity":
            name, t = str(ev["robot"]), float(ev["t"])
            self._close(name, t)
            self._open[name] = (ev["state"], t)

    def _close(self, name: str, t: float) -> None:
        state, since = self._open.get(name, ("idle", 0.0))
        per = self.intervals.setdefault(name, {s: [] for s in ACTIVITY_STATES})
        if t > since:
            per[state].append((since, t - since))

    def finish(self, duration_s: float) -> None:
        for name in self.kpis.robots:
            self._close(name, duration_s)
            self._open[name] = ("idle", duration_s)


def _read_timeline(run_dir: Path) -> _Timeline:
    tl = _Timeline()
    for ev in iter_events(run_dir):
        tl.add(ev)
    return tl


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plot_throughput(run_dir: Path, placed_t: np.ndarray, duration_s: float) -> Path:
    """``throughput.png``: cumulative placed parts and the rolling rate [parts/h] over time.

    The rolling window is a sixth of the run, at most 15 min (over the first window the rate
    is the average since t = 0)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    T = max(duration_s, float(placed_t[-1]) if placed_t.size else 0.0)
    window = min(900.0, T / 6) if T > 0 else 1.0
    if placed_t.size:
        ts = np.concatenate([[0.0], placed_t, [T]])
        ns = np.concatenate([[0], np.arange(1, placed_t.size + 1), [placed_t.size]])
        ax.step(ts, ns, where="post", color="tab:blue", label="placed parts (cumulative)")
        grid = np.linspace(0.0, T, 400)[1:]
        n_now = np.searchsorted(placed_t, grid, side="right")
        n_before = np.searchsorted(placed_t, np.maximum(grid - window, 0.0), side="right")
        rate = (n_now - n_before) / np.minimum(grid, window) * 3600.0
        ax2 = ax.twinx()
        ax2.plot(grid, rate, color="tab:orange", lw=1.2, label=f"rolling rate ({window:.0f} s)")
        ax2.axhline(
            placed_t.size / T * 3600.0, color="tab:orange", ls="--", lw=0.8, label="run average"
        )
        ax2.set_ylabel("throughput [parts/h]")
        ax2.set_ylim(bottom=0)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower right")
    else:
        _no_data(ax, "no part placed")
    ax.set_xlim(0, T if T > 0 else 1.0)
    ax.set_xlabel("cell time [s]")
    ax.set_ylabel("placed parts [-]")
    ax.set_title("Pick-and-place throughput")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = run_dir / "throughput.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def plot_cycle_times(run_dir: Path, cycles: np.ndarray) -> Path:
    """``cycle_times.png``: histogram of the cycle times [s] with mean, p50 and p95 lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if cycles.size:
        bins = int(np.clip(np.sqrt(cycles.size), 5, 50))
        ax.hist(cycles, bins=bins, color="tab:blue", alpha=0.7, label=f"{cycles.size} cycles")
        p50, p95 = np.percentile(cycles, [50.0, 95.0])
        for value, name, color in (
            (cycles.mean(), "mean", "black"),
            (p50, "p50", "tab:green"),
            (p95, "p95", "tab:red"),
        ):
            ax.axvline(value, color=color, ls="--", lw=1.2, label=f"{name} {value:.2f} s")
        ax.legend()
    else:
        _no_data(ax, "no completed cycle")
    ax.set_xlabel("cycle time [s]")
    ax.set_ylabel("cycles [-]")
    ax.set_title("Pick-and-place cycle times (consecutive placements of a robot)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = run_dir / "cycle_times.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def plot_activity(
    run_dir: Path,
    intervals: Mapping[str, Mapping[str, list[tuple[float, float]]]],
    shares: Mapping[str, Mapping[str, Any]],
    duration_s: float,
) -> Path:
    """``activity.png``: busy/idle/blocked timeline of every robot, shares in the legend."""
    plt = _pyplot()
    names = list(intervals)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.8 * max(len(names), 1)))
    for i, name in enumerate(names):
        for s in ACTIVITY_STATES:
            if intervals[name][s]:
                ax.broken_barh(intervals[name][s], (i - 0.35, 0.7), color=_STATE_COLORS[s])
    if names:
        from matplotlib.patches import Patch

        handles = []
        for s in ACTIVITY_STATES:
            each = ", ".join(
                f"{n} {100 * (shares.get(n, {}).get(f'{s}_share') or 0.0):.1f} %" for n in names
            )
            handles.append(Patch(color=_STATE_COLORS[s], label=f"{s}: {each}"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
    else:
        _no_data(ax, "no robot activity reported")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, max(len(names), 1) - 0.4)
    ax.set_xlim(0, duration_s if duration_s > 0 else 1.0)
    ax.set_xlabel("cell time [s]")
    ax.set_ylabel("robot")
    ax.set_title("Robot activity (busy / idle / blocked)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    p = run_dir / "activity.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p


def write_pnp_outputs(
    run_dir: str | Path, kpis: Mapping[str, Any], plots: bool = True
) -> list[Path]:
    """``events.csv`` and (with ``plots``) ``throughput.png``, ``cycle_times.png`` and
    ``activity.png`` from the run directory's ``events.jsonl``; returns the files written.

    Args:
        run_dir: the run directory.
        kpis: the run's KPIs (with ``pick_and_place``) or the pick-and-place summary itself;
            its ``duration_s`` [s] sets the time axes (default: the last event's time).
        plots: also draw the plots.
    """
    run_dir = Path(run_dir)
    pnp = kpis.get("pick_and_place", kpis)
    written = [write_events_csv(run_dir)]
    if not plots:
        return written
    tl = _read_timeline(run_dir)
    duration = kpis.get("duration_s", pnp.get("duration_s"))
    T = float(duration) if duration is not None else tl.kpis.t_last
    tl.finish(T)
    shares = pnp.get("robots") or tl.kpis.summary(T, 0.0, {})["robots"]
    written.append(plot_throughput(run_dir, np.asarray(tl.placed_t, dtype=float), T))
    written.append(plot_cycle_times(run_dir, tl.kpis.cycle_times()))
    written.append(plot_activity(run_dir, tl.intervals, shares, T))
    return written


__all__ = [
    "CSV_COLUMNS",
    "EVENTS_CSV",
    "PNP_LABELS",
    "iter_events",
    "plot_activity",
    "plot_cycle_times",
    "plot_throughput",
    "pnp_kpi_rows",
    "write_events_csv",
    "write_pnp_outputs",
]
