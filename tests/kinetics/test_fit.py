"""fit_tac: noiseless recovery, weights/covariance rules, criteria, selection, fallback."""

import json
import math

import numpy as np
import pytest

from theradose.kinetics._fit import fit_tac
from theradose.kinetics._models import MODELS
from theradose.nuclides import get_nuclide

LAM = get_nuclide("Lu-177").decay_constant_per_h

# Realistic designs (h after injection) with 4-6 points; parameters of 177Lu-PSMA-like organs.
CASES = {
    "mono": ([4, 24, 96, 168], [100.0, 0.05]),
    "bi_uptake": ([1, 4, 24, 96, 168], [100.0, 0.02, 0.3]),
    "bi": ([1, 4, 24, 72, 120, 168], [60.0, 0.01, 40.0, 0.2]),
    "tri_uptake": ([0.5, 2, 6, 24, 72, 168], [50.0, 0.01, 40.0, 0.1, 1.0]),
    "tri": ([0.5, 2, 6, 24, 72, 168], [50.0, 0.008, 40.0, 0.08, 30.0, 0.8]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_noiseless_fit_recovers_analytic_tia(name):
    # analytic: TIA of the generating parameters (A/l sums); acceptance < 0.1% (issue 4)
    t, p = CASES[name]
    m = MODELS[name]
    y = m.f(np.array(t, float), p)
    r = fit_tac(t, y, models=(name,))
    f = r.fits[name]
    assert f.success
    assert f.tia == pytest.approx(m.tia(p), rel=1e-3)
    assert r.tia_unit == "MBq*h"


def test_concentration_data_scale_and_unit():
    # analytic: Bq/mL data 1e5 x larger -> TIA 1e5 x larger, unit Bq*h/mL
    t, p = CASES["bi_uptake"]
    y = MODELS["bi_uptake"].f(np.array(t, float), p) * 1e5
    r = fit_tac(t, y, unit="Bq/mL", models=("bi_uptake",))
    assert r.tia_unit == "Bq*h/mL" and r.unit == "Bq/mL"
    assert r.fits["bi_uptake"].tia == pytest.approx(1e5 * 100.0 * (1 / 0.02 - 1 / 0.3),
                                                rel=1e-3)
    assert "tia_mbq_h" not in r.to_dict()


def test_physical_constraint_bounds_the_rate():
    # analytic: data decaying at 0.002/h (slower than Lu-177, 0.004345/h) cannot be followed
    # with the constraint: l1 ends on lambda_phys; without it the rate 0.002 is recovered
    t = np.array([4.0, 24.0, 96.0, 168.0])
    y = 50.0 * np.exp(-0.002 * t)
    con = fit_tac(t, y, models=("mono",)).fits["mono"]
    assert con.params[1] == pytest.approx(LAM, rel=1e-6) and "l1" in con.at_bound
    free = fit_tac(t, y, models=("mono",), constrain_physical=False).fits["mono"]
    assert free.params[1] == pytest.approx(0.002, rel=1e-6)
    assert free.tia == pytest.approx(50.0 / 0.002, rel=1e-6)


def test_absolute_sigma_covariance_is_inverse_fisher_matrix():
    # hand: mono A e^{-l t}, sigma_i known -> C = F^-1 with
    # F = sum_i [[e_i^2, -A t_i e_i^2], [-A t_i e_i^2, A^2 t_i^2 e_i^2]] / sigma_i^2
    t = np.array([2.0, 24.0, 72.0, 168.0])
    a, lam = 80.0, 0.03
    e = np.exp(-lam * t)
    s = 0.05 * a * e + 0.5
    fisher = np.array([[np.sum(e**2 / s**2), np.sum(-a * t * e**2 / s**2)],
                       [np.sum(-a * t * e**2 / s**2), np.sum(a**2 * t**2 * e**2 / s**2)]])
    r = fit_tac(t, a * e, sigma=s, models=("mono",))
    f = r.fits["mono"]
    assert f.covariance_scale == 1.0
    np.testing.assert_allclose(np.array(f.covariance), np.linalg.inv(fisher), rtol=1e-6)
    # delta method by hand: grad = (1/l, -A/l^2)
    g = np.array([1 / lam, -a / lam**2])
    assert f.sigma_tia_fit == pytest.approx(math.sqrt(g @ np.linalg.inv(fisher) @ g), rel=1e-6)
    assert r.sigma_mode == "absolute" and r.provenance["covariance"] == "(J^T W J)^-1"


def test_relative_weights_and_reduced_chi2_scaling_and_criteria():
    # hand: sigma_i = 0.1 * max(y_i, 0.01 max y); covariance scale = chi2/(n-k);
    # AICc = n ln(chi2/n) + 2k + 2k(k+1)/(n-k-1); BIC = n ln(chi2/n) + k ln n
    t = [1.0, 4.0, 24.0, 48.0, 96.0, 168.0]
    y = [9.0, 30.0, 40.0, 33.0, 20.0, 9.5]
    r = fit_tac(t, y, models=("bi_uptake",), relative_sigma=0.1)
    f = r.fits["bi_uptake"]
    np.testing.assert_allclose(r.sigma, 0.1 * np.array(y))
    wres = np.array(f.weighted_residuals)
    chi2 = float(wres @ wres)
    n, k = 6, 3
    assert f.chi2 == pytest.approx(chi2, rel=1e-9)
    assert f.covariance_scale == pytest.approx(chi2 / (n - k), rel=1e-9)
    assert f.aicc == pytest.approx(n * math.log(chi2 / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1))
    assert f.bic == pytest.approx(n * math.log(chi2 / n) + k * math.log(n))
    # R^2 unweighted, by definition
    res = np.array(f.residuals)
    assert f.r2 == pytest.approx(1 - np.sum(res**2) / np.sum((y - np.mean(y)) ** 2))
    # sigma floor: a zero value gets 1% of the max as its sigma basis
    r0 = fit_tac([1, 24, 96, 168], [0.0, 40.0, 20.0, 9.0], models=("mono",))
    assert r0.sigma[0] == pytest.approx(0.1 * 0.01 * 40.0)


def test_aicc_undefined_when_n_not_above_k_plus_1_and_fallback_to_hybrid():
    # 4 points: bi_uptake (k=3) has n = k+1 -> AICc undefined; mono has CV(l1) > 0.5 here,
    # so no parametric model is eligible and the hybrid method (hand value in test_models) is used
    r = fit_tac([4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3])
    assert r.fits["bi_uptake"].aicc is None and r.fits["bi_uptake"].bic is not None
    assert not r.fits["mono"].accepted and "CV" in r.fits["mono"].reasons[0]
    assert not r.fits["tri_uptake"].success and r.fits["tri_uptake"].reasons
    assert r.fallback and r.selected == "hybrid"
    assert r.tia == pytest.approx(2203.4 + 18.2 * 72 / math.log(18.2 / 6.3), rel=1e-9)
    tr = fit_tac([4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3], fallback="trapezoid")
    assert tr.selected == "trapezoid" and tr.tia == pytest.approx(3085.4 + 6.3 / LAM)


def test_correlation_rule_rejects_and_can_be_switched_off():
    # the NUKFIT |correlation| < 0.8 rule rejects this clear uptake curve (corr(A1,l1) ~ 0.83);
    # without it bi_uptake is accepted and selected (lowest AICc)
    t = [1.0, 4.0, 24.0, 48.0, 96.0, 168.0]
    y = [12.1, 30.5, 41.0, 35.0, 22.0, 9.0]
    strict = fit_tac(t, y)
    assert any("correlation" in x for x in strict.fits["bi_uptake"].reasons)
    loose = fit_tac(t, y, max_abs_corr=None)
    assert loose.selected == "bi_uptake" and not loose.fallback
    assert loose.fits["bi_uptake"].aicc < loose.fits["mono"].aicc


def _selection_rate(gen, params, t, n, rng):
    m = MODELS[gen]
    y0 = m.f(t, params)
    hits = 0
    for _ in range(n):
        y = np.clip(y0 * (1 + 0.1 * rng.standard_normal(t.size)), 0, None)
        r = fit_tac(t, y, models=("mono", "bi_uptake"), relative_sigma=0.1, max_abs_corr=None)
        hits += r.selected == gen
    return hits / n


def test_aicc_picks_generating_model_in_90_percent_of_noisy_trials():
    # Design: 6 points incl. early ones (1, 4, 24, 48, 96, 168 h), 10% relative Gaussian noise,
    # 200 trials each of mono (A=100, l=0.03/h) and bi_uptake (A=100, l1=0.02, l2=0.3 /h);
    # candidates mono vs bi_uptake, correlation rule off (see test above). Issue 4: >= 90%.
    rng = np.random.default_rng(20240604)
    t = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])
    assert _selection_rate("mono", [100.0, 0.03], t, 200, rng) >= 0.90
    assert _selection_rate("bi_uptake", [100.0, 0.02, 0.3], t, 200, rng) >= 0.90


