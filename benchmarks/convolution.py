"""Time the kernel-convolution dose engine on clinical map sizes (target: < 1 s on 2 cores).

Run: ``python benchmarks/convolution.py [--workers 2] [--repeat 3]``. Cases: 128³ and
256×256×200 TIA maps at 4.8 mm with a Lu-177-sized kernel (radius 10 cm → 43³ voxels, the
photon reach) and an electron-only-sized one (11³), dose only and dose + σ map, float32 and
float64 FFTs; plus LED for reference. Prints the machine first, then one line per case (best
of ``--repeat``) and the uniform-activity check (centre dose / LED − 1, for a kernel with
energy fraction 1). The kernel values are synthetic (a normalised Gaussian): the timing does
not depend on them, and generating a 43³ kernel is benchmarked in kernel_generation.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy

from theradose.dose._convolution import KernelConvolutionEngine
from theradose.dose._led import LocalDepositionEngine
from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.volume import Volume

LU_E = 147.92313516289383  # ICRP-107 Lu-177 electron keV per decay
VOX = 4.8


def _kernel(n: int, width: float) -> VoxelKernel:
    g = np.arange(n) - n // 2
    r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
    w = np.exp(-r2 / (2 * width ** 2))
    w /= w.sum()
    mass_kg = VOX ** 3 * 1e-6
    return VoxelKernel(w * LU_E * KEV_TO_J / mass_kg * 1e9, (VOX,) * 3, "Lu-177", "water", 1.0,
                       ("electron",), LU_E)


def _best(n: int, fn, *a, **kw) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"machine: {platform.node()} | {_cpu()} | {os.cpu_count()} CPUs visible | "
          f"workers={args.workers} | Python {platform.python_version()} | numpy "
          f"{np.__version__} | scipy {scipy.__version__}")
    rng = np.random.default_rng(0)
    kernels = {"43^3 (r=10 cm)": _kernel(43, 6.0), "11^3 (electrons)": _kernel(11, 1.0)}
    for shape in ((128, 128, 128), (200, 256, 256)):
        tia = Volume.from_array(rng.random(shape).astype(np.float32), spacing_mm=(VOX,) * 3,
                                unit="MBq*h")
        sig = Volume.from_array((0.1 * tia.array).astype(np.float32), spacing_mm=(VOX,) * 3,
                                unit="MBq*h")
        rho = Volume.from_array(rng.uniform(0.9, 1.1, shape).astype(np.float32),
                                spacing_mm=(VOX,) * 3, unit="g/cm3")
        label = "x".join(str(s) for s in shape[::-1])
        t, _ = _best(args.repeat, LocalDepositionEngine().compute, tia, rho, "Lu-177")
        print(f"{label:12s} LED                                  {t:7.3f} s")
        for kname, k in kernels.items():
            for prec in ("float32", "float64"):
                eng = KernelConvolutionEngine(kernel=k, precision=prec, workers=args.workers)
                t, _ = _best(args.repeat, eng.compute, tia, rho, "Lu-177")
                t2, _ = _best(args.repeat, eng.compute, tia, rho, "Lu-177", tia_sigma=sig)
                print(f"{label:12s} kernel {kname:17s} {prec}  {t:7.3f} s  "
                      f"(+σ map {t2:7.3f} s)")
    # accuracy: uniform activity, centre voxel vs LED (energy fraction 1 by construction)
    uni = Volume.from_array(np.ones((96, 96, 96), np.float32), spacing_mm=(VOX,) * 3,
                            unit="MBq*h")
    k = kernels["43^3 (r=10 cm)"]
    d = KernelConvolutionEngine(kernel=k).compute(uni, 1.0, "Lu-177").dose.array[48, 48, 48]
    led = LocalDepositionEngine(photons="ignore").compute(uni, 1.0, "Lu-177").dose.array[0, 0, 0]
    print(f"uniform 96^3, 43^3 kernel, float32: centre / LED - 1 = {d / led - 1:+.2e}")


if __name__ == "__main__":
    main()
