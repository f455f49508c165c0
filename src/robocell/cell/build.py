"""Scenario -> Cell: the checks that need robot models and the controller, located in the file."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import numpy as np

from robocell.cell.cell import Cell
from robocell.control.controller import Controller
from robocell.errors import KinematicsError, RobocellError, ScenarioError
from robocell.robot.interface import Tool
from robocell.robot.library import load_model
from robocell.scenario.loader import LoadedScenario


def _controller_search_dirs(base_dir: Path) -> list[Path]:
    """Relative controller files are looked up next to the scenario, then in its parent folders,
    then in the current directory, then in the controllers installed with robocell."""
    dirs = [base_dir, *base_dir.resolve().parents, Path.cwd()]
    installed = Path(__file__).resolve().parents[1] / "_data"
    if installed.is_dir():
        dirs.append(installed)
    return dirs


def load_controller_class(use: str, base_dir: Path) -> type:
    """Resolve ``file.py:Class`` or ``package.module:Class``."""
    target, _, cls_name = use.rpartition(":")
    if target.endswith(".py"):
        tried = [d / target for d in _controller_search_dirs(base_dir)]
        path = next((p for p in tried if p.is_file()), None)
        if path is None:
            raise ScenarioError(
                f"controller file '{target}' not found (looked next to the "
                "scenario, in its parent folders and the current folder)"
            )
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        mod_name = f"robocell_user_controller_{path.stem}_{digest}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[mod_name]
                raise ScenarioError(
                    f"controller file {path} fails to import: {type(exc).__name__}: {exc}"
                ) from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ScenarioError(f"cannot import controller module '{target}': {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is not None and not inspect.isclass(cls):
        raise ScenarioError(f"'{cls_name}' in {target} is not a class")
    if cls is None:
        names = [n for n, v in vars(module).items() if inspect.isclass(v)]
        close = difflib.get_close_matches(cls_name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ScenarioError(f"no class '{cls_name}' in {target}{hint}")
    return cls


def make_controller(cls: type, params: dict[str, Any], loaded: LoadedScenario | None) -> Any:
    """Instantiate a controller, mapping bad parameters to located errors."""
    base = ("controller", "params")

    def err(key: str | None, msg: str) -> ScenarioError:
        path = (*base, key) if key else base
        if loaded is not None:
            return loaded.error(path, msg)
        return ScenarioError(msg, field=".".join(str(p) for p in path))

    sig = inspect.signature(cls)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    known = [
        n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if not accepts_any:
        for key in params:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise err(
                    key,
                    f"{cls.__name__} has no parameter '{key}'{hint}; parameters: "
                    f"{', '.join(known) or 'none'}",
                )
    for n, p in sig.parameters.items():
        if (
            p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and n not in params
        ):
            raise err(None, f"{cls.__name__} needs parameter '{n}'")
    try:
        ctrl = cls(**params)
    except (KinematicsError, ScenarioError) as exc:
        key = getattr(exc, "field", None)
        raise err(key, getattr(exc, "message", str(exc))) from None
    except (TypeError, ValueError, RobocellError) as exc:
        raise err(None, f"{cls.__name__}: {exc}") from None
    if not isinstance(ctrl, Controller):
        raise err(None, f"{cls.__name__} is not a controller (needs reset() and step())")
    return ctrl


def cell_from_scenario(loaded: LoadedScenario, gui: bool = False, seed: int | None = None) -> Cell:
    """Build the cell a scenario describes, with its controller reset (paths planned).

    Every problem is raised as a ScenarioError pointing at the file, line and field.
    """
    scn = loaded.scenario
    w = scn.world
    cell = Cell(
        seed=scn.seed if seed is None else seed,
        physics_step=w.physics_step,
        gravity=w.gravity,
        gui=gui,
        ground=w.ground,
        name=scn.name,
        solver_iterations=w.solver_iterations,
    )
    try:
        for i, rs in enumerate(scn.robots):
            fld = ("robots", i)
            try:
                model = load_model(rs.model, str(loaded.base_dir))
            except ScenarioError as exc:
                raise loaded.error((*fld, "model"), exc.message) from None
            q0 = None
            if rs.q0_deg is not None:
                q0 = np.radians(rs.q0_deg)
                lim = model.limits
                if len(q0) != model.dof:
                    raise loaded.error(
                        (*fld, "q0_deg"),
                        f"{model.name} has {model.dof} joints, got {len(q0)} values",
                    )
                bad = np.flatnonzero((q0 < lim.lower) | (q0 > lim.upper))
                if bad.size:
                    j = int(bad[0])
                    raise loaded.error(
                        (*fld, "q0_deg"),
                        f"joint {j + 1} at {rs.q0_deg[j]} deg is outside its limits "
                        f"[{np.degrees(lim.lower[j]):.1f}, {np.degrees(lim.upper[j]):.1f}] deg",
                    )
            try:
                cell.world.steps_for(rs.control_period, "control period")
            except ScenarioError as exc:
                raise loaded.error((*fld, "control_period"), exc.message) from None
            tool = None
            if rs.tool is not None:
                tool = Tool(rs.tool.name, rs.tool.tcp.se3(), rs.tool.mass, rs.tool.radius)
            cell.add_robot(
                model,
                name=rs.name,
                base=rs.base.se3(),
                tool=tool,
                control_period=rs.control_period,
                q0=q0,
                position_gain=rs.gains.position,
                velocity_gain=rs.gains.velocity,
            )
        for i, ob in enumerate(scn.objects):
            dims: dict[str, Any] = {}
            if ob.shape == "box":
                dims["size"] = ob.size
            elif ob.shape == "cylinder":
                dims.update(radius=ob.radius, height=ob.height)
            elif ob.shape == "sphere":
                dims["radius"] = ob.radius
            else:
                f = Path(ob.file or "")
                dims.update(file=f if f.is_absolute() else loaded.base_dir / f, scale=ob.scale)
            try:
                cell.add_object(
                    ob.name,
                    ob.shape,
                    pose=ob.pose.se3(),
                    mass=ob.mass,
                    color=ob.color,
                    friction=ob.friction,
                    **dims,
                )
            except ScenarioError as exc:
                raise loaded.error(("objects", i), exc.message) from None
        rp = scn.outputs.record_period
        if rp is not None:
            tick = cell.control_period
            if abs(rp / tick - round(rp / tick)) > 1e-6 or round(rp / tick) < 1:
                raise loaded.error(
                    ("outputs", "record_period"),
                    f"{rp} s is not a whole multiple of the control tick {tick} s",
                )
        if scn.duration < cell.control_period:
            raise loaded.error(
                ("duration",),
                f"{scn.duration} s is shorter than one control tick ({cell.control_period} s)",
            )
        if scn.controller is not None:
            try:
                cls = load_controller_class(scn.controller.use, loaded.base_dir)
            except ScenarioError as exc:
                raise loaded.error(("controller", "use"), exc.message) from None
            cell.controller = make_controller(cls, dict(scn.controller.params), loaded)
            cell.end_when_done = scn.controller.end_when_done
            try:
                cell.start_controller()
            except (KinematicsError, ScenarioError) as exc:
                key = getattr(exc, "field", None)
                path = ("controller", "params", *_split(key)) if key else ("controller",)
                raise loaded.error(path, getattr(exc, "message", str(exc))) from None
            except (RobocellError, TypeError, ValueError) as exc:
                name = type(cell.controller).__name__
                raise loaded.error(("controller",), f"{name}.reset() failed: {exc}") from None
    except BaseException:
        cell.close()
        raise
    return cell


def _split(key: str) -> tuple[str | int, ...]:
    from robocell.scenario.loader import parse_field

    return parse_field(key)
