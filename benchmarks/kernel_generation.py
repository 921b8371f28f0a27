"""Voxel S-value generation time per nuclide and voxel size: cold, warm point kernels, cached.

* cold: empty cache; point kernels (electron transport + photon Monte Carlo, default
  statistics) are generated, then integrated over the voxel geometry;
* integration: point kernels cached, voxel kernel not (the voxel-geometry integration alone);
* cached: the voxel kernel read from the on-disk cache.

Run: ``python benchmarks/kernel_generation.py [--quick]`` (``--quick``: 4.8 mm only).
Prints the machine and one line per (nuclide, voxel size) with the source-voxel S-value.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from theradose.dose._vsv import voxel_s_values

NUCLIDES = ("Lu-177", "Y-90", "I-131")
VOXELS_MM = (2.0, 3.0, 4.8, 6.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4.8 mm voxels only")
    args = ap.parse_args()
    voxels = (4.8,) if args.quick else VOXELS_MM
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.platform()}")
    print(f"{'nuclide':<8}{'voxel mm':>9}{'cold s':>9}{'integr. s':>10}{'cached s':>10}"
          f"{'box':>8}{'centre mGy/(MBq s)':>20}{'E frac':>8}")
    for nuc in NUCLIDES:
        with tempfile.TemporaryDirectory() as d:
            for v in voxels:
                # cold (point kernels generated: first voxel size only) / integration only
                t0 = time.perf_counter()
                k = voxel_s_values(nuc, v, cache_dir=d)
                t_first = time.perf_counter() - t0
                t0 = time.perf_counter()
                voxel_s_values(nuc, v, cache_dir=d, cache=True, seed=1)  # new key: integrate
                t_int = time.perf_counter() - t0
                t0 = time.perf_counter()
                voxel_s_values(nuc, v, cache_dir=d)
                t_cached = time.perf_counter() - t0
                print(f"{nuc:<8}{v:>9.1f}{t_first:>9.2f}{t_int:>10.2f}{t_cached:>10.3f}"
                      f"{k.values.shape[0]:>8}{k.values[k.center]:>20.5g}"
                      f"{k.energy_fraction:>8.3f}", flush=True)
    print("cold = point kernels + integration for the first voxel size of each nuclide, "
          "integration only for the others")


if __name__ == "__main__":
    main()
