"""Reconstructed SPECT (NM): round trips, counts -> Bq/mL, administration, geometry variants."""

import copy
import warnings
from datetime import datetime

import numpy as np
import pydicom
import pytest

from theradose.errors import InputError, TheradoseWarning, UnitError, UnknownNuclideError
from theradose.io import (
    Administration,
    read_dicom_series,
    read_nm,
    suv_bw_factor,
    write_ct_series,
    write_nm,
)
from theradose.volume import Geometry, Volume

T_ACQ = datetime(2024, 5, 2, 10, 15, 30, 250000)
ADMIN = Administration("Lu-177", 7400.0, datetime(2024, 5, 1, 9, 5, 0, 123456), "177Lu-PSMA-617")


def _rotation(axis, angle_deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(angle_deg)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _geometry(shape=(5, 6, 7)):
    return Geometry(shape, (4.0, 3.5, 2.5), (12.5, -20.0, 301.25),
                    _rotation((0.3, -1.0, 2.0), 25.0))


def _counts(g, seed=0):
    return np.random.default_rng(seed).poisson(40.0, g.shape).astype(float)


def _write(tmp_path, vol, **kw):
    kw.setdefault("acquisition_duration_s", 1800.0)
    return write_nm(vol, tmp_path / "spect.dcm", **kw)


def test_round_trip_counts_exact(tmp_path):
    g = _geometry()
    c = _counts(g)
    p = _write(tmp_path, Volume(c, g, unit="counts", modality="NM", acquisition_time=T_ACQ),
               administration=ADMIN, energy_window_kev=(187.2, 228.8))
    v = read_nm(p)
    assert v.unit == "counts" and v.modality == "NM"
    assert v.geometry.shape == g.shape
    np.testing.assert_allclose(v.spacing_mm, g.spacing_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.origin_mm, g.origin_mm, atol=1e-9)
    np.testing.assert_allclose(v.geometry.direction, g.direction, atol=1e-12)
    # Integer counts <= 65535 are stored with RescaleSlope 1: exact.
    np.testing.assert_array_equal(v.array, c)
    assert v.acquisition_time == T_ACQ
    assert v.meta["administration"] == ADMIN  # nuclide, MBq, injection time to the µs, text
    # 60 views x 30000 ms (ActualFrameDuration x NumberOfFramesInRotation) = 1800 s.
    assert v.meta["acquisition_duration_s"] == 1800.0
    # Lu-177 half-life 6.647 d (ICRP-107) = 574300.8 s, written as RadionuclideHalfLife.
    assert v.meta["radionuclide_half_life_s"] == pytest.approx(574300.8)
    assert v.meta["decay_correction"] == "NONE" and v.meta["calibration_cps_per_mbq"] is None
    assert v.meta["sop_instance_uids"] == [pydicom.dcmread(p).SOPInstanceUID]
    ds = pydicom.dcmread(p)
    assert ds.Units == "CNTS" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "RECON TOMO",
                                                          "EMISSION"]
    assert ds.NumberOfFrames == 5 and ds.FrameIncrementPointer == 0x00540080
    w = ds.EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
    assert (float(w.EnergyWindowLowerLimit), float(w.EnergyWindowUpperLimit)) == (187.2, 228.8)


def test_round_trip_bqml_within_quantisation(tmp_path):
    g = _geometry()
    c = np.random.default_rng(3).uniform(0.0, 2.5e5, g.shape)
    p = _write(tmp_path, Volume(c / 1000.0, g, unit="kBq/mL", modality="NM",
                                acquisition_time=T_ACQ))
    v = read_nm(p)
    assert v.unit == "Bq/mL" and pydicom.dcmread(p).Units == "BQML"
    # uint16 with slope = max / 65535: error <= slope / 2 = max / 131070 (here <= 1.9 Bq/mL).
    assert np.max(np.abs(v.array - c)) <= c.max() / 131070 * (1 + 1e-9)
    assert v.geometry.same_as(g, tol_mm=1e-9)


