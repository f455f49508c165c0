"""Milling cutter shapes: flat end mill, ball-nose and bull-nose (torus) cutters.

Every cutter is described by the height of its lower (cutting) surface above its tip as a
function of the radial distance ``r`` from the tool axis. All three shapes are the Minkowski
sum of a horizontal disc of radius ``D/2 - r_c`` and a ball of radius ``r_c`` (the corner
radius), lifted so that its lowest point is the tip:

* flat:      ``r_c = 0``      height(r) = 0                                   for r <= D/2
* ball:      ``r_c = D/2``    height(r) = R - sqrt(R^2 - r^2)
* bull-nose: ``0 < r_c < D/2`` height(r) = 0 for r <= R0, else r_c - sqrt(r_c^2 - (r - R0)^2)

with ``R = D/2`` and ``R0 = R - r_c``. Outside the cutter (r > R) the height is +inf. The tool
axis is the +z axis of the workpiece frame (3-axis machining); the cutter points down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robocell.errors import ScenarioError

CUTTER_KINDS = ("flat", "ball", "bullnose")


@dataclass(frozen=True)
class Cutter:
    """A milling cutter.

    Attributes:
        kind: ``"flat"``, ``"ball"`` or ``"bullnose"``.
        diameter: cutting diameter D [m].
        corner_radius: corner radius r_c [m]; bull-nose only (0 < r_c < D/2). For a ball cutter it
            is D/2 whatever is given (pass 0 or D/2); for a flat cutter it must be 0.
        flutes: number of teeth z.
        flute_length: cutting length [m]; material higher than this above the tip touches the
            shank (reported by :class:`~robocell.machining.stock.Cut`, not modelled as cutting).
        helix_deg: helix angle [deg]; not used by the mean-force model (see forces.py).
    """

    kind: str
    diameter: float
    corner_radius: float = 0.0
    flutes: int = 2
    flute_length: float = 0.025
    helix_deg: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in CUTTER_KINDS:
            raise ScenarioError(
                f"unknown cutter kind {self.kind!r}; choose one of {', '.join(CUTTER_KINDS)}",
                field="cutter.kind",
            )
        if not (np.isfinite(self.diameter) and self.diameter > 0.0):
            raise ScenarioError(
                f"cutter diameter must be a positive length in m, got {self.diameter!r}",
                field="cutter.diameter",
            )
        radius = 0.5 * self.diameter
        if self.kind == "flat" and self.corner_radius != 0.0:
            raise ScenarioError(
                f"a flat cutter has no corner radius, got {self.corner_radius!r} m "
                "(use the bullnose type)",
                field="cutter.corner_radius",
            )
        if self.kind == "ball" and self.corner_radius not in (0.0, radius):
            raise ScenarioError(
                f"a ball cutter's corner radius is D/2 = {radius:g} m, got {self.corner_radius!r}",
                field="cutter.corner_radius",
            )
        if self.kind == "bullnose" and not (0.0 < self.corner_radius < radius):
            raise ScenarioError(
                f"a bull-nose corner radius must satisfy 0 < r < D/2 = {radius:g} m, "
                f"got {self.corner_radius!r}",
                field="cutter.corner_radius",
            )
        if int(self.flutes) != self.flutes or self.flutes < 1:
            raise ScenarioError(
                f"flutes must be a positive integer, got {self.flutes!r}", field="cutter.flutes"
            )
        if not (self.flute_length > 0.0):
            raise ScenarioError(
                f"flute_length must be positive [m], got {self.flute_length!r}",
                field="cutter.flute_length",
            )
        if not (0.0 <= self.helix_deg < 90.0):
            raise ScenarioError(
                f"helix_deg must be in [0, 90), got {self.helix_deg!r}", field="cutter.helix_deg"
            )

    @property
    def radius(self) -> float:
        """R = D/2 [m]."""
        return 0.5 * self.diameter

    @property
    def corner(self) -> float:
        """Effective corner radius r_c [m]: 0 flat, D/2 ball, ``corner_radius`` bull-nose."""
        if self.kind == "ball":
            return self.radius
        return self.corner_radius

    @property
    def flat_radius(self) -> float:
        """R0 = R - r_c [m], the radius of the flat part of the bottom."""
        return self.radius - self.corner

    def height(self, r: np.ndarray) -> np.ndarray:
        """Height of the lower surface above the tip at radial distance ``r`` [m]; +inf for r > R.

        ``r`` may have any shape; the result has the same shape.
        """
        r = np.asarray(r, dtype=float)
        out = np.full(r.shape, np.inf)
        inside = r <= self.radius
        rc = self.corner
        if rc == 0.0:
            out[inside] = 0.0
            return out
        s = np.clip(r[inside] - self.flat_radius, 0.0, rc)
        out[inside] = rc - np.sqrt(np.maximum(rc * rc - s * s, 0.0))
        return out

    def radius_at_height(self, h: float) -> float:
        """Radius [m] of the cutter's section at height ``h`` above the tip (inverse of height).

        This is the effective cutting radius at axial depth of cut ``h``: R for a flat cutter, and
        for ball / bull-nose cutters R0 + sqrt(r_c^2 - (r_c - h)^2) while h < r_c, else R.
        """
        rc = self.corner
        if h <= 0.0:
            return self.flat_radius
        if rc == 0.0 or h >= rc:
            return self.radius
        return self.flat_radius + float(np.sqrt(rc * rc - (rc - h) ** 2))
