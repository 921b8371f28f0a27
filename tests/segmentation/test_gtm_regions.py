"""VOI-level GTM for organ activity: core/shell sources, margin ROIs, guard bands."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift

from theradose.errors import InputError
from theradose.segmentation import gtm_correct_series, gtm_regions, gtm_voi_totals
from theradose.segmentation._gtm import FWHM_PER_SIGMA
from theradose.segmentation._gtm_regions import BACKGROUND

SPACING = (4.0, 4.0, 4.0)  # x, y, z mm
SHAPE = (40, 40, 56)  # z, y, x
FWHM = 12.0
VML = 0.064  # mL per voxel


def blur(image: np.ndarray) -> np.ndarray:
    """The camera, written independently of the code under test."""
    s = FWHM / FWHM_PER_SIGMA / SPACING[0]
    return gaussian_filter(image, s, mode="constant")


@pytest.fixture(scope="module")
def phantom():
    """A 'kidney' (hot 8 mm cortex, cool medulla) touching a cold 'spleen', in a body.

    Concentrations (Bq/mL): cortex 1000, medulla 200 (5:1, a renal pattern), spleen 100,
    body 20; both VOIs are whole organs (the GTM does not know the cortex).
    """
    z, y, x = np.meshgrid(*(np.arange(n) * 4.0 + 2.0 for n in SHAPE), indexing="ij")
    body = ((x - 112) / 88) ** 2 + ((y - 80) / 58) ** 2 + ((z - 80) / 58) ** 2 <= 1
    r = np.sqrt((x - 84) ** 2 + (y - 80) ** 2 + (z - 80) ** 2)
    kidney = r <= 26
    medulla = r <= 18
    spleen = (np.abs(x - 131) <= 21) & (np.abs(y - 80) <= 22) & (np.abs(z - 80) <= 22) & ~kidney
    truth = np.where(body, 20.0, 0.0)
    truth[kidney] = 1000.0
    truth[medulla] = 200.0
    truth[spleen] = 100.0
    labels = np.zeros(SHAPE, np.int16)
    labels[kidney] = 1
    labels[spleen] = 2
    names = {1: "kidney", 2: "spleen"}
    true_tot = {"kidney": truth[kidney].sum() * VML, "spleen": truth[spleen].sum() * VML}
    return truth, labels, names, body, true_tot


def _uniform_gtm(image, labels, names, body):
    """The plain Rousset GTM on the VOIs themselves (uniform regions, ROI = region)."""
    masks = {n: (labels == v).astype(float) for v, n in names.items()}
    masks["bg"] = (body & (labels == 0)).astype(float)
    c = gtm_correct_series([image], masks, SPACING, FWHM)
    return {n: float(c[n][0]) * masks[n].sum() * VML for n in names.values()}


def test_core_shell_and_margin_recover_a_non_uniform_organ(phantom):
    truth, labels, names, body, true_tot = phantom
    image = blur(truth)
    plain = _uniform_gtm(image, labels, names, body)
    # the uniform-organ assumption fails for a hot cortex: kidney low (-9.7 %), spleen high
    # (+3.9 %)
    assert plain["kidney"] / true_tot["kidney"] - 1 < -0.05
    assert plain["spleen"] / true_tot["spleen"] - 1 > 0.03
    reg = gtm_regions(labels, names, body, SPACING, FWHM)
    assert reg.settings["split"] == ["kidney", "spleen"]  # both cores exceed (2 FWHM)^3
    got = {k: float(v[0]) for k, v in gtm_voi_totals([image], reg, SPACING).items()}
    assert got["kidney"] == pytest.approx(true_tot["kidney"], rel=0.02)
    assert got["spleen"] == pytest.approx(true_tot["spleen"], rel=0.04)


def test_roi_partition_conserves_the_image_total(phantom):
    # ROIs share the whole field of view: Σ corrected totals = Σ image (the blur keeps the
    # total: the body lies > 4 sigma inside the array)
    truth, labels, names, body, _ = phantom
    image = blur(truth)
    reg = gtm_regions(labels, names, body, SPACING, FWHM, shell_mm=0)
    roi_sum = sum(r.astype(int) for r in reg.rois.values())
    assert roi_sum.min() == 1 and roi_sum.max() == 1
    tot = gtm_voi_totals([image], reg, SPACING)
    assert sum(float(v[0]) for v in tot.values()) == pytest.approx(image.sum() * VML, rel=1e-9)
    assert BACKGROUND in tot


def test_margin_rois_tolerate_a_misregistration(phantom):
    # the image shifted by 1 voxel (4 mm) against the VOIs, away from the spleen
    truth, labels, names, body, true_tot = phantom
    image = blur(shift(truth, (0, 0, -1), order=0))
    plain = _uniform_gtm(image, labels, names, body)
    reg = gtm_regions(labels, names, body, SPACING, FWHM)
    got = gtm_voi_totals([image], reg, SPACING)
    err_plain = abs(plain["kidney"] / true_tot["kidney"] - 1)
    err_roi = abs(float(got["kidney"][0]) / true_tot["kidney"] - 1)
    assert err_roi < 0.04  # +3.3 % (plain GTM: -12.6 %)
    assert err_roi < err_plain / 2


def test_guard_band_keeps_a_hot_neighbour_out_of_a_cold_voi(phantom):
    # the kidney's counts shifted 1 voxel INTO the spleen: without a guard the spleen reads
    # far too high; the guard band (reference image = the same image) leaves that layer out
    truth, labels, names, body, true_tot = phantom
    image = blur(shift(truth, (0, 0, 1), order=0))
    plain = gtm_regions(labels, names, body, SPACING, FWHM)
    guarded = gtm_regions(labels, names, body, SPACING, FWHM, reference_image=image)
    assert guarded.settings["guarded"] == {"spleen": ["kidney"]}
    e0 = float(gtm_voi_totals([image], plain, SPACING)["spleen"][0]) / true_tot["spleen"] - 1
    e1 = float(gtm_voi_totals([image], guarded, SPACING)["spleen"][0]) / true_tot["spleen"] - 1
    assert e0 > 0.25  # +31 % without, +10 % with the guard band
    assert abs(e1) < 0.5 * e0
    # the kidney's own ROIs are not cut (the spleen is colder)
    for key in ("kidney:core", "kidney:shell"):
        np.testing.assert_array_equal(guarded.rois[key], plain.rois[key])


def test_small_vois_are_not_split_and_margin_zero_keeps_the_vois(phantom):
    _, labels, names, body, _ = phantom
    reg = gtm_regions(labels, names, body, SPACING, FWHM, roi_margin_mm=0, min_core_ml=1e6)
    assert reg.settings["split"] == []
    np.testing.assert_array_equal(reg.rois["kidney"], labels == 1)
    assert reg.owner == {"kidney": "kidney", "spleen": "spleen", BACKGROUND: BACKGROUND}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"roi_margin_mm": -1.0}, "roi_margin_mm"),
    ({"shell_mm": float("nan")}, "shell_mm"),
    ({"fwhm_mm": 0.0}, "fwhm_mm"),
    ({"reference_image": np.zeros((2, 2, 2))}, "reference_image"),
])
def test_bad_arguments_name_the_field(phantom, kwargs, field):
    _, labels, names, body, _ = phantom
    args = {"fwhm_mm": FWHM, **kwargs}
    with pytest.raises(InputError) as err:
        gtm_regions(labels, names, body, SPACING, **args)
    assert err.value.field == field


def test_no_voi_and_shape_mismatch_are_errors(phantom):
    _, labels, names, body, _ = phantom
    with pytest.raises(InputError, match="no VOI"):
        gtm_regions(np.zeros_like(labels), names, body, SPACING, FWHM)
    with pytest.raises(InputError, match="one shape"):
        gtm_regions(labels, names, body[:-1], SPACING, FWHM)
