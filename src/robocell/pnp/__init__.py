"""Pick-and-place cells: conveyors, parts and their sources, grippers, sensors and stations.

Every piece is a cell device (:class:`robocell.cell.devices.Device`)::

    from robocell import Cell
    from robocell.pnp import Bin, Conveyor, FixedInterval, PartSource, PartType, VacuumGripper

    cell = Cell(seed=1)
    belt = cell.add_device(Conveyor("infeed", pose, length=2.0, width=0.4, speed=0.2))
    cell.add_device(PartSource("src", [PartType("box", "box", size=(0.05,) * 3, mass=0.1)],
                               FixedInterval(4.0), conveyor=belt))
    cell.add_robot("ur5e", base=base, tool=VacuumGripper(cup_diameter=0.03))
"""

from robocell.pnp.conveyor import Conveyor
from robocell.pnp.grippers import GripperState, ParallelGripper, VacuumGripper, mount_gripper
from robocell.pnp.parts import (
    FixedInterval,
    ListArrivals,
    PartSource,
    PartType,
    PoissonArrivals,
)
from robocell.pnp.sensors import BreakBeam, Camera, PresenceSensor
from robocell.pnp.stations import Bin, Fixture, Pallet, PartMonitor, Station

__all__ = [
    "Bin",
    "BreakBeam",
    "Camera",
    "Conveyor",
    "FixedInterval",
    "Fixture",
    "GripperState",
    "ListArrivals",
    "Pallet",
    "ParallelGripper",
    "PartMonitor",
    "PartSource",
    "PartType",
    "PoissonArrivals",
    "PresenceSensor",
    "Station",
    "VacuumGripper",
    "mount_gripper",
]
