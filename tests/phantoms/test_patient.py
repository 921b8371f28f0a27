"""End-to-end virtual patient: determinism, conservation, DICOM read-back, motion.

References: conservation laws (activity maps sum to A0 × retained fraction; TIA maps sum to
A0 × ∫ fraction dt), the calibration formula of docs/io-dicom.md, SUVbw hand formula (QIBA).
"""

import hashlib
import json

import numpy as np
import pytest

from theradose.io import (
    load_study,
    read_labelmap,
    read_nifti,
    read_pt,
    read_seg_masks,
    to_suv,
)
from theradose.phantoms import SimulationConfig, simulate_patient
from theradose.phantoms._kinetics import PatientKinetics
from theradose.volume import resample

pytestmark = pytest.mark.slow

FAST = dict(times_h=(4.0, 24.0), voxel_mm=6.0, n_lesions=2)


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    out = tmp_path_factory.mktemp("vp") / "p7"
    return simulate_patient(out, seed=7, config=SimulationConfig(**FAST))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("vp") / "clean"
    cfg = SimulationConfig(**FAST, noise=False, motion=False, spect_output="Bq/mL")
    return simulate_patient(out, seed=3, config=cfg)


def test_same_seed_identical_files_different_seed_differs(noisy, tmp_path):
    again = simulate_patient(tmp_path / "again", seed=7, config=SimulationConfig(**FAST))
    a, b = _digest(noisy.out), _digest(again.out)
    assert len(a) > 20 and a == b
    other = simulate_patient(tmp_path / "other", seed=8, config=SimulationConfig(**FAST))
    c = _digest(other.out)
    assert c["truth/tia.nii.gz"] != a["truth/tia.nii.gz"]
    assert c["truth/labels.nii.gz"] != a["truth/labels.nii.gz"]


def test_activity_maps_conserve_retained_activity(noisy):
    truth = noisy.truth
    kin = PatientKinetics.from_dict(truth["kinetics"])
    a0 = truth["therapy"]["injected_activity_mbq"]
    for i, t_h in enumerate(truth["times_h"], start=1):
        act = read_nifti(noisy.truth_dir / f"activity_tp{i}_{t_h:g}h.nii.gz")
        retained = sum(float(kin.fraction(r, [t_h], agent="therapeutic")[0])
                       for r in kin.regions)
        # conservation: ∫ activity map = A0 × retained fraction (decayed), to 0.1 %
        assert act.array.sum() == pytest.approx(a0 * retained, rel=1e-3)
        assert act.unit == "MBq"
    tia = read_nifti(noisy.truth_dir / "tia.nii.gz")
    expected = sum(kin.tia_h(r, agent="therapeutic") for r in kin.regions) * a0
    assert tia.array.sum() == pytest.approx(expected, rel=1e-6)
    assert truth["total_tia_mbq_h"] == pytest.approx(expected, rel=1e-9)


def test_organ_tia_matches_tia_map(noisy):
    labels_img = read_nifti(noisy.truth_dir / "labels.nii.gz", unit="label")
    names = json.loads((noisy.truth_dir / "labels.json").read_text())["labels"]
    tia = read_nifti(noisy.truth_dir / "tia.nii.gz").array
    for value, name in names.items():
        got = tia[labels_img.array == int(value)].sum()
        assert got == pytest.approx(noisy.truth["regions"][name]["tia_mbq_h"], rel=1e-6), name


def _expected_total_bounds(acq, in_fov_mbq):
    """Bq/mL × volume of an NM read back: activity in the field × the decay-during-acquisition
    factor f = (1 - e^{-λT})/(λT), and beds that start later carry e^{-λ t_bed} (not undone,
    as in a real multi-bed acquisition): between the first- and last-bed factors."""
    lam = np.log(2) / (6.647 * 24 * 3600)  # Lu-177 T½ 6.647 d, ICRP-107
    t = acq["acquisition_duration_s"]
    f = (1 - np.exp(-lam * t)) / (lam * t)
    assert f == pytest.approx(acq["decay_factor_during_acquisition"], rel=1e-9)
    last = max(acq["bed_start_offsets_s"])
    return in_fov_mbq * f * np.exp(-lam * last), in_fov_mbq * f


