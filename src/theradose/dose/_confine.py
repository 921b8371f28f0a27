"""Keep time-integrated activity inside the body before a dose calculation.

Emission images blur activity over ~1-2 cm (SPECT resolution, 10-15 mm FWHM): part of the counts
of superficial organs and lesions lands in the air around the body and in the partial-volume
voxels of the skin. That activity is not there. A dose engine must take the TIA it is given as
emitted where it is, so a voxel at the skin holding 8 % tissue and a spill-over TIA gets
``Ã·Δ/(ρ·V)`` with ρ = 0.08 g/cm³ — a dose 12× the water value, from activity that does not
exist. On the reference adult male (4 mm, true TIA blurred by 10 mm FWHM) 1.6 % of the TIA falls
outside the body and 55 voxels outside it get more than 1 % of the map maximum (up to 3.5 %);
confined to the body, the largest dose outside is 0.1-0.25 % of the maximum
(docs/dose-engines.md).

:func:`confine_tia` gives the counts outside a body mask to the nearest voxel inside it (total
TIA conserved: a crude spill-in correction) or drops them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from theradose.errors import GeometryMismatchError, InputError
from theradose.volume import LabelMap, Volume

__all__ = ["CONFINE_MODES", "confine_tia"]

#: What happens to the TIA of voxels outside the body.
CONFINE_MODES = ("nearest", "zero")


def _inside_mask(tia: Volume, inside: np.ndarray | Volume) -> np.ndarray:
    if isinstance(inside, Volume):  # LabelMap is a Volume
        try:
            tia.geometry.require_same(inside.geometry, what="tia and inside")
        except GeometryMismatchError as exc:
            raise GeometryMismatchError(exc.detail, field=f"inside.{exc.field}") from None
        arr = np.asarray(inside.array)
    else:
        arr = np.asarray(inside)
        if arr.shape != tia.shape:
            raise GeometryMismatchError(f"mask shape {arr.shape} differs from the TIA shape "
                                        f"{tia.shape}", field="inside.shape")
    mask = arr > 0 if arr.dtype != bool else arr
    if not mask.any():
        raise InputError("the body mask is empty; expected at least one voxel inside",
                         field="inside")
    return mask


def confine_tia(tia: Volume, inside: np.ndarray | Volume | LabelMap, *,
                mode: str = "nearest") -> Volume:
    """Move (or drop) the TIA of voxels outside the body mask.

    Parameters
    ----------
    tia : Volume
        TIA map (any TIA unit; values are moved as they are), ``(Z, Y, X)``; its ``sigma`` is
        moved with it (variances add: voxel errors independent).
    inside : (Z, Y, X) bool ndarray, Volume or LabelMap
        The body: non-zero voxels are inside (e.g. the body contour of the segmentation, or
        ``density >= 0.05``), on the TIA grid.
    mode : {"nearest", "zero"}
        ``"nearest"``: each outside voxel's TIA is added to the nearest inside voxel (Euclidean
        distance in voxel units, ``scipy.ndimage.distance_transform_edt``; total conserved).
        ``"zero"``: set to zero (total reduced by the outside share).

    Returns
    -------
    Volume
        Same grid and unit; ``history`` states the mode and the share moved.

    Raises
    ------
    InputError
        For an unknown mode, a non-Volume TIA or an empty mask (GeometryMismatchError for a
        mask on another grid).

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.volume import Volume
    >>> t = Volume.from_array(np.array([[[1.0, 2.0, 3.0]]]), spacing_mm=(4, 4, 4), unit="MBq*h")
    >>> confine_tia(t, np.array([[[True, True, False]]])).array.tolist()
    [[[1.0, 5.0, 0.0]]]
    """
    if mode not in CONFINE_MODES:
        raise InputError(f"unknown mode {mode!r}; accepted: {list(CONFINE_MODES)}",
                         field="mode")
    if not isinstance(tia, Volume) or isinstance(tia, LabelMap):
        raise InputError(f"expected a TIA Volume, got {type(tia).__name__}", field="tia")
    mask = _inside_mask(tia, inside)
    a = np.asarray(tia.array, dtype=np.float64)
    total = float(a.sum())
    outside_share = float(a[~mask].sum()) / total if total else 0.0
    out = np.where(mask, a, 0.0)
    var = None if tia.sigma is None else np.where(mask, np.asarray(tia.sigma, float) ** 2, 0.0)
    if mode == "nearest" and not mask.all():
        _, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
        target = tuple(i[~mask] for i in idx)
        np.add.at(out, target, a[~mask])
        if var is not None:
            np.add.at(var, target, np.asarray(tia.sigma, float)[~mask] ** 2)
    what = ("moved to the nearest voxel inside" if mode == "nearest" else "set to zero")
    return tia.replace(array=out, sigma=None if var is None else np.sqrt(var),
                       note=f"TIA outside the body ({100 * outside_share:.3g} % of the total) "
                            f"{what}")
