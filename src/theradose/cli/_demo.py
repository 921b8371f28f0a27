"""``theradose demo``: a virtual patient, the pipeline run on it, estimate vs truth."""

from __future__ import annotations

import click

from theradose.cli._main import CONTEXT, cli


@cli.command("demo", context_settings=CONTEXT)
@click.option("--out", default="theradose-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=str),
              help="Folder for patient/ (DICOM + truth) and results/.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Virtual patient seed (0 to 4294967295).")
@click.option("--voxel-mm", type=float, default=5.0, show_default=True,
              help="CT grid of the virtual patient (mm); 4-6 runs in < 2 min on 2 cores.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo in --out.")
def demo_cmd(out: str, seed: int, voxel_mm: float, overwrite: bool) -> None:
    """Simulate a 177Lu-PSMA patient, run the pipeline on its DICOM, compare with the truth."""
    from theradose.pipeline import run_demo, truth_table

    res = run_demo(out, seed=seed, voxel_mm=voxel_mm, overwrite=overwrite)
    click.echo(truth_table(res))
    click.echo(f"results: {out}/results/results.json")
