"""The Python client of the bridge, and a driver that runs a robocell controller against a server.

:class:`Client` speaks the protocol of docs/bridge-protocol.md over a DEALER socket (requests are
matched to replies by ``id``, so a timed-out request never desynchronises the next one). Error
replies raise :class:`~robocell.errors.BridgeError` with the reply's ``code``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import zmq

from robocell.bridge.protocol import VERSIONS, command_message, decode, encode
from robocell.control.controller import Commands, Controller, ControllerContext, Observation
from robocell.errors import BridgeError
from robocell.robot.interface import RobotState


class Client:
    """A bridge client.

    Args:
        endpoint: the server's request endpoint, e.g. ``tcp://127.0.0.1:5555``.
        name: shown to the server (in its report and in ownership errors).
        role: ``controller`` (may command robots and advance time) or ``observer``.
        timeout: seconds to wait for a reply before raising BridgeError.
        secret_key: this client's CurveZMQ ``.key_secret`` file (with ``server_key``: encrypted
            and authenticated).
        server_key: the server's public ``.key`` file.
    """

    def __init__(
        self,
        endpoint: str,
        name: str = "robocell-client",
        role: str = "controller",
        timeout: float = 10.0,
        secret_key: str | Path | None = None,
        server_key: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.role = role
        self.timeout = float(timeout)
        self._ids = itertools.count(1)
        self._ctx = zmq.Context()
        self._keys = (secret_key, server_key)
        self.sock = self._socket(zmq.DEALER)
        self._rcvtimeo_ms = -1  # the receive timeout set on ``sock`` (-1: none)
        self.sock.connect(endpoint)
        self.info: dict[str, Any] = {}
        self.version = VERSIONS[0]

    def _socket(self, kind: int) -> zmq.Socket[Any]:
        s = self._ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        secret, server = self._keys
        if secret is not None or server is not None:
            if secret is None or server is None:
                raise BridgeError("CurveZMQ needs both secret_key and server_key", exit_code=2)
            from robocell.bridge.security import client_security

            client_security(s, secret, server)
        return s

    # -- requests ------------------------------------------------------------------------------
    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply; an error reply raises BridgeError."""
        rid = next(self._ids)
        msg = {"v": self.version, "type": kind, "id": rid, **fields}
        sock = self.sock
        sock.send(encode(msg))
        deadline = time.monotonic() + self.timeout
        # a blocking receive with the socket's own timeout: one call per reply (a poll and then
        # a receive cost a lockstep cycle about a tenth more)
        wait_ms = max(1, int(self.timeout * 1000))
        while True:
            if self._rcvtimeo_ms != wait_ms:  # (reading the option back costs a call)
                sock.rcvtimeo = self._rcvtimeo_ms = wait_ms
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                raise BridgeError(
                    f"no reply from {self.endpoint} within {self.timeout} s to '{kind}' (server "
                    "down, wrong endpoint, or a CurveZMQ key it does not allow)"
                ) from None
            reply = decode(frames[-1], max_size=1 << 30)
            if reply.get("id") != rid:
                # the late answer to an earlier, timed-out request: wait out the rest
                wait_ms = int((deadline - time.monotonic()) * 1000)
                if wait_ms <= 0:
                    raise BridgeError(
                        f"no reply from {self.endpoint} within {self.timeout} s to '{kind}'"
                    )
                continue
            if not reply.get("ok", False):
                raise BridgeError(str(reply.get("message", "")), code=str(reply.get("code")))
            return reply

    def hello(self) -> dict[str, Any]:
        """Introduce this client; the reply describes the cell (robots, limits, profile, mode)
        and holds its current observation."""
        self.info = self.request("hello", versions=list(VERSIONS), client=self.name, role=self.role)
        self.version = int(self.info["version"])
        return self.info

    def step(self, commands: Commands | None = None, ticks: int = 1) -> Observation:
        """Lockstep: apply ``commands`` and advance the cell by ``ticks`` control ticks."""
        fields = _commands_fields(commands) if commands is not None else {}
        return observation(self.request("step", ticks=ticks, **fields))

    def command(self, commands: Commands, tick: int | None = None) -> dict[str, Any]:
        """Real time: send commands (they hold until replaced); ``tick`` is the tick of the state
        they answer (the server counts commands for older ticks as late)."""
        fields = _commands_fields(commands)
        if tick is not None:
            fields["tick"] = int(tick)
        return self.request("command", **fields)

    def state(self) -> Observation:
        return observation(self.request("state"))

    def claim(self, robots: list[str] | None = None, takeover: bool = False) -> list[str]:
        fields: dict[str, Any] = {"takeover": takeover}
        if robots is not None:
            fields["robots"] = robots
        return list(self.request("claim", **fields)["robots"])

    def clear_fault(self, robots: list[str] | None = None) -> list[str]:
        fields = {"robots": robots} if robots is not None else {}
        return list(self.request("clear_fault", **fields)["robots"])

    def kpis(self) -> dict[str, Any]:
        return self.request("kpis")

    def finish(self) -> dict[str, Any]:
        """End the session: the server writes its outputs; returns ``{kpis, bridge}``."""
        return self.request("finish")

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def subscribe(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """States the server publishes every tick (real time, or lockstep with ``--pub``)."""
        ep = self.info.get("pub") if self.info else None
        if not ep:
            raise BridgeError("the server publishes no states (no pub endpoint in hello)")
        sub = self._socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"state")
        sub.connect(ep)
        wait = self.timeout if timeout is None else timeout
        try:
            while sub.poll(int(wait * 1000)):
                yield decode(sub.recv_multipart()[-1], max_size=1 << 30)
        finally:
            sub.close(0)

    def close(self, bye: bool = True) -> None:
        """Say ``bye`` (releasing this client's robots) and close the socket (idempotent)."""
        if self.sock.closed:
            return
        if bye and self.info:
            try:
                self.timeout = min(self.timeout, 1.0)
                self.request("bye")
            except BridgeError:
                pass
        self.sock.close(0)
        self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _commands_fields(commands: Commands) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if commands.joints:
        out["commands"] = {n: command_message(c) for n, c in commands.joints.items()}
    if commands.signals:
        out["signals"] = dict(commands.signals)
    if commands.markers:
        out["markers"] = [{"kind": m.kind, "data": dict(m.data)} for m in commands.markers]
    if commands.done:
        out["done"] = True
    return out


