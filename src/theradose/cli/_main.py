"""The ``theradose`` command: one program, subcommands that parse and delegate to the library."""

from __future__ import annotations

import os
import sys
import warnings

import click

from theradose import __version__
from theradose._logging import configure_cli_logging
from theradose.errors import InputError, OutputExistsError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Click group that turns user errors into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (InputError, OutputExistsError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="theradose")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars on long steps.")
def cli(verbose: int, no_progress: bool) -> None:
    """theradose: personalized radiopharmaceutical-therapy dosimetry.

    Run 'theradose COMMAND --help' for the options of each command.
    """
    configure_cli_logging(verbose)
    os.environ["THERADOSE_PROGRESS"] = "0" if no_progress else "1"
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print warnings as one line, ``warning: <message>``, without the source line."""
    click.echo(f"warning: {message}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (testable in-process with ``argv``)."""
    try:
        rv = cli.main(args=argv, prog_name="theradose", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    # without standalone mode click returns ctx.exit()'s code (e.g. 2 for an InputError)
    return rv if isinstance(rv, int) else 0


def run() -> None:  # console-script target
    sys.exit(main())
