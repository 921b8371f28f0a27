"""Benchmark of the photon Monte Carlo (theradose.dose.mc): speed and time to 1 % kidney σ.

Prints the machine, histories/s of the numpy and torch (CPU/CUDA) backends on a 64³ water
cube, and the time the ``montecarlo`` engine needs until the Monte Carlo standard error of the
mean kidney dose (total: electrons local + photons) falls to 1 % for Lu-177 on the ICRP-89
reference adult male (theradose.phantoms, 4 mm voxels: ~2 M voxels, like 128³) with
Lu-PSMA-617 kinetics (reference TIA map, 7.4 GBq).

    .venv/bin/python benchmarks/mc_transport.py [--voxel-mm 4] [--no-torch]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}; {os.cpu_count()} logical CPUs (affinity "
            f"{len(os.sched_getaffinity(0))}); Python {platform.python_version()}; "
            f"numpy {np.__version__}")


def speed(backend: str, n: int) -> float:
    from theradose.dose.mc._emission import emission_spectrum
    from theradose.dose.mc._phantom import VoxelPhantom
    from theradose.dose.mc._transport import simulate_photons
    from theradose.volume import Geometry

    p = VoxelPhantom.uniform(Geometry((64, 64, 64), (4.0, 4.0, 4.0)), "water")
    src = np.zeros(p.shape)
    src[16:48, 16:48, 16:48] = 1.0
    spec = emission_spectrum("Lu-177")
    simulate_photons(p, src, spec, n_histories=1000, backend=backend)  # warm-up, tables
    r = simulate_photons(p, src, spec, n_histories=n, seed=1, backend=backend)
    print(f"  {r.backend:12s} {r.histories_per_s:12,.0f} photons/s ({n:,} photons, "
          f"{r.elapsed_s:.2f} s)")
    return r.histories_per_s


def kidney(voxel_mm: float) -> None:
    from theradose.dose.mc._engine import MonteCarloEngine
    from theradose.phantoms import reference_phantom, sample_kinetics
    from theradose.phantoms._kinetics import agent_subtissue_weights, tia_map
    from theradose.phantoms._patient import _region_volumes
    from theradose.volume import LabelMap, Volume

    t0 = time.perf_counter()
    anat = reference_phantom("adult_male", voxel_mm=voxel_mm)
    volumes = _region_volumes(anat.labels)
    labels = anat.labels.replace(names={v: n for v, n in anat.labels.names.items()
                                        if n in volumes})
    rng = np.random.default_rng(0)
    kin = sample_kinetics("psma", rng, volumes)
    weights = agent_subtissue_weights(labels, rng, kin)
    tia = Volume(tia_map(labels, weights, kin, agent="therapeutic", a0_mbq=7400.0),
                 labels.geometry, unit="MBq*h")
    vois = LabelMap(anat.organ_mask("kidney_left").astype(np.int32)
                    + 2 * anat.organ_mask("liver").astype(np.int32), labels.geometry,
                    names={1: "kidney_left", 2: "liver"})
    print(f"  phantom {anat.labels.shape} at {voxel_mm} mm ({np.prod(anat.labels.shape):,} "
          f"voxels), setup {time.perf_counter() - t0:.1f} s")
    eng = MonteCarloEngine(n_histories=200_000, seed=1, target="kidney_left",
                           target_rel_sigma=0.01, max_histories=50_000_000)
    t0 = time.perf_counter()
    res = eng.compute(tia, anat.density, "Lu-177", labels=vois)
    wall = time.perf_counter() - t0
    tr = res.provenance["transport"]
    for v in res.voi:
        print(f"  {v.name:12s} {v.mean_gy:8.3f} Gy ± {v.sigma_gy:.4f} "
              f"({100 * v.sigma_gy / v.mean_gy:.2f} % total-dose MC σ)")
    print(f"  photon energy in kidney_left: rel. σ {100 * tr['target_rel_sigma_reached']:.2f} %"
          f" after {tr['n_histories']:,} photons ({tr['histories_per_s']:,.0f} /s); "
          f"engine wall time {wall:.1f} s (transport {tr['elapsed_s']:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxel-mm", type=float, default=4.0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--photons", type=int, default=1_000_000)
    a = ap.parse_args()
    print("machine:", _machine())
    print("speed, Lu-177 in a 64^3 water cube (4 mm):")
    speed("numpy", a.photons)
    if not a.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("  torch not installed: skipped")
        else:
            speed("torch", max(a.photons // 5, 10_000))
    print("time to 1 % MC σ of the left-kidney photon energy (Lu-177, reference male):")
    kidney(a.voxel_mm)


if __name__ == "__main__":
    main()
