"""Organ-level time-activity models: functions, Jacobians, analytic TIA and starting values.

All models describe *decayed* (not decay-corrected) activity, so the rates are effective rates
(biological + physical); the optional constraint is ``rate >= lambda_phys``. Time ``t`` is in h,
amplitudes are in the data's unit (MBq or Bq/mL), rates in 1/h, and every TIA is the integral
from 0 to infinity in (data unit)·h.

==============  ===============================================================  ==============
name            A(t)                                                             TIA
==============  ===============================================================  ==============
``mono``        A1 e^{-l1 t}                                                     A1/l1
``bi_uptake``   A1 (e^{-l1 t} - e^{-l2 t}), l2 > l1 (A(0) = 0)                   A1 (1/l1-1/l2)
``bi``          A1 e^{-l1 t} + A2 e^{-l2 t}                                      A1/l1 + A2/l2
``tri_uptake``  A1 e^{-l1 t} + A2 e^{-l2 t} - (A1+A2) e^{-l3 t} (A(0) = 0)        see below
``tri``         A1 e^{-l1 t} + A2 e^{-l2 t} + A3 e^{-l3 t}                       sum Ai/li
==============  ===============================================================  ==============

``tri_uptake``: TIA = A1/l1 + A2/l2 - (A1+A2)/l3. The non-parametric ``trapezoid`` and the
semi-parametric ``hybrid`` methods are :func:`trapezoid_tia` and :func:`hybrid_tia`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MODELS",
    "NONPARAMETRIC",
    "RATE_MAX_PER_H",
    "Model",
    "get_model",
    "hybrid_tia",
    "trapezoid_tia",
]

#: Upper bound of every fitted rate (1/h): a half-life of about 2.5 minutes.
RATE_MAX_PER_H = 16.0

#: Names of the non-parametric / semi-parametric methods (no likelihood, not ranked by AICc).
NONPARAMETRIC = ("trapezoid", "hybrid")

Array = np.ndarray


@dataclass(frozen=True)
class Model:
    """A parametric TAC model.

    Attributes
    ----------
    name : str
        Registry key (``"mono"``, ``"bi_uptake"``, ``"bi"``, ``"tri_uptake"``, ``"tri"``).
    param_names : tuple of str
        Parameter names; amplitudes ``A*`` in the data unit, rates ``l*`` in 1/h.
    formula, tia_formula : str
        Human-readable A(t) and TIA from 0 to infinity.
    """

    name: str
    param_names: tuple[str, ...]
    formula: str
    tia_formula: str
    _f: Callable[[Array, Array], Array]
    _jac: Callable[[Array, Array], Array]
    _tia: Callable[[Array], float]
    _tia_grad: Callable[[Array], Array]
    _canonical: Callable[[Array], Array]

    @property
    def n_params(self) -> int:
        """Number of fitted parameters."""
        return len(self.param_names)

    @property
    def is_amplitude(self) -> np.ndarray:
        """Boolean mask (n_params,): True for amplitudes (scale with the data), False for rates."""
        return np.array([p.startswith("A") for p in self.param_names])

    def f(self, t_h, p) -> np.ndarray:
        """Model activity at times ``t_h`` (h), shape of ``t_h``, in the data unit."""
        return self._f(np.asarray(t_h, dtype=float), np.asarray(p, dtype=float))

    def jacobian(self, t_h, p) -> np.ndarray:
        """Analytic Jacobian d f(t_i) / d p_j, shape (n_times, n_params)."""
        return self._jac(np.asarray(t_h, dtype=float), np.asarray(p, dtype=float))

    def tia(self, p) -> float:
        """Analytic integral of A(t) from 0 to infinity, (data unit)·h."""
        return float(self._tia(np.asarray(p, dtype=float)))

    def tia_gradient(self, p) -> np.ndarray:
        """Gradient of :meth:`tia` with respect to the parameters, shape (n_params,)."""
        return self._tia_grad(np.asarray(p, dtype=float))

    def canonical_order(self, p) -> np.ndarray:
        """Index permutation that sorts exchangeable components by increasing rate."""
        return self._canonical(np.asarray(p, dtype=float))

    def bounds(self, lambda_min: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds: amplitudes in [0, inf), rates in [lambda_min, RATE_MAX_PER_H].

        Parameters
        ----------
        lambda_min : float
            Lowest allowed rate (1/h): the physical decay constant when the physical constraint
            is on, a tiny positive number otherwise.
        """
        amp = self.is_amplitude
        lo = np.where(amp, 0.0, lambda_min)
        hi = np.where(amp, np.inf, RATE_MAX_PER_H)
        return lo, hi

    def starts(self, t_h, y, lambda_min: float) -> list[np.ndarray]:
        """Starting values from the data (see ``_starting_values``), each (n_params,)."""
        return _starting_values(self.name, np.asarray(t_h, float), np.asarray(y, float),
                                lambda_min)


