"""The stages of the pipeline, each a function of plain data (cacheable, testable alone)."""

from __future__ import annotations

import fnmatch
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import FitError, GeometryMismatchError, InputError, UnitError
from theradose.io import Study, TimePoint, load_study, read_seg, rtstruct_to_labelmap
from theradose.pipeline._plausibility import activity_balance, check_ct_units
from theradose.segmentation import activity_region, body_contour
from theradose.volume import Geometry, LabelMap, Volume, resample

__all__ = ["find_voi_file", "kinetics_stage", "load_and_register", "vois_stage"]

log = logging.getLogger("theradose")

# Imported here (not inside the function) so tests can count calls.
from theradose.registration import register_study  # noqa: E402

_FOV_MIN = 0.5  # smallest accepted fraction of an emission total inside the reference CT grid


def _src(v: Volume) -> str | None:
    s = v.meta.get("source_file") or (v.meta.get("source_files") or [None])[0]
    return None if s is None else str(s)


def _fraction_inside(emission: Volume, grid: Geometry) -> float:
    """Fraction of the emission total whose voxel centres lie inside ``grid``."""
    a = np.asarray(emission.array, float)
    nz = np.nonzero(a > 0)
    if nz[0].size == 0:
        return 1.0
    ijk = np.stack([nz[2], nz[1], nz[0]], axis=1)  # (x, y, z) index order
    idx = grid.physical_to_index(emission.geometry.index_to_physical(ijk))
    size = np.asarray(grid.size_xyz, float)
    ok = np.all((idx >= -0.5) & (idx <= size - 0.5), axis=1)
    w = a[nz]
    return float(w[ok].sum() / w.sum())


def load_and_register(study_dir: Path, cfg) -> dict[str, Any]:
    """Load the study, register it, put every emission image on the reference CT grid.

    Returns
    -------
    dict
        ``times_h`` (T,), ``emission_bq_ml`` (T, Z, Y, X) float32 Bq/mL on the reference CT
        grid, ``ct_hu`` (Z, Y, X), ``geometry`` (dict), ``ct_meta``, ``administration``,
        ``registration`` (per-time-point quality dicts), ``study`` (summary), ``fov_fraction``.

    Raises
    ------
    InputError
        Missing administration, a time point without CT, counts without calibration, bad
        ``registration.reference``.
    GeometryMismatchError
        An emission image that (almost) does not overlap the reference CT.

    """
    st = cfg.section("study")
    study = load_study(study_dir, nuclide=st["nuclide"],
                       injected_activity_mbq=st["injected_activity_mbq"],
                       injection_time=st["injection_time"],
                       calibration_cps_per_mbq=st["calibration_cps_per_mbq"])
    n = len(study.time_points)
    for tp in study.time_points:
        if tp.ct is None:
            raise InputError(f"the time point at {tp.time_h:g} h has no CT (each SPECT needs "
                             "its CT series in the study folder)", file=_src(tp.emission),
                             field="ct")
        if tp.emission.unit_info.dimension != "activity_concentration":
            raise UnitError(f"emission image in {tp.emission.unit!r}; accepted: an activity "
                            "concentration (set [study] calibration_cps_per_mbq for counts)",
                            file=_src(tp.emission), field="study.calibration_cps_per_mbq")
        f = _fraction_inside(tp.emission, tp.ct.geometry)
        if f < _FOV_MIN:
            raise GeometryMismatchError(
                f"only {100 * f:.1f} % of the activity at {tp.time_h:g} h lies inside its CT; "
                f"accepted: >= {100 * _FOV_MIN:.0f} % (is this the SPECT's CT?)",
                file=_src(tp.emission), field="ct")
    # plausibility against what the clinic knows: warnings + numbers, never a silent pass
    balance = activity_balance(study, [_src(tp.emission) for tp in study.time_points])
    ct_air = [check_ct_units(tp.ct, _src(tp.ct)) for tp in study.time_points]
    reg = cfg.section("registration")
    ref = reg["reference"]
    if ref >= n:
        raise InputError(f"got {ref}; the study has {n} time points (0..{n - 1})",
                         file=cfg.source, field="registration.reference")
    quality: list[dict[str, Any]] = []
    transforms: dict[str, bytes] = {}
    tps = study.time_points
    if reg["enabled"] and n > 1:
        r = register_study(study, reference=ref, deformable=reg["deformable"],
                           include_pet=False, seed=reg["seed"])
        tps = r.study.time_points
        # per time point: quality and the rigid transform (reference -> time point, ITK)
        quality = r.to_dict()["time_points"]
        transforms = _transform_files(r)
    ref_ct = tps[ref].ct
    grid = ref_ct.geometry
    emis, frac = [], []
    for tp, orig in zip(tps, study.time_points, strict=True):
        e = tp.emission.to_unit("Bq/mL")
        on_grid = resample(e, grid)
        total = float(np.sum(e.array, dtype=np.float64)) * e.geometry.voxel_volume_ml
        inside = float(np.sum(on_grid.array, dtype=np.float64)) * grid.voxel_volume_ml
        f = inside / total if total > 0 else 1.0
        if f < _FOV_MIN:
            raise GeometryMismatchError(
                f"only {100 * f:.1f} % of the activity at {tp.time_h:g} h lies inside the "
                f"reference CT; accepted: >= {100 * _FOV_MIN:.0f} % (does the SPECT belong to "
                "this CT?)", file=_src(orig.emission), field="ct")
        emis.append(on_grid.array.astype(np.float32))
        frac.append(f)
    meta = {k: v for k, v in ref_ct.meta.items() if k != "administration"}
    return {
        "times_h": study.times_h,
        "emission_bq_ml": np.stack(emis),
        "ct_hu": ref_ct.array.astype(np.float32),
        "ct_unit": ref_ct.unit,
        "geometry": grid,
        "ct_meta": meta,
        "administration": study.administration,
        "registration": quality,
        "transforms_h5": transforms,
        "study": study.summary(),
        "emission_files": [_src(tp.emission) for tp in study.time_points],
        # voxel size of each emission image before resampling (x, y, z) mm: the resolution
        # estimate separates the camera's blur from the voxels' (segmentation._resolution)
        "emission_spacing_mm": [tuple(float(x) for x in tp.emission.geometry.spacing_mm)
                                for tp in study.time_points],
        "fov_fraction": frac,
        "activity_balance": balance,
        "ct_air_fraction": ct_air,
        "reference": ref,
    }


