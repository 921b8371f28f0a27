"""The demo: simulate a virtual patient, run the pipeline on its DICOM, compare with the truth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from theradose._logging import StageProgress
from theradose.io import prepare_output

__all__ = ["registration_residual", "run_demo", "truth_block", "truth_table"]

log = logging.getLogger("theradose")


def truth_block(truth: dict[str, Any], vois: list[str]) -> dict[str, Any]:
    """True organ TIA (MBq·h) and dose (Gy, per truth engine) of the VOIs in ``truth.json``."""
    organs = truth.get("organs", {})
    regions = truth.get("regions", {})
    doses = truth.get("dose", {})
    out: dict[str, Any] = {}
    for n in vois:
        src = organs.get(n) or regions.get(n)
        if src is None:
            continue
        out[n] = {"tia_mbq_h": src.get("tia_mbq_h"), "mass_g": src.get("mass_g"),
                  "dose_gy": {e: (d.get("organs", {}).get(n)
                                  or d.get("regions", {}).get(n))["mean_gy"]
                              for e, d in doses.items()
                              if n in d.get("organs", {}) or n in d.get("regions", {})}}
    return {"source": "truth/truth.json", "vois": out}


def _invert(motion, p: np.ndarray) -> np.ndarray:
    """Points x with motion(x) = p (fixed point; the motion is a rotation + a small field)."""
    x = p.copy()
    for _ in range(60):
        step = motion.transform_points(x) - p
        x -= step
        if np.abs(step).max() < 1e-6:
            return x
    raise RuntimeError("the true motion could not be inverted (fixed point did not converge)")


def _best_rigid(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares rigid map of p onto x (Kabsch 1976, doi:10.1107/S0567739476001873)."""
    pc, xc = p.mean(0), x.mean(0)
    u, _, vt = np.linalg.svd((p - pc).T @ (x - xc))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    r = vt.T @ d @ u.T
    return (p - pc) @ r.T + xc


#: AAPM TG-132 tolerances for deformable registration validated on landmarks of known
#: displacement (Brock et al. 2017): mean target registration error < 2 mm, maximum < 5 mm.
TG132_MEAN_MM, TG132_MAX_MM = 2.0, 5.0


def _displacement(path: Path, grid) -> tuple[np.ndarray, bool]:
    """Displacement ``T(p) - p`` (mm) of an ITK transform file at every voxel of ``grid``.

    Also whether the transform is deformable (a composite: rigid + BSpline).
    """
    import SimpleITK as sitk

    t = sitk.ReadTransform(str(path))
    field = sitk.TransformToDisplacementField(
        t, sitk.sitkVectorFloat64, list(grid.size_xyz), tuple(grid.origin_mm),
        tuple(grid.spacing_mm), tuple(grid.direction.ravel()))
    return sitk.GetArrayFromImage(field), t.GetName() == "CompositeTransform"


def _voi_masks(truth: dict[str, Any], labels, vois) -> dict[str, np.ndarray]:
    """Truth masks of the study's VOIs (organ groups by their fine regions, lesions)."""
    out = {}
    for name in vois:
        regions = truth.get("organs", {}).get(name, {}).get("regions") or [name]
        values = [labels.labels[r] for r in regions if r in labels.labels]
        if values:
            out[name] = np.isin(labels.array, values)
    return out