def _e(t: Array, rate: float) -> Array:
    return np.exp(-rate * t)


def _identity(n: int) -> Callable[[Array], Array]:
    return lambda p: np.arange(n)


def _pairs_by_rate(pair_starts: tuple[int, ...], tail: tuple[int, ...] = ()):
    """Permutation sorting (A, l) pairs starting at ``pair_starts`` by rate, then ``tail``."""

    def order(p: Array) -> Array:
        ranked = sorted(pair_starts, key=lambda i: p[i + 1])
        idx = [j for i in ranked for j in (i, i + 1)]
        return np.array(idx + list(tail))

    return order


# --- mono -------------------------------------------------------------------------------------
def _mono_f(t, p):
    return p[0] * _e(t, p[1])


def _mono_j(t, p):
    e = _e(t, p[1])
    return np.stack([e, -p[0] * t * e], axis=-1)


# --- bi_uptake --------------------------------------------------------------------------------
def _biu_f(t, p):
    return p[0] * (_e(t, p[1]) - _e(t, p[2]))


def _biu_j(t, p):
    e1, e2 = _e(t, p[1]), _e(t, p[2])
    return np.stack([e1 - e2, -p[0] * t * e1, p[0] * t * e2], axis=-1)


# --- bi ---------------------------------------------------------------------------------------
def _bi_f(t, p):
    return p[0] * _e(t, p[1]) + p[2] * _e(t, p[3])


def _bi_j(t, p):
    e1, e2 = _e(t, p[1]), _e(t, p[3])
    return np.stack([e1, -p[0] * t * e1, e2, -p[2] * t * e2], axis=-1)


# --- tri_uptake -------------------------------------------------------------------------------
def _triu_f(t, p):
    a1, l1, a2, l2, l3 = p
    return a1 * _e(t, l1) + a2 * _e(t, l2) - (a1 + a2) * _e(t, l3)


def _triu_j(t, p):
    a1, l1, a2, l2, l3 = p
    e1, e2, e3 = _e(t, l1), _e(t, l2), _e(t, l3)
    return np.stack([e1 - e3, -a1 * t * e1, e2 - e3, -a2 * t * e2, (a1 + a2) * t * e3], axis=-1)


# --- tri --------------------------------------------------------------------------------------
def _tri_f(t, p):
    return p[0] * _e(t, p[1]) + p[2] * _e(t, p[3]) + p[4] * _e(t, p[5])


def _tri_j(t, p):
    e1, e2, e3 = _e(t, p[1]), _e(t, p[3]), _e(t, p[5])
    return np.stack([e1, -p[0] * t * e1, e2, -p[2] * t * e2, e3, -p[4] * t * e3], axis=-1)


MODELS: dict[str, Model] = {
    m.name: m
    for m in [
        Model("mono", ("A1", "l1"), "A1*exp(-l1*t)", "A1/l1", _mono_f, _mono_j,
              lambda p: p[0] / p[1], lambda p: np.array([1 / p[1], -p[0] / p[1] ** 2]),
              _identity(2)),
        Model("bi_uptake", ("A1", "l1", "l2"), "A1*(exp(-l1*t) - exp(-l2*t)), l2 > l1",
              "A1*(1/l1 - 1/l2)", _biu_f, _biu_j,
              lambda p: p[0] * (1 / p[1] - 1 / p[2]),
              lambda p: np.array([1 / p[1] - 1 / p[2], -p[0] / p[1] ** 2, p[0] / p[2] ** 2]),
              _identity(3)),
        Model("bi", ("A1", "l1", "A2", "l2"), "A1*exp(-l1*t) + A2*exp(-l2*t)",
              "A1/l1 + A2/l2", _bi_f, _bi_j,
              lambda p: p[0] / p[1] + p[2] / p[3],
              lambda p: np.array([1 / p[1], -p[0] / p[1] ** 2, 1 / p[3], -p[2] / p[3] ** 2]),
              _pairs_by_rate((0, 2))),
        Model("tri_uptake", ("A1", "l1", "A2", "l2", "l3"),
              "A1*exp(-l1*t) + A2*exp(-l2*t) - (A1+A2)*exp(-l3*t)",
              "A1/l1 + A2/l2 - (A1+A2)/l3", _triu_f, _triu_j,
              lambda p: p[0] / p[1] + p[2] / p[3] - (p[0] + p[2]) / p[4],
              lambda p: np.array([1 / p[1] - 1 / p[4], -p[0] / p[1] ** 2, 1 / p[3] - 1 / p[4],
                                  -p[2] / p[3] ** 2, (p[0] + p[2]) / p[4] ** 2]),
              _pairs_by_rate((0, 2), (4,))),
        Model("tri", ("A1", "l1", "A2", "l2", "A3", "l3"),
              "A1*exp(-l1*t) + A2*exp(-l2*t) + A3*exp(-l3*t)", "A1/l1 + A2/l2 + A3/l3",
              _tri_f, _tri_j,
              lambda p: p[0] / p[1] + p[2] / p[3] + p[4] / p[5],
              lambda p: np.array([1 / p[1], -p[0] / p[1] ** 2, 1 / p[3], -p[2] / p[3] ** 2,
                                  1 / p[5], -p[4] / p[5] ** 2]),
              _pairs_by_rate((0, 2, 4))),
    ]
}


