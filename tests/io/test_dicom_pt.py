"""PET series: round trip, SUVbw after the QIBA vendor-neutral pseudo-code, unit rules."""

from datetime import datetime

import numpy as np
import pydicom
import pytest

from theradose.errors import DicomTagError, InputError, TheradoseWarning, UnitError
from theradose.io import (
    Administration,
    read_dicom_series,
    read_pt,
    suv_bw_factor,
    to_suv,
    write_pt_series,
)
from theradose.volume import Geometry, Volume

INJ = datetime(2024, 6, 3, 9, 0, 0)
ACQ = datetime(2024, 6, 3, 10, 0, 0)
F18 = Administration("F-18", 370.0, INJ, "FDG")
F18_HALF_LIFE_S = 6586.2  # ICRP-107: 109.77 min


def _rotation(axis, angle_deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(angle_deg)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _pet(tmp_path, values=None, *, folder="pt", geometry=None, **kw):
    g = geometry or Geometry((4, 5, 6), (4.07, 4.07, 3.0), (-300.0, -290.5, -812.0))
    arr = np.full(g.shape, 5000.0) if values is None else values
    kw.setdefault("administration", F18)
    kw.setdefault("patient_weight_kg", 70.0)
    kw.setdefault("half_life_s", F18_HALF_LIFE_S)
    kw.setdefault("acquisition_duration_s", 120.0)
    files = write_pt_series(Volume(arr, g, unit="Bq/mL", modality="PT", acquisition_time=ACQ),
                            tmp_path / folder, **kw)
    return files, g, arr


def test_round_trip_per_slice_slope(tmp_path):
    g = Geometry((5, 6, 7), (2.0, 2.5, 3.27), (10.0, -20.0, 30.0), _rotation((1, -1, 0.5), 12))
    rng = np.random.default_rng(7)
    arr = rng.uniform(0, 3e4, g.shape) * np.arange(1, 6)[:, None, None]  # slices differ
    files, g, arr = _pet(tmp_path, arr, geometry=g)
    v = read_pt(tmp_path / "pt")
    assert v.unit == "Bq/mL" and v.modality == "PT"
    assert v.geometry.shape == g.shape
    np.testing.assert_allclose(v.spacing_mm, g.spacing_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.origin_mm, g.origin_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.direction, g.direction, atol=1e-12)
    slopes = [float(pydicom.dcmread(f).RescaleSlope) for f in files]
    # Per-slice slope = max|v_k| / 32767 (int16): slice k is within slope_k / 2.
    for k in range(g.shape[0]):
        assert slopes[k] == pytest.approx(np.abs(arr[k]).max() / 32767, rel=1e-9)
        assert np.max(np.abs(v.array[k] - arr[k])) <= slopes[k] / 2 * (1 + 1e-9)
    assert v.acquisition_time == ACQ
    m = v.meta
    assert m["administration"] == F18 and m["patient_weight_kg"] == 70.0
    assert m["decay_correction"] == "START" and m["decay_correction_reference_time"] == ACQ
    assert m["radionuclide_half_life_s"] == F18_HALF_LIFE_S
    assert m["acquisition_duration_s"] == 120.0
    ds = pydicom.dcmread(files[0])
    assert ds.Units == "BQML" and ds.DecayCorrection == "START" and "DECY" in ds.CorrectedImage


def test_kbq_input_is_written_in_bq(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    write_pt_series(Volume(np.full(g.shape, 12.5), g, unit="kBq/mL", acquisition_time=ACQ),
                    tmp_path / "pt", administration=F18, patient_weight_kg=70,
                    half_life_s=F18_HALF_LIFE_S, acquisition_duration_s=60)
    np.testing.assert_allclose(read_pt(tmp_path / "pt").array, 12500.0, rtol=1e-4)


def test_suv_hand_calculation(tmp_path):
    _pet(tmp_path)
    v = read_dicom_series(tmp_path / "pt")
    # QIBA SUVbw, hand calculation: 70 kg = 70000 g; 370 MBq = 3.7e8 Bq of F-18
    # (T½ 6586.2 s) injected at 09:00:00, series (= scan) start 10:00:00 -> Δt = 3600 s;
    # decay = 2^(-3600/6586.2) = 0.684633; decayed dose = 2.53314e8 Bq;
    # factor = 70000 / 2.53314e8 = 2.763367e-4 g/mL per Bq/mL; 5000 Bq/mL -> SUV 1.381683.
    assert suv_bw_factor(v) == pytest.approx(2.763367e-4, rel=1e-6)
    s = to_suv(v)
    assert s.unit == "g/mL" and s.meta["suv_bw_factor"] == suv_bw_factor(v)
    np.testing.assert_allclose(s.array, 1.381683, rtol=1e-6)
    # Same factor for a kBq/mL image, per kBq/mL (1000x).
    assert suv_bw_factor(v.to_unit("kBq/mL")) == pytest.approx(0.2763367, rel=1e-6)


def test_suv_series_time_after_acquisition_uses_acquisition(tmp_path):
    # QIBA: if SeriesTime is after the earliest AcquisitionTime (a post-processed series),
    # decay to the earliest AcquisitionTime instead: Δt still 3600 s, same factor as above.
    _pet(tmp_path, series_time=datetime(2024, 6, 3, 10, 30))
    v = read_pt(tmp_path / "pt")
    assert v.meta["decay_correction_reference_time"] == ACQ
    assert suv_bw_factor(v) == pytest.approx(2.763367e-4, rel=1e-6)


def test_suv_series_time_before_acquisition_uses_series(tmp_path):
    # SeriesTime 09:50 <= acquisition 10:00: Δt = 3000 s -> 70000 / (3.7e8 x 2^(-3000/6586.2))
    # = 70000 / (3.7e8 x 0.729258) = 2.594268e-4.
    _pet(tmp_path, series_time=datetime(2024, 6, 3, 9, 50))
    assert suv_bw_factor(read_pt(tmp_path / "pt")) == pytest.approx(2.594268e-4, rel=1e-6)


def test_suv_admin_decay_correction(tmp_path):
    # DecayCorrection ADMIN: values already decayed to injection, factor = 70000 / 3.7e8.
    _pet(tmp_path, decay_correction="ADMIN")
    v = read_pt(tmp_path / "pt")
    assert v.meta["decay_correction"] == "ADMIN"
    assert suv_bw_factor(v) == pytest.approx(70000 / 3.7e8, rel=1e-12)


def test_suv_refusals(tmp_path):
    _pet(tmp_path, decay_correction="NONE")
    v = read_pt(tmp_path / "pt")
    with pytest.raises(InputError, match=r"PT_0001\.dcm: DecayCorrection: NONE: PET not decay"):
        suv_bw_factor(v)
    _pet(tmp_path, folder="pt2")
    files = sorted((tmp_path / "pt2").iterdir())
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.PatientWeight
        ds.save_as(f)
    w = read_pt(tmp_path / "pt2")
    assert w.meta["patient_weight_kg"] is None
    with pytest.raises(InputError, match=r"PT_0001\.dcm: PatientWeight: patient weight is "
                                         r"missing"):
        to_suv(w)
    with pytest.raises(UnitError, match=r"PT_0001\.dcm: unit: SUV needs an activity conc"):
        suv_bw_factor(to_suv(read_pt(tmp_path / "pt", nuclide="F-18")
                             .replace(meta={**v.meta, "decay_correction": "ADMIN"})))
    no_admin = w.replace(meta={**w.meta, "patient_weight_kg": 70.0, "administration": None})
    with pytest.raises(InputError, match=r"RadiopharmaceuticalInformationSequence: no admin"):
        suv_bw_factor(no_admin)
    late = w.replace(meta={**w.meta, "patient_weight_kg": 70.0,
                           "decay_correction_reference_time": datetime(2024, 6, 3, 8, 0)})
    with pytest.raises(InputError, match=r"RadiopharmaceuticalStartDateTime: injection at .* "
                                         r"is after the decay-correction reference time"):
        suv_bw_factor(late)


def test_units_rules(tmp_path):
    files, *_ = _pet(tmp_path)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Units = "CNTS"
        ds.save_as(f)
    with pytest.raises(UnitError, match=r"PT_0001\.dcm: Units: PT Units 'CNTS' \(uncalibrated "
                                        r"counts\) not supported; accepted: BQML"):
        read_pt(tmp_path / "pt")
    # GML: an SUV image, read as g/mL with the stored values.
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Units = "GML"
        ds.save_as(f)
    v = read_pt(tmp_path / "pt")
    assert v.unit == "g/mL"
    np.testing.assert_allclose(v.array, 5000.0)


def test_pt_tag_errors(tmp_path):
    files, *_ = _pet(tmp_path)
    ds = pydicom.dcmread(files[0])
    ds.DecayCorrection = "FRAME"
    ds.save_as(files[0])
    with pytest.raises(DicomTagError, match=r"PT_0001\.dcm: DecayCorrection: 'FRAME' not "
                                            r"supported; accepted: START, ADMIN, NONE"):
        read_pt(tmp_path / "pt")
    ds.DecayCorrection = "START"
    ds.SeriesType = ["DYNAMIC", "IMAGE"]
    ds.save_as(files[0])
    with pytest.raises(DicomTagError, match=r"PT_0001\.dcm: SeriesType: dynamic or gated PET"):
        read_pt(tmp_path / "pt")
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.CorrectedImage = ["ATTN"]
    ds.save_as(files[0])
    with pytest.warns(TheradoseWarning, match=r"CorrectedImage: DecayCorrection is START but"):
        read_pt(tmp_path / "pt")
    with pytest.raises(DicomTagError, match=r"CorrectedImage: DecayCorrection is START but"):
        read_pt(tmp_path / "pt", strict=True)


def test_writer_validation(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    v = Volume(np.ones(g.shape), g, unit="Bq/mL", acquisition_time=ACQ)
    kw = {"administration": F18, "patient_weight_kg": 70.0, "half_life_s": F18_HALF_LIFE_S,
          "acquisition_duration_s": 60.0}
    with pytest.raises(UnitError, match=r"^volume.unit: PT needs an activity concentration"):
        write_pt_series(v.replace(unit="counts"), tmp_path / "x", **kw)
    with pytest.raises(InputError, match=r"^volume.acquisition_time: PT needs the acquisition"):
        write_pt_series(v.replace(acquisition_time=None), tmp_path / "x", **kw)
    with pytest.raises(InputError, match=r"^decay_correction: must be START, ADMIN or NONE"):
        write_pt_series(v, tmp_path / "x", **{**kw, "decay_correction": "FRAME"})
    with pytest.raises(InputError, match=r"^patient_weight_kg: must be > 0 kg"):
        write_pt_series(v, tmp_path / "x", **{**kw, "patient_weight_kg": 0})
    with pytest.raises(InputError, match=r"^administration: must be an Administration"):
        write_pt_series(v, tmp_path / "x", **{**kw, "administration": None})
    with pytest.raises(InputError, match=r"^acquisition_duration_s: must be > 0 s"):
        write_pt_series(v, tmp_path / "x", **{**kw, "acquisition_duration_s": None})
    late = Administration("F-18", 370.0, datetime(2024, 6, 3, 11, 0))
    with pytest.raises(InputError, match=r"^administration: injection .* is after the series"):
        write_pt_series(v, tmp_path / "x", **{**kw, "administration": late})
    # Half-life from ICRP-107 when not given (F-18: 109.77 min = 6586.2 s).
    write_pt_series(v, tmp_path / "y", **{**kw, "half_life_s": None})
    assert float(pydicom.dcmread(tmp_path / "y" / "PT_0001.dcm")
                 .RadiopharmaceuticalInformationSequence[0].RadionuclideHalfLife) == \
        pytest.approx(6586.2, rel=1e-6)
