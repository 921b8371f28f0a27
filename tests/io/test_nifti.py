"""NIfTI + JSON sidecar and NIfTI label maps: round trips, LPS/RAS, validation, real data."""

import hashlib
import json
import warnings
from datetime import datetime

import nibabel as nib
import numpy as np
import pytest

from theradose import __version__
from theradose.errors import (
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
    UnitError,
    UnknownNuclideError,
    UnreadableFileError,
)
from theradose.io import (
    Administration,
    read_labelmap,
    read_nifti,
    read_sidecar,
    sidecar_path,
    write_labelmap,
    write_nifti,
)
from theradose.volume import Geometry, LabelMap, Volume


def _rotation(ax, ay, az):
    """Rotation matrix R = Rz Ry Rx (angles in degrees), built by hand."""
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


ROT = _rotation(10, 20, 30)
INJ = datetime(2024, 5, 1, 9, 0)
ADM = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")


def _spect(dtype=np.float32, *, sigma=True, **kw) -> Volume:
    rng = np.random.default_rng(1)
    arr = (rng.random((5, 6, 7)) * 1000).astype(dtype)
    geom = Geometry(arr.shape, (0.7, 1.3, 2.9), (-100.123456789, 50.1, 3.3), ROT)
    meta = {"administration": ADM, "nuclide": "Lu-177", "acquisition_duration_s": 1800.0,
            "frame_duration_s": 30.0, "calibration_cps_per_mbq": 9.6, "patient_weight_kg": 81.5,
            "series_description": "SPECT 24h", "n_iterations": np.int64(8)}
    meta.update(kw.pop("meta", {}))
    return Volume(arr, geom, unit="Bq/mL", modality="NM",
                  acquisition_time=datetime(2024, 5, 2, 9, 30, 15, 250000),
                  sigma=(arr * 0.1).astype(dtype) if sigma else None, meta=meta,
                  history=("read NM", "scatter corrected"), **kw)


def _md5(p):
    return hashlib.md5(p.read_bytes()).hexdigest()


def _one_line(exc, *parts):
    msg = str(exc.value)
    assert "\n" not in msg
    for part in parts:
        assert str(part) in msg


# ---------------------------------------------------------------------------------- round trips
def test_round_trip_is_exact_for_rotated_anisotropic_float32(tmp_path):
    v = _spect()
    out = write_nifti(v, tmp_path / "spect.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "spect.json", "spect.nii.gz", "spect_sigma.nii.gz"]
    w = read_nifti(out)
    assert w.array.dtype == np.float32 and np.array_equal(w.array, v.array)
    assert w.sigma.dtype == np.float32 and np.array_equal(w.sigma, v.sigma)
    # geometry bit-exact: restored from the sidecar's float64 copy
    assert w.geometry.shape == v.geometry.shape
    assert w.geometry.spacing_mm == v.geometry.spacing_mm
    assert w.geometry.origin_mm == v.geometry.origin_mm
    assert np.array_equal(w.geometry.direction, v.geometry.direction)
    assert (w.unit, w.modality, w.acquisition_time) == ("Bq/mL", "NM", v.acquisition_time)
    assert w.history == v.history
    assert w.meta["administration"] == ADM
    for key in ("nuclide", "acquisition_duration_s", "frame_duration_s", "calibration_cps_per_mbq",
                "patient_weight_kg", "series_description"):
        assert w.meta[key] == v.meta[key]
    assert w.meta["n_iterations"] == 8 and w.meta["source_file"] == str(out)
    # writing what was read gives the same sidecar (source_file is rebuilt on reading, not kept)
    again = write_nifti(w, tmp_path / "again" / "spect.nii.gz")
    s1 = json.loads((tmp_path / "spect.json").read_text())
    s2 = json.loads(sidecar_path(again).read_text())
    assert "source_file" not in s2 and s1 == {**s2, "sigma_file": "spect_sigma.nii.gz"}
    # an explicit sidecar path
    assert read_nifti(again, sidecar=tmp_path / "spect.json").meta["administration"] == ADM


def test_sidecar_fields_as_documented(tmp_path):
    out = write_nifti(_spect(), tmp_path / "spect.nii")
    side = json.loads((tmp_path / "spect.json").read_text())
    assert side["modality"] == "NM" and side["unit"] == "Bq/mL"
    assert side["acquisition_time"] == "2024-05-02T09:30:15.250000"
    assert side["administration"] == {"nuclide": "Lu-177", "injected_activity_mbq": 7400.0,
                                      "injection_time": "2024-05-01T09:00:00",
                                      "radiopharmaceutical": "177Lu-PSMA-617"}
    assert side["nuclide"] == "Lu-177" and side["acquisition_duration_s"] == 1800.0
    assert side["frame_duration_s"] == 30.0 and side["calibration_cps_per_mbq"] == 9.6
    assert side["patient_weight_kg"] == 81.5 and side["history"] == ["read NM",
                                                                      "scatter corrected"]
    assert side["theradose_version"] == __version__
    assert side["sigma_file"] == "spect_sigma.nii"
    assert side["geometry"]["spacing_mm"] == [0.7, 1.3, 2.9]
    assert side["series_description"] == "SPECT 24h" and side["n_iterations"] == 8
    assert out.suffix == ".nii" and (tmp_path / "spect_sigma.nii").is_file()


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint8, np.int32])
def test_dtype_is_preserved(tmp_path, dtype):
    v = _spect(dtype, sigma=False)
    w = read_nifti(write_nifti(v, tmp_path / "x.nii.gz"))
    assert w.array.dtype == dtype and np.array_equal(w.array, v.array) and w.sigma is None


