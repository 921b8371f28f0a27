"""Command-line interface: ``theradose [-v] COMMAND ...`` (see ``theradose --help``)."""

from theradose.cli import _info  # noqa: F401  (registers the command)
from theradose.cli._main import cli, main, run

__all__ = ["cli", "main", "run"]
