"""Alpha emitters (Ac-225, Pb-212, Ra-223, ...): chain members, daughter redistribution, RBE.

**Chain members.** The TIA map ``Ã_p`` is that of the parent. Member ``i`` of the decay chain
(:func:`theradose.nuclides.decay_chain`) decays ``c_i · Σ_j b_ji · r_j`` times per parent decay,
``r_parent = 1``, summed over the members ``j`` that feed it with branching fraction ``b_ji``:

* ``ratio="equilibrium"`` (default): ``c_i = λ_i / (λ_i − λ_p)``, the Bateman (transient or
  secular) equilibrium activity ratio — the convention of
  :func:`theradose.nuclides.equilibrium_energy_per_decay` and of
  :func:`~theradose.dose.mc._emission.emission_spectrum` with ``chain=True``; right when the
  members are in equilibrium with the parent during the whole integration;
* ``ratio="branching"``: ``c_i = 1``, each atom formed decays once, so member ``i`` decays
  (branching fraction) times per parent decay: right for a parent integrated to infinity with no
  progeny at administration (e.g. Bi-212 of Pb-212: 1.0 instead of the equilibrium 1.105).

**Redistribution.** A :class:`Redistribution` says that a fraction ``f`` of the atoms of a
member formed at the parent's site leave it (α-recoil energy ≈ 100 keV breaks any chelate bond:
the Fr-221, At-217 and Bi-213 of Ac-225, Kruijff et al. 2015, de Kruijff et al. 2019; Bi-212
released from Pb-212 conjugates, ≈ 36 %, Mirzadeh et al. 1993) and decay — they and all their
progeny — elsewhere: in a VOI, uniformly by mass (``target="kidneys"`` or a mask), uniformly by
mass over the body (``"whole_body"``: voxels with density ≥ ``body_threshold_g_cm3``), or outside
the image (``"outside"``: excreted, out of the field of view; counted, no dose). With the
released fractions ``f_i`` (0 for members without a rule) the recursion is applied twice:

    L_i = (1 − f_i) · c_i · Σ_j b_ji L_j                       (decays at the parent's site)
    T^s_i = c_i · Σ_j b_ji T^s_j + [i = member_s] f_i c_i Σ_j b_ji L_j   (decays at target s)

and ``L_i + Σ_s T^s_i = r_i`` exactly (same linear recursion, same start), so redistribution
conserves the decays of every member. Per-member TIA maps are ``L_i·Ã_p(v) + Σ_s T^s_i·ΣÃ_p·
w_s(v)`` with ``w_s`` the target's mass weights (Σ w = 1). A rule downstream of another applies
only to atoms still at the parent's site. The parent itself cannot be redistributed (its
distribution is what the TIA map measures).

**Dose.** Alpha (with recoil) and electron energy is absorbed in the emitting voxel (CSDA ranges
of 5-9 MeV alphas are 40-90 µm, of the betas at most a few mm); photons are absorbed locally,
ignored, or convolved with a photon-only voxel S-value kernel per member (density-corrected, as
in :class:`~theradose.dose._led.LocalDepositionEngine`). In gas voxels (``ρ <
cavity_density_g_cm3``, default 0.05 g/cm³) alphas (3-5 cm in air) and electrons cross the voxel:
the local term there is the Bragg–Gray cavity dose ``s_air,water ×`` the value at 1 g/cm³, and
the photon kernel dose is scaled by the air/water kerma ratio instead of ``ρ_k/ρ``
(:mod:`theradose.dose._scaling`; the electron stopping-power ratio of the parent, 0.88, stands
for the alphas'). The RBE-weighted dose is
``D_RBE = RBE_α · D_α + D_e + D_γ`` with RBE_α = 5 for deterministic effects by default
(MIRD Pamphlet No. 22).

**Uncertainty.** The dose is linear in the TIA: ``D(v) = A(v)·Ã(v) + f(v)·(Ã * K_L)(v) +
G(v)·ΣÃ`` with the local coefficient A, the photon kernel of the members at the parent's site
K_L, and G the redistributed dose per MBq·h of parent. For independent voxel errors the exact
variance is ``σ_v²(A² + 2A f K_L(0) + 2AG) + f²(σ² * K_L²) + 2fG(σ² * K_L) + G²Σσ²``; VOI means
are propagated exactly the same way (``M·D̄ = Σ_u Ã(u) h(u)``).

References
----------
Sgouros G, Roeske JC, McDevitt MR, et al. MIRD Pamphlet No. 22 (abridged): radiobiology and
dosimetry of α-particle emitters for targeted radionuclide therapy. J Nucl Med
2010;51(2):311-328. doi:10.2967/jnumed.108.058651
Kruijff RM de, Wolterbeek HT, Denkova AG. A critical review of alpha radionuclide therapy—how to
deal with recoiling daughters? Pharmaceuticals 2015;8(2):321-336. doi:10.3390/ph8020321
Kruijff RM de, Raavé R, Kip A, et al. The in vivo fate of 225Ac daughter nuclides using
polymersomes as a model carrier. Sci Rep 2019;9:11671. doi:10.1038/s41598-019-48298-8
Mirzadeh S, Kumar K, Gansow OA. The chemical fate of 212Bi-DOTA formed by β⁻ decay of
212Pb(DOTA)2⁻. Radiochim Acta 1993;60(1):1-10. doi:10.1524/ract.1993.60.1.1
Bateman H. Proc Camb Philos Soc 1910;15:423-427.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose.dose._convolution import (
    GY_PER_MBQH_PER_S_UNIT,
    FFTConvolver,
    _kernel_summary,
    _version,
    resolve_kernel,
)
from theradose.dose._engine import (
    DECAYS_PER_MBQ_H,
    DoseEngine,
    PreparedInputs,
    available_engines,
    check_fft_options,
    dose_volume,
    prepare_inputs,
    register_engine,
)
from theradose.dose._media import get_medium
from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose._result import DoseResult, VOIDose, summarise_vois
from theradose.dose._scaling import (
    DEFAULT_CAVITY_DENSITY_G_CM3,
    check_cavity_density,
    density_scaling,
)
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.errors import InputError
from theradose.nuclides import Nuclide, data_source, decay_chain, get_nuclide
from theradose.nuclides._chain import _rd_decay
from theradose.volume import LabelMap, Volume

__all__ = [
    "DEFAULT_RBE_ALPHA",
    "AlphaDoseEngine",
    "AlphaDoseResult",
    "ChainTIA",
    "Redistribution",
    "alpha_dose",
    "chain_coefficients",
    "member_tia_maps",
]

#: RBE of alpha particles for deterministic effects recommended by MIRD Pamphlet No. 22
#: (Sgouros et al. 2010, doi:10.2967/jnumed.108.058651).
DEFAULT_RBE_ALPHA = 5.0

_RATIOS = ("equilibrium", "branching")
_PHOTONS = ("local", "ignore", "kernel")
_QUANTITIES = ("absorbed", "rbe_weighted")
_SPECIAL_TARGETS = ("whole_body", "outside")
_CLASSES = ("alpha", "electron", "photon")


# ---------------------------------------------------------------------------- redistribution
@dataclass(frozen=True, eq=False)
class Redistribution:
    """A fraction of a chain member's atoms decays away from the parent's site.

    Parameters
    ----------
    member : str
        Chain member whose atoms leave (with all their progeny), e.g. ``"Fr-221"`` or
        ``"Bi-213"`` for Ac-225, ``"Bi-212"`` for Pb-212. Not the parent.
    fraction : float
        Fraction (0-1) of the member's atoms formed at the parent's site that leave.
    target : str, (Z, Y, X) bool ndarray, or LabelMap/Volume mask
        ``"whole_body"`` (uniform per gram over voxels of density ≥ the body threshold),
        ``"outside"`` (decays outside the image: no dose), the name of a VOI of the ``labels``
        given to the engine, or a mask (non-zero voxels) on the TIA grid; uniform per gram.
    note : str
        Free text (e.g. the source of the fraction), kept in the provenance.

    Examples
    --------
    >>> Redistribution("Bi-213", 0.3, "kidneys").fraction
    0.3
    """

    member: str
    fraction: float
    target: Any = "whole_body"
    note: str = ""

    def __post_init__(self) -> None:
        try:
            f = float(self.fraction)
        except (TypeError, ValueError):
            f = float("nan")
        if not math.isfinite(f) or not 0.0 <= f <= 1.0:
            raise InputError(f"fraction must be a number in [0, 1], got {self.fraction!r}",
                             field="redistribution.fraction")
        object.__setattr__(self, "fraction", f)
        t = self.target
        if isinstance(t, str):
            if not t.strip():
                raise InputError("target must not be empty; accepted: 'whole_body', "
                                 "'outside', a VOI name or a mask", field="redistribution.target")
        elif not isinstance(t, (np.ndarray, Volume)):
            raise InputError(f"target must be 'whole_body', 'outside', a VOI name, a bool "
                             f"array or a mask Volume, got {type(t).__name__}",
                             field="redistribution.target")

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (masks are named ``"mask"``)."""
        t = self.target if isinstance(self.target, str) else "mask"
        return {"member": self.member, "fraction": self.fraction, "target": t,
                "note": self.note}