def test_negative_and_fractional_values_use_signed_slope(tmp_path):
    g = Geometry((2, 3, 3), (2.0, 2.0, 2.0))
    c = np.linspace(-10.5, 30.25, 18).reshape(g.shape)
    p = _write(tmp_path, Volume(c, g, unit="counts"))
    ds = pydicom.dcmread(p)
    assert ds.PixelRepresentation == 1
    # int16 with slope = max|v| / 32767: error <= slope / 2.
    assert np.max(np.abs(read_nm(p).array - c)) <= 30.25 / 32767 / 2 * (1 + 1e-9)


def test_counts_to_bqml_hand_calculation(tmp_path):
    g = Geometry((2, 2, 2), (4.0, 4.0, 4.0))  # 0.064 mL voxels
    c = np.full(g.shape, 1152.0)
    p = _write(tmp_path, Volume(c, g, unit="counts", acquisition_time=T_ACQ))
    v = read_nm(p, calibration_cps_per_mbq=9.0)
    # Hand calculation: 1152 counts / (1800 s x 9 cps/MBq) = 0.0711111 MBq = 71111.1 Bq per
    # voxel; / 0.064 mL = 1 111 111.1 Bq/mL.
    assert v.unit == "Bq/mL"
    np.testing.assert_allclose(v.array, 1111111.111111, rtol=1e-9)
    # Conservation: total activity = total counts / (T x cal) = 8 x 1152 / 16200 MBq.
    assert v.total("MBq") == pytest.approx(8 * 1152 / 16200, rel=1e-12)
    assert v.meta["calibration_cps_per_mbq"] == 9.0
    # The same through the dispatcher.
    w = read_dicom_series(tmp_path, calibration_cps_per_mbq=9.0)
    np.testing.assert_array_equal(w.array, v.array)


def test_duration_argument_wins(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.full(g.shape, 100.0), g, unit="counts"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1810 s is 0.56% off the file's 1800 s: no warning
        v = read_nm(p, calibration_cps_per_mbq=10.0, acquisition_duration_s=1810.0)
    assert v.meta["acquisition_duration_s"] == 1810.0
    # 100 / (1810 x 10) x 1e6 / 0.064 = 86325.97 Bq/mL
    np.testing.assert_allclose(v.array, 100 / 18100 * 1e6 / 0.064, rtol=1e-12)
    with pytest.warns(TheradoseWarning,
                      match=r"spect\.dcm: acquisition_duration_s: 900 s given, the file says "
                            r"1800 s"):
        v = read_nm(p, calibration_cps_per_mbq=10.0, acquisition_duration_s=900.0)
    assert v.meta["acquisition_duration_s"] == 900.0


def test_counts_without_duration(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = write_nm(Volume(np.ones(g.shape), g, unit="counts"), tmp_path / "nm.dcm")
    assert len(pydicom.dcmread(p).RotationInformationSequence) == 0
    with pytest.raises(InputError, match=r"nm\.dcm: RotationInformationSequence: present but "
                                         r"has no items; counts -> Bq/mL needs the acquisition "
                                         r"duration"):
        read_nm(p, calibration_cps_per_mbq=10.0)
    v = read_nm(p, calibration_cps_per_mbq=10.0, acquisition_duration_s=100.0)
    np.testing.assert_allclose(v.array, 1 / 1000 * 1e6 / 0.064)  # 15625 Bq/mL
    assert read_nm(p).meta["acquisition_duration_s"] is None


def _two_rotations(tmp_path, **item1):
    """Counts file of 1800 s, given a second rotation (a copy of the first) edited by item1."""
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.full(g.shape, 100.0), g, unit="counts"))
    ds = pydicom.dcmread(p)
    seq = ds.RotationInformationSequence
    seq.append(copy.deepcopy(seq[0]))
    for k, v in item1.items():
        if v is None:
            delattr(seq[1], k)
        else:
            setattr(seq[1], k, v)
    ds.save_as(p)
    return p


def test_two_rotations_add_up(tmp_path):
    # 2 rotations x 60 frames x 30000 ms = 3600 s; 100 / (3600 x 10) x 1e6 / 0.064 Bq/mL
    v = read_nm(_two_rotations(tmp_path), calibration_cps_per_mbq=10.0)
    assert v.meta["acquisition_duration_s"] == 3600.0
    np.testing.assert_allclose(v.array, 100 / 36000 * 1e6 / 0.064, rtol=1e-12)


