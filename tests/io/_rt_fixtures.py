"""Small synthetic CT series (pydicom, one dataset per slice) for the RT Dose/RTSTRUCT/SEG tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from theradose.volume import Geometry, Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def rotation_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def ct_datasets(geom: Geometry, *, seed: int = 0) -> list[Dataset]:
    """One CT Image Storage dataset per slice of ``geom`` (z-index order), HU noise pixels."""
    rng = np.random.default_rng(seed)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    row, col = geom.direction[:, 0], geom.direction[:, 1]
    out = []
    for k in range(geom.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = "Test^Phantom"
        ds.PatientID = "RT-001"
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.StudyDate, ds.StudyTime = "20240105", "101500"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "A1", ""
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        ds.ImagePositionPatient = [float(v) for v in geom.index_to_physical([0, 0, k])]
        ds.ImageOrientationPatient = [float(v) for v in np.r_[row, col]]
        ds.PixelSpacing = [geom.spacing_mm[1], geom.spacing_mm[0]]
        ds.SliceThickness = geom.spacing_mm[2]
        ds.Rows, ds.Columns = geom.shape[1], geom.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = rng.integers(0, 2000, geom.shape[1:], dtype=np.int16).tobytes()
        out.append(ds)
    return out


def write_ct(folder: Path, geom: Geometry, *, seed: int = 0) -> list[Path]:
    """Write :func:`ct_datasets` into ``folder`` (shuffled file names); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(ct_datasets(geom, seed=seed)):
        p = folder / f"ct_{(n * 7) % 97:03d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def ct_volume(datasets: list[Dataset], geom: Geometry) -> Volume:
    """A Volume with the meta keys theradose.io.read_ct provides (z order = datasets order)."""
    d0 = datasets[0]
    meta = {
        "study_instance_uid": d0.StudyInstanceUID,
        "series_instance_uid": d0.SeriesInstanceUID,
        "frame_of_reference_uid": d0.FrameOfReferenceUID,
        "sop_instance_uids": [d.SOPInstanceUID for d in datasets],
        "patient_id": d0.PatientID,
        "patient_name": str(d0.PatientName),
    }
    return Volume(np.zeros(geom.shape), geom, unit="HU", modality="CT", meta=meta)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_message(exc: BaseException, *, field: str, file: Path | str | None = None) -> None:
    """The error message is one line and names the field (and the file when given)."""
    text = str(exc)
    assert "\n" not in text, text
    assert field in text, text
    assert getattr(exc, "field", None) is not None and field in exc.field, (exc.field, text)
    if file is not None:
        assert str(file) in text, text
