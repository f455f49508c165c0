"""The machining station: a stock on the table, a program to cut, and the physics of the cut.

Every control tick the station reads the actual tool-tip position from the physics (where the
compliant robot really put the tool), sweeps the cutter from the previous tip position to it
through the height-field stock, turns the cut into a Kienzle cutting force, and applies that
force at the robot's TCP for the next tick (:meth:`SimRobot.set_tcp_load`: the joints deflect
by the robot's joint stiffness, so the next cut is made where the deflected tool is). It
publishes the force as a force/torque sensor would (``<name>.fx`` ``.fy`` ``.fz`` in the world
frame [N]) with the spindle power and the removed volume, and reads the spindle speed that the
controller commands (``<name>.spindle_rpm``; negative for M4). Cutting with the spindle
stopped or with the shank is a ``tool_crash`` event.

The chip thickness (feed per tooth) comes from the commanded feed, the tool-tip velocity that
the servos produce (motor-side joints), and the engagement from the material the actual tool
met: the deflection moves where the tool cuts, but its tick-to-tick wobble does not modulate
the chip. Modelling that modulation (regenerative chatter) would need the arm's vibration
modes, which the quasi-static joint springs do not have; without them the 2 ms force-deflection
loop would ring numerically instead of physically.

Before the run the station plans the program for its robot (reach, joint limits and joint
speeds over the whole program, :func:`~robocell.machining.toolpath.plan_toolpath`) and cuts the
nominal part: the same program swept through a copy of the stock by a perfectly rigid machine,
with the same removal code. After the run the actual stock is compared with it cell by cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet as pb
from spatialmath import SE3

from robocell.cell.devices import Device
from robocell.errors import ScenarioError
from robocell.machining.cutters import Cutter
from robocell.machining.forces import Material, cutting_load
from robocell.machining.stock import Cut, HeightField
from robocell.machining.toolpath import RAPID, ToolpathPlan, plan_toolpath
from robocell.sim.world import pose_to_pb

if TYPE_CHECKING:
    from robocell.cell.cell import Cell
    from robocell.machining.gcode import Program


@dataclass
class MachiningSetup:
    """What a machining station needs besides the program.

    ``stock_pose`` is the world pose of the stock frame: its origin at the stock's corner
    (minimum x and y) on its bottom face, z up through the stock; the tool axis is the stock's
    -z (3-axis machining). ``stock_size`` (x, y, z) [m]; ``grid`` the height-field cell [m].
    ``work_offsets`` maps ``G54``... to the program zero's pose in the stock frame (G54
    defaults to the top face above the corner, also when other offsets are given).
    ``tool_spin`` [rad] turns the TCP about the tool axis (to keep the wrist comfortable).
    Speeds and accelerations in SI.
    """

    stock_pose: SE3
    stock_size: tuple[float, float, float]
    cutter: Cutter
    material: Material
    grid: float = 0.0005
    work_offsets: dict[str, SE3] = field(default_factory=dict)
    tool_spin: float = 0.0
    rapid_speed: float = 0.25
    max_acceleration: float = 2.0
    corner_tolerance: float = 2e-5
    spindle_max_rpm: float = 24000.0
    spindle_power: float = 2200.0

    def __post_init__(self) -> None:
        if len(self.stock_size) != 3 or min(self.stock_size) <= 0:
            raise ScenarioError(f"stock size must be three lengths > 0 m, got {self.stock_size}")
        if not (0 < self.grid <= min(self.stock_size[:2]) / 4):
            raise ScenarioError(
                f"stock grid {self.grid} m must be > 0 and at most a quarter of the stock's "
                f"width {min(self.stock_size[:2])} m"
            )
        # G54 defaults to the top face above the stock frame's origin unless it is given
        self.work_offsets = {"G54": SE3(0, 0, self.stock_size[2]), **self.work_offsets}


class MachiningStation(Device):
    """A machining job for one robot: stock, program, cutter, material.

    Args:
        name: station name (prefix of its signals).
        robot: name of the robot that holds the spindle.
        program: the parsed G-code program.
        setup: stock, cutter, material and motion settings.
    """

    def __init__(self, name: str, robot: str, program: Program, setup: MachiningSetup) -> None:
        self.name = name
        self.robot_name = robot
        self.program = program
        self.setup = setup
        sx, sy, sz = setup.stock_size
        self.stock = HeightField(sx, sy, sz, cell=setup.grid)
        self.top = float(sz)
        self.nominal: HeightField | None = None
        self.plan: ToolpathPlan | None = None
        self._R = setup.stock_pose.R
        self._t = setup.stock_pose.t
        self._prev: np.ndarray | None = None
        self._rows: list[list[float]] = []
        self._crash = False
        self.crashes = 0
        self.rapid_cuts: list[int] = []
        #: (G-code line, why) of the cuts the nominal part already shows as crashes
        self.crash_lines: list[tuple[int, str]] = []
        self.done_t: float | None = None
        self.removed = 0.0
        #: filtered plunge rate [m^3/s] and commanded feed velocity (3,) [m/s]
        self._plunge = 0.0
        self._feed = np.zeros(3)
        self._signals = {k: f"{name}.{k}" for k in ("fx", "fy", "fz", "power", "removed")}
        self._rpm_key = f"{name}.spindle_rpm"

    # -- frames ----------------------------------------------------------------------------------
    def frames(self) -> dict[str, SE3]:
        """World pose of each work offset's program frame."""
        return {k: self.setup.stock_pose * T for k, T in self.setup.work_offsets.items()}

    def tool_rotation(self) -> np.ndarray:
        """TCP orientation in the world: z along the stock's -z, turned by ``tool_spin``."""
        return self._R @ (SE3.Rx(math.pi) * SE3.Rz(self.setup.tool_spin)).R

    def to_stock(self, p_world: np.ndarray) -> np.ndarray:
        return self._R.T @ (np.asarray(p_world, float) - self._t)

    # -- device hooks ----------------------------------------------------------------------------
    def attach(self, cell: Cell) -> None:
        if self.robot_name not in cell.robots:
            raise ScenarioError(
                f"machining station '{self.name}': no robot named '{self.robot_name}'; robots: "
                f"{', '.join(cell.robots)}",
                field="robot",
            )
        robot = cell.robots[self.robot_name]
        if not hasattr(robot, "set_tcp_load") or getattr(robot, "remote_name", None) is not None:
            raise ScenarioError(
                f"machining station '{self.name}': robot '{self.robot_name}' must be simulated "
                "(the cutting force deflects the simulated arm; a robot behind the bridge only "
                "mirrors its encoders)",
                field="robot",
            )
        for mv in self.program.moves:
            if mv.spindle_rpm > self.setup.spindle_max_rpm:
                # named at the S word, where the fix goes; the first move that would use it too
                raise ScenarioError(
                    f"{self.program.file}:{mv.spindle_line or mv.line}: S{mv.spindle_rpm:g} is "
                    f"above the spindle's max_rpm {self.setup.spindle_max_rpm:g} rev/min (the "
                    f"move on line {mv.line} would run at it)",
                    field="spindle",
                )
        self.robot = robot
        self.plan = plan_for(self, robot)
        self.nominal, self.rapid_cuts, self.crash_lines, self.predicted_force = cut_nominal(self)
        # the stock as a visual-only body (the cut is computed in the height field; a
        # collision shape would make the tool collide with material it is cutting)
        cid = cell.world.client
        half = [s / 2 for s in self.setup.stock_size]
        vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=half, rgbaColor=[0.75, 0.78, 0.82, 1.0], physicsClientId=cid
        )
        centre = self.setup.stock_pose * SE3(*half)
        pos, orn = pose_to_pb(centre)
        self.body = pb.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=-1,
            baseVisualShapeIndex=vis,
            basePosition=pos,
            baseOrientation=orn,
            physicsClientId=cid,
        )

    def _commanded_tip(self) -> np.ndarray:
        """Where the servos put the tool tip: forward kinematics of the joint setpoint (stock
        frame) [m]."""
        robot = self.robot
        T = robot.kinematics.fkine_array(robot.setpoint())
        return self.to_stock(self._base_R @ T[:3, 3] + self._base_t)

    def start(self, cell: Cell) -> None:
        self._base_R = self.robot.base.R
        self._base_t = self.robot.base.t
        self._prev_cmd = self._commanded_tip()
        self._prev = self.to_stock(self.robot.tcp_position())
        for k in self._signals.values():
            cell.signals[k] = 0.0
        cell.signals.setdefault(self._rpm_key, 0.0)

    def sense(self, cell: Cell) -> None:
        robot = self.robot
        p = self.to_stock(robot.tcp_position())
        prev = self._prev if self._prev is not None else p
        cut = self.stock.sweep(self.setup.cutter, prev, p, engagement=False)
        self._prev = p
        dt = cell.control_period
        cmd = self._commanded_tip()
        feed_velocity = (cmd - self._prev_cmd) / dt
        self._prev_cmd = cmd
        # the feed that sets the chip thickness: the commanded velocity, averaged over the time
        # the tool needs to cross two grid cells, so that path corrections of a few µm per tick
        # do not read as feed changes
        speed = max(float(np.linalg.norm(feed_velocity)), 1e-9)
        share = min(1.0, dt / min(max(2.0 * self.setup.grid / speed, 0.01), 0.2))
        self._feed += share * (feed_velocity - self._feed)
        feed_velocity = self._feed.copy()
        rpm = float(cell.signals.get(self._rpm_key, 0.0) or 0.0)
        force = np.zeros(3)
        power = 0.0
        self.removed += cut.volume
        engaged = self._engaged(p, cut, feed_velocity, share, dt)
        if engaged is not None or cut.volume > 0:
            # in the material: a crash (spindle stopped, shank cutting) counts once until the
            # tool leaves the material again
            crash = rpm == 0.0 or cut.shank_contact
            if crash and not self._crash:
                self.crashes += 1
                why = "spindle stopped" if rpm == 0.0 else "cut deeper than the flutes"
                cell.emit("tool_crash", station=self.name, reason=why, z=float(p[2]))
            self._crash = self._crash or crash
        else:
            self._crash = False
        if engaged is not None and rpm != 0.0:
            load = cutting_load(
                self.setup.material,
                self.setup.cutter,
                abs(rpm),
                1 if rpm > 0 else -1,
                feed_velocity,
                engaged,
                dt,
            )
            force = self._R @ load.force
            power = float(load.power)
        robot.set_tcp_load(force)
        sig = cell.signals
        s = self._signals
        sig[s["fx"]], sig[s["fy"]], sig[s["fz"]] = (float(x) for x in force)
        sig[s["power"]] = power
        sig[s["removed"]] = self.removed
        self._rows.append(
            [cell.time, *p.tolist(), *force.tolist(), power, cut.volume, engaged is not None]
        )
        if cell.done and self.done_t is None:
            self.done_t = cell.time

    def _engaged(
        self, p: np.ndarray, cut: Cut, v: np.ndarray, share: float, dt: float
    ) -> Cut | None:
        """The cut the force is computed from, or None when the tool is not in the material:
        the engagement of the tool at ``p`` along the commanded feed ``v`` (depth, width and
        side of the material ahead, measured on the height field), and the plunge rate
        averaged with the filter ``share`` of the feed.

        A tick moves the tool a few hundredths of a millimetre while the grid is tenths: the
        cells a single tick lowers come in bursts (a whole column, then nothing), so the plunge
        of one tick would jump between zero and several times its mean; the engagement ahead of
        the tool does not. Measuring it along the commanded feed keeps the deflection's
        tick-to-tick jitter from turning the force around."""
        self._plunge += share * (cut.plunge / dt - self._plunge)
        depth, width, direction = self.stock.engagement(self.setup.cutter, p, v[:2])
        plunge = self._plunge * dt
        # in the material: material ahead of the tool, or removed this tick, or still plunging
        # (the averaged plunge rate above 0.001 mm^3/s)
        if not (width > 0 or cut.volume > 0 or self._plunge > 1e-12):
            return None
        return Cut(
            volume=cut.volume,
            depth=depth,
            width=width,
            direction=direction,
            plunge=plunge,
            cells=cut.cells,
        )

    def info(self) -> dict[str, Any]:
        assert self.plan is not None
        return {
            "type": "machining",
            "robot": self.robot_name,
            "plan": self.plan,
            "program": self.program,
            "cutter": self.setup.cutter,
            "material": self.setup.material,
            "stock_pose": self.setup.stock_pose,
            "joint_stiffness": self.robot.model.joint_stiffness,
            "predicted_force": self.predicted_force,
            "spindle_max_rpm": self.setup.spindle_max_rpm,
            "spindle_power": self.setup.spindle_power,
            "signals": dict(self._signals, spindle_rpm=self._rpm_key),
        }

    # -- results ---------------------------------------------------------------------------------
    def series(self) -> dict[str, np.ndarray]:
        """Per tick: ``t`` [s], ``tip`` (k, 3) actual tool tip in the stock frame [m],
        ``force`` (k, 3) on the tool, world frame [N], ``power`` [W], ``removed`` [m^3],
        ``engaged`` (the tool was in the material: cutting)."""
        a = np.array(self._rows, float).reshape(-1, 10)
        return {
            "t": a[:, 0],
            "tip": a[:, 1:4],
            "force": a[:, 4:7],
            "power": a[:, 7],
            "removed": a[:, 8],
            "engaged": a[:, 9] > 0,
        }

    def programmed_path(self) -> tuple[np.ndarray, np.ndarray]:
        """Planned tool-tip points in the stock frame and their kind (RAPID/FEED)."""
        assert self.plan is not None
        P = (self.plan.points - self._t) @ self._R
        return P, self.plan.kind

    def kpis(self) -> dict[str, Any]:
        return machining_kpis(self)

    def write_outputs(self, out: Path, plots: bool = True) -> list[Path]:
        from robocell.record.machining_report import write_machining_outputs

        return write_machining_outputs(self, out, plots=plots)


