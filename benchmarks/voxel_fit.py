"""Time voxel-wise TAC fitting (theradose.kinetics fit_voxels) and report accuracy vs truth.

Run: ``python benchmarks/voxel_fit.py [--voxels 1000000] [--threads 2]``. Synthetic voxels
(half mono-exponential, half bi-exponential uptake-washout, 177Lu-like effective half-lives) at
4 time points (4, 24, 96, 168 h) with 10 % Gaussian relative noise. Prints the machine
(platform, CPUs), voxels/s and the TIA error vs the analytic integral (median, NRMSE) for

* ``aicc``: the default (with 4 points AICc admits mono only: bi_uptake needs 5 points);
* ``aic``: mono and bi_uptake both fitted in every voxel (the worst case for time);
* noiseless ``aic``: fraction of voxels within 0.1 % of the analytic TIA;
* low-count background: 1e-5 MBq per voxel decaying physically, Poisson counts (mean 1 per
  sample) with zero-count samples set to tiny positive values as OSEM leaves them: the case
  the data bound exists for (largest TIA / largest sample, region sum vs the analytic TIA).

``--bound none`` runs without the data bound (``fit_voxels(bound=None)``, the behaviour before
it) to measure its cost on the same code.

To pin the run to 2 cores on Linux: ``taskset -c 0,1 python benchmarks/voxel_fit.py``. The
1-minute load average is printed before and after (other jobs on the machine slow the wall
time; the process CPU time is printed too).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

from theradose.kinetics._voxel import fit_voxels

LAM = math.log(2.0) / (6.647 * 24.0)  # Lu-177
T_H = np.array([4.0, 24.0, 96.0, 168.0])


def _truth(n: int, rng: np.random.Generator):
    a = rng.uniform(0.5, 2.0, n)
    l1 = LAM + rng.uniform(0.002, 0.05, n)
    l2 = l1 + rng.uniform(0.1, 1.0, n)
    img = a * (np.exp(-np.outer(T_H, l1)) - np.exp(-np.outer(T_H, l2)))
    tia = a * (1.0 / l1 - 1.0 / l2)
    half = n // 2
    img[:, :half] = a[:half] * np.exp(-np.outer(T_H, l1[:half]))
    tia[:half] = a[:half] / l1[:half]
    return img, tia


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--noise", type=float, default=0.10)
    ap.add_argument("--bound", choices=("data", "none"), default="data")
    args = ap.parse_args()
    bound = None if args.bound == "none" else args.bound
    rng = np.random.default_rng(0)
    img, tia = _truth(args.voxels, rng)
    noisy = img * (1.0 + args.noise * rng.standard_normal(img.shape))
    aff = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, numpy {np.__version__}, "
          f"CPUs usable {aff}, threads {args.threads}")
    print(f"{args.voxels} voxels x {T_H.size} time points {T_H.tolist()} h, "
          f"noise {args.noise:.0%}, bound {bound!r}")
    print(f"load average (1, 5, 15 min) before: {_load()}")
    cases = [("aicc (default)", noisy, "aicc"), ("aic, mono+bi_uptake fitted", noisy, "aic"),
             ("aic, noiseless", img, "aic")]
    for label, data, crit in cases:
        t0 = time.perf_counter()
        c0 = time.process_time()
        r = fit_voxels(T_H, data, models=("mono", "bi_uptake"), criterion=crit,
                       relative_sigma=max(args.noise, 0.01), n_threads=args.threads,
                       bound=bound)
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        err = r.tia / tia - 1.0
        print(f"{label:28s} {dt:6.2f} s (CPU {dc:5.2f} s)  {args.voxels / dt:8.0f} voxels/s  "
              f"median err {np.median(err):+.4f}  NRMSE {np.sqrt(np.mean(err ** 2)):.4f}  "
              f"within 0.1%: {np.mean(np.abs(err) < 1e-3):.3f}  counts {r.counts()}")
    bg, bg_tia = _background(args.voxels, rng)
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = fit_voxels(T_H, bg, n_threads=args.threads, bound=bound)  # pipeline defaults
    dt = time.perf_counter() - t0
    dc = time.process_time() - c0
    worst = float(np.max(r.tia / bg.max(axis=0)))
    print(f"{'low-count background':28s} {dt:6.2f} s (CPU {dc:5.2f} s)  "
          f"{args.voxels / dt:8.0f} voxels/s  max TIA/max sample {worst:.3g} h"
          f"  region sum/analytic {r.tia.sum() / (bg_tia * args.voxels):.3f}  counts {r.counts()}")
    print(f"load average (1, 5, 15 min) after: {_load()}")


def _background(n: int, rng: np.random.Generator, mean_mbq: float = 1e-5,
                counts: float = 1.0):
    """Low-count background (MBq, (T, n)) and its analytic TIA per voxel (MBq·h)."""
    scale = counts / mean_mbq  # counts per MBq
    c = rng.poisson(mean_mbq * scale * np.exp(-LAM * T_H)[:, None] * np.ones((1, n)))
    c = c.astype(float)
    zero = c == 0
    c[zero] = 10.0 ** rng.uniform(-6.0, -1.0, int(zero.sum()))
    return c / scale, mean_mbq / LAM


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") \
        else "n/a"


if __name__ == "__main__":
    main()