def _as_rules(redistribution: Redistribution | Sequence[Redistribution] | None
              ) -> tuple[Redistribution, ...]:
    if redistribution is None:
        return ()
    if isinstance(redistribution, Redistribution):
        return (redistribution,)
    if isinstance(redistribution, (str, bytes)) or not isinstance(redistribution, Sequence):
        raise InputError(f"expected a Redistribution or a list of them, got "
                         f"{type(redistribution).__name__}", field="redistribution")
    for i, r in enumerate(redistribution):
        if not isinstance(r, Redistribution):
            raise InputError(f"expected a Redistribution, got {type(r).__name__}",
                             field=f"redistribution[{i}]")
    return tuple(redistribution)


def chain_coefficients(nuclide: str | Nuclide,
                       redistribution: Redistribution | Sequence[Redistribution] | None = None,
                       *, ratio: str = "equilibrium"
                       ) -> tuple[list[str], dict[str, float], list[dict[str, float]]]:
    """Decays of each chain member per parent decay, at the parent's site and at each target.

    Parameters
    ----------
    nuclide : str or Nuclide
        Parent.
    redistribution : Redistribution or sequence of them, optional
        Release rules (module docstring).
    ratio : {"equilibrium", "branching"}
        Bateman equilibrium activity ratios or branching fractions (module docstring).

    Returns
    -------
    members : list of str
        Chain members, parent first (:func:`theradose.nuclides.decay_chain`).
    local : dict of str to float
        ``L_i``: decays of member i at the parent's site per parent decay.
    moved : list of dict of str to float
        ``T^s_i`` per rule s: decays of member i at the rule's target per parent decay.

    Raises
    ------
    InputError
        Unknown ``ratio``; a rule's member not in the chain, the parent, or named twice.

    Examples
    --------
    >>> m, loc, mv = chain_coefficients("Pb-212", ratio="branching")
    >>> round(loc["Po-212"], 4), round(loc["Tl-208"], 4)
    (0.6406, 0.3594)
    """
    if ratio not in _RATIOS:
        raise InputError(f"unknown ratio {ratio!r}; accepted: {list(_RATIOS)}", field="ratio")
    parent = get_nuclide(nuclide, field="nuclide")
    chain = decay_chain(parent)
    names = [m.nuclide for m in chain]
    rules = _as_rules(redistribution)
    release: dict[str, tuple[int, float]] = {}
    for i, r in enumerate(rules):
        try:
            name = get_nuclide(r.member, field=f"redistribution[{i}].member").name
        except InputError:
            name = str(r.member)
        if name not in names:
            raise InputError(f"{r.member!r} is not a member of the {parent.name} chain "
                             f"{names}", field=f"redistribution[{i}].member")
        if name == parent.name:
            raise InputError(f"the parent {parent.name} cannot be redistributed (its TIA map "
                             "is its distribution); name a daughter",
                             field=f"redistribution[{i}].member")
        if name in release:
            raise InputError(f"{name} has two redistribution rules; give one per member",
                             field=f"redistribution[{i}].member")
        release[name] = (i, r.fraction)
    lam_p = parent.decay_constant_per_h
    c = {}
    for m in chain[1:]:
        lam = math.log(2.0) / m.half_life_h
        c[m.nuclide] = lam / (lam - lam_p) if ratio == "equilibrium" else 1.0
    edges = [(j, d, b) for j in names for d, b in _rd_decay(j)[1] if d in names and b > 0]
    local = dict.fromkeys(names, 0.0)
    moved = [dict.fromkeys(names, 0.0) for _ in rules]
    local[parent.name] = 1.0
    for i in names[1:]:  # decay_chain returns a topological order
        feed_l = sum(b * local[j] for j, d, b in edges if d == i)
        k, f = release.get(i, (-1, 0.0))
        local[i] = (1.0 - f) * c[i] * feed_l
        for s, t in enumerate(moved):
            t[i] = c[i] * sum(b * t[j] for j, d, b in edges if d == i)
            if s == k:
                t[i] += f * c[i] * feed_l
    return names, local, moved


