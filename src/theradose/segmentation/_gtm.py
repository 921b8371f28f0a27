"""Partial-volume correction by the geometric transfer matrix (GTM) of Rousset et al.

The imaging system is modelled as a 3-D Gaussian point-spread function (PSF) of full width at
half maximum ``FWHM``. If the true image is piecewise constant, ``Σ_i c_i f_i`` (``f_i`` the
fractional occupancy of region ``i`` on the emission grid, ``c_i`` its true concentration),
the observed occupancy-weighted mean over region ``j`` -- measured exactly as
:func:`theradose.kinetics.organ_tacs` does, ``t_j = Σ_v f_j I / Σ_v f_j`` -- is linear in the
``c_i``::

    t_j = Σ_i W[j, i] c_i,   W[j, i] = Σ_v f_j (G * f_i) / Σ_v f_j,

where ``G * f_i`` is region ``i``'s *regional spread function* (its mask blurred by the PSF,
:func:`scipy.ndimage.gaussian_filter`, ``σ = FWHM / 2.3548`` per axis in voxels, mode
``"constant"``: zero activity outside the array). :func:`gtm_correct` solves ``W c = t``.

Every region holding activity must be in ``masks``: activity outside all regions is assumed to
be zero. In particular, pass a ``"background"`` mask (the body outline minus all VOIs) when the
background is not cold; omitting it attributes the background's spill-in to the VOIs and biases
the corrected concentrations upwards. Regions should not overlap (occupancies summing to at most
1 per voxel), and each is assumed uniform: GTM corrects partial volume between regions, not
heterogeneity within one.

References
----------
Rousset O. G., Ma Y., Evans A. C., "Correction for partial volume effects in PET: principle
and validation", J. Nucl. Med. 39 (1998) 904-911.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from theradose.errors import InputError, TheradoseWarning

__all__ = [
    "gtm_correct",
    "gtm_correct_series",
    "gtm_matrix",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
#: Condition number of ``W`` above which the system is solved by least squares with a warning.
COND_MAX = 1e6


def _check_fwhm(fwhm_mm) -> float:
    try:
        f = float(fwhm_mm)
    except (TypeError, ValueError):
        raise InputError(f"must be a number, got {fwhm_mm!r}", field="fwhm_mm") from None
    if not (math.isfinite(f) and f > 0):
        raise InputError(f"must be a positive finite number (mm), got {fwhm_mm!r}",
                         field="fwhm_mm")
    return f


def _check_spacing(spacing_mm) -> tuple[float, float, float]:
    try:
        s = tuple(float(x) for x in spacing_mm)
    except (TypeError, ValueError):
        raise InputError(f"must be three numbers (x, y, z) in mm, got {spacing_mm!r}",
                         field="spacing_mm") from None
    if len(s) != 3 or not all(math.isfinite(x) and x > 0 for x in s):
        raise InputError(f"must be three positive finite numbers (x, y, z) in mm, got "
                         f"{spacing_mm!r}", field="spacing_mm")
    return s  # type: ignore[return-value]


def _check_masks(masks) -> tuple[tuple[str, ...], list[np.ndarray]]:
    if not isinstance(masks, Mapping) or len(masks) == 0:
        raise InputError("must be a non-empty mapping {name: occupancy array}, got "
                         f"{type(masks).__name__}" + (" (empty)" if isinstance(masks, Mapping)
                                                      else ""), field="masks")
    names: list[str] = []
    arrays: list[np.ndarray] = []
    shape = None
    for name, m in masks.items():
        arr = np.asarray(m)  # kept as given (bool masks stay 1 byte a voxel): converted to
        # float one at a time where needed, not all at once
        if arr.dtype != bool and not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"mask {name!r} must be numeric or boolean, got {arr.dtype}",
                             field="masks")
        if arr.ndim != 3:
            raise InputError(f"mask {name!r} must be a 3-D [z, y, x] array, got "
                             f"{arr.ndim}-D", field="masks")
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise InputError(f"mask {name!r} has shape {arr.shape}, the others {shape}; all "
                             "masks must be on the emission grid", field="masks")
        if arr.dtype != bool and (not np.all(np.isfinite(arr)) or arr.min() < 0
                                  or arr.max() > 1):
            raise InputError(f"mask {name!r} must hold occupancies in [0, 1]", field="masks")
        if not arr.sum() > 0:
            raise InputError(f"mask {name!r} is empty (no voxel with occupancy > 0)",
                             field="masks")
        names.append(str(name))
        arrays.append(arr)
    return tuple(names), arrays


def _sparse(arrays: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(flat indices, weights, weight sum) of each occupancy array (only its non-zero voxels)."""
    out = []
    for f in arrays:
        idx = np.flatnonzero(f)
        w = f.ravel()[idx].astype(np.float64)
        out.append((idx, w, float(w.sum())))
    return out


