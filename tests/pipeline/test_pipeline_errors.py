"""Bad inputs to run_pipeline: one-line InputError naming the file and the field."""

from __future__ import annotations

import shutil

import pydicom
import pytest

from theradose.errors import GeometryMismatchError, InputError
from theradose.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def _copy(vp, tmp_path):
    dst = tmp_path / "dicom"
    shutil.copytree(vp.dicom, dst)
    shutil.rmtree(dst / "pet")  # not used by the pipeline; faster loading
    return dst


def _check(exc, file_part: str, field: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert file_part in msg and f"{field}: " in msg


def test_unknown_voi_in_config(pipeline_run, tmp_path, fast):
    vp, out, _ = pipeline_run  # registration cached in `out`: only the VOI stage runs
    with pytest.raises(InputError, match=r"unknown VOI\(s\) \['kidneys'\]") as exc:
        run_pipeline(vp.dicom, out, {**fast, "vois": {"include": ["liver", "kidneys"]}},
                     overwrite=True)
    _check(exc, "", "vois.include")


def test_output_inside_study(small_patient, fast):
    with pytest.raises(InputError, match="inside the study folder") as exc:
        run_pipeline(small_patient.dicom, small_patient.dicom / "out", fast)
    _check(exc, "out", "out_dir")


def test_missing_ct_of_a_time_point(small_patient, tmp_path, fast):
    d = _copy(small_patient, tmp_path)
    shutil.rmtree(d / "tp2_24h" / "ct")
    with pytest.raises(InputError, match="the time point at 24 h has no CT") as exc:
        run_pipeline(d, tmp_path / "out", fast)
    _check(exc, "tp2_24h/nm.dcm", "ct")


def test_missing_injection_information(small_patient, tmp_path, fast):
    d = _copy(small_patient, tmp_path)
    for nm in d.glob("tp*/nm.dcm"):
        ds = pydicom.dcmread(nm)
        del ds.RadiopharmaceuticalInformationSequence
        ds.save_as(nm)
    with pytest.raises(InputError) as exc:
        run_pipeline(d, tmp_path / "out", fast)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "injected_activity_mbq" in msg or "nuclide" in msg or "injection" in msg


def test_ct_and_spect_do_not_match(small_patient, tmp_path, fast):
    d = _copy(small_patient, tmp_path)
    # move the CT 90 cm: it overlaps its SPECT only at one end
    for f in (d / "tp3_96h" / "ct").iterdir():
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2],
                                   float(ds.ImagePositionPatient[2]) + 900.0]
        ds.save_as(f)
    with pytest.raises(GeometryMismatchError) as exc:
        run_pipeline(d, tmp_path / "out", fast)
    _check(exc, "tp3_96h", "ct")


def test_no_voi_file(small_patient, tmp_path, fast):
    d = _copy(small_patient, tmp_path)
    (d / "tp1_4h" / "seg.dcm").unlink()
    (d / "tp1_4h" / "rtstruct.dcm").unlink()
    with pytest.raises(InputError, match="no VOIs: the study has no DICOM SEG") as exc:
        run_pipeline(d, tmp_path / "out", fast)
    _check(exc, str(d), "labels")


def test_label_map_partly_off_the_reference_ct(small_patient, tmp_path, fast):
    # a label map whose second VOI lies beyond the reference CT: an error naming the file and
    # the lost VOI, not a VOI silently empty (or a message without the file)
    import numpy as np

    from theradose.io import read_ct, write_labelmap
    from theradose.volume import Geometry, LabelMap

    d = _copy(small_patient, tmp_path)
    (d / "tp1_4h" / "seg.dcm").unlink()
    (d / "tp1_4h" / "rtstruct.dcm").unlink()
    ct = read_ct(d / "tp1_4h" / "ct").geometry
    centre = np.asarray(ct.index_to_physical(np.asarray(ct.size_xyz, float)[None] / 2))[0]
    nz = round(ct.size_xyz[2] * ct.spacing_mm[2] / 8.0) + 40  # 32 cm past the CT's end
    arr = np.zeros((nz, 6, 6), np.uint8)
    arr[: nz // 4, 1:5, 1:5] = 1
    arr[-3:, 1:5, 1:5] = 2
    origin = (centre[0] - 24.0, centre[1] - 24.0, float(ct.origin_mm[2]))
    geom = Geometry((nz, 6, 6), (8.0, 8.0, 8.0), origin)
    write_labelmap(LabelMap(arr, geom, names={1: "liver", 2: "far_away"}), d / "labels.nii.gz")
    with pytest.raises(InputError, match=r"vanish on the reference CT's grid.*far_away") as exc:
        run_pipeline(d, tmp_path / "out", fast)
    _check(exc, "labels.nii.gz", "geometry")


def test_two_segs_are_ambiguous(small_patient, tmp_path, fast):
    d = _copy(small_patient, tmp_path)
    shutil.copy(d / "tp1_4h" / "seg.dcm", d / "tp2_24h" / "seg_copy.dcm")
    with pytest.raises(InputError, match="2 SEG files in the study") as exc:
        run_pipeline(d, tmp_path / "out", fast)
    _check(exc, "seg", "Modality")
