"""Organ-level TAC fitting: weighted non-linear least squares, AICc/BIC selection, NUKFIT checks.

Rules (documented in ``docs/kinetics-fit.md``):

* **Weights.** The residual of point i is (A(t_i) - y_i) / sigma_i. With ``sigma`` given, the
  sigma_i are absolute standard deviations in the data unit. Otherwise (default)
  sigma_i = relative_sigma * max(y_i, 0.01 * max(y)) (relative error of the *measured* value,
  floored at 1% of the maximum so that zeros do not get infinite weight).
* **Covariance.** C = (J^T W J)^{-1}, J the Jacobian of the model at the solution and
  W = diag(1/sigma_i^2). With absolute ``sigma`` C is used as is; with relative weights only the
  *shape* of the error model is trusted, so C is multiplied by the reduced chi-square
  chi^2/(n - k) (as ``scipy.optimize.curve_fit(absolute_sigma=False)``). ``absolute_sigma``
  overrides this rule.
* **Criteria.** With the weighted residual sum of squares chi^2, n points and k parameters:
  AICc = n ln(chi^2/n) + 2k + 2k(k+1)/(n-k-1) (defined for n > k+1; Glatting et al. 2007,
  Burnham & Anderson 2002); BIC = n ln(chi^2/n) + k ln(n).
* **Acceptance** (NUKFIT, Kletting et al. 2013): the fit converged, n > k, the covariance is
  finite, every parameter's coefficient of variation is below ``max_cv`` (0.5) and every
  |correlation| below ``max_abs_corr`` (0.8).
* **Selection.** The accepted model with the lowest criterion (ties: fewer parameters), which
  falls back to simpler models automatically when complex ones fail acceptance; if no
  parametric model is accepted (or has a defined criterion), the ``fallback`` method
  (``"hybrid"`` by default, or ``"trapezoid"``) is used and ``fallback=True`` is set.

References
----------
Kletting P, Schimmel S, Kestler HA, et al. Molecular radiotherapy: the NUKFIT software for
calculating the time-integrated activity coefficient. Med Phys 40:102504 (2013).
doi:10.1118/1.4820367

Glatting G, Kletting P, Reske SN, Hohl K, Ring C. Choosing the optimal fit function: comparison
of the Akaike information criterion and the F-test. Med Phys 34:4285-4292 (2007).
doi:10.1118/1.2794176

Burnham KP, Anderson DR. Model Selection and Multimodel Inference, 2nd ed. Springer (2002).
doi:10.1007/b97636
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import scipy
from scipy.optimize import least_squares

from theradose import __version__
from theradose.errors import InputError, TimeOrderError, UnitError
from theradose.kinetics._models import (
    MODELS,
    NONPARAMETRIC,
    Model,
    hybrid_tia,
    trapezoid_tia,
)
from theradose.kinetics._uncertainty import (
    InputUncertainty,
    combine_tia_sigma,
    delta_method_sigma,
)
from theradose.nuclides import data_source, get_nuclide
from theradose.units import parse_unit

__all__ = ["DEFAULT_MODELS", "KineticFit", "ModelFit", "fit_tac", "tia_unit_for"]

#: Models fitted by default.
DEFAULT_MODELS = ("mono", "bi_uptake", "bi", "tri_uptake")
#: Floor of the relative weights, as a fraction of the largest value.
SIGMA_FLOOR_FRACTION = 0.01
#: Lowest rate (1/h) when the physical constraint is off (a half-life of ~80 years).
RATE_MIN_UNCONSTRAINED = 1e-6

_ACCEPTED_DIMENSIONS = ("activity", "activity_concentration", "counts")
#: Largest accepted value or sigma (any unit): the fit squares values and their inverse
#: (covariance, chi-square), which overflow float64 (1.8e308) above ~1e154; 1e100 keeps a wide
#: margin and is far above any activity, concentration or count.
MAX_VALUE = 1e100
#: Latest accepted time after injection (h, ~11 years): beyond it the exponentials of the tail
#: overflow for any physical decay rate.
MAX_TIME_H = 1e5
#: Largest relative standard deviation (1000 %): more says the values carry no information.
MAX_RELATIVE_SIGMA = 10.0


def tia_unit_for(unit: str) -> str:
    """Unit of the integral of data in ``unit``: MBq -> MBq*h, Bq/mL -> Bq*h/mL, else <unit>*h."""
    return {"MBq": "MBq*h", "Bq/mL": "Bq*h/mL"}.get(unit, f"{unit}*h")


def _clean(x: Any) -> Any:
    """JSON-safe copy: tuples/arrays to lists, numpy scalars to Python, inf/NaN to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if hasattr(x, "to_dict"):
        return x.to_dict()
    return x


