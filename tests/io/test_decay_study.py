"""load_study returns every therapy time point as activity at its acquisition start.

Analytic reference: an image decay corrected to t_ref holds C_acq · 2^((t_acq - t_ref) / T½);
undoing it multiplies by 2^(-(t_acq - t_ref) / T½), T½(Lu-177) = 159.528 h (ICRP-107).
Hand values: 2^(-24 / 159.528) = 0.90097326, 2^(-96 / 159.528) = 0.65894263.
"""

import json
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest

from theradose.errors import InputError, TheradoseWarning
from theradose.io import Administration, load_study, write_nifti, write_nm
from theradose.volume import Geometry, Volume

INJ = datetime(2024, 5, 1, 9, 0, 0)
ADM = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
GRID = Geometry((4, 5, 6), (4.8, 4.8, 4.8), (-12.0, -12.0, -9.6))
F = {24.0: 0.90097326, 96.0: 0.65894263}  # 2^(-h / 159.528)
C_ACQ = {24.0: 40000.0, 96.0: 25000.0}    # Bq/mL at each acquisition


def test_hand_values():
    for h, f in F.items():
        assert f == pytest.approx(2 ** (-h / (6.647 * 24)), rel=1e-8)


def _dicom_study(folder, dc: str) -> None:
    """Two NM time points as a camera would store them with DecayCorrection ``dc``."""
    for h, c in C_ACQ.items():
        t = INJ + timedelta(hours=h)
        stored = c / F[h] if dc == "ADMIN" else c
        p = write_nm(Volume(np.full(GRID.shape, stored), GRID, unit="Bq/mL", modality="NM",
                            acquisition_time=t), folder / f"nm_{int(h)}h.dcm",
                     administration=ADM, acquisition_duration_s=1800.0)
        ds = pydicom.dcmread(p)
        ds.DecayCorrection = dc
        ds.CorrectedImage = ["ATTN", "SCAT"] + (["DECY"] if dc != "NONE" else [])
        ds.save_as(p)


@pytest.mark.parametrize("dc", ["NONE", "ADMIN"])
def test_dicom_admin_and_none_give_the_same_activity(tmp_path, dc):
    _dicom_study(tmp_path, dc)
    s = load_study(tmp_path)
    np.testing.assert_allclose(s.times_h, [24.0, 96.0], atol=1e-9)
    for tp in s.time_points:
        # uint16 storage: slope = value / 65535 for a uniform image, error <= slope / 2.
        np.testing.assert_allclose(tp.emission.array, C_ACQ[tp.time_h], rtol=1e-5)
        assert tp.emission.meta["decay_correction"] == "NONE"
    if dc == "ADMIN":
        tp = s.time_points[1]
        assert tp.emission.meta["decay_correction_original"] == "ADMIN"
        assert tp.emission.meta["decay_correction_undo_factor"] == pytest.approx(F[96.0],
                                                                               rel=1e-7)
        assert "decay correction ADMIN undone" in tp.emission.history[-1]


def _nifti(folder, name, h, value, **meta):
    t = INJ + timedelta(hours=h)
    write_nifti(Volume(np.full(GRID.shape, value, np.float32), GRID, unit=meta.pop("unit",
                                                                                  "Bq/mL"),
                       modality="NM", acquisition_time=t,
                       meta={"administration": ADM, **meta}), folder / f"{name}.nii.gz")
    return folder / f"{name}.json"


def test_nifti_sidecar_decay_correction_is_undone(tmp_path):
    _nifti(tmp_path, "a", 24.0, C_ACQ[24.0] / F[24.0], decay_correction="ADMIN")
    # START 30 min before the 96 h acquisition: factor 2^(-0.5 / 159.528) = 0.99782986.
    _nifti(tmp_path, "b", 96.0, C_ACQ[96.0] / 0.99782986, decay_correction="START",
           decay_correction_reference_time=INJ + timedelta(hours=95.5))
    s = load_study(tmp_path)
    for tp in s.time_points:
        np.testing.assert_allclose(tp.emission.array, C_ACQ[tp.time_h], rtol=2e-7)  # float32
    assert s.time_points[1].emission.meta["decay_correction_original"] == "START"


def test_nifti_start_without_reference_time_is_an_error(tmp_path):
    side = _nifti(tmp_path, "a", 24.0, 1000.0, decay_correction="START")
    with pytest.raises(InputError, match=r"a\.json: decay_correction_reference_time: "
                                         r"DecayCorrection START needs"):
        load_study(tmp_path)
    data = json.loads(side.read_text())
    data["decay_correction"] = "LATER"
    side.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"a\.json: decay_correction: unknown decay "
                                         r"correction 'LATER'"):
        load_study(tmp_path)


def test_counts_are_calibrated_then_undone(tmp_path):
    # 1152 counts / (1800 s x 9 cps/MBq) x 1e6 / V: the read_nm formula; then x 2^(-24/T½).
    _nifti(tmp_path, "a", 24.0, 1152.0, unit="counts", acquisition_duration_s=1800.0,
           decay_correction="ADMIN")
    s = load_study(tmp_path, calibration_cps_per_mbq=9.0)
    v_ml = GRID.voxel_volume_ml
    np.testing.assert_allclose(s.time_points[0].emission.array,
                               1152.0 / (1800 * 9.0) * 1e6 / v_ml * F[24.0], rtol=1e-7)


def test_calibration_for_a_bqml_nifti_is_ignored_with_a_warning(tmp_path):
    _nifti(tmp_path, "a", 24.0, 5000.0)
    with pytest.warns(TheradoseWarning, match=r"a\.json: calibration_cps_per_mbq: ignored for "
                                              r"this image, its unit is already Bq/mL"):
        s = load_study(tmp_path, calibration_cps_per_mbq=9.0)
    np.testing.assert_allclose(s.time_points[0].emission.array, 5000.0)
