r"""Biologically effective dose (BED), EQD2 and multi-cycle accumulation.

* :func:`bed`: :math:`BED = D\,(1 + G\,D/(\alpha/\beta))` for any Lea–Catcheside factor G
  (:func:`~theradose.radiobiology.lea_catcheside_g`).
* :func:`bed_mono`: the closed form for a mono-exponential dose rate
  :math:`\dot D = D\lambda e^{-\lambda t}` with repair rate :math:`\mu=\ln2/T_{rep}`:
  :math:`BED = D\,(1 + D\lambda/((\mu+\lambda)(\alpha/\beta)))` (Dale 1985).
* :func:`eqd2`: :math:`EQD2 = BED/(1 + 2/(\alpha/\beta))`, the dose in 2-Gy fractions with the
  same BED (Withers et al. 1983).
* :func:`bed_from_fit`: BED of an organ from its fitted time-activity curve and the dose per
  unit TIA (dose rate ∝ activity: the fitted curve's shape is the dose-rate curve's).
* :func:`accumulate_cycles`: total BED of several therapy cycles as the sum of the cycles'
  BEDs, assuming **complete repair between cycles** (intervals of weeks ≫ T_rep of hours) and
  **no repopulation**; EQD2 of the total follows from the total BED.

References
----------
Dale RG. The application of the linear-quadratic dose-effect equation to fractionated and
protracted radiotherapy. Br J Radiol 1985;58:515-528. doi:10.1259/0007-1285-58-690-515

Withers HR, Thames HD, Peters LJ. A new isoeffect curve for change in dose per fraction.
Radiother Oncol 1983;1:187-191. doi:10.1016/S0167-8140(83)80021-8

Baechler S, Hobbs RF, Prideaux AR, Wahl RL, Sgouros G. Extension of the biological effective
dose to the MIRD schema and possible implications in radionuclide therapy dosimetry. Med Phys
2008;35:1123-1134. doi:10.1118/1.2836421
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose import __version__
from theradose.errors import InputError, TheradoseWarning, UnitError
from theradose.radiobiology._lea_catcheside import (
    lea_catcheside_g,
    piecewise_g,
    sum_of_exponentials,
)
from theradose.radiobiology._tissues import get_tissue
from theradose.volume import Volume

__all__ = [
    "BEDResult",
    "CycleAccumulation",
    "accumulate_cycles",
    "bed",
    "bed_from_fit",
    "bed_mono",
    "eqd2",
]

_PARAMETRIC = ("mono", "bi_uptake", "bi", "tri_uptake", "tri")


def _arr(x, name: str, *, positive: bool = False, nonneg: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"must be numbers, got {x!r}", field=name) from None
    if not np.all(np.isfinite(a)):
        raise InputError("must be finite numbers", field=name)
    if positive and np.any(a <= 0):
        raise InputError(f"must be > 0, got minimum {a.min():g}", field=name)
    if nonneg and np.any(a < 0):
        raise InputError(f"must be >= 0, got minimum {a.min():g}", field=name)
    return a


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


def bed(dose_gy, g, alpha_beta_gy):
    r"""Biologically effective dose :math:`BED = D\,(1 + G\,D/(\alpha/\beta))`, Gy.

    Parameters
    ----------
    dose_gy : float or ndarray
        Absorbed dose of one cycle, Gy (≥ 0).
    g : float or ndarray
        Lea–Catcheside factor in [0, 1] (1: acute delivery; λ/(λ+μ) for a mono-exponential
        dose rate), broadcast with ``dose_gy``.
    alpha_beta_gy : float or ndarray
        α/β, Gy (> 0).

    Returns
    -------
    float or ndarray
        BED, Gy.

    Raises
    ------
    InputError
        Negative or non-finite dose, G outside [0, 1], α/β ≤ 0.

    Examples
    --------
    >>> bed(2.0, 1.0, 10.0)  # one acute 2-Gy fraction: 2 (1 + 2/10)
    2.4
    """
    d = _arr(dose_gy, "dose_gy", nonneg=True)
    gg = _arr(g, "g")
    if np.any((gg < 0) | (gg > 1 + 1e-9)):
        raise InputError(f"must lie in [0, 1], got range [{gg.min():g}, {gg.max():g}]",
                         field="g")
    ab = _arr(alpha_beta_gy, "alpha_beta_gy", positive=True)
    return _out(d * (1.0 + gg * d / ab))


def bed_mono(dose_gy, lambda_eff_per_h, alpha_beta_gy, repair_half_time_h):
    r"""BED of a mono-exponentially decaying dose rate (closed form, Dale 1985).

    :math:`BED = D\,(1 + D\lambda/((\mu+\lambda)(\alpha/\beta)))`, μ = ln 2 / T_rep.

    Parameters
    ----------
    dose_gy : float or ndarray
        Total absorbed dose (integral of the dose rate to infinity), Gy.
    lambda_eff_per_h : float or ndarray
        Effective decay rate of the dose rate, 1/h (> 0).
    alpha_beta_gy : float or ndarray
        α/β, Gy.
    repair_half_time_h : float or ndarray
        Repair half-time, h (> 0).

    Returns
    -------
    float or ndarray
        BED, Gy.

    References
    ----------
    Dale RG. Br J Radiol 1985;58:515-528. doi:10.1259/0007-1285-58-690-515

    Examples
    --------
    >>> round(bed_mono(20.0, math.log(2) / 50.0, 2.6, 2.8), 4)  # kidney, T_eff 50 h
    28.1585
    """
    d = _arr(dose_gy, "dose_gy", nonneg=True)
    lam = _arr(lambda_eff_per_h, "lambda_eff_per_h", positive=True)
    ab = _arr(alpha_beta_gy, "alpha_beta_gy", positive=True)
    trep = _arr(repair_half_time_h, "repair_half_time_h", positive=True)
    mu = math.log(2.0) / trep
    return _out(d * (1.0 + d * lam / ((mu + lam) * ab)))


def eqd2(bed_gy, alpha_beta_gy):
    r"""Equivalent dose in 2-Gy fractions :math:`EQD2 = BED/(1 + 2/(\alpha/\beta))`, Gy.

    Parameters
    ----------
    bed_gy : float, ndarray or Volume
        BED, Gy. A Volume (unit Gy) gives a Volume with ``meta["quantity"] = "EQD2"``.
    alpha_beta_gy : float or ndarray
        α/β, Gy (> 0), broadcast with ``bed_gy``.

    Returns
    -------
    float, ndarray or Volume
        EQD2, Gy.

    References
    ----------
    Withers HR, Thames HD, Peters LJ. Radiother Oncol 1983;1:187-191.
    doi:10.1016/S0167-8140(83)80021-8

    Examples
    --------
    >>> eqd2(2.4, 10.0)  # a 2-Gy acute fraction is its own EQD2
    2.0
    """
    ab = _arr(alpha_beta_gy.array if isinstance(alpha_beta_gy, Volume) else alpha_beta_gy,
              "alpha_beta_gy", positive=True)
    if isinstance(bed_gy, Volume):
        if bed_gy.unit_info.dimension != "absorbed_dose":
            raise UnitError(f"must be in Gy, got {bed_gy.unit!r}", field="bed_gy.unit")
        b = _arr(bed_gy.to_unit("Gy").array, "bed_gy", nonneg=True)
        meta = {**bed_gy.meta, "quantity": "EQD2",
                "alpha_beta_gy": float(ab) if ab.ndim == 0 else "map"}
        return bed_gy.replace(array=b / (1.0 + 2.0 / ab), unit="Gy", sigma=None, meta=meta,
                              note="theradose.radiobiology.eqd2")
    b = _arr(bed_gy, "bed_gy", nonneg=True)
    return _out(b / (1.0 + 2.0 / ab))


# ---------------------------------------------------------------------------- from a fit
@dataclass(frozen=True)
class BEDResult:
    """BED of one VOI and one cycle from its kinetics.

    Attributes
    ----------
    dose_gy, sigma_dose_gy : float
        Absorbed dose (dose per TIA × TIA) and its standard uncertainty (from the TIA's), Gy.
    bed_gy, sigma_bed_gy : float
        BED and its uncertainty propagated from the dose (dBED/dD = 1 + 2GD/(α/β); the
        uncertainty of G is not included), Gy.
    eqd2_gy : float
        EQD2 of ``bed_gy``, Gy.
    g_factor : float
        Lea–Catcheside factor of the dose-rate curve.
    alpha_beta_gy, repair_half_time_h : float
        Parameters used.
    tissue : str
        Tissue name (``"custom"`` for explicit parameters).
    model : str
        Kinetic model whose curve gave G.
    method : str
        How G was computed (closed form or piecewise curve).
    amplitudes_gy_per_h, rates_per_h : tuple of float
        Dose-rate curve as a sum of exponentials (empty for piecewise curves).
    provenance : dict
    """

    dose_gy: float
    sigma_dose_gy: float
    bed_gy: float
    sigma_bed_gy: float
    eqd2_gy: float
    g_factor: float
    alpha_beta_gy: float
    repair_half_time_h: float
    tissue: str
    model: str
    method: str
    amplitudes_gy_per_h: tuple[float, ...] = ()
    rates_per_h: tuple[float, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _tissue_params(tissue, alpha_beta_gy, repair_half_time_h) -> tuple[float, float, str]:
    if tissue is None:
        if alpha_beta_gy is None or repair_half_time_h is None:
            raise InputError("give a tissue (name or TissueParameters) or both alpha_beta_gy "
                             "and repair_half_time_h", field="tissue")
        name = "custom"
        ab, tr = alpha_beta_gy, repair_half_time_h
    else:
        t = get_tissue(tissue)
        name = t.name
        ab = t.alpha_beta_gy if alpha_beta_gy is None else alpha_beta_gy
        tr = t.repair_half_time_h if repair_half_time_h is None else repair_half_time_h
    ab = float(_arr(ab, "alpha_beta_gy", positive=True))
    tr = float(_arr(tr, "repair_half_time_h", positive=True))
    return ab, tr, name


def _hybrid_curve(t: np.ndarray, y: np.ndarray, rate: float, n_tail: int):
    """Nodes of the hybrid TIA curve: trapezoids to the first tail point, then the tail."""
    ts, ys = t[-n_tail:], y[-n_tail:]
    pos = ys > 0
    anchor = float(np.exp(np.mean(np.log(ys[pos]) + rate * (ts[pos] - ts[0])))) \
        if pos.any() else 0.0
    s = t.size - n_tail
    return t[: s + 1], np.concatenate([y[:s], [anchor]]), anchor


def bed_from_fit(fit, dose_per_tia_gy_per_mbq_h: float, tissue=None, *, model: str | None = None,
                 alpha_beta_gy: float | None = None, repair_half_time_h: float | None = None,
                 n_tail: int = 2) -> BEDResult:
    """BED of a VOI from its fitted time-activity curve (one cycle).

    The dose rate is taken proportional to the VOI's activity, ``Ḋ(t) = s · A(t)`` with ``s``
    the dose per unit TIA (Gy per MBq·h, e.g. a self-dose S-value × 3600 / 1000, or dose/TIA of
    a dose map), so ``D = s · TIA`` and G is the Lea–Catcheside factor of the fitted curve:

    * ``mono``, ``bi_uptake``, ``bi``, ``tri_uptake``, ``tri``: closed form of
      :func:`lea_catcheside_g` on the model written as a sum of exponentials;
    * ``trapezoid``: the same piecewise curve that gave the TIA — linear from (0, 0) through the
      points, then physical decay from the last point (:func:`piecewise_g`);
    * ``hybrid``: linear from (0, 0) to the first of the last ``n_tail`` points, then the fitted
      tail exponential (rate ``l_tail``) — as :func:`theradose.kinetics.hybrid_tia`.

    Parameters
    ----------
    fit : theradose.kinetics.KineticFit
        Result of :func:`theradose.kinetics.fit_tac` (the selected model is used unless
        ``model`` names another fitted one).
    dose_per_tia_gy_per_mbq_h : float
        Absorbed dose per unit TIA, Gy/(MBq·h) (> 0). For fits of concentrations (Bq/mL) give
        Gy per (Bq·h/mL).
    tissue : str or TissueParameters, optional
        Tissue (α/β, T_rep); or give ``alpha_beta_gy`` and ``repair_half_time_h``.
    model : str, optional
        Model of ``fit.fits`` to use instead of the selected one.
    alpha_beta_gy, repair_half_time_h : float, optional
        Override the tissue's values.
    n_tail : int
        Tail points of the hybrid method (as given to ``fit_tac``; default 2).

    Returns
    -------
    BEDResult

    Raises
    ------
    InputError
        Not a KineticFit, unknown model, non-positive dose per TIA, missing tissue parameters.

    Warns
    -----
    TheradoseWarning
        If the piecewise curve of a trapezoid/hybrid fit does not reproduce the fit's TIA to
        0.1 % (e.g. a different ``n_tail``).

    References
    ----------
    Baechler S et al. Med Phys 2008;35:1123-1134. doi:10.1118/1.2836421
    """
    if not (hasattr(fit, "fits") and hasattr(fit, "selected") and hasattr(fit, "times_h")):
        raise InputError(f"must be a theradose.kinetics.KineticFit, got {type(fit).__name__}",
                         field="fit")
    name = fit.selected if model is None else model
    if name not in fit.fits:
        raise InputError(f"model {name!r} was not fitted; available: {sorted(fit.fits)}",
                         field="model")
    mf = fit.fits[name]
    s = float(_arr(dose_per_tia_gy_per_mbq_h, "dose_per_tia_gy_per_mbq_h", positive=True))
    ab, trep, tname = _tissue_params(tissue, alpha_beta_gy, repair_half_time_h)
    mu = math.log(2.0) / trep
    amps: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()
    if name in _PARAMETRIC:
        a, lam = sum_of_exponentials(name, mf.params)
        g = lea_catcheside_g(a, lam, mu)
        amps, rates = tuple(float(v) for v in s * a), tuple(float(v) for v in lam)
        method = "closed-form Lea-Catcheside factor of the fitted sum of exponentials"
    elif name in ("trapezoid", "hybrid"):
        t, y = np.asarray(fit.times_h, float), np.asarray(fit.values, float)
        if not (isinstance(n_tail, int) and 2 <= n_tail <= t.size):
            raise InputError(f"must be an integer in [2, {t.size}], got {n_tail!r}",
                             field="n_tail")
        if name == "trapezoid":
            rate = float(fit.lambda_phys_per_h)
            g, integral = piecewise_g(t, np.maximum(y, 0.0), rate, mu)
        else:
            rate = float(mf.params[0])
            tt, yy, anchor = _hybrid_curve(t, y, rate, n_tail)
            g, integral = piecewise_g(tt, np.maximum(yy, 0.0), rate, mu, tail_value=anchor)
        if abs(integral - mf.tia) > 1e-3 * abs(mf.tia):
            warnings.warn(f"the {name} curve integrates to {integral:g}, the fit's TIA is "
                          f"{mf.tia:g}; G may not match the fitted curve (n_tail?)",
                          TheradoseWarning, stacklevel=2)
        method = (f"Lea-Catcheside factor of the {name} curve (piecewise linear head, "
                  f"exponential tail at {rate:.6g} 1/h)")
    else:
        raise InputError(f"model {name!r} is not supported; accepted: "
                         f"{', '.join((*_PARAMETRIC, 'trapezoid', 'hybrid'))}", field="model")
    dose = s * float(mf.tia)
    sigma_tia = fit.sigma_tia if name == fit.selected else mf.sigma_tia_fit
    sd = s * float(sigma_tia) if np.isfinite(sigma_tia) else math.nan
    b = float(bed(dose, min(max(g, 0.0), 1.0), ab))
    sb = (1.0 + 2.0 * g * dose / ab) * sd
    prov = {"theradose_version": __version__, "fit_unit": fit.unit, "tia": float(mf.tia),
            "dose_per_tia": s, "assumption": "dose rate proportional to the VOI activity",
            "references": ["Dale 1985, doi:10.1259/0007-1285-58-690-515",
                           "Baechler et al. 2008, doi:10.1118/1.2836421"]}
    return BEDResult(dose, sd, b, sb, float(eqd2(b, ab)), float(g), ab, trep, tname, name,
                     method, amps, rates, prov)


# ---------------------------------------------------------------------------- cycles
@dataclass(frozen=True, eq=False)
class CycleAccumulation:
    """Total BED over therapy cycles.

    Attributes
    ----------
    bed_per_cycle : tuple
        BED of each cycle, Gy (floats, arrays or Volumes as given).
    total_bed : float, ndarray or Volume
        Sum of the cycles' BEDs, Gy.
    total_dose : float, ndarray, Volume or None
        Sum of the absorbed doses, Gy (None when only BEDs were given).
    total_eqd2 : float, ndarray, Volume or None
        EQD2 of ``total_bed`` (None without α/β).
    alpha_beta_gy : float or None
    assumption : str
        The accumulation model.
    """

    bed_per_cycle: tuple
    total_bed: Any
    total_dose: Any
    total_eqd2: Any
    alpha_beta_gy: float | None
    assumption: str = ("BEDs add over cycles: complete repair of sub-lethal damage between "
                       "cycles (intervals >> T_rep) and no repopulation")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (scalar totals only; arrays are summarised by their mean)."""
        def val(x):
            if x is None:
                return None
            if isinstance(x, Volume):
                x = x.array
            return float(x) if np.ndim(x) == 0 else {"mean": float(np.mean(x))}
        return {"n_cycles": len(self.bed_per_cycle),
                "bed_per_cycle_gy": [val(b) for b in self.bed_per_cycle],
                "total_bed_gy": val(self.total_bed), "total_dose_gy": val(self.total_dose),
                "total_eqd2_gy": val(self.total_eqd2), "alpha_beta_gy": self.alpha_beta_gy,
                "assumption": self.assumption}


def _cycle_value(c, i: int, geom_ref: list):
    if isinstance(c, Volume):
        if c.unit_info.dimension != "absorbed_dose":
            raise UnitError(f"must be in Gy, got {c.unit!r}", field=f"cycles[{i}].unit")
        if geom_ref:
            geom_ref[0].geometry.require_same(c.geometry, what=f"cycles[0] and cycles[{i}]")
        else:
            geom_ref.append(c)
        return _arr(c.to_unit("Gy").array, f"cycles[{i}]", nonneg=True)
    return _arr(c, f"cycles[{i}]", nonneg=True)


def accumulate_cycles(cycles: Sequence, *, g_factors: Sequence | None = None,
                      alpha_beta_gy: float | None = None) -> CycleAccumulation:
    """Total BED (and EQD2) of several therapy cycles.

    BED adds over cycles under complete repair between cycles (weeks apart, T_rep of hours)
    and no repopulation: ``BED_total = Σ_k D_k (1 + G_k D_k/(α/β))``. Note that this is not
    the BED of the summed dose ``Σ D_k`` (smaller doses per cycle spare late-responding
    tissue).

    Parameters
    ----------
    cycles : sequence
        One entry per cycle: :class:`BEDResult` objects; or, with ``g_factors``, absorbed doses
        (Gy: floats, arrays or Volumes on one grid); or, without ``g_factors``, BEDs (Gy).
    g_factors : sequence, optional
        Lea–Catcheside factor of each cycle (float or array broadcast with the dose); marks
        ``cycles`` as doses.
    alpha_beta_gy : float, optional
        α/β (Gy): needed with ``g_factors`` and for EQD2; taken from the BEDResults when
        omitted.

    Returns
    -------
    CycleAccumulation
        Totals of the type given (float, ndarray, or Volume with ``meta["quantity"]="BED"``).

    Raises
    ------
    InputError
        No cycles; mixed BEDResults and numbers; BEDResults with different α/β; lengths of
        ``cycles`` and ``g_factors`` that differ; doses without α/β.

    Examples
    --------
    >>> r = accumulate_cycles([5.0, 5.0], g_factors=[1.0, 1.0], alpha_beta_gy=2.5)
    >>> r.total_bed  # 2 × 5 (1 + 5/2.5)
    30.0
    """
    cycles = list(cycles)
    if not cycles:
        raise InputError("needs at least one cycle", field="cycles")
    results = [isinstance(c, BEDResult) for c in cycles]
    if any(results):
        if not all(results):
            raise InputError("mixes BEDResult objects and plain numbers; give one kind",
                             field="cycles")
        abs_ = {c.alpha_beta_gy for c in cycles}
        if len(abs_) > 1:
            raise InputError(f"cycles have different alpha/beta {sorted(abs_)} Gy; BEDs of "
                             "different tissues do not add", field="cycles")
        ab = alpha_beta_gy if alpha_beta_gy is not None else abs_.pop()
        beds = tuple(c.bed_gy for c in cycles)
        total_bed = float(sum(beds))
        total_dose = float(sum(c.dose_gy for c in cycles))
        return CycleAccumulation(beds, total_bed, total_dose, float(eqd2(total_bed, ab)),
                                 float(ab))
    ref: list = []
    vals = [_cycle_value(c, i, ref) for i, c in enumerate(cycles)]
    ab = None if alpha_beta_gy is None else float(_arr(alpha_beta_gy, "alpha_beta_gy",
                                                       positive=True))
    if g_factors is not None:
        g_factors = list(g_factors)
        if len(g_factors) != len(cycles):
            raise InputError(f"got {len(g_factors)} values for {len(cycles)} cycles",
                             field="g_factors")
        if ab is None:
            raise InputError("is needed to turn cycle doses into BEDs", field="alpha_beta_gy")
        beds_a = [np.asarray(bed(d, g, ab)) for d, g in zip(vals, g_factors, strict=True)]
        total_dose_a = sum(vals)
    else:
        beds_a, total_dose_a = vals, None
    total_bed_a = sum(beds_a)
    total_eqd2_a = None if ab is None else eqd2(total_bed_a, ab)
    if ref:
        g0 = ref[0]

        def vol(a, q):
            return None if a is None else Volume(np.asarray(a, dtype=np.float64), g0.geometry,
                                                 unit="Gy", meta={"quantity": q},
                                                 history=("theradose.radiobiology."
                                                          "accumulate_cycles",))
        return CycleAccumulation(tuple(vol(b, "BED") for b in beds_a), vol(total_bed_a, "BED"),
                                 vol(total_dose_a, "absorbed_dose"),
                                 vol(total_eqd2_a, "EQD2"), ab)
    return CycleAccumulation(tuple(_out(np.asarray(b)) for b in beds_a),
                             _out(np.asarray(total_bed_a)),
                             None if total_dose_a is None else _out(np.asarray(total_dose_a)),
                             None if total_eqd2_a is None else _out(np.asarray(total_eqd2_a)),
                             ab)
