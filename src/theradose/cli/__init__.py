"""Command-line interface: ``theradose [-v] COMMAND ...`` (see ``theradose --help``)."""

from theradose.cli import (  # noqa: F401  (register the commands)
    _convert,
    _demo,
    _fit,
    _info,
    _kernel,
    _nuclide,
    _run,
    _simulate,
    _sphere,
    _study,
    _svalue,
)
from theradose.cli._main import cli, main, run

__all__ = ["cli", "main", "run"]
