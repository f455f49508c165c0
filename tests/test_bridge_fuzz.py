"""Fuzz the bridge server: thousands of random and malformed requests, each answered.

A lockstep SimServer serving ``cycle_test.yaml`` gets more than 10,000 requests from a raw DEALER
and a raw REQ socket: valid ones (which must succeed), and garbage bytes, truncated MessagePack,
wrong top-level types, non-string keys, every field of every message type with a wrong type or a
bad value, missing fields, NaN/inf, wrong joint counts, bad ``ticks``, oversized messages, unknown
versions/robots/signals/types, deep nesting, extension types, several and empty frames, binary
where strings belong, very long strings and odd ids. Every request must get exactly one reply: a
map with ``ok: false`` and a documented code (never ``E_INTERNAL``), the code the reference
(docs/bridge-protocol.md) gives for that fault, the request's ``id`` when it had a valid one, and
a short message. A small model of the session (who owns the robot, each client's role, the tick)
says what the valid requests must answer. A well-behaved :class:`Client`, connected all along,
checks ownership now and then and can ``hello``/``step``/``state`` in the middle and at the end;
the server's message and error counters must add up.

``command`` is only read in real time, so a shorter real-time run fuzzes its fields. A message
beyond ZeroMQ's hard limit (16 MiB) gets no reply by design: its own test checks that it drops
only its own connection. The tests at the end pin the bugs the fuzzing found; a bug still open is
a strict xfail (it fails once fixed: then drop the marker and its ``OPEN_SERVER_BUGS`` entry,
which keeps the fuzzer away from its inputs meanwhile).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from conftest import ServerThread

from robocell.bridge.client import Client, observation
from robocell.bridge.protocol import ERROR_CODES, HARD_MAX_MESSAGE, MAX_MESSAGE
from robocell.bridge.server import SimServer
from robocell.cell.build import cell_from_scenario
from robocell.control.controller import Commands
from robocell.errors import BridgeError
from robocell.robot.interface import JointCommand
from robocell.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "tcp://127.0.0.1:0"
SEED = 20250611
#: fuzz requests of the lockstep run (the well-behaved client's come on top)
N_FUZZ = 10_400
#: fuzz requests of the real-time run
N_REALTIME = 1500
#: a request without a reply within this long fails the test [ms]
REPLY_TIMEOUT_MS = 5000
#: the whole lockstep run must take less than this [s, wall clock]
WALL_LIMIT_S = 120.0
#: signals added to the cell so that signal writes of each kind can be fuzzed
SIGNALS: dict[str, Any] = {"fuzz.flag": False, "fuzz.level": 0.0, "fuzz.label": ""}
DOF = 6

#: bugs this fuzzer found that are still open: it avoids their inputs meanwhile (each has a
#: strict-xfail test below)
OPEN_SERVER_BUGS: frozenset[str] = frozenset()

NOT_A_BUG = frozenset(ERROR_CODES) - {"E_INTERNAL"}


# -- servers -----------------------------------------------------------------------------------


def _server(mode: str = "lockstep", **kw: Any) -> SimServer:
    cell = cell_from_scenario(load_scenario(ROOT / "scenarios" / "cycle_test.yaml"))
    cell.signals.update(SIGNALS)
    return SimServer(cell, bind=LOCAL, mode=mode, idle_timeout=30, **kw)


@contextmanager
def _sockets(endpoint: str, *kinds: int) -> Iterator[list[zmq.Socket]]:
    ctx = zmq.Context()
    socks = []
    try:
        for kind in kinds:
            s = ctx.socket(kind)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, REPLY_TIMEOUT_MS)
            s.connect(endpoint)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close(0)
        ctx.term()


def _ask(sock: zmq.Socket, msg: Any) -> dict[str, Any]:
    """One request (a message, or its bytes) and its decoded reply."""
    sock.send(msg if isinstance(msg, bytes) else _pack(msg))
    return msgpack.unpackb(sock.recv_multipart()[-1], raw=False, strict_map_key=False)


# -- values ------------------------------------------------------------------------------------
_PACK = msgpack.Packer(use_bin_type=True)
_PACK_F32 = msgpack.Packer(use_bin_type=True, use_single_float=True)


def _pack(msg: Any, single_float: bool = False) -> bytes:
    """``msg`` as MessagePack; with ``single_float`` floats as float32 where they fit."""
    if single_float:
        try:
            return _PACK_F32.pack(msg)
        except OverflowError:
            pass
    return _PACK.pack(msg)


def _nested(depth: int, leaf: Any, as_map: bool) -> Any:
    x = leaf
    for _ in range(depth):
        x = {"a": x} if as_map else [x]
    return x


def _raw_deep(depth: int) -> bytes:
    """A list nested ``depth`` deep as bytes (too deep for the packer to write)."""
    return b"\x91" * depth + b"\xc0"


def _with_raw_field(msg: dict[str, Any], key: str, raw: bytes) -> bytes:
    """``msg`` (fewer than 15 entries) plus ``key`` whose value is the raw bytes ``raw``."""
    body = _pack(msg)
    assert body[0] == 0x80 + len(msg) and len(msg) < 15
    return bytes([body[0] + 1]) + body[1:] + _pack(key) + raw


NAN, INF = math.nan, math.inf
LONG = "é" * 20_000
DEEP_LIST = _nested(900, 1, as_map=False)
DEEP_MAP = _nested(900, 1, as_map=True)
#: sample values by MessagePack kind; ``wrong(ok)`` picks from the kinds a field does not accept
KINDS: dict[str, list[Any]] = {
    "nil": [None],
    "bool": [True, False],
    "int": [0, 1, -1, 7, 2**64 - 1, -(2**63)],
    "float": [0.5, 1.0, -0.0, 1e300, 5e-324],
    "nonfinite": [NAN, INF, -INF],
    "str": ["", "x", "1", "position", "r1", "é☃\x00", LONG],
    "bin": [b"", b"r1", b"\xff\xfe", b"position"],
    "list": [[], [1], [None], [[[]]], [0.0] * DOF],
    "map": [{}, {"a": 1}, {1: 2}, {"mode": "position"}],
    "ext": [msgpack.ExtType(5, b"abc"), msgpack.ExtType(127, bytes(16)), msgpack.Timestamp(1, 0)],
    "deep_list": [DEEP_LIST],
    "deep_map": [DEEP_MAP],
}
NUMBER = {"int", "float", "nonfinite"}
UNKNOWN_NAMES = ["r2", "", "R1", "r1 ", "r1\x00", "é", "x" * 5000]
UNKNOWN_TYPES = ["", "HELLO", "pingg", "hello\x00", "step ", "error", "_h_step", "__init__", LONG]
UNHASHABLE_KEY_MAP = b"\x81\x91\x01\x01"  # {[1]: 1}
BAD_TIMESTAMP = b"\xd4\xff\x00"  # ext -1 (timestamp) with 1 byte of data


# -- the model and the generator ---------------------------------------------------------------
@dataclass
class Case:
    """One request: its frames, and what its reply must be."""

    frames: list[bytes]
    label: str
    kind: str = ""  # the request's type, when it has one
    expect: frozenset[str] | None = None  # accepted error codes; None: must succeed
    rid: Any = None  # the id the reply must echo (None: no id)
    effect: Callable[[], None] | None = None  # the session model's change on success
    ticks: int = 0  # control ticks a successful step advances
    ok: bool = False  # with ``expect``: success is accepted too


@dataclass
class Session:
    """What the server should believe: the robot's owner, each client's role, the tick."""

    owner: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    tick: int = 0

    def role(self, who: str) -> str:
        return self.roles.get(who, "controller")


class Fuzzer:
    """Makes requests from one seeded generator, each with the reply it must get."""

    def __init__(self, rng: np.random.Generator, q0: list[float], session: Session) -> None:
        self.rng = rng
        self.q0 = q0
        self.s = session

    # random helpers
    def pick(self, seq: Any) -> Any:
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def wrong(self, ok: set[str]) -> Any:
        return self.pick(KINDS[self.pick([k for k in KINDS if k not in ok])])

    def short_str(self, n: int = 12) -> str:
        return "".join(self.pick("abcxyz01_-é☃ ") for _ in range(int(self.rng.integers(n + 1))))

    def valid_id(self) -> Any:
        return self.pick(
            [
                int(self.rng.integers(-(2**40), 2**40)),
                0,
                2**64 - 1,
                -(2**63),
                self.short_str(20),
                "é" * 64,
            ]
        )

    def floats(self, n: int, scale: float, center: list[float] | None = None) -> list[Any]:
        v = self.rng.uniform(-scale, scale, n) + (np.asarray(center) if center else 0.0)
        out: list[Any] = v.tolist()
        if self.chance(0.1):
            out = [round(x) for x in out]  # integers are numbers too
        if self.chance(0.03) and "huge_targets" not in OPEN_SERVER_BUGS:
            out = [1e308, -1e308, 1e308, 0.0, 5e-324, -0.0][:n]
        elif self.chance(0.03):
            out = [1e300, -1e300, 5e-324, -0.0, 3, -3][:n]  # far beyond the limits: clamped
        return out

    # valid parts
    def command(self, mode: str | None = None) -> dict[str, Any]:
        mode = mode or self.pick(["position", "position", "velocity", "torque"])
        if mode == "position":
            cmd: dict[str, Any] = {"mode": mode, "values": self.floats(DOF, 0.3, self.q0)}
            if self.chance(0.3):
                cmd["velocity"] = self.floats(DOF, 0.5)
            elif self.chance(0.1):
                cmd["velocity"] = None
            return cmd
        return {"mode": mode, "values": self.floats(DOF, 0.2 if mode == "velocity" else 5.0)}

    def signals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.chance(0.6):
            out["fuzz.flag"] = self.chance(0.5)
        if self.chance(0.6):
            out["fuzz.level"] = self.pick([0, -3, 2.5, 1e300, 2**64 - 1, -0.0])
        if self.chance(0.6):
            out["fuzz.label"] = self.pick(["", "on", "é☃", "x" * 300])
        return out

    def marker(self) -> dict[str, Any]:
        kind = self.pick(["m", "cycle", "pick", "é", "k" * 64])
        m: dict[str, Any] = {"kind": kind}
        if kind == "cycle":
            if self.chance(0.5):
                m["data"] = {"cycle_time_s": self.pick([1.5, 0, 2])}
        elif self.chance(0.7):
            m["data"] = self.pick(
                [
                    None,
                    {},
                    {"x": 1, "s": "a", "l": [1, 2.5], "m": {"a": "b"}, "n": None},
                    {"big": 2**64 - 1, "f": -1e300, "é": "☃" * 100, "d": {"a": {"b": [1]}}},
                ]
            )
        return m

    def base(self, kind: str) -> dict[str, Any]:
        """A valid request of ``kind``."""
        msg: dict[str, Any] = {"v": 1, "type": kind}
        if kind == "hello":
            if self.chance(0.7):
                msg["versions"] = self.pick([[1], [1, 2], [3, 1], [1, 1, 1], [2**64 - 1, 1]])
                if self.chance(0.2):
                    msg["v"] = self.wrong(set())  # v is not read when versions are given
                else:
                    del msg["v"]
            if self.chance(0.5):
                msg["client"] = self.pick([self.short_str(), None, "c" * 500])
            if self.chance(0.5):
                msg["role"] = self.pick([None, "controller", "controller", "observer"])
        elif kind in ("claim", "release", "clear_fault"):
            if self.chance(0.6):
                msg["robots"] = self.pick([["r1"], [], ["r1", "r1"], None])
            if kind == "claim" and self.chance(0.5):
                msg["takeover"] = self.pick([True, False, None])
        elif kind in ("step", "command"):
            if kind == "step" and self.chance(0.6):
                msg["ticks"] = self.pick([1, 2, 3, None])
            if kind == "command" and self.chance(0.5):
                msg["tick"] = self.pick([0, 5, -1, 2**63 - 1, None])
            if self.chance(0.6):
                msg["commands"] = {"r1": self.command()}
            if self.chance(0.3):
                msg["signals"] = self.signals()
            if self.chance(0.2):
                msg["markers"] = [self.marker() for _ in range(int(self.rng.integers(3)))]
            if self.chance(0.1):
                msg["done"] = self.pick([True, False, None])
        if self.chance(0.6):
            msg["id"] = self.valid_id()
        return msg

    # what a valid request must answer
    def outcome(self, who: str, msg: dict[str, Any]) -> tuple[frozenset[str] | None, Any, int]:
        """(accepted error codes or None for success, effect on success, ticks advanced)."""
        s, kind = self.s, msg["type"]
        role, owner = s.role(who), s.owner
        names = msg.get("robots") if msg.get("robots") is not None else ["r1"]
        other = owner not in (None, who)
        if kind == "hello":
            return None, lambda: s.roles.__setitem__(who, msg.get("role") or "controller"), 0
        if kind == "bye":

            def bye() -> None:
                s.roles.pop(who, None)
                if s.owner == who:
                    s.owner = None

            return None, bye, 0
        if kind == "claim":
            if role == "observer":
                return frozenset({"E_MODE"}), None, 0
            if other and "r1" in names:
                return frozenset({"E_NOT_OWNER"}), None, 0
            return None, (lambda: setattr(s, "owner", who)) if "r1" in names else None, 0
        if kind == "release":
            if owner == who and "r1" in names:
                return None, lambda: setattr(s, "owner", None), 0
            return None, None, 0
        if kind == "clear_fault":
            return (frozenset({"E_NOT_OWNER"}) if other and "r1" in names else None), None, 0
        if kind == "step":
            if role == "observer":
                return frozenset({"E_MODE"}), None, 0
            if other:
                return frozenset({"E_NOT_OWNER"}), None, 0
            ticks = msg.get("ticks") or 1
            if msg.get("commands"):
                return None, lambda: setattr(s, "owner", who), ticks
            return None, None, ticks
        if kind == "command":
            return frozenset({"E_MODE"}), None, 0  # a lockstep server
        return None, None, 0  # ping, state, kpis

    # the cases
    def case(self) -> tuple[str, Case]:
        """Who sends (the DEALER ``A`` or the REQ ``B``) and what."""
        who = "B" if self.chance(0.25) else "A"
        r = self.rng.random()
        if r < 0.22:
            kind = self.kind()
            return (who := self.sender(who, kind)), self.valid_case(who, kind, who == "A")
        if r < 0.62:
            kind = self.pick(["hello", "hello", "claim", "release", "clear_fault", "command"])
            kind = self.pick([kind, "step", "step"])
            return (who := self.sender(who, kind)), self.field_case(who, kind)
        if r < 0.76:
            return who, self.envelope_case()
        if r < 0.94 or who == "B":
            return who, self.bytes_case()
        return who, self.frames_case()

    def sender(self, who: str, kind: str) -> str:
        """Mostly a client that may step (else ownership and roles would hide the fields'
        checks behind E_NOT_OWNER and E_MODE); now and then anyone."""
        if kind != "step" or self.chance(0.1):
            return who
        fit = [w for w in (who, "A", "B") if self.s.role(w) != "observer"]
        fit = [w for w in fit if self.s.owner in (None, w)]
        return fit[0] if fit else who

    def kind(self, weights: str = "valid") -> str:
        if weights == "valid":
            return self.pick(
                ["step"] * 8
                + ["hello", "hello", "ping", "ping", "state", "state", "kpis"]
                + ["claim", "claim", "release", "release", "clear_fault", "bye"]
            )
        return self.pick(
            ["hello", "ping", "claim", "release", "step", "step", "command", "state"]
            + ["clear_fault", "kpis", "finish", "bye"]
        )

    def valid_case(self, who: str, kind: str, dealer: bool) -> Case:
        msg = self.base(kind)
        label = f"valid {msg['type']}"
        if self.chance(0.2):  # fields a server does not know are ignored, whatever they hold
            for _ in range(int(self.rng.integers(1, 4))):
                msg[self.pick(["junk", "V", "Type", "ID", "x" * 70, "é"])] = self.wrong(set())
            label += " with unknown fields"
        expect, effect, ticks = self.outcome(who, msg)
        frame = _pack(msg, single_float=self.chance(0.2))
        frames = [b"", frame] if dealer and self.chance(0.3) else [frame]
        return Case(frames, label, msg["type"], expect, msg.get("id"), effect, ticks)

    def _case(self, msg: dict[str, Any], label: str, codes: str | set[str]) -> Case:
        """A request that must be refused with one of ``codes``."""
        expect = frozenset({codes} if isinstance(codes, str) else codes)
        return Case([_pack(msg)], label, str(msg.get("type")), expect, msg.get("id"))

    def field_case(self, who: str, kind: str) -> Case:
        """One field of a request made wrong: its type, its value, or missing."""
        msg = self.base(kind)
        if kind == "hello":
            label, code = self.bad_hello(msg)
        elif kind in ("claim", "release", "clear_fault"):
            label, code = self.bad_robots(msg)
        else:
            label, code, order = self.bad_step(msg)
            if kind == "command":
                code = "E_MODE"  # a lockstep server refuses command before reading it
            elif self.s.role(who) == "observer":
                code = "E_MODE"
            elif order != "ticks" and self.s.owner not in (None, who):
                code = "E_NOT_OWNER"
        return self._case(msg, f"{kind}: {label}", code)

    def bad_hello(self, msg: dict[str, Any]) -> tuple[str, str]:
        r = self.int(7)
        msg.setdefault("versions", [1])
        if r == 0:
            msg["versions"] = self.wrong({"nil", "list", "deep_list"})
            return "versions of a wrong type", "E_BAD_TYPE"
        if r == 1:
            msg["versions"] = [1, self.wrong({"int"})]
            return "a version that is no integer", "E_BAD_TYPE"
        if r == 2:
            msg["versions"] = self.pick([[], [0], [2], [2, 3], [-1], [2**64 - 1], [7] * 5000])
            return "no common version", "E_VERSION"
        if r == 3:
            msg.pop("v", None)
            msg["versions"] = self.pick([None, "absent"])
            if msg["versions"] == "absent":
                del msg["versions"]
            return "neither versions nor v", "E_VERSION"
        if r == 4:
            msg["client"] = self.wrong({"nil", "str"})
            return "client of a wrong type", "E_BAD_TYPE"
        if r == 5:
            msg["role"] = self.wrong({"nil", "str"})
            return "role of a wrong type", "E_BAD_TYPE"
        msg["role"] = self.pick(["", "admin", "Controller", "observer ", LONG])
        return "unknown role", "E_BAD_VALUE"

    def bad_robots(self, msg: dict[str, Any]) -> tuple[str, str]:
        r = self.int(4 if msg["type"] == "claim" else 3)
        if r == 0:
            msg["robots"] = self.wrong({"nil", "list", "deep_list"})
            return "robots of a wrong type", "E_BAD_TYPE"
        if r == 1:
            msg["robots"] = ["r1", self.wrong({"str"})]
            return "a robot name that is no string", "E_BAD_TYPE"
        if r == 2:
            msg["robots"] = ["r1", self.pick(UNKNOWN_NAMES)]
            return "unknown robot", "E_UNKNOWN_ROBOT"
        msg["robots"] = ["r1"]
        msg["takeover"] = self.wrong({"nil", "bool"})
        return "takeover of a wrong type", "E_BAD_TYPE"

    def int(self, n: int) -> int:
        return int(self.rng.integers(n))

    def bad_step(self, msg: dict[str, Any]) -> tuple[str, str | set[str], str]:
        """A step or command with one bad field: (label, code, which part: ticks, commands,
        extras)."""
        r = self.int(10)
        if r == 0:
            if msg["type"] == "command":
                msg["tick"] = self.wrong({"nil", "int"})
                return "tick of a wrong type", "E_BAD_TYPE", "tick"
            if self.chance(0.5):
                msg["ticks"] = self.wrong({"nil", "int"})
                return "ticks of a wrong type", "E_BAD_TYPE", "ticks"
            msg["ticks"] = self.pick([0, -1, -(2**63), 1_000_001, 2**63, 2**64 - 1])
            return "ticks out of range", "E_BAD_VALUE", "ticks"
        if r <= 5:
            label, code = self.bad_commands(msg)
            return label, code, "commands"
        label, code = self.bad_extras(msg)
        return label, code, "extras"

    def bad_commands(self, msg: dict[str, Any]) -> tuple[str, str]:
        r = self.int(8)
        cmds = msg.setdefault("commands", {"r1": self.command()}) or {}
        msg["commands"] = cmds
        cmd = cmds.setdefault("r1", self.command())
        if r == 0:
            msg["commands"] = self.wrong({"nil", "map", "deep_map"})
            return "commands of a wrong type", "E_BAD_TYPE"
        if r == 1:
            cmds[self.pick([*UNKNOWN_NAMES, 1, 1.5, b"r1", None, msgpack.ExtType(1, b"r1")])] = cmd
            return "command for an unknown robot", "E_UNKNOWN_ROBOT"
        if r == 2:
            cmds["r1"] = self.wrong({"map", "deep_map"})
            return "a command that is no map", "E_BAD_TYPE"
        if r == 3:
            name = self.pick(["mode", "values"])
            del cmd[name]
            return f"no {name}", "E_MISSING_FIELD"
        if r == 4:
            if self.chance(0.5):
                cmd["mode"] = self.wrong({"str"})
                return "mode of a wrong type", "E_BAD_TYPE"
            cmd["mode"] = self.pick(["", "Position", "pos", "effort", "position ", LONG])
            return "unknown mode", "E_BAD_VALUE"
        if r == 5 and cmd["mode"] != "position":
            cmd["velocity"] = self.floats(DOF, 0.1)
            return f"velocity with a {cmd['mode']} command", "E_BAD_VALUE"
        key = "velocity" if r == 5 else "values"
        if r == 5:
            cmd["velocity"] = self.floats(DOF, 0.1)
        vec = cmd[key]
        r = self.int(4)
        if r == 0:
            cmd[key] = self.wrong({"list", "deep_list"} | ({"nil"} if key == "velocity" else set()))
            return f"{key} of a wrong type", "E_BAD_TYPE"
        if r == 1:
            n = self.pick([0, 1, DOF - 1, DOF + 1, 12, 1000])
            cmd[key] = (vec * 200)[:n]
            return f"{n} {key} for {DOF} joints", "E_JOINT_COUNT"
        i = self.int(DOF)
        if r == 2:
            vec[i] = self.wrong(NUMBER)
            return f"{key}[{i}] of a wrong type", "E_BAD_TYPE"
        vec[i] = self.pick(KINDS["nonfinite"])
        return f"{key}[{i}] = {vec[i]}", "E_BAD_VALUE"

    def bad_extras(self, msg: dict[str, Any]) -> tuple[str, str | set[str]]:
        r = self.int(15)
        if r == 0:
            msg["signals"] = self.wrong({"nil", "map", "deep_map"})
            return "signals of a wrong type", "E_BAD_TYPE"
        if r == 1:
            msg["signals"] = {self.pick([*UNKNOWN_NAMES, "R1.FAULT", 1, b"fuzz.flag", None]): 1}
            return "unknown signal", "E_UNKNOWN_SIGNAL"
        if r == 2:
            msg["signals"] = {"r1.fault": self.pick([True, False, 1, "x"])}
            return "writing the server's r1.fault", "E_MODE"
        name = self.pick(list(SIGNALS))
        if r == 3:
            msg["signals"] = {name: self.wrong({"bool", "str"} | NUMBER)}
            return f"{name} of a wrong type", "E_BAD_TYPE"
        if r == 4:
            msg["signals"] = {name: self.pick(KINDS["nonfinite"])}
            return f"{name} not finite", "E_BAD_VALUE"
        if r == 5:
            other = {
                "fuzz.flag": [1, 0, 0.5, "on"],
                "fuzz.level": [True, "3"],
                "fuzz.label": [True, 1, 2.5],
            }
            msg["signals"] = {name: self.pick(other[name])}
            return f"{name} changing its type", "E_BAD_TYPE"
        if r == 6:
            msg["markers"] = self.wrong({"nil", "list", "deep_list"})
            return "markers of a wrong type", "E_BAD_TYPE"
        if r == 7:
            msg["markers"] = [self.marker(), self.wrong({"map", "deep_map"})]
            return "a marker that is no map", "E_BAD_TYPE"
        if r == 8:
            msg["markers"] = [{"data": {"x": 1}}]
            return "a marker without kind", "E_MISSING_FIELD"
        if r == 9:
            msg["markers"] = [{"kind": self.wrong({"str"})}]
            return "a marker kind of a wrong type", "E_BAD_TYPE"
        if r == 10:
            msg["markers"] = [{"kind": "m", "data": self.wrong({"nil", "map", "deep_map"})}]
            return "marker data of a wrong type", "E_BAD_TYPE"
        if r == 11:
            msg["markers"] = [{"kind": self.pick(["", "k" * 65, LONG])}]
            return "a marker kind that is empty or too long", "E_BAD_VALUE"
        if r <= 13:
            return self.bad_marker_data(msg)
        msg["done"] = self.wrong({"nil", "bool"})
        return "done of a wrong type", "E_BAD_TYPE"

    def bad_marker_data(self, msg: dict[str, Any]) -> tuple[str, set[str]]:
        """Marker data that cannot become an event (whose fields are JSON in recordings)."""
        marker = self.marker()
        data = marker["data"] = dict(marker.get("data") or {})
        msg["markers"] = [marker]
        refused = {"E_BAD_TYPE", "E_BAD_VALUE"}
        r = self.int(7)
        if r == 0:
            data[self.pick([1, b"x", None, 1.5, True])] = 1
            return "marker data with a key that is no string", refused
        if r == 1:
            data[self.pick(["t", "kind"])] = 1
            return "marker data overriding the event's t or kind", refused
        key = self.pick(["x", "é" * 70, LONG])  # (a long key must not make a long message)
        if "long_marker_keys" in OPEN_SERVER_BUGS:
            key = key[:70]
        if r == 2:
            data[key] = self.pick([b"\x00", *KINDS["ext"], [1, b""], {key: b""}])
            return "marker data that is not plain (binary, extension)", refused
        if r == 3:
            data[key] = self.pick([*KINDS["nonfinite"], [1.0, NAN], {key: INF}])
            return "marker data not finite", {"E_BAD_VALUE"}
        if r == 4:
            data["x"] = self.pick([DEEP_LIST, DEEP_MAP, _nested(12, 1, self.chance(0.5))])
            return "marker data nested deep", {"E_BAD_VALUE"}
        if r == 5:
            data["x"] = self.pick([list(range(5000)), {f"k{i}": i for i in range(2000)}])
            return "marker data with thousands of values", {"E_BAD_VALUE"}
        marker["kind"] = "cycle"
        data["cycle_time_s"] = self.pick(["abc", "1.5", -1.0, True, [1], {}])
        return "a marker's cycle_time_s that is no duration", refused

    def envelope_case(self) -> Case:
        """A bad ``id``, ``v`` or ``type`` on any request."""
        msg = self.base(self.kind("any"))
        msg["v"] = 1
        if self.chance(0.2):
            msg.pop("versions", None)
        r = self.int(3)
        if r == 0:
            msg["id"] = self.pick([self.wrong({"nil", "int", "str"}), "i" * 65, LONG])
            case = self._case(msg, f"{msg['type']}: id of a wrong type", {"E_BAD_TYPE"})
            case.rid = None  # an invalid id is not echoed
            return case
        if r == 1 and msg["type"] != "hello":
            if self.chance(0.3):
                msg["v"] = self.pick([None, "absent"])
                if msg["v"] == "absent":
                    del msg["v"]
            elif self.chance(0.5):
                msg["v"] = self.pick([0, 2, -1, 2**64 - 1, -(2**63)])
            else:
                msg["v"] = self.wrong({"int", "nil"})
            return self._case(msg, f"{msg['type']}: bad version", {"E_VERSION"})
        r = self.int(3)
        if r == 0:
            if self.chance(0.5):
                del msg["type"]
            else:
                msg["type"] = None
            return self._case(msg, "no type", {"E_MISSING_FIELD"})
        if r == 1:
            msg["type"] = self.wrong({"nil", "str"})
            return self._case(msg, "type of a wrong type", {"E_BAD_TYPE"})
        msg["type"] = self.pick(UNKNOWN_TYPES)
        return self._case(msg, "unknown type", {"E_UNKNOWN_TYPE"})

    def bytes_case(self) -> Case:
        """A frame that is not a map with string keys."""
        good = _pack(self.base(self.kind("any")))
        r = self.int(9)
        if r == 0:
            junk = self.rng.bytes(int(self.rng.integers(0, 300)))
            return Case([junk], "garbage bytes", expect=NOT_A_BUG)
        if r == 1:
            return Case([good[: self.int(len(good))]], "truncated", expect=frozenset({"E_DECODE"}))
        if r == 2:
            junk = self.rng.bytes(int(self.rng.integers(1, 10)))
            return Case([good + junk], "trailing bytes", expect=frozenset({"E_DECODE"}))
        if r == 3:
            frame = self.pick(
                [
                    b"\x82\xa1v\x01\xa4type\xa2\xff\xfe",  # type: invalid UTF-8
                    b"\x81\xa2\xc3\x28\x01",  # a key of invalid UTF-8
                    BAD_TIMESTAMP,
                    _with_raw_field({"v": 1, "type": "ping"}, "junk", BAD_TIMESTAMP),
                    _raw_deep(int(self.rng.integers(1025, 5000))),
                    _with_raw_field({"v": 1, "type": "ping"}, "junk", _raw_deep(1100)),
                ]
            )
            return Case([frame], "undecodable MessagePack", expect=frozenset({"E_DECODE"}))
        if r == 4:
            top = self.pick([*[v for k in KINDS.values() for v in k if not isinstance(v, dict)]])
            if self.chance(0.2):
                top = [self.base("ping")]
            return Case([_pack(top)], "not a map", expect=frozenset({"E_NOT_A_MAP"}))
        if r == 5:
            msg: dict[Any, Any] = self.base(self.kind())
            msg[self.pick([1, b"type", None, True, 1.5, msgpack.ExtType(1, b"")])] = 1
            return Case([_pack(msg)], "a key that is no string", expect=frozenset({"E_NOT_A_MAP"}))
        if r == 6:
            msg = {
                k.encode(): (v.encode() if isinstance(v, str) else v)
                for k, v in self.base("ping").items()
            }
            return Case([_pack(msg)], "binary keys", expect=frozenset({"E_NOT_A_MAP"}))
        if r == 7:
            # a key MessagePack decodes as a list (unhashable): not a map with string keys
            frame = self.pick(
                [
                    UNHASHABLE_KEY_MAP,
                    _with_raw_field({"v": 1, "type": "step"}, "signals", UNHASHABLE_KEY_MAP),
                ]
            )
            return Case([frame], "unhashable key", expect=frozenset({"E_DECODE", "E_NOT_A_MAP"}))
        frame = self.pick([b"", b"\xc0", b"\x80", b"\x90", b"\xc1", b"\xff"])
        return Case([frame], f"tiny frame {frame!r}", expect=NOT_A_BUG)

    def realtime_case(self) -> Case:
        """A request to a real-time server from its only client (so never E_NOT_OWNER; but the
        watchdog faults the robot whenever the commands pause: E_FAULT is always possible)."""
        r = self.rng.random()
        if r < 0.3:
            kind = self.pick(["command"] * 6 + ["ping", "state", "kpis", "claim", "clear_fault"])
            msg = self.base(self.pick([kind, kind, kind, "hello", "step"]))
            kind = msg["type"]
            if kind == "hello":
                msg["role"] = "controller"  # (an observer's commands are E_MODE)
            if kind == "step":
                return self._case(msg, "step in real time", {"E_MODE"})
            case = Case([_pack(msg)], f"valid {kind}", kind, rid=msg.get("id"))
            if kind in ("command", "clear_fault"):
                case.expect, case.ok = frozenset({"E_FAULT"}), True
            return case
        if r < 0.75:
            msg = self.base("command")
            label, code, part = self.bad_step(msg)
            codes = {code} if isinstance(code, str) else code
            if part != "commands" and msg.get("commands"):
                codes = codes | {"E_FAULT"}
            return self._case(msg, f"command: {label}", codes)
        if r < 0.87:
            return self.envelope_case()
        if r < 0.95:
            return self.bytes_case()
        return self.frames_case()

    def frames_case(self) -> Case:
        """Several frames, or empty ones (DEALER only)."""
        good = _pack(self.base("ping"))
        frames = self.pick(
            [
                [b""],
                [b"", b""],
                [b""] * 4,
                [good, good],
                [good, b""],
                [b"", good, good],
                [b"", b"", good],
                [good] * int(self.rng.integers(3, 8)),
            ]
        )
        return Case(list(frames), f"{len(frames)} frames", expect=frozenset({"E_DECODE"}))


def _oversized(rng: np.random.Generator) -> list[Case]:
    """Messages at and beyond the size limit (1 MiB)."""

    def ping_of(size: int) -> bytes:
        empty = len(_pack({"v": 1, "type": "ping", "id": 1, "pad": ""}))
        frame = _pack({"v": 1, "type": "ping", "id": 1, "pad": "x" * (size - empty - 4)})
        assert len(frame) == size  # (a str32 header is 4 bytes longer than an empty str's)
        return frame

    big = frozenset({"E_TOO_LARGE"})
    return [
        Case([ping_of(MAX_MESSAGE)], "ping of exactly max_message", "ping", rid=1),
        Case([ping_of(MAX_MESSAGE + 1)], "ping one byte too large", expect=big),
        Case([rng.bytes(MAX_MESSAGE * 3 // 2)], "1.5 MiB of garbage", expect=big),
        Case(
            [
                _pack(
                    {
                        "v": 1,
                        "type": "step",
                        "commands": {"r1": {"mode": "position", "values": [0.0] * 300_000}},
                    }
                )
            ],
            "a 2.7 MB step",
            expect=big,
        ),
        Case(
            [_pack({"type": "hello", "versions": [1], "client": "c" * (4 << 20)})],
            "a 4 MiB hello",
            expect=big,
        ),
        Case(
            [b"", _pack({"v": 1, "type": "ping"}), rng.bytes(2 * MAX_MESSAGE)],
            "several frames, one oversized",
            expect=frozenset({"E_DECODE", "E_TOO_LARGE"}),
        ),
    ]


def _brief(reply: Any) -> str:
    text = repr(reply)
    return text if len(text) < 600 else text[:600] + "..."


# -- checking replies --------------------------------------------------------------------------
class Run:
    """Sends cases and checks their replies; tallies what the server should have counted."""

    def __init__(self, socks: dict[str, zmq.Socket], session: Session) -> None:
        self.socks = socks
        self.s = session
        self.sent = 0
        self.errors: Counter[str] = Counter()

    def send(self, who: str, case: Case) -> dict[str, Any]:
        sock = self.socks[who]
        if sock.socket_type == zmq.REQ:
            assert len(case.frames) == 1
            sock.send(case.frames[0])
        else:
            sock.send_multipart(case.frames)
        self.sent += 1
        where = f"{case.label} from {who}: {[f[:160] for f in case.frames]!r:.1200}"
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            raise AssertionError(f"no reply to {where}") from None
        if sock.socket_type == zmq.DEALER:
            delimited = len(case.frames) >= 2 and case.frames[0] == b""
            assert len(frames) == 1 + delimited and (not delimited or frames[0] == b""), where
        reply = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
        self.check(reply, case, where, len(frames[-1]))
        return reply

    def check(self, reply: Any, case: Case, where: str, size: int) -> None:
        assert isinstance(reply, dict) and reply.get("v") == 1, where
        if case.rid is not None:
            assert reply.get("id") == case.rid, where
        else:
            assert "id" not in reply, where
        if reply.get("ok") is not True:
            code = reply.get("code")
            self.errors[code] += 1
            assert reply.get("ok") is False and reply.get("type") == "error", where
            assert code in ERROR_CODES and code != "E_INTERNAL", f"{where}: {_brief(reply)}"
            assert case.expect is not None, f"{where} was refused: {_brief(reply)}"
            assert code in case.expect, f"{where}: not {sorted(case.expect)}: {_brief(reply)}"
            msg = reply.get("message")
            assert isinstance(msg, str) and 0 < len(msg) <= 400, f"{where}: {msg!r:.500}"
            assert isinstance(reply.get("field", ""), str) and size < 4096, where
            return
        assert case.expect is None or case.ok, f"{where} should be refused: {set(case.expect)}"
        assert reply.get("type") == case.kind, where
        if case.effect is not None:
            case.effect()
        if case.kind == "step":
            self.s.tick += case.ticks
            assert reply["tick"] == self.s.tick, where


class GoodClient:
    """The well-behaved client, its requests counted like the fuzzers'."""

    def __init__(self, client: Client, run: Run, session: Session) -> None:
        self.c = client
        self.run = run
        self.s = session

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        refused: str | None = None,
        may_fail: str | None = None,
        **kw: Any,
    ) -> Any:
        """``fn(*args, **kw)``, counted: it must be ``refused`` with that code if given, else
        succeed -- or fail with ``may_fail`` (then None is returned)."""
        self.run.sent += 1
        try:
            out = fn(*args, **kw)
        except BridgeError as exc:
            self.run.errors[exc.code] += 1
            assert exc.code in (refused, may_fail), f"good client {fn.__name__}: {exc}"
            return None
        assert refused is None, f"good client {fn.__name__} should be refused with {refused}"
        return out

    def check_observation(self, obs: Any) -> np.ndarray:
        assert obs.t == pytest.approx(self.s.tick * 0.002, abs=1e-9)
        st = obs.robots["r1"]
        for arr in (st.q, st.dq, st.tau):
            assert arr.shape == (DOF,) and np.all(np.isfinite(arr))
        return st.q

    def hello(self) -> dict[str, Any]:
        info = self.call(self.c.hello)
        assert info["mode"] == "lockstep" and info["robots"]["r1"]["dof"] == DOF
        assert (info["robots"]["r1"]["owner"] is None) == (self.s.owner is None)
        assert info["observation"]["tick"] == self.s.tick
        self.check_observation(observation(info["observation"]))
        return info

    def probe_ownership(self) -> None:
        """Claim the robot: refused exactly when the model says another client owns it."""
        other = self.s.owner not in (None, "G")
        if self.call(self.c.claim, ["r1"], refused="E_NOT_OWNER" if other else None):
            self.s.owner = "G"
            self.call(self.c.request, "release")
            self.s.owner = None

    def session(self, fuzz: Run, owner_sock: Callable[[str], None]) -> None:
        """hello, take the robot, step with a command, state; the fuzzers cannot step or finish
        meanwhile; give the robot back."""
        self.hello()
        if self.s.owner not in (None, "G"):
            self.call(self.c.claim, ["r1"], refused="E_NOT_OWNER")
            owner_sock(self.s.owner)  # the owner lets go
        q = self.check_observation(self.call(self.c.state))
        obs = self.call(self.c.step, Commands({"r1": JointCommand.position(q)}), ticks=2)
        self.s.owner = "G"
        self.s.tick += 2
        self.check_observation(obs)
        # another client may neither finish nor advance time (an observer may not step at all)
        step_code = "E_MODE" if self.s.role("A") == "observer" else "E_NOT_OWNER"
        for kind, code in (("finish", "E_NOT_OWNER"), ("step", step_code)):
            msg = _pack({"v": 1, "type": kind})
            fuzz.send("A", Case([msg], f"{kind} while G owns r1", expect=frozenset({code})))
        assert self.call(self.c.state).t == obs.t
        assert self.call(self.c.request, "release")["robots"] == ["r1"]
        self.s.owner = None


