"""Resampling into the reference frame: CT (linear, HU) and emission images (counts conserved).

Emission images are resampled as a **concentration**: an extensive image (counts, MBq) is first
divided by its voxel volume, a concentration (Bq/mL) is used as is. The concentration is
interpolated linearly at the target voxel centres mapped through the transform, multiplied back
by the target voxel volume when the image is extensive, and finally **renormalised** so that the
total equals the total of the moving image inside the target field of view (moving voxels whose
centre maps inside the target grid). The relative change of the total before renormalisation
(interpolation loss, edge effects; for a deformable transform also the Jacobian) is returned and
written into the volume's history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theradose.errors import GeometryMismatchError, UnitError
from theradose.volume import Geometry, Volume

__all__ = ["EmissionWarp", "emission_grid", "ncc", "warp_ct", "warp_emission"]


def _reference_image(g: Geometry):
    import SimpleITK as sitk

    ref = sitk.Image(*g.size_xyz, sitk.sitkUInt8)
    ref.SetOrigin(g.origin_mm)
    ref.SetSpacing(g.spacing_mm)
    ref.SetDirection(tuple(g.direction.ravel()))
    return ref


def _resample(arr: np.ndarray, src: Geometry, tgt: Geometry, transform, *, fill: float,
              nearest: bool = False) -> np.ndarray:
    """``out(x) = arr(T(x))`` on ``tgt`` (linear or nearest), values outside = ``fill``."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetOrigin(src.origin_mm)
    img.SetSpacing(src.spacing_mm)
    img.SetDirection(tuple(src.direction.ravel()))
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(img, _reference_image(tgt), transform, interp, float(fill),
                        img.GetPixelID())
    return sitk.GetArrayFromImage(out)


def emission_grid(box: Geometry, spacing_mm) -> Geometry:
    """A grid of voxel size ``spacing_mm`` covering the box of ``box`` in its orientation.

    Returns ``box`` itself when the spacings agree (the reference emission grid). Otherwise the
    new grid has ``box``'s direction, starts at its outer corner and has as many voxels as needed
    to cover it (the last ones may stick out by less than a voxel).

    Parameters
    ----------
    box : Geometry
        The field of view to cover (the reference emission grid).
    spacing_mm : (3,) sequence of float
        Voxel size ``(sx, sy, sz)`` in mm.

    """
    sp = np.asarray(spacing_mm, dtype=float)
    if np.allclose(sp, box.spacing_mm, rtol=0, atol=1e-6):
        return box
    extent = np.asarray(box.size_xyz) * np.asarray(box.spacing_mm)
    n = np.maximum(1, np.ceil(extent / sp - 1e-9)).astype(int)
    corner = box.index_to_physical(np.full(3, -0.5))
    origin = corner + box.direction @ (0.5 * sp)
    return Geometry((int(n[2]), int(n[1]), int(n[0])), tuple(sp), tuple(origin), box.direction)


def _euler_inverse_points(rigid, points: np.ndarray) -> np.ndarray:
    """Apply the inverse of an affine-type SimpleITK transform to points ``(N, 3)`` (mm)."""
    a = np.asarray(rigid.GetMatrix(), dtype=float).reshape(3, 3)
    c = np.asarray(rigid.GetCenter(), dtype=float)
    t = np.asarray(rigid.GetTranslation(), dtype=float)
    # forward: y = A (x - c) + c + t  ->  x = A^-1 (y - c - t) + c
    return np.linalg.solve(a, (points - c - t).T).T + c


def _inside_fov(src: Geometry, tgt: Geometry, rigid) -> np.ndarray:
    """Boolean ``src.shape`` mask: source voxel centres that map inside the target grid."""
    inside = np.zeros(src.shape, dtype=bool)
    nz, ny, nx = src.shape
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    base = np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size)], axis=-1).astype(float)
    hi = np.asarray(tgt.size_xyz) - 0.5
    for k in range(nz):  # slice by slice bounds memory for large SPECT grids
        base[:, 2] = k
        pts = src.index_to_physical(base)
        if rigid is not None:
            pts = _euler_inverse_points(rigid, pts)
        idx = tgt.physical_to_index(pts)
        inside[k] = np.all((idx >= -0.5) & (idx < hi), axis=1).reshape(ny, nx)
    return inside