@pytest.mark.parametrize(("item1", "field", "what"), [
    ({"ActualFrameDuration": 0}, r"RotationInformationSequence\[1\]\.ActualFrameDuration",
     r"0 ms \(must be > 0\)"),
    ({"ActualFrameDuration": None}, r"RotationInformationSequence\[1\]\.ActualFrameDuration",
     r"absent in item 1 of 2"),
    ({"NumberOfFramesInRotation": None},
     r"RotationInformationSequence\[1\]\.NumberOfFramesInRotation", r"absent in item 1 of 2"),
    ({"NumberOfFramesInRotation": 0},
     r"RotationInformationSequence\[1\]\.NumberOfFramesInRotation",
     r"0 \(must be an integer >= 1\)"),
])
def test_unusable_rotation_item_is_named(tmp_path, item1, field, what):
    # The sequence is there: the message names the item and field at fault, not "absent".
    p = _two_rotations(tmp_path, **item1)
    with pytest.raises(InputError, match=rf"spect\.dcm: {field}: {what}; counts -> Bq/mL needs "
                                         r"the acquisition duration .* give it as "
                                         r"acquisition_duration_s: read_nm\(") as e:
        read_nm(p, calibration_cps_per_mbq=10.0)
    assert e.value.field.replace("\\", "") == field.replace("\\", "")
    assert "\n" not in str(e.value) and "pass acquisition_duration_s" not in str(e.value)
    # not needed (no calibration): read, with a warning that names the same field
    with pytest.warns(TheradoseWarning, match=rf"spect\.dcm: {field}: {what}; the acquisition "
                                              r"duration is unknown"):
        v = read_nm(p)
    assert v.meta["acquisition_duration_s"] is None
    with pytest.raises(InputError, match=rf"{field}: {what}"):
        read_nm(p, strict=True)
    # the argument replaces the file's duration: no warning, no error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = read_nm(p, calibration_cps_per_mbq=10.0, acquisition_duration_s=1800.0)
    np.testing.assert_allclose(v.array, 100 / 18000 * 1e6 / 0.064, rtol=1e-12)


def test_absent_rotation_sequence(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="counts"))
    ds = pydicom.dcmread(p)
    del ds.RotationInformationSequence
    ds.save_as(p)
    with pytest.raises(InputError, match=r"spect\.dcm: RotationInformationSequence: absent; "
                                         r"counts -> Bq/mL needs"):
        read_nm(p, calibration_cps_per_mbq=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an absent sequence is not an oddity without calibration
        assert read_nm(p).meta["acquisition_duration_s"] is None


def test_bad_calibration_arguments(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="Bq/mL"))
    with pytest.warns(TheradoseWarning, match=r"calibration_cps_per_mbq: ignored: the image is "
                                              r"already in Bq/mL"):
        v = read_nm(p, calibration_cps_per_mbq=5.0)
    assert v.meta["calibration_cps_per_mbq"] is None
    with pytest.raises(InputError, match=r"^calibration_cps_per_mbq: must be a finite number"):
        read_nm(p, calibration_cps_per_mbq=-1.0)
    with pytest.raises(InputError, match=r"^acquisition_duration_s: must be a number > 0, got "):
        read_nm(p, acquisition_duration_s="long")


def test_negative_spacing_between_slices_reads_the_same_grid(tmp_path):
    # Frames stored from the last slice backwards: IPP of the last slice and a negative
    # SpacingBetweenSlices describe the same voxels as the forward file.
    g = _geometry()
    c = _counts(g)
    p = _write(tmp_path, Volume(c, g, unit="counts"))
    ds = pydicom.dcmread(p)
    last = np.asarray(g.origin_mm) + (g.shape[0] - 1) * g.spacing_mm[2] * g.direction[:, 2]
    ds.DetectorInformationSequence[0].ImagePositionPatient = [f"{x:.10f}" for x in last]
    ds.SpacingBetweenSlices = f"{-g.spacing_mm[2]}"
    ds.PixelData = ds.pixel_array[::-1].astype("<u2").tobytes()
    ds.save_as(tmp_path / "backwards.dcm")
    v = read_nm(tmp_path / "backwards.dcm")
    assert v.geometry.same_as(g, tol_mm=1e-6)
    np.testing.assert_array_equal(v.array, c)


