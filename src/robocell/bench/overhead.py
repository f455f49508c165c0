"""robocell's run loop against a plain pybullet loop over the same bodies and control law.

The plain loop is what a user would write by hand: every control period read the joint states,
run the same control law (the controller's move sequencer), send its command to the same
position motors (moving the setpoint along the feed-forward before each physics step, as
robocell's drive model does), then step the physics.
It runs on the very bodies robocell built (same URDF, flags, tool, gains), so the ratio of the two
is the cost of everything robocell adds: limit clamping, observations, the controller protocol,
KPIs, collision checks and the streamed recording. ``Cell.run`` takes its fused loop for this
cell; :func:`time_stepped` measures the general tick that external drivers step.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as pb

from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import Cell
from robocell.robot.sim_robot import SimRobot
from robocell.scenario.loader import load_scenario


@dataclass(frozen=True)
class OverheadResult:
    """Steps per second of both loops (physics steps of simulated time per wall second).

    ``pair_ratios`` are robocell/plain wall-time ratios of back-to-back pairs; their median is
    the figure to quote, because this machine's speed drifts between pairs more than within one.
    """

    cell_time_s: float
    robocell_steps_per_s: float
    plain_steps_per_s: float
    physics_step: float
    pair_ratios: tuple[float, ...] = ()
    #: ``Cell.step`` driven from outside (the general tick), and its ratios to the same pairs'
    #: plain loops (None: not measured)
    stepped_steps_per_s: float | None = None
    stepped_ratios: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        """Median robocell / plain wall time over the pairs (1.0 = no overhead)."""
        if self.pair_ratios:
            return float(np.median(self.pair_ratios))
        return self.plain_steps_per_s / self.robocell_steps_per_s

    @property
    def robocell_rtf(self) -> float:
        return self.robocell_steps_per_s * self.physics_step

    @property
    def plain_rtf(self) -> float:
        return self.plain_steps_per_s * self.physics_step


def _build(scenario: Path) -> Cell:
    return cell_from_scenario(load_scenario(scenario))


def time_robocell(scenario: Path, duration: float, record: bool = True) -> float:
    """Wall seconds for ``duration`` of cell time through ``Cell.run`` (recording on)."""
    cell = _build(scenario)
    cell.end_when_done = False  # both loops simulate the same cell time
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gc.collect()
            t0 = time.perf_counter()
            cell.run(duration, out_dir=tmp if record else None, plots=False)
            return time.perf_counter() - t0
    finally:
        cell.close()


def time_stepped(scenario: Path, duration: float) -> float:
    """Wall seconds for the same cell time driven tick by tick through ``Cell.step`` (recording
    on), as an external driver (the lockstep bridge, a learning loop) does: the general tick,
    without ``Cell.run``'s fused loop."""
    cell = _build(scenario)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gc.collect()
            t0 = time.perf_counter()
            cell.start(tmp)
            step = cell.step
            for _ in range(round(duration / cell.control_period)):
                step()
            cell._drain()  # what Cell.run does when its ticks are done
            assert cell._recorder is not None
            cell._recorder.close()
            return time.perf_counter() - t0
    finally:
        cell.close()


def time_plain(scenario: Path, duration: float) -> float:
    """Wall seconds for the same cell time in a hand-written pybullet loop."""
    cell = _build(scenario)
    try:
        (robot,) = cell.robots.values()
        assert isinstance(robot, SimRobot)
        seq = cell.controller.seq  # the reference controllers keep their MoveSequencer here
        cid, body, joints = cell.world.client, robot.body, robot.joint_ids
        effort = list(robot.limits.effort)
        n = robot.n
        kp, kd = [0.3] * n, [1.0] * n
        steps = cell.world.steps_for(robot.control_period)
        dt = robot.control_period
        ticks = round(duration / dt)
        gc.collect()
        t0 = time.perf_counter()
        h = cell.world.physics_step
        for k in range(ticks):
            js = pb.getJointStates(body, joints, physicsClientId=cid)
            q = np.array([s[0] for s in js])
            cmd, _ = seq.step(k * dt, q)  # the same control law as the controller's
            qd = cmd.values.tolist()
            dqd = cmd.velocity.tolist() if cmd.velocity is not None else [0.0] * n
            for i in range(steps):
                # the same drive model: the setpoint moves along the feed-forward between ticks
                target = qd if i == 0 else [a + w * i * h for a, w in zip(qd, dqd)]
                pb.setJointMotorControlArray(
                    body,
                    joints,
                    pb.POSITION_CONTROL,
                    targetPositions=target,
                    targetVelocities=dqd,
                    forces=effort,
                    positionGains=kp,
                    velocityGains=kd,
                    physicsClientId=cid,
                )
                pb.stepSimulation(physicsClientId=cid)
        return time.perf_counter() - t0
    finally:
        cell.close()


def measure_overhead(
    scenario: Path, duration: float = 20.0, repeats: int = 3, stepped: bool = False
) -> OverheadResult:
    """``repeats`` back-to-back pairs of both loops (with ``stepped``: triples, the third
    driving ``Cell.step``); best rates and the per-pair ratios."""
    rc_best, plain_best, st_best = float("inf"), float("inf"), float("inf")
    ratios, st_ratios = [], []
    for _ in range(repeats):
        plain = time_plain(scenario, duration)
        rcell = time_robocell(scenario, duration)
        ratios.append(rcell / plain)
        plain_best = min(plain_best, plain)
        rc_best = min(rc_best, rcell)
        if stepped:
            st = time_stepped(scenario, duration)
            st_ratios.append(st / plain)
            st_best = min(st_best, st)
    dt = load_scenario(scenario).scenario.world.physics_step
    steps = duration / dt
    return OverheadResult(
        duration,
        steps / rc_best,
        steps / plain_best,
        dt,
        tuple(ratios),
        steps / st_best if stepped else None,
        tuple(st_ratios),
    )


def peak_rss_mb(scenario: Path, duration: float) -> float:
    """Peak resident memory [MB] of a fresh process running ``duration`` of cell time with
    recording on (measured by the OS for the child process)."""
    code = (
        "import sys, tempfile, resource\n"
        "from pathlib import Path\n"
        "from robocell.bench.overhead import time_robocell\n"
        "time_robocell(Path(sys.argv[1]), float(sys.argv[2]))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(scenario), str(duration)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # ru_maxrss is in KiB on Linux


__all__ = [
    "OverheadResult",
    "measure_overhead",
    "peak_rss_mb",
    "time_plain",
    "time_robocell",
    "time_stepped",
]
