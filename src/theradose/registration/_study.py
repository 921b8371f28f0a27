"""Register every time point of a study (and the pre-therapy PET) to a reference time point."""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import GeometryMismatchError, InputError, TheradoseWarning
from theradose.io import Study, TimePoint, atomic_path
from theradose.registration._ct import register_ct
from theradose.registration._warp import (
    EmissionWarp,
    emission_grid,
    ncc,
    warp_ct,
    warp_emission,
)
from theradose.volume import Geometry, Volume

__all__ = ["GATE_MIN_DROP", "GATE_RATIO", "NCC_MIN", "RegisteredStudy", "RegistrationQuality",
           "register_study"]

log = logging.getLogger("theradose")

#: A registration is flagged (``ok`` False, warning) when the CT normalised cross-correlation
#: after registration is below this value, or lower than before registration by more than
#: :data:`NCC_DROP`. Low-dose CTs of the same patient correlate at 0.9-0.99 once aligned (whole
#: field of view, air included); a misregistration by ~1 cm in the trunk brings it below ~0.8.
NCC_MIN = 0.85
NCC_DROP = 0.01
#: Fraction of an emission total outside the reference field of view above which we warn.
OUTSIDE_WARN = 0.02
#: Quality gate (outlier among the time points of one study). A time point is an outlier when
#: its dissimilarity ``1 - ncc_after`` exceeds ``GATE_RATIO`` times the median dissimilarity of
#: the study's other registered time points, and its ``ncc_after`` is lower than their median
#: by more than ``GATE_MIN_DROP``. Sessions of one patient, rigidly aligned, leave similar
#: residuals (virtual patients, 8 mm: 1 - NCC = 0.0272-0.0278 with motion, noise or not; ~1e-6
#: without motion), so their ratio stays near 1; the drop keeps noiseless, motion-free studies
#: (median 1 - NCC ~ 1e-6, where any ratio is large) from flagging differences of 1e-4. Another
#: virtual patient's SPECT/CT among motion-free sessions: NCC 0.974 and 0.985 vs 1.000 (flagged);
#: the case reported in issue 17: 0.876 vs 0.999 (flagged).
GATE_RATIO = 3.0
GATE_MIN_DROP = 0.01
#: Fewest other registered time points the gate compares a time point with.
GATE_MIN_OTHERS = 2
#: Fewest voxels along each axis of a CT that the rigid stage's smoothing pyramid accepts.
MIN_CT_VOXELS = 4


