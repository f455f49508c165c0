"""Broken scenario files: exit code 2, one line naming file, line and field, no traceback.

Each file in tests/broken/ states what it expects in its first two lines::

    # expect-line: 8
    # expect: unknown key 'contol_period' (did you mean 'control_period'?)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robocell.cli import main

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def _expectations(path: Path) -> tuple[int, str]:
    head = path.read_text().splitlines()[:2]
    line = int(head[0].split(":", 1)[1])
    text = head[1].split(":", 1)[1].strip()
    return line, text


def test_there_are_at_least_15_broken_files() -> None:
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_validate_reports_file_line_and_exits_2(path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # controllers/ resolve from here
    line, text = _expectations(path)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    assert f"{path}:{line}:" in err, err
    assert text in err, err


@pytest.mark.parametrize("name", ["misspelled_key", "unreachable_target"])
def test_cli_process_exits_2_without_traceback(name: str, root: Path) -> None:
    path = root / "tests" / "broken" / f"{name}.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "robocell.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stdout == ""


def test_valid_scenario_exits_0(root: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(root)
    assert main(["validate", "scenarios/cycle_test.yaml"]) == 0
    assert "valid" in capsys.readouterr().out


def test_run_rejects_bad_duration_argument(root: Path, capsys) -> None:
    assert main(["run", str(root / "scenarios/cycle_test.yaml"), "--duration", "-1"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_missing_file_exits_2(capsys) -> None:
    assert main(["validate", "no/such/file.yaml"]) == 2
    assert "no/such/file.yaml" in capsys.readouterr().err
