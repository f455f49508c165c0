"""The one-call Python entry point: ``robocell.run(scenario_file)``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import RunResult
from robocell.cell.devices import Device
from robocell.scenario.loader import LoadedScenario, load_scenario


def default_out_dir(loaded: LoadedScenario) -> Path:
    """``outputs.dir`` of the scenario, else ``runs/<scenario file name>``."""
    d = loaded.scenario.outputs.dir
    return Path(d) if d else Path("runs") / loaded.file.stem


def run(
    scenario: str | Path | LoadedScenario,
    duration: float | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    gui: bool = False,
    progress: bool = False,
    write: bool = True,
    devices: Sequence[Device] = (),
) -> RunResult:
    """Run a scenario file headless and return its KPIs — the same numbers ``robocell run`` prints.

    Args:
        scenario: a scenario file path (or an already loaded scenario).
        duration: cell time [s] (default: the scenario's ``duration``).
        seed: override the scenario's seed.
        out_dir: run directory (default: ``outputs.dir`` or ``runs/<file name>``).
        gui: show pybullet's GUI.
        progress: print a progress bar on stderr.
        write: write kpis.json, the recording and plots (False: compute KPIs only).
        devices: extra devices added to the cell before it runs (e.g. a
            :class:`~robocell.record.video.VideoRecorder`).
    """
    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    scn = loaded.scenario
    cell = cell_from_scenario(loaded, gui=gui, seed=seed)
    try:
        for d in devices:
            cell.add_device(d)
        out = None
        if write and scn.outputs.record:
            out = Path(out_dir) if out_dir is not None else default_out_dir(loaded)
        return cell.run(
            duration if duration is not None else scn.duration,
            out_dir=out,
            record_period=scn.outputs.record_period,
            progress=progress,
            plots=scn.outputs.plots,
            metadata={"scenario": scn.name, "scenario_file": loaded.file.name},
        )
    finally:
        cell.close()
