"""TIA uncertainty: delta method from the fit covariance, input uncertainties, Monte Carlo check.

The fit contributes ``sigma_fit^2 = g^T C g`` (g = dTIA/dp, C the parameter covariance). The
inputs that scale every time point alike (camera calibration factor, recovery coefficient, VOI
volume) are fully correlated across time points, so each passes to the TIA as the same relative
uncertainty; the independent contributions are added in quadrature as in the EANM guidance::

    (sigma_TIA / TIA)^2 = (sigma_fit / TIA)^2 + u_cal^2 + u_rc^2 + u_vol^2

References
----------
Gear JI, Cox MG, Gustafsson J, et al. EANM practical guidance on uncertainty analysis for
molecular radiotherapy absorbed dose calculations. Eur J Nucl Med Mol Imaging 45:2456-2474
(2018). doi:10.1007/s00259-018-4136-7
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from theradose.errors import InputError

if TYPE_CHECKING:
    from theradose.kinetics._fit import KineticFit

__all__ = [
    "InputUncertainty",
    "MonteCarloTIA",
    "combine_tia_sigma",
    "delta_method_sigma",
    "monte_carlo_tia",
]


@dataclass(frozen=True)
class InputUncertainty:
    """Relative standard uncertainties (fractions, e.g. 0.05 for 5%) common to all time points.

    Attributes
    ----------
    calibration : float
        Camera/dose-calibrator calibration factor (Gear et al. 2018, section "calibration").
    recovery : float
        Recovery coefficient (partial-volume correction).
    volume : float
        VOI volume, when the TAC is a concentration times a volume or the recovery coefficient
        depends on the volume; 0 otherwise.
    """

    calibration: float = 0.0
    recovery: float = 0.0
    volume: float = 0.0

    def __post_init__(self) -> None:
        for name in ("calibration", "recovery", "volume"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v < 1.0):
                raise InputError(
                    f"relative uncertainty must be a number in [0, 1) (a fraction, 0.05 for 5%), "
                    f"got {v!r}", field=f"input_uncertainty.{name}")

    @property
    def relative(self) -> float:
        """Quadrature sum of the three relative uncertainties (fraction)."""
        return math.sqrt(self.calibration**2 + self.recovery**2 + self.volume**2)

    def to_dict(self) -> dict[str, float]:
        """JSON-serialisable dict of the three fractions."""
        return asdict(self)


def delta_method_sigma(gradient, covariance) -> float:
    """sqrt(g^T C g): standard deviation of a function of fitted parameters (first order).

    Parameters
    ----------
    gradient : (k,) array_like
        Derivatives of the function with respect to the parameters.
    covariance : (k, k) array_like
        Parameter covariance.

    Returns
    -------
    float
        Same unit as the function; NaN is never returned silently: a negative variance from
        round-off is clipped to 0.
    """
    g = np.asarray(gradient, float)
    var = float(g @ np.asarray(covariance, float) @ g)
    return math.sqrt(max(var, 0.0))


def combine_tia_sigma(tia: float, sigma_fit: float, inputs: InputUncertainty) -> float:
    """Total TIA standard deviation: fit and input uncertainties in quadrature (EANM 2018)."""
    return math.sqrt(sigma_fit**2 + (inputs.relative * tia) ** 2)


@dataclass(frozen=True)
class MonteCarloTIA:
    """Monte-Carlo resampling of the TIA (refits of noisy replicas of the fitted curve).

    Attributes
    ----------
    model : str
        Model refitted (the selected one).
    n, n_failed : int
        Replicas drawn and replicas whose fit failed (left out of the statistics).
    tia_mean, tia_sd, tia_median, tia_p16, tia_p84 : float
        Statistics of the replica TIAs, (data unit)·h.
    tia_unit : str
    seed : int
    """

    model: str
    n: int
    n_failed: int
    tia_mean: float
    tia_sd: float
    tia_median: float
    tia_p16: float
    tia_p84: float
    tia_unit: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)


def monte_carlo_tia(fit: KineticFit, *, n: int = 200, seed: int = 0,
                    model: str | None = None) -> MonteCarloTIA:
    """Check the analytic TIA sigma by refitting ``n`` noisy replicas of the fitted curve.

    Each replica is the fitted curve at the measured times plus Gaussian noise with the
    standard deviations the fit used (scaled by sqrt(reduced chi^2) when the fit scaled its
    covariance), multiplied by one factor N(1, u_inputs) for the input uncertainties (calibration,
    recovery, volume act on all time points alike). It is refitted with the same model, weights
    and constraint; no model selection is redone.

    Parameters
    ----------
    fit : KineticFit
        Result of :func:`theradose.kinetics._fit.fit_tac`.
    n : int
        Number of replicas (>= 10).
    seed : int
        Seed of the numpy Generator.
    model : str, optional
        Parametric model to resample (default: the selected one, which must be parametric).

    Returns
    -------
    MonteCarloTIA
    """
    from theradose.kinetics._fit import _fit_one_model, _point_sigma

    name = model or fit.selected
    if name not in fit.fits or fit.fits[name].kind != "parametric":
        raise InputError(f"Monte Carlo needs a fitted parametric model, got {name!r}; fitted: "
                         f"{', '.join(k for k, v in fit.fits.items() if v.kind == 'parametric')}",
                         field="model")
    if int(n) < 10:
        raise InputError(f"need at least 10 replicas, got {n}", field="n")
    mf = fit.fits[name]
    if not mf.success:
        raise InputError(f"model {name!r} did not fit ({mf.message}); nothing to resample",
                         field="model")
    from theradose.kinetics._models import get_model

    m = get_model(name)
    t = np.asarray(fit.times_h, float)
    curve = m.f(t, np.asarray(mf.params))
    scale = mf.covariance_scale if math.isfinite(mf.covariance_scale) else 1.0
    sig = np.asarray(fit.sigma, float) * math.sqrt(scale)
    rng = np.random.default_rng(seed)
    tias = []
    failed = 0
    for _ in range(int(n)):
        y = curve + rng.normal(0.0, sig)
        y *= 1.0 + rng.normal(0.0, fit.input_uncertainty.relative)
        y = np.clip(y, 0.0, None)
        s = _point_sigma(y, fit.sigma_mode, fit.sigma_value, np.asarray(fit.sigma, float))
        r = _fit_one_model(m, t, y, s, fit.lambda_min_per_h, fit.sigma_mode == "absolute")
        if r is None or not r["success"]:
            failed += 1
            continue
        tias.append(m.tia(r["params"]))
    a = np.asarray(tias, float)
    if a.size < 2:
        raise InputError(f"only {a.size} of {n} replicas could be fitted", field="n")
    p16, p50, p84 = np.percentile(a, [15.865, 50.0, 84.135])
    return MonteCarloTIA(name, int(n), failed, float(a.mean()), float(a.std(ddof=1)), float(p50),
                         float(p16), float(p84), fit.tia_unit, int(seed))