def test_bool_and_float16_are_written_as_uint8_and_float32(tmp_path):
    g = Geometry((2, 2, 2), (1, 1, 1))
    mask = np.zeros(g.shape, bool)
    mask[0, 1, 1] = True
    w = read_nifti(write_nifti(Volume(mask, g), tmp_path / "m.nii.gz"))
    assert w.array.dtype == np.uint8 and np.array_equal(w.array, mask.astype(np.uint8))
    half = np.full(g.shape, 0.5, np.float16)  # 0.5 is exact in every float format
    w = read_nifti(write_nifti(Volume(half, g), tmp_path / "h.nii.gz"))
    assert w.array.dtype == np.float32 and np.all(w.array == 0.5)


def test_non_serialisable_meta_is_skipped_and_reserved_keys_are_not_overwritten(tmp_path):
    v = _spect(sigma=False, meta={"handle": object(), "history": "not mine",
                                  "when": datetime(2024, 1, 2, 3, 4), "pos": (1.5, 2.5),
                                  "folder": tmp_path, "vec": np.array([1.0, 2.0])})
    write_nifti(v, tmp_path / "x.nii.gz")
    side = json.loads((tmp_path / "x.json").read_text())
    assert "handle" not in side
    assert side["pos"] == [1.5, 2.5] and side["folder"] == str(tmp_path)
    assert side["vec"] == [1.0, 2.0]
    assert side["history"] == ["read NM", "scatter corrected"]  # the volume's, not meta's
    assert side["when"] == "2024-01-02T03:04:00"


# ---------------------------------------------------------------------------------- LPS / RAS
def test_lps_point_maps_to_the_nifti_ras_affine(tmp_path):
    # NIfTI's world space is RAS: (x, y, z)_RAS = (-x, -y, z)_LPS (NIfTI-1 header documentation,
    # qform/sform; ITK/DICOM use LPS). So affine_RAS = diag(-1, -1, 1, 1) @ affine_LPS.
    v = _spect(sigma=False)
    out = write_nifti(v, tmp_path / "x.nii.gz")
    img = nib.load(out)
    ijk = np.array([2.0, 3.0, 1.0])  # x-, y-, z-index
    lps = v.geometry.index_to_physical(ijk)
    ras = img.affine @ np.append(ijk, 1.0)
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)  # float32 header
    np.testing.assert_allclose(img.affine, np.diag([-1, -1, 1, 1]) @ v.geometry.affine(),
                               atol=1e-4)
    # nibabel indexes data [i, j, k] (x first); theradose [z, y, x]
    data = np.asanyarray(img.dataobj)
    assert data[2, 3, 1] == v.array[1, 3, 2]
    assert np.array_equal(data, v.array.transpose(2, 1, 0))


def test_header_geometry_without_sidecar_is_within_float32_rounding(tmp_path):
    v = _spect(sigma=False)
    out = write_nifti(v, tmp_path / "x.nii.gz")
    w = read_nifti(out, sidecar=False, unit="Bq/mL", modality="NM")
    np.testing.assert_allclose(w.geometry.origin_mm, v.geometry.origin_mm, atol=1e-4)
    np.testing.assert_allclose(w.geometry.spacing_mm, v.geometry.spacing_mm, rtol=1e-6)
    np.testing.assert_allclose(w.geometry.direction, v.geometry.direction, atol=1e-6)
    assert w.acquisition_time is None and "administration" not in w.meta


