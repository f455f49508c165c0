"""The bridge protocol: message encoding, validation and error codes (version 1).

Every message is one ZeroMQ frame holding one MessagePack map with string keys. Requests carry
``v`` (the protocol version), ``type`` and optionally ``id`` (echoed in the reply). A reply has
``ok: true`` and the request's ``type``; an error reply has ``ok: false``, ``type: "error"``, a
``code`` from :data:`ERROR_CODES`, a one-line ``message`` and, where one field is at fault, its
dotted ``field``. docs/bridge-protocol.md is the reference; this module is its implementation.

Validation never trusts the sender: every field is checked for presence, type, finiteness and
size before anything reaches the cell, and every failure becomes a :class:`ProtocolError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from robocell.robot.interface import JointCommand

#: protocol versions this implementation speaks (highest first)
VERSIONS: tuple[int, ...] = (1,)
VERSION = VERSIONS[0]

#: largest message a server accepts [bytes]; larger ones get ``E_TOO_LARGE``
MAX_MESSAGE = 1 << 20
#: beyond this size ZeroMQ drops the connection without reading the message [bytes]
HARD_MAX_MESSAGE = 16 << 20

#: error code -> meaning (the ``code`` of an error reply)
ERROR_CODES: dict[str, str] = {
    "E_DECODE": "the frame is not one MessagePack value",
    "E_NOT_A_MAP": "the message is not a map with string keys",
    "E_TOO_LARGE": "the message is larger than the server's max_message",
    "E_VERSION": "unknown or missing protocol version",
    "E_UNKNOWN_TYPE": "unknown message type",
    "E_MISSING_FIELD": "a required field is missing",
    "E_BAD_TYPE": "a field has the wrong type",
    "E_BAD_VALUE": "a value is out of its domain (NaN, infinite, negative count, ...)",
    "E_JOINT_COUNT": "a joint vector has the wrong length for the robot",
    "E_UNKNOWN_ROBOT": "no robot of that name in the cell",
    "E_UNKNOWN_SIGNAL": "no signal of that name in the cell",
    "E_MODE": "not allowed in this server mode or under this interface profile",
    "E_NOT_OWNER": "another client commands that robot (or advances the clock)",
    "E_FAULT": "the robot is faulted (watchdog or profile rule); clear the fault first",
    "E_INTERNAL": "the server failed while handling a valid message",
}

#: command modes and their numeric codes in recordings
COMMAND_MODES: dict[str, int] = {"position": 0, "velocity": 1, "torque": 2}


class ProtocolError(Exception):
    """A message the server refuses; becomes an error reply."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        assert code in ERROR_CODES, code
        self.code = code
        self.message = message
        self.field = field
        super().__init__(f"{code}: {message}")

    def reply(self, req_id: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION,
            "type": "error",
            "ok": False,
            "code": self.code,
            "message": self.message,
        }
        if self.field is not None:
            out["field"] = self.field
        if req_id is not None:
            out["id"] = req_id
        return out


# -- encoding --------------------------------------------------------------------------------
def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"cannot encode {type(o).__name__}")


_packer = msgpack.Packer(default=_default, use_bin_type=True)


def encode(msg: Mapping[str, Any]) -> bytes:
    """One message as MessagePack bytes (numpy arrays and scalars become lists and numbers)."""
    return _packer.pack(msg)


def decode(frame: bytes, max_size: int = MAX_MESSAGE) -> dict[str, Any]:
    """Decode one frame into a map with string keys, or raise :class:`ProtocolError`."""
    if len(frame) > max_size:
        raise ProtocolError("E_TOO_LARGE", f"message of {len(frame)} bytes; limit {max_size}")
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # malformed bytes raise several different exception types
        raise ProtocolError("E_DECODE", f"not MessagePack ({type(exc).__name__})") from None
    if not isinstance(msg, dict) or not all(isinstance(k, str) for k in msg):
        raise ProtocolError("E_NOT_A_MAP", "a message is a map with string keys")
    return msg


def check_version(msg: Mapping[str, Any]) -> None:
    """Every request names the protocol version it speaks, as the integer ``v``."""
    v = msg.get("v")
    if v is None:
        raise ProtocolError("E_VERSION", f"missing 'v'; this server speaks {list(VERSIONS)}", "v")
    if type(v) is not int or v not in VERSIONS:
        raise ProtocolError(
            "E_VERSION",
            f"protocol version {_show(v)} unknown; this server speaks {list(VERSIONS)}",
            "v",
        )


def negotiate(msg: Mapping[str, Any]) -> int:
    """The version a ``hello`` settles on: the highest one both sides speak."""
    if msg.get("versions") is None and msg.get("v") is None:
        raise ProtocolError(
            "E_VERSION", f"hello needs 'versions' (this server speaks {list(VERSIONS)})", "versions"
        )
    offered = msg["versions"] if msg.get("versions") is not None else [msg.get("v")]
    if not isinstance(offered, list) or not all(type(x) is int for x in offered):
        raise ProtocolError("E_BAD_TYPE", "'versions' must be a list of integers", "versions")
    common = [x for x in VERSIONS if x in offered]
    if not common:
        raise ProtocolError(
            "E_VERSION",
            f"no common protocol version: offered {_show(offered)}, "
            f"this server speaks {list(VERSIONS)}",
            "versions",
        )
    return max(common)


