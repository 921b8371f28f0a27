"""Time conservative resampling on clinical grid sizes and report conservation.

Run: ``python benchmarks/resample.py``. Prints one line per case: seconds (best of 3) and the
relative change of the total/integral (0 when the target covers the source).
"""

from __future__ import annotations

import platform
import time

import numpy as np

from theradose.volume import Geometry, Volume, resample


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _best(fn, n=3):
    best = np.inf
    out = None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    rng = np.random.default_rng(0)
    ct = Geometry((300, 512, 512), (0.977, 0.977, 1.5), (-250.0, -250.0, -225.0))
    spect = Geometry((128, 128, 128), (4.8, 4.8, 4.8), (-305.0, -305.0, -305.0))
    ct_vol = Volume(rng.normal(0, 100, ct.shape).astype(np.float32), ct, unit="HU")
    spect_act = Volume(rng.random(spect.shape), spect, unit="MBq")
    spect_conc = Volume(rng.random(spect.shape), spect, unit="Bq/mL")
    small_ct = Geometry((150, 256, 256), (1.953, 1.953, 3.0), (-250.0, -250.0, -225.0))
    rotated = Geometry((64, 64, 64), (4.8, 4.8, 4.8), (-150.0, -150.0, -150.0), _rot(10))
    cases = [
        ("CT 512x512x300 -> SPECT 4.8 mm 128^3 (HU, mean)", ct_vol, spect),
        ("SPECT 128^3 activity -> CT 256x256x150 (total)", spect_act, small_ct),
        ("SPECT 128^3 concentration -> CT 256x256x150 (mean)", spect_conc, small_ct),
        ("SPECT 128^3 activity -> rotated 64^3 (total, sub-voxel)", spect_act, rotated),
    ]
    print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}")
    for name, vol, tgt in cases:
        sec, out = _best(lambda v=vol, t=tgt: resample(v, t))
        change = out.history[-1].rsplit(":", 1)[1].strip()
        print(f"{name:<58} {sec:7.2f} s   change {change}")


if __name__ == "__main__":
    main()
