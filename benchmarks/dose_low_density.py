"""Dose in lung, gas and air: kernel and LED engines against Monte Carlo on small phantoms.

Part 1 — heterogeneity (issue 16, item 3). A 12.8 cm water box in air (4 mm voxels, 40³) with a
24 mm lung slab (0.26 g/cm³) and a 24 mm gas cavity (0.00121 g/cm³); Lu-177 in a 48 mm "organ"
(1 MBq·h per voxel) and a tissue background (0.02 MBq·h per voxel), none in lung or gas. Engines:
kernel (default: charged particles ρ_k/ρ, gas as Bragg–Gray cavity, photons by kerma ratio),
kernel with photons scaled by ρ_k/ρ, the former kernel (ρ_k/ρ everywhere), LED (default), and
Monte Carlo (photon transport; electrons by the electron kernel with the same charged-particle
rule). Every engine is also run with the lung and cavity filled with water; ``Q`` is the
heterogeneity effect of an engine over that of Monte Carlo, ``(E_het/E_water)/(MC_het/MC_water)``
(the finite box already makes the kernel differ from MC in all-water far from the source).

Part 2 — LED default (item 4). A 14.4 cm soft-tissue body with kidney, liver and spleen blocks:
LED (photons by kernel, the default) and LED (photons local) against Monte Carlo (electrons
local, photons transported).

Run: ``python benchmarks/dose_low_density.py [--histories 8000000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from theradose.dose import get_engine
from theradose.dose.mc import MonteCarloEngine
from theradose.volume import Geometry, LabelMap, Volume

AIR = 0.00121
G = Geometry((40, 40, 40), (4.0, 4.0, 4.0))
BODY = (slice(4, 36),) * 3
ORGAN = (slice(8, 20), slice(8, 20), slice(18, 30))
LUNG = (slice(4, 36), slice(24, 30), slice(4, 36))
GAS = (slice(10, 16), slice(10, 16), slice(8, 14))
REGIONS = ("organ", "tissue", "lung", "gas", "air_near_skin")


def heterogeneous_phantom(water: bool) -> tuple[Volume, Volume, LabelMap, np.ndarray]:
    """TIA, density, regions and the outside-body mask (``water``: lung and gas filled)."""
    rho = np.full(G.shape, AIR)
    rho[BODY] = 1.0
    body = rho > 0.5
    if not water:
        rho[LUNG], rho[GAS] = 0.26, AIR
    tissue = body.copy()
    tissue[LUNG] = tissue[GAS] = False
    tia = np.where(tissue, 0.02, 0.0)
    tia[ORGAN] = 1.0
    lab = np.where(tissue, 2, 0).astype(np.int16)
    lab[ORGAN], lab[LUNG], lab[GAS] = 1, 3, 4
    near = np.zeros(G.shape, bool)
    near[2:38, 2:38, 2:38] = True
    lab[near & ~body] = 5
    names = {1: "organ", 2: "tissue", 3: "lung", 4: "gas", 5: "air_near_skin"}
    return (Volume(tia, G, unit="MBq*h"), Volume(rho, G, unit="g/cm3"),
            LabelMap(lab, G, names=names), ~body)


def organ_phantom() -> tuple[Volume, Volume, LabelMap]:
    """Soft-tissue body with kidney (1 MBq·h/voxel), liver (0.15), spleen (0.4), body (0.01)."""
    rho = np.full(G.shape, AIR)
    body = np.zeros(G.shape, bool)
    body[2:38, 2:38, 2:38] = True
    rho[body] = 1.0
    lab = np.where(body, 4, 0).astype(np.int16)
    tia = np.where(body, 0.01, 0.0)
    for value, sl, density, conc in (
            (1, (slice(14, 26), slice(8, 16), slice(8, 16)), 1.05, 1.0),
            (2, (slice(10, 30), slice(20, 32), slice(6, 24)), 1.06, 0.15),
            (3, (slice(14, 24), slice(10, 18), slice(26, 34)), 1.06, 0.4)):
        lab[sl], rho[sl], tia[sl] = value, density, conc
    names = {1: "kidney", 2: "liver", 3: "spleen", 4: "body"}
    return Volume(tia, G, unit="MBq*h"), Volume(rho, G, unit="g/cm3"), LabelMap(lab, G,
                                                                                names=names)


def _run(engine, tia: Volume, rho: Volume, labels: LabelMap):
    t0 = time.perf_counter()
    res = engine.compute(tia, rho, "Lu-177", labels=labels)
    return res, time.perf_counter() - t0


def part1(histories: int) -> None:
    engines = {
        "MC": MonteCarloEngine(n_histories=histories, electrons="kernel", seed=1),
        "kernel": get_engine("kernel"),
        "kernel ρ-photons": get_engine("kernel", photon_correction="density"),
        "kernel former": get_engine("kernel", photon_correction="density",
                                    cavity_density_g_cm3=None),
        "LED": get_engine("led"),
    }
    means: dict[tuple[str, bool], dict[str, float]] = {}
    print("\n## Part 1: lung slab, gas cavity, air around the body (Lu-177, 4 mm)\n")
    print("| engine | time (s) | map max (Gy) | density at max (g/cm³) | "
          "max outside body / map max |")
    print("|---|---|---|---|---|")
    for water in (False, True):
        tia, rho, labels, outside = heterogeneous_phantom(water)
        for name, eng in engines.items():
            res, dt = _run(eng, tia, rho, labels)
            means[(name, water)] = {v.name: v.mean_gy for v in res.voi}
            if not water:
                d = res.dose.array
                print(f"| {name} | {dt:.1f} | {d.max():.4g} | "
                      f"{rho.array.flat[int(np.argmax(d))]:.3g} | "
                      f"{d[outside].max() / d.max():.4f} |")
    print("\n| region | MC (Gy) | " + " | ".join(f"{n} / MC" for n in engines if n != "MC")
          + " |")
    print("|---|---|" + "---|" * (len(engines) - 1))
    for r in REGIONS:
        mc = means[("MC", False)][r]
        cells = [f"{means[(n, False)][r] / mc:.3f}" for n in engines if n != "MC"]
        print(f"| {r} | {mc:.4g} | " + " | ".join(cells) + " |")
    print("\nHeterogeneity effect over Monte Carlo's, Q = (E_het/E_water)/(MC_het/MC_water):\n")
    print("| region | MC_het/MC_water | " + " | ".join(f"Q {n}" for n in engines if n != "MC")
          + " |")
    print("|---|---|" + "---|" * (len(engines) - 1))
    for r in REGIONS:
        mc_eff = means[("MC", False)][r] / means[("MC", True)][r]
        cells = [f"{means[(n, False)][r] / means[(n, True)][r] / mc_eff:.3f}"
                 for n in engines if n != "MC"]
        print(f"| {r} | {mc_eff:.3f} | " + " | ".join(cells) + " |")


def part2(histories: int) -> None:
    tia, rho, labels = organ_phantom()
    print("\n## Part 2: LED default vs Monte Carlo, soft-tissue organs (Lu-177, 4 mm)\n")
    mc, t_mc = _run(MonteCarloEngine(n_histories=histories, seed=3), tia, rho, labels)
    led, t_led = _run(get_engine("led"), tia, rho, labels)
    loc, t_loc = _run(get_engine("led", photons="local"), tia, rho, labels)
    print(f"times: MC {t_mc:.1f} s, LED (photons kernel, incl. kernel) {t_led:.1f} s, "
          f"LED (photons local) {t_loc:.2f} s\n")
    print("| organ | MC (Gy) ± σ | LED default (Gy) | vs MC | LED photons local (Gy) | vs MC |")
    print("|---|---|---|---|---|---|")
    m = {v.name: v for v in mc.voi}
    a = {v.name: v.mean_gy for v in led.voi}
    b = {v.name: v.mean_gy for v in loc.voi}
    for organ in ("kidney", "liver", "spleen", "body"):
        ref = m[organ].mean_gy
        print(f"| {organ} | {ref:.4f} ± {m[organ].sigma_gy:.1g} | {a[organ]:.4f} | "
              f"{100 * (a[organ] / ref - 1):+.1f} % | {b[organ]:.4f} | "
              f"{100 * (b[organ] / ref - 1):+.1f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", type=int, default=8_000_000)
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {load:.1f}, Python {platform.python_version()}")
    part1(args.histories)
    part2(args.histories // 2)


if __name__ == "__main__":
    main()
