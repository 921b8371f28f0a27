"""NIfTI images with a JSON sidecar, and NIfTI label maps with a name table.

NIfTI stores values and the voxel grid; what NIfTI cannot hold (unit, modality, acquisition time,
the administration, calibration, processing history) goes into a JSON *sidecar* next to the image:
``ct.nii.gz`` ↔ ``ct.json``. The schema is documented field by field in ``docs/io-nifti-study.md``.

Geometry: SimpleITK converts between the LPS physical space of theradose (and ITK, DICOM) and
the RAS space of the NIfTI header (x and y negated). The NIfTI header holds the grid in float32;
the sidecar keeps it in full precision (``"geometry"``), and reading restores it when it agrees
with the header (within float32 rounding), so a write/read round trip is exact.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import (
    GeometryMismatchError,
    InputError,
    TheradoseWarning,
    UnreadableFileError,
)
from theradose.io._administration import Administration
from theradose.io._outputs import atomic_path, prepare_output
from theradose.nuclides import resolve_name
from theradose.units import parse_unit
from theradose.volume import Geometry, LabelMap, Volume

__all__ = [
    "MODALITIES",
    "SIDECAR_KEYS",
    "read_labelmap",
    "read_nifti",
    "read_sidecar",
    "sidecar_path",
    "write_labelmap",
    "write_nifti",
]

log = logging.getLogger("theradose")

#: Modalities accepted in the sidecar's ``"modality"`` (DICOM spelling; ``OT`` = derived image).
MODALITIES: tuple[str, ...] = ("CT", "NM", "PT", "MR", "OT", "RTDOSE", "SEG")

#: Sidecar keys with a defined meaning (everything else is carried through ``Volume.meta``).
SIDECAR_KEYS: tuple[str, ...] = (
    "modality", "unit", "acquisition_time", "administration", "nuclide", "frame_duration_s",
    "acquisition_duration_s", "calibration_cps_per_mbq", "patient_weight_kg", "history",
    "theradose_version", "geometry", "sigma_file", "labels", "decay_correction",
    "decay_correction_reference_time", "radionuclide_half_life_s",
)

#: Sidecar keys copied to and from ``Volume.meta`` under the same name.
_META_NUMBERS = ("frame_duration_s", "acquisition_duration_s", "calibration_cps_per_mbq",
                 "patient_weight_kg", "radionuclide_half_life_s")
#: Values of the sidecar key ``"decay_correction"`` (DICOM DecayCorrection defined terms).
_DECAY_CORRECTIONS = ("NONE", "START", "ADMIN")
# Keys of Volume.meta never written to a sidecar (rebuilt on reading).
_META_SKIP = {"source_file"}
_GEOM_TOL_MM = 1e-3   # float32 header vs float64 sidecar: agreement expected to ~1e-5 mm
_DIR_TOL = 1e-5


# ---------------------------------------------------------------------------------- file names
def _split_nifti(path: str | Path) -> tuple[Path, str, str]:
    """``(folder, stem, suffix)`` of a NIfTI file name; other suffixes raise InputError."""
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return p.parent, name[: -len(suffix)], name[-len(suffix):]
    raise InputError(f"not a NIfTI file name: {name!r}; accepted suffixes: .nii.gz, .nii",
                     file=p, field="path")


def sidecar_path(path: str | Path) -> Path:
    """JSON sidecar of a NIfTI file: same folder and stem, suffix ``.json``.

    Examples
    --------
    >>> sidecar_path("/data/spect_24h.nii.gz").name
    'spect_24h.json'

    """
    folder, stem, _ = _split_nifti(path)
    return folder / f"{stem}.json"


def _sigma_path(path: str | Path) -> Path:
    folder, stem, suffix = _split_nifti(path)
    return folder / f"{stem}_sigma{suffix}"


# ---------------------------------------------------------------------------------- validation
def _parse_time(value: Any, *, file: Path | None, field: str) -> datetime:
    """Naive datetime from an ISO 8601 string that has a date and a time of day."""
    if not isinstance(value, str):
        raise InputError(f"must be an ISO 8601 date-time string, got {type(value).__name__} "
                         f"{value!r}", file=file, field=field)
    s = value.strip()
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise InputError(f"invalid ISO 8601 date-time {value!r}; expected e.g. "
                         "'2024-05-01T10:30:00'", file=file, field=field) from None
    if "T" not in s.upper() and " " not in s:
        raise InputError(f"date without a time of day {value!r}; expected e.g. "
                         "'2024-05-01T10:30:00'", file=file, field=field)
    if t.tzinfo is not None:
        raise InputError(f"UTC offset in {value!r}; give local time without an offset, as DICOM "
                         "stores it (e.g. '2024-05-01T10:30:00')", file=file, field=field)
    return t


def _positive(value: Any, *, file: Path | None, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value <= 0:
        raise InputError(f"must be a finite number > 0, got {value!r}", file=file, field=field)
    return float(value)


def _text(value: Any, *, file: Path | None, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"must be a non-empty string, got {value!r}", file=file, field=field)
    return value.strip()


def _parse_administration(value: Any, *, file: Path | None, field: str = "administration"
                          ) -> Administration:
    if isinstance(value, Administration):
        return value
    if not isinstance(value, dict):
        raise InputError(f"must be an object with nuclide, injected_activity_mbq, injection_time, "
                         f"got {type(value).__name__}", file=file, field=field)
    unknown = sorted(set(value) - {"nuclide", "injected_activity_mbq", "injection_time",
                                   "radiopharmaceutical"})
    if unknown:
        raise InputError(f"unknown keys {unknown}; accepted: nuclide, injected_activity_mbq, "
                         "injection_time, radiopharmaceutical", file=file, field=field)
    for key in ("nuclide", "injected_activity_mbq", "injection_time"):
        if value.get(key) is None:
            raise InputError("required key is missing", file=file, field=f"{field}.{key}")
    rp = value.get("radiopharmaceutical", "") or ""
    if not isinstance(rp, str):
        raise InputError(f"must be a string, got {rp!r}", file=file,
                         field=f"{field}.radiopharmaceutical")
    return Administration(
        nuclide=resolve_name(value["nuclide"], file=file, field=f"{field}.nuclide"),
        injected_activity_mbq=_positive(value["injected_activity_mbq"], file=file,
                                        field=f"{field}.injected_activity_mbq"),
        injection_time=(value["injection_time"] if isinstance(value["injection_time"], datetime)
                        else _parse_time(value["injection_time"], file=file,
                                         field=f"{field}.injection_time")),
        radiopharmaceutical=rp,
    )


def _parse_name_table(table: Any, *, file: Path | None, field: str) -> dict[int, str]:
    """``{label value: name}`` from ``{"1": "liver", ...}`` (keys int or decimal strings)."""
    if not isinstance(table, dict):
        raise InputError(f"name table must be an object {{\"1\": \"liver\", ...}}, got "
                         f"{type(table).__name__}", file=file, field=field)
    names: dict[int, str] = {}
    for key, name in table.items():
        ok = (isinstance(key, int | np.integer) and not isinstance(key, bool)) or \
            (isinstance(key, str) and _is_int_key(key))
        if not ok:
            raise InputError(f"key {key!r} is not an integer label value", file=file,
                             field=field)
        value = int(key)
        if value <= 0:
            raise InputError(f"key {key!r} must be a positive integer label value (0 is "
                             "background)", file=file, field=field)
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"name of label {key} must be a non-empty string, got {name!r}",
                             file=file, field=field)
        names[value] = name.strip()
    seen: dict[str, int] = {}
    for value, name in names.items():
        if name in seen:
            raise InputError(f"name {name!r} is used by labels {seen[name]} and {value}; names "
                             "must be unique", file=file, field=field)
        seen[name] = value
    return names


def _load_json(path: Path, *, what: str = "sidecar") -> Any:
    if not path.is_file():
        raise UnreadableFileError(f"{what} does not exist", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(f"cannot read {what} ({exc})", file=path) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFileError(f"{what} is not valid JSON (line {exc.lineno}, column "
                                  f"{exc.colno}: {exc.msg})", file=path) from None


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """Read and validate a theradose JSON sidecar.

    Parameters
    ----------
    path : str or Path
        The ``.json`` sidecar.

    Returns
    -------
    dict
        Validated values: ``"unit"`` canonical, ``"modality"`` upper case, times as
        :class:`~datetime.datetime`, ``"administration"`` as :class:`Administration`,
        ``"geometry"`` as :class:`Geometry`, ``"labels"`` as ``{int: str}``, ``"history"`` as a
        tuple; keys without a defined meaning are returned unchanged.

    Raises
    ------
    UnreadableFileError
        Missing file or invalid JSON.
    UnitError
        Unknown ``"unit"``.
    UnknownNuclideError
        A ``"nuclide"`` not in ICRP-107 (spellings such as ``"177Lu"`` are normalised).
    InputError
        Any other invalid value; the message names the file and the JSON key.

    """
    p = Path(path)
    data = _load_json(p)
    if not isinstance(data, dict):
        raise InputError(f"sidecar must be a JSON object, got {type(data).__name__}", file=p,
                         field="(top level)")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in SIDECAR_KEYS and value is None:
            continue  # null means "not given"
        if key == "modality":
            m = _text(value, file=p, field=key).upper()
            if m not in MODALITIES:
                raise InputError(f"unknown modality {value!r}; accepted: {', '.join(MODALITIES)}",
                                 file=p, field=key)
            out[key] = m
        elif key == "unit":
            if not isinstance(value, str):
                raise InputError(f"must be a unit string, got {value!r}", file=p, field=key)
            out[key] = parse_unit(value, field=key, file=str(p)).name
        elif key in ("acquisition_time", "decay_correction_reference_time"):
            out[key] = _parse_time(value, file=p, field=key)
        elif key == "decay_correction":
            dc = _text(value, file=p, field=key).upper()
            if dc not in _DECAY_CORRECTIONS:
                raise InputError(f"unknown decay correction {value!r}; accepted: "
                                 f"{', '.join(_DECAY_CORRECTIONS)}", file=p, field=key)
            out[key] = dc
        elif key == "administration":
            out[key] = _parse_administration(value, file=p)
        elif key == "nuclide":
            out[key] = resolve_name(value, file=p, field=key)
        elif key in _META_NUMBERS:
            out[key] = _positive(value, file=p, field=key)
        elif key == "history":
            if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
                raise InputError("must be a list of strings", file=p, field=key)
            out[key] = tuple(value)
        elif key == "theradose_version":
            out[key] = str(value)
        elif key == "geometry":
            try:
                out[key] = Geometry.from_dict(value)
            except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"invalid geometry ({type(exc).__name__}: {exc}); expected "
                                 "shape_zyx, spacing_mm, origin_mm, direction", file=p,
                                 field=key) from None
        elif key == "sigma_file":
            out[key] = _text(value, file=p, field=key)
        elif key == "labels":
            out[key] = _parse_name_table(value, file=p, field=key)
        else:
            close = difflib.get_close_matches(key, SIDECAR_KEYS, n=1, cutoff=0.85)
            if close and close[0] != key:
                warnings.warn(f"{p}: {key}: unknown sidecar key, kept in meta; did you mean "
                              f"{close[0]!r}?", TheradoseWarning, stacklevel=3)
            out[key] = value
    return out


# ---------------------------------------------------------------------------------- integrity
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20  # compressed bytes read at a time
_MAX_OUT = 1 << 24  # decompressed bytes produced at a time (bounded memory)


def _open_raw(path: Path):
    """The file's decompressed byte stream (gzip recognised by its magic, not its name)."""
    import gzip

    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def _read_header(path: Path):
    """The NIfTI-1/2 header as stored (nibabel, ``check=False``: no values 'fixed')."""
    import nibabel as nib

    try:
        with _open_raw(path) as fh:
            head = fh.read(4)
            sizes = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
            klass = nib.Nifti1Header if 348 in sizes else nib.Nifti2Header if 540 in sizes \
                else None
            if klass is None:
                raise ValueError(f"sizeof_hdr is neither 348 (NIfTI-1) nor 540 (NIfTI-2), first "
                                 f"bytes {head!r}")
            fh.seek(0)
            return klass.from_fileobj(fh, check=False)
    except Exception as exc:  # gzip, OSError, nibabel HeaderDataError, ValueError, EOFError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFileError(f"cannot read NIfTI image (header: {first[:200]})",
                                  file=path) from None