def _transform_files(registered) -> dict[str, bytes]:
    """The full transforms (rigid, or rigid + BSpline) as ITK HDF5 file contents by name.

    Kept as bytes so that the cached registration stage can write them to every output folder.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return {p.name: p.read_bytes() for p in registered.write_transforms(tmp)}


def ct_volume(reg: dict[str, Any]) -> Volume:
    """The reference CT (HU) with its UIDs in ``meta`` (for SEG / RT Dose references)."""
    return Volume(reg["ct_hu"], reg["geometry"], unit=reg["ct_unit"], modality="CT",
                  meta=dict(reg["ct_meta"]))


def find_voi_file(study_dir: Path) -> tuple[str, Path] | None:
    """The study's DICOM SEG (else RTSTRUCT): ``(modality, path)`` or None.

    The folder is walked as the study loader walks it (:func:`theradose.io.study_files`,
    symbolic links followed). Two SEGs, or two RTSTRUCTs without a SEG, are ambiguous: an
    :class:`InputError` names both files rather than one being picked by file name.
    """
    import pydicom

    from theradose.io import study_files

    found: dict[str, list[Path]] = {"SEG": [], "RTSTRUCT": []}
    for p in study_files(study_dir)[0]:
        if p.suffix.lower() not in ("", ".dcm"):
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # not DICOM: the study loader reports such files
            continue
        mod = str(ds.get("Modality", ""))
        if mod in found:
            found[mod].append(p)
    for mod in ("SEG", "RTSTRUCT"):
        if len(found[mod]) > 1:
            raise InputError(f"{len(found[mod])} {mod} files in the study "
                             f"({', '.join(str(p) for p in found[mod][:3])}); keep the one "
                             "whose VOIs are to be used", file=found[mod][1], field="Modality")
        if found[mod]:
            return mod, found[mod][0]
    return None


def vois_stage(study_dir: Path, reg: dict[str, Any], cfg) -> tuple[LabelMap, dict[str, Any]]:
    """VOIs on the reference CT grid: the study's SEG/RTSTRUCT/label map, plus lesions.

    Raises
    ------
    InputError
        No VOI source in the study, an unknown VOI name in ``[vois]``, nothing left.

    """
    ct = ct_volume(reg)
    grid: Geometry = reg["geometry"]
    hit = find_voi_file(study_dir)
    if hit is not None:
        mod, path = hit
        labels = read_seg(path, reference=ct) if mod == "SEG" else rtstruct_to_labelmap(path, ct)
        source = {"modality": mod, "file": str(path)}
    else:
        from theradose.io import study_files

        nifti = [p for p in study_files(study_dir)[0] if p.name in ("labels.nii.gz",
                                                                    "labels.nii")]
        if len(nifti) > 1:
            raise InputError(f"{len(nifti)} label maps in the study ({', '.join(map(str, nifti))})"
                             "; keep one", file=nifti[1], field="labels")
        if not nifti:
            raise InputError("no VOIs: the study has no DICOM SEG, RTSTRUCT or labels.nii.gz "
                             "(draw them on the reference CT)", file=study_dir, field="labels")
        from theradose.io import read_labelmap
        labels = read_labelmap(nifti[0])
        source = {"modality": "NIfTI", "file": str(nifti[0])}
    if not labels.geometry.same_as(grid):
        names = dict(labels.names)
        before = set(np.unique(labels.array).tolist()) & set(names)
        labels = resample(labels, grid)
        lost = sorted(names[v] for v in before - set(np.unique(labels.array).tolist()))
        if lost:  # outside the reference CT, or smaller than one of its voxels
            what = ("none of its VOIs lies inside the reference CT's grid: is it drawn on "
                    "another CT?") if len(lost) == len(before) else (
                f"{len(lost)} VOI(s) vanish on the reference CT's grid (outside it or "
                f"smaller than a voxel): {lost[:8]}{' ...' if len(lost) > 8 else ''}")
            raise InputError(what, file=source["file"], field="geometry")
    vcfg = cfg.section("vois")
    known = sorted(labels.names.values())
    for key in ("include", "exclude"):
        bad = [v for v in vcfg[key] if v not in known]
        if bad:
            raise InputError(f"unknown VOI(s) {bad}; the VOIs of {Path(source['file']).name} "
                             f"are {known}", file=cfg.source, field=f"vois.{key}")
    keep = [n for n in known if (not vcfg["include"] or n in vcfg["include"])
            and n not in vcfg["exclude"]]
    masks = {n: labels.mask(n) for n in keep}
    seg = cfg.section("segmentation")
    if seg["lesions"] != "none":
        from theradose.segmentation import segment_lesions
        img = Volume(reg["emission_bq_ml"][0], grid, unit="Bq/mL", modality="NM")
        les = segment_lesions(img, method=seg["lesions"], percent=seg["percent"],
                              threshold=seg["threshold"], min_volume_ml=seg["min_volume_ml"],
                              exclude=LabelMap.from_masks(masks, grid) if masks else None)
        taken = np.zeros(grid.shape, bool)
        for m in masks.values():
            taken |= m
        for name, m in les.masks().items():
            m = m & ~taken
            if m.any():
                masks[name] = m
        source["lesions"] = {"method": seg["lesions"], "n": len(les.names)}
    if not masks:
        raise InputError("no VOI left after [vois] include/exclude", file=cfg.source,
                         field="vois")
    return LabelMap.from_masks(masks, grid), source


def _curve(fit, t_end: float) -> dict[str, list[float]]:
    """Fitted curve of the selected model with a ±1σ band (delta method on the parameters)."""
    from theradose.kinetics import MODELS

    t = np.linspace(0.0, t_end, 80)
    sel = fit.selected_fit
    if sel.model in MODELS and sel.success:
        m = MODELS[sel.model]
        p = np.asarray(sel.params, float)
        a = m.f(t, p)
        if sel.covariance is not None:
            j = m.jacobian(t, p)
            var = np.einsum("ti,ij,tj->t", j, np.asarray(sel.covariance, float), j)
            s = np.sqrt(np.clip(var, 0, None))
        else:
            s = np.zeros_like(a)
    else:  # trapezoid / hybrid: the data joined linearly from (0, 0), then physical decay
        tt = np.r_[0.0, fit.times_h]
        yy = np.r_[0.0, fit.values]
        a = np.interp(t, tt, yy)
        late = t > tt[-1]
        a[late] = yy[-1] * np.exp(-fit.lambda_phys_per_h * (t[late] - tt[-1]))
        s = np.zeros_like(a)
    return {"t_h": t.tolist(), "a_mbq": a.tolist(), "lo": np.clip(a - s, 0, None).tolist(),
            "hi": (a + s).tolist()}


def kinetics_stage(reg: dict[str, Any], labels: LabelMap, cfg) -> dict[str, Any]:
    """Organ TACs, organ fits (TIA ± σ) and the voxel TIA map (MBq·h) on the reference grid.

    BLAS runs single-threaded here: the stage solves thousands of small systems (GTM,
    local alignment, resolution, organ fits), for which threads only add overhead.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _kinetics(reg, labels, cfg)


