"""One virtual patient, end to end: anatomy → kinetics → PET and SPECT/CT → DICOM + ``truth/``.

The output folder is laid out as::

    OUT/
      dicom/
        pet/ct/        low-dose CT of the pre-therapy PET/CT (one file per slice)
        pet/pt/        68Ga PET (Bq/mL, decay-corrected to scan start)
        tp1_4h/ct/     low-dose CT of SPECT/CT time point 1
        tp1_4h/nm.dcm  quantitative SPECT (counts or Bq/mL; calibration in truth.json)
        ...            one folder per time point
        tp1_4h/seg.dcm organ and lesion segments on the time-point-1 CT (DICOM SEG)
        tp1_4h/rtstruct.dcm  the organs as RTSTRUCT contours on the same CT
      truth/
        truth.json                 parameters and organ values (schema in docs/phantoms.md)
        labels.nii.gz (+ .json)    fine regions, reference frame
        ct_hu.nii.gz, density.nii.gz   noiseless anatomy, reference frame
        materials.nii.gz (+ .json)     material classes (theradose.materials.hu_to_material)
        activity_tp<i>_<t>h.nii.gz true therapy activity per voxel (MBq), reference frame
        activity_pet.nii.gz        true diagnostic activity at the PET scan (MBq), reference frame
        tia.nii.gz                 true therapy TIA per voxel (MBq·h, 0..∞), reference frame
        motion_<name>.json         repositioning of each acquisition (reference → acquisition)
        dose_<engine>.nii.gz (+ _sigma)  reference dose (Gy) of the true TIA map, when
                                   ``config.truth_dose`` names engines (led, kernel, montecarlo)

The reference frame is the patient at SPECT/CT time point 1 (no motion there): truth maps lie on
the anatomy grid (``truth.json["reference_grid"]``), of which the time-point-1 CT is the axial
crop covered by the SPECT (same voxels). Every other acquisition was taken of the patient moved
by its ``motion_*.json`` transform, so registration is genuinely needed.

Each imaging session (the PET/CT, every SPECT/CT time point) is its own DICOM study: one
PatientID, but its own StudyInstanceUID and FrameOfReferenceUID (the patient left the table in
between), shared by the CT and the PT/NM of that session; the SEG and RTSTRUCT reference the
time-point-1 CT and its session. ``truth.json["acquisitions"]`` records each session's UIDs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from theradose import __version__
from theradose._logging import progress
from theradose.errors import InputError, OutputExistsError
from theradose.io import (
    Administration,
    DicomStudyInfo,
    read_ct,
    reproducible_dicom,
    write_ct_series,
    write_labelmap,
    write_nifti,
    write_nm,
    write_pt_series,
    write_rtstruct,
    write_seg,
)
from theradose.materials import hu_to_material
from theradose.nuclides import data_source, get_nuclide
from theradose.phantoms._anatomy import Anatomy, add_lesions, random_anatomy, reference_phantom
from theradose.phantoms._config import NM_VIEWS_PER_HEAD, SimulationConfig
from theradose.phantoms._imaging import simulate_ct, simulate_pet, simulate_spect
from theradose.phantoms._imaging_motion import apply_to_volume, random_transform, write_transform
from theradose.phantoms._kinetics import (
    PatientKinetics,
    activity_map,
    agent_subtissue_weights,
    sample_kinetics,
    tia_map,
)
from theradose.phantoms._truth_dose import truth_doses
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["VirtualPatient", "simulate_patient"]

log = logging.getLogger("theradose")

#: Nuclides of the agents of each preset (diagnostic, therapeutic).
AGENT_NUCLIDES = {"psma": ("Ga-68", "Lu-177"), "sstr": ("Ga-68", "Lu-177")}
AGENT_NAMES = {"psma": ("68Ga-PSMA-11", "177Lu-PSMA-617"),
               "sstr": ("68Ga-DOTATATE", "177Lu-DOTATATE")}
#: Therapy day of patient 0; patient ``seed`` is treated ``seed mod 365`` days later (dates only
#: make the files look real; nothing depends on them).
_BASE_DAY = datetime(2026, 1, 5, 9, 0)
#: ICRP Publication 89 (2002) reference adults: total blood volume (mL) and body mass (kg);
#: a patient's blood volume is scaled by body mass.
BLOOD_VOLUME_ML = {"male": 5300.0, "female": 3900.0}
REFERENCE_WEIGHT_KG = {"male": 73.0, "female": 60.0}
#: Mean whole-body density (g/mL) to turn the body mass into the kinetic body volume.
MEAN_BODY_DENSITY_G_ML = 1.03


@dataclass(frozen=True)
class VirtualPatient:
    """What :func:`simulate_patient` made: paths and the truth record."""

    out: Path
    truth: dict[str, Any]

    @property
    def dicom(self) -> Path:
        """Folder of the DICOM study."""
        return self.out / "dicom"

    @property
    def truth_dir(self) -> Path:
        """Folder of the ground truth."""
        return self.out / "truth"


#: Largest seed: patient seeds are 32-bit words (cohorts draw them so), and the seed is
#: written into PatientID/PatientName, which must stay short DICOM strings.
MAX_SEED = 2**32 - 1


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per stage, so changing one stage never shifts another's draws."""
    names = ("anatomy", "lesions", "kinetics", "weights", "motion", "pet", "spect", "ct")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}


