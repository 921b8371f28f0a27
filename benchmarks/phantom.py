"""Time one virtual patient (CT + PET + 4 SPECT/CT, DICOM + truth) and report peak memory.

Run: ``python benchmarks/phantom.py [--seed 0] [--voxel-mm 3]``. Target (issue 3): < 30 s and
< 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import resource
import tempfile
import time
from pathlib import Path

from theradose.phantoms import SimulationConfig, simulate_patient


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--voxel-mm", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        vp = simulate_patient(Path(d) / "vp", seed=args.seed,
                              config=SimulationConfig(voxel_mm=args.voxel_mm))
        dt = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in vp.out.rglob("*") if p.is_file()) / 1e6
        shape = tuple(vp.truth["reference_grid"]["shape_zyx"])
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"# {platform.machine()}, Python {platform.python_version()}")
    print(f"one patient (seed {args.seed}, {args.voxel_mm} mm grid {shape}): {dt:.1f} s, "
          f"peak memory {peak_gb:.2f} GB, {size:.0f} MB written")


if __name__ == "__main__":
    main()