def _kinetics(reg: dict[str, Any], labels: LabelMap, cfg) -> dict[str, Any]:
    from theradose.kinetics import InputUncertainty, fit_tac, fit_voxels, organ_tacs

    kin = cfg.section("kinetics")
    grid: Geometry = reg["geometry"]
    adm = reg["administration"]
    times = np.asarray(reg["times_h"], float)
    ct = ct_volume(reg)
    tps = tuple(TimePoint(Volume(a, grid, unit="Bq/mL", modality="NM"), ct, float(t))
                for a, t in zip(reg["emission_bq_ml"], times, strict=True))
    study = Study(time_points=tps, administration=adm)
    names = sorted(labels.names.values())
    table = organ_tacs(study, labels, vois=names, margin_mm=kin["margin_mm"])
    # the patient: external contour (lungs and gas inside), and the part of it that can hold
    # activity (tissue and lung parenchyma; not gas pockets and their partial-volume edges)
    body = body_contour(reg["ct_hu"])
    tissue = activity_region(reg["ct_hu"], body, grid.spacing_mm)
    pvc: dict[str, Any] = {"applied": False}
    if kin["pvc"] == "gtm":
        kin = {**kin, **_resolution(reg, labels, kin, tissue)}
        table, pvc = _gtm_table(table, reg, labels, names, kin, tissue)
        pvc["resolution"] = kin["resolution"]
    fits: dict[str, Any] = {}
    failed: dict[str, str] = {}
    rec_sd = pvc.get("recovery_rel_sd", {})
    models = _rankable(kin["models"], len(times), kin["criterion"])
    empty: list[str] = []
    for n in names:
        y = np.asarray(table.activity_mbq[n], float)
        if not np.any(y > 0):  # e.g. an air-filled lumen: TIA 0, nothing to fit
            empty.append(n)
            continue
        try:
            fits[n] = fit_tac(times, y, unit="MBq", nuclide=adm.nuclide,
                              relative_sigma=kin["relative_sigma"], models=models,
                              criterion=kin["criterion"], max_abs_corr=kin["max_abs_corr"],
                              input_uncertainty=InputUncertainty(
                                  recovery=min(rec_sd.get(n, 0.0), 0.99)))
        except (FitError, InputError) as exc:
            failed[n] = str(exc)
            log.warning("TAC fit of %s failed: %s", n, exc)
    # voxel TIA map: activity per voxel (MBq) in the body's tissue; the counts the camera's
    # blur put outside it (air around the skin, gas, an air-filled VOI) go to the nearest
    # voxel inside (total kept: the activity is the patient's, not the air's)
    from theradose.dose import confine_frames

    vml = grid.voxel_volume_ml
    act = reg["emission_bq_ml"].astype(np.float64) * (vml * 1e-6)
    act, moved = confine_frames(act, tissue)  # air VOI voxels (a lumen) hold none either
    mask = tissue & (act.max(axis=0) > 0)
    vf = fit_voxels(times, act, mask, nuclide=adm.nuclide, models=kin["voxel_models"],
                    relative_sigma=kin["relative_sigma"], criterion=kin["criterion"])
    tia = np.where(mask, np.nan_to_num(np.asarray(vf.tia, float)), 0.0)
    sig = np.where(mask, np.nan_to_num(np.asarray(vf.sigma, float)), 0.0)
    if pvc["applied"]:
        _voxels_to_organ_tia(tia, sig, labels, names, fits, pvc, mask)
    curves = {n: _curve(f, float(max(times[-1] * 1.5, 1.0))) for n, f in fits.items()}
    if empty:
        log.info("no activity at any time point in %s: TIA 0", ", ".join(empty))
    return {"table": table, "fits": fits, "failed": failed, "empty": empty, "curves": curves,
            "tia_map": tia.astype(np.float32), "tia_sigma": sig.astype(np.float32),
            "voxel_provenance": dict(vf.provenance), "voxel_counts": vf.counts(),
            # per VOI: voxels whose fit was kept, replaced by trapezoid + physical tail (low
            # counts, noise) or capped at the data bound (kinetics._voxel_bounds)
            "voxel_status": {n: vf.status_counts(labels.mask(n)) for n in names},
            "activity_moved_into_body": moved, "body": body,
            "pvc": pvc}


