"""Tissues of the virtual patients (density, CT number) and ICRP-89 reference masses.

Densities are those of ICRU Report 46 (1992) for adult tissues unless noted; the CT number of
each tissue is the inverse of :data:`theradose.materials.SCHNEIDER_2000` at that density, so that
``hu_to_density(hu)`` gives the density back (the noiseless CT and the density map agree).

References
----------
ICRU Report 46, "Photon, electron, proton and neutron interaction data for body tissues" (1992).
ICRP Publication 89, "Basic anatomical and physiological data for use in radiological protection:
reference values", Ann. ICRP 32(3-4), 2002. doi:10.1016/S0146-6453(03)00002-2.
ICRP Publication 110, "Adult reference computational phantoms", Ann. ICRP 39(2), 2009.
doi:10.1016/j.icrp.2009.07.001.
"""

from __future__ import annotations

import numpy as np

from theradose.materials import SCHNEIDER_2000

__all__ = [
    "ICRP89_MASSES_G",
    "RED_MARROW_FRACTION_OF_SPONGIOSA",
    "TISSUES",
    "hu_for_density",
]


def hu_for_density(rho_g_cm3: float) -> float:
    """CT number (HU) that :data:`SCHNEIDER_2000` maps to ``rho_g_cm3``.

    Densities up to 1.1199 g/cm³ are inverted on the air-lung-soft-tissue line (≤ 100 HU),
    higher ones on the bone line (≥ 101 HU).
    """
    hu = np.asarray(SCHNEIDER_2000.hu)
    rho = np.asarray(SCHNEIDER_2000.density_g_cm3)
    if rho_g_cm3 <= rho[5]:
        return round(float(np.interp(rho_g_cm3, rho[:6], hu[:6])), 1)
    return round(float(np.interp(rho_g_cm3, rho[6:], hu[6:])), 1)


#: tissue -> (density g/cm³, source). CT numbers follow from :func:`hu_for_density`.
_DENSITY: dict[str, tuple[float, str]] = {
    "air": (0.0012, "dry air (ICRU-46)"),
    "soft_tissue": (1.03, "ICRU-46 adult soft tissue"),
    "adipose": (0.95, "ICRU-46 adipose tissue, adult #2"),
    "muscle": (1.05, "ICRU-46 skeletal muscle, adult #2"),
    "lung": (0.26, "ICRU-46 lung, inflated"),
    "liver": (1.06, "ICRU-46 liver"),
    "spleen": (1.06, "ICRU-46 spleen"),
    "kidney": (1.05, "ICRU-46 kidney"),
    "heart": (1.05, "ICRU-46 heart (healthy)"),
    "blood": (1.06, "ICRU-46 whole blood"),
    "gi_tract": (1.03, "ICRU-46 GI tract (wall and contents together)"),
    "pancreas": (1.04, "ICRU-46 pancreas"),
    "bladder_wall": (1.04, "ICRU-46 urinary bladder (empty)"),
    "urine": (1.02, "urine (ICRP-110 contents, approx.)"),
    "gland": (1.03, "ICRP-110 salivary glands / lymph (ICRU-46 1.03)"),
    "thyroid": (1.05, "ICRU-46 thyroid"),
    "brain": (1.04, "ICRU-46 brain"),
    "prostate": (1.04, "ICRP-110 prostate (approx.)"),
    "testis": (1.04, "ICRU-46 testis"),
    "ovary": (1.05, "ICRU-46 ovary"),
    "uterus": (1.05, "ICRP-110 uterus (approx.)"),
    "bone_cortical": (1.92, "ICRU-46 cortical bone"),
    "spongiosa": (1.18, "ICRP-110 spongiosa, whole-skeleton mean (approx.)"),
    "yellow_marrow": (0.98, "ICRU-46 yellow marrow"),
    "lesion_liver": (1.03, "theradose choice: hypodense vs liver"),
    "lesion_bone": (1.45, "theradose choice: sclerotic metastasis"),
    "lesion_soft": (1.04, "theradose choice: soft-tissue node / local recurrence"),
}

#: tissue -> {"density_g_cm3", "hu", "source"}.
TISSUES: dict[str, dict] = {
    k: {"density_g_cm3": d, "hu": hu_for_density(d), "source": s}
    for k, (d, s) in _DENSITY.items()
}
TISSUES["air"]["hu"] = -1000.0

#: ICRP Publication 89 (2002), Table 2.8 reference adult masses (g): {region: (male, female)}.
#: Heart = heart tissue (wall) only; blood in the heart is listed separately. Lungs include their
#: blood. Salivary glands: parotid 50/40 and submandibular 25/20 (pairs); lacrimal glands are not
#: in ICRP-89: 0.7 g per gland is the adult autopsy value we use (see docs). Urinary bladder
#: content is not an ICRP-89 mass: 200 mL as in the MIRD/ORNL phantoms.
ICRP89_MASSES_G: dict[str, tuple[float, float]] = {
    "whole_body": (73000.0, 60000.0),
    "liver": (1800.0, 1400.0),
    "kidneys": (310.0, 275.0),
    "spleen": (150.0, 130.0),
    "lungs": (1200.0, 950.0),
    "heart": (330.0, 250.0),
    "heart_blood_pool": (510.0, 370.0),
    "urinary_bladder_wall": (50.0, 40.0),
    "urinary_bladder_content": (204.0, 204.0),
    "parotid_glands": (50.0, 40.0),
    "submandibular_glands": (25.0, 20.0),
    "lacrimal_glands": (1.4, 1.4),
    "red_marrow": (1170.0, 900.0),
    "brain": (1450.0, 1300.0),
    "thyroid_gland": (20.0, 17.0),
    "pancreas": (140.0, 120.0),
    "stomach": (400.0, 370.0),
    "small_bowel": (1000.0, 880.0),
    "prostate": (17.0, 0.0),
    "testes": (35.0, 0.0),
    "ovaries": (0.0, 11.0),
    "uterus": (0.0, 80.0),
}

#: Red (active) marrow mass as a fraction of the labelled spongiosa mass. A theradose assumption
#: for stylized bones (see docs/phantoms-anatomy.md): the spongiosa regions hold trabecular bone,
#: red and some yellow marrow; half their mass is counted as red marrow.
RED_MARROW_FRACTION_OF_SPONGIOSA = 0.5
