"""Kinetics: time-activity curves → fitted models → time-integrated activity (TIA).

Public names
------------
organ_tacs, TACTable
    Per-VOI total activity (MBq) and mean concentration (Bq/mL) per time point of a Study, with
    fractional (partial-volume-aware) VOI occupancy on each emission grid; VOIs per time point
    and a spill-out margin.
add_margins
    Grow VOI masks by a margin (mm) that stops at the other VOIs.
fit_tac, KineticFit, ModelFit, MODELS, Model, trapezoid_tia, hybrid_tia
    Weighted non-linear least squares of exponential models, AICc/BIC selection with
    NUKFIT-style acceptance and fallback, analytic TIA.
InputUncertainty, monte_carlo_tia, MonteCarloTIA
    TIA uncertainty: delta method + calibration/recovery/volume terms; Monte-Carlo check.
fit_voxels, VoxelFitResult
    Truly voxel-wise fitting (vectorised Levenberg–Marquardt, per-voxel model selection);
    voxel TIAs bounded by what each voxel's samples allow, with a per-voxel status map.
haenscheid_stp, madsen_stp, two_point_tia, prior_informed_tia, population_from_cohort,
PopulationPrior, STPResult
    Reduced-time-point protocols with expected errors.
"""

from theradose.kinetics._fit import KineticFit, ModelFit, fit_tac
from theradose.kinetics._models import MODELS, Model, hybrid_tia, trapezoid_tia
from theradose.kinetics._stp import (
    PopulationPrior,
    STPResult,
    haenscheid_stp,
    madsen_stp,
    population_from_cohort,
    prior_informed_tia,
    two_point_tia,
)
from theradose.kinetics._tac import TACTable, organ_tacs
from theradose.kinetics._uncertainty import InputUncertainty, MonteCarloTIA, monte_carlo_tia
from theradose.kinetics._voi_margin import add_margins
from theradose.kinetics._voxel import VoxelFitResult, fit_voxels

__all__ = [
    "MODELS",
    "InputUncertainty",
    "KineticFit",
    "Model",
    "ModelFit",
    "MonteCarloTIA",
    "PopulationPrior",
    "STPResult",
    "TACTable",
    "VoxelFitResult",
    "add_margins",
    "fit_tac",
    "fit_voxels",
    "haenscheid_stp",
    "hybrid_tia",
    "madsen_stp",
    "monte_carlo_tia",
    "organ_tacs",
    "population_from_cohort",
    "prior_informed_tia",
    "trapezoid_tia",
    "two_point_tia",
]
