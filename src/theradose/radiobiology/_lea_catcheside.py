r"""The Lea–Catcheside dose-protraction factor G for the dose-rate curves of RPT.

For a dose-rate curve :math:`\dot D(t)` delivering :math:`D=\int_0^\infty \dot D\,dt` and
mono-exponential repair of sub-lethal damage at rate :math:`\mu = \ln 2/T_{rep}`,

.. math:: G = \frac{2}{D^2}\int_0^\infty \dot D(t)\,dt \int_0^t \dot D(w)\,e^{-\mu(t-w)}\,dw ,

and the biologically effective dose is :math:`BED = D\,(1 + G\,D/(\alpha/\beta))`
(Lea & Catcheside 1942; Dale 1985; Baechler et al. 2008).

**Sum of exponentials.** With :math:`\dot D(t) = \sum_i a_i e^{-\lambda_i t}` (mono: one term;
``bi_uptake``: :math:`a_2 = -a_1`; bi, tri, tri_uptake), the inner integral is
:math:`\sum_j a_j (e^{-\lambda_j t} - e^{-\mu t})/(\mu - \lambda_j)` and the outer one gives

.. math::
   G = \frac{2}{D^2}\sum_i\sum_j \frac{a_i a_j}{\mu-\lambda_j}
       \Big[\frac{1}{\lambda_i+\lambda_j} - \frac{1}{\lambda_i+\mu}\Big]
     = \frac{2}{D^2}\sum_i\sum_j \frac{a_i a_j}{(\lambda_i+\lambda_j)(\lambda_i+\mu)},
   \qquad D = \sum_i a_i/\lambda_i ,

because :math:`1/(\lambda_i+\lambda_j) - 1/(\lambda_i+\mu) =
(\mu-\lambda_j)/((\lambda_i+\lambda_j)(\lambda_i+\mu))`: the apparent singularity at
:math:`\mu = \lambda_j` cancels exactly, so the right-hand form *is* its limit and is used for
all rates. Checks: one term gives :math:`G = \lambda/(\lambda+\mu)` (Dale 1985); :math:`\mu=0`
(no repair) gives :math:`G = 1` by symmetry; :math:`\lambda \to \infty` (instantaneous
delivery) gives :math:`G \to 1`; :math:`\mu \gg \lambda` gives :math:`G \to 0`.

**Piecewise-linear curves** (the ``trapezoid`` and ``hybrid`` TIA methods): the head (from
(0, 0) through the points) is linear between nodes; the inner integral
:math:`q(t)=\int_0^t \dot D(w)e^{-\mu(t-w)}dw` obeys :math:`q(t+h) = e^{-\mu h} q(t) +
\int_t^{t+h}\dot D(w) e^{-\mu(t+h-w)}dw`, integrated on a fine sub-grid (trapezoid rule for both
integrals, second order); after the last node the exponential tail
:math:`B e^{-r (t - t_s)}` is integrated exactly: :math:`\int_{t_s}^\infty \dot D\,q\,dt =
B\,q(t_s)/(r+\mu) + B^2/(2r(r+\mu))`.

References
----------
Lea DE, Catcheside DG. The mechanism of the induction by radiation of chromosome aberrations in
Tradescantia. J Genet 1942;44:216-245. doi:10.1007/BF02982830

Dale RG. The application of the linear-quadratic dose-effect equation to fractionated and
protracted radiotherapy. Br J Radiol 1985;58:515-528. doi:10.1259/0007-1285-58-690-515

Baechler S, Hobbs RF, Prideaux AR, Wahl RL, Sgouros G. Extension of the biological effective
dose to the MIRD schema and possible implications in radionuclide therapy dosimetry. Med Phys
2008;35:1123-1134. doi:10.1118/1.2836421
"""

from __future__ import annotations

import math

import numpy as np

from theradose.errors import InputError

__all__ = ["lea_catcheside_g", "piecewise_g", "sum_of_exponentials"]

#: Sub-steps per linear segment of a piecewise curve (trapezoid rule; relative error ~1e-7).
_SUBSTEPS = 2000


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"must be numbers, got {x!r}", field=name) from None
    if not np.all(np.isfinite(arr)):
        raise InputError("must be finite numbers", field=name)
    return arr


