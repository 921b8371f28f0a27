"""Cross-engine report: the same TIA through several engines, per VOI and tissue class, and maps.

For results on one grid (LED, kernel, Monte Carlo, OpenGATE, ...) :func:`compare_dose_maps`
gives, per region (a VOI, or the whole image), and per tissue class within it (lung, bone, soft
tissue from a material label map), each engine's mass-weighted mean dose ± σ and its relative
difference to the reference engine, plus difference maps in Gy and in %.

* Mean dose of a region: ``Σ m_v D_v / Σ m_v`` (ICRU 85 energy over mass) with ``m_v`` from the
  ``density`` given (voxel volume weights when none is given).
* σ of a region mean: the engine's own exact VOI σ when the region is a VOI the result already
  holds (same name and voxels, no tissue split), else ``sqrt(Σ (m_v σ_v)²) / Σ m_v`` (voxels
  independent: exact for local deposition, a lower bound when a kernel or transport correlates
  voxel doses; Monte Carlo voxel errors are nearly independent).
* Relative difference ``mean_i / mean_ref − 1``; the % map is ``100 (D_i − D_ref) / D_ref`` where
  ``D_ref`` exceeds ``percent_threshold × max(D_ref)`` and NaN elsewhere (low-dose voxels would
  give meaningless ratios).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose.dose._result import DoseResult, _jsonable
from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.units import parse_unit
from theradose.volume import LabelMap, Volume

__all__ = ["DEFAULT_TISSUE_GROUPS", "DoseComparison", "compare_dose_maps"]

#: Tissue classes reported, as groups of :data:`theradose.materials.DEFAULT_MATERIAL_CLASSES`
#: names (a ``materials`` label map of :func:`theradose.materials.hu_to_material`).
DEFAULT_TISSUE_GROUPS: dict[str, tuple[str, ...]] = {
    "lung": ("lung",),
    "bone": ("spongiosa", "cortical_bone"),
    "soft_tissue": ("soft_tissue", "adipose"),
}


@dataclass(frozen=True, eq=False)
class DoseComparison:
    """Per-region comparison of dose maps from several engines.

    Attributes
    ----------
    labels : tuple of str
        Engine labels, in the order of the results.
    reference : str
        Label of the reference engine.
    rows : list of dict
        One per region and tissue class: ``{"region", "tissue", "mass_g", "n_voxels",
        "engines": [{"engine", "mean_gy", "sigma_gy", "relative_difference"}]}``;
        ``tissue`` is ``"all"`` for the whole region; ``relative_difference`` is None for the
        reference and where the reference mean is 0.
    difference_gy : dict of str to Volume
        ``D_i − D_ref`` (Gy) per non-reference engine.
    difference_percent : dict of str to Volume
        ``100 (D_i − D_ref) / D_ref`` (unit ``"1"``, percent; NaN below the threshold).
    map_summary : dict of str to dict
        Per non-reference engine: ``max_abs_difference_gy``, ``mean_difference_percent``,
        ``p95_abs_difference_percent`` over the voxels above the threshold, ``n_voxels``.
    options : dict
        ``percent_threshold``, tissue groups, whether density weights were used.
    """

    labels: tuple[str, ...]
    reference: str
    rows: list[dict[str, Any]]
    difference_gy: dict[str, Volume]
    difference_percent: dict[str, Volume]
    map_summary: dict[str, dict[str, float | int | None]]
    options: dict[str, Any] = field(default_factory=dict)

    def table(self, *, tissue: str | None = None) -> list[dict[str, Any]]:
        """Rows, optionally only those of one tissue class (``"all"``, ``"lung"``, ...)."""
        return [r for r in self.rows if tissue is None or r["tissue"] == tissue]

    def to_markdown(self, *, digits: int = 3) -> str:
        """Markdown table: region, tissue, mass, each engine's mean ± σ, and % differences."""
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
            raise InputError(f"digits must be an integer >= 1, got {digits!r}", field="digits")
        head = ["region", "tissue", "mass (g)"]
        for lab in self.labels:
            head.append(f"{lab} (Gy)")
            if lab != self.reference:
                head.append(f"{lab} vs {self.reference} (%)")
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.rows:
            cells = [str(r["region"]), str(r["tissue"]), f"{r['mass_g']:.4g}"]
            for c in r["engines"]:
                m, s = c["mean_gy"], c["sigma_gy"]
                cells.append("-" if m is None else f"{m:.{digits}g} ± {(s or 0.0):.2g}")
                if c["engine"] != self.reference:
                    rel = c["relative_difference"]
                    cells.append("-" if rel is None else f"{100 * rel:+.2f}")
            lines.append("| " + " | ".join(cells) + " |")
        if self.map_summary:
            lines += ["", "| engine | max abs diff (Gy) | mean diff (%) | P95 abs diff (%) |"
                      " voxels |", "|---|---|---|---|---|"]
            for lab, s in self.map_summary.items():
                def f(x: Any, fmt: str) -> str:
                    return "-" if x is None else format(x, fmt)
                lines.append(f"| {lab} vs {self.reference} | "
                             f"{f(s['max_abs_difference_gy'], '.3g')} | "
                             f"{f(s['mean_difference_percent'], '+.2f')} | "
                             f"{f(s['p95_abs_difference_percent'], '.2f')} | {s['n_voxels']} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no voxel arrays)."""
        return _jsonable({"labels": list(self.labels), "reference": self.reference,
                          "rows": self.rows, "map_summary": self.map_summary,
                          "options": self.options})


def _labels(results: Sequence[DoseResult], labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        out: list[str] = []
        for r in results:
            base = r.engine or "engine"
            name, k = base, 2
            while name in out:
                name, k = f"{base}#{k}", k + 1
            out.append(name)
        return out
    if isinstance(labels, str) or len(labels) != len(results):
        raise InputError(f"expected {len(results)} labels (one per result), got {labels!r}",
                         field="labels")
    out = [str(x) for x in labels]
    if len(set(out)) != len(out):
        raise InputError(f"labels must be unique, got {out}", field="labels")
    return out


def _gy(r: DoseResult, i: int) -> tuple[np.ndarray, np.ndarray]:
    unit = parse_unit(r.dose.unit, field=f"results[{i}].dose.unit")
    if unit.dimension not in ("absorbed_dose", "absorbed_dose_rate"):
        raise UnitError(f"expected a dose map (Gy, mGy, Gy/h), got unit {r.dose.unit!r}",
                        field=f"results[{i}].dose.unit")
    d = np.asarray(r.dose.array, dtype=np.float64) * unit.to_base
    s = np.zeros_like(d) if r.sigma is None else np.asarray(r.sigma.array, np.float64) * \
        unit.to_base
    return d, s


def _check_grid(ref: Volume, other: Volume, field: str) -> None:
    try:
        ref.geometry.require_same(other.geometry, what=f"results[reference] and {field}")
    except GeometryMismatchError as exc:
        raise GeometryMismatchError(exc.detail, field=field) from None


def compare_dose_maps(results: Sequence[DoseResult], labels: Sequence[str] | None = None,
                      reference: int = 0, *, voi: LabelMap | None = None,
                      materials: LabelMap | None = None, density: Volume | float | None = None,
                      tissue_groups: Mapping[str, Sequence[str]] | None = None,
                      percent_threshold: float = 0.01) -> DoseComparison:
    """Compare dose maps of several engines run on the same input (module docstring).

    Parameters
    ----------
    results : sequence of DoseResult
        Two or more results on one grid (dose in Gy; mGy and Gy/h are accepted, converted
        to the base unit of their dimension, and must all share that dimension).
    labels : sequence of str, optional
        Engine labels (default: the results' engine names, numbered when repeated).
    reference : int
        Index of the reference result.
    voi : LabelMap, optional
        Regions; default: the whole image as one region ``"image"``.
    materials : LabelMap, optional
        Material classes (``theradose.materials.hu_to_material``) on the same grid: adds rows
        per tissue class within every region.
    density : Volume or float, optional
        g/cm³ for mass weights (default: equal voxel volumes; masses then read 1 g/mL).
    tissue_groups : mapping of str to sequence of str, optional
        Tissue class → material names (default :data:`DEFAULT_TISSUE_GROUPS`).
    percent_threshold : float
        Fraction of the reference maximum below which the % map is NaN (default 0.01).

    Returns
    -------
    DoseComparison

    Raises
    ------
    InputError
        Fewer than two results, a non-DoseResult, bad labels or reference, mismatched grids
        (GeometryMismatchError), non-dose units (UnitError), unknown material names, bad
        threshold or density.
    """
    if isinstance(results, DoseResult) or not isinstance(results, Sequence) or len(results) < 2:
        raise InputError("need a sequence of at least two DoseResults to compare",
                         field="results")
    for i, r in enumerate(results):
        if not isinstance(r, DoseResult):
            raise InputError(f"expected DoseResult, got {type(r).__name__}",
                             field=f"results[{i}]")
    names = _labels(results, labels)
    if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) \
            or not -len(results) <= reference < len(results):
        raise InputError(f"reference must be an index in [0, {len(results) - 1}], got "
                         f"{reference!r}", field="reference")
    ref_i = int(reference) % len(results)
    if isinstance(percent_threshold, bool) or not isinstance(percent_threshold, (int, float)) \
            or not 0 <= percent_threshold < 1:
        raise InputError(f"percent_threshold must be a number in [0, 1), got "
                         f"{percent_threshold!r}", field="percent_threshold")
    ref_vol = results[ref_i].dose
    dims = set()
    maps = []
    for i, r in enumerate(results):
        _check_grid(ref_vol, r.dose, f"results[{i}].dose")
        dims.add(parse_unit(r.dose.unit, field=f"results[{i}].dose.unit").dimension)
        maps.append(_gy(r, i))
    if len(dims) > 1:
        raise UnitError(f"results mix dose and dose rate ({sorted(dims)})", field="results")
    geom = ref_vol.geometry
    vox_ml = geom.voxel_volume_ml
    if density is None:
        mass = np.full(geom.shape, vox_ml)
    elif isinstance(density, Volume):
        if parse_unit(density.unit, field="density.unit").dimension != "mass_density":
            raise UnitError(f"expected g/cm3, got unit {density.unit!r}", field="density.unit")
        _check_grid(ref_vol, density, "density")
        mass = np.asarray(density.array, np.float64) * vox_ml
    elif isinstance(density, (int, float)) and not isinstance(density, bool) and density > 0:
        mass = np.full(geom.shape, float(density) * vox_ml)
    else:
        raise InputError(f"expected a density Volume (g/cm3) or a number > 0, got {density!r}",
                         field="density")
    if not np.all(np.isfinite(mass)) or np.any(mass < 0):
        raise InputError("density must be finite and >= 0", field="density")
    regions: list[tuple[str, int | None, np.ndarray]]
    if voi is None:
        regions = [("image", None, np.ones(geom.shape, bool))]
    else:
        if not isinstance(voi, LabelMap):
            raise InputError(f"expected a LabelMap, got {type(voi).__name__}", field="voi")
        _check_grid(ref_vol, voi, "voi")
        regions = [(n, v, voi.array == v) for v, n in sorted(voi.names.items())]
    groups: dict[str, np.ndarray] = {}
    tg = dict(DEFAULT_TISSUE_GROUPS if tissue_groups is None else tissue_groups)
    if materials is not None:
        if not isinstance(materials, LabelMap):
            raise InputError(f"expected a LabelMap of material classes, got "
                             f"{type(materials).__name__}", field="materials")
        _check_grid(ref_vol, materials, "materials")
        known = materials.labels
        for g, mats in tg.items():
            if isinstance(mats, str):
                mats = (mats,)
            unknown = [m for m in mats if m not in known]
            if unknown:
                raise InputError(f"material {unknown[0]!r} of tissue group {g!r} is not in the "
                                 f"material map {sorted(known)}", field=f"tissue_groups.{g}")
            groups[g] = np.isin(materials.array, [known[m] for m in mats])
    rows = []
    for rname, rlabel, rmask in regions:
        for tissue, mask in [("all", rmask)] + [(g, rmask & gm) for g, gm in groups.items()]:
            n = int(mask.sum())
            if n == 0:
                continue
            m = mass[mask]
            msum = float(m.sum())
            cells = []
            means = []
            for i, (d, s) in enumerate(maps):
                if msum > 0:
                    mean = float(np.dot(m, d[mask]) / msum)
                    sig = float(np.sqrt(np.sum((m * s[mask]) ** 2)) / msum)
                else:
                    mean = sig = float("nan")
                if tissue == "all" and rlabel is not None:  # the engine's exact VOI σ
                    for v in results[i].voi:
                        if v.name == rname and v.label == rlabel and v.n_voxels == n:
                            sig = v.sigma_gy
                means.append(mean)
                cells.append({"engine": names[i], "mean_gy": _f(mean), "sigma_gy": _f(sig)})
            mref = means[ref_i]
            for i, c in enumerate(cells):
                ok = i != ref_i and math.isfinite(mref) and mref != 0 and \
                    math.isfinite(means[i])
                c["relative_difference"] = means[i] / mref - 1.0 if ok else None
            rows.append({"region": rname, "tissue": tissue, "mass_g": msum, "n_voxels": n,
                         "engines": cells})
    dref = maps[ref_i][0]
    dmax = float(np.max(dref)) if dref.size else 0.0
    above = dref > percent_threshold * dmax if dmax > 0 else np.zeros(dref.shape, bool)
    diff_gy, diff_pc, summary = {}, {}, {}
    diff_unit = "Gy" if dims == {"absorbed_dose"} else "Gy/h"
    for i, (d, _) in enumerate(maps):
        if i == ref_i:
            continue
        delta = d - dref
        pc = np.full(delta.shape, np.nan)
        np.divide(100.0 * delta, dref, out=pc, where=above)
        lab = names[i]
        hist = (*ref_vol.history, f"dose difference {lab} - {names[ref_i]}")
        diff_gy[lab] = Volume(delta, geom, unit=diff_unit, modality="OT", history=hist)
        diff_pc[lab] = Volume(pc, geom, unit="1", modality="OT",
                              history=(*hist[:-1], f"{hist[-1]} (% of reference)"))
        sel = pc[above]
        summary[lab] = {
            "max_abs_difference_gy": _f(float(np.max(np.abs(delta)))) if delta.size else None,
            "mean_difference_percent": _f(float(np.mean(sel))) if sel.size else None,
            "p95_abs_difference_percent": _f(float(np.percentile(np.abs(sel), 95)))
            if sel.size else None,
            "n_voxels": int(sel.size)}
    opts = {"percent_threshold": float(percent_threshold),
            "tissue_groups": {k: list((v,) if isinstance(v, str) else v) for k, v in tg.items()}
            if materials is not None else None,
            "mass_weights": "density" if density is not None else "voxel volume"}
    return DoseComparison(tuple(names), names[ref_i], rows, diff_gy, diff_pc, summary, opts)


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
