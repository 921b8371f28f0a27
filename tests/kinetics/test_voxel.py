"""Voxel-wise fitting (theradose.kinetics._voxel): analytic, noise, rules, selection, phantom."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theradose.errors import InputError, TimeOrderError, UnitError
from theradose.kinetics._voxel import fit_voxels
from theradose.kinetics._voxel_fallback import hybrid, trapezoid
from theradose.volume import Geometry, Volume

LAM = math.log(2.0) / (6.647 * 24.0)  # Lu-177, ICRP-107 T1/2 = 6.647 d
T4 = np.array([4.0, 24.0, 96.0, 168.0])
T6 = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])


def _mono(rng, n):
    a = rng.uniform(0.5, 2.0, n)
    l1 = LAM + rng.uniform(0.002, 0.05, n)
    return a, l1


def _biu(rng, n):
    a, l1 = _mono(rng, n)
    l2 = l1 + rng.uniform(0.1, 1.0, n)
    return a, l1, l2


def _curves_biu(t, a, l1, l2):
    return a * (np.exp(-np.outer(t, l1)) - np.exp(-np.outer(t, l2)))


def _one_line(e: pytest.ExceptionInfo, field: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and field in msg


# ---------------------------------------------------------------- analytic (noiseless)
def test_mono_noiseless_equals_analytic_integral():
    # analytic: TIA = A1/l1 for A(t) = A1 exp(-l1 t)
    rng = np.random.default_rng(1)
    a, l1 = _mono(rng, 3000)
    img = (a * np.exp(-np.outer(T4, l1))).reshape(4, 30, 100)
    r = fit_voxels(T4, img, models=("mono", "bi_uptake"))
    np.testing.assert_allclose(r.tia.ravel(), a / l1, rtol=1e-3)
    assert np.all(r.model_index == 0)
    assert r.unit == "data unit*h"


def test_bi_uptake_noiseless_equals_analytic_integral():
    # analytic: TIA = A1 (1/l1 - 1/l2) for A1 (exp(-l1 t) - exp(-l2 t))
    rng = np.random.default_rng(2)
    a, l1, l2 = _biu(rng, 3000)
    r = fit_voxels(T6, _curves_biu(T6, a, l1, l2), models=("mono", "bi_uptake"))
    np.testing.assert_allclose(r.tia, a * (1 / l1 - 1 / l2), rtol=1e-3)
    assert np.all(r.model_index == 1)


def test_bi_noiseless_equals_analytic_integral():
    # analytic: TIA = A1/l1 + A2/l2
    rng = np.random.default_rng(3)
    a, l1 = _mono(rng, 2000)
    a2 = rng.uniform(0.5, 2.0, 2000)
    l2 = l1 + rng.uniform(0.05, 0.5, 2000)
    img = a * np.exp(-np.outer(T6, l1)) + a2 * np.exp(-np.outer(T6, l2))
    r = fit_voxels(T6, img, models=("bi",))
    np.testing.assert_allclose(r.tia, a / l1 + a2 / l2, rtol=1e-3)


def test_volumes_in_give_volumes_out_with_units():
    # analytic: 3 MBq * exp(-0.03 t) -> 100 MBq*h per voxel; Bq/mL -> Bq*h/mL
    g = Geometry((2, 3, 4), (4.0, 4.0, 4.0), (1.0, 2.0, 3.0))
    vols = [Volume(np.full(g.shape, 3.0 * math.exp(-0.03 * t)), g, unit="MBq") for t in T4]
    r = fit_voxels(T4, vols, models=("mono",))
    assert isinstance(r.tia, Volume) and r.tia.unit == "MBq*h"
    assert r.tia.geometry.same_as(g)
    np.testing.assert_allclose(r.tia.array, 100.0, rtol=1e-6)
    kb = [Volume(np.full(g.shape, 3.0 * math.exp(-0.03 * t)), g, unit="kBq/mL") for t in T4]
    r2 = fit_voxels(T4, kb, models=("mono",))
    assert r2.tia.unit == "Bq*h/mL"
    np.testing.assert_allclose(r2.tia.array, 100.0e3, rtol=1e-6)  # kBq -> Bq: x1000


# ---------------------------------------------------------------- noise
@pytest.mark.parametrize("noise", [0.05, 0.1, 0.2])
def test_noisy_mono_median_error_near_zero(noise):
    # truth: A1/l1; Gaussian relative noise; the median relative error should be ~0
    rng = np.random.default_rng(4)
    a, l1 = _mono(rng, 20000)
    img = a * np.exp(-np.outer(T4, l1))
    y = img * (1.0 + noise * rng.standard_normal(img.shape))
    r = fit_voxels(T4, y, models=("mono", "bi_uptake"), relative_sigma=noise)
    err = r.tia / (a / l1) - 1.0
    nrmse = float(np.sqrt(np.mean(err**2)))
    print(f"noise {noise:.2f}: median error {np.median(err):+.4f}, NRMSE {nrmse:.3f}")
    assert abs(np.median(err)) < 0.25 * noise
    assert nrmse < 1.5 * noise
    # sigma is a calibrated 1-sigma: coverage of the truth between 50 and 85 %
    cover = np.mean(np.abs(r.tia - a / l1) <= r.sigma)
    assert 0.5 < cover < 0.85
    assert np.all(np.isfinite(r.tia)) and np.all(np.isfinite(r.sigma))


def test_model_selection_on_mixed_image():
    # half mono, half bi_uptake voxels at 2 % noise: AICc picks the generating model
    rng = np.random.default_rng(5)
    n = 4000
    a, l1, l2 = _biu(rng, n)
    l2 = l1 + rng.uniform(0.2, 0.6, n)
    img = _curves_biu(T6, a, l1, l2)
    img[:, : n // 2] = a[: n // 2] * np.exp(-np.outer(T6, l1[: n // 2]))
    y = img * (1.0 + 0.02 * rng.standard_normal(img.shape))
    r = fit_voxels(T6, y, models=("mono", "bi_uptake"), relative_sigma=0.02)
    right = np.r_[r.model_index[: n // 2] == 0, r.model_index[n // 2:] == 1]
    print(f"correct model in {right.mean():.3f} of voxels")
    assert right.mean() > 0.9


# ---------------------------------------------------------------- rules
def test_zeros_negatives_and_all_zero_voxels():
    t = T4
    y = np.array([
        [0.0, 0.0, 0.0, 0.0],      # all zero -> not fitted, TIA 0
        [-1.0, -2.0, -0.5, -0.1],  # all negative -> not fitted
        [1.0, 0.8, -0.1, 0.0],     # 2 positive points -> trapezoid, negatives clipped
        [1.0, 0.9, 0.5, 0.3],      # well-behaved -> mono
        [0.0, 1.0, 0.6, 0.4],      # 3 positive: AICc needs 4 for mono -> hybrid
    ]).T
    r = fit_voxels(t, y, models=("mono", "bi_uptake"))
    assert np.all(np.isfinite(r.tia)) and np.all(np.isfinite(r.sigma))
    assert np.all(np.isfinite(r.quality))
    names = r.model_names
    assert list(r.model_index) == [-1, -1, names.index("trapezoid"), names.index("mono"),
                                   names.index("hybrid")]
    assert r.tia[0] == 0.0 and r.tia[1] == 0.0 and r.sigma[0] == 0.0
    # hand calculation: trapezoids (0,0)-(4,1)-(24,0.8)-(96,0)-(168,0), tail 0
    assert r.tia[2] == pytest.approx(0.5 * 4 * 1.0 + 0.5 * 20 * 1.8 + 0.5 * 72 * 0.8)
    # hybrid: trapezoids to t=96 h then 0.6 exp(-l (t-96)), l = ln(0.6/0.4)/72 > lambda_phys
    lt = math.log(0.6 / 0.4) / 72.0
    assert r.tia[4] == pytest.approx(0.5 * 20 * 1.0 + 0.5 * 72 * 1.6 + 0.6 / lt)
    assert r.counts() == {"not_fitted": 2, "mono": 1, "bi_uptake": 0, "trapezoid": 1,
                          "hybrid": 1, "kept": 3, "replaced": 0, "capped": 0}
    assert list(r.status) == [-1, -1, 0, 0, 0]


def test_trapezoid_and_hybrid_hand_values():
    # trapezoid + physical tail: 0.5*4*2 + 0.5*20*(2+1) + 1/lambda_phys
    t = np.array([4.0, 24.0])
    tia, sig = trapezoid(t, np.array([[2.0, 1.0]]), LAM, 0.1)
    assert tia[0] == pytest.approx(4.0 + 30.0 + 1.0 / LAM)
    # sigma: linear propagation, c = (12, 10 + 1/lambda)
    assert sig[0] == pytest.approx(0.1 * math.hypot(12 * 2.0, (10 + 1 / LAM) * 1.0))
    # hybrid whose tail would be slower than physical decay is clipped to lambda_phys
    t3 = np.array([4.0, 24.0, 96.0])
    tia_h, _ = hybrid(t3, np.array([[1.0, 1.0, 0.999]]), LAM, 0.1)
    assert tia_h[0] == pytest.approx(0.5 * 4 * 1 + 0.5 * 20 * 2 + 1.0 / LAM)


def test_mask_and_model_index_outside():
    rng = np.random.default_rng(6)
    a, l1 = _mono(rng, 12)
    img = (a * np.exp(-np.outer(T4, l1))).reshape(4, 3, 4)
    mask = np.zeros((3, 4), bool)
    mask[1] = True
    r = fit_voxels(T4, img, mask, models=("mono",))
    assert np.all(r.model_index[~mask] == -1) and np.all(r.tia[~mask] == 0.0)
    np.testing.assert_allclose(r.tia[mask], (a / l1).reshape(3, 4)[mask], rtol=1e-6)


def test_only_fallback_requested():
    # models=("trapezoid",): every voxel by trapezoid + physical tail (hand formula above)
    y = np.array([[2.0, 1.0], [4.0, 2.0]]).T
    r = fit_voxels(np.array([4.0, 24.0]), y, models=("trapezoid",))
    np.testing.assert_allclose(r.tia, [4 + 30 + 1 / LAM, 2 * (4 + 30 + 1 / LAM)])
    assert np.all(r.model_index == r.model_names.index("trapezoid"))


def test_physical_constraint_on_rates():
    # data decaying slower than Lu-177 (rate lambda/2): the constrained mono fit sits on the
    # bound l1 = lambda_phys; with relative weights sigma_i ~ A e^{-l1 t_i} the LS amplitude is
    # then A = mean(y_i e^{+lambda t_i}) = mean(e^{lambda t_i / 2}) (hand calculation), so
    # TIA = A / lambda_phys; unconstrained recovers the analytic 1/(lambda/2)
    y = np.exp(-np.outer(T4, [LAM / 2]))
    rc = fit_voxels(T4, y, models=("mono",), irls_passes=4)  # weights from the fitted curve
    assert rc.model_index[0] == 0
    assert rc.tia[0] == pytest.approx(np.mean(np.exp(LAM * T4 / 2)) / LAM, rel=1e-4)
    ru = fit_voxels(T4, y, models=("mono",), constrain_physical=False, bound=None)
    assert ru.tia[0] == pytest.approx(2.0 / LAM, rel=1e-3)
    # with the data bound (default) the fit is kept up to the last sample (t_n = 168 h) and
    # decays physically after it: (1 - e^{-l t_n})/l + e^{-l t_n}/lambda, l = lambda/2
    rb = fit_voxels(T4, y, models=("mono",), constrain_physical=False)
    lh, en = LAM / 2, math.exp(-LAM / 2 * T4[-1])
    assert rb.tia[0] == pytest.approx((1 - en) / lh + en / LAM, rel=1e-3)
    assert rb.status[0] == 2 and rb.counts()["capped"] == 1


# ---------------------------------------------------------------- regularisation
def test_rate_prior_pins_rate_and_reduces_error():
    # closely spaced late samples leave the rate poorly determined; a 10 % prior on the organ
    # rate (truth) must reduce the TIA NRMSE vs truth A1/l1
    rng = np.random.default_rng(7)
    n = 5000
    t = np.array([24.0, 48.0, 72.0, 96.0])
    a = rng.uniform(0.5, 2.0, n)
    lt = LAM + 0.005  # one organ rate
    img = a * np.exp(-np.outer(t, np.full(n, lt)))
    y = img * (1.0 + 0.2 * rng.standard_normal(img.shape))
    truth = a / lt
    free = fit_voxels(t, y, models=("mono",), relative_sigma=0.2)
    prior = fit_voxels(t, y, models=("mono",), relative_sigma=0.2, rate_prior=(lt, 0.1))
    e_free = np.sqrt(np.mean((free.tia / truth - 1) ** 2))
    e_prior = np.sqrt(np.mean((prior.tia / truth - 1) ** 2))
    print(f"NRMSE without prior {e_free:.3f}, with prior {e_prior:.3f}")
    assert e_prior < 0.7 * e_free
    # a very tight prior fixes l1 at the prior rate lp; for data decaying at l_d the LS
    # amplitude is then A = mean(y_i e^{lp t_i}) (relative weights, hand calculation)
    lp = LAM + 0.01
    yd = np.exp(-np.outer(T4, [LAM + 0.012]))
    tight = fit_voxels(T4, yd, models=("mono",), rate_prior=(lp, 1e-7), irls_passes=4)
    expect = np.mean(np.exp(-0.002 * T4)) / lp
    assert tight.tia[0] == pytest.approx(expect, rel=1e-3)


def test_presmoothing_reduces_noise_on_uniform_region():
    # uniform organ: a 12 mm FWHM smoothing averages ~ (12/4)^3 voxels -> lower NRMSE
    rng = np.random.default_rng(8)
    g = Geometry((12, 12, 12), (4.0, 4.0, 4.0))
    vols = [Volume(math.exp(-0.03 * t) * (1 + 0.2 * rng.standard_normal(g.shape)), g,
                   unit="MBq") for t in T4]
    truth = 1.0 / 0.03
    raw = fit_voxels(T4, vols, models=("mono",), relative_sigma=0.2)
    sm = fit_voxels(T4, vols, models=("mono",), relative_sigma=0.2, smooth_fwhm_mm=12.0)
    e_raw = np.sqrt(np.mean((raw.tia.array / truth - 1) ** 2))
    e_sm = np.sqrt(np.mean((sm.tia.array / truth - 1) ** 2))
    assert e_sm < 0.5 * e_raw
    # normalised convolution of a constant inside the mask is the constant (no edge loss)
    const = [Volume(np.full(g.shape, math.exp(-0.03 * t)), g, unit="MBq") for t in T4]
    m = np.zeros(g.shape, bool)
    m[2:9, 3:10, 1:8] = True
    rc = fit_voxels(T4, const, m, models=("mono",), smooth_fwhm_mm=12.0)
    np.testing.assert_allclose(rc.tia.array[m], truth, rtol=1e-6)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("kwargs", "exc", "field"), [
    ({"times_h": [4.0]}, InputError, "times_h"),
    ({"times_h": [4.0, 24.0, 24.0, 168.0]}, TimeOrderError, "times_h"),
    ({"times_h": [-1.0, 24.0, 96.0, 168.0]}, InputError, "times_h"),
    ({"images": np.ones((3, 5))}, InputError, "images"),
    ({"images": "x"}, InputError, "images"),
    ({"mask": np.ones(3, bool)}, InputError, "mask"),
    ({"models": ("quad",)}, InputError, "models"),
    ({"models": ("mono", "trapezoid")}, InputError, "models"),
    ({"relative_sigma": 0.0}, InputError, "relative_sigma"),
    ({"criterion": "r2"}, InputError, "criterion"),
    ({"max_iter": 0}, InputError, "max_iter"),
    ({"n_threads": 0}, InputError, "n_threads"),
    ({"rate_prior": 0.01}, InputError, "rate_prior"),
    ({"rate_prior": (-0.01, 0.1)}, InputError, "rate_prior[0]"),
    ({"rate_prior": (0.01, 0.0)}, InputError, "rate_prior[1]"),
    ({"rate_prior": (np.ones(3), 0.1)}, InputError, "rate_prior[0]"),
    ({"smooth_fwhm_mm": 5.0}, InputError, "spacing_mm"),
    ({"smooth_fwhm_mm": -5.0}, InputError, "smooth_fwhm_mm"),
    ({"nuclide": "Xx-999"}, InputError, "nuclide"),
])
def test_validation(kwargs, exc, field):
    args = {"times_h": T4, "images": np.ones((4, 5))}
    args.update(kwargs)
    t, img = args.pop("times_h"), args.pop("images")
    with pytest.raises(exc, match=field.replace("[", r"\[").replace("]", r"\]")) as e:
        fit_voxels(t, img, **args)
    _one_line(e, field)


def test_validation_non_finite_and_volume_units():
    img = np.ones((4, 5))
    img[2, 1] = np.nan
    with pytest.raises(InputError, match="non-finite") as e:
        fit_voxels(T4, img)
    _one_line(e, "images")
    g = Geometry((1, 1, 2), (4.0, 4.0, 4.0))
    vols = [Volume(np.ones(g.shape), g, unit="counts") for _ in T4]
    with pytest.raises(UnitError, match="images.unit") as e:
        fit_voxels(T4, vols)
    _one_line(e, "images.unit")
    with pytest.raises(InputError, match="images") as e:
        fit_voxels(T4, vols[:3])
    _one_line(e, "images")
    g2 = Geometry((1, 1, 2), (5.0, 4.0, 4.0))
    mixed = [Volume(np.ones(g.shape), g, unit="MBq") for _ in T4[:3]]
    mixed.append(Volume(np.ones(g2.shape), g2, unit="MBq"))
    with pytest.raises(InputError, match="spacing_mm") as e:
        fit_voxels(T4, mixed)
    _one_line(e, "spacing_mm")


# ---------------------------------------------------------------- virtual patient
def test_virtual_patient_kidneys_liver_spleen():
    # truth: theradose.phantoms.tia_map (closed-form integral of the compartment model);
    # activity maps at 4 times, true labels, no imaging. The phantom's voxel TACs are sums of
    # several exponentials (blood + two tissue compartments), so mono/bi_uptake fits carry a
    # model error: loose bound on the NRMSE (observed 1-2 %, printed).
    from theradose.phantoms import activity_map, reference_phantom, sample_kinetics, tia_map
    from theradose.phantoms._kinetics import subtissue_weights

    anat = reference_phantom("adult_male", voxel_mm=6.0)
    n_vox = np.bincount(anat.labels.array.ravel(), minlength=max(anat.labels.names) + 1)
    vml = anat.geometry.voxel_volume_ml
    regions = {n: max(float(n_vox[v]) * vml, vml) for v, n in anat.labels.names.items()}
    kin = sample_kinetics("psma", np.random.default_rng(3), regions)
    w = subtissue_weights(anat.labels, np.random.default_rng(4))
    imgs = np.stack([activity_map(anat.labels, w, kin, t, agent="therapeutic", a0_mbq=7400.0)
                     for t in T4])
    truth = tia_map(anat.labels, w, kin, agent="therapeutic", a0_mbq=7400.0)
    for organ in ("kidney_left", "kidney_right", "liver", "spleen"):
        m = anat.organ_mask(organ)
        r = fit_voxels(T4, imgs, m)
        err = r.tia[m] / truth[m] - 1.0
        nrmse = float(np.sqrt(np.mean(err**2)))
        print(f"{organ}: {m.sum()} voxels, NRMSE {nrmse:.4f}, median {np.median(err):+.4f}")
        assert nrmse < 0.08
        assert np.all(r.model_index[m] >= 0)
