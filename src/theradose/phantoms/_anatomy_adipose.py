"""Body composition of the virtual patients: adipose tissue and muscle inside the body region.

The MIRD/ORNL phantoms fill everything that is not an organ with one "soft tissue"
(ICRU-46 adult soft tissue, 1.03 g/cm³). A CT of that phantom has no soft-tissue contrast
besides the organs' own 10-35 HU, so a deformable registration has nothing to lock on to
between them (docs/registration.md). Real patients have fat: a subcutaneous layer under the
skin and fat around the abdominal and pelvic organs (perirenal fat inside Gerota's fascia,
mesenteric and perivesical fat, epicardial fat), which makes their outlines sharp on CT.

Here the body region (label ``body``) is split, voxel by voxel, into

* **adipose tissue** (ICRU-46 adipose tissue, adult #2: 0.95 g/cm³, about −75 HU on the
  Schneider 2000 calibration) in a subcutaneous layer of thickness ``t_sc`` below the skin and
  an envelope of thickness ``t_visc`` around the organs listed in :data:`FAT_ENVELOPE`;
* **skeletal muscle** (ICRU-46 adult #2: 1.05 g/cm³, about +40 HU) everywhere else.

The fractions are sub-voxel (linear in the depth across one voxel) and only the body share of
a boundary voxel changes, so HU and density stay the same mixture of pure tissues
(:func:`theradose.phantoms._anatomy_voxelize.voxelize`). Adipose at 0.95 and muscle at 1.05
straddle the 1.03 g/cm³ of the soft tissue they replace, so body mass changes by well under
the 3 % of the ICRP-89 whole-body check.

The thicknesses are theradose choices, stated as such. The subcutaneous layer of the reference
adults, 15.5 mm (male) and 22.5 mm (female), is the one that makes the adipose mass of the
reference phantoms equal ICRP-89's adipose tissue, 18.2 and 22.5 kg, with ``s_t`` refitted to
the whole-body mass. What is left of the body region is then 30.7 and 17.6 kg of "muscle",
against ICRP-89's skeletal muscle of 29.0 and 17.5 kg: an independent check, since the body
region also holds skin, connective tissue and vessels. A heavier patient carries extra girth
outside the rib cage (the body outline is scaled by ``s_t``, the rib cage by
``f_t = min(s_t, s_z)``); that difference times the template's mean trunk semi-axis, 15 cm, is
added as fat. Organs get an 8 mm envelope.

References
----------
ICRU Report 46, "Photon, electron, proton and neutron interaction data for body tissues" (1992)
(adipose tissue and skeletal muscle compositions and densities).
ICRP Publication 89, "Basic anatomical and physiological data for use in radiological protection:
reference values", Ann. ICRP 32(3-4), 2002 (adipose tissue 18.2 / 22.5 kg, skeletal muscle
29.0 / 17.5 kg, adult male / female).
W. Schneider, T. Bortfeld, W. Schlegel, "Correlation between CT numbers and tissue parameters
needed for Monte Carlo simulations of clinical dose distributions", Phys. Med. Biol. 45 (2000)
459-478, doi:10.1088/0031-9155/45/2/314.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["FAT_ENVELOPE", "BodyComposition", "adipose_fraction", "subcutaneous_mm"]

#: Fine regions wrapped in an adipose envelope (perirenal, peripancreatic, mesenteric,
#: perivesical/periprostatic, pelvic and epicardial fat).
FAT_ENVELOPE: tuple[str, ...] = (
    "kidney_left_cortex", "kidney_left_medulla", "kidney_right_cortex", "kidney_right_medulla",
    "pancreas", "stomach", "small_bowel", "colon", "urinary_bladder_wall", "prostate",
    "uterus", "ovaries", "heart",
)
#: Subcutaneous fat of the reference adults (mm): chosen so that the adipose mass of the
#: reference phantoms (3 mm voxels, head to mid-thigh) equals ICRP-89's adipose tissue mass,
#: 18.2 kg (male) and 22.5 kg (female), the transverse body scale ``s_t`` being refitted to the
#: whole-body mass at the same time (``calibrate_reference``).
SUBCUTANEOUS_REFERENCE_MM: dict[str, float] = {"male": 15.5, "female": 22.5}
#: Envelope thickness around the organs of :data:`FAT_ENVELOPE` (mm).
VISCERAL_MM = 8.0
#: Mean trunk semi-axis of the template (cm): (20 + 10) / 2.
_TRUNK_SEMI_AXIS_MM = 150.0


@dataclass(frozen=True)
class BodyComposition:
    """What :func:`adipose_fraction` used (recorded in ``Anatomy.params``)."""

    subcutaneous_mm: float
    visceral_mm: float
    envelope: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"subcutaneous_mm": self.subcutaneous_mm, "visceral_mm": self.visceral_mm,
                "envelope": list(self.envelope)}


def subcutaneous_mm(sex: str, s_t: float, f_t: float) -> float:
    """Subcutaneous fat thickness (mm) for body scale ``s_t`` and rib-cage scale ``f_t``."""
    extra_girth = max(0.0, float(s_t) - float(f_t))
    return SUBCUTANEOUS_REFERENCE_MM[sex] + _TRUNK_SEMI_AXIS_MM * extra_girth


def _layer(depth_mm: np.ndarray, thickness_mm: float, voxel_mm: float) -> np.ndarray:
    """Fraction of a voxel inside a layer ``[0, thickness]`` below a surface.

    ``depth_mm`` is the distance of the voxel centre to the nearest voxel centre outside the
    tissue (Euclidean distance transform), i.e. the depth of the centre plus half a voxel.
    """
    return np.clip((thickness_mm - depth_mm) / voxel_mm + 1.0, 0.0, 1.0)


def adipose_fraction(labels: np.ndarray, names: dict[int, str], voxel_mm: float,
                     composition: BodyComposition) -> np.ndarray:
    """Adipose fraction (0-1) of the body tissue in each voxel.

    Parameters
    ----------
    labels : (Z, Y, X) integer array
        Majority labels (0 = air).
    names : dict
        Label value → fine-region name.
    voxel_mm : float
        Isotropic voxel size (mm).
    composition : BodyComposition
        Layer thicknesses and the organs with an envelope.

    Returns
    -------
    numpy.ndarray
        float32, same shape; meaningful where the voxel holds body tissue (the body share
        of a boundary voxel is given by ``VoxelResult.body_fraction``).

    """
    inside = labels > 0
    depth_skin = ndimage.distance_transform_edt(inside, sampling=voxel_mm)
    frac = _layer(depth_skin, composition.subcutaneous_mm, voxel_mm)
    wrapped = [v for v, n in names.items() if n in composition.envelope]
    if wrapped and composition.visceral_mm > 0:
        organs = np.isin(labels, wrapped)
        if organs.any():
            depth_org = ndimage.distance_transform_edt(~organs, sampling=voxel_mm)
            frac = np.maximum(frac, _layer(depth_org, composition.visceral_mm, voxel_mm))
    frac[~inside] = 0.0
    return frac.astype(np.float32)
