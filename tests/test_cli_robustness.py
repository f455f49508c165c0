"""The command line under the mistakes users make: every one is a one-line error with exit code 2
(or a clean stop), never a hang, a traceback or a run directory that mixes two runs."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SCENARIOS

from robocell.record.recorder import read_recording

CYCLE = str(SCENARIOS / "cycle_test.yaml")


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "robocell.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_error(r: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    for t in texts:
        assert t in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["run", CYCLE, "--seed", "-1"], "--seed"),
        (["run", CYCLE, "--duration", "nan"], "--duration"),
        (["drive", CYCLE, "--duration", "-1"], "--duration"),
        (["serve", CYCLE, "--idle-timeout", "nan"], "--idle-timeout"),
        (["serve", CYCLE, "--bind", "tcp://127.0.0.1:99999"], "port 0..65535"),
        (["serve", CYCLE, "--bind", "foo"], "not a ZeroMQ endpoint"),
        (["drive", CYCLE, "--connect", "tcp://127.0.0.1"], "port 0..65535"),
        (["drive", "no/such.yaml", "--connect", "tcp://127.0.0.1:1"], "not found"),
        (["validate", str(SCENARIOS)], "is a directory"),
        (["run", CYCLE, "--video", "v.gif", "--video-size", "5x5"], "--video-size: size must"),
        (["run", CYCLE, "--video", "v.mp4", "--video-size", "33x32"], "--video-size: an MP4"),
        (["run", CYCLE, "--video", "v.avi"], "--video: cannot write video"),
    ],
    ids=[
        "seed",
        "duration-nan",
        "drive-duration",
        "idle-nan",
        "port",
        "endpoint",
        "connect",
        "drive-file-first",
        "directory",
        "video-size",
        "video-mp4-odd",
        "video-format",
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], text: str) -> None:
    _one_error(_cli(*args), text)


def test_a_port_in_use_is_an_error_not_a_hang() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for cmd in ("serve", "serve-robot"):
            r = _cli(cmd, CYCLE, "--bind", f"tcp://127.0.0.1:{port}", "--idle-timeout", "5")
            _one_error(r, "cannot bind", "in use")


def test_unwritable_outputs_are_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    _one_error(_cli("run", CYCLE, "--duration", "0.1", "--out", str(a_file)), "not a directory")
    (tmp_path / "d.gif").mkdir()
    r = _cli(
        "run", CYCLE, "--duration", "0.1", "--out", str(tmp_path / "r"),
        "--video", str(tmp_path / "d.gif"),
    )  # fmt: skip
    _one_error(r, "cannot write video", "directory")


def test_a_new_run_clears_an_earlier_runs_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for stale in ("machining.npz", "surface_error.png", "joints_old.png", "kpis.json"):
        (out / stale).write_text("from an earlier run")
    (out / "notes.txt").write_text("the user's")
    r = _cli("run", CYCLE, "--duration", "0.2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    left = sorted(p.name for p in out.iterdir())
    assert "machining.npz" not in left and "surface_error.png" not in left
    assert "joints_old.png" not in left and "notes.txt" in left
    assert "machining.npz" not in r.stdout
    assert (out / "kpis.json").read_text().startswith("{")


def test_yaml_bombs_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nrobots: " + "[" * 500 + "]" * 500 + "\n")
    _one_error(_cli("validate", str(deep)), "nested more than")
    bomb = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for c in "bcdefghi":
        bomb.append(f"{c}: &{c} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = c
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("\n".join(bomb) + "\n")
    t0 = time.monotonic()
    _one_error(_cli("validate", str(laughs)), "more than 200,000 values")
    assert time.monotonic() - t0 < 30


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path: Path) -> None:
    # enough cycles that the run cannot end by itself before the signal (the default five take
    # a fraction of a second once the recording has its first 1000 rows)
    long_run = tmp_path / "cycle_long.yaml"
    text = Path(CYCLE).read_text()
    assert "cycles: 5" in text
    long_run.write_text(text.replace("cycles: 5", "cycles: 1000"))
    out = tmp_path / "run"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "robocell.cli",
            "run",
            str(long_run),
            "--duration",
            "600",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (out / "recording.arrows").exists() and read_recording(out).num_rows >= 1000:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 143 and "terminated" in err and "Traceback" not in err, (
        p.returncode,
        err,
    )
    assert read_recording(out).num_rows >= 1000


def test_the_lazy_package_exports_resolve() -> None:
    import robocell

    assert sorted(robocell.__all__) == sorted(robocell._EXPORTS)
    for name in robocell.__all__:
        assert getattr(robocell, name) is not None
    with pytest.raises(AttributeError):
        _ = robocell.no_such_name


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["robots"], ["schema"], ["validate", CYCLE]])
def test_output_to_a_full_disk_is_a_one_line_error(args: list[str]) -> None:
    # /dev/full refuses every write with ENOSPC, as a full disk does
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "robocell.cli", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1, r.stderr
    assert r.stderr == "robocell: error: No space left on device\n", r.stderr