@dataclass(frozen=True, eq=False)
class ChainTIA:
    """Per-member TIA maps of a chain with redistribution.

    Attributes
    ----------
    parent : str
    maps : dict of str to Volume
        TIA of each member per voxel, ``MBq*h`` (decays / 3.6e9), on the parent's grid.
    outside_mbqh : dict of str to float
        Member TIA decaying outside the image (``target="outside"``), MBq·h.
    expected_total_mbqh : dict of str to float
        ``r_i · ΣÃ_p``: what the member maps plus ``outside_mbqh`` sum to.
    local : dict of str to float
        Decays per parent decay at the parent's site (:func:`chain_coefficients`).
    moved : list of dict
        Per rule, decays per parent decay at its target.
    weights : list of ndarray or None
        Per rule, the target mass weights (Σ = 1), None for ``"outside"``.
    ratio : str
    rules : tuple of Redistribution
    """

    parent: str
    maps: dict[str, Volume]
    outside_mbqh: dict[str, float]
    expected_total_mbqh: dict[str, float]
    local: dict[str, float]
    moved: list[dict[str, float]]
    weights: list[np.ndarray | None]
    ratio: str
    rules: tuple[Redistribution, ...]


def _target_weights(rule: Redistribution, i: int, mass_g: np.ndarray, rho: np.ndarray,
                    labels: LabelMap | None, tia: Volume,
                    body_threshold: float) -> np.ndarray | None:
    fld = f"redistribution[{i}].target"
    t = rule.target
    if isinstance(t, str) and t == "outside":
        return None
    if isinstance(t, str) and t == "whole_body":
        mask = rho >= body_threshold
    elif isinstance(t, str):
        if labels is None:
            raise InputError(f"target VOI {t!r} needs labels=; or use 'whole_body', 'outside' "
                             "or a mask", field=fld)
        if t not in labels.labels:
            raise InputError(f"no VOI named {t!r}; known: {sorted(labels.labels)} (or "
                             f"{list(_SPECIAL_TARGETS)})", field=fld)
        mask = labels.mask(t)
    else:
        if isinstance(t, Volume):
            try:
                tia.geometry.require_same(t.geometry, what="tia and target mask")
            except InputError as exc:
                raise InputError(exc.detail, field=fld) from None
            arr = np.asarray(t.array)
        else:
            arr = np.asarray(t)
        if arr.shape != tia.shape:
            raise InputError(f"mask shape {arr.shape} differs from the TIA shape {tia.shape}",
                             field=fld)
        mask = arr != 0
    w = np.where(mask, mass_g, 0.0)
    total = float(w.sum())
    if not total > 0:
        raise InputError(f"target of {rule.member} has no mass (no voxel, or zero density): "
                         "cannot place its decays there", field=fld)
    return w / total


