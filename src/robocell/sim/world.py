"""The World: one pybullet physics client, addressed only by its id, with a fixed-step clock.

Every pybullet call in robocell names ``physicsClientId`` so that two Worlds in one process never
see each other (pybullet's implicit "current client" is never used).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as pb
from spatialmath import SE3, UnitQuaternion

from robocell.errors import RobocellError, ScenarioError


@dataclass(frozen=True)
class Contact:
    """One contact point reported by the physics engine (SI units, world frame)."""

    body_a: int
    body_b: int
    link_a: int  # -1 is the base
    link_b: int
    position_on_a: tuple[float, float, float]
    normal_on_b: tuple[float, float, float]
    distance: float  # m, negative when penetrating
    normal_force: float  # N


def pose_to_pb(pose: SE3) -> tuple[list[float], list[float]]:
    """SE3 -> (position xyz, quaternion xyzw) in pybullet's convention."""
    q = UnitQuaternion(pose.R).vec  # s, x, y, z
    return list(pose.t), [q[1], q[2], q[3], q[0]]


def pb_to_pose(pos: Sequence[float], quat_xyzw: Sequence[float]) -> SE3:
    """pybullet (position, quaternion xyzw) -> SE3."""
    x, y, z, w = quat_xyzw
    T = UnitQuaternion([w, x, y, z]).SE3()
    T.t = np.asarray(pos, dtype=float)
    return T