@dataclass(frozen=True)
class _Layout:
    """Where the voxel data lie in the (decompressed) file, as the header says."""

    offset: int            # vox_offset, bytes
    dtype: np.dtype        # stored type, with the header's byte order
    sizes: tuple[int, ...]  # dim[1..dim[0]]: x, y, z, ... (x fastest in the file)

    @property
    def n_bytes(self) -> int:
        return math.prod(self.sizes) * self.dtype.itemsize


#: Accepted voxel size (mm). Clinical CT/SPECT/PET voxels are 0.3-10 mm, micro-CT ~0.01 mm;
#: 1 um to 10 m covers every imaging device and catches unit slips (m or um read as mm by 1e3
#: beyond that) and garbage such as 1e-30, which would give voxel volumes of 1e-90 mL.
VOXEL_MM_RANGE = (1e-3, 1e4)


def _check_header(hdr, path: Path) -> _Layout:
    """Validate dim and pixdim as stored; return where the voxel data must be.

    SimpleITK reads a 0 in ``dim`` as 1 and a 0 or NaN ``pixdim`` as 1 mm (a negative one as its
    absolute value) without a word, so the header is checked here first.
    """
    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise InputError(f"dim[0] = {ndim}: the number of dimensions must be 1 to 7 (corrupt "
                         "header?)", file=path, field="dim")
    sizes = dim[1:ndim + 1]
    if min(sizes) <= 0:
        raise InputError(f"image size {sizes} (x, y, z, ...) has a {min(sizes)} along axis "
                         f"{sizes.index(min(sizes)) + 1}; every axis needs at least one voxel",
                         file=path, field="dim")
    pixdim = [float(v) for v in hdr["pixdim"][1:min(ndim, 3) + 1]]
    if not all(math.isfinite(v) and v > 0 for v in pixdim):
        raise InputError(f"voxel size {pixdim} mm (pixdim[1..{len(pixdim)}]) must be finite "
                         "and > 0 (SimpleITK would read 0 or NaN as 1 mm); correct the header",
                         file=path, field="pixdim")
    lo, hi = VOXEL_MM_RANGE
    if not all(lo <= v <= hi for v in pixdim):
        raise InputError(f"voxel size {pixdim} mm (pixdim[1..{len(pixdim)}]) outside "
                         f"[{lo:g}, {hi:g}] mm: a unit slip or corrupt header; correct it",
                         file=path, field="pixdim")
    try:
        dtype = np.dtype(hdr.get_data_dtype())
    except Exception as exc:  # unknown datatype code
        raise InputError(f"unsupported NIfTI datatype ({exc})", file=path,
                         field="datatype") from None
    return _Layout(int(hdr.get_data_offset()), dtype, tuple(sizes))


