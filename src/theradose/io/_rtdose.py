"""DICOM RT Dose: write absorbed-dose maps as multi-frame RTDOSE, read them back as Volumes.

Conventions (see docs/io-rt.md):

* pixels are unsigned 32-bit integers; ``DoseGridScaling`` = max dose / (2**32 - 1), rounded up
  to 10 significant digits so that it fits DICOM's 16-character DS and no pixel overflows; each
  voxel is then within ``DoseGridScaling / 2`` (≈ 1.2e-10 × max dose) of the written value;
* frames are stored in increasing order along the slice normal (row × column direction), with a
  relative ``GridFrameOffsetVector`` starting at 0; a left-handed grid (slice axis opposite to the
  normal) is written with its frames reversed, which is the same image in physical space;
* ``DoseSummationType`` defaults to ``RECORD`` (a dose delivered, computed after the fact from
  post-therapy imaging) and no RT Plan is referenced; ``PLAN`` is accepted for doses predicted
  before therapy.
"""

from __future__ import annotations

import logging
import warnings
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import numpy as np

from theradose.errors import (
    DicomTagError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
    UnitError,
)
from theradose.io._dicom_common import read_dataset, require, slice_axes
from theradose.io._rt_common import Reference, as_reference, format_ds, new_dataset, save_dataset
from theradose.io._uids import new_uid
from theradose.units import parse_unit
from theradose.volume import Geometry, Volume, resample

__all__ = ["read_rtdose", "write_rtdose"]

log = logging.getLogger("theradose")

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
_UINT32_MAX = 2**32 - 1
_DOSE_TYPES = ("PHYSICAL", "EFFECTIVE")
_SUMMATION_TYPES = ("RECORD", "PLAN")


def _grid_scaling(max_gy: float) -> tuple[float, str]:
    """DoseGridScaling for a maximum dose: value and its DS string (≤ 16 chars, rounded up)."""
    if max_gy <= 0:
        return 1.0, "1.0"
    exact = Decimal(repr(max_gy)) / Decimal(_UINT32_MAX)
    # 10 significant digits, rounded up so that max / scaling <= 2**32 - 1
    q = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 9), rounding=ROUND_CEILING)
    text = f"{q:.9E}".replace("E-0", "E-").replace("E+0", "E+")
    return float(text), text


