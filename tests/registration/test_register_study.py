"""register_study on synthetic studies: counts conserved, direction convention, PET, errors."""

from __future__ import annotations

import json
import warnings
from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk
from _reg_phantom import ct_volume, euler, grid, inverse_points, moved_points

from theradose.errors import (
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
    UnitError,
)
from theradose.io import Administration, Study, TimePoint
from theradose.registration import register_study
from theradose.volume import Geometry, Volume

ADM = Administration("Lu-177", 7400.0, datetime(2026, 1, 5, 9, 0))
#: Blob centre in the reference frame (mm, LPS): inside the body, away from the FOV edges.
BLOB = np.array([30.0, 10.0, -20.0])
T2 = euler(shift=(6.0, -4.0, 8.0))  # reference -> time point 2 points


def _emission(g: Geometry, transform=None, *, unit="counts", centre=BLOB, total=1e6,
              name="tp.nii.gz") -> Volume:
    """Gaussian blob (σ = 12 mm) of ``total`` counts (or Bq) at ``centre`` moved by T."""
    pts = g.voxel_centres()
    if transform is not None:
        pts = inverse_points(transform, pts)
    w = np.exp(-0.5 * np.sum((pts - centre) ** 2, axis=-1) / 12.0 ** 2)
    arr = w / w.sum() * total
    if unit == "Bq/mL":
        arr = arr / g.voxel_volume_ml
    return Volume(arr, g, unit=unit, modality="NM", meta={"source_file": name})


def _study(unit="counts", emission_spacing=(4.8, 4.8, 4.8), pet=False, **kw) -> Study:
    g_ct = grid()
    g_em = Geometry((34, 42, 56), emission_spacing, (-132.0, -98.4, -79.2))
    tps = (TimePoint(_emission(g_em, unit=unit, name="tp1.nii.gz", **kw), ct_volume(g_ct), 4.0),
           TimePoint(_emission(g_em, T2, unit=unit, name="tp2.nii.gz", **kw),
                     ct_volume(g_ct, T2, noise_hu=10.0), 24.0))
    pet_tp = None
    if pet:
        t_pet = euler(angles=(0.0, 0.03, -0.02), shift=(-7.0, 5.0, 3.0))
        g_pet = Geometry((40, 50, 66), (4.0, 4.0, 4.0), (-130.0, -98.0, -78.0))
        pet_tp = TimePoint(_emission(g_pet, t_pet, unit="Bq/mL", name="pet.nii.gz"),
                           ct_volume(g_ct, t_pet), 1.0)
    return Study(tps, ADM, pet=pet_tp, source="study_dir")


@pytest.fixture(scope="module")
def registered():
    with warnings.catch_warnings():
        warnings.simplefilter("error", TheradoseWarning)  # a good registration warns nothing
        return register_study(_study(pet=True))


def _com(v: Volume) -> np.ndarray:
    w = v.array / v.array.sum()
    return np.tensordot(w, v.geometry.voxel_centres(), axes=3)


def test_emission_moved_back_to_reference_position(registered):
    # analytic: the blob at BLOB (reference frame) appears at T2(BLOB) in time point 2; after
    # registration its centre of mass must be back at BLOB (checks the transform direction).
    tp2 = registered.study.time_points[1]
    assert np.allclose(_com(tp2.emission), BLOB, atol=1.0)
    assert registered.study.time_points[1].emission.geometry is registered.emission_grid
    # the reference time point is not interpolated at all
    assert np.array_equal(registered.study.time_points[0].emission.array,
                          _study().time_points[0].emission.array)


