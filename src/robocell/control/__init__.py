"""Control layer: the Controller protocol, motion planning and move sequencing."""
