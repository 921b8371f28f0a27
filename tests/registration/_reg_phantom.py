"""Analytic CT-like phantom and known rigid motions for the registration tests."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from theradose.volume import Geometry, Volume

#: Known motion (reference point -> moving point): Euler angles (rad), translation (mm).
ANGLES = (np.deg2rad(3.0), np.deg2rad(-2.0), np.deg2rad(4.0))
SHIFT = (8.0, -6.0, 10.0)


def euler(angles=ANGLES, shift=SHIFT, centre=(0.0, 0.0, 0.0)) -> sitk.Euler3DTransform:
    t = sitk.Euler3DTransform()
    t.SetCenter(tuple(centre))
    t.SetRotation(*angles)
    t.SetTranslation(tuple(shift))
    return t


def ct_values(p: np.ndarray) -> np.ndarray:
    """HU at LPS points ``(..., 3)`` (mm): body ellipse, spine, lungs, a kidney-like blob.

    The body's cross-section changes along z (lungs only above z = 0, a tapering body) so that
    every rigid degree of freedom is constrained.
    """
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    hu = np.full(x.shape, -1000.0)
    a = 120.0 - 0.15 * z
    body = (x / a) ** 2 + (y / 85.0) ** 2 <= 1.0
    hu[body] = 30.0
    lung = (((np.abs(x) - 55.0) / 35.0) ** 2 + ((y + 5.0) / 50.0) ** 2 + ((z - 40.0) / 45.0) ** 2
            <= 1.0)
    hu[lung & body] = -800.0
    spine = ((x / 14.0) ** 2 + ((y - 55.0) / 14.0) ** 2 <= 1.0) & body
    hu[spine] = 600.0
    rib = (np.abs(np.hypot(x / a, y / 85.0) - 0.9) < 0.04) & (np.cos(z / 6.0) > 0.3) & (z > -10)
    hu[rib] = 500.0
    kidney = ((x - 45.0) / 20.0) ** 2 + ((y - 35.0) / 15.0) ** 2 + ((z + 35.0) / 30.0) ** 2 <= 1
    hu[kidney] = 45.0 + 0 * hu[kidney]
    liver = ((x + 50.0) / 45.0) ** 2 + ((y + 10.0) / 40.0) ** 2 + ((z + 20.0) / 35.0) ** 2 <= 1
    hu[liver & body] = 60.0
    return hu


def grid(shape=(36, 48, 64), spacing=(4.0, 4.0, 4.0)) -> Geometry:
    """Centred grid: shape (Z, Y, X), spacing (x, y, z) mm."""
    nz, ny, nx = shape
    origin = tuple(-(n - 1) / 2.0 * s for n, s in zip((nx, ny, nz), spacing, strict=True))
    return Geometry(shape, spacing, origin)


def ct_volume(g: Geometry, transform=None, *, noise_hu: float = 0.0, seed: int = 0) -> Volume:
    """CT on ``g`` of the phantom moved by ``transform`` (reference -> moving points).

    The moving image is ``m(x) = f(T^-1(x))``: the anatomy at reference point ``p`` appears at
    ``T(p)``.
    """
    pts = g.voxel_centres()
    if transform is not None:
        pts = inverse_points(transform, pts)
    hu = ct_values(pts)
    if noise_hu:
        hu = hu + np.random.default_rng(seed).normal(0.0, noise_hu, hu.shape)
    return Volume(hu.astype(np.float32), g, unit="HU", modality="CT")


def _affine_points(t, pts: np.ndarray) -> np.ndarray:
    a = np.asarray(t.GetMatrix()).reshape(3, 3)
    c = np.asarray(t.GetCenter())
    return (pts - c) @ a.T + c + np.asarray(t.GetTranslation())


def moved_points(t, pts: np.ndarray) -> np.ndarray:
    """Vectorised ``t.TransformPoint`` for Euler transforms: ``A (p - c) + c + t``."""
    return _affine_points(t, pts)


def inverse_points(t, pts: np.ndarray) -> np.ndarray:
    """Vectorised inverse of an Euler transform: ``A^-1 (x - c - t) + c``."""
    a = np.asarray(t.GetMatrix()).reshape(3, 3)
    c = np.asarray(t.GetCenter())
    return (pts - c - np.asarray(t.GetTranslation())) @ np.linalg.inv(a).T + c
