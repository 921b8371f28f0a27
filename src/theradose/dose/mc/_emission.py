"""What one decay emits, as the Monte Carlo needs it: photon lines + locally deposited energy.

The photon lines (gamma, X, annihilation) are transported; electrons (beta spectra, IC, Auger)
and alphas (with recoils) are deposited locally or by a kernel, so only their mean energy per
decay is kept here. For a chain in equilibrium (``chain=True``) every member's emissions are
weighted by its equilibrium activity ratio per parent decay (Bateman; see
:func:`theradose.nuclides.decay_chain`), all members staying where the parent decays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose.nuclides import (
    PHOTON_CLASSES,
    Nuclide,
    data_source,
    decay_chain,
    get_nuclide,
)

__all__ = ["EmissionSpectrum", "emission_spectrum"]


@dataclass(frozen=True, eq=False)
class EmissionSpectrum:
    """Emissions per decay of the parent.

    Attributes
    ----------
    nuclide : str
        Parent nuclide.
    photon_energy_kev : (L,) ndarray
        Photon line energies, keV.
    photon_yield : (L,) ndarray
        Photons per parent decay of each line.
    photon_member : tuple of str
        Chain member emitting each line (the parent itself without a chain).
    electron_kev : float
        Mean electron (β, IC, Auger) energy per parent decay, keV.
    alpha_kev : float
        Mean alpha + recoil energy per parent decay, keV.
    electron_kev_by_member, alpha_kev_by_member : mapping of str to float
        The same split by chain member (for daughter redistribution).
    chain : bool
        Whether progeny in equilibrium are included.
    provenance : mapping
        ICRP-107 / radioactivedecay sources.
    """

    nuclide: str
    photon_energy_kev: np.ndarray
    photon_yield: np.ndarray
    photon_member: tuple[str, ...]
    electron_kev: float
    alpha_kev: float
    electron_kev_by_member: Mapping[str, float]
    alpha_kev_by_member: Mapping[str, float]
    chain: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def photon_kev(self) -> float:
        """Mean photon energy per parent decay, keV."""
        return float(np.sum(self.photon_energy_kev * self.photon_yield))

    @property
    def photons_per_decay(self) -> float:
        """Photons per parent decay."""
        return float(np.sum(self.photon_yield))

    def sample_photon_energies(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` photon energies (keV) drawn in proportion to the line yields."""
        p = self.photon_yield / self.photon_yield.sum()
        return self.photon_energy_kev[rng.choice(p.size, size=n, p=p)]


def emission_spectrum(nuclide: str | Nuclide, *, chain: bool = False,
                      min_yield: float = 0.0) -> EmissionSpectrum:
    """Emission spectrum of a nuclide (optionally with its progeny in equilibrium).

    Parameters
    ----------
    nuclide : str or Nuclide
        Parent nuclide.
    chain : bool
        Include the progeny in equilibrium per parent decay (e.g. Ac-225, Pb-212).
    min_yield : float
        Photon lines with fewer photons per decay are dropped (their energy is then not
        transported; the default keeps every ICRP-107 line).
    """
    parent = nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide)
    members = decay_chain(parent) if chain else []
    weights = ([(m.nuclide, m.equilibrium_activity_ratio) for m in members] if chain
               else [(parent.name, 1.0)])
    e, y, who = [], [], []
    el: dict[str, float] = {}
    al: dict[str, float] = {}
    for name, w in weights:
        nuc = get_nuclide(name)
        for line in nuc.photon_lines(min_yield=min_yield):
            if line.type in PHOTON_CLASSES:
                e.append(line.energy_kev)
                y.append(line.yield_per_decay * w)
                who.append(name)
        epd = nuc.energy_per_decay_kev
        el[name] = epd.electron * w
        al[name] = epd.alpha * w
    return EmissionSpectrum(
        nuclide=parent.name, photon_energy_kev=np.asarray(e, float),
        photon_yield=np.asarray(y, float), photon_member=tuple(who),
        electron_kev=float(sum(el.values())), alpha_kev=float(sum(al.values())),
        electron_kev_by_member=el, alpha_kev_by_member=al, chain=chain,
        provenance={"decay_data": data_source(), "chain": chain, "min_yield": min_yield},
    )
