"""``theradose run``: the whole dosimetry pipeline on one study folder."""

from __future__ import annotations

import click

from theradose.cli._main import CONTEXT, cli


@cli.command("run", context_settings=CONTEXT)
@click.argument("study", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (results.json, NIfTI maps, RT Dose, SEG, report, .cache).")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=str),
              default=None, help="TOML configuration (keys: docs/pipeline.md).")
@click.option("--calibration-cps-per-mbq", type=float, default=None,
              help="SPECT sensitivity (cps/MBq) for counts images; overrides [study].")
@click.option("--overwrite", is_flag=True, help="Replace the outputs of an earlier run.")
def run_cmd(study: str, out: str, config: str | None, calibration_cps_per_mbq: float | None,
            overwrite: bool) -> None:
    """Run registration, VOIs, kinetics, dose, DVH/BED and exports on STUDY."""
    from theradose.pipeline import PipelineConfig, run_pipeline
    from theradose.pipeline._config import check_calibration

    if calibration_cps_per_mbq is not None:  # before the config: the flag is what is wrong
        check_calibration(calibration_cps_per_mbq, field="--calibration-cps-per-mbq")
    cfg = PipelineConfig.from_toml(config) if config else PipelineConfig()
    if calibration_cps_per_mbq is not None:
        data = cfg.to_dict()
        data["study"]["calibration_cps_per_mbq"] = calibration_cps_per_mbq
        cfg = PipelineConfig.from_dict(data, source=cfg.source)
    res = run_pipeline(study, out, cfg, overwrite=overwrite)
    eng = res["provenance"].get("primary_engine")
    click.echo(f"{'VOI':<20} {'TIA (MBq*h)':>14} {'dose (Gy, ' + str(eng) + ')':>18}")
    for name, v in res["vois"].items():
        t = v["tia_mbq_h"]["value"]
        d = v["dose_gy"].get(eng, {}).get("value") if eng else None
        click.echo(f"{name:<20} {t if t is not None else float('nan'):>14.1f} "
                   f"{d if d is not None else float('nan'):>18.3f}")
    click.echo(f"results: {out}/results.json")
