"""``run_pipeline``: study folder → registration → VOIs → kinetics → dose → DVH/BED → outputs."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import math
import os
import platform
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from theradose import __version__
from theradose._logging import StageProgress
from theradose.errors import InputError, OutputExistsError, UnreadableFileError
from theradose.io import atomic_path, reproducible_dicom, write_nifti, write_rtdose, write_seg
from theradose.io._outputs import output_transaction
from theradose.pipeline import _stages
from theradose.pipeline._cache import StageCache, fingerprint, stage_key
from theradose.pipeline._config import PipelineConfig
from theradose.pipeline._dose import dose_stage
from theradose.pipeline._warnings import collect_warnings
from theradose.volume import LabelMap, Volume

__all__ = ["SCHEMA", "run_pipeline"]

log = logging.getLogger("theradose")

#: Schema id of ``results.json`` (documented in ``docs/results-json.md``).
SCHEMA = "theradose.results/1"


def _num(x: Any) -> float | None:
    """JSON number or None (NaN/inf are not JSON)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _json(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json(x.tolist())
    if isinstance(x, np.generic):
        return _json(x.item())
    if isinstance(x, float):
        return _num(x)
    if isinstance(x, str | int | bool) or x is None:
        return x
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, datetime):
        return x.isoformat()
    return str(x)


def _software() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"theradose": __version__, "python": platform.python_version()}
    for n in ("numpy", "scipy", "SimpleITK", "pydicom", "highdicom", "nibabel",
              "icrp107-database"):
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = None
    return out


def _as_config(config: PipelineConfig | str | Path | dict | None) -> PipelineConfig:
    if config is None:
        return PipelineConfig()
    if isinstance(config, PipelineConfig):
        return config
    if isinstance(config, str | Path):
        return PipelineConfig.from_toml(config)
    if isinstance(config, dict):
        return PipelineConfig.from_dict(config)
    raise InputError(f"expected a PipelineConfig, a TOML path or a dict, got "
                     f"{type(config).__name__}", field="config")


