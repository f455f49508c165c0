"""Real-time factor of a whole machining cell, and where its time goes.

Runs a machining scenario (default: the pocket, stiff baseline) for a stretch of cell time and
prints the real-time factor with the wall time split into the cell's parts: the physics
(pybullet steps), the controller (path following: interpolation plus Newton IK), the
machining station (tool-tip position, swept-volume removal, engagement, Kienzle force, the
deflection of the joints), and the rest (observations, limits, KPIs, recording). The parts are
timed by wrapping them with a clock in the same run, so they add up to the total.

    python benchmarks/machining_cell.py                        # 40 s of the pocket
    python benchmarks/machining_cell.py --duration 10 --grid 0.00025
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import robocell as rc
from robocell.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _timed(obj: Any, name: str, acc: dict[str, float], key: str) -> None:
    f: Callable[..., Any] = getattr(obj, name)

    def wrapped(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t0

    setattr(obj, name, wrapped)


def measure(scenario: Path, duration: float, grid: float | None = None) -> dict[str, float]:
    """Run ``scenario`` for ``duration`` s of cell time; return the wall-time split [s]."""
    loaded = load_scenario(scenario)
    if grid is not None:
        st = [s for s in loaded.scenario.stations if s.type == "machining"][0]
        object.__setattr__(st.stock, "grid", grid)
    t0 = time.perf_counter()
    cell = rc.cell_from_scenario(loaded)
    build = time.perf_counter() - t0
    acc = {"physics": 0.0, "controller": 0.0, "station": 0.0}
    _timed(cell.world, "step", acc, "physics")
    _timed(cell.controller, "step", acc, "controller")
    station = next(d for d in cell.devices.values() if hasattr(d, "stock"))
    _timed(station, "sense", acc, "station")
    t0 = time.perf_counter()
    cell.run(duration, plots=False)
    total = time.perf_counter() - t0
    cells = station.stock.h.size
    cell.close()
    return {"build": build, "total": total, **acc, "cells": float(cells), "cell_time": duration}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "machining_pocket.yaml"))
    ap.add_argument("--duration", type=float, default=40.0, help="cell time [s]")
    ap.add_argument("--grid", type=float, help="override the stock grid [m]")
    a = ap.parse_args()
    r = measure(Path(a.scenario), a.duration, a.grid)
    rest = r["total"] - r["physics"] - r["controller"] - r["station"]
    print(f"{Path(a.scenario).name}: {a.duration:.0f} s of cell time, {r['cells']:.0f} stock cells")
    print(f"  build (plan + nominal part)  {r['build']:.2f} s")
    print(
        f"  run                          {r['total']:.2f} s wall, real-time factor "
        f"{a.duration / r['total']:.2f}x"
    )
    ticks = a.duration / 0.002
    print("  part         share   per control tick [µs]")
    for k, v in (
        ("physics", r["physics"]),
        ("controller", r["controller"]),
        ("station", r["station"]),
        ("rest", rest),
    ):
        print(f"  {k:<11} {v / r['total']:6.1%}   {v / ticks * 1e6:8.0f}")


if __name__ == "__main__":
    main()
