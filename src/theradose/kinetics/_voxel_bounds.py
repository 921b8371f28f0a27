"""What a voxel's own samples allow: an upper bound on its TIA and the rule for keeping a fit.

A voxel-wise fit extrapolates outside the sampled window twice: before the first sample
(``0 .. t_1``, where no sample constrains the curve) and after the last one (``t_n .. ∞``).
Noisy or low-count voxels (background, reconstructed by OSEM into values spread over orders of
magnitude) make the least-squares optimum run to a curve that is huge in ``0 .. t_1`` or that
decays more slowly than the nuclide after ``t_n``. This module defines, per voxel and from its
samples alone, the largest TIA consistent with the two assumptions that every TIA estimate from
sampled data already makes, and the rule that replaces a fit breaking it.

Bound (data unit × h)::

    U = ŷ_max · t_n + max(ŷ_n, 0) / λ_phys,      ŷ_i = y_i + z · σ_i,
    σ_i = relative_sigma · max(y_i, f · y_max)  (f = WEIGHT_FLOOR of the fit weights)

* ``ŷ_max · t_n``: the activity never exceeds the largest sample (plus its noise allowance)
  between ``t = 0`` and the last sample — the sampling schedule catches the peak, which is
  what the schedules of the EANM recommendations for 177Lu (Sjögreen Gleisner et al. 2022)
  are designed to do. It covers the uptake phase before the first sample: a curve with more
  area there than the largest sample held over the whole window has no sample supporting it.
* ``ŷ_n / λ_phys``: after the last sample the activity decays at least at the physical rate
  (effective rate = λ_phys + a biological rate ≥ 0 when there is no further net uptake) from
  an upper value of the last sample. This is the tail of the trapezoid method.
* ``z = 3``: a one-sided 3σ allowance for the noise of the samples the bound rests on
  (σ_i from the stated ``relative_sigma``, with the fit's weight floor so that a sample near 0
  still has a noise allowance).

The robust estimate (trapezoids from ``(0, 0)`` through the samples + ``y_n / λ_phys``,
:func:`~theradose.kinetics._voxel_fallback.trapezoid`) and the hybrid fallback never exceed
``U`` even with ``z = 0`` (``docs/kinetics-voxel.md`` has the two-line proof), so replacing
a fit by them always satisfies the bound.

A fit is **admissible** when

1. ``TIA ≤ U`` (the bound above), and
2. ``0 < σ_TIA < TIA``: the delta-method σ (which takes the larger of the stated noise and the
   fit's reduced χ², so it includes the observed scatter) is finite and positive (a zero σ
   means a singular covariance) and the TIA differs from 0 by more than 1σ; beyond that the
   first-order propagation behind σ is meaningless and the fit carries no information on the
   magnitude of the TIA.

Per voxel the model with the lowest criterion among the admissible fits is kept; a voxel where
every valid fit is inadmissible gets the trapezoid estimate (linear in the data, so sums over
regions of such voxels stay unbiased by noise). With ``constrain_physical=False`` a fitted
component slower than physical decay is integrated past ``t_n`` at the physical rate instead
(the fit is *capped*; see :meth:`VoxelModel.tia`).

References
----------
Sjögreen Gleisner K, Chouin N, Gabina PM, et al. EANM dosimetry committee recommendations for
dosimetry of 177Lu-labelled somatostatin-receptor- and PSMA-targeting ligands. Eur J Nucl Med
Mol Imaging 2022;49:1778-1809. doi:10.1007/s00259-022-05727-7
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BOUND_Z",
    "MAX_RELATIVE_SIGMA",
    "STATUS_CAPPED",
    "STATUS_KEPT",
    "STATUS_NAMES",
    "STATUS_NOT_FITTED",
    "STATUS_REPLACED",
    "admissible",
    "data_bound",
]

#: One-sided noise allowance of the bound, in standard deviations of the samples.
BOUND_Z = 3.0
#: A fit with ``σ_TIA >= MAX_RELATIVE_SIGMA × TIA`` does not determine its TIA (1σ from 0).
MAX_RELATIVE_SIGMA = 1.0

#: Per-voxel status codes of :class:`~theradose.kinetics._voxel.VoxelFitResult`.
STATUS_NOT_FITTED = -1
STATUS_KEPT = 0
STATUS_REPLACED = 1
STATUS_CAPPED = 2
STATUS_NAMES = {STATUS_NOT_FITTED: "not_fitted", STATUS_KEPT: "kept",
                STATUS_REPLACED: "replaced", STATUS_CAPPED: "capped"}


def data_bound(t_h: np.ndarray, y: np.ndarray, lam_phys: float, rel_sigma: float,
               floor: float, z: float = BOUND_Z) -> np.ndarray:
    """Upper bound on each voxel's TIA allowed by its samples (see the module docstring).

    Parameters
    ----------
    t_h : (T,) ndarray
        Sample times, h, increasing.
    y : (T, N) ndarray
        Samples, time-major (any unit; the bound has that unit × h).
    lam_phys : float
        Physical decay constant, 1/h.
    rel_sigma : float
        Relative standard uncertainty of one sample.
    floor : float
        Fraction of the voxel's largest sample below which σ_i stops shrinking (the fit's
        weight floor).
    z : float
        Noise allowance in standard deviations.

    Returns
    -------
    (N,) ndarray
        ``U = ŷ_max t_n + max(ŷ_n, 0)/λ_phys``; 0 for voxels without a positive sample.
    """
    y_max = np.maximum(np.max(y, axis=0), 0.0)
    y_n = y[-1]
    hi_max = y_max * (1.0 + z * rel_sigma)
    hi_n = y_n + z * rel_sigma * np.maximum(y_n, floor * y_max)
    return hi_max * float(t_h[-1]) + np.maximum(hi_n, 0.0) / lam_phys


def admissible(tia: np.ndarray, sigma: np.ndarray, bound: np.ndarray):
    """Which fits the data allow: ``TIA <= U`` and ``0 < σ_TIA < TIA``.

    Parameters
    ----------
    tia, sigma, bound : (N,) ndarray
        Fitted TIA, its delta-method σ and :func:`data_bound`, same unit.

    Returns
    -------
    ok : (N,) bool ndarray
        Admissible fits.
    above : (N,) bool ndarray
        Fits above the bound.
    ill : (N,) bool ndarray
        Fits whose σ is zero (singular covariance) or at least ``MAX_RELATIVE_SIGMA × TIA``.
    """
    above = ~(tia <= bound)
    ill = ~((sigma > 0) & (sigma < MAX_RELATIVE_SIGMA * tia))
    return ~(above | ill), above, ill
