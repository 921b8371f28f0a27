"""Absorbed dose: kernels generated from ICRP-107 + NIST data, dose engines, DVH.

Public names
------------
RadialKernel, electron_point_kernel, photon_point_kernel, monoenergetic_electron_kernel,
monoenergetic_photon_kernel
    Dose point kernels (energy absorbed per decay in spherical shells) from the project's own
    condensed-history electron and analog photon Monte Carlo in homogeneous media.
VoxelKernel, voxel_s_values, voxel_s_values_from_kernel, clear_cache
    Voxel S-values (mGy/(MBq·s)) for any ICRP-107 nuclide, voxel size and medium; disk cache.
Medium, MEDIA, get_medium, photon_cross_sections
    Media (NIST ESTAR/XCOM compositions) and photon interaction data.
DoseEngine, DoseResult, VOIDose, LocalDepositionEngine, KernelConvolutionEngine, get_engine,
register_engine, available_engines, engines_from_config, run_engines, dose_rate_map,
compare_engines, format_comparison
    One engine interface (TIA map + density → dose map ± σ, per-VOI means, provenance),
    local deposition and FFT convolution (density and multi-kernel heterogeneity corrections;
    gas voxels as Bragg–Gray cavities, photons by kerma ratio: ``theradose.dose._scaling``).
SphereResult, sphere_s_value, sphere_s_values, sphere_absorbed_fraction
    Unit-density (or given density) sphere model for lesions.
DVH, dvh, dvh_table
    Dose-volume histograms (exact D_x and V_x).
DoseComparison, compare_dose_maps
    The same TIA through several engines: per-VOI and per-tissue differences, difference maps.
confine_tia
    Give the TIA that imaging blurred outside the body back to the nearest body voxel (or drop
    it) before a dose calculation.

Monte Carlo, organ S-values, alpha emitters and the OpenGATE adapter are in
:mod:`theradose.dose.mc` (engines ``"montecarlo"`` and ``"alpha"`` are registered lazily).
"""

from theradose.dose._cache import clear_cache
from theradose.dose._compare_maps import DoseComparison, compare_dose_maps
from theradose.dose._confine import confine_frames, confine_tia
from theradose.dose._convolution import KernelConvolutionEngine
from theradose.dose._dvh import DVH, dvh, dvh_table
from theradose.dose._electron_kernel import electron_point_kernel, monoenergetic_electron_kernel
from theradose.dose._engine import (
    DoseEngine,
    available_engines,
    dose_rate_map,
    engines_from_config,
    get_engine,
    register_engine,
    run_engines,
)
from theradose.dose._led import LocalDepositionEngine
from theradose.dose._media import MEDIA, Medium, get_medium
from theradose.dose._photon_kernel import monoenergetic_photon_kernel, photon_point_kernel
from theradose.dose._photon_physics import photon_cross_sections
from theradose.dose._point_kernel import KEV_TO_J, RadialKernel
from theradose.dose._result import DoseResult, VOIDose, compare_engines, format_comparison
from theradose.dose._sphere import (
    SphereResult,
    sphere_absorbed_fraction,
    sphere_s_value,
    sphere_s_values,
)
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.dose._vsv import voxel_s_values, voxel_s_values_from_kernel

__all__ = [
    "DVH",
    "KEV_TO_J",
    "MEDIA",
    "DoseComparison",
    "DoseEngine",
    "DoseResult",
    "KernelConvolutionEngine",
    "LocalDepositionEngine",
    "Medium",
    "RadialKernel",
    "SphereResult",
    "VOIDose",
    "VoxelKernel",
    "available_engines",
    "clear_cache",
    "compare_dose_maps",
    "compare_engines",
    "confine_frames",
    "confine_tia",
    "dose_rate_map",
    "dvh",
    "dvh_table",
    "electron_point_kernel",
    "engines_from_config",
    "format_comparison",
    "get_engine",
    "get_medium",
    "monoenergetic_electron_kernel",
    "monoenergetic_photon_kernel",
    "photon_cross_sections",
    "photon_point_kernel",
    "register_engine",
    "run_engines",
    "sphere_absorbed_fraction",
    "sphere_s_value",
    "sphere_s_values",
    "voxel_s_values",
    "voxel_s_values_from_kernel",
]
