"""Dose-volume histograms computed exactly from the sorted voxel values.

``D_x`` and ``V_x`` come from the sorted voxel doses and their weights, never from a histogram,
so they carry no binning error; binning is used only for the plotted (differential and
cumulative) histogram. The same functions serve BED and EQD2 maps (the ``quantity`` is carried
from ``Volume.meta["quantity"]``) and dose-rate maps (``Gy/h``).

Definitions (voxel ``i``: value ``d_i``, weight ``w_i`` = mask fraction × optional weight,
``W = Σ w_i``; the voxels sorted by decreasing value, ``W_k`` the weight of the ``k`` hottest):

* ``V_x = Σ_{d_i ≥ x} w_i / W`` — the fraction of the VOI receiving at least ``x``;
* ``D_x = d_(k*)`` with ``k* = min{k : W_k ≥ x/100 · W}`` — the minimum value within the hottest
  ``x`` % of the VOI (``D_0`` is the maximum, ``D_100`` the minimum);
* mean ``Σ w_i d_i / W``; median the weighted 50th percentile (equal to ``numpy.median`` for equal
  weights: the two middle values are averaged when the cumulative weight hits exactly 50 %).

References
----------
ICRU Report 83. Prescribing, recording, and reporting photon-beam intensity-modulated radiation
therapy (IMRT). J ICRU 10(1) (2010), section 3 (D_x, V_x, D2, D50, D98). doi:10.1093/jicru/ndq002
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose import __version__
from theradose.errors import InputError, UnitError
from theradose.volume import LabelMap, Volume

__all__ = ["DVH", "dvh", "dvh_table"]

#: Dimensions a DVH can be computed for (canonical unit: Gy or Gy/h).
_DIMENSIONS = {"absorbed_dose": "Gy", "absorbed_dose_rate": "Gy/h"}
#: Number of histogram bins aimed at when ``bin_gy`` is not given.
_TARGET_BINS = 200


def _nice_bin(span: float) -> float:
    """A 1-2-5 × 10^n bin width giving about ``_TARGET_BINS`` bins over ``span``."""
    if not (span > 0 and math.isfinite(span)):
        return 1.0
    raw = span / _TARGET_BINS
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp >= raw:
            return m * 10.0**exp
    return 10.0 ** (exp + 1)  # pragma: no cover - the loop always returns


@dataclass(frozen=True, eq=False)
class DVH:
    """Dose-volume histogram of one VOI.

    Attributes
    ----------
    unit : str
        Unit of the values (``"Gy"``, or ``"Gy/h"`` for dose-rate maps).
    quantity : str
        What the values are: ``"absorbed_dose"`` (default), ``"BED"``, ``"EQD2"``,
        ``"absorbed_dose_rate"``... (from ``Volume.meta["quantity"]``).
    label : str or None
        VOI name (or label value as text).
    n_voxels : int
        Voxels with a positive weight.
    volume_ml : float
        Geometric volume of the VOI, mL (voxel volume × mask fraction, summed).
    values : (N,) ndarray
        Voxel values sorted in *decreasing* order, in ``unit``.
    weights : (N,) ndarray
        Weights of ``values`` (mask fraction × ``weights``); fractions below are fractions of
        their sum (volume fractions, or mass fractions with mass weights).
    voxel_ml : (N,) ndarray
        Geometric volume of each voxel in ``values`` (mL).
    bin_edges : (B+1,) ndarray
        Histogram bin edges, ``unit``.
    differential_ml : (B,) ndarray
        Geometric volume (mL) with values in ``[edge_b, edge_{b+1})``.
    differential_fraction : (B,) ndarray
        Weight fraction in each bin (sums to 1).
    cumulative_fraction : (B+1,) ndarray
        Weight fraction receiving at least ``bin_edges[b]`` (exact ``V_x`` at the edges).
    mean, min, max, median : float
        Weighted statistics of the values, ``unit``.
    provenance : dict
        Version, method, bin width.
    """

    unit: str
    quantity: str
    label: str | None
    n_voxels: int
    volume_ml: float
    values: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    voxel_ml: np.ndarray = field(repr=False)
    bin_edges: np.ndarray = field(repr=False)
    differential_ml: np.ndarray = field(repr=False)
    differential_fraction: np.ndarray = field(repr=False)
    cumulative_fraction: np.ndarray = field(repr=False)
    mean: float
    min: float
    max: float
    median: float
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ exact metrics
    def d(self, pct):
        """``D_x``: minimum value within the hottest ``pct`` % of the VOI (``unit``).

        Parameters
        ----------
        pct : float or array_like
            Percent of the VOI (weight), in [0, 100].

        Returns
        -------
        float or ndarray
            ``D_pct`` in ``unit`` (same shape as ``pct``).

        Raises
        ------
        InputError
            If a ``pct`` is outside [0, 100] or not finite.
        """
        p = np.asarray(pct, dtype=np.float64)
        if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 100)):
            raise InputError(f"must be percentages in [0, 100], got {np.asarray(pct).tolist()}",
                             field="pct")
        cum = np.cumsum(self.weights)
        total = cum[-1]
        target = p / 100.0 * total - 1e-12 * total
        k = np.searchsorted(cum, target, side="left")
        out = self.values[np.clip(k, 0, self.values.size - 1)]
        return float(out) if out.ndim == 0 else out

    def v(self, threshold):
        """``V_x``: fraction of the VOI (weight) with a value of at least ``threshold``.

        Parameters
        ----------
        threshold : float or array_like
            Value in ``unit`` (e.g. Gy for ``V_20Gy = v(20)``).

        Returns
        -------
        float or ndarray
            Fraction in [0, 1] (same shape as ``threshold``).

        Raises
        ------
        InputError
            If a threshold is not finite.
        """
        x = np.asarray(threshold, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise InputError(f"must be finite values in {self.unit}, got "
                             f"{np.asarray(threshold).tolist()}", field="threshold")
        # values are decreasing: the count of values >= x is the insertion point in -values
        n = np.searchsorted(-self.values, -x, side="right")
        cum = np.concatenate([[0.0], np.cumsum(self.weights)])
        out = cum[n] / cum[-1]
        return float(out) if out.ndim == 0 else out

    def v_ml(self, threshold):
        """Geometric volume (mL) with a value of at least ``threshold`` (``unit``)."""
        x = np.asarray(threshold, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise InputError(f"must be finite values in {self.unit}, got "
                             f"{np.asarray(threshold).tolist()}", field="threshold")
        n = np.searchsorted(-self.values, -x, side="right")
        cum = np.concatenate([[0.0], np.cumsum(self.voxel_ml)])
        out = cum[n]
        return float(out) if out.ndim == 0 else out

    @property
    def d2(self) -> float:
        """``D_2`` (near-maximum), ``unit``."""
        return self.d(2.0)

    @property
    def d50(self) -> float:
        """``D_50``, ``unit``."""
        return self.d(50.0)

    @property
    def d98(self) -> float:
        """``D_98`` (near-minimum), ``unit``."""
        return self.d(98.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary and histogram (no per-voxel arrays)."""
        u = self.unit.replace("/", "_per_").lower()
        return {
            "label": self.label, "quantity": self.quantity, "unit": self.unit,
            "n_voxels": self.n_voxels, "volume_ml": self.volume_ml,
            f"mean_{u}": self.mean, f"min_{u}": self.min, f"max_{u}": self.max,
            f"median_{u}": self.median, f"d2_{u}": self.d2, f"d50_{u}": self.d50,
            f"d98_{u}": self.d98,
            "bin_edges": self.bin_edges.tolist(),
            "differential_ml": self.differential_ml.tolist(),
            "differential_fraction": self.differential_fraction.tolist(),
            "cumulative_fraction": self.cumulative_fraction.tolist(),
            "provenance": self.provenance,
        }


