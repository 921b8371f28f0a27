"""SUV metrics of VOIs: SUVmax, SUVmean, SUVpeak, metabolic volume, total uptake, ratios.

Definitions
-----------
* ``suv_max``, ``suv_mean``, ``suv_sd``: over the VOI's voxels.
* ``suv_peak``: the highest mean SUV in a 1 cm³ sphere (radius 6.2 mm) whose centre is a voxel
  of the VOI — PERCIST 1.0 (Wahl et al., J Nucl Med 2009;50 Suppl 1:122S) and IBSI's *global
  intensity peak* (Zwanenburg et al., Radiology 2020;295:328; IBSI reference manual §3.2.2). The
  sphere holds the voxels whose centres lie within 6.2 mm of its centre (IBSI); it may extend
  beyond the VOI (the surrounding uptake is part of the measurement, as in PERCIST).
* ``suv_peak_local``: the same sphere centred on the VOI's hottest voxel (IBSI *local intensity
  peak*, §3.2.1; among voxels of equal maximum, the highest mean).
* ``volume_ml``: the VOI's volume (the metabolic tumour volume, MTV, when the VOI is a lesion
  segmented on the PET); ``total_uptake_g``: ``suv_mean × volume_ml`` (SUV in g/mL, so g; the
  total lesion glycolysis TLG of FDG, the total lesion uptake TLU of PSMA/SSTR PET).
* ``ratio_to_<reference>``: ``suv_mean`` over the reference VOI's ``suv_mean`` (tumour-to-liver,
  organ-to-blood ratios; references present in the label map only).

The peak sphere is sampled on the image grid, so on coarse voxels its volume is not 1 mL
(4 mm voxels: 19 voxels, 1.22 mL; 4.8 mm: 7 voxels, 0.77 mL): ``peak_voxels`` and
``peak_volume_ml`` report it rather than hide it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from theradose import __version__
from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.volume import LabelMap, Volume

__all__ = ["PEAK_RADIUS_MM", "suv_metrics"]

#: Radius of the 1 cm³ sphere of SUVpeak (PERCIST, IBSI): (3 / (4π) cm³)^(1/3) = 6.2035 mm.
PEAK_RADIUS_MM = 6.2035

_REFERENCES = ("liver", "aorta", "heart_blood_pool", "spleen")


def _sphere(spacing_xyz: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Boolean (z, y, x) kernel of the voxels whose centres lie within ``radius_mm``."""
    sx, sy, sz = spacing_xyz
    n = [int(np.floor(radius_mm / s)) for s in (sz, sy, sx)]
    z, y, x = np.ogrid[-n[0]:n[0] + 1, -n[1]:n[1] + 1, -n[2]:n[2] + 1]
    return (z * sz) ** 2 + (y * sy) ** 2 + (x * sx) ** 2 <= radius_mm ** 2 * (1 + 1e-12)


def suv_metrics(suv: Volume, labels: LabelMap, *, names: list[str] | None = None,
                references: tuple[str, ...] = _REFERENCES) -> dict[str, dict[str, Any]]:
    """SUV metrics of every VOI (definitions in the module docstring).

    Parameters
    ----------
    suv : Volume
        PET in SUV (unit ``g/mL``, e.g. from :func:`theradose.io.to_suv`).
    labels : LabelMap
        VOIs on the same grid as ``suv``.
    names : list of str, optional
        VOIs to describe (default: every named VOI).
    references : tuple of str
        VOIs that ratios refer to when present (liver, blood pool, ...).

    Returns
    -------
    dict
        ``{voi: {"suv_max", "suv_mean", "suv_sd", "suv_peak", "suv_peak_local", "peak_voxels",
        "peak_volume_ml", "volume_ml", "total_uptake_g", "n_voxels", "ratio_to_<ref>"...}}``
        plus ``"provenance"``.

    Raises
    ------
    UnitError
        ``suv`` is not in g/mL.
    GeometryMismatchError
        ``labels`` on another grid.
    InputError
        Non-finite SUV values, an unknown or empty VOI.

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.volume import Geometry, LabelMap, Volume
    >>> g = Geometry((5, 5, 5), (4.0, 4.0, 4.0))
    >>> lab = LabelMap(np.ones((5, 5, 5), np.uint8), g, names={1: "liver"})
    >>> m = suv_metrics(Volume(np.full((5, 5, 5), 6.0), g, unit="g/mL", modality="PT"), lab)
    >>> m["liver"]["suv_peak"], m["liver"]["volume_ml"]
    (6.0, 8.0)

    """
    if suv.unit != "g/mL":
        raise UnitError(f"SUV metrics need an SUV image (g/mL), got {suv.unit!r}; convert with "
                        "theradose.io.to_suv", file=suv.meta.get("source_file"), field="unit")
    if not labels.geometry.same_as(suv.geometry):
        raise GeometryMismatchError("the label map is on another grid than the PET; resample "
                                    "it first", file=labels.meta.get("source_file"),
                                    field="geometry")
    img = np.asarray(suv.array, dtype=np.float64)
    if not np.all(np.isfinite(img)):
        raise InputError(f"{int(np.count_nonzero(~np.isfinite(img)))} non-finite SUV values",
                         file=suv.meta.get("source_file"), field="values")
    known = list(labels.names.values())
    names = known if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown VOI(s) {unknown}; the label map has {sorted(known)}",
                         field="names")
    ball = _sphere(suv.geometry.spacing_mm, PEAK_RADIUS_MM)
    # mean over the sphere around every voxel; outside the image the sphere is cut (mode
    # "constant" with a count of the voxels inside, so border spheres average what exists)
    inside = ndimage.convolve(np.ones_like(img), ball.astype(np.float64), mode="constant")
    peak_map = ndimage.convolve(img, ball.astype(np.float64), mode="constant") / inside
    v_ml = suv.geometry.voxel_volume_ml
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        m = labels.mask(name)
        n = int(np.count_nonzero(m))
        if n == 0:
            raise InputError(f"VOI {name!r} has no voxels", file=labels.meta.get("source_file"),
                             field="names")
        vals = img[m]
        top = float(vals.max())
        hottest = m & (img == top)
        mean = float(np.mean(vals))
        out[name] = {
            "suv_max": top, "suv_mean": mean, "suv_sd": float(np.std(vals)),
            "suv_peak": float(peak_map[m].max()),
            "suv_peak_local": float(peak_map[hottest].max()),
            "peak_voxels": int(ball.sum()), "peak_volume_ml": float(ball.sum() * v_ml),
            "volume_ml": n * v_ml, "total_uptake_g": mean * n * v_ml, "n_voxels": n,
        }
    ref_means = {ref: out[ref]["suv_mean"] if ref in out else
                 float(np.mean(img[labels.mask(ref)])) for ref in references if ref in known}
    for name, entry in out.items():
        for ref, ref_mean in ref_means.items():
            if ref != name:
                entry[f"ratio_to_{ref}"] = entry["suv_mean"] / ref_mean if ref_mean > 0 \
                    else None
    out["provenance"] = {
        "theradose": __version__, "peak_radius_mm": PEAK_RADIUS_MM,
        "method": "SUVpeak: highest mean in a 1 cm3 sphere (voxel centres within 6.2 mm) "
                  "centred in the VOI (PERCIST 1.0; IBSI global intensity peak); "
                  "suv_peak_local: centred on the hottest voxel (IBSI local intensity peak)"}
    return out