# -- the tests ---------------------------------------------------------------------------------
def test_server_answers_every_malformed_message_and_keeps_serving():
    """More than 10,000 random and malformed requests, each answered as the reference says;
    a well-behaved client is served in the middle and at the end; the counters add up."""
    t0 = time.monotonic()
    rng = np.random.default_rng(SEED)
    session = Session()
    with (
        ServerThread(_server()) as srv,
        _sockets(srv.endpoint, zmq.DEALER, zmq.REQ) as (a, b),
        Client(srv.endpoint, name="good", timeout=REPLY_TIMEOUT_MS / 1000) as client,
    ):
        run = Run({"A": a, "B": b}, session)
        good = GoodClient(client, run, session)
        q0 = good.hello()["observation"]["robots"]["r1"]["q"]
        fuzz = Fuzzer(rng, q0, session)

        def let_go(who: str) -> None:
            run.send(
                who,
                Case(
                    [_pack({"v": 1, "type": "release"})],
                    "release",
                    "release",
                    effect=lambda: setattr(session, "owner", None),
                ),
            )

        oversized = dict(zip(rng.choice(N_FUZZ, 6, replace=False).tolist(), _oversized(rng)))
        for i in range(N_FUZZ):
            if i in oversized:
                run.send("A", oversized[i])
            run.send(*fuzz.case())
            if i % 300 == 299:
                good.probe_ownership()
            if i % 2500 == 2499:
                good.session(run, let_go)
                assert time.monotonic() - t0 < WALL_LIMIT_S, f"{i} requests took too long"
        assert run.sent >= 10_000
        good.session(run, let_go)

        # the counters add up: every request counted, every error by its code
        rep = good.call(client.kpis)["bridge"]
        assert rep["messages"] == run.sent == srv.messages
        assert rep["errors"] == dict(run.errors) == dict(srv.errors)
        assert rep["ticks"] == session.tick
        assert "E_INTERNAL" not in rep["errors"]
        assert len(run.errors) >= 12, run.errors  # the fuzz reached (nearly) every code
        # ... and the session still ends properly
        good.call(client.claim)
        assert good.call(client.finish)["bridge"]["ticks"] == session.tick
        client.close(bye=False)