# ---------------------------------------------------------------------------- validation
def _dose_array(dose: Volume) -> tuple[np.ndarray, str, str]:
    if not isinstance(dose, Volume):
        raise InputError(f"must be a Volume in Gy (or Gy/h), got {type(dose).__name__}",
                         field="dose")
    dim = dose.unit_info.dimension
    if dim not in _DIMENSIONS:
        raise UnitError(f"must be an absorbed dose (Gy, mGy) or dose rate (Gy/h, mGy/h), got "
                        f"{dose.unit!r} ({dim})", field="dose.unit")
    target = _DIMENSIONS[dim]
    arr = dose.to_unit(target).array.astype(np.float64, copy=False)
    quantity = str(dose.meta.get("quantity", dim))
    return arr, target, quantity


def _mask_fraction(dose: Volume, mask, label) -> tuple[np.ndarray, str | None]:
    """Mask fraction in [0, 1] of shape dose.shape and the VOI name."""
    name = None if label is None else str(label)
    if isinstance(mask, LabelMap):
        dose.geometry.require_same(mask.geometry, what="dose and mask")
        if label is None:
            if len(mask.names) != 1:
                raise InputError(f"a label is needed to pick a VOI of the label map; known: "
                                 f"{sorted(mask.names.values())}", field="label")
            value, name = next(iter(mask.names.items()))
        elif isinstance(label, str):
            if label not in mask.labels:
                raise InputError(f"no VOI named {label!r}; known: {sorted(mask.labels)}",
                                 field="label")
            value = mask.labels[label]
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            value = int(label)
            name = mask.names.get(value, str(value))
        else:
            raise InputError(f"must be a VOI name or an integer label, got {label!r}",
                             field="label")
        return (mask.array == value).astype(np.float64), name
    if isinstance(mask, Volume):
        dose.geometry.require_same(mask.geometry, what="dose and mask")
        mask = mask.array
    m = np.asarray(mask)
    if m.shape != dose.shape:
        raise InputError(f"shape {m.shape} does not match the dose shape {dose.shape}",
                         field="mask")
    if label is not None:
        if not np.issubdtype(m.dtype, np.integer):
            raise InputError(f"a label needs an integer label array, got dtype {m.dtype}",
                             field="label")
        if not (isinstance(label, (int, np.integer)) and not isinstance(label, bool)):
            raise InputError(f"must be an integer label for an ndarray mask, got {label!r}",
                             field="label")
        return (m == int(label)).astype(np.float64), name
    if m.dtype == np.bool_:
        return m.astype(np.float64), name
    if not np.issubdtype(m.dtype, np.number):
        raise InputError(f"must be boolean or fractional (0..1), got dtype {m.dtype}",
                         field="mask")
    f = m.astype(np.float64)
    if not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise InputError(f"fractional mask values must lie in [0, 1], got range "
                         f"[{np.nanmin(f):g}, {np.nanmax(f):g}]", field="mask")
    return f, name


