"""Pharmacokinetics of virtual patients: blood input, two-tissue models, two sub-tissues per region.

Model (see ``docs/phantoms-kinetics.md``): one well-mixed blood compartment receives the bolus,
exchanges with a free/bound (K1, k2, k3, k4) pair for each of the *two sub-tissue types* of every
region (Xue et al. 2024), and is cleared to the urinary bladder, which voids first-order. All
amounts are closed-form sums of exponentials (:mod:`._kinetics_model`), so the fraction of the
injected activity in a region at any time and its time integral 0..∞ are exact.

Two regimes (Xue et al. 2024):

* ``homogeneous``: the two sub-tissues of a region differ only by a K1 factor that is the same for
  the PET tracer and the therapy agent, and both agents see the same sub-tissue mixing field; the
  voxel PET image is then an affine function of the voxel therapy TIA within every region
  (correlation 1).
* ``heterogeneous``: with strength ``h`` in [0, 1] the therapy agent's sub-tissue K1 contrast
  changes magnitude (log-factor SD 0.5·h, same sign) and its higher-uptake sub-tissue releases
  more slowly (k4 contrast up to 0.5·h in log), so the sub-tissue ratios are no longer
  proportional; and its sub-tissue mixing field correlates with the tracer's only with
  ``ρ = 1 - h`` (the sub-tissue types differ between agents), so the voxel-level PET ↔ TIA
  correlation drops (≈ ρ).

References
----------
Xue S, Gafita A, Zhao Y, et al. Pre-therapy PET-based voxel-wise dosimetry prediction by
characterizing intra-organ heterogeneity in PSMA-directed radiopharmaceutical theranostics.
Eur J Nucl Med Mol Imaging 2024;51:3450-3460. doi:10.1007/s00259-024-06737-3
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, zoom
from scipy.special import ndtr

from theradose.errors import InputError, TheradoseWarning
from theradose.nuclides import get_nuclide
from theradose.phantoms._kinetics_model import CompartmentSolution, ExpSum, solve_compartments
from theradose.phantoms._kinetics_params import KineticsPreset, kinetic_class, preset
from theradose.volume import LabelMap

__all__ = [
    "ROLES",
    "UNLISTED",
    "VOIDED",
    "AgentKinetics",
    "PatientKinetics",
    "RegionKinetics",
    "SubTissueRates",
    "activity_map",
    "agent_subtissue_weights",
    "sample_kinetics",
    "subtissue_weights",
    "tia_map",
]

#: Agent roles of a theranostic pair.
ROLES: tuple[str, ...] = ("diagnostic", "therapeutic")
#: Pseudo-region: activity in the body outside the listed regions (tissue, blood, bladder).
UNLISTED = "unlisted"
#: Pseudo-region: urine voided out of the body.
VOIDED = "voided"
_REGIMES = ("homogeneous", "heterogeneous")
#: Default heterogeneity of the heterogeneous regime (voxel PET↔TIA r ≈ 0.6, cf. Xue et al.
#: 2024: kidney 0.77, liver 0.5, spleen 0.58).
DEFAULT_HETEROGENEITY = 0.4
#: Reference adult body volume (mL) used for the unlisted remainder (ICRP-89 male, 73 kg).
REFERENCE_BODY_VOLUME_ML = 73000.0
_K4_CONTRAST_SD = 0.5  # log-SD of the therapy contrast changes at heterogeneity 1


@dataclass(frozen=True)
class SubTissueRates:
    """Rate constants of one sub-tissue (1/h): K1 per unit tissue volume, k2, k3, k4."""

    K1: float
    k2: float
    k3: float
    k4: float

    def to_dict(self) -> dict[str, float]:
        """``{"K1_per_h", "k2_per_h", "k3_per_h", "k4_per_h"}``."""
        return {"K1_per_h": self.K1, "k2_per_h": self.k2, "k3_per_h": self.k3,
                "k4_per_h": self.k4}

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> SubTissueRates:
        """Inverse of :meth:`to_dict`."""
        return cls(float(d["K1_per_h"]), float(d["k2_per_h"]), float(d["k3_per_h"]),
                   float(d["k4_per_h"]))


@dataclass(frozen=True)
class RegionKinetics:
    """Kinetic parameters of one region for one agent.

    Attributes
    ----------
    name : str
        Region name (as in the label map).
    kinetic_class : str
        See :func:`~theradose.phantoms._kinetics_params.kinetic_class`.
    volume_ml : float
        Region volume, mL.
    blood_share : float
        Fraction of the blood compartment located in this region (its vascular blood).
    subtissues : tuple of two SubTissueRates, or None
        Rates of sub-tissue 0 and 1; None for ``blood``, ``bladder`` and ``air`` regions
        (``air``: a gas lumen, no activity and ``blood_share`` 0).
    shares : tuple of two float
        Volume shares of the sub-tissues (0.5, 0.5).
    site : str or None
        Lesion site (``liver``, ``bone``, ``lymph_node``, ``prostate_bed``), None otherwise.
    """

    name: str
    kinetic_class: str
    volume_ml: float
    blood_share: float
    subtissues: tuple[SubTissueRates, SubTissueRates] | None
    shares: tuple[float, float] = (0.5, 0.5)
    site: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {"kinetic_class": self.kinetic_class, "volume_ml": self.volume_ml,
                "blood_share": self.blood_share, "shares": list(self.shares), "site": self.site,
                "subtissues": None if self.subtissues is None
                else [s.to_dict() for s in self.subtissues]}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> RegionKinetics:
        """Inverse of :meth:`to_dict`."""
        sub = d.get("subtissues")
        return cls(name, str(d["kinetic_class"]), float(d["volume_ml"]), float(d["blood_share"]),
                   None if sub is None else tuple(SubTissueRates.from_dict(s) for s in sub),
                   tuple(float(s) for s in d.get("shares", (0.5, 0.5))), d.get("site"))


@dataclass(frozen=True, eq=False)
class AgentKinetics:
    """The compartment model of one agent in one patient (parameters and closed-form solution).

    Attributes
    ----------
    role : {'diagnostic', 'therapeutic'}
    name : str
        Radiopharmaceutical, e.g. ``"[177Lu]Lu-PSMA-617"``.
    nuclide : str
        Label nuclide (ICRP-107 name); its decay is applied by ``decay=True``.
    blood_volume_ml : float
        Distribution volume of the blood compartment, mL.
    renal_clearance_ml_per_h : float
        Blood → urine clearance, mL/h (k_renal = CL / V_blood).
    voiding_rate_per_h : float
        First-order bladder voiding rate constant, 1/h.
    regions : tuple of RegionKinetics
        Listed regions.
    unlisted_volume_ml : float
        Tissue volume outside the listed regions (rest-of-body kinetics), mL.
    unlisted_rates : SubTissueRates
        Rates of that remainder.
    unlisted_blood_share : float
        Fraction of the blood compartment outside the listed regions.
    """

    role: str
    name: str
    nuclide: str
    blood_volume_ml: float
    renal_clearance_ml_per_h: float
    voiding_rate_per_h: float
    regions: tuple[RegionKinetics, ...]
    unlisted_volume_ml: float
    unlisted_rates: SubTissueRates
    unlisted_blood_share: float

    # ------------------------------------------------------------------ solution
    @cached_property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant of the nuclide, 1/h."""
        return get_nuclide(self.nuclide).decay_constant_per_h

    @cached_property
    def _pairs(self) -> list[tuple[str, int, SubTissueRates, float]]:
        """Tissue pairs: (region, sub-tissue, rates, tissue volume mL)."""
        pairs = []
        for r in self.regions:
            if r.subtissues is None:
                continue
            for j in (0, 1):
                pairs.append((r.name, j, r.subtissues[j], r.volume_ml * r.shares[j]))
        if self.unlisted_volume_ml > 0:
            pairs.append((UNLISTED, 0, self.unlisted_rates, self.unlisted_volume_ml))
        return pairs

    @cached_property
    def solution(self) -> CompartmentSolution:
        """Closed-form solution (compartment 0 = blood, then F/B of each tissue pair)."""
        p = self._pairs
        vb = self.blood_volume_ml
        k_in = np.array([s.K1 * v / vb for _, _, s, v in p])
        k2 = np.array([s.k2 for _, _, s, _ in p])
        k3 = np.array([s.k3 for _, _, s, _ in p])
        k4 = np.array([s.k4 for _, _, s, _ in p])
        return solve_compartments(k_in, k2, k3, k4, self.renal_clearance_ml_per_h / vb,
                                  self.voiding_rate_per_h)

    @cached_property
    def _parts(self) -> dict[str, tuple[ExpSum, ExpSum, ExpSum]]:
        """Per region: (tissue of sub-tissue 0, tissue of sub-tissue 1, uniform part)."""
        sol = self.solution
        blood = sol.compartment(0)
        index = {(n, j): 1 + 2 * i for i, (n, j, _, _) in enumerate(self._pairs)}
        has_bladder = any(r.kinetic_class == "bladder" for r in self.regions)
        out: dict[str, tuple[ExpSum, ExpSum, ExpSum]] = {}
        for r in self.regions:
            if r.kinetic_class == "air":  # gas: no tissue, no blood, no activity
                out[r.name] = (ExpSum.zero(), ExpSum.zero(), ExpSum.zero())
                continue
            uniform = blood.scaled(r.blood_share)
            if r.kinetic_class == "bladder":
                uniform = uniform + sol.bladder
            if r.subtissues is None:
                out[r.name] = (ExpSum.zero(), ExpSum.zero(), uniform)
            else:
                t0, t1 = (sol.compartment([index[(r.name, j)], index[(r.name, j)] + 1])
                          for j in (0, 1))
                out[r.name] = (t0, t1, uniform)
        un = blood.scaled(self.unlisted_blood_share)
        if (UNLISTED, 0) in index:
            i = index[(UNLISTED, 0)]
            un = un + sol.compartment([i, i + 1])
        if not has_bladder:
            un = un + sol.bladder
        out[UNLISTED] = (ExpSum.zero(), ExpSum.zero(), un)
        out[VOIDED] = (ExpSum.zero(), ExpSum.zero(), sol.voided)
        return out

    def region_function(self, region: str, subtissue: int | None = None) -> ExpSum:
        """Fraction of injected activity in ``region`` (no decay) as an :class:`ExpSum`.

        Sub-tissue ``j`` holds its free + bound tissue amounts plus its volume share of the
        region's vascular blood (and of the bladder content for ``bladder`` regions).
        """
        parts = self._parts
        if region not in parts:
            raise InputError(f"unknown region {region!r}; known: {sorted(parts)}",
                             field="region")
        t0, t1, uni = parts[region]
        if subtissue is None:
            return t0 + t1 + uni
        if subtissue not in (0, 1) or isinstance(subtissue, bool):
            raise InputError(f"subtissue must be 0, 1 or None, got {subtissue!r}",
                             field="subtissue")
        shares = self._shares(region)
        return (t0 if subtissue == 0 else t1) + uni.scaled(shares[subtissue])

    def _shares(self, region: str) -> tuple[float, float]:
        for r in self.regions:
            if r.name == region:
                return r.shares
        return (0.5, 0.5)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (and each region's TIA, h, for reference)."""
        lam = self.decay_constant_per_h
        return {
            "role": self.role, "name": self.name, "nuclide": self.nuclide,
            "decay_constant_per_h": lam,
            "blood_volume_ml": self.blood_volume_ml,
            "renal_clearance_ml_per_h": self.renal_clearance_ml_per_h,
            "voiding_rate_per_h": self.voiding_rate_per_h,
            "unlisted_volume_ml": self.unlisted_volume_ml,
            "unlisted_rates": self.unlisted_rates.to_dict(),
            "unlisted_blood_share": self.unlisted_blood_share,
            "regions": {r.name: r.to_dict() for r in self.regions},
            "tia_h": {n: self.region_function(n).integral(lam) for n in self._parts},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AgentKinetics:
        """Inverse of :meth:`to_dict` (the ``tia_h`` entries are recomputed, not read)."""
        return cls(str(d["role"]), str(d["name"]), str(d["nuclide"]), float(d["blood_volume_ml"]),
                   float(d["renal_clearance_ml_per_h"]), float(d["voiding_rate_per_h"]),
                   tuple(RegionKinetics.from_dict(n, r) for n, r in d["regions"].items()),
                   float(d["unlisted_volume_ml"]), SubTissueRates.from_dict(d["unlisted_rates"]),
                   float(d["unlisted_blood_share"]))


@dataclass(frozen=True, eq=False)
class PatientKinetics:
    """Kinetics of one virtual patient for both agents of a theranostic pair.

    Attributes
    ----------
    preset : str
        ``"psma"`` or ``"sstr"``.
    regime : {'homogeneous', 'heterogeneous'}
    heterogeneity : float
        Strength ``h`` in [0, 1] (0 in the homogeneous regime).
    weight_correlation : float
        Correlation ``1 - h`` of the two agents' sub-tissue mixing fields (used by
        :func:`agent_subtissue_weights`).
    diagnostic, therapeutic : AgentKinetics

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.phantoms._kinetics import sample_kinetics
    >>> k = sample_kinetics("psma", np.random.default_rng(1),
    ...                     {"kidney_left": 150.0, "liver": 1800.0})
    >>> f = k.fraction("kidney_left", [1.0, 24.0], agent="therapeutic")
    >>> tia = k.tia_h("kidney_left", agent="therapeutic")  # h; TIA [MBq·h] = A0 [MBq] × tia
    """

    preset: str
    regime: str
    heterogeneity: float
    weight_correlation: float
    diagnostic: AgentKinetics
    therapeutic: AgentKinetics

    @property
    def regions(self) -> tuple[str, ...]:
        """Names of the listed regions."""
        return tuple(r.name for r in self.therapeutic.regions)

    def agent(self, agent: str) -> AgentKinetics:
        """The agent by role (``"diagnostic"``/``"therapeutic"``) or by name (case-insensitive).

        Raises
        ------
        InputError
            Unknown agent (field ``agent``).
        """
        key = str(agent).lower()
        for a in (self.diagnostic, self.therapeutic):
            if key in (a.role, a.name.lower()):
                return a
        raise InputError(f"unknown agent {agent!r}; accepted: diagnostic, therapeutic, "
                         f"{self.diagnostic.name}, {self.therapeutic.name}", field="agent")

    def fraction(self, region: str, t_h, *, agent: str, decay: bool = True,
                 subtissue: int | None = None) -> np.ndarray:
        """Fraction of the injected activity in a region at times ``t_h``.

        Parameters
        ----------
        region : str
            A listed region, or ``"unlisted"`` (rest of the body outside the listed regions,
            including the bladder content when no bladder is listed) or ``"voided"`` (urine
            excreted out of the body).
        t_h : float or array_like
            Times after injection, h, ≥ 0.
        agent : str
            ``"diagnostic"``, ``"therapeutic"`` or the agent's name.
        decay : bool
            Multiply by ``exp(-λ t)`` of the agent's nuclide.
        subtissue : {0, 1, None}
            One sub-tissue (with its share of the vascular blood) or the whole region.

        Returns
        -------
        ndarray
            Same shape as ``t_h``; dimensionless (MBq in the region per MBq injected).
        """
        a = self.agent(agent)
        t = _times(t_h)
        f = a.region_function(region, subtissue)
        return f(t, a.decay_constant_per_h if decay else 0.0)

    def tia_h(self, region: str, *, agent: str, subtissue: int | None = None) -> float:
        """∫₀^∞ of the decayed fraction, h (TIA [MBq·h] = A0 [MBq] × ``tia_h``)."""
        a = self.agent(agent)
        return a.region_function(region, subtissue).integral(a.decay_constant_per_h)

    @property
    def parameters(self) -> dict[str, list]:
        """Table of the parameters, one row per agent × region × sub-tissue (column dict).

        Columns: ``agent``, ``region``, ``kinetic_class``, ``subtissue``, ``volume_ml``,
        ``K1_per_h``, ``k2_per_h``, ``k3_per_h``, ``k4_per_h``, ``blood_share``, ``tia_h``.
        Blood, bladder and air regions have one row with ``subtissue`` None and NaN rates.
        """
        cols: dict[str, list] = {k: [] for k in (
            "agent", "region", "kinetic_class", "subtissue", "volume_ml", "K1_per_h",
            "k2_per_h", "k3_per_h", "k4_per_h", "blood_share", "tia_h")}
        for a in (self.diagnostic, self.therapeutic):
            lam = a.decay_constant_per_h
            for r in a.regions:
                subs = [None] if r.subtissues is None else [0, 1]
                for j in subs:
                    s = None if j is None else r.subtissues[j]
                    rates = [math.nan] * 4 if s is None else [s.K1, s.k2, s.k3, s.k4]
                    row = [a.role, r.name, r.kinetic_class, j, r.volume_ml, *rates,
                           r.blood_share, a.region_function(r.name, j).integral(lam)]
                    for k, v in zip(cols, row, strict=True):
                        cols[k].append(v)
        return cols

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (the truth file stores them)."""
        return {"preset": self.preset, "regime": self.regime,
                "heterogeneity": self.heterogeneity,
                "weight_correlation": self.weight_correlation,
                "agents": {a.role: a.to_dict() for a in (self.diagnostic, self.therapeutic)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PatientKinetics:
        """Inverse of :meth:`to_dict`."""
        try:
            agents = {r: AgentKinetics.from_dict(d["agents"][r]) for r in ROLES}
            return cls(str(d["preset"]), str(d["regime"]), float(d["heterogeneity"]),
                       float(d["weight_correlation"]), agents["diagnostic"],
                       agents["therapeutic"])
        except KeyError as e:
            raise InputError(f"missing key {e.args[0]!r} in kinetics parameters",
                             field="kinetics") from None


# ---------------------------------------------------------------------------- sampling
#: Correlation of the kinetic parameters of two regions of the same class in one patient
#: (theradose choice: left and right kidneys of a patient typically differ by 10-20 % in
#: 177Lu-PSMA absorbed dose, far less than between patients).
CLASS_CORRELATION = 0.8


def sample_kinetics(preset_or_name: KineticsPreset | str, rng: np.random.Generator,
                    regions: Mapping[str, float], *, regime: str = "homogeneous",
                    heterogeneity: float | None = None, sites: Mapping[str, str] | None = None,
                    blood_volume_ml: float | None = None,
                    body_volume_ml: float = REFERENCE_BODY_VOLUME_ML) -> PatientKinetics:
    """Draw one patient's kinetics for both agents from the population model.

    Parameters
    ----------
    preset_or_name : KineticsPreset or {'psma', 'sstr'}
        Population model (:func:`~theradose.phantoms._kinetics_params.preset`).
    rng : numpy.random.Generator
        Source of randomness; the draws do not depend on the order of ``regions`` (regions are
        visited in sorted order) nor on ``regime``.
    regions : mapping of str to float
        Region name → volume in mL (> 0). Names map to kinetic classes with
        :func:`~theradose.phantoms._kinetics_params.kinetic_class`; unknown names take the
        rest-of-body class. ``body`` (if listed) holds the blood not in other listed regions.
        Air-filled lumens (class ``air``, e.g. ``trachea``) are gas: they hold no tissue, no
        blood and no activity at any time, and their volume is not tissue volume.
    regime : {'homogeneous', 'heterogeneous'}
        Xue et al. 2024 regimes (module docstring).
    heterogeneity : float in [0, 1], optional
        Strength of the heterogeneous regime (default 0.4); only for ``heterogeneous``.
    sites : mapping of str to str, optional
        Lesion name → site (``liver``, ``bone``, ``lymph_node``, ``prostate_bed``). Without it a
        site named inside the lesion name (``lesion_3_bone``) is used, else ``lymph_node``.
    blood_volume_ml : float, optional
        Total blood volume, mL (default: the preset's, ICRP-89 male 5300 mL).
    body_volume_ml : float
        Whole-body volume, mL; the part not covered by ``regions`` is an unlisted remainder
        with rest-of-body kinetics, so the blood curve does not depend on which regions are
        listed.

    Returns
    -------
    PatientKinetics

    Raises
    ------
    InputError
        Bad preset, rng, regions, regime, heterogeneity, sites or volumes (one-line message
        naming the argument).
    """
    pre = preset(preset_or_name) if isinstance(preset_or_name, str) else preset_or_name
    if not isinstance(pre, KineticsPreset):
        raise InputError(f"must be a KineticsPreset or a preset name, got "
                         f"{type(preset_or_name).__name__}", field="preset")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                         f"{type(rng).__name__}", field="rng")
    if regime not in _REGIMES:
        raise InputError(f"got {regime!r}; accepted: {', '.join(_REGIMES)}", field="regime")
    if regime == "homogeneous":
        if heterogeneity not in (None, 0, 0.0):
            raise InputError(f"heterogeneity={heterogeneity!r} applies to the heterogeneous "
                             "regime only; pass regime='heterogeneous'", field="heterogeneity")
        h = 0.0
    else:
        h = DEFAULT_HETEROGENEITY if heterogeneity is None else heterogeneity
        if not (isinstance(h, (int, float)) and 0.0 <= h <= 1.0):
            raise InputError(f"must be a number in [0, 1], got {heterogeneity!r}",
                             field="heterogeneity")
        h = float(h)
    vols = _check_regions(regions)
    vb = pre.blood_volume_ml if blood_volume_ml is None else blood_volume_ml
    for name, v in (("blood_volume_ml", vb), ("body_volume_ml", body_volume_ml)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InputError(f"must be a positive number of mL, got {v!r}", field=name)
    site_of = _lesion_sites(vols, sites, pre)

    # Patient-level draws (fixed order and count: reproducible across regimes).
    z_cl = rng.standard_normal(2)
    order = sorted(vols)
    z = {n: rng.standard_normal(11) for n in order}
    z_un = rng.standard_normal(8)
    # Regions of one kinetic class (left/right kidney cortex, the four salivary glands, ...)
    # share a class component: their parameters correlate with CLASS_CORRELATION, so bilateral
    # organs get similar (not identical) kinetics. Lesions vary independently.
    # (air regions still take their z draw above, so that adding or renaming a gas region
    # never shifts the draws of the tissue regions; they have no class component)
    classes = sorted({kinetic_class(n) for n in order} - {"lesion", "air"})
    z_class = {c: rng.standard_normal(11) for c in classes}
    c_w = math.sqrt(CLASS_CORRELATION)
    for n in order:
        cls = kinetic_class(n)
        if cls in z_class:
            z[n] = c_w * z_class[cls] + math.sqrt(1.0 - CLASS_CORRELATION) * z[n]
    rho = pre.agent_correlation

    def therapy_z(zz: np.ndarray) -> np.ndarray:
        return rho * zz[:4] + math.sqrt(1.0 - rho**2) * zz[4:8]

    # Blood shares of the listed regions.
    share: dict[str, float] = {}
    for n in order:
        cls = kinetic_class(n)
        if n == "body":
            continue
        if cls == "blood":
            share[n] = vols[n] / vb
        elif cls in ("bladder", "air"):
            share[n] = 0.0
        else:
            share[n] = pre.therapeutic.classes[cls].blood_fraction * vols[n] / vb
    total = sum(share.values())
    if total > 1.0:
        warnings.warn(f"listed regions hold {total * vb:.0f} mL of blood, more than the blood "
                      f"volume {vb:.0f} mL; vascular shares scaled down", TheradoseWarning,
                      stacklevel=2)
        share = {k: v / total for k, v in share.items()}
        total = 1.0
    rest = max(1.0 - total, 0.0)
    if "body" in vols:
        share["body"] = rest
        rest = 0.0
    # the body volume is a mass / density: gas lumens are not part of it
    tissue_ml = sum(v for n, v in vols.items() if kinetic_class(n) != "air")
    unlisted_volume = max(body_volume_ml - tissue_ml, 0.0)

    agents = {}
    for role in ROLES:
        ap = pre.agent(role)
        zc = z_cl[0] if role == "diagnostic" else rho * z_cl[0] + math.sqrt(1 - rho**2) * z_cl[1]
        regs = []
        for n in order:
            cls = kinetic_class(n)
            zz = z[n]
            if cls in ("blood", "bladder", "air"):
                regs.append(RegionKinetics(n, cls, vols[n], share[n], None))
                continue
            cp = ap.classes[cls]
            zr = zz[:4] if role == "diagnostic" else therapy_z(zz)
            k1, k2, k3, k4 = (p.at(float(x)) for p, x in zip((cp.K1, cp.k2, cp.k3, cp.k4), zr,
                                                             strict=True))
            if cls == "lesion":
                k1 *= pre.lesion_site_factor[site_of[n]]
            delta = pre.subtissue_contrast_sd * zz[8]
            k4f = (1.0, 1.0)
            if role == "therapeutic" and h > 0:
                # Non-proportional sub-tissues (Xue et al.): the therapy uptake contrast changes
                # magnitude (same sign) and the higher-uptake sub-tissue releases more slowly.
                delta = delta * math.exp(h * _K4_CONTRAST_SD * zz[9])
                e = -math.copysign(h * _K4_CONTRAST_SD * abs(zz[10]), delta)
                k4f = (math.exp(e / 2), math.exp(-e / 2))
            m = np.array([math.exp(delta / 2), math.exp(-delta / 2)])
            m = m / (0.5 * m.sum())
            subs = tuple(SubTissueRates(k1 * m[j], k2, k3, k4 * k4f[j]) for j in (0, 1))
            regs.append(RegionKinetics(n, cls, vols[n], share[n], subs,
                                       site=site_of.get(n)))
        rp = ap.classes["rest"]
        zr = z_un[:4] if role == "diagnostic" else rho * z_un[:4] + math.sqrt(1 - rho**2) * \
            z_un[4:]
        un = SubTissueRates(*(p.at(float(x)) for p, x in zip((rp.K1, rp.k2, rp.k3, rp.k4), zr,
                                                             strict=True)))
        agents[role] = AgentKinetics(
            role, ap.name, ap.nuclide, float(vb), ap.renal_clearance_ml_per_h.at(float(zc)),
            math.log(2.0) / pre.voiding_half_time_h, tuple(regs), unlisted_volume, un, rest)
    return PatientKinetics(pre.name, regime, h, 1.0 - h, agents["diagnostic"],
                           agents["therapeutic"])


def _check_regions(regions: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(regions, Mapping) or not regions:
        raise InputError(f"must be a non-empty mapping of region name to volume in mL, got "
                         f"{type(regions).__name__}", field="regions")
    out = {}
    for n, v in regions.items():
        if not isinstance(n, str) or n in (UNLISTED, VOIDED):
            raise InputError(f"region name {n!r} is not a string or is reserved "
                             f"({UNLISTED!r}, {VOIDED!r})", field="regions")
        try:
            fv = float(v)
        except (TypeError, ValueError):
            fv = math.nan
        if not (math.isfinite(fv) and fv > 0):
            raise InputError(f"volume of {n!r} must be a positive number of mL, got {v!r}",
                             field="regions")
        out[n] = fv
    return out


def _lesion_sites(vols: Mapping[str, float], sites: Mapping[str, str] | None,
                  pre: KineticsPreset) -> dict[str, str]:
    known = tuple(pre.lesion_site_factor)
    out = {}
    for n in vols:
        if kinetic_class(n) != "lesion":
            continue
        if sites is not None and n in sites:
            s = sites[n]
        else:
            s = next((k for k in known if k in n), "lymph_node")
        if s not in pre.lesion_site_factor:
            raise InputError(f"lesion {n!r} has site {s!r}; accepted: {', '.join(known)}",
                             field="sites")
        out[n] = s
    return out


def _times(t_h) -> np.ndarray:
    try:
        t = np.asarray(t_h, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"must be a number or an array of hours, got {t_h!r}",
                         field="t_h") from None
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InputError(f"times must be finite and >= 0 h, got {np.ravel(t)[:5].tolist()}",
                         field="t_h")
    return t


# ---------------------------------------------------------------------------- voxel maps
def _gaussian_field(shape: tuple[int, int, int], sigma_vox: tuple[float, float, float],
                    rng: np.random.Generator) -> np.ndarray:
    """Unit-variance smooth Gaussian field: filtered white noise.

    For smoothing lengths above 2 voxels the noise is drawn and filtered on a grid coarser by
    ``f = floor(σ/2)`` per axis and linearly interpolated back (the field is smooth on that
    scale), which makes a 16-million-voxel field ~10x cheaper.
    """
    f = tuple(max(1, int(sg // 2)) for sg in sigma_vox)
    coarse = tuple(-(-n // k) + 1 for n, k in zip(shape, f, strict=True))
    noise = rng.standard_normal(coarse, dtype=np.float32)
    field_c = gaussian_filter(noise, tuple(sg / k for sg, k in zip(sigma_vox, f, strict=True)),
                              mode="wrap")
    if f != (1, 1, 1):
        field_c = zoom(field_c, f, order=1, grid_mode=False)
    out = np.ascontiguousarray(field_c[: shape[0], : shape[1], : shape[2]])
    sd = float(out.ravel()[::7].std(dtype=np.float64))
    out /= sd if sd > 0 else 1.0
    return out


def _balanced(z: np.ndarray, labels: LabelMap) -> np.ndarray:
    """Φ(z - b_region) with b chosen per region so each region's mean share is 0.5 (± 1e-4).

    The kinetics give each sub-tissue half of the region volume; balancing the field makes the
    voxel pattern's sign follow the sub-tissue contrast. ``b`` is found by Newton iterations
    (``d mean Φ / db = -mean φ``) on per-region histograms of ``z`` (2048 bins on [-8, 8]), so
    the cost is two passes over the grid.
    """
    nb = 2048
    lab = labels.array.ravel()
    zf = z.ravel()
    n_lab = int(lab.max()) + 1
    bins = np.clip(((zf + 8.0) * (nb / 16.0)).astype(np.int64), 0, nb - 1)
    hist = np.bincount(lab.astype(np.int64) * nb + bins, minlength=n_lab * nb)
    hist = hist.reshape(n_lab, nb).astype(np.float64)
    counts = np.maximum(hist.sum(axis=1), 1.0)
    centres = -8.0 + (np.arange(nb) + 0.5) * (16.0 / nb)
    b = (hist * centres).sum(axis=1) / counts
    for _ in range(50):
        x = centres[None, :] - b[:, None]
        f = (hist * ndtr(x)).sum(axis=1) / counts - 0.5
        d = (hist * np.exp(-0.5 * x * x)).sum(axis=1) / counts / math.sqrt(2.0 * math.pi)
        b = b + np.where(d > 1e-300, f / np.maximum(d, 1e-300), 0.0)
        if np.max(np.abs(f)) < 1e-10:
            break
    b[0] = 0.0  # background keeps the plain Φ(z)
    return ndtr(zf - b.astype(np.float32)[lab]).reshape(z.shape).astype(np.float32)


def _check_labels(labels: LabelMap) -> None:
    if not isinstance(labels, LabelMap):
        raise InputError(f"must be a theradose.volume.LabelMap, got {type(labels).__name__}",
                         field="labels")


def _sigma_vox(labels: LabelMap, correlation_mm: float) -> tuple[float, float, float]:
    if not (isinstance(correlation_mm, (int, float)) and math.isfinite(correlation_mm)
            and correlation_mm > 0):
        raise InputError(f"must be a positive length in mm, got {correlation_mm!r}",
                         field="correlation_mm")
    sx, sy, sz = labels.geometry.spacing_mm
    return (correlation_mm / sz, correlation_mm / sy, correlation_mm / sx)


def subtissue_weights(labels: LabelMap, rng: np.random.Generator, *,
                      correlation_mm: float = 15.0) -> np.ndarray:
    """Share of sub-tissue 0 in each voxel: a smooth Gaussian random field mapped to [0, 1].

    White noise is smoothed with a Gaussian of standard deviation ``correlation_mm`` (per axis
    in voxels from the spacing; the field's autocorrelation is Gaussian with σ·√2), scaled to
    unit variance and mapped through the standard-normal CDF Φ after a per-region shift, so
    values lie in (0, 1) and each labelled region's mean is exactly 0.5 (the sub-tissue volume
    shares of the kinetics). Sub-tissue 1 has share ``1 - w``.

    Parameters
    ----------
    labels : LabelMap
        Grid of the patient.
    rng : numpy.random.Generator
        Source of randomness.
    correlation_mm : float
        Smoothing length, mm (> 0).

    Returns
    -------
    (Z, Y, X) ndarray of float32
        Values in [0, 1].
    """
    _check_labels(labels)
    sig = _sigma_vox(labels, correlation_mm)
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"must be a numpy.random.Generator, got {type(rng).__name__}",
                         field="rng")
    return _balanced(_gaussian_field(labels.shape, sig, rng), labels)


def agent_subtissue_weights(labels: LabelMap, rng: np.random.Generator,
                            kinetics: PatientKinetics, *,
                            correlation_mm: float = 15.0) -> dict[str, np.ndarray]:
    """Sub-tissue mixing fields of the two agents (``{"diagnostic": w_d, "therapeutic": w_t}``).

    The underlying Gaussian fields correlate with ``ρ = kinetics.weight_correlation``
    (``z_t = ρ z_d + sqrt(1 - ρ²) z'``): identical arrays in the homogeneous regime, partly
    different "sub-tissue types" for the two agents in the heterogeneous regime.

    Returns
    -------
    dict of str to (Z, Y, X) float32 ndarray
        Values in [0, 1]; pass the dict as ``weights`` to :func:`activity_map`/:func:`tia_map`.
    """
    _check_labels(labels)
    sig = _sigma_vox(labels, correlation_mm)
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"must be a numpy.random.Generator, got {type(rng).__name__}",
                         field="rng")
    zd = _gaussian_field(labels.shape, sig, rng)
    rho = float(kinetics.weight_correlation)
    if rho >= 1.0:
        w = _balanced(zd, labels)
        return {"diagnostic": w, "therapeutic": w.copy()}
    z2 = _gaussian_field(labels.shape, sig, rng)
    zt = rho * zd + math.sqrt(1.0 - rho**2) * z2
    return {"diagnostic": _balanced(zd, labels), "therapeutic": _balanced(zt, labels)}


def _weights_for(weights, labels: LabelMap, role: str) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        if role not in weights:
            raise InputError(f"weights has no entry {role!r}; keys: {sorted(weights)}",
                             field="weights")
        weights = weights[role]
    w = np.asarray(weights)
    if w.shape != labels.shape:
        raise InputError(f"weights shape {w.shape} does not match labels {labels.shape}",
                         field="weights")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.max() > 1:
        raise InputError("weights must be finite and in [0, 1]", field="weights")
    return w.astype(np.float64, copy=False)


def _distribute(labels: LabelMap, weights, kinetics: PatientKinetics, agent: str,
                values: dict[str, tuple[float, float, float]]) -> np.ndarray:
    """Spread per-region (sub-tissue 0, sub-tissue 1, uniform) totals over the voxels."""
    a = kinetics.agent(agent)
    w = _weights_for(weights, labels, a.role)
    lab = labels.array
    n_lab = int(lab.max()) + 1 if lab.size else 1
    known = set(kinetics.regions)
    missing = sorted(n for n in labels.names.values() if n not in known)
    if missing:
        raise InputError(f"label names without kinetics: {missing}; include them in the "
                         "regions passed to sample_kinetics", field="labels")
    counts = np.bincount(lab.ravel(), minlength=n_lab).astype(np.float64)
    v0, v1, vu = np.zeros(n_lab), np.zeros(n_lab), np.zeros(n_lab)
    for value, name in labels.names.items():
        if value >= n_lab or counts[value] == 0:
            warnings.warn(f"region {name!r} has no voxels; its activity is not placed",
                          TheradoseWarning, stacklevel=3)
            continue
        v0[value], v1[value], vu[value] = values[name]
    if w is None:
        per = (v0 + v1 + vu) / np.maximum(counts, 1.0)
        out = per[lab]
    else:
        flat = lab.ravel()
        s0 = np.bincount(flat, weights=w.ravel(), minlength=n_lab)
        s1 = counts - s0
        # A region whose sub-tissue has zero total weight gets that sub-tissue uniformly.
        uni0, uni1 = s0 <= 0, s1 <= 0
        vu = vu + np.where(uni0, v0, 0.0) + np.where(uni1, v1, 0.0)
        c0 = np.where(uni0, 0.0, v0 / np.where(uni0, 1.0, s0))
        c1 = np.where(uni1, 0.0, v1 / np.where(uni1, 1.0, s1))
        cu = vu / np.maximum(counts, 1.0)
        out = c0[lab] * w + c1[lab] * (1.0 - w) + cu[lab]
    out = np.asarray(out, dtype=np.float64)
    out[lab == 0] = 0.0
    return out


def _region_values(kinetics: PatientKinetics, agent: str, labels: LabelMap,
                   f) -> dict[str, tuple[float, float, float]]:
    a = kinetics.agent(agent)
    out = {}
    for name in labels.names.values():
        if name not in a._parts:
            continue
        t0, t1, uni = a._parts[name]
        cls = next(r.kinetic_class for r in a.regions if r.name == name)
        if cls == "air":
            out[name] = (0.0, 0.0, 0.0)
        elif cls in ("blood", "bladder"):
            out[name] = (0.0, 0.0, f(t0 + t1 + uni))
        else:
            out[name] = (f(t0), f(t1), f(uni))
    return out


def _check_a0(a0_mbq: float) -> float:
    if not (isinstance(a0_mbq, (int, float)) and math.isfinite(a0_mbq) and a0_mbq > 0):
        raise InputError(f"must be a positive activity in MBq, got {a0_mbq!r}", field="a0_mbq")
    return float(a0_mbq)


def activity_map(labels: LabelMap, weights, kinetics: PatientKinetics, t_h: float, *,
                 agent: str, a0_mbq: float, decay: bool = True) -> np.ndarray:
    """True activity per voxel at time ``t_h``, MBq.

    Each region's sub-tissue-0 tissue activity is spread over its voxels in proportion to
    ``w``, sub-tissue 1 in proportion to ``1 - w``, and its vascular blood (and, for blood
    pools and the bladder, everything) uniformly, so the map sums exactly to
    ``Σ_regions fraction(region, t) × a0_mbq``.

    Parameters
    ----------
    labels : LabelMap
        Regions (every name must be a region of ``kinetics``).
    weights : (Z, Y, X) ndarray in [0, 1], dict of role to such arrays, or None
        Share of sub-tissue 0 per voxel (:func:`subtissue_weights`,
        :func:`agent_subtissue_weights`); None: uniform within each region.
    kinetics : PatientKinetics
    t_h : float
        Time after injection, h (≥ 0).
    agent : str
        ``"diagnostic"``, ``"therapeutic"`` or the agent's name.
    a0_mbq : float
        Injected activity, MBq.
    decay : bool
        Apply physical decay.

    Returns
    -------
    (Z, Y, X) ndarray of float64
        MBq per voxel (0 outside labels).
    """
    _check_labels(labels)
    a0 = _check_a0(a0_mbq)
    t = _times(t_h)
    if t.ndim != 0:
        raise InputError(f"must be one time in h, got shape {t.shape}", field="t_h")
    a = kinetics.agent(agent)
    lam = a.decay_constant_per_h if decay else 0.0
    vals = _region_values(kinetics, agent, labels, lambda f: float(f(t, lam)) * a0)
    return _distribute(labels, weights, kinetics, agent, vals)


def tia_map(labels: LabelMap, weights, kinetics: PatientKinetics, *, agent: str,
            a0_mbq: float) -> np.ndarray:
    """True time-integrated activity (0..∞, with decay) per voxel, MBq·h.

    Same distribution rule as :func:`activity_map`; the map sums exactly to
    ``Σ_regions tia_h(region) × a0_mbq``.

    Returns
    -------
    (Z, Y, X) ndarray of float64
        MBq·h per voxel.
    """
    _check_labels(labels)
    a0 = _check_a0(a0_mbq)
    a = kinetics.agent(agent)
    lam = a.decay_constant_per_h
    vals = _region_values(kinetics, agent, labels, lambda f: f.integral(lam) * a0)
    return _distribute(labels, weights, kinetics, agent, vals)
