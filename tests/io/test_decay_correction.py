"""DICOM DecayCorrection (NONE / START / ADMIN) and CorrectedImage; undo_decay_correction.

References (analytic): the activity at the acquisition start is C_ref · 2^(-Δt / T½) with Δt from
the reference time to the acquisition start; T½(Lu-177) = 6.647 d = 159.528 h (ICRP-107).
Hand values: 2^(-24 / 159.528) = 0.90097326; 2^(-0.5 / 159.528) = 0.99782986;
2^(-24 / 100) = 0.84674531.
"""

import math
import warnings
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest

from theradose.errors import DicomTagError, InputError, TheradoseWarning, UnknownNuclideError
from theradose.io import (
    Administration,
    read_nm,
    read_pt,
    undo_decay_correction,
    write_nm,
    write_pt_series,
)
from theradose.volume import Geometry, Volume

INJ = datetime(2024, 5, 1, 9, 0, 0)
T_ACQ = INJ + timedelta(hours=24)
ADM = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
F_24H = 0.90097326   # 2^(-24 / 159.528), Lu-177 24 h after the injection
F_30MIN = 0.99782986  # 2^(-0.5 / 159.528)
G = Geometry((3, 4, 5), (4.0, 4.0, 4.0))


def _values(seed=0):
    return np.random.default_rng(seed).uniform(1e3, 5e4, G.shape)


def _nm(tmp_path, name, values, *, dc=None, corrected=None, series_time=None, **kw):
    """An NM file as a camera stores it; DecayCorrection/CorrectedImage set with pydicom."""
    p = write_nm(Volume(values, G, unit="Bq/mL", modality="NM", acquisition_time=T_ACQ),
                 tmp_path / name, administration=ADM, acquisition_duration_s=1800.0, **kw)
    ds = pydicom.dcmread(p)
    if dc is not None:
        ds.DecayCorrection = dc
    if corrected is not None:
        ds.CorrectedImage = corrected
    if series_time is not None:
        ds.SeriesTime = series_time.strftime("%H%M%S")
    ds.save_as(p)
    return p


def _quantum(values):
    """Largest rounding error of write_nm's uint16 storage: max / 65535 / 2."""
    return values.max() / 131070 * (1 + 1e-9)


def test_hand_values():
    # The literals above, recomputed from the definition (guards against typos).
    t_half_h = 6.647 * 24
    assert F_24H == pytest.approx(2 ** (-24 / t_half_h), rel=1e-8)
    assert F_30MIN == pytest.approx(2 ** (-0.5 / t_half_h), rel=1e-8)


def test_nm_admin_and_none_agree_after_undo(tmp_path):
    c_acq = _values()
    p_none = _nm(tmp_path, "none.dcm", c_acq)
    # A camera correcting to the administration stores C_acq / 2^(-24 h / T½).
    p_admin = _nm(tmp_path, "admin.dcm", c_acq / F_24H, dc="ADMIN", corrected=["ATTN", "DECY"])
    none, admin = read_nm(p_none), read_nm(p_admin)
    assert none.meta["decay_correction"] == "NONE"
    assert admin.meta["decay_correction"] == "ADMIN"
    assert admin.meta["decay_correction_reference_time"] == INJ
    assert admin.meta["corrected_image"] == ["ATTN", "DECY"]
    undone = undo_decay_correction(admin)
    assert undone.meta["decay_correction_undo_factor"] == pytest.approx(F_24H, rel=1e-7)
    np.testing.assert_allclose(undone.array, none.array, rtol=0,
                               atol=_quantum(c_acq / F_24H) + _quantum(c_acq))
    np.testing.assert_allclose(undone.array, c_acq, rtol=0, atol=_quantum(c_acq / F_24H))
    assert undo_decay_correction(none) is none  # NONE: nothing to undo
    assert undone.meta["decay_correction"] == "NONE"
    assert undone.meta["decay_correction_original"] == "ADMIN"
    assert undone.meta["decay_correction_original_reference_time"] == INJ
    assert undone.meta["decay_correction_reference_time"] == T_ACQ
    assert "decay correction ADMIN undone" in undone.history[-1]