def _anatomy(cfg: SimulationConfig, rng: dict[str, np.random.Generator]) -> Anatomy:
    if cfg.phantom == "random":
        sex = cfg.sex or ("male" if cfg.preset == "psma" else
                          str(rng["anatomy"].choice(["male", "female"])))
        anat = random_anatomy(rng["anatomy"], sex=sex, voxel_mm=cfg.voxel_mm)
    else:
        anat = reference_phantom(cfg.phantom, voxel_mm=cfg.voxel_mm)
    sites = ("liver", "bone", "lymph_node", "prostate_bed") if anat.params.get("sex") == "male" \
        else ("liver", "bone", "lymph_node")
    n = cfg.n_lesions
    if n is None:
        n = int(rng["lesions"].integers(2, 7))
    if n == 0:
        return anat
    return add_lesions(anat, rng["lesions"], n=n, sites=sites,
                       volume_ml_range=cfg.lesion_volume_ml)


def _region_volumes(labels: LabelMap) -> dict[str, float]:
    counts = np.bincount(labels.array.ravel(), minlength=max(labels.names, default=0) + 1)
    v = labels.geometry.voxel_volume_ml
    return {name: float(counts[value]) * v for value, name in labels.names.items()
            if counts[value] > 0}


#: Latest SPECT/CT time, h: 417 d, > 60 half-lives of 177Lu (6.65 d), after which the
#: simulated images are empty (activity below 1e-18 of the injected).
MAX_TIME_H = 1e4
#: Therapy activity bounds, MBq: 1 kBq up to 100 GBq, above any therapy (177Lu-PSMA-617 and
#: -DOTATATE are given as 7.4 GBq, the largest 131I therapies ~30 GBq).
MIN_ACTIVITY_MBQ, MAX_ACTIVITY_MBQ = 1e-3, 1e5


def _check_config(cfg: SimulationConfig) -> None:
    """Physical range of the times and activities (finite: NaN/inf would reach timedelta)."""
    times = cfg.times_h
    if not all(math.isfinite(t) and 0 < t <= MAX_TIME_H for t in times):
        raise InputError(f"must be hours after injection in (0, {MAX_TIME_H:g}], got "
                         f"{list(times)}", field="times_h")
    for name in ("therapy_activity_mbq", "pet_activity_mbq"):
        v = float(getattr(cfg, name))
        if not (math.isfinite(v) and MIN_ACTIVITY_MBQ <= v <= MAX_ACTIVITY_MBQ):
            raise InputError(f"must be an activity in [{MIN_ACTIVITY_MBQ:g}, "
                             f"{MAX_ACTIVITY_MBQ:g}] MBq (1 kBq to 100 GBq), got {v!r}",
                             field=name)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: output folder is not empty; pass overwrite=True "
                                "(CLI: --overwrite) or choose another folder")


