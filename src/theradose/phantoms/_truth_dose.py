"""Reference absorbed-dose maps of a virtual patient's TRUE TIA map (``truth/dose_<engine>``).

The dose engines of :mod:`theradose.dose` are run on the true therapy TIA map with the true
density (and, for Monte Carlo, the true materials) of the reference frame, so that every later
stage (kinetics from images, registration, partial-volume correction, kernel vs Monte Carlo) can
be scored against the dose it should have found. Organ values are the mass-weighted means over
each organ's regions (the organ table of ``truth.json``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from theradose.errors import InputError
from theradose.volume import LabelMap, Volume

__all__ = ["TRUTH_DOSE_ENGINES", "truth_doses"]

#: Engines that can be asked for, with the options used for the truth maps.
TRUTH_DOSE_ENGINES: dict[str, dict[str, Any]] = {
    "led": {},
    "kernel": {"medium": "soft_tissue"},
    "montecarlo": {"n_histories": 2_000_000, "electrons": "kernel"},
}


def _organ_labels(labels: LabelMap, organs: Mapping[str, Mapping[str, Any]]) -> LabelMap:
    """One label per organ of the truth table (its regions merged)."""
    arr = np.zeros(labels.array.shape, dtype=np.int32)
    names: dict[int, str] = {}
    lut = labels.labels  # region name -> label value
    for i, (organ, rec) in enumerate(sorted(organs.items()), start=1):
        vals = [lut[r] for r in rec["regions"] if r in lut]
        sel = np.isin(labels.array, vals) & (arr == 0)
        if sel.any():
            arr[sel] = i
            names[i] = organ
    return LabelMap(arr, labels.geometry, names=names)


def truth_doses(tia: Volume, density: Volume, labels: LabelMap,
                organs: Mapping[str, Mapping[str, Any]], nuclide: str,
                engines: Sequence[str], *, seed: int = 0
                ) -> tuple[dict[str, Volume], dict[str, Any]]:
    """Dose maps and per-organ doses of the true TIA map for each requested engine.

    Parameters
    ----------
    tia : Volume
        True therapy TIA per voxel (MBq·h), reference frame.
    density : Volume
        True density (g/cm³), same grid.
    labels : LabelMap
        Fine regions, same grid.
    organs : mapping
        ``truth.json["organs"]`` (each with its ``regions``).
    nuclide : str
        Therapy nuclide.
    engines : sequence of str
        Names from :data:`TRUTH_DOSE_ENGINES`.
    seed : int
        Monte Carlo seed.

    Returns
    -------
    maps : dict of str to Volume
        Dose map (Gy) per engine, σ in ``Volume.sigma``.
    record : dict
        ``{engine: {"organs": {organ: {"mean_gy", "sigma_gy", "mass_g"}},
        "regions": {fine region: {"mean_gy"}}, "provenance"}}``.
    """
    from theradose.dose import get_engine

    unknown = [e for e in engines if e not in TRUTH_DOSE_ENGINES]
    if unknown:
        raise InputError(f"unknown truth dose engine(s) {unknown}; accepted: "
                         f"{sorted(TRUTH_DOSE_ENGINES)}", field="truth_dose")
    organ_lab = _organ_labels(labels, organs)
    maps: dict[str, Volume] = {}
    record: dict[str, Any] = {}
    for name in engines:
        opts = dict(TRUTH_DOSE_ENGINES[name])
        if name == "montecarlo":
            opts["seed"] = seed
        res = get_engine(name, **opts).compute(tia, density, nuclide, labels=organ_lab)
        maps[name] = res.dose.replace(sigma=res.sigma.array)
        record[name] = {
            "organs": {v.name: {"mean_gy": v.mean_gy, "sigma_gy": v.sigma_gy,
                                "mass_g": v.mass_g} for v in res.voi},
            "regions": _region_means(res.dose.array, density.array, labels),
            "provenance": res.to_dict().get("provenance", {}),
        }
    return maps, record


def _region_means(dose: np.ndarray, density: np.ndarray, labels: LabelMap) -> dict[str, Any]:
    """Mass-weighted mean dose (Gy) of every fine region (lesions one by one, for instance)."""
    lab = labels.array.ravel()
    n = max(labels.names, default=0) + 1
    m = np.bincount(lab, weights=density.ravel(), minlength=n)
    e = np.bincount(lab, weights=(dose * density).ravel(), minlength=n)
    return {name: {"mean_gy": float(e[v] / m[v])} for v, name in labels.names.items()
            if m[v] > 0}
