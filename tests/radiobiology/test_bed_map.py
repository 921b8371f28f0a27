"""Voxel-wise BED maps equal the scalar formulas voxel by voxel; effective-rate maps recover
known rates. References: Dale 1985 closed form (doi:10.1259/0007-1285-58-690-515) and the
scalar functions validated in test_bed.py / test_lea_catcheside.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theradose.errors import GeometryMismatchError, InputError, TimeOrderError, UnitError
from theradose.radiobiology import bed, bed_map, bed_mono, effective_rate_map, lea_catcheside_g
from theradose.volume import Volume

LN2 = math.log(2.0)
SP = (4.0, 4.0, 4.0)


def _dose(arr, **kw):
    return Volume.from_array(np.asarray(arr, float), spacing_mm=SP, unit=kw.pop("unit", "Gy"),
                             **kw)


def test_mono_map_equals_scalar_formula_voxel_by_voxel():
    rng = np.random.default_rng(11)
    d = rng.uniform(0.0, 30.0, (3, 4, 5))
    d[0, 0, 0] = 0.0
    lam = rng.uniform(0.005, 0.2, d.shape)
    sig = 0.1 * d
    out = bed_map(_dose(d, sigma=sig), lam, "kidney")
    assert out.unit == "Gy" and out.meta["quantity"] == "BED"
    assert out.meta["alpha_beta_gy"] == 2.6 and out.meta["tissue"] == "kidney"
    for idx in np.ndindex(d.shape):
        assert out.array[idx] == pytest.approx(bed_mono(d[idx], lam[idx], 2.6, 2.8), rel=1e-12)
    # σ_BED = (1 + 2 G D/(α/β)) σ_D
    g = lam / (lam + LN2 / 2.8)
    np.testing.assert_allclose(out.sigma, (1 + 2 * g * d / 2.6) * sig, rtol=1e-12)
    # mGy input is converted; scalar rate broadcasts
    o2 = bed_map(_dose(d * 1000, unit="mGy"), 0.05, alpha_beta_gy=3.0, repair_half_time_h=1.0)
    np.testing.assert_allclose(o2.array, bed_mono(d, 0.05, 3.0, 1.0), rtol=1e-12)


def test_multi_exponential_and_alpha_beta_maps():
    rng = np.random.default_rng(4)
    shape = (2, 2, 3)
    d = rng.uniform(1.0, 20.0, shape)
    amps = np.stack([np.ones(shape), -np.ones(shape)], axis=-1)  # bi_uptake per voxel
    rates = np.stack([rng.uniform(0.01, 0.05, shape), rng.uniform(0.3, 1.0, shape)], axis=-1)
    ab = np.where(rng.uniform(size=shape) > 0.5, 10.0, 2.6)  # tumour / kidney voxels
    trep = np.where(ab == 10.0, 1.5, 2.8)
    out = bed_map(_dose(d), rates, amplitudes=amps, alpha_beta_gy=ab, repair_half_time_h=trep)
    assert out.meta["alpha_beta_gy"] == "map"
    for idx in np.ndindex(shape):
        g = lea_catcheside_g(amps[idx], rates[idx], LN2 / trep[idx])
        assert out.array[idx] == pytest.approx(bed(d[idx], g, ab[idx]), rel=1e-12)


def test_zero_dose_voxels_need_no_rate():
    d = np.array([[[0.0, 5.0]]])
    out = bed_map(_dose(d), np.array([[[0.0, 0.1]]]), "tumour")
    assert out.array[0, 0, 0] == 0.0
    # tiny negative round-off (FFT) is taken as zero
    out2 = bed_map(_dose(np.array([[[-1e-12, 5.0]]])), 0.1, "tumour")
    assert out2.array[0, 0, 0] == 0.0


def test_effective_rate_map_recovers_rates():
    t = np.array([4.0, 24.0, 96.0, 168.0])
    lam_phys = LN2 / (6.647 * 24)  # Lu-177 (ICRP-107)
    true = np.array([[[0.05, 0.01, 0.002]]])  # the last one decays slower than physics
    imgs = 10.0 * np.exp(-true[None] * t[:, None, None, None])
    imgs[-1, 0, 0, 1] = 0.0  # a non-positive tail point -> λ_phys
    r = effective_rate_map(t, imgs)
    assert r[0, 0, 0] == pytest.approx(0.05, rel=1e-10)
    assert r[0, 0, 1] == pytest.approx(lam_phys, rel=1e-3)
    assert r[0, 0, 2] == pytest.approx(lam_phys, rel=1e-3)
    vols = [Volume.from_array(im, spacing_mm=SP, unit="MBq") for im in imgs]
    rv = effective_rate_map(t, vols, n_tail=3, mask=np.array([[[True, False, True]]]))
    assert rv.meta["quantity"] == "effective_rate_per_h"
    assert rv.array[0, 0, 0] == pytest.approx(0.05, rel=1e-10)
    assert rv.array[0, 0, 1] == pytest.approx(lam_phys, rel=1e-3)  # masked out


def test_bed_map_validation():
    d = _dose(np.ones((1, 1, 2)))
    cases = [
        (lambda: bed_map(np.ones((1, 1, 2)), 0.1, "kidney"), "dose", "must be a Volume"),
        (lambda: bed_map(_dose([[[np.nan, 1.0]]]), 0.1, "kidney"), "dose", "not finite"),
        (lambda: bed_map(_dose([[[-1.0, 1.0]]]), 0.1, "kidney"), "dose", "negative"),
        (lambda: bed_map(d, 0.1), "tissue", "alpha_beta_gy"),
        (lambda: bed_map(d, 0.1, "kidney", alpha_beta_gy=np.array([[[0.0, 1.0]]])),
         "alpha_beta_gy", "> 0"),
        (lambda: bed_map(d, np.ones((1, 1, 3)), "kidney"), "rates_per_h", "does not match"),
        (lambda: bed_map(d, "fast", "kidney"), "rates_per_h", "number or a map"),
        (lambda: bed_map(d, np.array([[[0.1, -1.0]]]), "kidney"), "rates_per_h", "> 0"),
        (lambda: bed_map(d, 0.1, "kidney", amplitudes=np.ones((1, 1, 2, 2))), "amplitudes",
         "component rates"),
        (lambda: bed_map(d, np.ones((1, 1, 2, 2)), "kidney"), "amplitudes", "need amplitudes"),
        (lambda: bed_map(d, np.ones((1, 1, 2, 2)), "kidney", amplitudes=np.ones((1, 1, 2, 3))),
         "amplitudes", "differs"),
        (lambda: bed_map(d, -np.ones((1, 1, 2, 2)), "kidney", amplitudes=np.ones((1, 1, 2, 2))),
         "rates_per_h", "> 0"),
        (lambda: effective_rate_map([1.0], np.ones((1, 2))), "times_h", ">= 2"),
        (lambda: effective_rate_map([1.0, 2.0], np.ones((3, 2))), "images", "2 time points"),
        (lambda: effective_rate_map([1.0, 2.0], np.ones((2, 2)), n_tail=3), "n_tail", "[2, 2]"),
        (lambda: effective_rate_map([1.0, 2.0], np.ones((2, 2)), mask=[True]), "mask",
         "does not match"),
        (lambda: effective_rate_map([1.0, 2.0], "x"), "images", "(T, Z, Y, X)"),
        (lambda: effective_rate_map("ab", np.ones((2, 2))), "times_h", "numbers"),
    ]
    for fn, field, match in cases:
        with pytest.raises(InputError, match=match.replace("[", r"\[").replace("(", r"\(")
                           .replace(")", r"\)")) as ei:
            fn()
        assert "\n" not in str(ei.value) and field in str(ei.value)
    with pytest.raises(UnitError, match="absorbed dose") as ei:
        bed_map(_dose(np.ones((1, 1, 2)), unit="MBq"), 0.1, "kidney")
    assert "dose.unit" in str(ei.value)
    with pytest.raises(TimeOrderError, match="increasing"):
        effective_rate_map([2.0, 1.0], np.ones((2, 2)))
    other = Volume.from_array(np.ones((1, 1, 2)), spacing_mm=(1, 1, 1), unit="1")
    with pytest.raises(GeometryMismatchError, match="different grids"):
        bed_map(d, other, "kidney")
