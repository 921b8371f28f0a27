"""Exception and warning hierarchy of theradose.

Every user mistake (a bad file, a missing or contradictory DICOM tag, an unknown nuclide,
non-increasing times, mismatched geometry, a wrong unit) raises an :class:`InputError` or one
of its subclasses. The message is one line that names the file and the field, says what was
received and what is accepted. Classes also inherit the matching built-in exception (as astropy's
``UnitConversionError(UnitsError, ValueError)`` does), so ``except ValueError`` keeps working.

The command-line interface prints ``error: <message>`` for these, without a traceback, and exits
with status 2. Library code never prints or exits.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DicomTagError",
    "FitError",
    "GateRunError",
    "GeometryMismatchError",
    "InputError",
    "OptionalDependencyError",
    "OutputExistsError",
    "TheradoseError",
    "TheradoseWarning",
    "TimeOrderError",
    "UnitError",
    "UnknownNuclideError",
    "UnreadableFileError",
]


class TheradoseError(Exception):
    """Base class of all theradose errors."""


class TheradoseWarning(UserWarning):
    """Base class of theradose warnings (DICOM oddities, poor registration, ...)."""


class InputError(TheradoseError, ValueError):
    """A user input is invalid.

    Parameters
    ----------
    message : str
        What is wrong, what was received and what is accepted.
    file : str or Path, optional
        The file the problem was found in.
    field : str, optional
        The field (DICOM keyword, JSON key, argument name) at fault.
    """

    def __init__(
        self, message: str, *, file: str | Path | None = None, field: str | None = None
    ) -> None:
        self.file = None if file is None else str(file)
        self.field = field
        self.detail = message
        prefix = []
        if self.file is not None:
            prefix.append(self.file)
        if field is not None:
            prefix.append(field)
        text = f"{': '.join(prefix)}: {message}" if prefix else message
        # One line: the CLI prints exactly this.
        super().__init__(" ".join(text.split()))

    def __reduce__(self):  # keep picklable across processes (dask, multiprocessing)
        return (_rebuild, (type(self), self.detail, self.file, self.field))


def _rebuild(cls, message, file, field):
    return cls(message, file=file, field=field)


class UnreadableFileError(InputError, OSError):
    """A file is missing, empty, corrupt or not of the expected format."""


class DicomTagError(InputError):
    """A DICOM attribute is missing, empty, malformed or contradicts another one."""


class UnitError(InputError):
    """A quantity has a unit that is unknown or not accepted where it is used."""


class UnknownNuclideError(InputError, KeyError):
    """A nuclide name is not in the ICRP-107 data set."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


class TimeOrderError(InputError):
    """Time points are not strictly increasing, or precede the injection."""


class GeometryMismatchError(InputError):
    """Two images or masks that must share a grid do not."""


class OutputExistsError(TheradoseError, FileExistsError):
    """An output would overwrite an existing file without ``overwrite=True``."""


class FitError(TheradoseError, RuntimeError):
    """A fit could not be performed (not raised for a fit that merely fails acceptance)."""


class OptionalDependencyError(InputError, ImportError):
    """An optional dependency (e.g. OpenGATE or its Geant4 data, torch) is not installed."""


class GateRunError(TheradoseError, RuntimeError):
    """An OpenGATE simulation started but failed (its log file is named in the message)."""
