"""Cohorts of virtual patients, simulated in parallel with dask (local cluster by default)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import InputError, OutputExistsError
from theradose.phantoms._config import SimulationConfig
from theradose.phantoms._patient import simulate_patient

__all__ = ["patient_seeds", "simulate_cohort"]

log = logging.getLogger("theradose")

#: Largest cohort: one 3 mm patient takes ~1 min and ~1 GB of disk, so 10 000 patients is
#: already ~1 week of CPU and ~10 TB; larger numbers are typing errors, not studies.
MAX_COHORT = 10_000
#: Most local dask worker processes: beyond a few hundred one machine only thrashes.
MAX_WORKERS = 256


def patient_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the ``n`` patients of cohort ``seed``: distinct, reproducible, independent.

    Patient ``i`` gets the first 32-bit word of ``numpy.random.SeedSequence([seed, i])``, so a
    larger cohort with the same seed starts with the same patients.
    """
    return [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(n)]


def _one(out: str, seed: int, config: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    vp = simulate_patient(out, seed=seed, config=SimulationConfig.from_dict(config),
                          overwrite=overwrite)
    return {"seed": seed, "folder": Path(out).name,
            "patient": vp.truth["patient"], "n_lesions": len(vp.truth["lesions"])}


def simulate_cohort(out: str | Path, n: int, *, seed: int = 0,
                    config: SimulationConfig | None = None, workers: int | None = None,
                    scheduler: str | None = None, overwrite: bool = False) -> list[dict[str, Any]]:
    """Simulate ``n`` virtual patients into ``out/patient_XXXX`` and write ``out/cohort.json``.

    Parameters
    ----------
    out : str or Path
        Cohort folder.
    n : int
        Number of patients, 1 to :data:`MAX_COHORT` (10 000).
    seed : int
        Cohort seed; patient seeds come from :func:`patient_seeds`.
    config : SimulationConfig, optional
        Shared configuration (anatomy, kinetics, lesions, activities vary per patient through
        their seeds).
    workers : int, optional
        Worker processes of the local dask cluster, 1 to :data:`MAX_WORKERS` (default: number
        of CPUs); 1 runs serially in this process without dask.
    scheduler : str, optional
        Address of an existing dask scheduler (``tcp://host:8786``) instead of a local cluster.
    overwrite : bool
        Replace existing patients.

    Returns
    -------
    list of dict
        One summary per patient (seed, folder, sex/height/weight, number of lesions).

    References
    ----------
    Dask Development Team, *Dask: Library for dynamic task scheduling* (2016),
    https://dask.org (``dask.distributed.LocalCluster``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COHORT:
        raise InputError(f"must be an integer in [1, {MAX_COHORT}], got {n!r}", field="cohort")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"must be a non-negative integer, got {seed!r}", field="seed")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_WORKERS):
        raise InputError(f"must be an integer in [1, {MAX_WORKERS}], got {workers!r}",
                         field="workers")
    cfg = (config or SimulationConfig()).to_dict()
    root = Path(out)
    index = root / "cohort.json"
    if index.exists() and not overwrite:
        raise OutputExistsError(f"{index}: cohort exists; pass overwrite=True (CLI: --overwrite)")
    root.mkdir(parents=True, exist_ok=True)
    seeds = patient_seeds(seed, n)
    jobs = [(str(root / f"patient_{i:04d}"), s, cfg, overwrite) for i, s in enumerate(seeds)]
    if workers == 1 and scheduler is None:
        results = [_one(*job) for job in jobs]
    else:
        results = _run_dask(jobs, workers=workers, scheduler=scheduler)
    index.write_text(json.dumps({"schema": "theradose.cohort/1", "seed": seed, "n": n,
                                 "config": cfg, "patients": results}, indent=2))
    return results


def _run_dask(jobs: list[tuple], *, workers: int | None,
              scheduler: str | None) -> list[dict[str, Any]]:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        log.info("simulating %d patients on %s", len(jobs), client)
        futures = [client.submit(_one, *job, pure=False) for job in jobs]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
