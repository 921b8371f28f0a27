"""``theradose fit``: fit TAC models to one time-activity curve and report TIA ± sigma."""

from __future__ import annotations

import click

from theradose.cli._main import CONTEXT, cli
from theradose.errors import InputError


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(f"expected comma-separated numbers like 4,24,96,168, got {text!r}",
                         field=option) from exc


def _corr(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    value = _floats(text, "--max-abs-corr")
    if value is None or len(value) != 1:
        raise InputError(f"expected one number or 'none', got {text!r}", field="--max-abs-corr")
    return value[0]


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


#: fit_tac argument -> the option of ``theradose fit`` that sets it (named in error messages).
_OPTION = {"times_h": "--times-h", "values": "--values", "sigma": "--sigma",
           "relative_sigma": "--relative-sigma", "models": "--models", "unit": "--unit",
           "nuclide": "--nuclide", "criterion": "--criterion", "max_cv": "--max-cv",
           "max_abs_corr": "--max-abs-corr", "input_uncertainty.calibration": "--calibration-u",
           "input_uncertainty.recovery": "--recovery-u",
           "input_uncertainty.volume": "--volume-u"}


def _fmt(v: float | None, spec: str = ".4g") -> str:
    return "-" if v is None or v != v else format(v, spec)


@cli.command("fit", context_settings=CONTEXT)
@click.option("--times-h", required=True, help="Times after injection (h), e.g. 4,24,96,168.")
@click.option("--values", required=True,
              help="Decayed activities at those times, e.g. 12.1,30.5,18.2,6.3.")
@click.option("--unit", default="MBq", show_default=True, help="Unit of the values.")
@click.option("--nuclide", default="Lu-177", show_default=True,
              help="Nuclide (physical decay constraint and tails).")
@click.option("--sigma", default=None, help="Absolute standard deviations (unit of the values).")
@click.option("--relative-sigma", type=float, default=None,
              help="Relative standard deviation of each value (default 0.1).")
@click.option("--models", default="mono,bi_uptake,bi,tri_uptake", show_default=True,
              help="Models: mono, bi_uptake, bi, tri_uptake, tri, trapezoid, hybrid.")
@click.option("--criterion", type=click.Choice(["aicc", "bic"]), default="aicc",
              show_default=True, help="Selection criterion.")
@click.option("--no-physical-constraint", is_flag=True,
              help="Allow effective rates below the physical decay constant.")
@click.option("--calibration-u", type=float, default=0.0, show_default=True,
              help="Relative uncertainty of the calibration factor (fraction).")
@click.option("--recovery-u", type=float, default=0.0, show_default=True,
              help="Relative uncertainty of the recovery coefficient (fraction).")
@click.option("--volume-u", type=float, default=0.0, show_default=True,
              help="Relative uncertainty of the VOI volume (fraction).")
@click.option("--max-cv", type=float, default=0.5, show_default=True,
              help="Acceptance: largest parameter coefficient of variation.")
@click.option("--max-abs-corr", default="0.8", show_default=True,
              help="Acceptance: largest |parameter correlation|, or 'none' to switch it off.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def fit(times_h: str, values: str, unit: str, nuclide: str, sigma: str | None,
        relative_sigma: float | None, models: str, criterion: str, no_physical_constraint: bool,
        calibration_u: float, recovery_u: float, volume_u: float, max_cv: float,
        max_abs_corr: str, as_json: bool) -> None:
    """Fit mono/bi/tri-exponential models to a TAC, select by AICc/BIC, print TIA ± sigma."""
    from theradose.kinetics._fit import fit_tac
    from theradose.kinetics._uncertainty import InputUncertainty

    t, y, sd, corr = (_floats(times_h, "--times-h"), _floats(values, "--values"),
                      _floats(sigma, "--sigma"), _corr(max_abs_corr))
    try:
        r = fit_tac(t, y, unit=unit, nuclide=nuclide, sigma=sd, relative_sigma=relative_sigma,
                    models=_names(models), criterion=criterion,
                    constrain_physical=not no_physical_constraint,
                    input_uncertainty=InputUncertainty(calibration_u, recovery_u, volume_u),
                    max_cv=max_cv, max_abs_corr=corr)
    except InputError as exc:  # name the option, not the library argument
        if exc.field not in _OPTION:
            raise
        raise type(exc)(exc.detail, file=exc.file, field=_OPTION[exc.field]) from None
    if as_json:
        click.echo(r.to_json(indent=2))
        return
    click.echo(f"{'model':<12}{'accepted':>9}{'AICc':>10}{'BIC':>10}{'R2':>8}"
               f"{'TIA':>12}{'sigma_fit':>11}  parameters / reasons")
    for name, f in r.fits.items():
        pars = ", ".join(f"{n}={v:.4g}" for n, v in zip(f.param_names, f.params, strict=True))
        why = "; ".join(f.reasons) if f.reasons else ""
        click.echo(f"{name:<12}{'yes' if f.accepted else 'no':>9}{_fmt(f.aicc, '.2f'):>10}"
                   f"{_fmt(f.bic, '.2f'):>10}{_fmt(f.r2, '.3f'):>8}{_fmt(f.tia, '.5g'):>12}"
                   f"{_fmt(f.sigma_tia_fit, '.3g'):>11}  {pars}{' | ' + why if why else ''}")
    click.echo(f"selected: {r.selected}{' (fallback)' if r.fallback else ''}: "
               f"{r.selection_reason}")
    click.echo(f"TIA = {r.tia:.5g} ± {r.sigma_tia:.3g} {r.tia_unit} "
               f"(fit ± {r.sigma_tia_fit:.3g}; weights: {r.provenance['weights']})")
