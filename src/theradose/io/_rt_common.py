"""Shared pieces of the RT Dose, RTSTRUCT and SEG readers/writers.

* :func:`as_reference` turns what the user passes as the reference image series (a
  :class:`~theradose.volume.Volume` whose ``meta`` carries the CT's UIDs, a folder of DICOM
  slices, a list of pydicom datasets, or a bare :class:`~theradose.volume.Geometry`) into one
  :class:`Reference` record: the grid plus the patient/study/series/frame-of-reference UIDs and the
  SOP instance UID of every slice in z-index order.
* :func:`as_masks` normalises a ``LabelMap`` or a ``{name: mask}`` dict on the reference grid.
* :func:`new_dataset` / :func:`save_dataset` build and atomically write a DICOM file.

``Volume.meta`` keys understood (as written by :func:`theradose.io.read_ct`): ``patient_id``,
``patient_name``, ``study_instance_uid``, ``series_instance_uid``, ``frame_of_reference_uid``,
``sop_instance_uids`` (one per slice, z-index order) and, when present, ``sop_class_uid``,
``patient_birth_date``, ``patient_sex``, ``study_date``, ``study_time``, ``study_id``,
``accession_number``, ``referring_physician_name``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import GeometryMismatchError, InputError
from theradose.io._dicom_common import geometry_from_slices, list_dicom_files, read_dataset
from theradose.io._outputs import atomic_path
from theradose.io._uids import creation_time, new_uid
from theradose.volume import Geometry, LabelMap, Volume

__all__ = [
    "SOP_CLASS_BY_MODALITY",
    "Reference",
    "as_masks",
    "as_reference",
    "format_ds",
    "new_dataset",
    "save_dataset",
]

#: Storage SOP Class UIDs of single-frame reference images, by modality.
SOP_CLASS_BY_MODALITY = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "NM": "1.2.840.10008.5.1.4.1.1.20",  # Nuclear Medicine Image Storage
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
}

#: Patient and study attributes copied from the reference into derived objects:
#: DICOM keyword -> Volume.meta key.
PATIENT_STUDY_KEYS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "PatientSex": "patient_sex",
    "StudyInstanceUID": "study_instance_uid",
    "StudyDate": "study_date",
    "StudyTime": "study_time",
    "StudyID": "study_id",
    "AccessionNumber": "accession_number",
    "ReferringPhysicianName": "referring_physician_name",
}


@dataclass(frozen=True, eq=False)
class Reference:
    """The image series that derived objects (RT Dose, RTSTRUCT, SEG) refer to.

    Attributes
    ----------
    geometry : Geometry
        Grid of the reference series (z index = slice order).
    frame_of_reference_uid, series_instance_uid : str or None
    sop_instance_uids : tuple of str or None
        SOP Instance UID of each slice in z-index order.
    sop_class_uid : str
        SOP Class UID of the slices.
    patient_study : dict
        DICOM keyword -> value for the patient and study attributes (StudyInstanceUID included).
    datasets : list of pydicom.Dataset or None
        Slice headers in z-index order, when the reference was given as DICOM.
    source : str
        What the reference was, for messages.
    """

    geometry: Geometry
    frame_of_reference_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uids: tuple[str, ...] | None = None
    sop_class_uid: str = SOP_CLASS_BY_MODALITY["CT"]
    patient_study: dict[str, Any] = field(default_factory=dict)
    datasets: list | None = None
    source: str = "reference"

    @property
    def study_instance_uid(self) -> str | None:
        """StudyInstanceUID of the reference, if known."""
        return self.patient_study.get("StudyInstanceUID")

    def require_uids(self, *, what: str) -> None:
        """Raise :class:`InputError` unless the study/series/FoR and slice UIDs are known."""
        missing = [k for k, v in (("study_instance_uid", self.study_instance_uid),
                                  ("series_instance_uid", self.series_instance_uid),
                                  ("frame_of_reference_uid", self.frame_of_reference_uid),
                                  ("sop_instance_uids", self.sop_instance_uids))
                   if not v or (isinstance(v, tuple) and not all(v))]
        if missing:
            raise InputError(
                f"{what} needs the reference series' UIDs, missing: {', '.join(missing)}; pass "
                "the CT folder, its datasets, or a Volume from theradose.io.read_ct whose meta "
                "has them (anonymisation may have blanked them)",
                field=f"reference ({self.source})")
        if len(self.sop_instance_uids) != self.geometry.shape[0]:
            raise InputError(
                f"{len(self.sop_instance_uids)} SOP instance UIDs for "
                f"{self.geometry.shape[0]} slices", field="reference.meta['sop_instance_uids']")


def as_reference(reference, *, field: str = "reference") -> Reference:
    """Normalise a reference given as Volume, Geometry, folder, file list or datasets.

    Parameters
    ----------
    reference : Volume, Geometry, str, Path, or sequence of pydicom.Dataset / paths
        A :class:`Volume` uses its geometry and the UIDs in ``meta``; a folder or a sequence of
        files/datasets is read as one single-frame image series (headers only).
    field : str
        Argument name used in error messages.

    Raises
    ------
    InputError
        Unsupported type, an empty folder, several series in one folder, multi-frame images.
    """
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, Geometry):
        return Reference(reference, source="Geometry")
    if isinstance(reference, Volume):
        return _from_volume(reference)
    if isinstance(reference, str | Path):
        p = Path(reference)
        files = list_dicom_files(p) if p.is_dir() else [p]
        datasets = [read_dataset(f, stop_before_pixels=True) for f in files]
        return _from_datasets(datasets, source=str(p), field=field)
    if isinstance(reference, Sequence) and len(reference) > 0:
        from pydicom.dataset import Dataset

        datasets = [r if isinstance(r, Dataset) else read_dataset(r, stop_before_pixels=True)
                    for r in reference]
        return _from_datasets(datasets, source=f"{len(datasets)} datasets", field=field)
    raise InputError(
        f"must be a Volume, Geometry, DICOM folder or list of datasets, got "
        f"{type(reference).__name__}", field=field)


def _from_volume(vol: Volume) -> Reference:
    meta = vol.meta or {}
    uids = meta.get("sop_instance_uids")
    patient_study = {kw: meta[key] for kw, key in PATIENT_STUDY_KEYS.items()
                     if meta.get(key) not in (None, "")}
    sop_class = meta.get("sop_class_uid") or SOP_CLASS_BY_MODALITY.get(vol.modality,
                                                                       SOP_CLASS_BY_MODALITY["CT"])
    return Reference(
        vol.geometry,
        frame_of_reference_uid=meta.get("frame_of_reference_uid") or None,
        series_instance_uid=meta.get("series_instance_uid") or None,
        sop_instance_uids=tuple(str(u) for u in uids) if uids else None,
        sop_class_uid=str(sop_class),
        patient_study=patient_study,
        source=f"Volume {vol.modality}",
    )


def _from_datasets(datasets: list, *, source: str, field: str) -> Reference:
    images = [d for d in datasets if "ImagePositionPatient" in d and "Rows" in d]
    if not images:
        raise InputError(f"no image slices (with ImagePositionPatient) in {source}", field=field)
    series = sorted({str(d.get("SeriesInstanceUID", "")) for d in images})
    if len(series) > 1:
        raise InputError(f"{len(series)} image series in {source}; give the folder or datasets "
                         "of exactly one series", field=field)
    if any(int(d.get("NumberOfFrames", 1) or 1) > 1 for d in images):
        raise InputError(f"multi-frame images in {source} are not supported as reference; use "
                         "a single-frame series (CT)", field=field)
    first = images[0]
    thickness = first.get("SpacingBetweenSlices") or first.get("SliceThickness")
    geom, order = geometry_from_slices(
        [d.ImagePositionPatient for d in images], first.ImageOrientationPatient,
        first.PixelSpacing, int(first.Rows), int(first.Columns), file=source,
        spacing_between_slices=float(thickness) if thickness else None)
    ordered = [images[i] for i in order]
    patient_study = {kw: first.get(kw) for kw in PATIENT_STUDY_KEYS if first.get(kw)
                     not in (None, "")}
    return Reference(
        geom,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")) or None,
        series_instance_uid=series[0] or None,
        sop_instance_uids=tuple(_sop_uid(d) for d in ordered),
        sop_class_uid=str(first.get("SOPClassUID", SOP_CLASS_BY_MODALITY["CT"])),
        patient_study=patient_study,
        datasets=ordered,
        source=source,
    )


def _sop_uid(ds) -> str:
    """SOPInstanceUID, or the file meta's MediaStorageSOPInstanceUID when it was blanked."""
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not uid and getattr(ds, "file_meta", None) is not None:
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
    return uid


