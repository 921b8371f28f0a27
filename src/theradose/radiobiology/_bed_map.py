r"""Voxel-wise BED maps and the effective-rate maps they need.

:func:`bed_map` applies :math:`BED = D(1 + G D/(\alpha/\beta))` voxel by voxel, with G from the
voxel's dose-rate curve: mono-exponential (:math:`G=\lambda/(\lambda+\mu)`, a rate map) or a sum
of exponentials (amplitude and rate maps, closed form of
:func:`~theradose.radiobiology.lea_catcheside_g`). α/β and T_rep are scalars (a tissue) or
maps (e.g. tumour and normal-tissue values by label).

:func:`effective_rate_map` gives the mono-exponential effective rate per voxel from the last
time points of the activity images (log-linear least squares, raised to λ_phys), because
:class:`theradose.kinetics.VoxelFitResult` keeps TIA maps but not the fitted parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from theradose import __version__
from theradose.errors import InputError, TimeOrderError, UnitError
from theradose.nuclides import get_nuclide
from theradose.radiobiology._lea_catcheside import lea_catcheside_g
from theradose.radiobiology._tissues import get_tissue
from theradose.volume import Volume

__all__ = ["bed_map", "effective_rate_map"]

#: Dose values down to -_NEG_TOL × max are treated as 0 (FFT round-off of convolution engines).
_NEG_TOL = 1e-6


def _map(x, shape, name: str, dose: Volume, *, trailing: bool = False) -> np.ndarray:
    """Scalar, ndarray or Volume as a float array of ``shape`` (or ``shape + (n,)``)."""
    if isinstance(x, Volume):
        dose.geometry.require_same(x.geometry, what=f"dose and {name}")
        x = x.array
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"must be a number or a map, got {type(x).__name__}",
                         field=name) from None
    if a.ndim == 0:
        return np.broadcast_to(a, shape)
    if a.shape == shape:
        return a
    if trailing and a.ndim == len(shape) + 1 and a.shape[:-1] == shape:
        return a
    want = f"{shape}" + (f" or {shape} + (n,)" if trailing else "")
    raise InputError(f"shape {a.shape} does not match the dose; expected a scalar or {want}",
                     field=name)


def bed_map(dose: Volume, rates_per_h, tissue=None, *, amplitudes=None,
            alpha_beta_gy=None, repair_half_time_h=None) -> Volume:
    """Voxel-wise BED map from an absorbed-dose map and the voxels' dose-rate kinetics.

    Parameters
    ----------
    dose : Volume
        (Z, Y, X) absorbed dose of one cycle (Gy or mGy), ≥ 0 (values above ``-1e-6 × max``
        are taken as 0).
    rates_per_h : float, (Z, Y, X) ndarray/Volume, or (Z, Y, X, n) ndarray
        Effective decay rates of the dose rate (1/h, > 0 where dose > 0): one rate per voxel
        (mono-exponential, e.g. :func:`effective_rate_map` or an organ's fitted rate per VOI),
        or ``n`` component rates with ``amplitudes``.
    tissue : str or TissueParameters, optional
        α/β and T_rep (see :func:`~theradose.radiobiology.get_tissue`).
    amplitudes : (Z, Y, X, n) ndarray, optional
        Relative dose-rate amplitudes of the components (any scale; negative for uptake
        terms). Needs ``n``-component ``rates_per_h``.
    alpha_beta_gy, repair_half_time_h : float or (Z, Y, X) ndarray/Volume, optional
        Override (or, without ``tissue``, give) α/β (Gy) and the repair half-time (h); maps
        allow several tissues in one image.

    Returns
    -------
    Volume
        BED in Gy on the dose grid, ``meta["quantity"] = "BED"`` (plus α/β, T_rep, method);
        ``sigma`` = (1 + 2 G D/(α/β)) σ_D when the dose has a σ (G's uncertainty not included).

    Raises
    ------
    InputError
        Wrong shapes, non-positive or non-finite rates where dose > 0, negative doses, missing
        tissue parameters, amplitudes without component rates.
    UnitError
        ``dose`` not an absorbed dose.
    GeometryMismatchError
        A Volume argument on another grid.

    References
    ----------
    Dale RG. Br J Radiol 1985;58:515-528. doi:10.1259/0007-1285-58-690-515

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.volume import Volume
    >>> d = Volume.from_array(np.full((1, 1, 2), 10.0), spacing_mm=(4, 4, 4), unit="Gy")
    >>> b = bed_map(d, 1e6, alpha_beta_gy=2.0, repair_half_time_h=1.0)
    >>> round(float(b.array[0, 0, 0]), 3)  # near-acute: 10 (1 + 10/2)
    60.0
    """
    if not isinstance(dose, Volume):
        raise InputError(f"must be a Volume in Gy, got {type(dose).__name__}", field="dose")
    if dose.unit_info.dimension != "absorbed_dose":
        raise UnitError(f"must be an absorbed dose (Gy, mGy), got {dose.unit!r}",
                        field="dose.unit")
    d = dose.to_unit("Gy").array.astype(np.float64, copy=True)
    if not np.all(np.isfinite(d)):
        raise InputError(f"{int(np.sum(~np.isfinite(d)))} voxel(s) are not finite",
                         field="dose")
    dmax = float(d.max()) if d.size else 0.0
    if np.any(d < -_NEG_TOL * max(dmax, 0.0)):
        raise InputError(f"has negative doses down to {d.min():g} Gy", field="dose")
    d = np.maximum(d, 0.0)
    shape = d.shape
    if tissue is None and (alpha_beta_gy is None or repair_half_time_h is None):
        raise InputError("give a tissue or both alpha_beta_gy and repair_half_time_h",
                         field="tissue")
    t = None if tissue is None else get_tissue(tissue)
    ab = _map(t.alpha_beta_gy if alpha_beta_gy is None else alpha_beta_gy, shape,
              "alpha_beta_gy", dose)
    tr = _map(t.repair_half_time_h if repair_half_time_h is None else repair_half_time_h,
              shape, "repair_half_time_h", dose)
    live = d > 0
    for arr, nm in ((ab, "alpha_beta_gy"), (tr, "repair_half_time_h")):
        bad = live & ~(np.isfinite(arr) & (arr > 0))
        if np.any(bad):
            raise InputError(f"must be finite and > 0 where dose > 0; {int(bad.sum())} "
                             "voxel(s) are not", field=nm)
    lam = _map(rates_per_h, shape, "rates_per_h", dose, trailing=True)
    multi = lam.ndim == len(shape) + 1
    if amplitudes is not None and not multi:
        raise InputError("amplitudes need component rates of shape (Z, Y, X, n)",
                         field="amplitudes")
    if multi and amplitudes is None:
        raise InputError("component rates (Z, Y, X, n) need amplitudes of the same shape",
                         field="amplitudes")
    g = np.zeros(shape)
    if np.any(live):
        mu = math.log(2.0) / tr[live]
        if multi:
            amp = _map(amplitudes, shape, "amplitudes", dose, trailing=True)
            if amp.shape != lam.shape:
                raise InputError(f"shape {amp.shape} differs from rates {lam.shape}",
                                 field="amplitudes")
            lv = lam[live]
            if not np.all(np.isfinite(lv) & (lv > 0)):
                raise InputError("component rates must be finite and > 0 1/h where dose > 0",
                                 field="rates_per_h")
            g[live] = lea_catcheside_g(amp[live], lv, mu)
            method = "Lea-Catcheside factor of per-voxel sums of exponentials (closed form)"
        else:
            lv = lam[live]
            bad = ~(np.isfinite(lv) & (lv > 0))
            if np.any(bad):
                raise InputError(f"must be finite and > 0 1/h where dose > 0; "
                                 f"{int(bad.sum())} voxel(s) are not", field="rates_per_h")
            g[live] = lv / (lv + mu)
            method = "mono-exponential dose rate per voxel: G = lambda/(lambda + mu)"
    else:
        method = "zero dose"
    g = np.clip(g, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(live, g * d / np.where(live, ab, 1.0), 0.0)
    out = d * (1.0 + factor)
    sigma = None
    if dose.sigma is not None:
        sd = np.asarray(dose.to_unit("Gy").sigma, dtype=np.float64)
        sigma = (1.0 + 2.0 * factor) * sd
    meta = {**dose.meta, "quantity": "BED",
            "alpha_beta_gy": float(ab.flat[0]) if np.ndim(alpha_beta_gy) == 0 and
            not isinstance(alpha_beta_gy, Volume) else "map",
            "repair_half_time_h": float(tr.flat[0]) if np.ndim(repair_half_time_h) == 0 and
            not isinstance(repair_half_time_h, Volume) else "map",
            "tissue": None if t is None else t.name, "bed_method": method,
            "theradose_version": __version__}
    return dose.replace(array=out, unit="Gy", sigma=sigma, meta=meta, modality="OT",
                        note=f"theradose.radiobiology.bed_map ({method})")


def effective_rate_map(times_h: Sequence[float], images, mask=None, *, n_tail: int = 2,
                       nuclide: str = "Lu-177") -> Volume | np.ndarray:
    """Mono-exponential effective rate per voxel from the last time points (1/h).

    A log-linear least-squares line through the last ``n_tail`` points of every voxel's
    decayed activity gives its effective rate, raised to the physical decay constant where the
    points decay slower (or rise); voxels with a non-positive value among those points, or
    outside ``mask``, get λ_phys (physical decay only, which gives the lowest G of any
    clearance). Use it with :func:`bed_map` when only TIA maps were kept from a voxel fit.

    Parameters
    ----------
    times_h : (T,) array_like
        Acquisition times after injection, h, strictly increasing.
    images : (T, Z, Y, X) ndarray or list of T Volumes
        Decayed activity (or concentration) images; Volumes must share one grid.
    mask : (Z, Y, X) bool array_like, optional
        Voxels to compute (others get λ_phys).
    n_tail : int
        Number of last time points used (2 ≤ n_tail ≤ T).
    nuclide : str
        Sets λ_phys.

    Returns
    -------
    Volume (unit "1", ``meta["quantity"] = "effective_rate_per_h"``) for Volume input,
    else ndarray, 1/h.

    Raises
    ------
    InputError, TimeOrderError
        Bad times, images, mask or ``n_tail``.
    """
    try:
        t = np.asarray(times_h, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"must be numbers of hours, got {times_h!r}", field="times_h") from None
    if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t)):
        raise InputError(f"must be >= 2 finite times in h, got {np.asarray(times_h).tolist()}",
                         field="times_h")
    if np.any(np.diff(t) <= 0):
        raise TimeOrderError(f"must be strictly increasing, got {t.tolist()}", field="times_h")
    geom = None
    if isinstance(images, (list, tuple)) and images and all(isinstance(v, Volume)
                                                            for v in images):
        geom = images[0].geometry
        for i, v in enumerate(images):
            geom.require_same(v.geometry, what=f"images[0] and images[{i}]")
        data = np.stack([np.asarray(v.array, dtype=np.float64) for v in images])
    else:
        try:
            data = np.asarray(images, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("must be a (T, Z, Y, X) array or a list of Volumes",
                             field="images") from None
    if data.ndim < 2 or data.shape[0] != t.size:
        raise InputError(f"must have {t.size} time points on axis 0, got shape {data.shape}",
                         field="images")
    if not (isinstance(n_tail, int) and 2 <= n_tail <= t.size):
        raise InputError(f"must be an integer in [2, {t.size}], got {n_tail!r}",
                         field="n_tail")
    lam_phys = float(get_nuclide(nuclide, field="nuclide").decay_constant_per_h)
    spatial = data.shape[1:]
    m = np.ones(spatial, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != spatial:
        raise InputError(f"shape {m.shape} does not match the images' {spatial}", field="mask")
    ts = t[-n_tail:]
    y = data[-n_tail:]
    ok = m & np.all(y > 0, axis=0) & np.all(np.isfinite(y), axis=0)
    rate = np.full(spatial, lam_phys)
    if np.any(ok):
        ly = np.log(y[:, ok])  # (n_tail, N)
        tc = ts - ts.mean()
        slope = (tc @ (ly - ly.mean(axis=0))) / np.sum(tc * tc)
        rate[ok] = np.maximum(-slope, lam_phys)
    if geom is not None:
        return Volume(rate, geom, unit="1", modality="OT",
                      meta={"quantity": "effective_rate_per_h", "n_tail": n_tail,
                            "lambda_phys_per_h": lam_phys},
                      history=("theradose.radiobiology.effective_rate_map",))
    return rate
