"""RT Dose: round trips (quantisation bound, geometry, UIDs), hand-made variants, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from _rt_fixtures import check_message, ct_datasets, ct_volume, rotation_z, sha256, write_ct

from theradose.errors import (
    DicomTagError,
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
    UnitError,
    UnreadableFileError,
)
from theradose.io import read_rtdose, write_rtdose
from theradose.volume import Geometry, Volume

RNG = np.random.default_rng(11)


def _rot_x(deg):
    t = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


GRID = Geometry((5, 6, 7), (2.0, 3.0, 4.5), (-10.3, 20.1, 5.5))
DIRECTIONS = {
    "identity": np.eye(3),
    "rotated_z30": rotation_z(30),
    "oblique": rotation_z(20) @ _rot_x(35),
    "flipped_xy": np.diag([-1.0, -1.0, 1.0]),
}


@pytest.fixture
def ct(tmp_path):
    """A CT on its own grid (the dose grid differs): Volume with read_ct's meta keys."""
    g = Geometry((4, 8, 9), (1.5, 1.5, 3.0), (-20.0, -15.0, 0.0))
    return ct_volume(ct_datasets(g), g)


def _dose(direction=None, *, scale=50.0, sigma=False):
    g = Geometry(GRID.shape, GRID.spacing_mm, GRID.origin_mm,
                 np.eye(3) if direction is None else direction)
    arr = RNG.random(g.shape) * scale
    return Volume(arr, g, unit="Gy", sigma=arr * 0.05 if sigma else None)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_round_trip_within_half_a_quantisation_step(tmp_path, ct, name):
    dose = _dose(DIRECTIONS[name])
    out = write_rtdose(dose, tmp_path / "dose.dcm", reference=ct)
    back = read_rtdose(out)
    # geometry first: identical grid
    assert back.geometry.same_as(dose.geometry, tol_mm=1e-6)
    # quantisation bound: |stored - true| <= DoseGridScaling / 2, with
    # DoseGridScaling = max / (2**32 - 1) (rounded up in the 10th digit)
    s = back.meta["dose_grid_scaling"]
    assert s == pytest.approx(dose.array.max() / (2**32 - 1), rel=1e-9)
    assert s * (2**32 - 1) >= dose.array.max()
    assert np.max(np.abs(back.array - dose.array)) <= s / 2 * (1 + 1e-6)
    assert back.unit == "Gy" and back.modality == "RTDOSE"
    # frame of reference, study and patient come from the reference CT
    for key in ("frame_of_reference_uid", "study_instance_uid", "patient_id", "patient_name"):
        assert back.meta[key] == ct.meta[key]


def test_left_handed_grid_is_the_same_image_in_physical_space(tmp_path):
    # slice axis against row x column: frames are stored reversed with increasing offsets
    dose = _dose(np.diag([1.0, 1.0, -1.0]))
    with pytest.warns(TheradoseWarning, match="without reference"):
        back = read_rtdose(write_rtdose(dose, tmp_path / "d.dcm"))
    np.testing.assert_allclose(back.geometry.voxel_centres(),
                               dose.geometry.voxel_centres()[::-1], atol=1e-6)
    s = back.meta["dose_grid_scaling"]
    assert np.max(np.abs(back.array - dose.array[::-1])) <= s / 2 * (1 + 1e-6)
    ds = pydicom.dcmread(tmp_path / "d.dcm")
    assert [float(v) for v in ds.GridFrameOffsetVector] == [0.0, 4.5, 9.0, 13.5, 18.0]


