"""Voxelised phantoms for the Monte Carlo: a medium index and a mass density per voxel.

A :class:`VoxelPhantom` is what photon transport needs of a patient: the grid (LPS geometry),
the interaction medium of each voxel (an index into ``media``, names of
:data:`theradose.dose.MEDIA`) and its mass density. Cross-sections per gram come from the medium,
the density scales them (μ = (μ/ρ)_medium × ρ_voxel), so one medium covers a range of densities.

Mapping of the CT material classes (:data:`theradose.materials.DEFAULT_MATERIAL_CLASSES`) to
media, used by :meth:`VoxelPhantom.from_ct`:

============== ================ =====================================================
CT class       medium           why
============== ================ =====================================================
air            air              dry air
lung           lung             ICRP lung composition (density from the CT)
adipose        adipose          ICRP adipose tissue
soft_tissue    soft_tissue      ICRP soft tissue
spongiosa      soft_tissue      trabecular bone + red marrow is mostly soft tissue by
                                mass; its density from the CT (1.1-1.3 g/cm³) is kept.
                                No spongiosa composition exists among the media; the
                                photoelectric effect of its ~10 % Ca is neglected
                                (μ/ρ at 113 keV differs by < 3 % from soft tissue).
cortical_bone  cortical_bone    ICRP cortical bone
metal          cortical_bone    no metal medium is tabulated: the highest-Z medium
                                available, at the CT density (capped by the
                                calibration, 2.8 g/cm³); implants are then under-
                                attenuating. A warning is issued when metal is found.
============== ================ =====================================================

:meth:`VoxelPhantom.from_density` uses density thresholds instead (midpoints between the
nominal densities, as in :data:`theradose.dose._convolution.DEFAULT_DENSITY_CLASSES`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from theradose.dose._media import MEDIA, get_medium
from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning, UnitError
from theradose.materials import (
    DEFAULT_MATERIAL_CLASSES,
    SCHNEIDER_2000,
    HUCalibration,
    MaterialClasses,
    hu_to_density,
    hu_to_material,
)
from theradose.units import parse_unit
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["CT_CLASS_MEDIA", "DENSITY_MEDIA", "VoxelPhantom"]

#: CT material class → medium (see the module docstring for the reasons).
CT_CLASS_MEDIA: dict[str, str] = {
    "air": "air",
    "lung": "lung",
    "adipose": "adipose",
    "soft_tissue": "soft_tissue",
    "spongiosa": "soft_tissue",
    "cortical_bone": "cortical_bone",
    "metal": "cortical_bone",
}

#: Density intervals (g/cm³, upper bounds, increasing) → medium for
#: :meth:`VoxelPhantom.from_density`: air below 0.13 (midway air-lung), lung below 0.63
#: (midway lung-soft tissue), soft tissue below 1.425 (midway soft tissue-cortical bone),
#: cortical bone above.
DENSITY_MEDIA: tuple[tuple[float, str], ...] = (
    (0.13, "air"),
    (0.63, "lung"),
    (1.425, "soft_tissue"),
    (float("inf"), "cortical_bone"),
)


@dataclass(frozen=True, eq=False)
class VoxelPhantom:
    """Media and densities on a voxel grid, as photon transport reads them.

    Attributes
    ----------
    geometry : Geometry
        The grid (LPS; arrays indexed ``[z, y, x]``).
    material : (Z, Y, X) integer ndarray
        Index into ``media`` per voxel.
    density : (Z, Y, X) float ndarray
        Mass density, g/cm³ (≥ 0; 0 is vacuum).
    media : tuple of str
        Medium names (keys of :data:`theradose.dose.MEDIA`).

    Raises
    ------
    InputError
        Wrong shapes, unknown media, material indices out of range, negative or non-finite
        densities (GeometryMismatchError for arrays not matching ``geometry.shape``).

    Examples
    --------
    >>> from theradose.volume import Geometry
    >>> p = VoxelPhantom.uniform(Geometry((4, 4, 4), (5.0, 5.0, 5.0)), "water")
    >>> p.media, float(p.mass_g.sum())
    (('water',), 8.0)
    """

    geometry: Geometry
    material: np.ndarray
    density: np.ndarray
    media: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, Geometry):
            raise InputError(f"expected a Geometry, got {type(self.geometry).__name__}",
                             field="geometry")
        media = (self.media,) if isinstance(self.media, str) else tuple(self.media)
        if not media:
            raise InputError("need at least one medium, got none", field="media")
        media = tuple(get_medium(m).name for m in media)
        mat = np.asarray(self.material)
        rho = np.asarray(self.density, dtype=np.float64)
        for name, arr in (("material", mat), ("density", rho)):
            if arr.shape != self.geometry.shape:
                raise GeometryMismatchError(f"{name} has shape {arr.shape}, the geometry "
                                            f"{self.geometry.shape}", field=name)
        if not np.issubdtype(mat.dtype, np.integer):
            raise InputError(f"material must hold integer indices into media, got dtype "
                             f"{mat.dtype}", field="material")
        if mat.size and (mat.min() < 0 or mat.max() >= len(media)):
            raise InputError(f"material indices must lie in [0, {len(media) - 1}] (one per "
                             f"medium {list(media)}), got {int(mat.min())}..{int(mat.max())}",
                             field="material")
        if not np.all(np.isfinite(rho)) or np.any(rho < 0):
            raise InputError("density must be finite and >= 0 g/cm3", field="density")
        mat = mat.astype(np.int16 if len(media) < 32000 else np.int32)
        mat.setflags(write=False)
        rho.setflags(write=False)
        object.__setattr__(self, "material", mat)
        object.__setattr__(self, "density", rho)
        object.__setattr__(self, "media", media)

    # ------------------------------------------------------------------ derived
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(Z, Y, X)``."""
        return self.geometry.shape

    @property
    def mass_g(self) -> np.ndarray:
        """Voxel masses, g, ``(Z, Y, X)``."""
        return self.density * self.geometry.voxel_volume_ml

    def medium_map(self) -> LabelMap:
        """The media as a LabelMap (label = index + 1, names = medium names)."""
        return LabelMap((self.material + 1).astype(np.int32), self.geometry,
                        names={i + 1: m for i, m in enumerate(self.media)})

    # ------------------------------------------------------------------ constructors
    @classmethod
    def uniform(cls, geometry: Geometry, medium: str = "water",
                density: float | None = None) -> VoxelPhantom:
        """One medium everywhere.

        Parameters
        ----------
        geometry : Geometry
        medium : str
            Name in :data:`theradose.dose.MEDIA`.
        density : float, optional
            g/cm³; None: the medium's nominal density.
        """
        m = get_medium(medium)
        rho = m.density_g_cm3 if density is None else density
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not rho >= 0:
            raise InputError(f"density must be a number >= 0 g/cm3, got {density!r}",
                             field="density")
        return cls(geometry, np.zeros(geometry.shape, np.int16),
                   np.full(geometry.shape, float(rho)), (m.name,))

    @classmethod
    def from_density(cls, density: Volume,
                     material_of_density: Sequence[tuple[float, str]] = DENSITY_MEDIA,
                     ) -> VoxelPhantom:
        """Media from density thresholds.

        Parameters
        ----------
        density : Volume
            Mass density, unit ``g/cm3``.
        material_of_density : sequence of (upper bound g/cm³, medium)
            Increasing upper bounds; a voxel takes the first medium whose bound exceeds its
            density; the last bound should be ``inf``. Default :data:`DENSITY_MEDIA`.
        """
        rho = _density_array(density)
        bounds = [float(b) for b, _ in material_of_density]
        names = [get_medium(m).name for _, m in material_of_density]
        if not bounds or np.any(np.diff(bounds) <= 0):
            raise InputError(f"density bounds must be non-empty and increase strictly, got "
                             f"{bounds}", field="material_of_density")
        if np.any(rho >= bounds[-1]):
            raise InputError(f"the last density bound {bounds[-1]:g} g/cm3 is below the "
                             f"maximum density {float(rho.max()):g}; end with inf",
                             field="material_of_density")
        idx = np.searchsorted(np.asarray(bounds), rho, side="right")
        uniq = list(dict.fromkeys(names))
        remap = np.array([uniq.index(n) for n in names])
        return cls(density.geometry, remap[idx], rho, tuple(uniq))

    @classmethod
    def from_ct(cls, ct: Volume, *, calibration: HUCalibration | None = None,
                classes: MaterialClasses | None = None,
                class_media: Mapping[str, str] | None = None) -> VoxelPhantom:
        """Density and media from a CT in HU.

        Parameters
        ----------
        ct : Volume
            CT numbers, unit ``HU``.
        calibration : HUCalibration, optional
            HU → density; default Schneider et al. 2000 (:data:`SCHNEIDER_2000`).
        classes : MaterialClasses, optional
            HU → material class; default :data:`DEFAULT_MATERIAL_CLASSES`.
        class_media : mapping of str to str, optional
            Material class → medium; default :data:`CT_CLASS_MEDIA` (module docstring).

        Warns
        -----
        TheradoseWarning
            If metal voxels are present (transported as cortical bone at the CT density).

        References
        ----------
        Schneider W, Bortfeld T, Schlegel W. Phys Med Biol 2000;45:459-478.
        doi:10.1088/0031-9155/45/2/314
        """
        if not isinstance(ct, Volume):
            raise InputError(f"expected a CT Volume in HU, got {type(ct).__name__}", field="ct")
        if ct.unit != "HU":
            raise UnitError(f"expected a CT in HU, got unit {ct.unit!r}", field="ct.unit")
        cal = SCHNEIDER_2000 if calibration is None else calibration
        cls_ = DEFAULT_MATERIAL_CLASSES if classes is None else classes
        cmap = dict(CT_CLASS_MEDIA if class_media is None else class_media)
        missing = [n for n in cls_.names if n not in cmap]
        if missing:
            raise InputError(f"no medium for material class {missing[0]!r}; give one for each "
                             f"of {list(cls_.names)}", field="class_media")
        rho = np.asarray(hu_to_density(ct.array, calibration=cal), dtype=np.float64)
        lab = np.asarray(hu_to_material(ct.array, classes=cls_)) - 1  # 0-based class index
        names = [get_medium(cmap[n]).name for n in cls_.names]
        uniq = list(dict.fromkeys(names))
        remap = np.array([uniq.index(n) for n in names])
        if "metal" in cls_.names:
            n_metal = int(np.sum(lab == cls_.names.index("metal")))
            if n_metal:
                warnings.warn(f"{ct.meta.get('file', 'ct')}: {n_metal} metal voxels (HU >= "
                              f"{cls_.edges_hu[-1]:g}) are transported as "
                              f"{cmap['metal']} at the CT density", TheradoseWarning,
                              stacklevel=2)
        return cls(ct.geometry, remap[lab], rho, tuple(uniq))

    @classmethod
    def from_labels(cls, materials: LabelMap, density: Volume | float | None = None,
                    *, label_media: Mapping[str, str] | None = None) -> VoxelPhantom:
        """Media from a material LabelMap whose names are media (or mapped by ``label_media``).

        Parameters
        ----------
        materials : LabelMap
            Labels; each name is a medium of :data:`theradose.dose.MEDIA`, a CT class of
            :data:`CT_CLASS_MEDIA`, or a key of ``label_media``. Label 0 without a name is air.
        density : Volume or float, optional
            g/cm³; None: each medium's nominal density.
        label_media : mapping, optional
            Label name → medium.
        """
        if not isinstance(materials, LabelMap):
            raise InputError(f"expected a LabelMap, got {type(materials).__name__}",
                             field="materials")
        lmap = {**CT_CLASS_MEDIA, **(label_media or {})}
        names = dict(materials.names)
        lab = materials.array
        present = np.unique(lab)
        if 0 in present and 0 not in names:
            names[0] = "air"
        unnamed = [int(v) for v in present if int(v) not in names]
        if unnamed:
            raise InputError(f"material label {unnamed[0]} has no name; name every label with "
                             "a medium", field="materials.names")
        media: list[str] = []
        lut = np.zeros(int(max(max(names), int(present.max()))) + 1, np.int32)
        for v, n in sorted(names.items()):
            med = lmap.get(n, n)
            if str(med).strip().lower() not in MEDIA:
                raise InputError(f"label {v} name {n!r} is not a medium; accepted: "
                                 f"{sorted(MEDIA)} or label_media", field="materials.names")
            med = get_medium(med).name
            if med not in media:
                media.append(med)
            lut[v] = media.index(med)
        mat = lut[lab]
        if density is None:
            nominal = np.array([get_medium(m).density_g_cm3 for m in media])
            rho = nominal[mat]
        elif isinstance(density, Volume):
            rho = _density_array(density)
            materials.geometry.require_same(density.geometry, what="materials and density")
        elif isinstance(density, (int, float)) and not isinstance(density, bool):
            rho = np.full(lab.shape, float(density))
        else:
            raise InputError(f"expected a density Volume (g/cm3), a number or None, got "
                             f"{type(density).__name__}", field="density")
        return cls(materials.geometry, mat, rho, tuple(media))


def _density_array(density: Volume) -> np.ndarray:
    if not isinstance(density, Volume):
        raise InputError(f"expected a density Volume (g/cm3), got {type(density).__name__}",
                         field="density")
    if parse_unit(density.unit, field="density.unit").dimension != "mass_density":
        raise UnitError(f"expected a mass density in g/cm3, got unit {density.unit!r}",
                        field="density.unit")
    f = parse_unit(density.unit).to_base / parse_unit("g/cm3").to_base
    return np.asarray(density.array, dtype=np.float64) * f
