"""DICOM RT Structure Set: rasterise ROI contours onto a grid, write masks as contours.

Reading rule (docs/io-rt.md): each ``CLOSED_PLANAR`` contour is assigned to the slice whose
centre plane is nearest (within half the slice spacing); its points are mapped to index space
through the grid geometry; a voxel belongs to the ROI when its centre is inside by the even-odd
rule over all the ROI's contours on that slice (holes and several components work). When contours
from several planes fall on one slice (contours denser than the grid), only the plane nearest the
slice centre is used.

Writing rule: every slice's mask is outlined along voxel edges (outer boundary and holes of each
4-connected component), so that re-rasterising voxel centres gives the mask back exactly.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from theradose.errors import DicomTagError, GeometryMismatchError, InputError, TheradoseWarning
from theradose.io._contours import rasterize_even_odd, trace_voxel_boundaries
from theradose.io._dicom_common import read_dataset, require
from theradose.io._rt_common import Reference, as_masks, as_reference, new_dataset, save_dataset
from theradose.io._uids import creation_time
from theradose.volume import LabelMap

__all__ = ["read_rtstruct", "rtstruct_to_labelmap", "write_rtstruct"]

log = logging.getLogger("theradose")

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
_DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"

#: Default ROI colours (RGB), cycled in ROI order.
PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
]


def read_rtstruct(path: str | Path, reference, *,
                  names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Rasterise the ROIs of an RT Structure Set onto a reference grid.

    Parameters
    ----------
    path : str or Path
        RTSTRUCT file.
    reference : Geometry, Volume, DICOM folder or list of datasets
        Grid to rasterise on. When it carries a FrameOfReferenceUID (a Volume from
        :func:`theradose.io.read_ct`, a folder) it must match the structure set's.
    names : sequence of str, optional
        ROIs to return (default: all, in StructureSetROISequence order).

    Returns
    -------
    dict of str to (Z, Y, X) bool ndarray
        One mask per ROI name; masks may overlap; ROIs without contours give empty masks.

    Warns
    -----
    TheradoseWarning
        Per ROI: contours that are not CLOSED_PLANAR (ignored), not parallel to the slices
        (ignored), on no slice of the grid (ignored), or reaching beyond the grid (clipped).

    Raises
    ------
    UnreadableFileError
        Missing or non-DICOM file.
    DicomTagError
        Not an RTSTRUCT, missing sequences, a ReferencedROINumber with no ROI, ContourData whose
        length is not 3 × NumberOfContourPoints.
    GeometryMismatchError
        Frame of reference differs from the reference's.
    InputError
        Unknown names.
    """
    p = Path(path)
    ds = read_dataset(p)
    if str(ds.get("Modality", "")).upper() != "RTSTRUCT":
        raise DicomTagError(f"not an RT Structure Set (Modality {ds.get('Modality', '')!r}, "
                            "expected 'RTSTRUCT')", file=p, field="Modality")
    ref = as_reference(reference)
    geom = ref.geometry
    rois = require(ds, "StructureSetROISequence", file=p)
    roi_names: dict[int, str] = {}
    for_uids = set()
    for item in rois:
        num = int(require(item, "ROINumber", file=p))
        name = str(item.get("ROIName", "")).strip() or f"ROI {num}"
        if name in roi_names.values():
            warnings.warn(f"{p}: ROIName {name!r} is repeated; ROI {num} is named "
                          f"{name!r} (ROI {num})", TheradoseWarning, stacklevel=2)
            name = f"{name} (ROI {num})"
        roi_names[num] = name
        if item.get("ReferencedFrameOfReferenceUID"):
            for_uids.add(str(item.ReferencedFrameOfReferenceUID))
    if ref.frame_of_reference_uid and for_uids and ref.frame_of_reference_uid not in for_uids:
        raise GeometryMismatchError(
            f"structure set frame of reference {sorted(for_uids)} differs from the reference's "
            f"{ref.frame_of_reference_uid}; pass a Geometry to rasterise anyway", file=p,
            field="ReferencedFrameOfReferenceUID")
    wanted = list(roi_names.values()) if names is None else list(names)
    unknown = [n for n in wanted if n not in roi_names.values()]
    if unknown:
        raise InputError(f"unknown ROI names {unknown}; in file: {list(roi_names.values())}",
                         file=p, field="names")
    out = {n: np.zeros(geom.shape, dtype=bool) for n in wanted}
    for rc in require(ds, "ROIContourSequence", file=p):
        num = int(require(rc, "ReferencedROINumber", file=p))
        if num not in roi_names:
            raise DicomTagError(f"{num} is not an ROINumber of StructureSetROISequence "
                                f"({sorted(roi_names)})", file=p, field="ReferencedROINumber")
        name = roi_names[num]
        if name in out:
            out[name] = _rasterise_roi(rc.get("ContourSequence") or [], geom, p, name)
    return out