def _weights_array(dose: Volume, weights) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, Volume):
        dose.geometry.require_same(weights.geometry, what="dose and weights")
        weights = weights.array
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != dose.shape:
        raise InputError(f"shape {w.shape} does not match the dose shape {dose.shape}",
                         field="weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("must be finite and >= 0 (e.g. mass or density per voxel)",
                         field="weights")
    return w


def _weighted_median(asc: np.ndarray, w_asc: np.ndarray) -> float:
    cum = np.cumsum(w_asc)
    half = 0.5 * cum[-1]
    k = int(np.searchsorted(cum, half - 1e-12 * cum[-1], side="left"))
    if abs(cum[k] - half) <= 1e-12 * cum[-1] and k + 1 < asc.size:
        return float(0.5 * (asc[k] + asc[k + 1]))
    return float(asc[k])


def _from_values(values, weights, voxel_ml, *, unit, quantity, label, bin_gy) -> DVH:
    order = np.argsort(-values, kind="stable")
    vals, w, vml = values[order], weights[order], voxel_ml[order]
    total = float(w.sum())
    lo, hi = float(vals[-1]), float(vals[0])
    if bin_gy is None:
        step = _nice_bin(max(hi, 0.0) - min(lo, 0.0))
    else:
        try:
            step = float(bin_gy)
        except (TypeError, ValueError):
            step = math.nan
        if not (math.isfinite(step) and step > 0):
            raise InputError(f"must be a positive bin width in {unit}, got {bin_gy!r}",
                             field="bin_gy")
    start = min(0.0, math.floor(lo / step) * step)
    n_bins = max(math.floor((hi - start) / step) + 1, 1)
    if n_bins > 1_000_000:
        raise InputError(f"gives {n_bins} bins for values up to {hi:g} {unit}; use a larger "
                         "bin width", field="bin_gy")
    edges = start + step * np.arange(n_bins + 1)
    idx = np.clip(np.floor((vals - start) / step).astype(np.int64), 0, n_bins - 1)
    diff_ml = np.bincount(idx, weights=vml, minlength=n_bins)
    diff_fr = np.bincount(idx, weights=w, minlength=n_bins) / total
    n = np.searchsorted(-vals, -edges, side="right")
    cum = np.concatenate([[0.0], np.cumsum(w)])
    cum_fr = cum[n] / total
    # exactly rounded sum: BLAS dot products depend on the arrays' memory alignment in the
    # last bits, which made results.json differ between two runs of the same study
    mean = math.fsum((w * vals).tolist()) / total
    median = _weighted_median(vals[::-1], w[::-1])
    prov = {"theradose_version": __version__,
            "method": "exact D_x/V_x from sorted voxel values (ICRU 83); histogram for display",
            "bin_width": step}
    return DVH(unit, quantity, label, int(vals.size), float(vml.sum()), vals, w, vml, edges,
               diff_ml, diff_fr, cum_fr, mean, lo, hi, median, prov)


