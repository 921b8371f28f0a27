"""Decay chains and (transient or secular) equilibrium energy per parent decay.

The progeny and branching fractions come from radioactivedecay's default data set (ICRP-107
decay modes; AME2020/NUBASE2020 for stable end members), half-lives from ICRP-107.

In equilibrium every member decays with the parent's decay constant λ_p. Writing the activity of
member i as A_i = r_i A_p, the Bateman equations dN_i/dt = -λ_i N_i + Σ_j b_ji λ_j N_j give

    r_i = λ_i / (λ_i - λ_p) · Σ_j b_ji r_j ,      r_parent = 1,

summed over the members j feeding i with branching fraction b_ji. Along a single path this is
Π b_k λ_k / (λ_k - λ_p); members fed by several paths (Pb-209 in the Ac-225 chain) add them up.
For λ_i ≫ λ_p it is the secular ratio Σ b r. The equilibrium exists only if λ_i > λ_p for every
member: a daughter that lives as long as or longer than the parent (and its own progeny) is left
out with a note (:func:`excluded_progeny`, logged at INFO), as are members without ICRP-107 data.
Stable members (radioactivedecay half-life infinite, e.g. Pb-208, Bi-209) end the chain.

References
----------
Bateman H. The solution of a system of differential equations occurring in the theory of
radioactive transformations. Proc Camb Philos Soc. 1910;15:423-427.
Malins A, Lemoine T. radioactivedecay: A Python package for radioactive decay calculations.
J Open Source Softw. 2022;7(71):3318. doi:10.21105/joss.03318
ICRP, 2008. Nuclear Decay Data for Dosimetric Calculations. ICRP Publication 107.
Ann. ICRP 38(3). doi:10.1016/j.icrp.2008.10.004
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from theradose.nuclides._data import _name_set, resolve_name
from theradose.nuclides._nuclide import EnergyPerDecay, Nuclide, get_nuclide

__all__ = [
    "ChainMember",
    "ExcludedMember",
    "decay_chain",
    "equilibrium_energy_per_decay",
    "excluded_progeny",
]

log = logging.getLogger("theradose")

#: A daughter living more than this many parent half-lives is called "very long-lived": its
#: activity stays negligible (< 1e-3 of the parent's) over the parent's lifetime.
VERY_LONG_LIVED_FACTOR = 1e3


@dataclass(frozen=True)
class ChainMember:
    """A member of a decay chain in equilibrium with the chain's parent.

    Attributes
    ----------
    nuclide : str
        ICRP-107 name.
    branching_fraction : float
        Fraction of parent decays that lead to this member (product of branching fractions
        along the path, summed over paths); 1 for the parent itself.
    equilibrium_activity_ratio : float
        Member activity per parent activity in equilibrium (1 for the parent).
    half_life_h : float
        Physical half-life, h.
    """

    nuclide: str
    branching_fraction: float
    equilibrium_activity_ratio: float
    half_life_h: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "nuclide": self.nuclide,
            "branching_fraction": self.branching_fraction,
            "equilibrium_activity_ratio": self.equilibrium_activity_ratio,
            "half_life_h": self.half_life_h,
        }


@dataclass(frozen=True)
class ExcludedMember:
    """A progeny left out of the equilibrium chain, and why.

    Attributes
    ----------
    nuclide : str
        Name (radioactivedecay spelling).
    branching_fraction : float
        Fraction of parent decays that reach it through included members.
    half_life_h : float
        Physical half-life, h.
    reason : str
        One line: why it is left out.
    """

    nuclide: str
    branching_fraction: float
    half_life_h: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "nuclide": self.nuclide,
            "branching_fraction": self.branching_fraction,
            "half_life_h": self.half_life_h,
            "reason": self.reason,
        }


@cache
def _rd_decay(name: str) -> tuple[float, tuple[tuple[str, float], ...]]:
    """(half-life h, ((daughter, branching fraction), ...)) from radioactivedecay."""
    import radioactivedecay as rd

    nuc = rd.Nuclide(name)
    progeny = tuple(
        (str(d), float(b)) for d, b in zip(nuc.progeny(), nuc.branching_fractions(), strict=True)
    )
    return float(nuc.half_life("h")), progeny


def _rd_half_life_h(name: str) -> float:
    import radioactivedecay as rd

    if name not in rd.DEFAULTDATA.nuclide_dict:
        return math.inf
    return _rd_decay(name)[0]


@cache
def _build(parent: str) -> tuple[tuple[ChainMember, ...], tuple[ExcludedMember, ...]]:
    lam_p = get_nuclide(parent).decay_constant_per_h
    known = _name_set()
    included: dict[str, float] = {parent: get_nuclide(parent).half_life_h}
    excluded: dict[str, tuple[float, str]] = {}
    edges: list[tuple[str, str, float]] = []
    stack = [parent]
    while stack:  # discover the members that can be in equilibrium
        j = stack.pop()
        for d, b in _rd_decay(j)[1]:
            if b <= 0:
                continue
            t_d = _rd_half_life_h(d)
            if math.isinf(t_d):
                continue  # stable end member
            if d in included or d in excluded:  # reached again by another path
                edges.append((j, d, b))
                continue
            t_p = included[parent]
            if d not in known:
                reason = f"no ICRP-107 emission data for {d}"
            elif t_d > VERY_LONG_LIVED_FACTOR * t_p:
                reason = (f"very long-lived ({t_d:.4g} h > {VERY_LONG_LIVED_FACTOR:g} x the "
                          f"parent's {t_p:.4g} h): its activity stays negligible; ignored")
            elif t_d >= t_p:
                reason = (f"half-life {t_d:.4g} h >= parent's {t_p:.4g} h: no equilibrium; "
                          "model its activity separately")
            else:
                included[d] = t_d
                edges.append((j, d, b))
                stack.append(d)
                continue
            excluded[d] = (t_d, reason)
            edges.append((j, d, b))
    # topological order (Kahn) over included members; decay graphs are acyclic
    indeg = {n: 0 for n in included}
    for _, d, _ in edges:
        if d in included:
            indeg[d] += 1
    order: list[str] = []
    ready = [parent]
    while ready:
        j = ready.pop(0)
        order.append(j)
        for a, d, _ in edges:
            if a == j and d in included:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    ratio = dict.fromkeys(included, 0.0)
    frac = dict.fromkeys(list(included) + list(excluded), 0.0)
    ratio[parent] = frac[parent] = 1.0
    for j in order:
        for a, d, b in edges:
            if a != j:
                continue
            frac[d] += b * frac[j]
            if d in included:
                lam_d = math.log(2.0) / included[d]
                ratio[d] += lam_d / (lam_d - lam_p) * b * ratio[j]
    members = tuple(ChainMember(n, frac[n], ratio[n], included[n]) for n in order)
    notes = tuple(ExcludedMember(n, frac[n], t, r) for n, (t, r) in excluded.items())
    return members, notes


def decay_chain(name: str | Nuclide, *, field: str = "nuclide",
                file: str | Path | None = None) -> list[ChainMember]:
    """Members of a nuclide's decay chain that reach equilibrium with it, parent first.

    Parameters
    ----------
    name : str or Nuclide
        Parent nuclide (any spelling :func:`get_nuclide` accepts).
    field, file : str, optional
        Named in the error message for an unknown name.

    Returns
    -------
    list of ChainMember
        The parent (fraction 1, ratio 1) and then its radioactive progeny in decay order, each
        with its branching fraction from the parent and its equilibrium activity ratio
        (module docstring). Progeny without equilibrium are left out: see
        :func:`excluded_progeny`.

    Raises
    ------
    UnknownNuclideError
        If the name is not in ICRP-107.

    Examples
    --------
    >>> [m.nuclide for m in decay_chain("Pb-212")]
    ['Pb-212', 'Bi-212', 'Po-212', 'Tl-208']
    """
    parent = name.name if isinstance(name, Nuclide) else resolve_name(name, field=field, file=file)
    members, notes = _build(parent)
    for note in notes:
        log.info("decay chain of %s: %s left out: %s", parent, note.nuclide, note.reason)
    return list(members)


def excluded_progeny(name: str | Nuclide, *, field: str = "nuclide",
                     file: str | Path | None = None) -> list[ExcludedMember]:
    """Radioactive progeny that :func:`decay_chain` leaves out, with the reason.

    E.g. Xe-131m for I-131 (11.9 d > 8.02 d: no equilibrium) and Tc-99 for Tc-99m (very
    long-lived). Arguments as in :func:`decay_chain`.
    """
    parent = name.name if isinstance(name, Nuclide) else resolve_name(name, field=field, file=file)
    return list(_build(parent)[1])


def equilibrium_energy_per_decay(name: str | Nuclide, *, field: str = "nuclide",
                                 file: str | Path | None = None) -> EnergyPerDecay:
    """Energy emitted by the parent and its progeny in equilibrium, keV per PARENT decay.

    Σ over :func:`decay_chain` members of equilibrium activity ratio × the member's ICRP-107
    energy per decay, class by class. Assumes the progeny stay where the parent decays.

    Parameters
    ----------
    name : str or Nuclide
        Parent nuclide.
    field, file : str, optional
        Named in the error message for an unknown name.

    Returns
    -------
    EnergyPerDecay
        keV per parent decay.

    Examples
    --------
    >>> e = equilibrium_energy_per_decay("Ac-225")
    >>> 27_000 < e.alpha < 28_500
    True
    """
    total = EnergyPerDecay.from_by_class({})
    for m in decay_chain(name, field=field, file=file):
        total = total + get_nuclide(m.nuclide).energy_per_decay_kev.scaled(
            m.equilibrium_activity_ratio
        )
    return total