def simulate_patient(out: str | Path, *, seed: int, config: SimulationConfig | None = None,
                     overwrite: bool = False) -> VirtualPatient:
    """Simulate one virtual theranostic patient and write its DICOM study and ground truth.

    Parameters
    ----------
    out : str or Path
        Output folder (created; must be empty unless ``overwrite``).
    seed : int
        Seed of every random draw, 0 to :data:`MAX_SEED`: the same seed and configuration give
        byte-identical files.
    config : SimulationConfig, optional
        What to simulate (defaults: PSMA, homogeneous, random anatomy, SPECT/CT at 4, 24, 96,
        168 h, noise and motion on).
    overwrite : bool
        Allow writing into a non-empty folder (existing files are replaced).

    Returns
    -------
    VirtualPatient
        Paths and the truth record (also in ``truth/truth.json``).

    Examples
    --------
    >>> vp = simulate_patient("vp0", seed=0)  # doctest: +SKIP
    >>> vp.truth["organs"]["kidney_left"]["tia_mbq_h"]  # doctest: +SKIP
    """
    cfg = config or SimulationConfig()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or \
            not 0 <= seed <= MAX_SEED:
        raise InputError(f"must be an integer in [0, {MAX_SEED}] (a 32-bit seed), got "
                         f"{seed!r}", field="seed")
    seed = int(seed)
    _check_config(cfg)
    out = Path(out)
    _check_out(out, overwrite)
    t0 = time.perf_counter()
    rng = _rngs(seed)
    anat = _anatomy(cfg, rng)
    volumes = _region_volumes(anat.labels)
    # regions smaller than a voxel on a coarse grid (lacrimal glands at 8 mm) have no voxel
    labels = anat.labels.replace(names={v: n for v, n in anat.labels.names.items()
                                        if n in volumes})
    weight_kg = float(anat.params["weight_kg"])
    sex = anat.params.get("sex", "male")
    kin = sample_kinetics(cfg.preset, rng["kinetics"], volumes, regime=cfg.regime,
                          sites=_lesion_sites(anat),
                          blood_volume_ml=BLOOD_VOLUME_ML[sex] * weight_kg
                          / REFERENCE_WEIGHT_KG[sex],
                          body_volume_ml=float(anat.params["total_body_mass_g"])
                          / MEAN_BODY_DENSITY_G_ML)
    weights = agent_subtissue_weights(labels, rng["weights"], kin)
    dx_nuc, tx_nuc = (get_nuclide(n) for n in AGENT_NUCLIDES[cfg.preset])
    dx_name, tx_name = AGENT_NAMES[cfg.preset]

    injection = _BASE_DAY + timedelta(days=seed % 365)
    pet_injection = injection - timedelta(days=cfg.pet_days_before)
    pet_scan = pet_injection + timedelta(minutes=cfg.pet_uptake_min)
    tx_adm = Administration(tx_nuc.name, cfg.therapy_activity_mbq, injection, tx_name)
    dx_adm = Administration(dx_nuc.name, cfg.pet_activity_mbq, pet_injection, dx_name)
    height_m = float(anat.params["height_cm"]) / 100.0
    centre = tuple(labels.geometry.index_to_physical((np.asarray(labels.geometry.size_xyz) - 1)
                                                     / 2.0))

    diaphragm = _top_z_mm(anat, "liver")
    spect_centre, spect_beds = _spect_field(anat)
    camera = cfg.spect_camera()

    def motion_for(name: str):
        if not cfg.motion:
            return None
        return random_transform(rng["motion"], centre_mm=centre, diaphragm_z_mm=diaphragm)

    truth_dir = out / "truth"
    dicom = out / "dicom"
    acquisitions: list[dict[str, Any]] = []
    with reproducible_dicom(f"virtual-patient:seed={seed}", timestamp=injection):
        # One study and frame of reference per imaging session (the PET/CT, each SPECT/CT
        # day): the patient left the table in between, so the sessions are not registered.
        info = DicomStudyInfo(patient_id=f"VP{seed:06d}", patient_name=f"Virtual^Patient{seed}",
                              patient_sex="M" if anat.params.get("sex") == "male" else "F",
                              patient_weight_kg=weight_kg, patient_height_m=height_m,
                              study_id="1", study_description=f"PET/CT {dx_name} pre-therapy")
        # ---------------------------------------------------------------- pre-therapy PET/CT
        pet_t_h = cfg.pet_uptake_min / 60.0
        act_pet = Volume(activity_map(labels, weights, kin, pet_t_h, agent="diagnostic",
                                      a0_mbq=cfg.pet_activity_mbq),
                         labels.geometry, unit="MBq", modality="OT", acquisition_time=pet_scan)
        motion = motion_for("pet")
        moved_act, moved_hu = _move(motion, act_pet, anat.hu)
        pet = simulate_pet(moved_act, rng=rng["pet"], half_life_h=dx_nuc.half_life_h,
                           noise=cfg.noise, **({} if cfg.noise else {"fwhm_mm": 0.0}))
        pet = pet.replace(acquisition_time=pet_scan)
        ct = _ct(moved_hu, rng["ct"], cfg, pet_scan)
        write_ct_series(ct, dicom / "pet" / "ct", patient=info, series_description="PET/CT CT",
                        overwrite=overwrite)
        write_pt_series(pet, dicom / "pet" / "pt", administration=dx_adm,
                        patient_weight_kg=weight_kg, patient=info,
                        acquisition_duration_s=float(pet.meta.get("acquisition_duration_s", 120)),
                        half_life_s=dx_nuc.half_life_h * 3600.0,
                        series_description=f"PET {dx_name}", overwrite=overwrite)
        acquisitions.append(_acq_record("pet", pet_scan, pet_t_h, motion, pet, dx_adm, info))
        if motion:
            write_transform(motion, truth_dir / "motion_pet.json", overwrite=overwrite)
        _write_map(act_pet, truth_dir / "activity_pet.nii.gz", overwrite)

        # ---------------------------------------------------------------- SPECT/CT time points
        organ_activity: dict[str, list[float]] = {}
        ref_ct_folder = None
        for i, t_h in enumerate(progress(cfg.times_h, desc="time points"), start=1):
            tag = f"tp{i}_{t_h:g}h"
            t_acq = injection + timedelta(hours=t_h)
            act = Volume(activity_map(labels, weights, kin, t_h, agent="therapeutic",
                                      a0_mbq=cfg.therapy_activity_mbq),
                         labels.geometry, unit="MBq", modality="OT", acquisition_time=t_acq)
            motion = None if i == 1 else motion_for(tag)
            moved_act, moved_hu = _move(motion, act, anat.hu)
            spect = simulate_spect(moved_act, rng=rng["spect"], half_life_h=tx_nuc.half_life_h,
                                   output=cfg.spect_output, noise=cfg.noise,
                                   centre_mm=spect_centre, n_beds=spect_beds,
                                   fwhm_mm=camera["fwhm_mm"], voxel_mm=camera["voxel_mm"],
                                   matrix_xy=camera["matrix_xy"],
                                   duration_s=camera["duration_s"],
                                   sensitivity_cps_per_mbq=camera["sensitivity_cps_per_mbq"])
            spect = spect.replace(acquisition_time=t_acq)
            ct = _ct(_crop_z(moved_hu, spect), rng["ct"], cfg, t_acq)
            session = info.new_study(study_id=str(i + 1),
                                     study_description=f"SPECT/CT {tx_name} {t_h:g} h")
            write_ct_series(ct, dicom / tag / "ct", patient=session,
                            series_description=f"SPECT/CT CT {t_h:g} h", overwrite=overwrite)
            write_nm(spect, dicom / tag / "nm.dcm", administration=tx_adm, patient=session,
                     acquisition_duration_s=float(spect.meta["acquisition_duration_s"]),
                     half_life_s=tx_nuc.half_life_h * 3600.0, views_per_head=NM_VIEWS_PER_HEAD,
                     series_description=f"SPECT {tx_name} {t_h:g} h", overwrite=overwrite)
            if i == 1:
                ref_ct_folder = dicom / tag / "ct"
                ref_slices = _z_slices(labels.geometry, spect)
            acquisitions.append(_acq_record(tag, t_acq, t_h, motion, spect, tx_adm, session))
            if motion:
                write_transform(motion, truth_dir / f"motion_{tag}.json", overwrite=overwrite)
            _write_map(act, truth_dir / f"activity_{tag}.nii.gz", overwrite)
            for name, total in _totals(labels, act.array).items():
                organ_activity.setdefault(name, []).append(total)

        # ---------------------------------------------------------------- segmentations
        ref_ct = read_ct(ref_ct_folder)
        organ_masks = {g: anat.organ_mask(g)[ref_slices] for g in _segment_names(anat)}
        organ_masks = {g: m for g, m in organ_masks.items() if m.any()}
        write_seg(organ_masks, dicom / f"tp1_{cfg.times_h[0]:g}h" / "seg.dcm",
                  reference=ref_ct, overwrite=overwrite)
        write_rtstruct(organ_masks, dicom / f"tp1_{cfg.times_h[0]:g}h" / "rtstruct.dcm",
                       reference=ref_ct, overwrite=overwrite)

    # -------------------------------------------------------------------- truth
    tia = Volume(tia_map(labels, weights, kin, agent="therapeutic",
                         a0_mbq=cfg.therapy_activity_mbq), labels.geometry, unit="MBq*h")
    _write_map(tia, truth_dir / "tia.nii.gz", overwrite)
    write_labelmap(labels, truth_dir / "labels.nii.gz", overwrite=overwrite)
    write_nifti(anat.hu, truth_dir / "ct_hu.nii.gz", overwrite=overwrite)
    write_nifti(anat.density, truth_dir / "density.nii.gz", overwrite=overwrite)
    write_labelmap(hu_to_material(anat.hu), truth_dir / "materials.nii.gz", overwrite=overwrite)
    truth = _truth_record(seed=seed, cfg=cfg, anat=anat, kin=kin, tx=tx_adm, dx=dx_adm,
                          acquisitions=acquisitions, organ_activity=organ_activity,
                          volumes=volumes)
    truth["reference_grid"] = labels.geometry.to_dict()
    truth["spect_camera"] = {**camera, "n_beds": spect_beds, "output": cfg.spect_output,
                             "noise": cfg.noise}
    if cfg.truth_dose:
        dose_maps, truth["dose"] = truth_doses(tia, anat.density, labels, truth["organs"],
                                               tx_adm.nuclide, cfg.truth_dose, seed=seed)
        for name, vol in dose_maps.items():
            _write_map(vol.replace(sigma=None), truth_dir / f"dose_{name}.nii.gz", overwrite)
            _write_map(vol.replace(array=vol.sigma, sigma=None),
                       truth_dir / f"dose_{name}_sigma.nii.gz", overwrite)
    path = truth_dir / "truth.json"
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: output exists; pass overwrite=True")
    path.write_text(json.dumps(truth, indent=2, sort_keys=True))
    log.info("virtual patient %d written to %s in %.1f s", seed, out, time.perf_counter() - t0)
    return VirtualPatient(out, truth)