def _rasterise_roi(contours, geom, p: Path, name: str) -> np.ndarray:
    chunks, skipped_type = [], 0
    for c in contours:
        if str(c.get("ContourGeometricType", "")).upper() != "CLOSED_PLANAR":
            skipped_type += 1
            continue
        data = _contour_data(c, p)
        n = c.get("NumberOfContourPoints")
        if data.size % 3 or (n is not None and int(n) * 3 != data.size):
            raise DicomTagError(f"ROI {name!r}: {data.size} values, expected 3 × "
                                f"NumberOfContourPoints ({n})", file=p, field="ContourData")
        chunks.append(data.reshape(-1, 3))
    if skipped_type:
        warnings.warn(f"{p}: ROI {name!r}: {skipped_type} contour(s) not CLOSED_PLANAR ignored",
                      TheradoseWarning, stacklevel=3)
    if not chunks:
        return np.zeros(geom.shape, dtype=bool)
    sizes = np.array([c.shape[0] for c in chunks])
    idx = geom.physical_to_index(np.concatenate(chunks))  # (N, 3): x, y, z index
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    kmean = np.add.reduceat(idx[:, 2], first) / sizes
    spread = np.maximum.reduceat(idx[:, 2], first) - np.minimum.reduceat(idx[:, 2], first)
    k = np.rint(kmean).astype(np.int64)
    nz, ny, nx = geom.shape
    planar = spread <= 0.5
    on_grid = (k >= 0) & (k < nz)
    problems = []
    if np.any(~planar):
        problems.append(f"{int(np.sum(~planar))} not parallel to the slices (ignored)")
    if np.any(planar & ~on_grid):
        problems.append(f"{int(np.sum(planar & ~on_grid))} on no slice of the grid (ignored)")
    keep = planar & on_grid
    # one contour plane per slice: the one nearest the slice centre
    dist = np.abs(kmean - k)
    nearest = np.full(nz, np.inf)
    np.minimum.at(nearest, k[keep], dist[keep])
    keep &= dist <= nearest[np.clip(k, 0, nz - 1)] + 1e-3
    per_point = np.repeat(keep, sizes)
    xy = idx[per_point, :2]
    lim = 0.5 + 1e-3  # voxel-edge outlines of border voxels lie on the grid edge (± rounding)
    outside = (xy[:, 0] < -lim) | (xy[:, 0] > nx - 1 + lim) | (xy[:, 1] < -lim) | \
        (xy[:, 1] > ny - 1 + lim)
    if np.any(outside):
        n_off = np.unique(np.repeat(np.arange(sizes.size), sizes)[per_point][outside]).size
        problems.append(f"{n_off} reaching beyond the grid (clipped)")
    if problems:
        warnings.warn(f"{p}: ROI {name!r}: contours {'; '.join(problems)}", TheradoseWarning,
                      stacklevel=3)
    poly = np.repeat(np.arange(sizes.size), sizes)[per_point]
    return rasterize_even_odd(xy, poly, k, geom.shape)


def _contour_data(item, p: Path) -> np.ndarray:
    """ContourData of a contour item as a float array.

    The raw bytes are parsed directly when pydicom has not converted them yet (about 20× faster
    than building one DSfloat per value).
    """
    from pydicom.dataelem import RawDataElement

    elem = item.get_item(0x30060050) if 0x30060050 in item else None
    if elem is None or elem.value is None or len(elem.value) == 0:
        raise DicomTagError("required attribute is missing or empty", file=p,
                            field="ContourData")
    try:
        if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
            return np.array(elem.value.split(b"\\")).astype(float)
        return np.asarray(item.ContourData, dtype=float).ravel()
    except ValueError as exc:
        raise DicomTagError(f"not numbers ({exc})", file=p, field="ContourData") from exc


def rtstruct_to_labelmap(path: str | Path, reference, *,
                         names: Sequence[str] | None = None) -> LabelMap:
    """Read non-overlapping ROIs of an RT Structure Set as a LabelMap on the reference grid.

    Labels are 1, 2, ... in ROI order (or the order of ``names``); see :func:`read_rtstruct`
    for the rasterisation rule, parameters and warnings.

    Raises
    ------
    InputError
        Two ROIs share voxels (use :func:`read_rtstruct`, or pass ``names`` without one of them).
    """
    ref = as_reference(reference)
    masks = read_rtstruct(path, ref, names=names)
    count = np.zeros(ref.geometry.shape, dtype=np.uint16)
    for m in masks.values():
        count += m
    if np.any(count > 1):
        items = list(masks.items())
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                n = int(np.sum(items[a][1] & items[b][1]))
                if n:
                    raise InputError(
                        f"ROIs {items[a][0]!r} and {items[b][0]!r} overlap in {n} voxels; a label "
                        "map holds one label per voxel: use read_rtstruct or select names",
                        file=str(path), field="names")
    meta = {"frame_of_reference_uid": ref.frame_of_reference_uid or "", "source": str(path)}
    return LabelMap.from_masks(masks, ref.geometry, modality="RTSTRUCT", meta=meta,
                               history=(f"rasterised RTSTRUCT {Path(path).name}",))


