"""A post-therapy 177Lu SPECT/CT study on real CT anatomy, with ground truth, as plain DICOM.

The anatomy is the TotalSegmentator example CT (``example_ct.nii.gz``, 122×101×112 at 3 mm, HU)
and its organ labels placed on it (``example_seg_aligned.nii.gz``, slices 82–111), from the
public TotalSegmentator repository (``tests/reference_files/``, Apache License 2.0; see the
README and LICENSE next to the data). The data are read from there and never copied into this
repository; the study written to ``--out`` says where they came from (``README.txt``,
``truth.json``).

What is made (every number from one seed):

* true activity: 177Lu-PSMA-617-like kinetics per organ label (left and right kidney apart,
  liver, spleen, small bowel, duodenum, colon, stomach) and a soft-tissue body background
  (largest connected region with CT > −500 HU), nothing in air, lung air or bowel gas; each
  region ``A(t) = A0 (exp(−λe t) − exp(−(λe + λu) t))`` with ``λe ≥ λ_phys``, times a smooth
  ±``heterogeneity`` pattern fixed in time. TIA = analytic integral per voxel, so the true TIA
  of every VOI is exact.
* per time point (4, 24, 96, 168 h after 7.4 GBq): a small rigid repositioning (none at the first);
  the CT of that day is the reference CT moved the same way; expected counts = calibration ×
  ∫ activity over the acquisition (decay during the scan included) → 3-D Gaussian blur of
  ``fwhm_mm`` on the (padded) CT grid → resampled with sub-voxel sampling onto the SPECT grid
  (``voxel_mm``, 128×128 or more in plane, axial extent = CT + margin), total kept →
  Poisson noise → a DICOM NM "RECON TOMO" multi-frame image (Units CNTS) and a DICOM CT
  series, written here with pydicom (theradose's writers are not used: the point is to test
  theradose's readers on files it did not write).
* VOIs for the pipeline: ``dicom/labels.nii.gz`` + ``labels.json`` (TotalSegmentator names)
  on the first time point's CT.
* ``truth.json`` (per VOI: true TIA, activity per time point, volume, mass, kernel dose; per
  time point: motion, activity totals, counts) and ``truth/*.nii.gz`` (true TIA and dose maps on
  the reference CT grid).

Run::

    python benchmarks/real_anatomy_study.py --out /tmp/realanat --check
    theradose run /tmp/realanat/dicom --out /tmp/realanat_out --calibration-cps-per-mbq 9.5
    python benchmarks/real_anatomy_study.py --out /tmp/realanat --compare \
        /tmp/realanat_out/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BACKGROUND", "ORGANS", "Kinetics", "build_study", "check_load", "compare", "main"]

REPO = Path(__file__).resolve().parents[1]
#: Default location of the TotalSegmentator example (only on the project's machines).
DATA_DIR = REPO.parent / "shared" / "data" / "totalsegmentator_example"

#: 177Lu physical half-life: 6.647 d (ICRP-107) = 159.528 h.
T_HALF_PHYS_H = 6.647 * 24.0
LAMBDA_PHYS_PER_H = math.log(2.0) / T_HALF_PHYS_H
NUCLIDE = "Lu-177"
ORIGIN_NOTE = ("Anatomy: TotalSegmentator example CT and labels (public TotalSegmentator "
               "repository, tests/reference_files/, Apache License 2.0); labels moved by 82 "
               "slices onto the CT (example_seg_aligned.nii.gz). Activity, kinetics, imaging and "
               "DICOM are synthetic (theradose benchmarks/real_anatomy_study.py).")


@dataclass(frozen=True)
class Kinetics:
    """Uptake + clearance of one region: ``C(t) = C0 (exp(−λe t) − exp(−(λe + λu) t))``.

    Parameters
    ----------
    amplitude_kbq_ml_per_gbq : float
        ``C0``: concentration the curve would reach without clearance, kBq/mL per GBq injected
        (1 kBq/mL per GBq ≈ 0.1 %IA/kg).
    t_uptake_h : float
        Uptake half-time ``ln 2 / λu``, h.
    t_eff_h : float
        Effective clearance half-life ``ln 2 / λe``, h; at most the physical half-life.
    """

    amplitude_kbq_ml_per_gbq: float
    t_uptake_h: float
    t_eff_h: float

    def __post_init__(self) -> None:
        if not (self.amplitude_kbq_ml_per_gbq >= 0 and self.t_uptake_h > 0
                and 0 < self.t_eff_h <= T_HALF_PHYS_H):
            raise ValueError(f"bad kinetics {self}: need amplitude >= 0, uptake > 0 and "
                             f"0 < t_eff_h <= {T_HALF_PHYS_H:.2f} h (physical half-life)")

    @property
    def lam_e(self) -> float:
        """Effective clearance rate, 1/h (≥ physical decay)."""
        return math.log(2.0) / self.t_eff_h

    @property
    def lam_2(self) -> float:
        """Rate of the uptake term, ``λe + λu``, 1/h."""
        return self.lam_e + math.log(2.0) / self.t_uptake_h

    def shape(self, t_h: float) -> float:
        """``exp(−λe t) − exp(−(λe + λu) t)`` (dimensionless)."""
        return math.exp(-self.lam_e * t_h) - math.exp(-self.lam_2 * t_h)

    def integral_h(self, t0_h: float, t1_h: float = math.inf) -> float:
        """Analytic ``∫ shape dt`` from ``t0_h`` to ``t1_h``, h."""
        def prim(lam: float, t: float) -> float:
            return 0.0 if math.isinf(t) else math.exp(-lam * t) / lam
        return (prim(self.lam_e, t0_h) - prim(self.lam_e, t1_h)
                - prim(self.lam_2, t0_h) + prim(self.lam_2, t1_h))


# 177Lu-PSMA-617-like kinetics. Not a fit to one paper: values chosen so that the absorbed doses
# fall in the published ranges and the curve shapes are those reported.
#  * kidneys: ~0.4-0.6 Gy/GBq (Violet et al., J Nucl Med 2019;60:517-523: mean 0.39 Gy/GBq over
#    30 patients; Ells et al., J Nucl Med 2024;65:1264 meta-analysis of 177Lu-PSMA-617);
#    effective half-lives of tens of hours (median 35.5 h, 4-72 h SPECT/CT, AAPM 2026 abstract
#    "Normal-organ effective half-lives for 177Lu-PSMA"); left and right differ slightly.
#  * liver ~0.1 Gy/GBq (Violet et al. 2019), spleen of the same order; salivary and lacrimal
#    glands, the dose-limiting organs after the kidneys, lie outside this abdominal CT.
#  * time-specific dose factors for kidney/liver/spleen from one post-therapy SPECT/CT (Jackson
#    et al., J Nucl Med 2020;61:1030-1036) presuppose this kind of uptake + slow washout curve.
#  * body background: fast renal excretion, ~50 % of the activity excreted after 4 h, ~70 % after
#    12 h, whole-body effective half-life 40.5 ± 9.6 h thereafter (Kurth et al., EJNMMI Res
#    2018, doi:10.1186/s13550-018-0386-4); here ~5 kBq/mL per GBq at ~0.3 h uptake, 35 h.
#  * small bowel / duodenum (PSMA expressed in the proximal small intestine), colon (later,
#    transit), stomach: low uptake.
#: Organ label name (TotalSegmentator) → kinetics.
ORGANS: dict[str, Kinetics] = {
    "kidney_left": Kinetics(92.0, 1.0, 38.0),
    "kidney_right": Kinetics(86.0, 1.2, 42.0),
    "liver": Kinetics(22.0, 1.5, 45.0),
    "spleen": Kinetics(20.0, 1.0, 38.0),
    "small_bowel": Kinetics(14.0, 2.0, 30.0),
    "duodenum": Kinetics(14.0, 2.0, 30.0),
    "colon": Kinetics(8.0, 8.0, 30.0),
    "stomach": Kinetics(5.0, 1.0, 20.0),
}
#: Soft-tissue body background (everything in the body outside the organs above).
BACKGROUND = Kinetics(5.0, 0.3, 35.0)


# ---------------------------------------------------------------------------------- anatomy
@dataclass
class _Anatomy:
    ct: np.ndarray               # (Z, Y, X) float32 HU, LPS, identity direction
    seg: np.ndarray              # (Z, Y, X) uint8 TotalSegmentator labels on the CT grid
    names: dict[int, str]        # label → name (present labels only)
    origin: np.ndarray           # (x, y, z) mm LPS of voxel [0, 0, 0]
    spacing: np.ndarray          # (sx, sy, sz) mm
    seg_slices: tuple[int, int]  # first and last CT slice (z index) the labels cover


def _canonical(img):
    """RAS+ image; refuse oblique ones (the script keeps every grid axis-aligned)."""
    import nibabel as nib

    can = nib.as_closest_canonical(img)
    rot = can.affine[:3, :3]
    if not np.allclose(rot, np.diag(np.diag(rot)), atol=1e-6) or np.any(np.diag(rot) <= 0):
        raise ValueError(f"oblique NIfTI not supported here: affine {can.affine.tolist()}")
    return can


def _ras_to_lps_zyx(data_ras: np.ndarray) -> np.ndarray:
    """Canonical (i→R, j→A, k→S) array → [z, y, x] array with x→L, y→P, z→S."""
    return np.ascontiguousarray(data_ras[::-1, ::-1, :].transpose(2, 1, 0))


def load_anatomy(data_dir: Path) -> _Anatomy:
    """Read the example CT and the aligned labels with nibabel, in LPS ``[z, y, x]``.

    Parameters
    ----------
    data_dir : Path
        Folder of ``example_ct.nii.gz``, ``example_seg_aligned.nii.gz`` and
        ``example_seg_labels.json``.

    Returns
    -------
    _Anatomy
        CT (HU) and labels on the CT grid, identity direction, origin and spacing in mm.

    Raises
    ------
    ValueError
        Oblique images, or labels not on the CT grid shifted by whole voxels (the aligned file
        is: +82 slices).
    """
    import nibabel as nib

    ct_img = _canonical(nib.load(data_dir / "example_ct.nii.gz"))
    seg_img = _canonical(nib.load(data_dir / "example_seg_aligned.nii.gz"))
    a_ct, a_seg = ct_img.affine, seg_img.affine
    if not np.allclose(a_ct[:3, :3], a_seg[:3, :3], atol=1e-4):
        raise ValueError("labels and CT have different voxel axes")
    off = np.linalg.solve(a_ct[:3, :3], a_seg[:3, 3] - a_ct[:3, 3])  # (i, j, k) of seg origin
    ioff = np.rint(off).astype(int)
    if not np.allclose(off, ioff, atol=1e-3):
        raise ValueError(f"labels are not on the CT grid (offset {off} voxels)")
    ct_ras = np.asarray(ct_img.dataobj, dtype=np.float32)
    seg_small = np.asarray(seg_img.dataobj).astype(np.uint8)
    seg_ras = np.zeros(ct_ras.shape, np.uint8)
    lo = ioff
    hi = ioff + np.array(seg_small.shape)
    if np.any(lo < 0) or np.any(hi > np.array(ct_ras.shape)):
        raise ValueError(f"labels reach outside the CT (voxels {lo}..{hi}, CT {ct_ras.shape})")
    seg_ras[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = seg_small
    spacing = np.diag(a_ct[:3, :3]).astype(float)
    n = np.array(ct_ras.shape)
    corner_ras = a_ct[:3, 3] + spacing * (n - 1) * np.array([1, 1, 0])  # voxel (nx-1, ny-1, 0)
    origin = np.array([-corner_ras[0], -corner_ras[1], corner_ras[2]])
    table = json.loads((data_dir / "example_seg_labels.json").read_text(encoding="utf-8"))
    present = {int(v) for v in np.unique(seg_small)} - {0}
    names = {int(k): str(v) for k, v in table.items() if int(k) in present}
    return _Anatomy(_ras_to_lps_zyx(ct_ras), _ras_to_lps_zyx(seg_ras), names, origin, spacing,
                    (int(lo[2]), int(hi[2] - 1)))


def _body_mask(ct: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """Largest connected region above ``threshold_hu`` (drops the table and loose voxels)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(ct > threshold_hu)
    if n == 0:
        raise ValueError("no body in the CT")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _smooth_pattern(shape: tuple[int, ...], spacing_zyx: np.ndarray, rng: np.random.Generator,
                    amplitude: float, corr_mm: float = 10.0) -> np.ndarray:
    """``1 + amplitude × (smooth unit-variance noise)``, clipped to [0.5, 1.5]."""
    from scipy import ndimage as ndi

    if amplitude <= 0:
        return np.ones(shape, np.float64)
    g = ndi.gaussian_filter(rng.standard_normal(shape), sigma=corr_mm / spacing_zyx)
    g /= g.std() or 1.0
    return np.clip(1.0 + amplitude * g, 0.5, 1.5)