def registration_residual(results: dict[str, Any], truth_dir: str | Path,
                          results_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Registration error of each time point against the simulator's known motion.

    Reference-frame points ``p`` (truth label voxels inside the reference grid) are mapped by
    the estimated transform and by the true motion (``truth.json``, inverted: it maps
    acquisition → reference). The estimate is the full transform the pipeline wrote
    (``registration/transform_tp<i>.h5``: rigid, or rigid + BSpline) when ``results_dir`` holds
    it, else the rigid part in ``results["registration"]``.

    Two readings are given. Over the body (every 7th voxel), and at landmarks in the sense of
    AAPM TG-132 (Brock et al. 2017, doi:10.1002/mp.12256): the centroid of each VOI of the
    study, its true position against the estimated one (target registration error, TRE),
    with TG-132's tolerances for a deformable registration, mean < 2 mm and max < 5 mm.

    Returns
    -------
    list of dict
        Per moved time point: ``time_h``, ``mean_mm`` and ``max_mm`` (body, full estimate vs
        the full true motion), ``rigid_mean_mm`` (the rigid part alone), ``rigid_floor_mm``
        (best rigid least-squares fit of the true motion vs the truth: what no rigid
        registration can beat), ``vs_best_rigid_mm`` (rigid part vs that best rigid map),
        ``vs_repositioning_mm`` (rigid part vs the simulator's rigid repositioning alone),
        ``deformable``, ``landmark_tre_mm`` (per VOI), ``tre_mean_mm``, ``tre_max_mm``,
        ``tg132_pass``, ``local`` (per locally aligned VOI, see :func:`_local_residual`).
    """
    import json

    import SimpleITK as sitk

    from theradose.io import read_labelmap
    from theradose.phantoms._imaging_motion import PatientMotion
    from theradose.volume import Geometry

    truth_dir = Path(truth_dir)
    truth = json.loads((truth_dir / "truth.json").read_text())
    labels = read_labelmap(truth_dir / "labels.nii.gz")
    grid = Geometry.from_dict(results["study"]["reference_grid"])
    centres = labels.geometry.voxel_centres()
    idx = grid.physical_to_index(centres.reshape(-1, 3)).reshape(centres.shape)
    in_grid = np.all((idx >= -0.5) & (idx <= np.asarray(grid.size_xyz) - 0.5), axis=-1)
    body = (labels.array > 0) & in_grid
    sample = np.zeros_like(body)
    sample.reshape(-1)[np.flatnonzero(body)[::7]] = True
    masks = {n: m & in_grid for n, m in _voi_masks(truth, labels, results.get("vois", {})).items()
             if (m & in_grid).any()}
    moves = {round(a["time_after_injection_h"], 6): a["motion"] for a in truth["acquisitions"]
             if a["modality"] == "NM" and a.get("motion")}
    out = []
    for k, q in enumerate(results.get("registration", [])):
        mot = moves.get(round(float(q["time_h"]), 6))
        tr = q.get("transform")
        if mot is None or not tr:
            continue
        motion = PatientMotion.from_dict(mot)
        t = sitk.Euler3DTransform(tuple(tr["centre_mm"]), *np.deg2rad(tr["rotation_deg"]),
                                  tuple(tr["translation_mm"]))
        rot = np.asarray(t.GetMatrix()).reshape(3, 3)
        c, shift = np.asarray(t.GetCenter()), np.asarray(t.GetTranslation())

        def rigid(pts, rot=rot, c=c, shift=shift):  # = t.TransformPoint, vectorised
            return (pts - c) @ rot.T + c + shift

        path = None if results_dir is None else \
            Path(results_dir) / "registration" / f"transform_tp{k + 1}.h5"
        disp, deformable = _displacement(path, labels.geometry) if path and path.is_file() \
            else (None, False)

        def estimate(mask, disp=disp, rigid=rigid):
            pts = centres[mask]
            return rigid(pts) if disp is None else pts + disp[mask]

        p = centres[sample]
        x = _invert(motion, p)
        # the repositioning alone (no deformation): x_ref = R (x - c) + c + t, inverted
        rig = motion.rotation_matrix()
        x_rigid = (p - motion.centre_mm - motion.translation_mm) @ rig + motion.centre_mm
        got, got_rigid = estimate(sample), rigid(p)
        best = _best_rigid(p, x)
        err = np.linalg.norm(got - x, axis=1)
        x_voi = {name: _invert(motion, centres[m]) for name, m in masks.items()}
        tre = {name: float(np.linalg.norm(estimate(m).mean(axis=0) - x_voi[name].mean(axis=0)))
               for name, m in masks.items()}
        tre_mean = float(np.mean(list(tre.values()))) if tre else None
        tre_max = max(tre.values()) if tre else None
        out.append({"time_h": float(q["time_h"]), "mean_mm": float(err.mean()),
                    "max_mm": float(err.max()),
                    "rigid_mean_mm": float(np.linalg.norm(got_rigid - x, axis=1).mean()),
                    "rigid_floor_mm": float(np.linalg.norm(best - x, axis=1).mean()),
                    "vs_best_rigid_mm": float(np.linalg.norm(got_rigid - best, axis=1).mean()),
                    "vs_repositioning_mm": float(np.linalg.norm(got_rigid - x_rigid,
                                                                axis=1).mean()),
                    "deformable": deformable,
                    "n_points": len(p),
                    "landmark_tre_mm": tre, "tre_mean_mm": tre_mean, "tre_max_mm": tre_max,
                    "tg132_pass": bool(tre) and tre_mean < TG132_MEAN_MM
                    and tre_max < TG132_MAX_MM,
                    "local": _local_residual(results, masks, x_voi, estimate, rot, k)})
    return out


def _local_residual(results: dict[str, Any], masks: dict[str, np.ndarray],
                    x_voi: dict[str, np.ndarray], estimate, rot: np.ndarray,
                    k: int) -> dict[str, dict[str, float]]:
    """Per locally aligned VOI: its true offset from the registration, and after the fit.

    A VOI voxel ``p`` is imaged at ``x`` (true motion, inverted: ``x_voi``); the registration
    puts it at ``T(p)``, so in the registered image the VOI appears shifted by
    ``Rᵀ (x − T(p))`` (``R`` the rotation of the rigid part); the local fit
    (``pvc.local_shift_mm``) estimates that shift (mean over the VOI).
    """
    out: dict[str, dict[str, float]] = {}
    for name, v in results.get("vois", {}).items():
        shifts = (v.get("pvc") or {}).get("local_shift_mm")
        if not shifts or name not in masks:
            continue
        true_shift = ((x_voi[name] - estimate(masks[name])) @ rot).mean(axis=0)  # Rᵀ(x − T(p))
        fitted = np.asarray(shifts[k], float)
        out[name] = {"registered_mm": float(np.linalg.norm(true_shift)),
                     "after_local_mm": float(np.linalg.norm(true_shift - fitted))}
    return out


def _pct(est: float | None, true: float | None) -> str:
    if est is None or not true:
        return "-"
    return f"{100.0 * (est / true - 1.0):+.1f}"


def truth_table(results: dict[str, Any]) -> str:
    """Text table: per VOI, estimated vs true TIA and dose with % differences."""
    truth = results.get("truth", {}).get("vois", {})
    engine = results.get("provenance", {}).get("primary_engine") or "kernel"
    rows = [f"{'VOI':<18} {'TIA est':>10} {'TIA true':>10} {'diff %':>7}  "
            f"{'dose est':>9} {'dose true':>9} {'diff %':>7}   (TIA MBq*h, dose Gy, {engine})"]
    for n, v in results["vois"].items():
        t = truth.get(n)
        if t is None:
            continue
        te = v["tia_mbq_h"]["value"]
        de = v["dose_gy"].get(engine, {}).get("value")
        dt = t["dose_gy"].get(engine)
        rows.append(f"{n:<18} {te or float('nan'):>10.1f} {t['tia_mbq_h']:>10.1f} "
                    f"{_pct(te, t['tia_mbq_h']):>7}  {de or float('nan'):>9.3f} "
                    f"{dt if dt is not None else float('nan'):>9.3f} {_pct(de, dt):>7}")
    rs, tr = results.get("resolution") or {}, results.get("truth", {}).get("resolution") or {}
    if rs.get("camera_fwhm_mm") is not None and tr.get("camera_fwhm_mm"):
        rows.append(f"SPECT resolution ({rs.get('source')}): camera FWHM "
                    f"{rs['camera_fwhm_mm']:.1f} ± {rs.get('camera_sigma_mm') or 0:.1f} mm, "
                    f"true {tr['camera_fwhm_mm']:g} mm "
                    f"({_pct(rs['camera_fwhm_mm'], tr['camera_fwhm_mm'])} %); "
                    f"{rs.get('fwhm_mm', float('nan')):.1f} mm on the dose grid")
    for w in results.get("warnings") or []:
        rows.append(f"warning ({w.get('stage')}): {w.get('message')}")
    res = results.get("truth", {}).get("registration_residual") or []
    if res:
        rows.append("registration vs the known motion, mean over the body (mm): "
                    + "; ".join(f"{r['time_h']:g} h {r['mean_mm']:.1f} (rigid part "
                                f"{r.get('rigid_mean_mm', r['mean_mm']):.1f}, best rigid fit "
                                f"{r['rigid_floor_mm']:.1f}; rigid part vs it "
                                f"{r['vs_best_rigid_mm']:.1f}, vs the rigid repositioning "
                                f"{r.get('vs_repositioning_mm', float('nan')):.1f})"
                                for r in res))
        tre = [r for r in res if r.get("tre_mean_mm") is not None]
        if tre:
            rows.append(f"landmarks (VOI centroids, AAPM TG-132: mean < {TG132_MEAN_MM:g}, "
                        f"max < {TG132_MAX_MM:g} mm): "
                        + "; ".join(f"{r['time_h']:g} h mean {r['tre_mean_mm']:.1f} max "
                                    f"{r['tre_max_mm']:.1f} "
                                    f"({max(r['landmark_tre_mm'], key=r['landmark_tre_mm'].get)})"
                                    f" {'pass' if r['tg132_pass'] else 'FAIL'}" for r in tre))
        loc = [(r["time_h"], n, d) for r in res for n, d in (r.get("local") or {}).items()]
        if loc:
            worst = max(loc, key=lambda e: e[2]["after_local_mm"])
            rows.append(f"locally aligned VOIs vs the known motion (mm): registration alone up "
                        f"to {max(d['registered_mm'] for _, _, d in loc):.1f}, after local "
                        f"alignment up to {worst[2]['after_local_mm']:.1f} ({worst[1]} at "
                        f"{worst[0]:g} h)")
    return "\n".join(rows)


def run_demo(out: str | Path, *, seed: int = 0, voxel_mm: float = 5.0, noise: bool = True,
             motion: bool = True, n_lesions: int | None = 3,
             lesion_volume_ml: tuple[float, float] = (2.0, 50.0), overwrite: bool = False,
             config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Simulate a 177Lu-PSMA virtual patient and run the pipeline on it as a user would.

    Writes ``OUT/patient`` (DICOM + truth, :func:`theradose.phantoms.simulate_patient` with
    ``truth_dose=("kernel",)``) and ``OUT/results`` (:func:`run_pipeline` on
    ``OUT/patient/dicom`` with the **default configuration**, exactly as ``theradose run``
    gives a user's study; the one value passed is the SPECT calibration factor, which a site
    knows for its camera), then adds a ``"truth"`` block to ``results.json``. Nothing from
    the truth reaches the pipeline: the SPECT resolution for the partial-volume correction is
    estimated from the images.

    Parameters
    ----------
    out : str or Path
        Demo folder.
    seed : int
        Seed of the virtual patient.
    voxel_mm : float
        Anatomy/CT voxel size, mm (4-6 keeps the run under ~2 min on 2 cores).
    noise, motion : bool
        Realistic SPECT (resolution, noise) and patient repositioning between time points.
    n_lesions : int or None
        Lesions of the virtual patient (None: drawn).
    lesion_volume_ml : (float, float)
        Range of their volumes (log-uniform draw); the default spans the acceptance's "lesions
        >= 5 mL" and smaller ones below the resolution.
    overwrite : bool
        Replace an earlier demo in ``out``.
    config : dict, optional
        Pipeline configuration sections merged over the defaults (for experiments; the demo
        itself passes none).

    Returns
    -------
    dict
        ``results.json`` content with ``truth``.

    """
    from theradose.phantoms import SimulationConfig, simulate_patient
    from theradose.pipeline._run import run_pipeline, write_results

    out = Path(out)
    prepare_output(out / "results" / "results.json", overwrite=overwrite)
    steps = StageProgress(3, label="demo")  # lines on a terminal only (THERADOSE_PROGRESS=1)
    with steps.stage("virtual patient"):
        vp = simulate_patient(out / "patient", seed=seed, overwrite=overwrite,
                              config=SimulationConfig(preset="psma", voxel_mm=voxel_mm,
                                                      noise=noise, motion=motion,
                                                      n_lesions=n_lesions,
                                                      lesion_volume_ml=lesion_volume_ml,
                                                      truth_dose=("kernel",)))
    nm = next(a for a in vp.truth["acquisitions"] if a["modality"] == "NM")
    # the default configuration, as `theradose run` gives a user's study; the one input a
    # site knows and the images do not carry is its camera's calibration factor
    cfg: dict[str, Any] = {"study": {"calibration_cps_per_mbq": nm["calibration_cps_per_mbq"]}}
    for sec, vals in (config or {}).items():
        cfg.setdefault(sec, {}).update(vals)
    with steps.stage("pipeline"):
        results = run_pipeline(vp.dicom, out / "results", cfg, overwrite=overwrite)
    with steps.stage("comparison with the truth"):
        results["truth"] = truth_block(vp.truth, list(results["vois"]))
        results["truth"]["resolution"] = {"camera_fwhm_mm": nm.get("fwhm_mm"),
                                          "emission_voxel_mm": nm.get("voxel_mm")}
        if motion:
            results["truth"]["registration_residual"] = registration_residual(
                results, vp.truth_dir, out / "results")
        write_results(results, out / "results" / "results.json", overwrite=True)
    return results