def test_nm_start_uses_the_series_time(tmp_path):
    c_acq = _values(1)
    series = T_ACQ - timedelta(minutes=30)
    p = _nm(tmp_path, "start.dcm", c_acq / F_30MIN, dc="START", corrected=["DECY"],
            series_time=series)
    v = read_nm(p)
    assert v.meta["decay_correction_reference_time"] == series
    undone = undo_decay_correction(v)
    assert undone.meta["decay_correction_undo_factor"] == pytest.approx(F_30MIN, rel=1e-7)
    np.testing.assert_allclose(undone.array, c_acq, rtol=0, atol=_quantum(c_acq / F_30MIN))


def test_pt_admin_round_trip(tmp_path):
    g = Geometry((2, 3, 3), (4.0, 4.0, 4.0))
    c_acq = np.random.default_rng(2).uniform(1e3, 2e4, g.shape)
    vol = Volume(c_acq / F_24H, g, unit="Bq/mL", modality="PT", acquisition_time=T_ACQ,
                 meta={"acquisition_duration_s": 600.0})
    write_pt_series(vol, tmp_path / "pt", administration=ADM, patient_weight_kg=70.0,
                    decay_correction="ADMIN")
    v = read_pt(tmp_path / "pt")
    undone = undo_decay_correction(v)
    # int16 per slice, slope max|v| / 32767: error <= slope / 2 before the factor.
    tol = (c_acq / F_24H).max() / 65534 * (1 + 1e-9)
    np.testing.assert_allclose(undone.array, c_acq, rtol=0, atol=tol)


def test_undo_on_a_volume_scales_sigma_and_prefers_the_file_half_life():
    c = np.full(G.shape, 1000.0)
    v = Volume(c, G, unit="Bq/mL", modality="NM", acquisition_time=T_ACQ, sigma=c / 10,
               meta={"decay_correction": "admin", "administration": ADM})
    # No reference time: ADMIN refers to the administration's injection time.
    u = undo_decay_correction(v)
    np.testing.assert_allclose(u.array, 1000.0 * F_24H, rtol=1e-7)
    np.testing.assert_allclose(u.sigma, 100.0 * F_24H, rtol=1e-7)
    # RadionuclideHalfLife (the value the scanner used) wins over ICRP-107 (159.53 h) when
    # within 1 %: T½ = 158 h (-0.96 %).
    w = undo_decay_correction(v.replace(meta={**v.meta,
                                              "radionuclide_half_life_s": 158 * 3600.0}))
    np.testing.assert_allclose(w.array, 1000.0 * 2 ** (-24 / 158), rtol=1e-12)
    assert 2 ** (-24 / 158) == pytest.approx(0.90000, abs=5e-4)
    # More than 1 % off (100 h for Lu-177: another nuclide or a unit slip) is an error.
    with pytest.raises(InputError, match=r"^radionuclide_half_life_s: 360000 s contradicts the "
                                         r"Lu-177 half-life of 574\d+ s \(159\.5 h"):
        undo_decay_correction(v.replace(meta={**v.meta,
                                              "radionuclide_half_life_s": 100 * 3600.0}))
    # A sidecar's ISO string is accepted as the reference time (START, 30 min before).
    s = undo_decay_correction(v.replace(meta={
        "decay_correction": "START", "nuclide": "Lu-177",
        "decay_correction_reference_time": (T_ACQ - timedelta(minutes=30)).isoformat()}))
    np.testing.assert_allclose(s.array, 1000.0 * F_30MIN, rtol=1e-7)
    # Integer counts become float, scaled the same way.
    n = undo_decay_correction(Volume(np.full(G.shape, 7, np.int32), G, unit="counts",
                                     modality="NM", acquisition_time=T_ACQ,
                                     meta={"decay_correction": "ADMIN", "administration": ADM}))
    np.testing.assert_allclose(n.array, 7 * F_24H, rtol=1e-7)
    assert math.isclose(n.meta["decay_correction_undo_factor"], F_24H, rel_tol=1e-7)


