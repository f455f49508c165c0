"""Scenario -> Cell: the checks that need robot models and the controller, located in the file."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from robocell.cell.cell import Cell
from robocell.control.controller import Controller
from robocell.errors import BridgeError, KinematicsError, RobocellError, ScenarioError
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
    except Exception as exc:  # noqa: BLE001 - the user's code: say whose, in one line
        raise err(None, f"{cls.__name__}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(ctrl, Controller):
        raise err(None, f"{cls.__name__} is not a controller (needs reset() and step())")
    return ctrl


def _robot_tool(loaded: LoadedScenario, i: int) -> Tool | None:
    """The tool robot ``i`` of a scenario is built with (a gripper's tool for a gripper)."""
    rs = loaded.scenario.robots[i]
    if rs.tool is None:
        return None
    if rs.tool.gripper is not None:
        try:
            return _named(_gripper(rs.tool.gripper).tool_spec(), rs.tool)
        except ScenarioError as exc:
            raise _located_in(loaded, ("robots", i, "tool", "gripper"), exc, GRIPPER_KEYS) from None
    tcp = rs.tool.tcp.se3() if rs.tool.tcp is not None else None
    return Tool(rs.tool.name, tcp, rs.tool.mass or 0.0, rs.tool.radius)


def _named(tool: Tool, spec: Any) -> Tool:
    """A gripper's tool under the name the scenario gives it (``tool.name``), if it gives one."""
    return replace(tool, name=spec.name) if "name" in spec.model_fields_set else tool


def _backend(spec: Any, base_dir: Path) -> dict[str, Any] | None:
    """The remote backend of a robot as :meth:`Cell.add_robot` takes it (key paths made
    relative to the scenario's folder)."""
    if spec is None:
        return None

    def path(p: str | None) -> Path | None:
        return None if p is None else (Path(p) if Path(p).is_absolute() else base_dir / p)

    return {
        "endpoint": spec.remote,
        "mode": spec.mode,
        "remote_name": spec.robot,
        "timeout": spec.timeout,
        "secret_key": path(spec.key),
        "server_key": path(spec.server_key),
    }


def cell_from_scenario(
    loaded: LoadedScenario,
    gui: bool = False,
    seed: int | None = None,
    programs: dict[str, str | Path] | None = None,
) -> Cell:
    """Build the cell a scenario describes, with its controller reset (paths planned).

    ``programs`` replaces the G-code program of the named machining stations (to check another
    program in the same cell). Every problem is raised as a ScenarioError pointing at the file,
    line and field.
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
            tool: Any = None
            grip = rs.tool.gripper if rs.tool is not None else None
            if grip is not None:
                try:
                    tool = _gripper(grip)
                except ScenarioError as exc:
                    raise _located_in(
                        loaded, (*fld, "tool", "gripper"), exc, GRIPPER_KEYS
                    ) from None
            elif rs.tool is not None:
                tcp = rs.tool.tcp.se3() if rs.tool.tcp is not None else None
                tool = Tool(rs.tool.name, tcp, rs.tool.mass or 0.0, rs.tool.radius)
            try:
                cell.add_robot(
                    model,
                    name=rs.name,
                    base=rs.base.se3(),
                    tool=tool,
                    control_period=rs.control_period,
                    q0=q0,
                    position_gain=rs.gains.position,
                    velocity_gain=rs.gains.velocity,
                    backend=_backend(rs.backend, loaded.base_dir),
                )
            except BridgeError as exc:
                if exc.exit_code == 2:
                    raise loaded.error((*fld, "backend"), exc.message) from None
                line = loaded.line_of((*fld, "backend"))
                raise BridgeError(
                    f"{loaded.file}:{line}: robots[{i}].backend: {exc.message}"
                ) from None
            except ScenarioError as exc:
                if exc.file is not None:
                    raise
                if not (exc.field or "").startswith("tool") or rs.tool is None:
                    raise loaded.error(fld, exc.message) from None
                # the tool (the gripper's) does not fit on the robot
                if grip is None:
                    raise _located_in(loaded, (*fld, "tool"), exc, {"tool.tcp": "tcp"}) from None
                raise _located_in(
                    loaded, (*fld, "tool", "gripper"), exc, {"tool.tcp": "tcp_offset"}
                ) from None
            if grip is not None:
                robot = cell.robots[rs.name]
                robot.tool = _named(robot.tool, rs.tool)  # (a label: the TCP stays)
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
        _add_pick_and_place(cell, loaded, programs or {})
        cell.ideal_cycle_time = scn.ideal_cycle_time
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
            except Exception as exc:  # noqa: BLE001 - the user's code: say whose, in one line
                name = type(cell.controller).__name__
                raise loaded.error(
                    ("controller",), f"{name}.reset() raised {type(exc).__name__}: {exc}"
                ) from None
    except BaseException:
        cell.close()
        raise
    return cell


def _gripper(spec: Any) -> Any:
    from robocell.pnp import ParallelGripper, VacuumGripper

    if spec.type == "vacuum":
        return VacuumGripper(
            cup_diameter=spec.cup_diameter,
            cups=spec.cups,
            vacuum_kpa=spec.vacuum_kpa,
            cup_friction=spec.cup_friction,
            tcp_offset=spec.tcp_offset,
            mass=spec.mass,
        )
    return ParallelGripper(
        max_width=spec.max_width,
        grip_force_n=spec.grip_force,
        finger_length=spec.finger_length,
        finger_friction=spec.finger_friction,
        close_speed=spec.close_speed,
        tcp_offset=spec.tcp_offset,
        mass=spec.mass,
    )


def _add_pick_and_place(
    cell: Cell, loaded: LoadedScenario, programs: dict[str, str | Path]
) -> None:
    """Stations, part sources and sensors of a scenario, as cell devices, in that order."""
    from robocell.pnp import (
        Bin,
        BreakBeam,
        Camera,
        Conveyor,
        FixedInterval,
        Fixture,
        ListArrivals,
        Pallet,
        PartSource,
        PartType,
        PoissonArrivals,
        PresenceSensor,
    )

    scn = loaded.scenario

    def located(
        path: tuple[str | int, ...], exc: ScenarioError, keys: dict[str, str] | None = None
    ) -> ScenarioError:
        return _located_in(loaded, path, exc, keys)

    for i, st in enumerate(scn.stations):
        fld: tuple[str | int, ...] = ("stations", i)
        try:
            if st.type == "conveyor":
                dev: Any = Conveyor(
                    st.name,
                    st.pose.se3(),
                    length=st.length,
                    width=st.width,
                    speed=st.speed,
                    running=st.running,
                    accel=st.accel,
                    end=st.end,
                    outfeed=st.outfeed,
                    friction=st.friction,
                )
            elif st.type == "bin":
                dev = Bin(
                    st.name, st.pose.se3(), size=st.size, wall=st.wall, unload_after=st.unload_after
                )
            elif st.type == "pallet":
                px, py = st.pitch
                size = (st.cols * px, st.rows * py, st.thickness)
                dev = Pallet(
                    st.name, st.pose.se3(), st.rows, st.cols, (px, py), size, st.unload_after
                )
            elif st.type == "machining":
                _add_machining(cell, loaded, st, fld, programs.get(st.name))
                continue
            else:
                dev = Fixture(
                    st.name,
                    st.pose.se3(),
                    st.size,
                    tolerance=st.tolerance,
                    unload_after=st.unload_after,
                )
            cell.add_device(dev)
        except ScenarioError as exc:
            if exc.file is not None:
                raise
            raise located(fld, exc) from None

    for i, ps in enumerate(scn.parts):
        fld = ("parts", i)
        belt = cell.devices.get(ps.on)
        if not isinstance(belt, Conveyor):
            conveyors = [n for n, d in cell.devices.items() if isinstance(d, Conveyor)]
            raise loaded.error(
                (*fld, "on"),
                f"'{ps.on}' is not a conveyor (conveyors: {', '.join(conveyors) or 'none'})",
            )
        types = []
        for j, ts in enumerate(ps.types):
            file = ts.file
            if file is not None and not Path(file).is_absolute():
                file = str(loaded.base_dir / file)
            try:
                types.append(
                    PartType(
                        ts.name or f"{ts.shape}{j + 1}",
                        ts.shape,
                        size=ts.size,
                        radius=ts.radius,
                        height=ts.height,
                        file=file,
                        scale=ts.scale,
                        mass=ts.mass,
                        friction=ts.friction,
                        color=ts.color,
                        share=ts.share,
                    )
                )
            except ScenarioError as exc:
                raise located((*fld, "types", j), exc) from None
        ar = ps.arrivals
        try:
            if ar.process == "fixed":
                arrivals: Any = FixedInterval(ar.interval, ar.start)
            elif ar.process == "poisson":
                arrivals = PoissonArrivals(ar.rate_per_min, ar.start)
            else:
                arrivals = ListArrivals(ar.times)
        except ScenarioError as exc:
            raise located((*fld, "arrivals"), exc, ARRIVALS_KEYS) from None
        if ps.at > belt.length:
            raise loaded.error(
                (*fld, "at"), f"{ps.at} m is beyond the end of '{ps.on}' ({belt.length} m long)"
            )
        if ps.jitter.y >= belt.width / 2:
            raise loaded.error(
                (*fld, "jitter", "y"),
                f"{ps.jitter.y} m must be less than half the width of '{ps.on}' "
                f"({belt.width / 2} m): parts would land off the belt",
            )
        name = ps.name or f"{ps.on}_source"
        if name in cell.devices:
            what = "the source's name" if ps.name else f"the source's default name '{name}'"
            raise loaded.error(
                (*fld, "name") if ps.name else fld,
                f"{what} is taken by another station, source or gripper; give the source a "
                "unique name",
            )
        try:
            cell.add_device(
                PartSource(
                    name,
                    types,
                    arrivals,
                    conveyor=belt,
                    at=ps.at,
                    jitter_lateral=ps.jitter.y,
                    jitter_yaw_deg=ps.jitter.yaw_deg,
                    max_parts=ps.max_parts,
                )
            )
        except ScenarioError as exc:
            raise located(
                fld, exc, {"jitter_lateral": "jitter.y", "jitter_yaw_deg": "jitter.yaw_deg"}
            ) from None

    for i, ss in enumerate(scn.sensors):
        fld = ("sensors", i)
        try:
            if ss.type == "beam":
                if ss.station is not None:
                    belt = cell.devices.get(ss.station)
                    if not isinstance(belt, Conveyor):
                        raise loaded.error((*fld, "station"), f"'{ss.station}' is not a conveyor")
                    if ss.at is not None and ss.at > belt.length:
                        raise loaded.error(
                            (*fld, "at"),
                            f"{ss.at} m is beyond the end of '{ss.station}' ({belt.length} m long)",
                        )
                    dev = BreakBeam.across(ss.name, belt.info(), ss.at, ss.height)
                else:
                    if ss.start == ss.end:
                        raise loaded.error(
                            (*fld, "end"), f"the beam's start and end are the same point {ss.end}"
                        )
                    dev = BreakBeam(ss.name, ss.start, ss.end)
            elif ss.type == "presence":
                dev = PresenceSensor(ss.name, ss.pose.se3(), ss.size)
            else:
                if ss.looks_at is not None:
                    target = cell.devices.get(ss.looks_at)
                    if target is None or not hasattr(target, "info"):
                        raise loaded.error((*fld, "looks_at"), f"no station '{ss.looks_at}'")
                    region = _region_of(target.info())
                    if region is None:
                        raise loaded.error(
                            (*fld, "looks_at"), f"a camera cannot look at '{ss.looks_at}'"
                        )
                else:
                    assert ss.region_pose is not None and ss.region_size is not None
                    region = (ss.region_pose.se3(), ss.region_size)
                try:
                    cell.world.steps_for(ss.period, "the camera period")
                except ScenarioError as exc:
                    raise loaded.error((*fld, "period"), exc.message) from None
                dev = Camera(
                    ss.name,
                    pose=ss.pose.se3() if ss.pose is not None else None,
                    region=region,
                    period_s=ss.period,
                    noise_xy_m=ss.noise_xy,
                    noise_yaw_deg=ss.noise_yaw_deg,
                    miss_rate=ss.miss_rate,
                    latency_s=ss.latency,
                )
            cell.add_device(dev)
        except ScenarioError as exc:
            if exc.file is not None:
                raise
            raise located(fld, exc, SENSOR_KEYS) from None


#: height of a camera's field of view above the surface it looks at [m]
CAMERA_DEPTH = 0.3


def _add_machining(
    cell: Cell,
    loaded: LoadedScenario,
    st: Any,
    fld: tuple[str | int, ...],
    program: str | Path | None = None,
) -> None:
    """A machining station: parse its program (G-code errors name the program's file and line),
    plan it for the robot (an unreachable point names its G-code line) and cut the nominal
    part."""
    import math

    from robocell.machining.cutters import Cutter
    from robocell.machining.device import MachiningSetup, MachiningStation
    from robocell.machining.forces import material
    from robocell.machining.gcode import parse_file

    robot = st.robot or next(iter(cell.robots))
    if robot not in cell.robots:
        raise loaded.error(
            (*fld, "robot"), f"no robot named '{robot}'; robots: {', '.join(cell.robots)}"
        )
    rspec = next(r for r in loaded.scenario.robots if r.name == robot)
    if rspec.backend is not None:
        raise loaded.error(
            (*fld, "robot"),
            f"robot '{robot}' has a bridge backend; a machining robot must be simulated (the "
            "cutting force deflects the simulated arm, a remote robot only mirrors its encoders)",
        )
    override = program is not None  # a program checked against this cell (robocell gcode)
    prog_path = Path(program if program is not None else st.program)
    if program is None and not prog_path.is_absolute():
        prog_path = loaded.base_dir / prog_path
    if not prog_path.is_file():
        raise loaded.error((*fld, "program"), f"no G-code file {prog_path}")
    program = parse_file(prog_path, lenient=st.lenient)
    try:
        mat = material(st.material)
    except (ScenarioError, KeyError, ValueError) as exc:
        raise loaded.error((*fld, "material"), getattr(exc, "message", str(exc))) from None
    c = st.cutter
    try:
        cutter = Cutter(
            c.type,
            c.diameter,
            corner_radius=c.corner_radius,
            flutes=c.flutes,
            flute_length=c.flute_length,
        )
    except (ScenarioError, ValueError) as exc:
        raise loaded.error((*fld, "cutter"), getattr(exc, "message", str(exc))) from None
    offsets = {k: v.se3() for k, v in (st.work_offsets or {}).items()}
    try:
        setup = MachiningSetup(
            stock_pose=st.stock.pose.se3(),
            stock_size=tuple(st.stock.size),
            cutter=cutter,
            material=mat,
            grid=st.stock.grid,
            work_offsets=offsets,
            tool_spin=math.radians(st.tool_spin_deg),
            rapid_speed=st.rapid_speed,
            max_acceleration=st.max_acceleration,
            corner_tolerance=st.corner_tolerance,
            spindle_max_rpm=st.spindle.max_rpm,
            spindle_power=st.spindle.power,
        )
    except ScenarioError as exc:
        raise loaded.error((*fld, "stock"), exc.message) from None
    try:
        cell.add_device(MachiningStation(st.name, robot, program, setup))
    except KinematicsError as exc:
        m = re.match(r"line (\d+): (.*)", exc.message, re.S)
        line, what = (int(m.group(1)), m.group(2)) if m else (None, exc.message)
        if override:  # the program is at fault, not the scenario
            raise ScenarioError(
                f"{what} (in station '{st.name}' of {loaded.file})",
                file=str(prog_path),
                line=line,
            ) from None
        where = f"{prog_path}:{line}" if line else f"{prog_path}"
        raise loaded.error((*fld, "program"), f"{where}: {what}") from None
    except ScenarioError as exc:
        if exc.field != "grid" or exc.file is not None:
            raise
        raise loaded.error((*fld, "stock", "grid"), exc.message) from None


def _region_of(info: dict[str, Any]) -> tuple[Any, tuple[float, float, float]] | None:
    """The box a camera sees when it looks at a station: the station's top, 0.3 m deep."""
    from spatialmath import SE3

    pose = info.get("pose")
    if pose is None:
        return None
    if info.get("type") == "conveyor":
        size = (info["length"], info["width"], CAMERA_DEPTH)
    elif "size" in info:
        sx, sy = float(info["size"][0]), float(info["size"][1])
        size = (sx, sy, CAMERA_DEPTH)
    else:
        return None
    return SE3(pose) * SE3(0, 0, CAMERA_DEPTH / 2), size


def _has_key(loaded: LoadedScenario, path: tuple[str | int, ...]) -> bool:
    return tuple(path) in loaded.lines


#: a device's field (the end of its ScenarioError.field) -> the scenario key it comes from
GRIPPER_KEYS = {"grip_force_n": "grip_force"}
ARRIVALS_KEYS = {"interval_s": "interval", "start_s": "start", "times_s": "times"}
SENSOR_KEYS = {
    "region.size": "region_size",
    "region": "region_pose",
    "conveyor.direction": "station",
    "period_s": "period",
    "noise_xy_m": "noise_xy",
    "latency_s": "latency",
}


def _located_in(
    loaded: LoadedScenario,
    path: tuple[str | int, ...],
    exc: ScenarioError,
    keys: dict[str, str] | None = None,
) -> ScenarioError:
    """A device's ScenarioError located at the spec at ``path``: at the spec's key when the
    device's field (``devices.<name>.<key>``, ``<name>.region.size``, ``gripper.mass``,
    ``arrivals.times_s[2]``) ends in one that the file gives (after renaming by ``keys``), else
    at the spec."""
    sub = getattr(exc, "field", None) or ""
    m = re.fullmatch(r"(.*?)(?:\[(\d+)\])?", sub)
    base, index = (m.group(1), m.group(2)) if m else (sub, None)
    key = base.rsplit(".", 1)[-1]
    for dev_key, spec_key in (keys or {}).items():
        if base == dev_key or base.endswith("." + dev_key):
            key = spec_key
            break
    sub_path: tuple[str | int, ...] = tuple(key.split(".")) if key else ()
    if sub_path and index is not None:
        sub_path = (*sub_path, int(index))
    known = bool(sub_path) and _has_key(loaded, (*path, *sub_path[:1]))
    return loaded.error((*path, *sub_path) if known else path, exc.message)


def _split(key: str) -> tuple[str | int, ...]:
    from robocell.scenario.loader import parse_field

    return parse_field(key)
