"""The study loader's patient identity and administration checks across series (issue 17).

Virtual patients (``theradose.phantoms``) give real DICOM sessions: one PatientID per seed
(``VP<seed:06d>``), and per session their own StudyInstanceUID and FrameOfReferenceUID, as a
patient who left the table in between (DICOM PS3.3 C.7.4.1). Another seed is another patient.
Study folders are copied into ``tmp_path`` before any change.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest

from theradose.cli import main
from theradose.errors import InputError
from theradose.io import Administration, load_study, write_nifti
from theradose.volume import Geometry, Volume

CAL = 9.5  # cps/MBq: the simulator's SPECT sensitivity (truth.json acquisitions[*])


def _patient(factory, seed: int, times_h: tuple[float, ...]):
    from theradose.phantoms import SimulationConfig, simulate_patient

    out = factory.mktemp(f"vp{seed}") / "patient"
    return simulate_patient(out, seed=seed, config=SimulationConfig(
        voxel_mm=8.0, noise=False, motion=False, n_lesions=1, times_h=times_h))


@pytest.fixture(scope="module")
def patient1(tmp_path_factory):
    return _patient(tmp_path_factory, 1, (4.0, 24.0, 96.0, 168.0))


@pytest.fixture(scope="module")
def patient2(tmp_path_factory):
    return _patient(tmp_path_factory, 2, (48.0,))


def _copy(patient, dst, *, pet=True):
    """The patient's DICOM folder in ``dst`` (without the PET/CT session unless ``pet``)."""
    root = str(patient.dicom)
    shutil.copytree(root, dst, ignore=lambda d, names: [] if pet or d != root else ["pet"])
    return dst


def _retag(files, **tags):
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(f)


def test_sessions_of_one_patient_with_their_own_frames_load(patient1, tmp_path):
    study = _copy(patient1, tmp_path / "study")
    s = load_study(study, calibration_cps_per_mbq=CAL)
    assert s.times_h.tolist() == [4.0, 24.0, 96.0, 168.0]
    # the precondition of this test: one PatientID, but a FrameOfReferenceUID and a
    # StudyInstanceUID per session; neither is an identity conflict
    assert {tp.emission.meta["patient_id"] for tp in s.time_points} == {"VP000001"}
    assert len({tp.emission.meta["frame_of_reference_uid"] for tp in s.time_points}) == 4
    assert len({tp.emission.meta["study_instance_uid"] for tp in s.time_points}) == 4


