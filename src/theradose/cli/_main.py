"""The ``theradose`` command: one program, subcommands that parse and delegate to the library.

Every failure ends in exactly one line on stderr (``-vv`` adds the traceback):

* a user mistake (:class:`~theradose.errors.InputError`, an output that exists without
  ``--overwrite``): ``error: <file>: <field>: <what is wrong>``, status 2;
* a bad command line (unknown option, a value that is not a number):
  ``error: <option>: <what is wrong> (see 'theradose COMMAND --help')``, status 2;
* the environment (:class:`OSError`: read-only or full disk, no permission; ``MemoryError``):
  ``error: <path>: <system message> (<ERRNO>)``, status 2;
* anything else is a bug in theradose:
  ``error: internal error: <type>: <message>; rerun with -vv for the traceback``, status 1.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
import warnings
from typing import Any

import click

from theradose import __version__
from theradose._logging import configure_cli_logging
from theradose.errors import InputError, OutputExistsError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: ``ctx.meta`` keys (the meta dict is shared by the group's and the subcommand's contexts).
_VERBOSE = "theradose.verbose"
_PARAMS = "theradose.params"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(text: str) -> None:
    click.echo(f"error: {_one_line(text)}", err=True)


def _os_error_line(exc: OSError, params: dict[str, Any]) -> str:
    """``<path>: <what> (<ERRNO>)`` for an environment error (disk full, read-only, ...)."""
    code = errno.errorcode.get(exc.errno or -1)
    what = exc.strerror or str(exc) or type(exc).__name__
    if code:
        what = f"{what} ({code})"
    path = exc.filename
    if path is None:  # e.g. ENOSPC from write(): the file is not in the exception
        out = params.get("out")
        if out is not None:
            return f"{out}: {what} while writing the outputs"
        return f"{what} (the file was not named by the system call)"
    if exc.filename2 is not None:
        return f"{path} -> {exc.filename2}: {what}"
    return f"{path}: {what}"


class _Command(click.Command):
    """Subcommand that leaves its parsed parameters where the group's error handler sees them."""

    def invoke(self, ctx: click.Context):
        ctx.meta[_PARAMS] = dict(ctx.params)
        return super().invoke(ctx)


class _Group(click.Group):
    """Click group that turns every failure into one line on stderr and an exit status."""

    command_class = _Command

    def _subcommand(self, ctx: click.Context) -> click.Command | None:
        name = ctx.invoked_subcommand
        return None if name is None else self.get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except (InputError, OutputExistsError) as exc:
            _traceback_if_verbose(ctx)
            _error(_fit_hint(str(exc), self._subcommand(ctx)))
            ctx.exit(2)
        except OSError as exc:  # the environment, not the inputs: permissions, disk full
            _traceback_if_verbose(ctx)
            _error(_os_error_line(exc, ctx.meta.get(_PARAMS, {})))
            ctx.exit(2)
        except MemoryError:
            _traceback_if_verbose(ctx)
            _error("out of memory: use a coarser grid, fewer engines or a larger machine")
            ctx.exit(2)
        except Exception as exc:  # a bug: one line by default, the traceback with -vv
            _traceback_if_verbose(ctx)
            hint = "" if ctx.meta.get(_VERBOSE, 0) >= 2 else \
                "; rerun with -vv for the traceback"
            _error(f"internal error: {type(exc).__name__}: {exc}{hint}")
            ctx.exit(1)


#: Library hints ``(CLI: --nuclide, ...)`` name ``theradose study``'s options; commands that
#: take a ``--config`` instead read these values from its ``[study]`` section.
_STUDY_KEYS = {"--nuclide": "nuclide", "--activity-mbq": "injected_activity_mbq",
               "--injection-time": "injection_time",
               "--calibration-cps-per-mbq": "calibration_cps_per_mbq"}
_CLI_HINT = re.compile(r"\(CLI: ([^)]*)\)")


def _fit_hint(message: str, command: click.Command | None) -> str:
    """Make a ``(CLI: --flag, ...)`` hint name only what the running command accepts.

    Flags the command has are kept; study values it lacks are named as keys of the
    ``[study]`` section of ``--config`` when it has that option; any other hint is dropped.
    """
    if command is None:
        return message
    opts = {o for p in command.params for o in getattr(p, "opts", ())}

    def fix(m: re.Match) -> str:
        flags = [f.strip() for f in m.group(1).split(",") if f.strip()]
        if all(f in opts for f in flags):
            return m.group(0)
        if "--config" in opts and all(f in opts or f in _STUDY_KEYS for f in flags):
            keys = ", ".join(f if f in opts else _STUDY_KEYS[f] for f in flags)
            return f"(theradose {command.name}: {keys} in the [study] section of --config)"
        return ""

    return _CLI_HINT.sub(fix, message)


def _traceback_if_verbose(ctx: click.Context) -> None:
    if ctx.meta.get(_VERBOSE, 0) >= 2:
        traceback.print_exc(file=sys.stderr)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="theradose")
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug and tracebacks of errors).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars and no info messages; warnings and errors are still "
                   "printed.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars on long steps.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, no_progress: bool) -> None:
    """theradose: personalized radiopharmaceutical-therapy dosimetry.

    Run 'theradose COMMAND --help' for the options of each command.
    """
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other", ctx=ctx)
    ctx.meta[_VERBOSE] = verbose
    configure_cli_logging(verbose)  # WARNING by default: --quiet keeps warnings
    os.environ["THERADOSE_PROGRESS"] = "0" if (no_progress or quiet) else "1"
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print warnings as one line, ``warning: <message>``, without the source line."""
    click.echo(f"warning: {_one_line(str(message))}", err=True)


def _usage_line(exc: click.UsageError) -> str:
    """One line for a command-line mistake: ``<option>: <what> (see 'theradose X --help')``."""
    path = exc.ctx.command_path if exc.ctx is not None else "theradose"
    see = f" (see '{path} --help')"
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        hint = exc.param_hint if exc.param_hint is not None else \
            exc.param.get_error_hint(exc.ctx) if exc.ctx is not None else exc.param.name
        field = str(hint).replace("'", "").replace('"', "")
        return f"{field}: {_one_line(exc.message).rstrip('.')}{see}"
    return f"{path}: {_one_line(exc.format_message()).rstrip('.')}{see}"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (testable in-process with ``argv``)."""
    try:
        rv = cli.main(args=argv, prog_name="theradose", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.UsageError as exc:
        _error(_usage_line(exc))
        return exc.exit_code
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    # without standalone mode click returns ctx.exit()'s code (e.g. 2 for an InputError)
    return rv if isinstance(rv, int) else 0


def run() -> None:  # console-script target
    sys.exit(main())