def _write_map(vol: Volume, path: Path, overwrite: bool) -> None:
    """Write a truth map as float32 (6e-8 relative per voxel; exact values in truth.json)."""
    write_nifti(vol.replace(array=vol.array.astype(np.float32)), path, overwrite=overwrite)


def _move(motion, *volumes: Volume) -> tuple[Volume, ...]:
    """The volumes of one acquisition warped by its motion (one transform for all)."""
    if motion is None:
        return volumes
    transform = motion.to_sitk(volumes[0].geometry)
    return tuple(apply_to_volume(v, motion, sitk_transform=transform) for v in volumes)


def _z_slices(g: Geometry, fov: Volume) -> slice:
    """Slices of grid ``g`` inside the axial extent of ``fov``."""
    zs = fov.geometry.corners()[:, 2]
    k = np.arange(g.shape[0])
    z = g.index_to_physical(np.stack([np.zeros_like(k), np.zeros_like(k), k], axis=1))[:, 2]
    keep = k[(z >= zs.min()) & (z <= zs.max())]
    if keep.size == 0:
        return slice(0, g.shape[0])
    return slice(int(keep.min()), int(keep.max()) + 1)


def _crop_z(vol: Volume, fov: Volume) -> Volume:
    """The slices of ``vol`` inside the axial extent of ``fov`` (SPECT/CT: CT over the SPECT)."""
    g = vol.geometry
    sl = _z_slices(g, fov)
    k0, k1 = sl.start, sl.stop
    if k1 - k0 == g.shape[0]:
        return vol
    origin = g.index_to_physical([0, 0, k0])
    geom = Geometry((k1 - k0, g.shape[1], g.shape[2]), g.spacing_mm, tuple(origin), g.direction)
    return vol.replace(array=vol.array[k0:k1], geometry=geom,
                       note=f"cropped to slices {k0}-{k1 - 1} (SPECT axial field of view)")


