"""Robots behind the bridge: RobotServer on the robot's side, RemoteRobot in the cell.

* :class:`RobotServer` serves any object with the :class:`~robocell.robot.interface.Robot`
  interface -- on a robot PC, an adapter around a vendor driver -- with the same protocol as the
  SimServer (``hello``, ``claim``, ``step`` in lockstep, ``command`` in real time, ``state``,
  ``clear_fault``, ...), the same validation, watchdog and controlled stop. In lockstep the host
  needs an ``advance`` callable that moves the robot on by one control period (a simulated
  stand-in); in real time the robot moves on its own and the server paces the exchange.
* :class:`RemoteRobot` is a robot in a simulated cell whose commands go to a RobotServer (or a
  SimServer) and whose measured state comes back. Its body in the cell is a kinematic twin set to
  the measured joints every control tick, so collisions, grippers and stations work against the
  rest of the simulated cell: a digital twin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from spatialmath import SE3

from robocell.bridge.client import Client
from robocell.bridge.protocol import command_message
from robocell.bridge.server import DEFAULT_BIND, SimServer
from robocell.control.controller import Commands, Observation
from robocell.errors import BridgeError, ScenarioError
from robocell.robot.interface import JointCommand, Robot, RobotState, Tool
from robocell.robot.library import RobotModel
from robocell.robot.sim_robot import SimRobot
from robocell.sim.world import World


# -- the robot's side ----------------------------------------------------------------------------
class _HostWorld:
    """The little of a World that the server reads from its host."""

    def __init__(self, period: float) -> None:
        self.physics_step = period
        self._steps = 0

    @property
    def time(self) -> float:
        return self._steps * self.physics_step

    def steps_for(self, period: float, what: str = "period") -> int:
        n = round(period / self.physics_step)
        if n != 1 or abs(period - self.physics_step) > 1e-9 * max(1.0, period):
            raise ScenarioError(
                f"{what} {period} s differs from the robot's control period {self.physics_step} s"
            )
        return 1


class RobotHost:
    """A one-robot host with the part of the Cell interface a server drives: each
    :meth:`step` applies the commands (clamped by the Robot interface), advances one control
    period (``advance``) and reads the robot's state.

    Args:
        robot: any Robot (a SimRobot stand-in, a vendor-driver adapter).
        advance: moves the robot on by one control period (lockstep); None when the robot moves
            on its own (real hardware: the server's real-time pacing is the clock).
    """

    def __init__(self, robot: Robot, advance: Callable[[], None] | None = None) -> None:
        self.robot = robot
        self.robots: dict[str, Robot] = {robot.name: robot}
        self.signals: dict[str, Any] = {}
        self.world = _HostWorld(robot.control_period)
        self.advance = advance
        self.seed = 0
        self._tick_steps = 1
        self._events: list[dict[str, Any]] = []
        self._new: list[dict[str, Any]] = []
        self._recorder = None
        self._finished = False
        self._obs: Observation | None = None
        self._held: JointCommand | None = None
        self._count = 0

    @property
    def control_period(self) -> float:
        return self.robot.control_period

    @property
    def time(self) -> float:
        return self.world.time

    def start(
        self,
        out_dir: Any = None,
        record_period: Any = None,
        flush_period: Any = None,
        metadata: Any = None,
        defer_flush: bool = False,
    ) -> Observation:
        self._obs = self._observe()
        return self._obs

    #: a host buffers nothing, so there is never a flush to do
    flush_due = False

    def flush_stages(self) -> Iterator[bool]:
        return iter(())

    def _observe(self) -> Observation:
        st = self.robot.state()
        ev = tuple(self._new)
        self._new = []
        return Observation(
            self.time,
            {self.robot.name: RobotState(self.time, st.q, st.dq, st.tau)},
            (self.robot.name,),
            dict(self.signals),
            ev,
        )

    def emit(self, kind: str, **data: Any) -> None:
        ev = {"t": round(self.time, 9), "kind": kind, **data}
        self._count += 1
        if len(self._events) < 10_000:
            self._events.append(ev)
        self._new.append(ev)

    def step(self, commands: Commands) -> Observation:
        cmd = commands.joints.get(self.robot.name)
        if cmd is not None:
            self._held = cmd
        if self._held is not None:
            self.robot.apply_command(self._held, self.time)
            for e in self.robot.pop_events():
                self.emit("limit", **e.event_fields())
        self.signals.update(commands.signals)
        if self.advance is not None:
            self.advance()
        self.world._steps += 1
        self._obs = self._observe()
        return self._obs

    def _drain(self) -> None:
        pass

    def _close_devices(self) -> None:
        pass

    def kpis(self, wall_time: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "duration_s": round(self.time, 9),
            "events": self._count,
            "limit_violations": self.robot.limit_episodes,
        }
        if wall_time is not None:
            out["timing"] = {"wall_time_s": wall_time}
        return out


class RobotServer(SimServer):
    """Serve one :class:`Robot` over the bridge protocol (the robot PC's side).

    Args:
        robot: the robot (any Robot implementation).
        advance: lockstep: moves the robot on by one control period; None for real time.
        bind, mode, profile, security, insecure, watchdog_s, idle_timeout: as for
            :class:`~robocell.bridge.server.SimServer`.
    """

    def __init__(
        self,
        robot: Robot,
        advance: Callable[[], None] | None = None,
        bind: str = DEFAULT_BIND,
        mode: str = "lockstep",
        **kw: Any,
    ) -> None:
        if mode == "lockstep" and advance is None:
            raise BridgeError(
                "a lockstep RobotServer needs advance() (a robot that moves on its own serves "
                "in real time)",
                exit_code=2,
            )
        kw.setdefault("pub", None)
        super().__init__(RobotHost(robot, advance), bind=bind, mode=mode, **kw)  # type: ignore[arg-type]


def standin_robot_server(
    model: RobotModel,
    name: str = "r1",
    base: SE3 | None = None,
    tool: Tool | None = None,
    control_period: float = 0.002,
    q0: np.ndarray | None = None,
    physics_step: float = 1e-3,
    **kw: Any,
) -> RobotServer:
    """A simulated robot (its own pybullet world, nothing else in it) behind a RobotServer: the
    second process that stands in for real hardware in tests and rehearsals."""
    world = World(physics_step)
    world.add_ground()
    robot = SimRobot(
        world, model, name=name, base=base, tool=tool, control_period=control_period, q0=q0
    )
    n = world.steps_for(control_period, "control_period")
    drives = [robot.pre_step]

    def advance() -> None:
        world.step(n, drives)

    # (in real time the server's pacing makes this physics keep to the wall clock)
    server = RobotServer(robot, advance=advance, **kw)
    server.on_close.append(world.close)
    return server


# -- the cell's side -----------------------------------------------------------------------------
class RemoteRobot(SimRobot):
    """A robot in the cell backed by a remote robot over the bridge (a digital twin).

    Every control tick the clamped command goes to the remote side and the measured state comes
    back; the twin's joints in this cell's physics are set to it, so the rest of the cell sees
    the real robot's pose. In lockstep the remote side advances one control period per tick
    (deterministic); in real time the cell must run paced by the wall clock (``Cell.run`` does
    so when a robot is remote in real time) and the latest measured state is mirrored.

    Args:
        endpoint: the RobotServer's endpoint.
        remote_name: the robot's name on the server (default: the only one, or this name).
        mode: ``lockstep`` or ``realtime`` (must match the server's).
        timeout: reply timeout [s].
        secret_key, server_key: CurveZMQ key files.
        Other arguments as for :class:`SimRobot`.
    """

    def __init__(
        self,
        world: World,
        model: RobotModel,
        endpoint: str,
        name: str = "r1",
        remote_name: str | None = None,
        mode: str = "lockstep",
        timeout: float = 5.0,
        secret_key: str | Path | None = None,
        server_key: str | Path | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(world, model, name=name, **kw)
        self.endpoint = endpoint
        self.client = Client(
            endpoint,
            name=f"robocell-twin-{name}",
            timeout=timeout,
            secret_key=secret_key,
            server_key=server_key,
        )
        try:
            info = self.client.hello()
            robots = info["robots"]
            if remote_name is None:
                remote_name = name if name in robots or len(robots) != 1 else next(iter(robots))
            if remote_name not in robots:
                raise BridgeError(
                    f"robot '{name}': the server at {endpoint} has no robot '{remote_name}' "
                    f"(it has {', '.join(robots)})",
                    exit_code=2,
                )
            ri = robots[remote_name]
            if int(ri["dof"]) != self.n:
                raise BridgeError(
                    f"robot '{name}': the remote robot has {ri['dof']} joints, {model.name} has "
                    f"{self.n}",
                    exit_code=2,
                )
            if info["mode"] != mode:
                raise BridgeError(
                    f"robot '{name}': the server runs in {info['mode']}, the scenario says {mode}",
                    exit_code=2,
                )
            if abs(float(ri["control_period"]) - self.control_period) > 1e-9:
                raise BridgeError(
                    f"robot '{name}': control_period {self.control_period} s differs from the "
                    f"remote robot's {ri['control_period']} s",
                    exit_code=2,
                )
            self.client.claim([remote_name])
        except BaseException:
            self.client.close(bye=False)
            raise
        self.remote_name = remote_name
        self.mode = mode
        #: a cell with this robot must be paced by the wall clock
        self.realtime = mode == "realtime"
        self._period_steps = world.steps_for(self.control_period, f"robot '{name}' control_period")
        self._pending: JointCommand | None = None
        self._last_exchange = -1
        self._remote_tick = 0
        self.exchanges = 0
        self.round_trip_s = 0.0
        self._mirror(info["observation"])

    def _mirror(self, obs: dict[str, Any]) -> None:
        st = obs["robots"][self.remote_name]
        q = np.array(st["q"], float)
        dq = np.array(st["dq"], float)
        tau = np.array(st["tau"], float)
        self._remote_tick = int(obs.get("tick", 0))
        # the drives hold the twin where the measurement put it until the next one
        self.mirror(q, dq)
        self._remote = RobotState(self.world.time, q, dq, tau)
        self._rows = np.array((q, dq, tau))
        if "faults" in obs and obs["faults"].get(self.remote_name):
            self.remote_fault = obs["faults"][self.remote_name]

    remote_fault: str | None = None

    def state(self) -> RobotState:
        r = self._remote
        return RobotState(self.world.time, r.q, r.dq, r.tau)

    def state_rows(self) -> np.ndarray:
        return self._rows

    def _apply(self, cmd: JointCommand) -> None:
        self._pending = cmd  # sent at the start of the period, in pre_step

    # position commands too go to the remote robot, not to the twin's motors
    _apply_position = Robot._apply_position

    def pre_step(self) -> None:
        step = self.world._steps
        if self._last_exchange >= 0 and step - self._last_exchange < self._period_steps:
            return
        self._last_exchange = step
        cmd, self._pending = self._pending, None
        fields: dict[str, Any] = {}
        if cmd is not None:
            fields["commands"] = {self.remote_name: command_message(cmd)}
        t0 = time.perf_counter()
        if self.mode == "lockstep":
            obs = self.client.request("step", **fields)
        else:
            if fields:
                self.client.request("command", tick=self._remote_tick, **fields)
            obs = self.client.request("state")
        self.round_trip_s += time.perf_counter() - t0
        self.exchanges += 1
        self._mirror(obs)

    def close(self) -> None:
        """Say goodbye to the server (the remote robot holds its last command)."""
        self.client.close()