def get_model(name: str) -> Model:
    """Return the registered :class:`Model` called ``name`` (KeyError if unknown)."""
    return MODELS[name]


# --- starting values --------------------------------------------------------------------------
def _loglin(t: Array, y: Array) -> tuple[float, float] | None:
    """Least-squares line through (t, ln y) for y > 0: returns (amplitude, rate) or None."""
    ok = y > 0
    if ok.sum() < 2:
        return None
    slope, intercept = np.polyfit(t[ok], np.log(y[ok]), 1)
    return float(np.exp(intercept)), float(-slope)


def _starting_values(name: str, t: Array, y: Array, lam_min: float) -> list[np.ndarray]:
    """Starting values from the data for model ``name``.

    The slow (tail) rate and its amplitude come from a log-linear fit of the points from the
    peak on (or the last two points); the uptake rate from the peak time t_pk (rates of a few
    times 1/t_pk); faster wash-out components from the first point. Several starts are returned
    and the fit keeps the best; they are clipped into the bounds by the caller.
    """
    ipk = int(np.argmax(y))
    tpk = max(float(t[ipk]), 1e-3)
    tail = _loglin(t[ipk:], y[ipk:]) if len(t) - ipk >= 2 else None
    if tail is None:
        tail = _loglin(t[-2:], y[-2:]) or (float(y.max()), lam_min)
    a_t, l_t = tail
    l_t = max(l_t, 1.05 * lam_min, 1e-4)
    allp = _loglin(t, y)
    if allp is None:
        allp = (float(y.max()), l_t)
    a_all, l_all = allp[0], max(allp[1], 1.05 * lam_min, 1e-4)
    l_up = [max(c / tpk, 2.0 * l_t) for c in (1.0, 3.0, 10.0)]
    t0, y0 = float(t[0]), float(y[0])
    l_fast = [max(c, 2.0 * l_t) for c in (5.0 * l_t, 3.0 / max(t0, 1e-3))]

    if name == "mono":
        return [np.array([a_t, l_t]), np.array([a_all, l_all])]
    if name == "bi_uptake":
        return [np.array([a_t, l_t, lu]) for lu in l_up]
    if name == "bi":
        out = []
        for lf in l_fast:
            a2 = max(y0 - a_t * np.exp(-l_t * t0), 0.1 * y0) * np.exp(min(lf * t0, 5.0))
            out.append(np.array([a_t, l_t, a2, lf]))
        return out
    if name == "tri_uptake":
        return [np.array([0.7 * a_t, l_t, 0.6 * a_t, max(4.0 * l_t, 0.5 * lu), lu])
                for lu in l_up[1:]]
    if name == "tri":
        out = []
        for lf in l_fast:
            a2 = max(y0 - a_t * np.exp(-l_t * t0), 0.1 * y0) * np.exp(min(lf * t0, 5.0))
            out.append(np.array([a_t, l_t, 0.5 * a2, lf, 0.5 * a2, 5.0 * lf]))
        return out
    raise KeyError(name)


# --- non-parametric and semi-parametric TIA ----------------------------------------------------
def _with_origin(t: Array, y: Array) -> tuple[Array, Array, int]:
    """Prepend (0, 0) unless the first time is 0; returns t, y and the offset of the data."""
    if t[0] > 0:
        return np.concatenate([[0.0], t]), np.concatenate([[0.0], y]), 1
    return t, y, 0