def test_undo_errors_name_file_and_field():
    base = dict(unit="Bq/mL", modality="NM", acquisition_time=T_ACQ)
    c = np.ones(G.shape)
    src = {"source_files": ["/data/spect.dcm"]}
    with pytest.raises(InputError, match=r"spect\.dcm: decay_correction: 'DECAYED' not "
                                         r"supported; accepted: NONE, START, ADMIN"):
        undo_decay_correction(Volume(c, G, **base, meta={**src, "decay_correction": "DECAYED"}))
    with pytest.raises(InputError, match=r"spect\.dcm: decay_correction_reference_time: "
                                         r"DecayCorrection START needs the series start"):
        undo_decay_correction(Volume(c, G, **base, meta={**src, "decay_correction": "START",
                                                         "nuclide": "Lu-177"}))
    with pytest.raises(InputError, match=r"decay_correction_reference_time: DecayCorrection "
                                         r"ADMIN needs the injection time"):
        undo_decay_correction(Volume(c, G, **base, meta={**src, "decay_correction": "ADMIN"}))
    with pytest.raises(InputError, match=r"spect\.dcm: decay_correction_reference_time: must "
                                         r"be an ISO 8601"):
        undo_decay_correction(Volume(c, G, **base, meta={
            **src, "decay_correction": "START", "decay_correction_reference_time": "noon"}))
    with pytest.raises(InputError, match=r"spect\.dcm: radionuclide_half_life_s: undoing the "
                                         r"decay correction needs the half-life"):
        undo_decay_correction(Volume(c, G, **base, meta={
            **src, "decay_correction": "START", "decay_correction_reference_time": INJ}))
    with pytest.raises(InputError, match=r"radionuclide_half_life_s: must be a finite number"):
        undo_decay_correction(Volume(c, G, **base, meta={
            **src, "decay_correction": "START", "decay_correction_reference_time": INJ,
            "radionuclide_half_life_s": -5.0}))
    with pytest.raises(UnknownNuclideError, match=r"spect\.dcm: nuclide"):
        undo_decay_correction(Volume(c, G, **base, meta={
            **src, "decay_correction": "START", "decay_correction_reference_time": INJ,
            "nuclide": "Xx-999"}))
    with pytest.raises(InputError, match=r"other\.json: acquisition_time: the image is decay "
                                         r"corrected \(ADMIN\)"):
        undo_decay_correction(Volume(c, G, unit="Bq/mL", modality="NM",
                                     meta={"decay_correction": "ADMIN"}),
                              file="/data/other.json")


def test_corrected_image_contradictions_warn_or_raise_under_strict(tmp_path):
    c = _values(3)
    # DECY without DecayCorrection (NM files often lack the PET attribute): read as NONE.
    p = _nm(tmp_path, "decy.dcm", c, corrected=["ATTN", "SCAT", "DECY"])
    with pytest.warns(TheradoseWarning, match=r"decy\.dcm: CorrectedImage: CorrectedImage "
                      r"\['ATTN', 'SCAT', 'DECY'\] lists DECY but DecayCorrection is <absent>"):
        v = read_nm(p)
    assert v.meta["decay_correction"] == "NONE"
    with pytest.raises(DicomTagError, match=r"decy\.dcm: CorrectedImage: .* lists DECY"):
        read_nm(p, strict=True)
    p2 = _nm(tmp_path, "none_decy.dcm", c, dc="NONE", corrected=["DECY"])
    with pytest.warns(TheradoseWarning, match=r"lists DECY but DecayCorrection is NONE"):
        read_nm(p2)
    # START without DECY: DecayCorrection is honoured, with a warning.
    p3 = _nm(tmp_path, "start_nodecy.dcm", c, dc="START", corrected=["ATTN"])
    with pytest.warns(TheradoseWarning, match=r"DecayCorrection is START but CorrectedImage "
                                              r"\['ATTN'\] lacks DECY; DecayCorrection is "
                                              r"honoured"):
        assert read_nm(p3).meta["decay_correction"] == "START"
    # Agreeing tags: no warning.
    p4 = _nm(tmp_path, "ok.dcm", c, dc="ADMIN", corrected=["DECY"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_nm(p4)
    with pytest.raises(DicomTagError, match=r"DecayCorrection: 'LATER' not supported"):
        read_nm(_nm(tmp_path, "bad.dcm", c, dc="LATER"))
