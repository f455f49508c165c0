"""Shared fixtures: paths and small helpers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture
def root() -> Path:
    return ROOT


def strip_timing(kpis: dict) -> dict:
    """KPIs without wall-clock figures (which legitimately differ between runs)."""
    return {k: v for k, v in kpis.items() if k != "timing"}


class ServerThread:
    """A bridge server (SimServer) serving in a background thread; stopped, joined and closed
    when the ``with`` block ends, which yields the server."""

    def __init__(self, server: Any) -> None:
        self.server = server
        server.open()
        self.thread = threading.Thread(target=server.serve, daemon=True)
        self.thread.start()

    def __enter__(self) -> Any:
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.thread.join(10)
        self.server.close()
