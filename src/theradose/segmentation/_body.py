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

__all__ = ["activity_region", "body_contour"]

#: Low-density regions inside the body at least this large (mL) are lung (parenchyma carries
#: blood and activity down to −950 HU); smaller ones are gas pockets (bowel, stomach, airway).
LUNG_MIN_ML = 250.0


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


def activity_region(ct_hu: np.ndarray, body: np.ndarray, spacing_mm, *,
                    soft_hu: float = -500.0, lung_floor_hu: float = -950.0,
                    lung_min_ml: float = LUNG_MIN_ML) -> np.ndarray:
    """Voxels of the body that can hold activity: tissue, and lung parenchyma.

    Inside the body contour, voxels above ``soft_hu`` (fat, soft tissue, bone) hold activity.
    Below it lie lung and gas. Lung parenchyma (about −850 HU, 0.15-0.3 g/cm³) carries blood
    and takes up activity; a gas pocket (bowel, stomach, airway) does not, and its edge voxels,
    part gas and part wall, have densities down to ~0.05 g/cm³: counts the camera's blur puts
    there are the wall's, and left in place a dose engine divides them by that small mass
    (×20 at 0.05 g/cm³). The two are told apart by size: a connected low-density region of at
    least ``lung_min_ml`` (a lung is 1-3 L; bowel gas pockets are tens to a few hundred mL) is
    lung, and its voxels above ``lung_floor_hu`` hold activity; the rest holds none.

    Parameters
    ----------
    ct_hu : (Z, Y, X) ndarray
        CT, HU.
    body : (Z, Y, X) bool ndarray
        The body contour (:func:`body_contour`).
    spacing_mm : sequence of 3 float
        Voxel size ``(x, y, z)``, mm.
    soft_hu, lung_floor_hu : float
        Tissue threshold and the lowest lung density (−950 HU, the emphysema threshold).
    lung_min_ml : float
        Smallest low-density region taken as lung, mL.

    Returns
    -------
    (Z, Y, X) bool ndarray
    """
    a = np.asarray(ct_hu)
    b = np.asarray(body, bool)
    if a.shape != b.shape or a.ndim != 3:
        raise InputError(f"ct_hu {a.shape} and body {b.shape} must be 3-D arrays of one shape",
                         field="body")
    voxel_ml = float(np.prod([float(x) for x in spacing_mm])) / 1000.0
    low = b & (a <= soft_hu)
    lab, n = ndimage.label(low, structure=np.ones((3, 3, 3), bool))
    lung = np.zeros(a.shape, bool)
    if n:
        sizes = np.bincount(lab.ravel()) * voxel_ml
        big = np.flatnonzero(sizes >= lung_min_ml)
        big = big[big > 0]
        if big.size:
            lung = np.isin(lab, big)
    return b & ((a > soft_hu) | (lung & (a > lung_floor_hu)))
