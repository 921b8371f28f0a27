"""DICOM Segmentation (SEG): write VOIs with highdicom, read them back onto a grid.

Writing: a BINARY segmentation, one segment per VOI (segment numbers 1, 2, ... in the order of
the VOIs: dict order, or increasing label value for a LabelMap), each frame referencing its source
slice; empty frames are omitted. Segments are coded with SNOMED CT concepts from
``pydicom.sr.codedict`` where the VOI name is a known organ/structure (TotalSegmentator-style
names such as ``kidney_left`` add a laterality modifier), as a lesion/tumour, or else as
category/type "Tissue"; the VOI name is always kept in SegmentLabel.

Reading: frames are placed through their PlanePositionSequence (per-frame functional groups), so
the file may list frames in any order and omit empty ones. BINARY, FRACTIONAL (threshold at half
the maximum) and LABELMAP segmentations are read.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from theradose.errors import DicomTagError, GeometryMismatchError, InputError, TheradoseWarning
from theradose.io._dicom_common import read_dataset, require
from theradose.io._outputs import atomic_path
from theradose.io._rt_common import Reference, as_masks, as_reference
from theradose.io._uids import new_uid, stamp_creation
from theradose.volume import Geometry, LabelMap, resample

__all__ = ["read_seg", "read_seg_masks", "write_seg"]

log = logging.getLogger("theradose")

_ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")

#: Normalised VOI name -> SNOMED CT keyword in pydicom.sr.codedict (segmented property type).
ORGAN_CODES = {
    "liver": "Liver", "spleen": "Spleen", "kidney": "Kidney", "pancreas": "Pancreas",
    "stomach": "Stomach", "urinary_bladder": "Bladder", "bladder": "Bladder", "lung": "Lung",
    "heart": "Heart", "brain": "Brain", "parotid_gland": "ParotidGland", "parotid":
    "ParotidGland", "submandibular_gland": "SubmandibularGland", "submandibular":
    "SubmandibularGland", "lacrimal_gland": "LacrimalGland", "salivary_gland": "SalivaryGland",
    "salivary_glands": "SalivaryGland", "bone_marrow": "BoneMarrow", "red_marrow": "BoneMarrow",
    "prostate": "Prostate", "small_bowel": "SmallIntestine", "small_intestine": "SmallIntestine",
    "colon": "Colon", "gallbladder": "Gallbladder", "adrenal_gland": "AdrenalGland",
    "thyroid": "Thyroid", "thyroid_gland": "Thyroid", "esophagus": "Esophagus", "duodenum":
    "Duodenum", "aorta": "Aorta", "spinal_cord": "SpinalCord", "rectum": "Rectum", "trachea":
    "Trachea", "skin": "Skin", "bone": "Bone", "lymph_node": "LymphNode",
}
#: Name prefixes coded as morphologically abnormal structures -> type keyword.
LESION_CODES = {"lesion": "Lesion", "tumor": "Tumor", "tumour": "Tumor", "gtv": "Tumor",
                "metastasis": "Metastasis", "metastases": "Metastasis", "met": "Metastasis"}


def _segment_codes(name: str):
    """(category, type, laterality or None) coded concepts for a VOI name."""
    from pydicom.sr.codedict import codes

    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    side = None
    for s in ("left", "right"):
        if key.endswith(f"_{s}") or key.startswith(f"{s}_"):
            side = getattr(codes.SCT, s.capitalize())
            key = key.removesuffix(f"_{s}").removeprefix(f"{s}_")
    if key in ORGAN_CODES:
        return codes.SCT.AnatomicalStructure, getattr(codes.SCT, ORGAN_CODES[key]), side
    stem = re.split(r"[_\d]", key, maxsplit=1)[0]
    if stem in LESION_CODES:
        return codes.SCT.MorphologicallyAbnormalStructure, \
            getattr(codes.SCT, LESION_CODES[stem]), None
    return codes.SCT.Tissue, codes.SCT.Tissue, None


def _source_datasets(ref: Reference) -> list:
    """Header-only datasets for the reference slices (highdicom needs datasets, not pixels)."""
    if ref.datasets is not None:
        return ref.datasets
    from pydicom.dataset import Dataset

    g = ref.geometry
    row, col = g.direction[:, 0], g.direction[:, 1]
    out = []
    for k, uid in enumerate(ref.sop_instance_uids):
        ds = Dataset()
        ds.SOPClassUID = ref.sop_class_uid
        ds.SOPInstanceUID = uid
        ds.SeriesInstanceUID = ref.series_instance_uid
        ds.FrameOfReferenceUID = ref.frame_of_reference_uid
        for kw, value in ref.patient_study.items():
            setattr(ds, kw, value)
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                   "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            if kw not in ds:
                setattr(ds, kw, "")
        ds.Modality = "CT"
        ds.Rows, ds.Columns = g.shape[1], g.shape[2]
        ds.PixelSpacing = [g.spacing_mm[1], g.spacing_mm[0]]
        ds.SliceThickness = g.spacing_mm[2]
        ds.ImageOrientationPatient = [float(v) for v in np.r_[row, col]]
        ds.ImagePositionPatient = [float(v) for v in g.index_to_physical([0, 0, k])]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        out.append(ds)
    return out


def write_seg(masks, path: str | Path, *, reference, algorithm_name: str = "theradose",
              algorithm_type: str = "AUTOMATIC", algorithm_family: str = "ArtificialIntelligence",
              series_description: str = "theradose segmentation",
              overwrite: bool = False) -> Path:
    """Write VOIs as a DICOM Segmentation (BINARY, one segment per VOI) with highdicom.

    Parameters
    ----------
    masks : LabelMap or dict of str to (Z, Y, X) bool ndarray
        VOIs on the reference grid (dict masks may overlap).
    path : str or Path
        Output file.
    reference : Volume, DICOM folder or list of datasets
        Source image series (usually the CT): grid, UIDs and patient/study. A Volume needs the
        UID keys of :func:`theradose.io.read_ct` in ``meta``.
    algorithm_name : str
        SegmentAlgorithmName / AlgorithmName (not used for ``MANUAL``).
    algorithm_type : {'AUTOMATIC', 'SEMIAUTOMATIC', 'MANUAL'}
        SegmentAlgorithmType.
    algorithm_family : str
        Algorithm family, a keyword of DICOM CID 7162 in ``pydicom.sr.codedict.codes.cid7162``
        (``ArtificialIntelligence``, ``HistogramAnalysis`` for thresholds, ``ManualProcessing``,
        ...).
    series_description : str
        SeriesDescription.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        Reference without UIDs, bad names, unknown algorithm type or family.
    GeometryMismatchError
        Masks not on the reference grid.
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from theradose import __version__

    ref = as_reference(reference)
    ref.require_uids(what="write_seg")
    seg_masks = as_masks(masks, ref.geometry)
    algorithm_type = str(algorithm_type).upper()
    if algorithm_type not in _ALGORITHM_TYPES:
        raise InputError(f"got {algorithm_type!r}; accepted: {', '.join(_ALGORITHM_TYPES)}",
                         field="algorithm_type")
    if algorithm_family not in codes.cid7162.dir():
        raise InputError(f"got {algorithm_family!r}; accepted (DICOM CID 7162): "
                         f"{', '.join(codes.cid7162.dir())}", field="algorithm_family")
    alg = None
    if algorithm_type != "MANUAL":
        alg = hd.AlgorithmIdentificationSequence(
            algorithm_name, getattr(codes.cid7162, algorithm_family), __version__)
    descriptions = []
    for number, name in enumerate(seg_masks, start=1):
        category, prop, side = _segment_codes(name)
        d = hd.seg.SegmentDescription(number, name, category, prop, algorithm_type, alg)
        if side is not None:
            d.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept.from_code(side)]
        descriptions.append(d)
    n_seg = len(seg_masks)
    dtype = np.uint8 if n_seg < 255 else np.uint16
    pixels = np.zeros(ref.geometry.shape, dtype=dtype)  # label-map input when nothing overlaps
    overlap = False
    for number, m in enumerate(seg_masks.values(), start=1):
        overlap = overlap or bool(np.any(pixels[m] != 0))
        pixels[m] = number
    if overlap:  # one mask per segment: (Z, Y, X, S)
        pixels = np.stack(list(seg_masks.values()), axis=-1)
    sources = _source_datasets(ref)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(new_uid()), series_number=901,
        sop_instance_uid=hd.UID(new_uid()), instance_number=1, manufacturer="theradose",
        manufacturer_model_name="theradose", software_versions=__version__,
        device_serial_number="0", series_description=series_description[:64])
    with atomic_path(path, overwrite=overwrite) as tmp:
        stamp_creation(seg)
        seg.save_as(tmp, enforce_file_format=True)
    log.info("wrote SEG %s with %d segments", path, len(seg_masks))
    return Path(path)


