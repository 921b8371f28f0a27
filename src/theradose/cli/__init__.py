"""Command-line interface: ``theradose [-v] COMMAND ...`` (see ``theradose --help``)."""

from theradose.cli import _convert, _fit, _info, _nuclide, _simulate, _study  # noqa: F401  (register the commands)
from theradose.cli._main import cli, main, run

__all__ = ["cli", "main", "run"]