def test_multi_file_nm_series(tmp_path):
    # Single-frame NM files with ImagePositionPatient each (made from a CT series).
    g = _geometry((4, 3, 5))
    c = _counts(g, seed=5)
    files = write_ct_series(Volume(c, g, unit="HU"), tmp_path / "in")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Modality, ds.Units = "NM", "CNTS"
        ds.save_as(f)
    v = read_nm(tmp_path / "in")
    assert v.unit == "counts" and v.geometry.same_as(g, tol_mm=1e-9)
    np.testing.assert_array_equal(v.array, c)


def test_nuclide_override_and_incomplete_administration(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="counts", acquisition_time=T_ACQ),
               administration=ADMIN)
    ds = pydicom.dcmread(p)
    item = ds.RadiopharmaceuticalInformationSequence[0]
    item.RadionuclideCodeSequence[0].CodeMeaning = "LU177"
    item.RadionuclideCodeSequence[0].CodeValue = "C-145A8"
    ds.save_as(p)
    assert read_nm(p).meta["administration"].nuclide == "Lu-177"
    # nuclide= overrides the file (a different spelling normalised).
    assert read_nm(p, nuclide="177Lu").meta["administration"].nuclide == "Lu-177"
    with pytest.raises(UnknownNuclideError, match=r"^nuclide: unknown nuclide 'Qq-12'"):
        read_nm(p, nuclide="Qq-12")
    # A sequence without the activity: warned, administration None.
    del item.RadionuclideTotalDose
    ds.save_as(p)
    with pytest.warns(TheradoseWarning,
                      match=r"spect\.dcm: RadiopharmaceuticalInformationSequence: administration "
                            r"not read, .*RadionuclideTotalDose"):
        v = read_nm(p)
    assert v.meta["administration"] is None


def test_injection_before_midnight_from_start_time(tmp_path):
    # No RadiopharmaceuticalStartDateTime: StartTime 23:30 with SeriesDate 2024-05-02 and a scan
    # at 00:40 that day is an injection on 2024-05-01 at 23:30 (QIBA notes this pitfall).
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    scan = datetime(2024, 5, 2, 0, 40)
    adm = Administration("Lu-177", 7000.0, datetime(2024, 5, 1, 23, 30))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="counts", acquisition_time=scan),
               administration=adm)
    ds = pydicom.dcmread(p)
    del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
    ds.save_as(p)
    with pytest.warns(TheradoseWarning, match=r"RadiopharmaceuticalStartTime: .*previous day"):
        v = read_nm(p)
    assert v.meta["administration"].injection_time == datetime(2024, 5, 1, 23, 30)


def test_nm_suv_uses_acquisition_start(tmp_path):
    # Non-decay-corrected SPECT: values are at the acquisition start. Hand calculation:
    # Δt = 2024-05-02 10:15:30.25 - 2024-05-01 09:05:00.123456 = 90630.126544 s;
    # decayed = 7400e6 Bq x 2^(-90630.126544 / 574300.8) = 7400e6 x 0.896385 = 6633.25 MBq;
    # 80 kg = 80000 g; factor = 80000 / 6.63325e9 = 1.206045e-5 g/mL per Bq/mL.
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="Bq/mL", acquisition_time=T_ACQ),
               administration=ADMIN, patient={"patient_weight_kg": 80.0})
    dt = 90630.126544
    expected = 80000 / (7400e6 * 2 ** (-dt / 574300.8))
    assert expected == pytest.approx(1.206045e-5, rel=1e-6)
    assert suv_bw_factor(read_nm(p)) == pytest.approx(expected, rel=1e-12)


