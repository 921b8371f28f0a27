"""Population parameters of the virtual-patient kinetics (presets ``psma`` and ``sstr``).

Every rate constant is a log-normal population distribution given by its median and coefficient of
variation (CV). The numbers are *this project's calibration* of a linear model, chosen so that
the resulting organ TIAs reproduce published biodistribution shapes and absorbed doses per GBq
(see ``docs/phantoms-kinetics.md`` for the checks); they are not fitted values taken from one
paper. Sources of the targets:

* PSMA, therapy: Delker et al. 2016 (doi:10.1007/s00259-015-3174-7), Violet et al. 2019
  (doi:10.2967/jnumed.118.219352), Kurth et al. 2018 (doi:10.2967/jnumed.117.204537),
  Okamoto et al. 2017 (doi:10.2967/jnumed.116.178483): kidneys 0.4-0.9, salivary glands 0.5-1.5,
  liver 0.1-0.3, red marrow 0.02-0.05, lesions 1-10+ Gy/GBq; renal effective half-life 30-50 h.
* PSMA, PET: SUVs of [68Ga]Ga-PSMA-11 at ~60 min, e.g. Ferreira et al. 2017
  (doi:10.1186/s13550-017-0271-2), Afshar-Oromieh et al. 2015 (doi:10.1007/s00259-014-2949-6).
* Linear PBPK structure and renal clearance of PSMA ligands: Begum et al. 2018
  (doi:10.1007/s40262-018-0629-4) and Kletting et al. 2016 (doi:10.1371/journal.pone.0164137).
* SSTR, therapy: Sandström et al. 2013 (doi:10.2967/jnumed.112.107524), Garske-Román et al.
  2018 (doi:10.1007/s00259-018-3945-z), Brolin et al. 2015 (doi:10.2967/jnumed.114.148437):
  kidneys 0.4-0.7, spleen 0.8-1.3, liver 0.2-0.5, lesions 2-10 Gy/GBq.
* SSTR, PET: [68Ga]Ga-DOTATATE SUVs, Kuyumcu et al. 2013 (doi:10.1097/RLU.0b013e3182a18a4f).
* Regional blood volumes (vascular fractions): ICRP Publication 89 (2002), Table 2.14
  (doi:10.1016/S0146-6453(03)00002-2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from theradose.errors import InputError

__all__ = [
    "AIR_NAMES",
    "KINETIC_CLASSES",
    "AgentPreset",
    "ClassParameters",
    "KineticsPreset",
    "LogNormal",
    "kinetic_class",
    "preset",
]

#: Kinetic classes; region names map to them with :func:`kinetic_class`.
KINETIC_CLASSES: tuple[str, ...] = (
    "kidney_cortex", "kidney_medulla", "kidney", "liver", "spleen", "salivary", "lacrimal",
    "small_bowel", "colon", "red_marrow", "lesion", "rest", "blood", "bladder", "air",
)

#: Region names that are gas, not tissue (air-filled lumens): kinetic class ``air``, no activity.
#: Every region of the anatomy template whose material is ``air`` must be named here
#: (``tests/phantoms/test_kinetics.py`` checks it against the template's tissue table).
AIR_NAMES = frozenset({"trachea", "trachea_lumen", "airway", "airways", "bronchi", "air"})

_BLOOD_NAMES = {"blood", "blood_pool", "heart_blood_pool", "heart", "aorta",
                "inferior_vena_cava", "superior_vena_cava", "vena_cava", "pulmonary_artery",
                "portal_vein_and_splenic_vein"}


def kinetic_class(name: str) -> str:
    """Kinetic class of a region name (anatomy/TotalSegmentator naming).

    ``kidney_{left,right}_cortex`` → ``kidney_cortex``; ``..._medulla`` → ``kidney_medulla``;
    ``kidney_left``/``kidney_right``/``kidney`` → ``kidney``; ``parotid_gland_*`` and
    ``submandibular_gland_*`` → ``salivary``; ``lacrimal_gland_*`` → ``lacrimal``;
    ``bone_spongiosa``/``red_marrow`` → ``red_marrow``; ``lesion*`` → ``lesion``; blood pools and
    large vessels (``heart_blood_pool``, ``aorta``, ``inferior_vena_cava``, ...) → ``blood``;
    ``urinary_bladder`` → ``bladder`` (its content is the urine); ``liver``, ``spleen``,
    ``small_bowel``/``duodenum``, ``colon``; air-filled lumens (``trachea``, ``airway``, ...,
    :data:`AIR_NAMES`) → ``air`` (gas: no tissue, no blood, no activity). Anything else
    (``body``, lungs, bone, muscle, unknown names) → ``rest`` (rest-of-body kinetics).
    """
    n = name.lower()
    if n in AIR_NAMES:
        return "air"
    if n.startswith("kidney"):
        if n.endswith("cortex"):
            return "kidney_cortex"
        if n.endswith("medulla"):
            return "kidney_medulla"
        return "kidney"
    if n.startswith(("parotid_gland", "submandibular_gland", "salivary")):
        return "salivary"
    if n.startswith("lacrimal_gland"):
        return "lacrimal"
    if n in ("bone_spongiosa", "red_marrow", "spongiosa") or n.startswith("bone_spongiosa"):
        return "red_marrow"
    if n.startswith("lesion"):
        return "lesion"
    if n in _BLOOD_NAMES or n.endswith("_blood_pool"):
        return "blood"
    if n in ("urinary_bladder", "bladder", "urinary_bladder_content"):
        return "bladder"
    if n in ("liver", "spleen", "colon"):
        return n
    if n in ("small_bowel", "duodenum", "small_intestine"):
        return "small_bowel"
    return "rest"


@dataclass(frozen=True)
class LogNormal:
    """A log-normal population distribution given by its median and CV.

    ``x = median · exp(σ z)`` with ``z ~ N(0, 1)`` and ``σ = sqrt(ln(1 + cv²))`` (so that the
    coefficient of variation of ``x`` is ``cv``).
    """

    median: float
    cv: float

    @property
    def sigma_log(self) -> float:
        """Standard deviation of ``ln x``."""
        return math.sqrt(math.log1p(self.cv**2))

    def at(self, z: float) -> float:
        """Value at the standard-normal deviate ``z``."""
        return float(self.median * math.exp(self.sigma_log * z))

    def to_dict(self) -> dict[str, float]:
        """``{"median", "cv"}``."""
        return {"median": self.median, "cv": self.cv}


@dataclass(frozen=True)
class ClassParameters:
    """Rate constants of one kinetic class for one agent (medians and CVs).

    Attributes
    ----------
    K1 : LogNormal
        Blood → free clearance per unit tissue volume, 1/h (mL of blood cleared per hour per mL
        of tissue).
    k2, k3, k4 : LogNormal
        Free → blood, free → bound, bound → free rate constants, 1/h.
    blood_fraction : float
        Vascular (blood) volume fraction of the tissue, mL blood per mL tissue.
    """

    K1: LogNormal
    k2: LogNormal
    k3: LogNormal
    k4: LogNormal
    blood_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"K1": self.K1.to_dict(), "k2": self.k2.to_dict(), "k3": self.k3.to_dict(),
                "k4": self.k4.to_dict(), "blood_fraction": self.blood_fraction}


@dataclass(frozen=True)
class AgentPreset:
    """One radiopharmaceutical of a theranostic pair.

    Attributes
    ----------
    name : str
        E.g. ``"[177Lu]Lu-PSMA-617"``.
    nuclide : str
        ICRP-107 name of the label (``"Lu-177"``, ``"Ga-68"``).
    renal_clearance_ml_per_h : LogNormal
        Blood → urine clearance, mL/h.
    classes : dict of str to ClassParameters
        Parameters of every tissue kinetic class (all of :data:`KINETIC_CLASSES` except
        ``blood``, ``bladder`` and ``air``).
    """

    name: str
    nuclide: str
    renal_clearance_ml_per_h: LogNormal
    classes: dict[str, ClassParameters]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"name": self.name, "nuclide": self.nuclide,
                "renal_clearance_ml_per_h": self.renal_clearance_ml_per_h.to_dict(),
                "classes": {k: v.to_dict() for k, v in self.classes.items()}}


@dataclass(frozen=True)
class KineticsPreset:
    """Population model of a theranostic pair.

    Attributes
    ----------
    name : str
        ``"psma"`` or ``"sstr"``.
    diagnostic, therapeutic : AgentPreset
        PET tracer and therapy agent.
    agent_correlation : float
        Correlation of a patient's log-parameters between the two agents (organ-level
        PET ↔ therapy predictability; author's choice 0.7).
    subtissue_contrast_sd : float
        SD of the log ratio of K1 between sub-tissue 0 and sub-tissue 1 of a region.
    lesion_site_factor : dict of str to float
        K1 multiplier by lesion site (``liver``, ``bone``, ``lymph_node``, ``prostate_bed``).
    voiding_half_time_h : float
        Half-time of first-order bladder voiding, h.
    blood_volume_ml : float
        Default total blood volume (ICRP-89 reference adult male 5300 mL).
    references : tuple of str
        Citations (with DOI) of the target values.
    """

    name: str
    diagnostic: AgentPreset
    therapeutic: AgentPreset
    agent_correlation: float = 0.7
    subtissue_contrast_sd: float = 0.4
    lesion_site_factor: dict[str, float] = field(default_factory=dict)
    voiding_half_time_h: float = 2.0
    blood_volume_ml: float = 5300.0
    references: tuple[str, ...] = ()

    def agent(self, role: str) -> AgentPreset:
        """The ``"diagnostic"`` or ``"therapeutic"`` agent."""
        return self.diagnostic if role == "diagnostic" else self.therapeutic

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"name": self.name, "diagnostic": self.diagnostic.to_dict(),
                "therapeutic": self.therapeutic.to_dict(),
                "agent_correlation": self.agent_correlation,
                "subtissue_contrast_sd": self.subtissue_contrast_sd,
                "lesion_site_factor": dict(self.lesion_site_factor),
                "voiding_half_time_h": self.voiding_half_time_h,
                "blood_volume_ml": self.blood_volume_ml, "references": list(self.references)}


def _c(k1: float, k2: float, k3: float, k4: float, fb: float, cv_k1: float = 0.25,
       cv_k: float = 0.15) -> ClassParameters:
    return ClassParameters(LogNormal(k1, cv_k1), LogNormal(k2, cv_k), LogNormal(k3, cv_k),
                           LogNormal(k4, cv_k), fb)


# Vascular fractions (mL blood / mL tissue) derived from ICRP-89 Table 2.14 regional blood volumes
# divided by reference organ volumes, rounded; rest of body 0.03 (author's choice).
_FB = {"kidney_cortex": 0.25, "kidney_medulla": 0.2, "kidney": 0.25, "liver": 0.25,
       "spleen": 0.3, "salivary": 0.05, "lacrimal": 0.05, "small_bowel": 0.05, "colon": 0.05,
       "red_marrow": 0.15, "lesion": 0.05, "rest": 0.03}


def _classes(rates: dict[str, tuple]) -> dict[str, ClassParameters]:
    return {k: _c(*v[:4], _FB[k], *v[4:]) for k, v in rates.items()}


# Rate constants (1/h): K1, k2, k3, k4 [, cv_K1, cv_k]. Calibrated by the author against the
# targets in the module docstring (see docs/phantoms-kinetics.md for the resulting doses).
_PSMA_LU = _classes({
    "kidney_cortex": (1.10, 0.5, 1.0, 0.04),
    "kidney_medulla": (0.37, 0.5, 1.0, 0.04),
    "kidney": (0.88, 0.5, 1.0, 0.04),
    "liver": (0.27, 0.3, 0.2, 0.012),
    "spleen": (0.15, 0.3, 0.3, 0.015),
    "salivary": (1.10, 0.5, 1.0, 0.04),
    "lacrimal": (1.10, 0.5, 1.0, 0.04),
    "small_bowel": (0.10, 0.3, 0.3, 0.02),
    "colon": (0.05, 0.3, 0.3, 0.02),
    "red_marrow": (0.35, 0.6, 0.04, 0.03),
    "lesion": (1.80, 0.3, 1.0, 0.006, 0.8, 0.35),
    "rest": (0.12, 1.0, 0.10, 0.015),
})
_PSMA_GA = _classes({
    "kidney_cortex": (9.0, 0.5, 1.0, 0.04),
    "kidney_medulla": (3.0, 0.5, 1.0, 0.04),
    "kidney": (7.2, 0.5, 1.0, 0.04),
    "liver": (0.9, 0.3, 0.2, 0.012),
    "spleen": (1.2, 0.3, 0.3, 0.015),
    "salivary": (3.3, 0.5, 1.0, 0.04),
    "lacrimal": (3.3, 0.5, 1.0, 0.04),
    "small_bowel": (0.9, 0.3, 0.3, 0.02),
    "colon": (0.30, 0.3, 0.3, 0.02),
    "red_marrow": (0.30, 0.6, 0.05, 0.03),
    "lesion": (3.0, 0.3, 1.0, 0.006, 0.8, 0.35),
    "rest": (0.15, 1.0, 0.02, 0.02),
})
_SSTR_LU = _classes({
    "kidney_cortex": (1.00, 0.5, 1.0, 0.03),
    "kidney_medulla": (0.33, 0.5, 1.0, 0.03),
    "kidney": (0.80, 0.5, 1.0, 0.03),
    "liver": (0.40, 0.3, 0.3, 0.010),
    "spleen": (0.80, 0.3, 1.0, 0.020),
    "salivary": (0.10, 0.5, 0.5, 0.03),
    "lacrimal": (0.10, 0.5, 0.5, 0.03),
    "small_bowel": (0.10, 0.3, 0.3, 0.02),
    "colon": (0.05, 0.3, 0.3, 0.02),
    "red_marrow": (0.35, 0.6, 0.04, 0.03),
    "lesion": (2.50, 0.3, 1.0, 0.005, 0.8, 0.35),
    "rest": (0.12, 1.0, 0.10, 0.015),
})
_SSTR_GA = _classes({
    "kidney_cortex": (5.0, 0.5, 1.0, 0.03),
    "kidney_medulla": (1.7, 0.5, 1.0, 0.03),
    "kidney": (4.0, 0.5, 1.0, 0.03),
    "liver": (1.5, 0.3, 0.3, 0.010),
    "spleen": (5.0, 0.3, 1.0, 0.020),
    "salivary": (0.5, 0.5, 0.5, 0.03),
    "lacrimal": (0.5, 0.5, 0.5, 0.03),
    "small_bowel": (0.6, 0.3, 0.3, 0.02),
    "colon": (0.30, 0.3, 0.3, 0.02),
    "red_marrow": (0.30, 0.6, 0.05, 0.03),
    "lesion": (5.0, 0.3, 1.0, 0.005, 0.8, 0.35),
    "rest": (0.12, 1.0, 0.10, 0.015),
})

_COMMON_REFS = (
    "Xue S et al. Eur J Nucl Med Mol Imaging 2024;51:3450. doi:10.1007/s00259-024-06737-3",
    "ICRP Publication 89 (2002). doi:10.1016/S0146-6453(03)00002-2",
)
_PSMA_REFS = (
    "Delker A et al. Eur J Nucl Med Mol Imaging 2016;43:42. doi:10.1007/s00259-015-3174-7",
    "Violet J et al. J Nucl Med 2019;60:517. doi:10.2967/jnumed.118.219352",
    "Kurth J et al. J Nucl Med 2018;59:1770. doi:10.2967/jnumed.117.204537",
    "Begum NJ et al. Clin Pharmacokinet 2018;57:1431. doi:10.1007/s40262-018-0629-4",
    "Ferreira G et al. EJNMMI Res 2017;7:55. doi:10.1186/s13550-017-0271-2",
    *_COMMON_REFS,
)
_SSTR_REFS = (
    "Sandström M et al. J Nucl Med 2013;54:33. doi:10.2967/jnumed.112.107524",
    "Garske-Román U et al. Eur J Nucl Med Mol Imaging 2018;45:970. "
    "doi:10.1007/s00259-018-3945-z",
    "Brolin G et al. J Nucl Med 2015;56:1500. doi:10.2967/jnumed.114.148437",
    "Kuyumcu S et al. Clin Nucl Med 2013;38:e442. doi:10.1097/RLU.0b013e3182a18a4f",
    *_COMMON_REFS,
)
#: Lesion-site K1 factors: 1 for every site (author's choice; the site is recorded so that a
#: later calibration can differentiate them).
_LESION_SITES = {"liver": 1.0, "bone": 1.0, "lymph_node": 1.0, "prostate_bed": 1.0}

_PRESETS: dict[str, KineticsPreset] = {
    "psma": KineticsPreset(
        name="psma",
        diagnostic=AgentPreset("[68Ga]Ga-PSMA-11", "Ga-68", LogNormal(6000.0, 0.3), _PSMA_GA),
        therapeutic=AgentPreset("[177Lu]Lu-PSMA-617", "Lu-177", LogNormal(5000.0, 0.3),
                                _PSMA_LU),
        lesion_site_factor=dict(_LESION_SITES),
        references=_PSMA_REFS,
    ),
    "sstr": KineticsPreset(
        name="sstr",
        diagnostic=AgentPreset("[68Ga]Ga-DOTATATE", "Ga-68", LogNormal(6000.0, 0.3), _SSTR_GA),
        therapeutic=AgentPreset("[177Lu]Lu-DOTATATE", "Lu-177", LogNormal(5000.0, 0.3),
                                _SSTR_LU),
        lesion_site_factor=dict(_LESION_SITES),
        references=_SSTR_REFS,
    ),
}


def preset(name: str) -> KineticsPreset:
    """The population kinetics of a theranostic pair.

    Parameters
    ----------
    name : {'psma', 'sstr'}
        ``psma``: [68Ga]Ga-PSMA-11 PET ↔ [177Lu]Lu-PSMA-617; ``sstr``: [68Ga]Ga-DOTATATE PET ↔
        [177Lu]Lu-DOTATATE.

    Raises
    ------
    InputError
        Unknown name (field ``preset``).
    """
    key = str(name).lower()
    if key not in _PRESETS:
        raise InputError(f"unknown kinetics preset {name!r}; accepted: {', '.join(_PRESETS)}",
                         field="preset")
    return _PRESETS[key]
