"""Bad DICOM inputs: each raises an InputError subclass with one line naming file and field."""

import hashlib
import shutil

import numpy as np
import pydicom
import pytest

from theradose.errors import (
    DicomTagError,
    InputError,
    TheradoseWarning,
    UnitError,
    UnreadableFileError,
)
from theradose.io import (
    list_series,
    read_ct,
    read_dicom_series,
    read_nm,
    read_pt,
    write_ct_series,
    write_nm,
)
from theradose.volume import Geometry, Volume


def _ct(tmp_path, folder="ct", n=4):
    g = Geometry((n, 3, 4), (1.0, 1.5, 2.0), (0.0, 0.0, 0.0))
    return write_ct_series(Volume(np.arange(g.shape[0] * 12, dtype=float).reshape(g.shape), g,
                                  unit="HU"), tmp_path / folder)


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def _one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg
    for p in parts:
        assert p in msg


def test_empty_file(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=r"empty\.dcm: file is empty \(0 bytes\)") as e:
        read_dicom_series(tmp_path / "empty.dcm")
    _one_line(e, "empty.dcm")


def test_non_dicom_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image\n" * 20)
    with pytest.raises(UnreadableFileError, match=r"notes\.txt: not a DICOM file") as e:
        read_ct(tmp_path / "notes.txt")
    _one_line(e, "notes.txt")


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UnreadableFileError, match=r"no DICOM files \(with a 'DICM' preamble\)"):
        read_dicom_series(tmp_path)
    with pytest.raises(UnreadableFileError, match=r"missing: file or folder does not exist"):
        read_dicom_series(tmp_path / "missing")
    with pytest.raises(InputError, match=r"^files_or_folder: no files given"):
        read_dicom_series([])


@pytest.mark.parametrize("keep", [0.97, 0.75, 0.5])
def test_truncated_file(tmp_path, keep):
    files = _ct(tmp_path)
    data = files[1].read_bytes()
    files[1].write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match=r"CT_0002\.dcm: ") as e:
        read_ct(tmp_path / "ct")
    _one_line(e, "CT_0002.dcm", "truncated")


def test_corrupt_compressed_pixel_data(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    g = Geometry((1, 32, 32), (1.0, 1.0, 1.0))
    f = write_ct_series(Volume(np.arange(1024.0).reshape(g.shape), g, unit="HU"),
                        tmp_path / "ct")[0]
    ds = pydicom.dcmread(f)
    ds.compress(JPEG2000Lossless)
    frag = bytearray(ds.PixelData)
    frag[20:120] = bytes(100)  # wipe the start of the JPEG 2000 code stream
    ds.PixelData = bytes(frag)
    ds.save_as(tmp_path / "bad.dcm")
    with pytest.raises(UnreadableFileError, match=r"bad\.dcm: cannot decode pixel data"):
        read_ct(tmp_path / "bad.dcm")


def test_two_series_need_series_uid(tmp_path):
    a = _ct(tmp_path, "mixed/a")
    b = _ct(tmp_path, "mixed/b", n=2)
    uid_a = pydicom.dcmread(a[0]).SeriesInstanceUID
    uid_b = pydicom.dcmread(b[0]).SeriesInstanceUID
    with pytest.raises(InputError, match=r"mixed: series_uid: 2 series found, pass series_uid=") \
            as e:
        read_dicom_series(tmp_path / "mixed")
    _one_line(e, uid_a, uid_b, "(CT, 4 files)", "(CT, 2 files: CT_0001.dcm, CT_0002.dcm)")
    assert read_dicom_series(tmp_path / "mixed", series_uid=uid_b).shape[0] == 2
    with pytest.raises(InputError, match=r"series_uid: series '1\.2\.3' not found; available"):
        read_ct(tmp_path / "mixed", series_uid="1.2.3")
    series = list_series(tmp_path / "mixed")
    assert {k: len(v) for k, v in series.items()} == {uid_a: 4, uid_b: 2}


@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagePositionPatient",
                                     "ImageOrientationPatient"])
def test_missing_required_tag(tmp_path, keyword):
    files = _ct(tmp_path)
    _edit(files[2], **{keyword: None})
    with pytest.raises(DicomTagError, match=rf"CT_0003\.dcm: {keyword}: required attribute is "
                                            r"missing or empty") as e:
        read_ct(tmp_path / "ct")
    _one_line(e)


