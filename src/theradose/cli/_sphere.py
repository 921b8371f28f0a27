"""``theradose sphere``: S-values of uniformly filled spheres (lesion sphere model)."""

from __future__ import annotations

import json
from typing import Any

import click

from theradose.cli._main import cli
from theradose.dose._media import MEDIA
from theradose.dose._sphere import SPHERE_CLASSES, SphereResult, sphere_s_values
from theradose.errors import InputError

#: Library argument name -> command-line flag, for the library's range errors.
_FLAGS = {"mass_g": "--mass-g", "density_g_cm3": "--density", "seed": "--seed",
          "classes": "--classes", "medium": "--medium", "photon_method": "--photon-method"}


def parse_masses(text: str) -> list[float]:
    """Masses from ``"10"`` or ``"0.1,1,10,100"`` (g).

    Raises
    ------
    InputError
        If an item is not a number (range checks are the library's).
    """
    items = [t.strip() for t in str(text).split(",")]
    try:
        return [float(t) for t in items]
    except ValueError:
        raise InputError(f"expected numbers in g separated by commas, got {text!r}",
                         field="--mass-g") from None


def sphere_document(results: list[SphereResult]) -> dict[str, Any] | list[dict[str, Any]]:
    """The JSON document of ``theradose sphere``: one object for one mass, a list for several.

    Each object has ``s_value_mgy_per_mbq_s``, ``s_value_sigma_mgy_per_mbq_s``, ``mass_g``,
    ``radius_mm``, ``density_g_cm3``, ``medium``, ``nuclide``, ``absorbed_fraction`` and
    ``energy_kev`` (by class) and ``provenance``.
    """
    docs = [r.to_dict() for r in results]
    return docs[0] if len(docs) == 1 else docs


def _print_table(results: list[SphereResult]) -> None:
    first = results[0]
    classes = list(first.absorbed_fraction)
    e = "  ".join(f"{c} {first.energy_kev[c]:.4g}" for c in classes)
    click.echo(f"{first.nuclide} spheres, density {first.density_g_cm3:g} g/cm3, "
               f"medium {first.medium}; energy per decay (keV): {e}")
    head = f"{'mass g':>10}{'radius mm':>11}{'S mGy/(MBq*s)':>15}{'S Gy/(GBq*h)':>14}"
    head += "".join(f"{'phi_' + c:>14}" for c in classes)
    click.echo(head)
    for r in results:
        row = (f"{r.mass_g:>10.4g}{r.radius_mm:>11.4g}{r.s_value_mgy_per_mbq_s:>15.5g}"
               f"{r.s_value_gy_per_mbq_h * 1e3:>14.5g}")
        row += "".join(f"{r.absorbed_fraction[c]:>14.4f}" for c in classes)
        click.echo(row)
    click.echo(f"photons: {first.provenance['photon_method']} method "
               f"({first.provenance['photon_approximation']}); alphas local")


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--nuclide", required=True, help="Nuclide (Lu-177, 177Lu, Y-90, I-131, ...).")
@click.option("--mass-g", "mass_g", required=True,
              help="Sphere mass in g, or several separated by commas (0.1,1,10,100).")
@click.option("--density", "density", type=float, default=1.0, show_default=True,
              help="Sphere density, g/cm3.")
@click.option("--medium", type=click.Choice(sorted(MEDIA)), default="water", show_default=True,
              help="Composition of the kernels (scaled to --density).")
@click.option("--classes", default=",".join(SPHERE_CLASSES), show_default=True,
              help="Emission classes to include, comma-separated.")
@click.option("--photon-method", type=click.Choice(["kernel", "isolated"]), default="kernel",
              show_default=True,
              help="kernel: infinite-medium photon kernel (lesion in tissue); isolated: photon "
                   "Monte Carlo in the isolated sphere (as OLINDA's sphere model).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the isolated-sphere photon Monte Carlo.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sphere(nuclide: str, mass_g: str, density: float, medium: str, classes: str,
           photon_method: str, seed: int, as_json: bool) -> None:
    """S-values of unit-density (or --density) spheres uniformly filled with a nuclide.

    Electron and photon absorbed fractions come from the project's point kernels with the
    sphere's geometric reduction factor; alpha energy is absorbed locally.
    """
    masses = parse_masses(mass_g)
    cls = [c.strip() for c in classes.split(",") if c.strip()]
    try:
        results = sphere_s_values(nuclide, masses, density_g_cm3=density, medium=medium,
                                  classes=cls, photon_method=photon_method, seed=seed)
    except InputError as exc:  # name the flag, not the library argument
        flag = _FLAGS.get(exc.field or "")
        if flag is None or exc.file is not None:
            raise
        raise InputError(exc.detail, field=flag) from None
    if as_json:
        click.echo(json.dumps(sphere_document(results), indent=2))
    else:
        _print_table(results)
