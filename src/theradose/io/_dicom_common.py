"""Shared DICOM helpers: safe reading, required tags, date/time parsing, slice geometry."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from theradose.errors import DicomTagError, UnreadableFileError
from theradose.volume import Geometry

__all__ = [
    "dicom_datetime",
    "dicom_int",
    "dicom_numbers",
    "format_dicom_datetime",
    "geometry_from_slices",
    "is_dicom_file",
    "list_dicom_files",
    "read_dataset",
    "require",
    "slice_axes",
]


def read_dataset(path: str | Path, *, stop_before_pixels: bool = False):
    """Read one DICOM file; missing, empty or non-DICOM files raise :class:`UnreadableFileError`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    if not p.is_file():
        raise UnreadableFileError("file does not exist", file=p)
    if p.stat().st_size == 0:
        raise UnreadableFileError("file is empty (0 bytes)", file=p)
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise UnreadableFileError(f"not a DICOM file ({exc})", file=p) from exc
    except Exception as exc:  # truncated or corrupt files fail deep inside pydicom
        raise UnreadableFileError(f"corrupt DICOM file ({type(exc).__name__}: {exc})",
                                  file=p) from exc
    _check_complete(ds, p)
    return ds


def _check_complete(ds, p: Path) -> None:
    """Detect truncation, which pydicom reads silently (the last value comes back shortened)."""
    from pydicom.dataelem import RawDataElement

    if not len(ds):
        return
    tag = max(ds.keys())
    raw = ds.get_item(tag)
    if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF or raw.value_tell is None:
        return
    end, size = raw.value_tell + raw.length, p.stat().st_size
    # The last element must fit in the file; 2-7 bytes left over are a cut element header.
    if end > size or 2 <= size - end < 8:
        raise UnreadableFileError(f"truncated DICOM file: {size} bytes, element {tag} needs "
                                  f"{max(end, size + 1)}", file=p)