def test_sidecar_geometry_that_disagrees_with_header_warns_and_header_wins(tmp_path):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    side = json.loads((tmp_path / "x.json").read_text())
    side["geometry"]["origin_mm"][0] += 10.0  # the image was moved by another tool
    (tmp_path / "x.json").write_text(json.dumps(side))
    with pytest.warns(TheradoseWarning, match="geometry: the sidecar's grid differs"):
        w = read_nifti(out)
    assert w.geometry.origin_mm[0] == pytest.approx(-100.123456789, abs=1e-4)


# ---------------------------------------------------------------------------------- arguments
def test_without_sidecar_unit_and_modality_are_required(tmp_path):
    v = _spect(sigma=False)
    out = write_nifti(v, tmp_path / "x.nii.gz")
    (tmp_path / "x.json").unlink()
    with pytest.raises(InputError, match=r"x\.nii\.gz: unit: unit unknown: there is no sidecar "
                       r"x\.json; pass unit=") as exc:
        read_nifti(out)
    _one_line(exc)
    with pytest.raises(InputError, match="modality: modality unknown"):
        read_nifti(out, unit="Bq/mL")
    w = read_nifti(out, unit="kBq/mL", modality="nm", acquisition_time="2024-05-02T09:30:00",
                   administration=ADM)
    assert (w.unit, w.modality) == ("kBq/mL", "NM")
    assert w.acquisition_time == datetime(2024, 5, 2, 9, 30) and w.meta["administration"] == ADM
    with pytest.raises(UnreadableFileError, match="sidecar does not exist"):
        read_nifti(out, sidecar=True)


def test_arguments_fill_gaps_and_must_agree_with_the_sidecar(tmp_path):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    # same unit in another spelling (DICOM code) agrees
    assert read_nifti(out, unit="BQML", modality="NM").unit == "Bq/mL"
    with pytest.raises(InputError, match=r"x\.json: unit: argument unit='HU' contradicts the "
                       r"sidecar value 'Bq/mL'") as exc:
        read_nifti(out, unit="HU")
    _one_line(exc)
    with pytest.raises(InputError, match="acquisition_time: argument acquisition_time="):
        read_nifti(out, acquisition_time=datetime(2024, 5, 2, 10, 0))
    other = Administration("Lu-177", 7000.0, INJ)
    with pytest.raises(InputError, match="administration: argument administration="):
        read_nifti(out, administration=other)
    side = json.loads((tmp_path / "x.json").read_text())
    del side["acquisition_time"]
    (tmp_path / "x.json").write_text(json.dumps(side))
    t = datetime(2024, 5, 2, 11, 0)
    assert read_nifti(out, acquisition_time=t).acquisition_time == t  # fills the gap


def test_argument_validation(tmp_path):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    with pytest.raises(UnitError, match="^unit: unknown unit 'furlongs'"):
        read_nifti(out, unit="furlongs")
    with pytest.raises(InputError, match="^modality: unknown modality 'XR'"):
        read_nifti(out, modality="XR")
    with pytest.raises(InputError, match="^administration: must be an Administration"):
        read_nifti(out, administration={"nuclide": "Lu-177"})
    with pytest.raises(InputError, match=r"x\.nii\.gz: acquisition_time: invalid ISO 8601"):
        read_nifti(out, acquisition_time="yesterday")
    with pytest.raises(InputError, match=r"path: not a NIfTI file name: 'x\.mhd'"):
        read_nifti(tmp_path / "x.mhd")
    with pytest.raises(InputError, match=r"path: not a NIfTI file name: 'y\.nrrd'"):
        write_nifti(_spect(), tmp_path / "y.nrrd")
    with pytest.raises(InputError, match="^volume: must be a Volume"):
        write_nifti(np.zeros((2, 2, 2)), tmp_path / "z.nii.gz")