def test_contradictory_orientation_and_rows(tmp_path):
    files = _ct(tmp_path)
    _edit(files[3], ImageOrientationPatient=[0, 1, 0, 1, 0, 0])
    with pytest.raises(DicomTagError, match=r"CT_0004\.dcm: ImageOrientationPatient: \[0, 1, 0, "
                                            r"1, 0, 0\] differs from \[1, 0, 0, 0, 1, 0\] in "
                                            r"CT_0001\.dcm and 2 other files \(mixed "
                                            r"series\?\)"):
        read_ct(tmp_path / "ct")
    files = _ct(tmp_path, "ct2")
    _edit(files[1], Rows=4)
    with pytest.raises(DicomTagError, match=r"CT_0002\.dcm: Rows: 4 differs from 3"):
        read_ct(tmp_path / "ct2")


def test_missing_slice_and_duplicate_slice(tmp_path):
    # 4 slices 2 mm apart (z = 0, 2, 4, 6); without CT_0002 the gaps are 4, 2 mm (median 3)
    files = _ct(tmp_path)
    files[1].unlink()
    with pytest.raises(DicomTagError, match=r"ct: ImagePositionPatient: slice spacing is uneven "
                                            r"\(2\.000-4\.000 mm\): 4\.000 mm between "
                                            r"CT_0001\.dcm and CT_0003\.dcm, 3\.000 mm \(median\) "
                                            r"elsewhere, 2 of 2 gaps off by > 1%; missing") as e:
        read_ct(tmp_path / "ct")
    _one_line(e)
    files = _ct(tmp_path, "dup")
    shutil.copy(files[2], tmp_path / "dup" / "copy.dcm")
    with pytest.raises(DicomTagError, match=r"dup: ImagePositionPatient: two slices share the same "
                                            r"position: CT_0003\.dcm and copy\.dcm at 4\.000 mm "
                                            r"along the slice normal \(duplicate"):
        read_ct(tmp_path / "dup")


def test_shifted_first_slice_names_its_gap(tmp_path):
    # z = -0.5, 2, 4, 6: gaps 2.5, 2, 2 (median 2): the odd gap is after the first file
    files = _ct(tmp_path, n=4)
    _edit(files[0], ImagePositionPatient=[0.0, 0.0, -0.5])
    with pytest.raises(DicomTagError, match=r"ct: ImagePositionPatient: slice spacing is uneven "
                                            r"\(2\.000-2\.500 mm\): 2\.500 mm between "
                                            r"CT_0001\.dcm and CT_0002\.dcm, 2\.000 mm \(median\) "
                                            r"elsewhere, 1 of 3 gaps"):
        read_ct(tmp_path / "ct")


@pytest.mark.parametrize(("changes", "field", "odd", "ref"), [
    ({"Rows": 0}, "Rows", "0", "3"),
    ({"Rows": 5}, "Rows", "5", "3"),
    ({"Columns": 7}, "Columns", "7", "4"),
    ({"PixelSpacing": [2, 2]}, "PixelSpacing", r"\[2, 2\]", r"\[1\.5, 1\]"),
])
@pytest.mark.parametrize("index", [0, 1, 3])
def test_the_odd_slice_is_blamed_not_its_neighbour(tmp_path, changes, field, odd, ref, index):
    # The reference is the value most files hold: the first file, when odd, is the one named.
    files = _ct(tmp_path)
    _edit(files[index], **changes)
    name = files[index].name.replace(".", r"\.")
    other = files[1 if index == 0 else 0].name.replace(".", r"\.")
    with pytest.raises(DicomTagError, match=rf"/{name}: {field}: {odd} differs from {ref} in "
                                            rf"{other} and 2 other files \(mixed series\?\)$") \
            as e:
        read_ct(tmp_path / "ct")
    assert e.value.field == field and e.value.file == str(files[index])


def test_two_odd_slices_are_counted(tmp_path):
    files = _ct(tmp_path, n=5)
    _edit(files[0], Rows=5)
    _edit(files[3], Rows=6)
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: Rows: 5 differs from 3 in "
                                            r"CT_0002\.dcm and 2 other files; 2 of 5 files "
                                            r"differ \(mixed series\?\)"):
        read_ct(tmp_path / "ct")


@pytest.mark.parametrize("index", [0, 2, 3])
def test_zero_byte_slice_is_named(tmp_path, index):
    # Skipping it would drop a slice: silently at either end of the stack (no gap is left).
    files = _ct(tmp_path)
    files[index].write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=rf"/CT_000{index + 1}\.dcm: file is empty "
                                                  r"\(0 bytes: no DICOM header, no PixelData\)") \
            as e:
        read_ct(tmp_path / "ct")
    assert e.value.file == str(files[index])
    with pytest.raises(UnreadableFileError, match=rf"CT_000{index + 1}\.dcm: file is empty"):
        list_series(tmp_path / "ct")


def test_zero_byte_hidden_file_is_ignored(tmp_path):
    _ct(tmp_path)
    (tmp_path / "ct" / ".keep").write_bytes(b"")
    assert read_ct(tmp_path / "ct").shape[0] == 4


