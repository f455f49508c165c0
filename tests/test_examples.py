"""The examples run as documented: the standalone bridge client drives a lockstep server.

The client (examples/bridge_client.py) must stand on docs/bridge-protocol.md alone, so it may
import only zmq, msgpack and the standard library; this is checked on its syntax tree."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, SCENARIOS

from robocell.bridge.server import SimServer
from robocell.cell.build import cell_from_scenario
from robocell.scenario.loader import load_scenario

EXAMPLES = ROOT / "examples"
CLIENT = EXAMPLES / "bridge_client.py"
#: what a standalone client may import: the two wire libraries and the standard library
ALLOWED_THIRD_PARTY = {"zmq", "msgpack"}


@pytest.fixture
def lockstep_server() -> Iterator[SimServer]:
    """A lockstep SimServer of cycle_test.yaml serving in a thread on a free local port."""
    cell = cell_from_scenario(load_scenario(SCENARIOS / "cycle_test.yaml"))
    server = SimServer(cell, bind="tcp://127.0.0.1:0", idle_timeout=30)
    server.open()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(10)
        server.close()


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (anywhere in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_bridge_client_imports_only_zmq_msgpack_and_stdlib() -> None:
    mods = _imported_modules(CLIENT)
    assert "robocell" not in mods
    foreign = mods - ALLOWED_THIRD_PARTY - set(sys.stdlib_module_names) - {"__future__"}
    assert not foreign, f"{CLIENT.name} imports {sorted(foreign)}"


def test_bridge_client_drives_a_lockstep_server(lockstep_server: SimServer) -> None:
    proc = subprocess.run(
        [sys.executable, str(CLIENT), "--connect", lockstep_server.endpoint, "--seconds", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "code=E_JOINT_COUNT" in out
    assert "field=commands.r1.values" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("RESULT "), out
    result = json.loads(last.removeprefix("RESULT "))
    assert result["joint"] == 1
    assert abs(result["target_rad"] - result["start_rad"]) == pytest.approx(0.5)
    assert result["turn_error_rad"] < 1e-2
    assert result["final_error_rad"] < 1e-2
    assert result["reached"] is True
    # the session ended with the client's finish, and only the one deliberate error
    assert lockstep_server.finished
    report = lockstep_server.report()
    assert report["errors"] == {"E_JOINT_COUNT": 1}
    assert report["robots"]["r1"]["fault"] is None