def test_realtime_command_fields_are_checked():
    """``command`` is only read by a real-time server: fuzz its fields there (and the rest
    again); the server answers everything and serves a client afterwards."""
    rng = np.random.default_rng(SEED + 1)
    session = Session()
    with (
        ServerThread(_server("realtime")) as srv,
        _sockets(srv.endpoint, zmq.DEALER) as (a,),
        Client(srv.endpoint, name="good", timeout=REPLY_TIMEOUT_MS / 1000) as client,
    ):
        run = Run({"A": a}, session)
        good = GoodClient(client, run, session)
        q0 = good.call(client.hello)["observation"]["robots"]["r1"]["q"]
        fuzz = Fuzzer(rng, q0, session)
        command = _pack({"v": 1, "type": "command", "commands": {"r1": fuzz.command()}})
        for i in range(N_REALTIME):
            if i == N_REALTIME // 2:  # command, then pause: the watchdog faults the robot
                run.send(
                    "A", Case([command], "command", "command", frozenset({"E_FAULT"}), ok=True)
                )
                deadline = time.monotonic() + 5
                while good.call(client.request, "state")["faults"]["r1"] is None:
                    assert time.monotonic() < deadline, "the watchdog did not fault r1"
                    time.sleep(0.02)
                run.send("A", Case([command], "command to a faulted robot", "command",
                                   frozenset({"E_FAULT"})))  # fmt: skip
            run.send("A", fuzz.realtime_case())

        # a well-behaved client takes over the robot and commands it
        run.send("A", Case([_pack({"v": 1, "type": "bye"})], "bye", "bye"))
        info = good.call(client.hello)
        assert info["mode"] == "realtime" and info["robots"]["r1"]["owner"] is None
        assert good.call(client.claim) == ["r1"]
        deadline = time.monotonic() + 5
        while True:  # (the watchdog may yet strike for the fuzzer's last command)
            assert time.monotonic() < deadline, "no command accepted"
            if good.call(client.clear_fault, may_fail="E_FAULT") is None:
                time.sleep(0.02)  # still braking
                continue
            q = good.call(client.state).robots["r1"].q
            cmd = Commands({"r1": JointCommand.position(q)})
            if good.call(client.command, cmd, may_fail="E_FAULT"):
                break
        rep = good.call(client.kpis)["bridge"]
        assert rep["messages"] == run.sent == srv.messages
        assert rep["errors"] == dict(run.errors) == dict(srv.errors)


