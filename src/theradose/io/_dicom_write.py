"""Writing CT, NM (reconstructed SPECT) and PT images as standard DICOM (explicit VR little endian).

One :class:`DicomStudyInfo` passed to several writers puts the series in one study with one
patient and one frame of reference, as a SPECT/CT or PET/CT scanner would;
:meth:`DicomStudyInfo.new_study` gives the same patient's next session (new study, new frame of
reference).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import InputError, OutputExistsError, TheradoseWarning, UnitError
from theradose.io._administration import Administration
from theradose.io._dicom_common import format_dicom_datetime
from theradose.io._outputs import atomic_path
from theradose.io._radiopharmaceutical import half_life_s_of, radiopharmaceutical_item
from theradose.io._uids import new_uid
from theradose.volume import Geometry, Volume

__all__ = ["DicomStudyInfo", "write_ct_series", "write_nm", "write_pt_series"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def _uid() -> str:
    return new_uid()


@dataclass(frozen=True)
class DicomStudyInfo:
    """Patient and study attributes shared by all series of one study.

    Pass the same instance to :func:`write_ct_series`, :func:`write_nm` and
    :func:`write_pt_series` so that the series share StudyInstanceUID, PatientID and
    FrameOfReferenceUID (same patient, same scanner coordinates). UIDs are generated once, when
    the instance is created. For another session of the same patient (another day, the
    patient repositioned) use :meth:`new_study`.

    Parameters
    ----------
    patient_id, patient_name : str
        PatientID and PatientName (DICOM PN, ``"Family^Given"``).
    patient_sex : str
        ``"M"``, ``"F"``, ``"O"`` or ``""``.
    patient_birth_date : date, optional
    patient_weight_kg, patient_height_m : float, optional
        PatientWeight (kg) and PatientSize (m).
    study_instance_uid, frame_of_reference_uid : str
        Generated with :func:`pydicom.uid.generate_uid` unless given.
    study_datetime : datetime, optional
        StudyDate/StudyTime; by default the acquisition time of the written volume.
    study_description, study_id, accession_number : str
    """

    patient_id: str = "ANON"
    patient_name: str = "Anonymous"
    patient_sex: str = ""
    patient_birth_date: date | None = None
    patient_weight_kg: float | None = None
    patient_height_m: float | None = None
    study_instance_uid: str = field(default_factory=_uid)
    frame_of_reference_uid: str = field(default_factory=_uid)
    study_datetime: datetime | None = None
    study_description: str = ""
    study_id: str = "1"
    accession_number: str = ""

    def __post_init__(self) -> None:
        if self.patient_sex not in ("M", "F", "O", ""):
            raise InputError(f"must be 'M', 'F', 'O' or '', got {self.patient_sex!r}",
                             field="patient_sex")
        for name in ("patient_weight_kg", "patient_height_m"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise InputError(f"must be a number > 0 or None, got {v!r}", field=name)
        for name in ("study_instance_uid", "frame_of_reference_uid"):
            _check_uid(getattr(self, name), name)

    @classmethod
    def from_volume(cls, volume: Volume) -> DicomStudyInfo:
        """Patient and study of a volume read from DICOM (its ``meta``); new UIDs where empty."""
        m = volume.meta
        kw: dict[str, Any] = {}
        for key in ("patient_id", "patient_name", "patient_sex", "study_instance_uid",
                    "frame_of_reference_uid"):
            if m.get(key):
                kw[key] = str(m[key])
        for key in ("patient_weight_kg", "patient_height_m"):
            if m.get(key):
                kw[key] = float(m[key])
        if kw.get("patient_sex") not in (None, "M", "F", "O"):
            kw.pop("patient_sex")
        return cls(**kw)

    def replace(self, **changes) -> DicomStudyInfo:
        """Copy with fields replaced."""
        d = asdict(self)
        d.update(changes)
        return DicomStudyInfo(**d)

    def new_study(self, **changes) -> DicomStudyInfo:
        """The same patient in another imaging session: new StudyInstanceUID and FoR UID.

        A patient scanned on another day, or taken off the table and positioned again, is a new
        study whose scanner coordinates are not those of the earlier session: viewers and
        registration tools take a shared FrameOfReferenceUID to mean "already registered"
        (DICOM PS3.3 C.7.4.1), so each session needs its own. Patient attributes are kept;
        ``study_datetime`` is reset to the default (the written volume's acquisition time).
        UIDs come from :func:`~theradose.io._uids.new_uid` (reproducible inside
        :func:`~theradose.io.reproducible_dicom`).

        Parameters
        ----------
        **changes
            Other fields to set (``study_description``, ``study_id``, ...).

        Examples
        --------
        >>> pet_ct = DicomStudyInfo(patient_id="P1")
        >>> spect_ct = pet_ct.new_study(study_id="2")
        >>> spect_ct.patient_id == "P1"
        True
        >>> spect_ct.frame_of_reference_uid != pet_ct.frame_of_reference_uid
        True
        """
        d = asdict(self)
        d.update(study_instance_uid=_uid(), frame_of_reference_uid=_uid(), study_datetime=None)
        d.update(changes)
        return DicomStudyInfo(**d)


def _check_uid(uid: str, name: str) -> None:
    import re

    if not isinstance(uid, str) or len(uid) > 64 or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid):
        raise InputError(f"not a valid DICOM UID (digits and dots, <= 64 chars): {uid!r}",
                         field=name)


def _study_info(volume: Volume, patient, study_uid, frame_of_reference_uid) -> DicomStudyInfo:
    if patient is None:
        info = DicomStudyInfo.from_volume(volume)
    elif isinstance(patient, DicomStudyInfo):
        info = patient
    elif isinstance(patient, dict):
        known = {f.name for f in fields(DicomStudyInfo)}
        bad = sorted(set(patient) - known)
        if bad:
            raise InputError(f"unknown keys {bad}; accepted: {sorted(known)}", field="patient")
        info = DicomStudyInfo(**patient)
    else:
        raise InputError(f"must be a DicomStudyInfo, a dict or None, got "
                         f"{type(patient).__name__}", field="patient")
    changes = {}
    if study_uid is not None:
        changes["study_instance_uid"] = study_uid
    if frame_of_reference_uid is not None:
        changes["frame_of_reference_uid"] = frame_of_reference_uid
    return info.replace(**changes) if changes else info


# ---------------------------------------------------------------------------------- values
def _ds(value: float) -> str:
    """A DS string (<= 16 characters) for ``value``."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _ds_up(value: float) -> float:
    """The smallest DS-representable number not below ``value`` (so scaled values still fit)."""
    s = float(_ds(value))
    step = value * 1e-15
    while s < value:
        s = float(_ds(s + step))
        step *= 2
    return s


def _quantise(arr: np.ndarray, *, signed: bool, integer_first: bool = False
              ) -> tuple[np.ndarray, float, float]:
    """Stored integers, RescaleSlope and RescaleIntercept (intercept 0) for one block of values.

    ``value ≈ stored × slope``; the rounding error is at most ``slope / 2``.
    """
    top = 32767 if signed else 65535
    vmax = float(np.max(np.abs(arr))) if arr.size else 0.0
    if vmax == 0:
        slope = 1.0
    elif integer_first and vmax <= top and np.all(arr == np.round(arr)):
        slope = 1.0
    else:
        slope = _ds_up(vmax / top)
    stored = np.clip(np.rint(arr / slope), -top - 1 if signed else 0, top)
    return stored.astype(np.int16 if signed else np.uint16), slope, 0.0


def _warn_ms(stored_s: float, wanted_s: float) -> None:
    """ActualFrameDuration is an integer number of ms (VR IS): say when that rounds."""
    if abs(stored_s - wanted_s) > 1e-9 * wanted_s:
        warnings.warn(str(InputError(
            f"{wanted_s!r} s is stored as {stored_s!r} s (ActualFrameDuration is whole ms)",
            field="acquisition_duration_s")), TheradoseWarning, stacklevel=3)


def _check_volume(volume: Volume) -> None:
    if not isinstance(volume, Volume):
        raise InputError(f"must be a Volume, got {type(volume).__name__}", field="volume")
    if not np.all(np.isfinite(volume.array)):
        raise InputError("contains NaN or infinite values; DICOM stores finite integers",
                         field="volume")


def _right_handed(volume: Volume) -> tuple[np.ndarray, Geometry]:
    """Array and geometry with slices along +(row × column), as DICOM slice stacks are read.

    A left-handed direction (det = -1) is the same grid with the slice order reversed.
    """
    g = volume.geometry
    arr = np.asarray(volume.array)
    if np.linalg.det(g.direction) > 0:
        return arr, g
    d = g.direction.copy()
    d[:, 2] *= -1
    origin = g.index_to_physical([0.0, 0.0, g.shape[0] - 1.0])
    return arr[::-1], Geometry(g.shape, g.spacing_mm, tuple(origin), d)


def _positions(g: Geometry) -> np.ndarray:
    """ImagePositionPatient of each slice, (Z, 3)."""
    k = np.arange(g.shape[0], dtype=float)
    return np.asarray(g.origin_mm)[None, :] + (k * g.spacing_mm[2])[:, None] * g.direction[:, 2]


def _iop(g: Geometry) -> list[str]:
    return [_ds(v) for v in (*g.direction[:, 0], *g.direction[:, 1])]


def _slice_plane(ds, g: Geometry, position: np.ndarray, normal: np.ndarray) -> None:
    """Image Plane module of one slice at ``position``, plus a signed 16-bit pixel module."""
    ds.SliceThickness = _ds(g.spacing_mm[2])
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = _iop(g)
    ds.SliceLocation = _ds(float(position @ normal))
    ds.PixelSpacing = _pixel_spacing(g)
    _pixel_module(ds, g.shape[1], g.shape[2], signed=True)


def _pixel_spacing(g: Geometry) -> list[str]:
    return [_ds(g.spacing_mm[1]), _ds(g.spacing_mm[0])]  # between rows (y), between columns (x)


def _da_tm(t: datetime | None) -> tuple[str, str]:
    return format_dicom_datetime(t) if t is not None else ("", "")


# ---------------------------------------------------------------------------------- datasets
def _base(sop_class: str, modality: str, info: DicomStudyInfo, *, series_uid: str,
          series_number: int, series_description: str, series_time: datetime | None,
          acquisition_time: datetime | None):
    """Dataset with the Patient, Study, Series, Frame of Reference, Equipment, SOP modules."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    from theradose import __version__

    sop_uid = _uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "THERADOSE"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    study_t = info.study_datetime or series_time or acquisition_time
    ds.StudyDate, ds.StudyTime = _da_tm(study_t)
    ds.SeriesDate, ds.SeriesTime = _da_tm(series_time or acquisition_time)
    ds.ContentDate, ds.ContentTime = _da_tm(acquisition_time)
    ds.AccessionNumber = info.accession_number
    ds.Modality = modality
    ds.Manufacturer = "theradose"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = info.study_description
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = "theradose"
    ds.SoftwareVersions = str(__version__)
    ds.PatientName = info.patient_name
    ds.PatientID = info.patient_id
    ds.PatientBirthDate = info.patient_birth_date.strftime("%Y%m%d") \
        if info.patient_birth_date else ""
    ds.PatientSex = info.patient_sex
    if info.patient_height_m is not None:
        ds.PatientSize = _ds(info.patient_height_m)
    if info.patient_weight_kg is not None:
        ds.PatientWeight = _ds(info.patient_weight_kg)
    ds.StudyInstanceUID = info.study_instance_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = info.study_id
    ds.SeriesNumber = int(series_number)
    ds.FrameOfReferenceUID = info.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    if acquisition_time is not None:
        ds.AcquisitionDate, ds.AcquisitionTime = _da_tm(acquisition_time)
    return ds


def _pixel_module(ds, rows: int, cols: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0


def _save(ds, path: Path, *, overwrite: bool) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return Path(path)


def _series_folder(folder, prefix: str, *, overwrite: bool) -> Path:
    """Check an output folder: refuse a non-empty one unless ``overwrite`` (then drop our files)."""
    d = Path(folder)
    if d.exists() and not d.is_dir():
        raise OutputExistsError(f"{d}: exists and is not a folder")
    if d.is_dir() and any(d.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{d}: output folder exists and is not empty; pass "
                                    "overwrite=True (CLI: --overwrite) or choose another folder")
        for old in d.glob(f"{prefix}_*.dcm"):  # a previous series written by us
            old.unlink()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _patient_orientation(ds) -> None:
    from pydicom.sequence import Sequence as DSequence

    ds.PatientOrientationCodeSequence = DSequence([])
    ds.PatientGantryRelationshipCodeSequence = DSequence([])


# ---------------------------------------------------------------------------------- CT
def write_ct_series(volume: Volume, folder: str | Path, *,
                    patient: DicomStudyInfo | dict | None = None, study_uid: str | None = None,
                    frame_of_reference_uid: str | None = None, series_description: str = "",
                    series_number: int = 1, overwrite: bool = False) -> list[Path]:
    """Write a CT volume (HU) as a CT Image Storage series, one file per slice.

    Values are stored as int16 with one RescaleSlope/RescaleIntercept for the series (slope 1,
    intercept 0 when the HU fit int16, so the rounding error is at most 0.5 HU).

    Parameters
    ----------
    volume : Volume
        Unit HU (``(Z, Y, X)``); ``acquisition_time`` becomes AcquisitionDate/Time.
    folder : str or Path
        Created if needed; files ``CT_0001.dcm`` ... in slice order.
    patient : DicomStudyInfo or dict, optional
        Patient and study; default: from ``volume.meta`` (a volume read from DICOM keeps its
        study and frame of reference), else new UIDs.
    study_uid, frame_of_reference_uid : str, optional
        Override those of ``patient``.
    series_description : str
    series_number : int
    overwrite : bool
        Write into a non-empty folder (our previous ``CT_*.dcm`` files there are removed).

    Returns
    -------
    list of Path
        Files in slice order (along +row × column).

    Raises
    ------
    OutputExistsError
        If ``folder`` is not empty and ``overwrite`` is False.
    UnitError
        If the volume is not in HU.
    """
    _check_volume(volume)
    if volume.unit != "HU":
        raise UnitError(f"CT needs HU, got {volume.unit}", field="volume.unit")
    info = _study_info(volume, patient, study_uid, frame_of_reference_uid)
    arr, g = _right_handed(volume)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= -32768 and hi <= 32767:
        slope, intercept = 1.0, 0.0
    else:
        slope = _ds_up((hi - lo) / 65534.0)
        intercept = float(_ds((hi + lo) / 2.0))
    stored = np.clip(np.rint((arr - intercept) / slope), -32768, 32767).astype(np.int16)
    d = _series_folder(folder, "CT", overwrite=overwrite)
    series_uid = _uid()
    pos = _positions(g)
    normal = g.direction[:, 2]
    out = []
    for k in range(g.shape[0]):
        ds = _base(CT_IMAGE_STORAGE, "CT", info, series_uid=series_uid,
                   series_number=series_number, series_description=series_description,
                   series_time=volume.acquisition_time, acquisition_time=volume.acquisition_time)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"  # Type 2C for CT (no PatientOrientationCodeSequence)
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.KVP = ""
        _slice_plane(ds, g, pos[k], normal)
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2").tobytes()
        out.append(_save(ds, d / f"CT_{k + 1:04d}.dcm", overwrite=True))
    return out


# ---------------------------------------------------------------------------------- NM
def write_nm(volume: Volume, path: str | Path, *, administration: Administration | None = None,
             acquisition_duration_s: float | None = None, half_life_s: float | None = None,
             patient: DicomStudyInfo | dict | None = None, study_uid: str | None = None,
             frame_of_reference_uid: str | None = None, series_description: str = "",
             series_number: int = 2, n_heads: int = 2, views_per_head: int = 60,
             energy_window_kev: tuple[float, float] | None = None,
             overwrite: bool = False) -> Path:
    """Write reconstructed SPECT as one multi-frame NM Image (ImageType ``RECON TOMO``).

    Frames are the slices (FrameIncrementPointer SliceVector); DetectorInformationSequence[0]
    holds ImagePositionPatient (first slice) and ImageOrientationPatient; slices follow
    ``row × column`` at SpacingBetweenSlices. Values are uint16 (int16 if negative) with one
    RescaleSlope for the object (slope 1 for integer counts up to 65535, else max/65535, so the
    rounding error is at most slope/2); Units ``CNTS`` for counts, ``BQML`` for Bq/mL.

    Parameters
    ----------
    volume : Volume
        Unit ``counts`` or an activity concentration (stored in Bq/mL).
    path : str or Path
        Output file.
    administration : Administration, optional
        Written to RadiopharmaceuticalInformationSequence.
    acquisition_duration_s : float, optional
        Wall-clock acquisition time (default ``volume.meta["acquisition_duration_s"]``),
        written to RotationInformationSequence as one rotation of ``views_per_head`` frames of
        ``T / views_per_head`` each (heads acquire simultaneously).
    half_life_s : float, optional
        RadionuclideHalfLife; default from ICRP-107 for the administration's nuclide.
    patient, study_uid, frame_of_reference_uid, series_description, series_number
        As in :func:`write_ct_series`.
    n_heads, views_per_head : int
        Camera heads and views per head (angular step 360 / (n_heads × views_per_head) degrees).
    energy_window_kev : (float, float), optional
        Photopeak window (lower, upper) in keV, e.g. (187.2, 228.8) for Lu-177 208 keV ±10%.
    overwrite : bool

    Returns
    -------
    Path

    Raises
    ------
    OutputExistsError, UnitError, InputError
    """
    _check_volume(volume)
    unit = volume.unit_info
    if unit.name == "counts":
        units, arr_in = "CNTS", volume.array
    elif unit.dimension == "activity_concentration":
        units, arr_in = "BQML", volume.to_unit("Bq/mL").array
    else:
        raise UnitError(f"NM needs counts or an activity concentration, got {volume.unit}",
                        field="volume.unit")
    if administration is not None and not isinstance(administration, Administration):
        raise InputError(f"must be an Administration, got {type(administration).__name__}",
                         field="administration")
    t_acq = acquisition_duration_s if acquisition_duration_s is not None else \
        volume.meta.get("acquisition_duration_s")
    if t_acq is not None and not (math.isfinite(float(t_acq)) and float(t_acq) > 0):
        raise InputError(f"must be > 0 s, got {t_acq!r}", field="acquisition_duration_s")
    for name, v in (("n_heads", n_heads), ("views_per_head", views_per_head)):
        if not (isinstance(v, int) and v >= 1):
            raise InputError(f"must be an integer >= 1, got {v!r}", field=name)
    info = _study_info(volume, patient, study_uid, frame_of_reference_uid)
    arr, g = _right_handed(volume.replace(array=arr_in))
    signed = bool(np.min(arr) < 0)
    stored, slope, intercept = _quantise(arr, signed=signed, integer_first=True)
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DSequence

    t = volume.acquisition_time
    ds = _base(NM_IMAGE_STORAGE, "NM", info, series_uid=_uid(), series_number=series_number,
               series_description=series_description, series_time=t, acquisition_time=t)
    if t is None:
        ds.AcquisitionDate, ds.AcquisitionTime = "", ""
    n = g.shape[0]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = 0x00540080  # SliceVector
    ds.SliceVector = list(range(1, n + 1))
    ds.NumberOfSlices = n
    ds.PixelSpacing = _pixel_spacing(g)
    ds.SliceThickness = _ds(g.spacing_mm[2])
    ds.SpacingBetweenSlices = _ds(g.spacing_mm[2])
    _pixel_module(ds, g.shape[1], g.shape[2], signed=signed)
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope)
    ds.Units = units
    ds.CountsAccumulated = ""
    ds.LossyImageCompression = "00"
    _patient_orientation(ds)
    det = Dataset()
    det.ImagePositionPatient = [_ds(v) for v in g.origin_mm]
    det.ImageOrientationPatient = _iop(g)
    det.CollimatorType = "PARA"
    det.FocalDistance = ""
    det.XFocusCenter = ""
    det.YFocusCenter = ""
    ds.DetectorInformationSequence = DSequence([det])
    ds.NumberOfDetectors = n_heads
    rot = []
    if t_acq is not None:
        r = Dataset()
        r.StartAngle = "0"
        r.AngularStep = _ds(360.0 / (n_heads * views_per_head))
        r.RotationDirection = "CW"
        r.ScanArc = _ds(360.0 / n_heads)
        frame_ms = round(float(t_acq) * 1000.0 / views_per_head)
        r.ActualFrameDuration = frame_ms
        r.NumberOfFramesInRotation = views_per_head
        _warn_ms(frame_ms * views_per_head / 1000.0, float(t_acq))
        r.TableTraverse = ""
        r.TableHeight = ""
        rot.append(r)
    ds.RotationInformationSequence = DSequence(rot)
    ds.NumberOfRotations = max(1, len(rot))
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    ew = []
    if energy_window_kev is not None:
        lo, hi = (float(x) for x in energy_window_kev)
        if not 0 < lo < hi:
            raise InputError(f"needs 0 < lower < upper keV, got {energy_window_kev!r}",
                             field="energy_window_kev")
        rng = Dataset()
        rng.EnergyWindowLowerLimit = _ds(lo)
        rng.EnergyWindowUpperLimit = _ds(hi)
        w = Dataset()
        w.EnergyWindowRangeSequence = DSequence([rng])
        w.EnergyWindowName = "PHOTOPEAK"
        ew.append(w)
    ds.EnergyWindowInformationSequence = DSequence(ew)
    ds.NumberOfEnergyWindows = max(1, len(ew))
    items = []
    if administration is not None:
        hl = half_life_s if half_life_s is not None else half_life_s_of(administration.nuclide)
        items.append(radiopharmaceutical_item(administration, half_life_s=hl))
    ds.RadiopharmaceuticalInformationSequence = DSequence(items)
    ds.PixelData = np.ascontiguousarray(stored).astype("<i2" if signed else "<u2").tobytes()
    return _save(ds, Path(path), overwrite=overwrite)


# ---------------------------------------------------------------------------------- PT
def write_pt_series(volume: Volume, folder: str | Path, *, administration: Administration,
                    patient_weight_kg: float, decay_correction: str = "START",
                    half_life_s: float | None = None,
                    acquisition_duration_s: float | None = None,
                    series_time: datetime | None = None,
                    corrected_image: Sequence[str] = ("DECY", "ATTN", "SCAT", "RAN", "NORM"),
                    patient: DicomStudyInfo | dict | None = None, study_uid: str | None = None,
                    frame_of_reference_uid: str | None = None, series_description: str = "",
                    series_number: int = 3, overwrite: bool = False) -> list[Path]:
    """Write a static PET volume (activity concentration) as a PET Image Storage series.

    Each slice is int16 with its own RescaleSlope (max |value| of the slice / 32767, intercept
    0), so the rounding error in slice k is at most ``slope_k / 2``; Units ``BQML``.

    Parameters
    ----------
    volume : Volume
        Activity concentration (written in Bq/mL), with ``acquisition_time``. The values must
        already be decay corrected as ``decay_correction`` says.
    folder : str or Path
        Files ``PT_0001.dcm`` ... in slice order.
    administration : Administration
        Written to RadiopharmaceuticalInformationSequence (Bq, start date-time).
    patient_weight_kg : float
        PatientWeight (needed for SUV); overrides that of ``patient``.
    decay_correction : {'START', 'ADMIN', 'NONE'}
        DecayCorrection. START refers to SeriesTime.
    half_life_s : float, optional
        RadionuclideHalfLife; default from ICRP-107 (:mod:`theradose.nuclides`).
    acquisition_duration_s : float, optional
        ActualFrameDuration; default ``volume.meta["acquisition_duration_s"]``; required.
    series_time : datetime, optional
        SeriesDate/SeriesTime (the START reference); default the acquisition time.
    corrected_image : sequence of str
        CorrectedImage values (``DECY`` is dropped for ``NONE``).
    patient, study_uid, frame_of_reference_uid, series_description, series_number, overwrite
        As in :func:`write_ct_series`.

    Returns
    -------
    list of Path

    Raises
    ------
    OutputExistsError, UnitError, InputError
    """
    _check_volume(volume)
    if volume.unit_info.dimension != "activity_concentration":
        raise UnitError(f"PT needs an activity concentration, got {volume.unit}",
                        field="volume.unit")
    if not isinstance(administration, Administration):
        raise InputError(f"must be an Administration, got {type(administration).__name__}",
                         field="administration")
    if not (isinstance(patient_weight_kg, int | float) and math.isfinite(patient_weight_kg)
            and patient_weight_kg > 0):
        raise InputError(f"must be > 0 kg, got {patient_weight_kg!r}", field="patient_weight_kg")
    dc = str(decay_correction).upper()
    if dc not in ("START", "ADMIN", "NONE"):
        raise InputError(f"must be START, ADMIN or NONE, got {decay_correction!r}",
                         field="decay_correction")
    t = volume.acquisition_time
    if t is None:
        raise InputError("PT needs the acquisition time (AcquisitionTime is required)",
                         field="volume.acquisition_time")
    t_acq = acquisition_duration_s if acquisition_duration_s is not None else \
        volume.meta.get("acquisition_duration_s")
    if t_acq is None or not (math.isfinite(float(t_acq)) and float(t_acq) > 0):
        raise InputError(f"must be > 0 s (ActualFrameDuration is required), got {t_acq!r}",
                         field="acquisition_duration_s")
    hl = half_life_s if half_life_s is not None else half_life_s_of(administration.nuclide)
    if hl is None or not hl > 0:
        raise InputError(f"half-life of {administration.nuclide!r} unknown; pass half_life_s",
                         field="half_life_s")
    frame_ms = round(float(t_acq) * 1000.0)
    _warn_ms(frame_ms / 1000.0, float(t_acq))
    series_t = series_time or t
    if administration.injection_time > series_t:
        raise InputError(f"injection {administration.injection_time.isoformat()} is after the "
                         f"series time {series_t.isoformat()}", field="administration")
    info = _study_info(volume, patient, study_uid, frame_of_reference_uid).replace(
        patient_weight_kg=float(patient_weight_kg))
    arr, g = _right_handed(volume.to_unit("Bq/mL"))
    ref = administration.injection_time if dc == "ADMIN" else series_t
    offset_s = (t - ref).total_seconds()
    lam = math.log(2.0) / hl
    d = _series_folder(folder, "PT", overwrite=overwrite)
    series_uid = _uid()
    pos = _positions(g)
    normal = g.direction[:, 2]
    rp_item = radiopharmaceutical_item(administration, half_life_s=hl)
    from pydicom.sequence import Sequence as DSequence

    out = []
    for k in range(g.shape[0]):
        stored, slope, _ = _quantise(arr[k], signed=True)
        ds = _base(PET_IMAGE_STORAGE, "PT", info, series_uid=series_uid,
                   series_number=series_number, series_description=series_description,
                   series_time=series_t, acquisition_time=t)
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.InstanceNumber = k + 1
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.NumberOfSlices = g.shape[0]
        ds.CorrectedImage = [c for c in corrected_image if dc != "NONE" or c != "DECY"]
        ds.DecayCorrection = dc
        ds.CollimatorType = "NONE"
        _patient_orientation(ds)
        ds.RadiopharmaceuticalInformationSequence = DSequence([copy.deepcopy(rp_item)])
        ds.ImageIndex = k + 1
        ds.FrameReferenceTime = _ds(offset_s * 1000.0)
        ds.ActualFrameDuration = frame_ms
        if dc != "NONE":
            ds.DecayFactor = _ds(math.exp(lam * offset_s))
        ds.LossyImageCompression = "00"
        _slice_plane(ds, g, pos[k], normal)
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = _ds(slope)
        ds.PixelData = np.ascontiguousarray(stored).astype("<i2").tobytes()
        out.append(_save(ds, d / f"PT_{k + 1:04d}.dcm", overwrite=True))
    return out