@dataclass(frozen=True)
class EmissionWarp:
    """An emission image resampled into the reference frame.

    Attributes
    ----------
    volume : Volume
        On the target grid, same unit, modality, time; total renormalised.
    total_change : float
        Relative change of the total before renormalisation, ``after / before - 1``.
    outside_fraction : float
        Fraction of the moving image's total whose voxels map outside the target grid (dropped).

    """

    volume: Volume
    total_change: float
    outside_fraction: float


def warp_emission(volume: Volume, transform, target: Geometry, *, rigid=None,
                  label: str = "") -> EmissionWarp:
    """Resample an emission image onto ``target`` through ``transform``, conserving the total.

    Parameters
    ----------
    volume : Volume
        Emission image (counts, MBq, Bq/mL, ... on its own grid).
    transform : SimpleITK.Transform
        Maps target (reference) points to the image's points (mm).
    target : Geometry
        Output grid.
    rigid : SimpleITK.Euler3DTransform, optional
        The rigid part of ``transform``, used to decide which moving voxels lie inside the
        target field of view; None means identity.
    label : str
        Name of the time point for the history line.

    Raises
    ------
    UnitError
        If the image is neither extensive (counts, activity) nor an activity concentration.
    GeometryMismatchError
        If nothing of the image maps inside the target grid.

    """
    info = volume.unit_info
    src = volume.geometry
    if info.conserves == "total":
        dens = volume.array.astype(np.float64) / src.voxel_volume_ml
    elif info.dimension == "activity_concentration":
        dens = volume.array.astype(np.float64)
    else:
        raise UnitError(f"emission image of {label} has unit {volume.unit!r}; accepted: counts, "
                        "activity (MBq, Bq) or activity concentration (Bq/mL)",
                        file=volume.meta.get("source_file"), field="unit")
    total_all = float(np.sum(dens)) * src.voxel_volume_ml
    before = float(np.sum(dens[_inside_fov(src, target, rigid)])) * src.voxel_volume_ml
    new = _resample(dens, src, target, transform, fill=0.0)
    after = float(np.sum(new)) * target.voxel_volume_ml
    if before != 0 and after == 0:
        raise GeometryMismatchError(f"emission image of {label} maps entirely outside the "
                                    f"reference field of view {target.shape}",
                                    file=volume.meta.get("source_file"), field="geometry")
    change = after / before - 1.0 if before != 0 else 0.0
    scale = before / after if after != 0 else 1.0
    new *= scale
    if info.conserves == "total":
        new *= target.voxel_volume_ml
    outside = 1.0 - before / total_all if total_all != 0 else 0.0
    note = (f"registered ({label}): concentration interpolated linearly onto {target.shape} @ "
            f"{tuple(round(s, 4) for s in target.spacing_mm)} mm; total inside the field of "
            f"view renormalised (relative change before renormalisation {change:+.3e}, "
            f"{outside:.2%} of the total outside the field of view dropped); sigma dropped")
    out = volume.replace(array=new, geometry=target, sigma=None,
                         meta={**volume.meta, "registration_total_change": change},
                         note=note)
    return EmissionWarp(out, change, outside)


def warp_ct(ct: Volume, transform, target: Geometry, *, label: str = "") -> Volume:
    """Resample a CT (HU) onto ``target`` through ``transform`` (linear; air outside)."""
    arr = _resample(ct.array.astype(np.float32), ct.geometry, target, transform, fill=-1024.0)
    return ct.replace(array=arr, geometry=target, sigma=None, meta=dict(ct.meta),
                      note=f"registered ({label}): resampled linearly onto the reference CT "
                           f"grid {target.shape}; -1024 HU outside its field of view")


def ncc(fixed: Volume, moving: Volume, transform) -> float:
    """Normalised cross-correlation of ``fixed`` and ``moving`` mapped by ``transform``.

    Computed over the fixed voxels whose mapped point lies inside the moving field of view;
    1 is a perfect linear match. NaN when fewer than 10 voxels overlap or one is constant.
    """
    g = fixed.geometry
    vals = _resample(moving.array.astype(np.float32), moving.geometry, g, transform, fill=0.0)
    cover = _resample(np.ones(moving.shape, np.uint8), moving.geometry, g, transform,
                      fill=0.0, nearest=True).astype(bool)
    a = fixed.array[cover].astype(np.float64)
    b = vals[cover].astype(np.float64)
    if a.size < 10:
        return float("nan")
    a -= a.mean()
    b -= b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")