def _frame_attr(seg, f: int, group: str, keyword: str):
    """Attribute of frame ``f`` from the per-frame functional groups, else the shared ones."""
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    shared = seg.get("SharedFunctionalGroupsSequence") or []
    for item in ([per_frame[f]] if f < len(per_frame) else []) + list(shared[:1]):
        seq = item.get(group)
        if seq and keyword in seq[0]:
            return seq[0].get(keyword)
    return None


def _open(path: Path, reference):
    """Read a SEG and work out where its frames go.

    Returns the segmentation, the target geometry, segment names {number: label}, per-frame
    (segment number, k, j0, i0) placements on the target, and the frames' own grid when it must
    be resampled (None otherwise).
    """
    import highdicom as hd

    seg = read_dataset(path)
    if str(seg.get("Modality", "")).upper() != "SEG":
        raise DicomTagError(f"not a Segmentation (Modality {seg.get('Modality', '')!r}, "
                            "expected 'SEG')", file=path, field="Modality")
    names: dict[int, str] = {}
    for item in require(seg, "SegmentSequence", file=path):
        num = int(item.SegmentNumber)
        if num == 0:  # the background segment of LABELMAP segmentations
            continue
        label = str(item.get("SegmentLabel", "")).strip() or f"segment {num}"
        if label in names.values():
            warnings.warn(f"{path}: SegmentLabel {label!r} is repeated; segment {num} is named "
                          f"{label!r} (segment {num})", TheradoseWarning, stacklevel=3)
            label = f"{label} (segment {num})"
        names[num] = label
    n_frames = int(seg.get("NumberOfFrames", 1) or 1)
    ipp = []
    for f in range(n_frames):
        pos = _frame_attr(seg, f, "PlanePositionSequence", "ImagePositionPatient")
        if pos is None:
            raise DicomTagError(f"frame {f + 1} has no ImagePositionPatient", file=path,
                                field="PlanePositionSequence")
        ipp.append([float(v) for v in pos])
    ipp = np.asarray(ipp)
    iop = _frame_attr(seg, 0, "PlaneOrientationSequence", "ImageOrientationPatient")
    ps = _frame_attr(seg, 0, "PixelMeasuresSequence", "PixelSpacing")
    if iop is None or ps is None:
        raise DicomTagError("no ImageOrientationPatient/PixelSpacing in the functional groups",
                            file=path, field="SharedFunctionalGroupsSequence")
    iop, ps = np.asarray(iop, dtype=float), np.asarray(ps, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    rows, cols = int(seg.Rows), int(seg.Columns)
    if str(seg.SegmentationType).upper() == "LABELMAP":
        frame_seg = np.zeros(n_frames, dtype=np.int64)  # pixel values are segment numbers
    else:
        frame_seg = np.array([int(_frame_attr(seg, f, "SegmentIdentificationSequence",
                                              "ReferencedSegmentNumber") or 0)
                              for f in range(n_frames)])
        bad = sorted(set(frame_seg.tolist()) - set(names))
        if bad:
            raise DicomTagError(f"frames refer to segments {bad} not in SegmentSequence",
                                file=path, field="ReferencedSegmentNumber")
    try:  # same as highdicom.seg.segread, on the dataset already read and checked above
        seg = hd.seg.Segmentation.from_dataset(seg, copy=False)
    except Exception as exc:
        raise DicomTagError(f"not a valid Segmentation for highdicom ({type(exc).__name__}: "
                            f"{exc})", file=path, field="SOPClassUID") from exc

    ref = as_reference(reference) if reference is not None else None
    if ref is not None and ref.frame_of_reference_uid and seg.get("FrameOfReferenceUID") and \
            str(seg.FrameOfReferenceUID) != ref.frame_of_reference_uid:
        raise GeometryMismatchError(
            f"segmentation frame of reference {seg.FrameOfReferenceUID} differs from the "
            f"reference's {ref.frame_of_reference_uid}; pass a Geometry to place it anyway",
            file=path, field="FrameOfReferenceUID")
    if ref is not None:
        g = ref.geometry
        idx = g.physical_to_index(ipp)  # x, y, z of each frame's first pixel
        aligned = (np.allclose(g.direction[:, :2], np.column_stack([row, col]), atol=1e-4)
                   and np.allclose(g.spacing_mm[:2], (ps[1], ps[0]), rtol=1e-4)
                   and np.allclose(idx, np.rint(idx), atol=1e-2))
        if aligned:
            place = np.rint(idx).astype(np.int64)
            return seg, g, names, frame_seg, place, None
    native = _native_geometry(ipp, row, col, normal, ps, rows, cols, seg, path)
    place = np.rint(native.physical_to_index(ipp)).astype(np.int64)
    if ref is not None:
        warnings.warn(f"{path}: segmentation frames are not on the reference grid; resampled "
                      "with nearest neighbour", TheradoseWarning, stacklevel=3)
        return seg, ref.geometry, names, frame_seg, place, native
    return seg, native, names, frame_seg, place, None


def _native_geometry(ipp, row, col, normal, ps, rows, cols, seg, path) -> Geometry:
    proj = ipp @ normal
    inplane = ipp - np.outer(proj, normal)
    if np.max(np.abs(inplane - inplane[0])) > 1e-2:
        raise DicomTagError("frames do not share one in-plane origin (tiled or shifted frames "
                            "are not supported)", file=path, field="PlanePositionSequence")
    planes = np.unique(np.round(proj, 3))
    dz = _frame_attr(seg, 0, "PixelMeasuresSequence", "SpacingBetweenSlices")
    if dz:
        dz = float(dz)
    elif planes.size > 1:
        dz = float(np.min(np.diff(planes)))
    else:
        dz = float(_frame_attr(seg, 0, "PixelMeasuresSequence", "SliceThickness") or 1.0)
    steps = (planes - planes[0]) / dz
    if np.max(np.abs(steps - np.rint(steps)), initial=0) > 0.01:
        raise DicomTagError(f"frame positions are not on a regular {dz:g} mm slice lattice",
                            file=path, field="PlanePositionSequence")
    n = int(np.rint(steps[-1])) + 1
    origin = inplane[0] + planes[0] * normal
    return Geometry((n, rows, cols), (float(ps[1]), float(ps[0]), abs(dz)), tuple(origin),
                    np.column_stack([row, col, normal]))


def _frames(seg, path) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, frame pixels as segment numbers or bool) for each frame."""
    pix = seg.pixel_array
    if pix.ndim == 2:
        pix = pix[None]
    kind = str(seg.SegmentationType).upper()
    if kind == "FRACTIONAL":
        limit = float(seg.get("MaximumFractionalValue", 255)) / 2.0
        pix = pix >= limit
    for f in range(pix.shape[0]):
        yield f, pix[f]


def _paste(shape: tuple, frame: np.ndarray, k: int, j0: int, i0: int) -> tuple | None:
    """Index slices (target, frame) for the part of a frame placed at (k, j0, i0) on the grid.

    Returns None when the frame lies outside a grid of ``shape``.
    """
    nz, ny, nx = shape
    if not 0 <= k < nz:
        return None
    r, c = frame.shape
    ja, jb = max(j0, 0), min(j0 + r, ny)
    ia, ib = max(i0, 0), min(i0 + c, nx)
    if ja >= jb or ia >= ib:
        return None
    return (k, slice(ja, jb), slice(ia, ib)), (slice(ja - j0, jb - j0), slice(ia - i0, ib - i0))


def read_seg_masks(path: str | Path, reference=None) -> dict[str, np.ndarray]:
    """Read a DICOM Segmentation as one boolean mask per segment (overlaps allowed).

    Parameters
    ----------
    path : str or Path
        SEG file.
    reference : Geometry, Volume, DICOM folder or list of datasets, optional
        Grid of the result. Frames aligned with it are placed exactly; otherwise the
        segmentation's own grid is built and resampled onto it (nearest neighbour, with a
        warning). Without it, the grid spanned by the frames is used.

    Returns
    -------
    dict of str to (Z, Y, X) bool ndarray
        Keyed by SegmentLabel, in segment-number order.

    Raises
    ------
    UnreadableFileError, DicomTagError, GeometryMismatchError
        As :func:`read_seg`.
    """
    p = Path(path)
    seg, geom, names, frame_seg, place, native = _open(p, reference)
    grid = native if native is not None else geom
    out = {n: np.zeros(grid.shape, dtype=bool) for n in names.values()}
    labelmap = str(seg.SegmentationType).upper() == "LABELMAP"
    for f, frame in _frames(seg, p):
        cut = _paste(grid.shape, frame, place[f, 2], place[f, 1], place[f, 0])
        if cut is None:
            continue
        tsl, fsl = cut
        if labelmap:
            for num in np.unique(frame[fsl]):
                if int(num) in names:
                    out[names[int(num)]][tsl] |= frame[fsl] == num
        else:
            out[names[int(frame_seg[f])]][tsl] |= frame[fsl].astype(bool)
    if native is not None:
        out = {n: resample(LabelMap(m.astype(np.uint8), native, names={1: "x"}),
                           geom).array.astype(bool) for n, m in out.items()}
    return out


def read_seg(path: str | Path, reference=None) -> LabelMap:
    """Read a DICOM Segmentation whose segments do not overlap as a LabelMap.

    Label values are the segment numbers and names the SegmentLabels. See
    :func:`read_seg_masks` for ``reference`` and the placement rule.

    Returns
    -------
    LabelMap
        ``modality='SEG'``; ``meta`` holds ``frame_of_reference_uid``, ``series_instance_uid``,
        ``sop_instance_uid``, ``source``.

    Raises
    ------
    UnreadableFileError
        Missing or non-DICOM file.
    DicomTagError
        Not a SEG, frames without positions, frames that refer to unknown segments.
    GeometryMismatchError
        Frame of reference differs from the reference's.
    InputError
        Two segments share voxels (use :func:`read_seg_masks`).
    """
    p = Path(path)
    seg, geom, names, frame_seg, place, native = _open(p, reference)
    grid = native if native is not None else geom
    n_max = max(names, default=0)
    lab = np.zeros(grid.shape, dtype=np.uint8 if n_max < 256 else np.uint16)
    labelmap = str(seg.SegmentationType).upper() == "LABELMAP"
    for f, frame in _frames(seg, p):
        cut = _paste(grid.shape, frame, place[f, 2], place[f, 1], place[f, 0])
        if cut is None:
            continue
        tsl, fsl = cut
        values = frame[fsl].astype(lab.dtype) if labelmap else \
            frame[fsl].astype(bool) * lab.dtype.type(frame_seg[f])
        region = lab[tsl]
        clash = (region != 0) & (values != 0) & (region != values)
        if np.any(clash):
            a, b = int(region[clash][0]), int(values[clash][0])
            raise InputError(f"segments {names.get(a, a)!r} and {names.get(b, b)!r} overlap; a "
                             "label map holds one label per voxel: use read_seg_masks", file=p,
                             field="SegmentSequence")
        lab[tsl] = np.where(values != 0, values, region)
    meta = {"frame_of_reference_uid": str(seg.get("FrameOfReferenceUID", "")),
            "series_instance_uid": str(seg.get("SeriesInstanceUID", "")),
            "sop_instance_uid": str(seg.get("SOPInstanceUID", "")), "source": str(p)}
    out = LabelMap(lab, grid, modality="SEG", names=names, meta=meta,
                   history=(f"read SEG {p.name}",))
    if native is not None:
        out = resample(out, geom)
    return out
