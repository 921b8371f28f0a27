"""Dose stage of the pipeline: voxel engines on the TIA map, organ S-values on the organ TIAs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from theradose.errors import InputError
from theradose.volume import LabelMap, Volume

__all__ = ["SVALUE_ORGAN", "dose_stage", "organ_svalue_doses"]

log = logging.getLogger("theradose")

#: VOI name (as in the virtual patients' SEG and common CT segmentations) → organ of the
#: S-value tables (``theradose.dose.mc.ORGANS``). Several VOIs may feed one organ (left + right
#: kidney); the organ's dose is then reported for each of them.
SVALUE_ORGAN: dict[str, str] = {
    "kidney_left": "kidneys", "kidney_right": "kidneys", "kidneys": "kidneys",
    "liver": "liver", "spleen": "spleen", "lungs": "lungs", "brain": "brain",
    "pancreas": "pancreas", "stomach": "stomach", "small_bowel": "small_bowel",
    "colon": "colon", "prostate": "prostate", "testes": "testes", "uterus": "uterus",
    "ovaries": "ovaries", "thyroid_gland": "thyroid", "thyroid": "thyroid",
    "salivary_glands": "salivary_glands", "lacrimal_glands": "lacrimal_glands",
    "heart": "heart_wall", "red_marrow": "red_marrow",
}


def organ_svalue_doses(tia: dict[str, tuple[float, float]], masses_g: dict[str, float],
                       total_tia_mbq_h: float, nuclide: str, phantom: str
                       ) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Organ doses (Gy, σ) per VOI from VOI TIAs with the reference phantom's S-values.

    VOIs map to S-value organs by :data:`SVALUE_ORGAN` (TIAs and masses of VOIs of one organ
    are summed; σ added in quadrature); the rest of ``total_tia_mbq_h`` (the TIA imaged in the
    field of view outside the mapped VOIs) is the ``remainder`` source. VOIs without an organ
    (lesions, bladder, vessels) get no S-value dose.

    References
    ----------
    Bolch et al. 2009, MIRD Pamphlet No. 21, J Nucl Med 50:477, doi:10.2967/jnumed.108.056036.

    """
    from theradose.dose.mc import organ_doses

    src: dict[str, float] = {}
    var: dict[str, float] = {}
    mass: dict[str, float] = {}
    for name, (value, sd) in tia.items():
        organ = SVALUE_ORGAN.get(name)
        if organ is None or not np.isfinite(value):
            continue
        src[organ] = src.get(organ, 0.0) + max(float(value), 0.0)
        var[organ] = var.get(organ, 0.0) + float(sd if np.isfinite(sd) else 0.0) ** 2
        if name in masses_g:
            mass[organ] = mass.get(organ, 0.0) + float(masses_g[name])
    if not src:
        return {}, {"note": "no VOI maps to an organ of the S-value tables"}
    rest = max(float(total_tia_mbq_h) - sum(src.values()), 0.0)
    tias = {**src, "remainder": rest}
    res = organ_doses(tias, nuclide, phantom, masses_g=mass or None,
                      tia_sigma={k: float(np.sqrt(v)) for k, v in var.items()})
    out = {name: res.dose(SVALUE_ORGAN[name]) for name in tia if name in SVALUE_ORGAN
           and SVALUE_ORGAN[name] in res.targets}
    info = {"phantom": phantom, "organs": {k: float(v) for k, v in tias.items()},
            "masses_g": mass, "provenance": getattr(res, "provenance", {})}
    return out, info


def dose_stage(tia: Volume, density: Volume, labels: LabelMap, nuclide: str,
               engines: list[str], options: dict[str, dict[str, Any]],
               organ_tia: dict[str, tuple[float, float]], phantom: str
               ) -> tuple[dict[str, Any], dict[str, dict[str, tuple[float, float]]],
                          dict[str, Any]]:
    """Run the configured engines.

    Returns
    -------
    maps : dict
        Engine name → :class:`~theradose.dose.DoseResult` (voxel engines only).
    per_voi : dict
        Engine name → {VOI: (mean Gy, σ Gy)}.
    info : dict
        Engine name → provenance (JSON-ready).

    """
    from theradose.dose import get_engine

    maps: dict[str, Any] = {}
    per_voi: dict[str, dict[str, tuple[float, float]]] = {}
    info: dict[str, Any] = {}
    masses: dict[str, float] = {}
    for i, name in enumerate(engines):
        if name == "organ_svalues":
            continue
        eng = get_engine(name, field=f"dose.engines[{i}]", **options.get(name, {}))
        res = eng.compute(tia, density, nuclide, labels=labels)  # σ: tia.sigma
        maps[name] = res
        per_voi[name] = {v.name: (float(v.mean_gy), float(v.sigma_gy)) for v in res.voi}
        masses = masses or {v.name: float(v.mass_g) for v in res.voi}
        info[name] = res.provenance
    if "organ_svalues" in engines:
        if not masses:  # mass from the density map
            vml = labels.geometry.voxel_volume_ml
            masses = {n: float(np.sum(density.array[m]) * vml)
                      for n, m in labels.masks().items()}
        total = float(np.sum(tia.array, dtype=np.float64))
        try:
            per_voi["organ_svalues"], info["organ_svalues"] = organ_svalue_doses(
                organ_tia, masses, total, nuclide, phantom)
        except InputError as exc:
            log.warning("organ S-value doses skipped: %s", exc)
            info["organ_svalues"] = {"error": str(exc)}
            per_voi["organ_svalues"] = {}
    return maps, per_voi, info
