"""Segmentation: VOIs from files, lesions on emission images, AI organs; partial-volume correction.

Public names
------------
body_contour, activity_region
    The patient's external contour on a CT (largest component above −500 HU, holes filled),
    and its voxels that can hold activity (tissue and lung parenchyma, not gas pockets).
import_masks
    RTSTRUCT, DICOM SEG or NIfTI label map onto a reference grid (nearest neighbour).
segment_lesions
    Lesions by % of each lesion's maximum, a fixed (SUV/Bq/mL) threshold, or seeded region
    growing; physiological-uptake exclusion; ``lesion_1`` ... by decreasing volume.
match_lesions
    Lesion tracks across time points (Hungarian matching of centroids).
totalsegmentator, TOTALSEG_RENAME
    Adapter to the optional TotalSegmentator (organs from CT).
recovery_coefficient, apply_recovery, VOLUME_GRID_ML, FWHM_GRID_MM
    Partial-volume correction: recovery coefficients of spheres from a simulated imaging system
    (Gaussian PSF, voxelisation), and their application to TAC tables.
gtm_matrix, gtm_correct, gtm_correct_series
    Geometric transfer matrix PVC (Rousset et al. 1998): regional concentrations corrected for
    spill-out and spill-in between VOIs; optional measurement ROIs.
gtm_regions, gtm_voi_totals, GTMRegions
    GTM on VOIs for organ activity: VOIs split into core and shell, ROIs grown by a margin
    shared out by nearest VOI; corrected totals per VOI.
estimate_fwhm, ResolutionEstimate, effective_fwhm, camera_fwhm
    Effective resolution (FWHM) of an emission image estimated from the image and its VOIs
    (per-VOI least-squares fit of the blurred VOI model, median over VOIs), and the conversion
    between camera and effective FWHM.
fit_local_shifts, shifted_voi_totals, LocalShifts
    Local alignment of compact VOIs (lesions) at each time point, fitted to the emission image
    with the GTM's model, and the GTM totals with the VOIs where the image shows them.
"""

from theradose.segmentation._body import activity_region, body_contour
from theradose.segmentation._gtm import gtm_correct, gtm_correct_series, gtm_matrix
from theradose.segmentation._gtm_local import LocalShifts, fit_local_shifts, shifted_voi_totals
from theradose.segmentation._gtm_regions import GTMRegions, gtm_regions, gtm_voi_totals
from theradose.segmentation._import import import_masks
from theradose.segmentation._lesions import segment_lesions
from theradose.segmentation._matching import match_lesions
from theradose.segmentation._pvc import (
    FWHM_GRID_MM,
    VOLUME_GRID_ML,
    apply_recovery,
    recovery_coefficient,
)
from theradose.segmentation._resolution import (
    ResolutionEstimate,
    camera_fwhm,
    effective_fwhm,
    estimate_fwhm,
)
from theradose.segmentation._totalseg import TOTALSEG_RENAME, totalsegmentator

__all__ = [
    "FWHM_GRID_MM",
    "TOTALSEG_RENAME",
    "VOLUME_GRID_ML",
    "GTMRegions",
    "LocalShifts",
    "ResolutionEstimate",
    "activity_region",
    "apply_recovery",
    "body_contour",
    "camera_fwhm",
    "effective_fwhm",
    "estimate_fwhm",
    "fit_local_shifts",
    "gtm_correct",
    "gtm_correct_series",
    "gtm_matrix",
    "gtm_regions",
    "gtm_voi_totals",
    "import_masks",
    "match_lesions",
    "recovery_coefficient",
    "segment_lesions",
    "shifted_voi_totals",
    "totalsegmentator",
]