def is_dicom_file(path: Path) -> bool:
    """True if ``path`` starts with a DICOM preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def list_dicom_files(folder: str | Path) -> list[Path]:
    """All DICOM files (by preamble) below ``folder``, sorted by path.

    The folder is walked by :func:`theradose.io.study_files`: symbolic links followed, hidden
    files and folders left out, a file reached twice read once.

    Files without the preamble are skipped, except empty ones: a 0-byte file (not hidden) is
    most often a slice lost in a copy, and skipping it would silently drop that slice (at the
    end of the stack, without even a gap), so it raises :class:`UnreadableFileError`.
    """
    from theradose.io._walk import study_files

    root = Path(folder)
    if not root.is_dir():
        raise UnreadableFileError("folder does not exist", file=root)
    out = []
    for p in study_files(root)[0]:  # links followed, hidden entries left out, each file once
        if p.stat().st_size == 0:
            raise UnreadableFileError("file is empty (0 bytes: no DICOM header, no PixelData); "
                                      "a slice lost in a copy? restore or remove it", file=p)
        if is_dicom_file(p):
            out.append(p)
    return out


def require(ds, keyword: str, *, file: str | Path | None = None, what: str = ""):
    """Value of a DICOM attribute that must be present and non-empty.

    Raises
    ------
    DicomTagError
        Naming the file and the keyword.

    """
    value = getattr(ds, keyword, None)
    if value is None or (isinstance(value, str | bytes | Sequence) and len(value) == 0):
        extra = f" ({what})" if what else ""
        raise DicomTagError(f"required attribute is missing or empty{extra}", file=file,
                            field=keyword)
    return value


def dicom_numbers(value, *, file=None, field: str, size: int | None = None) -> np.ndarray:
    """A DICOM DS/IS value (single or multi-valued) as finite floats, or a DicomTagError.

    Every ``float()`` of a header value goes through here (or :func:`dicom_int`), so a
    malformed value (``abc``, ``1/abc``, NaN) names the file and the field instead of ending
    in a bare ``ValueError``.

    Parameters
    ----------
    value : str, number or sequence of them
    file, field : where the value came from (for the message).
    size : int, optional
        Required number of values (e.g. 6 for ImageOrientationPatient).

    """
    try:
        arr = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DicomTagError(f"not a number: {value!r}", file=file, field=field) from exc
    if size is not None and arr.size != size:
        raise DicomTagError(f"needs {size} values, got {arr.size}", file=file, field=field)
    if not np.all(np.isfinite(arr)):
        raise DicomTagError(f"not finite: {value!r}", file=file, field=field)
    return arr


def dicom_int(value, *, file=None, field: str) -> int:
    """A DICOM IS value as an int, or a DicomTagError naming the file and the field."""
    try:
        f = float(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise DicomTagError(f"not an integer: {value!r}", file=file, field=field) from exc
    if not (f == f and abs(f) != float("inf")) or f != int(f):
        raise DicomTagError(f"not an integer: {value!r}", file=file, field=field)
    return int(f)


def dicom_datetime(date: str | None, time: str | None, *, file=None, field: str = "") -> datetime:
    """Combine DICOM DA ('YYYYMMDD') and TM ('HHMMSS.FFFFFF', parts optional) values.

    A DT value ('YYYYMMDDHHMMSS.FFFFFF', optionally with a UTC offset, which is dropped because
    DICOM study times are local) may be passed as ``date`` with ``time=None``.
    """
    try:
        if time is None:
            s = str(date).strip()
            for sep in ("+", "-"):
                if sep in s[8:]:
                    s = s[: 8 + s[8:].index(sep)]
            date, time = s[:8], s[8:]
        d = str(date).strip()
        t = str(time or "").strip().replace(":", "")
        if len(d) != 8 or not d.isdigit():
            raise ValueError(f"date {d!r}")
        frac = 0
        if "." in t:
            t, f = t.split(".", 1)
            frac = int((f + "000000")[:6]) if f else 0
        t = (t + "000000")[:6]
        return datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(t[:2]), int(t[2:4]),
                        int(t[4:6]), frac)
    except (ValueError, TypeError) as exc:
        raise DicomTagError(f"invalid DICOM date/time {date!r} {time!r} ({exc})", file=file,
                            field=field) from exc


def format_dicom_datetime(t: datetime) -> tuple[str, str]:
    """``(DA, TM)`` strings of a datetime, microseconds kept."""
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S.%f")


def slice_axes(orientation, *, file=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and normal unit vectors from ImageOrientationPatient (checked orthonormal)."""
    iop = dicom_numbers(orientation, file=file, field="ImageOrientationPatient", size=6)
    row, col = iop[:3], iop[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or \
            abs(row @ col) > 1e-3:
        raise DicomTagError(f"not orthonormal: {iop.tolist()}", file=file,
                            field="ImageOrientationPatient")
    return row, col, np.cross(row, col)


def _slice_labels(names: Sequence[str] | None, n: int) -> list[str]:
    if names is None:
        return [f"slice {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} slices")
    return [str(x) for x in names]


def geometry_from_slices(positions: Iterable, orientation, pixel_spacing, n_rows: int,
                         n_cols: int, *, file=None, spacing_between_slices: float | None = None,
                         names: Sequence[str] | None = None) -> tuple[Geometry, np.ndarray]:
    """Grid of a stack of parallel slices from ImagePositionPatient / ImageOrientationPatient.

    Parameters
    ----------
    positions : iterable of 3 floats
        ImagePositionPatient of each slice (any order).
    orientation : 6 floats
        ImageOrientationPatient (row direction cosines, then column direction cosines).
    pixel_spacing : 2 floats
        PixelSpacing: (row spacing = between rows, i.e. along columns; column spacing).
    n_rows, n_cols : int
    spacing_between_slices : float, optional
        Used when there is a single slice (1 mm when None); must then be finite and > 0.
    names : sequence of str, optional
        A label per slice, in the order of ``positions`` (file names): a duplicate position or
        an uneven gap names the two slices on either side. Default: ``slice <index>``.

    Returns
    -------
    geometry : Geometry
    order : ndarray of int
        Indices that sort the given slices along the slice normal.

    Raises
    ------
    DicomTagError
        Non-orthonormal orientation, duplicate positions, uneven slice spacing (> 1%), a
        PixelSpacing or single-slice spacing that is not finite and > 0.

    """
    for kw, n in (("Rows", n_rows), ("Columns", n_cols)):
        if dicom_int(n, file=file, field=kw) < 1:
            raise DicomTagError(f"must be >= 1, got {n} (an image needs at least one pixel)",
                                file=file, field=kw)
    row, col, normal = slice_axes(orientation, file=file)
    pos = dicom_numbers(list(positions), file=file, field="ImagePositionPatient")
    if pos.size % 3 or not pos.size:
        raise DicomTagError(f"needs 3 values per slice, got {pos.size}", file=file,
                            field="ImagePositionPatient")
    pos = pos.reshape(-1, 3)
    proj = pos @ normal
    order = np.argsort(proj, kind="stable")
    proj_sorted = proj[order]
    ps = dicom_numbers(pixel_spacing, file=file, field="PixelSpacing")
    if ps.size != 2 or not np.all(np.isfinite(ps)) or np.any(ps <= 0):
        raise DicomTagError(f"must be 2 positive numbers, got {ps.tolist()}", file=file,
                            field="PixelSpacing")
    if pos.shape[0] > 1:
        gaps = np.diff(proj_sorted)
        label = _slice_labels(names, pos.shape[0])

        def pair(k: int) -> str:  # the slices on either side of gap k (in sorted order)
            return f"{label[int(order[k])]} and {label[int(order[k + 1])]}"

        dup = np.nonzero(gaps < 1e-3)[0]
        if dup.size:
            k = int(dup[0])
            more = f"; {dup.size} such pairs" if dup.size > 1 else ""
            raise DicomTagError(f"two slices share the same position: {pair(k)} at "
                                f"{proj_sorted[k]:.3f} mm along the slice normal{more} "
                                "(duplicate or mixed series)", file=file,
                                field="ImagePositionPatient")
        dz = float(np.median(gaps))
        off = np.abs(gaps - dz)
        if np.max(off) > 0.01 * dz:
            k = int(np.argmax(off))
            n_bad = int(np.count_nonzero(off > 0.01 * dz))
            raise DicomTagError(f"slice spacing is uneven ({gaps.min():.3f}-{gaps.max():.3f} mm):"
                                f" {gaps[k]:.3f} mm between {pair(k)}, {dz:.3f} mm (median) "
                                f"elsewhere, {n_bad} of {gaps.size} gaps off by > 1%; missing "
                                "slices?", file=file, field="ImagePositionPatient")
    else:
        dz = 1.0 if spacing_between_slices is None else float(spacing_between_slices)
        if not (np.isfinite(dz) and dz > 0):
            raise DicomTagError(f"slice spacing must be a finite number > 0 mm, got "
                                f"{spacing_between_slices!r}", file=file,
                                field="SliceThickness")
    direction = np.column_stack([row, col, normal])
    geom = Geometry((pos.shape[0], int(n_rows), int(n_cols)),
                    (float(ps[1]), float(ps[0]), dz), tuple(pos[order[0]]), direction)
    return geom, order
