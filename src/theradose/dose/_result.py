"""Result of a dose engine: dose map ± σ, per-VOI doses, provenance; engine comparison tables.

Per-VOI mean dose is the energy-weighted definition of absorbed dose (ICRU 85): the energy
absorbed in the VOI over its mass, i.e. the voxel doses weighted by voxel mass,
``mean = Σ m_v D_v / Σ m_v``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose.errors import InputError
from theradose.volume import LabelMap, Volume

__all__ = ["DoseResult", "VOIDose", "compare_engines", "format_comparison", "summarise_vois"]


@dataclass(frozen=True)
class VOIDose:
    """Absorbed dose in one volume of interest.

    Attributes
    ----------
    name : str
        VOI name (label-map name table).
    label : int
        Label value.
    mass_g : float
        VOI mass, g (Σ voxel density × voxel volume).
    mean_gy : float
        Mass-weighted mean absorbed dose (energy / mass), Gy.
    sigma_gy : float
        Standard uncertainty of ``mean_gy`` propagated from the TIA σ, Gy.
    min_gy, max_gy : float
        Smallest and largest voxel dose in the VOI, Gy.
    n_voxels : int
        Number of voxels.
    """

    name: str
    label: int
    mass_g: float
    mean_gy: float
    sigma_gy: float
    min_gy: float
    max_gy: float
    n_voxels: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (field names as keys)."""
        return {"name": self.name, "label": self.label, "mass_g": self.mass_g,
                "mean_gy": self.mean_gy, "sigma_gy": self.sigma_gy, "min_gy": self.min_gy,
                "max_gy": self.max_gy, "n_voxels": self.n_voxels}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True, eq=False)
