"""``theradose svalue``: organ S-values of the reference phantoms (MIRD schema)."""

from __future__ import annotations

import json

import click

from theradose.cli._main import cli
from theradose.dose.mc._svalues import PHANTOMS, svalue


@cli.command("svalue", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--nuclide", required=True, help="Nuclide (Lu-177, 177Lu, Y-90, I-131, Ac-225).")
@click.option("--phantom", type=click.Choice(PHANTOMS), default="adult_male", show_default=True,
              help="Reference phantom.")
@click.option("--source", required=True, help="Source organ (kidneys, liver, red_marrow, ...).")
@click.option("--target", required=True, help="Target organ.")
@click.option("--chain", is_flag=True,
              help="Table with the progeny in equilibrium (per parent decay, e.g. Ac-225).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def svalue_command(nuclide: str, phantom: str, source: str, target: str, chain: bool,
                   as_json: bool) -> None:
    """S(target <- source) in mGy/(MBq*s) from the packaged organ S-value tables.

    Electrons and alphas are absorbed locally; photons come from Monte Carlo transport in the
    voxelised reference phantom (see docs/dose-organ-svalues.md).
    """
    d = svalue(nuclide, source, target, phantom, chain=chain)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    rel = d["sigma_mgy_per_mbq_s"] / d["s_value_mgy_per_mbq_s"] if d["s_value_mgy_per_mbq_s"] \
        else 0.0
    click.echo(f"{d['nuclide']} {d['phantom']}: S({target} <- {source}) = "
               f"{d['s_value_mgy_per_mbq_s']:.5g} mGy/(MBq*s) (+/- {rel:.2%}; "
               f"electron {d['electron_mgy_per_mbq_s']:.4g}, photon "
               f"{d['photon_mgy_per_mbq_s']:.4g}, alpha {d['alpha_mgy_per_mbq_s']:.4g}); "
               f"masses: source {d['source_mass_g']:.5g} g, target {d['target_mass_g']:.5g} g")

