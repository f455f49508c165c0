"""Machining cells: G-code programs, dexel stock, cutters, cutting forces and the machining device.

Modules: :mod:`~robocell.machining.gcode` (RS274/NGC interpreter), :mod:`~robocell.machining.stock`
(height-field stock and swept-volume removal), :mod:`~robocell.machining.cutters` (tool shapes),
:mod:`~robocell.machining.forces` (Kienzle cutting forces and the material table).
"""
