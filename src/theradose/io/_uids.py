"""UIDs and creation times for written DICOM: random by default, reproducible on request.

Virtual patients must be byte-identical for the same seed, so every theradose DICOM writer takes
its UIDs from :func:`new_uid` and its creation timestamps from :func:`creation_time`. Inside
``with reproducible_dicom(key, timestamp=...)`` both are derived from ``key`` (UIDs by
:func:`pydicom.uid.generate_uid` with a deterministic entropy source: the key and a running
counter), otherwise UIDs are random and the timestamp is the clock.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["creation_time", "new_uid", "reproducible_dicom", "stamp_creation"]


@dataclass
class _State:
    key: str
    timestamp: datetime
    counter: itertools.count = field(default_factory=itertools.count)


_STATE: ContextVar[_State | None] = ContextVar("theradose_reproducible_dicom", default=None)


@contextlib.contextmanager
def reproducible_dicom(key: str | int, *, timestamp: datetime) -> Iterator[None]:
    """Make UIDs and creation times of the DICOM written inside the block reproducible.

    Parameters
    ----------
    key : str or int
        Identifies the output (e.g. ``"virtual-patient:seed=7"``); the same key and the same
        sequence of writes give the same UIDs.
    timestamp : datetime
        InstanceCreationDate/Time (and similar creation stamps) to write.
    """
    token = _STATE.set(_State(str(key), timestamp))
    try:
        yield
    finally:
        _STATE.reset(token)


def new_uid() -> str:
    """A new UID: deterministic inside :func:`reproducible_dicom`, else random."""
    from pydicom.uid import generate_uid

    state = _STATE.get()
    if state is None:
        return str(generate_uid())
    return str(generate_uid(entropy_srcs=[f"theradose:{state.key}:{next(state.counter)}"]))


def creation_time() -> datetime:
    """The creation timestamp to write: fixed inside :func:`reproducible_dicom`, else now."""
    state = _STATE.get()
    return datetime.now() if state is None else state.timestamp


def stamp_creation(ds) -> None:
    """Overwrite creation stamps set by third-party writers (highdicom) when reproducible."""
    state = _STATE.get()
    if state is None:
        return
    da, tm = state.timestamp.strftime("%Y%m%d"), state.timestamp.strftime("%H%M%S.%f")
    for prefix in ("InstanceCreation", "Content", "Series"):
        if f"{prefix}Date" in ds:
            setattr(ds, f"{prefix}Date", da)
            setattr(ds, f"{prefix}Time", tm)
    # highdicom also stamps ContributionDateTime and draws a random DimensionOrganizationUID
    renamed: dict[str, str] = {}

    def walk(d) -> None:
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.keyword == "ContributionDateTime":
                elem.value = da + tm
            elif elem.keyword == "DimensionOrganizationUID":
                elem.value = renamed.setdefault(str(elem.value), new_uid())

    walk(ds)
