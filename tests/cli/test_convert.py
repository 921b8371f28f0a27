from datetime import datetime, timedelta

import numpy as np
import pytest

from theradose.cli import main
from theradose.io import (
    Administration,
    DicomStudyInfo,
    load_study,
    read_dicom_series,
    read_nifti,
    write_ct_series,
    write_nm,
)
from theradose.volume import Geometry, Volume

INJ = datetime(2026, 3, 2, 9, 0)


@pytest.fixture
def dicom_study(tmp_path):
    adm = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
    info = DicomStudyInfo(patient_id="VP1", patient_weight_kg=80.0)
    rng = np.random.default_rng(3)
    src = tmp_path / "dicom"
    for h in (24, 4):  # written out of time order on purpose
        t = INJ + timedelta(hours=h)
        gct = Geometry((6, 16, 16), (2.0, 2.0, 3.0), (-16, -16, -9))
        ct = Volume(rng.normal(0, 20, gct.shape).round(), gct, unit="HU", modality="CT",
                    acquisition_time=t)
        write_ct_series(ct, src / f"ct_{h}", patient=info)
        g = Geometry((4, 7, 7), (4.8, 4.8, 4.8), (-16, -16, -9))
        nm = Volume(rng.poisson(50, g.shape).astype(float), g, unit="counts", modality="NM",
                    acquisition_time=t)
        write_nm(nm, src / f"nm_{h}.dcm", administration=adm, acquisition_duration_s=1800,
                 patient=info)
    return src


def test_convert_then_load_gives_the_same_study(dicom_study, tmp_path, capsys):
    out = tmp_path / "nifti"
    assert main(["convert", str(dicom_study), "--out", str(out),
                 "--calibration-cps-per-mbq", "9"]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) == 4 and written[0].endswith("ct_20260302T130000.nii.gz")
    nm4 = read_nifti(written[1])
    ref = read_dicom_series(dicom_study / "nm_4.dcm", calibration_cps_per_mbq=9.0)
    # NIfTI holds exactly what the DICOM reader produced (values, grid, time)
    np.testing.assert_array_equal(nm4.array, ref.array)
    assert nm4.geometry.same_as(ref.geometry, tol_mm=1e-6)
    assert nm4.unit == "Bq/mL" and nm4.acquisition_time == INJ + timedelta(hours=4)
    study = load_study(out)
    np.testing.assert_allclose(study.times_h, [4.0, 24.0])  # hours from injection (hand)
    assert study.administration.injected_activity_mbq == 7400.0


def test_convert_refuses_output_inside_input(dicom_study, capsys):
    assert main(["convert", str(dicom_study), "--out", str(dicom_study / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out: output folder lies inside the input folder" in err
    assert not (dicom_study / "x").exists()


def test_convert_refuses_to_overwrite(dicom_study, tmp_path, capsys):
    out = tmp_path / "n"
    assert main(["convert", str(dicom_study), "--out", str(out)]) == 0
    assert main(["convert", str(dicom_study), "--out", str(out)]) == 2
    assert "output exists" in capsys.readouterr().err
    assert main(["convert", str(dicom_study), "--out", str(out), "--overwrite"]) == 0


def test_convert_without_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "Modality: no CT, NM or PT image series found" in capsys.readouterr().err


def test_two_series_with_one_name_both_written(tmp_path, capsys):
    """Two reconstructions of one acquisition (same modality, time, description): before, the
    second replaced the first under ``--overwrite``; now each gets its own file."""
    adm = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
    info = DicomStudyInfo(patient_id="VP1", patient_weight_kg=80.0)
    t = INJ + timedelta(hours=24)
    g = Geometry((4, 7, 7), (4.8, 4.8, 4.8), (-16, -16, -9))
    src = tmp_path / "dicom"
    for k, level in enumerate((50.0, 80.0)):
        nm = Volume(np.full(g.shape, level), g, unit="counts", modality="NM", acquisition_time=t)
        write_nm(nm, src / f"nm_{k}.dcm", administration=adm, acquisition_duration_s=1800,
                 patient=info)
    out = tmp_path / "nifti"
    for extra in ([], ["--overwrite"]):
        assert main(["convert", str(src), "--out", str(out), *extra]) == 0
        written = capsys.readouterr().out.split()
        assert len(written) == 2 and len(set(written)) == 2
    names = sorted(p.name for p in out.glob("*.nii.gz"))
    assert len(names) == 2  # nothing overwritten within the run
    # both series' values are there, one per file (50 and 80 counts, as written)
    assert sorted(float(read_nifti(out / n).array.max()) for n in names) == [50.0, 80.0]
    # the suffix comes from the SeriesInstanceUID, not from the reading order
    uids = {read_dicom_series(src / f"nm_{k}.dcm").meta["series_instance_uid"] for k in (0, 1)}
    import hashlib

    tags = {hashlib.sha1(u.encode()).hexdigest()[:8] for u in uids}
    assert {n.removesuffix(".nii.gz").rsplit("_", 1)[1] for n in names} == tags
