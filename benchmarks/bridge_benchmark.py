"""The ZeroMQ bridge over TCP on loopback: lockstep cycle rate and cost, real-time pacing at 1 kHz.

    python benchmarks/bridge_benchmark.py [--cycles 20000] [--repeats 5] [--realtime-seconds 60]
    python benchmarks/bridge_benchmark.py --quick          # a smoke run of a few seconds

Every measurement uses the same light cell: one robot (UR5e by default) on the ground plane,
1 ms physics step and 1 ms control period, commanded in position along a slow sine.

* **Lockstep** (server in a child process, client in this one): cycles per second of
  ``step`` requests carrying one position command (the bytes a controller sends, encoded with
  ``robocell.bridge.protocol.encode``, reply decoded with msgpack), sent from a bare DEALER socket
  and, apart, from :class:`robocell.bridge.Client` (which also builds the :class:`Observation`).
* **The limit of one cycle**, measured in the same run and interleaved with the bridge, round by
  round: (a) a bare pyzmq round trip between two processes (DEALER to a ROUTER that answers at
  once) of the same request bytes and a reply of the size of the server's real reply, plus
  (b) the same cell's in-process ``Cell.step(Commands(...))`` with the same command. Targets:
  at least 5,000 cycles/s and at most 1.3x the limit.
* **The floor of any server**, also in every round: the bare round trip with the far end stepping
  its own copy of the cell with the same command before it answers (no decoding, no checks, no
  encoding: a fixed reply). A bridge cannot be cheaper than this; ``floor / limit`` shows how far
  one cycle costs more than its two parts timed apart (the wake-ups and cold caches of two
  processes handing work back and forth on shared cores), and ``cycle / floor`` the protocol's
  own cost.
* **Real time at 1 kHz** (server and client in two child processes): the server paces the cell by
  the wall clock for ``--realtime-seconds``; the client subscribes to the states and answers each
  with a ``command`` naming its ``tick``. The server's report gives the share of missed deadlines
  (target under 0.1 %) and the p99 tick jitter (target at most 250 µs); the lateness of every tick
  is plotted as a histogram (``--plot``, default ``benchmarks/bridge_jitter.png``).

Also printed: the server's own time per ``step`` request measured in-process without sockets
(decode, validate, tick, build and encode the reply), to show where a cycle's overhead goes.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq

from robocell.bridge.protocol import encode
from robocell.cell.cell import Cell
from robocell.control.controller import Commands
from robocell.robot.interface import JointCommand

HERE = Path(__file__).resolve().parent
LOOPBACK = "tcp://127.0.0.1:0"
ROBOT = "r1"
#: commands cycle through this many targets: one period of the sine at 1 kHz
SINE_TICKS = 1000
SINE_AMPLITUDE_RAD = 0.1

# targets (acceptance text of the bridge issue)
TARGET_CYCLES_PER_S = 5000.0
TARGET_RATIO = 1.3
TARGET_MISS_SHARE = 0.001
TARGET_JITTER_P99_S = 250e-6


# -- the cell --------------------------------------------------------------------------------------
def build_cell(model: str) -> Cell:
    """The light cell of every measurement: one robot, 1 ms physics step, 1 ms control period."""
    cell = Cell(seed=1, physics_step=1e-3)
    cell.add_robot(model, name=ROBOT, control_period=1e-3)
    return cell


def sine_targets(q0: np.ndarray) -> list[list[float]]:
    """Position targets [rad], one per tick: joint 1 moves along a 1 Hz sine of 0.1 rad around
    ``q0`` (peak speed 0.63 rad/s, well inside every robot's limits)."""
    out = []
    for k in range(SINE_TICKS):
        q = np.array(q0, float)
        q[0] += SINE_AMPLITUDE_RAD * math.sin(2 * math.pi * k / SINE_TICKS)
        out.append(q.tolist())
    return out


def step_request(values: list[float]) -> bytes:
    """A lockstep ``step`` request with one position command, as a controller sends it."""
    return encode(
        {"v": 1, "type": "step", "commands": {ROBOT: {"mode": "position", "values": values}}}
    )


# -- child processes -------------------------------------------------------------------------------
def _serve_child(
    model: str, mode: str, duration: float | None, out_dir: str | None, conn: Connection
) -> None:
    """A SimServer in this process: bind, tell the parent the endpoints, wait for 'go', serve,
    and send back the session report, the lateness of every tick [s], the wall time of
    ``serve()`` [s] and the garbage collector's pauses by generation [s]."""
    import gc

    from robocell.bridge.server import SimServer

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    cell = build_cell(model)
    server = SimServer(
        cell,
        bind=LOOPBACK,
        mode=mode,
        duration=duration,
        out_dir=out_dir,
        idle_timeout=300.0,
        plots=False,
    )
    try:
        server.open()
        conn.send((server.endpoint, server.pub_endpoint))
        conn.recv()  # go
        gc.callbacks.append(on_gc)
        t0 = time.perf_counter()
        report = server.serve()
        wall = time.perf_counter() - t0
        gc.callbacks.remove(on_gc)
        conn.send((report, list(server._lateness), wall, pauses))
    finally:
        server.close()
        cell.close()


def _echo_child(reply: bytes, model: str | None, conn: Connection) -> None:
    """The far end of the bare round trip (``model`` None) and of the floor: a ROUTER that
    answers every request with the fixed ``reply``, without decoding it; ``b"stop"`` ends it.
    For the floor it first steps its own copy of the ``model`` cell by one period with the next
    position of the sine, by its own count (so the sine runs on without a jump). It waits for a
    request as the lockstep server does (busy for ``LOCKSTEP_SPIN`` after a message, then asleep
    in ``poll``), so that the limit, the floor and the bridge pay the same wake-up."""
    from robocell.bridge.server import LOCKSTEP_SPIN, wait_for_message

    cell = build_cell(model) if model is not None else None
    commands = []
    if cell is not None:
        q0 = cell.start().robots[ROBOT].q
        commands = [
            Commands({ROBOT: JointCommand("position", np.array(q))}) for q in sine_targets(q0)
        ]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    for k in itertools.count():
        if not wait_for_message(sock, time.perf_counter() + LOCKSTEP_SPIN):
            sock.poll()
        identity, payload = sock.recv_multipart()
        if cell is not None and payload != b"stop":
            cell.step(commands[k % SINE_TICKS])
        sock.send_multipart([identity, reply])
        if payload == b"stop":
            break
    sock.close(0)
    ctx.term()
    if cell is not None:
        cell.close()


def _start(target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
    """Start ``target(*args, conn)`` in a fresh (spawned) process; the parent's end of its pipe."""
    ours, theirs = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=target, args=(*args, theirs), daemon=True)
    proc.start()
    theirs.close()
    return proc, ours


def _recv(conn: Connection, timeout: float, what: str) -> Any:
    try:
        if conn.poll(timeout):
            return conn.recv()
    except EOFError:
        raise SystemExit(f"the {what} process died (its error is above)") from None
    raise SystemExit(f"no answer from the {what} process within {timeout} s")


def _dealer(ctx: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)  # a dead peer ends the benchmark, not hangs it
    sock.connect(endpoint)
    return sock


# -- lockstep --------------------------------------------------------------------------------------
@dataclass
class LockstepRound:
    """Mean time per cycle [s] of each loop in one round (all run back to back)."""

    bare: float
    cell: float
    floor: float
    bridge: float
    client: float

    @property
    def limit(self) -> float:
        return self.bare + self.cell

    @property
    def ratio(self) -> float:
        return self.bridge / self.limit

    @property
    def floor_ratio(self) -> float:
        return self.floor / self.limit

    @property
    def over_floor(self) -> float:
        return self.bridge / self.floor


@dataclass
class LockstepResult:
    rounds: list[LockstepRound]
    cycles: int
    request_bytes: int
    reply_bytes: int
    bridge_p50: float  # per-cycle percentiles of the bare-socket bridge loop, all rounds [s]
    bridge_p99: float
    server_step: float  # the server's handling of one step request, in-process [s]
    server_cell_step: float  # the same cell's Cell.step in that measurement [s]

    def median(self, name: str) -> float:
        return statistics.median(getattr(r, name) for r in self.rounds)


def _time_loop(n: int, one: Callable[[int], Any]) -> float:
    """Mean wall time [s] of ``one(i)`` over ``n`` calls."""
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    return (time.perf_counter() - t0) / n


def measure_lockstep(model: str, cycles: int, repeats: int, warmup: int) -> LockstepResult:
    """Interleaved rounds of: bare pyzmq round trip, in-process Cell.step, the floor (a round
    trip to a far end that steps the cell), the bridge from a bare DEALER, the bridge from
    :class:`Client`."""
    from robocell.bridge.client import Client

    server, server_conn = _start(_serve_child, model, "lockstep", None, None)
    echo = floor_end = None
    local = build_cell(model)
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        endpoint, _ = _recv(server_conn, 60, "server")
        server_conn.send("go")
        obs = local.start()
        targets = sine_targets(obs.robots[ROBOT].q)
        arrays = [np.array(t) for t in targets]
        requests = [step_request(t) for t in targets]

        bridge = _dealer(ctx, endpoint)
        unpack = msgpack.unpackb
        # the targets follow the sine tick by tick in each cell, whichever loop drives it (a jump
        # would be clamped and add a limit event to the reply)
        served, stepped = itertools.count(), itertools.count()

        def bridge_raw(i: int) -> bytes:
            bridge.send(requests[next(served) % SINE_TICKS])
            return bridge.recv()

        def bridge_one(i: int) -> Any:
            return unpack(bridge_raw(i))

        for i in range(warmup):
            reply = bridge_one(i)
        if not reply.get("ok"):
            raise SystemExit(f"the server refused the step request: {reply}")
        replies = [bridge_raw(i) for i in range(200)]
        sizes = Counter(len(r) for r in replies)
        real_reply = next(r for r in replies if len(r) == sizes.most_common(1)[0][0])

        echo, echo_conn = _start(_echo_child, real_reply, None)
        bare = _dealer(ctx, _recv(echo_conn, 60, "echo"))

        def bare_one(i: int) -> bytes:
            bare.send(requests[i % SINE_TICKS])
            return bare.recv()

        def cell_one(i: int) -> Any:
            q = arrays[next(stepped) % SINE_TICKS]
            return local.step(Commands({ROBOT: JointCommand("position", q)}))

        floor_end, floor_conn = _start(_echo_child, real_reply, model)
        floor = _dealer(ctx, _recv(floor_conn, 60, "floor"))

        def floor_one(i: int) -> bytes:
            floor.send(requests[i % SINE_TICKS])
            return floor.recv()

        client = Client(endpoint, name="bridge-benchmark")
        client.hello()

        def client_one(i: int) -> Any:
            q = arrays[next(served) % SINE_TICKS]
            return client.step(Commands({ROBOT: JointCommand("position", q)}))

        # one client commands the robot at a time: each loop releases it when it ends
        release = encode({"v": 1, "type": "release"})

        def release_bridge() -> None:
            bridge.send(release)
            bridge.recv()

        release_bridge()
        for one in (bare_one, cell_one, floor_one, client_one):
            _time_loop(warmup, one)
        client.request("release")

        rounds = []
        lat: list[float] = []
        for _ in range(repeats):
            b = _time_loop(cycles, bare_one)
            c = _time_loop(cycles, cell_one)
            f = _time_loop(cycles, floor_one)
            br = _time_loop(cycles, bridge_one)
            lat.extend(_per_cycle(min(cycles, 5000), bridge_one))
            release_bridge()
            cl = _time_loop(cycles, client_one)
            client.request("release")
            rounds.append(LockstepRound(b, c, f, br, cl))
        for sock in (bare, floor):
            sock.send(b"stop")
            sock.recv()
        client.finish()
        client.close()
        bridge.close(0)
        bare.close(0)
        floor.close(0)
        _recv(server_conn, 60, "server")  # the session report: the server has finished
    finally:
        for proc in (server, echo, floor_end):
            if proc is not None:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
        local.close()
        ctx.destroy(linger=0)
    srv, srv_cell = measure_server_step(model, min(cycles, 5000), warmup)
    lat_arr = np.array(lat)
    return LockstepResult(
        rounds,
        cycles,
        len(requests[0]),
        len(real_reply),
        float(np.percentile(lat_arr, 50)),
        float(np.percentile(lat_arr, 99)),
        srv,
        srv_cell,
    )


def _per_cycle(n: int, one: Callable[[int], Any]) -> list[float]:
    """Wall time [s] of each of ``n`` calls of ``one``."""
    clock = time.perf_counter
    out = []
    gc.collect()
    for i in range(n):
        t0 = clock()
        one(i)
        out.append(clock() - t0)
    return out


class _NoSocket:
    """Stands in for the ROUTER socket when the server's handling is timed without transport."""

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        self.last = frames


def measure_server_step(model: str, n: int, warmup: int) -> tuple[float, float]:
    """The server's time [s] to handle one ``step`` request in-process (decode, validate, tick,
    build and encode the reply; no sockets), and the same cell's bare ``Cell.step`` [s], both
    means over ``n`` requests, interleaved in two halves."""
    from robocell.bridge.server import SimServer

    cell = build_cell(model)
    local = build_cell(model)
    server = SimServer(cell, bind=LOOPBACK, plots=False)
    try:
        server.open()
        obs = local.start()
        targets = sine_targets(obs.robots[ROBOT].q)
        arrays = [np.array(t) for t in targets]
        frames = [[b"\x00bench", step_request(t)] for t in targets]
        sock: Any = _NoSocket()

        served, stepped = itertools.count(), itertools.count()

        def serve_one(i: int) -> None:
            server._handle_frames(sock, frames[next(served) % SINE_TICKS])

        def cell_one(i: int) -> Any:
            q = arrays[next(stepped) % SINE_TICKS]
            return local.step(Commands({ROBOT: JointCommand("position", q)}))

        _time_loop(warmup, serve_one)
        _time_loop(warmup, cell_one)
        if not msgpack.unpackb(sock.last[-1]).get("ok"):
            raise SystemExit(f"the server refused the step request: {sock.last}")
        s = [_time_loop(n // 2, serve_one) for _ in range(2)]
        c = [_time_loop(n // 2, cell_one) for _ in range(2)]
        return statistics.mean(s), statistics.mean(c)
    finally:
        server.close()
        cell.close()
        local.close()


# -- real time -------------------------------------------------------------------------------------
@dataclass
class RealtimeResult:
    seconds: float
    timing: dict[str, Any]  # the server report's bridge timing
    periods: dict[str, int]  # ok / late / missed periods of the robot, as the server judged
    lateness: np.ndarray  # of every tick [s]
    states: int  # states the client received
    commands: int  # commands it sent
    skipped: int  # states it skipped because a newer one was already queued
    late_replies: int  # replies that said late
    source: str  # where the lateness came from
    serve_wall_s: float  # wall time of the server's serve() [s]
    gc_pauses: dict[int, list[float]]  # the server's garbage collections by generation [s]

    @property
    def skipped_periods(self) -> int:
        """Periods without a tick: after a stall of more than ten periods the server skips the
        periods whose deadlines passed (reported by the server, counted in its miss share)."""
        return int(self.timing.get("skipped_periods", 0))

    @property
    def outside_ticks_s(self) -> float:
        """Wall time of ``serve()`` not spent in the periods it ticked or skipped: the
        collection and freeze before the first tick, and the finish (KPIs, outputs) [s]."""
        t = self.timing
        return self.serve_wall_s - (t["ticks"] + self.skipped_periods) * t["period_s"]


def _client_child(endpoint: str, pub: str, conn: Connection) -> None:
    """The real-time controller: subscribe to states, answer each with a position command naming
    its tick (only the newest, if several are queued); report counts when the states stop."""
    ctx: zmq.Context[Any] = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"state")
    sub.connect(pub)
    req = ctx.socket(zmq.DEALER)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(endpoint)
    time.sleep(0.5)  # let the subscription reach the publisher before the first tick
    conn.send("ready")
    conn.recv()  # the server is serving
    req.send(encode({"type": "hello", "versions": [1], "client": "bridge-benchmark"}))
    if not req.poll(10_000):
        raise SystemExit("no hello reply from the real-time server")
    hello = msgpack.unpackb(req.recv())
    targets = sine_targets(np.array(hello["observation"]["robots"][ROBOT]["q"]))
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    poller.register(req, zmq.POLLIN)
    states = commands = skipped = late = 0
    quiet_ms = 0
    unpack = msgpack.unpackb
    while quiet_ms < 2000:  # the server stops publishing at the end of its duration
        ready = dict(poller.poll(100))
        if not ready:
            quiet_ms += 100
            continue
        quiet_ms = 0
        if sub in ready:
            newest = None
            while True:
                try:
                    newest = sub.recv_multipart(zmq.NOBLOCK)[1]
                except zmq.Again:
                    break
                states += 1
                skipped += 1
            if newest is None:
                continue
            skipped -= 1
            tick = unpack(newest)["tick"]
            req.send(
                encode(
                    {
                        "v": 1,
                        "type": "command",
                        "tick": tick,
                        "commands": {
                            ROBOT: {"mode": "position", "values": targets[tick % SINE_TICKS]}
                        },
                    }
                )
            )
            commands += 1
        if req in ready:
            while True:
                try:
                    reply = unpack(req.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
                late += bool(reply.get("late"))
    conn.send({"states": states, "commands": commands, "skipped": skipped, "late": late})
    sub.close(0)
    req.close(0)
    ctx.term()


def measure_realtime(model: str, seconds: float, record: bool) -> RealtimeResult:
    """Serve the cell in real time for ``seconds`` and drive it from a second process."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = tmp if record else None
        server, server_conn = _start(_serve_child, model, "realtime", seconds, out_dir)
        client = None
        try:
            endpoint, pub = _recv(server_conn, 60, "server")
            client, client_conn = _start(_client_child, endpoint, pub)
            _recv(client_conn, 60, "client")
            server_conn.send("go")
            client_conn.send("go")
            report, lateness, wall, pauses = _recv(server_conn, seconds + 120, "server")
            counts = _recv(client_conn, 60, "client")
        finally:
            for proc in (server, client):
                if proc is not None:
                    proc.join(10)
                    if proc.is_alive():
                        proc.kill()
        source = "SimServer lateness list (no out_dir)"
        if record:
            import pyarrow as pa

            with pa.OSFile(str(Path(tmp) / "bridge_ticks.arrows"), "rb") as f:
                table = pa.ipc.open_stream(f).read_all()
            lateness = table.column("lateness").to_numpy()
            source = "bridge_ticks.arrows"
    return RealtimeResult(
        seconds,
        report["timing"],
        {k: int(v) for k, v in report["robots"][ROBOT]["periods"].items()},
        np.asarray(lateness, float),
        counts["states"],
        counts["commands"],
        counts["skipped"],
        counts["late"],
        source,
        wall,
        pauses,
    )


class MachineLoad:
    """What else the machine did during a phase: CPU time of processes other than this one and
    its (joined) children, and the time the hypervisor took from this VM (steal)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._stat0 = _proc_stat()
        self._ours0 = _our_cpu_s()

    def summary(self) -> str:
        wall = time.perf_counter() - self._t0
        busy, steal = (b - a for a, b in zip(self._stat0, _proc_stat()))
        others = max(0.0, busy - (_our_cpu_s() - self._ours0))
        cores = os.cpu_count() or 1
        return (
            f"other processes used {others:.1f} CPU-s in {wall:.0f} s "
            f"({100 * others / (wall * cores):.1f} % of {cores} cores); "
            f"hypervisor steal {100 * steal / (wall * cores):.1f} %"
        )


def _proc_stat() -> tuple[float, float]:
    """(busy, steal) CPU seconds of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        x = [int(v) for v in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return (x[0] + x[1] + x[2] + x[5] + x[6]) / tick, x[7] / tick


def _our_cpu_s() -> float:
    """CPU seconds of this process and its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def plot_lateness(res: RealtimeResult, path: Path) -> None:
    """Histogram of the ticks' lateness (log count) with the p99 and the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    us = np.abs(res.lateness) * 1e6
    p99 = float(np.percentile(us, 99))
    fig, ax = plt.subplots(figsize=(8, 4))
    top = max(float(us.max()), TARGET_JITTER_P99_S * 1e6) * 1.2
    bins = np.logspace(np.log10(max(0.5, float(us.min()))), np.log10(top), 120)
    ax.hist(us, bins=bins, log=True, color="C0")
    ax.set_xscale("log")
    ax.axvline(p99, color="C1", label=f"p99 {p99:.0f} µs")
    ax.axvline(TARGET_JITTER_P99_S * 1e6, color="C3", ls="--", label="target p99 250 µs")
    ax.axvline(1e3, color="0.5", ls=":", label="one period (1 ms)")
    miss = 100 * res.timing["deadline_miss_share"]
    ax.set_xlabel("tick start lateness against the 1 ms schedule [µs] (log)")
    ax.set_ylabel("ticks (log)")
    ax.set_title(
        f"bridge real time, 1 kHz, {len(us):,} ticks ({res.seconds:g} s): deadline misses "
        f"{res.timing['deadline_misses']} + {res.skipped_periods} skipped periods ({miss:.2f} %)",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- report ----------------------------------------------------------------------------------------
def machine() -> str:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import pybullet  # noqa: F401  (its version is printed by pybullet's own banner otherwise)

    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}), "
        f"Python {platform.python_version()}, pyzmq {zmq.__version__}, "
        f"libzmq {zmq.zmq_version()}, msgpack {'.'.join(map(str, msgpack.version))}"
    )


def _row(metric: str, value: str, target: str, met: bool | None) -> str:
    flag = "-" if met is None else ("yes" if met else "NO")
    return f"{metric:<52}{value:>16}  {target:<14}{flag}"


def print_lockstep(r: LockstepResult) -> None:
    us = 1e6
    print(
        f"\nlockstep: {r.cycles} cycles per loop, {len(r.rounds)} interleaved rounds; "
        f"request {r.request_bytes} B, reply {r.reply_bytes} B"
    )
    print(
        f"{'round':<7}{'bare RT':>10}{'Cell.step':>11}{'limit':>9}{'floor':>9}{'bridge':>9}"
        f"{'Client':>9}{'ratio':>8}   [µs per cycle]"
    )
    for i, x in enumerate(r.rounds, 1):
        print(
            f"{i:<7}{x.bare * us:>10.1f}{x.cell * us:>11.1f}{x.limit * us:>9.1f}"
            f"{x.floor * us:>9.1f}{x.bridge * us:>9.1f}{x.client * us:>9.1f}{x.ratio:>8.2f}"
        )
    print(
        f"bridge per cycle (bare DEALER): p50 {r.bridge_p50 * us:.1f} µs, "
        f"p99 {r.bridge_p99 * us:.1f} µs"
    )
    print(
        f"server handling one step in-process, no sockets: {r.server_step * us:.1f} µs "
        f"(Cell.step {r.server_cell_step * us:.1f} µs, "
        f"server's own {(r.server_step - r.server_cell_step) * us:.1f} µs)"
    )


def print_realtime(r: RealtimeResult) -> None:
    t = r.timing
    lat = np.abs(r.lateness)
    period_jitter = np.abs(np.diff(r.lateness))  # start-to-start period minus 1 ms
    print(f"\nreal time: {r.seconds:g} s at 1 kHz, {t['ticks']} ticks (lateness from {r.source})")
    print(
        f"lateness [µs]: p50 {np.percentile(lat, 50) * 1e6:.1f}, "
        f"p99 {np.percentile(lat, 99) * 1e6:.1f}, p99.9 {np.percentile(lat, 99.9) * 1e6:.1f}, "
        f"max {lat.max() * 1e6:.0f}; ticks later than "
        f"250 µs: {int(np.sum(lat > 250e-6))}, than 1 ms: {int(np.sum(lat > 1e-3))}"
    )
    print(
        "period-to-period jitter |Δlateness| [µs]: "
        f"p99 {np.percentile(period_jitter, 99) * 1e6:.1f}, max {period_jitter.max() * 1e6:.0f}"
    )
    print(
        f"robot periods as the server judged them: {r.periods}; client: {r.states} states, "
        f"{r.commands} commands, {r.skipped} states skipped, {r.late_replies} late replies"
    )
    print(
        f"serve() took {r.serve_wall_s:.2f} s of wall time: {t['ticks']} ticks, "
        f"{r.skipped_periods} periods skipped after {t.get('schedule_restarts', 0)} stall(s), "
        f"{r.outside_ticks_s:.2f} s before the first and after the last tick"
    )
    gcs = ", ".join(
        f"gen{g} {len(v)}x max {max(v) * 1e3:.1f} ms" for g, v in r.gc_pauses.items() if v
    )
    print(f"server garbage collections: {gcs}")


def print_summary(lock: LockstepResult | None, rt: RealtimeResult | None) -> None:
    print(f"\n{'metric':<52}{'value':>16}  {'target':<14}met?")
    if lock is not None:
        cps = 1 / lock.median("bridge")
        ratio = lock.median("ratio")
        print(
            _row("lockstep cycles/s (bare DEALER client)", f"{cps:,.0f}", ">= 5,000", cps >= 5000)
        )
        ccps = 1 / lock.median("client")
        print(_row("lockstep cycles/s (robocell Client)", f"{ccps:,.0f}", ">= 5,000", ccps >= 5000))
        print(
            _row(
                "cycle time (bare DEALER client) [µs]",
                f"{lock.median('bridge') * 1e6:.1f}",
                "",
                None,
            )
        )
        print(
            _row(
                "limit = bare round trip + Cell.step [µs]",
                f"{lock.median('limit') * 1e6:.1f}",
                "",
                None,
            )
        )
        print(_row("  bare pyzmq round trip [µs]", f"{lock.median('bare') * 1e6:.1f}", "", None))
        print(_row("  in-process Cell.step [µs]", f"{lock.median('cell') * 1e6:.1f}", "", None))
        print(
            _row(
                "cycle / limit (median of rounds)",
                f"{ratio:.2f}x",
                "<= 1.3x",
                ratio <= TARGET_RATIO,
            )
        )
        print(
            _row(
                "floor: round trip, far end runs Cell.step [µs]",
                f"{lock.median('floor') * 1e6:.1f}",
                "",
                None,
            )
        )
        print(_row("  floor / limit", f"{lock.median('floor_ratio'):.2f}x", "", None))
        print(
            _row(
                "  cycle / floor (the protocol's own cost)",
                f"{lock.median('over_floor'):.2f}x",
                "",
                None,
            )
        )
        cratio = statistics.median(r.client / r.limit for r in lock.rounds)
        print(
            _row(
                "cycle / limit with the robocell Client",
                f"{cratio:.2f}x",
                "<= 1.3x",
                cratio <= TARGET_RATIO,
            )
        )
    if rt is not None:
        t = rt.timing
        share = t["deadline_miss_share"]
        print(
            _row(
                f"real time 1 kHz, {rt.seconds:g} s: missed + skipped periods",
                f"{100 * share:.3f} % ({t['deadline_misses'] + rt.skipped_periods})",
                "< 0.1 %",
                share < TARGET_MISS_SHARE,
            )
        )
        p99 = t["jitter_p99_s"]
        print(
            _row(
                "real time: p99 tick jitter [µs]",
                f"{p99 * 1e6:.1f}",
                "<= 250 µs",
                p99 <= TARGET_JITTER_P99_S,
            )
        )
        print(
            _row(
                "real time: p50 / max tick jitter [µs]",
                f"{t['jitter_p50_s'] * 1e6:.1f} / {t['jitter_max_s'] * 1e6:.0f}",
                "",
                None,
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ur5e", help="robot of the cell (ur5e, panda, ...)")
    ap.add_argument("--cycles", type=int, default=20_000, help="lockstep cycles per loop")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved lockstep rounds")
    ap.add_argument("--warmup", type=int, default=2000, help="untimed cycles before timing")
    ap.add_argument("--realtime-seconds", type=float, default=60.0, help="0: skip real time")
    ap.add_argument(
        "--no-record",
        action="store_true",
        help="real time without an out_dir (no recording, as a server without --out)",
    )
    ap.add_argument("--skip-lockstep", action="store_true")
    ap.add_argument("--plot", type=Path, default=HERE / "bridge_jitter.png")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few cycles, 3 s real time")
    a = ap.parse_args()
    if a.quick:
        a.cycles, a.repeats, a.warmup = 2000, 2, 1100  # past the first 1 s flush
        a.realtime_seconds = min(a.realtime_seconds, 3.0)

    print(f"machine: {machine()}")
    print(f"cell: {a.model}, 1 ms physics step, 1 ms control period, position commands (sine)")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    lock = None
    if not a.skip_lockstep:
        load = MachineLoad()
        lock = measure_lockstep(a.model, a.cycles, a.repeats, a.warmup)
        print_lockstep(lock)
        print(f"during lockstep: {load.summary()}")
    rt = None
    if a.realtime_seconds > 0:
        load = MachineLoad()
        rt = measure_realtime(a.model, a.realtime_seconds, record=not a.no_record)
        print_realtime(rt)
        print(f"during real time: {load.summary()}")
        plot_lateness(rt, a.plot)
        print(f"histogram: {a.plot}")
    print_summary(lock, rt)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
