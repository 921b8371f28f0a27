"""Nuclear decay data: ICRP-107 half-lives, energies per decay, lines, beta spectra and chains.

Emissions come from ICRP Publication 107 (package ``icrp107-database``), decay chains and
branching fractions from ``radioactivedecay``; :func:`data_source` names both with versions.

>>> from theradose.nuclides import get_nuclide
>>> lu = get_nuclide("177Lu")
>>> lu.name, round(lu.half_life_h, 3)
('Lu-177', 159.528)
"""

from theradose.nuclides._chain import (
    ChainMember,
    ExcludedMember,
    decay_chain,
    equilibrium_energy_per_decay,
    excluded_progeny,
)
from theradose.nuclides._data import data_source, list_nuclides, resolve_name
from theradose.nuclides._nuclide import (
    ALPHA_CLASSES,
    ELECTRON_CLASSES,
    PHOTON_CLASSES,
    BetaSpectrum,
    EnergyPerDecay,
    Line,
    Nuclide,
    get_nuclide,
)

__all__ = [
    "ALPHA_CLASSES",
    "ELECTRON_CLASSES",
    "PHOTON_CLASSES",
    "BetaSpectrum",
    "ChainMember",
    "EnergyPerDecay",
    "ExcludedMember",
    "Line",
    "Nuclide",
    "data_source",
    "decay_chain",
    "equilibrium_energy_per_decay",
    "excluded_progeny",
    "get_nuclide",
    "list_nuclides",
    "resolve_name",
]