def _weighted_means(arrays, image: np.ndarray) -> np.ndarray:
    """Occupancy-weighted mean of ``image`` over each array (dense arrays or :func:`_sparse`)."""
    flat = np.asarray(image).ravel()
    sp = arrays if arrays and isinstance(arrays[0], tuple) else _sparse(arrays)
    return np.array([np.dot(w, flat[idx]) / tot for idx, w, tot in sp])


def gtm_matrix(masks: Mapping[str, np.ndarray], spacing_mm: Sequence[float],
               fwhm_mm: float, *, rois: Mapping[str, np.ndarray] | None = None,
               ) -> tuple[tuple[str, ...], np.ndarray]:
    """Geometric transfer matrix of a set of regions imaged with a Gaussian PSF.

    Parameters
    ----------
    masks : mapping of str to (nz, ny, nx) ndarray
        Fractional occupancy (0 to 1) of each region on the *emission* grid, ``[z, y, x]``
        order, all of the same shape, none empty. Include a ``"background"`` region (body mask
        minus all VOIs) if the background holds activity: regions left out are taken as cold,
        which biases the correction.
    spacing_mm : sequence of 3 float
        Voxel size ``(x, y, z)``, mm.
    fwhm_mm : float
        FWHM of the isotropic 3-D Gaussian PSF, mm (> 0).
    rois : mapping of str to (nz, ny, nx) ndarray, optional
        Measurement ROI of each region (same keys as ``masks``), when the region where the
        image is measured differs from the region that holds the activity (Rousset et al. 1998
        allow any ROI set). Default: the regions themselves. See :func:`gtm_regions` for ROIs
        grown by a margin, which keep the spill-out of each region.

    Returns
    -------
    names : tuple of str
        Region names, the order of the rows and columns of ``W``.
    W : (n, n) ndarray
        ``W[j, i]`` = occupancy-weighted mean over ROI ``j`` of region ``i``'s mask blurred by
        the PSF: the fraction of region ``i``'s concentration seen in ROI ``j``.

    Raises
    ------
    InputError
        Masks not a non-empty mapping of 3-D arrays of one shape with values in [0, 1], an
        empty mask, a bad ``spacing_mm`` or a non-positive ``fwhm_mm``.

    References
    ----------
    Rousset, Ma, Evans, J. Nucl. Med. 39 (1998) 904-911.
    """
    fwhm = _check_fwhm(fwhm_mm)
    sx, sy, sz = _check_spacing(spacing_mm)
    names, arrays = _check_masks(masks)
    measure = _check_rois(rois, names, arrays)
    sigma_mm = fwhm / FWHM_PER_SIGMA
    sigma_vox = (sigma_mm / sz, sigma_mm / sy, sigma_mm / sx)  # array axes [z, y, x]
    n = len(arrays)
    w = np.empty((n, n))
    measure = _sparse(measure)
    for i, fi in enumerate(arrays):
        rsf = gaussian_filter(fi.astype(np.float64), sigma_vox, mode="constant")
        w[:, i] = _weighted_means(measure, rsf)
    return names, w