def _z_range_mm(anat: Anatomy, name: str) -> tuple[float, float]:
    k = np.flatnonzero(anat.organ_mask(name).any(axis=(1, 2)))
    g = anat.labels.geometry
    z = [float(g.index_to_physical([0, 0, kk])[2]) for kk in (k.min(), k.max())]
    return min(z), max(z)


def _top_z_mm(anat: Anatomy, name: str) -> float:
    return _z_range_mm(anat, name)[1]


def _spect_field(anat: Anatomy, bed_mm: float = 387.0, margin_mm: float = 20.0):
    """SPECT beds covering the salivary glands to the bladder (PSMA protocols image both)."""
    top = _z_range_mm(anat, "salivary_glands")[1] + margin_mm
    bottom = _z_range_mm(anat, "urinary_bladder")[0] - margin_mm
    n_beds = int(np.ceil((top - bottom) / bed_mm))
    g = anat.labels.geometry
    centre = g.index_to_physical((np.asarray(g.size_xyz) - 1) / 2.0)
    centre[2] = 0.5 * (top + bottom)
    return tuple(float(c) for c in centre), max(n_beds, 1)


def _ct(hu: Volume, rng: np.random.Generator, cfg: SimulationConfig, t: datetime) -> Volume:
    ct = simulate_ct(hu, rng=rng, **({} if cfg.noise else {"noise_hu": 0.0, "fwhm_mm": 0.0}))
    return ct.replace(acquisition_time=t, modality="CT")