# ---------------------------------------------------------------------------------- geometry
def _rotation(deg_xyz: np.ndarray) -> np.ndarray:
    ax, ay, az = np.radians(deg_xyz)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _motions(rng: np.random.Generator, n: int, *, max_deg: float, max_mm: float
             ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per time point (angles deg xyz, rotation matrix, translation mm); the first is none."""
    out = [(np.zeros(3), np.eye(3), np.zeros(3))]
    for _ in range(1, n):
        deg = np.clip(rng.normal(0.0, max_deg / 2, 3), -max_deg, max_deg)
        mm = np.clip(rng.normal(0.0, max_mm / 2, 3), -max_mm, max_mm)
        out.append((deg, _rotation(deg), mm))
    return out


def _warp(vol_zyx: np.ndarray, origin: np.ndarray, spacing: np.ndarray, rot: np.ndarray,
          trans: np.ndarray, centre: np.ndarray, *, out_origin: np.ndarray,
          out_spacing: np.ndarray, out_shape: tuple[int, int, int], order: int = 1,
          mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
    """Sample ``vol`` (patient frame) on a grid in the moved frame ``x' = R (x − c) + c + t``.

    Both grids have identity direction. Output point ``o`` (z, y, x index) lies at
    ``q = out_origin + out_spacing · o``; its patient-frame position is ``R^T (q − c − t) + c``.
    """
    from scipy import ndimage as ndi

    rt = rot.T
    a_xyz = np.diag(1.0 / spacing) @ rt @ np.diag(out_spacing)
    b_xyz = np.diag(1.0 / spacing) @ (rt @ (out_origin - centre - trans) + centre - origin)
    p = [2, 1, 0]
    matrix = a_xyz[np.ix_(p, p)]
    offset = b_xyz[p]
    return ndi.affine_transform(vol_zyx, matrix, offset=offset, output_shape=out_shape,
                                order=order, mode=mode, cval=cval, prefilter=False)


@dataclass(frozen=True)
class _Grid:
    shape: tuple[int, int, int]      # (Z, Y, X)
    origin: np.ndarray               # (x, y, z) mm, LPS, voxel centre [0, 0, 0]
    spacing: np.ndarray              # (sx, sy, sz) mm

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Outer faces (xyz, mm): low corner, high corner."""
        n = np.array(self.shape[::-1])
        return self.origin - self.spacing / 2, self.origin + self.spacing * (n - 0.5)


def _spect_grid(ct: _Grid, voxel_mm: float, margin_mm: float, n_xy: int = 128) -> _Grid:
    """SPECT grid centred on the CT, ``n_xy`` or more in plane, axially CT + margin."""
    lo, hi = ct.extent()
    size = hi - lo + 2.0 * margin_mm
    nx = max(n_xy, math.ceil(size[0] / voxel_mm))
    ny = max(n_xy, math.ceil(size[1] / voxel_mm))
    nz = math.ceil(size[2] / voxel_mm)
    centre = (lo + hi) / 2.0
    n = np.array([nx, ny, nz])
    origin = centre - voxel_mm * (n - 1) / 2.0
    return _Grid((nz, ny, nx), origin, np.full(3, float(voxel_mm)))


def _spect_expected(expected_ct: np.ndarray, ct: _Grid, spect: _Grid, rot: np.ndarray,
                    trans: np.ndarray, centre: np.ndarray, *, fwhm_mm: float,
                    supersample: int) -> np.ndarray:
    """Expected counts per SPECT voxel from expected counts per CT voxel (patient frame).

    The counts are blurred on the CT grid, padded so that none leaves it (a rigid motion and an
    isotropic Gaussian commute, so blurring before moving is the same as after), and each SPECT
    voxel gets the integral of the blurred density over its volume, taken with
    ``supersample³`` linearly interpolated samples in the moved frame.
    """
    from scipy import ndimage as ndi

    spacing_zyx = ct.spacing[::-1]
    sig_vox = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / spacing_zyx
    pad = np.ceil(4.0 * sig_vox + 1.0).astype(int) if fwhm_mm > 0 else np.zeros(3, int)
    pad_origin = ct.origin - pad[::-1] * ct.spacing
    padded = np.pad(expected_ct, [(p, p) for p in pad])
    if fwhm_mm > 0:
        padded = ndi.gaussian_filter(padded, sigma=sig_vox, mode="constant", truncate=4.0)
    density = (padded / ct.voxel_ml).astype(np.float32)  # counts per mL
    n = int(supersample)
    fine_spacing = spect.spacing / n
    fine_origin = spect.origin - spect.spacing / 2 + fine_spacing / 2
    # SPECT voxels that the moved padded grid reaches
    pad_n = np.array(padded.shape[::-1])
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) \
        * (pad_n - 1) * ct.spacing + pad_origin
    moved = (rot @ (corners - centre).T).T + centre + trans
    s_lo = np.clip(np.floor((moved.min(0) - spect.origin) / spect.spacing).astype(int) - 1,
                   0, None)
    s_hi = np.minimum(np.ceil((moved.max(0) - spect.origin) / spect.spacing).astype(int) + 2,
                      np.array(spect.shape[::-1]))
    block = s_hi - s_lo
    samples = _warp(density, pad_origin, ct.spacing, rot, trans, centre,
                    out_origin=fine_origin + s_lo * spect.spacing, out_spacing=fine_spacing,
                    out_shape=tuple(int(b * n) for b in block[::-1]), order=1,
                    mode="constant", cval=0.0)
    bz, by, bx = block[::-1]
    summed = samples.reshape(bz, n, by, n, bx, n).sum(axis=(1, 3, 5), dtype=np.float64)
    summed *= float(np.prod(fine_spacing)) / 1000.0  # × volume of one sample (mL)
    expected = np.zeros(spect.shape, np.float64)
    expected[s_lo[2]:s_hi[2], s_lo[1]:s_hi[1], s_lo[0]:s_hi[0]] = summed
    return expected