class World:
    """A physics world with a fixed step, gravity and a seeded random generator.

    Args:
        physics_step: integration step in [s] (default 1 ms). Sensor and control periods must be
            whole multiples of it.
        gravity: gravity vector in [m/s²], world frame.
        seed: seed of the world's :class:`numpy.random.Generator` (the only randomness source).
        gui: open pybullet's GUI instead of the headless DIRECT engine.
        solver_iterations: constraint solver iterations per step.
    """

    def __init__(
        self,
        physics_step: float = 1e-3,
        gravity: Sequence[float] = (0.0, 0.0, -9.81),
        seed: int = 0,
        gui: bool = False,
        solver_iterations: int = 50,
    ) -> None:
        if not (np.isfinite(physics_step) and 1e-5 <= physics_step <= 0.05):
            raise ScenarioError(
                f"physics_step must be between 1e-5 and 0.05 s, got {physics_step!r}",
                field="world.physics_step",
            )
        self.physics_step = float(physics_step)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.gui = gui
        if (
            gui
            and sys.platform.startswith("linux")
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        ):
            # pybullet's GUI would end the whole process without a display
            raise RobocellError(
                "the GUI needs a display (DISPLAY is not set); run without --gui for a headless run"
            )
        mode = pb.GUI if gui else pb.DIRECT
        self.client: int = pb.connect(mode)
        if self.client < 0:
            raise RobocellError("could not start a pybullet physics client")
        cid = self.client
        pb.resetSimulation(physicsClientId=cid)
        pb.setGravity(*gravity, physicsClientId=cid)
        pb.setPhysicsEngineParameter(
            fixedTimeStep=self.physics_step,
            numSolverIterations=int(solver_iterations),
            numSubSteps=0,
            deterministicOverlappingPairs=1,
            physicsClientId=cid,
        )
        if gui:
            pb.configureDebugVisualizer(pb.COV_ENABLE_GUI, 0, physicsClientId=cid)
        self.gravity = tuple(float(g) for g in gravity)
        self._steps = 0
        self._closed = False

    # -- clock ---------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of physics steps taken so far."""
        return self._steps

    @property
    def time(self) -> float:
        """Simulated time in [s] (step count x step, so it never drifts)."""
        return self._steps * self.physics_step

    def steps_for(self, period: float, what: str = "period") -> int:
        """Whole number of physics steps in ``period`` [s]; raises if it is not a multiple."""
        n = round(period / self.physics_step)
        if n < 1 or abs(n * self.physics_step - period) > 1e-9 * max(1.0, period):
            raise ScenarioError(
                f"{what} {period} s is not a whole multiple of the physics step "
                f"{self.physics_step} s"
            )
        return int(n)

    def step(self, n: int = 1, before_each: Sequence[Callable[[], None]] = ()) -> None:
        """Advance physics by ``n`` fixed steps, calling each of ``before_each`` (e.g. robot
        drives that move their setpoints) before every step."""
        cid = self.client
        sim = pb.stepSimulation  # (called positionally: parsing a keyword costs more)
        if len(before_each) == 1:  # the common cell: one robot's drives
            (f,) = before_each
            for _ in range(n):
                f()
                sim(cid)
                self._steps += 1
        elif before_each:
            for _ in range(n):
                for f in before_each:
                    f()
                sim(cid)
                self._steps += 1
        else:
            for _ in range(n):
                sim(cid)
            self._steps += n

    # -- bodies --------------------------------------------------------------------------------
    def load_urdf(
        self,
        path: str | Path,
        pose: SE3 | None = None,
        fixed_base: bool = True,
        self_collision: bool = False,
    ) -> int:
        """Load a URDF file; returns the pybullet body id."""
        path = Path(path)
        if not path.is_file():
            raise ScenarioError(f"URDF file not found: {path}")
        pos, orn = pose_to_pb(pose if pose is not None else SE3())
        flags = pb.URDF_USE_INERTIA_FROM_FILE
        if self_collision:
            flags |= pb.URDF_USE_SELF_COLLISION | pb.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS
        try:
            body = pb.loadURDF(
                str(path),
                pos,
                orn,
                useFixedBase=fixed_base,
                flags=flags,
                physicsClientId=self.client,
            )
        except pb.error as exc:
            raise ScenarioError(f"pybullet cannot load URDF {path}: {exc}") from None
        return body

    def add_ground(self, z: float = 0.0, friction: float = 0.8) -> int:
        """An infinite static ground plane at height ``z`` [m]."""
        cid = self.client
        shape = pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cid)
        body = pb.createMultiBody(0.0, shape, -1, [0, 0, z], physicsClientId=cid)
        pb.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=cid)
        return body

    def _create(self, col: int, vis: int, pose: SE3 | None, mass: float, friction: float) -> int:
        if mass < 0 or not np.isfinite(mass):
            raise ScenarioError(f"mass must be >= 0 kg, got {mass!r}")
        pos, orn = pose_to_pb(pose if pose is not None else SE3())
        cid = self.client
        body = pb.createMultiBody(mass, col, vis, pos, orn, physicsClientId=cid)
        # pybullet damps every body by default (0.04); real parts are not slowed by the air
        pb.changeDynamics(
            body,
            -1,
            lateralFriction=friction,
            linearDamping=0.0,
            angularDamping=0.0,
            physicsClientId=cid,
        )
        return body

    def add_box(
        self,
        size: Sequence[float],
        pose: SE3 | None = None,
        mass: float = 0.0,
        color: Sequence[float] = (0.6, 0.6, 0.6, 1.0),
        friction: float = 0.6,
    ) -> int:
        """A box of full ``size`` (x, y, z) [m]; ``mass`` 0 makes it static."""
        half = [float(s) / 2 for s in size]
        if len(half) != 3 or min(half) <= 0:
            raise ScenarioError(f"box size must be three positive lengths in m, got {size!r}")
        cid = self.client
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=cid)
        vis = pb.createVisualShape(
            pb.GEOM_BOX, halfExtents=half, rgbaColor=list(color), physicsClientId=cid
        )
        return self._create(col, vis, pose, mass, friction)

    def add_cylinder(
        self,
        radius: float,
        height: float,
        pose: SE3 | None = None,
        mass: float = 0.0,
        color: Sequence[float] = (0.6, 0.6, 0.6, 1.0),
        friction: float = 0.6,
    ) -> int:
        """A cylinder along its local z axis, ``radius`` and ``height`` in [m]."""
        if radius <= 0 or height <= 0:
            raise ScenarioError(f"cylinder needs radius and height > 0 m, got {radius}, {height}")
        cid = self.client
        col = pb.createCollisionShape(
            pb.GEOM_CYLINDER, radius=radius, height=height, physicsClientId=cid
        )
        vis = pb.createVisualShape(
            pb.GEOM_CYLINDER,
            radius=radius,
            length=height,
            rgbaColor=list(color),
            physicsClientId=cid,
        )
        return self._create(col, vis, pose, mass, friction)

    def add_sphere(
        self,
        radius: float,
        pose: SE3 | None = None,
        mass: float = 0.0,
        color: Sequence[float] = (0.6, 0.6, 0.6, 1.0),
        friction: float = 0.6,
    ) -> int:
        """A sphere of ``radius`` [m]."""
        if radius <= 0:
            raise ScenarioError(f"sphere radius must be > 0 m, got {radius}")
        cid = self.client
        col = pb.createCollisionShape(pb.GEOM_SPHERE, radius=radius, physicsClientId=cid)
        vis = pb.createVisualShape(
            pb.GEOM_SPHERE, radius=radius, rgbaColor=list(color), physicsClientId=cid
        )
        return self._create(col, vis, pose, mass, friction)

    def add_mesh(
        self,
        path: str | Path,
        pose: SE3 | None = None,
        mass: float = 0.0,
        scale: float = 1.0,
        color: Sequence[float] = (0.6, 0.6, 0.6, 1.0),
        friction: float = 0.6,
    ) -> int:
        """A mesh body from an OBJ or STL file (units of the file x ``scale`` = m).

        Static meshes (mass 0) collide with their exact triangles; dynamic ones with their convex
        hull, as pybullet requires.
        """
        path = Path(path)
        if path.suffix.lower() not in {".obj", ".stl"}:
            raise ScenarioError(f"mesh must be an .obj or .stl file, got {path.name}")
        if not path.is_file():
            raise ScenarioError(f"mesh file not found: {path}")
        cid = self.client
        s = [float(scale)] * 3
        flags = pb.GEOM_FORCE_CONCAVE_TRIMESH if mass == 0 else 0
        try:
            col = pb.createCollisionShape(
                pb.GEOM_MESH, fileName=str(path), meshScale=s, flags=flags, physicsClientId=cid
            )
            vis = pb.createVisualShape(
                pb.GEOM_MESH,
                fileName=str(path),
                meshScale=s,
                rgbaColor=list(color),
                physicsClientId=cid,
            )
        except pb.error as exc:
            raise ScenarioError(f"pybullet cannot read mesh {path}: {exc}") from None
        if col < 0:
            raise ScenarioError(f"pybullet cannot read mesh {path}")
        return self._create(col, vis, pose, mass, friction)

    def remove(self, body: int) -> None:
        pb.removeBody(body, physicsClientId=self.client)

    def num_bodies(self) -> int:
        return pb.getNumBodies(physicsClientId=self.client)

    def body_pose(self, body: int) -> SE3:
        """World pose of a body's base frame."""
        pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return pb_to_pose(pos, orn)

    def body_velocity(self, body: int) -> tuple[np.ndarray, np.ndarray]:
        """Linear [m/s] and angular [rad/s] velocity of a body's base, world frame."""
        lin, ang = pb.getBaseVelocity(body, physicsClientId=self.client)
        return np.array(lin), np.array(ang)

    # -- contacts ------------------------------------------------------------------------------
    def contacts(self, body_a: int | None = None, body_b: int | None = None) -> list[Contact]:
        """Contact points of the last step, optionally filtered by body."""
        kw: dict[str, int] = {}
        if body_a is not None:
            kw["bodyA"] = body_a
        if body_b is not None:
            kw["bodyB"] = body_b
        pts = pb.getContactPoints(physicsClientId=self.client, **kw)
        return [
            Contact(
                body_a=c[1],
                body_b=c[2],
                link_a=c[3],
                link_b=c[4],
                position_on_a=c[5],
                normal_on_b=c[7],
                distance=c[8],
                normal_force=c[9],
            )
            for c in pts
        ]

    def contact_pairs(self, body: int) -> list[tuple[int, int, int, int]]:
        """``(body_a, link_a, body_b, link_b)`` of every contact point of ``body`` (as body A)
        in the last step: the lean form of :meth:`contacts` for checks that run every tick."""
        return [
            (c[1], c[3], c[2], c[4]) for c in pb.getContactPoints(body, -1, -2, -2, self.client)
        ]

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            pb.disconnect(physicsClientId=self.client)
            self._closed = True

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass
