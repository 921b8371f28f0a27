"""gEUD (Niemierko 1997, doi:10.1118/1.598063) and EUBED (O'Donoghue 1999; Strigari 2010,
doi:10.2967/jnumed.110.075861): analytic limits and hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theradose.dose._dvh import dvh
from theradose.errors import InputError
from theradose.radiobiology import eubed, geud
from theradose.volume import Volume


def _vol(values):
    return Volume.from_array(np.asarray(values, float).reshape(1, 1, -1), spacing_mm=(5, 5, 5),
                             unit="Gy")


def test_geud_limits_and_hand_values():
    rng = np.random.default_rng(7)
    d = rng.uniform(1.0, 40.0, 300)
    # a = 1: the mean (Niemierko)
    assert geud(d, 1.0) == pytest.approx(d.mean(), rel=1e-12)
    # a → ±∞: max / min; a = 0: geometric mean (limit)
    assert geud(d, 400.0) == pytest.approx(d.max(), rel=0.02)
    assert geud(d, -400.0) == pytest.approx(d.min(), rel=0.02)
    assert geud(d, 0.0) == pytest.approx(math.exp(np.mean(np.log(d))), rel=1e-12)
    # hand: a = 2 on (1, 3): sqrt((1 + 9)/2)
    assert geud([1.0, 3.0], 2.0) == pytest.approx(math.sqrt(5.0))
    # a = -10 on (2, 4): ((2^-10 + 4^-10)/2)^(-1/10)
    assert geud([2.0, 4.0], -10.0) == pytest.approx(((2**-10 + 4**-10) / 2) ** -0.1)
    # zeros with a > 0 contribute 0: (0^1 + 4^1)/2 = 2
    assert geud([0.0, 4.0], 1.0) == 2.0
    assert geud([0.0, 0.0], 2.0) == 0.0


def test_geud_weights_dvh_and_volume_agree():
    # integer weights == repeated voxels; DVH / Volume+mask / array give the same value
    d = np.array([2.0, 5.0, 9.0])
    w = np.array([1.0, 2.0, 3.0])
    rep = np.repeat(d, w.astype(int))
    assert geud(d, 4.0, weights=w) == pytest.approx(geud(rep, 4.0), rel=1e-12)
    v = _vol(d)
    m = np.ones((1, 1, 3), bool)
    h = dvh(v, m, weights=w.reshape(1, 1, 3))
    assert geud(h, 4.0) == pytest.approx(geud(rep, 4.0), rel=1e-12)
    assert geud(v, -3.0) == pytest.approx(geud(d, -3.0), rel=1e-12)
    assert geud(d, 1.0, mask=[True, False, True]) == pytest.approx(5.5)


def test_eubed_hand_values_and_bounds():
    a = 0.3
    # uniform: EUBED equals the value
    assert eubed([10.0] * 5, a) == pytest.approx(10.0, rel=1e-12)
    # hand: two equal-volume voxels
    b = np.array([20.0, 60.0])
    ref = -math.log(0.5 * math.exp(-a * 20) + 0.5 * math.exp(-a * 60)) / a
    assert eubed(b, a) == pytest.approx(ref, rel=1e-12)
    # cold spots dominate: min <= EUBED <= mean (Jensen)
    rng = np.random.default_rng(2)
    x = rng.gamma(3.0, 20.0, 500)
    e = eubed(x, a)
    assert x.min() <= e <= x.mean()
    # numerically stable for large α·BED (exp(-300) underflows in a naive sum)
    assert eubed([1000.0, 2000.0], 1.0) == pytest.approx(1000.0 + math.log(2.0), rel=1e-12)
    # weights and DVH input
    h = dvh(_vol(b), np.ones((1, 1, 2), bool), weights=np.array([[[3.0, 1.0]]]))
    ref_w = -math.log(0.75 * math.exp(-a * 20) + 0.25 * math.exp(-a * 60)) / a
    assert eubed(h, a) == pytest.approx(ref_w, rel=1e-12)


def test_validation_branches():
    h = dvh(_vol([1.0, 2.0]), np.ones((1, 1, 2), bool))
    cases = [
        (lambda: geud([1.0], math.inf), "a", "finite"),
        (lambda: geud([1.0], "x"), "a", "finite"),
        (lambda: geud([-1.0, 2.0], 1.0), "dose", ">= 0"),
        (lambda: geud([0.0, 2.0], -1.0), "dose", "> 0"),
        (lambda: geud([], 1.0), "dose", "non-empty"),
        (lambda: geud([1.0, np.nan], 1.0), "dose", "finite"),
        (lambda: geud(object(), 1.0), "dose", "must be a DVH"),
        (lambda: geud(h, 1.0, mask=[True, True]), "mask", "already carries"),
        (lambda: geud([1.0, 2.0], 1.0, mask=[True]), "mask", "1 values for 2"),
        (lambda: geud([1.0, 2.0], 1.0, weights=[1.0]), "weights", "1 values for 2"),
        (lambda: geud([1.0, 2.0], 1.0, weights=[-1.0, 1.0]), "weights", ">= 0"),
        (lambda: geud([1.0, 2.0], 1.0, weights=[0.0, 0.0]), "weights", "no voxel"),
        (lambda: eubed([1.0], 0.0), "alpha_per_gy", "positive"),
        (lambda: eubed([1.0], None), "alpha_per_gy", "positive"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match) as ei:
            fn()
        assert "\n" not in str(ei.value) and field in str(ei.value)