# ---------------------------------------------------------------------------------- DICOM
def _uid(seed: int, *what: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(prefix=None, entropy_srcs=["theradose-realanat", str(seed),
                                                    *map(str, what)])


def _ds(x: float):
    from pydicom.valuerep import DSfloat

    return DSfloat(float(x), auto_format=True)


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _da_tm(t: datetime) -> tuple[str, str]:
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S.%f")


def _base_dataset(sop_class: str, sop_uid: str, *, patient: dict[str, Any], day: dict[str, Any]):
    """Patient, General Study, General Series, Frame of Reference, General Equipment modules."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = patient["sex"]
    ds.PatientWeight = _ds(patient["weight_kg"])
    ds.PatientSize = _ds(patient["height_m"])
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic study on anonymised public CT"
    ds.StudyInstanceUID = day["study_uid"]
    ds.StudyDate, ds.StudyTime = _da_tm(day["study_time"])
    ds.StudyID = day["study_id"]
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = f"177Lu-PSMA post-therapy SPECT/CT day {day['index'] + 1} (synthetic)"
    ds.FrameOfReferenceUID = day["for_uid"]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "theradose benchmarks (synthetic)"
    ds.ManufacturerModelName = "real_anatomy_study.py"
    ds.DeviceSerialNumber = "0"
    ds.SoftwareVersions = "1"
    return ds


def write_ct_series(folder: Path, hu_zyx: np.ndarray, grid: _Grid, *, patient: dict[str, Any],
                    day: dict[str, Any], seed: int) -> list[Path]:
    """One CT Image Storage file per slice (int16, RescaleIntercept −1024), LPS axial."""
    from pydicom.uid import CTImageStorage

    folder.mkdir(parents=True)
    series_uid = _uid(seed, day["index"], "ct-series")
    da, tm = _da_tm(day["ct_time"])
    stored = np.clip(np.rint(hu_zyx) + 1024, -32768, 32767).astype("<i2")
    files = []
    for k in range(hu_zyx.shape[0]):
        sop = _uid(seed, day["index"], "ct", k)
        ds = _base_dataset(CTImageStorage, sop, patient=patient, day=day)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 2
        ds.SeriesDescription = "CT for attenuation correction and localisation (real anatomy)"
        ds.PatientPosition = "HFS"
        ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = da
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = tm
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.KVP = _ds(120)
        ds.SliceThickness = _ds(grid.spacing[2])
        ds.ImagePositionPatient = [_ds(v) for v in grid.origin + np.array([0, 0, k])
                                   * grid.spacing]
        ds.ImageOrientationPatient = [_ds(v) for v in (1, 0, 0, 0, 1, 0)]
        ds.SliceLocation = _ds(grid.origin[2] + k * grid.spacing[2])
        ds.PixelSpacing = [_ds(grid.spacing[1]), _ds(grid.spacing[0])]  # row, column spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(hu_zyx.shape[1]), int(hu_zyx.shape[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _ds(-1024), _ds(1), "HU"
        ds.WindowCenter, ds.WindowWidth = _ds(40), _ds(400)
        ds.PixelData = stored[k].tobytes()
        p = folder / f"CT_{k + 1:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        files.append(p)
    return files


def write_nm(path: Path, counts_zyx: np.ndarray, grid: _Grid, *, patient: dict[str, Any],
             day: dict[str, Any], seed: int, administration: dict[str, Any],
             acquisition_s: float, n_views: int = 60) -> Path:
    """One NM Image Storage multi-frame object, ImageType RECON TOMO, Units CNTS.

    Follows the NM Image IOD (DICOM PS3.3 A.5): NM/PET Patient Orientation, NM Image Pixel,
    NM Multi-frame (frames indexed by SliceVector, PS3.3 C.8.4.8.1), NM Image, NM Isotope,
    NM Detector (ImagePositionPatient/ImageOrientationPatient of the first slice in the one
    DetectorInformationSequence item, C.8.4.11), NM TOMO Acquisition (one rotation:
    ``n_views`` views per head of ActualFrameDuration each) and NM Reconstruction modules.
    Units (0054,1001) and DecayCorrection (0054,1102), from the PET Series module, say that
    the values are counts without decay correction (a standard extended SOP class, as vendors
    do).
    """
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag
    from pydicom.uid import NuclearMedicineImageStorage

    if counts_zyx.max() > 65535 or counts_zyx.min() < 0:
        raise ValueError("counts do not fit 16 bits; shorten the acquisition")
    nz, ny, nx = counts_zyx.shape
    sop = _uid(seed, day["index"], "nm")
    ds = _base_dataset(NuclearMedicineImageStorage, sop, patient=patient, day=day)
    da, tm = _da_tm(day["nm_time"])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.Modality = "NM"
    ds.SeriesInstanceUID = _uid(seed, day["index"], "nm-series")
    ds.SeriesNumber = 1
    ds.SeriesDescription = "SPECT 177Lu 208 keV reconstructed (synthetic counts)"
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = da
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = tm
    ds.InstanceNumber = 1
    # NM/PET Patient Orientation (CID 19/21: recumbent, supine; head first)
    orient = _code("F-10450", "SRT", "recumbent")
    orient.PatientOrientationModifierCodeSequence = [_code("F-10340", "SRT", "supine")]
    ds.PatientOrientationCodeSequence = [orient]
    ds.PatientGantryRelationshipCodeSequence = [_code("F-10470", "SRT", "headfirst")]
    # Image pixel / NM image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [_ds(grid.spacing[1]), _ds(grid.spacing[0])]
    # Multi-frame / NM multi-frame: RECON TOMO frames are slices (Slice Vector)
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    ds.NumberOfEnergyWindows = 1
    ds.NumberOfDetectors = 1
    ds.NumberOfRotations = 1
    # NM image
    ds.CountsAccumulated = int(counts_zyx.sum())
    ds.CorrectedImage = ["UNIF", "COR", "ATTN", "SCAT"]
    ds.Units = "CNTS"
    ds.DecayCorrection = "NONE"
    # NM isotope
    win = Dataset()
    rng = Dataset()
    rng.EnergyWindowLowerLimit, rng.EnergyWindowUpperLimit = _ds(187.2), _ds(228.8)
    win.EnergyWindowRangeSequence = [rng]
    win.EnergyWindowName = "Lu177 208keV 20%"
    ds.EnergyWindowInformationSequence = [win]
    rp = Dataset()
    rp.Radiopharmaceutical = "177Lu-PSMA-617"
    rp.RadiopharmaceuticalRoute = "Intravenous"
    inj_da, inj_tm = _da_tm(administration["injection_time"])
    rp.RadiopharmaceuticalStartTime = inj_tm
    rp.RadiopharmaceuticalStartDateTime = inj_da + inj_tm
    rp.RadionuclideTotalDose = _ds(administration["activity_mbq"] * 1e6)  # Bq
    rp.RadionuclideHalfLife = _ds(T_HALF_PHYS_H * 3600.0)  # s
    rp.RadionuclideCodeSequence = [_code("C-145A8", "SRT", "^177^Lutetium")]  # CID 18
    ds.RadiopharmaceuticalInformationSequence = [rp]
    # NM detector: position and orientation of the first slice (frame 1)
    det = Dataset()
    det.ImagePositionPatient = [_ds(v) for v in grid.origin]
    det.ImageOrientationPatient = [_ds(v) for v in (1, 0, 0, 0, 1, 0)]
    det.CollimatorGridName = "MEGP"
    det.CollimatorType = "PARA"
    det.FieldOfViewShape = "RECTANGLE"
    ds.DetectorInformationSequence = [det]
    # NM TOMO acquisition: dual head, n_views per head over 180° each
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    rot = Dataset()
    rot.StartAngle = _ds(0)
    rot.AngularStep = _ds(180.0 / n_views)
    rot.RotationDirection = "CW"
    rot.ScanArc = _ds(180)
    rot.ActualFrameDuration = round(acquisition_s / n_views * 1000.0)  # ms per view
    rot.NumberOfFramesInRotation = n_views
    rot.TableTraverse = _ds(0)
    ds.RotationInformationSequence = [rot]
    # NM reconstruction
    ds.SliceThickness = _ds(grid.spacing[2])
    ds.SpacingBetweenSlices = _ds(grid.spacing[2])
    ds.ReconstructionDiameter = _ds(grid.spacing[0] * nx)
    ds.PixelData = counts_zyx.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_nifti(arr_zyx: np.ndarray, grid: _Grid, path: Path) -> Path:
    """NIfTI (nibabel) of an LPS ``[z, y, x]`` array, stored in LPS voxel order.

    The affine maps voxel (i, j, k) = (x, y, z index) to RAS mm: the x and y axes point to the
    right-to-left and anterior-to-posterior (negative RAS diagonal), so a reader that converts
    to LPS gets the grid of the DICOM CT back exactly (identity direction, same origin).
    """
    import nibabel as nib

    sx, sy, sz = grid.spacing
    ox, oy, oz = grid.origin
    affine = np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.ascontiguousarray(arr_zyx.transpose(2, 1, 0)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path))
    return path


# ---------------------------------------------------------------------------------- build
def _prepare_out(out_dir: Path, data_dir: Path, overwrite: bool) -> None:
    out = out_dir.resolve()
    forbidden = [data_dir.resolve(), *[p for p in data_dir.resolve().parents
                                       if p.name == "shared"]]
    for f in forbidden:
        if out == f or f in out.parents:
            raise ValueError(f"{out}: refusing to write inside {f} (read-only input data)")
    ours = ("dicom", "truth", "truth.json", "README.txt")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True "
                                  "(--overwrite) to replace the study written there")
        for name in ours:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def build_study(out_dir: str | Path, *, seed: int = 0, fwhm_mm: float = 10.0,
                voxel_mm: float = 4.8, times_h: tuple[float, ...] = (4.0, 24.0, 96.0, 168.0),
                injected_activity_mbq: float = 7400.0, calibration_cps_per_mbq: float = 9.5,
                acquisition_min: float = 20.0, motion: bool = True,
                max_rotation_deg: float = 2.0, max_shift_mm: float = 5.0,
                time_jitter_h: float = 0.25, heterogeneity: float = 0.1,
                supersample: int = 3, margin_mm: float = 30.0, dose: bool = True,
                data_dir: str | Path = DATA_DIR, overwrite: bool = False) -> dict[str, Any]:
    """Write a 177Lu SPECT/CT study on the real example CT, with its truth.

    Parameters
    ----------
    out_dir : str or Path
        Created; ``dicom/`` (the study: CT series, NM files, ``labels.nii.gz`` + ``labels.json``),
        ``truth/`` (NIfTI maps), ``truth.json``, ``README.txt``. Must not lie in the input data.
    seed : int
        Seeds motion, acquisition-time jitter, heterogeneity pattern and Poisson noise.
    fwhm_mm : float
        System resolution: FWHM of the isotropic 3-D Gaussian blur, mm (0: none).
    voxel_mm : float
        SPECT voxel size, mm.
    times_h : tuple of float
        Nominal acquisition start times after injection, h (increasing).
    injected_activity_mbq : float
        Administered 177Lu activity, MBq.
    calibration_cps_per_mbq : float
        Camera sensitivity used to turn activity into counts, cps/MBq (give it to the pipeline).
    acquisition_min : float
        SPECT acquisition duration, min.
    motion : bool
        Rigid repositioning of the patient at every time point after the first.
    max_rotation_deg, max_shift_mm : float
        Bounds of the repositioning (normal draws with SD = half the bound, clipped).
    time_jitter_h : float
        Acquisition starts are the nominal times ± up to this (uniform), h.
    heterogeneity : float
        SD of the smooth (10 mm) multiplicative pattern of the concentration in every region.
    supersample : int
        Samples per SPECT voxel edge when regridding (``supersample³`` per voxel).
    margin_mm : float
        Axial and in-plane margin of the SPECT grid around the CT, mm.
    dose : bool
        Also compute the true dose with theradose's kernel engine on the true TIA map.
    data_dir : str or Path
        Folder of ``example_ct.nii.gz``, ``example_seg_aligned.nii.gz``,
        ``example_seg_labels.json``.
    overwrite : bool
        Replace a study written earlier in ``out_dir`` (only its entries are removed).

    Returns
    -------
    dict
        The content of ``truth.json``.

    Raises
    ------
    FileExistsError
        ``out_dir`` is not empty and ``overwrite`` is False.
    ValueError
        ``out_dir`` inside the input data; bad parameters.
    """
    from theradose.materials import hu_to_density  # Schneider et al. 2000 bilinear HU line

    t_start = time.perf_counter()
    out = Path(out_dir)
    data = Path(data_dir)
    times_nom = [float(t) for t in times_h]
    if not times_nom or any(b <= a for a, b in pairwise(times_nom)) \
            or times_nom[0] <= 0:
        raise ValueError(f"times_h must be positive and increasing, got {times_h}")
    if voxel_mm <= 0 or fwhm_mm < 0 or supersample < 1 or acquisition_min <= 0 \
            or calibration_cps_per_mbq <= 0 or injected_activity_mbq <= 0:
        raise ValueError("voxel_mm, acquisition_min, calibration and activity must be > 0, "
                         "fwhm_mm >= 0, supersample >= 1")
    _prepare_out(out, data, overwrite)
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # --- anatomy and true activity (patient frame = day-1 CT grid)
    an = load_anatomy(data)
    ct_grid = _Grid(an.ct.shape, an.origin, an.spacing)
    spacing_zyx = an.spacing[::-1]
    body = _body_mask(an.ct)
    name_of = an.names
    label_of = {v: k for k, v in name_of.items()}
    organs = [n for n in ORGANS if n in label_of]
    regions = ["body_background", *organs]
    kin = {"body_background": BACKGROUND, **{n: ORGANS[n] for n in organs}}
    region = np.where(body, 1, 0).astype(np.int16)  # 0 none, 1 background, 2.. organs
    for i, n in enumerate(organs, start=2):
        region[(an.seg == label_of[n]) & body] = i
    pattern = _smooth_pattern(an.ct.shape, spacing_zyx, rng, heterogeneity)
    amp = np.array([0.0] + [kin[r].amplitude_kbq_ml_per_gbq for r in regions])
    # base activity per voxel, MBq: C0 [kBq/mL/GBq] × A_inj [GBq] × V [mL] × 1e-3 × pattern
    base = amp[region] * (injected_activity_mbq / 1000.0) * ct_grid.voxel_ml * 1e-3 * pattern
    base[region == 0] = 0.0
    tia_per_base = np.array([0.0] + [kin[r].integral_h(0.0) for r in regions])
    tia_map = base * tia_per_base[region]  # MBq·h, exact
    timings["anatomy + activity"] = time.perf_counter() - t0

    # --- VOIs: organs with their own kinetics (TotalSegmentator label values kept)
    voi_labels = {label_of[n]: n for n in organs}
    labels_zyx = np.where(np.isin(an.seg, list(voi_labels)), an.seg, 0).astype(np.uint8)
    rho = np.asarray(hu_to_density(an.ct.astype(np.float64)), float)

    # --- time points
    t0 = time.perf_counter()
    acq_h = acquisition_min / 60.0
    injection = datetime(2025, 3, 3, 9, 30, 0)
    jitter = rng.uniform(-time_jitter_h, time_jitter_h, len(times_nom)) if time_jitter_h > 0 \
        else np.zeros(len(times_nom))
    t_actual = [round(t + j, 4) for t, j in zip(times_nom, jitter, strict=True)]
    if any(b <= a + acq_h for a, b in pairwise(t_actual)):
        raise ValueError("time points overlap after jitter; spread times_h")
    motions = (_motions(rng, len(t_actual), max_deg=max_rotation_deg, max_mm=max_shift_mm)
               if motion else [(np.zeros(3), np.eye(3), np.zeros(3))] * len(t_actual))
    lo, hi = ct_grid.extent()
    centre = (lo + hi) / 2.0
    spect = _spect_grid(ct_grid, voxel_mm, margin_mm)
    patient = {"name": f"RealAnatomy^Seed{seed}", "id": f"REALANAT-{seed:04d}", "sex": "M",
               "weight_kg": 80.0, "height_m": 1.78}
    adm = {"injection_time": injection, "activity_mbq": injected_activity_mbq}
    dicom = out / "dicom"
    dicom.mkdir()
    cal_counts_per_mbq_h = calibration_cps_per_mbq * 3600.0
    tps: list[dict[str, Any]] = []
    for d, (t_h, (deg, rot, trans)) in enumerate(zip(t_actual, motions, strict=True)):
        nm_time = injection + timedelta(hours=t_h)
        day = {"index": d, "study_uid": _uid(seed, d, "study"), "for_uid": _uid(seed, d, "for"),
               "study_id": f"D{d + 1}", "study_time": nm_time - timedelta(minutes=5),
               "nm_time": nm_time, "ct_time": nm_time + timedelta(minutes=acquisition_min + 2)}
        # expected counts per CT voxel: cal × ∫ A dt over the acquisition
        integ = np.array([0.0] + [kin[r].integral_h(t_h, t_h + acq_h) for r in regions])
        expected_ct = base * integ[region] * cal_counts_per_mbq_h
        exact_total = float(expected_ct.sum())
        expected = _spect_expected(expected_ct, ct_grid, spect, rot, trans, centre,
                                   fwhm_mm=fwhm_mm, supersample=supersample)
        sampled_total = float(expected.sum())
        norm = exact_total / sampled_total if sampled_total > 0 else 1.0
        expected *= norm
        counts = rng.poisson(expected)
        nm_path = dicom / f"day{d + 1}_{round(t_h):03d}h" / "nm" / "NM_RECON.dcm"
        nm_path.parent.mkdir(parents=True)
        write_nm(nm_path, counts, spect, patient=patient, day=day, seed=seed, administration=adm,
                 acquisition_s=acquisition_min * 60.0)
        # the CT of that day: the reference CT moved the same way, on the same scanner grid
        ct_day = an.ct if d == 0 else _warp(
            an.ct, an.origin, an.spacing, rot, trans, centre, out_origin=an.origin,
            out_spacing=an.spacing, out_shape=an.ct.shape, order=1, mode="nearest")
        ct_dir = nm_path.parent.parent / "ct"
        write_ct_series(ct_dir, ct_day, ct_grid, patient=patient, day=day, seed=seed)
        factor_start = np.array([0.0] + [kin[r].shape(t_h) for r in regions])
        act_start = base * factor_start[region]
        tps.append({
            "index": d, "time_h": t_h, "nominal_time_h": times_nom[d],
            "acquisition_start": nm_time.isoformat(), "acquisition_s": acquisition_min * 60.0,
            "motion": {"rotation_deg_xyz": deg.round(4).tolist(),
                       "translation_mm_xyz": trans.round(4).tolist(),
                       "rotation_matrix": rot.round(8).tolist(),
                       "centre_mm_lps": centre.round(4).tolist(),
                       "convention": "x_day = R (x_ref - centre) + centre + t, LPS mm"},
            "total_activity_mbq": float(act_start.sum()),
            "mean_activity_during_acquisition_mbq": exact_total / (cal_counts_per_mbq_h * acq_h),
            "expected_counts": exact_total, "counts": int(counts.sum()),
            "regrid_normalisation": norm,
            "nm_file": str(nm_path.relative_to(out)), "ct_folder": str(ct_dir.relative_to(out)),
            "_act": act_start,
        })
    timings["time points (SPECT + CT DICOM)"] = time.perf_counter() - t0

    # --- VOIs file for the pipeline (on the first time point's CT)
    t0 = time.perf_counter()
    write_nifti(labels_zyx, ct_grid, dicom / "labels.nii.gz")
    (dicom / "labels.json").write_text(json.dumps(
        {"labels": {str(k): v for k, v in sorted(voi_labels.items())}}, indent=1),
        encoding="utf-8")

    # --- truth
    truth_dir = out / "truth"
    truth_dir.mkdir()
    write_nifti(tia_map.astype(np.float32), ct_grid, truth_dir / "tia_true.nii.gz")
    v_ml = ct_grid.voxel_ml
    vois: dict[str, Any] = {}
    for lab, name in sorted(voi_labels.items()):
        m = labels_zyx == lab
        vois[name] = {
            "label": int(lab), "voxels": int(m.sum()), "volume_ml": float(m.sum() * v_ml),
            "mass_g": float(rho[m].sum() * v_ml),
            "active_voxels": int((m & (region > 0)).sum()),
            "tia_mbq_h": float(tia_map[m].sum()),
            "activity_mbq": [float(tp["_act"][m].sum()) for tp in tps],
            "kinetics": asdict(kin[name]),
        }
    region_truth = {r: {"voxels": int((region == i).sum()),
                        "tia_mbq_h": float(tia_map[region == i].sum()),
                        "kinetics": asdict(kin[r])}
                    for i, r in enumerate(regions, start=1)}
    dose_info: dict[str, Any] | None = None
    if dose:
        dose_info = _true_dose(tia_map, rho, labels_zyx, voi_labels, ct_grid, truth_dir, vois)
    timings["labels + truth"] = time.perf_counter() - t0
    for tp in tps:
        tp.pop("_act")
    truth: dict[str, Any] = {
        "schema": "theradose.benchmarks.real_anatomy/1",
        "origin": ORIGIN_NOTE,
        "created": datetime.now().isoformat(timespec="seconds"),
        "parameters": {
            "seed": seed, "nuclide": NUCLIDE, "half_life_h": T_HALF_PHYS_H,
            "injected_activity_mbq": injected_activity_mbq, "injection_time":
                injection.isoformat(), "fwhm_mm": fwhm_mm, "voxel_mm": voxel_mm,
            "spect_shape_zyx": list(spect.shape), "spect_origin_mm_lps":
                spect.origin.tolist(), "calibration_cps_per_mbq": calibration_cps_per_mbq,
            "acquisition_min": acquisition_min, "motion": motion,
            "max_rotation_deg": max_rotation_deg, "max_shift_mm": max_shift_mm,
            "time_jitter_h": time_jitter_h, "heterogeneity": heterogeneity,
            "supersample": supersample, "margin_mm": margin_mm,
            "body": "largest connected region with CT > -500 HU (reference CT)",
            "density": "theradose.materials.hu_to_density (Schneider et al. 2000 bilinear "
                       "HU-density line), mass = sum of density x voxel volume",
            "ct_grid": {"shape_zyx": list(an.ct.shape), "spacing_mm": an.spacing.tolist(),
                        "origin_mm_lps": an.origin.tolist()},
            "label_slices": list(an.seg_slices),
            "formula": "C(t) = C0 * pattern * (exp(-lam_e t) - exp(-(lam_e + lam_u) t)); "
                       "TIA exact per voxel; counts = cal * integral of A over the "
                       "acquisition, blurred, regridded (total kept), Poisson",
        },
        "time_points": tps,
        "vois": vois,
        "regions": region_truth,
        "whole_fov": {"tia_mbq_h": float(tia_map.sum()),
                      "activity_mbq": [tp["total_activity_mbq"] for tp in tps]},
        "dose": dose_info,
        "files": {"study": "dicom", "labels": "dicom/labels.nii.gz",
                  "tia_true": "truth/tia_true.nii.gz",
                  **({"dose_true": "truth/dose_kernel_true.nii.gz"} if dose else {})},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    truth["timings_s"]["total"] = round(time.perf_counter() - t_start, 2)
    (out / "truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    (out / "README.txt").write_text(
        f"{ORIGIN_NOTE}\nThe study for theradose is dicom/ (run it with "
        f"--calibration-cps-per-mbq {calibration_cps_per_mbq:g}); truth.json and truth/ are the "
        "ground truth. Licence of the anatomy: Apache License 2.0 (TotalSegmentator).\n",
        encoding="utf-8")
    return truth


def _true_dose(tia_map: np.ndarray, rho: np.ndarray, labels_zyx: np.ndarray,
               voi_labels: dict[int, str], grid: _Grid, truth_dir: Path,
               vois: dict[str, Any]) -> dict[str, Any]:
    """Kernel-engine dose of the true TIA map (theradose's engine, default options)."""
    from theradose.dose import get_engine
    from theradose.volume import Geometry, LabelMap, Volume

    geom = Geometry(grid.shape, tuple(grid.spacing), tuple(grid.origin), np.eye(3))
    eng = get_engine("kernel")
    res = eng.compute(Volume(tia_map, geom, unit="MBq*h", modality="OT"),
                      Volume(rho, geom, unit="g/cm3", modality="OT"), NUCLIDE,
                      labels=LabelMap(labels_zyx, geom, names=voi_labels))
    dose = np.clip(np.asarray(res.dose.array, np.float64), 0.0, None)
    write_nifti(dose.astype(np.float32), grid, truth_dir / "dose_kernel_true.nii.gz")
    for v in res.voi:
        vois[v.name]["dose_gy_kernel"] = float(v.mean_gy)
        vois[v.name]["kernel_mass_g"] = float(v.mass_g)
    return {"engine": "kernel", "options": eng.options(),
            "note": "theradose kernel engine (default options) on the true TIA map at CT "
                    "resolution, density from hu_to_density; VOI mean = mass-weighted"}


# ---------------------------------------------------------------------------------- checks
def check_load(out_dir: str | Path) -> dict[str, Any]:
    """Load ``out_dir/dicom`` with :func:`theradose.io.load_study`; compare with the truth.

    Returns
    -------
    dict
        Per time point: time (h), unit, loaded total (MBq), true mean activity during the
        acquisition and at its start (MBq) and the relative differences; label-map volumes.
    """
    from theradose.io import load_study

    out = Path(out_dir)
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    cal = truth["parameters"]["calibration_cps_per_mbq"]
    study = load_study(out / "dicom", calibration_cps_per_mbq=cal)
    rows = []
    for tp, tt in zip(study.time_points, truth["time_points"], strict=True):
        e = tp.emission
        total = float(np.sum(e.array, dtype=np.float64)) * e.geometry.voxel_volume_ml * 1e-6
        rows.append({"time_h": tp.time_h, "true_time_h": tt["time_h"], "unit": e.unit,
                     "shape_zyx": list(e.shape), "ct_shape_zyx": list(tp.ct.shape),
                     "loaded_mbq": total,
                     "true_mean_mbq": tt["mean_activity_during_acquisition_mbq"],
                     "true_start_mbq": tt["total_activity_mbq"],
                     "diff_vs_mean": total / tt["mean_activity_during_acquisition_mbq"] - 1,
                     "diff_vs_start": total / tt["total_activity_mbq"] - 1})
    lab = study.labels
    vols = {n: float(lab.mask(n).sum() * lab.geometry.voxel_volume_ml)
            for n in sorted(lab.names.values())}
    return {"nuclide": study.nuclide,
            "injected_activity_mbq": study.administration.injected_activity_mbq,
            "time_points": rows, "label_volumes_ml": vols,
            "labels_on_first_ct": bool(lab.geometry.same_as(study.time_points[0].ct.geometry))}


def compare(truth_json: str | Path, results_json: str | Path) -> list[dict[str, Any]]:
    """Pipeline ``results.json`` against ``truth.json``: TIA and kernel dose per VOI.

    Returns
    -------
    list of dict
        One row per VOI: true and pipeline TIA (MBq·h) and kernel dose (Gy), relative errors.
    """
    truth = json.loads(Path(truth_json).read_text(encoding="utf-8"))
    res = json.loads(Path(results_json).read_text(encoding="utf-8"))
    rows = []
    for name, tv in truth["vois"].items():
        rv = res["vois"].get(name, {})
        tia = (rv.get("tia_mbq_h") or {}).get("value")
        dose = ((rv.get("dose_gy") or {}).get("kernel") or {}).get("value")
        td = tv.get("dose_gy_kernel")
        acts = (rv.get("tac") or {}).get("activity_mbq") or []
        rows.append({
            "voi": name, "true_tia": tv["tia_mbq_h"], "tia": tia,
            "tia_err": None if tia is None else tia / tv["tia_mbq_h"] - 1,
            "true_dose": td, "dose": dose,
            "dose_err": None if dose is None or not td else dose / td - 1,
            "activity_err": [a / t - 1 if t else None
                             for a, t in zip(acts, tv["activity_mbq"], strict=False)],
            "model": (rv.get("fit") or {}).get("model"),
        })
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f} %"


def _print_truth(truth: dict[str, Any]) -> None:
    p = truth["parameters"]
    gbq = p["injected_activity_mbq"] / 1000.0
    print(f"# {platform.machine()}, Python {platform.python_version()}; seed {p['seed']}, "
          f"FWHM {p['fwhm_mm']} mm, SPECT voxel {p['voxel_mm']} mm {p['spect_shape_zyx']}, "
          f"{p['calibration_cps_per_mbq']} cps/MBq, {p['acquisition_min']} min")
    print("| time (h) | motion (deg; mm) | activity in FOV (MBq) | counts | regrid norm |")
    print("|---|---|---|---|---|")
    for tp in truth["time_points"]:
        m = tp["motion"]
        mo = (", ".join(f"{v:+.2f}" for v in m["rotation_deg_xyz"]) + "; "
              + ", ".join(f"{v:+.1f}" for v in m["translation_mm_xyz"]))
        print(f"| {tp['time_h']:.2f} | {mo} | {tp['total_activity_mbq']:.1f} | "
              f"{tp['counts']:.3e} | {tp['regrid_normalisation']:.6f} |")
    print("| VOI | volume (mL) | mass (g) | true TIA (MBq·h) | true dose (Gy) | Gy/GBq |")
    print("|---|---|---|---|---|---|")
    for n, v in truth["vois"].items():
        d = v.get("dose_gy_kernel")
        ds = "— | —" if d is None else f"{d:.3f} | {d / gbq:.3f}"
        print(f"| {n} | {v['volume_ml']:.1f} | {v['mass_g']:.1f} | {v['tia_mbq_h']:.1f} | "
              f"{ds} |")
    print("timings (s):", truth["timings_s"])


def main(argv: list[str] | None = None) -> None:
    """Command line: build a study (and optionally check it), or compare pipeline results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output folder of the study")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fwhm-mm", type=float, default=10.0)
    ap.add_argument("--voxel-mm", type=float, default=4.8)
    ap.add_argument("--times-h", type=float, nargs="+", default=[4.0, 24.0, 96.0, 168.0])
    ap.add_argument("--activity-mbq", type=float, default=7400.0)
    ap.add_argument("--calibration", type=float, default=9.5, help="cps/MBq")
    ap.add_argument("--acquisition-min", type=float, default=20.0)
    ap.add_argument("--no-motion", action="store_true")
    ap.add_argument("--heterogeneity", type=float, default=0.1)
    ap.add_argument("--supersample", type=int, default=3)
    ap.add_argument("--no-dose", action="store_true", help="skip the true kernel dose")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--check", action="store_true", help="load the study with load_study after")
    ap.add_argument("--compare", type=Path, metavar="RESULTS_JSON",
                    help="do not build: compare a pipeline results.json with OUT/truth.json")
    args = ap.parse_args(argv)
    if args.compare is not None:
        rows = compare(args.out / "truth.json", args.compare)
        print("| VOI | true TIA (MBq·h) | pipeline TIA | error | true dose (Gy) | pipeline "
              "dose | error | activity error per time point | model |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            td = "—" if r["true_dose"] is None else f"{r['true_dose']:.3f}"
            pd = "—" if r["dose"] is None else f"{r['dose']:.3f}"
            pt = "—" if r["tia"] is None else f"{r['tia']:.1f}"
            acts = " / ".join(_pct(a) for a in r["activity_err"])
            print(f"| {r['voi']} | {r['true_tia']:.1f} | {pt} | {_pct(r['tia_err'])} | {td} | "
                  f"{pd} | {_pct(r['dose_err'])} | {acts} | {r['model']} |")
        return
    try:
        truth = build_study(args.out, seed=args.seed, fwhm_mm=args.fwhm_mm, voxel_mm=args.voxel_mm,
                            times_h=tuple(args.times_h), injected_activity_mbq=args.activity_mbq,
                            calibration_cps_per_mbq=args.calibration,
                            acquisition_min=args.acquisition_min, motion=not args.no_motion,
                            heterogeneity=args.heterogeneity, supersample=args.supersample,
                            dose=not args.no_dose, data_dir=args.data_dir,
                            overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    _print_truth(truth)
    if args.check:
        t0 = time.perf_counter()
        chk = check_load(args.out)
        print(f"load_study: {time.perf_counter() - t0:.1f} s, {chk['nuclide']} "
              f"{chk['injected_activity_mbq']:g} MBq, labels on the first CT grid: "
              f"{chk['labels_on_first_ct']}")
        print("| time (h) | unit | loaded total (MBq) | true mean during scan | diff | "
              "true at start | diff |")
        print("|---|---|---|---|---|---|---|")
        for r in chk["time_points"]:
            print(f"| {r['time_h']:.3f} | {r['unit']} | {r['loaded_mbq']:.2f} | "
                  f"{r['true_mean_mbq']:.2f} | {_pct(r['diff_vs_mean'])} | "
                  f"{r['true_start_mbq']:.2f} | {_pct(r['diff_vs_start'])} |")


if __name__ == "__main__":
    main()
