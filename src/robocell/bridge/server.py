"""SimServer: an external controller drives a simulated cell over ZeroMQ.

One ROUTER socket answers requests from any number of clients (REQ or DEALER sockets); an optional
PUB socket publishes the cell's state every control tick. Two modes:

* **lockstep** -- time advances only when a client sends ``step``: its commands are applied and
  the cell advances by whole control ticks, exactly as ``Cell.step`` does in-process, so a
  lockstep session is as deterministic as ``robocell run``.
* **realtime** -- the cell is paced by the wall clock at its control rate. ``command`` messages
  replace the held command (the latest one holds), states go out on the PUB socket every tick,
  and late commands, missed periods and deadline misses are counted.

Only one client commands a robot at a time (the first to claim it, explicitly with ``claim`` or
by commanding it). Under an interface profile (:mod:`robocell.bridge.profiles`) every control
period of a commanded robot is judged ``ok``, ``late`` or ``missed`` and the profile's failure
rule can fault the robot; in real time a watchdog faults a robot whose commands go stale. A
faulted robot is brought to a controlled stop within its deceleration limits and holds there;
its signal ``<robot>.fault`` is set and a ``fault`` event names the rule.
"""

from __future__ import annotations

import contextlib
import gc
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from robocell import __version__
from robocell.bridge.protocol import (
    COMMAND_MODES,
    HARD_MAX_MESSAGE,
    MAX_MESSAGE,
    VERSION,
    ProtocolError,
    check_version,
    decode,
    encode,
    joint_command,
    negotiate,
    optional,
    plain,
    signal_value,
)
from robocell.bridge.protocol import (
    field as req_field,
)
from robocell.bridge.recording import SessionRecorder
from robocell.bridge.stop import ControlledStop
from robocell.cell.cell import Cell
from robocell.control.controller import Commands, Marker, Observation
from robocell.errors import BridgeError, RobocellError
from robocell.robot.interface import JointCommand

DEFAULT_BIND = "tcp://127.0.0.1:5555"
#: default watchdog in real time [s]: a commanded robot without a new command for this long is
#: brought to a controlled stop
DEFAULT_WATCHDOG_S = 0.1
#: most ticks one lockstep ``step`` may ask for
MAX_TICKS_PER_STEP = 1_000_000
#: in real time, the loop sleeps in ``poll`` until this close to a deadline, then spins [s]
SPIN_MARGIN = 0.0015
#: lockstep: after a message the server busy-waits this long for the next before it sleeps in
#: ``poll`` [s]. A client stepping in a loop then finds it awake: waking a sleeping process
#: doubled the cycle time on the reference machine (benchmarks/README.md)
LOCKSTEP_SPIN = 0.002
#: in real time, a loop this many periods behind its schedule skips the periods that passed
RESTART_AFTER = 10
#: in real time, cell time between two appends to the recordings [s]
REALTIME_FLUSH_PERIOD = 0.05
#: the session report lists the first stalls (tick before it, periods skipped)
MAX_STALLS_REPORTED = 20


@dataclass
class _Client:
    identity: bytes
    name: str = ""
    version: int = VERSION
    role: str = "controller"
    messages: int = 0
    errors: int = 0
    last_rx: float = 0.0


@dataclass
class _RobotLink:
    """Per-robot session state."""

    name: str
    dof: int
    modes: tuple[str, ...]
    owner: bytes | None = None
    fault: str | None = None
    stop: ControlledStop | None = None
    monitor: Any = None  # a profiles.TimingMonitor under a profile
    commanded: bool = False  # commanded since the start or the last clear_fault
    stale: int = 0  # consecutive periods without a fresh command
    outcome: str | None = None  # this period's: ok / late / missed (None: not commanded)
    pending: JointCommand | None = None  # real time: the newest command, applied at the next tick
    hold: JointCommand | None = None  # what holds on ticks without a new command
    counts: Counter[str] = field(default_factory=Counter)


