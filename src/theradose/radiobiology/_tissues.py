"""Linear-quadratic tissue parameters (α/β, repair half-time, α) with cited defaults.

The values are defaults for *reporting* BED/EQD2 in radiopharmaceutical therapy, not truths:
every entry says where it comes from and whether it is a measured clinical/animal estimate or a
conventional assumption carried over from external-beam radiotherapy. Pass your own
:class:`TissueParameters` (or ``alpha_beta_gy=`` / ``repair_half_time_h=`` arguments) to use
other values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from theradose.errors import InputError

__all__ = ["TISSUES", "TissueParameters", "get_tissue"]

_WESSELS_2008 = ("Wessels BW, Konijnenberg MW, Dale RG, et al. MIRD Pamphlet No. 20: the effect "
                 "of model assumptions on kidney dosimetry and response. J Nucl Med "
                 "2008;49:1884-1899. doi:10.2967/jnumed.108.053173")
_BARONE_2005 = ("Barone R, Borson-Chazot F, Valkema R, et al. Patient-specific dosimetry in "
                "predicting renal toxicity with 90Y-DOTATOC: relevance of kidney volume and dose "
                "rate in finding a dose-effect relationship. J Nucl Med 2005;46(Suppl 1):"
                "99S-106S")
_ODONOGHUE_2004 = ("O'Donoghue J. Relevance of external beam dose-response relationships to "
                   "kidney toxicity associated with radionuclide therapy. Cancer Biother "
                   "Radiopharm 2004;19:378-387 (alpha/beta 1.5-3 Gy). PMID:15285886")
_STRIGARI_2010 = ("Strigari L, Sciuto R, Rea S, et al. Efficacy and toxicity related to "
                  "treatment of hepatocellular carcinoma with 90Y-SIR spheres: radiobiologic "
                  "considerations. J Nucl Med 2010;51:1377-1385. doi:10.2967/jnumed.110.075861")
_DALE_1985 = ("Dale RG. The application of the linear-quadratic dose-effect equation to "
              "fractionated and protracted radiotherapy. Br J Radiol 1985;58:515-528. "
              "doi:10.1259/0007-1285-58-690-515")
_FOWLER_1989 = ("Fowler JF. The linear-quadratic formula and progress in fractionated "
                "radiotherapy. Br J Radiol 1989;62:679-694. doi:10.1259/0007-1285-62-740-679")
_BENTZEN_2000 = ("Bentzen SM, Skoczylas JZ, Bernier J. Quantitative clinical radiobiology of "
                 "early and late lung reactions. Int J Radiat Biol 2000;76:453-462")


@dataclass(frozen=True)
class TissueParameters:
    """Linear-quadratic parameters of a tissue.

    Attributes
    ----------
    name : str
        Registry key (``"kidney"``, ``"tumour"``, ...).
    alpha_beta_gy : float
        α/β ratio, Gy (> 0).
    repair_half_time_h : float
        Mono-exponential sub-lethal damage repair half-time, h (> 0); the repair rate is
        μ = ln 2 / T_rep.
    alpha_per_gy : float or None
        Radiosensitivity α, 1/Gy, used by the radiobiological EUD (None when no default is
        given: pass ``alpha_per_gy=`` explicitly).
    conventional : bool
        True where the value is a conventional assumption (external-beam radiotherapy habit
        or a generic late/early-responding tissue value) rather than an estimate for the
        tissue under radionuclide irradiation.
    references : tuple of str
        Sources (with DOI where one exists).
    note : str
        What the values rest on.
    """

    name: str
    alpha_beta_gy: float
    repair_half_time_h: float
    alpha_per_gy: float | None = None
    conventional: bool = False
    references: tuple[str, ...] = ()
    note: str = ""
    aliases: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        for nm in ("alpha_beta_gy", "repair_half_time_h"):
            v = getattr(self, nm)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"must be a positive number, got {v!r}", field=nm)
        a = self.alpha_per_gy
        if a is not None and not (isinstance(a, (int, float)) and math.isfinite(a) and a > 0):
            raise InputError(f"must be a positive number or None, got {a!r}",
                             field="alpha_per_gy")

    @property
    def repair_rate_per_h(self) -> float:
        """Repair rate μ = ln 2 / T_rep, 1/h."""
        return math.log(2.0) / self.repair_half_time_h

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (adds ``repair_rate_per_h``)."""
        d = asdict(self)
        d.pop("aliases")
        d["references"] = list(self.references)
        d["repair_rate_per_h"] = self.repair_rate_per_h
        return d


