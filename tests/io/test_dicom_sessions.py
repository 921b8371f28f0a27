"""``DicomStudyInfo.new_study``: the same patient's next imaging session.

Reference: DICOM PS3.3 C.7.4.1 (a FrameOfReferenceUID shared by images means they are in one
spatial frame) and C.7.2.1 (General Study); a new session has a new study and a new frame.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pydicom

from theradose.io import DicomStudyInfo, reproducible_dicom, write_ct_series
from theradose.volume import Geometry, Volume

T = datetime(2025, 3, 1, 10, 0)
UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def test_new_study_keeps_the_patient_and_draws_new_uids():
    first = DicomStudyInfo(patient_id="P7", patient_name="Doe^J", patient_sex="F",
                           patient_weight_kg=61.0, patient_height_m=1.62, study_id="1",
                           study_datetime=T, study_description="PET/CT")
    second = first.new_study(study_id="2", study_description="SPECT/CT 24 h")
    for f in ("patient_id", "patient_name", "patient_sex", "patient_weight_kg",
              "patient_height_m", "patient_birth_date", "accession_number"):
        assert getattr(second, f) == getattr(first, f), f
    assert second.study_instance_uid != first.study_instance_uid
    assert second.frame_of_reference_uid != first.frame_of_reference_uid
    assert second.study_instance_uid != second.frame_of_reference_uid
    for uid in (second.study_instance_uid, second.frame_of_reference_uid):
        assert UID.fullmatch(uid) and len(uid) <= 64
    assert (second.study_id, second.study_description) == ("2", "SPECT/CT 24 h")
    assert second.study_datetime is None  # the next session's own acquisition time


def test_new_study_is_reproducible_inside_reproducible_dicom():
    def sessions():
        with reproducible_dicom("sessions:1", timestamp=T):
            a = DicomStudyInfo(patient_id="P1")
            return [(s.study_instance_uid, s.frame_of_reference_uid)
                    for s in (a, a.new_study(), a.new_study())]

    one, two = sessions(), sessions()
    assert one == two
    flat = [u for pair in one for u in pair]
    assert len(set(flat)) == len(flat)  # every session, every UID distinct


def test_two_sessions_written_with_their_own_uids(tmp_path):
    g = Geometry((3, 4, 5), (2.0, 2.0, 3.0))
    ct = Volume(np.zeros(g.shape, np.int16), g, unit="HU", modality="CT", acquisition_time=T)
    day1 = DicomStudyInfo(patient_id="P2")
    day2 = day1.new_study()
    write_ct_series(ct, tmp_path / "d1", patient=day1)
    write_ct_series(ct, tmp_path / "d2", patient=day2)
    h1 = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "d1").iterdir())]
    h2 = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "d2").iterdir())]
    assert {h.StudyInstanceUID for h in h1} == {day1.study_instance_uid}
    assert {h.FrameOfReferenceUID for h in h2} == {day2.frame_of_reference_uid}
    assert {h.PatientID for h in h1 + h2} == {"P2"}
