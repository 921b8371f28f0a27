"""Virtual patients: anatomy, kinetics and imaging physics with ground truth.

Public names
------------
SimulationConfig
    What to simulate (preset, regime, times, activities, noise, motion, ...).
simulate_patient
    One patient: DICOM PET/CT + SPECT/CT time points, SEG/RTSTRUCT, and ``truth/``.
simulate_cohort, patient_seeds
    Many patients in parallel (dask local cluster, or a scheduler address).
reference_phantom, random_anatomy, add_lesions, Anatomy
    Voxelised adult anatomy (ORNL/Cristy–Eckerman stylized phantom scaled to ICRP-89 masses).
preset, sample_kinetics, PatientKinetics, activity_map, tia_map
    Compartment kinetics of the diagnostic and therapeutic agents.
simulate_spect, simulate_pet, simulate_ct, random_transform, apply_to_volume
    Imaging physics and patient motion.
"""

from theradose.phantoms._anatomy import Anatomy, add_lesions, random_anatomy, reference_phantom
from theradose.phantoms._cohort import patient_seeds, simulate_cohort
from theradose.phantoms._config import SimulationConfig
from theradose.phantoms._imaging import simulate_ct, simulate_pet, simulate_spect
from theradose.phantoms._imaging_motion import apply_to_volume, random_transform
from theradose.phantoms._kinetics import (
    PatientKinetics,
    activity_map,
    sample_kinetics,
    tia_map,
)
from theradose.phantoms._kinetics_params import preset
from theradose.phantoms._patient import VirtualPatient, simulate_patient

__all__ = [
    "Anatomy",
    "PatientKinetics",
    "SimulationConfig",
    "VirtualPatient",
    "activity_map",
    "add_lesions",
    "apply_to_volume",
    "patient_seeds",
    "preset",
    "random_anatomy",
    "random_transform",
    "reference_phantom",
    "sample_kinetics",
    "simulate_cohort",
    "simulate_ct",
    "simulate_patient",
    "simulate_pet",
    "simulate_spect",
    "tia_map",
]
