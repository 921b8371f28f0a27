"""Monte Carlo dose in voxelised patients, organ S-values, alpha emitters, OpenGATE adapter.

Public names
------------
VoxelPhantom, simulate_photons, TransportResult, MonteCarloEngine
    Photon transport (Woodcock tracking, photoelectric / Compton with binding / Rayleigh,
    cross-sections per CT medium) with a collision kerma estimator, batch statistics and
    stopping at a VOI uncertainty; electrons and alphas locally or by the electron kernel;
    engine ``"montecarlo"``.
EmissionSpectrum, emission_spectrum
    Photon lines and local energies per parent decay (with progeny in equilibrium).
AlphaDoseEngine, AlphaDoseResult, Redistribution, alpha_dose, member_tia_maps,
chain_coefficients
    Alpha emitters (Ac-225, Pb-212, Ra-223): chains, daughter redistribution, RBE weighting;
    engine ``"alpha"``.
SValueTable, svalue, load_svalue_table, organ_doses, OrganDoseResult, compute_svalue_table,
ORGANS
    Organ S-values (MIRD schema) of the reference virtual phantoms, computed with this Monte
    Carlo and shipped as data; mass scaling; organ doses from organ TIAs.
write_gate_simulation, run_gate_simulation, read_gate_dose, gate_available
    Optional OpenGATE 10 adapter (needs ``opengate`` and its Geant4 data).
"""

from theradose.dose.mc._alpha import (
    AlphaDoseEngine,
    AlphaDoseResult,
    Redistribution,
    alpha_dose,
    chain_coefficients,
    member_tia_maps,
)
from theradose.dose.mc._emission import EmissionSpectrum, emission_spectrum
from theradose.dose.mc._engine import MonteCarloEngine
from theradose.dose.mc._opengate import (
    gate_available,
    read_gate_dose,
    run_gate_simulation,
    write_gate_simulation,
)
from theradose.dose.mc._organ_dose import OrganDoseResult, organ_doses
from theradose.dose.mc._phantom import VoxelPhantom
from theradose.dose.mc._svalues import ORGANS, SValueTable, load_svalue_table, svalue
from theradose.dose.mc._svalues_compute import compute_svalue_table
from theradose.dose.mc._transport import TransportResult, simulate_photons

__all__ = [
    "ORGANS",
    "AlphaDoseEngine",
    "AlphaDoseResult",
    "EmissionSpectrum",
    "MonteCarloEngine",
    "OrganDoseResult",
    "Redistribution",
    "SValueTable",
    "TransportResult",
    "VoxelPhantom",
    "alpha_dose",
    "chain_coefficients",
    "compute_svalue_table",
    "emission_spectrum",
    "gate_available",
    "load_svalue_table",
    "member_tia_maps",
    "organ_doses",
    "read_gate_dose",
    "run_gate_simulation",
    "simulate_photons",
    "svalue",
    "write_gate_simulation",
]
