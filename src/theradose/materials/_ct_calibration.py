"""CT number (HU) to mass density and to material class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theradose.errors import InputError, UnitError
from theradose.volume import LabelMap, Volume

__all__ = [
    "DEFAULT_MATERIAL_CLASSES",
    "SCHNEIDER_2000",
    "HUCalibration",
    "MaterialClasses",
    "hu_to_density",
    "hu_to_material",
]


@dataclass(frozen=True)
class HUCalibration:
    """Piecewise-linear HU → mass density (g/cm³) calibration.

    Parameters
    ----------
    hu : tuple of float
        Non-decreasing CT numbers of the nodes (a repeated abscissa is not allowed; a step is
        written as two close nodes, e.g. 100 and 101).
    density_g_cm3 : tuple of float
        Mass density at each node. Values below the first node take the first density, above
        the last node the last density.
    name, reference : str
        Identification recorded in provenance.

    """

    hu: tuple[float, ...]
    density_g_cm3: tuple[float, ...]
    name: str = "custom"
    reference: str = ""

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu, dtype=float)
        rho = np.asarray(self.density_g_cm3, dtype=float)
        if hu.ndim != 1 or hu.size < 2 or hu.shape != rho.shape:
            raise InputError("calibration needs ≥ 2 (hu, density) nodes of equal length",
                             field="hu")
        if np.any(np.diff(hu) <= 0):
            raise InputError(f"calibration HU nodes must increase strictly, got {hu.tolist()}",
                             field="hu")
        if np.any(rho <= 0):
            raise InputError("calibration densities must be > 0", field="density_g_cm3")

    def __call__(self, hu):
        """Density in g/cm³ of CT numbers ``hu`` (array or scalar)."""
        return np.interp(np.asarray(hu, dtype=float), self.hu, self.density_g_cm3)


#: Stoichiometric calibration of Schneider, Bortfeld & Schlegel, "Correlation between CT numbers
#: and tissue parameters needed for Monte Carlo simulations of clinical dose distributions",
#: Phys. Med. Biol. 45 (2000) 459-478, doi:10.1088/0031-9155/45/2/314: air-lung-adipose-soft tissue
#: line up to 100 HU and a separate bone line above it (the step at 100/101 HU is part of the
#: published calibration). Scanner-specific: replace it with your own phantom calibration.
SCHNEIDER_2000 = HUCalibration(
    hu=(-1000.0, -98.0, -97.0, 14.0, 23.0, 100.0, 101.0, 1600.0, 3000.0),
    density_g_cm3=(0.00121, 0.93, 0.930486, 1.03, 1.031, 1.1199, 1.0762, 1.9642, 2.8),
    name="Schneider 2000",
    reference="Schneider W, Bortfeld T, Schlegel W. Phys Med Biol 2000;45:459-478. "
    "doi:10.1088/0031-9155/45/2/314",
)


@dataclass(frozen=True)
class MaterialClasses:
    """HU intervals → material classes (label values 1..n; 0 is never used).

    ``edges_hu`` are the n-1 inner boundaries; class ``i`` holds ``edges[i-1] <= HU < edges[i]``.
    """

    names: tuple[str, ...]
    edges_hu: tuple[float, ...]
    reference: str = ""

    def __post_init__(self) -> None:
        if len(self.edges_hu) != len(self.names) - 1:
            raise InputError(f"{len(self.names)} classes need {len(self.names) - 1} edges, got "
                             f"{len(self.edges_hu)}", field="edges_hu")
        if np.any(np.diff(self.edges_hu) <= 0):
            raise InputError("material edges must increase strictly", field="edges_hu")


#: Tissue classes for dose calculation. Boundaries at -950 (air/lung), -120 (lung/adipose) and
#: 120 HU (soft tissue/bone) are the bin limits of Schneider et al. 2000 (Table 6); -20 HU
#: separates adipose from soft tissue (adipose ≈ -100 HU, muscle/organs ≈ +40 HU); 500 HU separates
#: red-marrow-bearing spongiosa (≈ 200-400 HU) from cortical bone (≈ 1000-1900 HU), a theradose
#: choice documented in docs/data-model.md; ≥ 3000 HU is metal/dental material.
DEFAULT_MATERIAL_CLASSES = MaterialClasses(
    names=("air", "lung", "adipose", "soft_tissue", "spongiosa", "cortical_bone", "metal"),
    edges_hu=(-950.0, -120.0, -20.0, 120.0, 500.0, 3000.0),
    reference="after Schneider et al., Phys Med Biol 2000;45:459 (bins); see docs/data-model.md",
)


def _hu_array(ct) -> tuple[np.ndarray, Volume | None]:
    if isinstance(ct, Volume):
        if ct.unit != "HU":
            raise UnitError(f"expected a CT in HU, got unit {ct.unit!r}", field="unit")
        return ct.array, ct
    return np.asarray(ct), None


def hu_to_density(ct, *, calibration: HUCalibration = SCHNEIDER_2000):
    """Mass density (g/cm³) from CT numbers.

    Parameters
    ----------
    ct : Volume (unit HU) or array_like
    calibration : HUCalibration
        Default :data:`SCHNEIDER_2000`.

    Returns
    -------
    Volume or ndarray
        A ``Volume`` in ``g/cm3`` (modality ``OT``) if a volume was given, else an array.

    Examples
    --------
    >>> float(hu_to_density(0.0))  # water-like soft tissue on the Schneider line
    1.0199...

    """
    arr, vol = _hu_array(ct)
    rho = calibration(arr)
    if vol is None:
        return rho
    return vol.replace(array=rho, unit="g/cm3", modality="OT", sigma=None,
                       note=f"HU -> density ({calibration.name})")


def hu_to_material(ct, *, classes: MaterialClasses = DEFAULT_MATERIAL_CLASSES):
    """Material class labels (1..n) from CT numbers.

    Returns
    -------
    LabelMap or ndarray
        A ``LabelMap`` whose names are ``classes.names`` if a volume was given, else an
        integer array.

    """
    arr, vol = _hu_array(ct)
    lab = (np.searchsorted(np.asarray(classes.edges_hu), arr, side="right") + 1).astype(np.uint8)
    if vol is None:
        return lab
    return LabelMap(lab, vol.geometry, modality="OT", acquisition_time=vol.acquisition_time,
                    names={i + 1: n for i, n in enumerate(classes.names)},
                    history=(*vol.history, "HU -> material class"))
