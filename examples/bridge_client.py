"""A standalone robocell bridge client: the reference for writing one in another language.

It imports only ``zmq`` (pyzmq), ``msgpack`` and the standard library -- no robocell -- and is
written from docs/bridge-protocol.md alone. Everything it does maps one-to-one onto a C++
(cppzmq + msgpack-c), C# (NetMQ + MessagePack-CSharp) or PLC-gateway implementation:

1. connect a DEALER socket to the server's request endpoint;
2. ``hello``: negotiate the protocol version, learn the robots, their limits and the first
   observation;
3. show one error reply (a command with the wrong number of joints) and how to read it;
4. drive robot ``r1`` in lockstep: every control tick one ``step`` carrying a position command
   with velocity feed-forward along a smooth (minimum-jerk) move of joint 1 and back;
5. ``finish``: end the session and print the KPIs.

Run a lockstep server in one terminal and this client in another::

    robocell serve scenarios/cycle_test.yaml --bind tcp://127.0.0.1:5555
    python examples/bridge_client.py --connect tcp://127.0.0.1:5555 --seconds 2

The last line printed is machine-checkable: ``RESULT {json}`` with the joint's start, turn-point
target and measured positions [rad].
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from typing import Any

import msgpack
import zmq

#: the protocol versions this client speaks
VERSIONS = [1]
#: the robot this example drives and the joint it moves (0-based index; "joint 1" to a human)
ROBOT = "r1"
JOINT = 0
#: how far joint 1 moves [rad] before it comes back
AMPLITUDE_RAD = 0.5
#: stay below this share of the joint's velocity and acceleration limits (from hello)
LIMIT_SHARE = 0.8
#: cell time to hold the final position after the move, so the drive settles [s]
SETTLE_S = 0.2
#: the tolerance of the RESULT line's "reached" verdict [rad]
TOLERANCE_RAD = 1e-2


class BridgeError(Exception):
    """The server answered with an error reply (``ok: false``)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        # An error reply always has `code` (E_...) and a one-line `message`; `field` (a dotted
        # path such as "commands.r1.values") only when one field of the request is at fault.
        self.code = reply.get("code", "?")
        self.message = reply.get("message", "")
        self.field = reply.get("field")
        super().__init__(
            f"{self.code}: {self.message}" + (f" [{self.field}]" if self.field else "")
        )


class NoReply(Exception):
    """No reply within the timeout: the server is not running, or refused us (e.g. CurveZMQ)."""


