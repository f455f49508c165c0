"""Simulation layer: the :class:`World` owns one pybullet client and the fixed-step clock."""

from robocell.sim.world import Contact, World

__all__ = ["Contact", "World"]
