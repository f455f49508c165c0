"""Stop-and-pick: the belt stops when a part breaks the beam, the robot picks it at rest.

The simplest pick-and-place sequence, and the one most cells start with. The belt follows one
PLC rule: it runs while the beam is clear and the robot is not picking. The robot waits above
the beam; when the belt has stopped with a part in the beam, the part's centre is half its
length behind the beam plus the distance the belt travelled since the beam broke. The robot goes
down (vacuum on), grips, lifts (then the belt restarts: the next part would run into the lifted
one), carries the part to the place station, lets go and comes back.

States (each is one ``elif`` in ``step``)::

    WAIT --part at rest in the beam--> DOWN --arrived--> GRIP --held--> LIFT --clear--> CARRY
     ^                                                    | (timeout: pick_failed)       |
     +--------------------- RETURN <-- RELEASE <--------------------------------arrived-+

Parameters (scenario ``controller.params``):
    beam: name of the break-beam sensor at the pick position (default: the only beam).
    conveyor, place, robot: device and robot names (default: the only one of each).
    speed: share of the joint limits for the moves, (0, 1] (default 0.6).
    approach: height of the waiting pose above the tallest part [m] (default 0.05).
    lift: how far a picked part is lifted straight up before it is carried [m] (default 0.05).
    carry_height: height of the carry moves above the belt [m] (default 0.15).
    grip_timeout: how long to wait for the gripper to hold a part [s] (default 0.6).
"""

from __future__ import annotations

import numpy as np

from robocell import Commands, ControllerContext, Marker, Observation
from robocell.control.arm import Arm
from robocell.control.pnp import Activity, PnpLayout, grip_time, release_time
from robocell.control.targets import number
from robocell.errors import ScenarioError