def write_rtdose(dose: Volume, path: str | Path, *, reference=None, grid: Geometry | None = None,
                 dose_type: str = "PHYSICAL", dose_summation_type: str = "RECORD",
                 sigma_as_separate_file: bool = False, comment: str = "",
                 series_description: str = "theradose absorbed dose",
                 overwrite: bool = False) -> Path:
    """Write an absorbed-dose map as a DICOM RT Dose file (multi-frame, RT Dose Storage).

    Parameters
    ----------
    dose : Volume
        Absorbed dose, ``(Z, Y, X)``, unit ``Gy`` or ``mGy`` (stored in Gy), all values ≥ 0.
    path : str or Path
        Output file.
    reference : Volume, folder, list of datasets, or None
        The image series (usually the CT) whose patient, study and frame of reference the dose
        belongs to (see :func:`theradose.io._rt_common.as_reference`). Without it a new
        StudyInstanceUID and FrameOfReferenceUID are generated (with a warning): the dose then
        does not overlay on the patient's images in other software.
    grid : Geometry, optional
        Grid to write on; the dose is resampled onto it conserving the mean (volume-weighted
        mean dose over each target voxel, :func:`theradose.volume.resample`).
    dose_type : {'PHYSICAL', 'EFFECTIVE'}
        ``EFFECTIVE`` for biologically weighted doses (RBE-, BED- or EQD2-like).
    dose_summation_type : {'RECORD', 'PLAN'}
        ``RECORD`` (default): dose delivered, computed from post-therapy data. ``PLAN``: a dose
        predicted before therapy. See docs/io-rt.md for why and what it implies.
    sigma_as_separate_file : bool
        Also write ``dose.sigma`` (standard uncertainty, k = 1) to ``<stem>_sigma.dcm`` next to
        ``path``, same grid and frame of reference, as a second RT Dose series whose
        SeriesDescription and DoseComment say it is an uncertainty.
    comment : str
        DoseComment (LO, up to 64 characters).
    series_description : str
        SeriesDescription.
    overwrite : bool
        Replace existing output files.

    Returns
    -------
    Path
        The dose file (the σ file, when written, is ``<stem>_sigma.dcm`` beside it).

    Raises
    ------
    UnitError
        ``dose.unit`` is not an absorbed dose.
    InputError
        Negative or non-finite doses, unknown ``dose_type`` / ``dose_summation_type``,
        ``sigma_as_separate_file`` without ``dose.sigma``.
    OutputExistsError
        ``path`` (or the σ file) exists and ``overwrite`` is False.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from theradose.volume import Volume
    >>> d = Volume.from_array(np.full((2, 3, 4), 1.5), spacing_mm=(4, 4, 4), unit="Gy")
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "dose.dcm"
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # no reference CT in this example
    ...     path = write_rtdose(d, out)
    >>> back = read_rtdose(path)  # within DoseGridScaling / 2 of the written values
    >>> round(float(back.array.max()), 6), back.unit, back.meta["dose_summation_type"]
    (1.5, 'Gy', 'RECORD')
    """
    if not isinstance(dose, Volume):
        raise InputError(f"must be a Volume, got {type(dose).__name__}", field="dose")
    if parse_unit(dose.unit).dimension != "absorbed_dose":
        raise UnitError(f"unit {dose.unit!r} is not an absorbed dose; accepted: Gy, mGy",
                        field="dose.unit")
    dose_type = str(dose_type).upper()
    if dose_type not in _DOSE_TYPES:
        raise InputError(f"got {dose_type!r}; accepted: {', '.join(_DOSE_TYPES)}",
                         field="dose_type")
    dose_summation_type = str(dose_summation_type).upper()
    if dose_summation_type not in _SUMMATION_TYPES:
        raise InputError(f"got {dose_summation_type!r}; accepted without an RT Plan: "
                         f"{', '.join(_SUMMATION_TYPES)}", field="dose_summation_type")
    if sigma_as_separate_file and dose.sigma is None:
        raise InputError("is True but dose.sigma is None", field="sigma_as_separate_file")
    if len(comment) > 64:
        raise InputError(f"DoseComment holds at most 64 characters, got {len(comment)}",
                         field="comment")
    gy = dose.to_unit("Gy")
    if grid is not None:
        gy = resample(gy, grid)
    arr = np.asarray(gy.array, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("contains NaN or infinite values", field="dose.array")
    if arr.size and arr.min() < 0:
        raise InputError(f"absorbed dose must be >= 0 Gy, minimum is {arr.min():.6g} Gy",
                         field="dose.array")
    ref = as_reference(reference) if reference is not None else None
    if ref is None:
        warnings.warn("write_rtdose without reference: new StudyInstanceUID and "
                      "FrameOfReferenceUID; the dose will not register with the patient's images",
                      TheradoseWarning, stacklevel=2)
    out = Path(path)
    sigma_path = out.with_name(f"{out.stem}_sigma{out.suffix or '.dcm'}")
    for target in (out, sigma_path) if sigma_as_separate_file else (out,):
        if target.exists() and not overwrite:  # checked before anything is written
            raise OutputExistsError(f"{target}: output exists; pass overwrite=True (CLI: "
                                    "--overwrite) or choose another path")

    ds = _build(arr, gy.geometry, ref, dose_type=dose_type, summation=dose_summation_type,
                comment=comment, series_description=series_description)
    if sigma_as_separate_file:
        sig = gy.sigma.astype(np.float64)
        if np.any(~np.isfinite(sig)) or np.any(sig < 0):
            raise InputError("sigma must be finite and >= 0", field="dose.sigma")
        sds = _build(sig, gy.geometry, ref, dose_type=dose_type, summation=dose_summation_type,
                     comment="standard uncertainty (k=1) of the absorbed dose",
                     series_description=f"{series_description} sigma (k=1)"[:64],
                     study_uid=ds.StudyInstanceUID, for_uid=ds.FrameOfReferenceUID)
        save_dataset(sds, sigma_path, overwrite=overwrite)
    save_dataset(ds, out, overwrite=overwrite)
    log.info("wrote RT Dose %s (%s, max %.4g Gy, scaling %s)", out, gy.shape, arr.max(initial=0),
             ds.DoseGridScaling)
    return out


def _build(arr: np.ndarray, geom: Geometry, ref: Reference | None, *, dose_type: str,
           summation: str, comment: str, series_description: str, study_uid: str | None = None,
           for_uid: str | None = None):
    ds = new_dataset(RT_DOSE_STORAGE, "RTDOSE", ref, series_description=series_description)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    direction = geom.direction
    row, col, slc = direction[:, 0], direction[:, 1], direction[:, 2]
    normal = np.cross(row, col)
    origin = np.asarray(geom.origin_mm, dtype=float)
    if slc @ normal < 0:  # left-handed: store frames along +normal, same physical image
        arr = arr[::-1]
        origin = origin + slc * geom.spacing_mm[2] * (geom.shape[0] - 1)
    nz, ny, nx = arr.shape
    ds.FrameOfReferenceUID = for_uid or (ref.frame_of_reference_uid if ref else None) or \
        new_uid()
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = format_ds(origin)
    ds.ImageOrientationPatient = format_ds(np.concatenate([row, col]))
    ds.PixelSpacing = format_ds([geom.spacing_mm[1], geom.spacing_mm[0]])
    ds.SliceThickness = format_ds([geom.spacing_mm[2]])[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = 0x3004000C
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = dose_type
    ds.DoseSummationType = summation
    if comment:
        ds.DoseComment = comment
    ds.GridFrameOffsetVector = format_ds(np.arange(nz) * geom.spacing_mm[2])
    scaling, text = _grid_scaling(float(arr.max(initial=0.0)))
    ds.DoseGridScaling = text
    pix = np.divide(arr, scaling, dtype=np.float64)  # in place below: grids can be 50 M voxels
    np.rint(pix, out=pix)
    np.clip(pix, 0, _UINT32_MAX, out=pix)
    ds.PixelData = pix.astype("<u4").tobytes()
    return ds


def read_rtdose(path: str | Path, *, sigma_path: str | Path | None = None) -> Volume:
    """Read a DICOM RT Dose file (grid dose) as a Volume in Gy.

    Parameters
    ----------
    path : str or Path
        RT Dose file (single- or multi-frame, 16- or 32-bit, relative or absolute
        GridFrameOffsetVector, any orientation).
    sigma_path : str or Path, optional
        RT Dose file with the standard uncertainty on the same grid (as written by
        ``write_rtdose(..., sigma_as_separate_file=True)``); attached as ``sigma``.

    Returns
    -------
    Volume
        ``unit='Gy'``, ``modality='RTDOSE'``; ``meta`` holds ``frame_of_reference_uid``,
        ``study_instance_uid``, ``series_instance_uid``, ``sop_instance_uid``, ``dose_type``,
        ``dose_summation_type``, ``dose_grid_scaling``, ``patient_id``, ``patient_name``,
        ``dose_comment``. Frames with decreasing offsets give a grid whose slice axis points
        against the row × column normal.

    Raises
    ------
    UnreadableFileError
        Missing, empty or non-DICOM file.
    DicomTagError
        Not an RT Dose, missing DoseGridScaling/pixel data, GridFrameOffsetVector inconsistent
        with NumberOfFrames or not evenly spaced.
    UnitError
        DoseUnits other than GY (RELATIVE doses cannot be converted to Gy).
    GeometryMismatchError
        ``sigma_path`` is on another grid.
    """
    p = Path(path)
    ds = read_dataset(p)
    if str(ds.get("Modality", "")).upper() != "RTDOSE" and \
            str(ds.get("SOPClassUID", "")) != RT_DOSE_STORAGE:
        raise DicomTagError(f"not an RT Dose (Modality {ds.get('Modality', '')!r}, expected "
                            "'RTDOSE')", file=p, field="Modality")
    units = str(require(ds, "DoseUnits", file=p)).upper()
    if units != "GY":
        raise UnitError(f"got {units!r}; only GY can be read as absorbed dose (RELATIVE has no "
                        "reference value)", file=p, field="DoseUnits")
    if "PixelData" not in ds:
        raise DicomTagError("no Pixel Data: DVH-only RT Dose files have no dose grid", file=p,
                            field="PixelData")
    scaling = require(ds, "DoseGridScaling", file=p)
    try:
        scaling = float(scaling)
    except (TypeError, ValueError) as exc:
        raise DicomTagError(f"not a number: {scaling!r}", file=p,
                            field="DoseGridScaling") from exc
    if not np.isfinite(scaling) or scaling <= 0:
        raise DicomTagError(f"must be > 0, got {scaling}", file=p, field="DoseGridScaling")
    geom = _geometry(ds, p)
    try:
        pix = ds.pixel_array
    except Exception as exc:
        raise DicomTagError(f"cannot decode pixel data ({type(exc).__name__}: {exc})", file=p,
                            field="PixelData") from exc
    pix = np.asarray(pix)
    if pix.size != int(np.prod(geom.shape)):
        raise DicomTagError(f"pixel data has {pix.size} values, expected {geom.shape} from "
                            "NumberOfFrames, Rows and Columns", file=p, field="PixelData")
    arr = pix.reshape(geom.shape).astype(np.float64) * scaling
    sigma = None
    if sigma_path is not None:
        s = read_rtdose(sigma_path)
        s.geometry.require_same(geom, what="dose and sigma", file=str(sigma_path))
        sigma = s.array
    meta = {
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "dose_type": str(ds.get("DoseType", "")),
        "dose_summation_type": str(ds.get("DoseSummationType", "")),
        "dose_grid_scaling": scaling,
        "patient_id": str(ds.get("PatientID", "")),
        "patient_name": str(ds.get("PatientName", "")),
        "dose_comment": str(ds.get("DoseComment", "")),
        "source": str(p),
    }
    return Volume(arr, geom, unit="Gy", modality="RTDOSE", sigma=sigma, meta=meta,
                  history=(f"read RT Dose {p.name}",))


def _offsets(ds, p: Path) -> np.ndarray:
    """Frame positions along the slice normal relative to ImagePositionPatient (mm)."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    gfov = ds.get("GridFrameOffsetVector")
    if gfov is None or (not isinstance(gfov, float | int) and len(gfov) == 0):
        if n > 1:
            raise DicomTagError(f"missing, but NumberOfFrames is {n}", file=p,
                                field="GridFrameOffsetVector")
        return np.zeros(1)
    off = np.atleast_1d(np.asarray(gfov, dtype=float))
    if off.size != n:
        raise DicomTagError(f"has {off.size} values but NumberOfFrames is {n}", file=p,
                            field="GridFrameOffsetVector")
    if off[0] != 0:
        # Absolute z positions (PS3.3 C.8.8.3.2 case b): first value = IPP z, axial only
        iop = np.asarray(require(ds, "ImageOrientationPatient", file=p), dtype=float)
        z0 = float(require(ds, "ImagePositionPatient", file=p)[2])
        if not np.allclose(iop, [1, 0, 0, 0, 1, 0], atol=1e-4) or abs(off[0] - z0) > 1e-3:
            raise DicomTagError(
                f"first value {off[0]:g} is neither 0 (relative offsets) nor the "
                f"ImagePositionPatient z {z0:g} of an axial grid (absolute positions)", file=p,
                field="GridFrameOffsetVector")
        off = off - z0
    return off


def _geometry(ds, p: Path) -> Geometry:
    ipp = np.asarray(require(ds, "ImagePositionPatient", file=p), dtype=float)
    iop = np.asarray(require(ds, "ImageOrientationPatient", file=p), dtype=float)
    ps = np.asarray(require(ds, "PixelSpacing", file=p), dtype=float)
    rows, cols = int(require(ds, "Rows", file=p)), int(require(ds, "Columns", file=p))
    if ipp.size != 3 or iop.size != 6 or ps.size != 2 or np.any(ps <= 0):
        raise DicomTagError(f"malformed plane geometry: IPP {ipp.tolist()}, IOP {iop.tolist()},"
                            f" PixelSpacing {ps.tolist()}", file=p, field="ImagePositionPatient")
    row, col, normal = slice_axes(iop, file=p)
    off = _offsets(ds, p)
    if off.size > 1:
        steps = np.diff(off)
        dz = float(np.mean(steps))
        if np.any(steps * np.sign(dz) <= 0) or np.max(np.abs(steps - dz)) > 0.01 * abs(dz):
            raise DicomTagError(f"offsets must vary monotonically with even spacing, got "
                                f"steps {steps.min():.4g}..{steps.max():.4g} mm", file=p,
                                field="GridFrameOffsetVector")
    else:
        dz = float(ds.get("SliceThickness") or 1.0) or 1.0
    slice_dir = normal if dz > 0 else -normal
    origin = ipp + normal * off[0]
    return Geometry((off.size, rows, cols), (float(ps[1]), float(ps[0]), abs(dz)),
                    tuple(origin), np.column_stack([row, col, slice_dir]))