def test_dicom_attributes(tmp_path, ct):
    out = write_rtdose(_dose(), tmp_path / "d.dcm", reference=ct, comment="cycle 1")
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2"  # RT Dose Storage
    assert (ds.Modality, ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == \
        ("RTDOSE", "GY", "PHYSICAL", "RECORD")
    assert "ReferencedRTPlanSequence" not in ds
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (32, 32, 31, 0)
    assert ds.NumberOfFrames == 5 and ds.FrameIncrementPointer == 0x3004000C
    assert [float(v) for v in ds.GridFrameOffsetVector] == [0.0, 4.5, 9.0, 13.5, 18.0]
    assert [float(v) for v in ds.PixelSpacing] == [3.0, 2.0]  # row spacing (y), column (x)
    assert ds.DoseComment == "cycle 1"
    assert len(str(ds.DoseGridScaling)) <= 16  # DS
    assert int(np.frombuffer(ds.PixelData, "<u4").max()) <= 2**32 - 1
    assert ds.FrameOfReferenceUID == ct.meta["frame_of_reference_uid"]


def test_scaling_by_hand(tmp_path):
    # max = (2**32 - 1) * 1e-6 Gy gives DoseGridScaling exactly 1e-6 and max pixel 2**32 - 1
    arr = np.zeros(GRID.shape)
    arr[0, 0, 0] = (2**32 - 1) * 1e-6
    arr[1, 2, 3] = 1.0  # 1 Gy = 1e6 steps exactly
    with pytest.warns(TheradoseWarning):
        out = write_rtdose(Volume(arr, GRID, unit="Gy"), tmp_path / "d.dcm")
    ds = pydicom.dcmread(out)
    assert float(ds.DoseGridScaling) == 1e-6
    pix = np.frombuffer(ds.PixelData, "<u4").reshape(GRID.shape)
    assert pix[0, 0, 0] == 2**32 - 1 and pix[1, 2, 3] == 1_000_000


def test_mgy_is_converted_and_types_are_written(tmp_path, ct):
    arr = np.full(GRID.shape, 1500.0)  # 1500 mGy = 1.5 Gy
    out = write_rtdose(Volume(arr, GRID, unit="mGy"), tmp_path / "d.dcm", reference=ct,
                       dose_type="effective", dose_summation_type="PLAN")
    back = read_rtdose(out)
    np.testing.assert_allclose(back.array, 1.5, rtol=1e-9)
    assert (back.meta["dose_type"], back.meta["dose_summation_type"]) == ("EFFECTIVE", "PLAN")


def test_grid_resampling_conserves_the_mean(tmp_path, ct):
    # 2x2x2 blocks of a 4x4x4 dose averaged by hand: block means of arange values
    g = Geometry((4, 4, 4), (1.0, 1.0, 1.0))
    arr = np.arange(64, dtype=float).reshape(4, 4, 4)
    coarse = Geometry((2, 2, 2), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))
    out = write_rtdose(Volume(arr, g, unit="Gy"), tmp_path / "d.dcm", reference=ct, grid=coarse)
    back = read_rtdose(out)
    assert back.geometry.same_as(coarse)
    expected = arr.reshape(2, 2, 2, 2, 2, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(back.array, expected, atol=back.meta["dose_grid_scaling"])


def test_reference_as_folder_and_datasets(tmp_path):
    g = Geometry((3, 5, 5), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    files = write_ct(tmp_path / "ct", g)
    dss = [pydicom.dcmread(f) for f in files]
    for i, ref in enumerate([tmp_path / "ct", dss]):
        back = read_rtdose(write_rtdose(_dose(), tmp_path / f"d{i}.dcm", reference=ref))
        assert back.meta["frame_of_reference_uid"] == dss[0].FrameOfReferenceUID
        assert back.meta["study_instance_uid"] == dss[0].StudyInstanceUID
        assert back.meta["patient_id"] == "RT-001"


def test_sigma_as_separate_file(tmp_path, ct):
    dose = _dose(rotation_z(30), sigma=True)
    out = write_rtdose(dose, tmp_path / "dose.dcm", reference=ct, sigma_as_separate_file=True)
    sig_file = tmp_path / "dose_sigma.dcm"
    back = read_rtdose(out, sigma_path=sig_file)
    s = read_rtdose(sig_file).meta["dose_grid_scaling"]
    assert np.max(np.abs(back.sigma - dose.sigma)) <= s / 2 * (1 + 1e-6)
    sds = pydicom.dcmread(sig_file)
    assert "uncertainty" in sds.DoseComment
    ds = pydicom.dcmread(out)
    assert sds.FrameOfReferenceUID == ds.FrameOfReferenceUID
    assert sds.StudyInstanceUID == ds.StudyInstanceUID
    assert sds.SeriesInstanceUID != ds.SeriesInstanceUID


def test_inputs_are_not_modified_by_reading(tmp_path, ct):
    out = write_rtdose(_dose(sigma=True), tmp_path / "d.dcm", reference=ct,
                       sigma_as_separate_file=True)
    before = sha256(out), sha256(tmp_path / "d_sigma.dcm")
    read_rtdose(out, sigma_path=tmp_path / "d_sigma.dcm")
    assert (sha256(out), sha256(tmp_path / "d_sigma.dcm")) == before


# ------------------------------------------------------------------ files written by others
def _rewrite(src, dst, **changes):
    ds = pydicom.dcmread(src)
    for kw, value in changes.items():
        if value is None:
            delattr(ds, kw)
        else:
            setattr(ds, kw, value)
    ds.save_as(dst)
    return dst


def test_reads_16_bit_absolute_offsets_and_decreasing_frames(tmp_path, ct):
    # Hand-built variants of a 3-frame axial dose: 16-bit pixels, scaling 0.01 Gy
    g = Geometry((3, 2, 2), (2.0, 2.0, 5.0), (10.0, 20.0, -30.0))
    out = write_rtdose(Volume(np.ones(g.shape), g, unit="Gy"), tmp_path / "d.dcm", reference=ct)
    pix = np.arange(12, dtype="<u2").reshape(3, 2, 2)
    base = dict(BitsAllocated=16, BitsStored=16, HighBit=15, DoseGridScaling="0.01",
                PixelData=pix.tobytes())
    # (b) absolute z positions (first element equals IPP z)
    v = read_rtdose(_rewrite(out, tmp_path / "abs.dcm", GridFrameOffsetVector=[-30, -25, -20],
                             **base))
    assert v.geometry.same_as(g)
    np.testing.assert_allclose(v.array, pix * 0.01)
    # decreasing relative offsets: slice axis points against row x column
    v = read_rtdose(_rewrite(out, tmp_path / "dec.dcm", GridFrameOffsetVector=[0, -5, -10],
                             **base))
    np.testing.assert_allclose(v.geometry.direction[:, 2], [0, 0, -1])
    np.testing.assert_allclose(v.geometry.index_to_physical([0, 0, 2]), [10, 20, -40])
    np.testing.assert_allclose(v.array, pix * 0.01)


def test_single_frame_without_offsets(tmp_path, ct):
    g = Geometry((1, 3, 4), (1.0, 1.0, 2.5))
    out = write_rtdose(Volume(np.full(g.shape, 3.0), g, unit="Gy"), tmp_path / "d.dcm",
                       reference=ct)
    v = read_rtdose(_rewrite(out, tmp_path / "one.dcm", GridFrameOffsetVector=None))
    assert v.geometry.same_as(g) and v.array.shape == (1, 3, 4)
    np.testing.assert_allclose(v.array, 3.0)


# ------------------------------------------------------------------ bad inputs
def test_negative_dose_is_refused(tmp_path, ct):
    dose = _dose()
    arr = dose.array.copy()
    arr[0, 0, 0] = -0.1
    with pytest.raises(InputError, match=r"dose\.array: absorbed dose must be >= 0 Gy") as e:
        write_rtdose(dose.replace(array=arr), tmp_path / "d.dcm", reference=ct)
    check_message(e.value, field="dose.array")
    assert not (tmp_path / "d.dcm").exists()


def test_nan_dose_is_refused(tmp_path, ct):
    arr = np.ones(GRID.shape)
    arr[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="NaN or infinite") as e:
        write_rtdose(Volume(arr, GRID, unit="Gy"), tmp_path / "d.dcm", reference=ct)
    check_message(e.value, field="dose.array")


def test_wrong_unit_is_refused(tmp_path, ct):
    with pytest.raises(UnitError, match=r"dose\.unit: unit 'MBq\*h' is not an absorbed dose") as e:
        write_rtdose(Volume(np.ones(GRID.shape), GRID, unit="MBq*h"), tmp_path / "d.dcm",
                     reference=ct)
    check_message(e.value, field="dose.unit")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"dose_type": "ERROR"}, "dose_type"),
    ({"dose_summation_type": "BEAM"}, "dose_summation_type"),
    ({"sigma_as_separate_file": True}, "sigma_as_separate_file"),
    ({"comment": "x" * 65}, "comment"),
])
def test_bad_arguments(tmp_path, ct, kwargs, field):
    with pytest.raises(InputError, match=field) as e:
        write_rtdose(_dose(), tmp_path / "d.dcm", reference=ct, **kwargs)
    check_message(e.value, field=field)


