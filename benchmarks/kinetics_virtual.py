"""Organ TIA from simulated SPECT/CT vs the virtual patients' truth (issue 4 acceptance).

For each virtual patient (PSMA, no motion: registration is a later stage), the DICOM study is
read as a user would (``load_study`` with the calibration), organ TACs are taken in the TRUE
organ masks (fractional occupancy on the SPECT grid), fitted with ``fit_tac`` (default model set,
hybrid fallback) and compared with the true organ TIA in ``truth.json``. Two imaging settings:

* noiseless imaging: no noise, no blur (``noise=False``), but still 4.8 mm SPECT voxels whose
  boundary voxels mix organ and background; masks true and dilated by 5 mm (one SPECT voxel);
* realistic imaging: Poisson noise + 11 mm SPECT resolution, without partial-volume correction;
  the masks are also evaluated dilated by ``--dilate-mm`` (default 10 mm) to recover spill-out.

Run: ``python benchmarks/kinetics_virtual.py [--patients 4] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from theradose.io import load_study, read_labelmap
from theradose.kinetics import fit_tac, organ_tacs
from theradose.phantoms import SimulationConfig, patient_seeds, simulate_patient
from theradose.volume import Volume

ORGANS = ("liver", "kidney_left", "kidney_right", "spleen", "salivary_glands")


def _masks(labels, truth, organs, dilate_mm: float) -> dict[str, Volume]:
    out = {}
    sp = np.asarray(labels.geometry.spacing_mm)[::-1]  # z, y, x
    for name in organs:
        regions = truth["organs"][name]["regions"]
        m = np.isin(labels.array, [labels.labels[r] for r in regions])
        if dilate_mm > 0:
            r = np.ceil(dilate_mm / sp).astype(int)
            zz, yy, xx = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
            ball = (zz * sp[0]) ** 2 + (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2 <= dilate_mm**2
            m = ndimage.binary_dilation(m, structure=ball)
        out[name] = Volume(m.astype(np.float32), labels.geometry, unit="1")
    return out


def _errors(vp, organs, dilate_mm: float) -> dict[str, float]:
    truth = vp.truth
    cal = truth["acquisitions"][1]["calibration_cps_per_mbq"]
    study = load_study(vp.dicom, calibration_cps_per_mbq=cal)
    labels = read_labelmap(vp.truth_dir / "labels.nii.gz")
    tacs = organ_tacs(study, _masks(labels, truth, organs, dilate_mm))
    errs = {}
    for name in organs:
        tac = tacs.tac(name)
        fit = fit_tac(tac["times_h"], tac["activity_mbq"], unit="MBq", nuclide="Lu-177")
        errs[name] = fit.tia / truth["organs"][name]["tia_mbq_h"] - 1.0
    return errs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dilate-mm", type=float, default=10.0)
    args = ap.parse_args()
    print(f"# {platform.machine()}, Python {platform.python_version()}; PSMA, no motion, "
          f"{args.patients} patients, cohort seed {args.seed}")
    settings = {"noiseless imaging": dict(noise=False, motion=False, spect_output="Bq/mL"),
                "realistic imaging": dict(noise=True, motion=False)}
    t0 = time.perf_counter()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        for seed in patient_seeds(args.seed, args.patients):
            for label, kw in settings.items():
                vp = simulate_patient(Path(d) / f"{seed}_{kw['noise']}", seed=seed,
                                      config=SimulationConfig(**kw))
                for dil in ((0.0, 5.0) if not kw["noise"] else (0.0, args.dilate_mm)):
                    key = f"{label}, masks {'true' if dil == 0 else f'+{dil:g} mm'}"
                    for organ, e in _errors(vp, ORGANS, dil).items():
                        rows.setdefault(key, []).append(e)
                        rows.setdefault(f"{key} [{organ}]", []).append(e)
    for key, errs in rows.items():
        if "[" in key:
            continue
        e = np.abs(np.asarray(errs))
        print(f"{key:<45} median |error| {100 * np.median(e):5.1f} %   max {100 * e.max():5.1f} %")
        for organ in ORGANS:
            oe = np.asarray(rows[f"{key} [{organ}]"])
            print(f"    {organ:<18} mean error {100 * oe.mean():+6.1f} %")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