def _dvh_entry(dose: Volume, labels, name: str) -> dict[str, Any] | None:
    from theradose.dose import dvh

    try:
        h = dvh(dose, labels, label=name)
    except InputError as exc:
        log.warning("DVH of %s skipped: %s", name, exc)
        return None
    edges = np.asarray(h.bin_edges, float)
    cum = np.asarray(h.cumulative_fraction, float)
    step = max(1, len(edges) // 100)
    idx = np.r_[np.arange(0, len(edges), step), len(edges) - 1]
    idx = np.unique(idx)
    return {"d2": _num(h.d(2)), "d50": _num(h.d(50)), "d98": _num(h.d(98)),
            "mean": _num(h.mean), "unit": "Gy",
            "curve": {"dose_gy": edges[idx].tolist(), "volume_fraction": cum[idx].tolist()}}


def _pvc_entry(pvc: dict[str, Any], name: str) -> dict[str, Any]:
    """The VOI's partial-volume correction record (method, factors per time point)."""
    if not pvc.get("applied"):
        return {"applied": False}
    return {"applied": True, "method": pvc["method"], "fwhm_mm": pvc["fwhm_mm"],
            "fwhm_source": (pvc.get("resolution") or {}).get("source"),
            "reference": pvc["reference"],
            **{k: pvc.get(k) for k in ("roi_margin_mm", "shell_mm", "guard_mm")},
            "split": name in pvc.get("split_vois", []),
            "guarded_against": pvc.get("guarded_vois", {}).get(name, []),
            "clipped_negative": name in pvc.get("clipped_negative", []),
            "corrected_over_observed": pvc["corrected_over_observed"].get(name),
            "voxel_scale": pvc.get("voxel_scale", {}).get(name),
            "fwhm_rel_sd": pvc.get("fwhm_rel_sd"),
            "recovery_rel_sd": pvc.get("recovery_rel_sd", {}).get(name),
            "model_rel_sd": (pvc.get("model_rel_sd") or {}).get(name),
            "spill_in_dominated": (pvc.get("spill_in_dominated") or {}).get(name),
            **_local_entry(pvc.get("local_alignment"), name)}


def _local_entry(local: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """The VOI's local alignment: its shift per time point (mm, x y z), kept or not, why."""
    rec = (local or {}).get("vois", {}).get(name)
    if rec is None:
        return {"local_shift_mm": None}
    return {"local_shift_mm": [[round(x, 2) for x in s] for s in rec["shift_mm"]],
            "local_shift_kept": rec["accepted"],
            "local_shift_note": [n for n in rec["note"] if n] or None}


def _bed_entry(fit, dose_gy: float, tia: float, name: str) -> dict[str, Any]:
    from theradose.radiobiology import bed_from_fit, get_tissue

    try:
        tissue = get_tissue("tumour" if name.startswith("lesion") else name)
    except InputError:
        return {"value": None, "sd": None, "note": f"no tissue parameters for {name!r}"}
    if not (tia > 0 and dose_gy > 0):
        return {"value": None, "sd": None, "note": "no dose or TIA"}
    try:
        b = bed_from_fit(fit, dose_gy / tia, tissue)
    except InputError as exc:
        return {"value": None, "sd": None, "note": str(exc)}
    return {"value": _num(b.bed_gy), "sd": _num(b.sigma_bed_gy), "tissue": b.tissue,
            "alpha_beta_gy": _num(b.alpha_beta_gy),
            "repair_half_time_h": _num(b.repair_half_time_h), "g_factor": _num(b.g_factor),
            "model": b.model}


def run_pipeline(study_dir: str | Path, out_dir: str | Path,
                 config: PipelineConfig | str | Path | dict | None = None, *,
                 overwrite: bool = False) -> dict[str, Any]:
    """Run the whole dosimetry workflow on one study folder and write every output.

    Stages: :func:`theradose.io.load_study` → :func:`theradose.registration.register_study`
    (CT↔CT, emission images into the reference frame, totals conserved) → VOIs (the study's
    DICOM SEG, else RTSTRUCT, else ``labels.nii.gz``, on the reference CT; lesions by
    :func:`theradose.segmentation.segment_lesions` when configured) → organ TACs and fits
    (TIA ± σ) and the voxel TIA map → dose engines → DVH and BED per VOI → outputs
    (``results.json``, NIfTI maps, RT Dose, SEG, report). Registration, TACs and the TIA map
    are cached under ``OUT/.cache`` (keyed by the input files and the relevant configuration),
    so a re-run with other dose options starts at the dose stage.

    The outputs are written into a staging folder and published whole at the end
    (:func:`theradose.io._outputs.output_transaction`: ``results.json`` moved in last, the
    outputs of an earlier run moved out first), under a lock on ``OUT``: a failed or interrupted run
    publishes nothing, its rerun resumes from the cache, and two runs never write one folder
    at once. The same inputs, configuration and theradose give the same bytes in every output
    (timestamps and timings only under ``provenance``; ``docs/pipeline.md``, "Reproducible").

    Parameters
    ----------
    study_dir : str or Path
        Study folder (DICOM and/or NIfTI + sidecars, see ``docs/io-nifti-study.md``); only read.
    out_dir : str or Path
        Output folder (created); must not be inside ``study_dir``.
    config : PipelineConfig, TOML path or dict, optional
        Options (defaults: ``docs/pipeline.md``).
    overwrite : bool
        Replace the outputs of an earlier run; otherwise an existing ``results.json`` raises.

    Returns
    -------
    dict
        The ``results.json`` content (schema ``theradose.results/1``, ``docs/results-json.md``).

    Raises
    ------
    InputError
        Invalid configuration, missing administration or calibration, a time point without
        CT, no VOIs in the study, an unknown VOI in ``[vois]``, output inside the study.
    GeometryMismatchError
        An emission image that does not overlap its CT.
    OutputExistsError
        ``OUT/results.json`` exists and ``overwrite`` is False, or another run is writing
        ``OUT``.

    Examples
    --------
    >>> res = run_pipeline("patient/dicom", "patient/results")       # doctest: +SKIP
    >>> res["vois"]["kidney_left"]["dose_gy"]["kernel"]              # doctest: +SKIP
    {'value': 4.7, 'sd': 0.3}

    """
    t_start = time.perf_counter()
    created = datetime.now().isoformat(timespec="seconds")
    cfg = _as_config(config)
    study = Path(study_dir).resolve()
    out = Path(out_dir).resolve()
    if not study.is_dir():
        raise UnreadableFileError("study folder does not exist", file=study, field="study_dir")
    if out == study or study in out.parents:
        raise InputError("the output folder is inside the study folder; theradose never writes "
                         "into a study: choose another --out", file=out, field="out_dir")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", file=out, field="out_dir")
    if (out / "results.json").exists() and not overwrite:  # before taking the lock
        raise OutputExistsError(f"{out / 'results.json'}: output exists; pass overwrite=True "
                                "(CLI: --overwrite) or choose another folder")
    with output_transaction(out, marker="results.json", managed=_managed_names(out),
                            overwrite=overwrite, hook=_test_kill) as staging:
        cache = StageCache(out / ".cache")
        cache.remove_temporaries()
        results = _run(study, staging, cfg, cache, t_start, created)
    return results


#: Entries of an output folder that the pipeline writes (replaced by a new run, removed when
#: unpublished); anything else there (a user's own files, ``.cache``) is never touched.
OUTPUT_PATTERNS = ("results.json", "tia.*", "tia_sigma.*", "dose_*", "rtdose*.dcm", "seg.dcm",
                   "registration", "report.html", "report.pdf")


def _managed_names(out: Path):
    """Predicate of the names the pipeline owns in ``out``.

    :data:`OUTPUT_PATTERNS`, the outputs listed by an earlier ``results.json`` (earlier
    versions), and the hidden temporary files of those names that
    :func:`theradose.io.atomic_path` of an older theradose could leave.
    """
    listed: set[str] = set()
    try:
        prev = json.loads((out / "results.json").read_text(encoding="utf-8"))
        listed = {Path(str(v)).parts[0] for v in prev.get("outputs", {}).values()
                  if str(v) and not Path(str(v)).is_absolute() and ".." not in Path(str(v)).parts}
    except (OSError, ValueError, AttributeError, IndexError):
        pass
    listed.discard(".cache")

    def managed(name: str) -> bool:
        if name in listed or any(fnmatch.fnmatchcase(name, p) for p in OUTPUT_PATTERNS):
            return True
        if name.startswith(".") and not name.startswith(".."):  # .<stem>.<random><suffix>
            stem = name[1:].split(".")[0]
            return bool(stem) and any(fnmatch.fnmatchcase(stem, p.split(".")[0])
                                      for p in OUTPUT_PATTERNS)
        return False

    return managed


def _test_kill(point: str) -> None:
    """Test hook: ``THERADOSE_TEST_KILL_AT=<point>[:<SIGNAL>]`` kills this process there.

    Points: each stage's name when it starts, ``publish`` and ``publish:half``. The signal
    (default ``SIGKILL``) is sent to the process itself; ``tests/pipeline/test_transactional.py``
    uses it to interrupt a run at every stage. Unset, it does nothing.
    """
    spec = os.environ.get("THERADOSE_TEST_KILL_AT")
    if not spec:
        return
    at, _, sig = spec.rpartition(":") if spec.rsplit(":", 1)[-1].startswith("SIG") \
        else (spec, "", "SIGKILL")
    if at == point:
        os.kill(os.getpid(), getattr(signal, sig))
        time.sleep(5)  # a signal with a Python handler (SIGINT) is raised here


class _Stages:
    """Timing, progress lines and the test hook of the pipeline's stages."""

    def __init__(self, names: list[str]) -> None:
        self.progress = StageProgress(len(names))
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        _test_kill(name)
        with self.progress.stage(name):
            t0 = time.perf_counter()
            yield
            self.timings[name] = round(time.perf_counter() - t0, 3)
            log.info("%s: %.2f s", name, self.timings[name])


def _dicom_stamp(name: str, reg: dict[str, Any], cfg: PipelineConfig, *arrays: np.ndarray
                 ) -> tuple[str, datetime]:
    """Key and timestamp that make the UIDs and dates of a DICOM output reproducible.

    The key hashes the theradose version, the output's name, the reference CT's UIDs, the
    configuration and the written content, so the same inputs give the same UIDs and another
    content gets others. The timestamp (InstanceCreation, Content, Series date/time) is the
    last emission scan's time (injection + the last time point): the data the output is made
    of, not the clock.
    """
    h = hashlib.sha256(f"{__version__}\0{name}\0".encode())
    h.update(json.dumps(_json(reg["ct_meta"]), sort_keys=True, default=str).encode())
    h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    t = reg["administration"].injection_time + timedelta(hours=float(max(reg["times_h"])))
    return f"theradose-run:{h.hexdigest()}", t.replace(microsecond=0, tzinfo=None)


def _run(study: Path, out: Path, cfg: PipelineConfig, cache: StageCache, t_start: float,
         created: str) -> dict[str, Any]:
    """The stages of :func:`run_pipeline`, writing into ``out`` (the staging folder)."""
    ocfg = cfg.section("outputs")
    stage = _Stages(["registration", "vois", "kinetics", "dose", "analysis", "outputs",
                     *(["report"] if ocfg["report"] else [])])
    timings = stage.timings

    # 1. load + register (cached)
    with stage("registration"):
        k_reg = stage_key(fingerprint(study), cfg.key_of("study", "registration"))
        reg = cache.get("registration", k_reg)
        if reg is None:
            with collect_warnings("registration") as caught:
                reg = _stages.load_and_register(study, cfg)
            reg["warnings"] = caught
            cache.put("registration", k_reg, reg)
    adm = reg["administration"]
    nuclide = adm.nuclide

    # 2. VOIs
    with stage("vois"), collect_warnings("vois") as vois_warnings:
        labels, voi_source = _stages.vois_stage(study, reg, cfg)

    # 3. kinetics (cached)
    with stage("kinetics"):
        k_kin = stage_key(k_reg, hashlib.sha256(labels.array.tobytes()).hexdigest(),
                          json.dumps(sorted(labels.names.items())), cfg.key_of("kinetics"))
        kin = cache.get("kinetics", k_kin)
        if kin is None:
            with collect_warnings("kinetics") as caught:
                kin = _stages.kinetics_stage(reg, labels, cfg)
            kin["warnings"] = caught
            cache.put("kinetics", k_kin, kin)
    grid = reg["geometry"]
    tia = Volume(kin["tia_map"].astype(np.float64), grid, unit="MBq*h", modality="OT",
                 sigma=kin["tia_sigma"].astype(np.float64), meta={"quantity": "TIA"})

    # 4. dose
    with stage("dose"):
        from theradose.materials import hu_to_density

        ct = _stages.ct_volume(reg)
        density = hu_to_density(ct)
        dcfg = cfg.section("dose")
        phantom = dcfg["phantom"]
        if phantom == "auto":
            sex = str(reg["ct_meta"].get("patient_sex") or "M").upper()
            phantom = "adult_female" if sex.startswith("F") else "adult_male"
        organ_tia = {n: (float(f.tia), float(f.sigma_tia)) for n, f in kin["fits"].items()}
        organ_tia.update({n: (0.0, 0.0) for n in kin.get("empty", ())})
        with collect_warnings("dose") as dose_warnings:
            maps, per_voi, dose_info = dose_stage(
                tia, density, labels, nuclide, dcfg["engines"],
                {e: dcfg.get(e, {}) for e in ("kernel", "montecarlo", "led")}, organ_tia,
                phantom)

    # 5. DVH, BED, results
    with stage("analysis"):
        primary = next(iter(maps), None)
        # FFT round-off leaves |negative| doses ~1e-4 of the maximum: clipped at 0 in every
        # map; the exported maps are the dose to the patient: outside the body contour (the
        # External structure, AAPM TG-263) they are 0, as a planning system reports them;
        # what was there (photon and electron dose in the air at the skin) is recorded per
        # engine
        body = kin["body"]  # segmentation.body_contour of the reference CT
        dose_maps = {}
        for e, r in maps.items():
            d = np.clip(r.dose.array, 0.0, None)
            out_max = float(d[~body].max()) if (~body).any() else 0.0
            dose_info[e] = {**_json(dose_info.get(e, {})), "outside_body": {
                "voxels_set_to_zero": int(np.count_nonzero(d[~body])), "max_gy": out_max,
                "fraction_of_max": out_max / float(d.max()) if d.max() > 0 else 0.0,
                "body": "CT > -500 HU, largest connected region, holes filled per slice "
                        "(segmentation.body_contour)"}}
            dose_maps[e] = r.dose.replace(
                array=np.where(body, d, 0.0),
                sigma=None if r.sigma is None else np.where(body, np.asarray(r.sigma.array),
                                                            0.0))
        dose_map = dose_maps[primary] if primary else None
        rad = cfg.section("radiobiology")["enabled"]
        with collect_warnings("analysis") as analysis_warnings:
            vois = _voi_entries(labels, kin, maps, per_voi, primary, dose_map, rad)

    # 6. outputs (into the staging folder: nothing there yet, overwrite is moot)
    outputs: dict[str, str] = {"results": "results.json"}
    with stage("outputs"):
        if ocfg["nifti"]:
            write_nifti(tia, out / "tia.nii.gz")
            outputs["tia"] = "tia.nii.gz"
            outputs["tia_sigma"] = "tia_sigma.nii.gz"
            for e, d in dose_maps.items():
                write_nifti(d, out / f"dose_{e}.nii.gz")
                outputs[f"dose_{e}"] = f"dose_{e}.nii.gz"
                if d.sigma is not None:
                    outputs[f"dose_{e}_sigma"] = f"dose_{e}_sigma.nii.gz"
        if ocfg["rtdose"] and dose_map is not None:
            key, when = _dicom_stamp("rtdose.dcm", reg, cfg, dose_map.array)
            with reproducible_dicom(key, timestamp=when):
                write_rtdose(dose_map.replace(sigma=None), out / "rtdose.dcm", reference=ct,
                             comment=f"theradose {primary}")
            outputs["rtdose"] = "rtdose.dcm"
        if ocfg["seg"]:
            key, when = _dicom_stamp("seg.dcm", reg, cfg, labels.array,
                                     np.array(json.dumps(sorted(labels.names.items()))))
            with reproducible_dicom(key, timestamp=when):
                write_seg(labels, out / "seg.dcm", reference=ct, algorithm_type="SEMIAUTOMATIC",
                          series_description="theradose VOIs")
            outputs["seg"] = "seg.dcm"
        for name, data in sorted(reg.get("transforms_h5", {}).items()):
            # reference -> time point (ITK convention), rigid or rigid + BSpline
            with atomic_path(out / "registration" / name) as tmp:
                tmp.write_bytes(data)
            outputs[name.removesuffix(".h5")] = f"registration/{name}"

    # per-time-point registration times are timings: under provenance, not in the results
    registration = _json(reg["registration"])
    reg_seconds = [q.pop("seconds", None) if isinstance(q, dict) else None
                   for q in registration]
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "software": _software(),
        "nuclide": nuclide,
        "injected_activity_mbq": float(adm.injected_activity_mbq),
        "administration": adm.to_dict(),
        "study": {"source": str(study), "reference_time_point": reg["reference"],
                  "time_points": [{"time_h": float(t), "file": f, "fov_fraction": _num(fr),
                                   "activity_moved_into_body": _num(mv),
                                   "activity_balance": bal, "ct_air_fraction": _num(air)}
                                  for t, f, fr, mv, bal, air in zip(
                                      reg["times_h"], reg["emission_files"],
                                      reg["fov_fraction"],
                                      kin.get("activity_moved_into_body")
                                      or [None] * len(reg["times_h"]),
                                      reg["activity_balance"], reg["ct_air_fraction"],
                                      strict=True)],
                  "reference_grid": grid.to_dict(), "vois_source": voi_source,
                  # what the loader did not read, and why (io.study_files, load_study)
                  "skipped": reg["study"].get("skipped", [])},
        "registration": registration,
        "config": cfg.to_dict(),
        "resolution": kin.get("pvc", {}).get("resolution"),
        "warnings": [*reg.get("warnings", []), *vois_warnings, *kin.get("warnings", []),
                     *dose_warnings, *analysis_warnings],
        "vois": vois,
        "dose_engines": {e: _json(i) for e, i in dose_info.items()},
        "outputs": outputs,
        "provenance": {"created": created,
                       "theradose": __version__, "timings_s": timings,
                       "registration_seconds": reg_seconds,
                       "cache_hits": list(cache.hits), "primary_engine": primary,
                       "voxel_fit": {"counts": kin["voxel_counts"],
                                     "provenance": kin["voxel_provenance"]}},
    }
    results = _json(results)

    if ocfg["report"]:
        with stage("report"):
            if dose_map is None:
                log.info("no voxel dose map; report skipped")
            else:
                _report(results, out, reg, ct, dose_map, labels, grid, created)
    results["provenance"]["timings_s"] = _json(timings)
    results["provenance"]["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
    write_results(results, out / "results.json")
    return results


def _report(results: dict[str, Any], out: Path, reg: dict[str, Any], ct: Volume,
            dose_map: Volume, labels: LabelMap, grid, created: str) -> None:
    try:
        from theradose.report import ReportImages, write_report
    except ImportError:
        log.info("theradose.report is not available; report skipped")
        return
    spect = Volume(reg["emission_bq_ml"][0], grid, unit="Bq/mL", modality="NM")
    images = ReportImages(ct=ct, dose=dose_map.replace(sigma=None), spect=spect, labels=labels)
    html, pdf = write_report(results, out, images=images,
                             generated=datetime.fromisoformat(created))
    results["outputs"]["report_html"] = html.name
    results["outputs"]["report_pdf"] = pdf.name


def _voi_entries(labels: LabelMap, kin: dict[str, Any], maps: dict[str, Any],
                 per_voi: dict[str, dict[str, tuple[float, float]]], primary: str | None,
                 dose_map: Volume | None, rad: bool) -> dict[str, Any]:
    """The ``results.json`` entry of every VOI (TIA, fit, TAC, doses, DVH, PVC, BED)."""
    table = kin["table"]
    vois: dict[str, Any] = {}
    for name in sorted(labels.names.values()):
        fit = kin["fits"].get(name)
        sel = fit.selected_fit if fit else None
        act = np.asarray(table.activity_mbq[name], float)
        sd = np.asarray(fit.sigma, float).tolist() if fit else None  # no fit: σ unknown
        # voxel engines propagate the voxel TIA σ as independent, which averages away over a
        # VOI; the VOI's own TIA uncertainty (kinetics fit, recovery) is common to all its
        # voxels and the self-dose is proportional to it, so the VOI mean dose carries it in
        # full (organ S-values: through their TIA σ already)
        tia_rel = (float(fit.sigma_tia / fit.tia) if fit and fit.tia > 0
                   and np.isfinite(fit.sigma_tia) else 0.0)
        entry: dict[str, Any] = {
            "volume_ml": _num(table.volume_ml[name]),
            "mass_g": _num(next((v.mass_g for v in maps[primary].voi if v.name == name), None)
                           if primary else None),
            "tia_mbq_h": ({"value": _num(fit.tia), "sd": _num(fit.sigma_tia)} if fit else
                          {"value": 0.0, "sd": 0.0} if name in kin.get("empty", ())
                          else {"value": None, "sd": None}),
            "fit": ({"model": fit.selected, "aicc": _num(sel.aicc), "bic": _num(sel.bic),
                     "parameters": dict(zip(sel.param_names, map(_num, sel.params),
                                            strict=True)),
                     "parameter_sd": dict(zip(sel.param_names, map(_num, sel.param_sigma),
                                              strict=True)),
                     "r2": _num(getattr(sel, "r2", None)), "accepted": bool(sel.accepted),
                     "fallback": bool(fit.fallback), "reason": fit.selection_reason}
                    if fit else {"model": None, "note": "no activity at any time point"}
                    if name in kin.get("empty", ())
                    else {"model": None, "error": kin["failed"].get(name)}),
            "tac": {"times_h": list(map(float, table.times_h)),
                    "activity_mbq": act.tolist(), "activity_sd_mbq": sd,
                    **({"fit_curve": kin["curves"][name]} if name in kin["curves"] else {})},
            "tia_map_mbq_h": _num(np.sum(kin["tia_map"][labels.mask(name)],
                                         dtype=np.float64)),
            "voxel_fit": kin.get("voxel_status", {}).get(name),
            "dose_gy": {e: {"value": _num(v[name][0]),
                            "sd": _num(v[name][1] if e == "organ_svalues" else
                                       math.hypot(v[name][1], tia_rel * v[name][0]))}
                        for e, v in per_voi.items() if name in v},
            "dvh": _dvh_entry(dose_map, labels, name) if dose_map is not None else None,
            "pvc": _pvc_entry(kin.get("pvc", {"applied": False}), name),
        }
        if rad and fit and primary and name in per_voi.get(primary, {}):
            entry["bed_gy"] = _bed_entry(fit, per_voi[primary][name][0], float(fit.tia), name)
        else:
            entry["bed_gy"] = {"value": None, "sd": None}
        vois[name] = entry
    return vois


def write_results(results: dict[str, Any], path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``results.json`` atomically (refuses to overwrite unless ``overwrite``)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(_json(results), indent=1), encoding="utf-8")
    return Path(path)
