"""Local alignment of lesions in the GTM: fitted translations and totals with moved VOIs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from theradose.errors import InputError
from theradose.segmentation import (
    LocalShifts,
    fit_local_shifts,
    gtm_correct_series,
    gtm_regions,
    gtm_voi_totals,
    shifted_voi_totals,
)
from theradose.segmentation._gtm import FWHM_PER_SIGMA
from theradose.segmentation._gtm_local import _move
from theradose.segmentation._gtm_regions import BACKGROUND

SPACING = (4.0, 4.0, 4.0)  # x, y, z mm
SHAPE = (36, 36, 44)  # z, y, x
FWHM = 12.0
VML = 0.064  # mL per voxel
LESION_C = (86.0, 70.0, 72.0)  # x, y, z mm: lesion centre as drawn
LESION_R = 9.0  # mm: 3.05 mL
BLADDER_C = (86.0, 70.0, 110.0)
BLADDER_R = 22.0


def blur(image: np.ndarray) -> np.ndarray:
    """The camera, written independently of the code under test."""
    return gaussian_filter(image, FWHM / FWHM_PER_SIGMA / SPACING[0], mode="constant")


def ball(centre_mm, radius_mm: float, sub: int = 5) -> np.ndarray:
    """Exact-ish fractional occupancy of a ball (``sub``³ sub-samples per voxel)."""
    axes = [(np.arange(n * sub) + 0.5) * (h / sub) for n, h in zip(SHAPE, SPACING[::-1],
                                                                    strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    cx, cy, cz = centre_mm
    inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm ** 2
    return inside.reshape(SHAPE[0], sub, SHAPE[1], sub, SHAPE[2], sub).mean(axis=(1, 3, 5))


@pytest.fixture(scope="module")
def scene():
    """A 3 mL lesion (1000 Bq/mL) 8 mm below a hot 'bladder' (2000 Bq/mL) in a body (20).

    The VOIs are drawn at the positions above; ``image(s)`` images the lesion translated by
    ``s`` (mm, x y z), as a residual misregistration would show it.
    """
    lesion = ball(LESION_C, LESION_R) > 0.5
    bladder = ball(BLADDER_C, BLADDER_R) > 0.5
    body = np.ones(SHAPE, bool)
    body[:, :, :2] = body[:, :, -2:] = False
    labels = np.zeros(SHAPE, np.int16)
    labels[bladder] = 2
    labels[lesion] = 1
    names = {1: "lesion_1", 2: "urinary_bladder"}

    def image(s_mm=(0.0, 0.0, 0.0), c_lesion=1000.0):
        occ = ball(np.add(LESION_C, s_mm), LESION_R)
        bl = bladder.astype(float)
        truth = np.where(body, 20.0, 0.0) * (1 - bl) * (1 - occ) + 2000.0 * bl * (1 - occ) \
            + c_lesion * occ
        return blur(truth), float(c_lesion * occ.sum() * VML)

    regions = gtm_regions(labels, names, body, SPACING, FWHM, guard_mm=0)
    return regions, image


def test_fit_recovers_a_known_translation(scene):
    regions, image = scene
    s_true = np.array([3.2, -2.1, 4.4])  # mm, x y z: sub-voxel on a 4 mm grid
    imgs = [image()[0], image(s_true)[0]]
    got = fit_local_shifts(imgs, regions, SPACING, ["lesion_1"])
    assert isinstance(got, LocalShifts)
    assert got.accepted["lesion_1"].all()
    np.testing.assert_allclose(got.shifts_mm["lesion_1"][0], 0.0, atol=0.3)
    np.testing.assert_allclose(got.shifts_mm["lesion_1"][1], s_true, atol=0.5)
    assert got.rms_ratio["lesion_1"][1] < 0.2  # the translation explains the image
    rec = got.to_dict()["vois"]["lesion_1"]
    assert rec["accepted"] == [True, True] and len(rec["shift_mm"]) == 2


def test_totals_with_the_fitted_shift_recover_the_lesion(scene):
    regions, image = scene
    s_true = (3.2, -2.1, 4.4)
    img, true_total = image(s_true)
    plain = gtm_voi_totals([img], regions, SPACING)["lesion_1"][0]
    assert plain / true_total - 1 < -0.10  # 6 mm off costs a 3 mL lesion > 10 % (-12 %)
    fit = fit_local_shifts([img], regions, SPACING, ["lesion_1"])
    got = shifted_voi_totals([img], regions, SPACING, fit)["lesion_1"][0]
    assert got == pytest.approx(true_total, rel=0.03)


def test_zero_shift_is_the_plain_gtm(scene):
    regions, image = scene
    img = image((2.0, 0.0, 0.0))[0]
    plain = gtm_voi_totals([img, 0.5 * img], regions, SPACING)
    same = shifted_voi_totals([img, 0.5 * img], regions, SPACING,
                              {"lesion_1": np.zeros((2, 3))})
    for k in plain:
        np.testing.assert_allclose(same[k], plain[k], rtol=1e-10)


def _rebuilt_totals(regions, img, moves) -> dict[str, float]:
    """The reference: every region moved on whole arrays, the GTM solved from scratch."""
    src = {k: v.astype(float) for k, v in regions.sources.items()}
    roi = {k: v.astype(float) for k, v in regions.rois.items()}
    for voi, s_mm in moves.items():
        s_vox = np.asarray(s_mm)[::-1] / np.asarray(SPACING)[::-1]
        _move(src, [voi], s_vox)
        _move(roi, [voi], s_vox)
    c = gtm_correct_series([img], src, SPACING, FWHM, rois=roi)
    out: dict[str, float] = {}
    for k in src:
        o = regions.owner[k]
        out[o] = out.get(o, 0.0) + float(c[k][0]) * src[k].sum() * VML
    return out


def test_local_update_equals_the_full_gtm_of_the_moved_regions(scene):
    # the box-local update of the transfer matrix against the GTM rebuilt on whole arrays
    regions, image = scene
    s_mm = np.array([2.6, 1.3, -3.7])
    img = image(s_mm)[0]
    got = shifted_voi_totals([img], regions, SPACING, {"lesion_1": s_mm[None]})
    full = _rebuilt_totals(regions, img, {"lesion_1": s_mm})  # the bladder: core and shell
    assert set(full) == set(got)
    for o, v in full.items():
        assert got[o][0] == pytest.approx(v, rel=1e-9, abs=1e-6)


def test_moved_regions_still_partition(scene):
    regions, _ = scene
    roi = {k: v.astype(float) for k, v in regions.rois.items()}
    before = sum(roi.values())
    _move(roi, ["lesion_1"], np.array([0.7, -1.2, 0.4]))
    np.testing.assert_allclose(sum(roi.values()), before, atol=1e-12)
    assert roi["lesion_1"].sum() == pytest.approx(regions.rois["lesion_1"].sum(), rel=0.02)


def test_a_cold_lesion_is_not_moved(scene):
    regions, image = scene
    img = image((4.0, 0.0, 0.0), c_lesion=5.0)[0]  # colder than the body around it
    got = fit_local_shifts([img], regions, SPACING, ["lesion_1"])
    assert not got.accepted["lesion_1"][0]
    assert "not hotter" in got.notes["lesion_1"][0]
    np.testing.assert_array_equal(got.shifts_mm["lesion_1"][0], 0.0)


def test_bad_input_is_named(scene):
    regions, image = scene
    img = image()[0]
    with pytest.raises(InputError) as err:
        fit_local_shifts([img], regions, SPACING, ["tumour_9"])
    assert err.value.field == "vois" and "tumour_9" in str(err.value)
    with pytest.raises(InputError) as err:
        fit_local_shifts([img], regions, SPACING, [BACKGROUND])
    assert err.value.field == "vois"
    with pytest.raises(InputError) as err:
        shifted_voi_totals([img], regions, SPACING, {"lesion_1": np.zeros((2, 3))})
    assert err.value.field == "shifts"
    with pytest.raises(InputError) as err:
        fit_local_shifts([img[:-1]], regions, SPACING, ["lesion_1"])
    assert err.value.field == "images"
    with pytest.raises(InputError) as err:
        fit_local_shifts([img], regions, SPACING, ["lesion_1"], max_shift_mm=0)
    assert err.value.field == "max_shift_mm"


@pytest.fixture(scope="module")
def pair():
    """Two 3 mL lesions 22 mm apart (within each other's fitting window) in a body (20)."""
    c1, c2 = (76.0, 70.0, 72.0), (98.0, 70.0, 72.0)
    l1, l2 = ball(c1, LESION_R) > 0.5, ball(c2, LESION_R) > 0.5
    body = np.ones(SHAPE, bool)
    labels = np.zeros(SHAPE, np.int16)
    labels[l1], labels[l2] = 1, 2
    names = {1: "lesion_1", 2: "lesion_2"}

    def image(s_mm):
        o1, o2 = ball(np.add(c1, s_mm), LESION_R), ball(np.add(c2, s_mm), LESION_R)
        truth = 20.0 * (1 - o1 - o2) + 800.0 * o1 + 1200.0 * o2
        return blur(truth), (800.0 * o1.sum() * VML, 1200.0 * o2.sum() * VML)

    return gtm_regions(labels, names, body, SPACING, FWHM, guard_mm=0), image


def test_neighbouring_lesions_are_fitted_together(pair):
    # both moved by the same local deformation: each fit sees the other at its current shift
    regions, image = pair
    s_true = np.array([-2.7, 3.1, 2.2])
    img, (t1, t2) = image(s_true)
    got = fit_local_shifts([img], regions, SPACING, ["lesion_1", "lesion_2"])
    for v in ("lesion_1", "lesion_2"):
        assert got.accepted[v][0]
        np.testing.assert_allclose(got.shifts_mm[v][0], s_true, atol=0.5)
    tot = shifted_voi_totals([img], regions, SPACING, got)
    assert tot["lesion_1"][0] == pytest.approx(t1, rel=0.03)
    assert tot["lesion_2"][0] == pytest.approx(t2, rel=0.03)


def test_overlapping_update_boxes_are_merged_exactly(pair):
    # two moved VOIs whose update boxes interact: one merged box, equal to the full rebuild
    regions, image = pair
    s1, s2 = np.array([2.0, -1.0, 1.5]), np.array([-1.5, 2.5, -1.0])
    img = image((0.0, 0.0, 0.0))[0]
    got = shifted_voi_totals([img], regions, SPACING, {"lesion_1": s1[None],
                                                      "lesion_2": s2[None]})
    full = _rebuilt_totals(regions, img, {"lesion_1": s1, "lesion_2": s2})
    for o, v in full.items():
        assert got[o][0] == pytest.approx(v, rel=1e-9, abs=1e-6)