def test_a_message_beyond_the_hard_limit_drops_only_its_connection():
    """ZeroMQ drops a connection whose message exceeds 16 MiB before the server sees it (no
    reply is possible); other connections, and new ones, are served."""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER, zmq.DEALER) as (a, b):
        assert _ask(b, {"v": 1, "type": "ping"})["ok"]
        a.send(bytes(HARD_MAX_MESSAGE + 1))
        assert not a.poll(500)
        assert _ask(b, {"v": 1, "type": "ping"})["ok"]
        with _sockets(srv.endpoint, zmq.REQ) as (c,):
            assert _ask(c, {"v": 1, "type": "state"})["tick"] == 0
        assert srv.messages == 3


# -- bugs the fuzzer found -------------------------------------------------------------------
def _step(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "type": "step", **fields}


def _position(q: list[float]) -> dict[str, Any]:
    return {"r1": {"mode": "position", "values": q}}


Q_START = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]
STATE = {"v": 1, "type": "state"}


@pytest.mark.parametrize(
    "data",
    [{"kind": 1}, {1: 2}, {"a": _nested(700, 1, as_map=True)}, {"b": b"\x00"}, {"n": {1: 2}}],
    ids=["reserved-key", "integer-key", "deep", "binary-value", "mixed-keys-inside"],
)
def test_marker_data_an_event_cannot_hold_is_refused_before_anything_happens(tmp_path, data):
    """(Found by the fuzzer: such data reached ``Cell.emit(**data)``, ``plain()`` and the JSON
    event log unchecked -- E_INTERNAL after the tick was taken, and deep data made every later
    ``state`` and ``hello`` fail.)"""
    with (
        ServerThread(_server(out_dir=tmp_path, plots=False)) as srv,
        _sockets(srv.endpoint, zmq.DEALER) as (a,),
    ):
        rep = _ask(a, _step(markers=[{"kind": "m", "data": data}]))
        assert rep["code"] in ("E_BAD_TYPE", "E_BAD_VALUE"), _brief(rep)
        assert _ask(a, STATE)["tick"] == 0
        assert _ask(a, {"type": "hello", "versions": [1]})["ok"]


