r"""Equivalent uniform doses: generalised EUD (Niemierko) and the radiobiological EUBED.

* :func:`geud`: :math:`gEUD = (\sum_i v_i D_i^a)^{1/a}` with :math:`v_i` the (volume or mass)
  fraction of voxel i; ``a = 1`` is the mean, ``a → ∞`` the maximum, ``a → -∞`` the minimum,
  ``a = 0`` the geometric mean (the limit). Large positive ``a`` suits serial organs, negative
  ``a`` tumours.
* :func:`eubed`: the uniform BED giving the same expected surviving fraction as the
  non-uniform BED map with :math:`SF_i = e^{-\alpha BED_i}`:
  :math:`EUBED = -\ln(\sum_i v_i e^{-\alpha BED_i})/\alpha` (O'Donoghue 1999 for absorbed dose;
  applied to BED maps by Strigari et al. 2010). Computed with a log-sum-exp, so it stays
  finite for large α·BED.

Both accept a :class:`~theradose.dose._dvh.DVH` (exact voxel values and weights), a Volume with
a mask, or plain arrays.

References
----------
Niemierko A. Reporting and analyzing dose distributions: a concept of equivalent uniform dose.
Med Phys 1997;24:103-110. doi:10.1118/1.598063

Niemierko A. A generalized concept of equivalent uniform dose (EUD). Med Phys 1999;26:1100
(abstract).

O'Donoghue JA. Implications of nonuniform tumor doses for radioimmunotherapy. J Nucl Med
1999;40:1337-1341.

Strigari L, Sciuto R, Rea S, et al. Efficacy and toxicity related to treatment of hepatocellular
carcinoma with 90Y-SIR spheres: radiobiologic considerations. J Nucl Med 2010;51:1377-1385.
doi:10.2967/jnumed.110.075861
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from theradose.dose._dvh import DVH, dvh
from theradose.errors import InputError
from theradose.volume import Volume

__all__ = ["eubed", "geud"]


def _values_weights(dose, mask, weights, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Voxel values and normalised weights (sum 1) from a DVH, a Volume + mask, or arrays."""
    if isinstance(dose, DVH):
        if mask is not None or weights is not None:
            raise InputError("a DVH already carries its VOI and weights; do not pass mask or "
                             "weights", field="mask")
        v, w = dose.values, dose.weights
    elif isinstance(dose, Volume):
        m = np.ones(dose.shape, dtype=bool) if mask is None else mask
        h = dvh(dose, m, weights=weights)
        v, w = h.values, h.weights
    else:
        try:
            v = np.asarray(dose, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise InputError(f"must be a DVH, a Volume or numbers, got {type(dose).__name__}",
                             field=name) from None
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise InputError("must be a non-empty array of finite values", field=name)
        if mask is not None:
            mk = np.asarray(mask).ravel()
            if mk.size != v.size:
                raise InputError(f"has {mk.size} values for {v.size} doses", field="mask")
            sel = mk.astype(np.float64)
        else:
            sel = np.ones_like(v)
        if weights is None:
            w = sel
        else:
            w = np.asarray(weights, dtype=np.float64).ravel()
            if w.size != v.size:
                raise InputError(f"has {w.size} values for {v.size} doses", field="weights")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise InputError("must be finite and >= 0", field="weights")
            w = w * sel
        keep = w > 0
        if not np.any(keep):
            raise InputError("no voxel has a positive weight", field="weights")
        v, w = v[keep], w[keep]
    return v, w / np.sum(w)


def geud(dose, a: float, *, mask=None, weights=None) -> float:
    r"""Generalised equivalent uniform dose :math:`(\sum_i v_i D_i^a)^{1/a}` (Niemierko).

    Parameters
    ----------
    dose : DVH, Volume or array_like
        Dose (or BED) values: a DVH, a Volume (with ``mask``; all voxels if None) or an array.
    a : float
        Volume-effect parameter (finite; 0 gives the geometric mean). Negative ``a`` requires
        all values > 0.
    mask, weights : array_like, optional
        VOI and voxel weights as in :func:`theradose.dose._dvh.dvh` (not with a DVH).

    Returns
    -------
    float
        gEUD in the unit of ``dose``.

    Raises
    ------
    InputError
        Non-finite ``a``; values ≤ 0 with ``a ≤ 0``; negative values with non-integer ``a``;
        empty VOI.

    References
    ----------
    Niemierko A. Med Phys 1997;24:103-110. doi:10.1118/1.598063

    Examples
    --------
    >>> geud([1.0, 3.0], 1.0)
    2.0
    """
    try:
        a = float(a)
    except (TypeError, ValueError):
        a = math.nan
    if not math.isfinite(a):
        raise InputError(f"must be a finite number, got {a!r}", field="a")
    v, w = _values_weights(dose, mask, weights, "dose")
    if np.any(v < 0):
        raise InputError(f"values must be >= 0, got minimum {v.min():g}", field="dose")
    if a <= 0 and np.any(v <= 0):
        raise InputError(f"needs all values > 0 for a = {a:g} <= 0 (a zero dose gives an EUD "
                         "of 0)", field="dose")
    if a == 0.0:
        return float(np.exp(np.sum(w * np.log(v))))
    pos = v > 0
    if not np.any(pos):
        return 0.0
    # (Σ w v^a)^(1/a) in log space: exp(logsumexp(a ln v, b=w) / a)
    return float(np.exp(logsumexp(a * np.log(v[pos]), b=w[pos]) / a))


def eubed(bed, alpha_per_gy: float, *, mask=None, weights=None) -> float:
    r"""Equivalent uniform BED :math:`-\ln(\sum_i v_i e^{-\alpha BED_i})/\alpha`, Gy.

    Parameters
    ----------
    bed : DVH, Volume or array_like
        BED values (Gy); an absorbed-dose map gives O'Donoghue's EUD.
    alpha_per_gy : float
        Radiosensitivity α, 1/Gy (> 0), e.g. ``get_tissue("tumour").alpha_per_gy``.
    mask, weights : array_like, optional
        VOI and voxel weights (not with a DVH).

    Returns
    -------
    float
        EUBED, Gy (between the minimum and the mean BED).

    Raises
    ------
    InputError
        α ≤ 0 or not finite, empty VOI, non-finite values.

    References
    ----------
    O'Donoghue JA. J Nucl Med 1999;40:1337-1341.
    Strigari L et al. J Nucl Med 2010;51:1377-1385. doi:10.2967/jnumed.110.075861

    Examples
    --------
    >>> round(eubed([10.0, 10.0], 0.3), 12)
    10.0
    """
    try:
        alpha = float(alpha_per_gy)
    except (TypeError, ValueError):
        alpha = math.nan
    if not (math.isfinite(alpha) and alpha > 0):
        raise InputError(f"must be a positive number (1/Gy), got {alpha_per_gy!r}",
                         field="alpha_per_gy")
    v, w = _values_weights(bed, mask, weights, "bed")
    return float(-logsumexp(-alpha * v, b=w) / alpha)
