"""Time each pipeline stage on the demo patient and print the accuracy against the truth.

Usage: ``python benchmarks/pipeline.py [--out DIR] [--seed N] [--voxel-mm 5]``. Prints the
machine, the stage timings (``results["provenance"]["timings_s"]``) and the estimate-vs-truth
table of ``theradose demo``. A second run in the same folder shows the cached stages.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from theradose.pipeline import run_demo, run_pipeline, truth_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--voxel-mm", type=float, default=5.0)
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="theradose-bench-"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.platform()}, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    res = run_demo(out, seed=a.seed, voxel_mm=a.voxel_mm, overwrite=True)
    total = time.perf_counter() - t0
    print(f"demo (simulation + pipeline): {total:.1f} s")
    for stage, s in res["provenance"]["timings_s"].items():
        print(f"  {stage:<14} {s:8.2f} s")
    print(truth_table(res))
    t0 = time.perf_counter()
    cfg = dict(res["config"])
    cfg["dose"] = {**cfg["dose"], "engines": ["led"]}
    res2 = run_pipeline(out / "patient" / "dicom", out / "results", cfg, overwrite=True)
    print(f"re-run with another dose engine: {time.perf_counter() - t0:.1f} s "
          f"(cache hits: {res2['provenance']['cache_hits']})")


if __name__ == "__main__":
    main()
