"""``theradose simulate``: virtual patients (one, or a cohort in parallel)."""

from __future__ import annotations

import json
import math

import click

from theradose.cli._main import CONTEXT, cli
from theradose.errors import InputError

#: Latest SPECT/CT time, h (as phantoms._patient.MAX_TIME_H): 417 d, > 60 half-lives of
#: 177Lu (6.65 d), after which the simulated images are empty.
MAX_TIME_H = 1e4
#: Largest cohort (as phantoms._cohort.MAX_COHORT): one 3 mm patient takes ~1 min and
#: ~1 GB of disk, so 10 000 patients is already ~1 week of CPU and ~10 TB; larger numbers are
#: typing errors, not studies.
MAX_COHORT = 10_000
#: Therapy activity bounds, MBq: diagnostic-scale 1 kBq up to 100 GBq, above any therapy
#: (177Lu-PSMA-617 and -DOTATATE are given as 7.4 GBq, the largest 131I therapies ~30 GBq).
MIN_ACTIVITY_MBQ, MAX_ACTIVITY_MBQ = 1e-3, 1e5
#: Largest number of lesions the lesion generator places (phantoms._anatomy_lesions).
MAX_LESIONS = 50
#: Most local dask workers (processes): beyond a few hundred a single machine only thrashes.
MAX_WORKERS = 256


def _times(text: str) -> tuple[float, ...]:
    try:
        times = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise InputError(f"expected comma-separated hours like 4,24,96,168, got {text!r}",
                         field="--times-h") from exc
    if not all(math.isfinite(t) and 0 < t <= MAX_TIME_H for t in times):
        raise InputError(f"must be hours after injection in (0, {MAX_TIME_H:g}], got {text!r}",
                         field="--times-h")
    return times


def _activity(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value)
                                  and MIN_ACTIVITY_MBQ <= value <= MAX_ACTIVITY_MBQ):
        raise click.BadParameter(f"must be a therapy activity in MBq within "
                                 f"[{MIN_ACTIVITY_MBQ:g}, {MAX_ACTIVITY_MBQ:g}] (1 kBq to 100 GBq),"
                                 f" got {value!r}", ctx=ctx, param=param)
    return value


@cli.command("simulate", context_settings=CONTEXT)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (DICOM study + truth/; a cohort gets patient_XXXX folders).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed, 0 to 4294967295: the same seed gives byte-identical files.")
@click.option("--cohort", type=click.IntRange(1, MAX_COHORT), default=None,
              help=f"Simulate N patients in parallel (1-{MAX_COHORT}).")
@click.option("--preset", type=click.Choice(["psma", "sstr"]), default="psma", show_default=True,
              help="Theranostic pair: 68Ga-PSMA-11/177Lu-PSMA-617 or 68Ga/177Lu-DOTATATE.")
@click.option("--regime", type=click.Choice(["homogeneous", "heterogeneous"]),
              default="homogeneous", show_default=True,
              help="PET vs therapy sub-tissue kinetics proportional or not (Xue et al. 2024).")
@click.option("--phantom", type=click.Choice(["random", "adult_male", "adult_female"]),
              default="random", show_default=True, help="Random anatomy or a reference phantom.")
@click.option("--times-h", default="4,24,96,168", show_default=True,
              help="SPECT/CT times after the therapy injection (h).")
@click.option("--activity-mbq", type=float, default=None, callback=_activity,
              help="Therapy activity, 0.001-100000 MBq (default 7400 MBq).")
@click.option("--lesions", "n_lesions", type=click.IntRange(0, MAX_LESIONS), default=None,
              help=f"Number of lesions, 0-{MAX_LESIONS} (default: drawn, 2-6).")
@click.option("--voxel-mm", type=float, default=3.0, show_default=True, help="CT grid (mm).")
@click.option("--no-noise", is_flag=True, help="Noiseless, unblurred images (truth tests).")
@click.option("--no-motion", is_flag=True, help="No repositioning between acquisitions.")
@click.option("--spect-unit", type=click.Choice(["counts", "Bq/mL"]), default="counts",
              show_default=True, help="Unit stored in the NM files.")
@click.option("--spect-fwhm-mm", type=float, default=None,
              help="SPECT resolution FWHM in mm, 0-40 (default 11; 0 with --no-noise).")
@click.option("--spect-voxel-mm", type=float, default=4.8, show_default=True,
              help="SPECT voxel size in mm, 1-15 (field of view kept at 614.4 mm).")
@click.option("--spect-count-scale", type=float, default=1.0, show_default=True,
              help="SPECT count level: acquisition time x this (1800 s per bed at 1); the "
                   "calibration factor (cps/MBq) is unchanged.")
@click.option("--truth-dose", default="", show_default=False,
              help="Reference dose maps of the true TIA in truth/: comma-separated engines "
                   "(led, kernel, montecarlo).")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=None,
              help=f"Cohort: local dask workers, 1-{MAX_WORKERS} (only with --cohort).")
@click.option("--scheduler", default=None, help="Cohort: address of a dask scheduler.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def simulate(out: str, seed: int, cohort: int | None, preset: str, regime: str, phantom: str,
             times_h: str, activity_mbq: float | None, n_lesions: int | None, voxel_mm: float,
             no_noise: bool, no_motion: bool, spect_unit: str, spect_fwhm_mm: float | None,
             spect_voxel_mm: float, spect_count_scale: float, truth_dose: str,
             workers: int | None,
             scheduler: str | None, overwrite: bool) -> None:
    """Simulate virtual theranostic patients: DICOM PET/CT + SPECT/CT and ground truth."""
    from theradose.phantoms import SimulationConfig, simulate_cohort, simulate_patient

    if cohort is None:
        for flag, value in (("--workers", workers), ("--scheduler", scheduler)):
            if value is not None:
                raise click.UsageError(f"{flag} only applies with --cohort N (one patient "
                                       "runs in this process)")
    cfg = SimulationConfig(preset=preset, regime=regime, phantom=phantom, times_h=_times(times_h),
                           therapy_activity_mbq=activity_mbq, n_lesions=n_lesions,
                           voxel_mm=voxel_mm, noise=not no_noise, motion=not no_motion,
                           spect_output=spect_unit, spect_fwhm_mm=spect_fwhm_mm,
                           spect_voxel_mm=spect_voxel_mm, spect_count_scale=spect_count_scale,
                           truth_dose=tuple(e.strip() for e in truth_dose.split(",") if e.strip()))
    if cohort is not None:
        rows = simulate_cohort(out, cohort, seed=seed, config=cfg, workers=workers,
                               scheduler=scheduler, overwrite=overwrite)
        click.echo(json.dumps(rows, indent=2))
        return
    vp = simulate_patient(out, seed=seed, config=cfg, overwrite=overwrite)
    click.echo(f"virtual patient {seed}: {vp.dicom} (DICOM), {vp.truth_dir} (truth)")
    organs = vp.truth["organs"]
    for name in sorted(organs):
        click.echo(f"  {name:<24} {organs[name]['tia_mbq_h']:12.1f} MBq·h")