@dataclass(frozen=True)
class RegistrationQuality:
    """How well one time point (or the PET) was registered to the reference.

    Attributes
    ----------
    time_h : float
        Time of the acquisition after its injection, h.
    metric_value : float or None
        Final Mattes mutual information (negative; lower is better); None for the reference.
    ncc_after, ncc_before : float
        Normalised cross-correlation of the moving CT with the reference CT after and before
        registration (identity mapping in scanner coordinates), over the overlap.
    ok : bool
        False when ``ncc_after < NCC_MIN`` or ``ncc_after < ncc_before - NCC_DROP``.
    message : str
        One line: why it is (not) ok.
    total_change : float
        Relative change of the emission total on resampling, before renormalisation.
    outside_fraction : float
        Fraction of the emission total outside the reference field of view (dropped).
    seconds : float
        Wall time of the registration and resampling, s.
    gate : dict or None
        The study-level quality gate (:func:`register_study`): ``outlier`` (True, False, or None
        when not assessed: the reference, the PET, or fewer than ``GATE_MIN_OTHERS`` other
        registered time points), ``others_median_ncc`` (median ``ncc_after`` of the other
        registered time points), ``dissimilarity_ratio`` (``(1 - ncc_after) / (1 - median)``),
        ``note`` (the rule, or why not assessed). None where the gate was not run.

    """

    time_h: float
    metric_value: float | None
    ncc_after: float
    ncc_before: float
    ok: bool
    message: str
    total_change: float = 0.0
    outside_fraction: float = 0.0
    seconds: float = 0.0
    gate: dict[str, Any] | None = None

    @property
    def outlier(self) -> bool:
        """True when the quality gate flagged this time point against the others."""
        return bool(self.gate and self.gate.get("outlier"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None); the gate under ``quality_gate``."""
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v
        d = {k: clean(getattr(self, k)) for k in (
            "time_h", "metric_value", "ncc_after", "ncc_before", "ok", "message",
            "total_change", "outside_fraction", "seconds")}
        d["quality_gate"] = None if self.gate is None else \
            {k: clean(v) for k, v in self.gate.items()}
        return d


@dataclass(frozen=True)
class RegisteredStudy:
    """A study whose images all lie in the frame of the reference time point.

    Attributes
    ----------
    study : Study
        Every CT resampled onto the reference time point's CT grid; every therapy emission image
        onto :attr:`emission_grid` (the reference emission grid), the PET emission onto a grid
        of its own voxel size covering the same field of view; totals conserved. Labels and
        administration unchanged (labels are assumed drawn on the reference CT).
    transforms : list of SimpleITK.Transform
        One per time point: maps reference LPS points (mm) to that time point's points (mm).
        Identity (Euler3D) for the reference.
    quality : list of RegistrationQuality
        One per time point.
    pet_transform : SimpleITK.Transform or None
        Reference → PET/CT points; None without a PET or with ``include_pet=False``.
    pet_quality : RegistrationQuality or None
    reference : int
        Index of the reference time point.
    deformable : bool
        Whether the BSpline stage was run.
    emission_grid : Geometry
        Grid of the registered therapy emission images.
    rigid_transforms : list of SimpleITK.Euler3DTransform
        The rigid parts (equal to ``transforms`` when not deformable).

    """

    study: Study
    transforms: list
    quality: list[RegistrationQuality]
    pet_transform: Any = None
    pet_quality: RegistrationQuality | None = None
    reference: int = 0
    deformable: bool = False
    emission_grid: Geometry | None = None
    rigid_transforms: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every registration (PET included) passed the quality check and the gate."""
        qs = [*self.quality, *([self.pet_quality] if self.pet_quality else [])]
        return all(q.ok and not q.outlier for q in qs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary: reference, method, per-time-point quality and transforms."""
        def params(t):
            return None if t is None else _describe_transform(t)
        return {
            "reference": self.reference,
            "deformable": self.deformable,
            "method": "SimpleITK Euler3D, Mattes MI (10% random sampling), 4-2-1 pyramid"
                      + ("; then BSpline (60 mm mesh, 5% sampling, LBFGSB)"
                         if self.deformable else ""),
            "time_points": [
                {**q.to_dict(), "transform": params(t)}
                for q, t in zip(self.quality, self.rigid_transforms or self.transforms,
                                strict=True)],
            "pet": None if self.pet_quality is None else {
                **self.pet_quality.to_dict(), "transform": params(self._pet_rigid())},
        }

    def _pet_rigid(self):
        t = self.pet_transform
        return None if t is None else _rigid_part(t)

    def write_transforms(self, folder: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write the transforms as ITK files ``transform_tp<i>.h5`` (+ ``transform_pet.h5``).

        Raises
        ------
        OutputExistsError
            If a file exists and ``overwrite`` is False.

        """
        import SimpleITK as sitk

        folder = Path(folder)
        items = [(f"transform_tp{i + 1}.h5", t) for i, t in enumerate(self.transforms)]
        if self.pet_transform is not None:
            items.append(("transform_pet.h5", self.pet_transform))
        paths = []
        for name, t in items:
            with atomic_path(folder / name, overwrite=overwrite) as tmp:
                sitk.WriteTransform(t, str(tmp))
            paths.append(folder / name)
        return paths


def _rigid_part(t):
    import SimpleITK as sitk

    if t.GetName() == "CompositeTransform":
        return sitk.CompositeTransform(t).GetNthTransform(0)
    return t


def _fast_for_resampling(t, grid: Geometry):
    """``t`` with its BSpline (if any) sampled as a displacement field on ``grid``.

    The BSpline is defined on the fixed (reference) CT grid and is the identity outside it, as
    is a displacement field on that grid; trilinear interpolation of the sampled field differs
    from the cubic BSpline (60 mm mesh) by far less than a voxel, and each resampling no longer
    evaluates 64 control points per voxel. The exact transform is the one returned and written.
    """
    import SimpleITK as sitk

    if t.GetName() != "CompositeTransform":
        return t
    comp = sitk.CompositeTransform(t)
    parts = [comp.GetNthTransform(i) for i in range(comp.GetNumberOfTransforms())]
    field = sitk.TransformToDisplacementField(
        parts[-1], sitk.sitkVectorFloat64, list(grid.size_xyz), tuple(grid.origin_mm),
        tuple(grid.spacing_mm), tuple(grid.direction.ravel()))
    return sitk.CompositeTransform([*parts[:-1], sitk.DisplacementFieldTransform(field)])


def _describe_transform(t) -> dict[str, Any]:
    t = _rigid_part(t)
    params = list(t.GetParameters())
    return {"type": t.GetName(), "rotation_deg": np.rad2deg(params[:3]).round(4).tolist(),
            "translation_mm": np.round(params[3:6], 3).tolist(),
            "centre_mm": np.round(t.GetFixedParameters()[:3], 3).tolist()}


def _source(v: Volume) -> str | None:
    src = v.meta.get("source_file") or (v.meta.get("source_files") or [None])[0]
    return None if src is None else str(src)


def _overlap(a: Geometry, b: Geometry) -> bool:
    ca, cb = a.corners(), b.corners()
    return bool(np.all(np.maximum(ca.min(0), cb.min(0)) < np.minimum(ca.max(0), cb.max(0))))


def _check_time_point(tp: TimePoint, what: str, file: str | None) -> None:
    if tp.ct is None:
        raise InputError(f"{what} has no CT; registration needs a CT at every time point "
                         "(pair one in the sidecar with 'paired_ct' or add the CT series)",
                         file=file, field=f"{what.split(' ')[0]}.ct")
    if not _overlap(tp.emission.geometry, tp.ct.geometry):
        raise GeometryMismatchError(
            f"{what}: emission field of view {tp.emission.geometry.corners().min(0).round(1)}"
            f"..{tp.emission.geometry.corners().max(0).round(1)} mm does not overlap its CT "
            f"{tp.ct.geometry.corners().min(0).round(1)}.."
            f"{tp.ct.geometry.corners().max(0).round(1)} mm", file=file,
            field=f"{what.split(' ')[0]}.emission")


def _check_registrable(ct: Volume, what: str, file: str | None) -> None:
    """Refuse, before SimpleITK does with a traceback, a CT that cannot be registered."""
    arr = ct.array
    if min(arr.shape) < MIN_CT_VOXELS:
        raise InputError(f"{what}: its CT has {'x'.join(map(str, arr.shape))} voxels (z,y,x); "
                         f"registration needs at least {MIN_CT_VOXELS} along each axis (a "
                         "localiser or a single slice is not a CT volume)", file=file,
                         field="registration")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what}: its CT holds NaN or infinite values; registration needs "
                         "finite HU", file=file, field="registration")
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        raise InputError(f"{what}: its CT is constant ({lo:g} {ct.unit} everywhere); "
                         "registration needs anatomy to align", file=file,
                         field="registration")


