"""The :class:`Anatomy` record of a virtual patient and its mass bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theradose.errors import InputError
from theradose.phantoms._anatomy_tissues import RED_MARROW_FRACTION_OF_SPONGIOSA
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["DERIVED_MASSES", "Anatomy", "add_sums"]

#: Sums reported in ``masses_g`` besides fine regions and groups (not groups: they overlap them).
DERIVED_MASSES: dict[str, tuple[str, ...]] = {
    "kidneys": ("kidney_left_cortex", "kidney_left_medulla", "kidney_right_cortex",
                "kidney_right_medulla"),
    "parotid_glands": ("parotid_gland_left", "parotid_gland_right"),
    "submandibular_glands": ("submandibular_gland_left", "submandibular_gland_right"),
}


@dataclass(frozen=True, eq=False)
class Anatomy:
    """A voxelised virtual patient: labels, noiseless CT, density, masses, parameters.

    Attributes
    ----------
    labels : LabelMap
        Fine regions on the CT grid, one label per voxel (majority of the voxel's volume);
        0 is the air outside the body.
    groups : dict of str to tuple of str
        Organ -> its fine regions (``"kidney_left"`` -> cortex, medulla; ``"blood"`` -> heart
        blood pool, aorta, vena cava, iliac arteries; ...). Each fine region is in at most one
        group.
    hu : Volume
        Noiseless CT in HU, ``(Z, Y, X)``, with partial volume at boundaries.
    density : Volume
        Mass density in g/cm3 from the same volume-fraction mixing (not from the HU).
    masses_g : dict of str to float
        Mass (g) of every fine region and group, of ``kidneys``, ``parotid_glands``,
        ``submandibular_glands``, and ``red_marrow`` (``RED_MARROW_FRACTION_OF_SPONGIOSA`` ×
        spongiosa), all from the sub-voxel volumes × tissue density.
    params : dict
        JSON-serialisable description (sex, height, weight, scale factors, variations, field of
        view, lesions).

    """

    labels: LabelMap
    groups: dict[str, tuple[str, ...]]
    hu: Volume
    density: Volume
    masses_g: dict[str, float]
    params: dict = field(default_factory=dict)

    @property
    def geometry(self) -> Geometry:
        """The CT grid."""
        return self.labels.geometry

    def region_names(self) -> list[str]:
        """Fine region names in label order."""
        return [n for _, n in sorted(self.labels.names.items())]

    def organ_mask(self, name: str) -> np.ndarray:
        """Boolean ``(Z, Y, X)`` mask of a fine region or of a group.

        Raises
        ------
        InputError
            If ``name`` is neither a fine region nor a group (the message lists both).

        """
        lut = self.labels.labels
        if name in lut:
            return self.labels.array == lut[name]
        if name in self.groups:
            vals = [lut[n] for n in self.groups[name] if n in lut]
            return np.isin(self.labels.array, vals)
        raise InputError(f"no region or group named {name!r}; regions: {sorted(lut)}; "
                         f"groups: {sorted(self.groups)}", field="name")



def add_sums(masses: dict[str, float], groups: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Fine-region masses plus group, derived and red-marrow masses (g)."""
    out = dict(masses)
    for g, members in groups.items():
        out[g] = float(sum(masses.get(m, 0.0) for m in members))
    for g, members in DERIVED_MASSES.items():
        out[g] = float(sum(masses.get(m, 0.0) for m in members))
    out["red_marrow"] = RED_MARROW_FRACTION_OF_SPONGIOSA * masses.get("bone_spongiosa", 0.0)
    return out


