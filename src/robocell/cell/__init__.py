"""The Cell and its run loop."""

from robocell.cell.cell import Cell, RunResult

__all__ = ["Cell", "RunResult"]
