"""Import VOI masks made elsewhere (RTSTRUCT, DICOM SEG, NIfTI label map) onto a reference grid."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from theradose.errors import InputError, UnreadableFileError
from theradose.io import read_labelmap, read_rtstruct, read_seg_masks
from theradose.io._dicom_common import is_dicom_file, read_dataset
from theradose.volume import Geometry, LabelMap, Volume, resample

__all__ = ["import_masks"]

log = logging.getLogger("theradose")

_OVERLAP_RULES = ("error", "smaller")


def _combine(masks: dict[str, np.ndarray], geom: Geometry, *, overlap: str, file: Path,
             **kwargs) -> LabelMap:
    """Non-overlapping label map from boolean masks; ``overlap='smaller'``: smaller VOI wins."""
    names = [n for n, m in masks.items() if m.any()]
    empty = [n for n in masks if n not in names]
    if empty:
        log.info("%s: empty VOIs dropped: %s", file, empty)
    if not names:
        raise InputError("no non-empty VOI on the reference grid (do the masks lie inside "
                         "it?)", file=file, field="reference")
    count = np.zeros(geom.shape, dtype=np.uint16)
    for n in names:
        count += masks[n]
    if np.any(count > 1) and overlap == "error":
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                 if np.any(masks[a] & masks[b])]
        a, b = pairs[0]
        raise InputError(f"VOIs {a!r} and {b!r} overlap ({len(pairs)} overlapping pairs); a "
                         "label map holds one label per voxel: pass overlap='smaller' to give "
                         "shared voxels to the smaller VOI", file=file, field="overlap")
    dtype = np.uint8 if len(names) < 256 else np.uint16
    arr = np.zeros(geom.shape, dtype=dtype)
    # Largest first, so that smaller VOIs (lesions inside organs) overwrite shared voxels.
    order = sorted(range(len(names)), key=lambda i: -int(masks[names[i]].sum()))
    for i in order:
        arr[masks[names[i]]] = i + 1
    return LabelMap(arr, geom, names={i + 1: n for i, n in enumerate(names)}, **kwargs)


def import_masks(path: str | Path, reference: Volume | Geometry, *,
                 names: dict | str | Path | None = None, overlap: str = "error") -> LabelMap:
    """Read VOIs from an RTSTRUCT, a DICOM SEG or a NIfTI label map onto ``reference``'s grid.

    The format is recognised from the file: ``.nii``/``.nii.gz`` are label maps (name table from
    ``names`` or the sidecar / TotalSegmentator-style JSON next to it, see
    :func:`theradose.io.read_labelmap`); DICOM files by their Modality (``RTSTRUCT`` contours are
    rasterised on the reference grid, ``SEG`` frames placed on it). A label map on another grid
    is resampled onto the reference by nearest neighbour (a categorical image).

    Parameters
    ----------
    path : str or Path
        The mask file.
    reference : Volume or Geometry
        Target grid (e.g. the reference time point's CT). A Volume read from DICOM also lets the
        RTSTRUCT/SEG frame of reference be checked.
    names : dict, str or Path, optional
        Name table of a NIfTI label map (``{1: "liver", ...}`` or a JSON file).
    overlap : {'error', 'smaller'}
        What to do when DICOM VOIs share voxels: raise, or give the voxels to the smaller VOI
        (e.g. a lesion inside the liver).

    Returns
    -------
    LabelMap
        On ``reference``'s geometry; labels 1..n (DICOM: in file order) named as in the file;
        empty VOIs are dropped; ``meta["source_file"]`` is the path.

    Raises
    ------
    UnreadableFileError
        Missing file, or neither NIfTI nor DICOM.
    InputError
        Unsupported DICOM modality, overlapping VOIs with ``overlap='error'``, no VOI on the grid,
        bad ``reference`` or ``overlap``; plus what the readers raise (DicomTagError,
        GeometryMismatchError, ...).

    Examples
    --------
    >>> labels = import_masks("tp1/seg.dcm", ct)  # doctest: +SKIP
    """
    p = Path(path)
    if overlap not in _OVERLAP_RULES:
        raise InputError(f"got {overlap!r}; accepted: {', '.join(_OVERLAP_RULES)}",
                         field="overlap", file=p)
    if isinstance(reference, Volume):
        geom = reference.geometry
    elif isinstance(reference, Geometry):
        geom = reference
    else:
        raise InputError(f"must be a Volume or Geometry, got {type(reference).__name__}",
                         field="reference", file=p)
    if not p.is_file():
        raise UnreadableFileError("file does not exist", file=p, field="path")
    meta = {"source_file": str(p)}
    lower = p.name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        lm = read_labelmap(p, names=names)
        if not lm.names:
            raise InputError("label map has no name table; pass names= or put a JSON name "
                             "table next to it", file=p, field="names")
        out = resample(lm, geom, method="nearest")
        present = {int(v) for v in np.unique(out.array)} - {0}
        lost = sorted(n for k, n in lm.names.items() if k not in present)
        if lost:
            log.info("%s: VOIs outside the reference grid dropped: %s", p, lost)
        return out.replace(names={k: n for k, n in lm.names.items() if k in present},
                           meta={**lm.meta, **meta},
                           note=f"imported {p.name} onto the reference grid (nearest)")
    if not is_dicom_file(p):
        raise UnreadableFileError("neither NIfTI (.nii, .nii.gz) nor DICOM (no 'DICM' "
                                  "preamble)", file=p, field="path")
    modality = str(read_dataset(p, stop_before_pixels=True).get("Modality", "")).upper()
    ref = reference
    if modality == "RTSTRUCT":
        masks = read_rtstruct(p, ref)
    elif modality == "SEG":
        masks = read_seg_masks(p, reference=ref)
    else:
        raise InputError(f"Modality {modality!r} holds no VOIs; accepted: RTSTRUCT, SEG, or a "
                         "NIfTI label map", file=p, field="Modality")
    return _combine(masks, geom, overlap=overlap, file=p, modality="SEG", meta=meta,
                    history=(f"imported {modality} {p.name} onto the reference grid",))