#: Relative σ of the fallback FWHM (used when the study does not show its resolution).
_FALLBACK_REL_SD = 0.25
#: Relative σ assumed for a FWHM given by the user (a single Gaussian stands for a response
#: that widens with the source-collimator distance, MIRD Pamphlet 23).
_GIVEN_REL_SD = 0.1


def _rankable(models: list[str], n_points: int, criterion: str) -> list[str]:
    """The organ-fit candidates the criterion can rank with ``n_points`` time points.

    AICc needs ``n ≥ k + 2`` points for a model of ``k`` parameters and BIC ``n > k``
    (:func:`theradose.kinetics.fit_tac`); a model below that can never be selected, so it is
    not fitted (with 4 time points and AICc: mono only). The selection is unchanged; if no
    parametric model is left, the list is returned as it is (``fit_tac`` then falls back).
    """
    from theradose.kinetics import MODELS

    extra = 2 if criterion == "aicc" else 1
    keep = [m for m in models if m not in MODELS or n_points >= MODELS[m].n_params + extra]
    if not any(m in MODELS for m in keep):
        return list(models)
    skipped = [m for m in models if m not in keep]
    if skipped:
        log.info("organ fits: %s not fitted (%s needs more than %d time points)",
                 ", ".join(skipped), criterion.upper(), n_points)
    return keep


