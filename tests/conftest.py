"""Shared fixtures: paths and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture
def root() -> Path:
    return ROOT


def strip_timing(kpis: dict) -> dict:
    """KPIs without wall-clock figures (which legitimately differ between runs)."""
    return {k: v for k, v in kpis.items() if k != "timing"}