# ---------------------------------------------------------------------------------- sidecar
@pytest.mark.parametrize(("key", "value", "err", "pattern"), [
    ("unit", "furlongs", UnitError, r"unit: unknown unit 'furlongs'"),
    ("unit", 3, InputError, r"unit: must be a unit string"),
    ("acquisition_time", "2024-13-45T10:00", InputError, r"acquisition_time: invalid ISO 8601"),
    ("acquisition_time", "2024-05-02", InputError, r"acquisition_time: date without a time"),
    ("acquisition_time", "2024-05-02T10:00:00+02:00", InputError,
     r"acquisition_time: UTC offset"),
    ("acquisition_time", 1714640400, InputError, r"acquisition_time: must be an ISO 8601"),
    ("modality", "XR", InputError, r"modality: unknown modality 'XR'"),
    ("modality", "", InputError, r"modality: must be a non-empty string"),
    ("administration", {"nuclide": "Lu-177", "injected_activity_mbq": 7400}, InputError,
     r"administration\.injection_time: required key is missing"),
    ("administration", {"nuclide": "Lu-177", "injected_activity_mbq": -1,
                        "injection_time": "2024-05-01T09:00"}, InputError,
     r"administration\.injected_activity_mbq: must be a finite number > 0"),
    ("administration", {"nuclide": "Lu-177", "injected_activity_mbq": 7400,
                        "injection_time": "9 am"}, InputError,
     r"administration\.injection_time: invalid ISO 8601"),
    ("administration", {"nuclide": "Lu-177", "injected_activity_mbq": 7400,
                        "injection_time": "2024-05-01T09:00", "dose": 1}, InputError,
     r"administration: unknown keys \['dose'\]"),
    ("administration", "Lu-177", InputError, r"administration: must be an object"),
    ("administration", {"nuclide": "Lu-177", "injected_activity_mbq": 7400,
                        "injection_time": "2024-05-01T09:00", "radiopharmaceutical": 5},
     InputError, r"administration\.radiopharmaceutical: must be a string"),
    ("frame_duration_s", -30, InputError, r"frame_duration_s: must be a finite number > 0"),
    ("acquisition_duration_s", "1800", InputError, r"acquisition_duration_s: must be a finite"),
    ("calibration_cps_per_mbq", True, InputError, r"calibration_cps_per_mbq: must be a finite"),
    ("patient_weight_kg", 0, InputError, r"patient_weight_kg: must be a finite number > 0"),
    ("nuclide", 177, UnknownNuclideError, r"nuclide: expected a nuclide name such as 'Lu-177'"),
    ("nuclide", "Lu-999", UnknownNuclideError, r"nuclide: unknown nuclide 'Lu-999'"),
    ("administration", {"nuclide": "Xx-1", "injected_activity_mbq": 7400,
                        "injection_time": "2024-05-01T09:00"}, UnknownNuclideError,
     r"administration\.nuclide: unknown nuclide 'Xx-1'"),
    ("history", "read", InputError, r"history: must be a list of strings"),
    ("geometry", {"spacing_mm": [1, 1, 1]}, InputError, r"geometry: invalid geometry"),
    ("labels", {"one": "liver"}, InputError, r"labels: key 'one' is not an integer label"),
    ("sigma_file", "", InputError, r"sigma_file: must be a non-empty string"),
])
def test_sidecar_validation_names_file_and_key(tmp_path, key, value, err, pattern):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    side_p = tmp_path / "x.json"
    side = json.loads(side_p.read_text())
    side[key] = value
    side_p.write_text(json.dumps(side))
    with pytest.raises(err, match=f"^{side_p}: {pattern}") as exc:
        read_nifti(out)
    _one_line(exc, side_p, key)


def test_sidecar_that_is_not_json_or_not_an_object(tmp_path):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    side_p = tmp_path / "x.json"
    side_p.write_text('{"unit": "Bq/mL",,}')
    with pytest.raises(UnreadableFileError, match=r"x\.json: sidecar is not valid JSON \(line 1, "
                       "column 18") as exc:
        read_nifti(out)
    _one_line(exc)
    side_p.write_text("[1, 2]")
    with pytest.raises(InputError, match=r"\(top level\): sidecar must be a JSON object, got "
                       "list"):
        read_nifti(out)
    side_p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UnreadableFileError, match="cannot read sidecar"):
        read_nifti(out)
    with pytest.raises(UnreadableFileError, match=r"nope\.json: sidecar does not exist"):
        read_nifti(out, sidecar=tmp_path / "nope.json")


