"""Implicit solids for the stylized phantom (ellipsoids, elliptic cylinders, capsules, set algebra).

Every solid answers ``inside(x, y, z)`` for coordinate arrays in cm that broadcast against each
other (the voxeliser passes ``(Z,1,1)``, ``(1,Y,1)``, ``(1,1,X)`` axis vectors, or flat point
lists) and knows an axis-aligned bounding box. Coordinates are those of the phantom frame (x to
the patient's left, y posterior, z superior), which coincides with DICOM LPS up to the factor
10 mm/cm (see ``docs/phantoms-anatomy.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Capsule", "Diff", "ECyl", "Ellipsoid", "Half", "Inter", "Legs", "Mapped", "Ribs",
           "Solid", "Union"]

Box = tuple[np.ndarray, np.ndarray]


class Solid:
    """Base class: ``inside`` (boolean, broadcast shape) and ``bbox`` ((lo, hi) in cm)."""

    def inside(self, x, y, z) -> np.ndarray:  # pragma: no cover - abstract
        """Boolean array: which points lie inside the solid."""
        raise NotImplementedError

    @property
    def bbox(self) -> Box:  # pragma: no cover - abstract
        """Axis-aligned bounding box ``(lo, hi)``, each ``(3,)`` in cm (x, y, z)."""
        raise NotImplementedError


def _halfspaces(x, y, z, planes) -> np.ndarray | bool:
    ok: np.ndarray | bool = True
    for n, d in planes:
        ok = ok & (n[0] * x + n[1] * y + n[2] * z <= d)
    return ok


@dataclass(frozen=True, eq=False)
class Ellipsoid(Solid):
    """Ellipsoid ``Σ (u_i / a_i)² ≤ 1`` with ``u = Rᵀ (p - c)``, optionally cut.

    ``planes`` are half-spaces ``n · p ≤ d`` (phantom frame); ``zlim`` clips in z.
    """

    c: tuple[float, float, float]
    semi: tuple[float, float, float]
    rot: np.ndarray | None = None
    planes: tuple = ()
    zlim: tuple[float, float] = (-np.inf, np.inf)

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        dx, dy, dz = x - self.c[0], y - self.c[1], z - self.c[2]
        a, b, c = self.semi
        if self.rot is None:
            q = (dx / a) ** 2 + (dy / b) ** 2 + (dz / c) ** 2
        else:
            r = self.rot
            u = (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz) / a
            v = (r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz) / b
            w = (r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz) / c
            q = u * u + v * v + w * w
        ok = q <= 1.0
        if self.zlim[0] > -np.inf or self.zlim[1] < np.inf:
            ok = ok & (z >= self.zlim[0]) & (z <= self.zlim[1])
        return ok & _halfspaces(x, y, z, self.planes)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        semi = np.asarray(self.semi, float)
        half = semi if self.rot is None else np.sqrt(((np.asarray(self.rot) * semi) ** 2).sum(1))
        lo, hi = np.asarray(self.c) - half, np.asarray(self.c) + half
        lo[2], hi[2] = max(lo[2], self.zlim[0]), min(hi[2], self.zlim[1])
        return lo, hi


@dataclass(frozen=True, eq=False)
class ECyl(Solid):
    """Elliptic cylinder along z: ``((x-cx)/a)² + ((y-cy)/b)² ≤ 1``, ``z0 ≤ z ≤ z1``, cut."""

    cx: float
    cy: float
    a: float
    b: float
    z0: float
    z1: float
    planes: tuple = ()

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        ok = ((x - self.cx) / self.a) ** 2 + ((y - self.cy) / self.b) ** 2 <= 1.0
        ok = ok & (z >= self.z0) & (z <= self.z1)
        return ok & _halfspaces(x, y, z, self.planes)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        return (np.array([self.cx - self.a, self.cy - self.b, self.z0]),
                np.array([self.cx + self.a, self.cy + self.b, self.z1]))


@dataclass(frozen=True, eq=False)
class Capsule(Solid):
    """Points within ``r`` of the segment ``p0``-``p1`` (a cylinder with round ends)."""

    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r: float

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        p0 = np.asarray(self.p0, float)
        d = np.asarray(self.p1, float) - p0
        dd = float(d @ d)
        wx, wy, wz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((wx * d[0] + wy * d[1] + wz * d[2]) / dd, 0.0, 1.0)
        ex, ey, ez = wx - t * d[0], wy - t * d[1], wz - t * d[2]
        return ex * ex + ey * ey + ez * ez <= self.r * self.r

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        p = np.array([self.p0, self.p1], float)
        return p.min(0) - self.r, p.max(0) + self.r


@dataclass(frozen=True, eq=False)
class Union(Solid):
    """Union of solids."""

    parts: tuple[Solid, ...]

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        out = self.parts[0].inside(x, y, z)
        for p in self.parts[1:]:
            out = out | p.inside(x, y, z)
        return out

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        boxes = [p.bbox for p in self.parts]
        return np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)


@dataclass(frozen=True, eq=False)
class Diff(Solid):
    """``a`` minus ``b``."""

    a: Solid
    b: Solid

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        return self.a.inside(x, y, z) & ~self.b.inside(x, y, z)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        return self.a.bbox


@dataclass(frozen=True, eq=False)
class Inter(Solid):
    """Intersection of two solids."""

    a: Solid
    b: Solid

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        return self.a.inside(x, y, z) & self.b.inside(x, y, z)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        (la, ha), (lb, hb) = self.a.bbox, self.b.bbox
        return np.maximum(la, lb), np.minimum(ha, hb)


@dataclass(frozen=True, eq=False)
class Mapped(Solid):
    """A template solid moved and scaled: ``p = new + scale * (q - anchor)``.

    ``anchor`` is a point of the template frame, ``new`` where it lands in the patient frame and
    ``scale`` the per-axis factor (x, y, z). Planes and cuts move with the solid.
    """

    solid: Solid
    anchor: tuple[float, float, float]
    new: tuple[float, float, float]
    scale: tuple[float, float, float]

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        a, n, s = self.anchor, self.new, self.scale
        return self.solid.inside(a[0] + (x - n[0]) / s[0], a[1] + (y - n[1]) / s[1],
                                 a[2] + (z - n[2]) / s[2])

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        lo, hi = self.solid.bbox
        a, n, s = (np.asarray(v, float) for v in (self.anchor, self.new, self.scale))
        return n + s * (lo - a), n + s * (hi - a)


@dataclass(frozen=True, eq=False)
class Half(Solid):
    """Half-space ``n · p ≤ d`` (use inside :class:`Inter`)."""

    n: tuple[float, float, float]
    d: float

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        return self.n[0] * x + self.n[1] * y + self.n[2] * z <= self.d

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        return np.full(3, -1e9), np.full(3, 1e9)


@dataclass(frozen=True, eq=False)
class Legs(Solid):
    """The MIRD legs: ``x² + y² ≤ ±x · 2R(z)``, ``R = r0 (1 + z / L)``, ``z_min ≤ z < 0``.

    Two circular truncated cones of radius ``R(z)`` centred at ``x = ±R(z)`` that touch at the
    mid-plane (Snyder et al. 1978; ``r0`` = 10 cm, ``L`` = 160 cm for the adult).
    """

    r0: float = 10.0
    length: float = 160.0
    z_min: float = -80.0

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        r = self.r0 * (1.0 + z / self.length)
        return (x * x + y * y <= 2.0 * np.abs(x) * r) & (z >= self.z_min) & (z < 0.0)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        return (np.array([-2 * self.r0, -self.r0, self.z_min]),
                np.array([2 * self.r0, self.r0, 0.0]))


@dataclass(frozen=True, eq=False)
class Ribs(Solid):
    """``n`` elliptic rib slabs between two coaxial ellipses, ``pitch`` apart, ``thick`` high.

    Slab ``i`` spans ``[z_top - i·pitch - thick, z_top - i·pitch]`` (MIRD-5 rib cage layout).
    """

    z_top: float
    pitch: float
    thick: float
    n: int
    outer: tuple[float, float]
    inner: tuple[float, float]

    def inside(self, x, y, z):
        """See :meth:`Solid.inside`."""
        (ao, bo), (ai, bi) = self.outer, self.inner
        q_out = (x / ao) ** 2 + (y / bo) ** 2
        q_in = (x / ai) ** 2 + (y / bi) ** 2
        dz = self.z_top - z
        ok = (dz >= 0) & (dz <= (self.n - 1) * self.pitch + self.thick)
        ok = ok & (np.mod(dz, self.pitch) <= self.thick)
        return ok & (q_out <= 1.0) & (q_in > 1.0)

    @property
    def bbox(self) -> Box:
        """See :attr:`Solid.bbox`."""
        ao, bo = self.outer
        z0 = self.z_top - (self.n - 1) * self.pitch - self.thick
        return np.array([-ao, -bo, z0]), np.array([ao, bo, self.z_top])