def dvh(dose: Volume, mask, label=None, *, bin_gy: float | None = None, weights=None) -> DVH:
    """Dose-volume histogram of one VOI, with exact ``D_x`` / ``V_x``.

    Parameters
    ----------
    dose : Volume
        (Z, Y, X) absorbed dose (Gy, mGy), BED/EQD2 map (Gy, ``meta["quantity"]`` says which)
        or dose rate (Gy/h). Converted to Gy (Gy/h).
    mask : (Z, Y, X) bool or float ndarray, Volume or LabelMap
        The VOI: a boolean mask, a fractional mask in [0, 1] (partial-volume occupancy), an
        integer label array (with ``label``) or a :class:`~theradose.volume.LabelMap`.
    label : str or int, optional
        VOI name or label value in ``mask`` (needed for a label map with several VOIs).
    bin_gy : float, optional
        Histogram bin width in the dose unit (default: a 1-2-5 width giving ~200 bins). Only
        the plotted histogram depends on it.
    weights : (Z, Y, X) ndarray or Volume, optional
        Extra non-negative voxel weights (e.g. mass or density for a mass-weighted DVH);
        fractions are then fractions of ``Σ mask × weights``.

    Returns
    -------
    DVH

    Raises
    ------
    InputError
        Wrong types or shapes, a fractional mask outside [0, 1], negative weights, an empty
        VOI, non-finite values inside the VOI, a bad ``bin_gy``.
    UnitError
        ``dose`` not in a dose or dose-rate unit.
    GeometryMismatchError
        ``mask`` or ``weights`` on another grid.

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.volume import Volume
    >>> d = Volume.from_array(np.arange(1.0, 5.0).reshape(1, 1, 4), spacing_mm=(10, 10, 10),
    ...                       unit="Gy")
    >>> h = dvh(d, np.ones((1, 1, 4), bool))
    >>> h.d(50), h.v(2.5), h.mean
    (3.0, 0.5, 2.5)
    """
    arr, unit, quantity = _dose_array(dose)
    frac, name = _mask_fraction(dose, mask, label)
    w_extra = _weights_array(dose, weights)
    w = frac if w_extra is None else frac * w_extra
    sel = w > 0
    if not np.any(sel):
        what = f"VOI {name!r}" if name else "the mask"
        raise InputError(f"{what} has no voxel with a positive weight", field="mask")
    vals = arr[sel]
    if not np.all(np.isfinite(vals)):
        raise InputError(f"{int(np.sum(~np.isfinite(vals)))} voxel(s) inside the VOI are not "
                         "finite", field="dose")
    voxel_ml = frac[sel] * dose.geometry.voxel_volume_ml
    return _from_values(vals, w[sel], voxel_ml, unit=unit, quantity=quantity, label=name,
                        bin_gy=bin_gy)


def dvh_table(dose: Volume, labels: LabelMap, *, weights=None,
              pcts: tuple[float, ...] = (2.0, 50.0, 98.0),
              thresholds: tuple[float, ...] = ()) -> list[dict[str, Any]]:
    """DVH summary of every named VOI of a label map, one row (dict) per VOI.

    Parameters
    ----------
    dose : Volume
        Dose, BED/EQD2 (Gy) or dose-rate (Gy/h) map.
    labels : LabelMap
        VOIs on the dose grid.
    weights : ndarray or Volume, optional
        Voxel weights as in :func:`dvh`.
    pcts : tuple of float
        ``D_x`` columns reported (percent).
    thresholds : tuple of float
        ``V_x`` columns reported (dose unit), e.g. ``(20.0,)`` for ``V_20Gy``.

    Returns
    -------
    list of dict
        Keys ``label``, ``label_value``, ``quantity``, ``unit``, ``n_voxels``, ``volume_ml``,
        ``mean``, ``min``, ``max``, ``median``, ``D<x>`` and ``V<x>`` (fractions). An empty VOI
        has ``n_voxels`` 0 and None values.

    Raises
    ------
    InputError
        If ``labels`` is not a LabelMap (and as :func:`dvh`).
    """
    if not isinstance(labels, LabelMap):
        raise InputError(f"must be a LabelMap, got {type(labels).__name__}", field="labels")
    _, unit, quantity = _dose_array(dose)
    dose.geometry.require_same(labels.geometry, what="dose and labels")
    rows = []
    for value, name in sorted(labels.names.items()):
        row: dict[str, Any] = {"label": name, "label_value": value, "quantity": quantity,
                               "unit": unit}
        if not np.any(labels.array == value):
            row.update({"n_voxels": 0, "volume_ml": 0.0})
            for k in ("mean", "min", "max", "median"):
                row[k] = None
            row.update({f"D{p:g}": None for p in pcts})
            row.update({f"V{x:g}": None for x in thresholds})
            rows.append(row)
            continue
        h = dvh(dose, labels, value, weights=weights)
        row.update({"n_voxels": h.n_voxels,
                    "volume_ml": h.volume_ml, "mean": h.mean, "min": h.min, "max": h.max,
                    "median": h.median})
        row.update({f"D{p:g}": h.d(p) for p in pcts})
        row.update({f"V{x:g}": h.v(x) for x in thresholds})
        rows.append(row)
    return rows
