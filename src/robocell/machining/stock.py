"""Dexel (z-map) stock and exact swept-volume material removal for 3-axis milling.

The stock is a :class:`HeightField`: one top height per square grid cell over a rectangle of the
workpiece (stock) frame, with the material filling each column from ``bottom`` up to that height.
A cutter (tool axis = +z, pointing down) moving its tip on a straight segment ``p0 -> p1`` lowers
every cell whose centre lies under the swept volume to the lower envelope of the swept cutter::

    h_new(c) = max(bottom, min(h_old(c), min_{t in [0, 1]} z(t) + cutter.height(|c - xy(t)|)))

Modelling choices and accuracy (users should know these):

* **Cell-centre sampling.** A cell is cut to the envelope height at its *centre*; a column is
  either under the tool or not. Horizontal features (slot walls, pocket corners) are therefore
  resolved to one cell; removed volume converges with the cell size (an edge error of about half a
  cell along each wall).
* **Exact envelope for a straight segment, no skipped material.** The minimum over the segment is
  solved in closed form, so a 20 mm step removes the same material as 200 steps of 0.1 mm:
  flat cutter - the interval of the segment whose disc covers the centre (a quadratic), minimum of
  the linear tip height at its ends; ball cutter - lowest point of the swept sphere (a capsule:
  cylinder of radius R around the centre segment plus the two end spheres), closed form;
  bull-nose - the flat bottom disc (radius R - r_c) is exact as for the flat cutter, and the
  corner torus is evaluated at positions sub-sampled every ``cell / 4`` along the segment. Between
  two samples a torus column of horizontal radius rho >= R - r_c can miss at most the sagitta
  (cell/4)^2 / (8 rho) horizontally, i.e. well below 1 % of a cell for R - r_c >= 2 cells, and on a
  ramp the floor error is at most (cell / 4) * slope.
* **Heights never increase**; cutting below ``bottom`` clips at ``bottom`` (a through-cut: the
  column is empty, the removed volume counts only real material).
* **Long segments** (longer than ``max(R, 8 cells)``) are cut piecewise so that each window stays
  small; volume, plunge and changed cells are accounted over the whole segment.
* **Shank contact** is reported (``Cut.shank_contact``), not modelled: material standing higher
  than ``flute_length`` above the lowest tip position in the swept area is cut like the flutes.

Engagement (``Cut.depth``, ``Cut.width``, ``Cut.direction``) is measured on the material in
contact *ahead of* the cutter at ``p1``: the crescent the cutter would remove in the next cell of
travel along the feed direction (p1 - p0 in xy). It is not taken from this sweep's removed cells
because with control-tick steps of 0.01-0.1 mm on a 0.5 mm grid a sweep removes either nothing or a
whole row of cells, so ``removed volume / (a_p * travel)`` flickers between 0 and many times the
true width; the contact crescent does not. ``width`` is the crescent's extent normal to the feed
(plus one cell for the cell-centre sampling), clipped to D: it is exact to about +-half a cell. The
removed cells are used as a fallback when nothing lies ahead (pure plunges, leaving the material).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robocell.errors import ScenarioError
from robocell.machining.cutters import Cutter

_TOL = 1e-9  # [m] heights within this of the cutter surface count as touching, not cutting
_ZERO2 = np.zeros(2)


@dataclass(frozen=True)
class Cut:
    """What one :meth:`HeightField.sweep` removed, and the engagement of the cutter at ``p1``.

    Attributes:
        volume: material removed by this sweep [m^3].
        depth: axial depth of cut a_p [m]: height of the engaged material above the tip at p1.
        width: radial engagement a_e [m], 0..D, normal to the feed (see the module docstring).
        direction: (2,) unit vector in the xy plane from the tool axis at p1 toward the centroid of
            the engaged material; zero if there is none.
        plunge: volume [m^3] removed below the tip height at p0, i.e. cut by the cutter's bottom
            while it descends (plunging, ramping, drilling); 0 for a level move.
        cells: number of cells lowered.
        shank_contact: True if material higher than ``flute_length`` above the tip was cut.
    """

    volume: float
    depth: float
    width: float
    direction: np.ndarray = field(default_factory=lambda: _ZERO2.copy())
    plunge: float = 0.0
    cells: int = 0
    shank_contact: bool = False


_NO_CUT = Cut(volume=0.0, depth=0.0, width=0.0, direction=_ZERO2, plunge=0.0, cells=0)


#: Largest number of grid cells of a stock (each copy of the heights is 8 bytes a cell, and a
#: run keeps a few: 10 million cells is a 100 x 100 mm block at 0.03 mm, or 1 m² at 0.3 mm).
MAX_CELLS = 10_000_000


class HeightField:
    """Dexel / z-map stock: one height per grid cell over a rectangle of the workpiece frame.

    The stock occupies ``origin .. origin + size`` in x/y and ``bottom .. bottom + height`` in z;
    cell (j, i) has its centre at ``origin + ((i + 0.5) * cell, (j + 0.5) * cell)``.

    Attributes:
        h: (ny, nx) current top heights [m] (``bottom`` where the stock is cut through).
    """

    def __init__(
        self,
        size_x: float,
        size_y: float,
        height: float,
        cell: float = 0.0005,
        origin: tuple[float, float] | np.ndarray = (0.0, 0.0),
        bottom: float = 0.0,
    ) -> None:
        if not (cell > 0.0):
            raise ScenarioError(f"stock cell size must be positive [m], got {cell!r}")
        for name, value in (("size_x", size_x), ("size_y", size_y), ("height", height)):
            if not (value > 0.0):
                raise ScenarioError(f"stock {name} must be positive [m], got {value!r}")
        nx = round(size_x / cell)
        ny = round(size_y / cell)
        for name, value, n in (("size_x", size_x, nx), ("size_y", size_y, ny)):
            if abs(n * cell - value) > 1e-6 * cell:
                raise ScenarioError(
                    f"stock {name} = {value!r} m is not a whole number of {cell!r} m cells; "
                    f"use {n * cell!r} or another cell size"
                )
        if nx * ny > MAX_CELLS:
            finest = math.sqrt(size_x * size_y / MAX_CELLS)
            raise ScenarioError(
                f"a {cell!r} m grid makes {nx} x {ny} = {nx * ny:,} cells, more than the "
                f"{MAX_CELLS:,} a stock may have; use a grid of at least {finest:.2g} m",
                field="grid",
            )
        self.cell = float(cell)
        self.origin = np.asarray(origin, dtype=float).reshape(2)
        self.bottom = float(bottom)
        self.top = float(bottom + height)
        self.h = np.full((ny, nx), self.top)
        self._area = self.cell * self.cell
        self._ox, self._oy = float(self.origin[0]), float(self.origin[1])

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.h.shape  # type: ignore[return-value]

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates: xs (nx,) and ys (ny,) [m]."""
        ny, nx = self.h.shape
        xs = self.origin[0] + (np.arange(nx) + 0.5) * self.cell
        ys = self.origin[1] + (np.arange(ny) + 0.5) * self.cell
        return xs, ys

    def volume(self) -> float:
        """Material volume [m^3]."""
        return float((self.h - self.bottom).sum() * self._area)

    def copy(self) -> HeightField:
        """An independent copy (same grid, copied heights)."""
        new = object.__new__(HeightField)
        new.cell = self.cell
        new.origin = self.origin.copy()
        new.bottom = self.bottom
        new.top = self.top
        new.h = self.h.copy()
        new._area = self._area
        new._ox, new._oy = self._ox, self._oy
        return new

    # ------------------------------------------------------------------ sweeping

    def sweep(
        self, cutter: Cutter, p0: np.ndarray, p1: np.ndarray, *, engagement: bool = True
    ) -> Cut:
        """Move the cutter tip on the straight segment p0 -> p1 ((3,) each, stock frame, m).

        Every cell whose centre is under the swept volume is lowered to the envelope of the
        swept cutter (see the module docstring for the accuracy). Returns the :class:`Cut`.
        ``engagement=False`` skips measuring depth / width / direction (left 0), about a third
        of the work; use it where no force is needed, e.g. for a nominal stock.
        """
        a = np.asarray(p0, dtype=float)
        b = np.asarray(p1, dtype=float)
        length = math.dist(a.tolist(), b.tolist())
        piece = max(cutter.radius, 8.0 * self.cell)
        if length <= piece:
            return self._sweep_piece(cutter, a, b, engagement)
        # long segment: cut it in pieces with small windows, account over the union window
        r = cutter.radius + self.cell
        lo = np.minimum(a[:2], b[:2]) - r
        hi = np.maximum(a[:2], b[:2]) + r
        win = self._window(lo[0], hi[0], lo[1], hi[1])
        if win is None:
            return _NO_CUT
        j0, j1, i0, i1 = win
        before = self.h[j0:j1, i0:i1].copy()
        n = int(np.ceil(length / piece))
        shank = False
        last = _NO_CUT
        for k in range(n):
            last = self._sweep_piece(
                cutter,
                a + (b - a) * (k / n),
                a + (b - a) * ((k + 1) / n),
                engagement and k == n - 1,
            )
            shank = shank or last.shank_contact
        after = self.h[j0:j1, i0:i1]
        removed = before - after
        plunge = np.maximum(np.minimum(before, a[2]) - after, 0.0)
        return Cut(
            volume=float(removed.sum() * self._area),
            depth=last.depth,
            width=last.width,
            direction=last.direction,
            plunge=float(plunge.sum() * self._area),
            cells=int(np.count_nonzero(removed > 0.0)),
            shank_contact=shank,
        )

    def engagement(
        self, cutter: Cutter, p: np.ndarray, feed_dir: np.ndarray
    ) -> tuple[float, float, np.ndarray]:
        """Engagement of the cutter with its tip at ``p`` (3,) moving along ``feed_dir`` (2,)
        (stock frame): ``(depth, width, direction)``, measured like the engagement of
        :meth:`sweep` (the material one cell further along the feed that stands above the
        cutter surface) but along a given direction instead of the last step's. The machining
        cell uses it with the commanded feed direction, which stays steady while the actual
        tool jitters by more than its per-tick step."""
        ux, uy = (float(v) for v in feed_dir)
        n = math.hypot(ux, uy)
        if n <= 1e-12:
            return 0.0, 0.0, _ZERO2
        ux, uy = ux / n, uy / n
        radius = cutter.radius
        c = self.cell
        x1, y1, z1 = (float(v) for v in p)
        ax0, ay0 = x1 + c * ux, y1 + c * uy
        win = self._window(ax0 - radius, ax0 + radius, ay0 - radius, ay0 + radius)
        if win is None:
            return 0.0, 0.0, _ZERO2
        j0, j1, i0, i1 = win
        h = self.h[j0:j1, i0:i1]
        if h.max() <= z1 + _TOL:
            return 0.0, 0.0, _ZERO2
        cx = (self._ox - x1 + (np.arange(i0, i1) + 0.5) * c)[None, :]
        cy = (self._oy - y1 + (np.arange(j0, j1) + 0.5) * c)[:, None]
        ax = cx - c * ux
        ay = cy - c * uy
        ra2 = ax * ax + ay * ay
        if cutter.kind == "flat":
            over = np.where(ra2 <= radius * radius, h - z1, -1.0)
        else:
            over = h - (z1 + _height(cutter, np.sqrt(ra2)))
        mask = over > _TOL
        if not mask.any():
            return 0.0, 0.0, _ZERO2
        w = over[mask]
        px = np.broadcast_to(cx, mask.shape)[mask]
        py = np.broadcast_to(cy, mask.shape)[mask]
        depth = float(h[mask].max() - z1)
        lateral = -px * uy + py * ux
        width = min(cutter.diameter, float(lateral.max() - lateral.min()) + c)
        return depth, width, _unit(float((w * px).sum()), float((w * py).sum()))

    def _window(
        self, xmin: float, xmax: float, ymin: float, ymax: float
    ) -> tuple[int, int, int, int] | None:
        """Index range (j0, j1, i0, i1) of the cells whose centres lie in the box, or None."""
        ny, nx = self.h.shape
        c = self.cell
        ox, oy = self._ox, self._oy
        i0 = max(0, math.ceil((xmin - ox) / c - 0.5))
        i1 = min(nx, math.floor((xmax - ox) / c - 0.5) + 1)
        j0 = max(0, math.ceil((ymin - oy) / c - 0.5))
        j1 = min(ny, math.floor((ymax - oy) / c - 0.5) + 1)
        if i0 >= i1 or j0 >= j1:
            return None
        return j0, j1, i0, i1

    def _sweep_piece(self, cutter: Cutter, a: np.ndarray, b: np.ndarray, engagement: bool) -> Cut:
        radius = cutter.radius
        x0, y0, z0 = a.tolist()
        x1, y1, z1 = b.tolist()
        dx, dy, dz = x1 - x0, y1 - y0, z1 - z0
        travel = math.hypot(dx, dy)
        if travel > 1e-12:
            ux, uy = dx / travel, dy / travel
            ahead = self.cell  # look-ahead distance for the engagement crescent
        else:
            ux = uy = 0.0
            ahead = 0.0
        win = self._window(
            min(x0, x1 + ahead * ux) - radius,
            max(x0, x1 + ahead * ux) + radius,
            min(y0, y1 + ahead * uy) - radius,
            max(y0, y1 + ahead * uy) + radius,
        )
        if win is None:
            return _NO_CUT
        j0, j1, i0, i1 = win
        old = self.h[j0:j1, i0:i1]
        zmin = min(z0, z0 + dz)
        if old.max() <= zmin + _TOL:  # nothing stands above the tip anywhere: air move
            return _NO_CUT

        c = self.cell
        wx = (self._ox - x0 + (np.arange(i0, i1) + 0.5) * c)[None, :]
        wy = (self._oy - y0 + (np.arange(j0, j1) + 0.5) * c)[:, None]
        kind = cutter.kind
        if kind == "flat":
            env = _disc_envelope(wx, wy, dx, dy, z0, dz, radius)
        elif kind == "ball":
            env = _ball_envelope(wx, wy, dx, dy, z0, dz, radius)
        else:
            env = np.minimum(
                _disc_envelope(wx, wy, dx, dy, z0, dz, cutter.flat_radius),
                _sampled_envelope(cutter, wx, wy, dx, dy, z0, dz, c / 4.0),
            )
        new = np.maximum(np.minimum(old, env), self.bottom)
        lowered = new < old
        ncells = int(np.count_nonzero(lowered))
        if ncells:
            removed = old - new
            volume = float(removed.sum() * self._area)
            plunge = float(np.maximum(np.minimum(old, z0) - new, 0.0).sum() * self._area)
            shank = bool(old[lowered].max() - zmin > cutter.flute_length)
            old_copy = old.copy()
            self.h[j0:j1, i0:i1] = new
        else:
            removed = None
            volume = plunge = 0.0
            shank = False
            old_copy = old

        if not engagement:
            return Cut(volume, 0.0, 0.0, _ZERO2, plunge, ncells, shank)
        # engagement at p1: material above the cutter surface one cell further along the feed
        cx = wx - dx  # cell centres relative to the tool axis at p1
        cy = wy - dy
        depth = width = 0.0
        direction = _ZERO2
        if ahead > 0.0:
            depth, width, direction = self.engagement(cutter, b, np.array((ux, uy)))
        if depth == 0.0 and removed is not None:
            # nothing ahead (plunge, leaving the material): describe the removed cells instead
            px = np.broadcast_to(cx, lowered.shape)[lowered]
            py = np.broadcast_to(cy, lowered.shape)[lowered]
            w = removed[lowered]
            depth = max(0.0, float(old_copy[lowered].max() - z1))
            if ahead > 0.0:
                lateral = -px * uy + py * ux
                width = float(lateral.max() - lateral.min()) + c
            else:
                width = max(float(px.max() - px.min()), float(py.max() - py.min())) + c
            width = min(cutter.diameter, width)
            cxm = float((w * px).sum() / w.sum())
            cym = float((w * py).sum() / w.sum())
            if np.hypot(cxm, cym) > 0.5 * c:
                direction = _unit(cxm, cym)
        return Cut(
            volume=volume,
            depth=depth,
            width=width,
            direction=direction,
            plunge=plunge,
            cells=ncells,
            shank_contact=shank,
        )


