"""A dosimetry study: the post-therapy time points of one administration, with their CTs.

:func:`load_study` reads a folder of NIfTI images with JSON sidecars, of DICOM series, or both,
decides the role of every image (therapy time point, CT, pre-therapy PET, label map), pairs each
emission image with its CT, orders the time points by time since injection and checks the
result. The folder layout and the rules are documented in ``docs/io-nifti-study.md``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from theradose._logging import progress
from theradose.errors import (
    DicomTagError,
    GeometryMismatchError,
    InputError,
    TheradoseWarning,
    TimeOrderError,
    UnreadableFileError,
)
from theradose.io._administration import Administration
from theradose.io._nifti import (
    _parse_time,
    _positive,
    _split_nifti,
    read_labelmap,
    read_nifti,
    read_sidecar,
    sidecar_path,
)
from theradose.io._walk import _skip, study_files
from theradose.nuclides import resolve_name
from theradose.volume import Geometry, LabelMap, Volume

__all__ = ["Study", "TimePoint", "load_study", "study_files"]

log = logging.getLogger("theradose")

#: Values of the sidecar key ``"role"``.
ROLES = ("therapy", "pretherapy")
_EMISSION = ("NM", "PT")


@dataclass(frozen=True)
class TimePoint:
    """One emission image (SPECT or PET) and its CT.

    Parameters
    ----------
    emission : Volume
        Activity image (NM or PT), Bq/mL (or counts when no calibration was available).
    ct : Volume or None
        The CT acquired with it (attenuation map, anatomy), on its own grid.
    time_h : float
        Time from the injection to the start of the acquisition, h.

    """

    emission: Volume
    ct: Volume | None
    time_h: float

    def __post_init__(self) -> None:
        if not isinstance(self.emission, Volume):
            raise InputError(f"must be a Volume, got {type(self.emission).__name__}",
                             field="emission")
        if self.ct is not None and not isinstance(self.ct, Volume):
            raise InputError(f"must be a Volume or None, got {type(self.ct).__name__}",
                             field="ct")
        t = float(self.time_h)
        if not math.isfinite(t):
            raise InputError(f"must be a finite number of hours, got {self.time_h!r}",
                             field="time_h")
        object.__setattr__(self, "time_h", t)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description (time, modality, unit, grid, source files)."""
        return {"time_h": self.time_h, **_describe(self.emission),
                "ct": None if self.ct is None else _describe(self.ct)}