def test_sidecar_nulls_mean_absent_and_typos_warn(tmp_path):
    out = write_nifti(_spect(sigma=False), tmp_path / "x.nii.gz")
    side_p = tmp_path / "x.json"
    side = json.loads(side_p.read_text())
    side.update(acquisition_time=None, nuclide=None, acquistion_time="2024-05-02T09:30")
    side_p.write_text(json.dumps(side))
    with pytest.warns(TheradoseWarning, match="acquistion_time: unknown sidecar key, kept in "
                      "meta; did you mean 'acquisition_time'"):
        w = read_nifti(out)
    assert w.acquisition_time is None and "nuclide" not in w.meta
    assert w.meta["acquistion_time"] == "2024-05-02T09:30"
    with pytest.warns(TheradoseWarning, match="did you mean"):
        parsed = read_sidecar(side_p)
    side = json.loads(side_p.read_text())
    side.update(nuclide="177Lu", administration={**ADM.to_dict(), "nuclide": "lu177"})
    side_p.write_text(json.dumps(side))
    with pytest.warns(TheradoseWarning, match="did you mean"):
        w = read_nifti(out)  # nuclide spellings are normalised to ICRP-107's
    assert w.meta["nuclide"] == "Lu-177" and w.meta["administration"] == ADM
    assert sidecar_path(tmp_path / "x.nii.gz") == side_p
    assert sidecar_path("a/b.c.nii").name == "b.c.json"
    assert parsed["unit"] == "Bq/mL" and isinstance(parsed["administration"], Administration)


def test_sigma_on_another_grid_is_an_error(tmp_path):
    out = write_nifti(_spect(), tmp_path / "x.nii.gz")
    small = Volume.from_array(np.zeros((2, 2, 2), np.float32), spacing_mm=(1, 1, 1))
    (tmp_path / "x_sigma.nii.gz").unlink()
    write_nifti(small, tmp_path / "x_sigma.nii.gz")
    with pytest.raises(GeometryMismatchError, match=r"x\.json: sigma_file: sigma image "
                       r"x_sigma\.nii\.gz is on another grid"):
        read_nifti(out)


# ---------------------------------------------------------------------------------- files
def test_writer_refuses_to_overwrite_and_writes_nothing(tmp_path):
    v = _spect()
    (tmp_path / "x.json").write_text("{}")  # only the sidecar exists
    with pytest.raises(OutputExistsError, match=r"x\.json: output exists"):
        write_nifti(v, tmp_path / "x.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # image not written
    out = write_nifti(v, tmp_path / "x.nii.gz", overwrite=True)
    assert read_nifti(out).meta["administration"] == ADM
    with pytest.raises(OutputExistsError, match=r"x\.nii\.gz: output exists"):
        write_nifti(v, out)


def test_unreadable_images(tmp_path):
    with pytest.raises(UnreadableFileError, match=r"missing\.nii\.gz: file does not exist"):
        read_nifti(tmp_path / "missing.nii.gz", unit="HU", modality="CT")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all" * 20)
    with pytest.raises(UnreadableFileError, match=r"bad\.nii\.gz: cannot read NIfTI image") as e:
        read_nifti(bad, unit="HU", modality="CT")
    _one_line(e)
    four_d = tmp_path / "dyn.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), four_d)
    with pytest.raises(InputError, match=r"dyn\.nii\.gz: dim: 4-D image"):
        read_nifti(four_d, unit="Bq/mL", modality="PT")
    import SimpleITK as sitk

    rgb = tmp_path / "rgb.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2, 3), np.uint8), isVector=True),
                    str(rgb))
    with pytest.raises(InputError, match=r"rgb\.nii\.gz: datatype: 3 components per voxel"):
        read_nifti(rgb, unit="1", modality="OT")
    cplx = tmp_path / "cplx.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 2, 2), np.complex64)), str(cplx))
    with pytest.raises(InputError, match=r"cplx\.nii\.gz: datatype: complex values"):
        read_labelmap(cplx)


def test_reading_leaves_inputs_byte_identical(tmp_path):
    out = write_nifti(_spect(), tmp_path / "x.nii.gz")
    before = {p.name: _md5(p) for p in tmp_path.iterdir()}
    read_nifti(out)
    read_sidecar(tmp_path / "x.json")
    assert {p.name: _md5(p) for p in tmp_path.iterdir()} == before