def _lesion_sites(anat: Anatomy) -> dict[str, str]:
    return {f"lesion_{i}": les["site"] for i, les in
            enumerate(anat.params.get("lesions", []), start=1)}


#: Groups not written as one segment: the skeleton and the blood pools (no organ VOI a user
#: draws) and the lesions (one segment per lesion, as a physician contours them).
_NOT_SEGMENTED = ("skeleton", "blood", "lesions")


def _segment_names(anat: Anatomy) -> list[str]:
    """Organ-level VOIs written to SEG/RTSTRUCT.

    Groups (salivary glands included), each lesion, plus fine regions in no group.
    """
    grouped = {r for g, members in anat.groups.items() if g != "lesions" for r in members}
    names = [g for g in anat.groups if g not in _NOT_SEGMENTED]
    names += [n for n in anat.labels.names.values() if n not in grouped and n != "body"]
    return sorted(set(names))


def _totals(labels: LabelMap, arr: np.ndarray) -> dict[str, float]:
    sums = np.bincount(labels.array.ravel(), weights=arr.ravel(),
                       minlength=max(labels.names, default=0) + 1)
    return {name: float(sums[value]) for value, name in labels.names.items()}


def _acq_record(name: str, t: datetime, t_h: float, motion, image: Volume,
                adm: Administration, session: DicomStudyInfo) -> dict[str, Any]:
    return {
        "name": name,
        "modality": image.modality,
        "study_instance_uid": session.study_instance_uid,
        "frame_of_reference_uid": session.frame_of_reference_uid,
        "acquisition_time": t.isoformat(),
        "time_after_injection_h": t_h,
        "unit": image.unit,
        "calibration_cps_per_mbq": image.meta.get("calibration_cps_per_mbq"),
        "acquisition_duration_s": image.meta.get("acquisition_duration_s"),
        "fwhm_mm": image.meta.get("fwhm_mm"),
        "n_beds": image.meta.get("n_beds"),
        "bed_start_offsets_s": image.meta.get("bed_start_offsets_s"),
        "decay_factor_during_acquisition": image.meta.get("decay_factor_during_acquisition"),
        "true_total_mbq_in_fov": image.meta.get("true_total_mbq_in_fov"),
        "voxel_mm": list(image.geometry.spacing_mm),
        "nuclide": adm.nuclide,
        "motion": None if motion is None else motion.to_dict(),
    }


