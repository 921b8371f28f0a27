"""theradose — personalized radiopharmaceutical-therapy dosimetry.

Stages (each usable alone; they exchange :class:`~theradose.volume.Volume`, label maps and
result tables):

=================  ==========================================================================
``volume``         image model: array + LPS geometry + unit + time; conservative resampling
``materials``      CT calibration: HU → density (Schneider 2000) and → material classes
``nuclides``       ICRP-107 decay data: half-lives, energies per decay, lines, beta spectra,
                   chains (radioactivedecay)
``io``             DICOM (CT, NM, PT, RT Dose, RTSTRUCT, SEG), NIfTI + JSON sidecar, ``Study``
``units``          unit strings, conversion, what resampling conserves
``errors``         the ``InputError`` family (one-line messages naming file and field)
``cli``            the ``theradose`` command
=================  ==========================================================================

Later stages (registration, segmentation, kinetics, dose, radiobiology, phantoms, predict,
report, pipeline) are described in ``docs/`` and DESIGN.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("theradose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
