"""``theradose nuclide NAME``: half-life, energy per decay, lines and decay chain (ICRP-107)."""

from __future__ import annotations

import json
from typing import Any

import click

from theradose.cli._main import cli
from theradose.nuclides import (
    decay_chain,
    equilibrium_energy_per_decay,
    excluded_progeny,
    get_nuclide,
)


def _three(e) -> dict[str, float]:
    return {"electron": e.electron, "photon": e.photon, "alpha": e.alpha}


def nuclide_summary(
    name: str, *, min_yield: float = 0.001, all_lines: bool = False, chain: bool = False
) -> dict[str, Any]:
    """The JSON document of ``theradose nuclide``.

    Parameters
    ----------
    name : str
        Nuclide name in any spelling :func:`theradose.nuclides.get_nuclide` accepts.
    min_yield : float
        Lines with fewer than this many emissions per decay are left out.
    all_lines : bool
        Also list internal-conversion/Auger electron and alpha lines (default: photons only).
    chain : bool
        Add ``"chain"`` (members in equilibrium) and ``"equilibrium_energy_per_decay_kev"``
        (keV per parent decay).

    Returns
    -------
    dict
        Keys ``nuclide``, ``half_life_h``, ``energy_per_decay_kev`` (electron, photon, alpha),
        ``lines`` (type, energy_kev, yield; sorted by energy), ``source`` [, ``chain``,
        ``equilibrium_energy_per_decay_kev``].
    """
    nuc = get_nuclide(name)
    lines = nuc.photon_lines(min_yield=min_yield)
    if all_lines:
        lines += nuc.electron_lines(min_yield=min_yield) + nuc.alpha_lines(min_yield=min_yield)
        lines.sort(key=lambda ln: (ln.energy_kev, ln.type))
    out: dict[str, Any] = {
        "nuclide": nuc.name,
        "half_life_h": nuc.half_life_h,
        "energy_per_decay_kev": _three(nuc.energy_per_decay_kev),
        "lines": [ln.to_dict() for ln in lines],
        "source": nuc.source,
    }
    if chain:
        out["chain"] = [m.to_dict() for m in decay_chain(nuc)]
        out["equilibrium_energy_per_decay_kev"] = _three(equilibrium_energy_per_decay(nuc))
    return out


def _print_table(data: dict[str, Any], min_yield: float, all_lines: bool) -> None:
    nuc = get_nuclide(data["nuclide"])
    e = data["energy_per_decay_kev"]
    click.echo(f"{nuc.name}  half-life {nuc.half_life_icrp} ({nuc.half_life_h:.6g} h), "
               f"decay constant {nuc.decay_constant_per_h:.6g} /h")
    click.echo(f"energy per decay (keV): electron {e['electron']:.2f}  photon {e['photon']:.2f}"
               f"  alpha {e['alpha']:.2f}")
    what = "photon, electron and alpha" if all_lines else "photon"
    click.echo(f"{what} lines with yield >= {min_yield:g} per decay:")
    click.echo(f"  {'type':<13}{'energy keV':>12}{'yield':>12}")
    for ln in data["lines"]:
        click.echo(f"  {ln['type']:<13}{ln['energy_kev']:>12.3f}{ln['yield']:>12.4g}")
    if "chain" in data:
        click.echo("decay chain in equilibrium (activity per parent activity):")
        click.echo(f"  {'nuclide':<10}{'half-life h':>14}{'branching':>12}{'ratio':>10}")
        for m in data["chain"]:
            click.echo(f"  {m['nuclide']:<10}{m['half_life_h']:>14.4g}"
                       f"{m['branching_fraction']:>12.5g}{m['equilibrium_activity_ratio']:>10.5g}")
        for x in excluded_progeny(nuc):
            click.echo(f"  left out {x.nuclide} (branching {x.branching_fraction:.4g}): {x.reason}")
        q = data["equilibrium_energy_per_decay_kev"]
        click.echo(f"energy per parent decay in equilibrium (keV): electron {q['electron']:.2f}"
                   f"  photon {q['photon']:.2f}  alpha {q['alpha']:.2f}")
    click.echo(f"source: {data['source']}")


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--min-yield", type=click.FloatRange(min=0.0), default=0.001, show_default=True,
              help="Leave out lines with fewer emissions per decay.")
@click.option("--all-lines", is_flag=True,
              help="Also list internal-conversion, Auger and alpha lines (default: photons).")
@click.option("--chain", is_flag=True,
              help="Add the decay chain in equilibrium and the energy per parent decay.")
def nuclide(name: str, as_json: bool, min_yield: float, all_lines: bool, chain: bool) -> None:
    """Show ICRP-107 decay data of NAME (Lu-177, 177Lu, Tc-99m, Ac-225, ...)."""
    data = nuclide_summary(name, min_yield=min_yield, all_lines=all_lines, chain=chain)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_table(data, min_yield, all_lines)
