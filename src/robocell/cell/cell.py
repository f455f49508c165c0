"""The Cell: a World with robots, objects and a controller, and its run loop.

``Cell.step()`` is the tick: an external driver (the bridge in lockstep, a learning loop, a
notebook) advances the cell exactly as ``robocell run`` does. ``Cell.run(duration)`` calls it,
except for a cell with one simulated robot, whose ticks it runs through the same work in one
function (:mod:`robocell.cell.fused`), held to ``Cell.step`` byte for byte by the tests.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from spatialmath import SE3

from robocell.cell import fused
from robocell.cell.devices import Device, PartRegistry
from robocell.control.controller import (
    Commands,
    Controller,
    ControllerContext,
    Observation,
    RobotInfo,
)
from robocell.errors import RobocellError, ScenarioError
from robocell.record.kpis import MotionKpis
from robocell.record.pnp_kpis import PnpKpis
from robocell.record.recorder import Recorder, clear_run_outputs, robot_columns
from robocell.robot.interface import JointCommand, Robot, Tool
from robocell.robot.library import RobotModel, load_model
from robocell.robot.sim_robot import SimRobot
from robocell.sim.world import World

#: builds a NamedTuple without its Python-level ``__new__`` (for the per-tick observation)
_new_tuple = tuple.__new__

#: How often contacts are checked for collision KPIs [s].
COLLISION_CHECK_PERIOD = 0.01


class _TickBuffer:
    """Per-robot rows of measurements, one per cell tick, preallocated. TCP poses are computed
    for a whole buffer at once from the measured joints (the same URDF kinematics that the
    physics uses agree within 1e-6 m), which keeps the per-tick cost to a row copy and a list
    append (the command rows become an array once per buffer)."""

    def __init__(self, robot: Robot, cap: int) -> None:
        n = robot.n
        self.n = n
        self.robot = robot
        self.state = np.zeros((cap, 3, n))  # q, dq, tau
        # applied position target, its velocity feed-forward, and the time it was commanded
        self.cmd = np.full((cap, 2 * n + 1), np.nan)
        self.cmd_rows: list[list[float]] = []  # rows of ``cmd`` not yet copied into it
        self.nan_row = [float("nan")] * (2 * n + 1)  # (no command applied)
        self.zeros = [0.0] * n  # (no feed-forward)
        # a SimRobot's state() leaves its (3, n) rows in ``_rows``; other robots build them
        self.sim = type(robot).state_rows is SimRobot.state_rows

    def columns(self, k: int, t: np.ndarray) -> dict[str, np.ndarray]:
        """The first ``k`` rows (sampled at times ``t``) as recording columns, TCP in the world.

        ``q_cmd`` is the position setpoint at the sample's time: the commanded target moved
        along its velocity feed-forward for the time since it was commanded, as the drives
        interpolate it (see :meth:`SimRobot.pre_step`)."""
        r, n = self.robot, self.n
        rows = self.cmd_rows
        if rows:  # rows k - len(rows) .. k - 1 are still lists
            m, w = len(rows), 2 * n + 1
            # (one flat pass: numpy's nested-list conversion costs about twice as much)
            flat = np.fromiter(itertools.chain.from_iterable(rows), float, m * w)
            self.cmd[k - m : k] = flat.reshape(m, w)
            rows.clear()
        q = self.state[:k, 0]
        T = r.base.A @ r.kinematics.flange_batch(q) @ r.tool.tcp.A
        c = self.cmd[:k]
        lim = r.limits
        q_ref = np.clip(
            c[:, :n] + c[:, n : 2 * n] * (t[:k] - c[:, 2 * n])[:, None], lim.lower, lim.upper
        )
        return {
            "q": q,
            "dq": self.state[:k, 1],
            "tau": self.state[:k, 2],
            "q_cmd": q_ref,
            "tcp": T[:, :3, 3].copy(),
            "tcp_quat": _matrices_to_quat(T[:, :3, :3]),
        }


def _matrices_to_quat(R: np.ndarray) -> np.ndarray:
    """(k, 3, 3) rotation matrices -> (k, 4) unit quaternions x, y, z, w (w >= 0).

    Shepperd's method: each row starts from its largest of (w, x, y, z), so rotations near
    180 degrees (a tool pointing straight down) stay exact."""
    k = len(R)
    tr = R[:, 0, 0] + R[:, 1, 1] + R[:, 2, 2]
    cand = np.stack([tr, R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]], axis=1)
    which = cand.argmax(axis=1)
    q = np.empty((k, 4))  # w, x, y, z
    for c in range(4):
        m = which == c
        if not m.any():
            continue
        r = R[m]
        if c == 0:
            s = np.sqrt(1.0 + tr[m]) * 2
            q[m] = np.stack(
                [
                    s / 4,
                    (r[:, 2, 1] - r[:, 1, 2]) / s,
                    (r[:, 0, 2] - r[:, 2, 0]) / s,
                    (r[:, 1, 0] - r[:, 0, 1]) / s,
                ],
                1,
            )
        elif c == 1:
            s = np.sqrt(1.0 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2]) * 2
            q[m] = np.stack(
                [
                    (r[:, 2, 1] - r[:, 1, 2]) / s,
                    s / 4,
                    (r[:, 0, 1] + r[:, 1, 0]) / s,
                    (r[:, 0, 2] + r[:, 2, 0]) / s,
                ],
                1,
            )
        elif c == 2:
            s = np.sqrt(1.0 + r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2]) * 2
            q[m] = np.stack(
                [
                    (r[:, 0, 2] - r[:, 2, 0]) / s,
                    (r[:, 0, 1] + r[:, 1, 0]) / s,
                    s / 4,
                    (r[:, 1, 2] + r[:, 2, 1]) / s,
                ],
                1,
            )
        else:
            s = np.sqrt(1.0 + r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1]) * 2
            q[m] = np.stack(
                [
                    (r[:, 1, 0] - r[:, 0, 1]) / s,
                    (r[:, 0, 2] + r[:, 2, 0]) / s,
                    (r[:, 1, 2] + r[:, 2, 1]) / s,
                    s / 4,
                ],
                1,
            )
    q[q[:, 0] < 0] *= -1
    return q[:, [1, 2, 3, 0]]


@dataclass
class RunResult:
    """What a run returns: KPIs, events and where its files are."""

    kpis: dict[str, Any]
    events: list[dict[str, Any]]
    out_dir: Path | None = None
    recording: Path | None = None
    plots: list[Path] = field(default_factory=list)

    def table(self) -> str:
        """The KPI table as text (what ``robocell run`` prints)."""
        from robocell.record.report import kpi_table

        return kpi_table(self.kpis)


class Cell:
    """A robot cell: world, robots, static objects, signals and a controller.

    Args:
        seed: seed of the cell's random generator (every random draw derives from it).
        physics_step: physics step [s].
        gravity: gravity [m/s²].
        gui: open pybullet's GUI.
        ground: add a ground plane at z = 0.
        name: cell name (recorded).
        solver_iterations: constraint-solver iterations per physics step.
    """

    def __init__(
        self,
        seed: int = 0,
        physics_step: float = 1e-3,
        gravity: Sequence[float] = (0.0, 0.0, -9.81),
        gui: bool = False,
        ground: bool = True,
        name: str = "cell",
        solver_iterations: int = 50,
    ) -> None:
        self.name = name
        self.seed = int(seed)
        self.world = World(
            physics_step, gravity, seed=self.seed, gui=gui, solver_iterations=solver_iterations
        )
        self.ground = self.world.add_ground() if ground else None
        self.robots: dict[str, Robot] = {}
        self.objects: dict[str, int] = {}
        self.signals: dict[str, Any] = {}
        self.devices: dict[str, Device] = {}
        self.parts = PartRegistry(self)
        self.controller: Controller | None = None
        self.end_when_done = False
        self._started = False
        self._tick_steps = 0
        self._robot_steps: dict[str, int] = {}
        self._held: dict[str, JointCommand] = {}
        self._applied_q: dict[str, Any] = {}
        self._kpis: dict[str, MotionKpis] = {}
        self._buffers: dict[str, _TickBuffer] = {}
        self._buf_t: np.ndarray = np.zeros(0)
        self._row = 0
        self._flush_rows = 0  # buffered rows that make a flush due
        self._rows_drained = 0
        # deferred flushing: a second set of buffers that the ticks fill while the first is
        # flushed in stages, and the staged flush in progress
        self._spare: tuple[Any, ...] | None = None
        self._pending_drain: Iterator[bool] | None = None
        self._collision_every = 1
        self._all_robots: tuple[str, ...] = ()
        self._single_rate = True
        self._drives: list[Callable[[], None]] = []
        self._events: list[dict[str, Any]] = []
        #: callables that receive every event as it is emitted (KPI collectors, bridges)
        self.event_listeners: list[Callable[[dict[str, Any]], None]] = []
        #: pick-and-place KPIs, reduced from the events as they are emitted
        self.pnp_kpis = PnpKpis()
        self.event_listeners.append(self.pnp_kpis.on_event)
        #: the ideal cycle time of one robot [s] (OEE performance); None: measured
        self.ideal_cycle_time: float | None = None
        self._new_events: list[dict[str, Any]] = []
        self._event_count = 0
        self._recorder: Recorder | None = None
        self._record_every = 1
        self._ticks = 0
        self._markers: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self._contacts_now: set[tuple[int, int, int, int]] = set()
        self._collisions = {"self": 0, "environment": 0}
        self._grip_links: dict[int, tuple[int, ...]] = {}
        self._robot_bodies: dict[int, str] = {}  # simulated robots' body ids -> names
        self._obs: Observation | None = None
        self._device_list: list[Device] = []
        # per-tick calls, bound when the run starts: the devices' apply and sense hooks (only
        # those a device overrides), the robots' state reads and a read-only view of the signals
        self._apply_calls: list[Callable[[Cell], None]] = []
        self._sense_calls: list[Callable[[Cell], None]] = []
        self._state_calls: list[tuple[str, Callable[[], Any]]] = []
        self._sig_view: Any = MappingProxyType({})
        self._sig_src: dict[str, Any] | None = None
        self._sig_names: list[str] = []
        self._sig_buf = np.zeros((0, 0))
        self._sig_rows: list[list[Any]] = []  # rows of ``_sig_buf`` not yet copied into it
        self.done = False
        self._reset_for: Controller | None = None
        self._finished = False

    # -- building ------------------------------------------------------------------------------
    def add_robot(
        self,
        model: str | RobotModel,
        name: str | None = None,
        base: SE3 | None = None,
        tool: Tool | Any | None = None,
        control_period: float = 0.002,
        q0: np.ndarray | None = None,
        position_gain: float = 0.3,
        velocity_gain: float = 1.0,
        backend: Mapping[str, Any] | None = None,
    ) -> SimRobot:
        """Add a simulated robot from the library (``"ur5e"``) or a URDF path.

        ``tool`` is a :class:`Tool`, or a gripper (:class:`~robocell.pnp.VacuumGripper`,
        :class:`~robocell.pnp.ParallelGripper`): the robot is built with the gripper's tool and
        the gripper is added as the device ``<name>.gripper``.

        ``backend`` makes it a :class:`~robocell.bridge.remote.RemoteRobot`: a dict with
        ``endpoint`` and optionally ``mode``, ``remote_name``, ``timeout``, ``secret_key``,
        ``server_key`` (the robot then moves as the remote robot measures)."""
        self._check_not_started()
        m = load_model(model) if isinstance(model, str) else model
        name = name or f"r{len(self.robots) + 1}"
        if name in self.robots:
            raise ScenarioError(f"a robot named '{name}' exists already")
        gripper = None
        if tool is not None and not isinstance(tool, Tool):
            if not hasattr(tool, "tool_spec"):
                raise ScenarioError(
                    f"tool must be a Tool or a gripper, got {type(tool).__name__}", field="tool"
                )
            gripper, tool = tool, tool.tool_spec()
        kind: Any = SimRobot
        extra: dict[str, Any] = {}
        if backend is not None:
            from robocell.bridge.remote import RemoteRobot

            kind, extra = RemoteRobot, dict(backend)
        robot = kind(
            self.world,
            m,
            **extra,
            name=name,
            base=base,
            tool=tool,
            control_period=control_period,
            q0=q0,
            position_gain=position_gain,
            velocity_gain=velocity_gain,
        )
        self.robots[name] = robot
        if gripper is not None:
            gripper.robot = name
            self.add_device(gripper)
        return robot

    def add_object(
        self,
        name: str,
        shape: str,
        pose: SE3 | None = None,
        mass: float = 0.0,
        color: Sequence[float] = (0.6, 0.6, 0.6, 1.0),
        friction: float = 0.6,
        **dims: Any,
    ) -> int:
        """Add a static or dynamic object: ``shape`` box (size), cylinder (radius, height),
        sphere (radius) or mesh (file, scale)."""
        self._check_not_started()
        if name in self.objects:
            raise ScenarioError(f"an object named '{name}' exists already")
        w = self.world
        common = {"pose": pose, "mass": mass, "color": color, "friction": friction}
        if shape == "box":
            body = w.add_box(dims["size"], **common)
        elif shape == "cylinder":
            body = w.add_cylinder(dims["radius"], dims["height"], **common)
        elif shape == "sphere":
            body = w.add_sphere(dims["radius"], **common)
        elif shape == "mesh":
            body = w.add_mesh(dims["file"], scale=dims.get("scale", 1.0), **common)
        else:
            raise ScenarioError(f"unknown shape '{shape}' (box, cylinder, sphere, mesh)")
        self.objects[name] = body
        return body

    def add_device(self, device: Device) -> Device:
        """Add a device (conveyor, part source, gripper, sensor, station); it builds its bodies
        now. Devices run in the order they were added."""
        self._check_not_started()
        if device.name in self.devices:
            raise ScenarioError(f"a device named '{device.name}' exists already")
        self.devices[device.name] = device
        device.attach(self)
        return device

    def _check_not_started(self) -> None:
        if self._started:
            raise ScenarioError("the cell has started; add robots and objects before stepping")

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Cell time [s]."""
        return self.world.time

    @property
    def control_period(self) -> float:
        """The cell tick [s]: the greatest common divisor of the robots' control periods."""
        self._plan_ticks()
        return self._tick_steps * self.world.physics_step

    def _plan_ticks(self) -> None:
        if self._tick_steps:
            return
        if not self.robots:
            raise ScenarioError("the cell has no robot")
        steps = {
            n: self.world.steps_for(r.control_period, f"robot '{n}' control_period")
            for n, r in self.robots.items()
        }
        self._robot_steps = steps
        self._tick_steps = math.gcd(*steps.values())
        self._all_robots = tuple(steps)
        # robots whose drives act between control ticks (setpoint interpolation)
        self._drives = [r.pre_step for r in self.robots.values() if isinstance(r, SimRobot)]
        cell = self
        for d in self.devices.values():
            if d.per_step:
                self._drives.append(functools.partial(d.before_step, cell))
        self._single_rate = len(set(steps.values())) == 1

    def context(self) -> ControllerContext:
        """What the controller is told at reset."""
        infos = {
            n: RobotInfo(
                name=n,
                dof=r.n,
                limits=r.limits,
                kinematics=r.kinematics,
                base=r.base,
                tcp=r.tool.tcp,
                control_period=r.control_period,
                home=r.model.home,
                q0=r.state().q.copy(),
            )
            for n, r in self.robots.items()
        }
        return ControllerContext(
            robots=infos,
            rng=np.random.default_rng(self.seed + 1),
            physics_step=self.world.physics_step,
            t0=self.time,
            devices={n: d.info() for n, d in self.devices.items()},
        )

    def start_controller(self) -> None:
        """Reset the controller now (it plans its paths and may raise KinematicsError).

        :meth:`start` does this when it has not been done for the current controller."""
        self._plan_ticks()
        if self.controller is not None:
            self.controller.reset(self.context())
        self._reset_for = self.controller

    def start(
        self,
        out_dir: str | Path | None = None,
        record_period: float | None = None,
        flush_period: float = 1.0,
        metadata: dict[str, str] | None = None,
        defer_flush: bool = False,
    ) -> Observation:
        """Reset the controller, open the recording (when ``out_dir`` is given) and return the
        first observation. Called by :meth:`run`, or by an external driver before :meth:`step`.

        Args:
            out_dir: run directory for the recording (None: record nothing).
            record_period: sample period of the recording [s] (default: the control tick).
            flush_period: cell time between two appends to the recording [s]; a killed run
                loses at most this much.
            metadata: extra key/values stored in the recording's schema.
            defer_flush: the driver flushes: when :attr:`flush_due`, it runs
                :meth:`flush_stages` at moments of its choosing (the real-time bridge server: one
                stage after each tick, in the time left before the next) while the ticks go on
                into a second buffer. The tick itself flushes only when that one is full too.
        """
        if self._started:
            raise ScenarioError("the cell has started already")
        self._plan_ticks()
        if self._reset_for is not self.controller:
            self.start_controller()
        dt_tick = self._tick_steps * self.world.physics_step
        rp = record_period if record_period is not None else dt_tick
        rec_steps = self.world.steps_for(rp, "outputs.record_period")
        if rec_steps % self._tick_steps:
            raise ScenarioError(
                f"record_period {rp} s must be a multiple of the control tick {dt_tick} s",
                field="outputs.record_period",
            )
        self._record_every = rec_steps // self._tick_steps
        # one buffer row per tick; a full buffer (flush_period of cell time) is reduced into the
        # KPIs and appended to the recording at once
        cap = self._record_every * max(1, round(flush_period / rp))
        self._flush_rows = cap
        if defer_flush:
            cap *= 2
        self._buf_t = np.zeros(cap)
        self._sig_rows = []
        columns: list[tuple[str, int]] = []
        for n, r in self.robots.items():
            self._kpis[n] = MotionKpis(n, r.limits, dt_tick)
            self._applied_q[n] = None
            self._buffers[n] = _TickBuffer(r, cap)
            columns += robot_columns(n, r.n)
            # the buffers' TCP poses need the kinematics (URDF parse, roboticstoolbox import:
            # about half a second): built now, not by the first flush in the middle of the run,
            # where it would stall a real-time session by hundreds of periods
            r.kinematics  # noqa: B018
        self._collision_every = max(1, round(COLLISION_CHECK_PERIOD / dt_tick))
        self._robot_bodies = {r.body: n for n, r in self.robots.items() if isinstance(r, SimRobot)}
        self._grip_links = {
            r.body: tuple(x for x in (r.tool_link, *r.finger_joints) if x is not None)
            for r in self.robots.values()
            if isinstance(r, SimRobot)
        }
        self._add_part_monitor()
        self._device_list = list(self.devices.values())
        for d in self._device_list:
            d.start(self)
        self._apply_calls = [m for d in self._device_list if (m := _hook(d, "apply")) is not None]
        self._sense_calls = [m for d in self._device_list if (m := _hook(d, "sense")) is not None]
        self._state_calls = [(n, r.state) for n, r in self.robots.items()]
        # numeric and boolean signals known at the start are recorded as columns ``sig.<name>``
        self._sig_names = [
            k for k, v in self.signals.items() if isinstance(v, (bool, int, float, np.number))
        ]
        self._sig_buf = np.zeros((cap, len(self._sig_names)))
        if defer_flush:
            self._spare = (
                np.zeros(cap),
                {n: _TickBuffer(r, cap) for n, r in self.robots.items()},
                np.zeros((cap, len(self._sig_names))),
                [],
            )
        columns += [(f"sig.{k}", 1) for k in self._sig_names]
        if out_dir is not None:
            meta = {
                "cell": self.name,
                "seed": str(self.seed),
                "physics_step": repr(self.world.physics_step),
                "record_period": repr(rp),
                "robots": ",".join(self.robots),
            }
            meta.update(metadata or {})
            try:
                clear_run_outputs(out_dir)
                self._recorder = Recorder(out_dir, columns, meta)
            except OSError as exc:
                raise ScenarioError(
                    f"cannot write the run directory {out_dir}: {exc.strerror or exc}"
                ) from None
        self._started = True
        self._obs = obs = self._observe_and_sample(tuple(self.robots))
        return obs

    def _add_part_monitor(self) -> None:
        """A cell with part sources gets a :class:`~robocell.pnp.PartMonitor` (which decides
        where released parts ended up) unless it has one."""
        from robocell.pnp.parts import PartSource
        from robocell.pnp.stations import PartMonitor

        devs = list(self.devices.values())
        if any(isinstance(d, PartSource) for d in devs) and not any(
            isinstance(d, PartMonitor) for d in devs
        ):
            name = "parts" if "parts" not in self.devices else "part_monitor"
            monitor = PartMonitor(name)
            self.devices[name] = monitor
            monitor.attach(self)

    def _observe_and_sample(self, due: tuple[str, ...]) -> Observation:
        """Read the robots' states into this tick's observation and copy the measurements and
        applied commands into the buffers (reducing and writing them when full).

        This runs every control tick, so it is one function with locals: as separate calls
        (read, observe, copy a row) their layers would cost more than their work."""
        events: tuple[dict[str, Any], ...] = ()
        if self._new_events:
            events = tuple(self._new_events)
            self._new_events = []
        if self._sig_src is not self.signals:
            self._refresh_signal_view()
        world = self.world
        t = world._steps * world.physics_step  # (World.time, without the property call)
        states = {}
        for n, state in self._state_calls:  # (a loop: a comprehension is a call in 3.10/3.11)
            states[n] = state()
        # (the tuple without Observation's Python-level __new__)
        obs = _new_tuple(Observation, (t, states, due, self._sig_view, events))
        k = self._row
        self._buf_t[k] = t
        applied_q = self._applied_q
        for n, b in self._buffers.items():
            robot = b.robot
            # a SimRobot's state() has just made the (3, n) rows; others build them
            b.state[k] = robot._rows if b.sim else robot.state_rows()
            cmd = applied_q[n]
            if cmd is None:
                b.cmd_rows.append(b.nan_row)
            else:
                ff = cmd[1]
                b.cmd_rows.append([*cmd[0], *(ff if ff is not None else b.zeros), cmd[2]])
        if self._sig_names:
            self._sample_signals()
        self._row = k = k + 1
        if k == len(self._buf_t):  # full (with defer_flush: both flush periods)
            self._drain()
        return obs

    def _refresh_signal_view(self) -> None:
        """The observation's read-only view of the signals (a live view: made again only when
        ``signals`` is a new dict)."""
        self._sig_src = self.signals
        self._sig_view = MappingProxyType(self.signals)

    def _sample_signals(self) -> None:
        """This tick's row of the recorded signals (NaN while one is not set)."""
        get = self.signals.get
        nan = math.nan
        self._sig_rows.append([get(n, nan) for n in self._sig_names])

    def emit(self, kind: str, **data: Any) -> None:
        """Record a cell event at the current time."""
        ev = {"t": round(self.time, 9), "kind": kind, **data}
        self._event_count += 1
        if len(self._events) < 10_000:  # the full list streams to disk
            self._events.append(ev)
        self._new_events.append(ev)
        for listener in self.event_listeners:
            listener(ev)
        if self._recorder is not None:
            self._recorder.event(ev)

    # -- the tick ------------------------------------------------------------------------------
    def _ask_controller(self, obs: Observation) -> Commands:
        """The controller's commands for the next tick (no controller: empty commands)."""
        if self.controller is None:
            return Commands()
        try:
            commands = self.controller.step(obs)
        except RobocellError:
            raise
        except Exception as exc:
            raise self._controller_error(exc) from exc
        self._check_commands(commands)
        return commands

    def _controller_error(self, exc: Exception) -> RobocellError:
        """The error for an exception out of the controller's ``step`` (at this tick)."""
        name = type(self.controller).__name__
        return RobocellError(
            f"controller {name}.step() raised at t={self.time:.3f} s: {type(exc).__name__}: {exc}"
        )

    def _check_commands(self, commands: object) -> None:
        """Raise unless the controller's ``step`` returned :class:`Commands`."""
        if not isinstance(commands, Commands):
            raise RobocellError(
                f"controller {type(self.controller).__name__}.step() "
                f"must return Commands, got {type(commands).__name__}"
            )

    def step(self, commands: Commands | None = None) -> Observation:
        """Advance the cell by one control tick.

        ``commands`` come from an external driver; when None, the cell's controller is asked.
        Returns the observation at the end of the tick.
        """
        if not self._started:
            self.start()
        obs = self._obs
        assert obs is not None
        if commands is None:
            commands = self._ask_controller(obs)
        # (this runs every control tick: locals and direct fields instead of properties)
        world = self.world
        t = world._steps * world.physics_step
        robots, held, applied_q = self.robots, self._held, self._applied_q
        for name, cmd in commands.joints.items():
            if name not in robots:
                raise ScenarioError(f"command for unknown robot '{name}'")
            held[name] = cmd
        for name in obs.due:
            cmd = held.get(name)
            if cmd is not None:
                robot = robots[name]
                applied = robot.apply_command(cmd, t)
                applied_q[name] = (
                    (applied.values, applied.velocity, t) if applied.mode == "position" else None
                )
                if robot._events:
                    for ev in robot.pop_events():
                        self.emit("limit", **ev.event_fields())
        if commands.signals:
            self.signals.update(commands.signals)
        if commands.markers:
            for m in commands.markers:
                self._markers.setdefault(m.kind, []).append((t, dict(m.data)))
                self.emit(m.kind, **dict(m.data))
        if commands.done and not self.done:
            self.done = True
            self.emit("controller_done")
        for apply in self._apply_calls:
            apply(self)

        world.step(self._tick_steps, self._drives)
        self._ticks += 1
        for sense in self._sense_calls:
            sense(self)
        if self._single_rate:
            due = self._all_robots
        else:
            step_now = world._steps
            due = tuple(n for n, s in self._robot_steps.items() if step_now % s == 0)
        self._obs = obs = self._observe_and_sample(due)
        if self._ticks % self._collision_every == 0:
            self._check_collisions()
        return obs

    @property
    def flush_due(self) -> bool:
        """A flush period of samples is buffered (see ``defer_flush`` in :meth:`start`)."""
        return self._row >= self._flush_rows

    def flush_stages(self) -> Iterator[bool]:
        """Reduce the buffered samples into the KPIs and append them to the recording, in
        stages of a fraction of a millisecond each (one robot's TCP poses, its KPIs, the
        recording's append); each ``next()`` runs one. With ``defer_flush`` the ticks may go on
        between stages, into the second buffer. A flush that is due before this one has
        finished completes it first, so the KPIs see the samples in order."""
        self._finish_pending_drain()
        stages = self._drain_stages()
        self._pending_drain = stages
        return stages

    def _finish_pending_drain(self) -> None:
        pending, self._pending_drain = self._pending_drain, None
        if pending is not None:
            for _ in pending:
                pass

    def _drain(self) -> None:
        """Reduce the buffered rows into the KPIs and append the record rows to the recording."""
        self._finish_pending_drain()
        for _ in self._drain_stages():
            pass

    def _drain_stages(self) -> Iterator[bool]:
        k = self._row
        if k == 0:
            return
        buf_t, buffers = self._buf_t, self._buffers
        sig_buf, sig_rows = self._sig_buf, self._sig_rows
        spare = self._spare
        if spare is not None:  # the ticks go on into the spare buffers meanwhile
            self._buf_t, self._buffers, self._sig_buf, self._sig_rows = spare
            self._spare = None
            self._row = 0
        every = self._record_every
        # recorded rows are every ``every``-th tick since the start, wherever a flush cut
        first = -self._rows_drained % every
        self._rows_drained += k
        rec = self._recorder
        data: dict[str, np.ndarray] = {}
        for n, b in buffers.items():
            cols = b.columns(k, buf_t)
            yield True
            self._kpis[n].update(cols["q"], cols["dq"], cols["tau"], cols["q_cmd"], cols["tcp"])
            if rec is not None:
                for c, arr in cols.items():
                    data[f"{n}.{c}"] = arr[first::every]
            yield True
        if sig_rows:  # rows k - len(rows) .. k - 1 are still lists
            sig_buf[k - len(sig_rows) : k] = sig_rows
            sig_rows.clear()
        if rec is not None:
            for i, name in enumerate(self._sig_names):
                data[f"sig.{name}"] = sig_buf[first:k:every, i : i + 1]
            rec.write(buf_t[first:k:every], data)
        if spare is not None:
            self._spare = (buf_t, buffers, sig_buf, sig_rows)
        else:
            self._row = 0

    def _check_collisions(self) -> None:
        """Count collisions as episodes: a pair of bodies/links that starts touching."""
        now: set[tuple[int, int, int, int]] = set()
        robot_bodies = self._robot_bodies
        parts = self.parts
        ground = self.ground
        for body in robot_bodies:
            grip_links = self._grip_links.get(body, ())
            for ba, la, bb, lb in self.world.contact_pairs(body):
                if la == -1 and bb == ground:
                    continue  # the robot's base stands on the floor
                if la in grip_links and parts.by_body(bb) is not None:
                    continue  # a gripper touching a part is how it picks
                # one key per touching pair, whichever body the query started from
                key = (ba, la, bb, lb) if (ba, la) <= (bb, lb) else (bb, lb, ba, la)
                if key in now:
                    continue
                now.add(key)
                if key in self._contacts_now:
                    continue  # the same contact as at the last check: one episode
                robot = self.robots[robot_bodies[body]]
                assert isinstance(robot, SimRobot)
                if bb == body:
                    self._collisions["self"] += 1
                    self.emit(
                        "collision",
                        robot=robot.name,
                        contact="self",
                        link_a=robot.link_name(la),
                        link_b=robot.link_name(lb),
                    )
                else:
                    self._collisions["environment"] += 1
                    self.emit(
                        "collision",
                        robot=robot.name,
                        contact="environment",
                        link=robot.link_name(la),
                        other=self._body_name(bb),
                    )
        self._contacts_now = now

    def _body_name(self, body: int) -> str:
        if body == self.ground:
            return "ground"
        part = self.parts.by_body(body)
        if part is not None:
            return f"part{part.id}"
        for n, b in self.objects.items():
            if b == body:
                return n
        for n, d in self.devices.items():
            if body in getattr(d, "bodies", ()):
                return n
        for n, r in self.robots.items():
            if isinstance(r, SimRobot) and body == r.body:
                return n
        return f"body{body}"

    # -- running -------------------------------------------------------------------------------
    def run(
        self,
        duration: float,
        out_dir: str | Path | None = None,
        record_period: float | None = None,
        progress: bool | Callable[[float, float, float], None] | None = None,
        plots: bool = True,
        metadata: dict[str, str] | None = None,
    ) -> RunResult:
        """Run the cell for ``duration`` [s] of cell time and return its KPIs.

        Args:
            duration: cell time to simulate [s].
            out_dir: where to write ``kpis.json``, the recording and plots (None: nothing is
                written).
            record_period: sample period of the recording [s] (default: the control tick).
            progress: True prints a progress line on stderr; a callable receives
                (cell time, duration, real-time factor) about twice a second.
            plots: write plots to ``out_dir``.
        """
        if not (math.isfinite(duration) and duration > 0):
            raise ScenarioError(f"duration must be > 0 s, got {duration!r}", field="duration")
        out = Path(out_dir) if out_dir is not None else None
        if self._finished:
            raise RobocellError(
                "this cell has run already; build a new cell for another run "
                "(cell_from_scenario or Cell(...))"
            )
        if not self._started:
            self.start(out, record_period, metadata=metadata)
        elif out is not None and self._recorder is None:
            raise RobocellError(
                "the cell was started without a recording; pass out_dir to "
                "start(), or call run() without starting it first"
            )
        t_end = self.time + duration
        n_ticks = round(duration / (self._tick_steps * self.world.physics_step))
        report = _progress_printer(progress)
        wall0 = time.perf_counter()
        last_report = wall0
        # a robot that moves on its own (a remote robot in real time) sets the pace
        paced = any(getattr(r, "realtime", False) for r in self.robots.values())
        t_start = self.time

        def every_256() -> None:  # called after every 256th tick
            nonlocal last_report
            if report is not None:
                now = time.perf_counter()
                if now - last_report > 0.5:
                    last_report = now
                    report(self.time, t_end, self.time / max(now - wall0, 1e-9))

        try:
            if not paced and fused.fusable(self):
                fused.run_fused(self, n_ticks, every_256)
            else:
                for i in range(n_ticks):
                    self.step()
                    if self.done and self.end_when_done:
                        break
                    if paced:
                        ahead = (self.time - t_start) - (time.perf_counter() - wall0)
                        if ahead > 0:
                            time.sleep(ahead)
                    if (i & 255) == 0:
                        every_256()
        finally:
            wall = time.perf_counter() - wall0
            self._finished = True
            self._drain()
            if self._recorder is not None:
                self._recorder.close()
            self._close_devices()
        if report is not None:
            report(self.time, t_end, self.time / max(wall, 1e-9))
            if progress is True:
                print(file=sys.stderr)
        kpis = self.kpis(wall_time=wall)
        result = RunResult(kpis=kpis, events=list(self._events), out_dir=out)
        if out is not None:
            from robocell.record.report import write_outputs

            result.recording = self._recorder.path if self._recorder else None
            result.plots = write_outputs(result, plots=plots)
            for d in self.devices.values():
                result.plots += d.write_outputs(out, plots=plots)
        return result

    def kpis(self, wall_time: float | None = None) -> dict[str, Any]:
        """KPIs so far. Wall-clock figures are kept apart under ``timing``."""
        if self._recorder is None or self._recorder.closed:
            self._drain()  # (with an open recording, rows are drained once per flush period)
        robots = {n: k.summary(self.robots[n].limit_episodes) for n, k in self._kpis.items()}
        out: dict[str, Any] = {
            "duration_s": round(self.time, 9),
            "robots": robots,
            "collisions_self": self._collisions["self"],
            "collisions_environment": self._collisions["environment"],
            "limit_violations": sum(r["limit_violations"] for r in robots.values()),
            "energy_j": sum(r["energy_j"] for r in robots.values()),
            "events": self._event_count,
        }
        dev = {n: k for n, d in self.devices.items() if (k := d.kpis())}
        machining = [n for n, k in dev.items() if "surface_error_rms_mm" in k]
        if len(machining) == 1:
            # the cell's one machining job is the run's headline, under a fixed key
            out["machining"] = dict(dev.pop(machining[0]), station=machining[0])
        if dev:
            out["devices"] = dev
        if self.parts.counts["spawned"] or self.pnp_kpis.robots:
            out["pick_and_place"] = self.pnp_kpis.summary(
                out["duration_s"], out["energy_j"], robots, self.ideal_cycle_time
            )
        cycles = self._markers.get("cycle", [])
        if cycles:
            # a cycle marker carries its own duration; otherwise the time since the previous one
            ends = [t for t, _ in cycles]
            starts = [0.0, *ends[:-1]]
            ct = np.array(
                [
                    float(d.get("cycle_time_s", e - s))
                    for (e, d), s in zip(cycles, starts, strict=True)
                ]
            )
            out["cycles"] = len(cycles)
            out["cycle_time_s"] = float(ct.mean())
            out["cycle_time_min_s"] = float(ct.min())
            out["cycle_time_max_s"] = float(ct.max())
        if wall_time is not None:
            out["timing"] = {
                "wall_time_s": wall_time,
                "real_time_factor": self.time / max(wall_time, 1e-9),
            }
        return out

    def _close_devices(self) -> None:
        for d in self.devices.values():
            d.close(self)

    def close(self) -> None:
        """Finish the recording and the devices' files, let remote robots go, and disconnect
        the physics."""
        if self._recorder is not None and not self._recorder.closed:
            self._drain()
            self._recorder.close()
        self._close_devices()
        for r in self.robots.values():
            close = getattr(r, "close", None)
            if close is not None:
                close()
        self.world.close()

    def __enter__(self) -> Cell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hook(device: Device, name: str) -> Callable[[Cell], None] | None:
    """``device``'s bound ``apply`` or ``sense``, or None when it is the base class's no-op (it
    is then not called every tick)."""
    if name not in vars(device) and getattr(type(device), name) is getattr(Device, name):
        return None
    return getattr(device, name)


def _progress_printer(
    progress: bool | Callable[[float, float, float], None] | None,
) -> Callable[[float, float, float], None] | None:
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress

    def show(t: float, t_end: float, rtf: float) -> None:
        share = min(t / t_end, 1.0) if t_end > 0 else 1.0
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r  [{bar:<30}] {t:8.1f} / {t_end:.1f} s   {rtf:6.1f}x real time")
        sys.stderr.flush()

    return show