def test_noiseless_spect_reads_back_the_true_activity(clean):
    study = load_study(clean.dicom)
    truth = clean.truth
    np.testing.assert_allclose(study.times_h, truth["times_h"])  # hours after injection
    assert study.administration.injected_activity_mbq == truth["therapy"]["injected_activity_mbq"]
    assert study.administration.nuclide == "Lu-177"
    for i, (tp, acq) in enumerate(zip(study.time_points, truth["acquisitions"][1:],
                                      strict=True), start=1):
        act = read_nifti(clean.truth_dir / f"activity_tp{i}_{tp.time_h:g}h.nii.gz")
        in_fov = resample(act, tp.emission.geometry).array.sum()  # total-conserving
        assert in_fov == pytest.approx(acq["true_total_mbq_in_fov"], rel=1e-6)
        assert in_fov > 0.8 * act.array.sum()  # salivary glands to bladder are in the field
        lo, hi = _expected_total_bounds(acq, in_fov)
        assert tp.emission.unit == "Bq/mL"
        assert lo * (1 - 1e-4) <= tp.emission.total("MBq") <= hi * (1 + 1e-4)


def test_noisy_spect_and_pet_quantification(noisy):
    truth = noisy.truth
    cal = truth["acquisitions"][1]["calibration_cps_per_mbq"]
    study = load_study(noisy.dicom, calibration_cps_per_mbq=cal)
    for tp, acq in zip(study.time_points, truth["acquisitions"][1:], strict=True):
        lo, hi = _expected_total_bounds(acq, acq["true_total_mbq_in_fov"])
        # Poisson noise on > 1e6 counts (< 0.1 %) and 11 mm blur spilling over the field's
        # edges: within 2 %
        assert lo * 0.98 <= tp.emission.total("MBq") <= hi * 1.02
    pet = read_pt(noisy.dicom / "pet" / "pt")
    # PET is decay-corrected to the scan start: its integral is the true activity in the field
    # at that time, within noise and edge spill-over (5 mm FWHM): 2 %
    assert pet.total("MBq") == pytest.approx(truth["acquisitions"][0]["true_total_mbq_in_fov"],
                                             rel=0.02)
    suv = to_suv(pet)
    # SUVbw hand formula: SUV = C × weight / (A0 × 2^(-Δt/T½)), Δt = uptake time
    w_g = truth["patient"]["weight_kg"] * 1000
    a0_bq = truth["pet"]["injected_activity_mbq"] * 1e6
    dt_min = truth["config"]["pet_uptake_min"]
    factor = w_g / (a0_bq * 2 ** (-dt_min / (1.1285 * 60)))  # Ga-68 T½ 67.71 min (ICRP-107)
    assert suv.meta["suv_bw_factor"] == pytest.approx(factor, rel=2e-3)


def test_repositioning_is_present_and_known(noisy):
    motions = sorted(p.name for p in noisy.truth_dir.glob("motion_*.json"))
    assert motions == ["motion_pet.json", "motion_tp2_24h.json"]
    study = load_study(noisy.dicom, calibration_cps_per_mbq=9.5)
    ct1, ct2 = (tp.ct.array.astype(float) for tp in study.time_points)
    assert np.abs(ct1 - ct2).mean() > 20  # the patient moved (HU differ beyond CT noise)
    acq = noisy.truth["acquisitions"]
    assert acq[1]["motion"] is None and acq[2]["motion"] is not None


def test_segmentation_matches_truth_labels(noisy):
    labels = read_labelmap(noisy.truth_dir / "labels.nii.gz")
    ct = load_study(noisy.dicom, calibration_cps_per_mbq=9.5).time_points[0].ct
    seg = read_seg_masks(noisy.dicom / "tp1_4h" / "seg.dcm", reference=ct)
    assert {"liver", "kidney_left", "kidney_right", "spleen"} <= set(seg)
    # the SEG lies on the time-point-1 CT, an axial crop of the truth grid (same voxels)
    on_ct = resample(labels, ct.geometry, method="nearest")
    assert np.array_equal(seg["liver"], on_ct.mask("liver"))


def test_material_map_matches_tissues(noisy):
    mat = read_labelmap(noisy.truth_dir / "materials.nii.gz")
    labels = read_labelmap(noisy.truth_dir / "labels.nii.gz")
    # lungs are lung, liver is soft tissue, cortical bone is bone (Schneider 2000 HU bins)
    inner = labels.mask("liver")
    assert (mat.array[inner] == mat.labels["soft_tissue"]).mean() > 0.95
    lung = labels.mask("lung_left")
    assert (mat.array[lung] == mat.labels["lung"]).mean() > 0.8