def plan_for(station: MachiningStation, robot: Any) -> ToolpathPlan:
    """Plan the station's program for ``robot`` (raises KinematicsError naming the line)."""
    s = station.setup
    return plan_toolpath(
        station.program,
        robot,
        station.frames(),
        station.tool_rotation(),
        robot.state().q,
        rapid_speed=s.rapid_speed,
        max_acceleration=s.max_acceleration,
        corner_tolerance=s.corner_tolerance,
    )


def crash_summary(crash_lines: list[tuple[int, str]]) -> list[str]:
    """``(line, why)`` pairs as one text per reason: "cuts with the spindle stopped on lines 8-9,
    12"."""
    out = []
    for why in dict.fromkeys(w for _, w in crash_lines):
        lines = sorted({ln for ln, w in crash_lines if w == why})
        runs: list[list[int]] = []
        for ln in lines:
            if runs and ln == runs[-1][-1] + 1:
                runs[-1].append(ln)
            else:
                runs.append([ln])
        spans = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
        out.append(f"{why} on line{'s' if len(lines) > 1 else ''} {spans}")
    return out


def cut_nominal(
    station: MachiningStation,
) -> tuple[HeightField, list[int], list[tuple[int, str]], np.ndarray]:
    """The nominal part: the planned path swept by a rigid machine through a fresh stock.

    Also returns the G-code lines of rapid moves that cut material (a program error), the
    (line, why) of cuts that are tool crashes already in the plan (spindle stopped, deeper than
    the flutes), and the predicted cutting force at each planned point (N, 3) [N] (world
    frame): the force model applied to the nominal cut at the planned speed, which a
    compensation strategy can use before the tool gets there."""
    assert station.plan is not None
    plan = station.plan
    nominal = station.stock.copy()
    P, kind = station.programmed_path()
    setup = station.setup
    cutter = setup.cutter
    rapid_lines: list[int] = []
    crashes: dict[tuple[int, str], None] = {}  # (line, why), in order
    forces = np.zeros((len(P), 3))
    dts = np.diff(plan.t) - plan.dwell[1:]
    for i in range(1, len(P)):
        cut = nominal.sweep(cutter, P[i - 1], P[i], engagement=False)
        if cut.volume <= 1e-12:
            continue
        if kind[i] == RAPID:
            ln = int(plan.line[i])
            if ln not in rapid_lines:
                rapid_lines.append(ln)
            continue
        rpm = float(plan.spindle_rpm[i])
        why = (
            "cuts with the spindle stopped"
            if rpm == 0.0
            else ("cuts deeper than the flute length" if cut.shank_contact else "")
        )
        if why:
            crashes[(int(plan.line[i]), why)] = None
        dt = float(dts[i - 1])
        if rpm == 0.0 or dt <= 0:
            continue
        d = P[i] - P[i - 1]
        v = d / max(float(np.linalg.norm(d)), 1e-15) * 0.5 * (plan.speed[i] + plan.speed[i - 1])
        depth, width, direction = nominal.engagement(cutter, P[i], d[:2])
        engaged = Cut(cut.volume, depth, width, direction, cut.plunge, cut.cells)
        load = cutting_load(setup.material, cutter, abs(rpm), 1 if rpm > 0 else -1, v, engaged, dt)
        forces[i] = station._R @ load.force
    return nominal, rapid_lines, list(crashes), forces


