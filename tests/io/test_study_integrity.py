"""Nothing of a study dropped silently: unreadable files, foreign modalities, implausible headers.

Issue 17, round 2 (hostile-input corpus): every case below either raises an InputError naming
the file and the field, or warns with a TheradoseWarning naming the file.
"""

import json
import os
import warnings
from datetime import datetime, timedelta

import nibabel as nib
import numpy as np
import pydicom
import pytest

from theradose.errors import DicomTagError, InputError, TheradoseWarning, UnreadableFileError
from theradose.io import (
    Administration,
    DicomStudyInfo,
    load_study,
    read_nifti,
    read_nm,
    write_ct_series,
    write_nifti,
    write_nm,
)
from theradose.volume import Geometry, Volume

INJ = datetime(2024, 5, 1, 9, 0)
ADM = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
GRID = Geometry((4, 5, 6), (4.8, 4.8, 4.8), (-12.0, -12.0, -9.6))
HOURS = (4.0, 24.0, 96.0)


def _nm(h, value=1.0, geometry=GRID):
    return Volume(np.full(geometry.shape, value, np.float32), geometry, unit="Bq/mL",
                  modality="NM", acquisition_time=INJ + timedelta(hours=h),
                  meta={"administration": ADM})


@pytest.fixture
def nifti_study(tmp_path):
    for h in HOURS:
        (tmp_path / f"tp_{h:g}h").mkdir()
        write_nifti(_nm(h), tmp_path / f"tp_{h:g}h" / "spect.nii.gz")
    return tmp_path


def _dicom_study(folder):
    info = DicomStudyInfo()
    for h in HOURS:
        t = INJ + timedelta(hours=h)
        write_ct_series(Volume(np.zeros(GRID.shape, np.int16), GRID, unit="HU", modality="CT",
                               acquisition_time=t - timedelta(minutes=10)),
                        folder / f"tp_{h:g}h" / "ct", patient=info)
        write_nm(_nm(h, 250.0), folder / f"tp_{h:g}h" / "nm.dcm", administration=ADM,
                 patient=info, acquisition_duration_s=1800)
    return folder


# ---------------------------------------------------------------------------------- permissions
def test_unreadable_file_is_an_error(nifti_study, monkeypatch):
    # Runs as root here, where chmod 000 does not bite: os.access is what the walk asks.
    bad = nifti_study / "tp_96h" / "spect.nii.gz"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(bad)
                        else real_access(p, mode, **kw))
    with pytest.raises(UnreadableFileError, match=r"tp_96h/spect\.nii\.gz: file cannot be read "
                                                  r"\(permission denied\)"):
        load_study(nifti_study)


def test_unlistable_folder_is_an_error(nifti_study, monkeypatch):
    bad = nifti_study / "tp_96h"
    real_scandir = os.scandir

    def scandir(p="."):
        if str(p) == str(bad):
            raise PermissionError(13, "Permission denied", str(p))
        return real_scandir(p)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UnreadableFileError, match=r"tp_96h: folder cannot be listed "
                                                  r"\(PermissionError: Permission denied\)"):
        load_study(nifti_study)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_file_and_folder(nifti_study):
    f = nifti_study / "tp_96h" / "spect.nii.gz"
    f.chmod(0)
    try:
        with pytest.raises(UnreadableFileError, match=r"tp_96h/spect\.nii\.gz"):
            load_study(nifti_study)
    finally:
        f.chmod(0o644)
    (nifti_study / "tp_96h").chmod(0)
    try:
        with pytest.raises(UnreadableFileError, match=r"tp_96h: folder cannot be listed"):
            load_study(nifti_study)
    finally:
        (nifti_study / "tp_96h").chmod(0o755)


# ---------------------------------------------------------------------------------- skipped files
def test_foreign_files_warn_harmless_ones_do_not(nifti_study):
    (nifti_study / "tp_96h" / "notes.txt").write_text("moved at 24 h")
    (nifti_study / "tp_96h" / "recon.img").write_bytes(b"\0" * 512)  # Analyze / raw image?
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        s = load_study(nifti_study)
    msgs = [str(w.message) for w in rec if issubclass(w.category, TheradoseWarning)]
    assert len(msgs) == 1 and msgs[0].startswith(str(nifti_study / "tp_96h" / "recon.img") +
                                                 ": skipped: neither DICOM")
    assert {d["file"] for d in s.skipped} == {str(nifti_study / "tp_96h" / f)
                                              for f in ("notes.txt", "recon.img")}
    assert s.times_h.tolist() == pytest.approx(HOURS)


def _set_modality(path, value):
    ds = pydicom.dcmread(path)
    ds.Modality = value
    ds.save_as(path)


def test_spect_with_another_modality_warns_and_empty_modality_is_an_error(tmp_path):
    folder = _dicom_study(tmp_path)
    nm = folder / "tp_24h" / "nm.dcm"
    _set_modality(nm, "MR")
    with pytest.warns(TheradoseWarning, match=r"tp_24h/nm\.dcm: Modality: MR image series "
                                              r"\(1 file\) skipped"):
        s = load_study(folder)
    assert s.times_h.tolist() == [4.0, 96.0]
    assert any(d["file"] == str(nm) and d["reason"].startswith("MR series") for d in s.skipped)
    _set_modality(nm, "")
    with pytest.raises(DicomTagError, match=r"tp_24h/nm\.dcm: Modality: empty on an image"):
        load_study(folder)


# ------------------------------------------------------------------------ radiopharmaceutical
def _nm_file(tmp_path, **item):
    p = write_nm(_nm(24.0, 250.0), tmp_path / "nm.dcm", administration=ADM,
                 acquisition_duration_s=1800, overwrite=True)
    ds = pydicom.dcmread(p)
    for k, v in item.items():
        setattr(ds.RadiopharmaceuticalInformationSequence[0], k, v)
    ds.save_as(p)
    return p


def test_negative_activity_is_an_error_zero_warns(tmp_path):
    p = _nm_file(tmp_path, RadionuclideTotalDose="-7.4e9")
    with pytest.raises(DicomTagError, match=r"nm\.dcm: RadionuclideTotalDose: must be >= 0 Bq, "
                                            r"got -7\.4e\+09"):
        read_nm(p)
    p = _nm_file(tmp_path, RadionuclideTotalDose="0")
    with pytest.warns(TheradoseWarning, match=r"nm\.dcm: RadionuclideTotalDose: 0 Bq: treated "
                                              r"as missing"):
        v = read_nm(p)
    assert v.meta.get("administration") is None


@pytest.mark.parametrize("half_life_s, ok", [
    (574300.8, True),      # ICRP-107: 6.647 d = 574 300.8 s
    (6.6443 * 86400, True),  # NUBASE2020 6.6443 d: -0.04 %
    (574300.8 * 1.0099, True),
    (574300.8 * 1.0101, False),
    (3600.0, False),       # 1 h: unit slip
])
def test_half_life_contradicting_the_nuclide(tmp_path, half_life_s, ok):
    p = _nm_file(tmp_path, RadionuclideHalfLife=f"{half_life_s:.6g}" if ok else str(half_life_s))
    if ok:
        assert read_nm(p).meta["administration"].nuclide == "Lu-177"
    else:
        with pytest.raises(DicomTagError, match=r"nm\.dcm: RadionuclideHalfLife: [\d.e+]+ s "
                                                r"contradicts the Lu-177 half-life of 574301 s"):
            read_nm(p)


# ---------------------------------------------------------------------------------- NIfTI
def _set_pixdim(path, x):
    img = nib.load(str(path))
    arr = np.asarray(img.dataobj)
    hdr = img.header.copy()
    zooms = list(hdr.get_zooms())
    zooms[0] = x
    hdr.set_zooms(zooms)
    path.unlink()
    nib.save(nib.Nifti1Image(arr, None, hdr), str(path))


@pytest.mark.parametrize("x, ok", [(1e-30, False), (1e-4, False), (2e4, False), (1e-3, True),
                                   (0.05, True), (1e4, True)])
def test_voxel_size_range(tmp_path, x, ok):
    p = tmp_path / "a.nii.gz"
    write_nifti(_nm(24.0), p)
    _set_pixdim(p, x)
    if ok:
        # the sidecar's full-precision geometry disagrees now: drop it
        side = json.loads((tmp_path / "a.json").read_text())
        side.pop("geometry")
        (tmp_path / "a.json").write_text(json.dumps(side))
        assert read_nifti(p).geometry.spacing_mm[0] == pytest.approx(x, rel=1e-6)
    else:
        with pytest.raises(InputError, match=r"a\.nii\.gz: pixdim: voxel size \[.*\] mm .* "
                                             r"outside \[0\.001, 10000\] mm"):
            read_nifti(p)


