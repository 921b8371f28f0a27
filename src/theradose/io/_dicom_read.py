"""Reading DICOM image series: CT, NM (reconstructed SPECT) and PT into :class:`Volume`.

See ``docs/io-dicom.md`` for the tags read per modality, the unit rules, the counts -> Bq/mL
formula and the ``meta`` keys.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from theradose.errors import (
    DicomTagError,
    InputError,
    TheradoseWarning,
    UnitError,
    UnreadableFileError,
)
from theradose.io._dicom_common import (
    dicom_datetime,
    dicom_int,
    dicom_numbers,
    geometry_from_slices,
    list_dicom_files,
    read_dataset,
    require,
)
from theradose.io._radiopharmaceutical import administration_from_dataset
from theradose.volume import Geometry, Volume

__all__ = ["list_series", "read_ct", "read_dicom_series", "read_nm", "read_pt"]

log = logging.getLogger("theradose")

PathLike = str | Path
FilesOrFolder = PathLike | Iterable[PathLike]

_DECAY_CORRECTIONS = ("START", "ADMIN", "NONE")
# Transfer syntaxes whose pixel data are stored uncompressed (length can be checked up front).
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
           "1.2.840.10008.1.2.1.99"}


# ---------------------------------------------------------------------------------- helpers
def _oddity(message: str, *, file, field: str, strict: bool) -> None:
    """A DICOM oddity: a warning by default, a DicomTagError when ``strict``."""
    err = DicomTagError(message, file=file, field=field)
    if strict:
        raise err
    warnings.warn(str(err), TheradoseWarning, stacklevel=3)


def _get(ds, keyword: str, file=None):
    """``ds.get(keyword)``; a value pydicom cannot convert raises DicomTagError."""
    try:
        return ds.get(keyword)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DicomTagError(f"malformed value ({exc})", file=file, field=keyword) from exc


def _req(ds, keyword: str, file):
    """A required, non-empty attribute (see :func:`require`), malformed values reported."""
    _get(ds, keyword, file)
    return require(ds, keyword, file=file)


def _text(ds, keyword: str, file=None) -> str:
    v = _get(ds, keyword, file)
    return "" if v is None else str(v).strip()


def _float(ds, keyword: str, *, file, default: float | None = None) -> float | None:
    v = _get(ds, keyword, file)
    if v is None or (isinstance(v, str) and not v.strip()):
        return default
    try:
        out = float(v)
    except (TypeError, ValueError) as exc:
        raise DicomTagError(f"not a number: {v!r}", file=file, field=keyword) from exc
    if not math.isfinite(out):
        raise DicomTagError(f"not finite: {v!r}", file=file, field=keyword)
    return out


def _as_paths(files_or_folder: FilesOrFolder) -> tuple[list[Path], Path]:
    """Files to read and the path to name in messages (the folder, or the first file)."""
    if isinstance(files_or_folder, str | Path):
        p = Path(files_or_folder)
        if p.is_dir():
            files = list_dicom_files(p)
            if not files:
                raise UnreadableFileError("no DICOM files (with a 'DICM' preamble) in folder",
                                          file=p)
            return files, p
        if not p.exists():
            raise UnreadableFileError("file or folder does not exist", file=p)
        return [p], p
    files = [Path(f) for f in files_or_folder]
    if not files:
        raise InputError("no files given", field="files_or_folder")
    return files, files[0]


def _group(files: list[Path]) -> dict[str, list[tuple[Path, object]]]:
    groups: dict[str, list[tuple[Path, object]]] = {}
    for f in files:
        ds = read_dataset(f, stop_before_pixels=True)
        groups.setdefault(_text(ds, "SeriesInstanceUID"), []).append((f, ds))
    return groups


def list_series(folder: PathLike) -> dict[str, list[Path]]:
    """DICOM series below ``folder``: SeriesInstanceUID -> files (headers only are read).

    Files with an empty SeriesInstanceUID (some anonymisers blank it) are listed under ``""``.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    dict of str to list of Path
        Files sorted by path within each series.

    Raises
    ------
    UnreadableFileError
        If the folder does not exist or a file with a DICOM preamble cannot be parsed.
    """
    files = list_dicom_files(folder)
    return {uid: [f for f, _ in members] for uid, members in _group(files).items()}


def _select(files_or_folder: FilesOrFolder, series_uid: str | None
            ) -> tuple[list[Path], list, Path]:
    files, where = _as_paths(files_or_folder)
    groups = _group(files)
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(f"series {series_uid!r} not found; available: "
                             f"{_describe(groups)}", file=where, field="series_uid")
        members = groups[series_uid]
    elif len(groups) > 1:
        raise InputError(f"{len(groups)} series found, pass series_uid= one of: "
                         f"{_describe(groups)}", file=where, field="series_uid")
    else:
        members = next(iter(groups.values()))
    return [f for f, _ in members], [d for _, d in members], where


def _describe(groups: dict) -> str:
    parts = []
    for uid, members in groups.items():
        mods = sorted({_text(d, "Modality") or "?" for _, d in members})
        n = len(members)
        names = ": " + ", ".join(f.name for f, _ in members) if n <= 3 else ""
        parts.append(f"{uid or '<empty>'} ({'/'.join(mods)}, {n} file{'s' * (n > 1)}{names})")
    return "; ".join(parts)


def _check_modality(headers: Sequence, files: Sequence[Path], expected: str) -> None:
    for ds, f in zip(headers, files, strict=True):
        mod = _text(ds, "Modality")
        if mod != expected:
            raise DicomTagError(f"expected {expected}, got {mod or '<empty>'!r}", file=f,
                                field="Modality")


def _pixels(ds, file: Path, n_frames: int = 1) -> np.ndarray:
    """Decoded stored values, shape (frames, rows, cols); size problems are reported clearly."""
    kws = [k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds]
    if not kws:
        raise DicomTagError("no pixel data (truncated file?)", file=file, field="PixelData")
    if not ds[kws[0]].value:  # present with length 0 (pydicom reads it as None)
        raise DicomTagError("empty (0 bytes of pixel data; truncated or blanked file?)",
                            file=file, field=kws[0])
    rows = dicom_int(_req(ds, "Rows", file), file=file, field="Rows")
    cols = dicom_int(_req(ds, "Columns", file), file=file, field="Columns")
    for kw, n in (("Rows", rows), ("Columns", cols)):
        if n < 1:
            raise DicomTagError(f"must be >= 1, got {n} (an image needs at least one pixel)",
                                file=file, field=kw)
    spp = dicom_int(_get(ds, "SamplesPerPixel", file) or 1, file=file, field="SamplesPerPixel")
    if spp != 1:
        raise DicomTagError(f"must be 1 (grey-scale), got {spp}", file=file,
                            field="SamplesPerPixel")
    tsyntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "1.2.840.10008.1.2"))
    if "PixelData" in ds and tsyntax in _NATIVE:
        bits = dicom_int(_req(ds, "BitsAllocated", file), file=file, field="BitsAllocated")
        expected = rows * cols * n_frames * bits // 8
        got = len(ds.PixelData)
        if got < expected or got > expected + 1:
            raise DicomTagError(
                f"NumberOfFrames x Rows x Columns = {n_frames} x {rows} x {cols} needs "
                f"{expected} bytes of PixelData, the file holds {got} (wrong NumberOfFrames or "
                "truncated file)", file=file,
                field="NumberOfFrames" if "NumberOfFrames" in ds else "PixelData")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # decoders raise many types
        raise UnreadableFileError(f"cannot decode pixel data ({type(exc).__name__}: {exc})",
                                  file=file) from exc
    arr = np.asarray(arr).reshape(n_frames, rows, cols)
    _check_finite_pixels(arr, ds, file)
    return arr


def _check_finite_pixels(arr: np.ndarray, ds, file: Path) -> None:
    """NaN/±Inf in float pixel data (FloatPixelData, DoubleFloatPixelData) are an error.

    Integer pixel data are finite by construction, so only float arrays are scanned (a float64
    sum is non-finite whenever one value is; the full test runs only then).
    """
    if arr.dtype.kind != "f" or math.isfinite(float(arr.sum(dtype=np.float64))):
        return
    bad = ~np.isfinite(arr)
    n = int(np.count_nonzero(bad))
    if n:
        idx = [int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape)]
        kw = next((k for k in ("FloatPixelData", "DoubleFloatPixelData", "PixelData")
                   if k in ds), "PixelData")
        raise DicomTagError(f"{n} of {arr.size} pixel values are not finite (NaN or ±Inf), the "
                            f"first at [frame, row, column] {idx}; theradose reads finite values "
                            "only", file=file, field=kw)


def _rescale(ds, file: Path, *, required: bool, strict: bool) -> tuple[float, float]:
    slope = _float(ds, "RescaleSlope", file=file)
    intercept = _float(ds, "RescaleIntercept", file=file)
    if required and (slope is None or intercept is None):
        _oddity("missing; slope 1 and intercept 0 assumed", file=file,
                field="RescaleSlope" if slope is None else "RescaleIntercept", strict=strict)
    slope = 1.0 if slope is None else slope
    # Stored values are counts (NM), activity concentration (PT) or attenuation (CT): all grow
    # with the physical quantity, so a slope <= 0 would make activity negative (or flip the
    # HU scale) -- a corrupt header, never a valid image.
    if slope <= 0:
        raise DicomTagError(f"must be > 0, got {slope:g} (stored values would map to zero or "
                            "negative activity / attenuation)", file=file, field="RescaleSlope")
    return slope, 0.0 if intercept is None else intercept


def _same(headers: Sequence, files: Sequence[Path], keyword: str, *, numeric: bool) -> None:
    """All files agree on ``keyword``; else the odd file is named (not its neighbour).

    The reference is the value most files hold (ties: the one met first), so a single odd
    file, the first one included, is the one blamed.
    """
    values = [_get(ds, keyword, f) for ds, f in zip(headers, files, strict=True)]

    def eq(a, b) -> bool:
        if not numeric:
            return a == b
        x = np.asarray(a if a is not None else [], dtype=float)
        y = np.asarray(b if b is not None else [], dtype=float)
        return x.shape == y.shape and bool(np.allclose(x, y, atol=1e-4))

    if all(eq(v, values[0]) for v in values[1:]):
        return
    groups: list[list[int]] = []  # indices of files holding the same value, first met first
    for i, v in enumerate(values):
        g = next((g for g in groups if eq(values[g[0]], v)), None)
        if g is None:
            groups.append([i])
        else:
            g.append(i)
    ref = max(groups, key=len)  # the first of the largest groups
    in_ref = set(ref)
    odd = [i for i in range(len(values)) if i not in in_ref]
    i = odd[0]
    where = files[ref[0]].name
    if len(ref) > 1:
        where += f" and {len(ref) - 1} other file{'s' * (len(ref) > 2)}"
    also = f"; {len(odd)} of {len(files)} files differ" if len(odd) > 1 else ""
    raise DicomTagError(f"{_fmt(values[i])} differs from {_fmt(values[ref[0]])} in {where}"
                        f"{also} (mixed series?)", file=files[i], field=keyword)


def _label(file: Path, where: Path) -> str:
    """``file`` as named in messages: relative to the folder read, else its name."""
    try:
        return str(file.relative_to(where)) if where.is_dir() else file.name
    except ValueError:
        return file.name


def _fmt(v) -> str:
    if v is None:
        return "<absent>"
    if isinstance(v, Sequence) and not isinstance(v, str):
        return "[" + ", ".join(f"{float(x):g}" for x in v) + "]"
    return repr(v)


def _stack(headers: Sequence, files: Sequence[Path], where: Path, *, strict: bool,
           rescale_required: bool, dtype=np.float64
           ) -> tuple[Geometry, np.ndarray, list[int], list]:
    """Geometry, rescaled values (``dtype``, [z, y, x]), slice order and headers in that order."""
    for ds, f in zip(headers, files, strict=True):
        nf = _get(ds, "NumberOfFrames", f)
        if nf not in (None, "") and dicom_int(nf, file=f, field="NumberOfFrames") > 1:
            raise DicomTagError(f"{nf} frames in a slice file; multi-frame (enhanced) "
                                "objects are read only for NM", file=f, field="NumberOfFrames")
        for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows",
                   "Columns"):
            _req(ds, kw, f)
    for kw in ("Rows", "Columns"):
        _same(headers, files, kw, numeric=False)
    for kw in ("ImageOrientationPatient", "PixelSpacing"):
        _same(headers, files, kw, numeric=True)
    h0 = headers[0]
    spacing = _float(h0, "SpacingBetweenSlices", file=files[0]) or \
        _float(h0, "SliceThickness", file=files[0])
    if len(files) == 1 and spacing is None:
        raise DicomTagError("a single slice needs SliceThickness or SpacingBetweenSlices (the "
                            "voxel depth, hence volumes and masses, is unknown otherwise)",
                            file=files[0], field="SliceThickness")
    geom, order = geometry_from_slices(
        [ds.ImagePositionPatient for ds in headers], h0.ImageOrientationPatient,
        h0.PixelSpacing, h0.Rows, h0.Columns,
        file=where if len(files) > 1 else files[0], spacing_between_slices=spacing,
        names=[_label(f, where) for f in files])
    order = [int(i) for i in order]
    arr = np.empty(geom.shape, dtype=dtype)
    for z, i in enumerate(order):  # one full dataset at a time bounds memory
        ds = read_dataset(files[i])
        slope, intercept = _rescale(ds, files[i], required=rescale_required, strict=strict)
        arr[z] = _pixels(ds, files[i])[0] * slope + intercept
    return geom, arr, order, [headers[i] for i in order]


def _uids(datasets: Sequence, files: Sequence[Path], *, strict: bool) -> list[str]:
    """SOPInstanceUIDs in slice order; empty ones (anonymisers) fall back to the file meta."""
    out, empty = [], 0
    for ds in datasets:
        uid = _text(ds, "SOPInstanceUID")
        if not uid:
            empty += 1
            uid = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPInstanceUID", ""))
        out.append(uid)
    if empty:
        _oddity(f"empty in {empty} of {len(files)} files (anonymised?); "
                "MediaStorageSOPInstanceUID of the file meta used", file=files[0],
                field="SOPInstanceUID", strict=strict)
    for kw in ("SeriesInstanceUID", "StudyInstanceUID"):
        if not _text(datasets[0], kw):
            _oddity("empty (anonymised?)", file=files[0], field=kw, strict=strict)
    return out


def _acq_time(ds, file) -> datetime | None:
    """Acquisition start of one object: AcquisitionDateTime, or a date + AcquisitionTime."""
    if _text(ds, "AcquisitionDateTime"):
        return dicom_datetime(_text(ds, "AcquisitionDateTime"), None, file=file,
                              field="AcquisitionDateTime")
    tm = _text(ds, "AcquisitionTime")
    if tm:
        for kw in ("AcquisitionDate", "SeriesDate", "ContentDate", "StudyDate"):
            if _text(ds, kw):
                return dicom_datetime(_text(ds, kw), tm, file=file, field="AcquisitionTime")
    return None


def _pair_time(ds, date_kw: str, time_kw: str, file) -> datetime | None:
    if _text(ds, date_kw) and _text(ds, time_kw):
        return dicom_datetime(_text(ds, date_kw), _text(ds, time_kw), file=file, field=time_kw)
    return None


#: DA, TM and DT attributes checked in every file's header (any of them may be used for times).
_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
_TIMES = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")


def _check_dates(ds, file) -> None:
    """Every present DA / TM / DT value parses; else a DicomTagError naming that field.

    Only some of them give the acquisition time, but a garbled one means a garbled header:
    an error rather than a silently different fallback.
    """
    for kw in _DATES:
        if _text(ds, kw, file):
            dicom_datetime(_text(ds, kw, file), "000000", file=file, field=kw)
    for kw in _TIMES:
        if _text(ds, kw, file):
            dicom_datetime("20000101", _text(ds, kw, file), file=file, field=kw)
    if _text(ds, "AcquisitionDateTime", file):
        dicom_datetime(_text(ds, "AcquisitionDateTime", file), None, file=file,
                       field="AcquisitionDateTime")


def _earliest_acquisition(datasets: Sequence, files: Sequence[Path]) -> datetime | None:
    for d, f in zip(datasets, files, strict=True):
        _check_dates(d, f)
    times = [t for t in (_acq_time(d, f) for d, f in zip(datasets, files, strict=True)) if t]
    if times:
        return min(times)
    for date_kw, time_kw in (("SeriesDate", "SeriesTime"), ("StudyDate", "StudyTime")):
        t = _pair_time(datasets[0], date_kw, time_kw, files[0])
        if t is not None:
            log.info("%s: no AcquisitionTime; %s used", files[0], time_kw)
            return t
    return None


#: Plausible adult and paediatric body weight (kg) and height (m); outside: a warning and None
#: (a weight in g or lb, a height in cm, a sign lost) rather than a wrong SUV.
_WEIGHT_KG = (0.5, 500.0)
_HEIGHT_M = (0.2, 2.8)


def _body_measure(ds, keyword: str, unit: str, bounds: tuple[float, float], file) -> float | None:
    value = _float(ds, keyword, file=file)
    if value is None or value == 0:  # 0 is DICOM's "unknown" in practice
        return None
    if not bounds[0] <= value <= bounds[1]:
        warnings.warn(str(DicomTagError(
            f"{value:g} {unit} is outside {bounds[0]:g}-{bounds[1]:g} {unit}; ignored (SUV "
            "needs it from elsewhere)", file=file, field=keyword)), TheradoseWarning,
            stacklevel=4)
        return None
    return value


def _meta(ds, files: Sequence[Path], sop_uids: list[str]) -> dict:
    weight = _body_measure(ds, "PatientWeight", "kg", _WEIGHT_KG, files[0])
    height = _body_measure(ds, "PatientSize", "m", _HEIGHT_M, files[0])
    return {
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        "sop_instance_uids": sop_uids,
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "patient_weight_kg": weight,
        "patient_height_m": height,
        "patient_sex": _text(ds, "PatientSex"),
        "series_description": _text(ds, "SeriesDescription"),
        "administration": None,
        "acquisition_duration_s": None,
        "calibration_cps_per_mbq": None,
        "decay_correction": None,
        "source_files": [str(f) for f in files],
    }


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"must be a number > 0, got {value!r}", field=name) from exc
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be a finite number > 0, got {value!r}", field=name)
    return v


# ---------------------------------------------------------------------------------- CT
def read_ct(files_or_folder: FilesOrFolder, *, series_uid: str | None = None,
            strict: bool = False) -> Volume:
    """Read a CT series (one slice per file) as Hounsfield units.

    Parameters
    ----------
    files_or_folder : str, Path or iterable of them
        A folder (searched recursively for files with a DICOM preamble), one file, or files.
    series_uid : str, optional
        SeriesInstanceUID to read when there are several.
    strict : bool
        Raise :class:`DicomTagError` for DICOM oddities that are otherwise warned about (empty
        UIDs, missing RescaleSlope/Intercept).

    Returns
    -------
    Volume
        ``(Z, Y, X)`` float32 in HU (stored value × RescaleSlope + RescaleIntercept, per slice),
        modality ``"CT"``, ``acquisition_time`` the earliest AcquisitionDateTime; slices sorted
        along the normal of ImageOrientationPatient. ``meta`` as in ``docs/io-dicom.md``.

    Raises
    ------
    InputError
        Unreadable files, several series without ``series_uid``, missing or contradictory tags.
    """
    files, headers, where = _select(files_or_folder, series_uid)
    return _read_ct(files, headers, where, strict=strict)


def _read_ct(files, headers, where, *, strict: bool) -> Volume:
    _check_modality(headers, files, "CT")
    geom, arr, order, datasets = _stack(headers, files, where, strict=strict,
                                        rescale_required=True, dtype=np.float32)
    files = [files[i] for i in order]
    meta = _meta(datasets[0], files, _uids(datasets, files, strict=strict))
    return Volume(arr, geom, unit="HU", modality="CT",
                  acquisition_time=_earliest_acquisition(datasets, files), meta=meta,
                  history=(f"read {len(files)} CT slices from {where}",))


# ---------------------------------------------------------------------------------- NM
def _rotation_duration_s(ds, file: Path) -> tuple[float | None, tuple[str, str] | None]:
    """Wall-clock acquisition time (s): sum over rotations of frame duration × frames.

    Returns
    -------
    seconds : float or None
        None when the file does not give a usable duration.
    problem : (field, what) or None
        Why ``seconds`` is None: the field at fault (e.g.
        ``RotationInformationSequence[0].ActualFrameDuration``, 0-based item) and what is wrong
        with it, for the message of the caller that needs the duration.
    """
    key = "RotationInformationSequence"
    seq = ds.get(key)
    if seq is None:
        return None, (key, "absent")
    if not len(seq):
        return None, (key, "present but has no items")
    total = 0.0
    for i, item in enumerate(seq):
        fld = f"{key}[{i}].ActualFrameDuration"
        try:
            dur = _float(item, "ActualFrameDuration", file=file)
        except DicomTagError as exc:
            return None, (fld, exc.detail)
        if dur is None:
            return None, (fld, f"absent in item {i} of {len(seq)}")
        if dur <= 0:
            return None, (fld, f"{dur:g} ms (must be > 0)")
        fld = f"{key}[{i}].NumberOfFramesInRotation"
        try:
            n_raw = _get(item, "NumberOfFramesInRotation", file)
        except DicomTagError as exc:
            return None, (fld, exc.detail)
        if n_raw in (None, ""):
            return None, (fld, f"absent in item {i} of {len(seq)}")
        try:
            n = float(n_raw)
        except (TypeError, ValueError):
            return None, (fld, f"not a number: {n_raw!r}")
        if not (math.isfinite(n) and n >= 1 and n == int(n)):
            return None, (fld, f"{n_raw!r} (must be an integer >= 1)")
        total += dur * int(n) / 1000.0
    return total, None


def _nm_multiframe_geometry(ds, file: Path) -> tuple[Geometry, list[int], int]:
    n_frames = dicom_int(_req(ds, "NumberOfFrames", file), file=file, field="NumberOfFrames")
    if n_frames < 1:
        raise DicomTagError(f"must be >= 1, got {n_frames}", file=file, field="NumberOfFrames")
    n_slices = _get(ds, "NumberOfSlices", file)
    if n_slices not in (None, "") and \
            dicom_int(n_slices, file=file, field="NumberOfSlices") != n_frames:
        raise DicomTagError(
            f"NumberOfSlices {n_slices} != NumberOfFrames {n_frames}: several energy "
            "windows, detectors or gates in one object are not supported", file=file,
            field="NumberOfSlices")
    det = ds.get("DetectorInformationSequence")
    item = det[0] if det else None
    ipp = _get(item, "ImagePositionPatient", file) if item is not None else None
    iop = _get(item, "ImageOrientationPatient", file) if item is not None else None
    if not ipp:
        ipp = _get(ds, "ImagePositionPatient", file)
    if not iop:
        iop = _get(ds, "ImageOrientationPatient", file)
    if not ipp:
        raise DicomTagError("required for reconstructed SPECT (first-slice position)",
                            file=file, field="DetectorInformationSequence[0].ImagePositionPatient")
    if not iop:
        raise DicomTagError("required for reconstructed SPECT", file=file,
                            field="DetectorInformationSequence[0].ImageOrientationPatient")
    ps = _req(ds, "PixelSpacing", file)
    dz = _float(ds, "SpacingBetweenSlices", file=file)
    if dz is None:
        dz = _float(ds, "SliceThickness", file=file)
        if dz is not None and dz < 0:
            raise DicomTagError(f"must be > 0 mm, got {dz:g}", file=file, field="SliceThickness")
    if dz is None or dz == 0:
        raise DicomTagError("SpacingBetweenSlices and SliceThickness are both missing or 0; "
                            "the slice spacing is unknown", file=file, field="SpacingBetweenSlices")
    iop_arr = dicom_numbers(iop, file=file, field="ImageOrientationPatient", size=6)
    normal = np.cross(iop_arr[:3], iop_arr[3:])
    # Frames are slices along the normal of the orientation (row x column), frame k at
    # IPP + k * SpacingBetweenSlices * normal; a negative spacing runs the other way.
    ipp_arr = dicom_numbers(ipp, file=file, field="ImagePositionPatient", size=3)
    pos = ipp_arr[None, :] + np.arange(n_frames)[:, None] * dz * normal
    geom, order = geometry_from_slices(pos, iop_arr, ps, _req(ds, "Rows", file),
                                       _req(ds, "Columns", file), file=file,
                                       spacing_between_slices=abs(dz))
    return geom, [int(i) for i in order], n_frames


def read_nm(files_or_folder: FilesOrFolder, *, series_uid: str | None = None,
            calibration_cps_per_mbq: float | None = None,
            acquisition_duration_s: float | None = None, nuclide: str | None = None,
            strict: bool = False) -> Volume:
    """Read reconstructed SPECT (NM) as counts or Bq/mL.

    The usual form is one multi-frame NM object whose frames are slices (ImageType
    ``RECON TOMO``); a series of single-frame NM files with ImagePositionPatient each is also
    read.

    Parameters
    ----------
    files_or_folder : str, Path or iterable of them
    series_uid : str, optional
    calibration_cps_per_mbq : float, optional
        System sensitivity (counts per second per MBq). With counts images (Units ``CNTS`` or
        absent) the result is converted to Bq/mL:
        ``C = counts / (T_acq[s] * cal[cps/MBq]) * 1e6 / V_voxel[mL]``.
    acquisition_duration_s : float, optional
        Wall-clock acquisition time T_acq (s). Default: from RotationInformationSequence,
        ActualFrameDuration (ms) × NumberOfFramesInRotation summed over rotations (detector heads
        acquire simultaneously, so they are not added). The argument wins; a warning is given if
        the two differ by more than 1%.
    nuclide : str, optional
        Overrides the nuclide of RadiopharmaceuticalInformationSequence (e.g. ``"Lu-177"``).
    strict : bool
        Raise instead of warning about DICOM oddities.

    Returns
    -------
    Volume
        ``(Z, Y, X)`` float64, unit ``"counts"`` or ``"Bq/mL"``, modality ``"NM"``.

    Raises
    ------
    UnitError
        Units other than BQML, CNTS or absent.
    InputError
        Calibration of a counts image without a known acquisition duration (the message names
        the RotationInformationSequence field at fault and why); bad arguments; missing or
        contradictory tags.
    """
    cal = _positive(calibration_cps_per_mbq, "calibration_cps_per_mbq")
    t_arg = _positive(acquisition_duration_s, "acquisition_duration_s")
    files, headers, where = _select(files_or_folder, series_uid)
    return _read_nm(files, headers, where, cal=cal, t_arg=t_arg, nuclide=nuclide,
                    strict=strict)


def _read_nm(files, headers, where, *, cal, t_arg, nuclide, strict) -> Volume:
    _check_modality(headers, files, "NM")
    if len(files) == 1:
        f = files[0]
        ds = read_dataset(f)
        geom, order, n_frames = _nm_multiframe_geometry(ds, f)
        slope, intercept = _rescale(ds, f, required=False, strict=strict)
        arr = _pixels(ds, f, n_frames)[order].astype(np.float64) * slope + intercept
        datasets = [ds]
    else:
        geom, arr, order, datasets = _stack(headers, files, where, strict=strict,
                                            rescale_required=False)
        files = [files[i] for i in order]
        ds = datasets[0]
        f = files[0]
    units = _text(ds, "Units").upper()
    if units == "BQML":
        unit = "Bq/mL"
    elif units in ("CNTS", ""):
        unit = "counts"
        if not units:
            log.info("%s: no Units (0054,1001); values taken as counts", f)
    else:
        raise UnitError(f"NM Units {units!r} not supported; accepted: BQML, CNTS (or absent = "
                        "counts)", file=f, field="Units")
    acq = _earliest_acquisition(datasets, files)
    meta = _meta(ds, files, _uids(datasets, files, strict=strict))
    t_file, why = _rotation_duration_s(ds, f)
    t_acq = t_file
    if t_arg is not None:
        if t_file is not None and abs(t_arg - t_file) > 0.01 * t_file:
            warnings.warn(str(InputError(
                f"{t_arg:g} s given, the file says {t_file:g} s (RotationInformationSequence); "
                "the argument is used", file=f, field="acquisition_duration_s")),
                TheradoseWarning, stacklevel=3)
        t_acq = t_arg
    history = [f"read NM ({len(files)} file(s), {geom.shape[0]} slices) from {where}"]
    if cal is not None:
        if unit == "Bq/mL":
            warnings.warn(str(InputError(
                "ignored: the image is already in Bq/mL (Units BQML)", file=f,
                field="calibration_cps_per_mbq")), TheradoseWarning, stacklevel=3)
            cal = None
        else:
            if t_acq is None:
                field, what = why or ("RotationInformationSequence", "absent")
                raise InputError(
                    f"{what}; counts -> Bq/mL needs the acquisition duration (ActualFrameDuration"
                    " x NumberOfFramesInRotation per item); give it as acquisition_duration_s: "
                    "read_nm(acquisition_duration_s=...) in the library, or the "
                    "acquisition_duration_s key of the NIfTI sidecar after converting without "
                    "a calibration (no command-line option sets it)", file=f, field=field)
            v_ml = geom.voxel_volume_ml
            arr = arr / (t_acq * cal) * 1e6 / v_ml
            unit = "Bq/mL"
            history.append(f"counts -> Bq/mL: C = counts / ({t_acq:g} s x {cal:g} cps/MBq) "
                           f"x 1e6 / {v_ml:g} mL")
    if t_acq is None and why is not None and why[0] != "RotationInformationSequence":
        # items that fail to give the duration, not needed here: meta says None, not silently
        _oddity(f"{why[1]}; the acquisition duration is unknown (meta acquisition_duration_s "
                "None)", file=f, field=why[0], strict=strict)
    dc_raw = _text(ds, "DecayCorrection").upper()
    dc = dc_raw or "NONE"
    if dc not in _DECAY_CORRECTIONS:
        raise DicomTagError(f"{dc!r} not supported; accepted: START, ADMIN, NONE", file=f,
                            field="DecayCorrection")
    corrected = _corrected_image(ds, f)
    _check_decy(dc_raw or "<absent>", corrected, file=f, strict=strict)
    admin, half_life = administration_from_dataset(
        ds, file=f, nuclide=nuclide, reference_date=_text(ds, "SeriesDate") or
        _text(ds, "AcquisitionDate") or _text(ds, "StudyDate"), scan_time=acq)
    meta.update(administration=admin, acquisition_duration_s=t_acq,
                calibration_cps_per_mbq=cal, decay_correction=dc, corrected_image=corrected,
                radionuclide_half_life_s=half_life,
                decay_correction_reference_time=_reference_time(
                    dc, ds, f, acq, admin, series_date_kw="SeriesDate"))
    return Volume(arr, geom, unit=unit, modality="NM", acquisition_time=acq, meta=meta,
                  history=tuple(history))


def _corrected_image(ds, file) -> list[str]:
    v = _get(ds, "CorrectedImage", file)
    if v is None or v == "":
        return []
    return [str(c).strip().upper() for c in (v if isinstance(v, Sequence) and
                                             not isinstance(v, str) else [v])]


def _check_decy(dc: str, corrected: list[str], *, file, strict: bool) -> None:
    """DecayCorrection and CorrectedImage must agree on whether the values are decay corrected.

    A DECY in CorrectedImage with DecayCorrection NONE or absent leaves the reference time
    unknown: the values are read as not decay corrected (activity at the acquisition), with a
    warning (an error under ``strict``); the opposite (START/ADMIN without DECY) is the same
    oddity, and DecayCorrection is then honoured.
    """
    if dc in ("NONE", "<absent>") and "DECY" in corrected:
        _oddity(f"CorrectedImage {corrected} lists DECY but DecayCorrection is {dc}: the decay "
                "correction's reference time is unknown and the values are read as not decay "
                "corrected (activity at the acquisition); set DecayCorrection (START or ADMIN) "
                "if they are", file=file, field="CorrectedImage", strict=strict)
    elif dc in ("START", "ADMIN") and "DECY" not in corrected:
        _oddity(f"DecayCorrection is {dc} but CorrectedImage {corrected} lacks DECY; "
                "DecayCorrection is honoured", file=file, field="CorrectedImage", strict=strict)


def _reference_time(dc: str, ds, file, acq: datetime | None, admin, *,
                    series_date_kw: str) -> datetime | None:
    """Time the voxel values refer to (QIBA): series start, injection, or acquisition start."""
    if dc == "ADMIN":
        return admin.injection_time if admin is not None else None
    if dc == "NONE":
        return acq
    series = _pair_time(ds, series_date_kw, "SeriesTime", file)
    if series is not None and (acq is None or series <= acq):
        return series
    if series is not None:
        log.info("%s: SeriesTime after the earliest AcquisitionTime (post-processed series?); "
                 "the earliest AcquisitionTime is the decay-correction reference (QIBA)", file)
    return acq


# ---------------------------------------------------------------------------------- PT
def read_pt(files_or_folder: FilesOrFolder, *, series_uid: str | None = None,
            nuclide: str | None = None, strict: bool = False) -> Volume:
    """Read a static PET series (one slice per file) as Bq/mL.

    Parameters
    ----------
    files_or_folder : str, Path or iterable of them
    series_uid : str, optional
    nuclide : str, optional
        Overrides the nuclide of RadiopharmaceuticalInformationSequence.
    strict : bool
        Raise instead of warning about DICOM oddities.

    Returns
    -------
    Volume
        ``(Z, Y, X)`` float64 in Bq/mL (Units BQML; stored value × per-slice RescaleSlope +
        RescaleIntercept), or g/mL for Units GML (an SUV image), modality ``"PT"``.
        ``meta["decay_correction"]`` is DecayCorrection (START/ADMIN/NONE) and
        ``meta["decay_correction_reference_time"]`` the time the values are decay corrected to
        (QIBA rule, see docs/io-dicom.md).

    Raises
    ------
    UnitError
        Units CNTS or other non-quantitative units.
    DicomTagError
        Dynamic or gated series, unknown DecayCorrection, missing or contradictory tags.
    """
    files, headers, where = _select(files_or_folder, series_uid)
    return _read_pt(files, headers, where, nuclide=nuclide, strict=strict)


def _read_pt(files, headers, where, *, nuclide, strict) -> Volume:
    _check_modality(headers, files, "PT")
    h0, f0 = headers[0], files[0]
    series_type = h0.get("SeriesType")
    kind = str(series_type[0]).upper() if series_type else ""
    n_time = _get(h0, "NumberOfTimeSlices", f0)
    if kind in ("DYNAMIC", "GATED") or (n_time not in (None, "") and
                                            dicom_int(n_time, file=f0,
                                                      field="NumberOfTimeSlices") > 1):
        raise DicomTagError(f"dynamic or gated PET ({kind or f'{n_time} time slices'}) is "
                            "not supported; split it into static frames", file=f0,
                            field="SeriesType")
    units = _text(h0, "Units").upper()
    if units == "BQML":
        unit = "Bq/mL"
    elif units == "GML":
        unit = "g/mL"
    else:
        hint = " (uncalibrated counts)" if units == "CNTS" else ""
        raise UnitError(f"PT Units {units or '<absent>'!r}{hint} not supported; accepted: BQML "
                        "(Bq/mL), GML (SUV, g/mL)", file=f0, field="Units")
    _same(headers, files, "Units", numeric=False)
    dc = _text(h0, "DecayCorrection").upper()
    if dc not in _DECAY_CORRECTIONS:
        raise DicomTagError(f"{dc or '<absent>'!r} not supported; accepted: START, ADMIN, NONE",
                            file=f0, field="DecayCorrection")
    _same(headers, files, "DecayCorrection", numeric=False)
    corrected = _corrected_image(h0, f0)
    _check_decy(dc, corrected, file=f0, strict=strict)
    geom, arr, order, datasets = _stack(headers, files, where, strict=strict,
                                        rescale_required=True)
    files = [files[i] for i in order]
    ds = datasets[0]
    acq = _earliest_acquisition(datasets, files)
    meta = _meta(ds, files, _uids(datasets, files, strict=strict))
    dur_ms = _float(ds, "ActualFrameDuration", file=files[0])
    admin, half_life = administration_from_dataset(
        ds, file=files[0], nuclide=nuclide, reference_date=_text(ds, "SeriesDate") or
        _text(ds, "AcquisitionDate"), scan_time=acq)
    meta.update(administration=admin,
                acquisition_duration_s=None if dur_ms is None else dur_ms / 1000.0,
                decay_correction=dc, radionuclide_half_life_s=half_life,
                corrected_image=corrected,
                decay_correction_reference_time=_reference_time(
                    dc, ds, files[0], acq, admin, series_date_kw="SeriesDate"))
    return Volume(arr, geom, unit=unit, modality="PT", acquisition_time=acq, meta=meta,
                  history=(f"read {len(files)} PT slices from {where}",))


# ---------------------------------------------------------------------------------- dispatch
def read_dicom_series(files_or_folder: FilesOrFolder, *, series_uid: str | None = None,
                      calibration_cps_per_mbq: float | None = None,
                      acquisition_duration_s: float | None = None, nuclide: str | None = None,
                      strict: bool = False) -> Volume:
    """Read one CT, NM or PT series, dispatching on Modality.

    Parameters
    ----------
    files_or_folder : str, Path or iterable of them
        A folder (searched recursively), one file, or a list of files.
    series_uid : str, optional
        Needed when the files hold several series (the error lists them).
    calibration_cps_per_mbq, acquisition_duration_s : float, optional
        NM only, see :func:`read_nm`.
    nuclide : str, optional
        NM and PT: overrides the nuclide in the file.
    strict : bool
        Raise instead of warning about DICOM oddities.

    Returns
    -------
    Volume

    Raises
    ------
    DicomTagError
        Unsupported Modality (RT Dose, RTSTRUCT and SEG have their own readers).
    InputError
        NM-only arguments given for CT or PT, and everything the modality readers raise.
    """
    cal = _positive(calibration_cps_per_mbq, "calibration_cps_per_mbq")
    t_arg = _positive(acquisition_duration_s, "acquisition_duration_s")
    files, headers, where = _select(files_or_folder, series_uid)
    modality = _text(headers[0], "Modality")
    if modality != "NM":
        for name, value in (("calibration_cps_per_mbq", cal),
                            ("acquisition_duration_s", t_arg)):
            if value is not None:
                raise InputError(f"applies to NM only, the series is {modality or '?'}",
                                 file=where, field=name)
    if modality == "CT":
        if nuclide is not None:
            raise InputError("applies to NM and PT only, the series is CT", file=where,
                             field="nuclide")
        return _read_ct(files, headers, where, strict=strict)
    if modality == "NM":
        return _read_nm(files, headers, where, cal=cal, t_arg=t_arg, nuclide=nuclide,
                        strict=strict)
    if modality == "PT":
        return _read_pt(files, headers, where, nuclide=nuclide, strict=strict)
    raise DicomTagError(f"{modality or '<empty>'!r} not supported here; accepted: CT, NM, PT "
                        "(RTDOSE, RTSTRUCT and SEG have their own readers)", file=files[0],
                        field="Modality")