def _unit(x: float, y: float) -> np.ndarray:
    n = float(np.hypot(x, y))
    if n <= 1e-15:
        return _ZERO2
    return np.array([x / n, y / n])


def _height(cutter: Cutter, rho: np.ndarray) -> np.ndarray:
    """cutter.height without boolean indexing (faster on small windows)."""
    radius = cutter.radius
    rc = cutter.corner
    if rc == 0.0:
        return np.where(rho <= radius, 0.0, np.inf)
    s = np.clip(rho - cutter.flat_radius, 0.0, rc)
    h = rc - np.sqrt(rc * rc - s * s)
    return np.where(rho <= radius, h, np.inf)


def _disc_envelope(wx, wy, dx, dy, z0, dz, rd):  # type: ignore[no-untyped-def]
    """Exact lowest tip height of a flat disc of radius rd swept p0 -> p0 + (dx, dy, dz).

    wx (1, n), wy (m, 1): cell centres relative to p0's xy. Returns (m, n), +inf where the disc
    never covers the centre. The covered parameters solve |w - t d|^2 <= rd^2, an interval
    [ta, tb] clipped to [0, 1]; the tip height is linear in t, so its minimum is at one end.
    """
    dd = dx * dx + dy * dy
    rr = rd * rd
    if dd < 1e-24:
        ww = wx * wx + wy * wy
        return np.where(ww <= rr, z0 + min(dz, 0.0), np.inf)
    wd = wx * dx + wy * dy
    if dz == 0.0:
        # level move (the common case): covered iff the distance to the segment is <= rd
        t = wd * (1.0 / dd)
        np.maximum(t, 0.0, out=t)
        np.minimum(t, 1.0, out=t)
        rx = wx - t * dx
        ry = wy - t * dy
        rx *= rx
        ry *= ry
        rx += ry
        return np.where(rx <= rr, z0, np.inf)
    disc = wd * wd - dd * (wx * wx + wy * wy - rr)
    sq = np.sqrt(np.maximum(disc, 0.0))
    ta = np.maximum((wd - sq) / dd, 0.0)
    tb = np.minimum((wd + sq) / dd, 1.0)
    ok = (disc >= 0.0) & (ta <= tb)
    t = ta if dz >= 0.0 else tb
    return np.where(ok, z0 + t * dz, np.inf)


