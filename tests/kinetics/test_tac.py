"""Tests of per-VOI time-activity curves (theradose.kinetics._tac)."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest

from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning, UnitError
from theradose.io import Administration, Study, TimePoint
from theradose.kinetics._tac import TACTable, organ_tacs
from theradose.volume import Geometry, LabelMap, Volume

INJ = datetime(2024, 3, 1, 8, 0, 0)
ADM = Administration("Lu-177", 7400.0, INJ, "[177Lu]Lu-PSMA-617")

# Label grid: 40^3 voxels of 2 mm, origin (0, 0, 0) = centre of voxel 0 (edges at -1, 1, ...).
# Cube VOI: indices 10..19 on every axis -> physical extent [19, 39) mm, 20 mm side, 8 mL.
LAB_GEOM = Geometry((40, 40, 40), (2.0, 2.0, 2.0))
CUBE_ML = 8.0
# Emission grid: 5 mm voxels, first centre at 2.5 mm -> edges at 0, 5, 10, ...; so along each
# axis the cube [19, 39) covers 1 mm (f = 0.2) of voxel 3 [15, 20), voxels 4-6 fully and
# 4 mm (f = 0.8) of voxel 7 [35, 40).
EM_GEOM = Geometry((12, 12, 12), (5.0, 5.0, 5.0), (2.5, 2.5, 2.5))
AXIS_FRAC = np.array([0.0, 0.0, 0.0, 0.2, 1.0, 1.0, 1.0, 0.8, 0.0, 0.0, 0.0, 0.0])


def _labels() -> LabelMap:
    arr = np.zeros(LAB_GEOM.shape, dtype=np.uint8)
    arr[10:20, 10:20, 10:20] = 1
    arr[2:6, 2:6, 2:6] = 2  # a second VOI: 8 mm cube near the corner, 0.512 mL
    return LabelMap(arr, LAB_GEOM, names={1: "cube", 2: "corner"})


def _em(arr, unit="Bq/mL", geom=EM_GEOM, name="spect.nii.gz") -> Volume:
    return Volume(np.asarray(arr, dtype=np.float64), geom, unit=unit, modality="NM",
                  meta={"source_file": name})


def _study(images, times=(24.0, 96.0), labels=None) -> Study:
    tps = tuple(TimePoint(im, None, t) for im, t in zip(images, times, strict=True))
    return Study(tps, ADM, labels=labels)


def _one_line(exc: pytest.ExceptionInfo, field: str, file: str | None = None) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert exc.value.field == field and field in msg
    if file is not None:
        assert file in msg


# ------------------------------------------------------------------ hand calculations
def test_uniform_activity_totals_equal_hand_calculation():
    # Uniform C over the emission FOV: A = C x V_VOI (hand calculation: 8 mL x C).
    c1, c2 = 2.0e5, 5.0e4  # Bq/mL
    study = _study([_em(np.full(EM_GEOM.shape, c1)), _em(np.full(EM_GEOM.shape, c2))],
                   labels=_labels())
    t = organ_tacs(study, vois=["cube"])
    assert isinstance(t, TACTable)
    np.testing.assert_allclose(t.times_h, [24.0, 96.0])
    np.testing.assert_allclose(t.activity_mbq["cube"], [c1 * CUBE_ML * 1e-6, c2 * CUBE_ML * 1e-6],
                               rtol=1e-12)
    np.testing.assert_allclose(t.concentration_bq_ml["cube"], [c1, c2], rtol=1e-12)
    assert t.volume_ml["cube"] == pytest.approx(CUBE_ML, rel=1e-12)
    # Conservation: the fractional occupancy sums to the VOI volume on the label grid.
    np.testing.assert_allclose(t.occupied_volume_ml["cube"], CUBE_ML, rtol=1e-12)
    np.testing.assert_allclose(t.coverage["cube"], 1.0, rtol=1e-12)


def test_fractional_occupancy_matches_overlap_by_hand():
    # The occupancy of emission voxel (z, y, x) is the product of the per-axis overlaps
    # AXIS_FRAC (hand-computed from the voxel edges above).
    ref = AXIS_FRAC[:, None, None] * AXIS_FRAC[None, :, None] * AXIS_FRAC[None, None, :]
    assert ref.sum() * EM_GEOM.voxel_volume_ml == pytest.approx(CUBE_ML)
    # Random concentrations: A = Σ f C V_vox with the hand fractions.
    rng = np.random.default_rng(3)
    c = rng.uniform(0, 1e5, EM_GEOM.shape)
    t = organ_tacs(_study([_em(c), _em(2 * c)], labels=_labels()), vois=["cube"])
    a_ref = float(np.sum(ref * c)) * EM_GEOM.voxel_volume_ml * 1e-6
    np.testing.assert_allclose(t.activity_mbq["cube"], [a_ref, 2 * a_ref], rtol=1e-12)
    np.testing.assert_allclose(t.concentration_bq_ml["cube"][0], np.sum(ref * c) / ref.sum(),
                               rtol=1e-12)


def test_single_hot_edge_voxel():
    # Activity only in emission voxel (z, y, x) = (5, 5, 3): fraction 1 x 1 x 0.2 = 0.2 inside
    # the cube, so A = 0.2 x C x 0.125 mL (hand calculation).
    c = np.zeros(EM_GEOM.shape)
    c[5, 5, 3] = 4.0e6
    t = organ_tacs(_study([_em(c), _em(c)], labels=_labels()), vois=["cube"])
    assert t.activity_mbq["cube"][0] == pytest.approx(0.2 * 4.0e6 * 0.125 * 1e-6, rel=1e-12)


def test_activity_per_voxel_images_and_dict_masks():
    # Images in MBq per voxel (extensive): C = A / V_vox; total unchanged by the unit.
    a_vox = 0.01  # MBq per 0.125 mL voxel -> 8e4 Bq/mL
    img = _em(np.full(EM_GEOM.shape, a_vox), unit="MBq")
    # A fractional mask on its own (coarser, shifted) grid: 0.5 over a 4x4x4 block of 4 mm
    # voxels -> VOI volume 0.5 x 64 x 0.064 mL = 2.048 mL.
    g = Geometry((10, 10, 10), (4.0, 4.0, 4.0), (1.0, 1.0, 1.0))
    m = np.zeros(g.shape)
    m[2:6, 2:6, 2:6] = 0.5
    t = organ_tacs(_study([img, img]), {"half": Volume(m, g, unit="1")})
    assert t.volume_ml["half"] == pytest.approx(2.048, rel=1e-12)
    np.testing.assert_allclose(t.activity_mbq["half"], 2.048 * a_vox / 0.125, rtol=1e-12)
    np.testing.assert_allclose(t.concentration_bq_ml["half"], a_vox * 1e6 / 0.125, rtol=1e-12)
    d = t.to_dict()
    json.dumps(d)
    assert d["vois"]["half"]["volume_ml"] == pytest.approx(2.048)
    assert t.tac("half")["activity_mbq"][1] == pytest.approx(2.048 * a_vox / 0.125)


def test_rotated_emission_grid_conserves_occupied_volume():
    # Emission grid with axes permuted (x <-> y) takes the sub-voxel deposition path; the mask
    # integral is still conserved (sub-voxels are deposited exactly once).
    d = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    geom = Geometry((12, 12, 12), (5.0, 5.0, 5.0), (2.5, 2.5, 57.5), d)
    img = _em(np.full(geom.shape, 1.0e5), geom=geom)
    t = organ_tacs(_study([img, img], labels=_labels()), vois=["cube"])
    assert t.occupied_volume_ml["cube"][0] == pytest.approx(CUBE_ML, rel=1e-9)
    assert t.activity_mbq["cube"][0] == pytest.approx(1.0e5 * CUBE_ML * 1e-6, rel=1e-9)


# ------------------------------------------------------------------ validation
def test_counts_image_raises_unit_error():
    img = _em(np.ones(EM_GEOM.shape), unit="counts", name="raw_counts.dcm")
    with pytest.raises(UnitError, match="counts; calibrate") as e:
        organ_tacs(_study([img, img], labels=_labels()))
    _one_line(e, "unit", "raw_counts.dcm")


def test_non_activity_unit_raises():
    img = _em(np.ones(EM_GEOM.shape), unit="Gy", name="dose.nii.gz")
    with pytest.raises(UnitError, match="not an activity") as e:
        organ_tacs(_study([img, img], labels=_labels()))
    _one_line(e, "unit", "dose.nii.gz")


def test_voi_outside_field_of_view_raises():
    far = Geometry((12, 12, 12), (5.0, 5.0, 5.0), (1000.0, 1000.0, 1000.0))
    img = _em(np.ones(far.shape), geom=far, name="far.nii.gz")
    with pytest.raises(GeometryMismatchError, match="outside the emission field of view") as e:
        organ_tacs(_study([img, img], labels=_labels()), vois=["cube"])
    _one_line(e, "vois", "far.nii.gz")


def test_partial_field_of_view_raises_or_warns():
    # Emission grid covering x edges [0, 30) only: the cube [19, 39) is covered 11/20 = 55 %.
    g = Geometry((12, 12, 6), (5.0, 5.0, 5.0), (2.5, 2.5, 2.5))
    img = _em(np.full(g.shape, 1.0e5), geom=g, name="half.nii.gz")
    study = _study([img, img], labels=_labels())
    with pytest.raises(GeometryMismatchError, match="only 55.0% of VOI 'cube'") as e:
        organ_tacs(study, vois=["cube"])
    _one_line(e, "vois", "half.nii.gz")
    with pytest.warns(TheradoseWarning, match="55.0% of VOI 'cube'"):
        t = organ_tacs(study, vois=["cube"], min_coverage=0.5)
    np.testing.assert_allclose(t.coverage["cube"], 0.55, rtol=1e-12)
    np.testing.assert_allclose(t.activity_mbq["cube"], 1.0e5 * CUBE_ML * 0.55 * 1e-6, rtol=1e-12)


@pytest.mark.parametrize("kwargs, field, match", [
    ({"vois": ["kidney"]}, "vois", r"unknown VOI\(s\) \['kidney'\]"),
    ({"vois": []}, "vois", "no VOIs to evaluate"),
    ({"min_coverage": 0.0}, "min_coverage", r"in \(0, 1\]"),
])
def test_argument_validation(kwargs, field, match):
    img = _em(np.ones(EM_GEOM.shape))
    with pytest.raises(InputError, match=match) as e:
        organ_tacs(_study([img, img], labels=_labels()), **kwargs)
    _one_line(e, field)


def test_missing_or_bad_labels():
    img = _em(np.ones(EM_GEOM.shape))
    with pytest.raises(InputError, match="no label map") as e:
        organ_tacs(_study([img, img]))
    _one_line(e, "labels")
    with pytest.raises(InputError, match="must be a Volume") as e:
        organ_tacs(_study([img, img]), {"a": np.ones((2, 2, 2))})
    _one_line(e, "labels")
    bad = Volume(np.full((2, 2, 2), 2.0), LAB_GEOM.__class__((2, 2, 2), (1.0, 1.0, 1.0)))
    with pytest.raises(InputError, match=r"values in \[0, 1\]") as e:
        organ_tacs(_study([img, img]), {"a": bad})
    _one_line(e, "labels")
    with pytest.raises(InputError, match="LabelMap or a dict") as e:
        organ_tacs(_study([img, img]), [1, 2])
    _one_line(e, "labels")
    empty = LabelMap(np.zeros((4, 4, 4), dtype=np.uint8), Geometry((4, 4, 4), (1, 1, 1)),
                     names={1: "ghost"})
    with pytest.raises(InputError, match="'ghost' has no voxels") as e:
        organ_tacs(_study([img, img]), empty)
    _one_line(e, "vois")
    with pytest.raises(InputError, match="must be a theradose.io.Study") as e:
        organ_tacs("study", _labels())
    _one_line(e, "study")
    t = organ_tacs(_study([img, img], labels=_labels()))
    with pytest.raises(InputError, match="no VOI 'liver'") as e:
        t.tac("liver")
    _one_line(e, "voi")


def test_inputs_not_modified():
    lab = _labels()
    c = np.random.default_rng(0).uniform(0, 1, EM_GEOM.shape)
    img = _em(c.copy())
    before = lab.array.copy()
    organ_tacs(_study([img, img], labels=lab))
    np.testing.assert_array_equal(lab.array, before)
    np.testing.assert_array_equal(img.array, c)


def test_activity_sigma_propagated_from_voxel_sigma():
    # Independent voxels: σ_A = sqrt(Σ f_v² σ_v²) V_vox with the hand fractions (uniform σ_v);
    # a time point without sigma gives NaN, and no sigma at all gives None.
    ref = AXIS_FRAC[:, None, None] * AXIS_FRAC[None, :, None] * AXIS_FRAC[None, None, :]
    c = np.full(EM_GEOM.shape, 1.0e5)
    with_sigma = Volume(c, EM_GEOM, unit="kBq/mL", sigma=np.full(EM_GEOM.shape, 3.0))
    t = organ_tacs(_study([with_sigma, _em(c)], labels=_labels()), vois=["cube"])
    expected = np.sqrt(np.sum(ref**2)) * 3.0e3 * EM_GEOM.voxel_volume_ml * 1e-6
    assert t.activity_sigma_mbq["cube"][0] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(t.activity_sigma_mbq["cube"][1])
    assert json.loads(json.dumps(t.to_dict()))["vois"]["cube"]["activity_sigma_mbq"][1] is None
    assert organ_tacs(_study([_em(c), _em(c)], labels=_labels())).activity_sigma_mbq is None


# ------------------------------------------------------------------ margins, per-time-point VOIs
def test_margin_recovers_blurred_activity_of_isolated_voi():
    # A 4 MBq point-like source spread uniformly over the cube and a 6 mm shell around it (what
    # blurring does to counts: totals are conserved). The true VOI sees only the cube's share;
    # a 6 mm margin holds everything (conservation), so A = 4 MBq exactly.
    lab = _labels()
    geom = Geometry((40, 40, 40), (2.0, 2.0, 2.0))
    big = np.zeros(geom.shape)
    big[7:23, 7:23, 7:23] = 1.0  # cube (10..19) grown by 3 voxels = 6 mm (Chebyshev)
    total_mbq = 4.0
    conc = big * total_mbq * 1e6 / (big.sum() * geom.voxel_volume_ml)  # Bq/mL
    em = _em(conc, geom=geom)
    study = _study([em, em], labels=lab)
    plain = organ_tacs(study, vois=["cube"])
    cube_share = CUBE_ML / (big.sum() * geom.voxel_volume_ml)
    np.testing.assert_allclose(plain.activity_mbq["cube"], total_mbq * cube_share, rtol=1e-12)
    # Euclidean 6 mm margin misses the corners of the 6 mm Chebyshev shell: use 6*sqrt(3) mm.
    grown = organ_tacs(study, vois=["cube"], margin_mm=6.0 * np.sqrt(3.0))
    np.testing.assert_allclose(grown.activity_mbq["cube"], total_mbq, rtol=1e-12)
    # Concentration with a margin = activity / VOI volume (spill-out-recovered mean).
    np.testing.assert_allclose(grown.concentration_bq_ml["cube"], total_mbq * 1e6 / CUBE_ML)
    assert grown.volume_ml["cube"] == pytest.approx(CUBE_ML)
    assert grown.provenance["margin_mm"] == pytest.approx(6.0 * np.sqrt(3.0))


def test_exclusive_margin_stops_at_other_vois():
    # Two touching 2-voxel slabs; activity only in VOI "b". With an exclusive margin "a" does
    # not take b's activity; without exclusivity it does.
    arr = np.zeros((10, 10, 10), dtype=np.uint8)
    arr[2:8, 2:8, 2:4] = 1
    arr[2:8, 2:8, 4:6] = 2
    geom = Geometry((10, 10, 10), (2.0, 2.0, 2.0))
    lab = LabelMap(arr, geom, names={1: "a", 2: "b"})
    conc = np.where(arr == 2, 1e6, 0.0)  # Bq/mL in b only
    em = _em(conc, geom=geom)
    study = _study([em, em], labels=lab)
    excl = organ_tacs(study, margin_mm=2.0)
    assert excl.activity_mbq["a"][0] == 0.0
    incl = organ_tacs(study, margin_mm=2.0, exclusive_margin=False)
    # a's 2 mm margin takes one slab of b: 6 x 6 voxels x 8e-3 mL x 1e6 Bq/mL = 0.288 MBq
    assert incl.activity_mbq["a"][0] == pytest.approx(0.288, rel=1e-12)


def test_labels_per_time_point_follow_motion():
    # The object moves by 2 voxels between the time points; masks given per time point follow it.
    arr0 = np.zeros(LAB_GEOM.shape, dtype=np.uint8)
    arr0[10:20, 10:20, 10:20] = 1
    arr1 = np.roll(arr0, 2, axis=2)
    l0 = LabelMap(arr0, LAB_GEOM, names={1: "cube"})
    l1 = LabelMap(arr1, LAB_GEOM, names={1: "cube"})
    c = 1e5
    ems = [_em(np.where(a == 1, c, 0.0), geom=LAB_GEOM) for a in (arr0, arr1)]
    study = _study(ems)
    moved = organ_tacs(study, [l0, l1])
    np.testing.assert_allclose(moved.activity_mbq["cube"], c * CUBE_ML * 1e-6, rtol=1e-12)
    static = organ_tacs(study, l0)
    assert static.activity_mbq["cube"][1] == pytest.approx(c * CUBE_ML * 1e-6 * 0.8, rel=1e-12)
    with pytest.raises(InputError, match="label sets") as exc:
        organ_tacs(study, [l0])
    _one_line(exc, "labels")
    with pytest.raises(InputError, match="margin_mm") as exc:
        organ_tacs(study, l0, margin_mm=-1.0)
    _one_line(exc, "margin_mm")