def test_counts_conserved_and_change_recorded(registered):
    # conservation law: the blob lies inside both fields of view (but for a Gaussian tail of
    # ~1e-7 in the corners), so the registered total must equal the acquired total (1e6 counts)
    # less the recorded outside fraction, to rounding; the change before renormalisation is
    # recorded in the quality record and in the history, and matches an independent sitk
    # resampling of the concentration (linear) through the returned transform.
    em = registered.study.time_points[1].emission
    assert em.unit == "counts"
    q = registered.quality[1]
    assert q.outside_fraction < 1e-6
    assert em.array.sum() == pytest.approx(1e6 * (1 - q.outside_fraction), rel=1e-12)
    src = _study().time_points[1].emission
    img = src.replace(array=src.array / src.geometry.voxel_volume_ml).to_sitk()
    ref = registered.emission_grid
    tgt = sitk.Image(*ref.size_xyz, sitk.sitkUInt8)
    tgt.SetOrigin(ref.origin_mm)
    tgt.SetSpacing(ref.spacing_mm)
    raw = sitk.GetArrayFromImage(sitk.Resample(img, tgt, registered.transforms[1],
                                               sitk.sitkLinear, 0.0, sitk.sitkFloat64))
    expected = raw.sum() * ref.voxel_volume_ml / (1e6 * (1 - q.outside_fraction)) - 1.0
    assert q.total_change == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert f"{q.total_change:+.3e}" in em.history[-1]
    assert em.meta["registration_total_change"] == q.total_change


def test_concentration_conserves_integral():
    # conservation law for Bq/mL images: ∫ c dV is kept (1e6 Bq), on a grid of another spacing
    reg = register_study(_study(unit="Bq/mL"), include_pet=False)
    em = reg.study.time_points[1].emission
    assert em.unit == "Bq/mL"
    q = reg.quality[1]
    assert q.outside_fraction < 1e-6
    assert em.total() == pytest.approx(1e6 * (1 - q.outside_fraction), rel=1e-12)
    assert reg.study.pet is None and reg.pet_transform is None


def test_quality_and_ct_on_reference_grid(registered):
    q0, q1 = registered.quality
    assert q0.ok and q0.metric_value is None and q0.ncc_after == pytest.approx(1.0)
    assert q1.ok and q1.ncc_after > q1.ncc_before and q1.ncc_after > 0.9
    assert q1.time_h == 24.0 and q1.metric_value < 0
    ref_ct = registered.study.time_points[0].ct
    assert registered.study.time_points[1].ct.geometry.same_as(ref_ct.geometry)
    # transform recovered: reference body points map where T2 maps them (< 1 mm)
    body = ref_ct.geometry.voxel_centres()[ref_ct.array > -500]
    err = np.linalg.norm(moved_points(registered.rigid_transforms[1], body)
                         - moved_points(T2, body), axis=1)
    assert err.mean() < 1.0
    d = registered.to_dict()
    json.dumps(d)  # JSON-serialisable
    assert d["time_points"][1]["ok"] is True and d["pet"]["ok"] is True


def test_pet_registered_on_own_voxel_size(registered):
    pet = registered.study.pet
    assert pet is not None and registered.pet_quality.ok
    assert pet.emission.spacing_mm == (4.0, 4.0, 4.0)
    f = registered.pet_quality.outside_fraction
    assert f < 1e-6
    assert pet.emission.total() == pytest.approx(1e6 * (1 - f), rel=1e-12)
    assert np.allclose(_com(pet.emission), BLOB, atol=1.0)


def test_write_transforms(registered, tmp_path):
    paths = registered.write_transforms(tmp_path)
    assert [p.name for p in paths] == ["transform_tp1.h5", "transform_tp2.h5", "transform_pet.h5"]
    back = sitk.ReadTransform(str(paths[1]))
    p = (10.0, -20.0, 30.0)
    assert np.allclose(back.TransformPoint(p), registered.transforms[1].TransformPoint(p))
    with pytest.raises(OutputExistsError, match="transform_tp1.h5: output exists"):
        registered.write_transforms(tmp_path)


def test_outside_fov_dropped_with_warning():
    # the time point 2 blob is centred 40 mm beyond the reference emission grid's +x edge
    # (x edge at 136.8 mm): half its counts (analytic, symmetric Gaussian) lie outside and are
    # dropped; the rest is conserved.
    g_ct = grid()
    g_ref = Geometry((34, 42, 56), (4.8, 4.8, 4.8), (-132.0, -98.4, -79.2))
    g_big = Geometry((34, 42, 80), (4.8, 4.8, 4.8), (-132.0, -98.4, -79.2))
    edge = g_ref.corners().max(axis=0)[0]
    em2 = _emission(g_big, centre=np.array([edge, 0.0, 0.0]), name="tp2.nii.gz")
    study = Study((TimePoint(_emission(g_ref), ct_volume(g_ct), 4.0),
                   TimePoint(em2, ct_volume(g_ct), 24.0)), ADM)
    with pytest.warns(TheradoseWarning, match=r"time_points\[1\] \(24 h\): 50\.\d% of the "
                                              "emission total lies outside"):
        reg = register_study(study)
    q = reg.quality[1]
    assert q.outside_fraction == pytest.approx(0.5, abs=0.01)
    assert reg.study.time_points[1].emission.array.sum() == \
        pytest.approx(1e6 * (1 - q.outside_fraction), rel=1e-12)