def _trapezoid_weights(t: Array) -> Array:
    """Weights w with sum(w * y) = trapezoidal integral over the points t (shape of t)."""
    dt = np.diff(t)
    w = np.zeros_like(t)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    return w


def trapezoid_tia(t_h, values, lambda_phys_per_h: float) -> tuple[float, np.ndarray]:
    """TIA by trapezoids from (0, 0) through the points, then physical decay after the last one.

    TIA = sum_i (t_i - t_{i-1}) (A_i + A_{i-1}) / 2 + A_n / lambda_phys, with (t_0, A_0) = (0, 0)
    (no origin is added if the first time is 0).

    Parameters
    ----------
    t_h : (n,) array_like
        Times after injection (h), strictly increasing.
    values : (n,) array_like
        Activities (data unit).
    lambda_phys_per_h : float
        Physical decay constant (1/h) of the tail.

    Returns
    -------
    tia : float
        (data unit)·h.
    gradient : (n,) ndarray
        d TIA / d A_i (h): TIA is linear in the data, so sigma_TIA^2 = sum (g_i sigma_i)^2.
    """
    t, y = np.asarray(t_h, float), np.asarray(values, float)
    tt, _, off = _with_origin(t, y)
    w = _trapezoid_weights(tt)[off:]
    w[-1] += 1.0 / lambda_phys_per_h
    return float(w @ y), w


def _hybrid_value(t: Array, y: Array, lam: float, n_tail: int) -> tuple[float, float, bool]:
    """Hybrid TIA, the tail rate and whether it was raised to lambda_phys."""
    ts, ys = t[-n_tail:], y[-n_tail:]
    fit = _loglin(ts, ys)
    clipped = fit is None or fit[1] < lam
    rate = lam if clipped else fit[1]
    # amplitude of the tail exponential at its first point, by log-linear regression at `rate`
    pos = ys > 0
    if not pos.any():
        anchor = 0.0
    else:
        anchor = float(np.exp(np.mean(np.log(ys[pos]) + rate * (ts[pos] - ts[0]))))
    s = len(t) - n_tail  # index of the first tail point
    tt, yy, _ = _with_origin(t[: s + 1], np.concatenate([y[:s], [anchor]]))
    head = float(_trapezoid_weights(tt) @ yy) if len(tt) > 1 else 0.0
    return head + anchor / rate, rate, clipped


def hybrid_tia(t_h, values, lambda_phys_per_h: float, *, n_tail: int = 2
               ) -> tuple[float, np.ndarray, float, bool]:
    """TIA by trapezoids up to the first tail point, then a fitted exponential to infinity.

    The tail exponential goes through the last ``n_tail`` points (log-linear least squares; for
    ``n_tail=2`` exactly through both), with its rate raised to ``lambda_phys`` if the points
    decay slower than physical decay (or rise). The trapezoids run from (0, 0) to the first tail
    point, whose value is the tail exponential's there (the measured value when ``n_tail=2`` and
    the rate is not raised). TIA = trapezoids + A(t_s) / rate.

    Parameters
    ----------
    t_h, values : (n,) array_like
        Times (h) and activities (data unit), n >= n_tail >= 2.
    lambda_phys_per_h : float
        Physical decay constant (1/h): the lowest tail rate.
    n_tail : int
        Number of last points that define the tail.

    Returns
    -------
    tia : float
        (data unit)·h.
    gradient : (n,) ndarray
        d TIA / d A_i by central differences (h).
    rate : float
        Tail rate (1/h).
    raised : bool
        True if the tail rate was set to ``lambda_phys``.
    """
    t, y = np.asarray(t_h, float), np.asarray(values, float)
    tia, rate, clipped = _hybrid_value(t, y, lambda_phys_per_h, n_tail)
    grad = np.empty_like(y)
    for i in range(len(y)):
        h = 1e-6 * max(abs(y[i]), 1e-12 * max(abs(y).max(), 1.0))
        up, dn = y.copy(), y.copy()
        up[i] += h
        dn[i] = max(dn[i] - h, 0.0)
        grad[i] = (_hybrid_value(t, up, lambda_phys_per_h, n_tail)[0]
                   - _hybrid_value(t, dn, lambda_phys_per_h, n_tail)[0]) / (up[i] - dn[i])
    return tia, grad, rate, clipped
