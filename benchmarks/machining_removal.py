"""Material removal: robocell's height-field stock vs one pybullet body per voxel.

    python benchmarks/machining_removal.py [--quick] [--budget 8]

Both sides cut the same slot in the same block: flat 10 mm cutter, 2 mm deep, 1000 mm/min,
along the middle of a 30 x 16 x 4 mm block, starting half engaged at its edge. Both step a
pybullet DIRECT world at 1 ms with a kinematic tool body moved every step; they differ only in
the stock:

* voxels: the block is one static box body per voxel (built with ``createMultiBody`` and
  ``batchPositions``). Every step the broadphase is asked for the bodies overlapping the cutter's
  bounding box (``getOverlappingObjects``), the voxels whose centres lie inside the cutter are
  removed with ``removeBody``. (pybullet_industrial's remover casts rays instead; the AABB query is
  the cheaper of the two, so this baseline is, if anything, favourable to voxels.)
* height field: ``HeightField.sweep`` from the previous to the current tool position every step,
  with the engagement measured (as the machining device needs it for the forces).

Prints cell time per wall second (real-time factor) per resolution, the speed ratio at equal
resolution and the finest resolution each holds at >= 1x real time. A run stops at the end of the
slot or after ``--budget`` wall seconds, whichever comes first (the rate is steady once cutting).
The first step (the entry, which removes a whole half-cylinder at once) is not timed on either side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pybullet as p
from pybullet_utils import bullet_client

from robocell.machining.cutters import Cutter
from robocell.machining.stock import HeightField

MM = 1e-3
BLOCK = (30 * MM, 16 * MM, 4 * MM)
DEPTH = 2 * MM
FEED = 1000 * MM / 60.0  # m/s
DT = 0.001
CUTTER = Cutter("flat", 10 * MM)


def _world() -> tuple[bullet_client.BulletClient, int]:
    client = bullet_client.BulletClient(connection_mode=p.DIRECT)
    client.setTimeStep(DT)
    shape = client.createCollisionShape(
        p.GEOM_CYLINDER, radius=CUTTER.radius, height=CUTTER.flute_length
    )
    tool = client.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=shape)
    return client, tool


def _tool_path() -> tuple[np.ndarray, np.ndarray]:
    z = BLOCK[2] - DEPTH
    start = np.array([0.0, 0.5 * BLOCK[1], z])
    end = np.array([BLOCK[0] + CUTTER.radius, 0.5 * BLOCK[1], z])
    return start, end


def run_voxels(res: float, budget: float) -> dict[str, float]:
    client, tool = _world()
    nx, ny, nz = (round(s / res) for s in BLOCK)
    half = 0.5 * res
    box = client.createCollisionShape(p.GEOM_BOX, halfExtents=[half, half, half])
    gx, gy, gz = np.meshgrid(
        (np.arange(nx) + 0.5) * res,
        (np.arange(ny) + 0.5) * res,
        (np.arange(nz) + 0.5) * res,
        indexing="ij",
    )
    centres = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)
    t0 = time.perf_counter()
    ids: list[int] = []
    for k in range(0, len(centres), 4096):
        batch = centres[k : k + 4096].tolist()
        ids += list(client.createMultiBody(baseMass=0.0, baseCollisionShapeIndex=box,
                                           batchPositions=batch))  # fmt: skip
    build = time.perf_counter() - t0
    centre_of = dict(zip(ids, centres))
    start, end = _tool_path()
    direction = (end - start) / np.linalg.norm(end - start)
    steps_total = int(np.linalg.norm(end - start) / (FEED * DT))
    removed = 0
    r2 = CUTTER.radius**2
    t0 = time.perf_counter()
    steps = 0
    for k in range(1, steps_total + 1):
        tip = start + direction * FEED * DT * k
        client.resetBasePositionAndOrientation(
            tool, (tip[0], tip[1], tip[2] + 0.5 * CUTTER.flute_length), (0, 0, 0, 1)
        )
        client.stepSimulation()
        lo = (tip[0] - CUTTER.radius, tip[1] - CUTTER.radius, tip[2])
        hi = (tip[0] + CUTTER.radius, tip[1] + CUTTER.radius, tip[2] + CUTTER.flute_length)
        for body, _link in client.getOverlappingObjects(lo, hi) or ():
            c = centre_of.get(body)
            if c is None:
                continue
            if (c[0] - tip[0]) ** 2 + (c[1] - tip[1]) ** 2 <= r2 and c[2] >= tip[2]:
                client.removeBody(body)
                del centre_of[body]
                removed += 1
        if k == 1:  # the entry step removes a whole half-cylinder at once: not timed
            t0 = time.perf_counter()
            continue
        steps = k - 1
        if time.perf_counter() - t0 > budget:
            break
    wall = time.perf_counter() - t0
    client.disconnect()
    return {
        "bodies": float(len(ids)),
        "build_s": build,
        "cell_s": steps * DT,
        "rtf": steps * DT / wall,
        "removed_mm3": removed * (res / MM) ** 3,
    }


def run_heightfield(cell: float, budget: float) -> dict[str, float]:
    client, tool = _world()
    hf = HeightField(BLOCK[0], BLOCK[1], BLOCK[2], cell=cell)
    start, end = _tool_path()
    direction = (end - start) / np.linalg.norm(end - start)
    steps_total = int(np.linalg.norm(end - start) / (FEED * DT))
    volume = 0.0
    prev = start
    t0 = time.perf_counter()
    steps = 0
    sweep_s = 0.0
    for k in range(1, steps_total + 1):
        tip = start + direction * FEED * DT * k
        client.resetBasePositionAndOrientation(
            tool, (tip[0], tip[1], tip[2] + 0.5 * CUTTER.flute_length), (0, 0, 0, 1)
        )
        client.stepSimulation()
        ts = time.perf_counter()
        volume += hf.sweep(CUTTER, prev, tip).volume
        sweep_s += time.perf_counter() - ts
        prev = tip
        if k == 1:  # untimed entry step, as for the voxels
            t0 = time.perf_counter()
            sweep_s = 0.0
            continue
        steps = k - 1
        if time.perf_counter() - t0 > budget:
            break
    wall = time.perf_counter() - t0
    client.disconnect()
    return {
        "cells": float(hf.h.size),
        "cell_s": steps * DT,
        "rtf": steps * DT / wall,
        "sweep_us": 1e6 * sweep_s / max(steps, 1),
        "removed_mm3": volume / MM**3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer resolutions, 2 s per run")
    ap.add_argument("--budget", type=float, default=8.0, help="wall seconds per run at most")
    a = ap.parse_args()
    budget = 2.0 if a.quick else a.budget
    vox_res = [2.0, 1.0] if a.quick else [2.0, 1.0, 0.5]
    hf_res = [2.0, 1.0, 0.5, 0.1] if a.quick else [2.0, 1.0, 0.5, 0.25, 0.1, 0.05]

    print(
        f"slot: flat D = {CUTTER.diameter / MM:g} mm, a_p = {DEPTH / MM:g} mm, "
        f"1000 mm/min, block {BLOCK[0] / MM:g} x {BLOCK[1] / MM:g} x {BLOCK[2] / MM:g} mm, "
        f"1 ms steps, <= {budget:g} s wall per run"
    )
    vox = {r: run_voxels(r * MM, budget) for r in vox_res}
    hfs = {r: run_heightfield(r * MM, budget) for r in hf_res}

    print(
        f"\n{'resolution':>10} {'voxel bodies':>13} {'build [s]':>10} {'voxel RTF':>10}"
        f" {'HF cells':>9} {'sweep [us]':>11} {'HF RTF':>8} {'HF / voxel':>11}"
    )
    for r in sorted(set(vox_res) | set(hf_res), reverse=True):
        v = vox.get(r)
        h = hfs[r]
        vcols = (
            f"{v['bodies']:>13.0f} {v['build_s']:>10.2f} {v['rtf']:>10.3f}"
            if v
            else f"{'-':>13} {'-':>10} {'-':>10}"
        )
        ratio = f"{h['rtf'] / v['rtf']:>10.0f}x" if v else f"{'-':>11}"
        print(
            f"{r:>8g} mm {vcols} {h['cells']:>9.0f} {h['sweep_us']:>11.0f} {h['rtf']:>8.2f} {ratio}"
        )

    def finest(runs: dict[float, dict[str, float]]) -> str:
        ok = [r for r, x in runs.items() if x["rtf"] >= 1.0]
        return f"{min(ok):g} mm" if ok else f"none (coarsest tried: {max(runs):g} mm)"

    print(
        f"\nfinest resolution at >= 1x real time: voxels {finest(vox)}, height field {finest(hfs)}"
    )
    for r, v in vox.items():
        print(
            f"  {r:g} mm: voxels removed {v['removed_mm3']:.0f} mm^3 in {v['cell_s']:.3f} s; "
            f"height field {hfs[r]['removed_mm3']:.0f} mm^3 in {hfs[r]['cell_s']:.3f} s"
        )


if __name__ == "__main__":
    main()
