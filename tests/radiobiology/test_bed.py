"""BED, EQD2, BED from kinetics fits and multi-cycle accumulation.

References: the mono-exponential closed form BED = D(1 + Dλ/((μ+λ)(α/β))) (Dale 1985,
doi:10.1259/0007-1285-58-690-515; issue 5 acceptance: reproduced to 1e-6 from the general
form); EQD2 = BED/(1 + 2/(α/β)) (Withers et al. 1983, doi:10.1016/S0167-8140(83)80021-8);
hand calculations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning, UnitError
from theradose.kinetics import fit_tac
from theradose.radiobiology import (
    BEDResult,
    accumulate_cycles,
    bed,
    bed_from_fit,
    bed_mono,
    eqd2,
    get_tissue,
    lea_catcheside_g,
)
from theradose.volume import Volume

LN2 = math.log(2.0)


def _check(ei, field):
    assert "\n" not in str(ei.value) and field in str(ei.value)


def test_bed_mono_reproduced_by_general_form_to_1e6():
    # issue 5 acceptance: the general form with G from the closed-form Lea–Catcheside factor
    # reproduces Dale's mono-exponential BED to 1e-6 (relative), over a grid of cases
    for d in (0.5, 5.0, 23.0, 150.0):
        for t_eff in (0.5, 2.8, 40.0, 159.5):
            for ab, trep in ((2.6, 2.8), (10.0, 1.5), (3.0, 0.5)):
                lam, mu = LN2 / t_eff, LN2 / trep
                g = lea_catcheside_g([d * lam], [lam], mu)
                assert bed(d, g, ab) == pytest.approx(bed_mono(d, lam, ab, trep), rel=1e-6)


def test_bed_hand_values_and_eqd2():
    # hand: one acute 2-Gy fraction, α/β 10 -> BED 2.4, EQD2 2
    assert bed(2.0, 1.0, 10.0) == pytest.approx(2.4)
    assert eqd2(2.4, 10.0) == pytest.approx(2.0)
    # EQD2 at α/β: 30 acute fractions of 2 Gy -> EQD2 = 60 Gy for any α/β
    for ab in (1.5, 3.0, 10.0):
        assert eqd2(30 * bed(2.0, 1.0, ab), ab) == pytest.approx(60.0)
    # hand (Dale 1985): kidney 20 Gy, T_eff 50 h, α/β 2.6, T_rep 2.8 h
    lam, mu = LN2 / 50, LN2 / 2.8
    assert bed_mono(20.0, lam, 2.6, 2.8) == pytest.approx(20 * (1 + 20 * lam / ((mu + lam) * 2.6)))
    # G = 0: BED = D
    assert bed(7.0, 0.0, 3.0) == 7.0
    # arrays broadcast
    np.testing.assert_allclose(bed(np.array([1.0, 2.0]), 1.0, 2.0), [1.5, 4.0])


def test_eqd2_volume():
    v = Volume.from_array(np.full((1, 1, 2), 24.0), spacing_mm=(1, 1, 1), unit="Gy",
                          meta={"quantity": "BED"})
    e = eqd2(v, 10.0)
    assert e.meta["quantity"] == "EQD2" and e.unit == "Gy"
    np.testing.assert_allclose(e.array, 20.0)  # 24 / 1.2
    with pytest.raises(UnitError, match="must be in Gy") as ei:
        eqd2(Volume.from_array(np.ones((1, 1, 1)), spacing_mm=(1, 1, 1), unit="MBq"), 3.0)
    _check(ei, "bed_gy.unit")


def _mono_fit(a0=100.0, lam=LN2 / 60.0, models=("mono",)):
    t = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
    return fit_tac(t, a0 * np.exp(-lam * t), models=models, relative_sigma=0.05), lam


def test_bed_from_mono_fit_equals_closed_form():
    fit, lam = _mono_fit()
    s = 0.002  # Gy per MBq·h
    r = bed_from_fit(fit, s, "kidney")
    a1, l1 = fit.selected_fit.params
    # analytic: D = s A1/l1; BED by Dale's closed form with the fitted rate
    assert r.dose_gy == pytest.approx(s * a1 / l1, rel=1e-12)
    assert r.bed_gy == pytest.approx(bed_mono(r.dose_gy, l1, 2.6, 2.8), rel=1e-9)
    assert r.g_factor == pytest.approx(l1 / (l1 + LN2 / 2.8), rel=1e-12)
    assert l1 == pytest.approx(lam, rel=1e-5)  # exact data: the fit recovers the rate
    assert r.eqd2_gy == pytest.approx(r.bed_gy / (1 + 2 / 2.6))
    assert r.tissue == "kidney" and r.model == "mono"
    # σ_BED = (1 + 2 G D/(α/β)) σ_D
    assert r.sigma_bed_gy == pytest.approx((1 + 2 * r.g_factor * r.dose_gy / 2.6)
                                           * r.sigma_dose_gy)
    json.dumps(r.to_dict())


def test_bed_from_bi_uptake_fit_uses_all_components():
    t = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])
    a, l1, l2 = 80.0, 0.015, 0.5
    fit = fit_tac(t, a * (np.exp(-l1 * t) - np.exp(-l2 * t)), models=("bi_uptake",),
                  relative_sigma=0.05)
    p = fit.fits["bi_uptake"].params
    r = bed_from_fit(fit, 0.001, alpha_beta_gy=10.0, repair_half_time_h=1.5, model="bi_uptake")
    g = lea_catcheside_g([p[0], -p[0]], [p[1], p[2]], LN2 / 1.5)
    assert r.g_factor == pytest.approx(g, rel=1e-12)
    assert r.bed_gy == pytest.approx(bed(r.dose_gy, g, 10.0), rel=1e-12)
    assert r.tissue == "custom" and len(r.rates_per_h) == 2
    # uptake lowers G below the mono value of the wash-out rate (slower delivery)
    assert r.g_factor < l1 / (l1 + LN2 / 1.5)


def test_bed_from_nonparametric_fits():
    # dense exact mono data: the trapezoid/hybrid curves approach the mono G (Dale 1985). The
    # trapezoid tail is physical decay, so its data decay at λ_phys (Lu-177); the hybrid tail is
    # fitted, so any rate works.
    t = np.array([0.0, 2.0, 6.0, 12.0, 24.0, 36.0, 48.0, 72.0, 96.0, 120.0, 168.0])
    mu = LN2 / 2.8
    lam_phys = LN2 / (6.647 * 24)
    for name, lam in (("trapezoid", lam_phys), ("hybrid", LN2 / 30.0)):
        fit = fit_tac(t, 50 * np.exp(-lam * t), models=(name,), relative_sigma=0.05)
        r = bed_from_fit(fit, 0.01, "kidney", model=name)
        assert r.g_factor == pytest.approx(lam / (lam + mu), rel=0.01), name
        assert r.dose_gy == pytest.approx(0.01 * fit.fits[name].tia, rel=1e-12)
        assert "piecewise" in r.method and r.rates_per_h == ()
    with pytest.warns(TheradoseWarning, match="integrates to"):
        bed_from_fit(fit, 0.01, "kidney", model="hybrid", n_tail=4)


def test_bed_from_fit_validation():
    fit, _ = _mono_fit()
    cases = [
        (lambda: bed_from_fit(object(), 1.0, "kidney"), "fit", "KineticFit"),
        (lambda: bed_from_fit(fit, 1.0, "kidney", model="bi"), "model", "not fitted"),
        (lambda: bed_from_fit(fit, 0.0, "kidney"), "dose_per_tia_gy_per_mbq_h", "> 0"),
        (lambda: bed_from_fit(fit, 1.0), "tissue", "alpha_beta_gy"),
        (lambda: bed_from_fit(fit, 1.0, "nope"), "tissue", "unknown tissue"),
        (lambda: bed_from_fit(fit, 1.0, "kidney", alpha_beta_gy=-1), "alpha_beta_gy", "> 0"),
        (lambda: bed_from_fit(fit, 1.0, "kidney", model="hybrid"), "model", "not fitted"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        _check(ei, field)
    fit2 = fit_tac([4.0, 24.0, 96.0], [10.0, 8.0, 3.0], models=("trapezoid",),
                   relative_sigma=0.1)
    with pytest.raises(InputError, match=r"\[2, 3\]") as ei:
        bed_from_fit(fit2, 1.0, "kidney", n_tail=1)
    _check(ei, "n_tail")


def test_bed_and_eqd2_validation():
    cases = [
        (lambda: bed(-1.0, 1.0, 3.0), "dose_gy", ">= 0"),
        (lambda: bed(1.0, 1.5, 3.0), "g", r"\[0, 1\]"),
        (lambda: bed(1.0, 1.0, 0.0), "alpha_beta_gy", "> 0"),
        (lambda: bed("x", 1.0, 3.0), "dose_gy", "numbers"),
        (lambda: bed(np.nan, 1.0, 3.0), "dose_gy", "finite"),
        (lambda: bed_mono(1.0, 0.0, 3.0, 1.0), "lambda_eff_per_h", "> 0"),
        (lambda: bed_mono(1.0, 0.1, 3.0, -1.0), "repair_half_time_h", "> 0"),
        (lambda: eqd2(-1.0, 3.0), "bed_gy", ">= 0"),
        (lambda: eqd2(1.0, 0.0), "alpha_beta_gy", "> 0"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        _check(ei, field)


# ---------------------------------------------------------------------------- cycles
def test_accumulate_cycles_scalars_and_results():
    # hand: two acute 5-Gy cycles, α/β 2.5: 2 × 5 (1 + 5/2.5) = 30 Gy — less than the BED of
    # 10 Gy given at once, 10 (1 + 10/2.5) = 50 Gy (complete repair between cycles)
    r = accumulate_cycles([5.0, 5.0], g_factors=[1.0, 1.0], alpha_beta_gy=2.5)
    assert r.total_bed == pytest.approx(30.0) and r.total_dose == pytest.approx(10.0)
    assert r.total_eqd2 == pytest.approx(30.0 / (1 + 2 / 2.5))
    assert bed(10.0, 1.0, 2.5) == pytest.approx(50.0)
    # BEDs given directly
    r2 = accumulate_cycles([12.0, 8.0])
    assert r2.total_bed == 20.0 and r2.total_eqd2 is None and r2.total_dose is None
    # from BEDResults of four identical cycles: totals are 4 × one cycle
    fit, _ = _mono_fit()
    one = bed_from_fit(fit, 0.002, "kidney")
    r4 = accumulate_cycles([one] * 4)
    assert r4.total_bed == pytest.approx(4 * one.bed_gy)
    assert r4.total_dose == pytest.approx(4 * one.dose_gy)
    assert r4.total_eqd2 == pytest.approx(4 * one.eqd2_gy)
    assert "complete repair" in r4.assumption
    json.dumps(r4.to_dict())


def test_accumulate_cycles_maps():
    g = dict(spacing_mm=(2, 2, 2), unit="Gy")
    d1 = Volume.from_array(np.array([[[1.0, 4.0]]]), **g)
    d2 = Volume.from_array(np.array([[[2.0, 0.0]]]), **g)
    r = accumulate_cycles([d1, d2], g_factors=[0.5, np.array([[[1.0, 1.0]]])],
                          alpha_beta_gy=2.0)
    # hand: voxel 0: 1(1 + .5·1/2) + 2(1 + 2/2) = 1.25 + 4; voxel 1: 4(1 + .5·4/2) = 8
    np.testing.assert_allclose(r.total_bed.array, [[[5.25, 8.0]]])
    assert r.total_bed.meta["quantity"] == "BED"
    np.testing.assert_allclose(r.total_dose.array, [[[3.0, 4.0]]])
    assert r.to_dict()["total_bed_gy"]["mean"] == pytest.approx(6.625)
    arr = accumulate_cycles([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    np.testing.assert_allclose(arr.total_bed, [4.0, 6.0])


def test_accumulate_cycles_validation():
    fit, _ = _mono_fit()
    k = bed_from_fit(fit, 0.002, "kidney")
    t = bed_from_fit(fit, 0.002, "tumour")
    g = dict(spacing_mm=(2, 2, 2), unit="Gy")
    cases = [
        (lambda: accumulate_cycles([]), "cycles", "at least one"),
        (lambda: accumulate_cycles([k, 3.0]), "cycles", "mixes"),
        (lambda: accumulate_cycles([k, t]), "cycles", "different alpha/beta"),
        (lambda: accumulate_cycles([1.0, 2.0], g_factors=[1.0], alpha_beta_gy=3),
         "g_factors", "2 cycles"),
        (lambda: accumulate_cycles([1.0], g_factors=[1.0]), "alpha_beta_gy", "needed"),
        (lambda: accumulate_cycles([-1.0]), "cycles[0]", ">= 0"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        _check(ei, field)
    with pytest.raises(UnitError, match="must be in Gy") as ei:
        accumulate_cycles([Volume.from_array(np.ones((1, 1, 1)), spacing_mm=(1, 1, 1),
                                             unit="MBq")])
    _check(ei, "cycles[0].unit")
    with pytest.raises(GeometryMismatchError, match="different grids"):
        accumulate_cycles([Volume.from_array(np.ones((1, 1, 2)), **g),
                           Volume.from_array(np.ones((1, 1, 3)), **g)])
    assert isinstance(k, BEDResult) and get_tissue("tumour").alpha_beta_gy == 10.0
