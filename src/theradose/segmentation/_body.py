"""The patient's body contour on a CT: the external outline, with lungs and gas inside it.

Dose maps, activity confinement and partial-volume backgrounds need "inside the patient".
A fixed HU threshold is not it: lung, airways and bowel gas are inside the patient but below
any soft-tissue threshold, and a loose threshold (−950 HU) keeps the partial-volume voxels of
the skin and the couch. The external contour of radiotherapy planning is used instead: voxels
above a threshold between air and fat (−500 HU by default, half way from air at −1000 to
water at 0; fat is about −100 HU), the largest connected component (the couch and noise are
separate), with the holes in each axial slice filled (lungs, trachea, bowel gas).

References
----------
AAPM Task Group 263 (Mayo et al. 2018, Med Phys 45:e1-e20, doi:10.1002/mp.12683): the
"External"/"Body" structure as the patient's outer contour. The −500 HU threshold is the
mid-point between air and water, the usual automatic external-contour setting of planning
systems.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from theradose.errors import InputError

__all__ = ["body_contour"]


def body_contour(ct_hu: np.ndarray, *, threshold_hu: float = -500.0) -> np.ndarray:
    """Boolean mask of the patient's body (external contour, internal air included).

    Parameters
    ----------
    ct_hu : (Z, Y, X) ndarray
        CT in Hounsfield units, ``[z, y, x]`` with z the axial (slice) axis.
    threshold_hu : float
        Voxels above it are tissue (−500 HU: half way between air and water).

    Returns
    -------
    (Z, Y, X) bool ndarray
        The largest connected (26-neighbour) component above the threshold, with the holes of
        each axial slice filled. All False when no voxel is above the threshold.

    Raises
    ------
    InputError
        A CT that is not a 3-D array of finite numbers.

    Examples
    --------
    >>> import numpy as np
    >>> ct = np.full((3, 9, 9), -1000.0)
    >>> ct[:, 2:7, 2:7] = 40.0
    >>> ct[:, 4, 4] = -900.0          # gas inside
    >>> ct[:, 0, 0] = 40.0            # a separate speck (couch, noise)
    >>> m = body_contour(ct)
    >>> int(m.sum()), bool(m[1, 4, 4]), bool(m[1, 0, 0])
    (75, True, False)
    """
    a = np.asarray(ct_hu)
    if a.ndim != 3:
        raise InputError(f"expected a 3-D [z, y, x] CT, got {a.ndim}-D", field="ct_hu")
    if not np.all(np.isfinite(a)):
        raise InputError("holds non-finite values (NaN or inf)", field="ct_hu")
    above = a > threshold_hu
    lab, n = ndimage.label(above, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros(a.shape, bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    for z in range(body.shape[0]):
        if body[z].any():
            body[z] = ndimage.binary_fill_holes(body[z])
    return body