class Bridge:
    """One request socket to a robocell server.

    A DEALER socket (rather than REQ) lets a client time out and carry on: a REQ socket that
    missed a reply is stuck in its send/receive state machine. With a DEALER, each request is
    sent as one frame holding one MessagePack map, and replies are matched by their ``id``.
    """

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)  # do not hang on exit with unsent requests
        self.sock.connect(endpoint)
        self.timeout_ms = int(timeout_s * 1000)
        self.ids = itertools.count(1)
        self.version: int | None = None  # `v` of every request after hello

    def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its successful reply; raise BridgeError on ``ok: false``."""
        req_id = next(self.ids)
        msg: dict[str, Any] = {"type": kind, "id": req_id, **fields}
        if self.version is not None:
            msg["v"] = self.version  # required in every request except hello
        # use_bin_type: strings go out as MessagePack str, bytes as bin; Python floats are
        # packed as float64, which the protocol recommends.
        self.sock.send(msgpack.packb(msg, use_bin_type=True))
        while True:
            if not self.sock.poll(self.timeout_ms, zmq.POLLIN):
                raise NoReply(f"no reply to '{kind}' within {self.timeout_ms / 1000:g} s")
            frames = self.sock.recv_multipart()
            # a DEALER receives exactly what the server sent for it: one frame (a DEALER that
            # sends an empty delimiter frame first gets one back, like a REQ socket)
            reply = msgpack.unpackb(frames[-1], raw=False)
            if reply.get("id") != req_id:
                continue  # a late reply to an earlier request that timed out: skip it
            if not reply.get("ok"):
                raise BridgeError(reply)
            return reply

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


# -- the motion ---------------------------------------------------------------------------------
def min_jerk(tau: float) -> tuple[float, float]:
    """The minimum-jerk blend s(tau) = 10 tau^3 - 15 tau^4 + 6 tau^5 on tau in [0, 1] and its
    derivative ds/dtau. It starts and ends with zero velocity *and* zero acceleration, so the
    drive never sees a step in acceleration (the jerk stays finite)."""
    tau = min(max(tau, 0.0), 1.0)
    s = tau**3 * (10 - 15 * tau + 6 * tau**2)
    ds = 30 * tau**2 * (1 - tau) ** 2
    return s, ds


#: peaks of ds/dtau and |d2s/dtau2| of the minimum-jerk blend (at tau = 1/2 and 1/2 -+ sqrt(3)/6)
MIN_JERK_PEAK_DS = 1.875
MIN_JERK_PEAK_DDS = 10 / math.sqrt(3)


def out_and_back(t: float, half_s: float, q0: float, amp: float) -> tuple[float, float]:
    """Joint position [rad] and velocity [rad/s] at time ``t`` [s] of a move from ``q0`` to
    ``q0 + amp`` in ``half_s`` seconds and back in another ``half_s``."""
    if t < half_s:
        s, ds = min_jerk(t / half_s)
        return q0 + amp * s, amp * ds / half_s
    s, ds = min_jerk((t - half_s) / half_s)
    return q0 + amp * (1 - s), -amp * ds / half_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", default="tcp://127.0.0.1:5555", help="server request endpoint")
    ap.add_argument(
        "--seconds", type=float, default=2.0, help="cell time of the whole move, out and back [s]"
    )
    ap.add_argument("--timeout", type=float, default=10.0, help="reply timeout [s, wall clock]")
    a = ap.parse_args(argv)
    if not a.seconds > 0:
        ap.error("--seconds must be > 0")

    bridge = Bridge(a.connect, a.timeout)
    try:
        return run(bridge, a.seconds)
    except NoReply as exc:
        print(f"error: {exc} -- is a server running on {a.connect}?", file=sys.stderr)
        return 2
    except BridgeError as exc:
        print(f"error: the server refused a request: {exc}", file=sys.stderr)
        return 1
    finally:
        bridge.close()


def run(bridge: Bridge, seconds: float) -> int:
    # -- 1. hello --------------------------------------------------------------------------
    # `versions` lists what we speak; the server picks the highest version both speak.
    hello = bridge.request("hello", versions=VERSIONS, client="bridge_client.py", role="controller")
    bridge.version = hello["version"]
    print(
        f"connected to {hello['server']} (session {hello['session']}),"
        f" protocol v{hello['version']}, {hello['mode']} mode,"
        f" control period {hello['control_period'] * 1e3:g} ms,"
        f" physics step {hello['physics_step'] * 1e3:g} ms"
    )
    if hello["mode"] != "lockstep":
        # a real-time server wants `command` messages paced by its `state` topic instead
        print("error: this example drives a lockstep server (robocell serve --mode lockstep)")
        return 1
    for name, r in hello["robots"].items():
        lim = r["limits"]
        print(f"robot {name}: {r['model']}, {r['dof']} joints, modes {r['command_modes']}")
        print(f"  {'joint':<22}{'lower':>9}{'upper':>9}{'vel':>8}{'acc':>8}{'effort':>8}")
        for j, jname in enumerate(r["joints"]):
            print(
                f"  {jname:<22}{lim['lower'][j]:9.3f}{lim['upper'][j]:9.3f}"
                f"{lim['velocity'][j]:8.3f}{lim['acceleration'][j]:8.2f}{lim['effort'][j]:8.1f}"
            )
    if ROBOT not in hello["robots"]:
        print(f"error: no robot '{ROBOT}' in this cell ({', '.join(hello['robots'])})")
        return 1
    robot = hello["robots"][ROBOT]
    dof = robot["dof"]
    period = robot["control_period"]  # this robot's own rate (cells may be multi-rate)
    obs = hello["observation"]
    q_start = list(obs["robots"][ROBOT]["q"])
    print(f"t = {obs['t']:.3f} s, tick {obs['tick']}: {ROBOT} q = {_fmt(q_start)}")

    # -- 2. an error reply -----------------------------------------------------------------
    # A request is all-or-nothing: this step carries one joint too few, so it is refused
    # whole and the clock does not move.
    try:
        bridge.request("step", commands={ROBOT: {"mode": "position", "values": q_start[:-1]}})
        print("error: the server accepted a command with the wrong joint count")
        return 1
    except BridgeError as err:
        print(f"error reply as expected: code={err.code} field={err.field} message={err.message!r}")
    t_after = bridge.request("state")["t"]
    print(f"t = {t_after:.3f} s: the refused step advanced nothing")

    # -- 3. plan the move within the limits from hello -------------------------------------
    lower, upper = robot["limits"]["lower"][JOINT], robot["limits"]["upper"][JOINT]
    v_max = robot["limits"]["velocity"][JOINT]
    a_max = robot["limits"]["acceleration"][JOINT]
    q0 = q_start[JOINT]
    amp = AMPLITUDE_RAD if q0 + AMPLITUDE_RAD <= upper else -AMPLITUDE_RAD
    if not lower <= q0 + amp <= upper:
        print(f"error: joint {JOINT + 1} cannot move {AMPLITUDE_RAD} rad within its limits")
        return 1
    # Each half of the move takes half_s, stretched if its peak velocity or acceleration would
    # pass LIMIT_SHARE of the limits. (Commands beyond the limits are not refused: the server
    # clamps them and reports a `limit` event, and the robot no longer follows the plan.)
    half_s = max(
        seconds / 2,
        MIN_JERK_PEAK_DS * abs(amp) / (LIMIT_SHARE * v_max),
        math.sqrt(MIN_JERK_PEAK_DDS * abs(amp) / (LIMIT_SHARE * a_max)),
    )
    if half_s > seconds / 2:
        print(f"(--seconds {seconds:g} is too fast for the limits: stretched to {2 * half_s:.3f})")
    # whole control ticks: the turn point falls exactly on a tick
    half_ticks = max(1, math.ceil(half_s / period - 1e-9))
    half_s = half_ticks * period
    peak_v = MIN_JERK_PEAK_DS * abs(amp) / half_s
    peak_a = MIN_JERK_PEAK_DDS * abs(amp) / half_s**2
    print(
        f"moving joint {JOINT + 1} from {q0:+.3f} to {q0 + amp:+.3f} rad and back in "
        f"{2 * half_s:g} s: peak {peak_v:.3f} rad/s ({peak_v / v_max:.0%} of its limit), "
        f"{peak_a:.2f} rad/s^2 ({peak_a / a_max:.0%})"
    )

    # -- 4. drive it, one step per control tick ----------------------------------------------
    # The command sent with the observation at time t applies from t to t + period: `values`
    # is the setpoint at t, `velocity` the feed-forward the drive interpolates along until the
    # next tick. All other joints hold their start positions (velocity 0).
    q_cmd = list(q_start)
    dq_cmd = [0.0] * dof
    t0 = obs["t"]
    turn_q = math.nan
    worst_error = 0.0
    print(f"{'t [s]':>8}{'q1 plan':>10}{'q1 meas':>10}{'dq1 meas':>10}")
    for k in range(2 * half_ticks + 1):
        q_cmd[JOINT], dq_cmd[JOINT] = out_and_back(k * period, half_s, q0, amp)
        obs = bridge.request(
            "step",
            commands={ROBOT: {"mode": "position", "values": q_cmd, "velocity": dq_cmd}},
        )
        # the reply is the observation one tick later: compare it with the plan at that time
        st = obs["robots"][ROBOT]
        q_plan, _ = out_and_back(obs["t"] - t0, half_s, q0, amp)
        worst_error = max(worst_error, abs(st["q"][JOINT] - q_plan))
        if k + 1 == half_ticks:
            turn_q = st["q"][JOINT]
        for ev in obs["events"]:  # e.g. a `limit` event if a command had to be clamped
            print(f"  event at t = {ev['t']:.3f} s: {ev}")
        if obs["faults"].get(ROBOT):
            print(f"error: {ROBOT} faulted: {obs['faults'][ROBOT]}")
            return 1
        if k % max(1, half_ticks // 4) == 0:
            print(
                f"{obs['t'] - t0:8.3f}{q_plan:10.4f}{st['q'][JOINT]:10.4f}{st['dq'][JOINT]:10.4f}"
            )

    # Hold the final setpoint (feed-forward 0) for SETTLE_S. Without an interface profile one
    # step of many ticks does it: the command is sent once and held for every tick. Under a
    # profile each tick without a fresh command is a missed period (too many fault the robot,
    # as on the real controller), so there the command is repeated every tick.
    settle = max(1, round(SETTLE_S / period))
    hold = {ROBOT: {"mode": "position", "values": q_start, "velocity": [0.0] * dof}}
    if hello["profile"] is None:
        obs = bridge.request("step", commands=hold, ticks=settle)
    else:
        for _ in range(settle):
            obs = bridge.request("step", commands=hold)
    q_end = obs["robots"][ROBOT]["q"]
    final_q = q_end[JOINT]
    print(f"after {settle} more ticks, t = {obs['t']:.3f} s: {ROBOT} q = {_fmt(q_end)}")

    # -- 5. finish: the session ends, the KPIs are final ------------------------------------
    fin = bridge.request("finish")
    kpis = fin["kpis"]
    # A simulated cell reports these; a one-robot RobotServer fewer (duration, events, limit
    # violations). Throughput KPIs (cycles, pick_and_place) exist only when the cell counts
    # cycles or parts. Never assume a KPI is there, and ignore the ones you do not know.
    print(f"duration          {kpis['duration_s']:.3f} s")
    if "energy_j" in kpis:
        print(f"energy            {kpis['energy_j']:.2f} J")
    rk = kpis.get("robots", {}).get(ROBOT)
    if rk is not None:
        print(
            f"peak joint speed  {rk['peak_joint_speed_share']:.0%} of the limit "
            f"(joint {rk['peak_joint_speed_joint']})"
        )
    if "cycles" in kpis:
        print(f"cycles            {kpis['cycles']} (mean {kpis['cycle_time_s']:.3f} s)")
    if "pick_and_place" in kpis:
        print(f"pick and place    {json.dumps(kpis['pick_and_place'])}")
    bridge_rep = fin["bridge"]
    print(
        f"session           {bridge_rep['ticks']} ticks, {bridge_rep['messages']} messages, "
        f"errors {bridge_rep['errors']}"
    )

    result = {
        "joint": JOINT + 1,
        "start_rad": q0,
        "target_rad": q0 + amp,
        "turn_rad": turn_q,
        "final_rad": final_q,
        "turn_error_rad": abs(turn_q - (q0 + amp)),
        "final_error_rad": abs(final_q - q0),
        "tracking_error_max_rad": worst_error,
    }
    result["reached"] = max(result["turn_error_rad"], result["final_error_rad"]) < TOLERANCE_RAD
    print("RESULT " + json.dumps(result))
    return 0


def _fmt(q: list[float]) -> str:
    return "[" + ", ".join(f"{x:+.3f}" for x in q) + "]"


if __name__ == "__main__":
    sys.exit(main())