class DoseResult:
    """Output of :meth:`theradose.dose.DoseEngine.compute`.

    Attributes
    ----------
    dose : Volume
        Absorbed dose per voxel, unit ``"Gy"`` (``"Gy/h"`` for dose-rate maps), ``[z, y, x]``.
    sigma : Volume
        Standard uncertainty of ``dose`` from the TIA σ (zeros when none was given), same unit.
    voi : tuple of VOIDose
        Per-VOI doses (empty without a label map).
    engine : str
        Engine name (``"led"``, ``"kernel"``, ...).
    provenance : dict
        Method, nuclide, data sources with versions, kernel provenance, options.
    """

    dose: Volume
    sigma: Volume
    voi: tuple[VOIDose, ...] = ()
    engine: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def voi_by_name(self, name: str) -> VOIDose:
        """The :class:`VOIDose` called ``name``.

        Raises
        ------
        InputError
            If no VOI has that name (the message lists the names).
        """
        for v in self.voi:
            if v.name == name:
                return v
        raise InputError(f"no VOI named {name!r} in the {self.engine} result; known: "
                         f"{[v.name for v in self.voi]}", field="name")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no voxel arrays): dose-map statistics, VOIs, provenance."""
        d = self.dose.array
        return {
            "engine": self.engine,
            "unit": self.dose.unit,
            "geometry": self.dose.geometry.to_dict(),
            "max_gy": _finite(float(np.max(d))) if d.size else None,
            "voi": [v.to_dict() for v in self.voi],
            "provenance": _jsonable(self.provenance),
        }


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and tuples in nested provenance to JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def summarise_vois(dose: np.ndarray, sigma: np.ndarray, mass_g: np.ndarray,
                   labels: LabelMap | None, *,
                   voi_sigma: Mapping[int, float] | None = None) -> tuple[VOIDose, ...]:
    """Per-VOI mass-weighted mean dose, its σ, min, max.

    Parameters
    ----------
    dose, sigma : (Z, Y, X) ndarray
        Voxel dose and its standard uncertainty, Gy.
    mass_g : (Z, Y, X) ndarray
        Voxel mass, g.
    labels : LabelMap or None
        VOIs (named labels only); None gives an empty tuple.
    voi_sigma : mapping of label to float, optional
        σ of the VOI mean computed exactly by the engine (voxel doses correlated through a
        kernel). Without it the voxel doses are taken as independent:
        ``σ_mean = sqrt(Σ (m_v σ_v)²) / Σ m_v`` (exact for local deposition).

    Returns
    -------
    tuple of VOIDose
        In label order; an empty VOI has mass 0 and NaN doses.
    """
    if labels is None:
        return ()
    lab = labels.array
    out = []
    for value, name in sorted(labels.names.items()):
        m = lab == value
        n = int(m.sum())
        if n == 0:
            nan = float("nan")
            out.append(VOIDose(name, value, 0.0, nan, nan, nan, nan, 0))
            continue
        mv = mass_g[m].astype(np.float64)
        dv = dose[m].astype(np.float64)
        mass = float(mv.sum())
        if mass > 0:
            mean = float(np.dot(mv, dv) / mass)
            sig = (float(voi_sigma[value]) if voi_sigma is not None and value in voi_sigma
                   else float(np.sqrt(np.sum((mv * sigma[m]) ** 2)) / mass))
        else:
            mean = sig = float("nan")
        out.append(VOIDose(name, int(value), mass, mean, sig, float(dv.min()), float(dv.max()),
                           n))
    return tuple(out)


# ---------------------------------------------------------------------------- comparison
def _engine_names(results: Sequence[DoseResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        base = r.engine or type(r).__name__
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def compare_engines(results: Sequence[DoseResult]) -> list[dict[str, Any]]:
    """Per-VOI comparison of several engines run on the same input.

    Parameters
    ----------
    results : sequence of DoseResult
        The first one is the reference. Engines with the same name are numbered
        (``"kernel"``, ``"kernel#2"``).

    Returns
    -------
    list of dict
        One row per VOI (in the order of the first result, then VOIs only later results have):
        ``{"voi": name, "mass_g": float, "reference": engine, "engines": [{"engine", "mean_gy",
        "sigma_gy", "relative_difference"}, ...]}``; ``relative_difference`` is
        ``mean / mean_reference - 1`` (None where the reference lacks the VOI or is 0).

    Raises
    ------
    InputError
        If ``results`` is empty or holds something other than DoseResult.
    """
    if not results:
        raise InputError("need at least one DoseResult to compare, got none", field="results")
    for i, r in enumerate(results):
        if not isinstance(r, DoseResult):
            raise InputError(f"expected DoseResult, got {type(r).__name__}",
                             field=f"results[{i}]")
    names = _engine_names(results)
    order: list[str] = []
    for r in results:
        for v in r.voi:
            if v.name not in order:
                order.append(v.name)
    rows = []
    for voi in order:
        per = [{v.name: v for v in r.voi}.get(voi) for r in results]
        ref = per[0]
        mass = next(v.mass_g for v in per if v is not None)
        cells = []
        for name, v in zip(names, per, strict=True):
            rel = None
            if v is not None and ref is not None and ref.mean_gy != 0 \
                    and math.isfinite(ref.mean_gy) and math.isfinite(v.mean_gy):
                rel = v.mean_gy / ref.mean_gy - 1.0
            cells.append({"engine": name,
                          "mean_gy": None if v is None else _finite(v.mean_gy),
                          "sigma_gy": None if v is None else _finite(v.sigma_gy),
                          "relative_difference": rel})
        rows.append({"voi": voi, "mass_g": mass, "reference": names[0], "engines": cells})
    return rows


def format_comparison(rows: Sequence[Mapping[str, Any]], *, fmt: str = "markdown",
                      digits: int = 3) -> str:
    """Render :func:`compare_engines` rows as a markdown or plain-text table.

    Columns: VOI, mass (g), then per engine ``mean ± σ (Gy)`` and, after the reference,
    the relative difference in %.

    Parameters
    ----------
    rows : sequence of dict
        Output of :func:`compare_engines`.
    fmt : {"markdown", "text"}
        Markdown pipes or aligned plain text.
    digits : int
        Significant digits of doses.

    Raises
    ------
    InputError
        For an unknown ``fmt``.
    """
    if fmt not in ("markdown", "text"):
        raise InputError(f"unknown table format {fmt!r}; accepted: 'markdown', 'text'",
                         field="fmt")
    if not rows:
        return ""
    engines = [c["engine"] for c in rows[0]["engines"]]
    header = ["VOI", "mass (g)"]
    for i, e in enumerate(engines):
        header.append(f"{e} (Gy)")
        if i > 0:
            header.append(f"{e} vs {engines[0]} (%)")
    body = []
    for r in rows:
        line = [str(r["voi"]), f"{r['mass_g']:.4g}"]
        for i, c in enumerate(r["engines"]):
            if c["mean_gy"] is None:
                line.append("-")
            else:
                s = c["sigma_gy"] or 0.0
                line.append(f"{c['mean_gy']:.{digits}g} ± {s:.2g}")
            if i > 0:
                rel = c["relative_difference"]
                line.append("-" if rel is None else f"{100 * rel:+.2f}")
        body.append(line)
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |",
               "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(out)
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    fmt_line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt_line.format(*x).rstrip() for x in [header, *body])
