"""Units of the quantities theradose images carry, and conversion between them.

A unit string names a *dimension* and a scale to the dimension's base unit. The dimension decides
what resampling conserves (DESIGN.md §2):

* extensive quantities (activity, counts, TIA, mass) are *totals per voxel*: resampling conserves
  the sum over the image;
* intensive quantities (activity concentration, SUV, dose, dose rate, HU, density) are *means*:
  resampling conserves the volume-weighted mean;
* ``label`` images are categorical and are resampled by nearest neighbour.

Conversions happen here, once, at the boundary; library code works in the canonical units of
DESIGN.md (MBq, Bq/mL, MBq·h, Gy, Gy/h, g, mm, g/cm³).

Examples
--------
>>> convert(2.0, "kBq/mL", "Bq/mL")
2000.0
>>> conserved_quantity("MBq")
'total'

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from theradose.errors import UnitError

__all__ = ["UNITS", "Unit", "conserved_quantity", "convert", "parse_unit"]

Conserved = Literal["total", "mean", "label"]


@dataclass(frozen=True)
class Unit:
    """A unit: its canonical spelling, dimension, factor to the base unit and what it conserves."""

    name: str
    dimension: str
    to_base: float
    conserves: Conserved


def _u(name: str, dimension: str, to_base: float, conserves: Conserved) -> Unit:
    return Unit(name, dimension, to_base, conserves)


#: Known units keyed by canonical spelling. Base units: Bq/mL, Bq, counts, MBq*h, Gy, Gy/h, HU,
#: g/mL (SUV), g/cm3, g, 1.
UNITS: dict[str, Unit] = {
    u.name: u
    for u in [
        _u("Bq/mL", "activity_concentration", 1.0, "mean"),
        _u("kBq/mL", "activity_concentration", 1e3, "mean"),
        _u("MBq/mL", "activity_concentration", 1e6, "mean"),
        _u("Bq", "activity", 1.0, "total"),
        _u("kBq", "activity", 1e3, "total"),
        _u("MBq", "activity", 1e6, "total"),
        _u("GBq", "activity", 1e9, "total"),
        _u("counts", "counts", 1.0, "total"),
        _u("MBq*h", "time_integrated_activity", 1.0, "total"),
        _u("MBq*s", "time_integrated_activity", 1.0 / 3600.0, "total"),
        _u("Bq*h/mL", "time_integrated_activity_concentration", 1.0, "mean"),
        _u("Gy", "absorbed_dose", 1.0, "mean"),
        _u("mGy", "absorbed_dose", 1e-3, "mean"),
        _u("Gy/h", "absorbed_dose_rate", 1.0, "mean"),
        _u("mGy/h", "absorbed_dose_rate", 1e-3, "mean"),
        _u("HU", "ct_number", 1.0, "mean"),
        _u("g/mL", "suv", 1.0, "mean"),
        _u("g/cm3", "mass_density", 1.0, "mean"),
        _u("g", "mass", 1.0, "total"),
        _u("1", "dimensionless", 1.0, "mean"),
        _u("label", "label", 1.0, "label"),
    ]
}

_ALIASES = {
    "BQML": "Bq/mL",
    "bq/ml": "Bq/mL",
    "kbq/ml": "kBq/mL",
    "mbq/ml": "MBq/mL",
    "bq": "Bq",
    "kbq": "kBq",
    "mbq": "MBq",
    "gbq": "GBq",
    "CNTS": "counts",
    "cnts": "counts",
    "count": "counts",
    "MBq·h": "MBq*h",
    "MBq h": "MBq*h",
    "mbq*h": "MBq*h",
    "MBq·s": "MBq*s",
    "gy": "Gy",
    "GY": "Gy",
    "mgy": "mGy",
    "MGY": "mGy",
    "GY/h": "Gy/h",
    "hu": "HU",
    "GML": "g/mL",
    "SUV": "g/mL",
    "suv": "g/mL",
    "g/ml": "g/mL",
    "g/cm^3": "g/cm3",
    "g/cm³": "g/cm3",
    "NONE": "1",
    "": "1",
}


def parse_unit(unit: str | Unit, *, field: str = "unit", file: str | None = None) -> Unit:
    """Return the :class:`Unit` for a spelling (case and DICOM code aware).

    Raises
    ------
    UnitError
        If the unit is not known; the message lists the accepted spellings.

    """
    if isinstance(unit, Unit):
        return unit
    key = str(unit).strip()
    if key in UNITS:
        return UNITS[key]
    if key in _ALIASES:
        return UNITS[_ALIASES[key]]
    raise UnitError(
        f"unknown unit {unit!r}; accepted: {', '.join(UNITS)}", file=file, field=field
    )


def conserved_quantity(unit: str | Unit) -> Conserved:
    """What resampling conserves for images in ``unit``: ``'total'``, ``'mean'`` or ``'label'``."""
    return parse_unit(unit).conserves


def convert(value, from_unit: str | Unit, to_unit: str | Unit):
    """Convert ``value`` (scalar or array) between two units of the same dimension.

    Raises
    ------
    UnitError
        If the dimensions differ (e.g. Bq/mL to MBq, which needs a voxel volume).

    """
    a, b = parse_unit(from_unit), parse_unit(to_unit)
    if a.dimension != b.dimension:
        raise UnitError(
            f"cannot convert {a.name} ({a.dimension}) to {b.name} ({b.dimension})",
            field="unit",
        )
    factor = a.to_base / b.to_base
    if factor == 1.0:
        return value
    if isinstance(value, np.ndarray):
        return value * factor
    return float(value) * factor
