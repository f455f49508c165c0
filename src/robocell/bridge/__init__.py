"""The ZeroMQ bridge: external controllers drive a simulated cell (SimServer, Client), and cells
drive remote robots (RobotServer, RemoteRobot). The protocol is in docs/bridge-protocol.md.

Names are imported on first use, so ``robocell.bridge.security`` (the ``keys`` command) does not
pull in the simulator."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Client": "client",
    "context_from_scenario": "client",
    "drive": "client",
    "observation": "client",
    "ERROR_CODES": "protocol",
    "VERSION": "protocol",
    "ProtocolError": "protocol",
    "SimServer": "server",
    "RobotServer": "remote",
    "RemoteRobot": "remote",
    "PROFILES": "profiles",
    "get_profile": "profiles",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    mod = _NAMES.get(name)
    if mod is None:
        raise AttributeError(f"module 'robocell.bridge' has no attribute '{name}'")
    return getattr(importlib.import_module(f"robocell.bridge.{mod}"), name)
