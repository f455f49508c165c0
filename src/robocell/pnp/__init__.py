"""Pick-and-place cells: conveyors, parts and their sources, grippers, sensors and stations."""