def as_masks(masks, geometry: Geometry, *, field: str = "masks") -> dict[str, np.ndarray]:
    """``{name: bool (Z, Y, X) mask}`` from a LabelMap or dict, checked against ``geometry``.

    Raises
    ------
    GeometryMismatchError
        A LabelMap on another grid, or a mask of another shape.
    InputError
        No masks, an empty or too long name (DICOM LO: 64 characters), values other than 0/1.
    """
    if isinstance(masks, LabelMap):
        masks.geometry.require_same(geometry, what="label map and reference")
        named = set(masks.names)
        present = {int(v) for v in np.unique(masks.array)} - {0}
        if present - named:
            raise InputError(f"label values {sorted(present - named)} have no name; add them to "
                             "LabelMap.names", field=f"{field}.names")
        out = masks.masks()
    elif isinstance(masks, dict):
        out = {}
        for name, m in masks.items():
            arr = np.asarray(m)
            if arr.shape != geometry.shape:
                raise GeometryMismatchError(
                    f"mask {name!r} has shape {arr.shape}, the reference grid {geometry.shape}",
                    field=f"{field}[{name!r}]")
            if arr.dtype != np.bool_:
                if not (np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all()):
                    raise InputError(f"mask {name!r} must be boolean or 0/1, got dtype "
                                     f"{arr.dtype}", field=f"{field}[{name!r}]")
                arr = arr.astype(bool)
            out[str(name)] = arr
    else:
        raise InputError(f"must be a LabelMap or a dict of masks, got {type(masks).__name__}",
                         field=field)
    if not out:
        raise InputError("no masks to write", field=field)
    for name in out:
        if not name.strip() or len(name) > 64:
            raise InputError(f"ROI/segment name {name!r} must be 1-64 characters (DICOM LO)",
                             field=field)
    return out


