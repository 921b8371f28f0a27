"""Regenerate the packaged organ S-value tables (theradose/data/svalues/*.json).

Usage::

    python scripts/generate_svalues.py                       # Lu-177, both phantoms
    python scripts/generate_svalues.py --nuclide Y-90 --nuclide I-131
    python scripts/generate_svalues.py --nuclide Ac-225 --chain --histories 400000

Each table: every organ of ``theradose.dose.mc._svalues.ORGANS`` as source (photons uniform per
gram, ``--histories`` photons in ``--batches`` independent runs) and as target. Run times are
written into each table's provenance (``run_time_s``) and in docs/dose-organ-svalues.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from theradose.dose.mc._svalues import PHANTOMS, svalue_table_path
from theradose.dose.mc._svalues_compute import compute_svalue_table

OUT = Path(__file__).resolve().parents[1] / "src" / "theradose" / "data" / "svalues"


def main(argv: list[str] | None = None) -> int:
    """Generate the tables named on the command line; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nuclide", action="append", help="nuclide(s); default Lu-177")
    ap.add_argument("--phantom", action="append", choices=PHANTOMS, help="default: both")
    ap.add_argument("--chain", action="store_true", help="progeny in equilibrium")
    ap.add_argument("--voxel-mm", type=float, default=4.0)
    ap.add_argument("--histories", type=int, default=400_000, help="photons per source organ")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--seed", type=int, default=20260601)
    ap.add_argument("--backend", default="numpy", choices=("numpy", "torch"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    for nuclide in args.nuclide or ["Lu-177"]:
        for phantom in args.phantom or list(PHANTOMS):
            t0 = time.perf_counter()
            tab = compute_svalue_table(
                nuclide, phantom, chain=args.chain, voxel_mm=args.voxel_mm,
                n_histories=args.histories, n_batches=args.batches, seed=args.seed,
                backend=args.backend, progress=lambda s: print(s, flush=True))
            path = svalue_table_path(phantom, nuclide, chain=args.chain, data_dir=args.out)
            tab.to_json(path, overwrite=args.overwrite)
            print(f"wrote {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