def _raw_blocks(path: Path):
    """Decompressed blocks of the file; a gzip stream is inflated in full and CRC checked."""
    import zlib

    with open(path, "rb") as fh:
        if fh.read(2) != _GZIP_MAGIC:
            fh.seek(0)
            while block := fh.read(_MAX_OUT):
                yield block
            return
        fh.seek(0)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while chunk := fh.read(_CHUNK):
                while chunk:
                    if d.eof:  # another gzip member follows (concatenated files are valid)
                        if not chunk.strip(b"\0"):
                            break  # zero padding after the last member
                        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    block = d.decompress(chunk, _MAX_OUT)
                    if block:
                        yield block
                    chunk = d.unused_data if d.eof else d.unconsumed_tail
        except zlib.error as exc:
            raise UnreadableFileError(f"corrupt gzip data ({exc}); the file is damaged, copy "
                                      "it again", file=path, field="data") from None
        if not d.eof:
            raise UnreadableFileError("truncated gzip file: the compressed stream ends without "
                                      "its end marker; the file is incomplete, copy it again",
                                      file=path, field="data")


def _non_finite_error(n_bad: int, n_total: int, zyx: list[int], path: Path) -> InputError:
    return InputError(f"{n_bad} of {n_total} voxels are not finite (NaN or ±Inf), the first at "
                      f"[z, y, x] {zyx}; theradose reads finite values only (SimpleITK would "
                      "read them as 0): replace them where the image was made", file=path,
                      field="data")


