"""Reduced-time-point TIA: single-time-point (STP) and two-time-point (2TP) methods.

All methods take *decayed* activities (as imaged) at times from injection (h) and return the
time-integrated activity from 0 to infinity in (data unit)·h with an expected error.

Hänscheid et al. 2018 (STP)
    ``TIA ≈ A(t) · 2t / ln 2``. For a mono-exponential ``A(t) = A0 e^{-λt}`` the true TIA is
    ``A0/λ = A(t) e^{λt}/λ``, so with ``x = λt = ln2 · t/T_eff`` the ratio estimate/true is
    ``r(x) = 2x e^{-x} / ln 2``. ``r = 1`` exactly where ``x e^{-x} = ln2/2``: at ``x = ln 2``
    (``t = T_eff``) and at ``x = 2 ln 2`` (``t = 2 T_eff``; indeed ``A(2T) = A0/4`` and
    ``A0/4 · 4T/ln2 = A0/λ``). Between them the estimate is high, at most
    ``2/(e ln 2) - 1 = +6.15 %`` at ``x = 1`` (``t = 1/λ = 1.443 T_eff``); outside them it is
    low. Hence "accurate when t is near 1.44 T_eff": within ±6.2 % for
    ``0.84 ≤ t/T_eff ≤ 2.28`` and within ±10 % for ``0.76 ≤ t/T_eff ≤ 2.44``.
Madsen et al. 2018 (STP)
    ``TIA = A(t) e^{λ t}/λ`` with a population effective decay constant λ (mono-exponential
    assumption); exact when λ is the patient's. With a log-normal spread of λ the relative error
    is ``≈ |t - 1/λ| σ_λ`` (delta method), smallest at ``t = 1/λ``.
Prior-informed (STP or any number of points)
    Maximum a-posteriori fit of a ``mono`` or ``bi_uptake`` model with a multivariate normal
    population prior on the transformed parameters ``θ = (ln A1, ln(l1 - λ_phys),
    ln(l2 - l1))``, the amplitude in units of the injected activity (Hou et al. 2021 for STP with
    population kinetics; Devasia et al. 2021 for information sharing with a population model).
    Data enter through ``ln A`` with a relative measurement error; the expected error is the
    Laplace (Gauss-Newton) posterior standard deviation of ln TIA.
Two-time-point mono-exponential
    ``λ = ln(A1/A2)/(t2 - t1)`` (≥ λ_phys), ``TIA = A1 e^{λ t1}/λ`` (back-extrapolated to 0) or,
    with ``early="linear"``, ``A1 t1/2 + A1/λ`` (linear uptake from (0, 0)).

Expected errors combine the method error over a population (when a :class:`PopulationPrior`
is given: the RMS relative error of the method applied to every cohort member's curve) with the
propagated relative measurement error ``activity_rel_sigma`` in quadrature.

References
----------
Hänscheid H, Lapa C, Buck AK, Lassmann M, Werner RA. Dose mapping after endoradiotherapy with
177Lu-DOTATATE/DOTATOC by a single measurement after 4 days. J Nucl Med 2018;59:75-81.
doi:10.2967/jnumed.117.193706

Madsen MT, Menda Y, O'Dorisio TM, O'Dorisio MS. Technical note: single time point dose estimate
for exponential clearance. Med Phys 2018;45:2318-2324. doi:10.1002/mp.12886

Hou X, Brosch J, Uribe C, et al. Feasibility of single-time-point dosimetry for
radiopharmaceutical therapies. J Nucl Med 2021;62:1006-1011. PMCID PMC8882881

Devasia TP, Dewaraja YK, Frey KA, Wong KK, Schipper MJ. A novel time-activity
information-sharing approach using nonlinear mixed models for patient-specific dosimetry with
reduced imaging time points: application in SPECT/CT after 177Lu-DOTATATE. J Nucl Med
2021;62:1118-1125. doi:10.2967/jnumed.120.256255
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import least_squares

from theradose import __version__
from theradose.errors import FitError, InputError, TheradoseWarning, TimeOrderError
from theradose.kinetics._fit import MAX_TIME_H, MAX_VALUE
from theradose.kinetics._models import get_model
from theradose.nuclides import get_nuclide
from theradose.units import convert, parse_unit

__all__ = [
    "PopulationPrior",
    "STPResult",
    "haenscheid_stp",
    "madsen_stp",
    "population_from_cohort",
    "prior_informed_tia",
    "two_point_tia",
]

REF_HAENSCHEID = ("Hänscheid H et al. J Nucl Med 2018;59:75-81. "
                  "doi:10.2967/jnumed.117.193706")
REF_MADSEN = "Madsen MT et al. Med Phys 2018;45:2318-2324. doi:10.1002/mp.12886"
REF_HOU = "Hou X et al. J Nucl Med 2021;62:1006-1011. PMCID PMC8882881"
REF_DEVASIA = "Devasia TP et al. J Nucl Med 2021;62:1118-1125. doi:10.2967/jnumed.120.256255"

#: Prior-informed models and their parameter names (amplitude as a fraction of A0).
PRIOR_MODELS: dict[str, tuple[str, ...]] = {
    "mono": ("A1_fraction", "l1_per_h"),
    "bi_uptake": ("A1_fraction", "l1_per_h", "l2_per_h"),
}
_ACTIVITY_UNITS = ("activity", "activity_concentration")
#: Smallest accepted activity (MBq) or concentration (Bq/mL): far below any physical activity
#: (one 177Lu atom is 1.2e-12 MBq, 1.2e-6 Bq); with :data:`MAX_VALUE` (1e100) it keeps every
#: ratio and logarithm of the methods within float64, and refuses subnormal numbers.
MIN_VALUE = 1e-100
#: Largest TIA returned: above it a method's exponential back-extrapolation has left float64
#: (1.8e308) or physics (the result says the times or rates are wrong, not the patient).
_MAX_LN_TIA = math.log(MAX_VALUE) + math.log(MAX_TIME_H) + 10.0


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class STPResult:
    """TIA from reduced time points, with its expected error.

    Attributes
    ----------
    tia : float
        Time-integrated activity 0..∞ in ``unit``.
    sigma : float or None
        Expected error (standard deviation) of ``tia`` in ``unit``; None when the method has no
        error model for the inputs given (``sigma_source`` says why).
    unit : str
        ``"MBq*h"`` for activity data, ``"Bq*h/mL"`` for concentration data.
    method : str
        ``"haenscheid"``, ``"madsen"``, ``"prior_informed"`` or ``"two_point_mono"``.
    times_h, activities : tuple of float
        Inputs (activities in MBq or Bq/mL).
    parameters : dict of str to float
        Method parameters (effective decay constant, fitted model parameters, ...).
    expected_bias : float or None
        Median relative error of the method over the population (when a prior was given).
    sigma_source : str
        Where ``sigma`` comes from.
    assumptions : tuple of str
    references : tuple of str
    provenance : dict
    """

    tia: float
    sigma: float | None
    unit: str
    method: str
    times_h: tuple[float, ...]
    activities: tuple[float, ...]
    parameters: dict[str, float]
    expected_bias: float | None
    sigma_source: str
    assumptions: tuple[str, ...]
    references: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def rel_sigma(self) -> float | None:
        """``sigma / tia`` (None without sigma)."""
        return None if self.sigma is None else self.sigma / self.tia

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"tia": self.tia, "sigma": self.sigma, "unit": self.unit, "method": self.method,
                "times_h": list(self.times_h), "activities": list(self.activities),
                "parameters": dict(self.parameters), "expected_bias": self.expected_bias,
                "sigma_source": self.sigma_source, "assumptions": list(self.assumptions),
                "references": list(self.references), "provenance": dict(self.provenance)}


@dataclass(frozen=True, eq=False)
class PopulationPrior:
    """Population kinetics of one organ: per-member model parameters and their log-normal prior.

    Attributes
    ----------
    organ : str
        Organ name (free text, e.g. ``"kidneys"``).
    nuclide : str
        Nuclide of the therapy (ICRP-107 name).
    lambda_phys_per_h : float
        Physical decay constant, 1/h.
    model : {'mono', 'bi_uptake'}
    parameters : (n, p) ndarray
        Per member: ``A1_fraction`` (fraction of the injected activity), ``l1_per_h``
        [, ``l2_per_h``] -- effective (decayed-data) rates.
    tia_h : (n,) ndarray
        Per member TIA per unit injected activity, h (truth when known, else the model's).
    lambda_eff_per_h : (n,) ndarray
        Per member late-phase effective decay constant (mono-exponential through the times
        ≥ ``late_from_h`` of the curve), 1/h.
    mean, cov : (p,) and (p, p) ndarray
        Mean and covariance of ``θ = (ln A1, ln(l1 - λ_phys)[, ln(l2 - l1)])``.
    provenance : dict
    """

    organ: str
    nuclide: str
    lambda_phys_per_h: float
    model: str
    parameters: np.ndarray
    tia_h: np.ndarray
    lambda_eff_per_h: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n_members(self) -> int:
        """Number of population members."""
        return int(self.parameters.shape[0])

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the columns of ``parameters``."""
        return PRIOR_MODELS[self.model]

    @property
    def lambda_eff_median_per_h(self) -> float:
        """Median late-phase effective decay constant, 1/h (Madsen's population λ)."""
        return float(np.median(self.lambda_eff_per_h))

    @property
    def lambda_eff_log_sd(self) -> float:
        """Standard deviation of ln λ_eff over the population."""
        return float(np.std(np.log(self.lambda_eff_per_h), ddof=1)) if self.n_members > 1 \
            else 0.0

    def curves(self, t_h) -> np.ndarray:
        """Members' model curves (fraction of injected activity), shape ``(n, len(t_h))``."""
        return _model_f(self.model, self.parameters, np.atleast_1d(np.asarray(t_h, float)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (:meth:`from_dict` inverts it)."""
        return {"organ": self.organ, "nuclide": self.nuclide,
                "lambda_phys_per_h": self.lambda_phys_per_h, "model": self.model,
                "param_names": list(self.param_names),
                "parameters": self.parameters.tolist(), "tia_h": self.tia_h.tolist(),
                "lambda_eff_per_h": self.lambda_eff_per_h.tolist(),
                "mean": self.mean.tolist(), "cov": self.cov.tolist(),
                "provenance": dict(self.provenance)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PopulationPrior:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["organ"]), str(d["nuclide"]), float(d["lambda_phys_per_h"]),
                   str(d["model"]), np.asarray(d["parameters"], float),
                   np.asarray(d["tia_h"], float), np.asarray(d["lambda_eff_per_h"], float),
                   np.asarray(d["mean"], float), np.asarray(d["cov"], float),
                   dict(d.get("provenance", {})))

    @classmethod
    def from_parameters(cls, parameters, *, model: str, nuclide: str, organ: str = "",
                        tia_h=None, late_times_h: Sequence[float] = (48.0, 168.0)
                        ) -> PopulationPrior:
        """Prior from a user's own table of per-patient model parameters.

        Parameters
        ----------
        parameters : (n, p) array_like
            Rows ``(A1_fraction, l1_per_h[, l2_per_h])`` of ``model``; rates are effective
            (decayed data) and must exceed the physical decay constant; n ≥ p + 1.
        model : {'mono', 'bi_uptake'}
        nuclide : str
        organ : str
        tia_h : (n,) array_like, optional
            True TIA per unit injected activity, h (default: the model's).
        late_times_h : two floats
            Times whose mono-exponential slope defines each member's late λ_eff.

        Raises
        ------
        InputError
            Unknown model, wrong shape, non-physical rates.
        """
        lam_p = get_nuclide(nuclide).decay_constant_per_h
        if model not in PRIOR_MODELS:
            raise InputError(f"unknown model {model!r}; accepted: {', '.join(PRIOR_MODELS)}",
                             field="model")
        p = np.atleast_2d(np.asarray(parameters, dtype=float))
        n_p = len(PRIOR_MODELS[model])
        if p.shape[1] != n_p or p.shape[0] < n_p + 1 or not np.all(np.isfinite(p)):
            raise InputError(f"must be finite, shape (n >= {n_p + 1}, {n_p}) for {model!r}, got "
                             f"{p.shape}", field="parameters")
        theta = _to_theta(model, p, lam_p, field="parameters")
        tia = _model_tia(model, p) if tia_h is None else np.asarray(tia_h, float)
        if tia.shape != (p.shape[0],) or not np.all(tia > 0):
            raise InputError(f"must be {p.shape[0]} positive TIAs (h), got shape {tia.shape}",
                             field="tia_h")
        tl = np.asarray(late_times_h, float)
        y = _model_f(model, p, tl)
        lam_eff = np.log(y[:, 0] / y[:, -1]) / (tl[-1] - tl[0])
        return cls(organ, get_nuclide(nuclide).name, lam_p, model, p, tia, lam_eff,
                   theta.mean(axis=0), np.atleast_2d(np.cov(theta, rowvar=False)),
                   {"source": "user table", "n_members": int(p.shape[0]),
                    "theradose_version": __version__})


# ---------------------------------------------------------------------------------- models
def _model_f(model: str, p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Curves of parameter rows ``p`` (n, k) at times ``t`` (m,): shape (n, m).

    The formulas are those of :mod:`theradose.kinetics._models` (one definition per model).
    """
    m = get_model(model)
    return np.stack([m.f(t, row) for row in np.atleast_2d(p)])


def _model_tia(model: str, p: np.ndarray) -> np.ndarray:
    """Analytic TIA of parameter rows ``p`` (n, k): shape (n,)."""
    m = get_model(model)
    return np.array([m.tia(row) for row in np.atleast_2d(p)])


def _to_theta(model: str, p: np.ndarray, lam_p: float, *, field: str) -> np.ndarray:
    p = np.atleast_2d(p)
    bad = (p[:, 0] <= 0) | (p[:, 1] <= lam_p)
    if model == "bi_uptake":
        bad |= p[:, 2] <= p[:, 1]
    if np.any(bad):
        raise InputError(f"{int(bad.sum())} row(s) with A1 <= 0, l1 <= lambda_phys "
                         f"({lam_p:.5g}/h) or l2 <= l1", field=field)
    cols = [np.log(p[:, 0]), np.log(p[:, 1] - lam_p)]
    if model == "bi_uptake":
        cols.append(np.log(p[:, 2] - p[:, 1]))
    return np.stack(cols, axis=1)


def _from_theta(model: str, theta: np.ndarray, lam_p: float) -> np.ndarray:
    theta = np.atleast_2d(theta)
    a = np.exp(theta[:, 0])
    l1 = lam_p + np.exp(theta[:, 1])
    cols = [a, l1]
    if model == "bi_uptake":
        cols.append(l1 + np.exp(theta[:, 2]))
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------------------------- cohort
def _fit_member(model: str, t: np.ndarray, y: np.ndarray, lam_p: float) -> np.ndarray:
    """Least-squares fit (relative residuals) of one noiseless member curve; returns θ."""
    late = t >= t[np.argmax(y)]
    sl = np.polyfit(t[late], np.log(y[late]), 1) if late.sum() >= 2 else (-2 * lam_p, 0.0)
    l1 = max(-sl[0], lam_p * 1.01)
    if model == "mono":
        x0 = np.array([sl[1], math.log(l1 - lam_p)])
    else:
        x0 = np.array([sl[1], math.log(l1 - lam_p), math.log(max(1.0, 5 * l1))])

    def res(th):
        return _model_f(model, _from_theta(model, th, lam_p), t)[0] / y - 1.0

    sol = least_squares(res, x0, method="lm", xtol=1e-12, ftol=1e-12)
    if not np.all(np.isfinite(sol.x)):
        raise FitError("population member fit diverged")
    return sol.x


def population_from_cohort(kinetics_list: Sequence[Any], organ: str | Sequence[str],
                           times_h: Sequence[float], *, agent: str = "therapeutic",
                           model: str = "bi_uptake", name: str | None = None,
                           late_from_h: float = 24.0) -> PopulationPrior:
    """Population prior of one organ from a cohort of virtual patients.

    Each member's decayed TAC (fraction of the injected activity) is
    ``Σ_regions kinetics.fraction(region, times_h, agent=agent)``; the ``model`` is fitted to it
    (relative least squares), its late effective decay constant is the log-linear slope over
    ``times_h ≥ late_from_h``, and its true TIA per unit injected activity is
    ``Σ_regions kinetics.tia_h(region, agent=agent)``.

    Parameters
    ----------
    kinetics_list : sequence of theradose.phantoms.PatientKinetics
        Cohort members (e.g. from :func:`theradose.phantoms.sample_kinetics`); ≥ 3.
    organ : str or sequence of str
        Region name(s) summed into the organ (e.g. the four kidney cortex/medulla regions).
    times_h : sequence of float
        Strictly increasing sampling times of the curves for the fit, h (> 0).
    agent : str
        ``"therapeutic"`` (default) or ``"diagnostic"``.
    model : {'bi_uptake', 'mono'}
    name : str, optional
        Organ name stored in the prior (default: the region names joined by ``+``).
    late_from_h : float
        Start of the late phase for λ_eff, h (at least two ``times_h`` must be ≥ it).

    Returns
    -------
    PopulationPrior

    Raises
    ------
    InputError
        Fewer than 3 members, unknown model, bad times, unknown region (from the kinetics).
    """
    if model not in PRIOR_MODELS:
        raise InputError(f"unknown model {model!r}; accepted: {', '.join(PRIOR_MODELS)}",
                         field="model")
    members = list(kinetics_list)
    if len(members) < 3:
        raise InputError(f"need at least 3 cohort members, got {len(members)}",
                         field="kinetics_list")
    regions = [organ] if isinstance(organ, str) else [str(o) for o in organ]
    t = _times(times_h, "times_h")
    late = t >= late_from_h
    if late.sum() < 2:
        raise InputError(f"need at least two times >= late_from_h={late_from_h:g} h, got "
                         f"{t.tolist()}", field="times_h")
    nuclide = members[0].agent(agent).nuclide
    lam_p = get_nuclide(nuclide).decay_constant_per_h
    thetas, tias, lams = [], [], []
    for k in members:
        y = sum(np.asarray(k.fraction(r, t, agent=agent), float) for r in regions)
        if not np.all(y > 0):
            raise InputError(f"organ {regions} has zero activity at some times_h",
                             field="organ")
        thetas.append(_fit_member(model, t, y, lam_p))
        tias.append(sum(k.tia_h(r, agent=agent) for r in regions))
        lams.append(-np.polyfit(t[late], np.log(y[late]), 1)[0])
    theta = np.array(thetas)
    params = _from_theta(model, theta, lam_p)
    return PopulationPrior(
        name or "+".join(regions), get_nuclide(nuclide).name, lam_p, model, params,
        np.array(tias, float), np.array(lams, float), theta.mean(axis=0),
        np.atleast_2d(np.cov(theta, rowvar=False)),
        {"source": "virtual cohort (theradose.phantoms kinetics)", "agent": agent,
         "regions": regions, "n_members": len(members), "fit_times_h": t.tolist(),
         "late_from_h": late_from_h, "theradose_version": __version__})


# ---------------------------------------------------------------------------------- inputs
def _times(times_h, field_name: str) -> np.ndarray:
    t = np.atleast_1d(np.asarray(times_h, dtype=float))
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0) \
            or np.any(t > MAX_TIME_H):
        raise InputError(f"must be hours after injection in (0, {MAX_TIME_H:g}], got "
                         f"{np.asarray(times_h).tolist()}", field=field_name)
    if np.any(np.diff(t) <= 0):
        raise TimeOrderError(f"must be strictly increasing, got {t.tolist()} h",
                             field=field_name)
    return t


def _data(times_h, activities, unit: str, n: int | None) -> tuple[np.ndarray, np.ndarray, str,
                                                                  str]:
    """Validated times (h), values in MBq or Bq/mL, the value unit and the TIA unit."""
    t = _times(times_h, "times_h")
    a = np.atleast_1d(np.asarray(activities, dtype=float))
    if a.shape != t.shape:
        raise InputError(f"got {a.size} values for {t.size} times", field="activities")
    if n is not None and t.size != n:
        raise InputError(f"this method takes {n} time point(s), got {t.size}", field="times_h")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise InputError(f"must be positive finite activities, got {a.tolist()}",
                         field="activities")
    u = parse_unit(unit, field="unit")
    if u.dimension not in _ACTIVITY_UNITS:
        raise InputError(f"unit {u.name!r} is not an activity or activity concentration; "
                         "accepted: MBq, kBq, Bq, GBq, Bq/mL, kBq/mL, MBq/mL", field="unit")
    vunit, tunit = ("MBq", "MBq*h") if u.dimension == "activity" else ("Bq/mL", "Bq*h/mL")
    with np.errstate(over="ignore", under="ignore"):
        a = np.asarray(convert(a, u.name, vunit), dtype=float)
    if np.any(a < MIN_VALUE) or np.any(a > MAX_VALUE):
        raise InputError(f"must lie in [{MIN_VALUE:g}, {MAX_VALUE:g}] {vunit} (far beyond any "
                         f"physical activity on either side), got {a.tolist()} {vunit}",
                         field="activities")
    return t, a, vunit, tunit


def _finite_tia(ln_tia: float, what: str, field_name: str) -> float:
    """``exp(ln_tia)``, or InputError when the estimate has left float64 (and physics)."""
    if not (math.isfinite(ln_tia) and ln_tia <= _MAX_LN_TIA):
        raise InputError(f"the TIA estimate overflows ({what}); check the times and rates",
                         field=field_name)
    return math.exp(ln_tia)


def _check_sigma(sigma: float | None, field_name: str) -> float | None:
    if sigma is not None and not math.isfinite(sigma):
        raise InputError("the expected error of the TIA overflows float64; the relative "
                         "uncertainty given is too large", field=field_name)
    return sigma


def _rel(value, field_name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise InputError(f"must be a relative uncertainty >= 0 (e.g. 0.1), got {value!r}",
                         field=field_name)
    return float(value)


def _check_prior(prior) -> PopulationPrior | None:
    if prior is not None and not isinstance(prior, PopulationPrior):
        raise InputError(f"must be a PopulationPrior (population_from_cohort), got "
                         f"{type(prior).__name__}", field="prior")
    return prior


def _population_error(prior: PopulationPrior, estimate) -> tuple[float, float]:
    """(median, RMS) relative error of a method over the members' model curves.

    ``estimate(y, t)`` maps member activities ``y`` (n, m) at the protocol times to TIA
    estimates (n,); the reference is each member's model TIA (consistent with its curve).
    """
    ref = _model_tia(prior.model, prior.parameters)
    est = estimate(prior)
    err = est / ref - 1.0
    return float(np.median(err)), float(np.sqrt(np.mean(err**2)))


def _combine(tia: float, method_rms: float | None, meas_rel: float) -> float | None:
    if method_rms is None and meas_rel == 0:
        return None
    return tia * math.sqrt((method_rms or 0.0) ** 2 + meas_rel**2)


def _result(method, tia, sigma, unit, t, a, params, bias, source, assumptions, refs, extra=None):
    prov = {"theradose_version": __version__, "method": method, **(extra or {})}
    return STPResult(float(tia), None if sigma is None else float(sigma), unit, method,
                     tuple(float(x) for x in t), tuple(float(x) for x in a),
                     {k: float(v) for k, v in params.items()}, bias, source,
                     tuple(assumptions), tuple(refs), prov)


# ---------------------------------------------------------------------------------- methods
def haenscheid_stp(activity: float, t_h: float, *, unit: str = "MBq",
                   prior: PopulationPrior | None = None,
                   activity_rel_sigma: float = 0.0) -> STPResult:
    """Single-time-point TIA of Hänscheid et al. 2018: ``TIA = A(t) · 2t / ln 2``.

    Parameters
    ----------
    activity : float
        Decayed activity (MBq, or concentration) at ``t_h``.
    t_h : float
        Time from injection, h (> 0). Best near 1.44 × the effective half-life; exact for a
        mono-exponential at ``t = T_eff`` and ``t = 2 T_eff`` (module docstring).
    unit : str
        Unit of ``activity`` (activity or concentration).
    prior : PopulationPrior, optional
        Population whose curves give the expected (median and RMS) error of the method at
        ``t_h``.
    activity_rel_sigma : float
        Relative standard uncertainty of ``activity`` (propagated 1:1).

    Returns
    -------
    STPResult
        ``sigma`` is None without ``prior`` and ``activity_rel_sigma``.

    References
    ----------
    Hänscheid H et al. J Nucl Med 2018;59:75-81. doi:10.2967/jnumed.117.193706
    """
    t, a, _, tia_unit = _data(t_h, activity, unit, 1)
    prior = _check_prior(prior)
    meas = _rel(activity_rel_sigma, "activity_rel_sigma")
    tia = a[0] * 2.0 * t[0] / math.log(2.0)
    bias = rms = None
    if prior is not None:
        bias, rms = _population_error(
            prior, lambda p: p.curves(t)[:, 0] * 2.0 * t[0] / math.log(2.0))
    src = ("population RMS error of the method" if prior is not None else "none") + \
        (" + measurement" if meas else "")
    return _result("haenscheid", tia,
                   _check_sigma(_combine(tia, rms, meas), "activity_rel_sigma"), tia_unit, t, a,
                   {}, bias, src,
                   ("mono-exponential clearance after t, uptake phase negligible",
                    "exact at t = T_eff and t = 2 T_eff; within 6.2 % for "
                    "0.84 <= t/T_eff <= 2.28"), (REF_HAENSCHEID,))


def madsen_stp(activity: float, t_h: float, *, unit: str = "MBq",
               lambda_eff_per_h: float | None = None, lambda_eff_log_sd: float | None = None,
               prior: PopulationPrior | None = None,
               activity_rel_sigma: float = 0.0) -> STPResult:
    """Single-time-point TIA of Madsen et al. 2018: ``TIA = A(t) e^{λ t} / λ``.

    Parameters
    ----------
    activity : float
        Decayed activity (MBq, or concentration) at ``t_h``.
    t_h : float
        Time from injection, h (> 0); the error is smallest near ``t = 1/λ``.
    unit : str
        Unit of ``activity``.
    lambda_eff_per_h : float, optional
        Population effective decay constant, 1/h (default: ``prior``'s median λ_eff).
    lambda_eff_log_sd : float, optional
        Population SD of ln λ_eff; gives ``σ_rel = |λ t - 1| · sd`` (delta method) when no
        ``prior`` is given.
    prior : PopulationPrior, optional
        Population: default λ and the expected error (the method applied to every member).
    activity_rel_sigma : float
        Relative standard uncertainty of ``activity``.

    Returns
    -------
    STPResult

    Raises
    ------
    InputError
        Neither ``lambda_eff_per_h`` nor ``prior``; λ not positive.

    References
    ----------
    Madsen MT et al. Med Phys 2018;45:2318-2324. doi:10.1002/mp.12886
    """
    t, a, _, tia_unit = _data(t_h, activity, unit, 1)
    prior = _check_prior(prior)
    meas = _rel(activity_rel_sigma, "activity_rel_sigma")
    if lambda_eff_per_h is None:
        if prior is None:
            raise InputError("pass lambda_eff_per_h (population effective decay constant, 1/h) "
                             "or prior=", field="lambda_eff_per_h")
        lam = prior.lambda_eff_median_per_h
    else:
        lam = lambda_eff_per_h
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
        raise InputError(f"must be a positive decay constant in 1/h, got {lam!r}",
                         field="lambda_eff_per_h")
    lam = float(lam)
    # ln TIA = ln A + λt - ln λ: exp(λt) alone overflows for λt > 709 (t far after 1/λ)
    tia = _finite_tia(math.log(a[0]) + lam * t[0] - math.log(lam),
                      f"lambda * t = {lam * t[0]:.4g}", "t_h")
    bias = rms = None
    if prior is not None:
        with np.errstate(over="ignore"):  # an overflow gives sigma = inf: refused below
            bias, rms = _population_error(
                prior, lambda p: p.curves(t)[:, 0] * np.exp(lam * t[0] - math.log(lam)))
        src = "population RMS error of the method"
    elif lambda_eff_log_sd is not None:
        sd = _rel(lambda_eff_log_sd, "lambda_eff_log_sd")
        rms = abs(lam * t[0] - 1.0) * sd  # d ln TIA / d ln λ = λt - 1
        src = "delta method on the spread of ln lambda_eff"
    else:
        src = "none"
    src += " + measurement" if meas else ""
    return _result("madsen", tia, _check_sigma(_combine(tia, rms, meas), "lambda_eff_log_sd"),
                   tia_unit, t, a,
                   {"lambda_eff_per_h": lam}, bias, src,
                   ("mono-exponential from t = 0 with the population effective decay constant",
                    "exact when the patient's lambda_eff equals the population value"),
                   (REF_MADSEN,))


def two_point_tia(times_h: Sequence[float], activities: Sequence[float], *, nuclide: str,
                  unit: str = "MBq", early: str = "exponential",
                  prior: PopulationPrior | None = None,
                  activity_rel_sigma: float = 0.0) -> STPResult:
    """Two-time-point TIA: a mono-exponential through both points.

    ``λ = ln(A1/A2)/(t2 - t1)``, constrained to ``λ ≥ λ_phys`` (a slower apparent clearance is
    taken as physical decay, with a warning). ``early="exponential"``: ``TIA = A1 e^{λ t1}/λ``
    (the exponential extrapolated back to 0); ``early="linear"``: ``TIA = A1 t1/2 + A1/λ``
    (linear uptake from (0, 0), then the exponential).

    Parameters
    ----------
    times_h : two floats
        Strictly increasing times from injection, h.
    activities : two floats
        Decayed activities (MBq or concentrations).
    nuclide : str
        Nuclide (for λ_phys).
    unit : str
    early : {'exponential', 'linear'}
    prior : PopulationPrior, optional
        Population giving the expected method error at these times.
    activity_rel_sigma : float
        Relative uncertainty of each activity (independent): propagated by the delta method.

    Returns
    -------
    STPResult
    """
    t, a, _, tia_unit = _data(times_h, activities, unit, 2)
    prior = _check_prior(prior)
    meas = _rel(activity_rel_sigma, "activity_rel_sigma")
    if early not in ("exponential", "linear"):
        raise InputError(f"got {early!r}; accepted: exponential, linear", field="early")
    lam_p = get_nuclide(nuclide).decay_constant_per_h
    dt = t[1] - t[0]

    def estimate(y1, y2):
        with np.errstate(over="ignore"):
            lam = np.maximum((np.log(y1) - np.log(y2)) / dt, lam_p)
            if early == "exponential":
                return np.exp(np.log(y1) + lam * t[0] - np.log(lam))
            return y1 * t[0] / 2.0 + y1 / lam

    lam = (math.log(a[0]) - math.log(a[1])) / dt  # logs: a[0]/a[1] may leave float64
    if lam < lam_p:
        warnings.warn(f"apparent decay constant {lam:.4g}/h is slower than physical decay "
                      f"({lam_p:.4g}/h); using physical decay", TheradoseWarning, stacklevel=2)
    lam = max(lam, lam_p)
    if early == "exponential":
        _finite_tia(math.log(a[0]) + lam * t[0] - math.log(lam),
                    f"lambda * t1 = {lam * t[0]:.4g} back-extrapolated", "activities")
    tia = float(estimate(a[0], a[1]))
    # Measurement error: relative perturbations of A1, A2 (numerical derivatives of ln TIA).
    meas_rel = 0.0
    if meas:
        h = 1e-6
        g1 = (math.log(float(estimate(a[0] * (1 + h), a[1]))) - math.log(tia)) / h
        g2 = (math.log(float(estimate(a[0], a[1] * (1 + h)))) - math.log(tia)) / h
        meas_rel = meas * math.hypot(g1, g2)
    bias = rms = None
    if prior is not None:
        bias, rms = _population_error(
            prior, lambda p: estimate(*(p.curves(t).T)))
    src = ("population RMS error of the method" if prior is not None else "none") + \
        (" + measurement" if meas else "")
    return _result("two_point_mono", tia,
                   _check_sigma(_combine(tia, rms, meas_rel), "activity_rel_sigma"), tia_unit, t, a,
                   {"lambda_eff_per_h": lam}, bias, src,
                   (f"mono-exponential through both points, lambda >= lambda_phys; early phase "
                    f"{early}",), (REF_MADSEN, REF_HAENSCHEID), {"early": early,
                                                                 "nuclide": nuclide})


def prior_informed_tia(times_h: Sequence[float] | float, activities: Sequence[float] | float,
                       prior: PopulationPrior, *, unit: str = "MBq",
                       injected_activity_mbq: float | None = None,
                       activity_rel_sigma: float = 0.1) -> STPResult:
    """TIA from one or more time points by a MAP fit with a population prior.

    Minimises ``Σ_k (ln A_k - ln f(t_k; θ))² / s² + (θ - μ)ᵀ Σ⁻¹ (θ - μ)`` where ``f`` is the
    prior's model, ``s`` = ``activity_rel_sigma`` and ``μ, Σ`` the population mean and
    covariance of ``θ = (ln A1, ln(l1 - λ_phys)[, ln(l2 - l1)])``. With
    ``injected_activity_mbq`` the amplitude prior (fraction of the injected activity) is used;
    without it only the rate part of the prior is (the amplitude is free).

    Parameters
    ----------
    times_h : float or sequence of float
        Times from injection, h (strictly increasing).
    activities : float or sequence of float
        Decayed activities at ``times_h`` (MBq with ``injected_activity_mbq``; otherwise any
        activity or concentration unit).
    prior : PopulationPrior
    unit : str
    injected_activity_mbq : float, optional
        Administered activity, MBq (needs activity data).
    activity_rel_sigma : float
        Relative measurement error of each activity (> 0), the likelihood's σ of ln A.

    Returns
    -------
    STPResult
        ``sigma`` is the Laplace posterior SD of the TIA (delta method on ln TIA);
        ``parameters`` holds the MAP ``A1`` (data unit), ``l1_per_h`` [, ``l2_per_h``].

    Raises
    ------
    InputError
        Bad data, prior, or activity unit with ``injected_activity_mbq``.
    FitError
        The optimiser failed.

    References
    ----------
    Hou X et al. J Nucl Med 2021;62:1006-1011. PMCID PMC8882881;
    Devasia TP et al. J Nucl Med 2021;62:1118-1125. doi:10.2967/jnumed.120.256255
    """
    if not isinstance(prior, PopulationPrior):
        raise InputError(f"must be a PopulationPrior (population_from_cohort), got "
                         f"{type(prior).__name__}", field="prior")
    t, a, vunit, tia_unit = _data(times_h, activities, unit, None)
    s = _rel(activity_rel_sigma, "activity_rel_sigma")
    if s == 0:
        raise InputError("must be > 0 (the likelihood needs a measurement error)",
                         field="activity_rel_sigma")
    model, lam_p = prior.model, prior.lambda_phys_per_h
    mu, cov = prior.mean.copy(), prior.cov.copy()
    if injected_activity_mbq is not None:
        if not (isinstance(injected_activity_mbq, (int, float)) and injected_activity_mbq > 0):
            raise InputError(f"must be a positive activity in MBq, got "
                             f"{injected_activity_mbq!r}", field="injected_activity_mbq")
        if vunit != "MBq":
            raise InputError("the amplitude prior needs activities (MBq), not concentrations; "
                             "drop injected_activity_mbq", field="injected_activity_mbq")
        mu[0] += math.log(injected_activity_mbq)
        free = slice(0, mu.size)
    else:
        free = slice(1, mu.size)
    cov_b = cov[free, free] + 1e-12 * np.eye(mu.size - free.start)
    try:
        chol = np.linalg.cholesky(cov_b)
    except np.linalg.LinAlgError as exc:  # pragma: no cover - np.cov is PSD; jitter added
        raise FitError(f"prior covariance is not positive definite: {exc}") from exc
    ln_a = np.log(a)

    def residuals(th):
        pred = _model_f(model, _from_theta(model, th, lam_p), t)[0]
        r_data = (ln_a - np.log(np.maximum(pred, 1e-300))) / s
        r_prior = solve_triangular(chol, th[free] - mu[free], lower=True)
        return np.concatenate([r_data, r_prior])

    x0 = mu.copy()
    if injected_activity_mbq is None:  # amplitude matching the first point at the prior shape
        shape = _model_f(model, _from_theta(model, x0, lam_p), t)[0]
        x0[0] += float(np.mean(ln_a - np.log(shape)))
    sol = least_squares(residuals, x0, method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    if not sol.success or not np.all(np.isfinite(sol.x)):
        raise FitError(f"MAP fit failed: {sol.message}")
    th = sol.x
    params = _from_theta(model, th, lam_p)[0]
    tia = float(_model_tia(model, params[None, :])[0])
    jac = sol.jac
    post = np.linalg.pinv(jac.T @ jac)

    def ln_tia(x):
        return math.log(float(_model_tia(model, _from_theta(model, x, lam_p))[0]))

    grad = np.array([(ln_tia(th + h) - ln_tia(th - h)) / (2 * 1e-6)
                     for h in np.eye(th.size) * 1e-6])
    rel = math.sqrt(max(float(grad @ post @ grad), 0.0))
    names = ("A1", *PRIOR_MODELS[model][1:])
    return _result("prior_informed", tia, tia * rel, tia_unit, t, a,
                   dict(zip(names, params, strict=True)), None,
                   "Laplace posterior (Gauss-Newton) of the MAP fit",
                   (f"{model} model with the population prior of {prior.organ!r} "
                    f"({prior.n_members} members)",
                    f"log-normal measurement error {s:g} per point",
                    "amplitude prior used" if injected_activity_mbq is not None
                    else "amplitude free (no injected activity given)"),
                   (REF_HOU, REF_DEVASIA),
                   {"model": model, "prior_organ": prior.organ,
                    "prior_n_members": prior.n_members})