def _member_maps(inp: PreparedInputs, rules: tuple[Redistribution, ...], ratio: str,
                 body_threshold: float) -> ChainTIA:
    names, local, moved = chain_coefficients(inp.nuclide, rules, ratio=ratio)
    _, full, _ = chain_coefficients(inp.nuclide, None, ratio=ratio)
    tia = np.asarray(inp.tia_mbqh, dtype=np.float64)
    total = float(tia.sum())
    mass, rho = inp.mass_g, inp.density
    weights = [_target_weights(r, i, mass, rho, inp.labels, inp.tia, body_threshold)
               for i, r in enumerate(rules)]
    maps, outside = {}, {}
    for n in names:
        arr = local[n] * tia
        out = 0.0
        for t, w in zip(moved, weights, strict=True):
            if w is None:
                out += t[n] * total
            elif t[n]:
                arr = arr + (t[n] * total) * w
        maps[n] = Volume(arr, inp.tia.geometry, unit="MBq*h", modality="OT",
                         acquisition_time=inp.tia.acquisition_time,
                         history=(*inp.tia.history, f"{n} TIA of the {inp.nuclide.name} chain "
                                  f"({ratio} ratios, {len(rules)} redistribution rules)"))
        outside[n] = out
    return ChainTIA(inp.nuclide.name, maps, outside, {n: full[n] * total for n in names},
                    local, moved, weights, ratio, rules)


def member_tia_maps(tia: Volume, nuclide: str | Nuclide, *, density: Volume | float = 1.0,
                    redistribution: Redistribution | Sequence[Redistribution] | None = None,
                    labels: LabelMap | None = None, ratio: str = "equilibrium",
                    body_threshold_g_cm3: float = 0.1) -> ChainTIA:
    """TIA maps of every chain member from the parent's TIA map (module docstring).

    Parameters
    ----------
    tia : Volume
        Parent TIA per voxel, ``MBq*h`` (``MBq*s``, ``Bq*h/mL`` converted), ``(Z, Y, X)``.
    nuclide : str or Nuclide
        Parent (e.g. ``"Ac-225"``).
    density : Volume or float
        g/cm³ on the TIA grid: target weights are by mass, and ``"whole_body"`` is the voxels
        with density ≥ ``body_threshold_g_cm3``.
    redistribution : Redistribution or sequence of them, optional
    labels : LabelMap, optional
        VOIs that targets may name.
    ratio : {"equilibrium", "branching"}
    body_threshold_g_cm3 : float
        Lowest density counted as body (default 0.1: lung at 0.26 is in, air at 0.0012 out).

    Returns
    -------
    ChainTIA
        For every member, ``maps[i].sum() + outside_mbqh[i] == expected_total_mbqh[i]``.
    """
    inp = prepare_inputs(tia, density, nuclide, labels=labels)
    return _member_maps(inp, _as_rules(redistribution), ratio,
                        _check_positive(body_threshold_g_cm3, "body_threshold_g_cm3"))


def _check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"must be a finite number > 0, got {value!r}", field=name)
    return v


