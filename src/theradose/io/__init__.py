"""Reading and writing images, masks and studies.

DICOM (CT, NM SPECT, PT, RT Dose, RTSTRUCT, SEG), NIfTI + JSON sidecar, and the ``Study`` loader
that orders time points by acquisition time. Inputs are never modified; writers refuse to
overwrite existing files unless told to.
"""

from theradose.io._administration import Administration
from theradose.io._outputs import atomic_path, prepare_output

__all__ = ["Administration", "atomic_path", "prepare_output"]