def write_rtstruct(masks, path: str | Path, *, reference,
                   colors: dict[str, Sequence[int]] | None = None,
                   structure_set_label: str = "theradose",
                   series_description: str = "theradose structures",
                   overwrite: bool = False) -> Path:
    """Write masks as an RT Structure Set whose contours trace the voxel boundaries.

    Parameters
    ----------
    masks : LabelMap or dict of str to (Z, Y, X) bool ndarray
        ROIs on the reference grid (one ROI per name; dict masks may overlap).
    path : str or Path
        Output file.
    reference : Volume, DICOM folder or list of datasets
        The image series the contours are drawn on (usually the CT): its grid and its
        study/series/frame-of-reference/SOP instance UIDs (``ContourImageSequence``).
    colors : dict of str to (R, G, B), optional
        ROIDisplayColor per name, integers 0-255 (default: a fixed palette).
    structure_set_label : str
        StructureSetLabel (SH, up to 16 characters).
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
        Reference without UIDs, bad names or colours, masks not 0/1.
    GeometryMismatchError
        Masks not on the reference grid.
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.

    Notes
    -----
    Contours are polygons through voxel corners (pixel-edge outlines); the file is written with
    Implicit VR Little Endian so that long contours are not limited by the 64 KiB value length of
    explicit-VR DS.
    """
    ref = as_reference(reference)
    ref.require_uids(what="write_rtstruct")
    roi_masks = as_masks(masks, ref.geometry)
    colors = dict(colors or {})
    for name, rgb in colors.items():
        vals = np.asarray(rgb)
        if name not in roi_masks or vals.shape != (3,) or np.any((vals < 0) | (vals > 255)):
            raise InputError(f"colour for {name!r} must be 3 integers 0-255 for a known ROI, "
                             f"got {rgb!r}", field="colors")
    if len(structure_set_label) > 16:
        raise InputError(f"at most 16 characters (SH), got {len(structure_set_label)}",
                         field="structure_set_label")
    ds = _build(roi_masks, ref, colors, structure_set_label, series_description)
    out = save_dataset(ds, path, overwrite=overwrite, implicit_vr=True)
    log.info("wrote RTSTRUCT %s with %d ROIs", out, len(roi_masks))
    return out


def _build(roi_masks: dict[str, np.ndarray], ref: Reference, colors: dict,
           label: str, series_description: str):
    from pydicom.config import disable_value_validation
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    ds = new_dataset(RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", ref,
                     series_description=series_description)
    for kw in ("ContentDate", "ContentTime"):  # not in the RT Structure Set IOD
        delattr(ds, kw)
    now = creation_time()
    ds.FrameOfReferenceUID = ref.frame_of_reference_uid
    ds.StructureSetLabel = label
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S.%f")

    def image_ref(uid: str) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = ref.sop_class_uid
        item.ReferencedSOPInstanceUID = uid
        return item

    series = Dataset()
    series.SeriesInstanceUID = ref.series_instance_uid
    series.ContourImageSequence = DicomSequence([image_ref(u) for u in ref.sop_instance_uids])
    study = Dataset()
    study.ReferencedSOPClassUID = _DETACHED_STUDY_MANAGEMENT
    study.ReferencedSOPInstanceUID = ref.study_instance_uid
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ref.frame_of_reference_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])

    roi_seq, contour_seq, obs_seq = [], [], []
    geom = ref.geometry
    for number, (name, mask) in enumerate(roi_masks.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = ref.frame_of_reference_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = ""
        roi_seq.append(roi)

        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [int(c) for c in colors.get(name, PALETTE[(number - 1) %
                                                                       len(PALETTE)])]
        xy, loop, loop_slice = trace_voxel_boundaries(mask)
        if loop.size:
            ijk = np.column_stack([xy, loop_slice[loop].astype(float)])
            pts = geom.index_to_physical(ijk)
            text = np.char.mod("%.4f", pts)  # 0.1 µm; coordinates to ±1e10 mm fit 16 chars
            starts = np.flatnonzero(np.r_[True, loop[1:] != loop[:-1]])
            ends = np.r_[starts[1:], loop.size]
            items = []
            for n_c, (a, b) in enumerate(zip(starts, ends, strict=True), start=1):
                c = Dataset()
                c.ContourImageSequence = DicomSequence(
                    [image_ref(ref.sop_instance_uids[int(loop_slice[n_c - 1])])])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = int(b - a)
                c.ContourNumber = n_c
                with disable_value_validation():  # formatted above: valid DS, ≤ 16 chars
                    c.ContourData = text[a:b].ravel().tolist()
                items.append(c)
            rc.ContourSequence = DicomSequence(items)
        contour_seq.append(rc)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = ""
        obs.ROIInterpreter = ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = DicomSequence(roi_seq)
    ds.ROIContourSequence = DicomSequence(contour_seq)
    ds.RTROIObservationsSequence = DicomSequence(obs_seq)
    return ds
