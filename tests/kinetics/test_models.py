"""Models: analytic TIA, Jacobians, gradients, trapezoid and hybrid TIA by hand."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from theradose.kinetics._models import MODELS, hybrid_tia, trapezoid_tia
from theradose.nuclides import get_nuclide

LAM = get_nuclide("Lu-177").decay_constant_per_h  # ln2 / 159.528 h (ICRP-107)

PARAMS = {
    "mono": [100.0, 0.05],
    "bi_uptake": [100.0, 0.02, 0.3],
    "bi": [60.0, 0.01, 40.0, 0.2],
    "tri_uptake": [50.0, 0.01, 40.0, 0.1, 1.0],
    "tri": [50.0, 0.008, 40.0, 0.08, 30.0, 0.8],
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_analytic_tia_equals_numerical_integral(name):
    # independent: adaptive quadrature of A(t) on [0, inf)
    m, p = MODELS[name], PARAMS[name]
    num, _ = quad(lambda t: float(m.f(np.array([t]), p)[0]), 0, np.inf, limit=200)
    assert m.tia(p) == pytest.approx(num, rel=1e-8)


@pytest.mark.parametrize("name", list(PARAMS))
def test_jacobian_and_tia_gradient_match_finite_differences(name):
    # independent: central differences, step 1e-6 relative (truncation error ~1e-12)
    m, p = MODELS[name], np.array(PARAMS[name])
    t = np.array([0.5, 2.0, 6.0, 24.0, 72.0, 168.0])
    jac, grad = m.jacobian(t, p), m.tia_gradient(p)
    for j in range(m.n_params):
        h = 1e-6 * p[j]
        up, dn = p.copy(), p.copy()
        up[j] += h
        dn[j] -= h
        fd = (m.f(t, up) - m.f(t, dn)) / (2 * h)
        np.testing.assert_allclose(jac[:, j], fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())
        assert grad[j] == pytest.approx((m.tia(up) - m.tia(dn)) / (2 * h), rel=1e-6)


def test_uptake_models_start_at_zero():
    # analytic: bi_uptake and tri_uptake have A(0) = 0 by construction
    for name in ("bi_uptake", "tri_uptake"):
        assert MODELS[name].f(np.array([0.0]), PARAMS[name])[0] == pytest.approx(0.0, abs=1e-12)


def test_canonical_order_sorts_components_by_rate():
    # hand: swapping the two components of "bi" gives the same curve; order puts slow first
    p = np.array([40.0, 0.2, 60.0, 0.01])
    order = MODELS["bi"].canonical_order(p)
    np.testing.assert_array_equal(p[order], [60.0, 0.01, 40.0, 0.2])


def test_bounds_use_physical_constraint():
    lo, hi = MODELS["bi_uptake"].bounds(LAM)
    np.testing.assert_array_equal(lo, [0.0, LAM, LAM])
    assert hi[0] == np.inf and hi[1] == hi[2] == 16.0


def test_trapezoid_by_hand():
    # hand: (0,0)-(4,12.1): 24.2; (4..24): 426; (24..96): 1753.2; (96..168): 882 -> 3085.4
    #       tail 6.3 / lambda_phys (lambda = ln2/159.528 h = 0.0043450 /h) = 1449.95
    t, y = [4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3]
    tia, grad = trapezoid_tia(t, y, LAM)
    assert tia == pytest.approx(3085.4 + 6.3 / LAM, rel=1e-12)
    assert 6.3 / LAM == pytest.approx(1449.95, rel=1e-5)
    # TIA is linear in the values: gradient = trapezoid weights (h):
    # (4+20)/2, (20+72)/2, (72+72)/2, 72/2 + 1/lambda
    np.testing.assert_allclose(grad, [12.0, 46.0, 72.0, 36.0 + 1 / LAM])


def test_trapezoid_does_not_add_origin_when_first_time_is_zero():
    # hand: points (0,10), (10,10): trapezoid 100, tail 10/lambda
    tia, _ = trapezoid_tia([0.0, 10.0], [10.0, 10.0], LAM)
    assert tia == pytest.approx(100.0 + 10.0 / LAM)


def test_hybrid_by_hand():
    # hand: trapezoids to 96 h: 24.2 + 426 + 1753.2 = 2203.4;
    #       tail rate ln(18.2/6.3)/72 = 0.0147343 /h; tail 18.2/rate = 1235.21 -> 3438.61
    t, y = [4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3]
    tia, grad, rate, raised = hybrid_tia(t, y, LAM)
    k = math.log(18.2 / 6.3) / 72
    assert rate == pytest.approx(k, rel=1e-12) and not raised
    assert tia == pytest.approx(2203.4 + 18.2 / k, rel=1e-12)
    assert tia == pytest.approx(3438.61, rel=1e-5)
    # analytic derivatives: dT/dy3 = 36 + 1/k - 1/(k^2 72); dT/dy4 = 18.2/(k^2 72 y4)
    assert grad[2] == pytest.approx(36 + 1 / k - 1 / (k**2 * 72), rel=1e-5)
    assert grad[3] == pytest.approx(18.2 / (k**2 * 72 * 6.3), rel=1e-5)


def test_hybrid_rate_is_raised_to_physical_decay():
    # hand: rising tail (10 -> 12) -> rate = lambda_phys, anchor = geometric mean of
    #       10 and 12*exp(lambda*24) at t = 24 h; trapezoid 0..24 h with that anchor
    tia, _, rate, raised = hybrid_tia([24.0, 48.0], [10.0, 12.0], LAM)
    assert raised and rate == LAM
    anchor = math.sqrt(10.0 * 12.0 * math.exp(LAM * 24.0))
    assert tia == pytest.approx(12.0 * anchor + anchor / LAM, rel=1e-12)
