"""Dose engines on a virtual patient's TRUE TIA map: LED, kernel (plain and multi-kernel), MC.

The reference adult male (PSMA kinetics, 177Lu, 7.4 GBq) is simulated at ``--voxel-mm`` (no
imaging error: the true TIA, density and materials of the reference frame are used, so the
differences are those of the dose engines alone). Monte Carlo (photons transported in the CT
media, electrons by the electron kernel) is the reference; the table gives per-organ means and the
differences per tissue class (lung, bone, soft tissue) over the whole body, then where each
map has its maximum and how much dose it puts in gas (ρ < 0.05 g/cm³: air outside the body,
trachea, bowel gas). Kernel engines: the default (charged particles ρ_k/ρ, gas as Bragg–Gray
cavity, photons by kerma ratio) and the former rule (ρ_k/ρ on the whole kernel, any density).
Prints the machine and the time of each engine.

Run: ``python benchmarks/dose_engines_virtual.py [--voxel-mm 4] [--histories 4000000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from theradose.dose import get_engine
from theradose.dose._compare_maps import compare_dose_maps
from theradose.io import read_labelmap, read_nifti
from theradose.phantoms import SimulationConfig, simulate_patient
from theradose.phantoms._truth_dose import _organ_labels

ORGANS = ("kidney_left", "kidney_right", "liver", "spleen", "lungs", "salivary_glands",
          "red_marrow", "skeleton")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxel-mm", type=float, default=4.0)
    ap.add_argument("--histories", type=int, default=4_000_000)
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {load:.1f}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as d:
        cfg = SimulationConfig(phantom="adult_male", voxel_mm=args.voxel_mm, noise=False,
                               motion=False, n_lesions=0)
        vp = simulate_patient(Path(d) / "vp", seed=0, config=cfg)
        tia = read_nifti(vp.truth_dir / "tia.nii.gz")
        density = read_nifti(vp.truth_dir / "density.nii.gz")
        labels = read_labelmap(vp.truth_dir / "labels.nii.gz")
        materials = read_labelmap(vp.truth_dir / "materials.nii.gz")
        organs = {k: v for k, v in vp.truth["organs"].items()}
        voi = _organ_labels(labels, organs)
        print(f"grid {tia.shape} at {args.voxel_mm} mm; total TIA "
              f"{tia.array.sum():.4g} MBq·h")
        engines = [("montecarlo", {"n_histories": args.histories, "electrons": "kernel"}),
                   ("kernel", {"medium": "soft_tissue"}),
                   ("kernel", {"medium": "soft_tissue", "photon_correction": "density",
                               "cavity_density_g_cm3": None}),
                   ("kernel", {"medium": "soft_tissue", "heterogeneity": True}),
                   ("led", {}),
                   ("led", {"photons": "ignore"}),
                   ("led", {"photons": "local"})]
        names = ["MC", "kernel", "kernel former", "kernel multi-VSV", "LED", "LED e-only",
                 "LED all local"]
        results = []
        for (name, opts), label in zip(engines, names, strict=True):
            t0 = time.perf_counter()
            results.append(get_engine(name, **opts).compute(tia, density, "Lu-177", labels=voi))
            print(f"{label:<18} {time.perf_counter() - t0:7.1f} s")
        body = compare_dose_maps(results, names, reference=0, materials=materials,
                                 density=density)
        organ = compare_dose_maps(results, names, reference=0, voi=voi, density=density)
        rows = body.rows + [r for r in organ.rows if r["region"] in ORGANS]
        print(_table(rows, names))
        print(_gas_table(results, names, density.array))


def _gas_table(results, names, rho: np.ndarray) -> str:
    """Where each map has its maximum, and the dose it puts in gas voxels (ρ < 0.05)."""
    gas = (rho > 0) & (rho < 0.05)
    out = [f"\n{int(gas.sum())} gas voxels (0 < ρ < 0.05 g/cm³)\n",
           "| engine | map max (Gy) | ρ at max | gas max (Gy) | gas voxels > 1 % of max |",
           "|---|---|---|---|---|"]
    for r, n in zip(results, names, strict=True):
        d = np.clip(r.dose.array, 0.0, None)
        mx = float(d.max())
        g = float(d[gas].max()) if gas.any() else 0.0
        out.append(f"| {n} | {mx:.3g} | {rho.flat[int(np.argmax(d))]:.3g} | {g:.3g} | "
                   f"{int(np.sum(d[gas] > 0.01 * mx))} |")
    return "\n".join(out)


def _table(rows, names) -> str:
    out = ["| region | tissue | " + " | ".join(f"{n} (Gy)" for n in names) + " |",
           "|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = []
        for i, e in enumerate(r["engines"]):
            rel = e.get("relative_difference")
            txt = "–" if e["mean_gy"] is None else f"{e['mean_gy']:.3f}"
            if i > 0 and rel is not None:
                txt += f" ({100 * rel:+.1f} %)"
            cells.append(txt)
        out.append(f"| {r['region']} | {r['tissue']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
