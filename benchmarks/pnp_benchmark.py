"""robocell on the default pick-and-place cell against a plain pybullet loop over the same bodies.

    python benchmarks/pnp_benchmark.py [--duration 60] [--repeats 3] [--parts-scan]

Prints robocell's real-time factor (no recording, and recording to a temporary directory; target
>= 15x at 1 ms physics steps), the median ratio of robocell's wall time to a plain pybullet loop
that reproduces the same physical run (target <= 1.3x), and pybullet's physics-only cost per step
(the ceiling of both). ``--parts-scan`` adds the physics cost per step against the number of
parts resting on the belt.

The plain loop replays a robocell run of the same scenario, recorded once (untimed) at the start:
every control tick it sends the recorded joint command to the robot's position motors (and, before
the second physics step of the tick, the setpoint moved along the velocity feed-forward, as
robocell's drive model does), puts the belt joint back to zero travel at the belt speed (and sets
the belt motor when the speed changes), creates each part at its recorded time, pose and velocity
(shapes shared per part type), holds a gripped part with a fixed constraint from the recorded grip
to the recorded let-go (cup-part collisions off meanwhile), removes the parts robocell removed,
and steps the physics. It has no controller, sensors, signals, events, KPIs or recording: those
are what robocell adds (the controller's own time is reported apart, since a hand-written script
needs a control law too).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pybullet as pb

from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import Cell
from robocell.cell.devices import Device
from robocell.robot.sim_robot import SimRobot
from robocell.scenario.loader import load_scenario

DEFAULT = Path(__file__).resolve().parents[1] / "scenarios" / "pick_and_place.yaml"


def _build(scenario: Path) -> Cell:
    cell = cell_from_scenario(load_scenario(scenario))
    cell.end_when_done = False  # every loop simulates the same cell time
    return cell


def _devices(cell: Cell) -> tuple[SimRobot, Any, Any, Any]:
    """The robot, the (only) conveyor, part source and vacuum gripper of a pick-and-place cell."""
    from robocell.pnp import Conveyor, PartSource, VacuumGripper

    (robot,) = cell.robots.values()
    assert isinstance(robot, SimRobot)

    def one(kind: type) -> Any:
        found = [d for d in cell.devices.values() if isinstance(d, kind)]
        if len(found) != 1:
            raise SystemExit(f"the scenario needs exactly one {kind.__name__}")
        return found[0]

    return robot, one(Conveyor), one(PartSource), one(VacuumGripper)


# -- robocell ------------------------------------------------------------------------------------
def time_robocell(scenario: Path, duration: float, record: bool) -> tuple[float, float]:
    """Wall and CPU seconds of ``Cell.run`` for ``duration`` of cell time."""
    cell = _build(scenario)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            cell.run(duration, out_dir=tmp if record else None, plots=False)
            return time.perf_counter() - t0, time.process_time() - c0
    finally:
        cell.close()


# -- the recorded run that the plain loop replays -----------------------------------------------
@dataclass
class Script:
    """What happened in a robocell run, per physics step, for the plain loop to replay."""

    ticks: int
    steps_per_tick: int
    #: per tick: applied position target, its velocity feed-forward (None: no new command)
    commands: list[tuple[list[float], list[float]] | None]
    #: per tick: belt speed [m/s]
    belt: list[float]
    #: physics step -> [(kind, part id, data)] in the order they happened
    events: dict[int, list[tuple[str, int, Any]]] = field(default_factory=dict)
    #: part type name -> PartType
    types: dict[str, Any] = field(default_factory=dict)
    #: time spent in the controller's step() [s]
    controller_s: float = 0.0
    #: mean and largest number of parts in the world
    parts_mean: float = 0.0
    parts_max: int = 0


def record_script(scenario: Path, duration: float) -> Script:
    """Run robocell once (untimed) and log what the plain loop must reproduce."""
    cell = _build(scenario)
    robot, belt, source, gripper = _devices(cell)
    cid = cell.world.client
    world = cell.world
    events: dict[int, list[tuple[str, int, Any]]] = defaultdict(list)
    cmd_now: list[Any] = [None]
    parts_alive = [0]

    apply_command = robot.apply_command

    def logged_apply(cmd: Any, t: float) -> Any:
        applied = apply_command(cmd, t)
        cmd_now[0] = (list(applied.values), list(applied.velocity))
        return applied

    robot.apply_command = logged_apply  # type: ignore[method-assign]

    spawn = cell.parts.spawn

    def logged_spawn(body: int, type_name: str, where: str = "", **data: Any) -> Any:
        part = spawn(body, type_name, where, **data)
        pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=cid)
        lin, _ = pb.getBaseVelocity(body, physicsClientId=cid)
        events[world.steps].append(("spawn", part.id, (type_name, pos, orn, lin)))
        parts_alive[0] += 1
        return part

    cell.parts.spawn = logged_spawn  # type: ignore[method-assign]

    remove = cell.parts.remove

    def logged_remove(part: Any) -> None:
        if part.body >= 0:
            events[world.steps].append(("remove", part.id, None))
            parts_alive[0] -= 1
        remove(part)

    cell.parts.remove = logged_remove  # type: ignore[method-assign]

    grip = gripper._grip

    def logged_grip(c: Cell, part: Any, *a: Any) -> None:
        events[world.steps].append(("grip", part.id, None))
        grip(c, part, *a)

    gripper._grip = logged_grip

    let_go = gripper._let_go

    def logged_let_go(*a: Any) -> None:
        events[world.steps].append(("let_go", gripper._part.id, None))
        let_go(*a)

    gripper._let_go = logged_let_go

    ctrl = cell.controller
    assert ctrl is not None
    ctrl_step = ctrl.step
    ctrl_time = [0.0]

    def timed_step(obs: Any) -> Any:
        t0 = time.perf_counter()
        out = ctrl_step(obs)
        ctrl_time[0] += time.perf_counter() - t0
        return out

    ctrl.step = timed_step  # type: ignore[method-assign]
    try:
        cell.start()
        ticks = round(duration / cell.control_period)
        commands: list[Any] = []
        speeds: list[float] = []
        alive, most = 0, 0
        for _ in range(ticks):
            cmd_now[0] = None
            cell.step()
            commands.append(cmd_now[0])
            speeds.append(belt.actual_speed)
            alive += parts_alive[0]
            most = max(most, parts_alive[0])
        return Script(
            ticks=ticks,
            steps_per_tick=world.steps_for(cell.control_period),
            commands=commands,
            belt=speeds,
            events=dict(events),
            types={t.name: t for t in source.types},
            controller_s=ctrl_time[0],
            parts_mean=alive / ticks,
            parts_max=most,
        )
    finally:
        cell.close()


# -- the plain loop ------------------------------------------------------------------------------
def time_plain(scenario: Path, script: Script) -> tuple[float, float, float]:
    """Wall and CPU seconds of the plain loop replaying ``script``, and the wall seconds spent in
    ``stepSimulation`` alone."""
    cell = _build(scenario)
    try:
        robot, belt_dev, _, _ = _devices(cell)
        cid = cell.world.client
        body, joints, tool = robot.body, robot.joint_ids, robot.tool_link
        belt = belt_dev.body
        n = robot.n
        kp, kd = [0.3] * n, [1.0] * n
        effort = list(robot.limits.effort)
        h = cell.world.physics_step
        spt = script.steps_per_tick
        belt_force = 1e5
        shapes: dict[str, tuple[int, int]] = {}
        bodies: dict[int, int] = {}  # part id -> body
        held: dict[int, int] = {}  # part id -> constraint
        step_sim, motors = pb.stepSimulation, pb.setJointMotorControlArray
        pc = time.perf_counter
        q = robot.state().q.tolist()
        dq = [0.0] * n
        motor_v = float("nan")
        physics = 0.0
        s = 0
        gc.collect()
        t0, c0 = pc(), time.process_time()
        for k in range(script.ticks):
            cmd = script.commands[k]
            if cmd is not None:
                q, dq = cmd
            v = script.belt[k]
            pb.resetJointState(belt, 0, 0.0, v, physicsClientId=cid)
            if v != motor_v:
                pb.setJointMotorControl2(
                    belt,
                    0,
                    pb.VELOCITY_CONTROL,
                    targetVelocity=v,
                    force=belt_force,
                    physicsClientId=cid,
                )
                motor_v = v
            for i in range(spt):
                for kind, pid, data in script.events.get(s, ()):
                    if kind == "spawn":
                        tname, pos, orn, lin = data
                        pt = script.types[tname]
                        if tname not in shapes:
                            shapes[tname] = pt._shapes(cid)
                        col, vis = shapes[tname]
                        b = pb.createMultiBody(pt.mass, col, vis, pos, orn, physicsClientId=cid)
                        pb.changeDynamics(
                            b,
                            -1,
                            lateralFriction=pt.friction,
                            linearDamping=0.0,
                            angularDamping=0.0,
                            physicsClientId=cid,
                        )
                        if any(lin):
                            pb.resetBaseVelocity(b, lin, [0.0, 0.0, 0.0], physicsClientId=cid)
                        bodies[pid] = b
                    elif kind == "grip":
                        b = bodies[pid]
                        ls = pb.getLinkState(body, tool, physicsClientId=cid)
                        bp, bq = pb.getBasePositionAndOrientation(b, physicsClientId=cid)
                        ip, iq = pb.invertTransform(ls[0], ls[1])
                        rp, rq = pb.multiplyTransforms(ip, iq, bp, bq)
                        held[pid] = pb.createConstraint(
                            body,
                            tool,
                            b,
                            -1,
                            pb.JOINT_FIXED,
                            [0, 0, 0],
                            rp,
                            [0, 0, 0],
                            rq,
                            physicsClientId=cid,
                        )
                        pb.setCollisionFilterPair(body, b, tool, -1, 0, physicsClientId=cid)
                    elif kind == "let_go":
                        pb.removeConstraint(held.pop(pid), physicsClientId=cid)
                        pb.setCollisionFilterPair(
                            body, bodies[pid], tool, -1, 1, physicsClientId=cid
                        )
                    else:  # remove
                        if pid in held:
                            pb.removeConstraint(held.pop(pid), physicsClientId=cid)
                        pb.removeBody(bodies.pop(pid), physicsClientId=cid)
                # the drive model: the setpoint moves along the feed-forward between ticks
                target = q if i == 0 else [a + w * i * h for a, w in zip(q, dq)]
                motors(
                    body,
                    joints,
                    pb.POSITION_CONTROL,
                    targetPositions=target,
                    targetVelocities=dq,
                    forces=effort,
                    positionGains=kp,
                    velocityGains=kd,
                    physicsClientId=cid,
                )
                ts = pc()
                step_sim(physicsClientId=cid)
                physics += pc() - ts
                s += 1
        return pc() - t0, time.process_time() - c0, physics
    finally:
        cell.close()


# -- where robocell's time goes ------------------------------------------------------------------
def breakdown(scenario: Path, duration: float) -> tuple[float, list[tuple[str, float]]]:
    """µs per tick of robocell's tick (no recording) and of each of its parts, from one
    instrumented run: every part is timed by a wrapper (about 0.3 µs a call), so the parts add
    up to a little more than an uninstrumented tick."""
    cell = _build(scenario)
    robot, _, _, _ = _devices(cell)
    acc: dict[str, float] = defaultdict(float)
    pc = time.perf_counter

    def timed(obj: Any, name: str, label: str) -> None:
        f = getattr(obj, name)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = pc()
            try:
                return f(*a, **kw)
            finally:
                acc[label] += pc() - t0

        setattr(obj, name, wrapper)

    step_sim = pb.stepSimulation
    timed(pb, "stepSimulation", "physics (stepSimulation)")
    try:
        timed(cell.controller, "step", "controller step() (user code)")
        timed(robot, "apply_command", "robot command: limits, motors")
        timed(robot, "pre_step", "robot setpoint interpolation (per step)")
        timed(cell, "_observe", "observation (joint state read)")
        timed(cell, "_sample", "KPI/recording buffers")
        timed(cell, "_check_collisions", "collision check (every 10 ms)")
        cell._add_part_monitor()  # (start() would add it)
        for n, d in cell.devices.items():
            for hook in ("apply", "before_step", "sense"):
                if getattr(type(d), hook) is not getattr(Device, hook):
                    timed(d, hook, f"{type(d).__name__} '{n}' {hook}")
        cell._tick_steps = 0  # bind the drives again, to the timed hooks
        cell._plan_ticks()
        cell.start()
        ticks = round(duration / cell.control_period)
        gc.collect()
        t0 = pc()
        for _ in range(ticks):
            cell.step()
        total = (pc() - t0) / ticks * 1e6
    finally:
        pb.stepSimulation = step_sim
        cell.close()
    parts = sorted(((k, v / ticks * 1e6) for k, v in acc.items()), key=lambda kv: -kv[1])
    return total, parts


# -- physics cost against resting parts ----------------------------------------------------------
def parts_scan(scenario: Path, counts: list[int], steps: int = 2000) -> list[tuple[int, float]]:
    """stepSimulation cost [µs/step] with ``n`` parts resting on the stopped belt (robot
    holding still)."""
    out = []
    for n in counts:
        cell = _build(scenario)
        try:
            robot, belt, source, _ = _devices(cell)
            cid = cell.world.client
            pb.setJointMotorControl2(
                belt.body,
                0,
                pb.VELOCITY_CONTROL,
                targetVelocity=0.0,
                force=1e5,
                physicsClientId=cid,
            )
            q = robot.state().q.tolist()
            pb.setJointMotorControlArray(
                robot.body,
                robot.joint_ids,
                pb.POSITION_CONTROL,
                targetPositions=q,
                forces=list(robot.limits.effort),
                physicsClientId=cid,
            )
            types = source.types
            for i in range(n):
                pt = types[i % len(types)]
                x = float(belt.start_xyz[0]) + 0.1 + 0.12 * i
                z = belt.surface_z + pt.rest_offset + 2e-4
                pt.create(cell.world, _pose(x, float(belt.centre[1]), z), {})
            total = 0.0
            for k in range(500 + steps):  # 500 steps to settle, then timed
                if k % 2 == 0:  # the belt is put back every tick, as robocell does
                    pb.resetJointState(belt.body, 0, 0.0, 0.0, physicsClientId=cid)
                t0 = time.perf_counter()
                pb.stepSimulation(physicsClientId=cid)
                if k >= 500:
                    total += time.perf_counter() - t0
            out.append((n, total / steps * 1e6))
        finally:
            cell.close()
    return out


def _pose(x: float, y: float, z: float) -> Any:
    from spatialmath import SE3

    return SE3(x, y, z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT)
    ap.add_argument("--duration", type=float, default=60.0, help="cell time per loop [s]")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the loops")
    ap.add_argument("--parts-scan", action="store_true", help="physics cost vs resting parts")
    ap.add_argument("--breakdown", action="store_true", help="where robocell's tick time goes")
    a = ap.parse_args()
    dt = load_scenario(a.scenario).scenario.world.physics_step
    steps = a.duration / dt

    script = record_script(a.scenario, a.duration)
    rows: dict[str, list[tuple[float, float]]] = {"plain": [], "rc": [], "rc_rec": []}
    physics: list[float] = []
    for _ in range(a.repeats):  # interleaved: each round runs all three back to back
        w, c, p = time_plain(a.scenario, script)
        rows["plain"].append((w, c))
        physics.append(p)
        rows["rc"].append(time_robocell(a.scenario, a.duration, record=False))
        rows["rc_rec"].append(time_robocell(a.scenario, a.duration, record=True))

    def best(key: str) -> float:
        return min(w for w, _ in rows[key])

    def ratios(key: str, i: int) -> list[float]:
        return [r[i] / p[i] for r, p in zip(rows[key], rows["plain"])]

    phys_us = min(physics) / steps * 1e6
    ctrl_us = script.controller_s / script.ticks * 1e6
    print(
        f"scenario: {a.scenario.name}, {a.duration:g} s of cell time ({script.ticks} ticks of "
        f"{script.steps_per_tick} physics steps), {a.repeats} interleaved rounds"
    )
    print(f"parts in the world: mean {script.parts_mean:.1f}, at most {script.parts_max}")
    print(f"{'loop':<34}{'steps/s':>10}{'x real time':>13}{'µs / tick':>11}")
    names = {
        "plain": "plain pybullet (replay)",
        "rc": "robocell, no recording",
        "rc_rec": "robocell, recording",
    }
    for key, label in names.items():
        b = best(key)
        us = b / script.ticks * 1e6
        print(f"{label:<34}{steps / b:>10.0f}{steps * dt / b:>13.1f}{us:>11.0f}")
    tick_phys = phys_us * script.steps_per_tick
    print(
        f"{'physics only (stepSimulation)':<34}{1e6 / phys_us:>10.0f}"
        f"{1e6 / phys_us * dt:>13.1f}{tick_phys:>11.0f}"
    )
    print(f"controller step() (in robocell): {ctrl_us:.0f} µs / tick")
    for key in ("rc", "rc_rec"):
        wr, cr = ratios(key, 0), ratios(key, 1)
        pairs = ", ".join(f"{x:.2f}" for x in wr)
        print(
            f"ratio {names[key]} / plain: {statistics.median(wr):.2f} median of "
            f"[{pairs}] (CPU time: {statistics.median(cr):.2f})  (target <= 1.3)"
        )
    print(
        f"real-time factor: {steps * dt / best('rc'):.1f}x no recording, "
        f"{steps * dt / best('rc_rec'):.1f}x recording  (target >= 15); the physics alone "
        f"allows {1e6 / phys_us * dt:.1f}x"
    )
    if a.breakdown:
        total, parts = breakdown(a.scenario, a.duration)
        print(f"\n{'robocell tick, instrumented (no recording)':<46}{'µs / tick':>10}")
        for label, us in parts:
            print(f"{label:<46}{us:>10.1f}")
        rest = total - sum(us for _, us in parts)
        print(f"{'rest (Cell.step, World.step, run loop)':<46}{rest:>10.1f}")
        print(f"{'total':<46}{total:>10.1f}")
    if a.parts_scan:
        print(f"\n{'parts resting on the belt':<28}{'µs / physics step':>18}")
        for n, us in parts_scan(a.scenario, [0, 2, 4, 6, 8, 10]):
            print(f"{n:<28}{us:>18.1f}")


if __name__ == "__main__":
    main()
