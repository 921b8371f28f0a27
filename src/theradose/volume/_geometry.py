"""Image grid geometry in ITK/DICOM LPS physical space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theradose.errors import GeometryMismatchError, InputError

__all__ = ["Geometry"]


def _as_direction(direction) -> np.ndarray:
    d = np.asarray(direction, dtype=float)
    if d.size != 9:
        raise InputError(f"direction must have 9 elements, got {d.size}", field="direction")
    d = d.reshape(3, 3)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise InputError(
            f"direction must be orthonormal, got {d.ravel().round(5).tolist()}", field="direction"
        )
    return d


@dataclass(frozen=True, eq=False)
class Geometry:
    """A voxel grid in LPS physical space.

    Arrays are indexed ``[z, y, x]`` (``shape`` is ``(Z, Y, X)``); the physical vectors are in ITK
    order ``(x, y, z)``. The centre of voxel ``(i, j, k)`` (x-, y-, z-index) lies at
    ``origin_mm + direction @ (spacing_mm * (i, j, k))``, as in ITK and in DICOM's
    ImagePositionPatient/ImageOrientationPatient.

    Parameters
    ----------
    shape : tuple of int
        Array shape ``(Z, Y, X)``.
    spacing_mm : tuple of float
        Voxel size ``(sx, sy, sz)`` in mm, all > 0.
    origin_mm : tuple of float
        Centre of the first voxel ``(x, y, z)`` in mm, LPS.
    direction : (3, 3) array_like
        Orthonormal matrix whose *columns* are the LPS directions of the x-, y- and z-index axes
        (SimpleITK's ``GetDirection()`` reshaped row-major to 3×3).

    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"shape must be 3 positive integers (Z, Y, X), got {self.shape}",
                             field="shape")
        spacing = tuple(float(s) for s in self.spacing_mm)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise InputError(f"spacing_mm must be 3 positive numbers, got {self.spacing_mm}",
                             field="spacing_mm")
        origin = tuple(float(o) for o in self.origin_mm)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise InputError(f"origin_mm must be 3 finite numbers, got {self.origin_mm}",
                             field="origin_mm")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "direction", _as_direction(self.direction))

    # ------------------------------------------------------------------ derived quantities
    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (cm³)."""
        sx, sy, sz = self.spacing_mm
        return sx * sy * sz / 1000.0

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        """Number of voxels in ITK order ``(X, Y, Z)``."""
        z, y, x = self.shape
        return (x, y, z)

    def affine(self) -> np.ndarray:
        """4×4 matrix mapping homogeneous index ``(i, j, k, 1)`` (x, y, z order) to LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction @ np.diag(self.spacing_mm)
        a[:3, 3] = self.origin_mm
        return a

    def index_to_physical(self, ijk) -> np.ndarray:
        """LPS coordinates (mm) of continuous indices ``ijk`` (…, 3) in x, y, z order."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk * np.asarray(self.spacing_mm) @ self.direction.T + np.asarray(self.origin_mm)

    def physical_to_index(self, xyz) -> np.ndarray:
        """Continuous indices (x, y, z order) of LPS points ``xyz`` (…, 3) in mm."""
        xyz = np.asarray(xyz, dtype=float) - np.asarray(self.origin_mm)
        return (xyz @ self.direction) / np.asarray(self.spacing_mm)

    def voxel_centres(self) -> np.ndarray:
        """LPS coordinates of all voxel centres, shape ``(Z, Y, X, 3)``, in mm."""
        k, j, i = np.meshgrid(*(np.arange(n) for n in self.shape), indexing="ij")
        return self.index_to_physical(np.stack([i, j, k], axis=-1))

    def corners(self) -> np.ndarray:
        """LPS coordinates (8, 3) of the outer corners of the grid (voxel edges, not centres)."""
        nx, ny, nz = self.size_xyz
        c = np.array([[i, j, k] for i in (-0.5, nx - 0.5) for j in (-0.5, ny - 0.5)
                      for k in (-0.5, nz - 0.5)])
        return self.index_to_physical(c)

    # ------------------------------------------------------------------ comparisons
    def same_as(self, other: Geometry, *, tol_mm: float = 1e-3) -> bool:
        """True when both grids coincide (shape, spacing, origin within ``tol_mm``, direction)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm)
            and np.allclose(self.origin_mm, other.origin_mm, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-5)
        )

    def require_same(self, other: Geometry, *, what: str = "images", file: str | None = None,
                     tol_mm: float = 1e-3) -> None:
        """Raise :class:`GeometryMismatchError` unless ``other`` is the same grid."""
        if self.same_as(other, tol_mm=tol_mm):
            return
        for name in ("shape", "spacing_mm", "origin_mm"):
            a, b = getattr(self, name), getattr(other, name)
            differs = a != b if name == "shape" else not np.allclose(a, b, atol=tol_mm)
            if differs:
                raise GeometryMismatchError(
                    f"{what} are on different grids: {a} vs {b}; resample one onto the other "
                    "first (theradose.volume.resample)", field=name, file=file)
        raise GeometryMismatchError(
            f"{what} are on different grids: directions differ "
            f"({self.direction.ravel().round(4).tolist()} vs "
            f"{other.direction.ravel().round(4).tolist()})", field="direction", file=file)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "shape_zyx": list(self.shape),
            "spacing_mm": list(self.spacing_mm),
            "origin_mm": list(self.origin_mm),
            "direction": self.direction.ravel().tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["shape_zyx"]), tuple(d["spacing_mm"]), tuple(d["origin_mm"]),
                   np.asarray(d["direction"], dtype=float).reshape(3, 3))

    def __repr__(self) -> str:
        d = self.direction.ravel().round(4).tolist()
        return (f"Geometry(shape={self.shape}, spacing_mm={self.spacing_mm}, "
                f"origin_mm={self.origin_mm}, direction={d})")
