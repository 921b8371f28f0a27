"""Synthetic kernels and volumes for the dose-engine tests (helper module, not a test)."""

from __future__ import annotations

import numpy as np

from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.volume import Volume


def synthetic_kernel(emitted_kev: float, voxel_mm=(4.0, 4.0, 4.0), *, shape=(5, 5, 5),
                     density: float = 1.0, medium: str = "water", classes=("electron",),
                     nuclide: str = "Lu-177", width: float = 0.8,
                     asymmetric: bool = False) -> VoxelKernel:
    """A kernel whose absorbed energy equals ``emitted_kev`` exactly (energy_fraction 1).

    Weights ``w`` (sum 1) of a Gaussian in voxel units; S = w·Δ·k/m, converted Gy/decay →
    mGy/(MBq·s) by ×1e3 mGy/Gy × 1e6 decays/(MBq·s).
    """
    grids = np.meshgrid(*(np.arange(n) - n // 2 for n in shape), indexing="ij")
    r2 = sum(g.astype(float) ** 2 for g in grids)
    w = np.exp(-r2 / (2 * width ** 2))
    if asymmetric:  # break the mirror symmetry along every axis (tests orientation)
        w = w * (1.0 + 0.1 * grids[0] + 0.2 * grids[1] + 0.3 * grids[2] + 1.0)
    w /= w.sum()
    mass_kg = density * np.prod(voxel_mm) * 1e-6
    values = w * emitted_kev * KEV_TO_J / mass_kg * 1e9
    return VoxelKernel(values, tuple(voxel_mm), nuclide, medium, density, tuple(classes),
                       emitted_kev)


def vol(array, spacing=(4.0, 4.0, 4.0), unit="MBq*h", **kw) -> Volume:
    """A Volume at the origin with identity direction."""
    return Volume.from_array(np.asarray(array, dtype=float), spacing_mm=spacing, unit=unit, **kw)


def check_one_line(excinfo, field: str) -> None:
    """The message is one line and names the field."""
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert field in msg, msg


def jacobian_sigma(compute, tia: np.ndarray, sigma: np.ndarray, mass: np.ndarray,
                   voi: np.ndarray) -> tuple[np.ndarray, float]:
    """Brute-force linear propagation: dose of each unit-TIA voxel → σ map and VOI-mean σ.

    ``compute(array) -> dose array`` must be linear. Independent reference for the engines'
    closed-form σ (Σ_s (∂D_v/∂Ã_s)² σ_s²).
    """
    n = tia.size
    jac = np.empty((n, n))
    for s in range(n):
        e = np.zeros(n)
        e[s] = 1.0
        jac[:, s] = compute(e.reshape(tia.shape)).ravel()
    s2 = sigma.ravel() ** 2
    sig_map = np.sqrt((jac ** 2) @ s2).reshape(tia.shape)
    m = np.where(voi.ravel(), mass.ravel(), 0.0)
    g = m @ jac / m.sum()
    return sig_map, float(np.sqrt(np.sum(g ** 2 * s2)))