def format_ds(values) -> list[str]:
    """DICOM DS strings (at most 16 characters) for finite numbers, shortest exact form first."""
    from pydicom.valuerep import format_number_as_ds

    out = []
    for v in np.atleast_1d(np.asarray(values, dtype=float)):
        s = repr(float(v))
        out.append(s if len(s) <= 16 else format_number_as_ds(float(v)))
    return out


def new_dataset(sop_class_uid: str, modality: str, ref: Reference | None, *,
                series_description: str = "", series_number: int = 900):
    """A dataset with file meta, SOP Common, Patient, General Study, Series and Equipment filled.

    Patient and study come from ``ref`` (a new StudyInstanceUID when none is known).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    from theradose import __version__

    now = creation_time()
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = new_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S.%f")
    ps = dict(ref.patient_study) if ref is not None else {}
    ds.PatientName = ps.get("PatientName", "")
    ds.PatientID = ps.get("PatientID", "")
    ds.PatientBirthDate = ps.get("PatientBirthDate", "")
    ds.PatientSex = ps.get("PatientSex", "")
    ds.StudyInstanceUID = ps.get("StudyInstanceUID") or new_uid()
    ds.StudyDate = ps.get("StudyDate", "")
    ds.StudyTime = ps.get("StudyTime", "")
    ds.StudyID = ps.get("StudyID", "")
    ds.AccessionNumber = ps.get("AccessionNumber", "")
    ds.ReferringPhysicianName = ps.get("ReferringPhysicianName", "")
    ds.Modality = modality
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    ds.SeriesDate = now.strftime("%Y%m%d")
    ds.SeriesTime = now.strftime("%H%M%S.%f")
    ds.OperatorsName = ""
    ds.Manufacturer = "theradose"
    ds.ManufacturerModelName = "theradose"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S.%f")
    return ds


def save_dataset(ds, path: str | Path, *, overwrite: bool, implicit_vr: bool = False) -> Path:
    """Write ``ds`` atomically (refusing to overwrite unless ``overwrite``); return the path."""
    from pydicom.uid import ImplicitVRLittleEndian

    if implicit_vr:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    with atomic_path(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)
