"""Lea–Catcheside factor G: closed form vs numerical double integration and analytic limits.

References: the definition G = 2/D² ∫Ḋ(t)∫_0^t Ḋ(w)e^{-μ(t-w)}dw dt (Lea & Catcheside 1942,
doi:10.1007/BF02982830) evaluated by scipy.integrate.dblquad; the mono-exponential closed form
G = λ/(λ+μ) (Dale 1985, doi:10.1259/0007-1285-58-690-515); limits μ=0 → 1, λ→∞ → 1, μ≫λ → 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import dblquad, quad

from theradose.errors import InputError
from theradose.radiobiology import lea_catcheside_g, piecewise_g, sum_of_exponentials


def _g_numeric(rate_fn, mu: float, t_max: float) -> float:
    """G by direct double integration of the definition (inner w from 0 to t)."""
    num, _ = dblquad(lambda w, t: rate_fn(t) * rate_fn(w) * math.exp(-mu * (t - w)),
                     0.0, t_max, 0.0, lambda t: t, epsabs=1e-13, epsrel=1e-10)
    d, _ = quad(rate_fn, 0.0, t_max, limit=400, epsabs=1e-13, epsrel=1e-12)
    return 2.0 * num / d**2


def _sum_exp(a, lam):
    a, lam = np.asarray(a, float), np.asarray(lam, float)
    return lambda t: float(np.sum(a * np.exp(-lam * t)))


def test_mono_matches_dale_closed_form():
    # analytic: G = λ/(λ+μ) (Dale 1985)
    for lam, mu in ((0.01, 0.25), (0.1, 0.1), (2.0, 0.5)):
        assert lea_catcheside_g([3.0], [lam], mu) == pytest.approx(lam / (lam + mu), rel=1e-14)


@pytest.mark.parametrize(
    ("amps", "rates", "mu"),
    [
        ([1.0, -1.0], [0.05, 0.6], 0.25),               # bi_uptake
        ([2.0, 0.5], [0.3, 0.04], 0.693 / 1.5),         # bi
        ([1.0, 0.4, -1.4], [0.04, 0.2, 1.1], 0.2),      # tri_uptake
        ([1.0, 1.0, 1.0], [0.05, 0.25, 0.8], 0.25),     # tri with mu equal to one rate
        ([1.5, 0.7], [0.1, 0.4], 0.1),                  # mu equal to the slowest rate
    ],
)
def test_closed_form_matches_double_integral(amps, rates, mu):
    # independent: numerical double integration of the definition (scipy dblquad); the
    # truncation at t_max leaves < 1e-12 of the dose
    t_max = 40.0 / min(rates)
    g_num = _g_numeric(_sum_exp(amps, rates), mu, t_max)
    assert lea_catcheside_g(amps, rates, mu) == pytest.approx(g_num, rel=2e-6)


def test_limits():
    a, lam = [1.0, 0.3, 0.2], [0.02, 0.2, 1.5]
    # μ = 0 (no repair): G = 1 exactly (symmetry of the double integral)
    assert lea_catcheside_g(a, lam, 0.0) == pytest.approx(1.0, rel=1e-13)
    # instantaneous delivery: λ → ∞ with the same dose gives G → 1
    assert lea_catcheside_g([1e7], [1e7], 0.25) == pytest.approx(1.0, abs=1e-7)
    # repair much faster than delivery: G → 0 (≈ λ/μ)
    assert lea_catcheside_g([1.0], [1e-4], 100.0) == pytest.approx(1e-6, rel=1e-3)
    # bi_uptake with a fast uptake tends to the mono value of its slow rate
    g_up = lea_catcheside_g([1.0, -1.0], [0.01, 1e4], 0.25)
    assert g_up == pytest.approx(0.01 / 0.26, rel=1e-3)


def test_vectorised_over_voxels():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.1, 2.0, (2, 3, 2))
    lam = rng.uniform(0.01, 1.0, (2, 3, 2))
    mu = rng.uniform(0.1, 1.0, (2, 3))
    g = lea_catcheside_g(a, lam, mu)
    assert g.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        assert g[idx] == pytest.approx(lea_catcheside_g(a[idx], lam[idx], mu[idx]), rel=1e-13)
    # zero dose -> 0 (BED is 0 whatever G)
    assert lea_catcheside_g([0.0], [0.1], 0.2) == 0.0


def test_sum_of_exponentials_layouts():
    # the kinetics models' A(t) written as sums of exponentials (theradose.kinetics._models)
    amp, rate = sum_of_exponentials("bi_uptake", [2.0, 0.1, 0.9])
    np.testing.assert_array_equal(amp, [2.0, -2.0])
    np.testing.assert_array_equal(rate, [0.1, 0.9])
    amp, rate = sum_of_exponentials("tri_uptake", [1.0, 0.1, 2.0, 0.3, 1.0])
    np.testing.assert_array_equal(amp, [1.0, 2.0, -3.0])
    amp, rate = sum_of_exponentials("tri", [1, 0.1, 2, 0.2, 3, 0.3])
    np.testing.assert_array_equal(rate, [0.1, 0.2, 0.3])
    assert sum_of_exponentials("mono", [1, 0.1])[0].tolist() == [1.0]
    assert sum_of_exponentials("bi", [1, 0.1, 2, 0.2])[0].tolist() == [1.0, 2.0]


def test_piecewise_curve_matches_double_integral_and_mono_limit():
    # independent: nested adaptive quadrature (breakpoints at the nodes) of the definition on
    # the same piecewise-linear head + exponential tail
    t = np.array([2.0, 24.0, 70.0])
    y = np.array([3.0, 2.0, 0.8])
    r, mu = 0.05, 0.25
    nodes = np.r_[0.0, t]

    def f(s):
        return float(np.interp(s, nodes, np.r_[0.0, y])) if s <= t[-1] else \
            float(y[-1] * np.exp(-r * (s - t[-1])))

    def inner(s):
        pts = nodes[(nodes > 0) & (nodes < s)]
        return quad(lambda w: f(w) * math.exp(-mu * (s - w)), 0.0, s,
                    points=pts if pts.size else None, limit=200)[0]

    t_max = t[-1] + 30 / r
    num = quad(lambda s: f(s) * inner(s), 0.0, t_max, points=t, limit=200)[0]
    g, integral = piecewise_g(t, y, r, mu)
    # analytic integral: trapezoids from (0,0) + y_n / r
    trap = 0.5 * (2 * 3) + 0.5 * 22 * (3 + 2) + 0.5 * 46 * (2 + 0.8) + 0.8 / r
    assert integral == pytest.approx(trap, rel=1e-12)
    assert g == pytest.approx(2 * num / trap**2, rel=1e-4)
    # dense samples of a mono-exponential from t=0 reproduce λ/(λ+μ) (Dale 1985)
    lam = 0.03
    tt = np.linspace(0.0, 60.0, 61)
    g_m, int_m = piecewise_g(tt, np.exp(-lam * tt), lam, mu)
    assert g_m == pytest.approx(lam / (lam + mu), rel=2e-4)
    assert int_m == pytest.approx(1 / lam, rel=1e-4)


def test_validation_branches():
    cases = [
        (lambda: lea_catcheside_g([1.0, 2.0], [0.1], 0.2), "rates_per_h", "same shape"),
        (lambda: lea_catcheside_g([1.0], [0.0], 0.2), "rates_per_h", "> 0"),
        (lambda: lea_catcheside_g([1.0], [0.1], -0.2), "repair_rate_per_h", ">= 0"),
        (lambda: lea_catcheside_g([1.0], [np.nan], 0.2), "rates_per_h", "finite"),
        (lambda: lea_catcheside_g(["a"], [0.1], 0.2), "amplitudes", "numbers"),
        (lambda: lea_catcheside_g([-1.0, 0.5], [0.1, 0.2], 0.2), "amplitudes", "negative"),
        (lambda: sum_of_exponentials("quad", [1, 2]), "model", "accepted"),
        (lambda: sum_of_exponentials("bi", [1, 2]), "params", "4 parameters"),
        (lambda: piecewise_g([1, 2], [1.0], 0.1, 0.2), "values", "same length"),
        (lambda: piecewise_g([2, 1], [1.0, 1.0], 0.1, 0.2), "times_h", "increasing"),
        (lambda: piecewise_g([1, 2], [1.0, -1.0], 0.1, 0.2), "values", ">= 0"),
        (lambda: piecewise_g([1, 2], [1.0, 1.0], 0.0, 0.2), "tail_rate_per_h", "> 0"),
        (lambda: piecewise_g([1, 2], [1.0, 1.0], 0.1, -1), "repair_rate_per_h", ">= 0"),
        (lambda: piecewise_g([1, 2], [0.0, 0.0], 0.1, 0.2), "values", "integrates to 0"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        assert "\n" not in str(ei.value) and field in str(ei.value)