def _truth_record(*, seed: int, cfg: SimulationConfig, anat: Anatomy, kin: PatientKinetics,
                  tx: Administration, dx: Administration, acquisitions: list[dict[str, Any]],
                  organ_activity: dict[str, list[float]],
                  volumes: dict[str, float]) -> dict[str, Any]:
    a0 = cfg.therapy_activity_mbq
    regions = {}
    for name in sorted(volumes):
        regions[name] = {
            "volume_ml": volumes[name],
            "mass_g": anat.masses_g.get(name),
            "tia_mbq_h": kin.tia_h(name, agent="therapeutic") * a0,
            "activity_mbq": organ_activity.get(name),
            "fraction_at_pet": float(kin.fraction(name, [cfg.pet_uptake_min / 60.0],
                                                  agent="diagnostic")[0]),
        }
    organs = {}
    grouped = {m for members in anat.groups.values() for m in members}
    standalone = {r: (r,) for r in regions if r not in grouped}
    for group, members in {**anat.groups, **standalone}.items():
        present = [m for m in members if m in regions]
        if not present:
            continue
        organs[group] = {
            "regions": present,
            "volume_ml": sum(regions[m]["volume_ml"] for m in present),
            "mass_g": anat.masses_g.get(group),
            "tia_mbq_h": sum(regions[m]["tia_mbq_h"] for m in present),
            "activity_mbq": [sum(vals) for vals in zip(*(regions[m]["activity_mbq"]
                                                        for m in present), strict=True)],
        }
    return {
        "schema": "theradose.virtual_patient/1",
        "software": {"theradose": __version__, "nuclear_data": data_source()},
        "seed": seed,
        "config": cfg.to_dict(),
        "patient": {k: anat.params.get(k) for k in ("sex", "height_cm", "weight_kg")},
        "therapy": tx.to_dict(),
        "pet": dx.to_dict(),
        "times_h": list(cfg.times_h),
        "acquisitions": acquisitions,
        "frame": "truth maps are on the grid of the time-point-1 CT (reference frame)",
        "total_tia_mbq_h": sum(r["tia_mbq_h"] for r in regions.values()),
        "regions": regions,
        "organs": organs,
        "lesions": anat.params.get("lesions", []),
        "anatomy": {k: v for k, v in anat.params.items() if k != "lesions"},
        "kinetics": kin.to_dict(),
    }