# ---------------------------------------------------------------------------------- label maps
def _labels() -> LabelMap:
    arr = np.zeros((4, 5, 6), np.uint8)
    arr[0, :2, :3] = 1   # 6 voxels
    arr[2:, 3:, 4:] = 5  # 2*2*2 = 8 voxels
    geom = Geometry(arr.shape, (0.9765625, 0.9765625, 2.0), (-250.0, -180.5, 35.0), ROT)
    return LabelMap(arr, geom, names={1: "spleen", 5: "liver"})


def test_labelmap_round_trip(tmp_path):
    lm = _labels()
    out = write_labelmap(lm, tmp_path / "labels.nii.gz")
    assert json.loads((tmp_path / "labels.json").read_text())["labels"] == {"1": "spleen",
                                                                            "5": "liver"}
    back = read_labelmap(out)
    assert isinstance(back, LabelMap) and back.array.dtype == np.uint8
    assert np.array_equal(back.array, lm.array) and back.names == {1: "spleen", 5: "liver"}
    assert back.geometry.origin_mm == lm.geometry.origin_mm
    assert int(back.mask("liver").sum()) == 8 and int(back.mask("spleen").sum()) == 6
    as_volume = read_nifti(out)  # a plain read keeps the name table in meta
    assert as_volume.unit == "label" and as_volume.meta["labels"] == {"1": "spleen", "5": "liver"}
    with pytest.raises(InputError, match="^labelmap: must be a LabelMap"):
        write_labelmap(Volume(lm.array, lm.geometry), tmp_path / "v.nii.gz")


def test_labelmap_names_from_dict_file_or_bare_sidecar(tmp_path):
    lm = _labels()
    out = write_labelmap(lm, tmp_path / "seg.nii.gz")
    (tmp_path / "seg.json").unlink()
    assert read_labelmap(out).names == {}  # no name table: labels kept unnamed
    assert read_labelmap(out, names={1: "a", 5: "b", 7: "absent"}).names == {1: "a", 5: "b"}
    table = tmp_path / "names.json"
    table.write_text(json.dumps({"1": "spleen", "2": "kidney_right", "5": "liver"}))
    assert read_labelmap(out, names=table).names == {1: "spleen", 5: "liver"}
    # a TotalSegmentator-style bare table as the sidecar
    (tmp_path / "seg.json").write_text(table.read_text())
    assert read_labelmap(out).names == {1: "spleen", 5: "liver"}
    with pytest.raises(InputError, match=r"seg\.json: labels: names given contradict the "
                       r"sidecar's labels \(labels \[1\]\)"):
        read_labelmap(out, names={1: "kidney", 5: "liver"})
    # entries on one side only are merged (the sidecar names 1, 2 and 5; the argument adds 3)
    assert read_labelmap(out, names={5: "liver", 3: "x"}).names == {1: "spleen", 5: "liver"}
    assert read_labelmap(out, names={1: "kidney"}, sidecar=False).names == {1: "kidney"}


@pytest.mark.parametrize(("names", "pattern"), [
    ({"0": "background"}, r"key '0' must be a positive integer"),
    ({"1.5": "x"}, r"key '1\.5' is not an integer label"),
    ({1: "a", 2: "a"}, r"name 'a' is used by labels 1 and 2"),
    ({1: ""}, r"name of label 1 must be a non-empty string"),
    ({True: "x"}, r"key True is not an integer label"),
    (["liver"], r"name table must be an object"),
])
def test_bad_name_tables(tmp_path, names, pattern):
    out = write_labelmap(_labels(), tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=f"^names: {pattern}"):
        read_labelmap(out, names=names, sidecar=False)
    p = tmp_path / "t.json"
    if isinstance(names, dict) and not any(isinstance(k, bool) for k in names):
        p.write_text(json.dumps({str(k): v for k, v in names.items()}))
        with pytest.raises(InputError, match=f"^{p}: names: "):
            read_labelmap(out, names=p, sidecar=False)