def test_deep_marker_data_does_not_stop_a_realtime_server():
    """(Found by the fuzzer: the next tick's published state raised RecursionError in the
    real-time loop and the server thread died.)"""
    with ServerThread(_server("realtime")) as srv, _sockets(srv.endpoint, zmq.DEALER) as (a,):
        deep = _nested(700, 1, as_map=True)
        rep = _ask(a, {"v": 1, "type": "command", "markers": [{"kind": "m", "data": deep}]})
        assert rep["code"] == "E_BAD_VALUE", _brief(rep)
        time.sleep(0.1)  # some ticks
        assert _ask(a, {"v": 1, "type": "ping"})["ok"]


def test_a_cycle_marker_with_a_text_duration_is_refused():
    """(Found by the fuzzer: accepted, then ``kpis`` and ``finish`` failed with E_INTERNAL for
    the rest of the session and the server's shutdown raised.)"""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER) as (a,):
        marker = {"kind": "cycle", "data": {"cycle_time_s": "abc"}}
        assert _ask(a, _step(markers=[marker]))["code"] in ("E_BAD_TYPE", "E_BAD_VALUE")
        assert _ask(a, {"v": 1, "type": "kpis"})["ok"]


def test_a_refused_step_takes_no_robot():
    """(Found by the fuzzer: valid commands took the robot before the signals were read.)"""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER, zmq.DEALER) as (a, b):
        rep = _ask(a, _step(commands=_position(Q_START), signals={"nope": 1}))
        assert rep["code"] == "E_UNKNOWN_SIGNAL"
        assert _ask(b, {"v": 1, "type": "claim"})["ok"]


