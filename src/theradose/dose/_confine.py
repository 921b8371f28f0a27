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

__all__ = ["CONFINE_MODES", "confine_frames", "confine_tia"]

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


def confine_frames(frames: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Move each frame's values outside ``inside`` to the nearest voxel inside (totals kept).

    The mechanism of :func:`confine_tia` for a stack of frames on one grid (the time points of
    a study): one distance transform (Euclidean, voxel units) serves them all.

    Parameters
    ----------
    frames : (T, Z, Y, X) ndarray
        Values that add (activity, TIA, variances).
    inside : (Z, Y, X) bool ndarray
        Voxels that may hold them.

    Returns
    -------
    frames : (T, Z, Y, X) ndarray
        Zero outside ``inside``; each frame's total unchanged.
    moved : list of float
        Per frame, the fraction of its total that was moved (0 for a zero frame).
    """
    a = np.asarray(frames, dtype=np.float64)
    m = np.asarray(inside, dtype=bool)
    if m.all() or not m.any():
        return a.copy(), [0.0] * a.shape[0]
    _, idx = ndimage.distance_transform_edt(~m, return_indices=True)
    target = np.ravel_multi_index(tuple(i[~m] for i in idx), m.shape)
    out = np.where(m, a, 0.0)
    moved = []
    for t in range(a.shape[0]):
        outside = a[t][~m]
        total = float(a[t].sum())
        moved.append(float(outside.sum()) / total if total > 0 else 0.0)
        np.add.at(out[t].reshape(-1), target, outside)
    return out, moved


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
    frames = [np.asarray(tia.array, dtype=np.float64)]
    if tia.sigma is not None:  # variances move with the values (independent voxel errors)
        frames.append(np.asarray(tia.sigma, dtype=np.float64) ** 2)
    stack = np.stack(frames)
    if mode == "nearest":
        stack, moved = confine_frames(stack, mask)
    else:
        total = float(stack[0].sum())
        moved = [float(stack[0][~mask].sum()) / total if total else 0.0]
        stack = np.where(mask, stack, 0.0)
    out, outside_share = stack[0], moved[0]
    var = stack[1] if tia.sigma is not None else None
    what = ("moved to the nearest voxel inside" if mode == "nearest" else "set to zero")
    return tia.replace(array=out, sigma=None if var is None else np.sqrt(var),
                       note=f"TIA outside the body ({100 * outside_share:.3g} % of the total) "
                            f"{what}")
