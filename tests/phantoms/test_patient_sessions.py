"""Each imaging session of a virtual patient is its own DICOM study and frame of reference.

Reference: DICOM PS3.3 C.7.4.1 (Frame of Reference module: images that share a
FrameOfReferenceUID are spatially related) and C.7.2.1 (General Study module); a patient
scanned on other days, taken off the table in between, is in other studies and frames of
reference, with the same PatientID.
"""

from __future__ import annotations

import pydicom
import pytest

from theradose.io import load_study
from theradose.phantoms import SimulationConfig, simulate_patient

pytestmark = pytest.mark.slow

CFG = dict(voxel_mm=8.0, times_h=(4.0, 24.0, 96.0), n_lesions=1)


def _header(path):
    return pydicom.dcmread(path, stop_before_pixels=True)


def _session_headers(vp) -> dict[str, list]:
    """Headers of every image series by session: pet, tp1_4h, ..."""
    d = vp.dicom
    out = {"pet": [_header(next((d / "pet" / "ct").iterdir())),
                   _header(next((d / "pet" / "pt").iterdir()))]}
    for i, t in enumerate(vp.truth["times_h"], start=1):
        tag = f"tp{i}_{t:g}h"
        out[tag] = [_header(p) for p in sorted((d / tag / "ct").iterdir())] + \
            [_header(d / tag / "nm.dcm")]
    return out


@pytest.fixture(scope="module")
def vp(tmp_path_factory):
    return simulate_patient(tmp_path_factory.mktemp("sessions") / "p", seed=4,
                            config=SimulationConfig(**CFG))


def test_sessions_have_their_own_study_and_frame_of_reference(vp):
    sessions = _session_headers(vp)
    assert list(sessions) == ["pet", "tp1_4h", "tp2_24h", "tp3_96h"]
    study, frame = {}, {}
    for name, headers in sessions.items():
        # one patient throughout
        assert {h.PatientID for h in headers} == {f"VP{4:06d}"}
        # within a session: the CT and the PT/NM share the study and the frame of reference
        assert len({h.StudyInstanceUID for h in headers}) == 1, name
        assert len({h.FrameOfReferenceUID for h in headers}) == 1, name
        assert {h.Modality for h in headers} == ({"CT", "PT"} if name == "pet" else {"CT", "NM"})
        study[name] = headers[0].StudyInstanceUID
        frame[name] = headers[0].FrameOfReferenceUID
        assert len({h.StudyID for h in headers}) == 1
    # between sessions: all different (4 sessions, 4 studies, 4 frames of reference)
    assert len(set(study.values())) == 4 and len(set(frame.values())) == 4
    assert not set(study.values()) & set(frame.values())
    # truth.json records each session's UIDs with its acquisition
    for acq in vp.truth["acquisitions"]:
        assert acq["study_instance_uid"] == study[acq["name"]]
        assert acq["frame_of_reference_uid"] == frame[acq["name"]]


def test_seg_and_rtstruct_reference_the_first_time_point_session(vp):
    sessions = _session_headers(vp)
    ct1 = sessions["tp1_4h"][:-1]
    ct_sops = {h.SOPInstanceUID for h in ct1}
    folder = vp.dicom / "tp1_4h"
    seg = pydicom.dcmread(folder / "seg.dcm")
    assert seg.StudyInstanceUID == ct1[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct1[0].FrameOfReferenceUID
    assert seg.PatientID == ct1[0].PatientID
    refs = {i.ReferencedSOPInstanceUID
            for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs and refs <= ct_sops
    rt = pydicom.dcmread(folder / "rtstruct.dcm")
    assert rt.StudyInstanceUID == ct1[0].StudyInstanceUID
    ref_for = rt.ReferencedFrameOfReferenceSequence[0]
    assert ref_for.FrameOfReferenceUID == ct1[0].FrameOfReferenceUID
    assert {r.ReferencedFrameOfReferenceUID for r in rt.StructureSetROISequence} == \
        {ct1[0].FrameOfReferenceUID}
    assert ref_for.RTReferencedStudySequence[0].ReferencedSOPInstanceUID == \
        ct1[0].StudyInstanceUID


def test_load_study_pairs_each_emission_with_its_own_session_ct(vp):
    study = load_study(vp.dicom, calibration_cps_per_mbq=9.5)
    assert len(study.time_points) == 3 and study.pet is not None
    for tp, acq in zip(study.time_points, vp.truth["acquisitions"][1:], strict=True):
        assert tp.ct is not None
        assert tp.emission.meta["frame_of_reference_uid"] == acq["frame_of_reference_uid"]
        assert tp.ct.meta["frame_of_reference_uid"] == acq["frame_of_reference_uid"]
        assert tp.ct.meta["study_instance_uid"] == acq["study_instance_uid"]
    pet = vp.truth["acquisitions"][0]
    assert study.pet.ct.meta["frame_of_reference_uid"] == pet["frame_of_reference_uid"]
    assert study.pet.emission.meta["study_instance_uid"] == pet["study_instance_uid"]


def test_uids_are_seeded(vp, tmp_path):
    again = simulate_patient(tmp_path / "again", seed=4, config=SimulationConfig(**CFG))
    assert [(a["study_instance_uid"], a["frame_of_reference_uid"])
            for a in again.truth["acquisitions"]] == \
        [(a["study_instance_uid"], a["frame_of_reference_uid"]) for a in vp.truth["acquisitions"]]
    other = simulate_patient(tmp_path / "other", seed=5, config=SimulationConfig(**CFG))
    assert {a["frame_of_reference_uid"] for a in other.truth["acquisitions"]}.isdisjoint(
        {a["frame_of_reference_uid"] for a in vp.truth["acquisitions"]})