def test_dose_must_be_a_volume(tmp_path):
    with pytest.raises(InputError, match="must be a Volume") as e:
        write_rtdose(np.ones((2, 2, 2)), tmp_path / "d.dcm")
    check_message(e.value, field="dose")


def test_existing_output_is_not_overwritten(tmp_path, ct):
    out = write_rtdose(_dose(), tmp_path / "d.dcm", reference=ct)
    before = sha256(out)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_rtdose(_dose(scale=3.0), out, reference=ct)
    assert sha256(out) == before
    write_rtdose(_dose(scale=3.0), out, reference=ct, overwrite=True)
    assert read_rtdose(out).array.max() < 3.0 + 1e-6


def test_existing_sigma_output_is_not_overwritten(tmp_path, ct):
    (tmp_path / "d_sigma.dcm").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="d_sigma.dcm"):
        write_rtdose(_dose(sigma=True), tmp_path / "d.dcm", reference=ct,
                     sigma_as_separate_file=True)
    assert (tmp_path / "d_sigma.dcm").read_bytes() == b"keep"
    assert not (tmp_path / "d.dcm").exists()


@pytest.fixture
def good_file(tmp_path, ct):
    return write_rtdose(_dose(), tmp_path / "good.dcm", reference=ct)


def test_offsets_inconsistent_with_number_of_frames(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", GridFrameOffsetVector=[0, 4.5, 9])
    with pytest.raises(DicomTagError, match="has 3 values but NumberOfFrames is 5") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="GridFrameOffsetVector")


