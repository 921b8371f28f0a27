"""The demo's truth comparisons: registration residual vs the known motion, per-lesion VOIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from theradose.io import write_labelmap
from theradose.phantoms import random_transform
from theradose.phantoms._imaging_motion import PatientMotion
from theradose.pipeline._demo import registration_residual
from theradose.volume import LabelMap


def _case(tmp_path, motion: PatientMotion, transform: dict, vois: dict | None = None,
          results_dir=None):
    arr = np.zeros((20, 24, 24), np.int16)
    arr[3:17, 4:20, 4:20] = 1
    labels = LabelMap.from_array(arr, spacing_mm=(10.0, 10.0, 10.0), names={1: "body"})
    write_labelmap(labels, tmp_path / "labels.nii.gz")
    truth = {"acquisitions": [
        {"modality": "NM", "time_after_injection_h": 4.0, "motion": None},
        {"modality": "NM", "time_after_injection_h": 24.0, "motion": motion.to_dict()}]}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    results = {"study": {"reference_grid": labels.geometry.to_dict()},
               "registration": [{"time_h": 4.0, "transform": None},
                                {"time_h": 24.0, "transform": transform}],
               "vois": vois or {}}
    return registration_residual(results, tmp_path, results_dir)


def test_exact_rigid_estimate_has_zero_residual(tmp_path):
    # motion: acquisition point x -> reference x + t (no rotation, no field); the registration
    # maps reference -> acquisition, so the exact estimate is the translation -t
    t = np.array([6.0, -4.0, 9.0])
    motion = PatientMotion(rotation_deg=[0, 0, 0], translation_mm=t, centre_mm=[0, 0, 0])
    res = _case(tmp_path, motion, {"rotation_deg": [0, 0, 0], "translation_mm": (-t).tolist(),
                                   "centre_mm": [0, 0, 0]})
    assert len(res) == 1 and res[0]["time_h"] == 24.0
    assert res[0]["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    assert res[0]["rigid_floor_mm"] == pytest.approx(0.0, abs=1e-6)
    assert res[0]["vs_repositioning_mm"] == pytest.approx(0.0, abs=1e-9)
    # an estimate 3 mm off along x is 3 mm off everywhere
    (tmp_path / "b").mkdir()
    off = _case(tmp_path / "b", motion, {"rotation_deg": [0, 0, 0],
                                         "translation_mm": (-t + [3.0, 0, 0]).tolist(),
                                         "centre_mm": [0, 0, 0]})
    assert off[0]["mean_mm"] == pytest.approx(3.0, rel=1e-9)
    assert off[0]["vs_best_rigid_mm"] == pytest.approx(3.0, rel=1e-6)
    assert off[0]["vs_repositioning_mm"] == pytest.approx(3.0, rel=1e-9)


def test_exact_estimate_of_a_rotation_has_zero_residual(tmp_path):
    # x_ref = Rz(5 deg) (x - c) + c + t; its inverse is the Euler transform Rz(-5 deg) about c
    # with translation -Rz(-5 deg) t
    c, t = np.array([100.0, 90.0, 80.0]), np.array([4.0, -2.0, 3.0])
    motion = PatientMotion(rotation_deg=[0, 0, 5.0], translation_mm=t, centre_mm=c)
    rt = motion.rotation_matrix().T
    res = _case(tmp_path, motion, {"rotation_deg": [0, 0, -5.0],
                                   "translation_mm": (-(rt @ t)).tolist(),
                                   "centre_mm": c.tolist()})
    assert res[0]["mean_mm"] == pytest.approx(0.0, abs=1e-6)
    assert res[0]["vs_repositioning_mm"] == pytest.approx(0.0, abs=1e-6)


def test_local_alignment_residual_uses_the_fitted_shift(tmp_path):
    # the rigid estimate is 3 mm off along x, so in the registered image the VOI appears 3 mm
    # towards -x; a local fit that found exactly that leaves no residual, one that found
    # nothing leaves the 3 mm
    t = np.array([6.0, -4.0, 9.0])
    motion = PatientMotion(rotation_deg=[0, 0, 0], translation_mm=t, centre_mm=[0, 0, 0])
    est = {"rotation_deg": [0, 0, 0], "translation_mm": (-t + [3.0, 0, 0]).tolist(),
           "centre_mm": [0, 0, 0]}
    for shift, expected in (([-3.0, 0.0, 0.0], 0.0), ([0.0, 0.0, 0.0], 3.0)):
        sub = tmp_path / str(expected)
        sub.mkdir()
        vois = {"body": {"pvc": {"local_shift_mm": [[0.0, 0.0, 0.0], shift]}}}
        loc = _case(sub, motion, est, vois)[0]["local"]["body"]
        assert loc["registered_mm"] == pytest.approx(3.0, rel=1e-9)
        assert loc["after_local_mm"] == pytest.approx(expected, abs=1e-9)


def test_deformation_sets_a_floor_no_rigid_map_beats(tmp_path):
    motion = random_transform(np.random.default_rng(4), centre_mm=(115.0, 115.0, 95.0),
                              max_rotation_deg=0.0, max_shift_mm=0.0, deformation_mm=5.0,
                              breathing_mm=0.0)
    res = _case(tmp_path, motion, {"rotation_deg": [0, 0, 0], "translation_mm": [0, 0, 0],
                                   "centre_mm": [0, 0, 0]})
    r = res[0]
    assert r["vs_repositioning_mm"] == pytest.approx(0.0, abs=1e-9)  # no rigid part
    assert r["rigid_floor_mm"] > 1.0  # the smooth field is not rigid
    assert r["mean_mm"] >= r["rigid_floor_mm"] - 1e-9  # least squares: nothing rigid is closer


def test_full_transform_file_is_used_and_landmarks_follow_tg132(tmp_path):
    # the pipeline writes the full transform (rigid + BSpline when deformable) to
    # OUT/registration/transform_tp<i>.h5; the residual uses it over the rigid parameters
    import SimpleITK as sitk

    t = np.array([6.0, -4.0, 9.0])
    motion = PatientMotion(rotation_deg=[0, 0, 0], translation_mm=t, centre_mm=[0, 0, 0])
    out = tmp_path / "results"
    (out / "registration").mkdir(parents=True)
    sitk.WriteTransform(sitk.TranslationTransform(3, tuple(-t)),
                        str(out / "registration" / "transform_tp2.h5"))
    rigid_identity = {"rotation_deg": [0, 0, 0], "translation_mm": [0, 0, 0],
                      "centre_mm": [0, 0, 0]}
    r = _case(tmp_path, motion, rigid_identity, {"body": {}}, out)[0]
    assert r["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    assert r["rigid_mean_mm"] == pytest.approx(float(np.linalg.norm(t)), rel=1e-9)
    assert r["landmark_tre_mm"]["body"] == pytest.approx(0.0, abs=1e-9)
    assert r["tg132_pass"]
    assert not r["deformable"]  # a translation, not rigid + BSpline
    # a 3 mm error: the landmark reading fails TG-132's mean < 2 mm
    (tmp_path / "again").mkdir()
    sitk.WriteTransform(sitk.TranslationTransform(3, tuple(-t + [0.0, 3.0, 0.0])),
                        str(out / "registration" / "transform_tp2.h5"))
    r = _case(tmp_path / "again", motion, rigid_identity, {"body": {}}, out)[0]
    assert r["tre_mean_mm"] == pytest.approx(3.0, rel=1e-9)
    assert not r["tg132_pass"]


def test_virtual_patient_seg_has_each_lesion_and_the_salivary_glands(small_patient,
                                                                       pipeline_run):
    # the SEG a physician would draw: one segment per lesion (not a merged "lesions"), the
    # salivary glands (an organ at risk in PSMA therapy) as one VOI; each lesion gets its
    # true dose in truth.json regions for the demo's comparison
    from theradose.pipeline._demo import truth_block

    _, _, res = pipeline_run
    assert "lesion_1" in res["vois"] and "lesions" not in res["vois"]
    assert "salivary_glands" in res["vois"]
    truth = truth_block(small_patient.truth, list(res["vois"]))
    assert truth["vois"]["lesion_1"]["tia_mbq_h"] == pytest.approx(
        small_patient.truth["regions"]["lesion_1"]["tia_mbq_h"])


def test_lesion_volume_range_is_checked():
    from theradose.errors import InputError
    from theradose.phantoms import SimulationConfig

    cfg = SimulationConfig(lesion_volume_ml=(5, 20))
    assert SimulationConfig.from_dict(cfg.to_dict()).lesion_volume_ml == (5.0, 20.0)
    with pytest.raises(InputError) as err:
        SimulationConfig(lesion_volume_ml=(20, 5))
    assert err.value.field == "lesion_volume_ml"
