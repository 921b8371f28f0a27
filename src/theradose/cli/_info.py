"""``theradose info``: versions, optional extras and caches, for bug reports."""

from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version

import click

from theradose import __version__
from theradose.cli._main import cli

_CORE = ["numpy", "scipy", "SimpleITK", "pydicom", "highdicom", "nibabel", "icrp107-database",
         "radioactivedecay", "xraylib", "click"]
_EXTRAS = {"ai": ["torch", "monai"], "seg": ["TotalSegmentator"], "mc-gate": ["opengate"]}


def _v(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment_info() -> dict:
    """Versions of theradose, Python and dependencies; which optional extras are installed."""
    return {
        "theradose": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "dependencies": {n: _v(n) for n in _CORE},
        "extras": {k: {n: _v(n) for n in v} for k, v in _EXTRAS.items()},
    }


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json: bool) -> None:
    """Show versions of theradose and its dependencies and which extras are installed."""
    data = environment_info()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"theradose {data['theradose']} (Python {data['python']}, {data['platform']})")
    for n, v in data["dependencies"].items():
        click.echo(f"  {n:<18} {v or 'MISSING'}")
    for extra, pk in data["extras"].items():
        state = ", ".join(f"{n} {v}" if v else f"{n} not installed" for n, v in pk.items())
        click.echo(f"  [{extra}] {state}")
