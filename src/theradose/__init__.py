"""theradose — personalized radiopharmaceutical-therapy dosimetry.

Stages (each usable alone; they exchange :class:`~theradose.volume.Volume`, label maps and
result tables):

=================  ==========================================================================
``volume``         image model: array + LPS geometry + unit + time; conservative resampling
``materials``      CT calibration: HU → density (Schneider 2000) and → material classes
``nuclides``       ICRP-107 decay data: half-lives, energies per decay, lines, beta spectra,
                   chains (radioactivedecay)
``io``             DICOM (CT, NM, PT, RT Dose, RTSTRUCT, SEG), NIfTI + JSON sidecar, ``Study``
``phantoms``       virtual patients: anatomy, kinetics, PET/SPECT/CT imaging, DICOM + truth
``kinetics``       TACs, exponential fits and model selection, TIA ± σ, voxel-wise fits, STP
``dose``           point/voxel kernels from ICRP-107 + NIST data, LED and convolution engines,
                   sphere model, DVH
``radiobiology``   BED (Lea–Catcheside), EQD2, EUD, cycles, BED maps
``registration``   CT↔CT registration of time points, counts-conserving resampling
``segmentation``   mask import, lesion segmentation and matching, recovery coefficients
``pipeline``       ``theradose run`` / ``demo``: study folder → results.json, maps, DICOM, report
``report``         HTML + PDF report
``units``          unit strings, conversion, what resampling conserves
``errors``         the ``InputError`` family (one-line messages naming file and field)
``cli``            the ``theradose`` command
=================  ==========================================================================

Later stages (predict, planning, features) are described in ``docs/roadmap.md`` and DESIGN.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("theradose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
