"""Logging and progress helpers shared by the library and the CLI."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("theradose")
log.addHandler(logging.NullHandler())


def progress_enabled() -> bool:
    """Whether progress is shown: ``THERADOSE_PROGRESS=1`` (set by the CLI) and stderr a TTY."""
    return os.environ.get("THERADOSE_PROGRESS") == "1" and sys.stderr.isatty()


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap a long loop in a progress bar (tqdm on stderr) when enabled, else return it as is.

    Bars are shown only when the CLI enabled them (``THERADOSE_PROGRESS=1``) and stderr is a
    terminal, so library use and tests stay quiet.
    """
    if not progress_enabled():
        yield from iterable
        return
    from tqdm import tqdm

    yield from tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


class StageProgress:
    """One line per stage of a long run on stderr: ``[2/6] kinetics …``, then its time.

    Shown under the same conditions as :func:`progress` (``THERADOSE_PROGRESS=1`` and stderr
    a terminal), so library use, pipes, CI logs and tests stay quiet. Each stage prints a line
    when it starts (``[2/6] kinetics …``) and one when it ends (``[2/6] kinetics: 12.3 s``,
    or ``failed after …`` / ``interrupted after …``), so a long step is never silent and
    the lines stay readable between warnings and inner progress bars.

    Parameters
    ----------
    total : int
        Number of stages (the ``/6``).
    label : str
        Prefix inside the brackets (``"demo"`` gives ``[demo 1/3]``).

    Examples
    --------
    >>> stages = StageProgress(2)
    >>> with stages.stage("load"):
    ...     pass
    """

    def __init__(self, total: int, *, label: str = "") -> None:
        self.total = int(total)
        self.label = label
        self.done = 0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Show ``name`` as the next stage while the block runs."""
        self.done += 1
        tag = f"[{self.label + ' ' if self.label else ''}{self.done}/{self.total}] {name}"
        show = progress_enabled()
        if show:
            print(f"{tag} …", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        outcome = ""
        try:
            yield
        except KeyboardInterrupt:
            outcome = "interrupted after "
            raise
        except BaseException:
            outcome = "failed after "
            raise
        finally:
            if show:
                print(f"{tag}: {outcome}{time.perf_counter() - t0:.1f} s", file=sys.stderr,
                      flush=True)


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
