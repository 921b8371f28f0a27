"""End-to-end: a small virtual patient through run_pipeline, checked against its ground truth.

Patient: 8 mm CT grid, noiseless SPECT (4.8 mm, no blur), no motion, 1 lesion; registration off
(motion off: the frames coincide), engines LED + organ S-values, no report (speed).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from theradose.errors import OutputExistsError

pytestmark = pytest.mark.slow

KEV_TO_J = 1.602176634e-16  # J per keV (CODATA exact)
# Lu-177 energy emitted per decay, all classes (ICRP-107 via icrp107-database: 147.92 keV
# electrons + 35.1 keV photons = 183.02 keV, docs/dose-engines.md "0.1056 Gy with photons local")
DELTA_LU177_KEV = 183.02
DELTA_E_LU177_KEV = 147.92  # electrons alone (ICRP-107: beta 133.27 + IC 13.52 + Auger 1.13)

SCHEMA_KEYS = {"schema", "software", "nuclide", "injected_activity_mbq", "study",
               "registration", "config", "vois", "outputs", "provenance"}
VOI_KEYS = {"mass_g", "volume_ml", "tia_mbq_h", "fit", "tac", "dose_gy", "dvh", "bed_gy", "pvc"}


def test_results_schema_and_outputs(pipeline_run):
    vp, out, res = pipeline_run
    assert SCHEMA_KEYS <= set(res)
    assert res["schema"] == "theradose.results/1"
    assert res["nuclide"] == "Lu-177"
    # administration from the DICOM headers = the simulated therapy (truth.json)
    a0 = vp.truth["therapy"]["injected_activity_mbq"]
    assert res["injected_activity_mbq"] == pytest.approx(a0)
    times = [tp["time_h"] for tp in res["study"]["time_points"]]
    assert times == pytest.approx(vp.truth["times_h"])
    voxel_ml = math.prod(res["study"]["reference_grid"]["spacing_mm"]) / 1000.0
    for name, v in res["vois"].items():
        assert VOI_KEYS <= set(v), name
        assert set(v["tac"]) >= {"times_h", "activity_mbq", "activity_sd_mbq"}
        # every voxel of the VOI is accounted for by the voxel fit's status counts
        assert sum(v["voxel_fit"].values()) == round(v["volume_ml"] / voxel_ml), name
    assert isinstance(res["warnings"], list)
    assert all(set(w) == {"stage", "message"} for w in res["warnings"])
    for rel in res["outputs"].values():
        assert (out / rel).is_file(), rel
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["vois"].keys() == res["vois"].keys()
    # nothing written into the study folder: every file there belongs to the simulation
    assert not list(vp.dicom.rglob("results.json"))


def test_organ_tia_against_truth(pipeline_run):
    vp, _, res = pipeline_run
    truth = vp.truth["organs"]
    # Noiseless, unblurred SPECT: the remaining errors are voxelisation (4.8 mm SPECT
    # resampled onto the 8 mm CT grid, organ borders shared by neighbours). Large organs
    # (> 1 L, < 10 % of their voxels on the surface) within 8 %; kidneys (~140 mL, ~1/2 of
    # their 8 mm voxels on the surface next to a cold medulla/fat) within 25 %.
    for organ, tol in [("liver", 0.08), ("lungs", 0.08), ("small_bowel", 0.08),
                       ("kidney_left", 0.25), ("kidney_right", 0.25)]:
        est = res["vois"][organ]["tia_mbq_h"]["value"]
        assert est == pytest.approx(truth[organ]["tia_mbq_h"], rel=tol), organ
    # conservation: the voxel TIA map summed over a VOI equals the organ fit's TIA within
    # the organ fit's relative sigma (both integrate the same activities)
    for organ in ("liver", "kidney_left", "spleen"):
        v = res["vois"][organ]
        assert v["tia_map_mbq_h"] == pytest.approx(v["tia_mbq_h"]["value"], rel=0.05)


def test_led_dose_equals_hand_formula(pipeline_run):
    _, _, res = pipeline_run
    # LED default: electrons local, D_e = TIA[MBq h] * 3.6e9 decays/(MBq h) * Delta_e[keV] * k
    # / m[kg], plus the photon kernel's dose, between 0 (all photons escape) and photons local
    for organ in ("liver", "kidney_left", "spleen"):
        v = res["vois"][organ]
        hand_e = v["tia_map_mbq_h"] * 3.6e9 * DELTA_E_LU177_KEV * KEV_TO_J / (v["mass_g"] * 1e-3)
        led = v["dose_gy"]["led"]["value"]
        assert hand_e * (1 - 2e-3) < led < hand_e * DELTA_LU177_KEV / DELTA_E_LU177_KEV, organ
        assert res["dose_engines"]["led"]["options"]["photons"] == "kernel"
    # organ S-values per kidney (own TIA and mass, MIRD mass scaling): within 20 % of that
    # kidney's LED dose (same energy, its own mass; LED keeps no cross-dose)
    for n in ("kidney_left", "kidney_right"):
        sv = res["vois"][n]["dose_gy"]["organ_svalues"]["value"]
        led = res["vois"][n]["dose_gy"]["led"]["value"]
        assert 0.8 * led < sv < 1.2 * led, n
        assert res["dose_engines"]["organ_svalues"]["vois"][n]["basis"] == "voi"


def test_dvh_and_bed(pipeline_run):
    _, _, res = pipeline_run
    d = res["vois"]["liver"]["dvh"]
    assert d["d98"] <= d["d50"] <= d["d2"]
    vf = np.asarray(d["curve"]["volume_fraction"])
    assert vf[0] == pytest.approx(1.0) and np.all(np.diff(vf) <= 1e-12)  # cumulative DVH
    b = res["vois"]["kidney_left"]["bed_gy"]
    dose = res["vois"]["kidney_left"]["dose_gy"]["led"]["value"]
    # BED = D (1 + G D/(α/β)) with 0 < G <= 1 (Lea-Catcheside): D < BED <= D (1 + D/(α/β))
    assert dose < b["value"] <= dose * (1 + dose / b["alpha_beta_gy"]) + 1e-9


def test_rtdose_reads_back_like_the_nifti(pipeline_run):
    import pydicom
    import SimpleITK as sitk

    from theradose.io import read_nifti

    _, out, res = pipeline_run
    nifti = read_nifti(out / "dose_led.nii.gz")
    ds = pydicom.dcmread(out / "rtdose.dcm")
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
    arr = ds.pixel_array * float(ds.DoseGridScaling)
    img = sitk.ReadImage(str(out / "rtdose.dcm"))
    grid = res["study"]["reference_grid"]  # the reference CT grid
    assert np.allclose(img.GetSpacing(), grid["spacing_mm"], atol=1e-3)
    assert np.allclose(img.GetOrigin(), grid["origin_mm"], atol=1e-2)
    assert arr.shape == tuple(grid["shape_zyx"]) == nifti.shape
    # stored as integers scaled by DoseGridScaling: equal within one quantisation step
    step = float(ds.DoseGridScaling)
    assert np.max(np.abs(arr - nifti.array)) <= step
    assert np.allclose(sitk.GetArrayFromImage(img) * (1.0 if img.GetPixelID() in
                       (sitk.sitkFloat32, sitk.sitkFloat64) else step), arr, atol=step)


def test_seg_reads_back_with_highdicom(pipeline_run):
    import highdicom as hd

    _, out, res = pipeline_run
    seg = hd.seg.segread(out / "seg.dcm")
    names = {d.SegmentLabel for d in seg.SegmentSequence}
    assert names == set(res["vois"])


def test_refuses_to_overwrite_results(pipeline_run):
    vp, out, _ = pipeline_run
    from theradose.pipeline import run_pipeline

    with pytest.raises(OutputExistsError, match="results.json: output exists") as exc:
        run_pipeline(vp.dicom, out)
    assert "\n" not in str(exc.value)


def test_resumes_from_cache(pipeline_run, monkeypatch, fast):
    from theradose.pipeline import _stages, run_pipeline

    vp, out, first = pipeline_run
    calls = {"load": 0, "kin": 0}
    real_load, real_kin = _stages.load_and_register, _stages.kinetics_stage

    def load(*a, **k):
        calls["load"] += 1
        return real_load(*a, **k)

    def kin(*a, **k):
        calls["kin"] += 1
        return real_kin(*a, **k)

    monkeypatch.setattr(_stages, "load_and_register", load)
    monkeypatch.setattr(_stages, "kinetics_stage", kin)
    cfg = {**fast, "dose": {"engines": ["led"]}}  # another dose configuration
    res = run_pipeline(vp.dicom, out, cfg, overwrite=True)
    assert calls == {"load": 0, "kin": 0}
    assert {"registration", "kinetics"} <= set(res["provenance"]["cache_hits"])
    assert res["vois"]["liver"]["tia_mbq_h"] == first["vois"]["liver"]["tia_mbq_h"]
    # a kinetics option changes the kinetics key, not the registration key
    cfg2 = {**cfg, "kinetics": {"relative_sigma": 0.2}}
    run_pipeline(vp.dicom, out, cfg2, overwrite=True)
    assert calls == {"load": 0, "kin": 1}


def test_cache_keys_follow_the_code(monkeypatch):
    # an upgraded or edited theradose must not reuse a result of the old code
    from theradose.pipeline import _cache

    key = _cache.stage_key("study", "config")
    assert key == _cache.stage_key("study", "config")  # deterministic
    assert len(_cache.code_fingerprint()) == 64
    monkeypatch.setattr(_cache, "code_fingerprint", lambda: "0" * 64)
    assert _cache.stage_key("study", "config") != key


def test_exported_dose_is_zero_outside_the_body(pipeline_run):
    # reference: the body contour of the reference (first) CT, computed independently here;
    # the engine's own dose outside it is recorded, not lost
    from theradose.io import read_ct, read_nifti
    from theradose.segmentation import body_contour

    vp, out, res = pipeline_run
    ct = read_ct(sorted(vp.dicom.glob("tp1_*"))[0] / "ct")
    dose = read_nifti(out / "dose_led.nii.gz")
    assert dose.geometry.same_as(ct.geometry)
    body = body_contour(ct.array)
    assert float(np.abs(dose.array[~body]).max()) == 0.0
    assert float(dose.array[body].max()) > 0.0
    rec = res["dose_engines"]["led"]["outside_body"]
    assert rec["voxels_set_to_zero"] > 0 and 0.0 < rec["fraction_of_max"] < 0.05