def _scan_data(path: Path, layout: _Layout, *, keep: bool = False) -> bytearray | None:
    """One pass over the stored bytes: complete file, intact gzip stream, finite float values.

    The values are checked as stored because SimpleITK (niftilib) replaces NaN and ±Inf by 0
    when it reads a float image. An uncompressed integer image is checked by its size alone.
    With ``keep`` the voxel bytes are returned (their finiteness is then left to the caller).
    """
    is_float = layout.dtype.kind == "f"
    with open(path, "rb") as fh:
        gz = fh.read(2) == _GZIP_MAGIC
    need = layout.offset + layout.n_bytes
    kept = bytearray(layout.n_bytes) if keep else None
    if not gz and not is_float and not keep:
        got = path.stat().st_size
    else:
        got, n_bad, first_bad, done = 0, 0, -1, 0  # done: values checked so far
        carry, item, lo, hi = b"", layout.dtype.itemsize, layout.offset, need
        for block in _raw_blocks(path):
            start, got = got, got + len(block)
            if got <= lo or start >= hi:
                continue
            data = block[max(lo - start, 0):hi - start]
            if kept is not None:
                at = max(start - lo, 0)
                kept[at:at + len(data)] = data
                continue
            if not is_float:
                continue
            part = carry + data
            whole = len(part) // item * item
            values = np.frombuffer(part[:whole], dtype=layout.dtype)
            carry = part[whole:]
            if not math.isfinite(float(values.sum(dtype=np.float64))):
                bad = ~np.isfinite(values)
                k = int(np.count_nonzero(bad))
                if k and first_bad < 0:
                    first_bad = done + int(np.argmax(bad))
                n_bad += k
            done += values.size
        if got >= need and n_bad:
            nx, ny = layout.sizes[0], (layout.sizes[1] if len(layout.sizes) > 1 else 1)
            raise _non_finite_error(n_bad, math.prod(layout.sizes),
                                    [first_bad // (nx * ny), first_bad // nx % ny,
                                     first_bad % nx], path)
    if got < need:
        raise UnreadableFileError(f"truncated: the header needs {need} bytes (offset "
                                  f"{layout.offset} + {math.prod(layout.sizes)} voxels x "
                                  f"{layout.dtype.itemsize} bytes), the file holds {got}",
                                  file=path, field="data")
    return kept


def _check_finite(arr: np.ndarray, path: Path) -> None:
    """No NaN or ±Inf in a float array (a float64 sum is non-finite whenever one value is)."""
    if arr.dtype.kind != "f" or math.isfinite(float(arr.sum(dtype=np.float64))):
        return
    bad = ~np.isfinite(arr)
    n = int(np.count_nonzero(bad))
    if n:  # else the sum overflowed and the values are finite
        idx = np.unravel_index(int(np.argmax(bad)), arr.shape)
        raise _non_finite_error(n, arr.size, [int(i) for i in idx], path)