class StopAndPick:
    """Stop the belt at the beam, pick at rest, place, repeat."""

    def __init__(
        self,
        beam: str | None = None,
        conveyor: str | None = None,
        place: str | None = None,
        robot: str | None = None,
        speed: float = 0.6,
        approach: float = 0.05,
        lift: float = 0.05,
        carry_height: float = 0.15,
        grip_timeout: float = 0.6,
    ) -> None:
        self.beam_name = beam
        self.names = (robot, conveyor, place)
        self.speed = number(speed, "speed", low=0, low_open=True, high=1)
        self.approach = number(approach, "approach", low=0, low_open=True)
        self.lift = number(lift, "lift", low=0, low_open=True)
        self.carry_height = number(carry_height, "carry_height", low=0, low_open=True)
        self.grip_timeout = number(grip_timeout, "grip_timeout", low=0, low_open=True)

    def reset(self, ctx: ControllerContext) -> None:
        robot, conveyor, place = self.names
        self.cell = cell = PnpLayout(ctx, robot, conveyor, place)
        beams = {n: d for n, d in ctx.devices.items() if d.get("type") == "beam"}
        name = self.beam_name or (next(iter(beams)) if len(beams) == 1 else None)
        if name not in beams:
            raise ScenarioError(
                f"name the pick beam with 'beam' (beams: {', '.join(beams) or 'none'})",
                field="beam",
            )
        self.beam = name
        beam = beams[name]
        self.beam_signal = beam["signal"]
        self.beam_at = cell.along((np.asarray(beam["start"]) + np.asarray(beam["end"])) / 2)
        self.dt = cell.robot.control_period
        self.arm = Arm(cell.robot, self.speed)
        self.activity = Activity(cell.robot.name)
        tallest = max((cell.height(t) for t in cell.types), default=0.05)
        self.wait_point = cell.on_belt(self.beam_at)
        self.wait_point[2] += tallest + self.approach
        self.grip_dwell = grip_time(cell.gripper)
        self.release_dwell = release_time(cell.gripper)
        self.types: dict[int, str] = {}  # part id -> type, from the spawned events
        self.part = 0  # the part that broke the beam last
        self.travel = 0.0  # belt travel since then [m]
        self.running = True
        self.state = "START"
        self.t_state = ctx.t0

    def _go(self, state: str, t: float) -> None:
        self.state, self.t_state = state, t

    # -- the state machine -----------------------------------------------------------------------
    def step(self, obs: Observation) -> Commands:
        t, arm, cell = obs.t, self.arm, self.cell
        q = obs.robots[arm.name].q
        sig = obs.signals
        out = Commands()
        m = out.markers
        for ev in obs.events:
            if ev["kind"] == "spawned":
                self.types[ev["part"]] = ev["type"]
            elif ev["kind"] == "beam" and ev["name"] == self.beam and ev["edge"] == "rise":
                self.part, self.travel = ev["part"], 0.0
        speed = float(sig.get(cell.speed_signal, 0.0))
        self.travel += speed * self.dt
        # the PLC rule: the belt runs while the beam is clear and the robot is out of the way
        broken = bool(sig.get(self.beam_signal))
        run = not broken and self.state not in ("DOWN", "GRIP", "LIFT")
        if run != self.running:
            self.running = run
            out.signals[cell.running_signal] = run

        s = self.state
        if s == "START":
            arm.move_to(arm.tool_down(self.wait_point), t, what="wait pose")
            self.activity.set("busy", m)
            self._go("RETURN", t)
        elif s == "WAIT":
            if not broken:
                self.activity.set("idle", m)  # starved: no part
            elif abs(speed) > 1e-6:
                self.activity.set("blocked", m)  # the belt is stopping
            else:
                self.ptype = self.types.get(self.part, next(iter(cell.types)))
                centre = cell.on_belt(self.beam_at - cell.length(self.ptype) / 2 + self.travel)
                self.pick = cell.pick_point(centre, self.ptype)
                arm.move_to(arm.tool_down(self.pick), t, what="pick")
                out.signals[cell.grip_signal()] = True  # vacuum on while going down
                self.activity.set("busy", m)
                self._go("DOWN", t)
        elif s == "DOWN" and arm.idle(t, q):
            self._go("GRIP", t)
        elif s == "GRIP":
            if sig.get(cell.attached_signal) and t - self.t_state >= self.grip_dwell:
                up = self.pick + (0.0, 0.0, self.lift)
                arm.move_to(arm.tool_down(up), t, what="lift")
                self._go("LIFT", t)
            elif t - self.t_state > self.grip_timeout:
                m.append(Marker("pick_failed", {"robot": arm.name, "part": self.part}))
                out.signals[cell.grip_signal()] = False
                arm.move_to(arm.tool_down(self.wait_point), t, what="wait pose")
                self._go("RETURN", t)
        elif s == "LIFT" and not arm.moving(t):
            carry_z = cell.surface_z + self.carry_height
            place = cell.place_point(self.ptype, sig, drop_from=carry_z)
            if place is None:
                self.activity.set("blocked", m)  # the station is full
            else:
                self.place = place
                over = place.copy()
                over[2] = max(place[2], carry_z)
                arm.move_to(arm.tool_down(over), t, what="over place")
                if over[2] > place[2] + 1e-3:
                    arm.move_to(arm.tool_down(place), t, what="place")
                self.activity.set("busy", m)
                self._go("CARRY", t)
        elif s == "CARRY" and arm.idle(t, q):
            out.signals[cell.grip_signal()] = False
            cell.placed_one()
            self._go("RELEASE", t)
        elif s == "RELEASE" and t - self.t_state >= self.release_dwell:
            over = self.place.copy()
            over[2] = max(over[2], cell.surface_z + self.carry_height)
            if over[2] > self.place[2] + 1e-3:
                arm.move_to(arm.tool_down(over), t, what="over place")
            arm.move_to(arm.tool_down(self.wait_point), t, what="wait pose")
            self._go("RETURN", t)
        elif s == "RETURN" and arm.idle(t, q):
            self._go("WAIT", t)
        out.joints[arm.name] = arm.command(t)
        return out