def _ball_envelope(wx, wy, dx, dy, z0, dz, radius):  # type: ignore[no-untyped-def]
    """Exact lowest tip-surface height of a ball cutter swept p0 -> p0 + (dx, dy, dz).

    The swept ball is a capsule: the two end spheres (centres p0 + R z, p1 + R z) and the cylinder
    of radius R around the centre segment. The vertical line through a cell centre meets its
    lower boundary at the lowest of: the end spheres' lower points and the cylinder's lower
    intersection when that point projects inside the segment. For the cylinder, with
    w = centre - p0 (xy), d = (dx, dy), L = |(d, dz)| and cross = w x d:
    zeta = (dz (w.d) - L sqrt(|d|^2 R^2 - cross^2)) / |d|^2 relative to the centre at p0, at
    segment parameter t = (w.d + zeta dz) / L^2.
    """
    rr = radius * radius
    ww = wx * wx + wy * wy
    s0 = z0 + radius - np.sqrt(np.maximum(rr - ww, 0.0))
    env = np.where(ww <= rr, s0, np.inf)
    vx = wx - dx
    vy = wy - dy
    vv = vx * vx + vy * vy
    s1 = z0 + dz + radius - np.sqrt(np.maximum(rr - vv, 0.0))
    env = np.minimum(env, np.where(vv <= rr, s1, np.inf))
    dd = dx * dx + dy * dy
    if dd < 1e-24:
        return env
    wd = wx * dx + wy * dy
    cross = wx * dy - wy * dx
    l2 = dd + dz * dz
    disc = dd * rr - cross * cross
    zeta = (dz * wd - np.sqrt(l2) * np.sqrt(np.maximum(disc, 0.0))) / dd
    t = (wd + zeta * dz) / l2
    ok = (disc >= 0.0) & (t >= 0.0) & (t <= 1.0)
    return np.where(ok, np.minimum(env, z0 + radius + zeta), env)


def _sampled_envelope(cutter, wx, wy, dx, dy, z0, dz, spacing):  # type: ignore[no-untyped-def]
    """Lowest tip-surface height over positions sampled every ``spacing`` along the segment."""
    length = float(np.sqrt(dx * dx + dy * dy + dz * dz))
    n = max(2, int(np.ceil(length / spacing)) + 1)
    env = np.full(np.broadcast_shapes(wx.shape, wy.shape), np.inf)
    for t in np.linspace(0.0, 1.0, n):
        rx = wx - t * dx
        ry = wy - t * dy
        np.minimum(env, z0 + t * dz + _height(cutter, np.sqrt(rx * rx + ry * ry)), out=env)
    return env
