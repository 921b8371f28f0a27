"""Reproducible DICOM: same key -> byte-identical files; no key -> fresh UIDs."""

import hashlib
from datetime import datetime

import numpy as np

from theradose.io import (
    Administration,
    DicomStudyInfo,
    read_ct,
    write_ct_series,
    write_nm,
    write_rtdose,
    write_rtstruct,
    write_seg,
)
from theradose.io._uids import new_uid, reproducible_dicom
from theradose.volume import Geometry, Volume

T = datetime(2026, 1, 5, 9, 0)


def _write_all(folder):
    g = Geometry((3, 8, 8), (2.0, 2.0, 3.0))
    with reproducible_dicom("test:1", timestamp=T):
        info = DicomStudyInfo(patient_id="X")
        ct = Volume(np.zeros(g.shape), g, unit="HU", modality="CT", acquisition_time=T)
        write_ct_series(ct, folder / "ct", patient=info)
        nm = Volume(np.ones(g.shape), g, unit="counts", modality="NM", acquisition_time=T)
        write_nm(nm, folder / "nm.dcm", patient=info, acquisition_duration_s=600,
                 administration=Administration("Lu-177", 7400.0, T))
        ref = read_ct(folder / "ct")
        mask = np.zeros(g.shape, bool)
        mask[1, 2:5, 2:5] = True
        write_rtstruct({"liver": mask}, folder / "rs.dcm", reference=ref)
        write_seg({"liver": mask}, folder / "seg.dcm", reference=ref)
        write_rtdose(Volume(np.ones(g.shape), g, unit="Gy"), folder / "rd.dcm", reference=ref)
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_key_gives_identical_files(tmp_path):
    a = _write_all(tmp_path / "a")
    b = _write_all(tmp_path / "b")
    assert len(a) == 7 and a == b


def test_uids_are_random_outside_the_context():
    assert new_uid() != new_uid()
    with reproducible_dicom("k", timestamp=T):
        first = [new_uid(), new_uid()]
    with reproducible_dicom("k", timestamp=T):
        again = [new_uid(), new_uid()]
    assert first == again and first[0] != first[1]
