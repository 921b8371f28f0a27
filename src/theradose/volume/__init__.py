"""The image model: :class:`Volume` (array + geometry + unit + time), :class:`LabelMap`, resampling.

Public names
------------
Geometry
    A voxel grid in LPS physical space (arrays indexed ``[z, y, x]``).
Volume
    Image values with geometry, unit, modality, acquisition time, optional σ, metadata, history.
LabelMap
    Integer VOI labels with a name table.
resample
    Regridding that conserves totals (activity, TIA) or means (concentration, dose, HU).
"""

from theradose.volume._geometry import Geometry
from theradose.volume._resample import resample
from theradose.volume._volume import LabelMap, Volume

__all__ = ["Geometry", "LabelMap", "Volume", "resample"]