def _voxels_to_organ_tia(tia: np.ndarray, sig: np.ndarray, labels: LabelMap,
                         names: list[str], fits: dict[str, Any], pvc: dict[str, Any],
                         mask: np.ndarray) -> None:
    """Set the voxel TIA map inside each VOI to the VOI's corrected TIA (in place).

    A VOI the GTM split into core and shell (larger than the resolution) keeps the voxel
    pattern of the image, scaled. A smaller one has no measurable inner pattern: what the image
    shows inside it is the point-spread function (a 2 mL lesion's blurred profile put its
    centre voxel at 1.5× the true maximum dose on a virtual patient), so its TIA is spread
    uniformly over its voxels that can hold activity (``mask``), as the GTM assumes; its σ
    (common to all its voxels) is shared the same way. ``pvc["voxel_scale"]`` records the
    factor or ``"uniform"``.
    """
    pvc["voxel_scale"] = {}
    split = set(pvc.get("split_vois", []))
    for n in names:
        if n not in fits or not np.isfinite(fits[n].tia):
            continue
        m = labels.mask(n)
        if n not in split:
            inside = m & mask
            k = int(inside.sum())
            if k:
                tia[m], sig[m] = 0.0, 0.0
                tia[inside] = float(fits[n].tia) / k
                sig[inside] = float(fits[n].sigma_tia) / k
                pvc["voxel_scale"][n] = "uniform"
            continue
        s_vox = float(tia[m].sum())
        if s_vox > 0:
            f = float(fits[n].tia) / s_vox
            tia[m] *= f
            sig[m] *= f
            pvc["voxel_scale"][n] = f


def _resolution(reg: dict[str, Any], labels: LabelMap, kin: dict[str, Any],
                tissue: np.ndarray) -> dict[str, Any]:
    """FWHM for the GTM: given, estimated from the reference image, or the fallback.

    Returns ``fwhm_mm``, ``gtm_fwhm_rel_sd`` (unless set in the configuration) and
    ``resolution`` (the record for ``results.json``: ``source`` = ``"config"``,
    ``"estimated"`` or ``"fallback"``, the estimate, the FWHM used and its σ).
    """
    from theradose.segmentation import effective_fwhm, estimate_fwhm

    grid: Geometry = reg["geometry"]
    ref = int(reg["reference"])
    grid_w = float(np.mean(grid.spacing_mm))
    spacing = reg.get("emission_spacing_mm") or [grid.spacing_mm] * len(reg["times_h"])
    emis_w = float(np.mean(spacing[ref]))
    user_rel = kin["gtm_fwhm_rel_sd"]
    if kin["fwhm_mm"] is not None:
        fwhm = float(kin["fwhm_mm"])
        rel = _GIVEN_REL_SD if user_rel is None else float(user_rel)
        return {"fwhm_mm": fwhm, "gtm_fwhm_rel_sd": rel,
                "resolution": {"source": "config", "fwhm_mm": fwhm, "rel_sd": rel}}
    est = estimate_fwhm(reg["emission_bq_ml"][ref], labels.array, labels.names,
                        tissue, grid.spacing_mm, emission_voxel_mm=emis_w)
    record = {"estimate": est.to_dict(), "time_point": ref,
              "emission_voxel_mm": emis_w, "grid_voxel_mm": grid_w}
    if est.ok:
        fwhm = float(est.fwhm_mm)
        # the recovery σ of a VOI uses the scatter of the per-VOI widths (the width that
        # describes one VOI's surroundings), not the standard error of their median
        rel = (max(float(est.sigma_mm), float(est.spread_mm or 0.0)) / fwhm
               if user_rel is None else float(user_rel))
        log.info("effective resolution estimated from the %g h image: %.1f ± %.1f mm FWHM "
                 "(camera %s mm; %d VOIs)", float(reg["times_h"][ref]), fwhm, est.sigma_mm,
                 "?" if est.camera_fwhm_mm is None else f"{est.camera_fwhm_mm:.1f}",
                 est.n_used)
        return {"fwhm_mm": fwhm, "gtm_fwhm_rel_sd": rel,
                "resolution": {"source": "estimated", "fwhm_mm": fwhm, "rel_sd": rel,
                               "camera_fwhm_mm": est.camera_fwhm_mm,
                               "camera_sigma_mm": est.camera_sigma_mm, **record}}
    cam = float(kin["fwhm_fallback_mm"])
    fwhm = effective_fwhm(cam, emis_w, grid_w)
    rel = _FALLBACK_REL_SD if user_rel is None else float(user_rel)
    log.warning("the SPECT resolution could not be estimated from the study (%s): partial-"
                "volume correction uses the fallback camera FWHM %g mm (kinetics."
                "fwhm_fallback_mm; %.1f mm on the reference grid) with a %g %% uncertainty; "
                "set kinetics.fwhm_mm to your camera's", est.note, cam, fwhm, 100 * rel)
    return {"fwhm_mm": fwhm, "gtm_fwhm_rel_sd": rel,
            "resolution": {"source": "fallback", "fwhm_mm": fwhm, "rel_sd": rel,
                           "camera_fwhm_mm": cam, "camera_sigma_mm": rel * cam, **record}}


