"""Impossible DICOM pixel data and spacings are errors naming the file and the attribute."""

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from theradose.errors import DicomTagError, InputError
from theradose.io import read_ct, read_nm, write_ct_series, write_nm
from theradose.volume import Geometry, Volume

G = Geometry((3, 4, 5), (4.0, 4.0, 4.0))


def _nm(tmp_path):
    return write_nm(Volume(np.full(G.shape, 10.0), G, unit="counts", modality="NM"),
                    tmp_path / "nm.dcm", acquisition_duration_s=600.0)


def _edit(path, **changes):
    """Set (None: delete) attributes; a bytes value is stored verbatim (pydicom refuses to set
    malformed DS/IS/DA values, but files carry them)."""
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        if v is None:
            delattr(ds, k)
        elif isinstance(v, bytes):
            tag = Tag(tag_for_keyword(k))
            v += b" " * (len(v) % 2)
            ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(v), v, 0, False, True)
        else:
            setattr(ds, k, v)
    ds.save_as(path)


def test_float_pixel_data_with_nan_or_inf(tmp_path):
    p = _nm(tmp_path)
    values = np.ones(G.shape, np.float32)
    values[1, 2, 3] = np.nan  # frame 1, row 2, column 3
    values[2, 0, 0] = np.inf
    ds = pydicom.dcmread(p)
    del ds.PixelData
    for kw in ("BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope",
               "RescaleIntercept"):
        delattr(ds, kw)
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    ds.save_as(p)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: FloatPixelData: 2 of 60 pixel values "
                                            r"are not finite \(NaN or ±Inf\), the first at "
                                            r"\[frame, row, column\] \[1, 2, 3\]") as e:
        read_nm(p)
    assert "\n" not in str(e.value)
    values[1, 2, 3] = values[2, 0, 0] = 7.0  # finite float pixel data are read as stored
    ds.FloatPixelData = values.tobytes()
    ds.save_as(p)
    np.testing.assert_array_equal(read_nm(p).array, values)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom, writing 'nan'
@pytest.mark.parametrize("changes, field, pattern", [
    ({"PixelSpacing": ["0", "4"]}, "PixelSpacing", r"must be 2 positive numbers"),
    ({"PixelSpacing": ["nan", "4"]}, "PixelSpacing", r"not finite"),
    ({"SpacingBetweenSlices": None, "SliceThickness": "-4"}, "SliceThickness",
     r"must be > 0 mm, got -4"),
    ({"SpacingBetweenSlices": "0", "SliceThickness": "0"}, "SpacingBetweenSlices",
     r".*both missing or 0"),
    ({"Rows": 0}, "Rows", r"must be >= 1, got 0"),
    # malformed numbers: a DicomTagError naming the field, never a bare ValueError
    ({"PixelSpacing": b"abc\\abc"}, "PixelSpacing", r"malformed value|not a number"),
    ({"NumberOfFrames": b"abc"}, "NumberOfFrames", r"malformed value|not an integer"),
    ({"SeriesDate": b"garbage"}, "SeriesDate", r"invalid DICOM date/time 'garbage'"),
    ({"StudyTime": b"99xx"}, "StudyTime", r"invalid DICOM date/time"),
    ({"RescaleSlope": "-1"}, "RescaleSlope", r"must be > 0, got -1 "),
    ({"RescaleSlope": "0"}, "RescaleSlope", r"must be > 0, got 0 "),
])
def test_nm_impossible_geometry(tmp_path, changes, field, pattern):
    p = _nm(tmp_path)
    _edit(p, **changes)
    with pytest.raises(InputError, match=rf"nm\.dcm: {field}: {pattern}"):
        read_nm(p)


def test_single_slice_needs_a_thickness(tmp_path):
    g = Geometry((1, 3, 4), (1.0, 1.0, 2.5))
    files = write_ct_series(Volume(np.zeros(g.shape), g, unit="HU"), tmp_path / "ct")
    assert read_ct(tmp_path / "ct").spacing_mm == (1.0, 1.0, 2.5)
    _edit(files[0], SliceThickness=None)
    ds = pydicom.dcmread(files[0])
    if "SpacingBetweenSlices" in ds:
        _edit(files[0], SpacingBetweenSlices=None)
    with pytest.raises(DicomTagError, match=r"CT_0001\.dcm: SliceThickness: a single slice "
                                            r"needs SliceThickness or SpacingBetweenSlices"):
        read_ct(tmp_path / "ct")
    _edit(files[0], SliceThickness="-2.5")
    with pytest.raises(DicomTagError, match=r"SliceThickness: slice spacing must be a finite "
                                            r"number > 0 mm"):
        read_ct(tmp_path / "ct")


def test_malformed_orientation_in_the_detector_sequence(tmp_path):
    # write_nm stores the orientation in DetectorInformationSequence[0] (as cameras do)
    p = _nm(tmp_path)
    ds = pydicom.dcmread(p)
    item = ds.DetectorInformationSequence[0]
    tag = Tag(tag_for_keyword("ImageOrientationPatient"))
    item._dict[tag] = RawDataElement(tag, "DS", 4, b"abc ", 0, False, True)
    ds.save_as(p)
    with pytest.raises(DicomTagError, match=r"nm\.dcm: ImageOrientationPatient: (malformed "
                                            r"value|not a number)"):
        read_nm(p)


@pytest.mark.parametrize(("keyword", "value", "expected", "warns"), [
    ("PatientWeight", "70", 70.0, False), ("PatientWeight", "0", None, False),
    ("PatientWeight", "-70", None, True), ("PatientWeight", "70000", None, True),  # grams
    ("PatientSize", "1.75", 1.75, False), ("PatientSize", "175", None, True),  # cm
])
def test_implausible_body_measures_warn_and_are_ignored(keyword, value, expected, warns):
    import warnings

    from pydicom.dataset import Dataset

    from theradose.errors import TheradoseWarning
    from theradose.io._dicom_read import _HEIGHT_M, _WEIGHT_KG, _body_measure

    ds = Dataset()
    setattr(ds, keyword, value)
    bounds, unit = (_WEIGHT_KG, "kg") if keyword == "PatientWeight" else (_HEIGHT_M, "m")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _body_measure(ds, keyword, unit, bounds, "pt.dcm") == expected
    msgs = [str(w.message) for w in caught if issubclass(w.category, TheradoseWarning)]
    assert (msgs != []) == warns
    assert all(m.startswith(f"pt.dcm: {keyword}: ") for m in msgs)
