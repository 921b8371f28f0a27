"""Time the I/O paths on clinical sizes: DICOM CT/NM/PT, RT Dose, NIfTI, and the study loader.

Run: ``python benchmarks/io.py``. Writes to a temporary folder; prints seconds per step. When
``../shared/data`` is present the real 512×512 JPEG 2000 CT series is read too.
"""

from __future__ import annotations

import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from theradose.io import (
    Administration,
    DicomStudyInfo,
    load_study,
    read_ct,
    read_nifti,
    read_nm,
    read_pt,
    read_rtdose,
    write_ct_series,
    write_nifti,
    write_nm,
    write_pt_series,
    write_rtdose,
)
from theradose.volume import Geometry, Volume

SHARED_CT = Path(__file__).resolve().parents[1].parent / "shared/data/totalsegmentator_example"


def _t(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<62} {time.perf_counter() - t0:7.2f} s")
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    inj = datetime(2026, 1, 5, 9, 0)
    adm = Administration("Lu-177", 7400.0, inj, "177Lu-PSMA-617")
    info = DicomStudyInfo(patient_id="BENCH", patient_weight_kg=75.0)
    print(f"# {platform.machine()}, Python {platform.python_version()}")
    ct_g = Geometry((200, 512, 512), (0.977, 0.977, 2.0), (-250.0, -250.0, -200.0))
    nm_g = Geometry((128, 128, 128), (4.8, 4.8, 4.8), (-307.0, -307.0, -307.0))
    ct = Volume(rng.normal(0, 50, ct_g.shape).astype(np.float32), ct_g, unit="HU",
                modality="CT", acquisition_time=inj + timedelta(hours=24))
    nm = Volume(rng.poisson(30, nm_g.shape).astype(np.float32), nm_g, unit="counts",
                modality="NM", acquisition_time=inj + timedelta(hours=24))
    pt = Volume(rng.random(nm_g.shape).astype(np.float32) * 2e4, nm_g, unit="Bq/mL",
                modality="PT", acquisition_time=inj - timedelta(days=7))
    dose = Volume(rng.random(nm_g.shape) * 5.0, nm_g, unit="Gy", modality="RTDOSE")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _t("write CT series 512x512x200 (int16)", lambda: write_ct_series(ct, d / "s/ct",
                                                                          patient=info))
        ref = _t("read CT series 512x512x200", lambda: read_ct(d / "s/ct"))
        _t("write NM multi-frame 128^3 (counts)", lambda: write_nm(
            nm, d / "s/nm.dcm", administration=adm, acquisition_duration_s=1800, patient=info))
        _t("read NM 128^3 + counts->Bq/mL", lambda: read_nm(d / "s/nm.dcm",
                                                           calibration_cps_per_mbq=9.0))
        pet_adm = Administration("Ga-68", 150.0, inj - timedelta(days=7, hours=1))
        _t("write PT series 128^3", lambda: write_pt_series(
            pt, d / "pet", administration=pet_adm, patient_weight_kg=75.0, patient=info,
            acquisition_duration_s=900))
        _t("read PT series 128^3", lambda: read_pt(d / "pet"))
        _t("write RT Dose 128^3 resampled to CT grid 512x512x200",
           lambda: write_rtdose(dose, d / "rd.dcm", reference=ref, grid=ref.geometry))
        _t("read RT Dose 512x512x200", lambda: read_rtdose(d / "rd.dcm"))
        _t("write NIfTI + sidecar CT 512x512x200", lambda: write_nifti(ct, d / "ct.nii.gz"))
        _t("read NIfTI + sidecar CT 512x512x200", lambda: read_nifti(d / "ct.nii.gz"))
        _t("load_study (DICOM: 1 CT + 1 NM)", lambda: load_study(
            d / "s", calibration_cps_per_mbq=9.0))
    if SHARED_CT.is_dir():
        _t("read real CT DICOM 512x512x20 (JPEG 2000)", lambda: read_ct(SHARED_CT / "ct_dicom"))


if __name__ == "__main__":
    main()
