"""``Cell.run``'s ticks for a cell with one simulated robot, as one function.

:meth:`Cell.step` is the reference tick. It goes through the Robot interface (clamp, command),
the drives between physics steps and the observation, one call per layer, so that every robot,
device and external driver meets the cell at the same seams. For the most common cell, one
:class:`SimRobot` in position control, those layers cost about a tenth of the physics itself
(``benchmarks/README.md``). :func:`run_fused` does the same work for such a cell with its
invariants in locals and without the per-layer calls.

A tick that leaves the common case (a command that would be clamped or is not finite, another
command mode or robot, a TCP load, signal writes, markers, the controller's first ``done``) is
handed to :meth:`Cell.step` whole, before anything of it has been applied: every rare case
has one implementation. ``tests/test_fused_run.py`` holds the two to the same recordings,
events and KPIs, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pybullet as pb

from robocell.control.controller import Commands, Observation
from robocell.errors import RobocellError
from robocell.robot.interface import RobotState, clamp_feed_forward, setpoint_rate
from robocell.robot.sim_robot import SimRobot, drive_setpoint

if TYPE_CHECKING:
    from robocell.cell.cell import Cell

_new_tuple = tuple.__new__


def fusable(cell: Cell) -> bool:
    """Whether :func:`run_fused` can run this (started) cell's ticks: a controller, one
    :class:`SimRobot` (not a subclass, which may override any step) whose drives are the only
    thing called between physics steps, and no deferred flushing."""
    if cell.controller is None or len(cell.robots) != 1 or cell._spare is not None:
        return False
    (robot,) = cell.robots.values()
    return type(robot) is SimRobot and cell._drives == [robot.pre_step]


def run_fused(cell: Cell, n_ticks: int, every_256: Callable[[], None]) -> None:
    """Run ``n_ticks`` control ticks of ``cell`` (see :func:`fusable`) exactly as that many
    :meth:`Cell.step` calls would, and call ``every_256`` after every 256th tick (progress).
    Stops early when the controller is done and the cell's ``end_when_done`` is set."""
    ((name, robot),) = cell.robots.items()
    assert isinstance(robot, SimRobot)
    world = cell.world
    cid, body, joints = world.client, robot.body, robot.joint_ids
    h = world.physics_step
    n_steps = cell._tick_steps
    nj = robot._n
    period = robot.control_period
    lower, upper, step_l, vmax = robot._lower_l, robot._upper_l, robot._step_l, robot._vmax_l
    effort, (kp, kd) = robot._effort, robot._gains
    motors, physics, joint_states = (
        pb.setJointMotorControlArray,
        pb.stepSimulation,
        pb.getJointStates,
    )
    position_control = pb.POSITION_CONTROL
    isfinite, ndarray = math.isfinite, np.ndarray
    held, applied_q, drives = cell._held, cell._applied_q, cell._drives
    apply_calls, sense_calls = cell._apply_calls, cell._sense_calls
    controller_step = cell.controller.step
    due = (name,)
    buf = cell._buffers[name]
    state_buf, cmd_rows, buf_t = buf.state, buf.cmd_rows, cell._buf_t
    cap = len(buf_t)
    collision_every = cell._collision_every
    end_when_done = cell.end_when_done

    for i in range(n_ticks):
        try:
            commands = controller_step(cell._obs)
        except RobocellError:
            raise
        except Exception as exc:
            raise cell._controller_error(exc) from exc
        if type(commands) is not Commands:
            cell._check_commands(commands)
        steps = world._steps
        t = steps * h
        cmds = commands.joints
        cmd = cmds.get(name) if cmds else held.get(name)
        out = None
        if (
            cmd is not None
            and cmd[0] == "position"
            and (not cmds or len(cmds) == 1)
            and not (commands.signals or commands.markers or (commands.done and not cell.done))
            and robot._mode == "position"
            and not robot._any_clamping
            and not robot._loaded  # (also: no joint deflection offset)
            and type(cmd[1]) is ndarray
            and cmd[1].ndim == 1
        ):
            req = cmd[1].tolist()
            prev = robot._last_target_list
            ff = cmd[2]
            given = ff is not None
            if not given:  # the drive follows the setpoints at their own rate
                ffl = setpoint_rate(req, prev, period) if prev is not None else []
            elif type(ff) is ndarray and ff.ndim == 1:
                ffl = ff.tolist()
            else:
                ffl = []  # (a wrong shape: Cell.step words the error)
            if (
                prev is not None
                and len(req) == nj
                and len(ffl) == nj
                and isfinite(sum(req))
                and isfinite(sum(ffl))
            ):
                # the command as it is, if Robot.apply_command's clamp would leave it so: inside
                # the joint limits and within a period's travel at the velocity limit from the
                # last target (the same bounds, so the same decision); otherwise Cell.step
                # clamps it and reports the limits
                over = False
                for v, w, p, lo, hi, st, vm in zip(req, ffl, prev, lower, upper, step_l, vmax):
                    if not (lo <= v <= hi and p - st <= v <= p + st):
                        break
                    if w > vm or w < -vm:
                        over = True
                else:
                    out = req
                    if over and given:  # (Robot.apply_command's feed-forward clamp)
                        ffl = clamp_feed_forward(ffl, vmax)
        if out is None:
            cell.step(commands)
        else:
            # the command, as Robot.apply_command and SimRobot._apply_position leave it
            held[name] = cmd
            robot._last_target_list = out
            robot._torque_mode = False
            robot._interp = interp = (out, ffl)
            robot._cmd_step = steps
            robot._last_sent = interp
            motors(body, joints, position_control, out, ffl, effort, kp, kd, cid)
            applied_q[name] = (out, ffl, t)
            for f in apply_calls:
                f(cell)
            if robot._interp is interp and not robot._loaded:
                # World.step with SimRobot.pre_step's setpoint interpolation
                for j in range(n_steps):
                    if j:
                        target = drive_setpoint(out, ffl, j * h, lower, upper)
                        robot._last_sent = (target, ffl)
                        motors(body, joints, position_control, target, ffl, effort, kp, kd, cid)
                    physics(cid)
                world._steps = steps = steps + n_steps
            else:  # a device loaded the robot or commanded it: the drives' own code
                world.step(n_steps, drives)
                steps = world._steps
            cell._ticks = ticks = cell._ticks + 1
            for f in sense_calls:
                f(cell)
            # SimRobot.state
            if robot._state_step != steps:
                if robot._torque_mode or robot._q_offset is not None:
                    robot.state()
                else:
                    q, dq, _, tau = zip(*joint_states(body, joints, cid))
                    rows = np.array(q + dq + tau)
                    rows.shape = (3, nj)
                    robot._rows = rows
                    q, dq, tau = rows
                    robot._state = _new_tuple(RobotState, (steps * h, q, dq, tau))
                    robot._state_step = steps
            # Cell._observe_and_sample
            events: tuple = ()
            if cell._new_events:
                events = tuple(cell._new_events)
                cell._new_events = []
            if cell._sig_src is not cell.signals:
                cell._refresh_signal_view()
            t_obs = steps * h
            cell._obs = _new_tuple(
                Observation, (t_obs, {name: robot._state}, due, cell._sig_view, events)
            )
            k = cell._row
            buf_t[k] = t_obs
            state_buf[k] = robot._rows
            cmd_rows.append([*out, *ffl, t])
            if cell._sig_names:
                cell._sample_signals()
            cell._row = k = k + 1
            if k == cap:
                cell._drain()
            if ticks % collision_every == 0:
                cell._check_collisions()
        if end_when_done and cell.done:
            break
        if (i & 255) == 0:
            every_256()
