"""World: isolation of clients, fixed-step clock, seeding, bodies and contacts."""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest
from spatialmath import SE3

from robocell.errors import ScenarioError
from robocell.sim import World


def test_two_worlds_do_not_see_each_other() -> None:
    a, b = World(), World()
    try:
        assert a.client != b.client
        n_a, n_b = a.num_bodies(), b.num_bodies()
        box = a.add_box([0.1, 0.1, 0.1], SE3(0, 0, 1.0), mass=1.0)
        assert a.num_bodies() == n_a + 1
        assert b.num_bodies() == n_b  # the box lives in world a only
        b.add_ground()
        a.step(500)  # a has no ground: its box falls freely
        b.step(10)
        z = a.body_pose(box).t[2]
        assert z == pytest.approx(1.0 - 0.5 * 9.81 * 0.5**2, abs=0.01)
        assert b.time == pytest.approx(0.01)
        assert a.time == pytest.approx(0.5)
    finally:
        a.close()
        b.close()


def test_free_fall_matches_physics_and_fixed_step() -> None:
    with World(physics_step=0.001, gravity=(0, 0, -9.81)) as w:
        ball = w.add_sphere(0.05, SE3(0, 0, 10.0), mass=2.0)
        w.step(1000)
        assert w.steps == 1000
        assert w.time == 1.0
        z = w.body_pose(ball).t[2]
        # semi-implicit Euler: z = z0 - g dt^2 n(n+1)/2
        assert z == pytest.approx(10.0 - 9.81 * 1e-6 * 1000 * 1001 / 2, abs=1e-6)


def test_box_resting_on_ground_has_contact_force_mg() -> None:
    with World() as w:
        ground = w.add_ground()
        box = w.add_box([0.2, 0.2, 0.1], SE3(0, 0, 0.05), mass=3.0)
        w.step(500)
        cs = w.contacts(body_a=box, body_b=ground)
        assert cs, "the box must touch the ground"
        assert sum(c.normal_force for c in cs) == pytest.approx(3.0 * 9.81, rel=0.01)
        assert w.contacts(body_a=box, body_b=box) == []


def test_seeded_generator_is_reproducible() -> None:
    with World(seed=7) as a, World(seed=7) as b, World(seed=8) as c:
        xa, xb, xc = a.rng.random(5), b.rng.random(5), c.rng.random(5)
    assert np.array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_mesh_body_from_obj(tmp_path) -> None:
    obj = tmp_path / "tetra.obj"
    obj.write_text("v 0 0 0\nv 0.1 0 0\nv 0 0.1 0\nv 0 0 0.1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    with World() as w:
        w.add_ground()
        body = w.add_mesh(obj, SE3(0, 0, 0.2), mass=0.1)
        w.step(1000)
        assert 0.0 <= w.body_pose(body).t[2] < 0.05  # fell and rests on the ground
        info = pb.getDynamicsInfo(body, -1, physicsClientId=w.client)
        assert info[0] == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [0.0, -0.001, float("nan"), 1.0])
def test_bad_physics_step_is_rejected(bad: float) -> None:
    with pytest.raises(ScenarioError, match="physics_step"):
        World(physics_step=bad)


def test_period_must_be_a_multiple_of_the_step() -> None:
    with World(physics_step=0.001) as w:
        assert w.steps_for(0.004) == 4
        with pytest.raises(ScenarioError, match="whole multiple"):
            w.steps_for(0.0025)