def test_writer_validation(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    with pytest.raises(UnitError, match=r"^volume.unit: NM needs counts or an activity"):
        write_nm(Volume(np.ones(g.shape), g, unit="HU"), tmp_path / "a.dcm")
    v = Volume(np.ones(g.shape), g, unit="counts")
    with pytest.raises(InputError, match=r"^acquisition_duration_s: must be > 0 s"):
        write_nm(v, tmp_path / "a.dcm", acquisition_duration_s=-5)
    with pytest.raises(InputError, match=r"^administration: must be an Administration"):
        write_nm(v, tmp_path / "a.dcm", administration={"nuclide": "Lu-177"})
    with pytest.raises(InputError, match=r"^views_per_head: must be an integer >= 1"):
        write_nm(v, tmp_path / "a.dcm", views_per_head=0)
    with pytest.raises(InputError, match=r"^energy_window_kev: needs 0 < lower < upper"):
        write_nm(v, tmp_path / "a.dcm", energy_window_kev=(230, 180))
    # 1000.0001 s / 60 views = 16666.668 ms -> 16667 ms per view -> 1000.02 s stored.
    with pytest.warns(TheradoseWarning, match=r"^acquisition_duration_s: 1000.0001 s is stored "
                                              r"as 1000.02 s"):
        write_nm(v, tmp_path / "b.dcm", acquisition_duration_s=1000.0001)
    from theradose.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match=r"b\.dcm: output exists"):
        write_nm(v, tmp_path / "b.dcm")
    write_nm(v, tmp_path / "b.dcm", overwrite=True)


def test_radiopharmaceutical_oddities(tmp_path):
    from pydicom.dataset import Dataset

    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    p = _write(tmp_path, Volume(np.ones(g.shape), g, unit="counts", acquisition_time=T_ACQ),
               administration=ADMIN)
    ds = pydicom.dcmread(p)
    seq = ds.RadiopharmaceuticalInformationSequence
    seq.append(Dataset())
    seq[0].RadionuclideTotalDose = "7400"  # 7400 Bq: someone wrote MBq
    ds.save_as(p)
    with pytest.warns(TheradoseWarning) as rec:
        v = read_nm(p)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "RadiopharmaceuticalInformationSequence: 2 items; the first is used" in msgs
    assert "RadionuclideTotalDose: 7400 Bq is implausibly small" in msgs
    assert v.meta["administration"].injected_activity_mbq == pytest.approx(0.0074)
    seq[0].RadionuclideHalfLife = "0"
    ds.save_as(p)
    with pytest.warns(TheradoseWarning), \
            pytest.raises(InputError, match=r"spect\.dcm: RadionuclideHalfLife: must be > 0 s"):
        read_nm(p)
    del ds.RadiopharmaceuticalInformationSequence
    ds.save_as(p)
    with pytest.warns(TheradoseWarning, match=r"RadiopharmaceuticalInformationSequence: absent; "
                                              r"nuclide= given"):
        v = read_nm(p, nuclide="Lu-177")
    assert v.meta["administration"] is None and read_nm(p).meta["administration"] is None


def test_suv_needs_reference_time_and_half_life(tmp_path):
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    v = Volume(np.ones(g.shape), g, unit="Bq/mL", modality="NM",
               meta={"patient_weight_kg": 70.0, "administration": ADMIN,
                     "decay_correction": "NONE", "source_files": ["x.dcm"]})
    with pytest.raises(InputError, match=r"^x\.dcm: SeriesTime: no reference time for decay"):
        suv_bw_factor(v)
    odd = Administration("Xx-1", 100.0, ADMIN.injection_time)
    w = v.replace(acquisition_time=T_ACQ, meta={**v.meta, "administration": odd})
    with pytest.raises(InputError, match=r"^x\.dcm: RadionuclideHalfLife: half-life of 'Xx-1' "
                                         r"unknown"):
        suv_bw_factor(w)
    # With the half-life in meta the same volume works (1 h of Lu-177 decay is ~0.5%).
    ok = w.replace(meta={**w.meta, "radionuclide_half_life_s": 574300.8})
    assert suv_bw_factor(ok) > 0


def test_pt_writer_needs_a_half_life(tmp_path):
    from theradose.io import write_pt_series

    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    odd = Administration("Xx-1", 100.0, datetime(2024, 1, 1, 9))
    with pytest.raises(InputError, match=r"^half_life_s: half-life of 'Xx-1' unknown; pass "):
        write_pt_series(Volume(np.ones(g.shape), g, unit="Bq/mL",
                               acquisition_time=datetime(2024, 1, 1, 10)), tmp_path / "pt",
                        administration=odd, patient_weight_kg=70, acquisition_duration_s=60)