def test_a_refused_hello_changes_nothing():
    """(Found by the fuzzer: the client's name was taken before the role was checked.)"""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER, zmq.DEALER) as (a, b):
        assert _ask(a, {"type": "hello", "versions": [1], "client": "a"})["ok"]
        assert _ask(a, {"v": 1, "type": "claim"})["ok"]
        bad = _ask(a, {"type": "hello", "versions": [1], "client": "mallory", "role": "root"})
        assert bad["code"] == "E_BAD_VALUE"
        assert _ask(b, {"type": "hello", "versions": [1]})["robots"]["r1"]["owner"] == "a"


def test_an_observer_cannot_write_in_real_time():
    """(Found by the fuzzer: ``command`` let an observer write signals, markers and done.)"""
    with ServerThread(_server("realtime")) as srv, _sockets(srv.endpoint, zmq.DEALER) as (a,):
        assert _ask(a, {"type": "hello", "versions": [1], "role": "observer"})["ok"]
        for fields in ({"signals": {"fuzz.flag": True}}, {"markers": [{"kind": "m"}]}):
            assert _ask(a, {"v": 1, "type": "command", **fields}).get("code") == "E_MODE"


def test_a_long_marker_key_makes_no_long_error_message():
    """An error message is one short line, whatever the request held."""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER) as (a,):
        rep = _ask(a, _step(markers=[{"kind": "m", "data": {"k" * 100_000: math.nan}}]))
        assert rep["code"] == "E_BAD_VALUE"
        assert len(rep["message"]) < 400  # (it once held the whole key: 100,041 characters)


def test_huge_finite_position_targets_are_clamped():
    """Finite targets are clamped, however far (docs/bridge-protocol.md); two of 1e308 sum to
    inf and are refused as 'NaN or infinite' -- after the command was already held, so every
    later step fails the same way until a new command comes."""
    with ServerThread(_server()) as srv, _sockets(srv.endpoint, zmq.DEALER) as (a,):
        rep = _ask(a, _step(commands=_position([1e308, 1e308, 0.0, 0.0, 0.0, 0.0])))
        assert rep["ok"], rep
        assert _ask(a, _step())["ok"]