def test_poor_registration_flagged():
    # a "CT" of pure noise cannot be registered: NCC after < NCC_MIN -> ok False + warning
    g = grid(shape=(24, 32, 40), spacing=(6.0, 6.0, 6.0))
    noise = Volume(np.random.default_rng(0).normal(0, 300, g.shape).astype(np.float32), g,
                   unit="HU", modality="CT")
    g_em = Geometry((20, 24, 30), (7.0, 7.0, 7.0), (-100.0, -80.0, -65.0))
    study = Study((TimePoint(_emission(g_em), ct_volume(g), 4.0),
                   TimePoint(_emission(g_em), noise, 24.0)), ADM)
    with pytest.warns(TheradoseWarning, match=r"poor registration: time_points\[1\] \(24 h\): "
                                              "CT NCC after registration"):
        reg = register_study(study)
    assert reg.quality[1].ok is False and not reg.ok


# ---------------------------------------------------------------------------------- errors
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_ct_names_time_point():
    s = _study()
    tps = (s.time_points[0], TimePoint(s.time_points[1].emission, None, 24.0))
    with pytest.raises(InputError, match=r"tp2.nii.gz: time_points\[1\].ct: time_points\[1\] "
                                         r"\(24 h\) has no CT") as e:
        register_study(Study(tps, ADM))
    _one_line(e)
    assert e.value.field == "time_points[1].ct" and e.value.file == "tp2.nii.gz"


def test_missing_pet_ct():
    s = _study(pet=True)
    pet = TimePoint(s.pet.emission, None, 1.0)
    with pytest.raises(InputError, match=r"pet.nii.gz: pet.ct: pet \(1 h\) has no CT"):
        register_study(Study(s.time_points, ADM, pet=pet))
    # ignored when the PET is not registered
    assert register_study(Study(s.time_points, ADM, pet=pet), include_pet=False).study.pet is None


def test_emission_not_overlapping_ct():
    s = _study()
    far = s.time_points[1].emission
    far = far.replace(geometry=Geometry(far.shape, far.spacing_mm, (2000.0, 0.0, 0.0)))
    with pytest.raises(GeometryMismatchError, match=r"tp2.nii.gz: time_points\[1\].emission: "
                                                    r".*does not overlap its CT") as e:
        register_study(Study((s.time_points[0], TimePoint(far, s.time_points[1].ct, 24.0)),
                             ADM))
    _one_line(e)


def test_bad_arguments():
    s = _study()
    with pytest.raises(InputError, match=r"reference: must be an integer index .* \[0, 1\], "
                                         "got 2"):
        register_study(s, reference=2)
    with pytest.raises(InputError, match="reference: .* got True"):
        register_study(s, reference=True)
    with pytest.raises(InputError, match="study: must be a theradose.io.Study, got dict"):
        register_study({})
    dose = s.time_points[1].emission.replace(unit="Gy")
    with pytest.raises(UnitError, match=r"tp2.nii.gz: unit: emission image of time_points\[1\] "
                                        r"\(24 h\) has unit 'Gy'"):
        register_study(Study((s.time_points[0], TimePoint(dose, s.time_points[1].ct, 24.0)),
                             ADM))


def test_reference_other_time_point():
    # reference=1 (negative index allowed: -1): the 24 h images define the frame; the 4 h blob
    # must land at T2(BLOB), where time point 2 sees it.
    reg = register_study(_study(), reference=-1, include_pet=False)
    assert reg.reference == 1
    assert np.allclose(_com(reg.study.time_points[0].emission), moved_points(T2, BLOB[None])[0],
                       atol=1.0)
    assert reg.study.time_points[0].ct.geometry.same_as(_study().time_points[1].ct.geometry)
