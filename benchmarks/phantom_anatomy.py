"""Time the anatomy of the virtual patients and print its masses against ICRP-89.

    python benchmarks/phantom_anatomy.py              # timings + mass table
    python benchmarks/phantom_anatomy.py --calibrate  # refit REFERENCE_PARAMS (prints them)
"""

from __future__ import annotations

import argparse
import pprint
import time
import tracemalloc

import numpy as np

from theradose.phantoms._anatomy import calibrate_reference, random_anatomy, reference_phantom
from theradose.phantoms._anatomy_lesions import add_lesions

KEYS = ["liver", "kidneys", "spleen", "lungs", "heart", "heart_blood_pool",
        "urinary_bladder_wall", "urinary_bladder_content", "parotid_glands",
        "submandibular_glands", "lacrimal_glands", "red_marrow", "brain", "thyroid_gland",
        "pancreas", "stomach", "small_bowel", "prostate", "testes", "uterus", "ovaries"]


def _table(a) -> None:
    ref = a.params["icrp89_reference_g"]
    print(f"{'region':26s} {'theradose g':>12s} {'ICRP-89 g':>10s} {'diff %':>7s}")
    for k in KEYS:
        if k in a.masses_g and ref.get(k, 0) > 0:
            m = a.masses_g[k]
            print(f"{k:26s} {m:12.1f} {ref[k]:10.1f} {100 * (m / ref[k] - 1):7.1f}")
    print(f"{'whole body':26s} {a.params['total_body_mass_g']:12.0f} {ref['whole_body']:10.0f} "
          f"{100 * (a.params['total_body_mass_g'] / ref['whole_body'] - 1):7.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--voxel-mm", type=float, default=3.0)
    args = ap.parse_args()
    if args.calibrate:
        for sex in ("male", "female"):
            print(sex)
            pprint.pprint(calibrate_reference(sex, voxel_mm=args.voxel_mm, iterations=8))
        return
    for name in ("adult_male", "adult_female"):
        tracemalloc.start()
        t0 = time.perf_counter()
        a = reference_phantom(name, voxel_mm=args.voxel_mm)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"\n{name}: {dt:.2f} s, peak traced memory {peak:.0f} MiB, grid "
              f"{a.labels.shape} at {args.voxel_mm} mm")
        _table(a)
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    a = random_anatomy(rng, voxel_mm=args.voxel_mm)
    t1 = time.perf_counter()
    a = add_lesions(a, rng, n=5)
    t2 = time.perf_counter()
    print(f"\nrandom_anatomy: {t1 - t0:.2f} s ({a.params['sex']}, {a.params['height_cm']:.0f} cm, "
          f"{a.params['weight_kg']:.0f} kg); add_lesions(n=5): {t2 - t1:.2f} s")
    for les in a.params["lesions"]:
        print(f"  {les['name']}: {les['site']}, {les['volume_ml']:.1f} mL")


if __name__ == "__main__":
    main()
