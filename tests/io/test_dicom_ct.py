"""CT series: the real anonymised CT (JPEG 2000, empty UIDs) and write -> read round trips."""

import hashlib
import warnings
from datetime import datetime

import numpy as np
import pydicom
import pytest

from theradose.errors import (
    DicomTagError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
    UnitError,
)
from theradose.io import (
    DicomStudyInfo,
    list_series,
    read_ct,
    read_dicom_series,
    read_nm,
    write_ct_series,
    write_nm,
)
from theradose.volume import Geometry, Volume


def _rotation(axis, angle_deg):
    """Rodrigues rotation matrix (right-handed, det +1)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(angle_deg)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _oblique_geometry(shape=(6, 5, 7)):
    # Anisotropic voxels and a direction that tilts all three axes.
    return Geometry(shape, (0.8, 1.3, 2.5), (-120.25, 33.5, -410.75),
                    _rotation((1.0, 2.0, 3.0), 17.0))


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


# ------------------------------------------------------------------------- real CT
def test_real_ct_geometry_values_and_meta(ts_example):
    folder = ts_example / "ct_dicom"
    before = _hashes(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v = read_dicom_series(folder)
    msgs = [str(w.message) for w in caught if issubclass(w.category, TheradoseWarning)]
    # The anonymiser blanked SOP, series and study UIDs: warned about, one line each.
    assert len(msgs) == 3 and all("\n" not in m and "ct_dicom/CT." in m for m in msgs)
    assert "SOPInstanceUID: empty in 20 of 20 files" in msgs[0]
    assert "SeriesInstanceUID: empty" in msgs[1] and "StudyInstanceUID: empty" in msgs[2]
    assert _hashes(folder) == before  # reading never modifies inputs

    # Independent reference: the headers themselves, read here with pydicom.
    hdrs = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(folder.iterdir())]
    z = sorted(float(h.ImagePositionPatient[2]) for h in hdrs)
    assert v.modality == "CT" and v.unit == "HU" and v.array.dtype == np.float32
    assert v.shape == (len(hdrs), int(hdrs[0].Rows), int(hdrs[0].Columns)) == (20, 512, 512)
    ps = [float(x) for x in hdrs[0].PixelSpacing]
    np.testing.assert_allclose(v.spacing_mm, (ps[1], ps[0], z[1] - z[0]))  # 0.977, 0.977, 2 mm
    x0, y0 = (float(c) for c in hdrs[0].ImagePositionPatient[:2])
    np.testing.assert_allclose(v.geometry.origin_mm, (x0, y0, z[0]))  # lowest z first (+normal)
    np.testing.assert_allclose(v.geometry.direction, np.eye(3))  # IOP 1\0\0\0\1\0
    assert v.acquisition_time == datetime(2022, 12, 8, 14, 3, 52, 457000)  # earliest slice
    first = min(hdrs, key=lambda h: float(h.ImagePositionPatient[2]))
    assert v.meta["sop_instance_uids"][0] == first.file_meta.MediaStorageSOPInstanceUID
    assert v.meta["patient_weight_kg"] == 79.0 and v.meta["series_description"] == "CT Body 3.0"
    assert v.meta["series_instance_uid"] == "" and v.meta["administration"] is None

    # HU plausibility (HU scale: air -1000, water 0; soft tissue 0..100 HU).
    a = v.array
    air = a[(a > -1024) & (a < -900)]  # -1024 is the padding outside the reconstruction circle
    assert air.size > 0.2 * a.size and -1020 < np.median(air) < -980
    soft = a[(a > -100) & (a < 100)]
    assert soft.size > 0.1 * a.size and 0 < np.median(soft) < 100

    # Independent decoder and geometry: GDCM through SimpleITK gives the same image.
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    im = r.Execute()
    np.testing.assert_allclose(im.GetOrigin(), v.geometry.origin_mm)
    np.testing.assert_allclose(im.GetSpacing(), v.spacing_mm)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(im), a)


def test_real_ct_strict_and_listing(ts_example):
    folder = ts_example / "ct_dicom"
    with pytest.raises(DicomTagError, match=r"ct_dicom/CT\.[0-9.]+: SOPInstanceUID: empty"):
        read_ct(folder, strict=True)
    series = list_series(folder)
    assert list(series) == [""] and len(series[""]) == 20  # empty SeriesInstanceUID


# ------------------------------------------------------------------------- round trips
def test_ct_round_trip_oblique_anisotropic(tmp_path):
    g = _oblique_geometry()
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1024, 3000, g.shape)
    t = datetime(2024, 3, 5, 14, 3, 52, 457123)
    info = DicomStudyInfo(patient_id="P001", patient_name="Doe^Jane", patient_sex="F",
                          patient_weight_kg=71.5, patient_height_m=1.68)
    files = write_ct_series(Volume(hu, g, unit="HU", modality="CT", acquisition_time=t),
                            tmp_path / "ct", patient=info, series_description="low dose CT")
    assert [f.name for f in files][:2] == ["CT_0001.dcm", "CT_0002.dcm"] and len(files) == 6
    before = _hashes(tmp_path / "ct")
    v = read_ct(tmp_path / "ct")
    assert _hashes(tmp_path / "ct") == before
    # Geometry first: DS strings keep >= 14 significant digits.
    assert v.geometry.shape == g.shape
    np.testing.assert_allclose(v.spacing_mm, g.spacing_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.origin_mm, g.origin_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.direction, g.direction, atol=1e-12)
    # HU fit int16 with slope 1, intercept 0: stored = round(HU), error <= 0.5 HU.
    assert np.max(np.abs(v.array - hu)) <= 0.5 + 1e-4  # + float32 rounding of ~3000 HU
    assert v.acquisition_time == t
    m = v.meta
    assert (m["study_instance_uid"], m["frame_of_reference_uid"]) == \
        (info.study_instance_uid, info.frame_of_reference_uid)
    assert (m["patient_id"], m["patient_name"], m["patient_sex"]) == ("P001", "Doe^Jane", "F")
    assert (m["patient_weight_kg"], m["patient_height_m"]) == (71.5, 1.68)
    assert m["series_description"] == "low dose CT"
    assert m["sop_instance_uids"] == [pydicom.dcmread(f).SOPInstanceUID for f in files]
    assert m["source_files"] == [str(f) for f in files]


def test_ct_large_range_uses_rescale_slope(tmp_path):
    g = Geometry((2, 3, 4), (1.0, 1.0, 1.0))
    hu = np.linspace(-50000, 90000, 24).reshape(g.shape)
    write_ct_series(Volume(hu, g, unit="HU"), tmp_path / "ct")
    ds = pydicom.dcmread(tmp_path / "ct" / "CT_0001.dcm")
    slope = float(ds.RescaleSlope)
    # Range 140000 HU over 65534 steps -> slope >= 2.136; rounding error <= slope / 2.
    assert slope == pytest.approx(140000 / 65534, rel=1e-6)
    v = read_ct(tmp_path / "ct")
    assert np.max(np.abs(v.array - hu)) <= slope / 2 + 0.01  # + float32 of 9e4


@pytest.mark.parametrize("syntax", ["JPEG2000Lossless", "JPEGLSLossless", "RLELossless"])
def test_compressed_transfer_syntaxes(tmp_path, syntax):
    # Lossless compression (pylibjpeg / pydicom RLE) must give back the stored integers exactly.
    import pydicom.uid

    g = Geometry((3, 32, 32), (0.9, 0.9, 2.0))
    hu = np.random.default_rng(2).integers(-1024, 2000, g.shape).astype(float)
    files = write_ct_series(Volume(hu, g, unit="HU"), tmp_path / "ct")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(getattr(pydicom.uid, syntax))
        ds.save_as(f)
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == getattr(pydicom.uid, syntax)
    np.testing.assert_array_equal(read_ct(tmp_path / "ct").array, hu)


def test_left_handed_direction_is_the_same_grid(tmp_path):
    # det = -1: slices run along -(row x column). The reader returns the same physical voxels
    # with the slice order reversed (positive slice direction).
    d = np.diag([1.0, 1.0, -1.0])
    g = Geometry((4, 2, 3), (1.0, 2.0, 3.0), (5.0, 6.0, 7.0), d)
    hu = np.arange(24, dtype=float).reshape(g.shape)
    write_ct_series(Volume(hu, g, unit="HU"), tmp_path / "ct")
    v = read_ct(tmp_path / "ct")
    np.testing.assert_allclose(v.geometry.voxel_centres(), g.voxel_centres()[::-1], atol=1e-9)
    np.testing.assert_array_equal(v.array, hu[::-1])
    assert np.linalg.det(v.geometry.direction) == pytest.approx(1.0)


def test_one_study_for_ct_and_nm(tmp_path):
    info = DicomStudyInfo(patient_id="VP-7")
    g = _oblique_geometry((3, 4, 5))
    ct = Volume(np.zeros(g.shape), g, unit="HU")
    nm = Volume(np.ones(g.shape), g, unit="counts", modality="NM")
    write_ct_series(ct, tmp_path / "ct", patient=info)
    write_nm(nm, tmp_path / "nm" / "spect.dcm", patient=info)
    a, b = read_ct(tmp_path / "ct"), read_nm(tmp_path / "nm" / "spect.dcm")
    for key in ("study_instance_uid", "frame_of_reference_uid", "patient_id"):
        assert a.meta[key] == b.meta[key] == getattr(info, key)
    assert a.meta["series_instance_uid"] != b.meta["series_instance_uid"]
    # A volume read back and written again stays in its study and frame of reference.
    write_ct_series(a, tmp_path / "ct2")
    c = read_ct(tmp_path / "ct2")
    assert c.meta["study_instance_uid"] == info.study_instance_uid
    assert c.meta["frame_of_reference_uid"] == info.frame_of_reference_uid
    # Explicit UIDs win over the patient object; a dict works as patient.
    write_ct_series(ct, tmp_path / "ct3", patient={"patient_id": "X"}, study_uid="1.2.3.4",
                    frame_of_reference_uid="1.2.3.5")
    d = read_ct(tmp_path / "ct3")
    assert (d.meta["study_instance_uid"], d.meta["frame_of_reference_uid"],
            d.meta["patient_id"]) == ("1.2.3.4", "1.2.3.5", "X")


def test_writer_refuses_existing_output_and_overwrites_cleanly(tmp_path):
    g = Geometry((5, 2, 2), (1.0, 1.0, 1.0))
    write_ct_series(Volume(np.zeros(g.shape), g, unit="HU"), tmp_path / "ct")
    short = Volume(np.ones((2, 2, 2)), Geometry((2, 2, 2), (1.0, 1.0, 1.0)), unit="HU")
    with pytest.raises(OutputExistsError, match=r"ct: output folder exists and is not empty"):
        write_ct_series(short, tmp_path / "ct")
    write_ct_series(short, tmp_path / "ct", overwrite=True)
    # The 5 old slices are gone: exactly the 2 new ones remain and read back.
    assert sorted(p.name for p in (tmp_path / "ct").iterdir()) == ["CT_0001.dcm", "CT_0002.dcm"]
    np.testing.assert_array_equal(read_ct(tmp_path / "ct").array, 1.0)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputExistsError, match=r"afile: exists and is not a folder"):
        write_ct_series(short, tmp_path / "afile")


def test_writer_validation():
    g = Geometry((1, 2, 2), (1.0, 1.0, 1.0))
    with pytest.raises(UnitError, match=r"^volume.unit: CT needs HU, got Bq/mL"):
        write_ct_series(Volume(np.zeros(g.shape), g, unit="Bq/mL"), "unused")
    bad = np.zeros(g.shape)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"^volume: contains NaN"):
        write_ct_series(Volume(bad, g, unit="HU"), "unused")
    with pytest.raises(InputError, match=r"^volume: must be a Volume"):
        write_ct_series(np.zeros(g.shape), "unused")
    with pytest.raises(InputError, match=r"^patient: unknown keys \['weight'\]"):
        write_ct_series(Volume(np.zeros(g.shape), g, unit="HU"), "unused", patient={"weight": 1})
    with pytest.raises(InputError, match=r"^patient: must be a DicomStudyInfo"):
        write_ct_series(Volume(np.zeros(g.shape), g, unit="HU"), "unused", patient="P1")
    with pytest.raises(InputError, match=r"^study_instance_uid: not a valid DICOM UID"):
        DicomStudyInfo(study_instance_uid="1.2.abc")
    with pytest.raises(InputError, match=r"^patient_sex: must be 'M', 'F', 'O'"):
        DicomStudyInfo(patient_sex="female")
    with pytest.raises(InputError, match=r"^patient_weight_kg: must be a number > 0"):
        DicomStudyInfo(patient_weight_kg=-3)


def test_no_warnings_for_a_clean_series(tmp_path):
    g = Geometry((2, 2, 2), (1.0, 1.0, 1.0))
    write_ct_series(Volume(np.zeros(g.shape), g, unit="HU"), tmp_path / "ct")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_ct(tmp_path / "ct", strict=True)