@dataclass(frozen=True)
class ModelFit:
    """Fit of one model (or one non-parametric method) to a TAC.

    Attributes
    ----------
    model : str
        Model name.
    kind : str
        ``"parametric"`` (least-squares fit) or ``"nonparametric"`` (trapezoid, hybrid).
    param_names, params, param_sigma : tuple
        Parameters (amplitudes in the data unit, rates in 1/h) and their standard deviations
        (from ``covariance``; NaN where it could not be computed). ``hybrid`` reports its tail
        rate ``l_tail``; ``trapezoid`` has none.
    covariance, correlation : tuple of tuples or None
        Parameter covariance (already multiplied by ``covariance_scale``) and correlation; None
        when singular or not estimable (then ``accepted`` is False and ``reasons`` says why).
    covariance_scale : float
        Factor applied to (J^T W J)^{-1}: the reduced chi-square for relative weights, 1 for
        absolute sigma.
    tia, sigma_tia_fit : float
        TIA from 0 to infinity and its standard deviation from the fit alone ((data unit)·h).
    chi2 : float
        Weighted residual sum of squares sum(((A(t_i) - y_i)/sigma_i)^2).
    dof : int
        n - k.
    aicc, bic : float or None
        Information criteria (None where undefined: AICc needs n > k+1; non-parametric methods).
    r2 : float
        Unweighted coefficient of determination 1 - SS_res/SS_tot.
    fitted, residuals, weighted_residuals : tuple of float
        A(t_i), y_i - A(t_i), (y_i - A(t_i))/sigma_i at the measured times.
    success : bool
        The optimiser converged to a finite solution.
    message : str
        Optimiser message or why the fit failed.
    accepted : bool
        Passed the NUKFIT-style acceptance (always True for a computed non-parametric TIA).
    reasons : tuple of str
        Why the fit is not accepted (empty if accepted).
    at_bound : tuple of str
        Parameters that ended on a bound (e.g. a rate equal to lambda_phys).
    """

    model: str
    kind: str
    param_names: tuple[str, ...]
    params: tuple[float, ...]
    param_sigma: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...] | None
    correlation: tuple[tuple[float, ...], ...] | None
    covariance_scale: float
    tia: float
    sigma_tia_fit: float
    chi2: float
    dof: int
    aicc: float | None
    bic: float | None
    r2: float
    fitted: tuple[float, ...]
    residuals: tuple[float, ...]
    weighted_residuals: tuple[float, ...]
    success: bool
    message: str
    accepted: bool
    reasons: tuple[str, ...] = ()
    at_bound: tuple[str, ...] = ()

    @property
    def cv(self) -> dict[str, float]:
        """Coefficient of variation of each parameter (sigma/|value|)."""
        return {n: (s / abs(p) if p != 0 else math.inf)
                for n, p, s in zip(self.param_names, self.params, self.param_sigma, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (inf/NaN become null)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["parameters"] = dict(zip(self.param_names, self.params, strict=True))
        d["parameter_sigma"] = dict(zip(self.param_names, self.param_sigma, strict=True))
        d["parameter_cv"] = self.cv
        return _clean(d)


@dataclass(frozen=True)
class KineticFit:
    """Result of :func:`fit_tac`: every model's fit, the selected one and the TIA ± sigma.

    Attributes
    ----------
    times_h, values : tuple of float
        The data (h; ``unit``).
    unit, tia_unit : str
        Unit of the data and of the TIA (``MBq`` -> ``MBq*h``).
    nuclide : str
    lambda_phys_per_h : float
        Physical decay constant of the nuclide (1/h).
    constrain_physical : bool
        Rates were bounded below by ``lambda_phys_per_h``.
    lambda_min_per_h : float
        Lower rate bound actually used (1/h).
    sigma : tuple of float
        Standard deviations sigma_i used as weights, data unit.
    sigma_mode : str
        ``"relative"`` (sigma_i = relative_sigma * max(y_i, 1% of max y)) or ``"absolute"``.
    sigma_value : float or None
        ``relative_sigma`` in relative mode.
    criterion : str
        ``"aicc"`` or ``"bic"``.
    fits : dict of str to ModelFit
        One entry per model tried (and the fallback method if it was needed).
    selected : str
        Model whose TIA is reported.
    fallback : bool
        True when no parametric model was accepted and ``selected`` is the fallback method.
    selection_reason : str
    tia, sigma_tia, sigma_tia_fit : float
        TIA of the selected model, its total standard deviation (fit and inputs in quadrature)
        and the fit part alone, (data unit)·h.
    input_uncertainty : InputUncertainty
    acceptance : dict
        Thresholds used (``max_cv``, ``max_abs_corr``).
    provenance : dict
        theradose/scipy versions, method, weights, covariance rule, models tried, references,
        nuclide data source.
    """

    times_h: tuple[float, ...]
    values: tuple[float, ...]
    unit: str
    tia_unit: str
    nuclide: str
    lambda_phys_per_h: float
    constrain_physical: bool
    lambda_min_per_h: float
    sigma: tuple[float, ...]
    sigma_mode: str
    sigma_value: float | None
    criterion: str
    fits: dict[str, ModelFit]
    selected: str
    fallback: bool
    selection_reason: str
    tia: float
    sigma_tia: float
    sigma_tia_fit: float
    input_uncertainty: InputUncertainty
    acceptance: dict[str, float | None]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def selected_fit(self) -> ModelFit:
        """The :class:`ModelFit` of the selected model."""
        return self.fits[self.selected]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; adds ``tia_mbq_h``/``sigma_tia_mbq_h`` when the unit is MBq."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["fits"] = {k: v.to_dict() for k, v in self.fits.items()}
        if self.unit == "MBq":
            d["tia_mbq_h"] = self.tia
            d["sigma_tia_mbq_h"] = self.sigma_tia
        return _clean(d)

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


# --- validation --------------------------------------------------------------------------------
def _as_1d(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected a sequence of numbers, got {x!r}", field=name) from exc
    if a.ndim != 1:
        raise InputError(f"expected a 1-D sequence, got shape {a.shape}", field=name)
    if not np.all(np.isfinite(a)):
        raise InputError(f"values must be finite, got {a.tolist()}", field=name)
    return a


def _validate(times_h, values, sigma, relative_sigma, models, criterion, unit, fallback,
              input_uncertainty, n_tail):
    t = _as_1d(times_h, "times_h")
    y = _as_1d(values, "values")
    if t.size < 2:
        raise InputError(f"need at least 2 time points, got {t.size}", field="times_h")
    if y.size != t.size:
        raise InputError(f"got {y.size} values for {t.size} times; give one value per time",
                         field="values")
    if np.any(np.diff(t) <= 0):
        raise TimeOrderError(f"times must be strictly increasing, got {t.tolist()}",
                             field="times_h")
    if t[0] < 0:
        raise TimeOrderError(f"times are hours after injection and must be >= 0, got {t[0]:g}",
                             field="times_h")
    if t[-1] > MAX_TIME_H:
        raise InputError(f"times are hours after injection, at most {MAX_TIME_H:g} h, got "
                         f"{t[-1]:g}", field="times_h")
    if np.any(np.abs(y) > MAX_VALUE):
        raise InputError(f"values above {MAX_VALUE:g} cannot be fitted in float64 (their "
                         f"squares overflow); got {float(np.max(np.abs(y))):g}: use a larger "
                         "unit", field="values")
    if np.any(y < 0):
        raise InputError(f"activities must be >= 0, got {y.tolist()}; clip or remove negative "
                         "measurements", field="values")
    if not np.any(y > 0):
        raise InputError("all values are zero: nothing to fit", field="values")
    if sigma is not None and relative_sigma is not None:
        raise InputError("give either sigma (absolute) or relative_sigma, not both",
                         field="sigma")
    s = None
    if sigma is not None:
        s = _as_1d(sigma, "sigma")
        if s.size != t.size:
            raise InputError(f"got {s.size} sigmas for {t.size} times", field="sigma")
        if np.any(s <= 0):
            raise InputError(f"sigmas must be > 0, got {s.tolist()}", field="sigma")
        if np.any(s > MAX_VALUE):
            raise InputError(f"sigmas above {MAX_VALUE:g} cannot be fitted in float64, got "
                             f"{float(np.max(s)):g}: use a larger unit", field="sigma")
    rel = 0.1 if relative_sigma is None else relative_sigma
    if sigma is None and not (isinstance(rel, (int, float)) and math.isfinite(rel)
                              and 0 < rel <= MAX_RELATIVE_SIGMA):
        raise InputError(f"must be a number > 0 and at most {MAX_RELATIVE_SIGMA:g} (e.g. 0.1 "
                         f"for 10 %), got {rel!r}", field="relative_sigma")
    if isinstance(models, str):
        models = (models,)
    models = tuple(models)
    known = (*MODELS, *NONPARAMETRIC)
    if not models:
        raise InputError(f"no models given; choose from {', '.join(known)}", field="models")
    for m in models:
        if m not in known:
            raise InputError(f"unknown model {m!r}; choose from {', '.join(known)}",
                             field="models")
    if criterion not in ("aicc", "bic"):
        raise InputError(f"unknown criterion {criterion!r}; choose 'aicc' or 'bic'",
                         field="criterion")
    u = parse_unit(unit)
    if u.dimension not in _ACCEPTED_DIMENSIONS:
        raise UnitError(f"{u.name} is a {u.dimension}; a TAC needs an activity (MBq), an "
                        "activity concentration (Bq/mL) or counts", field="unit")
    if fallback not in NONPARAMETRIC:
        raise InputError(f"unknown fallback {fallback!r}; choose {' or '.join(NONPARAMETRIC)}",
                         field="fallback")
    if not isinstance(input_uncertainty, InputUncertainty):
        raise InputError("expected an InputUncertainty(calibration=..., recovery=..., "
                         f"volume=...), got {type(input_uncertainty).__name__}",
                         field="input_uncertainty")
    if not (isinstance(n_tail, int) and 2 <= n_tail <= t.size):
        raise InputError(f"n_tail must be an integer in [2, {t.size}], got {n_tail!r}",
                         field="n_tail")
    return t, y, s, float(rel), tuple(dict.fromkeys(models)), u.name


def _point_sigma(y: np.ndarray, mode: str, rel: float | None, sigma_abs: np.ndarray | None
                 ) -> np.ndarray:
    """sigma_i: absolute as given, or rel * max(y_i, 1% of max y)."""
    if mode == "absolute":
        return np.asarray(sigma_abs, float)
    floor = SIGMA_FLOOR_FRACTION * float(np.max(y)) if np.max(y) > 0 else 1.0
    return float(rel) * np.maximum(y, floor)


# --- one model ---------------------------------------------------------------------------------
def _fit_one_model(m: Model, t: np.ndarray, y: np.ndarray, sigma: np.ndarray, lam_min: float,
                   absolute: bool) -> dict[str, Any]:
    """Multi-start bounded weighted least squares of model ``m``; returns a dict of raw results.

    The data are divided by max(y) for the optimiser (amplitudes rescaled afterwards), so the
    problem is well scaled for MBq and Bq/mL alike.
    """
    scale = float(np.max(y))
    yn, sn = y / scale, sigma / scale
    lo, hi = m.bounds(lam_min)
    amp = m.is_amplitude
    best = None
    last_msg = "no start converged"
    for x0 in m.starts(t, yn, lam_min):
        x0 = np.where(amp, np.maximum(x0, 1e-6), np.clip(x0, lam_min * (1 + 1e-6) + 1e-12,
                                                              hi * (1 - 1e-6)))
        if not np.all(np.isfinite(x0)):
            continue
        try:
            res = least_squares(lambda p: (m.f(t, p) - yn) / sn, x0,
                                jac=lambda p: m.jacobian(t, p) / sn[:, None],
                                bounds=(lo, hi), method="trf", x_scale="jac",
                                max_nfev=400 * m.n_params)
        except (ValueError, FloatingPointError) as exc:  # pragma: no cover - defensive
            last_msg = str(exc)
            continue
        last_msg = res.message
        if res.status > 0 and np.all(np.isfinite(res.x)) and (best is None
                                                             or res.cost < best.cost):
            best = res
    if best is None:
        return {"success": False, "message": last_msg}
    order = m.canonical_order(best.x)
    p = best.x[order] * np.where(amp, scale, 1.0)
    resid_w = (m.f(t, p) - y) / sigma
    chi2 = float(resid_w @ resid_w)
    n, k = t.size, m.n_params
    jw = m.jacobian(t, p) / sigma[:, None]
    cov, msg = None, best.message
    sv = np.linalg.svd(jw, compute_uv=False)
    if sv.size < k or sv[-1] <= 1e-12 * sv[0]:
        msg = "Jacobian is rank deficient: parameters not identifiable from these points"
    else:
        _, s_, vt = np.linalg.svd(jw, full_matrices=False)
        cov = (vt.T / s_**2) @ vt
    if absolute:
        cscale = 1.0
    elif n > k:
        cscale = chi2 / (n - k)
    else:
        cscale = math.inf
    at_bound = tuple(name for name, v, a, b in zip(m.param_names, p, lo, hi, strict=True)
                     if (np.isfinite(a) and v <= a * (1 + 1e-6) + (0 if a else 1e-12 * scale))
                     or (np.isfinite(b) and v >= b * (1 - 1e-6)))
    return {"success": True, "message": msg, "params": p, "cov": cov, "cscale": cscale,
            "chi2": chi2, "at_bound": at_bound}


def _criteria(chi2: float, n: int, k: int) -> tuple[float | None, float | None]:
    ll = n * math.log(max(chi2 / n, 1e-300))
    aicc = ll + 2 * k + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else None
    bic = ll + k * math.log(n) if n > k else None
    return aicc, bic


def _r2(y: np.ndarray, f: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - f) ** 2)) / ss_tot if ss_tot > 0 else math.nan


def _scaled(fit: ModelFit, c: float) -> ModelFit:
    """Return ``fit`` (of the data divided by ``c``) in the data's unit.

    Amplitudes (``A*``), their covariances, the fitted curve, residuals and TIAs scale with
    ``c``; rates, correlations, chi-square, criteria and weighted residuals are invariant.
    """
    if c == 1.0:
        return fit
    d = np.array([c if nm.startswith("A") else 1.0 for nm in fit.param_names])
    cov = None if fit.covariance is None else tuple(
        tuple(float(v) for v in row) for row in np.asarray(fit.covariance) * np.outer(d, d))
    return replace(fit, params=tuple(float(v) for v in np.asarray(fit.params) * d),
                   param_sigma=tuple(float(v) for v in np.asarray(fit.param_sigma) * d),
                   covariance=cov, tia=fit.tia * c, sigma_tia_fit=fit.sigma_tia_fit * c,
                   fitted=tuple(v * c for v in fit.fitted),
                   residuals=tuple(v * c for v in fit.residuals))


def _parametric_fit(m: Model, t, y, sigma, lam_min, absolute, max_cv, max_corr) -> ModelFit:
    n, k = t.size, m.n_params
    nan_k = tuple([math.nan] * k)
    if n < k:
        return ModelFit(m.name, "parametric", m.param_names, nan_k, nan_k, None, None, math.nan,
                        math.nan, math.nan, math.nan, n - k, None, None, math.nan, (), (), (),
                        False, f"{k} parameters cannot be fitted to {n} points", False,
                        (f"n_points={n} < n_params={k}",))
    r = _fit_one_model(m, t, y, sigma, lam_min, absolute)
    if not r["success"]:
        return ModelFit(m.name, "parametric", m.param_names, nan_k, nan_k, None, None, math.nan,
                        math.nan, math.nan, math.nan, n - k, None, None, math.nan, (), (), (),
                        False, f"fit failed: {r['message']}", False, ("fit did not converge",))
    p, cov0, cscale = r["params"], r["cov"], r["cscale"]
    f = m.f(t, p)
    reasons = []
    if n <= k:
        reasons.append(f"n_points={n} <= n_params={k}: no degrees of freedom")
    cov = corr = None
    psig = nan_k
    sig_fit = math.nan
    if cov0 is None:
        reasons.append(r["message"])
    elif not math.isfinite(cscale):
        reasons.append("covariance not estimable (relative weights and no degrees of freedom)")
    else:
        cov = cov0 * cscale
        psig = tuple(float(v) for v in np.sqrt(np.clip(np.diag(cov), 0, None)))
        d = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
        corr_a = cov / np.outer(d, d)
        corr = tuple(tuple(float(v) for v in row) for row in corr_a)
        cov = tuple(tuple(float(v) for v in row) for row in cov)
        sig_fit = delta_method_sigma(m.tia_gradient(p), cov)
        cvs = [s / abs(v) if v != 0 else math.inf for v, s in zip(p, psig, strict=True)]
        bad = [f"{nm}={c:.3g}" for nm, c in zip(m.param_names, cvs, strict=True) if c >= max_cv]
        if bad:
            reasons.append(f"CV >= {max_cv:g}: {', '.join(bad)}")
        off = np.abs(corr_a[~np.eye(k, dtype=bool)])
        if max_corr is not None and off.size and off.max() >= max_corr:
            i, j = np.unravel_index(np.argmax(np.abs(corr_a) - np.eye(k) * 2), (k, k))
            reasons.append(f"|correlation({m.param_names[i]}, {m.param_names[j]})| = "
                           f"{abs(corr_a[i, j]):.3f} >= {max_corr:g}")
    aicc, bic = _criteria(r["chi2"], n, k)
    tia = m.tia(p)
    return ModelFit(
        m.name, "parametric", m.param_names, tuple(float(v) for v in p), psig, cov, corr,
        float(cscale), tia, sig_fit, r["chi2"], n - k, aicc, bic, _r2(y, f),
        tuple(float(v) for v in f), tuple(float(v) for v in y - f),
        tuple(float(v) for v in (y - f) / sigma), True, r["message"], not reasons,
        tuple(reasons), r["at_bound"])


def _nonparametric_fit(name: str, t, y, sigma, lam_phys, n_tail) -> ModelFit:
    if name == "trapezoid":
        tia, grad = trapezoid_tia(t, y, lam_phys)
        names, params, msg = (), (), "trapezoids from (0, 0), physical decay after the last point"
    else:
        tia, grad, rate, raised = hybrid_tia(t, y, lam_phys, n_tail=n_tail)
        names, params = ("l_tail",), (rate,)
        msg = (f"trapezoids to t={t[-n_tail]:g} h, exponential tail through the last {n_tail} "
               f"points{' (rate raised to lambda_phys)' if raised else ''}")
    sig = math.sqrt(float(np.sum((grad * sigma) ** 2)))
    nan = tuple([math.nan] * len(names))
    empty = tuple([math.nan] * t.size)
    return ModelFit(name, "nonparametric", names, tuple(float(v) for v in params), nan, None,
                    None, 1.0, float(tia), sig, math.nan, 0, None, None, math.nan, empty, empty,
                    empty, True, msg, True, (), ())


# --- the public function -----------------------------------------------------------------------
def fit_tac(
    times_h: Sequence[float],
    values: Sequence[float],
    *,
    unit: str = "MBq",
    nuclide: str = "Lu-177",
    sigma: Sequence[float] | None = None,
    relative_sigma: float | None = None,
    absolute_sigma: bool | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    constrain_physical: bool = True,
    criterion: str = "aicc",
    input_uncertainty: InputUncertainty | None = None,
    max_cv: float = 0.5,
    max_abs_corr: float | None = 0.8,
    fallback: str = "hybrid",
    n_tail: int = 2,
) -> KineticFit:
    """Fit TAC models, select one by AICc/BIC with NUKFIT acceptance, and return TIA ± sigma.

    Parameters
    ----------
    times_h : (n,) sequence of float
        Times after injection (h), strictly increasing, >= 0, at most :data:`MAX_TIME_H`.
    values : (n,) sequence of float
        Decayed (not decay-corrected) activities, >= 0 and at most :data:`MAX_VALUE`, in
        ``unit``.
    unit : str
        Data unit: an activity (MBq), activity concentration (Bq/mL) or counts.
    nuclide : str
        Nuclide of the physical decay constant (constraint, trapezoid/hybrid tails).
    sigma : (n,) sequence of float, optional
        Absolute standard deviations of the values (``unit``). Exclusive with ``relative_sigma``.
    relative_sigma : float, optional
        Relative standard deviation of each value (default 0.1 when ``sigma`` is not given):
        sigma_i = relative_sigma * max(y_i, 0.01 max(y)).
    absolute_sigma : bool, optional
        Whether the sigma_i are absolute (covariance not rescaled). Default: True with
        ``sigma``, False with relative weights (covariance times reduced chi-square).
    models : sequence of str
        Models to try: ``mono``, ``bi_uptake``, ``bi``, ``tri_uptake``, ``tri`` (parametric,
        ranked) and ``trapezoid``, ``hybrid`` (reported, selected only if no parametric model
        is given or accepted).
    constrain_physical : bool
        Bound every rate below by the physical decay constant (effective >= physical).
    criterion : {"aicc", "bic"}
        Selection criterion.
    input_uncertainty : InputUncertainty, optional
        Relative calibration, recovery and volume uncertainties added in quadrature.
    max_cv, max_abs_corr : float
        NUKFIT acceptance thresholds (parameter CV, absolute correlation); ``max_abs_corr=None``
        switches the correlation check off (the A1-l1 correlation of uptake models is
        structurally 0.8-0.95 at clinical time points, see ``docs/kinetics-fit.md``).
    fallback : {"hybrid", "trapezoid"}
        Method used when no parametric model is accepted.
    n_tail : int
        Points defining the hybrid tail.

    Returns
    -------
    KineticFit
        All fits, the selected model, ``tia`` and ``sigma_tia`` in ``tia_unit``
        ((data unit)·h).

    Raises
    ------
    InputError, TimeOrderError, UnitError, UnknownNuclideError
        For invalid inputs (one-line message naming the argument).

    References
    ----------
    Kletting et al. 2013, doi:10.1118/1.4820367; Glatting et al. 2007, doi:10.1118/1.2794176;
    Gear et al. 2018, doi:10.1007/s00259-018-4136-7.

    Examples
    --------
    >>> r = fit_tac([1, 4, 24, 48, 96, 168], [12.1, 30.5, 41, 35, 22, 9], max_abs_corr=None)
    >>> r.selected, round(r.tia), r.tia_unit
    ('bi_uptake', 5031, 'MBq*h')
    """
    inputs = InputUncertainty() if input_uncertainty is None else input_uncertainty
    t, y, s_abs, rel, models, unit_name = _validate(
        times_h, values, sigma, relative_sigma, models, criterion, unit, fallback, inputs,
        n_tail)
    if not (isinstance(max_cv, (int, float)) and max_cv > 0):
        raise InputError(f"must be a number > 0 (e.g. 0.5), got {max_cv!r}",
                         field="max_cv")
    if max_abs_corr is not None and not (isinstance(max_abs_corr, (int, float))
                                         and 0 < max_abs_corr <= 1):
        raise InputError(f"must be in (0, 1] or None, got {max_abs_corr!r}",
                         field="max_abs_corr")
    nuc = get_nuclide(nuclide)
    lam = nuc.decay_constant_per_h
    lam_min = lam if constrain_physical else RATE_MIN_UNCONSTRAINED
    mode = "absolute" if s_abs is not None else "relative"
    absolute = (mode == "absolute") if absolute_sigma is None else bool(absolute_sigma)
    sig = _point_sigma(y, mode, rel, s_abs)
    # Fit data scaled to max ~1 by a power of two (exact in float64 for normal numbers) and
    # scale amplitudes, covariances and TIAs back: every model is linear in its amplitudes.
    # Without it tiny data (1e-308 MBq) make the weights' inverse overflow and LAPACK spin.
    c = 2.0 ** math.floor(math.log2(float(np.max(y))))
    with np.errstate(over="ignore"):  # an infinite sigma is refused just below
        yc, sigc = y / c, sig / c
    if not np.all(np.isfinite(sigc)):
        raise InputError(f"sigmas exceed the largest value ({float(np.max(y)):g}) by more "
                         "than float64 can represent: the values carry no information",
                         field="sigma")

    fits: dict[str, ModelFit] = {}
    for name in models:
        if name in MODELS:
            fits[name] = _parametric_fit(MODELS[name], t, yc, sigc, lam_min, absolute, max_cv,
                                         max_abs_corr)
        else:
            fits[name] = _nonparametric_fit(name, t, yc, sigc, lam, n_tail)

    key = "aicc" if criterion == "aicc" else "bic"
    param = [m for m in models if m in MODELS]
    eligible = [m for m in param if fits[m].accepted and getattr(fits[m], key) is not None]
    fb = False
    if eligible:
        selected = min(eligible, key=lambda m: (getattr(fits[m], key), MODELS[m].n_params))
        reason = (f"lowest {criterion.upper()} among accepted models "
                  f"({', '.join(eligible)})")
    elif not param:
        selected = models[0]
        reason = "no parametric model requested"
    else:
        fb = True
        selected = fallback
        if fallback not in fits:
            fits[fallback] = _nonparametric_fit(fallback, t, yc, sigc, lam, n_tail)
        reason = (f"no parametric model accepted with a defined {criterion.upper()}; "
                  f"fallback to {fallback}")
    # sigma in the scaled unit: the squares of 1e-300 MBq*h would underflow to 0
    sigma_total = combine_tia_sigma(fits[selected].tia, fits[selected].sigma_tia_fit, inputs) * c
    fits = {name: _scaled(f, c) for name, f in fits.items()}
    sel = fits[selected]
    weights = ("absolute sigma_i given by the user" if mode == "absolute" else
               f"sigma_i = {rel:g} * max(y_i, {SIGMA_FLOOR_FRACTION:g} * max(y))")
    prov = {
        "theradose_version": __version__,
        "scipy_version": scipy.__version__,
        "method": "weighted non-linear least squares (scipy.optimize.least_squares, "
                  "trust-region reflective with bounds, multi-start)",
        "weights": weights,
        "covariance": ("(J^T W J)^-1" if absolute else
                       "(J^T W J)^-1 * chi2/(n-k) (relative weights)"),
        "models_tried": list(models),
        "criterion": criterion,
        "nuclide_data": data_source(),
        "references": ["Kletting et al. 2013, doi:10.1118/1.4820367",
                       "Glatting et al. 2007, doi:10.1118/1.2794176",
                       "Burnham & Anderson 2002, doi:10.1007/b97636",
                       "Gear et al. 2018, doi:10.1007/s00259-018-4136-7"],
    }
    return KineticFit(
        tuple(float(v) for v in t), tuple(float(v) for v in y), unit_name,
        tia_unit_for(unit_name), nuc.name, lam, bool(constrain_physical), lam_min,
        tuple(float(v) for v in sig), mode, None if mode == "absolute" else rel, criterion,
        fits, selected, fb, reason, sel.tia, sigma_total, sel.sigma_tia_fit, inputs,
        {"max_cv": max_cv, "max_abs_corr": max_abs_corr}, prov)