def test_uneven_offsets(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", GridFrameOffsetVector=[0, 4.5, 9, 15, 18])
    with pytest.raises(DicomTagError, match="monotonically with even spacing") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="GridFrameOffsetVector")


def test_missing_offsets_in_multiframe(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", GridFrameOffsetVector=None)
    with pytest.raises(DicomTagError, match="missing, but NumberOfFrames is 5") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="GridFrameOffsetVector")


def test_missing_dose_grid_scaling(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", DoseGridScaling=None)
    with pytest.raises(DicomTagError, match="missing or empty") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="DoseGridScaling")


def test_zero_dose_grid_scaling(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", DoseGridScaling="0")
    with pytest.raises(DicomTagError, match="must be > 0") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="DoseGridScaling")


def test_relative_dose_units(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", DoseUnits="RELATIVE")
    with pytest.raises(UnitError, match="got 'RELATIVE'") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="DoseUnits")


def test_not_an_rt_dose(tmp_path):
    g = Geometry((2, 3, 3), (1.0, 1.0, 1.0))
    ct_file = write_ct(tmp_path / "ct", g)[0]
    with pytest.raises(DicomTagError, match="not an RT Dose") as e:
        read_rtdose(ct_file)
    check_message(e.value, file=ct_file, field="Modality")


def test_no_pixel_data(tmp_path, good_file):
    bad = _rewrite(good_file, tmp_path / "bad.dcm", PixelData=None)
    with pytest.raises(DicomTagError, match="no Pixel Data") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="PixelData")


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableFileError, match="does not exist"):
        read_rtdose(tmp_path / "nope.dcm")


def test_sigma_on_another_grid(tmp_path, ct):
    a = write_rtdose(_dose(), tmp_path / "a.dcm", reference=ct)
    g = Geometry((2, 2, 2), (1.0, 1.0, 1.0))
    b = write_rtdose(Volume(np.ones(g.shape), g, unit="Gy"), tmp_path / "b.dcm", reference=ct)
    with pytest.raises(GeometryMismatchError, match="different grids") as e:
        read_rtdose(a, sigma_path=b)
    check_message(e.value, file=b, field="shape")


def test_no_reference_warns(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        write_rtdose(_dose(), tmp_path / "d.dcm")
    assert any("will not register" in str(x.message) for x in w)


def test_offsets_neither_relative_nor_absolute(tmp_path, good_file):
    # IPP z is 5.5 mm: a first offset of 2 fits neither reading of PS3.3 C.8.8.3.2
    bad = _rewrite(good_file, tmp_path / "bad.dcm", GridFrameOffsetVector=[2, 6.5, 11, 15.5, 20])
    with pytest.raises(DicomTagError, match="neither 0") as e:
        read_rtdose(bad)
    check_message(e.value, file=bad, field="GridFrameOffsetVector")


def test_existing_dose_output_stops_the_sigma_file_too(tmp_path, ct):
    (tmp_path / "d.dcm").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match=r"d\.dcm: output exists"):
        write_rtdose(_dose(sigma=True), tmp_path / "d.dcm", reference=ct,
                     sigma_as_separate_file=True)
    assert not (tmp_path / "d_sigma.dcm").exists()
