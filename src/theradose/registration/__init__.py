"""Registration: align every time point (and the pre-therapy PET) with a reference time point.

CT↔CT rigid registration (SimpleITK Euler3D, Mattes mutual information, optional BSpline), then
the emission images are resampled into the reference frame with their totals conserved.
See ``docs/registration.md``.

Public names
------------
register_study
    Register a :class:`~theradose.io.Study`; returns a :class:`RegisteredStudy`.
RegisteredStudy
    The registered study, the transforms (reference → time point) and the quality records.
RegistrationQuality
    Per time point: Mattes metric, CT NCC before/after, ok flag, change of the emission total.
register_ct
    Register two CT images (SimpleITK) and return the transform and metric.
propagate_labels
    Carry a label map through a transform (nearest neighbour).
NCC_MIN
    The CT-NCC threshold below which a registration is flagged.
GATE_RATIO, GATE_MIN_DROP
    The quality gate: a time point whose CT dissimilarity (1 - NCC) after registration is an
    outlier among the study's time points is flagged (``quality[i].outlier``, warning).
"""

from theradose.registration._ct import CTRegistration, register_ct
from theradose.registration._labels import propagate_labels
from theradose.registration._study import (
    GATE_MIN_DROP,
    GATE_RATIO,
    NCC_MIN,
    RegisteredStudy,
    RegistrationQuality,
    register_study,
)
from theradose.registration._warp import emission_grid, warp_emission

__all__ = [
    "GATE_MIN_DROP",
    "GATE_RATIO",
    "NCC_MIN",
    "CTRegistration",
    "RegisteredStudy",
    "RegistrationQuality",
    "emission_grid",
    "propagate_labels",
    "register_ct",
    "register_study",
    "warp_emission",
]