def lea_catcheside_g(amplitudes, rates_per_h, repair_rate_per_h):
    r"""Lea–Catcheside factor G of a dose-rate curve :math:`\sum_i a_i e^{-\lambda_i t}`.

    Closed form (derived in the module docstring)
    :math:`G = (2/D^2) \sum_i \sum_j a_i a_j / ((\lambda_i+\lambda_j)(\lambda_i+\mu))`,
    :math:`D = \sum_i a_i/\lambda_i`, valid for every μ ≥ 0 including μ = λ_j.

    Parameters
    ----------
    amplitudes : (..., n) array_like
        Dose-rate amplitudes :math:`a_i` of the components (any unit, e.g. Gy/h; G is
        scale-free). Negative amplitudes describe uptake phases (``bi_uptake``: ``[a, -a]``).
        Leading axes are broadcast (voxel maps: ``(Z, Y, X, n)``).
    rates_per_h : (..., n) array_like
        Decay rates :math:`\lambda_i` (1/h, > 0), same shape as ``amplitudes``.
    repair_rate_per_h : float or (...) array_like
        Repair rate μ = ln 2 / T_rep (1/h, ≥ 0), broadcast against the leading axes.

    Returns
    -------
    float or ndarray
        G (dimensionless; in [0, 1] for a non-negative dose rate). Shape of the leading axes;
        0 where the total dose is 0 (any G gives BED = 0 there).

    Raises
    ------
    InputError
        Shapes that differ, non-finite values, a rate ≤ 0, μ < 0, or a negative total dose.

    References
    ----------
    Dale RG. Br J Radiol 1985;58:515-528. doi:10.1259/0007-1285-58-690-515

    Examples
    --------
    >>> round(lea_catcheside_g([1.0], [0.01], 0.25), 6)  # λ/(λ+μ)
    0.038462
    """
    a = _as_float_array(amplitudes, "amplitudes")
    lam = _as_float_array(rates_per_h, "rates_per_h")
    mu = _as_float_array(repair_rate_per_h, "repair_rate_per_h")
    if a.ndim == 0:
        a = a[None]
    if lam.ndim == 0:
        lam = lam[None]
    if a.shape != lam.shape:
        raise InputError(f"amplitudes {a.shape} and rates {lam.shape} must have the same shape "
                         "(components on the last axis)", field="rates_per_h")
    if np.any(lam <= 0):
        raise InputError(f"rates must be > 0 1/h, got minimum {lam.min():g}",
                         field="rates_per_h")
    if np.any(mu < 0):
        raise InputError(f"must be >= 0 1/h, got minimum {mu.min():g}",
                         field="repair_rate_per_h")
    dose = np.sum(a / lam, axis=-1)
    if np.any(dose < -1e-12 * np.sum(np.abs(a) / lam, axis=-1)):
        raise InputError("the dose-rate curve integrates to a negative dose; check the signs of "
                         "the amplitudes", field="amplitudes")
    mu_e = mu[..., None, None] if mu.ndim else mu
    ai, aj = a[..., :, None], a[..., None, :]
    li, lj = lam[..., :, None], lam[..., None, :]
    num = np.sum(ai * aj / ((li + lj) * (li + mu_e)), axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(dose > 0, 2.0 * num / np.where(dose > 0, dose, 1.0) ** 2, 0.0)
    return float(g) if g.ndim == 0 else g


def sum_of_exponentials(model: str, params) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and rates of a kinetics model as a plain sum of exponentials.

    Parameters
    ----------
    model : str
        ``mono``, ``bi_uptake``, ``bi``, ``tri_uptake`` or ``tri`` (see
        :mod:`theradose.kinetics`).
    params : sequence of float
        The model's parameters in its ``param_names`` order (amplitudes ``A*``, rates ``l*``
        in 1/h).

    Returns
    -------
    amplitudes, rates : (n,) ndarray
        ``A(t) = Σ_i c_i exp(-l_i t)``.

    Raises
    ------
    InputError
        Unknown model or wrong number of parameters.
    """
    p = _as_float_array(params, "params").ravel()
    layout = {
        "mono": (2, lambda p: ([p[0]], [p[1]])),
        "bi_uptake": (3, lambda p: ([p[0], -p[0]], [p[1], p[2]])),
        "bi": (4, lambda p: ([p[0], p[2]], [p[1], p[3]])),
        "tri_uptake": (5, lambda p: ([p[0], p[2], -(p[0] + p[2])], [p[1], p[3], p[4]])),
        "tri": (6, lambda p: ([p[0], p[2], p[4]], [p[1], p[3], p[5]])),
    }
    if model not in layout:
        raise InputError(f"got {model!r}; accepted: {', '.join(layout)}", field="model")
    n, f = layout[model]
    if p.size != n:
        raise InputError(f"model {model!r} has {n} parameters, got {p.size}", field="params")
    amp, rates = f(p)
    return np.asarray(amp, dtype=np.float64), np.asarray(rates, dtype=np.float64)


def piecewise_g(times_h, values, tail_rate_per_h: float, repair_rate_per_h: float,
                *, tail_value: float | None = None) -> tuple[float, float]:
    """G and dose of a piecewise-linear head followed by an exponential tail.

    The curve rises linearly from (0, 0) to the first point (no origin is added when the first
    time is 0), is linear between the points and decays as
    ``tail_value · exp(-tail_rate (t - t_last))`` after the last point.

    Parameters
    ----------
    times_h : (n,) array_like
        Node times (h), strictly increasing, ≥ 0.
    values : (n,) array_like
        Dose rate (or activity: G is scale-free) at the nodes, ≥ 0.
    tail_rate_per_h : float
        Rate of the tail exponential (1/h, > 0).
    repair_rate_per_h : float
        μ (1/h, ≥ 0).
    tail_value : float, optional
        Value where the tail starts (default: the last node value).

    Returns
    -------
    g : float
        Lea–Catcheside factor.
    integral : float
        Integral of the curve from 0 to infinity (values × h).
    """
    t = _as_float_array(times_h, "times_h").ravel()
    y = _as_float_array(values, "values").ravel()
    if t.size != y.size or t.size < 1:
        raise InputError(f"times ({t.size}) and values ({y.size}) must be non-empty and of the "
                         "same length", field="values")
    if t[0] < 0 or np.any(np.diff(t) <= 0):
        raise InputError(f"must be >= 0 and strictly increasing, got {t.tolist()}",
                         field="times_h")
    if np.any(y < 0):
        raise InputError("must be >= 0", field="values")
    r, mu = float(tail_rate_per_h), float(repair_rate_per_h)
    if not (math.isfinite(r) and r > 0):
        raise InputError(f"must be > 0 1/h, got {tail_rate_per_h!r}", field="tail_rate_per_h")
    if not (math.isfinite(mu) and mu >= 0):
        raise InputError(f"must be >= 0 1/h, got {repair_rate_per_h!r}",
                         field="repair_rate_per_h")
    b = float(y[-1] if tail_value is None else tail_value)
    if t[0] > 0:
        t, y = np.concatenate([[0.0], t]), np.concatenate([[0.0], y])
    if t.size > 1:
        # fine grid: each segment split into _SUBSTEPS equal steps
        frac = np.linspace(0.0, 1.0, _SUBSTEPS + 1)[:-1]
        tt = np.concatenate([(t[:-1, None] + np.diff(t)[:, None] * frac).ravel(), t[-1:]])
        yy = np.interp(tt, t, y)
        h = np.diff(tt)
        e = np.exp(-mu * h)
        # q_{k+1} = e_k q_k + h_k/2 (y_{k+1} + e_k y_k) (trapezoid rule for the convolution
        # over one sub-step); a short sequential loop (n_points × _SUBSTEPS steps) is stable
        # where a cumulative-product form would overflow for large μt.
        c = 0.5 * h * (yy[1:] + e * yy[:-1])
        q = np.empty_like(yy)
        q[0] = 0.0
        qk = 0.0
        for k in range(c.size):
            qk = e[k] * qk + c[k]
            q[k + 1] = qk
        head_int = float(np.sum(0.5 * h * (yy[1:] + yy[:-1])))
        head_gq = float(np.sum(0.5 * h * (yy[1:] * q[1:] + yy[:-1] * q[:-1])))
        q_s = float(q[-1])
    else:
        head_int, head_gq, q_s = 0.0, 0.0, 0.0
    tail_int = b / r
    tail_gq = b * q_s / (r + mu) + b * b / (2.0 * r * (r + mu))
    total = head_int + tail_int
    if total <= 0:
        raise InputError("the curve integrates to 0; G is undefined", field="values")
    return 2.0 * (head_gq + tail_gq) / total**2, total