def machining_kpis(st: MachiningStation) -> dict[str, Any]:
    """Surface error against the nominal part, removal, forces, power, times, path deviation."""
    assert st.nominal is not None and st.plan is not None
    ser = st.series()
    cell_area = st.setup.grid**2
    act, nom = st.stock.h, st.nominal.h
    machined = (nom < st.top - 1e-9) | (act < st.top - 1e-9)
    err = (act - nom)[machined]
    # floors: cells machined in both whose neighbours are too (walls excluded: there a sideways
    # error of half a cell moves a whole column of cells, see docs/machining.md)
    from scipy.ndimage import binary_erosion

    both = (nom < st.top - 1e-9) & (act < st.top - 1e-9)
    floor = binary_erosion(both, structure=np.ones((3, 3), bool), border_value=0)
    ferr = (act - nom)[floor]
    over = np.clip(nom - act, 0, None)  # actual below nominal: material cut away that should stay
    under = np.clip(act - nom, 0, None)  # material left that should be gone
    fmag = np.linalg.norm(ser["force"], axis=1)
    cutting = ser["engaged"]
    dt = float(np.median(np.diff(ser["t"]))) if len(ser["t"]) > 1 else 0.0
    t_cut = float(cutting.sum()) * dt
    removed = float(st.removed)
    out: dict[str, Any] = {
        "program": st.program.file,
        "cycle_time_s": st.done_t,
        "program_finished": st.done_t is not None,
        "planned_time_s": round(st.plan.duration, 6),
        "removed_volume_cm3": removed * 1e6,
        "nominal_removed_volume_cm3": _nominal_removed(st) * 1e6,
        "material_removal_rate_cm3_per_min": (removed * 1e6 / (t_cut / 60)) if t_cut else 0.0,
        "cutting_time_s": t_cut,
        "peak_force_n": float(fmag.max()) if fmag.size else 0.0,
        "mean_force_n": float(fmag[cutting].mean()) if cutting.any() else 0.0,
        "peak_spindle_power_w": float(ser["power"].max()) if ser["power"].size else 0.0,
        "mean_spindle_power_w": float(ser["power"][cutting].mean()) if cutting.any() else 0.0,
        "spindle_power_limit_w": st.setup.spindle_power,
        "surface_error_max_mm": float(np.abs(err).max() * 1e3) if err.size else 0.0,
        "surface_error_rms_mm": float(np.sqrt(np.mean(err**2)) * 1e3) if err.size else 0.0,
        "floor_error_max_mm": float(np.abs(ferr).max() * 1e3) if ferr.size else 0.0,
        "floor_error_rms_mm": float(np.sqrt(np.mean(ferr**2)) * 1e3) if ferr.size else 0.0,
        "overcut_volume_mm3": float(over.sum() * cell_area * 1e9),
        "undercut_volume_mm3": float(under.sum() * cell_area * 1e9),
        "tool_crashes": st.crashes,
        "rapid_moves_into_material": st.rapid_cuts,
        "planned_crashes": crash_summary(st.crash_lines),
        "feed_limited_lines": [fl.line for fl in st.plan.feed_limits],
    }
    out.update(_path_deviation(st, ser))
    return out


def _nominal_removed(st: MachiningStation) -> float:
    assert st.nominal is not None
    full = st.stock.copy()
    full.h[...] = st.top
    return float(full.volume() - st.nominal.volume())


def _path_deviation(st: MachiningStation, ser: dict[str, np.ndarray]) -> dict[str, float]:
    from robocell.record.machining_report import path_deviation

    P, _ = st.programmed_path()
    d = path_deviation(P, np.ones(len(P), bool), ser["tip"], ser["engaged"])
    d = d[np.isfinite(d)]
    if not d.size:
        return {"path_deviation_max_mm": 0.0, "path_deviation_rms_mm": 0.0}
    return {
        "path_deviation_max_mm": float(d.max() * 1e3),
        "path_deviation_rms_mm": float(np.sqrt(np.mean(d**2)) * 1e3),
    }
