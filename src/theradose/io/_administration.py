"""What was given to the patient: radiopharmaceutical, nuclide, activity, time."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

from theradose.errors import InputError

__all__ = ["Administration"]


@dataclass(frozen=True)
class Administration:
    """One administration of a radiopharmaceutical.

    Parameters
    ----------
    nuclide : str
        Nuclide in ICRP-107 spelling (``"Lu-177"``).
    injected_activity_mbq : float
        Net administered activity at ``injection_time`` (MBq, residual subtracted).
    injection_time : datetime
        Start of the injection (naive local time, as DICOM stores it).
    radiopharmaceutical : str
        Free text, e.g. ``"177Lu-PSMA-617"``.
    """

    nuclide: str
    injected_activity_mbq: float
    injection_time: datetime
    radiopharmaceutical: str = ""

    def __post_init__(self) -> None:
        a = self.injected_activity_mbq
        try:
            ok = not isinstance(a, bool | str) and math.isfinite(float(a)) and float(a) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"must be a finite number > 0 MBq, got {a!r}",
                             field="injected_activity_mbq")
        if not isinstance(self.injection_time, datetime):
            raise InputError(f"must be a datetime, got {type(self.injection_time).__name__}",
                             field="injection_time")

    def hours_since_injection(self, t: datetime) -> float:
        """Time from injection to ``t`` in hours."""
        return (t - self.injection_time).total_seconds() / 3600.0

    def to_dict(self) -> dict:
        """JSON-serialisable form (ISO datetime)."""
        d = asdict(self)
        d["injection_time"] = self.injection_time.isoformat()
        return d