def test_one_voxel_emission_image_is_an_error(tmp_path):
    g = Geometry((1, 1, 1), (4.0, 4.0, 4.0))
    write_nifti(_nm(24.0, geometry=g), tmp_path / "one.nii.gz")
    with pytest.raises(InputError, match=r"one\.nii\.gz: dim: emission image \(NM\) of 1 x 1 x "
                                         r"1 voxels"):
        read_nifti(tmp_path / "one.nii.gz")
    g = Geometry((2, 2, 2), (4.0, 4.0, 4.0))  # 2 per axis is the least accepted
    write_nifti(_nm(24.0, geometry=g), tmp_path / "two.nii.gz")
    assert read_nifti(tmp_path / "two.nii.gz").shape == (2, 2, 2)


def test_missing_sigma_file_names_the_sidecar(tmp_path):
    write_nifti(_nm(24.0), tmp_path / "24-h.nii.gz")
    side = json.loads((tmp_path / "24-h.json").read_text())
    side["sigma_file"] = "missing_sigma.nii.gz"
    (tmp_path / "24-h.json").write_text(json.dumps(side))
    with pytest.raises(UnreadableFileError, match=r"24-h\.json: sigma_file: the sigma image "
                                                  r".*missing_sigma\.nii\.gz does not exist"):
        read_nifti(tmp_path / "24-h.nii.gz")


def test_negative_voxels_warn_above_one_percent(nifti_study):
    p = nifti_study / "tp_24h" / "spect.nii.gz"
    arr = np.ones(GRID.shape, np.float32)
    # 119 voxels of 1 Bq/mL and a few small negatives: 5 x -0.15 = 0.75 / 119 = 0.63 % of the
    # total, each above -20 % of the maximum -> no warning
    arr[0, 0, :5] = -0.15
    write_nifti(_nm(24.0).replace(array=arr), p, overwrite=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TheradoseWarning)
        load_study(nifti_study)
    # one deep voxel: -0.25 x the maximum (1 / 119 x 0.25 = 0.21 % of the total) -> warns
    arr[0, 0, :5] = 1.0
    arr[0, 0, 0] = -0.25
    write_nifti(_nm(24.0).replace(array=arr), p, overwrite=True)
    with pytest.warns(TheradoseWarning, match=r"sum to 0\.0021 of the positive total .* the "
                                              r"lowest -0\.25 Bq/mL vs a maximum of 1"):
        load_study(nifti_study)
    arr[0, 0, 0] = -1e6  # 1e6 / 119 = 8403
    write_nifti(_nm(24.0).replace(array=arr), p, overwrite=True)
    with pytest.warns(TheradoseWarning, match=r"tp_24h/spect\.nii\.gz: values: negative voxels "
                                              r"sum to 8\.4e\+03 of the positive total"):
        load_study(nifti_study)


def _ct(h, unit="HU"):
    return Volume(np.full(GRID.shape, -1000.0, np.float32), GRID, unit=unit, modality="CT",
                  acquisition_time=INJ + timedelta(hours=h, minutes=-10))


def test_ct_not_in_hu_is_an_error(nifti_study):
    write_nifti(_ct(4.0, unit="Bq/mL"), nifti_study / "tp_4h" / "ct.nii.gz")
    with pytest.raises(InputError, match=r"ct\.json: unit: a CT image must be in HU, got "
                                         r"'Bq/mL'"):
        load_study(nifti_study)


def test_ct_without_its_spect_warns(nifti_study):
    # the 96 h SPECT mislabelled (here: missing): its CT stays, unpaired; said, not only listed
    for h in HOURS:
        write_nifti(_ct(h), nifti_study / f"tp_{h:g}h" / "ct.nii.gz")
    (nifti_study / "tp_96h" / "spect.nii.gz").unlink()
    (nifti_study / "tp_96h" / "spect.json").unlink()
    with pytest.warns(TheradoseWarning, match=r"tp_96h/ct\.json: acquisition_time: CT not "
                                              r"paired with any emission image"):
        s = load_study(nifti_study)
    assert [round(h) for h in s.times_h] == [4, 24]
    assert any("tp_96h/ct.nii.gz" in k["file"] for k in s.skipped)
