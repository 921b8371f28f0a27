"""The registration quality gate (an outlier time point) and CTs that cannot be registered.

Issue 17: another patient's SPECT/CT placed in a study folder was registered and used as a
time point; its CT similarity after registration (0.876) was far below the others' (0.999)
and nothing said so. A CT whose registration fails gave a SimpleITK traceback.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pydicom
import pytest

from theradose.errors import InputError, TheradoseWarning
from theradose.io import Study, TimePoint, load_study
from theradose.registration import GATE_MIN_DROP, GATE_RATIO, RegistrationQuality, register_study
from theradose.registration._study import _quality_gate
from theradose.volume import Geometry

CAL = 9.5  # cps/MBq: the simulator's SPECT sensitivity (truth.json acquisitions[*])


def _q(ncc: float) -> RegistrationQuality:
    return RegistrationQuality(24.0, -1.0, ncc, ncc, ncc >= 0.85, "")


def _gates(nccs, reference=0):
    return [q.gate for q in _quality_gate([_q(v) for v in nccs], reference)]


# ---------------------------------------------------------------------------------- the rule
def test_gate_flags_the_issue_case_by_hand():
    # issue 17's numbers: the other patient 0.876 among sessions at 0.999 (reference: 1.0).
    # Time point 2 against the median of the others (0.999): ratio (1 - 0.876) / (1 - 0.999)
    # = 0.124 / 0.001 = 124 > 3, drop 0.123 > 0.01 -> outlier. Time point 1 against the
    # median of {0.876, 0.999, 0.999} = 0.999: ratio 1, not an outlier.
    g = _gates([1.0, 0.999, 0.876, 0.999, 0.999])
    assert g[0] == {"outlier": None, "others_median_ncc": None, "dissimilarity_ratio": None,
                    "note": "reference time point"}
    assert g[2]["outlier"] is True
    assert g[2]["others_median_ncc"] == pytest.approx(0.999)
    assert g[2]["dissimilarity_ratio"] == pytest.approx(124.0, rel=1e-3)
    assert [x["outlier"] for x in g[1:]] == [False, True, False, False]
    assert g[1]["dissimilarity_ratio"] == pytest.approx(1.0)


def test_gate_keeps_sessions_with_similar_residuals():
    # rigidly aligned sessions with motion (virtual patients, 8 mm, measured): 0.9725-0.9755;
    # the worst, 0.9722, against the median of the others {0.9725, 0.9755, 0.9750}, 0.9750:
    # ratio 0.0278 / 0.0250 = 1.112
    g = _gates([1.0, 0.9725, 0.9755, 0.9722, 0.9750])
    assert [x["outlier"] for x in g[1:]] == [False] * 4
    assert g[3]["dissimilarity_ratio"] == pytest.approx(1.112, rel=1e-3)
    # both conditions are needed: ratio 2.5 (< 3) with a drop of 0.15 (the sessions' residuals
    # differ), and a ratio of ~1e4 with a drop of 0.009 (< 0.01) on a noiseless phantom
    assert not _gates([1.0, 0.90, 0.75, 0.90, 0.90])[2]["outlier"]
    assert not _gates([1.0, 0.999999, 0.991, 0.999999, 0.999999])[2]["outlier"]
    assert _gates([1.0, 0.999999, 0.989, 0.999999, 0.999999])[2]["outlier"]
    assert (GATE_RATIO, GATE_MIN_DROP) == (3.0, 0.01)


def test_gate_needs_two_other_time_points_and_skips_nan():
    g = _gates([1.0, 0.999, 0.5])  # 2 registered time points: each has 1 other
    assert [x["outlier"] for x in g] == [None, None, None]
    assert g[2]["note"] == "not assessed: 1 other time point(s) with a finite NCC, 2 needed"
    # a NaN NCC (already ok=False) is neither assessed nor a comparison: 1 other each here
    g = _gates([1.0, 0.999, math.nan, 0.876])
    assert [x["outlier"] for x in g] == [None, None, None, None]
    # another reference; time point 0 against the median of {0.999, 0.876} = 0.9375: ratio
    # 0.001 / 0.0625 < 3; time point 4 against {0.999, 0.999}: ratio 124 -> outlier
    g = _gates([0.999, 0.999, math.nan, 1.0, 0.876], reference=3)
    assert [x["outlier"] for x in g] == [False, False, None, None, True]


def test_quality_record_serialises_the_gate():
    q = _quality_gate([_q(1.0), _q(0.999), _q(0.999), _q(0.876)], 0)[3]
    d = q.to_dict()
    assert d["quality_gate"]["outlier"] is True and q.outlier
    assert d["quality_gate"]["note"] == "ratio > 3 and NCC drop > 0.01 flags"
    inf = _quality_gate([_q(1.0), _q(1.0), _q(1.0), _q(0.9)], 0)[3]  # others exactly 1
    assert inf.gate["dissimilarity_ratio"] == math.inf and inf.outlier
    assert inf.to_dict()["quality_gate"]["dissimilarity_ratio"] is None  # JSON: no inf
    assert _q(0.9).to_dict()["quality_gate"] is None and not _q(0.9).outlier


# ---------------------------------------------------------------------------------- phantoms
def _patient(factory, seed, times_h):
    from theradose.phantoms import SimulationConfig, simulate_patient

    return simulate_patient(factory.mktemp(f"vp{seed}") / "patient", seed=seed,
                            config=SimulationConfig(voxel_mm=8.0, noise=False, motion=False,
                                                    n_lesions=1, times_h=times_h))


@pytest.fixture(scope="module")
def patients(tmp_path_factory):
    return (_patient(tmp_path_factory, 1, (4.0, 24.0, 96.0)),
            _patient(tmp_path_factory, 2, (48.0,)))


@pytest.fixture(scope="module")
def studies(patients):
    return tuple(load_study(p.dicom, calibration_cps_per_mbq=CAL) for p in patients)


def test_another_patients_time_point_is_flagged(studies):
    # the loader refuses another PatientID; a study assembled by hand (or from files whose
    # identity was rewritten) reaches the gate. Measured: 0.9737 vs 0.99999 for the others.
    own, other = studies
    o = other.time_points[0]
    tps = (*own.time_points[:2], TimePoint(o.emission, o.ct, 72.0), own.time_points[2])
    with pytest.warns(TheradoseWarning, match=r"tp1_48h/nm\.dcm: registration: time_points\[2\] "
                      r"\(72 h\) is an outlier among the study's time points: CT NCC after "
                      r"registration 0\.97\d vs 1\.000 \(median of the others: 1\.000, 1\.000\)"):
        reg = register_study(Study(tps, own.administration, source=own.source))
    gates = [q["quality_gate"] for q in reg.to_dict()["time_points"]]
    assert [g["outlier"] for g in gates] == [None, False, True, False]
    assert reg.quality[2].ok  # above NCC_MIN = 0.85: only the gate sees it
    assert 0.96 < reg.quality[2].ncc_after < 0.98 and not reg.ok
    assert gates[2]["dissimilarity_ratio"] > 1e3


# ---------------------------------------------------------------------------------- failures
def _with_ct(study, i, ct):
    tps = list(study.time_points)
    tps[i] = TimePoint(tps[i].emission, ct, tps[i].time_h)
    return Study(tuple(tps), study.administration, source=study.source)


def _crop(ct, z0, shape, spacing=None):
    arr = ct.array[z0:z0 + shape[0], :shape[1], :shape[2]]
    origin = ct.geometry.index_to_physical(np.array([[0, 0, z0]]))[0]
    return ct.replace(array=arr, geometry=Geometry(arr.shape, spacing or ct.spacing_mm,
                                                   tuple(origin), ct.geometry.direction))


def test_ct_that_cannot_be_registered_is_one_line_input_error(studies):
    own = studies[0]
    ct = own.time_points[1].ct
    ct_file = r"\S*tp2_24h/ct/CT_0001\.dcm"
    cases = [
        (ct.replace(array=np.full(ct.shape, -1000.0, np.float32)),
         r"its CT is constant \(-1000 HU everywhere\); registration needs anatomy"),
        (_crop(ct, 60, (1, *ct.shape[1:])),
         r"its CT has 1x29x55 voxels \(z,y,x\); registration needs at least 4 along each axis"),
        (_crop(ct, 60, (3, *ct.shape[1:])), r"its CT has 3x29x55 voxels"),
        (ct.replace(array=np.where(ct.array > 0, np.nan, ct.array).astype(np.float32)),
         r"its CT holds NaN or infinite values"),
    ]
    assert ct.shape == (143, 29, 55)
    for bad, msg in cases:
        with pytest.raises(InputError, match=rf"^{ct_file}: registration: time_points\[1\] "
                           rf"\(24 h\): {msg}") as exc:
            register_study(_with_ct(own, 1, bad))
        assert "\n" not in str(exc.value)
    # the reference's CT is named when it is the one at fault
    ref = own.time_points[0].ct
    with pytest.raises(InputError, match=r"tp1_4h/ct/CT_0001\.dcm: registration: "
                       r"time_points\[0\] \(4 h\) \(reference\): its CT is constant"):
        register_study(_with_ct(own, 0, ref.replace(array=np.zeros(ref.shape, np.float32))))


def test_simpleitk_failure_is_one_line_input_error(studies):
    # an 8x8x8 CT of 0.01 mm voxels (0.08 mm across) at a corner of the field of view: the
    # Mattes metric finds no sample of the reference inside it and SimpleITK raises
    # RuntimeError ("All samples map outside moving image buffer ..."), multi-line, with the
    # path of an ITK source file
    own = studies[0]
    tiny = _crop(own.time_points[1].ct, 0, (8, 8, 8), spacing=(0.01, 0.01, 0.01))
    with pytest.raises(InputError, match=r"tp2_24h/ct/CT_0001\.dcm: registration: "
                       r"time_points\[1\] \(24 h\): registering its CT to the reference CT "
                       r"\(\S*tp1_4h/ct/CT_0001\.dcm\) failed: All samples map outside moving "
                       r"image buffer\..*; check that both CTs are volumes of the same body "
                       r"region$") as exc:
        register_study(_with_ct(own, 1, tiny))
    assert "\n" not in str(exc.value) and ".hxx" not in str(exc.value)
    assert isinstance(exc.value.__cause__, RuntimeError)


def test_pipeline_reports_a_constant_ct_in_one_line(patients, tmp_path, capsys):
    from theradose.cli import main

    study = tmp_path / "study"
    shutil.copytree(patients[0].dicom, study, ignore=lambda d, n: ["pet"] * ("pet" in n))
    for f in sorted((study / "tp2_24h" / "ct").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PixelData = np.full((ds.Rows, ds.Columns), 24, ds.pixel_array.dtype).tobytes()
        ds.save_as(f)
    rc = main(["run", str(study), "--out", str(tmp_path / "out"),
               "--calibration-cps-per-mbq", str(CAL)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"error: {study / 'tp2_24h' / 'ct' / 'CT_0001.dcm'}: "
                              "registration: time_points[1] (24 h): its CT is constant (")


def test_pipeline_records_the_gate(patients, tmp_path):
    # hostile input past the identity check: the other patient's session with its PatientID,
    # PatientName and injection rewritten to this patient's. The pipeline's registration record
    # (results.json "registration") carries the gate; the warning, raised inside the stage,
    # is what the pipeline collects into results.json "warnings" and the report.
    from theradose.pipeline import PipelineConfig
    from theradose.pipeline._stages import load_and_register

    study = tmp_path / "study"
    shutil.copytree(patients[0].dicom, study, ignore=lambda d, n: ["pet"] * ("pet" in n))
    shutil.copytree(patients[1].dicom / "tp1_48h", study / "tp5")
    inj = pydicom.dcmread(study / "tp1_4h" / "nm.dcm").RadiopharmaceuticalInformationSequence[0]
    for f in sorted((study / "tp5").rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.PatientName = "VP000001", "Virtual^Patient1"
        if "RadiopharmaceuticalInformationSequence" in ds:
            ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = \
                inj.RadiopharmaceuticalStartDateTime
        ds.save_as(f)
    cfg = PipelineConfig.from_dict({"study": {"calibration_cps_per_mbq": CAL}})
    with pytest.warns(TheradoseWarning, match=r"tp5/nm\.dcm: registration: time_points\[2\] "
                      r"\(72 h\) is an outlier"):
        reg = load_and_register(study, cfg)
    # the other session: 48 h after its own injection (2026-01-07 09:00), 72 h after this one's
    assert reg["times_h"].tolist() == [4.0, 24.0, 72.0, 96.0]
    assert [q["quality_gate"]["outlier"] for q in reg["registration"]] == \
        [None, False, True, False]