def _itk_reason(exc: BaseException) -> str:
    """The one-line reason inside a SimpleITK exception (no source paths, no object ids)."""
    text = str(exc)
    if "ITK ERROR:" in text:
        text = text.split("ITK ERROR:", 1)[1]
        text = re.sub(r"^\s*\w+\(0x[0-9a-fA-F]+\):\s*", "", text)
    return " ".join(text.split()).rstrip(".") or type(exc).__name__


def _identity():
    import SimpleITK as sitk

    return sitk.Euler3DTransform()


def _register_one(tp: TimePoint, ref_ct: Volume, grid: Geometry, label: str, *,
                  deformable: bool, seed: int, is_reference: bool):
    """Register one time point; returns (TimePoint, transform, rigid, quality).

    Raises
    ------
    InputError
        SimpleITK failed (field ``registration``, naming the time point's CT file).

    """
    t0 = time.perf_counter()
    if is_reference:
        transform = rigid = _identity()
        metric = None
    else:
        try:
            res = register_ct(ref_ct.to_sitk(), tp.ct.to_sitk(), deformable=deformable,
                              seed=seed)
        except RuntimeError as exc:  # SimpleITK raises RuntimeError for every ITK exception
            raise InputError(
                f"{label}: registering its CT to the reference CT ({_source(ref_ct)}) failed: "
                f"{_itk_reason(exc)}; check that both CTs are volumes of the same body region",
                file=_source(tp.ct) or _source(tp.emission), field="registration") from exc
        transform, metric = res.transform, res.metric_value
        rigid = _rigid_part(transform)
    fast = transform if is_reference else _fast_for_resampling(transform, ref_ct.geometry)
    ncc_before = ncc(ref_ct, tp.ct, _identity())
    ncc_after = ncc_before if is_reference else ncc(ref_ct, tp.ct, fast)
    if is_reference and tp.emission.geometry.same_as(grid, tol_mm=1e-6):
        em = tp.emission.replace(meta={**tp.emission.meta, "registration_total_change": 0.0},
                                 note=f"registered ({label}): reference frame, not resampled")
        warped = EmissionWarp(em, 0.0, 0.0)
    else:
        warped = warp_emission(tp.emission, fast, grid, rigid=rigid, label=label)
    ct = tp.ct if is_reference else warp_ct(tp.ct, fast, ref_ct.geometry, label=label)
    if is_reference:
        ok, message = True, f"{label}: reference"
    elif not (ncc_after >= NCC_MIN):
        ok = False
        message = (f"{label}: CT NCC after registration {ncc_after:.3f} below {NCC_MIN} "
                   f"(before {ncc_before:.3f}); check the images or try deformable=True")
    elif ncc_after < ncc_before - NCC_DROP:
        ok = False
        message = (f"{label}: CT NCC fell from {ncc_before:.3f} to {ncc_after:.3f} on "
                   "registration; the result is worse than no registration")
    else:
        ok = True
        message = f"{label}: CT NCC {ncc_before:.3f} -> {ncc_after:.3f}"
    q = RegistrationQuality(tp.time_h, metric, ncc_after, ncc_before, ok, message,
                            warped.total_change, warped.outside_fraction,
                            time.perf_counter() - t0)
    return TimePoint(warped.volume, ct, tp.time_h), transform, rigid, q


