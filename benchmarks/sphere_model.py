"""Sphere model: S-values 0.01-1000 g, kernel vs isolated-sphere photons, published values.

Prints, for each nuclide, the sphere S-values with the default photon method (infinite-medium
kernel) and with the isolated-sphere photon Monte Carlo, the photon absorbed fractions of both
(the "kernel overestimate" of an isolated sphere) and the timings; then the comparisons with
published sphere-model values:

* 152Tb, OLINDA 2 unit-density spheres, mGy/(MBq*h): EJNMMI Res 2019, PMCID PMC6560118, Table 3
  (0.1 g 678, 1 g 111, 10 g 14.6; ellipsoidal model of Amato et al.: 752, 114, 15.1).
* 90Y beta absorbed fractions in spheres of soft tissue (rho = 1.04 g/cm3) by radius, as
  tabulated by Hashempour et al., Asia Ocean J Nucl Med Biol 2019, doi:10.22038/AOJNMB.2018.11610,
  PMID 30705913, table of 90Y absorbed fractions "by spectral beta energy" (Akabani / Amato:
  R 0.10 cm 0.17, 0.25 cm 0.39, 1.00 cm 0.80, 1.33 cm 0.85, 1.68 cm 0.88, 2.87 cm 0.93).

Run: ``python benchmarks/sphere_model.py [--nuclides Lu-177,I-131,Y-90,Tb-152] [--histories N]``.
Kernels come from (and go to) the kernel cache (``$THERADOSE_CACHE_DIR``).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from theradose.dose._sphere import sphere_s_values

MASSES = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
TB152_OLINDA2 = {0.1: 678.0, 1.0: 111.0, 10.0: 14.6}
TB152_ELLIPSOID = {0.1: 752.0, 1.0: 114.0, 10.0: 15.1}
Y90_RADIUS_CM_PHI = {0.10: 0.17, 0.25: 0.39, 1.00: 0.80, 1.33: 0.85, 1.68: 0.88, 2.87: 0.93}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuclides", default="Lu-177,I-131,Y-90,Tb-152")
    ap.add_argument("--histories", type=int, default=20_000)
    args = ap.parse_args()
    print(f"# machine: {platform.machine()} {platform.processor() or ''} python "
          f"{platform.python_version()}")
    for name in args.nuclides.split(","):
        t0 = time.perf_counter()
        ker = sphere_s_values(name, MASSES)
        t1 = time.perf_counter()
        iso = sphere_s_values(name, MASSES, photon_method="isolated",
                              photon_histories=args.histories)
        t2 = time.perf_counter()
        print(f"\n## {name}: kernel method {t1 - t0:.2f} s (incl. kernel generation or cache "
              f"read), isolated photons {t2 - t1:.2f} s")
        print(f"{'mass g':>9}{'S kernel':>12}{'S isolated':>12}{'diff %':>8}{'phi_e':>8}"
              f"{'phi_g ker':>10}{'phi_g iso':>10}")
        for a, b in zip(ker, iso, strict=True):
            pk = a.absorbed_fraction.get("photon", float("nan"))
            pi = b.absorbed_fraction.get("photon", float("nan"))
            diff = 100 * (a.s_value_mgy_per_mbq_s / b.s_value_mgy_per_mbq_s - 1)
            print(f"{a.mass_g:>9g}{a.s_value_mgy_per_mbq_s:>12.4e}"
                  f"{b.s_value_mgy_per_mbq_s:>12.4e}{diff:>8.2f}"
                  f"{a.absorbed_fraction.get('electron', float('nan')):>8.4f}{pk:>10.4f}"
                  f"{pi:>10.4f}")
        if name == "Tb-152":
            res = sphere_s_values(name, list(TB152_OLINDA2), photon_method="isolated",
                                  photon_histories=args.histories)
            print("152Tb vs OLINDA 2 (PMC6560118 Table 3), mGy/(MBq*h), isolated photons:")
            for r in res:
                s = r.s_value_gy_per_mbq_h * 1e3
                o, e = TB152_OLINDA2[r.mass_g], TB152_ELLIPSOID[r.mass_g]
                print(f"  {r.mass_g:g} g: {s:.4g}  OLINDA2 {o:g} ({100 * (s / o - 1):+.1f} %)  "
                      f"ellipsoid {e:g} ({100 * (s / e - 1):+.1f} %)")
        if name == "Y-90":
            rc = np.array(list(Y90_RADIUS_CM_PHI))
            m = 4.0 / 3.0 * np.pi * rc ** 3 * 1.04
            res = sphere_s_values(name, m, density_g_cm3=1.04, classes=["electron"])
            print("90Y beta absorbed fraction vs Akabani/Amato (as tabulated by Hashempour 2019):")
            for r, c in zip(res, rc, strict=True):
                phi, ref = r.absorbed_fraction["electron"], Y90_RADIUS_CM_PHI[float(c)]
                print(f"  R {c:.2f} cm: {phi:.4f}  ref {ref:.2f} ({100 * (phi / ref - 1):+.1f} %)")


if __name__ == "__main__":
    main()