@pytest.mark.parametrize("index", [0, 2])
@pytest.mark.parametrize(("value", "what"), [(None, r"no pixel data"),
                                             (b"", r"empty \(0 bytes of pixel data")])
def test_slice_without_pixel_data_is_named(tmp_path, index, value, what):
    files = _ct(tmp_path)
    if value is None:
        _edit(files[index], PixelData=None)
    else:
        _edit(files[index], PixelData=value)
    with pytest.raises(DicomTagError, match=rf"/CT_000{index + 1}\.dcm: PixelData: {what}") as e:
        read_ct(tmp_path / "ct")
    assert e.value.field == "PixelData" and e.value.file == str(files[index])


def test_missing_rescale_is_an_oddity(tmp_path):
    files = _ct(tmp_path)
    _edit(files[0], RescaleSlope=None)
    with pytest.warns(match=r"CT_0001\.dcm: RescaleSlope: missing; slope 1"):
        v = read_ct(tmp_path / "ct")
    assert v.array[0, 0, 0] == 0.0
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: RescaleSlope: missing"):
        read_ct(tmp_path / "ct", strict=True)
    _edit(files[1], RescaleSlope="9.75")  # then corrupt the stored text in place
    data = files[1].read_bytes()
    assert data.count(b"9.75") == 1
    files[1].write_bytes(data.replace(b"9.75", b"abcd"))
    with pytest.warns(match=r"CT_0001\.dcm: RescaleSlope: missing"), \
            pytest.raises(DicomTagError, match=r"CT_0002\.dcm: RescaleSlope: not a number: "
                                               r"'abcd'"):
        read_ct(tmp_path / "ct")


def test_malformed_value_under_strict_pydicom(tmp_path, monkeypatch):
    # With pydicom's reading validation set to RAISE, value conversion itself fails.
    from pydicom import config

    files = _ct(tmp_path)
    _edit(files[2], ImagePositionPatient=["1.5", "2.5", "4.0"])
    data = files[2].read_bytes()
    files[2].write_bytes(data.replace(b"1.5\\2.5\\4.0", b"1.5\\x.5\\4.0"))
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    with pytest.raises(DicomTagError, match=r"CT_0003\.dcm: ImagePositionPatient: malformed "
                                            r"value \(") as e:
        read_ct(tmp_path / "ct")
    _one_line(e)


def _nm(tmp_path, **kw):
    g = Geometry((3, 4, 5), (4.0, 4.0, 4.0))
    return write_nm(Volume(np.ones(g.shape), g, unit="counts"), tmp_path / "nm.dcm",
                    acquisition_duration_s=600.0, **kw)


def test_nm_frames_do_not_match_pixel_data(tmp_path):
    p = _nm(tmp_path)
    _edit(p, NumberOfFrames=4, NumberOfSlices=4)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: NumberOfFrames: NumberOfFrames x Rows x "
                                            r"Columns = 4 x 4 x 5 needs 160 bytes of PixelData, "
                                            r"the file holds 120") as e:
        read_nm(p)
    _one_line(e)
    _edit(p, NumberOfFrames=3, NumberOfSlices=6)
    with pytest.raises(DicomTagError, match=r"NumberOfSlices: NumberOfSlices 6 != "
                                            r"NumberOfFrames 3"):
        read_nm(p)


def test_nm_missing_geometry_tags(tmp_path):
    p = _nm(tmp_path)
    ds = pydicom.dcmread(p)
    del ds.DetectorInformationSequence[0].ImagePositionPatient
    ds.save_as(p)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: DetectorInformationSequence\[0\]\."
                                            r"ImagePositionPatient: required"):
        read_nm(p)
    p = _nm(tmp_path, overwrite=True)
    _edit(p, SpacingBetweenSlices=None, SliceThickness=None)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: SpacingBetweenSlices: SpacingBetweenSlices"
                                            r" and SliceThickness are both missing"):
        read_nm(p)
    p = _nm(tmp_path, overwrite=True)
    _edit(p, PixelSpacing=None)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: PixelSpacing: required attribute"):
        read_nm(p)


def test_nm_unknown_units(tmp_path):
    p = _nm(tmp_path)
    _edit(p, Units="PROPCNTS")
    with pytest.raises(UnitError, match=r"nm\.dcm: Units: NM Units 'PROPCNTS' not supported; "
                                        r"accepted: BQML, CNTS") as e:
        read_nm(p)
    _one_line(e)