@dataclass(frozen=True)
class Study:
    """The images of one radiopharmaceutical therapy, ready for kinetics and dosimetry.

    Parameters
    ----------
    time_points : tuple of TimePoint
        Post-therapy SPECT (or PET) acquisitions of ``administration``, strictly increasing in
        time; at least one.
    administration : Administration
        The therapy (nuclide, activity, injection time).
    pet : TimePoint, optional
        A pre-therapy PET of another administration (e.g. a Ga-68 PSMA tracer), whose own
        :class:`Administration` is in ``pet.emission.meta["administration"]`` and whose
        ``time_h`` counts from that administration.
    labels : LabelMap, optional
        VOIs (organs, lesions) with their names.
    source : Path, optional
        Folder the study was read from.
    skipped : tuple of dict, optional
        What :func:`load_study` found in the folder and did not use, one
        ``{"file": path, "reason": why}`` each (non-image DICOM series, non-DICOM files, hidden
        files, files or folders reached twice, unpaired CTs, ...).

    Raises
    ------
    InputError
        No time points.
    TimeOrderError
        Times not strictly increasing, or before the injection.

    """

    time_points: tuple[TimePoint, ...]
    administration: Administration
    pet: TimePoint | None = None
    labels: LabelMap | None = None
    source: Path | None = None
    skipped: tuple[dict[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        try:
            skipped = tuple({"file": str(d["file"]), "reason": str(d["reason"])}
                            for d in self.skipped)
        except (TypeError, KeyError) as exc:
            raise InputError("must be a sequence of {'file': ..., 'reason': ...} dicts",
                             field="skipped") from exc
        object.__setattr__(self, "skipped", skipped)
        tps = tuple(self.time_points)
        if not tps:
            raise InputError("a study needs at least one time point", field="time_points")
        if not isinstance(self.administration, Administration):
            raise InputError(f"must be an Administration, got "
                             f"{type(self.administration).__name__}", field="administration")
        times = np.array([tp.time_h for tp in tps])
        if np.any(times < 0):
            raise TimeOrderError(f"time points before the injection: {times.tolist()} h",
                                 field="time_points")
        if np.any(np.diff(times) <= 0):
            raise TimeOrderError(f"times must be strictly increasing, got {times.tolist()} h",
                                 field="time_points")
        object.__setattr__(self, "time_points", tps)
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    @property
    def times_h(self) -> np.ndarray:
        """Times from injection of the time points, shape ``(N,)``, h."""
        return np.array([tp.time_h for tp in self.time_points], dtype=np.float64)

    @property
    def nuclide(self) -> str:
        """Nuclide of the therapy (ICRP-107 spelling)."""
        return self.administration.nuclide

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable overview: administration, time points, PET, labels, skipped files."""
        pet = None
        if self.pet is not None:
            adm = self.pet.emission.meta.get("administration")
            pet = {**self.pet.summary(),
                   "administration": adm.to_dict() if isinstance(adm, Administration) else None}
        labels = None
        if self.labels is not None:
            labels = {**_describe(self.labels),
                      "names": {str(k): v for k, v in sorted(self.labels.names.items())}}
        return {
            "source": None if self.source is None else str(self.source),
            "administration": self.administration.to_dict(),
            "time_points": [tp.summary() for tp in self.time_points],
            "pet": pet,
            "labels": labels,
            "skipped": [dict(d) for d in self.skipped],
        }


def _describe(v: Volume) -> dict[str, Any]:
    src = v.meta.get("source_file") or (v.meta.get("source_files") or [None])[0]
    return {
        "modality": v.modality,
        "unit": v.unit,
        "shape_zyx": list(v.shape),
        "spacing_mm": list(v.spacing_mm),
        "acquisition_time": v.acquisition_time.isoformat() if v.acquisition_time else None,
        "source": None if src is None else str(src),
    }


# ---------------------------------------------------------------------------------- files
def _is_nifti(p: Path) -> bool:
    n = p.name.lower()
    return n.endswith(".nii.gz") or n.endswith(".nii")


#: Files that cannot hold an image: documents, notes, viewer/OS by-products. Any other file
#: that is neither DICOM nor NIfTI (a ``.dcm`` without preamble, ``.img``, no suffix, ...) may
#: be an image in a format theradose does not read, so skipping it warns.
_HARMLESS_SUFFIXES = frozenset({".txt", ".md", ".rst", ".pdf", ".doc", ".docx", ".odt",
                                ".rtf", ".csv", ".tsv", ".xls", ".xlsx", ".log", ".html",
                                ".htm", ".xml", ".toml", ".yaml", ".yml", ".ini", ".cfg",
                                ".png", ".jpg", ".jpeg", ".gif", ".svg", ".py", ".sh", ".bat"})
_HARMLESS_NAMES = frozenset({"dicomdir", "thumbs.db", "desktop.ini", "lockfile", "version",
                             "readme", "license"})


def _harmless(p: Path) -> bool:
    return p.suffix.lower() in _HARMLESS_SUFFIXES or p.name.lower() in _HARMLESS_NAMES


def _dicom_or_reason(p: Path) -> str | None:
    """None for a DICOM file (preamble 'DICM' at byte 128), else why it is not read.

    Raises
    ------
    UnreadableFileError
        The file cannot be opened or read (it may be a time point's image).
    """
    try:
        with open(p, "rb") as fh:
            fh.seek(128)
            if fh.read(4) == b"DICM":
                return None
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read ({type(exc).__name__}: {exc.strerror}); "
                                  "fix its permissions or remove it from the study folder",
                                  file=p) from exc
    return ("neither DICOM (no 'DICM' preamble at byte 128) nor NIfTI (.nii, .nii.gz) nor a "
            "NIfTI's JSON sidecar")


def _sort_files(files: list[Path]) -> tuple[list[Path], list[Path], list[dict[str, str]]]:
    """Split into NIfTI and DICOM files; everything else (sidecars excepted) is skipped."""
    nifti = [f for f in files if _is_nifti(f)]
    sidecars = {sidecar_path(f) for f in nifti}
    dicom, skipped = [], []
    for f in files:
        if _is_nifti(f) or f in sidecars:
            continue
        reason = _dicom_or_reason(f)
        if reason is None:
            dicom.append(f)
        elif f.suffix.lower() == ".json":
            skipped.append(_skip(f, "JSON file that is no NIfTI image's sidecar"))
        else:
            skipped.append(_skip(f, reason))
            if not _harmless(f):
                warnings.warn(f"{f}: skipped: {reason}; if it is an image of the study, convert "
                              "it to DICOM or NIfTI", TheradoseWarning, stacklevel=3)
    return nifti, dicom, skipped


# ---------------------------------------------------------------------------------- collecting
#: Patient identity: DICOM keyword and the sidecar key that may carry the same value.
_IDENTITY = (("PatientID", "patient_id"), ("PatientName", "patient_name"),
             ("PatientBirthDate", "patient_birth_date"))


@dataclass
class _Item:
    volume: Volume
    path: Path                       # named in messages: the NIfTI file or first DICOM file
    meta_file: Path                  # where roles/pairings are declared (sidecar) or ``path``
    paired_ct: Path | None = None    # declared in the sidecar ("paired_ct")
    role: str | None = None          # declared in the sidecar ("role")


@dataclass
class _Identity:
    """Patient identity of one series or NIfTI image (empty strings: not given)."""

    file: Path                       # the DICOM file or the sidecar
    dicom: bool
    values: dict[str, str]           # DICOM keyword -> value as stored

    @classmethod
    def from_dataset(cls, ds, file: Path) -> _Identity:
        return cls(file, True, {kw: str(ds.get(kw, "") or "") for kw, _ in _IDENTITY})

    @classmethod
    def from_meta(cls, meta: dict[str, Any], file: Path) -> _Identity:
        return cls(file, False, {kw: "" if meta.get(key) is None else str(meta[key])
                                 for kw, key in _IDENTITY})


def _identity_key(keyword: str, value: str) -> str:
    """Comparable form: PN components trimmed, upper case; dates as digits (ISO or DICOM)."""
    v = value.strip()
    if keyword == "PatientName":
        parts = [c.strip() for c in v.upper().split("^")]
        while parts and not parts[-1]:
            parts.pop()
        return "^".join(parts)
    if keyword == "PatientBirthDate":
        return "".join(ch for ch in v if ch.isdigit())
    return v


def _check_one_patient(records: list[_Identity]) -> None:
    """Every series of the study belongs to one patient (fields compared where both are given).

    The value most files carry is taken as the study's; the first file (by path) with another
    value is named, with a file that carries the study's value.
    """
    records = sorted(records, key=lambda r: str(r.file))
    for keyword, key in _IDENTITY:
        given = [(r, _identity_key(keyword, r.values[keyword])) for r in records]
        given = [(r, k) for r, k in given if k]
        counts = Counter(k for _, k in given)
        if len(counts) <= 1:
            continue
        top = max(counts.values())
        anchor, ref = next((r, k) for r, k in given if counts[k] == top)
        odd = next(r for r, k in given if k != ref)
        raise InputError(
            f"{odd.values[keyword]!r} differs from {anchor.values[keyword]!r} in {anchor.file}; "
            "a study holds one patient (remove the other patient's series from the folder)",
            file=odd.file, field=keyword if odd.dicom else key)


def _collect_nifti(files: list[Path], folder: Path
                   ) -> tuple[list[_Item], Path | None, list[_Identity]]:
    if not files:
        return [], None, []
    sidecars = {f: read_sidecar(sidecar_path(f)) for f in files if sidecar_path(f).is_file()}
    sigma_files = {(f.parent / s["sigma_file"]).resolve() for f, s in sidecars.items()
                   if "sigma_file" in s}
    stems = {(f.parent, _split_nifti(f)[1]) for f in files}
    label_files, images = [], []
    for f in files:
        folder_f, stem, _ = _split_nifti(f)
        if f.resolve() in sigma_files or (stem.endswith("_sigma") and
                                          (folder_f, stem[: -len("_sigma")]) in stems):
            continue
        side = sidecars.get(f, {})
        if stem.lower() == "labels" or side.get("unit") == "label" or "labels" in side:
            label_files.append(f)
        elif not side:
            raise InputError(f"no sidecar {sidecar_path(f).name}: the study loader needs "
                             "'modality' and 'acquisition_time' from it (see "
                             "docs/io-nifti-study.md)", file=f, field="sidecar")
        else:
            images.append(f)
    if len(label_files) > 1:
        raise InputError(f"more than one label map: {[str(p) for p in label_files]}; keep one "
                         "(labels.nii.gz)", file=folder, field="labels")
    items = []
    for f in progress(images, desc="reading NIfTI", total=len(images)):
        v = read_nifti(f, sidecar=True)
        side = sidecar_path(f)
        paired = v.meta.get("paired_ct")
        if paired is not None:
            if not isinstance(paired, str) or not paired.strip():
                raise InputError(f"must be the file name of a CT NIfTI, got {paired!r}",
                                 file=side, field="paired_ct")
            paired = (f.parent / paired.strip()).resolve()
        items.append(_Item(v, f, side, paired, _role(v.meta.get("role"), side)))
    idents = [_Identity.from_meta(it.volume.meta, it.meta_file) for it in items]
    idents += [_Identity.from_meta(s, sidecar_path(f)) for f, s in sidecars.items()
               if f in label_files]
    return items, (label_files[0] if label_files else None), idents


def _role(value: Any, file: Path) -> str | None:
    if value is None:
        return None
    if value not in ROLES:
        raise InputError(f"unknown role {value!r}; accepted: {', '.join(ROLES)}", file=file,
                         field="role")
    return value


#: DICOM objects that are no image of the study (read elsewhere or irrelevant): skipped with
#: an info entry only. RTDOSE has Rows but is a dose grid (theradose compare reads it).
_NON_IMAGE = frozenset({"RTSTRUCT", "SEG", "RTDOSE", "RTPLAN", "RTRECORD", "RTIMAGE", "REG",
                        "SR", "KO", "PR", "DOC", "RWV", "PLAN", "FID"})


def _dicom_series(files: list[Path]
                  ) -> tuple[list[tuple[str, list[Path]]], list[_Identity], list[dict[str, str]]]:
    """Group DICOM files by series (headers only): image series, identities, skipped series.

    A file with a DICOM preamble that cannot be parsed is an error (it may be a slice of a
    series), not skipped.
    """
    from theradose.io._dicom_common import read_dataset

    groups: dict[str, list[tuple[Path, Any]]] = {}
    for f in files:
        ds = read_dataset(f, stop_before_pixels=True)
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or ""), []).append((f, ds))
    series, idents, skipped = [], [], []
    for _, members in sorted(groups.items(), key=lambda kv: str(kv[1][0][0])):
        first, ds = members[0]
        idents.append(_Identity.from_dataset(ds, first))
        modality = str(ds.get("Modality", "") or "").strip()
        if modality in ("CT", "NM", "PT"):
            series.append((modality, [f for f, _ in members]))
            continue
        n = len(members)
        is_image = modality not in _NON_IMAGE and "Rows" in ds
        if is_image and not modality:
            raise DicomTagError("empty on an image (it has Rows/Columns, pixel data): the study "
                                "cannot tell a SPECT (NM) from a PET (PT) or CT; set it",
                                file=first, field="Modality")
        why = f"{modality or 'no Modality'} series ({n} file{'s' * (n > 1)}): not an image " \
              "series the study uses (CT, NM, PT)"
        if modality in ("SEG", "RTSTRUCT"):
            why += "; theradose run reads it for the VOIs"
        skipped.append(_skip(first, why))
        if is_image:  # an MR/US/... image may be a mislabelled time point: say so
            warnings.warn(f"{first}: Modality: {modality} image series ({n} file"
                          f"{'s' * (n > 1)}) skipped; only CT, NM and PT are used (a SPECT "
                          "with a wrong Modality would be lost)", TheradoseWarning, stacklevel=3)
    return series, idents, skipped


def _read_dicom(series: list[tuple[str, list[Path]]], cal: float | None) -> list[_Item]:
    from theradose.io._dicom_read import read_dicom_series

    items = []
    for modality, files in progress(series, desc="reading DICOM", total=len(series)):
        v = read_dicom_series(files, calibration_cps_per_mbq=cal if modality == "NM" else None)
        items.append(_Item(v, files[0], files[0]))
    return items


# ---------------------------------------------------------------------------------- checks
def _extent(g: Geometry) -> tuple[np.ndarray, np.ndarray]:
    c = g.corners()
    return c.min(axis=0), c.max(axis=0)


def _overlap(a: Geometry, b: Geometry) -> bool:
    (alo, ahi), (blo, bhi) = _extent(a), _extent(b)
    return bool(np.all(np.maximum(alo, blo) < np.minimum(ahi, bhi)))


def _same_administration(a: Administration, b: Administration) -> bool:
    return (_nuclide_key(a.nuclide) == _nuclide_key(b.nuclide)
            and math.isclose(a.injected_activity_mbq, b.injected_activity_mbq, rel_tol=1e-6)
            and a.injection_time == b.injection_time)


def _nuclide_key(name: str) -> str:
    """ICRP-107 spelling for comparisons ('177Lu' and 'Lu-177' agree)."""
    try:
        return resolve_name(name)
    except InputError:
        return name.strip().lower()


def _therapy_administration(therapy: list[_Item], folder: Path, *, nuclide, activity, injection
                            ) -> Administration:
    """One administration for all therapy images, from headers/sidecars and the arguments."""
    first: tuple[_Item, Administration] | None = None
    first_nuc: tuple[_Item, str] | None = None
    for it in therapy:
        adm = it.volume.meta.get("administration")
        if adm is not None:
            if first is None:
                first = (it, adm)
            elif not _same_administration(first[1], adm):
                raise InputError(
                    f"administration {adm.to_dict()} differs from {first[1].to_dict()} in "
                    f"{first[0].meta_file}; the time points must come from one administration "
                    "(mark a pre-therapy image with \"role\": \"pretherapy\")",
                    file=it.meta_file, field="administration")
        nuc = it.volume.meta.get("nuclide") or (adm.nuclide if adm is not None else None)
        if nuc:
            if first_nuc is None:
                first_nuc = (it, nuc)
            elif _nuclide_key(nuc) != _nuclide_key(first_nuc[1]):
                raise InputError(f"nuclide {nuc!r} differs from {first_nuc[1]!r} in "
                                 f"{first_nuc[0].meta_file}; the time points must be of one "
                                 "nuclide", file=it.meta_file, field="nuclide")
    if first is not None:
        it, adm = first
        checks = (("nuclide", nuclide, adm.nuclide,
                   nuclide is not None and _nuclide_key(nuclide) != _nuclide_key(adm.nuclide)),
                  ("injected_activity_mbq", activity, adm.injected_activity_mbq,
                   activity is not None and not math.isclose(activity, adm.injected_activity_mbq,
                                                             rel_tol=1e-6)),
                  ("injection_time", injection, adm.injection_time,
                   injection is not None and injection != adm.injection_time))
        for name, given, stored, differs in checks:
            if differs:
                raise InputError(f"argument {name}={given!r} contradicts the image's "
                                 f"{stored!r}; drop the argument or correct the file",
                                 file=it.meta_file, field=name)
        return adm
    if nuclide is not None and first_nuc is not None and \
            _nuclide_key(nuclide) != _nuclide_key(first_nuc[1]):
        raise InputError(f"argument nuclide={nuclide!r} contradicts the image's "
                         f"{first_nuc[1]!r}", file=first_nuc[0].meta_file, field="nuclide")
    nuclide = nuclide or (first_nuc[1] if first_nuc else None)
    missing = [n for n, v in (("nuclide", nuclide), ("injected_activity_mbq", activity),
                              ("injection_time", injection)) if v is None]
    if missing:
        raise InputError(
            f"no administration in the image headers or sidecars; pass {', '.join(missing)} "
            "(CLI: --nuclide, --activity-mbq, --injection-time) or add \"administration\" to "
            "the sidecars", file=folder, field=missing[0])
    return Administration(resolve_name(nuclide, field="nuclide"), activity, injection)


#: Negative voxels of an emission image, summed, above this fraction of the positive total warn.
#: OSEM keeps voxels >= 0 and FBP / scatter-subtracted reconstructions give zero-mean noise of a
#: few per mille of the total in the background; more than 1 % is a corrupt or wrongly scaled
#: image (a sign flip, an offset intercept, garbage voxels), which the dose would inherit.
_NEGATIVE_FRACTION = 0.01
#: A single voxel below -20 % of the hottest voxel warns too: the deepest undershoot a
#: reconstruction makes is Gibbs ringing at a sharp edge, <= 9 % of the step (Gibbs phenomenon),
#: so a few such voxels (e.g. -1e6 Bq/mL sprinkled in a 1e10 total) are corruption even when
#: their sum stays under 1 %.
_NEGATIVE_PEAK = 0.2


def _check_negative(v: Volume, file: Path) -> None:
    """Warn on negative voxels beyond reconstruction noise (_NEGATIVE_FRACTION, _NEGATIVE_PEAK)."""
    if v.unit != "Bq/mL":
        return
    a = np.asarray(v.array, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0:
        return
    pos = float(a[a > 0].sum())
    neg = -float(a[a < 0].sum())
    if neg > _NEGATIVE_FRACTION * pos or -lo > _NEGATIVE_PEAK * max(hi, 0.0):
        frac = "inf" if pos == 0 else f"{neg / pos:.3g}"
        warnings.warn(f"{file}: values: negative voxels sum to {frac} of the positive total "
                      f"({neg:.4g} vs {pos:.4g} Bq/mL summed), the lowest {lo:.4g} Bq/mL vs a "
                      f"maximum of {hi:.4g}; more than reconstruction noise (> "
                      f"{_NEGATIVE_FRACTION:.0%} of the total or a voxel below "
                      f"-{_NEGATIVE_PEAK:.0%} of the maximum): check the image",
                      TheradoseWarning, stacklevel=3)


def _calibrate(it: _Item, cal: float | None) -> Volume:
    """Finalise a therapy time point's image; warn on negative voxels (_NEGATIVE_FRACTION)."""
    v = _to_activity(it, cal)
    _check_negative(v, it.path)
    return v


def _to_activity(it: _Item, cal: float | None) -> Volume:
    """Finalise a therapy time point's image: Bq/mL, activity at the acquisition start.

    Counts -> Bq/mL with the formula of read_nm (docs/io-dicom.md), then any decay correction
    (DICOM DecayCorrection START / ADMIN, or the sidecar's ``"decay_correction"``) undone, as the
    kinetics expects (:func:`~theradose.io.undo_decay_correction`).
    """
    from theradose.io._decay import undo_decay_correction

    v = it.volume
    if v.unit != "counts":
        # DICOM BQML images were warned about by read_nm (which then drops the argument).
        if cal is not None and "source_files" not in v.meta:
            warnings.warn(f"{it.meta_file}: calibration_cps_per_mbq: ignored for this image, "
                          f"its unit is already {v.unit}, not counts", TheradoseWarning,
                          stacklevel=3)
        return undo_decay_correction(v, file=it.meta_file)
    stored = v.meta.get("calibration_cps_per_mbq")
    if stored is not None and cal is not None and not math.isclose(stored, cal, rel_tol=1e-6):
        raise InputError(f"argument calibration_cps_per_mbq={cal!r} contradicts the image's "
                         f"{stored!r}", file=it.meta_file, field="calibration_cps_per_mbq")
    cal = cal if cal is not None else stored
    if cal is None:
        warnings.warn(f"{it.path}: unit: the image stays in counts; pass "
                      "calibration_cps_per_mbq to get Bq/mL", TheradoseWarning, stacklevel=3)
        return undo_decay_correction(v, file=it.meta_file)
    t_acq = v.meta.get("acquisition_duration_s")
    if t_acq is None:
        raise InputError("counts -> Bq/mL needs the acquisition duration; add "
                         "\"acquisition_duration_s\" to the sidecar", file=it.meta_file,
                         field="acquisition_duration_s")
    v_ml = v.geometry.voxel_volume_ml
    factor = 1e6 / (t_acq * cal * v_ml)
    arr = v.array.astype(np.float64) * factor
    sigma = None if v.sigma is None else v.sigma.astype(np.float64) * factor
    v = v.replace(array=arr, sigma=sigma, unit="Bq/mL",
                  meta={**v.meta, "calibration_cps_per_mbq": cal},
                  note=f"counts -> Bq/mL: C = counts / ({t_acq:g} s x {cal:g} cps/MBq) "
                       f"x 1e6 / {v_ml:g} mL")
    return undo_decay_correction(v, file=it.meta_file)


def _pair_ct(it: _Item, cts: list[_Item], tol_h: float) -> Volume | None:
    em = it.volume
    fo_e = em.meta.get("frame_of_reference_uid") or None
    if it.paired_ct is not None:
        match = [c for c in cts if c.path.resolve() == it.paired_ct]
        if not match:
            raise InputError(f"names {it.paired_ct.name!r}, which is not a CT of the study "
                             f"(CTs: {[c.path.name for c in cts]})", file=it.meta_file,
                             field="paired_ct")
        ct = match[0].volume
        fo_c = ct.meta.get("frame_of_reference_uid") or None
        if fo_e and fo_c and fo_e != fo_c:
            raise GeometryMismatchError(f"declared pair {it.path.name} / {match[0].path.name} "
                                        f"has different FrameOfReferenceUIDs ({fo_e} vs {fo_c})",
                                        file=it.meta_file, field="paired_ct")
        if not _overlap(em.geometry, ct.geometry):
            raise GeometryMismatchError(
                f"declared pair {it.path.name} / {match[0].path.name} does not overlap in space "
                f"(emission {_extent(em.geometry)[0].round(1).tolist()}..."
                f"{_extent(em.geometry)[1].round(1).tolist()} mm, CT "
                f"{_extent(ct.geometry)[0].round(1).tolist()}..."
                f"{_extent(ct.geometry)[1].round(1).tolist()} mm LPS)",
                file=it.meta_file, field="paired_ct")
        return ct
    same_for = [c for c in cts if fo_e and c.volume.meta.get("frame_of_reference_uid") == fo_e]
    if len(same_for) == 1:  # the FoR identifies the CT of this session
        return same_for[0].volume
    # several CTs share the FoR (it does not identify the session), or none does: nearest time
    cands = [c for c in (same_for or cts) if c.volume.acquisition_time is not None
             and em.acquisition_time is not None and _overlap(em.geometry, c.volume.geometry)]
    if not cands:
        log.info("%s: no CT paired", it.path)
        return None
    best = min(cands, key=lambda c: abs((c.volume.acquisition_time -
                                         em.acquisition_time).total_seconds()))
    dt_h = abs((best.volume.acquisition_time - em.acquisition_time).total_seconds()) / 3600.0
    if dt_h > tol_h:
        log.info("%s: nearest CT %s is %.2f h away (> %g h); no CT paired", it.path,
                 best.path.name, dt_h, tol_h)
        return None
    return best.volume


def _time_h(it: _Item, adm: Administration, what: str) -> float:
    t = it.volume.acquisition_time
    if t is None:
        raise InputError(f"{what} has no acquisition time; add \"acquisition_time\" to the "
                         "sidecar", file=it.meta_file, field="acquisition_time")
    h = adm.hours_since_injection(t)
    if h < 0:
        raise TimeOrderError(f"acquired {t.isoformat()}, {-h:.3g} h before the injection at "
                             f"{adm.injection_time.isoformat()}", file=it.meta_file,
                             field="acquisition_time")
    return h


# ---------------------------------------------------------------------------------- loader
def load_study(
    folder: str | Path,
    *,
    nuclide: str | None = None,
    injected_activity_mbq: float | None = None,
    injection_time: datetime | str | None = None,
    calibration_cps_per_mbq: float | None = None,
    ct_tolerance_h: float = 2.0,
) -> Study:
    """Read the images of one therapy from a folder of NIfTI (+ sidecars) and/or DICOM files.

    Roles: CT images are CTs; NM images are therapy time points and a PT image then the
    pre-therapy PET; without NM images every PT image is a time point. A sidecar's ``"role"``
    (``"therapy"`` / ``"pretherapy"``) overrides this. A NIfTI named ``labels.nii(.gz)`` or whose
    sidecar has ``"labels"`` or unit ``"label"`` is the label map. Each emission image gets the
    CT its sidecar names (``"paired_ct"``), else a CT with the same FrameOfReferenceUID, else the
    CT nearest in acquisition time within ``ct_tolerance_h`` whose field of view overlaps.

    Every series (DICOM, and NIfTI images whose sidecar carries ``patient_id``,
    ``patient_name`` or ``patient_birth_date``) must belong to one patient: PatientID,
    PatientName and PatientBirthDate must agree wherever two files both give one. Other
    FrameOfReferenceUIDs and StudyInstanceUIDs across sessions are normal (the patient left the
    table) and not checked. What the folder holds but the study does not use is listed in
    :attr:`Study.skipped` (see :func:`study_files`).

    Parameters
    ----------
    folder : str or Path
        Folder searched recursively (symbolic links to files and folders followed, each file
        read once, hidden entries skipped) for ``*.nii``/``*.nii.gz`` and DICOM files.
    nuclide : str, optional
        Therapy nuclide (``"Lu-177"``); needed when no header or sidecar gives it.
    injected_activity_mbq : float, optional
        Net administered activity, MBq; needed when no header or sidecar gives it.
    injection_time : datetime or ISO 8601 str, optional
        Start of the injection (local time); needed when no header or sidecar gives it.
    calibration_cps_per_mbq : float, optional
        SPECT sensitivity, cps/MBq, to convert counts images to Bq/mL
        (``C = counts / (T_acq[s] · cal) · 1e6 / V_voxel[mL]``, as :func:`read_nm`).
    ct_tolerance_h : float
        Largest time between an emission image and a CT paired by time, h.

    Returns
    -------
    Study

    Raises
    ------
    InputError
        No emission image; series of more than one patient (naming both files and the field);
        several administrations or nuclides among the time points; no administration and the
        arguments missing; an argument contradicting the files; a NIfTI without sidecar; bad
        ``role`` or ``paired_ct``.
    TimeOrderError
        Two time points at the same time, or one before the injection.
    GeometryMismatchError
        A declared CT pair, or the label map, that does not overlap the emission image.
    UnreadableFileError
        Missing folder; a file with a DICOM preamble that cannot be parsed (it may be a slice of
        a series, so it is not skipped).

    Examples
    --------
    >>> study = load_study("patient01/")                                # doctest: +SKIP
    >>> study.times_h                                                   # doctest: +SKIP
    array([  4.1,  24.3,  96.8, 168.2])

    """
    root = Path(folder)
    if not root.is_dir():
        raise UnreadableFileError("study folder does not exist", file=root)
    if injected_activity_mbq is not None:
        injected_activity_mbq = _positive(injected_activity_mbq, file=None,
                                          field="injected_activity_mbq")
    if calibration_cps_per_mbq is not None:
        calibration_cps_per_mbq = _positive(calibration_cps_per_mbq, file=None,
                                            field="calibration_cps_per_mbq")
    if isinstance(injection_time, str):
        injection_time = _parse_time(injection_time, file=None, field="injection_time")
    elif injection_time is not None and not isinstance(injection_time, datetime):
        raise InputError(f"must be a datetime or ISO 8601 string, got "
                         f"{type(injection_time).__name__}", field="injection_time")
    if nuclide is not None:
        nuclide = resolve_name(nuclide, field="nuclide")
    ct_tolerance_h = _positive(ct_tolerance_h, file=None, field="ct_tolerance_h")

    files, skipped = study_files(root)
    nifti_files, dicom_files, more = _sort_files(files)
    skipped += more
    series, idents, more = _dicom_series(dicom_files)
    skipped += more
    items, labels_file, nifti_idents = _collect_nifti(nifti_files, root)
    _check_one_patient(idents + nifti_idents)
    items += _read_dicom(series, calibration_cps_per_mbq)
    cts = [it for it in items if it.volume.modality == "CT"]
    for it in cts:
        if it.volume.unit != "HU":
            raise InputError(f"a CT image must be in HU, got {it.volume.unit!r}",
                             file=it.meta_file, field="unit")
    emis = [it for it in items if it.volume.modality in _EMISSION]
    for it in items:
        if it.volume.modality not in ("CT", *_EMISSION):
            warnings.warn(f"{it.path}: modality: {it.volume.modality} image ignored by the "
                          "study loader (CT, NM, PT are used)", TheradoseWarning, stacklevel=2)
            skipped.append(_skip(it.path, f"{it.volume.modality} image: not used by the study "
                                          "loader (CT, NM, PT)"))
    if not emis:
        raise InputError(f"no emission image (NM or PT) among {len(items)} image(s) found",
                         file=root, field="modality")
    any_nm = any(it.volume.modality == "NM" for it in emis)
    for it in emis:
        if it.role is None:
            it.role = "therapy" if it.volume.modality == "NM" or not any_nm else "pretherapy"
    therapy = [it for it in emis if it.role == "therapy"]
    pre = [it for it in emis if it.role == "pretherapy"]
    if not therapy:
        raise InputError(f"no therapy time point: all emission images are pre-therapy "
                         f"({[it.path.name for it in pre]})", file=root, field="role")
    if len(pre) > 1:
        raise InputError(f"more than one pre-therapy PET: {[it.path.name for it in pre]}; keep "
                         "one or mark the others \"role\": \"therapy\"", file=root, field="role")

    adm = _therapy_administration(therapy, root, nuclide=nuclide,
                                  activity=injected_activity_mbq, injection=injection_time)
    timed = []
    for it in therapy:
        h = _time_h(it, adm, "time point")
        if it.volume.meta.get("administration") is None:
            # the study's administration (files or arguments): an ADMIN decay correction of an
            # image that does not carry it refers to this injection time
            it.volume = it.volume.replace(meta={**it.volume.meta, "administration": adm})
        vol = _calibrate(it, calibration_cps_per_mbq)
        timed.append((h, it, vol))
    timed.sort(key=lambda x: x[0])
    for (h0, a, _), (h1, b, _) in pairwise(timed):
        if h1 <= h0:
            raise TimeOrderError(f"{a.path.name} and {b.path.name} are both at {h0:.4g} h after "
                                 "injection (duplicate series?); time points must be strictly "
                                 "increasing", file=b.meta_file, field="acquisition_time")
    time_points = tuple(TimePoint(vol, _pair_ct(it, cts, ct_tolerance_h), h)
                        for h, it, vol in timed)

    pet = None
    if pre:
        it = pre[0]
        pet_adm = it.volume.meta.get("administration")
        if pet_adm is None:
            raise InputError("the pre-therapy PET has no administration (tracer, activity, "
                             "injection time); add \"administration\" to its sidecar",
                             file=it.meta_file, field="administration")
        h = _time_h(it, pet_adm, "pre-therapy PET")
        if it.volume.acquisition_time > adm.injection_time:
            warnings.warn(f"{it.path}: acquisition_time: the pre-therapy PET was acquired after "
                          f"the therapy injection ({adm.injection_time.isoformat()})",
                          TheradoseWarning, stacklevel=2)
        pet = TimePoint(it.volume, _pair_ct(it, cts, ct_tolerance_h), h)

    labels = None
    if labels_file is not None:
        labels = read_labelmap(labels_file)
        if not _overlap(labels.geometry, time_points[0].emission.geometry):
            raise GeometryMismatchError("label map does not overlap the first time point's "
                                        "image in space", file=labels_file, field="geometry")
    used = {id(tp.ct) for tp in (*time_points, *([pet] if pet else [])) if tp.ct is not None}
    for c in cts:
        if id(c.volume) not in used:
            why = ("CT not paired with any emission image (no FrameOfReferenceUID, paired_ct "
                   "or acquisition time within ct_tolerance_h matched)")
            skipped.append(_skip(c.path, why))
            # a CT without its SPECT is most often a time point lost (an emission image
            # mislabelled, missing or too far in time): said, not only listed
            warnings.warn(f"{c.meta_file}: acquisition_time: {why}; its time point is not "
                          "used", TheradoseWarning, stacklevel=2)
    log.info("study %s: %d time point(s) at %s h, %s %.6g MBq", root, len(time_points),
             [round(tp.time_h, 2) for tp in time_points], adm.nuclide,
             adm.injected_activity_mbq)
    return Study(time_points, adm, pet, labels, root, tuple(skipped))