def register_study(study: Study, *, reference: int = 0, deformable: bool = False,
                   include_pet: bool = True, seed: int = 0) -> RegisteredStudy:
    """Register all time points (and the pre-therapy PET) to one reference time point.

    Each time point's CT is registered to the reference CT (rigid Euler3D, Mattes mutual
    information, optionally refined by a BSpline); its emission image, assumed aligned with
    its own CT (hybrid SPECT/CT or PET/CT), is resampled into the reference frame through the
    same transform with its total conserved (see :func:`warp_emission`). The reference's own
    images are not interpolated.

    Quality gate: with at least ``GATE_MIN_OTHERS`` + 1 registered (non-reference) time points,
    each is compared with the others (:func:`_quality_gate`); an outlier (e.g. a SPECT/CT of
    another patient or session) is flagged in ``quality[i].gate`` and warned about, and kept:
    :func:`~theradose.io.load_study` already refuses series of another PatientID, so the gate
    is a second line that reports, and the user decides.

    Parameters
    ----------
    study : Study
        Every time point (and the PET, if registered) must have a CT.
    reference : int
        Index of the reference time point (its CT grid is the output CT grid and its emission
        grid the output emission grid). Default the first.
    deformable : bool
        Refine each rigid registration with a BSpline (slower, ~10-60 s per time point).
    include_pet : bool
        Register the pre-therapy PET too; False drops it from the result.
    seed : int
        Seed of the random metric sampling (same seed, same result).

    Returns
    -------
    RegisteredStudy

    Raises
    ------
    InputError
        Not a Study, bad ``reference``, or a time point (or the PET) without a CT; field
        ``registration``: a CT that cannot be registered (constant, non-finite values, fewer
        than ``MIN_CT_VOXELS`` voxels along an axis) or whose registration SimpleITK refuses
        (its reason, in one line).
    GeometryMismatchError
        An emission image that does not overlap its CT.

    Warns
    -----
    TheradoseWarning
        A registration fails the quality check (``ok`` False), a time point is an outlier of
        the quality gate (naming its file and its NCC against the others'), or more than 2 % of
        an emission total lies outside the reference field of view.

    Examples
    --------
    >>> reg = register_study(load_study("study/"))            # doctest: +SKIP
    >>> [q.ok for q in reg.quality]                            # doctest: +SKIP
    [True, True, True]

    """
    if not isinstance(study, Study):
        raise InputError(f"must be a theradose.io.Study, got {type(study).__name__}",
                         field="study")
    n = len(study.time_points)
    if isinstance(reference, bool) or not isinstance(reference, int | np.integer) or \
            not -n <= reference < n:
        raise InputError(f"must be an integer index of a time point in [0, {n - 1}], got "
                         f"{reference!r}", field="reference")
    reference = int(reference) % n
    src = None if study.source is None else str(study.source)
    labels = []
    for i, tp in enumerate(study.time_points):
        label = f"time_points[{i}] ({tp.time_h:g} h)"
        _check_time_point(tp, label, _source(tp.emission) or src)
        labels.append(label)
    pet = study.pet if include_pet else None
    if pet is not None:
        _check_time_point(pet, f"pet ({pet.time_h:g} h)", _source(pet.emission) or src)
    if n > 1 or pet is not None:
        for i, tp in enumerate(study.time_points):
            _check_registrable(tp.ct, labels[i] + " (reference)" * (i == reference),
                               _source(tp.ct) or _source(tp.emission) or src)
        if pet is not None:
            _check_registrable(pet.ct, f"pet ({pet.time_h:g} h)",
                               _source(pet.ct) or _source(pet.emission) or src)

    ref_tp = study.time_points[reference]
    ref_ct = ref_tp.ct
    grid = ref_tp.emission.geometry
    tps, transforms, rigids, quality = [], [], [], []
    for i, tp in enumerate(study.time_points):
        new_tp, t, r, q = _register_one(tp, ref_ct, grid, labels[i], deformable=deformable,
                                        seed=seed, is_reference=i == reference)
        _report(q, stacklevel=3)
        log.info("registration %s (%.1f s)", q.message, q.seconds)
        tps.append(new_tp)
        transforms.append(t)
        rigids.append(r)
        quality.append(q)
    quality = _quality_gate(quality, reference)
    for i, q in enumerate(quality):
        if q.outlier:
            g = q.gate
            others = [f"{quality[j].ncc_after:.3f}" for j in range(n)
                      if j not in (i, reference) and math.isfinite(quality[j].ncc_after)]
            warnings.warn(
                f"{_source(study.time_points[i].emission) or src}: registration: {labels[i]} is "
                f"an outlier among the study's time points: CT NCC after registration "
                f"{q.ncc_after:.3f} vs {g['others_median_ncc']:.3f} (median of the others: "
                f"{', '.join(others)}); is it this patient's SPECT/CT of this therapy? It is "
                "kept: check the images", TheradoseWarning, stacklevel=2)
    pet_t = pet_q = new_pet = None
    if pet is not None:
        pet_grid = emission_grid(grid, pet.emission.spacing_mm)
        new_pet, pet_t, _, pet_q = _register_one(pet, ref_ct, pet_grid, f"pet ({pet.time_h:g} h)",
                                                 deformable=deformable, seed=seed,
                                                 is_reference=False)
        pet_q = replace(pet_q, gate=_not_assessed("pre-therapy PET: not compared with the "
                                                  "therapy time points"))
        _report(pet_q, stacklevel=3)
        log.info("registration %s (%.1f s)", pet_q.message, pet_q.seconds)
    out = Study(tuple(tps), study.administration, pet=new_pet, labels=study.labels,
                source=study.source, skipped=study.skipped)
    return RegisteredStudy(out, transforms, quality, pet_t, pet_q, reference, bool(deformable),
                           grid, rigids)