# -- field checks ----------------------------------------------------------------------------
def field(msg: Mapping[str, Any], name: str, kind: type | tuple[type, ...], path: str = "") -> Any:
    """A required field of the given type."""
    where = f"{path}.{name}" if path else name
    if name not in msg:
        raise ProtocolError("E_MISSING_FIELD", f"'{where}' is required", where)
    return _typed(msg[name], kind, where)


def optional(
    msg: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any, path: str = ""
) -> Any:
    """An optional field of the given type (``default`` when absent or nil)."""
    if msg.get(name) is None:
        return default
    return _typed(msg[name], kind, f"{path}.{name}" if path else name)


_KIND_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a map",
}


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = False
    for k in kinds:
        if k is int:
            ok = type(value) is int
        elif k is float:
            ok = type(value) in (int, float)
        else:
            ok = isinstance(value, k)
        if ok:
            break
    if not ok:
        want = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise ProtocolError(
            "E_BAD_TYPE", f"'{where}' must be {want}, got {_type_name(value)}", where
        )
    if type(value) is float and not math.isfinite(value):
        raise ProtocolError("E_BAD_VALUE", f"'{where}' must be finite, got {value}", where)
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nil"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), "map" if isinstance(value, dict) else type(value).__name__
    )


def _show(value: Any, limit: int = 40) -> str:
    """A received value as a short, one-line picture for an error message: never all of a long
    string or list, never the repr of a deep structure (which can exceed the recursion limit)."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if value is None or type(value) in (bool, int, float):
        return repr(value)
    if isinstance(value, list) and all(type(x) is int for x in value[:8]):
        head = ", ".join(repr(x) for x in value[:8])
        return f"[{head}{', ...' if len(value) > 8 else ''}]"
    return _type_name(value)


def vector(value: Any, n: int, where: str) -> np.ndarray:
    """A list of exactly ``n`` finite numbers, as a float array."""
    if not isinstance(value, list):
        raise ProtocolError(
            "E_BAD_TYPE", f"'{where}' must be a list of {n} numbers, got {_type_name(value)}", where
        )
    if len(value) != n:
        raise ProtocolError(
            "E_JOINT_COUNT", f"'{where}' needs {n} values (one per joint), got {len(value)}", where
        )
    for i, x in enumerate(value):
        if type(x) not in (int, float):
            raise ProtocolError(
                "E_BAD_TYPE", f"'{where}[{i}]' must be a number, got {_type_name(x)}", where
            )
    # one sum catches any NaN or infinity (and if huge finite values overflow it, look closer):
    # several times cheaper than numpy's isfinite and all on a handful of joints
    if not math.isfinite(sum(value)) and not all(map(math.isfinite, value)):
        raise ProtocolError("E_BAD_VALUE", f"'{where}' holds a NaN or infinite value", where)
    return np.array(value, dtype=float)


def joint_command(value: Any, n: int, where: str, modes: tuple[str, ...]) -> JointCommand:
    """A joint command map ``{mode, values, velocity?}`` for a robot with ``n`` joints."""
    if not isinstance(value, dict):
        raise ProtocolError(
            "E_BAD_TYPE",
            f"'{where}' must be a map {{mode, values}}, got {_type_name(value)}",
            where,
        )
    mode = field(value, "mode", str, where)
    if mode not in COMMAND_MODES:
        raise ProtocolError(
            "E_BAD_VALUE",
            f"'{where}.mode' must be one of {', '.join(COMMAND_MODES)}, got {_show(mode)}",
            f"{where}.mode",
        )
    if mode not in modes:
        raise ProtocolError(
            "E_MODE",
            f"'{mode}' commands are not accepted here; accepted: {', '.join(modes)}",
            f"{where}.mode",
        )
    if "values" not in value:
        raise ProtocolError("E_MISSING_FIELD", f"'{where}.values' is required", f"{where}.values")
    vals = vector(value["values"], n, f"{where}.values")
    vel = value.get("velocity")
    if vel is not None:
        if mode != "position":
            raise ProtocolError(
                "E_BAD_VALUE",
                f"'{where}.velocity' (feed-forward) goes with position commands only",
                f"{where}.velocity",
            )
        return JointCommand("position", vals, vector(vel, n, f"{where}.velocity"))
    return JointCommand(mode, vals, None)


def signal_value(value: Any, where: str) -> bool | int | float | str:
    """A signal value: a boolean, a finite number or a string."""
    if isinstance(value, bool) or type(value) is int or type(value) is str:
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise ProtocolError("E_BAD_VALUE", f"'{where}' must be finite", where)
        return value
    raise ProtocolError(
        "E_BAD_TYPE",
        f"'{where}' must be a boolean, number or string, got {_type_name(value)}",
        where,
    )


# -- building messages -----------------------------------------------------------------------
def command_message(cmd: JointCommand) -> dict[str, Any]:
    """A :class:`JointCommand` as its protocol map."""
    out: dict[str, Any] = {"mode": cmd.mode, "values": np.asarray(cmd.values, float).tolist()}
    if cmd.velocity is not None:
        out["velocity"] = np.asarray(cmd.velocity, float).tolist()
    return out


_SCALARS = frozenset((bool, int, float, str, type(None)))


def plain(value: Any) -> Any:
    """``value`` with numpy arrays/scalars, tuples and mappings made plain (what a peer decodes:
    an in-process value and a value that crossed the bridge then compare equal)."""
    if type(value) in _SCALARS:  # (most values: skips the slower Mapping check)
        return value
    if isinstance(value, dict) or isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