def _unscaled(hdr) -> bool:
    """True when the header asks for no value scaling (scl_slope 0/NaN, or 1 with inter 0)."""
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if slope == 0 or not math.isfinite(slope):
        return True
    return slope == 1 and (inter == 0 or not math.isfinite(inter))


# ---------------------------------------------------------------------------------- image I/O
def _read_image(path: Path) -> tuple[np.ndarray, Geometry]:
    """Values ``[z, y, x]`` and grid of a 3-D scalar NIfTI, its integrity checked.

    Checked beyond what SimpleITK reports: ``dim`` (no axis of size 0), ``pixdim`` (finite,
    > 0), the stored size (a truncated file or gzip stream, a gzip CRC failure) and NaN/±Inf
    values. The file is inflated once: SimpleITK reads the grid from the header, and the voxel
    values of an unscaled real image come from the checked stream itself (the layout NIfTI and
    ITK share, x fastest); a scaled (``scl_slope``) image is read by SimpleITK after the check.
    """
    import SimpleITK as sitk

    if not path.is_file():
        raise UnreadableFileError("file does not exist", file=path)
    hdr = _read_header(path)
    layout = _check_header(hdr, path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        _scan_data(path, layout)  # a damaged gzip stream is the likely cause: say so
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise UnreadableFileError(f"cannot read NIfTI image ({first[:200]})", file=path) from None
    n_comp, size = reader.GetNumberOfComponents(), tuple(reader.GetSize())
    if layout.dtype.kind == "c":
        raise InputError(f"complex values ({layout.dtype}); theradose reads real-valued images",
                         file=path, field="datatype")
    if n_comp != 1:
        raise InputError(f"{n_comp} components per voxel; theradose reads scalar images",
                         file=path, field="datatype")
    if reader.GetDimension() != 3:
        raise InputError(f"{reader.GetDimension()}-D image of size {size}; theradose reads 3-D "
                         "volumes (split 4-D series first)", file=path, field="dim")
    native = layout.dtype.newbyteorder("=")
    direct = (layout.dtype.kind in "iuf" and _unscaled(hdr) and layout.sizes == size
              and reader.GetPixelID() ==
              sitk.GetImageFromArray(np.zeros((1, 1, 1), native)).GetPixelID())
    if direct:
        raw = _scan_data(path, layout, keep=True)
        arr = np.frombuffer(raw, dtype=layout.dtype).reshape(size[::-1])
        arr = arr.astype(native, copy=False) if layout.dtype != native else arr
        _check_finite(arr, path)
    else:
        _scan_data(path, layout)
        try:
            arr = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
            raise UnreadableFileError(f"cannot read NIfTI image ({first[:200]})",
                                      file=path) from None
    geom = Geometry(arr.shape, reader.GetSpacing(), reader.GetOrigin(),
                    np.asarray(reader.GetDirection()).reshape(3, 3))
    return arr, geom


def _exact_geometry(header: Geometry, sidecar: Geometry | None, *, file: Path) -> Geometry:
    """The sidecar's float64 grid when it agrees with the header's float32 one, else the header."""
    if sidecar is None:
        return header
    if header.shape == sidecar.shape and \
            np.allclose(header.spacing_mm, sidecar.spacing_mm, atol=_GEOM_TOL_MM) and \
            np.allclose(header.origin_mm, sidecar.origin_mm, atol=_GEOM_TOL_MM) and \
            np.allclose(header.direction, sidecar.direction, atol=_DIR_TOL):
        return sidecar
    warnings.warn(f"{file}: geometry: the sidecar's grid differs from the NIfTI header "
                  f"({sidecar!r} vs {header!r}); using the header", TheradoseWarning,
                  stacklevel=3)
    return header


def _write_image(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    import SimpleITK as sitk

    arr = np.ascontiguousarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(geometry.spacing_mm)
    img.SetOrigin(geometry.origin_mm)
    img.SetDirection(tuple(float(v) for v in geometry.direction.ravel()))
    sitk.WriteImage(img, str(path), useCompression=str(path).lower().endswith(".gz"))


def _json_value(value: Any) -> Any:
    """JSON form of a metadata value, or raise TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size <= 1024:
        value = value.tolist()
    elif isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Path):
        value = str(value)
    elif isinstance(value, tuple):
        value = list(value)
    json.dumps(value, allow_nan=False)  # raises TypeError/ValueError when not serialisable
    return value


def _sidecar_dict(volume: Volume, *, sigma_name: str | None) -> dict[str, Any]:
    from theradose import __version__

    d: dict[str, Any] = {
        "theradose_version": __version__,
        "modality": volume.modality,
        "unit": volume.unit,
        "acquisition_time": (volume.acquisition_time.isoformat()
                             if volume.acquisition_time else None),
    }
    meta = dict(volume.meta)
    adm = meta.pop("administration", None)
    if adm is not None:
        d["administration"] = _parse_administration(adm, file=None,
                                                  field="meta.administration").to_dict()
    for key in ("nuclide", *_META_NUMBERS, "decay_correction", "decay_correction_reference_time"):
        if meta.get(key) is not None:
            d[key] = _json_value(meta.pop(key))
    d["geometry"] = volume.geometry.to_dict()
    d["history"] = list(volume.history)
    if sigma_name:
        d["sigma_file"] = sigma_name
    if isinstance(volume, LabelMap):
        d["labels"] = {str(k): v for k, v in sorted(volume.names.items())}
    skipped = []
    for key, value in meta.items():
        if key in _META_SKIP:
            continue
        if key in SIDECAR_KEYS or not isinstance(key, str):
            skipped.append(str(key))
            continue
        try:
            d[key] = _json_value(value)
        except (TypeError, ValueError):
            skipped.append(key)
    if skipped:
        log.info("sidecar: meta keys not written (reserved or not JSON-serialisable): %s",
                 ", ".join(sorted(skipped)))
    return d


def write_nifti(volume: Volume, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a volume as NIfTI (``.nii.gz`` or ``.nii``) plus its JSON sidecar.

    Files written: ``path``; ``<stem>.json`` (the sidecar, schema in ``docs/io-nifti-study.md``);
    ``<stem>_sigma<suffix>`` when ``volume.sigma`` is set. All files are written to temporary
    names first and moved into place only when every one succeeded.

    Parameters
    ----------
    volume : Volume
        Image to write (a :class:`LabelMap` also gets its name table, see
        :func:`write_labelmap`). The dtype is kept (bool is written as uint8, float16 as float32).
    path : str or Path
        Output file ending in ``.nii.gz`` or ``.nii``.
    overwrite : bool
        Replace existing outputs; otherwise an existing image, sidecar or σ file is an error.

    Returns
    -------
    Path
        The image path.

    Raises
    ------
    InputError
        ``path`` does not end in ``.nii.gz``/``.nii``.
    OutputExistsError
        An output exists and ``overwrite`` is False (nothing is written then).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from theradose.volume import Volume
    >>> v = Volume.from_array(np.ones((2, 3, 4), np.float32), spacing_mm=(4, 4, 4),
    ...                       unit="Bq/mL", modality="NM")
    >>> out = write_nifti(v, pathlib.Path(tempfile.mkdtemp()) / "spect.nii.gz")
    >>> sorted(p.name for p in out.parent.iterdir())
    ['spect.json', 'spect.nii.gz']

    """
    if not isinstance(volume, Volume):
        raise InputError(f"must be a Volume, got {type(volume).__name__}", field="volume")
    img = Path(path)
    side = sidecar_path(img)
    sig = _sigma_path(img) if volume.sigma is not None else None
    targets = [p for p in (img, side, sig) if p is not None]
    for p in targets:  # refuse before writing anything
        prepare_output(p, overwrite=overwrite)
    sidecar = _sidecar_dict(volume, sigma_name=sig.name if sig else None)
    with contextlib.ExitStack() as stack:
        tmp = {p: stack.enter_context(atomic_path(p, overwrite=overwrite)) for p in targets}
        _write_image(volume.array, volume.geometry, tmp[img])
        if sig is not None:
            _write_image(volume.sigma, volume.geometry, tmp[sig])
        tmp[side].write_text(json.dumps(sidecar, indent=2, allow_nan=False) + "\n",
                             encoding="utf-8")
    log.debug("wrote %s (+ %s)", img, ", ".join(p.name for p in targets[1:]))
    return img


def write_labelmap(labelmap: LabelMap, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a label map as integer NIfTI plus a sidecar holding ``{"labels": {"1": ...}}``.

    Parameters
    ----------
    labelmap : LabelMap
        Integer labels ``(Z, Y, X)`` with their name table.
    path : str or Path
        Output ``.nii.gz`` or ``.nii``.
    overwrite : bool
        Replace existing outputs.

    Returns
    -------
    Path
        The image path.

    Raises
    ------
    InputError
        Not a :class:`LabelMap`, or a bad file name.
    OutputExistsError
        An output exists and ``overwrite`` is False.

    """
    if not isinstance(labelmap, LabelMap):
        raise InputError(f"must be a LabelMap, got {type(labelmap).__name__}", field="labelmap")
    return write_nifti(labelmap, path, overwrite=overwrite)


# ---------------------------------------------------------------------------------- reading
def _resolve_sidecar(path: Path, sidecar: str | Path | bool | None) -> Path | None:
    if sidecar is False:
        return None
    if sidecar is None or sidecar is True:
        cand = sidecar_path(path)
        if cand.is_file():
            return cand
        if sidecar is True:
            raise UnreadableFileError("sidecar does not exist (sidecar=True)", file=cand)
        return None
    p = Path(sidecar)
    if not p.is_file():
        raise UnreadableFileError("sidecar does not exist", file=p)
    return p


def _merge(name: str, from_sidecar: Any, from_arg: Any, *, file: Path | None) -> Any:
    """Sidecar value, or the argument where the sidecar lacks it; contradiction is an error."""
    if from_sidecar is None:
        return from_arg
    if from_arg is not None and from_arg != from_sidecar:
        raise InputError(f"argument {name}={from_arg!r} contradicts the sidecar value "
                         f"{from_sidecar!r}; drop the argument or correct the sidecar",
                         file=file, field=name)
    return from_sidecar


def read_nifti(
    path: str | Path,
    *,
    sidecar: str | Path | bool | None = None,
    unit: str | None = None,
    modality: str | None = None,
    acquisition_time: datetime | str | None = None,
    administration: Administration | None = None,
) -> Volume:
    """Read a NIfTI image and its JSON sidecar into a :class:`Volume`.

    Values keep their stored dtype (float32 stays float32); the grid is the header's, or the
    sidecar's full-precision copy when the two agree. Unit, modality, time and metadata come from
    the sidecar; the keyword arguments fill in what the sidecar lacks (or everything when there
    is no sidecar) and must agree with it where both are given.

    Parameters
    ----------
    path : str or Path
        ``.nii.gz`` or ``.nii`` file (3-D, scalar).
    sidecar : str, Path, bool or None
        ``None``: use ``<stem>.json`` when it exists; a path: that file; ``True``: the sidecar
        must exist; ``False``: ignore any sidecar.
    unit : str, optional
        Unit of the values (e.g. ``"Bq/mL"``, ``"HU"``); required without a sidecar.
    modality : str, optional
        ``"CT"``, ``"NM"``, ``"PT"``, ... (see :data:`MODALITIES`); required without a sidecar.
    acquisition_time : datetime or ISO 8601 str, optional
        Start of the acquisition (naive local time).
    administration : Administration, optional
        Stored in ``meta["administration"]``.

    Returns
    -------
    Volume
        ``meta`` holds the sidecar's other keys and ``"source_file"``; a σ image named by the
        sidecar's ``"sigma_file"`` is read into ``sigma``.

    Raises
    ------
    UnreadableFileError
        Missing or unreadable image or sidecar, invalid JSON.
    UnitError
        Unknown unit in the sidecar or the argument.
    InputError
        Invalid sidecar values, a required field missing, or an argument contradicting the
        sidecar (the message names the file and the field).
    GeometryMismatchError
        The σ image is on another grid.

    """
    p = Path(path)
    _split_nifti(p)
    side_p = _resolve_sidecar(p, sidecar)
    side = read_sidecar(side_p) if side_p else {}
    src = side_p or p
    if unit is not None:
        unit = parse_unit(unit, field="unit").name
    if modality is not None:
        modality = str(modality).upper()
        if modality not in MODALITIES:
            raise InputError(f"unknown modality {modality!r}; accepted: {', '.join(MODALITIES)}",
                             field="modality")
    if isinstance(acquisition_time, str):
        acquisition_time = _parse_time(acquisition_time, file=p, field="acquisition_time")
    if administration is not None and not isinstance(administration, Administration):
        raise InputError(f"must be an Administration, got {type(administration).__name__}",
                         field="administration")
    unit = _merge("unit", side.get("unit"), unit, file=src)
    modality = _merge("modality", side.get("modality"), modality, file=src)
    acquisition_time = _merge("acquisition_time", side.get("acquisition_time"), acquisition_time,
                              file=src)
    administration = _merge("administration", side.get("administration"), administration,
                            file=src)
    for name, value in (("unit", unit), ("modality", modality)):
        if value is None:
            where = f"the sidecar {side_p.name} has no {name!r}" if side_p else \
                f"there is no sidecar {sidecar_path(p).name}"
            raise InputError(f"{name} unknown: {where}; pass {name}=... or add it to the "
                             "sidecar", file=p, field=name)
    arr, header_geom = _read_image(p)
    geom = _exact_geometry(header_geom, side.get("geometry"), file=src)
    if modality in ("NM", "PT") and min(arr.shape[:3]) < 2:
        # An emission image is a 3-D reconstruction; fewer than 2 voxels along an axis (1 x 1 x
        # 1, a single slice) cannot be registered, resampled or resolution-modelled.
        raise InputError(f"emission image ({modality}) of {arr.shape[2]} x {arr.shape[1]} x "
                         f"{arr.shape[0]} voxels (x, y, z): needs at least 2 along every axis",
                         file=p, field="dim")
    sigma = None
    if "sigma_file" in side:
        sig_p = src.parent / side["sigma_file"]
        if not sig_p.is_file():
            raise UnreadableFileError(f"the sigma image {sig_p} does not exist; correct the name "
                                      "or remove \"sigma_file\"", file=src, field="sigma_file")
        sig_arr, sig_geom = _read_image(sig_p)
        if not sig_geom.same_as(header_geom):
            raise GeometryMismatchError(f"sigma image {sig_p.name} is on another grid than "
                                        f"{p.name}: {sig_geom!r}", file=src, field="sigma_file")
        sigma = sig_arr
    meta = {k: v for k, v in side.items() if k not in
            {"unit", "modality", "acquisition_time", "history", "theradose_version", "geometry",
             "sigma_file", "labels", "administration"}}
    if administration is not None:
        meta["administration"] = administration
    if "labels" in side:
        meta["labels"] = {str(k): v for k, v in side["labels"].items()}
    meta["source_file"] = str(p)
    return Volume(arr, geom, unit=unit, modality=modality, acquisition_time=acquisition_time,
                  sigma=sigma, meta=meta, history=side.get("history", ()))


def _as_label_array(arr: np.ndarray, *, file: Path) -> np.ndarray:
    """Integer labels ≥ 0; float images are accepted only when every value is a whole number."""
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"label map holds non-integer values ({float(arr[idx])!r} at "
                             f"[z, y, x] {list(idx)}); labels must be whole numbers", file=file,
                             field="datatype")
    if arr.min() < 0:
        raise InputError(f"negative label value {int(arr.min())}; labels are ≥ 0 (0 is "
                         "background)", file=file, field="datatype")
    if np.issubdtype(arr.dtype, np.floating):
        top = float(arr.max())
        arr = arr.astype(np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32)
    return arr


def read_labelmap(
    path: str | Path,
    *,
    names: dict | str | Path | None = None,
    sidecar: str | Path | bool | None = None,
) -> LabelMap:
    """Read an integer NIfTI label map and its name table.

    The name table comes from ``names`` (a dict ``{1: "spleen", ...}`` or a JSON file in
    TotalSegmentator style ``{"1": "spleen", ...}``) or from the sidecar, which is either a
    theradose sidecar with ``"labels"`` or itself a bare name table. When both are given, they are
    merged and must not name one label differently. Names of labels absent from the image are
    dropped (a TotalSegmentator table names 117 structures; a crop holds few); labels without a
    name are kept unnamed.

    Parameters
    ----------
    path : str or Path
        ``.nii.gz`` or ``.nii`` with integer values (float images are accepted when every value is
        a whole number).
    names : dict, str or Path, optional
        Name table or path to a JSON name table.
    sidecar : str, Path, bool or None
        As in :func:`read_nifti`.

    Returns
    -------
    LabelMap

    Raises
    ------
    InputError
        Non-integer or negative values, invalid name table, names contradicting the sidecar.
    UnreadableFileError
        Missing image, sidecar or name file; invalid JSON.

    """
    p = Path(path)
    _split_nifti(p)
    side_p = _resolve_sidecar(p, sidecar)
    side: dict[str, Any] = {}
    if side_p is not None:
        raw = _load_json(side_p)
        if isinstance(raw, dict) and raw and all(_is_int_key(k) for k in raw):
            side = {"labels": _parse_name_table(raw, file=side_p, field="labels")}
        else:
            side = read_sidecar(side_p)
    if names is not None:
        if isinstance(names, str | Path):
            names_p = Path(names)
            table = _parse_name_table(_load_json(names_p, what="name table"), file=names_p,
                                      field="names")
        else:
            table = _parse_name_table(names, file=None, field="names")
        stored = side.get("labels", {})
        diff = sorted(k for k in set(table) & set(stored) if table[k] != stored[k])
        if diff:
            raise InputError(f"names given contradict the sidecar's labels (labels {diff[:5]}"
                             f"{' ...' if len(diff) > 5 else ''}); pass sidecar=False to ignore "
                             "the sidecar", file=side_p, field="labels")
        table = {**stored, **table}
    else:
        table = side.get("labels", {})
    arr, header_geom = _read_image(p)
    arr = _as_label_array(arr, file=p)
    geom = _exact_geometry(header_geom, side.get("geometry"), file=side_p or p)
    present = {int(v) for v in np.unique(arr)} - {0}
    dropped = sorted(set(table) - present)
    if dropped:
        log.debug("%s: %d named labels absent from the image: %s", p, len(dropped), dropped)
    unnamed = sorted(present - set(table))
    if unnamed:
        log.info("%s: labels without a name: %s", p, unnamed)
    meta = {k: v for k, v in side.items() if k not in
            {"unit", "modality", "acquisition_time", "history", "theradose_version", "geometry",
             "sigma_file", "labels"}}
    meta["source_file"] = str(p)
    return LabelMap(arr, geom, modality=side.get("modality", "SEG"),
                    acquisition_time=side.get("acquisition_time"), meta=meta,
                    history=side.get("history", ()),
                    names={k: v for k, v in table.items() if k in present})


def _is_int_key(key: str) -> bool:
    return isinstance(key, str) and key.strip().lstrip("-").isdigit()
