"""Conveyor tracking: pick parts on the fly, the belt never stops.

A camera upstream reports each part's position (with noise, misses and latency). The robot
predicts where a part will be from the detection and the belt speed, waits at a point a little
ahead of it, and when the part comes by it accelerates to the belt speed, goes down, grips and
lifts while moving with the belt, slows down and carries the part to the place station. Picks
are planned in the order the parts will leave the pick window (the most downstream first); a
part that cannot be reached before it leaves the window is left to the end of the belt.

The tracking move, in the belt's frame (``v`` belt speed, times relative to its start)::

    along the belt:  ramp up to v (sync)  | ride at v (down, grip, up) | ramp down to 0 (brake)
    height:          hover                | down   grip   up           | up

It starts ``v * sync / 2`` ahead of the part, so at the end of the ramp the tool is right above
it and moving with it.

States::

    IDLE --part chosen--> TRACK --held, segment done--> CARRY --arrived--> RELEASE --> IDLE
                            | (not held: pick_failed)
                            +----------------------------------------------------------> IDLE

Parameters (scenario ``controller.params``):
    window: [from, to] distances along the belt from its start [m] where the robot picks.
    pick_at: where in the window the robot prefers to meet a part [m along the belt] (default:
        the window's start: as early as possible): a part is met there when the robot is free
        in time, else as soon as it can be (a robot that is behind picks further downstream, up
        to the window's end). Waiting for a part to come further costs throughput when parts
        queue up; meeting it early costs longer moves.
    conveyor, place, robot: device and robot names (default: the only one of each).
    speed: share of the joint limits for the free moves, (0, 1] (default 0.6).
    carry_speed: share of the joint limits while holding a part (default: ``speed``).
    approach: hover height above the part top before going down [m] (default 0.04).
    lift: how far the part is lifted while riding with the belt [m] (default 0.05).
    carry_height: height of the carry moves above the belt [m] (default 0.15).
    sync, down, up, brake: durations of the tracking move's phases [s] (defaults 0.3, 0.2,
        0.2, 0.3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robocell import Commands, ControllerContext, Marker, Observation
from robocell.control.arm import Arm, smooth_ramp_distance, smoothstep
from robocell.control.pnp import Activity, PnpLayout, grip_time, release_time
from robocell.control.targets import number
from robocell.errors import KinematicsError, ScenarioError


class ConveyorTracking:
    """Pick on the fly at a predicted intercept, from camera detections and the belt speed."""

    def __init__(
        self,
        window: tuple[float, float],
        pick_at: float | None = None,
        conveyor: str | None = None,
        place: str | None = None,
        robot: str | None = None,
        speed: float = 0.6,
        carry_speed: float | None = None,
        approach: float = 0.04,
        lift: float = 0.05,
        carry_height: float = 0.15,
        sync: float = 0.3,
        down: float = 0.2,
        up: float = 0.2,
        brake: float = 0.3,
    ) -> None:
        try:
            lo, hi = (float(v) for v in window)
        except (TypeError, ValueError):
            raise ScenarioError(
                f"window must be [from, to] in m along the belt, got {window!r}", field="window"
            ) from None
        if not 0 <= lo < hi:
            raise ScenarioError(f"window must be 0 <= from < to, got {window!r}", field="window")
        self.window = (lo, hi)
        self.pick_at = lo if pick_at is None else number(pick_at, "pick_at", low=lo)
        if self.pick_at > hi:
            raise ScenarioError(f"pick_at {pick_at} m is past the window's end", field="pick_at")
        self.names = (robot, conveyor, place)
        self.speed = number(speed, "speed", low=0, low_open=True, high=1)
        self.carry_speed = (
            self.speed
            if carry_speed is None
            else number(carry_speed, "carry_speed", low=0, low_open=True, high=1)
        )
        self.approach = number(approach, "approach", low=0, low_open=True)
        self.lift = number(lift, "lift", low=0, low_open=True)
        self.carry_height = number(carry_height, "carry_height", low=0, low_open=True)
        self.t_sync = number(sync, "sync", low=0, low_open=True)
        self.t_down = number(down, "down", low=0, low_open=True)
        self.t_up = number(up, "up", low=0, low_open=True)
        self.t_brake = number(brake, "brake", low=0, low_open=True)

    def reset(self, ctx: ControllerContext) -> None:
        robot, conveyor, place = self.names
        self.cell = cell = PnpLayout(ctx, robot, conveyor, place)
        if self.window[1] > cell.belt_length:
            raise ScenarioError(
                f"window ends at {self.window[1]} m, past the belt's end ({cell.belt_length} m)",
                field="window",
            )
        self.arm = Arm(cell.robot, self.speed)
        self.activity = Activity(cell.robot.name)
        self.t_grip = grip_time(cell.gripper)
        self.release_dwell = release_time(cell.gripper)
        tallest = max((cell.height(t) for t in cell.types), default=0.05)
        self.home = cell.on_belt(self.pick_at)
        self.home[2] += tallest + self.approach
        self.arm.ik(self.arm.tool_down(self.home), what="window")  # reachable, or say so now
        self.tracks: dict[int, dict[str, Any]] = {}  # part id -> latest detection
        self.done_parts: set[int] = set()  # picked, skipped or gone
        self.state = "START"
        self.t_state = ctx.t0
        self.at_home = False
        self.next_try = ctx.t0

    # -- prediction and planning -----------------------------------------------------------------
    def _along_now(self, tr: dict[str, Any], t: float, v: float) -> float:
        """Where along the belt a tracked part is at time ``t`` [m]."""
        return tr["s"] + v * (t - tr["t"])

    def _plan(self, tr: dict[str, Any], t: float, v: float) -> float | None:
        """Queue the approach and the tracking move for a part; returns the tracking move's
        start time, or None when the part cannot be picked inside the window."""
        cell, arm = self.cell, self.arm
        hi = self.window[1]
        ride = self.t_down + self.t_grip + self.t_up
        total = self.t_sync + ride + self.t_brake
        lead = v * self.t_sync / 2  # the tool starts this far ahead of the part
        # the earliest start: the tool can be at the start point, and that point is in the window
        v_min = max(v, 1e-3)
        t_a = t + 0.05
        for _ in range(4):
            # start at the preferred point, or further on if the part is past it by then
            s_a = max(self._along_now(tr, t_a, v) + lead, self.pick_at - v * self.t_sync / 2)
            t_a = max(t_a, tr["t"] + (s_a - lead - tr["s"]) / v_min)
            start = cell.on_belt(s_a, tr["lateral"])
            start[2] = tr["z_pick"] + self.approach
            try:
                reach = arm.move_time(arm.tool_down(start, tr["yaw"]))
            except KinematicsError:
                return None
            t_a = max(t_a, t + reach + 0.02)
        s_a = self._along_now(tr, t_a, v) + lead
        s_end = s_a + v * (total - self.t_sync / 2 - self.t_brake / 2)
        if s_end > hi:
            return None
        start = cell.on_belt(s_a, tr["lateral"])
        z_hover = tr["z_pick"] + self.approach
        z_pick, z_up = tr["z_pick"], tr["z_pick"] + self.lift
        t1 = self.t_sync  # ramped up: starts down
        t3 = t1 + self.t_down + self.t_grip  # gripped: starts up
        t4 = t3 + self.t_up
        d = cell.direction

        def path(tau: np.ndarray) -> np.ndarray:
            # distance travelled along the belt: ramp up, ride, ramp down
            u1 = tau / self.t_sync
            ub = (tau - t4) / self.t_brake
            dist = v * self.t_sync * smooth_ramp_distance(u1) + v * np.clip(tau - t1, 0, t4 - t1)
            dist += v * self.t_brake * (np.clip(ub, 0, 1) - smooth_ramp_distance(ub))
            z = np.where(
                tau < t3,
                z_hover - (z_hover - z_pick) * smoothstep((tau - t1) / self.t_down),
                z_pick + (z_up - z_pick) * smoothstep((tau - t3) / self.t_up),
            )
            pts = start[None, :] + dist[:, None] * d[None, :]
            pts[:, 2] = z
            return pts

        start[2] = z_hover
        try:
            arm.move_to(arm.tool_down(start, tr["yaw"]), t, what="intercept")
            arm.follow(path, total, t, at=t_a, yaw=tr["yaw"], what="tracking move")
        except KinematicsError:
            arm.clear(t, arm.q_end)
            return None
        self.grip_on = t_a + t1  # vacuum on when the tool starts down
        self.grip_check = t_a + t3
        self.ptype = tr["type"]
        return t_a

    def _choose(self, t: float, v: float) -> int | None:
        """The part to pick next: the most downstream one that can still be picked."""
        order = sorted(
            (tr for pid, tr in self.tracks.items() if pid not in self.done_parts),
            key=lambda tr: -self._along_now(tr, t, v),
        )
        for tr in order:
            if self._along_now(tr, t, v) > self.window[1]:
                self.done_parts.add(tr["part"])
                continue
            if self._plan(tr, t, v) is not None:
                return tr["part"]
            self.done_parts.add(tr["part"])  # too late for this one
        return None

    def carry_speed_for(self, part_type: str, targets: list[np.ndarray]) -> float:
        """The speed share for carrying a part of this type through ``targets`` (world TCP
        points): here always ``carry_speed``; a subclass may choose per part."""
        return self.carry_speed

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
            k = ev["kind"]
            if k == "detected":
                x = np.asarray(ev["xyz"], float)
                s = cell.along(x)
                lateral = float(np.dot(x - cell.on_belt(s), np.cross([0, 0, 1], cell.direction)))
                self.tracks[ev["part"]] = {
                    "part": ev["part"],
                    "type": ev["type"],
                    "s": s,
                    "t": ev["t_capture"],
                    "lateral": lateral,
                    "yaw": 0.0,  # a round cup does not care about the part's yaw
                    "z_pick": cell.pick_point(x, ev["type"])[2],
                }
            elif k in ("picked", "missed", "dropped", "placed"):
                self.done_parts.add(ev["part"])
        v = float(sig.get(cell.speed_signal, cell.belt_speed))
        # forget parts that have left the window (and their ids)
        gone = [p for p, tr in self.tracks.items() if self._along_now(tr, t, v) > self.window[1]]
        for pid in gone:
            del self.tracks[pid]
            self.done_parts.discard(pid)

        s = self.state
        if s == "START":
            arm.move_to(arm.tool_down(self.home), t, what="home")
            self.activity.set("busy", m)
            self.at_home = True
            self._go("IDLE", t)
        elif s == "IDLE" and not arm.moving(t) and t >= self.next_try:
            self.next_try = t + 0.05  # planning solves IK: not every tick
            self.target = self._choose(t, v)
            if self.target is not None:
                self.done_parts.add(self.target)
                self.activity.set("busy", m)
                self.at_home = False
                self._go("TRACK", t)
            elif not self.at_home:
                arm.move_to(arm.tool_down(self.home), t, what="home")
                self.at_home = True
            else:
                self.activity.set("idle", m)
        elif s == "TRACK":
            if t >= self.grip_on and not sig.get(cell.grip_signal()):
                out.signals[cell.grip_signal()] = True
            if t >= self.grip_check and not arm.moving(t):
                if sig.get(cell.attached_signal):
                    carry_z = cell.surface_z + self.carry_height
                    place = cell.place_point(self.ptype, sig, drop_from=carry_z)
                    if place is None:
                        self.activity.set("blocked", m)
                        return self._hold(out, t)
                    self.place = place
                    over = place.copy()
                    over[2] = max(place[2], carry_z)
                    k = self.carry_speed_for(self.ptype, [over, place])
                    arm.move_to(arm.tool_down(over), t, speed=k, what="over place")
                    if over[2] > place[2] + 1e-3:
                        arm.move_to(arm.tool_down(place), t, speed=k, what="place")
                    self._go("CARRY", t)
                else:
                    m.append(Marker("pick_failed", {"robot": arm.name, "part": self.target}))
                    out.signals[cell.grip_signal()] = False
                    self._go("IDLE", t)
        elif s == "CARRY" and arm.idle(t, q):
            out.signals[cell.grip_signal()] = False
            cell.placed_one()
            self._go("RELEASE", t)
        elif s == "RELEASE" and t - self.t_state >= self.release_dwell:
            over = self.place.copy()
            over[2] = max(over[2], cell.surface_z + self.carry_height)
            if over[2] > self.place[2] + 1e-3:
                arm.move_to(arm.tool_down(over), t, what="over place")
            self._go("IDLE", t)
        return self._hold(out, t)

    def _hold(self, out: Commands, t: float) -> Commands:
        out.joints[self.arm.name] = self.arm.command(t)
        return out