def test_another_patients_session_is_refused(patient1, patient2, tmp_path, capsys):
    study = _copy(patient1, tmp_path / "study")
    shutil.copytree(patient2.dicom / "tp1_48h", study / "tp5")
    assert pydicom.dcmread(study / "tp5" / "nm.dcm").PatientID == "VP000002"
    # 4 sessions + the PET/CT of VP000001 (11 series, RTSTRUCT and SEG included) against 4
    # series of VP000002: the majority is the study's patient; the first file of the other
    # patient in path order is named, and the first file (by path) of the majority.
    msg = (r"tp5/ct/CT_0001\.dcm: PatientID: 'VP000002' differs from 'VP000001' in "
           r"\S*/study/pet/ct/CT_0001\.dcm; a study holds one patient")
    with pytest.raises(InputError, match=msg) as exc:
        load_study(study, calibration_cps_per_mbq=CAL)
    assert "\n" not in str(exc.value)
    assert main(["study", str(study), "--calibration-cps-per-mbq", str(CAL)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "PatientID" in err


def test_patient_name_and_birth_date_checked_where_both_are_given(patient1, tmp_path):
    study = _copy(patient1, tmp_path / "study", pet=False)
    nm2, nm3 = study / "tp2_24h" / "nm.dcm", study / "tp3_96h" / "nm.dcm"
    # not conflicts: the same name written differently (DICOM PN: trailing empty components,
    # case); a birth date in one file only (the simulator's are empty); an empty PatientID
    _retag([nm3], PatientName="virtual^patient1^^", PatientBirthDate="19600102")
    _retag([nm2], PatientID="")
    assert len(load_study(study, calibration_cps_per_mbq=CAL).time_points) == 4
    # conflicts (checked on the headers, before any pixel data is read)
    _retag([nm3], PatientName="Other^Person")
    with pytest.raises(InputError, match=r"tp3_96h/nm\.dcm: PatientName: 'Other\^Person' "
                       r"differs from 'Virtual\^Patient1' in \S*/tp1_4h/ct/CT_0001\.dcm"):
        load_study(study, calibration_cps_per_mbq=CAL)
    _retag([nm3], PatientName="Virtual^Patient1")
    _retag([study / "tp1_4h" / "nm.dcm", nm2], PatientBirthDate="19600101")
    with pytest.raises(InputError, match=r"tp3_96h/nm\.dcm: PatientBirthDate: '19600102' "
                       r"differs from '19600101' in \S*/tp1_4h/nm\.dcm"):
        load_study(study, calibration_cps_per_mbq=CAL)


def test_other_administration_names_both_files(patient1, tmp_path):
    study = _copy(patient1, tmp_path / "study", pet=False)
    nm4 = study / "tp4_168h" / "nm.dcm"
    ds = pydicom.dcmread(nm4)
    item = ds.RadiopharmaceuticalInformationSequence[0]
    assert item.RadiopharmaceuticalStartDateTime.startswith("20260106")  # 6 Jan 2026 09:00
    item.RadiopharmaceuticalStartDateTime = "20251206090000.000000"      # a previous cycle
    ds.save_as(nm4)
    with pytest.raises(InputError, match=r"tp4_168h/nm\.dcm: administration: administration "
                       r".*'injection_time': '2025-12-06T09:00:00'.* differs from .*"
                       r"'injection_time': '2026-01-06T09:00:00'.* in \S*/tp1_4h/nm\.dcm; the "
                       "time points must come from one administration"):
        load_study(study, calibration_cps_per_mbq=CAL)


# ---------------------------------------------------------------------------------- NIfTI
INJ = datetime(2024, 5, 1, 9, 0)
ADM = Administration("Lu-177", 7400.0, INJ)
GRID = Geometry((4, 5, 6), (4.8, 4.8, 4.8), (-12.0, -12.0, -9.6))


def _session(folder, name, hours, meta):
    t = INJ + timedelta(hours=hours)
    write_nifti(Volume(np.ones(GRID.shape, np.float32), GRID, unit="Bq/mL", modality="NM",
                       acquisition_time=t, meta={"administration": ADM, **meta}),
                folder / f"{name}_spect.nii.gz", overwrite=True)
    write_nifti(Volume(np.zeros(GRID.shape, np.int16), GRID, unit="HU", modality="CT",
                       acquisition_time=t - timedelta(minutes=10), meta=meta),
                folder / f"{name}_ct.nii.gz", overwrite=True)


def test_nifti_sidecars_carrying_identity_are_compared(tmp_path):
    for name, h in (("a", 4.0), ("b", 24.0), ("c", 96.0)):
        _session(tmp_path, name, h, {"patient_id": "P001", "patient_birth_date": "1950-03-04"})
    # no identity in a sidecar: nothing to compare
    _session(tmp_path, "d", 168.0, {})
    s = load_study(tmp_path)
    assert s.times_h.tolist() == [4.0, 24.0, 96.0, 168.0]
    # an ISO date in a sidecar and a DICOM DA agree when the digits do
    _session(tmp_path, "d", 168.0, {"patient_id": "P001", "patient_birth_date": "19500304"})
    assert len(load_study(tmp_path).time_points) == 4
    _session(tmp_path, "d", 168.0, {"patient_id": "P002"})
    with pytest.raises(InputError, match=r"d_ct\.json: patient_id: 'P002' differs from 'P001' "
                       r"in \S*a_ct\.json; a study holds one patient"):
        load_study(tmp_path)