def _not_assessed(why: str) -> dict[str, Any]:
    return {"outlier": None, "others_median_ncc": None, "dissimilarity_ratio": None,
            "note": why}


def _quality_gate(quality: list[RegistrationQuality], reference: int
                  ) -> list[RegistrationQuality]:
    """Flag a time point whose CT similarity after registration is an outlier in its study.

    ``d = 1 - ncc_after`` is the residual dissimilarity; a time point is an outlier when
    ``d > GATE_RATIO * median(d of the other registered time points)`` and ``ncc_after`` is
    below their median by more than ``GATE_MIN_DROP`` (leave-one-out, the reference excluded:
    its NCC with itself is 1). A ratio rather than median - k * MAD: with 2-5 time points a MAD
    is not estimable (zero for motion-free phantoms), while the residual of aligned sessions of
    one patient scales with noise and deformation alike in all of them.
    """
    rule = f"ratio > {GATE_RATIO:g} and NCC drop > {GATE_MIN_DROP:g} flags"
    finite = {i: q.ncc_after for i, q in enumerate(quality)
              if i != reference and math.isfinite(q.ncc_after)}
    out = []
    for i, q in enumerate(quality):
        others = [v for j, v in finite.items() if j != i]
        if i == reference:
            gate = _not_assessed("reference time point")
        elif i not in finite or len(others) < GATE_MIN_OTHERS:
            gate = _not_assessed(f"not assessed: {len(others)} other time point(s) with a "
                                 f"finite NCC, {GATE_MIN_OTHERS} needed")
        else:
            m = float(np.median(others))
            d, dm = 1.0 - q.ncc_after, 1.0 - m
            ratio = d / dm if dm > 0 else (math.inf if d > 0 else 1.0)
            gate = {"outlier": bool(ratio > GATE_RATIO and q.ncc_after < m - GATE_MIN_DROP),
                    "others_median_ncc": round(m, 6),
                    "dissimilarity_ratio": float(f"{ratio:.4g}"), "note": rule}
        out.append(replace(q, gate=gate))
    return out


def _report(q: RegistrationQuality, *, stacklevel: int) -> None:
    if not q.ok:
        warnings.warn(f"poor registration: {q.message}", TheradoseWarning,
                      stacklevel=stacklevel + 1)
    if q.outside_fraction > OUTSIDE_WARN:
        label = q.message.split(":")[0]
        warnings.warn(f"{label}: {q.outside_fraction:.1%} of the emission total lies outside the "
                      "reference field of view and was dropped", TheradoseWarning,
                      stacklevel=stacklevel + 1)