def test_labelmap_value_checks(tmp_path):
    g = Geometry((2, 2, 2), (1, 1, 1))
    whole = Volume(np.array([0, 1, 2, 300] * 2, np.float32).reshape(2, 2, 2), g)
    write_nifti(whole, tmp_path / "f.nii.gz")
    lm = read_labelmap(tmp_path / "f.nii.gz", sidecar=False)
    assert lm.array.dtype == np.uint16 and lm.array.max() == 300  # whole-number floats accepted
    frac = Volume(np.full((2, 2, 2), 1.5, np.float32), g)
    write_nifti(frac, tmp_path / "frac.nii.gz")
    with pytest.raises(InputError, match=r"frac\.nii\.gz: datatype: label map holds non-integer "
                       r"values \(1\.5 at \[z, y, x\] \[0, 0, 0\]\)"):
        read_labelmap(tmp_path / "frac.nii.gz", sidecar=False)
    neg = Volume(np.full((2, 2, 2), -1, np.int16), g)
    write_nifti(neg, tmp_path / "neg.nii.gz")
    with pytest.raises(InputError, match=r"neg\.nii\.gz: datatype: negative label value -1"):
        read_labelmap(tmp_path / "neg.nii.gz", sidecar=False)
    write_nifti(neg.replace(array=np.full((2, 2, 2), -2.0)), tmp_path / "negf.nii.gz")
    with pytest.raises(InputError, match=r"negf\.nii\.gz: datatype: negative label value -2"):
        read_labelmap(tmp_path / "negf.nii.gz", sidecar=False)
    with pytest.raises(UnreadableFileError, match=r"nope\.json: name table does not exist"):
        read_labelmap(tmp_path / "f.nii.gz", names=tmp_path / "nope.json")


def test_real_totalsegmentator_labels(ts_example):
    # Reference: nibabel reads the same files independently. README of the example: the upstream
    # example_seg.nii.gz header places the labels on CT slices 0-29, but the anatomy fits slices
    # 82-111; example_seg_aligned.nii.gz is the same labels with the origin moved by 82 slices
    # (z + 246 mm). Independent check of the placement: organ voxels at soft-tissue CT numbers.
    seg_p = ts_example / "example_seg_aligned.nii.gz"
    up_p = ts_example / "example_seg.nii.gz"
    before = {p.name: _md5(p) for p in (seg_p, up_p)}
    names = ts_example / "example_seg_labels.json"
    lm = read_labelmap(seg_p, names=names)
    up = read_labelmap(up_p, names=names)
    ct = read_nifti(ts_example / "example_ct.nii.gz", unit="HU", modality="CT")
    assert lm.spacing_mm == up.spacing_mm == ct.spacing_mm == (3.0, 3.0, 3.0)
    for g in (lm.geometry, up.geometry):
        assert np.array_equal(g.direction, ct.geometry.direction)
        # LPS direction of a RAS-stored image: diag(3,3,3) RAS affine -> x and y flipped
        assert np.array_equal(g.direction, np.diag([-1.0, -1.0, 1.0]))
    assert up.geometry.origin_mm == ct.geometry.origin_mm  # the wrong upstream placement
    assert np.allclose(np.subtract(lm.geometry.origin_mm, ct.geometry.origin_mm), (0, 0, 246.0),
                       atol=1e-4)
    assert np.allclose(ct.geometry.physical_to_index(lm.geometry.origin_mm), (0, 0, 82))
    assert lm.shape == up.shape == (30, ct.shape[1], ct.shape[2])
    assert ct.shape[0] == 82 + 30  # aligned labels on slices 82-111, the last 30
    hu = ct.array.astype(np.float64)

    def soft_tissue(h):
        return float(np.mean((h >= -100) & (h <= 250)))

    for organ in ("kidney_left", "kidney_right", "liver", "spleen"):
        m = lm.mask(organ)
        assert soft_tissue(hu[82:][m]) >= 0.95, organ  # measured 0.999-1.0
        assert soft_tissue(hu[:30][m]) < 0.90, organ  # upstream placement: measured 0.60-0.84
    for p, lab in ((seg_p, lm), (up_p, up)):  # read back: same labels as nibabel, all named
        ref = np.asanyarray(nib.load(p).dataobj)
        values, counts = np.unique(ref, return_counts=True)
        ours = dict(zip(*np.unique(lab.array, return_counts=True), strict=True))
        assert {int(v): int(c) for v, c in zip(values, counts, strict=True)} == \
            {int(v): int(c) for v, c in ours.items()}
        assert lab.names[5] == "liver" and lab.names[1] == "spleen"
        assert set(lab.names) == set(int(v) for v in values) - {0}
        for value, name in lab.names.items():
            assert int(lab.mask(name).sum()) == int(counts[values == value][0])
    assert np.array_equal(lm.array, up.array)  # same labels, only the header differs
    assert {p.name: _md5(p) for p in (seg_p, up_p)} == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ct.array.dtype == np.int32  # stored dtype kept