def observation(msg: Mapping[str, Any]) -> Observation:
    """An observation message as the :class:`Observation` a controller reads."""
    robots = {
        n: RobotState(
            float(s["t"]),
            np.array(s["q"], float),
            np.array(s["dq"], float),
            np.array(s["tau"], float),
        )
        for n, s in msg["robots"].items()
    }
    return Observation(
        float(msg["t"]),
        robots,
        tuple(msg["due"]),
        MappingProxyType(dict(msg["signals"])),
        tuple(msg["events"]),
    )


def drive(
    client: Client,
    controller: Controller,
    ctx: ControllerContext,
    duration: float,
    end_when_done: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Run ``controller`` against a lockstep server for ``duration`` [s] of cell time, one
    control tick per request (as ``Cell.run`` does in-process; with ``end_when_done`` the run
    ends when the controller says it is done), then finish the session and return its
    ``{kpis, bridge}``."""
    info = client.info or client.hello()
    if info["mode"] != "lockstep":
        raise BridgeError("drive() needs a lockstep server", exit_code=2)
    controller.reset(ctx)
    obs = observation(info["observation"])
    period = float(info["control_period"])
    n = round(duration / period)
    for i in range(n):
        cmds = controller.step(obs)
        obs = client.step(cmds)
        if cmds.done and end_when_done:
            break
        if progress is not None and (i & 1023) == 0:
            progress(obs.t, n * period)
    return client.finish()


class DriveSpec(NamedTuple):
    """What :func:`drive` needs from a scenario file."""

    controller: Controller
    ctx: ControllerContext
    duration: float
    end_when_done: bool


def context_from_scenario(
    scenario: str | Path, seed: int | None = None, hello: Mapping[str, Any] | None = None
) -> DriveSpec:
    """The scenario's controller and the context it is reset with in-process, built from the
    scenario file (the cell is built to read its facts, then closed), the scenario duration and
    whether the run ends when the controller is done.

    With a server's ``hello`` reply, the robots take the server's control periods (an interface
    profile may have changed them)."""
    from robocell.cell.build import cell_from_scenario
    from robocell.scenario.loader import load_scenario

    loaded = load_scenario(scenario)
    cell = cell_from_scenario(loaded, seed=seed)
    try:
        if cell.controller is None:
            raise BridgeError(f"{scenario}: the scenario has no controller to drive", exit_code=2)
        if hello is not None:
            for name, r in cell.robots.items():
                info = hello["robots"].get(name)
                if info is None:
                    raise BridgeError(f"the server has no robot '{name}'", exit_code=2)
                r.control_period = float(info["control_period"])
            cell._tick_steps = 0
        ctx = cell.context()
        return DriveSpec(cell.controller, ctx, float(loaded.scenario.duration), cell.end_when_done)
    finally:
        cell.close()
