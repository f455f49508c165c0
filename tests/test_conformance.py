"""Conformance over everything shipped: every scenario validates, runs a few seconds and is
deterministic; every controller in controllers/ is used by a scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, SCENARIOS, strip_timing

import robocell as rc

SCENARIO_FILES = sorted(SCENARIOS.glob("*.yaml"))
CONTROLLERS = sorted(p.stem for p in (ROOT / "controllers").glob("*.py"))


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_scenario_runs_and_is_deterministic(path: Path, tmp_path: Path) -> None:
    a = rc.run(path, duration=2.0, out_dir=tmp_path / "a")
    b = rc.run(path, duration=2.0, out_dir=tmp_path / "b")
    assert strip_timing(a.kpis) == strip_timing(b.kpis)
    assert (tmp_path / "a" / "recording.arrows").read_bytes() == (
        tmp_path / "b" / "recording.arrows"
    ).read_bytes()
    assert a.kpis["duration_s"] == pytest.approx(2.0)
    for robot in a.kpis["robots"].values():
        assert robot["limit_violations"] == 0
    assert a.kpis["collisions_self"] == 0 and a.kpis["collisions_environment"] == 0


@pytest.mark.parametrize("name", CONTROLLERS)
def test_every_controller_has_a_scenario(name: str) -> None:
    used = [p for p in SCENARIO_FILES if f"controllers/{name}.py:" in p.read_text()]
    assert used, f"controllers/{name}.py is not used by any scenario in scenarios/"
