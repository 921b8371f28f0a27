"""A hand-built results dict and images for the report tests (not produced by the pipeline)."""

from __future__ import annotations

import numpy as np

from theradose.report import ReportImages
from theradose.volume import Geometry, LabelMap, Volume

SHAPE = (16, 20, 20)  # (Z, Y, X)
SPACING = (5.0, 5.0, 5.0)
PAROTID_C = (8, 8, 7)  # (z, y, x) centres
LESION_C = (8, 12, 13)


def _ball(centre, r_vox):
    z, y, x = np.indices(SHAPE)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r_vox ** 2


def make_images(direction=None) -> ReportImages:
    """CT body ellipse (0 HU in -1000 HU air), two VOIs, a dose of 2 Gy / 8 Gy (12 Gy peak)."""
    g = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), np.eye(3) if direction is None else direction)
    _, y, x = np.indices(SHAPE)
    body = ((y - 10) / 8.5) ** 2 + ((x - 10) / 9.5) ** 2 <= 1.0
    ct = np.where(body, 0.0, -1000.0)
    parotid, lesion = _ball(PAROTID_C, 3), _ball(LESION_C, 2)
    dose = np.where(body, 0.2, 0.0)
    dose[parotid] = 2.0
    dose[lesion] = 8.0
    dose[LESION_C] = 12.0
    spect = np.where(body, 50.0, 0.0) + 2000.0 * parotid + 6000.0 * lesion
    labels = LabelMap.from_masks({"parotid_right": parotid, "lesion_1": lesion}, g)
    return ReportImages(ct=Volume(ct, g, unit="HU", modality="CT"),
                        dose=Volume(dose, g, unit="Gy", modality="RTDOSE"),
                        spect=Volume(spect, g, unit="Bq/mL", modality="NM"),
                        labels=labels)


def _tac(a0: float, half_life_h: float, sd_frac: float) -> dict:
    lam = np.log(2) / half_life_h
    t = [4.0, 24.0, 48.0, 96.0]
    a = [a0 * np.exp(-lam * ti) for ti in t]
    tc = np.linspace(0, 120, 41)
    ac = a0 * np.exp(-lam * tc)
    return {"times_h": t, "activity_mbq": a, "activity_sd_mbq": [sd_frac * v for v in a],
            "fit_curve": {"t_h": tc.tolist(), "a_mbq": ac.tolist(),
                          "lo": (0.9 * ac).tolist(), "hi": (1.1 * ac).tolist()}}


def make_results() -> dict:
    """A small results dict (schema theradose.results/1) with a non-Lu nuclide on purpose."""
    d = np.linspace(0, 10, 21)
    return {
        "schema": "theradose.results/1",
        "software": {"theradose": "0.1.0", "python": "3.11", "numpy": "2.0"},
        "nuclide": "Tb-161",
        "radiopharmaceutical": "161Tb-test-ligand",
        "injected_activity_mbq": 1234.5,
        "study": {"source": "/data/patient7", "patient_id": "VP-0007",
                  "time_points": [{"time_h": 4.0, "files": ["tp1/ct", "tp1/nm"]},
                                  {"time_h": 24.0, "files": ["tp2/ct", "tp2/nm"]}]},
        "registration": [{"time_h": 4.0, "ncc_after": 1.0, "ok": True, "message": "reference"},
                         {"time_h": 24.0, "ncc_after": 0.93, "ok": True, "message": "rigid"}],
        "config": {"dose": {"engines": ["kernel", "montecarlo"]}},
        "vois": {
            "parotid_right": {
                "mass_g": 25.3, "volume_ml": 24.6,
                "tia_mbq_h": {"value": 812.4, "sd": 40.1},
                "fit": {"model": "mono", "aicc": -3.2, "r2": 0.991,
                        "parameters": {"a0_mbq": 20.0, "lambda_per_h": 0.0231}},
                "tac": _tac(20.0, 30.0, 0.05),
                "dose_gy": {"kernel": {"value": 4.2123, "sd": 0.3177},
                            "montecarlo": {"value": 4.3051, "sd": 0.0452}},
                "dvh": {"d2": 5.1, "d50": 4.2, "d98": 3.3,
                        "curve": {"dose_gy": d.tolist(),
                                  "volume_fraction": np.clip(1 - d / 6, 0, 1).tolist()}},
                "bed_gy": {"value": 4.871, "sd": 0.41},
                "pvc": {"recovery_coefficient": 0.83, "fwhm_mm": 12.0},
            },
            "lesion_1": {
                "mass_g": 4.19, "volume_ml": 4.19,
                "tia_mbq_h": {"value": 305.0, "sd": 22.0},
                "fit": {"model": "bi", "aicc": 1.5, "r2": 0.97, "parameters": {"a1": 8.0}},
                "tac": _tac(8.0, 60.0, 0.08),
                "dose_gy": {"kernel": {"value": 17.64, "sd": 1.93},
                            "montecarlo": {"value": 18.02, "sd": 0.2}},
                "dvh": {"d2": 24.0, "d50": 17.0, "d98": 9.0,
                        "curve": {"dose_gy": (3 * d).tolist(),
                                  "volume_fraction": np.clip(1 - d / 9, 0, 1).tolist()}},
                "bed_gy": {"value": 19.9, "sd": 2.2},
            },
        },
        "outputs": {"dose_nifti": "dose.nii.gz", "rtdose": "rtdose.dcm"},
        "provenance": {"nuclide_data": "ICRP-107 via icrp107-database 1.0",
                       "kernels": "voxel S-values generated from ESTAR/xraylib", "seed": 7},
        "truth": {"vois": {"parotid_right": {"tia_mbq_h": 800.0,
                                             "dose_gy": {"kernel": 4.0, "montecarlo": 4.0}},
                           "lesion_1": {"tia_mbq_h": 300.0, "dose_gy": 18.0}}},
    }