def _gtm_table(table, reg: dict[str, Any], labels: LabelMap, names: list[str],
               kin: dict[str, Any], tissue: np.ndarray):
    """Organ activities corrected by the geometric transfer matrix (Rousset et al. 1998).

    Sources: every VOI (split into core and shell when thick enough) plus the rest of the body
    (body contour, tissue) as background; measurement ROIs: the VOIs grown by a margin shared out by
    nearest VOI, less a guard band next to VOIs more than twice as hot in the reference image,
    the rest of the field of view for the background
    (:func:`theradose.segmentation.gtm_regions`). The VOIs named by ``local_align`` (lesions)
    are first located on each time point's image (:func:`theradose.segmentation.
    fit_local_shifts`) and the GTM of that time point uses them there
    (:func:`theradose.segmentation.shifted_voi_totals`). Corrected total per VOI =
    Σ concentration × volume of its sub-regions.
    """
    from dataclasses import replace

    from theradose.segmentation import (
        fit_local_shifts,
        gtm_regions,
        gtm_voi_totals,
        shifted_voi_totals,
    )
    from theradose.segmentation._gtm_regions import BACKGROUND

    grid: Geometry = reg["geometry"]
    fwhm_mm = float(kin["fwhm_mm"])
    keep = {v: n for v, n in labels.names.items() if n in names}
    regions = gtm_regions(labels.array, keep, tissue, grid.spacing_mm, fwhm_mm,
                          roi_margin_mm=kin["gtm_roi_margin_mm"],
                          shell_mm=kin["gtm_shell_mm"],
                          reference_image=reg["emission_bq_ml"][int(reg["reference"])],
                          guard_mm=kin["gtm_guard_mm"])
    images = list(reg["emission_bq_ml"])
    moving = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in kin["local_align"])]
    local = fit_local_shifts(images, regions, grid.spacing_mm, moving,
                             max_shift_mm=kin["local_align_max_mm"]) if moving else None

    def totals(r) -> dict[str, np.ndarray]:
        """Corrected totals of region set ``r``, lesions where each image shows them."""
        if local is None:
            return gtm_voi_totals(images, r, grid.spacing_mm)
        return shifted_voi_totals(images, r, grid.spacing_mm, local)

    tot = totals(regions)
    for n in moving:  # empty when local is None
        for t, (ok, note) in enumerate(zip(local.accepted[n], local.notes[n], strict=True)):
            if not ok:
                log.warning("local alignment of %s at %g h not used: %s", n,
                            float(reg["times_h"][t]), note)
        big = float(np.max(np.linalg.norm(local.shifts_mm[n], axis=1)))
        if big > fwhm_mm / 2:
            log.info("%s lies up to %.1f mm from its VOI after registration (local "
                     "alignment applied)", n, big)
    rec_sd = _recovery_sd(totals, regions, tot, float(kin["gtm_fwhm_rel_sd"]))
    bg_ml = float(np.sum(regions.sources[BACKGROUND])) * grid.voxel_volume_ml \
        if BACKGROUND in regions.sources else 0.0
    bg_conc = (np.asarray(tot[BACKGROUND], float) / bg_ml if bg_ml > 0
               else np.zeros(len(images)))  # Bq/mL
    tissue_ml = {n: float(np.sum(labels.mask(n) & tissue)) * grid.voxel_volume_ml
                 for n in names}
    spill = _spill_in_dominated(tot, table, names, bg_conc, float(kin["gtm_fwhm_rel_sd"]),
                                tissue_ml)
    for n, rec in spill.items():
        tot[n] = rec["activity_bq"]
        rec_sd[n] = math.hypot(rec_sd.get(n, 0.0), rec["rel_sd"])
        log.warning("%s is dominated by spill-in from its neighbours at %s h (its own counts "
                    "under half of those seen in it): the camera cannot separate it, its "
                    "activity there is the GTM value shrunk towards the body background "
                    "(regularised GTM, ±%.0f %% on its TIA)", n,
                    ", ".join(f"{float(reg['times_h'][t]):g}" for t in rec["time_points"]),
                    100 * rec_sd[n])
    act = {n: np.maximum(tot[n], 0.0) * 1e-6 for n in names}  # Bq -> MBq
    model_sd = _correction_sd(act, table, names, spill)
    for n, v in model_sd.items():
        rec_sd[n] = math.hypot(rec_sd.get(n, 0.0), v)
    conc = {n: act[n] * 1e6 / float(table.volume_ml[n]) for n in names}
    ratio = {n: [float(a / b) if b > 0 else None for a, b in
                 zip(act[n], table.activity_mbq[n], strict=True)] for n in names}
    negative = sorted(n for n in names if np.any(tot[n] < 0))
    if negative:
        log.warning("GTM gave a negative activity for %s (clipped at 0): the VOI is much "
                    "smaller than the resolution or its surroundings are not uniform",
                    ", ".join(negative))
    settings = dict(regions.settings)
    prov = {**table.provenance, "pvc": {"method": "GTM (Rousset et al. J Nucl Med "
                                        "1998;39:904-911)", **settings}}
    new = replace(table, activity_mbq=act, concentration_bq_ml=conc, provenance=prov)
    return new, {"applied": True, "method": "gtm", "fwhm_mm": fwhm_mm,
                 "reference": "Rousset OG, Ma Y, Evans AC. J Nucl Med 1998;39:904-911",
                 "background": "body contour (CT > -500 HU, holes filled) with CT > -950 "
                               "HU, outside every VOI",
                 "roi_margin_mm": settings["roi_margin_mm"], "shell_mm": settings["shell_mm"],
                 "min_core_ml": settings["min_core_ml"], "split_vois": settings["split"],
                 "guard_mm": settings["guard_mm"], "guard_ratio": settings["guard_ratio"],
                 "guarded_vois": settings["guarded"],
                 "clipped_negative": negative, "corrected_over_observed": ratio,
                 "local_alignment": None if local is None else local.to_dict(),
                 "fwhm_rel_sd": float(kin["gtm_fwhm_rel_sd"]), "recovery_rel_sd": rec_sd,
                 "model_rel_sd": model_sd,
                 "spill_in_dominated": {n: {k: v for k, v in r.items() if k != "activity_bq"}
                                        for n, r in spill.items()}}


