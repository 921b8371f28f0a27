"""Plausibility of a study against what the clinic knows: administered activity and CT units.

Two mistakes leave every file valid and every number wrong: a calibration factor or an
administered activity in the wrong unit (cps/kBq for cps/MBq, MBq for GBq), and a CT whose
values are not Hounsfield units (a lost RescaleIntercept: air reads 0 instead of −1000, so the
densities and the body contour are wrong). Neither can be proved wrong from one image, so each
is a :class:`~theradose.errors.TheradoseWarning` (collected into ``results.json`` and on the
report's first page) and a number in ``results.json``:

* **activity balance** — the activity in each SPECT's field of view over the administered
  activity decayed to the scan, ``f = A_image(t) / (A_0 exp(−λ t))``. Activity is conserved,
  so ``f ≤ 1`` up to the quantification error of SPECT/CT (≈ ±10 %, Dewaraja et al., MIRD
  Pamphlet 23, J Nucl Med 2012;53:1310; Ljungberg et al., MIRD Pamphlet 26, J Nucl Med
  2016;57:151); above :data:`BALANCE_HIGH` the calibration or the administered activity is
  wrong. Below :data:`BALANCE_LOW` (0.5 %) the image holds almost nothing of what was given:
  a unit error (cps/kBq, GBq) moves ``f`` by a factor 1000, and 0.5 % is 200 times below the
  conserved maximum, which leaves room for a field of view that misses most of the body and
  for fast excretion.
* **CT in HU** — a body CT contains air around the patient or in the lungs; if fewer than
  :data:`AIR_FRACTION_MIN` of its voxels are below −500 HU, it is probably not in HU.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from theradose.errors import TheradoseWarning
from theradose.io._decay import decay_factor
from theradose.nuclides import get_nuclide
from theradose.volume import Volume

__all__ = ["AIR_FRACTION_MIN", "BALANCE_HIGH", "BALANCE_LOW", "activity_balance",
           "check_ct_units"]

#: Image activity above this fraction of the decayed administered activity is impossible.
BALANCE_HIGH = 1.25
#: Image activity below this fraction of the decayed administered activity is implausible.
BALANCE_LOW = 0.005
#: Fewer voxels than this below −500 HU: the CT is probably not in Hounsfield units.
AIR_FRACTION_MIN = 0.001


def activity_balance(study, files: list[str | None]) -> list[dict[str, Any]]:
    """Image activity over the decayed administered activity, per therapy time point.

    Parameters
    ----------
    study : theradose.io.Study
        The loaded study (emission images in an activity concentration).
    files : list of str or None
        The emission file of each time point (named in warnings).

    Returns
    -------
    list of dict
        ``{"image_mbq", "administered_decayed_mbq", "fraction"}`` per time point.

    Warns
    -----
    TheradoseWarning
        A fraction above :data:`BALANCE_HIGH` or below :data:`BALANCE_LOW`.

    """
    adm = study.administration
    half_life_h = get_nuclide(adm.nuclide).half_life_h
    out = []
    for tp, file in zip(study.time_points, files, strict=True):
        e = tp.emission.to_unit("Bq/mL")
        image_mbq = float(np.sum(e.array, dtype=np.float64)) * e.geometry.voxel_volume_ml / 1e6
        given = adm.injected_activity_mbq * decay_factor(tp.time_h, half_life_h)
        f = image_mbq / given
        out.append({"image_mbq": image_mbq, "administered_decayed_mbq": given, "fraction": f})
        where = (f"{file}: activity: the image holds {image_mbq:.4g} MBq at {tp.time_h:.4g} h, "
                 f"{100 * f:.3g} % of the administered {adm.injected_activity_mbq:.4g} MBq "
                 f"decayed to the scan ({given:.4g} MBq)")
        if f > BALANCE_HIGH:
            warnings.warn(f"{where}: more than was given; check the calibration factor "
                          "(cps/MBq) and the administered activity (MBq)", TheradoseWarning,
                          stacklevel=2)
        elif f < BALANCE_LOW:
            warnings.warn(f"{where}: implausibly little; check the calibration factor "
                          "(cps/MBq, not cps/kBq) and the administered activity (MBq, not GBq)",
                          TheradoseWarning, stacklevel=2)
    return out


def check_ct_units(ct: Volume, file: str | None) -> float:
    """Fraction of CT voxels below −500 HU; warns when it is below :data:`AIR_FRACTION_MIN`."""
    a = np.asarray(ct.array)
    frac = float(np.count_nonzero(a < -500)) / a.size if a.size else 0.0
    if frac < AIR_FRACTION_MIN:
        warnings.warn(f"{file}: HU: only {100 * frac:.3g} % of the CT's voxels are below "
                      f"-500 HU (min {float(a.min()):.4g}); a body CT has air around the patient "
                      "and in the lungs: is the CT in Hounsfield units (RescaleIntercept)?",
                      TheradoseWarning, stacklevel=2)
    return frac