def test_to_dict_is_strict_json_with_units_and_provenance():
    r = fit_tac([4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3])
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["tia_mbq_h"] == pytest.approx(r.tia) and d["tia_unit"] == "MBq*h"
    assert d["fits"]["tri_uptake"]["success"] is False
    assert d["fits"]["tri_uptake"]["params"] == [None] * 5
    assert d["provenance"]["models_tried"] == ["mono", "bi_uptake", "bi", "tri_uptake"]
    assert "ICRP" in d["provenance"]["nuclide_data"]
    assert d["fits"]["bi_uptake"]["parameters"]["l2"] == pytest.approx(
        r.fits["bi_uptake"].params[2])


def test_nonparametric_only_request_selects_it():
    r = fit_tac([4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3], models=("trapezoid",))
    assert r.selected == "trapezoid" and not r.fallback
    assert r.tia == pytest.approx(3085.4 + 6.3 / LAM)


T, Y = [4, 24, 96, 168], [12.1, 30.5, 18.2, 6.3]


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"times_h": [4, 24, 96]}, "values", "got 4 values for 3 times"),
    ({"times_h": [4, 24, 24, 168]}, "times_h", "strictly increasing"),
    ({"times_h": [-1, 24, 96, 168]}, "times_h", "must be >= 0"),
    ({"times_h": [4]}, "times_h", "at least 2 time points"),
    ({"times_h": [[4, 24], [96, 168]]}, "times_h", "1-D"),
    ({"times_h": ["a", 1, 2, 3]}, "times_h", "sequence of numbers"),
    ({"values": [1, -2, 3, 4]}, "values", ">= 0"),
    ({"values": [1, float("nan"), 3, 4]}, "values", "finite"),
    ({"values": [0, 0, 0, 0]}, "values", "all values are zero"),
    ({"sigma": [1, 1, 1, 1], "relative_sigma": 0.1}, "sigma", "not both"),
    ({"sigma": [1, 1, 1]}, "sigma", "got 3 sigmas"),
    ({"sigma": [1, 0, 1, 1]}, "sigma", "> 0"),
    ({"relative_sigma": -0.1}, "relative_sigma", "> 0"),
    ({"models": ("mono", "quad")}, "models", "unknown model 'quad'"),
    ({"models": ()}, "models", "no models"),
    ({"criterion": "aic"}, "criterion", "unknown criterion"),
    ({"unit": "Gy"}, "unit", "absorbed_dose"),
    ({"unit": "furlongs"}, "unit", "unknown unit"),
    ({"nuclide": "Xx-999"}, "nuclide", "unknown nuclide"),
    ({"fallback": "spline"}, "fallback", "unknown fallback"),
    ({"input_uncertainty": 0.05}, "input_uncertainty", "InputUncertainty"),
    ({"n_tail": 5}, "n_tail", "n_tail"),
    ({"max_cv": 0}, "max_cv", "> 0"),
    ({"max_abs_corr": 1.5}, "max_abs_corr", r"\(0, 1\]"),
])
def test_validation_branches(kwargs, field, match):
    from theradose.errors import InputError, TimeOrderError, UnitError, UnknownNuclideError

    args = {"times_h": T, "values": Y} | kwargs
    t, y = args.pop("times_h"), args.pop("values")
    with pytest.raises(InputError, match=match) as ei:
        fit_tac(t, y, **args)
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"{field}:")
    if field == "times_h" and "increasing" in match:
        assert isinstance(ei.value, TimeOrderError)
    if field == "unit":
        assert isinstance(ei.value, UnitError)
    if field == "nuclide":
        assert isinstance(ei.value, UnknownNuclideError)