#: Relative model error of the GTM's correction (fraction of corrected − observed).
#: Calibrated on the tuning virtual patients (seeds 0-7: 40 organ cases of kidneys, liver,
#: spleen and salivary glands, 7-15 mm cameras) by maximum likelihood, so that (error / σ)²
#: of the organ doses averages 1 (0.05: 1.14, 0.075: 0.82); checked on held-out seeds in
#: benchmarks/README.md ("Robustness").
CORRECTION_MODEL_REL = 0.06


def _correction_sd(act: dict[str, np.ndarray], table, names: list[str],
                   spill: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Relative σ of each VOI's corrected activity from the GTM's model error.

    The GTM models every region as uniform and the camera as one Gaussian; where that is not
    so (a renal cortex, a bladder wall, a response that widens with depth) its correction —
    the difference between the corrected activity and the activity observed in the VOI — is
    off by a fraction of itself, ``ε`` (:data:`CORRECTION_MODEL_REL`), summed over the time
    points as a systematic error (common to all of them, Gear et al. 2018):
    ``σ_rel = ε Σ_t |a_t − a_obs,t| / Σ_t a_t``. Time points already regularised as spill-in
    dominated carry their own term and are left out here. The FWHM's own uncertainty is the
    recovery term of :func:`_recovery_sd`, not this one.
    """
    eps = CORRECTION_MODEL_REL
    out = {}
    for n in names:
        a = np.asarray(act[n], float)
        obs = np.asarray(table.activity_mbq[n], float)
        skip = set(spill.get(n, {}).get("time_points", ()))
        keep = [t for t in range(a.size) if t not in skip]
        total = float(np.sum(a))
        if keep and total > 0:
            out[n] = eps * float(np.sum(np.abs(a[keep] - obs[keep]))) / total
    return out


#: A VOI whose corrected activity is below this fraction of what is observed in it is
#: dominated by spill-in from its neighbours at that time point.
_SPILL_IN_RATIO = 0.5
#: Relative σ of the body-background prior of such a VOI (weak: ±100 %).
_PRIOR_REL_SD = 1.0


def _spill_in_dominated(tot: dict[str, np.ndarray], table, names: list[str],
                        bg_conc: np.ndarray, model_rel: float,
                        tissue_ml: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Regularise the GTM value of VOIs the camera cannot separate from hot neighbours.

    At a time point where a VOI's GTM activity ``a`` is under half of the activity observed in
    it (``a_obs``, the VOI's plain sum), more than half of its counts are attributed to the
    neighbours, and ``a`` is their small difference: a model error of the neighbours' spill-in
    (non-uniform activity inside them, a bladder wall, a residual shift) lands in it whole.
    Its σ is then ``ε·(a_obs − a)`` with ``ε`` the relative model error of that spill-in (the
    FWHM's relative σ, at least 10 %), and the value is combined with a weak prior — the body
    background concentration × the VOI's tissue volume (``tissue_ml``: its voxels above
    −950 HU; an air-filled lumen holds none), ±100 % — by inverse-variance weighting (the
    maximum a posteriori estimate of a Tikhonov-regularised GTM): where the data say little,
    the VOI takes up like the body around it, instead of inheriting its neighbours' activity.

    Returns, per affected VOI, ``activity_bq`` (the regularised series), ``time_points``
    (indices), ``gtm_mbq`` and ``prior_mbq`` at those, and ``rel_sd`` (σ of the affected part
    over the VOI's total activity, summed over time points).
    """
    eps = max(model_rel, 0.1)
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        a = np.asarray(tot[n], float).copy()
        obs = np.asarray(table.activity_mbq[n], float) * 1e6
        vol = float(tissue_ml.get(n, table.volume_ml[n]))
        hit = [t for t in range(a.size) if obs[t] > 0 and a[t] < _SPILL_IN_RATIO * obs[t]]
        if not hit:
            continue
        var_sum = 0.0
        rec = {"time_points": hit, "gtm_mbq": [], "prior_mbq": []}
        for t in hit:
            sm = max(eps * (obs[t] - a[t]), 1e-12)
            prior = max(float(bg_conc[t]), 0.0) * vol
            sp = max(_PRIOR_REL_SD * prior, 1e-12)
            w_m, w_p = 1.0 / sm**2, 1.0 / sp**2
            rec["gtm_mbq"].append(float(a[t]) * 1e-6)
            rec["prior_mbq"].append(prior * 1e-6)
            a[t] = (w_m * a[t] + w_p * prior) / (w_m + w_p)
            var_sum += 1.0 / (w_m + w_p)
        total = float(np.sum(np.maximum(a, 0.0)))
        rec["rel_sd"] = math.sqrt(var_sum) / total if total > 0 else 1.0
        rec["activity_bq"] = a
        out[n] = rec
    return out


def _recovery_sd(totals, regions, tot: dict[str, Any], rel_sd: float) -> dict[str, float]:
    """Relative standard uncertainty of each VOI's corrected activity from the PSF's FWHM.

    ``totals(region set)`` solves the GTM (with the same local shifts); it is solved again
    with the FWHM ``× (1 + rel_sd)``; the change of the totals (a one-sided difference: the
    totals are smooth in the FWHM, and one solve less), summed over the time points, over the
    summed totals: a
    systematic (all time points together) recovery uncertainty in the sense of Gear et al.
    2018 (EANM uncertainty guidance, doi:10.1007/s00259-018-4136-7), for the TIA fit's
    ``InputUncertainty.recovery``. A single Gaussian stands for a collimator-detector response
    that widens with the source-collimator distance (MIRD Pamphlet 23), hence the default 10 %.
    """
    from dataclasses import replace

    if rel_sd <= 0:
        return {}
    fwhm = float(regions.settings["fwhm_mm"])
    wider = totals(replace(regions, settings={**regions.settings,
                                              "fwhm_mm": fwhm * (1.0 + rel_sd)}))
    out = {}
    for n, t in tot.items():
        base = float(np.sum(np.maximum(t, 0.0)))
        if base > 0:
            out[n] = float(np.sum(np.abs(wider[n] - t)) / base)
    return out
