"""Warnings of a pipeline run, collected per stage for ``results.json`` and the report.

Every warning a stage logs on the ``theradose`` logger, and every
:class:`~theradose.errors.TheradoseWarning` it issues, is kept as ``{"stage", "message"}``.
Cached stages store their warnings with their result, so a re-run that reuses the cache
reports them again: a warning is never lost because a stage did not run twice.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from theradose.errors import TheradoseWarning

__all__ = ["collect_warnings"]

log = logging.getLogger("theradose")


class _ListHandler(logging.Handler):
    """Appends WARNING and above to a list."""

    def __init__(self, records: list[dict[str, Any]], stage: str) -> None:
        super().__init__(level=logging.WARNING)
        self.records = records
        self.stage = stage

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"stage": self.stage, "message": record.getMessage()})


@contextmanager
def collect_warnings(stage: str) -> Iterator[list[dict[str, Any]]]:
    """Collect the warnings of one stage (logged or issued) into the yielded list.

    :class:`~theradose.errors.TheradoseWarning` instances are recorded and logged (so they
    still reach the console); other warning categories pass through unchanged.
    """
    records: list[dict[str, Any]] = []
    handler = _ListHandler(records, stage)
    log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TheradoseWarning)
            yield records
    finally:
        log.removeHandler(handler)
    for w in caught:
        if issubclass(w.category, TheradoseWarning):
            records.append({"stage": stage, "message": str(w.message)})
            log.warning("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