@pytest.mark.parametrize("scale", [2.0**-1030, 1e-308, 1e-200, 1e-30, 1e30, 1e95])
def test_fit_is_invariant_to_the_data_scale(scale):
    """issue 17: fit_tac fits the data divided by a power of two near max(y) and scales back.

    Every model is linear in its amplitudes, so for data x s: amplitudes, their sigmas, TIAs
    and the fitted curve scale by s (covariances of amplitudes by s^2); rates, chi-square,
    AICc and the selection do not. Subnormal data (1e-308 MBq) used to make LAPACK spin.
    """
    t = [4.0, 24.0, 96.0, 168.0]
    y = np.array([1.0, 1.0, 0.1, 0.01])
    ref = fit_tac(t, y, sigma=0.05 * y + 0.01)
    r = fit_tac(t, y * scale, sigma=(0.05 * y + 0.01) * scale)
    rel = 1e-6 if scale > 1e-300 else 1e-3  # subnormals carry fewer significant bits
    assert r.selected == ref.selected
    assert r.tia == pytest.approx(ref.tia * scale, rel=rel)
    assert r.sigma_tia == pytest.approx(ref.sigma_tia * scale, rel=rel) and r.sigma_tia > 0
    for name, f in ref.fits.items():
        g = r.fits[name]
        assert g.chi2 == pytest.approx(f.chi2, rel=rel, abs=1e-9, nan_ok=True)
        for nm, a, b in zip(f.param_names, f.params, g.params, strict=True):
            assert b == pytest.approx(a * (scale if nm.startswith("A") else 1.0), rel=rel,
                                     nan_ok=True)
        if f.covariance is not None:
            assert g.covariance[0][0] == pytest.approx(f.covariance[0][0] * scale**2, rel=rel)


def test_tiny_sigma_ratio_beyond_float64_is_refused():
    from theradose.errors import InputError

    with pytest.raises(InputError) as e:
        fit_tac([4.0, 24.0], [1e-300, 1e-301], sigma=[1e100, 1e100])
    assert e.value.field == "sigma"
