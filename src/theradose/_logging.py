"""Logging and progress helpers shared by the library and the CLI."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("theradose")
log.addHandler(logging.NullHandler())


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap a long loop in a progress bar (tqdm on stderr) when enabled, else return it as is.

    Bars are shown only when the CLI enabled them (``THERADOSE_PROGRESS=1``) and stderr is a
    terminal, so library use and tests stay quiet.
    """
    if os.environ.get("THERADOSE_PROGRESS") != "1" or not sys.stderr.isatty():
        yield from iterable
        return
    from tqdm import tqdm

    yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


def configure_cli_logging(verbosity: int) -> None:
    """Send ``theradose`` log records to stderr: WARNING by default, INFO with -v, DEBUG -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for h in list(log.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler):
            log.removeHandler(h)
    log.addHandler(handler)
    log.setLevel(level)