# ---------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class AlphaDoseResult(DoseResult):
    """:class:`~theradose.dose._result.DoseResult` of the alpha engine, with its parts.

    Attributes
    ----------
    components : dict of str to Volume
        Absorbed dose (Gy) of ``"alpha"`` (with recoils), ``"electron"`` and ``"photon"``.
    rbe_weighted : Volume or None
        ``RBE_α·D_α + D_e + D_γ`` in Gy (RBE-weighted; None when ``rbe_alpha`` is None).
    absorbed : Volume
        Total absorbed dose, Gy (``dose`` is this or ``rbe_weighted``: see ``dose_quantity``).
    voi_components : dict of str to tuple of VOIDose
        Per-VOI absorbed dose of each component and of ``"rbe_weighted"`` / ``"absorbed"``
        (σ only for the quantity in ``dose``; NaN elsewhere).
    chain : ChainTIA
        Member TIA maps and the redistribution bookkeeping.
    """

    components: dict[str, Volume] = field(default_factory=dict)
    rbe_weighted: Volume | None = None
    absorbed: Volume | None = None
    voi_components: dict[str, tuple[VOIDose, ...]] = field(default_factory=dict)
    chain: ChainTIA | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; adds per-VOI components (``voi_components``)."""
        d = super().to_dict()
        d["voi_components"] = {k: [v.to_dict() for v in vs]
                               for k, vs in self.voi_components.items()}
        return d


# ---------------------------------------------------------------------------- engine
class AlphaDoseEngine(DoseEngine):
    """Dose of an alpha emitter and its chain, with daughter redistribution and RBE weighting.

    Parameters
    ----------
    redistribution : Redistribution or sequence of them, optional
        Release of daughters from the parent's site (module docstring); None: all members
        decay where the parent does.
    rbe_alpha : float or None
        RBE of alphas for the RBE-weighted dose (default 5, MIRD Pamphlet 22, deterministic
        effects); None: no RBE-weighted dose.
    photons : {"local", "ignore", "kernel"}
        Photon energy absorbed locally, left out, or convolved with per-member photon voxel
        S-value kernels.
    dose_quantity : {"absorbed", "rbe_weighted"}
        What :attr:`DoseResult.dose` holds (the other is in the result's extra fields).
    ratio : {"equilibrium", "branching"}
        Decays of each member per parent decay (module docstring).
    photon_kernels : mapping of str to VoxelKernel, optional
        Photon-only kernels by member name (voxel size of the image); missing members with
        photon emissions are generated by :func:`theradose.dose._vsv.voxel_s_values`.
    photon_medium : str
        Medium of generated kernels.
    vsv_options : mapping, optional
        Options of ``voxel_s_values``.
    density_correction : bool
        Photon kernel dose × ρ_kernel/ρ(v) (× the air/water kerma ratio in gas).
    cavity_density_g_cm3 : float or None
        Gas threshold, g/cm³ (default 0.05, -950 HU): below it the local and photon terms use
        the gas rules of the module docstring. None: ``Δ/m`` and ``ρ_k/ρ`` at any density.
    body_threshold_g_cm3 : float
        Lowest density of the ``"whole_body"`` target.
    precision : {"float32", "float64"}
    workers : int
        FFT precision and threads.

    Examples
    --------
    >>> AlphaDoseEngine(photons="ignore").name
    'alpha'
    """

    name = "alpha"

    def __init__(self, redistribution: Redistribution | Sequence[Redistribution] | None = None,
                 rbe_alpha: float | None = DEFAULT_RBE_ALPHA, photons: str = "local", *,
                 dose_quantity: str = "absorbed", ratio: str = "equilibrium",
                 photon_kernels: Mapping[str, VoxelKernel] | None = None,
                 photon_medium: str = "water", vsv_options: Mapping[str, Any] | None = None,
                 density_correction: bool = True, body_threshold_g_cm3: float = 0.1,
                 cavity_density_g_cm3: float | None = DEFAULT_CAVITY_DENSITY_G_CM3,
                 precision: str = "float32", workers: int = 2) -> None:
        self.redistribution = _as_rules(redistribution)
        if rbe_alpha is not None:
            rbe_alpha = _check_positive(rbe_alpha, "rbe_alpha")
        self.rbe_alpha = rbe_alpha
        if photons not in _PHOTONS:
            raise InputError(f"unknown photons mode {photons!r}; accepted: {list(_PHOTONS)}",
                             field="photons")
        self.photons = photons
        if dose_quantity not in _QUANTITIES:
            raise InputError(f"unknown dose_quantity {dose_quantity!r}; accepted: "
                             f"{list(_QUANTITIES)}", field="dose_quantity")
        if dose_quantity == "rbe_weighted" and rbe_alpha is None:
            raise InputError("dose_quantity='rbe_weighted' needs rbe_alpha (got None)",
                             field="dose_quantity")
        self.dose_quantity = dose_quantity
        if ratio not in _RATIOS:
            raise InputError(f"unknown ratio {ratio!r}; accepted: {list(_RATIOS)}",
                             field="ratio")
        self.ratio = ratio
        if photon_kernels is not None:
            if not isinstance(photon_kernels, Mapping):
                raise InputError(f"expected a mapping member -> VoxelKernel, got "
                                 f"{type(photon_kernels).__name__}", field="photon_kernels")
            for k, v in photon_kernels.items():
                if not isinstance(v, VoxelKernel) or tuple(v.classes) != ("photon",):
                    raise InputError("expected a photon-only VoxelKernel (classes=('photon',))",
                                     field=f"photon_kernels[{k!r}]")
            if photons != "kernel":
                raise InputError(f"photon_kernels are only used with photons='kernel', got "
                                 f"photons={photons!r}", field="photon_kernels")
        self.photon_kernels = dict(photon_kernels or {})
        self.photon_medium = get_medium(photon_medium).name
        if vsv_options is not None and not isinstance(vsv_options, Mapping):
            raise InputError(f"expected a mapping of voxel_s_values options, got "
                             f"{vsv_options!r}", field="vsv_options")
        self.vsv_options = dict(vsv_options or {})
        self.density_correction = bool(density_correction)
        self.body_threshold_g_cm3 = _check_positive(body_threshold_g_cm3,
                                                    "body_threshold_g_cm3")
        self.precision, self.workers = check_fft_options(precision, workers)
        self.cavity_density_g_cm3 = check_cavity_density(cavity_density_g_cm3)

    def options(self) -> dict[str, Any]:
        """Constructor options (JSON-ready)."""
        return {"redistribution": [r.describe() for r in self.redistribution],
                "rbe_alpha": self.rbe_alpha, "photons": self.photons,
                "dose_quantity": self.dose_quantity, "ratio": self.ratio,
                "photon_kernels": sorted(self.photon_kernels), "photon_medium":
                self.photon_medium, "density_correction": self.density_correction,
                "body_threshold_g_cm3": self.body_threshold_g_cm3,
                "cavity_density_g_cm3": self.cavity_density_g_cm3,
                "precision": self.precision}

    # ------------------------------------------------------------------ kernels
    def _kernels(self, inp: PreparedInputs, members: Sequence[str]) -> dict[str, VoxelKernel]:
        out = {}
        for n in members:
            nuc = get_nuclide(n)
            if nuc.energy_per_decay_kev.photon <= 0:
                continue
            given = None
            for key, k in self.photon_kernels.items():
                if get_nuclide(key, field=f"photon_kernels[{key!r}]").name == n:
                    given = k
            out[n] = resolve_kernel(given, nuc, inp.spacing_mm, self.photon_medium,
                                    ("photon",), field=f"photon_kernels[{n!r}]",
                                    options=self.vsv_options)
        return out

    # ------------------------------------------------------------------ compute
    def compute(self, tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                labels: LabelMap | None = None,
                tia_sigma: Volume | None = None) -> AlphaDoseResult:
        """Absorbed (and RBE-weighted) dose of the chain (see :meth:`DoseEngine.compute`).

        Returns
        -------
        AlphaDoseResult
            ``dose`` in Gy (absorbed, or RBE-weighted with ``dose_quantity="rbe_weighted"``),
            its σ, per-VOI values, components, member TIA maps; the provenance holds the energy
            per parent decay by class at the parent's site and per rule.
        """
        inp = prepare_inputs(tia, density, nuclide, labels=labels, tia_sigma=tia_sigma)
        chain = _member_maps(inp, self.redistribution, self.ratio, self.body_threshold_g_cm3)
        names = list(chain.maps)
        e = {n: get_nuclide(n).energy_per_decay_kev for n in names}
        # keV per parent decay by class: at the parent's site (a) and at each target (g_s)
        a = {c: sum(chain.local[n] * getattr(e[n], c) for n in names) for c in _CLASSES}
        g = [{c: sum(t[n] * getattr(e[n], c) for n in names) for c in _CLASSES}
             for t in chain.moved]
        rho = inp.density
        # Gy per (MBq·h·keV) in the voxel: N·k/(V·1 g/cm³) × (1/ρ, or s_air,water in gas)
        gy_per_kev = (DECAYS_PER_MBQ_H * KEV_TO_J / (inp.voxel_ml * 1e-3)
                      * density_scaling(inp.nuclide, "water", 1.0,
                                        cavity_density_g_cm3=self.cavity_density_g_cm3
                                        ).factor(rho, "charged"))
        tia_p = np.asarray(inp.tia_mbqh, dtype=np.float64)
        total = float(tia_p.sum())
        wsum = [np.zeros_like(rho) if w is None else w for w in chain.weights]

        def local_dose(cls: str) -> tuple[np.ndarray, np.ndarray]:
            """Local coefficient A(v) (Gy per MBq·h of the voxel) and G(v) (per MBq·h total)."""
            A = a[cls] * gy_per_kev
            G = sum((gs[cls] * w for gs, w in zip(g, wsum, strict=True)),
                    np.zeros_like(rho)) * gy_per_kev
            return A, G

        parts: dict[str, dict[str, np.ndarray]] = {}
        for cls in ("alpha", "electron") + (("photon",) if self.photons == "local" else ()):
            A, G = local_dose(cls)
            parts[cls] = {"A": A, "G": G, "dose": A * tia_p + G * total}
        kernel_info: dict[str, Any] | None = None
        conv = k_local = f = None
        g_phot = np.zeros_like(rho)
        if self.photons == "kernel":
            kernels = self._kernels(inp, names)
            kernel_info = {n: _kernel_summary(k) for n, k in kernels.items()}
            if kernels:
                shape = tuple(max(k.values.shape[ax] for k in kernels.values())
                              for ax in range(3))
                conv = FFTConvolver(inp.tia.shape, shape, dtype=self.precision,
                                    workers=self.workers)
                rho_k = {k.density_g_cm3 for k in kernels.values()}
                if len(rho_k) != 1:
                    raise InputError(f"photon kernels have different densities {sorted(rho_k)}"
                                     "; give kernels of one medium", field="photon_kernels")
                rk = rho_k.pop()
                med = next(iter(kernels.values())).medium
                f = (density_scaling(inp.nuclide, med, rk, photon_rule="density",
                                     cavity_density_g_cm3=self.cavity_density_g_cm3
                                     ).factor(rho, "photon")
                     if self.density_correction else np.where(rho > 0, 1.0, 0.0))

                def combined(coef: Mapping[str, float]) -> np.ndarray:
                    out = np.zeros(shape)
                    for n, k in kernels.items():
                        if coef[n]:
                            kv = k.values * GY_PER_MBQH_PER_S_UNIT
                            off = [(b - s) // 2 for s, b in zip(kv.shape, shape, strict=True)]
                            out[off[0]:off[0] + kv.shape[0], off[1]:off[1] + kv.shape[1],
                                off[2]:off[2] + kv.shape[2]] += coef[n] * kv
                    return out

                k_local = combined(chain.local)
                phot = conv.convolve(tia_p, k_local)
                for t, w in zip(chain.moved, chain.weights, strict=True):
                    if w is not None and any(t.values()):
                        g_phot = g_phot + conv.convolve(w, combined(t))
                g_phot = f * g_phot
                pdose = f * phot + g_phot * total
            else:
                pdose = np.zeros_like(rho)
            parts["photon"] = {"A": np.zeros_like(rho), "G": g_phot, "dose": pdose}
        elif self.photons == "ignore":
            z = np.zeros_like(rho)
            parts["photon"] = {"A": z, "G": z, "dose": z}
        comp = {c: parts[c]["dose"] for c in _CLASSES}
        absorbed = comp["alpha"] + comp["electron"] + comp["photon"]
        rbe = None if self.rbe_alpha is None else absorbed + (self.rbe_alpha - 1) * comp["alpha"]
        wa = self.rbe_alpha if self.dose_quantity == "rbe_weighted" else 1.0
        A = wa * parts["alpha"]["A"] + parts["electron"]["A"] + parts["photon"]["A"]
        G = wa * parts["alpha"]["G"] + parts["electron"]["G"] + parts["photon"]["G"]
        dose = rbe if self.dose_quantity == "rbe_weighted" else absorbed
        assert dose is not None
        sigma = np.zeros_like(dose)
        voi_sig = None
        if inp.sigma_mbqh is not None:
            s2 = np.asarray(inp.sigma_mbqh, dtype=np.float64) ** 2
            var = s2 * (A * A + 2 * A * G) + G * G * float(s2.sum())
            if conv is not None and k_local is not None and f is not None:
                k0 = float(k_local[tuple(n // 2 for n in k_local.shape)])
                var = var + (f * f * np.maximum(conv.convolve(s2, k_local ** 2), 0.0)
                             + 2 * A * f * k0 * s2
                             + 2 * f * G * conv.convolve(s2, k_local))
            sigma = np.sqrt(np.maximum(var, 0.0))
            if labels is not None:
                voi_sig = _voi_sigma(inp, s2, A, G, conv, k_local, f)
        mass = inp.mass_g
        voi = summarise_vois(dose, sigma, mass, labels, voi_sigma=voi_sig)
        nan = np.full_like(dose, np.nan)
        voi_comp: dict[str, tuple[VOIDose, ...]] = {}
        if labels is not None:
            for c in _CLASSES:
                voi_comp[c] = summarise_vois(comp[c], nan, mass, labels)
            voi_comp["absorbed"] = summarise_vois(absorbed, nan, mass, labels)
            if rbe is not None:
                voi_comp["rbe_weighted"] = summarise_vois(rbe, nan, mass, labels)
        q = "RBE-weighted dose" if self.dose_quantity == "rbe_weighted" else "absorbed dose"
        prov = {
            "method": f"alpha emitter chain ({self.ratio} ratios), alpha+electron local, "
                      f"photons {self.photons}; dose = {q}",
            "engine": self.name, "nuclide": inp.nuclide.name, "members": names,
            "decays_per_parent_decay": {"site": chain.local, "moved": chain.moved},
            "energy_per_parent_decay_kev": {"site": a, "moved": g},
            "redistribution": [r.describe() for r in self.redistribution],
            "decays_outside_mbqh": chain.outside_mbqh,
            "rbe_alpha": self.rbe_alpha, "dose_quantity": self.dose_quantity,
            "photon_kernels": kernel_info, "nuclear_data": data_source(),
            "options": self.options(),
            "uncertainty": "independent voxel TIA errors, exact linear propagation",
            "references": ["Sgouros et al. MIRD Pamphlet 22, J Nucl Med 2010;51:311, "
                           "doi:10.2967/jnumed.108.058651",
                           "de Kruijff et al. Pharmaceuticals 2015;8:321, "
                           "doi:10.3390/ph8020321"],
            "theradose_version": _version("theradose"),
        }

        def vol(arr: np.ndarray, what: str) -> Volume:
            v = dose_volume(inp, arr, self.name)
            return v.replace(history=(*v.history[:-1], f"{what} ({self.name} engine)"))

        return AlphaDoseResult(
            dose=dose_volume(inp, dose, self.name),
            sigma=dose_volume(inp, sigma, self.name, sigma=True), voi=voi, engine=self.name,
            provenance=prov,
            components={c: vol(comp[c], f"{c} absorbed dose") for c in _CLASSES},
            rbe_weighted=None if rbe is None else vol(rbe, "RBE-weighted dose"),
            absorbed=vol(absorbed, "absorbed dose"), voi_components=voi_comp, chain=chain)


def _voi_sigma(inp: PreparedInputs, s2: np.ndarray, A: np.ndarray, G: np.ndarray,
               conv: FFTConvolver | None, k_local: np.ndarray | None,
               f: np.ndarray | None) -> dict[int, float]:
    """Exact σ of VOI means: ``M·D̄ = Σ_u Ã(u)·h(u)`` (module docstring)."""
    assert inp.labels is not None
    mass = inp.mass_g
    out: dict[int, float] = {}
    flipped = None if k_local is None else np.ascontiguousarray(k_local[::-1, ::-1, ::-1])
    for value in inp.labels.names:
        voi = inp.labels.array == value
        m_voi = float(mass[voi].sum())
        if m_voi <= 0:
            continue
        h = np.where(voi, mass * A, 0.0) + float(np.sum(mass[voi] * G[voi]))
        if conv is not None and flipped is not None and f is not None:
            h = h + conv.convolve(np.where(voi, mass * f, 0.0), flipped)
        out[int(value)] = float(np.sqrt(np.sum(s2 * h * h)) / m_voi)
    return out


def alpha_dose(tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
               redistribution: Redistribution | Sequence[Redistribution] | None = None,
               rbe_alpha: float | None = DEFAULT_RBE_ALPHA, photons: str = "local",
               labels: LabelMap | None = None, tia_sigma: Volume | None = None,
               **options: Any) -> AlphaDoseResult:
    """Dose of an alpha emitter with its chain: ``AlphaDoseEngine(...).compute(...)``.

    Parameters
    ----------
    tia : Volume
        Parent TIA per voxel, ``MBq*h``, ``(Z, Y, X)``.
    density : Volume or float
        g/cm³ on the TIA grid.
    nuclide : str or Nuclide
        Parent, e.g. ``"Ac-225"``, ``"Pb-212"``, ``"Ra-223"``.
    redistribution, rbe_alpha, photons, **options
        See :class:`AlphaDoseEngine`.
    labels, tia_sigma
        See :meth:`theradose.dose.DoseEngine.compute`.

    Returns
    -------
    AlphaDoseResult

    Examples
    --------
    >>> import numpy as np
    >>> t = Volume.from_array(np.ones((1, 1, 1)), spacing_mm=(10, 10, 10), unit="MBq*h")
    >>> r = alpha_dose(t, 1.0, "Ac-225", photons="ignore")
    >>> round(float(r.components["alpha"].array[0, 0, 0]), 3)  # 3.6e9·28029 keV·k / 1 g
    16.167
    """
    eng = AlphaDoseEngine(redistribution, rbe_alpha, photons, **options)
    return eng.compute(tia, density, nuclide, labels=labels, tia_sigma=tia_sigma)


if "alpha" not in available_engines():
    register_engine("alpha", AlphaDoseEngine)