#: Default tissues. Keys are TotalSegmentator-like names; aliases map VOI names to them.
TISSUES: dict[str, TissueParameters] = {
    t.name: t
    for t in [
        TissueParameters(
            "kidney", 2.6, 2.8, None, False, (_WESSELS_2008, _BARONE_2005, _ODONOGHUE_2004),
            "alpha/beta 2.6 Gy and T_rep 2.8 h as used for BED in PRRT (Barone 2005, MIRD "
            "Pamphlet 20); external-beam/animal data give alpha/beta 1.5-3 Gy (O'Donoghue "
            "2004). No alpha default.",
            ("kidneys", "kidney_left", "kidney_right", "kidney_cortex")),
        TissueParameters(
            "red_marrow", 10.0, 0.5, None, True, (_FOWLER_1989,),
            "Conventional early-responding (acute) tissue values: alpha/beta 10 Gy, fast "
            "repair (T_rep 0.5 h). Marrow toxicity in RPT is usually judged on absorbed dose.",
            ("bone_marrow", "marrow", "red_bone_marrow")),
        TissueParameters(
            "salivary_glands", 3.0, 1.5, None, True, (_FOWLER_1989,),
            "Conventional late-responding tissue values (alpha/beta 3 Gy, T_rep 1.5 h); no "
            "PSMA-therapy-specific estimate is established.",
            ("salivary_gland", "parotid_gland", "parotid_gland_left", "parotid_gland_right",
             "submandibular_gland", "submandibular_gland_left", "submandibular_gland_right",
             "parotid", "submandibular")),
        TissueParameters(
            "liver", 2.5, 2.5, None, False, (_STRIGARI_2010,),
            "Normal liver alpha/beta 2.5 Gy, T_rep 2.5 h as used for 90Y radioembolization "
            "BED (Strigari 2010).",
            ("normal_liver", "liver_parenchyma")),
        TissueParameters(
            "lung", 3.0, 1.5, None, True, (_BENTZEN_2000, _FOWLER_1989),
            "alpha/beta of order 3-4 Gy for pneumonitis (Bentzen 2000); 3 Gy and T_rep 1.5 h "
            "are conventional choices.",
            ("lungs", "lung_left", "lung_right")),
        TissueParameters(
            "tumour", 10.0, 1.5, 0.35, True, (_DALE_1985, _STRIGARI_2010),
            "Conventional tumour values alpha/beta 10 Gy, T_rep 1.5 h (as in Strigari 2010 for "
            "HCC); alpha 0.35 /Gy is a conventional radiosensitivity for the EUD.",
            ("tumor", "lesion", "lesions", "tumours", "tumors", "metastasis")),
    ]
}


def _lookup() -> dict[str, str]:
    table = {}
    for key, t in TISSUES.items():
        table[key] = key
        for a in t.aliases:
            table[a] = key
    return table


def get_tissue(name: str | TissueParameters) -> TissueParameters:
    """Return the default :class:`TissueParameters` for a tissue or VOI name.

    Parameters
    ----------
    name : str or TissueParameters
        Registry key or alias (case-insensitive; ``kidney_left``, ``parotid_gland_right``,
        ``tumor``, ... map to their tissue). A ``TissueParameters`` is returned unchanged.
        A name that starts with ``lesion``/``tumour``/``tumor`` followed by a number (e.g.
        ``lesion_3``) maps to ``tumour``.

    Returns
    -------
    TissueParameters

    Raises
    ------
    InputError
        If the name is unknown (the message lists the known names).

    Examples
    --------
    >>> get_tissue("kidney_left").alpha_beta_gy
    2.6
    """
    if isinstance(name, TissueParameters):
        return name
    if not isinstance(name, str):
        raise InputError(f"must be a tissue name or TissueParameters, got "
                         f"{type(name).__name__}", field="tissue")
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    table = _lookup()
    if key in table:
        return TISSUES[table[key]]
    stem = key.rstrip("0123456789").rstrip("_")
    if stem in ("lesion", "tumour", "tumor"):
        return TISSUES["tumour"]
    raise InputError(f"unknown tissue {name!r}; known: {', '.join(sorted(TISSUES))} (and "
                     "aliases such as kidney_left, parotid_gland_right, tumor)", field="tissue")
