"""robocell's run loop vs a plain pybullet loop on the default scenario, and memory over run length.

    python benchmarks/sim_overhead.py [--duration 20] [--repeats 3] [--memory] [--stepped]

Prints physics steps per second of both loops, their ratio (target: robocell <= 1.25x the plain
loop), the real-time factor (target: >= 20x at 1 ms steps), and with --memory the peak resident
memory of a 1-minute and a 30-minute run (target: within 10 % of each other). ``--stepped`` also
times the same cell driven through ``cell.step()``, the general tick external drivers use
(``Cell.run`` runs a one-robot cell through its fused loop).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robocell.bench.overhead import measure_overhead, peak_rss_mb

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "cycle_test.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT)
    ap.add_argument("--duration", type=float, default=20.0, help="cell time per loop [s]")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="also measure 1 min vs 30 min runs")
    ap.add_argument(
        "--stepped",
        action="store_true",
        help="also time the cell driven through cell.step() (the general tick of external drivers)",
    )
    a = ap.parse_args()

    r = measure_overhead(a.scenario, a.duration, a.repeats, stepped=a.stepped)
    print(f"scenario: {a.scenario.name}, {a.duration:g} s of cell time, best of {a.repeats}")
    print(f"{'loop':<28}{'steps/s':>12}{'x real time':>14}")
    print(f"{'plain pybullet':<28}{r.plain_steps_per_s:>12.0f}{r.plain_rtf:>14.1f}")
    print(f"{'robocell (recording on)':<28}{r.robocell_steps_per_s:>12.0f}{r.robocell_rtf:>14.1f}")
    if r.stepped_steps_per_s is not None:
        rtf = r.stepped_steps_per_s * r.physics_step
        print(f"{'robocell, cell.step() loop':<28}{r.stepped_steps_per_s:>12.0f}{rtf:>14.1f}")
    pairs = ", ".join(f"{x:.2f}" for x in r.pair_ratios)
    print(f"ratio robocell / plain: {r.ratio:.3f} median of pairs [{pairs}]  (target <= 1.25)")
    if r.stepped_ratios:
        st = ", ".join(f"{x:.2f}" for x in r.stepped_ratios)
        med = float(np.median(r.stepped_ratios))
        print(f"ratio cell.step() loop / plain: {med:.3f} [{st}]  (no target: external drivers)")
    print(f"real-time factor: {r.robocell_rtf:.1f}x  (target >= 20)")
    if a.memory:
        short = peak_rss_mb(a.scenario, 60.0)
        long = peak_rss_mb(a.scenario, 1800.0)
        print(f"\n{'run':<28}{'peak RSS [MB]':>14}")
        print(f"{'1 min of cell time':<28}{short:>14.1f}")
        print(f"{'30 min of cell time':<28}{long:>14.1f}")
        print(f"growth: {100 * (long / short - 1):+.1f} %  (target within 10 %)")


if __name__ == "__main__":
    main()