class SimServer:
    """Serve a :class:`~robocell.cell.cell.Cell` over ZeroMQ.

    Args:
        cell: the cell (built, not started); its own controller is not used -- clients drive it.
        bind: endpoint of the request socket (``tcp://127.0.0.1:0`` picks a free port).
        mode: ``lockstep`` or ``realtime``.
        profile: an :class:`~robocell.bridge.profiles.InterfaceProfile` (or its name): the
            robots run at its rate and under its command modes and failure rule.
        pub: endpoint of the state publisher (default: real time on a free port of the same host,
            none in lockstep).
        security: a :class:`~robocell.bridge.security.ServerSecurity` (CurveZMQ) or None.
        insecure: allow a non-loopback bind without CurveZMQ.
        watchdog_s: real time: fault a commanded robot after this long without a command [s]
            (None: the profile's, else :data:`DEFAULT_WATCHDOG_S`).
        out_dir: run directory for the cell's recording and the session's (None: none).
        duration: real time: serve this much cell time [s] (None: until stopped); lockstep: the
            cell refuses to step beyond it (None: no limit).
        idle_timeout: stop after this long [s, wall clock] without any request (None: never).
        max_message: largest accepted message [bytes].
        lockstep_spin: lockstep: busy-wait this long after a message for the next one before
            sleeping [s] (0: always sleep; see :data:`LOCKSTEP_SPIN`).
    """

    def __init__(
        self,
        cell: Cell,
        bind: str = DEFAULT_BIND,
        mode: str = "lockstep",
        profile: Any = None,
        pub: str | None = None,
        security: Any = None,
        insecure: bool = False,
        watchdog_s: float | None = None,
        out_dir: str | Path | None = None,
        record_period: float | None = None,
        duration: float | None = None,
        idle_timeout: float | None = None,
        max_message: int = MAX_MESSAGE,
        metadata: Mapping[str, str] | None = None,
        plots: bool = True,
        lockstep_spin: float = LOCKSTEP_SPIN,
    ) -> None:
        from robocell.bridge.profiles import get_profile
        from robocell.bridge.security import check_bind

        if mode not in ("lockstep", "realtime"):
            raise BridgeError(f"mode must be lockstep or realtime, got '{mode}'", exit_code=2)
        check_bind(bind, security is not None, insecure)
        if pub is not None:
            check_bind(pub, security is not None, insecure)
        self.cell = cell
        self.mode = mode
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.bind = bind
        self.pub_bind = (
            pub if pub is not None else (_free_port_of(bind) if mode == "realtime" else None)
        )
        self.security = security
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.record_period = record_period
        self.duration = duration
        self.idle_timeout = idle_timeout
        if not (math.isfinite(lockstep_spin) and 0 <= lockstep_spin <= 1):
            raise BridgeError(f"lockstep_spin must be 0..1 s, got {lockstep_spin!r}", exit_code=2)
        self.lockstep_spin = float(lockstep_spin)
        self.max_message = int(max_message)
        self.metadata = dict(metadata or {})
        self.plots = plots
        if watchdog_s is None:
            prof_wd = getattr(self.profile, "watchdog_s", None)
            watchdog_s = prof_wd if prof_wd is not None else DEFAULT_WATCHDOG_S
        if not (watchdog_s > 0 and math.isfinite(watchdog_s)):
            raise BridgeError(f"watchdog must be > 0 s, got {watchdog_s}", exit_code=2)
        self.watchdog_s = float(watchdog_s)
        if self.profile is not None:
            self._apply_profile()
        self.session = secrets.token_hex(8)
        self.endpoint = ""
        self.pub_endpoint: str | None = None
        self.tick = 0
        self.clients: dict[bytes, _Client] = {}
        self.links: dict[str, _RobotLink] = {}
        self.errors: Counter[str] = Counter()
        self.messages = 0
        self.finished = False
        self.stop_requested = False
        self.result: Any = None
        self._ctx: zmq.Context[Any] | None = None
        self._sock: zmq.Socket[Any] | None = None
        self._pubsock: zmq.Socket[Any] | None = None
        self._rec: SessionRecorder | None = None
        self._pending_signals: dict[str, Any] = {}
        self._read_only: set[str] = set()
        self._pending_markers: list[Marker] = []
        self._pending_done = False
        self._obs: Observation | None = None
        self._last_rx = time.monotonic()
        self._lateness: list[float] = []
        self._deadline_misses = 0
        #: real time: schedule restarts after a stall, and the periods they skipped (no tick)
        self._restarts = 0
        self._skipped_periods = 0
        self._stalls: list[tuple[int, int]] = []  # (tick before the stall, periods skipped)
        self._wall0 = 0.0
        #: called when the server closes (e.g. a stand-in's physics)
        self.on_close: list[Callable[[], None]] = []
        self._handlers: dict[str, Callable[[_Client, dict[str, Any]], dict[str, Any]]] = {
            "hello": self._h_hello,
            "ping": self._h_ping,
            "claim": self._h_claim,
            "release": self._h_release,
            "step": self._h_step,
            "command": self._h_command,
            "state": self._h_state,
            "clear_fault": self._h_clear_fault,
            "kpis": self._h_kpis,
            "finish": self._h_finish,
            "bye": self._h_bye,
        }

    # -- setup ---------------------------------------------------------------------------------
    def _apply_profile(self) -> None:
        """Robots run at the profile's rate (which must be a whole number of physics steps)."""
        prof = self.profile
        for r in self.cell.robots.values():
            if not math.isclose(r.control_period, prof.period, rel_tol=1e-9):
                self.cell.world.steps_for(prof.period, f"profile {prof.name} period")
                r.control_period = prof.period
                r._vel_step = r.limits.velocity * prof.period * (1 + 1e-9)
                r._step_l = r._vel_step.tolist()
        self.cell._tick_steps = 0  # plan the ticks again at the new rate

    def open(self) -> None:
        """Bind the sockets and start the cell (its first observation is ready)."""
        if self._sock is not None:
            return
        cell = self.cell
        for name in cell.robots:
            cell.signals.setdefault(f"{name}.fault", False)
        self._read_only = {f"{name}.fault" for name in cell.robots}
        modes = tuple(self.profile.command_modes) if self.profile else tuple(COMMAND_MODES)
        from robocell.bridge.profiles import TimingMonitor

        for name, r in cell.robots.items():
            self.links[name] = _RobotLink(
                name,
                r.n,
                modes,
                monitor=TimingMonitor(self.profile) if self.profile is not None else None,
            )
        ctx = zmq.Context()
        self._ctx = ctx
        made: list[zmq.Socket[Any]] = []  # closed if a bind fails (else the context never ends)
        bind = self.bind
        try:
            sock = ctx.socket(zmq.ROUTER)
            made.append(sock)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE)
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            if self.security is not None:
                self.security.start(ctx)
                self.security.apply(sock)
            self.endpoint = _bind(sock, self.bind)
            self._sock = sock
            if self.pub_bind is not None:
                bind = self.pub_bind
                pub = ctx.socket(zmq.PUB)
                made.append(pub)
                pub.setsockopt(zmq.LINGER, 0)
                pub.setsockopt(zmq.SNDHWM, 1000)
                if self.security is not None:
                    self.security.apply(pub)
                self.pub_endpoint = _bind(pub, self.pub_bind)
                self._pubsock = pub
        except zmq.ZMQError as exc:
            for s in made:
                s.close(0)
            self._sock = self._pubsock = None
            self.close()
            raise BridgeError(f"cannot bind {bind}: {exc}", exit_code=2) from None
        meta = {
            **self.metadata,
            "bridge_mode": self.mode,
            "bridge_profile": self.profile.name if self.profile else "",
        }
        # real time: the recordings are appended in small blocks, which fit in a period, instead
        # of one block a second that would hold up the tick it falls on by milliseconds
        rt = self.mode == "realtime"
        flush = REALTIME_FLUSH_PERIOD if rt else 1.0
        self._obs = cell.start(
            self.out_dir, self.record_period, flush_period=flush, metadata=meta, defer_flush=rt
        )
        if self.out_dir is not None:
            self._rec = SessionRecorder(
                self.out_dir,
                {n: r.n for n, r in cell.robots.items()},
                meta,
                flush_period=flush,
                defer_flush=rt,
            )
        self._wall0 = time.time()

    def close(self) -> None:
        """Finish the session (if not done) and close the sockets."""
        if self._obs is not None and not self.finished:
            with contextlib.suppress(Exception):
                self._finish()
        for s in (self._sock, self._pubsock):
            if s is not None:
                s.close(0)
        self._sock = self._pubsock = None
        if self.security is not None:
            with contextlib.suppress(Exception):
                self.security.stop()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        while self.on_close:
            self.on_close.pop()()

    def __enter__(self) -> SimServer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -------------------------------------------------------------------------------
    def serve(self) -> dict[str, Any]:
        """Serve until finished (``finish`` request, duration reached, :meth:`stop`, idle
        timeout) and return the session report."""
        self.open()
        # real time: a full garbage collection stalls the loop for up to 100 ms (measured); the
        # objects of the running session are frozen out of the collector and automatic
        # collection is off while serving (the tick allocates no reference cycles)
        gc_was = gc.isenabled()
        if self.mode == "realtime":
            gc.collect()
            gc.freeze()
            gc.disable()
        try:
            if self.mode == "lockstep":
                self._serve_lockstep()
            else:
                self._serve_realtime()
        finally:
            if self.mode == "realtime":
                gc.unfreeze()
                if gc_was:
                    gc.enable()
            if not self.finished:
                self._finish()
        return self.report()

    def stop(self) -> None:
        """Ask the serving loop to end (safe from a signal handler or another thread)."""
        self.stop_requested = True

    def _serve_lockstep(self) -> None:
        sock = self._sock
        assert sock is not None
        spin = self.lockstep_spin
        clock = time.perf_counter
        while not self.finished and not self.stop_requested:
            if spin > 0 and wait_for_message(sock, clock() + spin):
                self._receive_all(sock)
            elif sock.poll(100):
                self._receive_all(sock)
            elif self._idle():
                break

    def _idle(self) -> bool:
        return (
            self.idle_timeout is not None and time.monotonic() - self._last_rx > self.idle_timeout
        )

    def _serve_realtime(self) -> None:
        sock = self._sock
        assert sock is not None
        cell, rec = self.cell, self._rec
        flushing: Iterator[bool] | None = None
        period = cell.control_period
        clock = time.perf_counter
        t_next = clock() + period
        end_tick = None
        if self.duration is not None:
            end_tick = round(self.duration / period)
        while not self.finished and not self.stop_requested:
            # serve requests until the tick is due: sleep in poll while far, spin when close
            while True:
                rem = t_next - clock()
                if rem <= 0:
                    break
                wait_ms = int((rem - SPIN_MARGIN) * 1000) if rem > SPIN_MARGIN else 0
                if sock.poll(wait_ms):
                    self._receive_all(sock)
            # (what arrived while the loop was busy past the deadline counts for this tick)
            self._receive_all(sock)
            start = clock()
            self._lateness.append(start - t_next)
            self._tick_realtime()
            if clock() > t_next + period:
                self._deadline_misses += 1
            t_next += period
            behind = clock() - t_next
            if behind > RESTART_AFTER * period:
                # fell far behind (a stalled machine): the periods whose deadlines passed get no
                # tick and are counted; the schedule goes on at its next period boundary
                # instead of racing through the backlog
                skipped = int(behind // period) + 1
                self._restarts += 1
                self._skipped_periods += skipped
                if len(self._stalls) < MAX_STALLS_REPORTED:
                    self._stalls.append((self.tick, skipped))
                t_next += skipped * period
            if end_tick is not None and self.tick >= end_tick:
                break
            if self._idle():
                break
            # the recordings are flushed after the tick has published its state, one stage of
            # a fraction of a millisecond in the time left before each next tick (a whole flush
            # inside one tick would delay its state and the next tick)
            if flushing is None and cell.flush_due:
                flushing = cell.flush_stages()
            if flushing is not None:
                if next(flushing, False) is False:
                    flushing = None
            elif rec is not None and rec.flush_due:
                rec.flush()

    def _receive_all(self, sock: zmq.Socket[Any]) -> None:
        # (asking the socket whether a message waits costs a third of a failed receive's
        # zmq.Again, which every lockstep cycle would otherwise raise once)
        while sock.get(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle_frames(sock, frames)

    def _handle_frames(self, sock: zmq.Socket[Any], frames: list[bytes]) -> None:
        wall = time.time()
        self._last_rx = time.monotonic()
        self.messages += 1
        identity = frames[0]
        rest = frames[1:]
        envelope: list[bytes] = []
        if len(rest) >= 2 and rest[0] == b"":
            envelope, rest = [b""], rest[1:]  # a REQ client's delimiter
        client = self.clients.get(identity)
        if client is None:
            client = _Client(identity)
            if len(self.clients) > 10_000:  # forget the quietest clients (bounded memory)
                for k in sorted(self.clients, key=lambda i: self.clients[i].last_rx)[:1000]:
                    if not self._owns_anything(k):
                        del self.clients[k]
            self.clients[identity] = client
        client.messages += 1
        client.last_rx = wall
        req_id: Any = None
        try:
            if len(rest) != 1:
                raise ProtocolError("E_DECODE", f"one frame per message, got {len(rest)}")
            msg = decode(rest[0], self.max_message)
            req_id = msg.get("id")
            if req_id is not None and not (
                type(req_id) is int or (type(req_id) is str and len(req_id) <= 64)
            ):
                req_id = None
                raise ProtocolError("E_BAD_TYPE", "'id' must be an integer or a short string", "id")
            kind = msg.get("type")
            if kind == "hello":
                reply = self._h_hello(client, msg, wall)
            else:
                check_version(msg)
                if kind is None:
                    raise ProtocolError("E_MISSING_FIELD", "'type' is required", "type")
                if type(kind) is not str:
                    raise ProtocolError("E_BAD_TYPE", "'type' must be a string", "type")
                handler = self._handlers.get(kind)
                if handler is None:
                    raise ProtocolError(
                        "E_UNKNOWN_TYPE",
                        f"unknown message type '{kind[:40]}'; known: {', '.join(self._handlers)}",
                        "type",
                    )
                if self.finished and kind not in ("ping", "kpis", "bye", "state"):
                    raise ProtocolError("E_MODE", "the session has finished")
                reply = (
                    handler(client, msg)
                    if kind != "command"
                    else self._h_command(client, msg, wall)
                )
            reply.setdefault("ok", True)
            reply.setdefault("type", kind)
            reply["v"] = VERSION
        except ProtocolError as exc:
            client.errors += 1
            self.errors[exc.code] += 1
            reply = exc.reply(req_id)
        except RobocellError as exc:
            client.errors += 1
            self.errors["E_BAD_VALUE"] += 1
            reply = ProtocolError("E_BAD_VALUE", str(exc)).reply(req_id)
        except Exception as exc:  # noqa: BLE001 - a server keeps serving whatever one message did
            client.errors += 1
            self.errors["E_INTERNAL"] += 1
            reply = ProtocolError("E_INTERNAL", f"{type(exc).__name__}: {exc}").reply(req_id)
        if req_id is not None:
            reply["id"] = req_id
        try:
            data = encode(reply)
        except Exception as exc:  # noqa: BLE001 - an unencodable reply must not stop the server
            err = ProtocolError("E_INTERNAL", f"unencodable reply ({type(exc).__name__})")
            data = encode(err.reply(req_id))
        try:
            sock.send_multipart([identity, *envelope, data], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the client is gone or not reading: nothing to answer to

    def _owns_anything(self, identity: bytes) -> bool:
        return any(link.owner == identity for link in self.links.values())

    # -- handlers ------------------------------------------------------------------------------
    def _h_hello(self, client: _Client, msg: dict[str, Any], wall: float = 0.0) -> dict[str, Any]:
        version = negotiate(msg)
        name = str(optional(msg, "client", str, ""))[:128]
        role = optional(msg, "role", str, "controller")
        if role not in ("controller", "observer"):
            raise ProtocolError("E_BAD_VALUE", "'role' must be controller or observer", "role")
        client.version, client.name, client.role = version, name, role  # all valid: take it
        cell = self.cell
        robots = {}
        for name, r in cell.robots.items():
            lim = r.limits
            robots[name] = {
                "dof": r.n,
                "model": r.model.name,
                "joints": list(r.model.joint_names),
                "control_period": r.control_period,
                "command_modes": list(self.links[name].modes),
                "limits": {
                    "lower": lim.lower,
                    "upper": lim.upper,
                    "velocity": lim.velocity,
                    "acceleration": lim.acceleration,
                    "effort": lim.effort,
                },
                "base": _pose(r.base),
                "tcp": _pose(r.tool.tcp),
                "owner": self._owner_name(name),
            }
        return {
            "type": "hello",
            "version": client.version,
            "server": f"robocell {__version__}",
            "session": self.session,
            "mode": self.mode,
            "profile": self._profile_info(),
            "physics_step": cell.world.physics_step,
            "control_period": cell.control_period,
            "watchdog_s": self.watchdog_s if self.mode == "realtime" else None,
            "max_message": self.max_message,
            "pub": self.pub_endpoint,
            "robots": robots,
            "observation": self._obs_message(),
        }

    def _profile_info(self) -> dict[str, Any] | None:
        p = self.profile
        if p is None:
            return None
        return {
            "name": p.name,
            "title": p.title,
            "rate_hz": p.rate_hz,
            "command_modes": list(p.command_modes),
            "max_consecutive_misses": p.max_consecutive_misses,
            "late_limit": p.late_limit,
            "watchdog_s": p.watchdog_s,
            "fault": p.fault,
        }

    def _owner_name(self, robot: str) -> str | None:
        owner = self.links[robot].owner
        if owner is None:
            return None
        c = self.clients.get(owner)
        return c.name if c is not None and c.name else owner.hex()

    def _h_ping(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        return {"t": self.cell.time, "tick": self.tick, "wall": time.time()}

    def _robot_names(self, msg: dict[str, Any]) -> list[str]:
        names = optional(msg, "robots", list, list(self.links))
        for i, n in enumerate(names):
            if type(n) is not str:
                raise ProtocolError("E_BAD_TYPE", f"'robots[{i}]' must be a string", "robots")
            if n not in self.links:
                raise ProtocolError("E_UNKNOWN_ROBOT", f"no robot '{n[:40]}'", "robots")
        return names

    def _h_claim(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        names = self._robot_names(msg)
        takeover = optional(msg, "takeover", bool, False)
        if client.role == "observer":
            raise ProtocolError("E_MODE", "an observer cannot command robots (hello role)")
        for n in names:
            link = self.links[n]
            if link.owner not in (None, client.identity):
                if not (takeover and link.fault is not None):
                    raise ProtocolError(
                        "E_NOT_OWNER",
                        f"robot '{n}' is commanded by {self._owner_name(n)}"
                        + ("" if link.fault else "; takeover works only on a faulted robot"),
                        "robots",
                    )
        for n in names:
            self.links[n].owner = client.identity
        return {"robots": names}

    def _h_release(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        names = self._robot_names(msg)
        out = []
        for n in names:
            if self.links[n].owner == client.identity:
                self.links[n].owner = None
                out.append(n)
        return {"robots": out}

    def _h_bye(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        for link in self.links.values():
            if link.owner == client.identity:
                link.owner = None
        self.clients.pop(client.identity, None)
        return {}

    def _parse_commands(self, client: _Client, msg: dict[str, Any]) -> dict[str, JointCommand]:
        """Validate every command of a request (nothing is applied unless all are valid)."""
        cmds = optional(msg, "commands", dict, {})
        out: dict[str, JointCommand] = {}
        for name, value in cmds.items():
            link = self.links.get(name) if type(name) is str else None
            if link is None:
                raise ProtocolError(
                    "E_UNKNOWN_ROBOT",
                    f"no robot '{str(name)[:40]}'; robots: {', '.join(self.links)}",
                    f"commands.{str(name)[:40]}",
                )
            out[name] = joint_command(value, link.dof, f"commands.{name}", link.modes)
        if out and client.role == "observer":
            raise ProtocolError("E_MODE", "an observer cannot command robots (hello role)")
        for name in out:
            link = self.links[name]
            if link.owner not in (None, client.identity):
                raise ProtocolError(
                    "E_NOT_OWNER",
                    f"robot '{name}' is commanded by {self._owner_name(name)}",
                    f"commands.{name}",
                )
            if link.fault is not None:
                raise ProtocolError(
                    "E_FAULT",
                    f"robot '{name}' is faulted ({link.fault}); "
                    "send clear_fault once it is at rest",
                    f"commands.{name}",
                )
        return out

    def _take(self, client: _Client, cmds: Mapping[str, JointCommand]) -> None:
        """The client now commands these robots (called once the whole request is valid)."""
        for name in cmds:
            self.links[name].owner = client.identity

    def _parse_extras(
        self, client: _Client, msg: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Marker], bool]:
        if client.role == "observer" and any(msg.get(k) for k in ("signals", "markers", "done")):
            raise ProtocolError(
                "E_MODE", "an observer cannot write signals or markers (hello role)"
            )
        sigs = optional(msg, "signals", dict, {})
        known = self.cell.signals
        out: dict[str, Any] = {}
        for k, v in sigs.items():
            if type(k) is not str or k not in known:
                raise ProtocolError(
                    "E_UNKNOWN_SIGNAL", f"no signal '{str(k)[:60]}' in the cell", "signals"
                )
            if k in self._read_only:
                raise ProtocolError(
                    "E_MODE", f"signal '{k}' is set by the server, not by clients", f"signals.{k}"
                )
            val = signal_value(v, f"signals.{k}")
            old = known[k]
            # a signal keeps its type: a boolean stays a boolean, a number a number, text text
            if old is not None and _signal_kind(val) != _signal_kind(old):
                raise ProtocolError(
                    "E_BAD_TYPE",
                    f"signal '{k}' is a {_signal_kind(old)}, got a {_signal_kind(val)}",
                    f"signals.{k}",
                )
            out[k] = val
        markers = []
        for i, m in enumerate(optional(msg, "markers", list, [])):
            if not isinstance(m, dict):
                raise ProtocolError("E_BAD_TYPE", f"'markers[{i}]' must be a map", f"markers[{i}]")
            kind = req_field(m, "kind", str, f"markers[{i}]")
            if not 0 < len(kind) <= 64:
                raise ProtocolError(
                    "E_BAD_VALUE", f"'markers[{i}].kind' must be 1..64 characters", f"markers[{i}]"
                )
            data = optional(m, "data", dict, {}, f"markers[{i}]")
            _check_marker_data(data, f"markers[{i}].data")
            markers.append(Marker(kind, data))
        done = optional(msg, "done", bool, False)
        return out, markers, done

    def _h_step(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        if self.mode != "lockstep":
            raise ProtocolError("E_MODE", "step is for lockstep servers; send command in real time")
        if client.role == "observer":
            raise ProtocolError("E_MODE", "an observer cannot advance the clock (hello role)")
        ticks = optional(msg, "ticks", int, 1)
        if not 1 <= ticks <= MAX_TICKS_PER_STEP:
            raise ProtocolError(
                "E_BAD_VALUE", f"'ticks' must be 1..{MAX_TICKS_PER_STEP}, got {ticks}", "ticks"
            )
        others = [n for n, link in self.links.items() if link.owner not in (None, client.identity)]
        if others and not self._owns_anything(client.identity):
            raise ProtocolError(
                "E_NOT_OWNER",
                f"{', '.join(others)} commanded by another client: only a client that commands "
                "a robot advances time",
            )
        cmds = self._parse_commands(client, msg)
        sigs, markers, done = self._parse_extras(client, msg)
        if self.duration is not None:
            left = round((self.duration - self.cell.time) / self.cell.control_period)
            if ticks > left:
                raise ProtocolError(
                    "E_MODE",
                    f"the session ends at {self.duration} s of cell time; "
                    f"{max(left, 0)} ticks left",
                    "ticks",
                )
        self._take(client, cmds)
        wall = time.time()
        t = self.cell.time
        if self._rec is not None:
            for n, c in cmds.items():
                self._rec.command(t, wall, n, c, self.tick, False)
        events: list[Any] = []
        for i in range(ticks):
            if i == 0:
                commands = Commands(dict(cmds), sigs, markers, done)
                fresh = {n: "ok" for n in cmds}
            else:
                commands, fresh = Commands(done=done), {}
            obs = self._tick(commands, fresh, 0.0)
            events.extend(obs.events)
        return self._obs_message(events)

    def _h_command(self, client: _Client, msg: dict[str, Any], wall: float = 0.0) -> dict[str, Any]:
        if self.mode != "realtime":
            raise ProtocolError("E_MODE", "command is for real-time servers; send step in lockstep")
        cmds = self._parse_commands(client, msg)
        sigs, markers, done = self._parse_extras(client, msg)
        tick_ref = optional(msg, "tick", int, -1)
        late = 0 <= tick_ref < self.tick
        self._take(client, cmds)
        for n, c in cmds.items():
            link = self.links[n]
            link.pending = c
            # the best outcome of this period wins (a late command then an on-time one is ok)
            if link.outcome != "ok":
                link.outcome = "late" if late else "ok"
            if self._rec is not None:
                self._rec.command(self.cell.time, wall, n, c, tick_ref, late)
        self._pending_signals.update(sigs)
        self._pending_markers.extend(markers)
        self._pending_done = self._pending_done or done
        return {"t": self.cell.time, "tick": self.tick, "late": late}

    def _h_state(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        return self._obs_message()

    def _h_clear_fault(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        names = self._robot_names(msg)
        for n in names:
            link = self.links[n]
            if link.owner not in (None, client.identity):
                raise ProtocolError("E_NOT_OWNER", f"robot '{n}' is commanded by another client")
            if link.stop is not None and not link.stop.at_rest:
                raise ProtocolError("E_FAULT", f"robot '{n}' is still stopping", "robots")
        cleared = []
        for n in names:
            link = self.links[n]
            if link.fault is not None:
                link.fault = None
                link.stale = 0
                link.commanded = False
                if self.profile is not None:
                    from robocell.bridge.profiles import TimingMonitor

                    link.monitor = TimingMonitor(self.profile)
                self.cell.signals[f"{n}.fault"] = False
                self.cell.emit("fault_cleared", robot=n)
                cleared.append(n)
        return {"robots": cleared}

    def _h_kpis(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        if self.finished and self.result is not None:
            return {"kpis": plain(self.result.kpis), "bridge": self.report()}
        return {"kpis": plain(self.cell.kpis()), "bridge": self.report()}

    def _h_finish(self, client: _Client, msg: dict[str, Any]) -> dict[str, Any]:
        if self._owns_nothing_while_others_do(client):
            raise ProtocolError(
                "E_NOT_OWNER", "only a client that commands a robot may finish the session"
            )
        self._finish()
        return {"kpis": plain(self.result.kpis), "bridge": self.report()}

    def _owns_nothing_while_others_do(self, client: _Client) -> bool:
        owned = [link.owner for link in self.links.values() if link.owner is not None]
        return bool(owned) and client.identity not in owned

    # -- the tick ------------------------------------------------------------------------------
    def _judge(self, fresh: Mapping[str, str]) -> dict[str, str | None]:
        """Judge this period for every commanded robot that is due; fault on a broken rule."""
        obs = self._obs
        assert obs is not None
        outcomes: dict[str, str | None] = {}
        realtime = self.mode == "realtime"
        for name in obs.due:
            link = self.links[name]
            if not link.commanded and name not in fresh:
                outcomes[name] = None  # never commanded: nothing to judge
                continue
            # (a robot stays judged after its client leaves: a client that goes away without
            # bringing its robot to rest trips the watchdog, as on a real controller)
            link.commanded = True
            outcome = fresh.get(name, "missed")
            outcomes[name] = outcome
            link.counts[outcome] += 1
            if link.fault is not None:
                continue
            link.stale = 0 if outcome != "missed" else link.stale + 1
            fault = None
            if link.monitor is not None:
                fault = link.monitor.period(outcome)
            if fault is None and realtime:
                r = self.cell.robots[name]
                if link.stale * r.control_period >= self.watchdog_s - 1e-12:
                    fault = "watchdog"
            if fault is not None:
                self._fault(name, fault)
        return outcomes

    def _fault(self, name: str, fault: str) -> None:
        obs = self._obs
        assert obs is not None
        link = self.links[name]
        r = self.cell.robots[name]
        st = obs.robots[name]
        link.fault = fault
        link.stop = ControlledStop(st.q, st.dq, r.limits, r.control_period)
        self.cell.signals[f"{name}.fault"] = True
        self.cell.emit(
            "fault",
            robot=name,
            fault=fault,
            stop_time_s=round(link.stop.duration, 6),
            profile=self.profile.name if self.profile else None,
        )

    def _tick(self, commands: Commands, fresh: Mapping[str, str], lateness: float) -> Observation:
        outcomes = self._judge(fresh)
        for name, link in self.links.items():
            if link.stop is not None and link.fault is not None:
                commands.joints[name] = link.stop.next()
            elif name in commands.joints:
                link.hold = _hold_after(
                    commands.joints[name], self.cell.robots[name], self.cell.control_period
                )
            elif link.hold is not None:
                # no new command this tick: hold where the last one led (a position command's
                # feed-forward is not replayed from its start point every tick)
                commands.joints[name] = link.hold
        obs = self.cell.step(commands)
        self._obs = obs
        self.tick += 1
        if self._rec is not None:
            self._rec.tick(obs.t, time.time(), lateness, outcomes)
        if self._pubsock is not None:
            with contextlib.suppress(zmq.ZMQError, ValueError, TypeError, RecursionError):
                self._pubsock.send_multipart(
                    [b"state", encode(self._obs_message(obs.events))], zmq.NOBLOCK
                )
        return obs

    def _tick_realtime(self) -> None:
        fresh: dict[str, str] = {}
        joints: dict[str, JointCommand] = {}
        for name, link in self.links.items():
            if link.outcome is not None:
                fresh[name] = link.outcome
            if link.pending is not None:
                joints[name] = link.pending
            link.pending = None
            link.outcome = None
        commands = Commands(
            joints, self._pending_signals, self._pending_markers, self._pending_done
        )
        self._pending_signals, self._pending_markers = {}, []
        lateness = self._lateness[-1] if self._lateness else 0.0
        self._tick(commands, fresh, lateness)

    def _obs_message(self, events: list[Any] | tuple[Any, ...] | None = None) -> dict[str, Any]:
        obs = self._obs
        if obs is None:
            return {}
        return {
            "t": obs.t,
            "tick": self.tick,
            "robots": {
                n: {"t": s.t, "q": s.q, "dq": s.dq, "tau": s.tau} for n, s in obs.robots.items()
            },
            "due": list(obs.due),
            "signals": plain(obs.signals),
            "events": plain(list(events) if events is not None else list(obs.events)),
            "faults": {n: link.fault for n, link in self.links.items()},
        }

    # -- the end -------------------------------------------------------------------------------
    def _finish(self) -> None:
        """End the run like ``Cell.run`` does: drain, close the recording, write the outputs."""
        if self.finished:
            return
        self.finished = True
        cell = self.cell
        from robocell.cell.cell import RunResult

        wall = time.time() - self._wall0
        cell._finished = True
        cell._drain()
        if cell._recorder is not None:
            cell._recorder.close()
        cell._close_devices()
        if self._rec is not None:
            self._rec.close()
        kpis = cell.kpis(wall_time=wall)
        self.result = RunResult(kpis=kpis, events=list(cell._events), out_dir=self.out_dir)
        if self.out_dir is not None and isinstance(cell, Cell):
            import json

            from robocell.record.report import write_outputs

            self.result.recording = cell._recorder.path if cell._recorder else None
            self.result.plots = write_outputs(self.result, plots=self.plots)
            (self.out_dir / "bridge.json").write_text(
                json.dumps(plain(self.report()), indent=2, sort_keys=True)
            )
            if self.mode == "realtime" and self._lateness and self.plots:
                _plot_lateness(self._lateness, self.out_dir / "bridge_jitter.png")

    def report(self) -> dict[str, Any]:
        """The session's figures: messages, errors, per-robot period outcomes and profile
        margins, faults, and in real time the tick lateness (jitter), the deadline misses and
        the periods skipped after a stall."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "profile": self.profile.name if self.profile else None,
            "ticks": self.tick,
            "t": self.cell.time,
            "messages": self.messages,
            "errors": dict(self.errors),
            "robots": {},
        }
        for n, link in self.links.items():
            rep: dict[str, Any] = {
                "periods": dict(link.counts),
                "fault": link.fault,
            }
            if link.monitor is not None:
                rep["profile"] = link.monitor.report()
            out["robots"][n] = rep
        if self.mode == "realtime" and self._lateness:
            lat = np.array(self._lateness)
            out["timing"] = {
                "period_s": self.cell.control_period,
                "ticks": len(lat),
                "deadline_misses": self._deadline_misses,
                "schedule_restarts": self._restarts,
                "skipped_periods": self._skipped_periods,
                "stalls": [{"after_tick": k, "skipped_periods": n} for k, n in self._stalls],
                # a skipped period is a missed deadline too
                "deadline_miss_share": (self._deadline_misses + self._skipped_periods)
                / (len(lat) + self._skipped_periods),
                "jitter_p50_s": float(np.percentile(np.abs(lat), 50)),
                "jitter_p99_s": float(np.percentile(np.abs(lat), 99)),
                "jitter_max_s": float(np.max(np.abs(lat))),
            }
        return out


#: marker data limits: nesting depth and number of values
MARKER_DEPTH = 4
MARKER_ITEMS = 256
_RESERVED_EVENT_KEYS = ("t", "kind")


def _check_marker_data(data: dict[str, Any], where: str) -> None:
    """Marker data becomes an event (recorded as JSON): string keys other than ``t`` and
    ``kind``, plain values (nil, booleans, finite numbers, strings, lists, maps), bounded depth
    and size; a ``cycle`` marker's ``cycle_time_s`` is a number."""
    count = 0

    def walk(v: Any, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MARKER_ITEMS:
            raise ProtocolError(
                "E_BAD_VALUE", f"'{where}' holds more than {MARKER_ITEMS} values", where
            )
        if depth > MARKER_DEPTH:
            raise ProtocolError(
                "E_BAD_VALUE", f"'{where}' is nested deeper than {MARKER_DEPTH}", where
            )
        if v is None or isinstance(v, (bool, int, str)):
            return
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ProtocolError("E_BAD_VALUE", f"'{path}' must be finite", where)
            return
        if isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]", depth + 1)
            return
        if isinstance(v, dict):
            for k, x in v.items():
                if type(k) is not str:
                    raise ProtocolError("E_BAD_TYPE", f"'{path}' keys must be strings", where)
                walk(x, f"{path}.{k[:40]}", depth + 1)
            return
        raise ProtocolError("E_BAD_TYPE", f"'{path}' cannot hold {type(v).__name__}", where)

    for k in data:
        if type(k) is not str:
            raise ProtocolError("E_BAD_TYPE", f"'{where}' keys must be strings", where)
        if k in _RESERVED_EVENT_KEYS:
            raise ProtocolError("E_BAD_VALUE", f"'{where}.{k}' is reserved for the event", where)
    walk(data, where, 0)
    ct = data.get("cycle_time_s")
    if ct is not None and (type(ct) not in (int, float) or not ct >= 0):
        raise ProtocolError(
            "E_BAD_VALUE", f"'{where}.cycle_time_s' must be a number >= 0 [s]", where
        )


def _hold_after(cmd: JointCommand, robot: Any, period: float) -> JointCommand:
    """The command that holds after ``cmd`` has had its period: a position command with a
    feed-forward holds still at the setpoint it reached; velocity and torque commands hold as
    they are (the watchdog covers a velocity that is never replaced)."""
    if cmd.mode != "position" or cmd.velocity is None:
        return cmd
    lim = robot.limits
    q = np.clip(
        np.asarray(cmd.values, float) + np.asarray(cmd.velocity, float) * period,
        lim.lower,
        lim.upper,
    )
    return JointCommand("position", q, None)


def _signal_kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "boolean"
    if isinstance(v, (int, float, np.number)):
        return "number"
    return "string" if isinstance(v, str) else type(v).__name__


def _pose(p: Any) -> list[float]:
    """An SE3 as [x, y, z, qx, qy, qz, qw]."""
    from robocell.cell.cell import _matrices_to_quat

    A = np.asarray(p.A, float)
    q = _matrices_to_quat(A[None, :3, :3])[0]
    return [*A[:3, 3].tolist(), *np.asarray(q, float).tolist()]


def _bind(sock: zmq.Socket[Any], endpoint: str) -> str:
    """Bind, turning a ``:0`` port into ZeroMQ's ``:*`` (a free port); the bound endpoint."""
    ep = (
        endpoint[:-2] + ":*"
        if endpoint.startswith("tcp://") and endpoint.endswith(":0")
        else endpoint
    )
    sock.bind(ep)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _free_port_of(endpoint: str) -> str:
    """The same host as ``endpoint`` on a free port (or an ipc path beside it)."""
    if endpoint.startswith("tcp://"):
        host = endpoint[len("tcp://") :].rsplit(":", 1)[0]
        return f"tcp://{host}:0"
    return endpoint + ".pub"


def wait_for_message(sock: zmq.Socket[Any], until: float) -> bool:
    """Busy-wait until a message waits on ``sock`` (True) or ``until`` (``perf_counter``
    time) has passed (False), asking the socket without sleeping."""
    clock = time.perf_counter
    while clock() < until:
        if sock.get(zmq.EVENTS) & zmq.POLLIN:
            return True
    return False


def _plot_lateness(lateness: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    us = np.abs(np.array(lateness)) * 1e6
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(us, bins=100, log=True)
    ax.axvline(np.percentile(us, 99), color="C1", label=f"p99 {np.percentile(us, 99):.0f} µs")
    ax.set_xlabel("tick start lateness [µs]")
    ax.set_ylabel("ticks")
    ax.set_title("real-time pacing: lateness of each control tick")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