def _check_rois(rois, names: tuple[str, ...], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The measurement ROIs in the order of ``names`` (the regions when ``rois`` is None)."""
    if rois is None:
        return arrays
    if not isinstance(rois, Mapping) or set(rois) != set(names):
        got = sorted(rois) if isinstance(rois, Mapping) else type(rois).__name__
        raise InputError(f"must map the same names as masks {sorted(names)}, got {got}",
                         field="rois")
    rnames, rarrays = _check_masks({k: rois[k] for k in names})
    for name, r in zip(rnames, rarrays, strict=True):
        if r.shape != arrays[0].shape:
            raise InputError(f"ROI {name!r} has shape {r.shape}, the masks {arrays[0].shape}",
                             field="rois")
    return rarrays


def gtm_correct(image: np.ndarray, masks: Mapping[str, np.ndarray], spacing_mm: Sequence[float],
                fwhm_mm: float, *, rois: Mapping[str, np.ndarray] | None = None,
                ) -> dict[str, float]:
    """Partial-volume-corrected mean concentration of each region (GTM method).

    Parameters
    ----------
    image : (nz, ny, nx) ndarray
        Emission image, Bq/mL (any concentration unit: the result is in the same unit).
    masks : mapping of str to (nz, ny, nx) ndarray
        Fractional occupancies on the emission grid, see :func:`gtm_matrix`. Every region with
        activity must be present (pass ``"background"`` explicitly).
    spacing_mm : sequence of 3 float
        Voxel size ``(x, y, z)``, mm.
    fwhm_mm : float
        FWHM of the isotropic 3-D Gaussian PSF, mm (> 0).
    rois : mapping of str to (nz, ny, nx) ndarray, optional
        Measurement ROIs (see :func:`gtm_matrix`); default: the regions.

    Returns
    -------
    dict of str to float
        Corrected mean concentration per region, ``c = W⁻¹ t`` with ``t_j`` the observed
        occupancy-weighted mean over ROI ``j``.

    Raises
    ------
    InputError
        An image that is not a finite 3-D array of the masks' shape, or any error of
        :func:`gtm_matrix`.

    Warns
    -----
    TheradoseWarning
        ``cond(W) > 1e6`` (regions much smaller than the PSF, or nearly coincident): the
        system is solved by least squares and the result is unreliable.

    References
    ----------
    Rousset, Ma, Evans, J. Nucl. Med. 39 (1998) 904-911.
    """
    series = gtm_correct_series([image], masks, spacing_mm, fwhm_mm, rois=rois)
    return {name: float(v[0]) for name, v in series.items()}


def gtm_correct_series(images: Sequence[np.ndarray], masks: Mapping[str, np.ndarray],
                       spacing_mm: Sequence[float], fwhm_mm: float, *,
                       rois: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Corrected mean concentrations of several images of one region set (GTM).

    :func:`gtm_correct` for e.g. the time points of a registered study: the transfer matrix
    is built and its condition checked once, not per image.

    Returns
    -------
    dict of str to (len(images),) ndarray
        Corrected mean concentration per region and image.
    """
    names, w = gtm_matrix(masks, spacing_mm, fwhm_mm, rois=rois)
    dense = ([np.asarray(masks[k]) for k in masks] if rois is None
             else [np.asarray(rois[k]) for k in names])
    shape = dense[0].shape
    arrays = _sparse(dense)
    t = np.empty((len(names), len(images)))
    for i, image in enumerate(images):
        img = np.asarray(image, dtype=np.float64)
        if img.shape != shape:
            raise InputError(f"has shape {img.shape}, the masks {shape}; the masks must be on "
                             "the emission grid", field="image")
        if not np.all(np.isfinite(img)):
            raise InputError("holds non-finite values (NaN or inf)", field="image")
        t[:, i] = _weighted_means(arrays, img)
    cond = np.linalg.cond(w)
    if not cond <= COND_MAX:
        warnings.warn(f"geometric transfer matrix is ill-conditioned (cond = {cond:.3g} > "
                      f"{COND_MAX:g}); solved by least squares, the corrected values are "
                      "unreliable", TheradoseWarning, stacklevel=2)
        c = np.linalg.lstsq(w, t, rcond=None)[0]
    else:
        c = np.linalg.solve(w, t)
    return {name: c[j] for j, name in enumerate(names)}
