"""Time-activity curves (TACs) per VOI from a registered :class:`~theradose.io.Study`.

Rules (documented in ``docs/kinetics-tac-stp.md``):

* **Times** are the study's time points, hours from the injection (the Study computed them from
  the DICOM/sidecar acquisition and injection datetimes).
* **Registration** is assumed: every emission image is taken to be in the frame of the label map
  (registration between time points is a separate stage).
* **Fractional masks.** A VOI mask (label grid, cropped to its bounding box plus one empty
  voxel) is resampled onto each emission grid as an *extensive* quantity -- the number of label
  voxels, unit ``"counts"`` -- with the exact, total-conserving overlap method of
  :func:`theradose.volume.resample`; multiplied by ``V_label_voxel / V_emission_voxel`` this is
  exactly the *fraction of each emission voxel inside the VOI* (partial-volume-aware occupancy)
  for grids with a common direction, and the sub-voxel deposition estimate for rotated grids.
  (Resampling the 0/1 mask as an intensive unit ``"1"`` gives the same fractions for emission
  voxels inside the label grid, but the mean over the covered part only for voxels straddling
  its edge; the extensive form counts the outside as "not VOI", which is what a crop needs.)
  Hence

  - total activity  ``A = Σ_v f_v · C_v · V_vox``  (MBq),
  - mean concentration ``C̄ = Σ_v f_v C_v / Σ_v f_v``  (Bq/mL),
  - occupied volume ``Σ_v f_v · V_vox`` equals the VOI volume on the label grid when the emission
    field of view covers the VOI (conservation of the mask integral).

* **Units.** Emission images must be activity concentrations (Bq/mL, kBq/mL, MBq/mL) or
  activities per voxel (Bq, kBq, MBq, GBq). Counts need a calibration first and raise
  :class:`~theradose.errors.UnitError`.
* **Field of view.** A VOI with no overlap with an emission image raises
  :class:`~theradose.errors.GeometryMismatchError`; a VOI covered less than ``min_coverage``
  (default 0.95) raises too; partial coverage above it warns and is recorded in
  ``coverage``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose import __version__
from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning, UnitError
from theradose.io import Study
from theradose.kinetics._voi_margin import add_margins
from theradose.units import convert
from theradose.volume import Geometry, LabelMap, Volume, resample

__all__ = ["TACTable", "organ_tacs"]


@dataclass(frozen=True, eq=False)
class TACTable:
    """Per-VOI time-activity curves of one study.

    Attributes
    ----------
    vois : tuple of str
        VOI names, in output order.
    times_h : (N,) ndarray
        Time from injection of each time point, h (shared by all VOIs).
    activity_mbq : dict of str to (N,) ndarray
        Total activity in each VOI at each time point, MBq (decayed, as imaged).
    concentration_bq_ml : dict of str to (N,) ndarray
        Occupancy-weighted mean activity concentration, Bq/mL.
    volume_ml : dict of str to float
        VOI volume on the label grid, mL.
    occupied_volume_ml : dict of str to (N,) ndarray
        ``Σ f_v V_vox`` on each emission grid, mL (equals ``volume_ml`` × ``coverage``
        without a margin; with one, the grown VOI's).
    coverage : dict of str to (N,) ndarray
        Fraction of the VOI volume inside each emission field of view (1 when fully covered).
    nuclide : str
        Nuclide of the administration (ICRP-107 spelling).
    injected_activity_mbq : float
        Administered activity, MBq.
    activity_sigma_mbq : dict of str to (N,) ndarray, or None
        Standard uncertainty of ``activity_mbq`` propagated from the emission images' voxel
        ``sigma`` (``sqrt(Σ f_v² σ_v²) V_vox``, independent voxels; NaN at time points whose
        image carries no sigma); None when no image carries a sigma.
    provenance : dict
        Method, theradose version, emission sources and units, label source.
    """

    vois: tuple[str, ...]
    times_h: np.ndarray
    activity_mbq: dict[str, np.ndarray]
    concentration_bq_ml: dict[str, np.ndarray]
    volume_ml: dict[str, float]
    occupied_volume_ml: dict[str, np.ndarray]
    coverage: dict[str, np.ndarray]
    nuclide: str
    injected_activity_mbq: float
    activity_sigma_mbq: dict[str, np.ndarray] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def tac(self, voi: str) -> dict[str, Any]:
        """One VOI's curve: ``{"times_h", "activity_mbq", "concentration_bq_ml", "volume_ml"}``.

        Raises
        ------
        InputError
            Unknown VOI name (field ``voi``).
        """
        if voi not in self.vois:
            raise InputError(f"no VOI {voi!r} in the table; known: {list(self.vois)}",
                             field="voi")
        return {"times_h": self.times_h.copy(), "activity_mbq": self.activity_mbq[voi].copy(),
                "concentration_bq_ml": self.concentration_bq_ml[voi].copy(),
                "volume_ml": self.volume_ml[voi]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists of floats; units in the keys)."""
        return {
            "nuclide": self.nuclide,
            "injected_activity_mbq": self.injected_activity_mbq,
            "times_h": self.times_h.tolist(),
            "vois": {v: {"volume_ml": self.volume_ml[v],
                         "activity_mbq": self.activity_mbq[v].tolist(),
                         "concentration_bq_ml": self.concentration_bq_ml[v].tolist(),
                         "occupied_volume_ml": self.occupied_volume_ml[v].tolist(),
                         "coverage": self.coverage[v].tolist(),
                         "activity_sigma_mbq": None if self.activity_sigma_mbq is None
                         else [None if np.isnan(x) else float(x)
                               for x in self.activity_sigma_mbq[v]]} for v in self.vois},
            "provenance": self.provenance,
        }


def _source(v: Volume) -> str | None:
    src = v.meta.get("source_file") or (v.meta.get("source_files") or [None])[0]
    return None if src is None else str(src)


def _masks_from(labels: LabelMap | Mapping[str, Volume], file: str | None
                ) -> dict[str, Volume]:
    """Named masks as float Volumes (values in [0, 1]) on their own grids."""
    if isinstance(labels, LabelMap):
        return {name: Volume(m.astype(np.float64), labels.geometry, unit="1")
                for name, m in labels.masks().items()}
    if isinstance(labels, Mapping):
        out = {}
        for name, m in labels.items():
            if not isinstance(m, Volume):
                raise InputError(f"mask {name!r} must be a Volume (array + geometry), got "
                                 f"{type(m).__name__}", file=file, field="labels")
            arr = np.asarray(m.array, dtype=np.float64)
            if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
                raise InputError(f"mask {name!r} must hold values in [0, 1] (boolean or "
                                 "fractional)", file=file, field="labels")
            out[str(name)] = Volume(arr, m.geometry, unit="1")
        return out
    raise InputError(f"must be a LabelMap or a dict of mask Volumes, got "
                     f"{type(labels).__name__}", file=file, field="labels")


def _crop(mask: Volume, margin: int = 1) -> Volume | None:
    """The mask cropped to its bounding box (+ ``margin`` voxels); None if empty."""
    nz = np.nonzero(mask.array > 0)
    if nz[0].size == 0:
        return None
    lo = [max(int(a.min()) - margin, 0) for a in nz]
    hi = [min(int(a.max()) + margin + 1, n) for a, n in zip(nz, mask.shape, strict=True)]
    arr = mask.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    g = mask.geometry
    origin = g.index_to_physical(np.array([lo[2], lo[1], lo[0]], dtype=float))
    geom = Geometry(arr.shape, g.spacing_mm, tuple(origin), g.direction)
    return Volume(arr, geom, unit="counts")


def _concentration_bq_ml(v: Volume, index: int) -> np.ndarray:
    """Emission image as Bq/mL (activity images divided by the voxel volume)."""
    info = v.unit_info
    src = _source(v) or f"time_points[{index}].emission"
    if info.dimension == "activity_concentration":
        return np.asarray(convert(v.array.astype(np.float64), v.unit, "Bq/mL"))
    if info.dimension == "activity":
        bq = np.asarray(convert(v.array.astype(np.float64), v.unit, "Bq"))
        return bq / v.geometry.voxel_volume_ml
    if info.dimension == "counts":
        raise UnitError("emission image is in counts; calibrate it to Bq/mL first (e.g. "
                        "load_study(..., calibration_cps_per_mbq=...)); accepted: Bq/mL, "
                        "kBq/mL, MBq/mL, Bq, kBq, MBq, GBq", file=src, field="unit")
    raise UnitError(f"emission unit {v.unit!r} ({info.dimension}) is not an activity; "
                    "accepted: Bq/mL, kBq/mL, MBq/mL, Bq, kBq, MBq, GBq", file=src, field="unit")


def organ_tacs(study: Study,
               labels: LabelMap | Mapping[str, Volume] | Sequence[LabelMap | Mapping[str, Volume]]
               | None = None, *,
               vois: Iterable[str] | None = None, min_coverage: float = 0.95,
               margin_mm: float = 0.0, exclusive_margin: bool = True) -> TACTable:
    """Total activity and mean concentration per VOI and time point.

    Parameters
    ----------
    study : Study
        Registered study: every emission image is in the frame of ``labels``.
    labels : LabelMap or dict of str to Volume, or a sequence of them, optional
        VOIs on any grid: a label map, or named masks (boolean or fractional values in [0, 1],
        each a :class:`~theradose.volume.Volume` with its own geometry). Default:
        ``study.labels``. A list or tuple with one entry per time point gives VOIs per time
        point (e.g. masks propagated into each acquisition's frame by registration, instead of
        resampling the activity images); ``volume_ml`` is then that of the first entry.
    vois : iterable of str, optional
        Names to evaluate (default: all named VOIs).
    min_coverage : float
        Smallest accepted fraction of a VOI's volume inside an emission field of view, in
        (0, 1]; below it a :class:`~theradose.errors.GeometryMismatchError` is raised.
    margin_mm : float
        Grow every VOI by this margin (mm, on the label grid) to recover the activity that the
        camera resolution spills out of it (see :func:`add_margins`; about max(emission voxel
        diagonal, system FWHM), e.g. 11 mm for 177Lu SPECT, when no partial-volume correction
        follows). ``volume_ml`` and
        ``concentration_bq_ml`` then refer to the VOI itself (activity / VOI volume), coverage
        and occupied volume to the grown VOI. Default 0 (no margin).
    exclusive_margin : bool
        The margin never enters another VOI of the same label grid (default True).

    Returns
    -------
    TACTable
        Times (h), activities (MBq), mean concentrations (Bq/mL), volumes (mL).

    Raises
    ------
    InputError
        No labels, unknown or empty VOI, bad ``min_coverage``.
    UnitError
        An emission image in counts or in a non-activity unit.
    GeometryMismatchError
        A VOI outside (or mostly outside) an emission field of view.

    Examples
    --------
    >>> table = organ_tacs(study, vois=["kidney_left"])  # doctest: +SKIP
    >>> table.activity_mbq["kidney_left"]                 # doctest: +SKIP
    """
    if not isinstance(study, Study):
        raise InputError(f"must be a theradose.io.Study, got {type(study).__name__}",
                         field="study")
    lab_file = None if study.source is None else str(study.source)
    if labels is None:
        labels = study.labels
        if labels is None:
            raise InputError("the study has no label map; pass labels=", file=lab_file,
                             field="labels")
    if isinstance(labels, Volume):
        lab_file = _source(labels) or lab_file
    if not (isinstance(min_coverage, (int, float)) and 0 < min_coverage <= 1):
        raise InputError(f"must be a number in (0, 1], got {min_coverage!r}",
                         field="min_coverage")
    nt = len(study.time_points)
    per_tp = isinstance(labels, (list, tuple))
    if per_tp and len(labels) != nt:
        raise InputError(f"got {len(labels)} label sets for {nt} time points", file=lab_file,
                         field="labels")
    mask_sets = [_masks_from(lab, lab_file) for lab in (labels if per_tp else [labels])]
    masks = mask_sets[0]
    names = list(masks) if vois is None else [str(v) for v in vois]
    for k, ms in enumerate(mask_sets):
        unknown = [n for n in names if n not in ms]
        if unknown:
            where = f" (time point {k})" if per_tp else ""
            raise InputError(f"unknown VOI(s) {unknown}{where}; known: {sorted(ms)}",
                             file=lab_file, field="vois")
    if not names:
        raise InputError("no VOIs to evaluate", file=lab_file, field="vois")

    volume_ml: dict[str, float] = {}
    crops: list[dict[str, Volume]] = []
    for k, ms in enumerate(mask_sets):
        grown = add_margins(ms, margin_mm, exclusive=exclusive_margin, file=lab_file)
        cropped: dict[str, Volume] = {}
        for n in names:
            c = _crop(grown[n])
            if c is None:
                raise InputError(f"VOI {n!r} has no voxels", file=lab_file, field="vois")
            cropped[n] = c
            if k == 0:
                volume_ml[n] = float(np.sum(ms[n].array)) * ms[n].geometry.voxel_volume_ml
        crops.append(cropped)

    act = {n: np.zeros(nt) for n in names}
    conc = {n: np.zeros(nt) for n in names}
    occ = {n: np.zeros(nt) for n in names}
    cov = {n: np.zeros(nt) for n in names}
    sig = {n: np.full(nt, np.nan) for n in names}
    any_sigma = False
    sources = []
    for i, tp in enumerate(study.time_points):
        em = tp.emission
        c_img = _concentration_bq_ml(em, i)
        s_img = None
        if em.sigma is not None:
            any_sigma = True
            s_img = _concentration_bq_ml(em.replace(array=em.sigma, sigma=None), i)
        src = _source(em) or f"time_points[{i}].emission"
        sources.append({"time_h": tp.time_h, "source": _source(em), "unit": em.unit,
                        "spacing_mm": list(em.spacing_mm)})
        vvox = em.geometry.voxel_volume_ml
        cropped = crops[i if per_tp else 0]
        for n in names:
            frac = resample(cropped[n], em.geometry, method="overlap").array * \
                (cropped[n].geometry.voxel_volume_ml / vvox)
            sel = frac > 0
            f = frac[sel]
            occupied = float(f.sum()) * vvox
            voi_ml = float(np.sum(cropped[n].array)) * cropped[n].geometry.voxel_volume_ml
            coverage = occupied / voi_ml
            if coverage <= 1e-9:
                raise GeometryMismatchError(
                    f"VOI {n!r} ({volume_ml[n]:.3g} mL) lies outside the emission field of view "
                    f"at {tp.time_h:g} h; register the time point to the label map",
                    file=src, field="vois")
            if coverage < min_coverage:
                raise GeometryMismatchError(
                    f"only {coverage:.1%} of VOI {n!r} lies inside the emission field of view "
                    f"at {tp.time_h:g} h (min_coverage={min_coverage:g})", file=src,
                    field="vois")
            if coverage < 1.0 - 1e-6:
                warnings.warn(f"{src}: {coverage:.1%} of VOI {n!r} lies inside the field of "
                              f"view at {tp.time_h:g} h; the total covers that part only",
                              TheradoseWarning, stacklevel=2)
            wc = float(np.sum(f * c_img[sel]))
            act[n][i] = wc * vvox * 1e-6
            conc[n][i] = (wc / float(f.sum()) if margin_mm == 0
                          else act[n][i] * 1e6 / volume_ml[n])
            occ[n][i] = occupied
            if s_img is not None:
                sig[n][i] = math.sqrt(float(np.sum((f * s_img[sel]) ** 2))) * vvox * 1e-6
            cov[n][i] = coverage
    prov = {
        "method": "fractional-occupancy TAC (mask resampled as unit '1' with the "
                  "mean-conserving overlap method)",
        "assumption": "time points registered to the label map",
        "labels_source": lab_file,
        "labels_per_time_point": per_tp,
        "margin_mm": float(margin_mm),
        "exclusive_margin": bool(exclusive_margin),
        "time_points": sources,
    }
    prov["theradose_version"] = __version__
    return TACTable(tuple(names), study.times_h, act, conc, volume_ml, occ, cov, study.nuclide,
                    float(study.administration.injected_activity_mbq),
                    sig if any_sigma else None, prov)
