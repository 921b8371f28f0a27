"""Carry a label map through a registration transform (nearest neighbour)."""

from __future__ import annotations

import numpy as np

from theradose.errors import InputError
from theradose.registration._warp import _resample
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["propagate_labels"]


def propagate_labels(labels: LabelMap, transform, target_geometry: Geometry | Volume
                     ) -> LabelMap:
    """Resample a label map onto ``target_geometry`` through ``transform`` (nearest neighbour).

    ``out(x) = labels(T(x))`` for every voxel centre ``x`` of the target grid: ``transform``
    maps **target** points to points of the label map's frame (the ITK resampling convention).

    * Labels drawn on time point *i* into the reference frame: ``transform =
      registered.transforms[i]`` and ``target_geometry`` = the reference CT grid.
    * Reference labels into time point *i*'s frame: ``transform =
      registered.transforms[i].GetInverse()`` (rigid transforms) and ``target_geometry`` =
      that time point's original CT or emission grid.

    Parameters
    ----------
    labels : LabelMap
        Integer VOI labels with their name table.
    transform : SimpleITK.Transform or None
        Target LPS point (mm) → label-map point (mm); None is the identity.
    target_geometry : Geometry or Volume
        Output grid.

    Returns
    -------
    LabelMap
        Same names and dtype; voxels mapping outside the input are 0 (background).

    Raises
    ------
    InputError
        ``labels`` not a LabelMap, ``target_geometry`` not a grid, or ``transform`` not a
        3-D SimpleITK transform.

    """
    import SimpleITK as sitk

    if not isinstance(labels, LabelMap):
        raise InputError(f"must be a LabelMap, got {type(labels).__name__}", field="labels")
    g = target_geometry.geometry if isinstance(target_geometry, Volume) else target_geometry
    if not isinstance(g, Geometry):
        raise InputError(f"must be a Geometry or Volume, got {type(target_geometry).__name__}",
                         field="target_geometry")
    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    if not isinstance(transform, sitk.Transform) or transform.GetDimension() != 3:
        raise InputError(f"must be a 3-D SimpleITK transform, got {type(transform).__name__}",
                         field="transform")
    arr = labels.array
    work = arr.astype(np.uint16) if arr.dtype == np.bool_ else arr
    new = _resample(work, labels.geometry, g, transform, fill=0, nearest=True).astype(arr.dtype)
    return labels.replace(array=new, geometry=g,
                          note=f"labels propagated through {transform.GetName()} onto "
                               f"{g.shape} (nearest neighbour)")