def test_wrong_modality_and_arguments(tmp_path):
    files = _ct(tmp_path)
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: Modality: expected NM, got 'CT'"):
        read_nm(tmp_path / "ct")
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: Modality: expected PT, got 'CT'"):
        read_pt(tmp_path / "ct")
    with pytest.raises(InputError, match=r"ct: calibration_cps_per_mbq: applies to NM only, the "
                                         r"series is CT"):
        read_dicom_series(tmp_path / "ct", calibration_cps_per_mbq=10.0)
    with pytest.raises(InputError, match=r"ct: nuclide: applies to NM and PT only"):
        read_dicom_series(tmp_path / "ct", nuclide="Lu-177")
    for f in files:
        _edit(f, Modality="MR")
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: Modality: 'MR' not supported here; "
                                            r"accepted: CT, NM, PT"):
        read_dicom_series(tmp_path / "ct")


def test_reading_leaves_inputs_byte_identical(tmp_path):
    _ct(tmp_path)
    p = _nm(tmp_path)

    def digest():
        return {q: hashlib.sha256(q.read_bytes()).hexdigest() for q in tmp_path.rglob("*.dcm")}

    before = digest()
    read_dicom_series(tmp_path / "ct")
    read_nm(p, calibration_cps_per_mbq=10.0)
    list_series(tmp_path)
    assert digest() == before


def test_pixel_module_errors(tmp_path):
    files = _ct(tmp_path)
    _edit(files[0], PixelData=None)
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: PixelData: no pixel data"):
        read_ct(tmp_path / "ct")
    files = _ct(tmp_path, "rgb")
    _edit(files[0], SamplesPerPixel=3)
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: SamplesPerPixel: must be 1"):
        read_ct(tmp_path / "rgb")
    for name, slope in (("slope0", "0"), ("slope_neg", "-1")):
        files = _ct(tmp_path, name)
        _edit(files[1], RescaleSlope=slope)
        with pytest.raises(DicomTagError, match=rf"CT_0002\.dcm: RescaleSlope: must be > 0, got "
                                                rf"{slope} "):
            read_ct(tmp_path / name)
    files = _ct(tmp_path, "frames")
    _edit(files[1], NumberOfFrames=2)
    with pytest.raises(DicomTagError, match=r"CT_0002\.dcm: NumberOfFrames: 2 frames in a slice "
                                            r"file"):
        read_ct(tmp_path / "frames")


def test_empty_uids_warn_or_raise(tmp_path):
    files = _ct(tmp_path)
    for f in files:
        _edit(f, SOPInstanceUID="", SeriesInstanceUID="", StudyInstanceUID="")
    with pytest.warns(TheradoseWarning) as rec:
        v = read_ct(tmp_path / "ct")
    assert {str(w.message).split(": ")[1] for w in rec} == \
        {"SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"}
    assert "SOPInstanceUID: empty in 4 of 4 files" in str(rec[0].message)
    # The file meta keeps the UIDs the writer generated.
    assert v.meta["sop_instance_uids"] == [pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID
                                           for f in files]
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: SOPInstanceUID: empty in 4 of 4"):
        read_ct(tmp_path / "ct", strict=True)


def test_nm_geometry_tag_values(tmp_path):
    p = _nm(tmp_path)
    _edit(p, NumberOfFrames=0)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: NumberOfFrames: must be >= 1, got 0"):
        read_nm(p)
    p = _nm(tmp_path, overwrite=True)
    ds = pydicom.dcmread(p)
    ds.DetectorInformationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1]
    ds.save_as(p)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: ImageOrientationPatient: needs 6 values, "
                                            r"got 5"):
        read_nm(p)
    del ds.DetectorInformationSequence[0].ImageOrientationPatient
    ds.save_as(p)
    with pytest.raises(DicomTagError, match=r"DetectorInformationSequence\[0\]\."
                                            r"ImageOrientationPatient: required"):
        read_nm(p)
    p = _nm(tmp_path, overwrite=True)
    _edit(p, DecayCorrection="FRAME")
    with pytest.raises(DicomTagError, match=r"nm\.dcm: DecayCorrection: 'FRAME' not supported"):
        read_nm(p)


def test_pt_mixed_units_between_slices(tmp_path):
    from datetime import datetime

    from theradose.io import Administration, write_pt_series

    g = Geometry((3, 2, 2), (4.0, 4.0, 4.0))
    files = write_pt_series(
        Volume(np.ones(g.shape), g, unit="Bq/mL", acquisition_time=datetime(2024, 1, 1, 12)),
        tmp_path / "pt", administration=Administration("F-18", 300, datetime(2024, 1, 1, 11)),
        patient_weight_kg=60, half_life_s=6586.2, acquisition_duration_s=60)
    _edit(files[2], Units="GML")
    with pytest.raises(DicomTagError, match=r"PT_0003\.dcm: Units: 'GML' differs from 'BQML'"):
        read_pt(tmp_path / "pt")
