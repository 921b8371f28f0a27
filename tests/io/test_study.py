"""The Study loader: roles, ordering, CT pairing, administration, validation, CLI."""

import hashlib
import json
import os
from datetime import datetime, timedelta

import numpy as np
import pytest

from theradose.cli import main
from theradose.errors import (
    GeometryMismatchError,
    InputError,
    TheradoseWarning,
    TimeOrderError,
    UnknownNuclideError,
    UnreadableFileError,
)
from theradose.io import (
    Administration,
    DicomStudyInfo,
    Study,
    TimePoint,
    load_study,
    write_ct_series,
    write_labelmap,
    write_nifti,
    write_nm,
)
from theradose.volume import Geometry, LabelMap, Volume

INJ = datetime(2024, 5, 1, 9, 0)
ADM = Administration("Lu-177", 7400.0, INJ, "177Lu-PSMA-617")
# Acquisition times and hours after injection worked out by hand from the datetimes:
#   2024-05-01 13:00        -> 4 h
#   2024-05-02 09:30        -> 24 h + 0.5 h = 24.5 h
#   2024-05-05 09:00        -> 4 d = 96 h
#   2024-05-08 10:12        -> 7 d + 1.2 h = 169.2 h
SESSIONS = {"d2": datetime(2024, 5, 2, 9, 30), "d7": datetime(2024, 5, 8, 10, 12),
            "d0": datetime(2024, 5, 1, 13, 0), "d4": datetime(2024, 5, 5, 9, 0)}
HOURS = [4.0, 24.5, 96.0, 169.2]
GRID = Geometry((4, 5, 6), (4.8, 4.8, 4.8), (-12.0, -12.0, -9.6))


def _nm(t, *, value=1.0, unit="Bq/mL", meta=None, geometry=GRID, modality="NM"):
    return Volume(np.full(geometry.shape, value, np.float32), geometry, unit=unit,
                  modality=modality, acquisition_time=t, meta=dict(meta or {}))


def _ct(t, geometry=GRID):
    return Volume(np.zeros(geometry.shape, np.int16), geometry, unit="HU", modality="CT",
                  acquisition_time=t)


def _write_session(folder, name, t, *, adm=ADM, ct=True, **kw):
    meta = {"administration": adm} if adm is not None else {}
    meta.update(kw.pop("meta", {}))
    write_nifti(_nm(t, meta=meta, **kw), folder / f"{name}_spect.nii.gz")
    if ct:  # CT acquired 10 min before the SPECT, as on a SPECT/CT
        write_nifti(_ct(t - timedelta(minutes=10)), folder / f"{name}_ct.nii.gz")


@pytest.fixture
def nifti_study(tmp_path):
    """Four SPECT/CT sessions whose file names do not sort in time order."""
    for name, t in SESSIONS.items():
        _write_session(tmp_path, name, t)
    return tmp_path


def _md5s(folder):
    return {str(p): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit_sidecar(path, **changes):
    side = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            side.pop(k, None)
        else:
            side[k] = v
    path.write_text(json.dumps(side))


# ---------------------------------------------------------------------------------- NIfTI folder
def test_time_points_are_ordered_and_paired(nifti_study):
    before = _md5s(nifti_study)
    s = load_study(nifti_study)
    np.testing.assert_allclose(s.times_h, HOURS, rtol=0, atol=1e-9)
    assert s.administration == ADM and s.nuclide == "Lu-177" and s.source == nifti_study
    names = [tp.emission.meta["source_file"].split("/")[-1] for tp in s.time_points]
    assert names == ["d0_spect.nii.gz", "d2_spect.nii.gz", "d4_spect.nii.gz", "d7_spect.nii.gz"]
    cts = [tp.ct.meta["source_file"].split("/")[-1] for tp in s.time_points]
    assert cts == ["d0_ct.nii.gz", "d2_ct.nii.gz", "d4_ct.nii.gz", "d7_ct.nii.gz"]
    assert s.pet is None and s.labels is None
    assert _md5s(nifti_study) == before  # inputs untouched


def test_summary_is_json_serialisable(nifti_study):
    summ = json.loads(json.dumps(load_study(nifti_study).summary()))
    assert [tp["time_h"] for tp in summ["time_points"]] == pytest.approx(HOURS)
    tp0 = summ["time_points"][0]
    assert tp0["modality"] == "NM" and tp0["unit"] == "Bq/mL"
    assert tp0["shape_zyx"] == [4, 5, 6] and tp0["spacing_mm"] == [4.8, 4.8, 4.8]
    assert tp0["acquisition_time"] == "2024-05-01T13:00:00"
    assert tp0["ct"]["acquisition_time"] == "2024-05-01T12:50:00"
    assert summ["administration"]["injected_activity_mbq"] == 7400.0


def test_explicit_paired_ct_wins_over_nearest_time(nifti_study):
    _edit_sidecar(nifti_study / "d0_spect.json", paired_ct="d2_ct.nii.gz")
    s = load_study(nifti_study)
    assert s.time_points[0].ct.meta["source_file"].endswith("d2_ct.nii.gz")


def test_ct_outside_tolerance_is_not_paired(tmp_path):
    t = SESSIONS["d0"]
    write_nifti(_nm(t, meta={"administration": ADM}), tmp_path / "spect.nii.gz")
    write_nifti(_ct(t + timedelta(hours=3)), tmp_path / "ct.nii.gz")
    assert load_study(tmp_path).time_points[0].ct is None
    assert load_study(tmp_path, ct_tolerance_h=4).time_points[0].ct is not None


def test_declared_pair_must_exist_and_overlap(nifti_study):
    _edit_sidecar(nifti_study / "d0_spect.json", paired_ct="d4_spect.nii.gz")
    with pytest.raises(InputError, match=r"d0_spect\.json: paired_ct: names 'd4_spect\.nii\.gz', "
                       "which is not a CT of the study") as exc:
        load_study(nifti_study)
    assert "\n" not in str(exc.value)
    far = Geometry(GRID.shape, GRID.spacing_mm, (500.0, 0.0, 0.0))
    write_nifti(_ct(SESSIONS["d0"], far), nifti_study / "far_ct.nii.gz")
    _edit_sidecar(nifti_study / "d0_spect.json", paired_ct="far_ct.nii.gz")
    with pytest.raises(GeometryMismatchError, match=r"d0_spect\.json: paired_ct: declared pair "
                       r"d0_spect\.nii\.gz / far_ct\.nii\.gz does not overlap in space"):
        load_study(nifti_study)
    _edit_sidecar(nifti_study / "d0_spect.json", paired_ct=7)
    with pytest.raises(InputError, match="paired_ct: must be the file name of a CT NIfTI"):
        load_study(nifti_study)


def test_declared_pair_with_different_frame_of_reference(tmp_path):
    t = SESSIONS["d0"]
    write_nifti(_nm(t, meta={"administration": ADM, "frame_of_reference_uid": "1.2.3",
                             "paired_ct": "ct.nii.gz"}), tmp_path / "spect.nii.gz")
    ct = _ct(t)
    write_nifti(ct.replace(meta={"frame_of_reference_uid": "1.2.4"}), tmp_path / "ct.nii.gz")
    with pytest.raises(GeometryMismatchError, match=r"paired_ct: declared pair .* different "
                       r"FrameOfReferenceUIDs \(1\.2\.3 vs 1\.2\.4\)"):
        load_study(tmp_path)


# ---------------------------------------------------------------------------------- administration
def test_administration_from_arguments(tmp_path):
    for name, t in SESSIONS.items():
        _write_session(tmp_path, name, t, adm=None)
    with pytest.raises(InputError, match=r"injected_activity_mbq: no administration in the image "
                       r"headers or sidecars; pass injected_activity_mbq, injection_time \(CLI: "
                       ) as exc:
        load_study(tmp_path, nuclide="Lu-177")
    assert str(tmp_path) in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(InputError, match="nuclide: no administration .* pass nuclide, "
                       "injected_activity_mbq, injection_time"):
        load_study(tmp_path)
    s = load_study(tmp_path, nuclide="177Lu", injected_activity_mbq=7400,
                   injection_time="2024-05-01T09:00")
    assert s.administration.nuclide == "Lu-177"  # normalised to the ICRP-107 spelling
    np.testing.assert_allclose(s.times_h, HOURS, atol=1e-9)
    assert all(tp.emission.meta["administration"] == s.administration for tp in s.time_points)


def test_arguments_must_agree_with_the_files(nifti_study):
    assert load_study(nifti_study, nuclide="lu-177", injected_activity_mbq=7400.0,
                      injection_time=INJ).administration == ADM  # agreeing arguments are fine
    with pytest.raises(InputError, match=r"_spect\.json: injected_activity_mbq: argument "
                       r"injected_activity_mbq=7000\.0 contradicts the image's 7400\.0"):
        load_study(nifti_study, injected_activity_mbq=7000)
    with pytest.raises(InputError, match="nuclide: argument nuclide='Y-90' contradicts"):
        load_study(nifti_study, nuclide="Y-90")
    with pytest.raises(InputError, match="injection_time: argument injection_time="):
        load_study(nifti_study, injection_time="2024-05-01T10:00")


def test_different_administrations_or_nuclides_are_refused(nifti_study):
    other = {"nuclide": "Lu-177", "injected_activity_mbq": 7400.0,
             "injection_time": "2024-04-01T09:00:00"}  # a previous cycle
    _edit_sidecar(nifti_study / "d4_spect.json", administration=other)
    with pytest.raises(InputError, match=r"d4_spect\.json: administration: administration .* "
                       r"differs from .*; the time points must come from one administration"):
        load_study(nifti_study)


def test_different_nuclides_without_administration(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for sub in (a, b):
        sub.mkdir()
    _write_session(a, "a", SESSIONS["d0"], adm=None, meta={"nuclide": "Lu-177"})
    _write_session(b, "b", SESSIONS["d2"], adm=None, meta={"nuclide": "Tb-161"})
    with pytest.raises(InputError, match=r"b_spect\.json: nuclide: nuclide 'Tb-161' differs from "
                       r"'Lu-177'"):
        load_study(tmp_path, injected_activity_mbq=7400, injection_time=INJ)
    with pytest.raises(InputError, match=r"a_spect\.json: nuclide: argument nuclide='Y-90' "
                       "contradicts the image's 'Lu-177'"):
        load_study(a, nuclide="Y-90", injected_activity_mbq=7400, injection_time=INJ)
    s = load_study(a, injected_activity_mbq=7400, injection_time=INJ)  # nuclide from the sidecar
    assert s.administration == Administration("Lu-177", 7400.0, INJ)


# ---------------------------------------------------------------------------------- times
def test_duplicate_times_are_refused(nifti_study):
    _write_session(nifti_study, "copy", SESSIONS["d2"], ct=False)
    with pytest.raises(TimeOrderError, match=r"acquisition_time: .*_spect\.nii\.gz and "
                       r".*_spect\.nii\.gz are both at 24\.5 h after injection") as exc:
        load_study(nifti_study)
    assert "copy_spect.nii.gz" in str(exc.value) and "d2_spect.nii.gz" in str(exc.value)


def test_time_point_before_injection_is_refused(nifti_study):
    _write_session(nifti_study, "early", datetime(2024, 5, 1, 8, 0), ct=False)
    with pytest.raises(TimeOrderError, match=r"early_spect\.json: acquisition_time: acquired "
                       r"2024-05-01T08:00:00, 1 h before the injection"):
        load_study(nifti_study)


def test_time_point_without_acquisition_time(nifti_study):
    _edit_sidecar(nifti_study / "d2_spect.json", acquisition_time=None)
    with pytest.raises(InputError, match=r"d2_spect\.json: acquisition_time: time point has no "
                       "acquisition time"):
        load_study(nifti_study)


def test_study_dataclass_validates_order():
    v = _nm(SESSIONS["d0"])
    with pytest.raises(TimeOrderError, match=r"^time_points: times must be strictly increasing, "
                       r"got \[24\.0, 4\.0\] h"):
        Study((TimePoint(v, None, 24.0), TimePoint(v, None, 4.0)), ADM)
    with pytest.raises(TimeOrderError, match="^time_points: time points before the injection"):
        Study((TimePoint(v, None, -1.0),), ADM)
    with pytest.raises(InputError, match="^time_points: a study needs at least one time point"):
        Study((), ADM)
    with pytest.raises(InputError, match="^administration: must be an Administration"):
        Study((TimePoint(v, None, 1.0),), {"nuclide": "Lu-177"})
    with pytest.raises(InputError, match="^time_h: must be a finite number"):
        TimePoint(v, None, float("nan"))
    with pytest.raises(InputError, match="^emission: must be a Volume"):
        TimePoint(np.zeros((2, 2, 2)), None, 1.0)
    with pytest.raises(InputError, match="^ct: must be a Volume or None"):
        TimePoint(v, "ct.nii.gz", 1.0)
    s = Study([TimePoint(v, None, 4.0), TimePoint(v, None, 24.0)], ADM, source="x")
    assert isinstance(s.time_points, tuple) and s.times_h.dtype == np.float64
    assert s.skipped == () and s.summary()["skipped"] == []
    with pytest.raises(InputError, match=r"^skipped: must be a sequence of \{'file'"):
        Study((TimePoint(v, None, 1.0),), ADM, skipped=["notes.txt"])


# ---------------------------------------------------------------------------------- folder content
def test_folder_problems(tmp_path):
    with pytest.raises(UnreadableFileError, match="missing: study folder does not exist"):
        load_study(tmp_path / "missing")
    with pytest.raises(InputError, match=r"modality: no emission image \(NM or PT\) among 0 "
                       r"image\(s\) found"):
        load_study(tmp_path)
    write_nifti(_ct(SESSIONS["d0"]), tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match="among 1 image"):
        load_study(tmp_path)
    write_nifti(_nm(SESSIONS["d0"]), tmp_path / "spect.nii.gz")
    (tmp_path / "spect.json").unlink()
    with pytest.raises(InputError, match=r"spect\.nii\.gz: sidecar: no sidecar spect\.json: the "
                       "study loader needs 'modality' and 'acquisition_time'"):
        load_study(tmp_path)


def test_other_modalities_are_ignored_with_a_warning(nifti_study):
    tia = Volume(np.ones(GRID.shape), GRID, unit="MBq*h", modality="OT")
    write_nifti(tia, nifti_study / "tia.nii.gz")
    with pytest.warns(TheradoseWarning, match=r"tia\.nii\.gz: modality: OT image ignored"):
        assert len(load_study(nifti_study).time_points) == 4


def test_role_validation(nifti_study):
    _edit_sidecar(nifti_study / "d0_spect.json", role="baseline")
    with pytest.raises(InputError, match=r"d0_spect\.json: role: unknown role 'baseline'; "
                       "accepted: therapy, pretherapy"):
        load_study(nifti_study)
    for name in SESSIONS:
        _edit_sidecar(nifti_study / f"{name}_spect.json", role="pretherapy")
    with pytest.raises(InputError, match="role: no therapy time point"):
        load_study(nifti_study)


def test_sigma_files_are_not_images(tmp_path):
    t = SESSIONS["d0"]
    v = _nm(t, meta={"administration": ADM}).replace(sigma=np.full(GRID.shape, 0.1, np.float32))
    write_nifti(v, tmp_path / "spect.nii.gz")
    s = load_study(tmp_path)
    assert len(s.time_points) == 1 and s.time_points[0].emission.sigma[0, 0, 0] == \
        np.float32(0.1)


# ---------------------------------------------------------------------------------- folder walk
def _skipped(study) -> dict[str, str]:
    root = str(study.source)
    return {d["file"].replace(root, "<s>"): d["reason"].replace(root, "<s>")
            for d in study.skipped}


def test_symlinked_time_point_folder_is_followed_once(nifti_study, tmp_path_factory):
    # the 96 h session lives outside the study folder and is linked in; a second link to it,
    # links to a file already read (symbolic, hard) and a link cycle (to the study folder
    # itself) are read once
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for f in nifti_study.glob("d4_*"):
        f.rename(elsewhere / f.name)
    (nifti_study / "linked").symlink_to(elsewhere, target_is_directory=True)
    (nifti_study / "zz_again").symlink_to(elsewhere, target_is_directory=True)
    (nifti_study / "linked_file.json").symlink_to(nifti_study / "d0_spect.json")
    os.link(nifti_study / "d2_ct.json", nifti_study / "hard.json")
    (nifti_study / "sub").mkdir()
    (nifti_study / "sub" / "loop").symlink_to(nifti_study, target_is_directory=True)
    s = load_study(nifti_study)
    np.testing.assert_allclose(s.times_h, HOURS, rtol=0, atol=1e-9)
    assert s.time_points[2].emission.meta["source_file"] == str(nifti_study / "linked" /
                                                                 "d4_spect.nii.gz")
    assert _skipped(s) == {
        "<s>/linked_file.json": "same file as <s>/d0_spect.json (symbolic or hard link): "
                                "read once",
        "<s>/hard.json": "same file as <s>/d2_ct.json (symbolic or hard link): read once",
        "<s>/sub/loop": "same folder as <s> (symbolic link): read once",
        "<s>/zz_again": "same folder as <s>/linked (symbolic link): read once",
    }


def test_skipped_files_are_listed_with_their_reason(nifti_study, capsys):
    (nifti_study / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (nifti_study / "notes.txt").write_text("patient was moved at 24 h")
    (nifti_study / "results.json").write_text("{}")
    (nifti_study / "dangling.dcm").symlink_to(nifti_study / "deleted.dcm")
    hidden = nifti_study / ".trash"
    hidden.mkdir()
    _write_session(hidden, "old", SESSIONS["d0"] + timedelta(hours=1))  # would be a 5th point
    # a CT no emission image pairs with (3 h from every SPECT, no FrameOfReferenceUID)
    write_nifti(_ct(SESSIONS["d4"] + timedelta(hours=3)), nifti_study / "extra_ct.nii.gz")
    s = load_study(nifti_study)
    assert len(s.time_points) == 4
    expected = {
        "<s>/.DS_Store": "hidden file (name starts with '.')",
        "<s>/.trash": "hidden folder (name starts with '.'): not searched",
        "<s>/dangling.dcm": "broken symbolic link",
        "<s>/notes.txt": "neither DICOM (no 'DICM' preamble at byte 128) nor NIfTI (.nii, "
                         ".nii.gz) nor a NIfTI's JSON sidecar",
        "<s>/results.json": "JSON file that is no NIfTI image's sidecar",
        "<s>/extra_ct.nii.gz": "CT not paired with any emission image (no FrameOfReferenceUID, "
                               "paired_ct or acquisition time within ct_tolerance_h matched)",
    }
    assert _skipped(s) == expected
    assert s.summary()["skipped"] == list(s.skipped)
    assert main(["study", str(nifti_study)]) == 0
    out = capsys.readouterr().out
    assert "skipped 6 file(s) or series:" in out
    assert f"  {nifti_study / 'notes.txt'}: neither DICOM" in out
    assert main(["study", str(nifti_study), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["file"] for d in data["skipped"]} == \
        {k.replace("<s>", str(nifti_study)) for k in expected}


# ---------------------------------------------------------------------------------- PET, labels
def _pet(tmp_path, *, adm=True):
    ga = Administration("Ga-68", 150.0, datetime(2024, 4, 20, 10, 0), "68Ga-PSMA-11")
    meta = {"administration": ga} if adm else {}
    # PET 1 h 5 min after its own injection -> 65/60 h (hand calculation)
    write_nifti(_nm(datetime(2024, 4, 20, 11, 5), meta=meta, modality="PT"),
                tmp_path / "pet.nii.gz")
    write_nifti(_ct(datetime(2024, 4, 20, 11, 0)), tmp_path / "pet_ct.nii.gz")
    return ga


def test_pretherapy_pet_keeps_its_own_administration(nifti_study):
    ga = _pet(nifti_study)
    s = load_study(nifti_study)
    assert s.pet.emission.modality == "PT" and s.pet.emission.meta["administration"] == ga
    assert s.pet.time_h == pytest.approx(65 / 60, abs=1e-12)
    assert s.pet.ct.meta["source_file"].endswith("pet_ct.nii.gz")
    np.testing.assert_allclose(s.times_h, HOURS, atol=1e-9)  # therapy unaffected
    assert s.summary()["pet"]["administration"]["nuclide"] == "Ga-68"
    # a "pre-therapy" PET acquired after the therapy injection is suspicious: warn
    _edit_sidecar(nifti_study / "pet.json", acquisition_time="2024-05-01T11:05:00",
                  administration={**ga.to_dict(), "injection_time": "2024-05-01T10:00:00"})
    with pytest.warns(TheradoseWarning, match=r"pet\.nii\.gz: acquisition_time: the pre-therapy "
                      "PET was acquired after the therapy injection"):
        assert load_study(nifti_study).pet.time_h == pytest.approx(65 / 60)


def test_pretherapy_pet_problems(nifti_study):
    _pet(nifti_study, adm=False)
    with pytest.raises(InputError, match=r"pet\.json: administration: the pre-therapy PET has no "
                       "administration"):
        load_study(nifti_study)
    _edit_sidecar(nifti_study / "pet.json", administration={
        "nuclide": "Ga-68", "injected_activity_mbq": 150, "injection_time": "2024-04-20T10:00"})
    write_nifti(_nm(datetime(2024, 4, 21, 11, 0), modality="PT"), nifti_study / "pet2.nii.gz")
    with pytest.raises(InputError, match=r"role: more than one pre-therapy PET: \['pet\.nii\.gz', "
                       r"'pet2\.nii\.gz'\]"):
        load_study(nifti_study)


def test_pet_only_study_uses_pet_as_time_points(tmp_path):
    for i, h in enumerate((1.0, 3.0)):
        write_nifti(_nm(INJ + timedelta(hours=h), modality="PT", meta={"administration": ADM}),
                    tmp_path / f"pet{i}.nii.gz")
    s = load_study(tmp_path)
    assert s.times_h.tolist() == [1.0, 3.0] and s.pet is None


def test_labels_are_loaded_and_checked(nifti_study):
    lab = np.zeros(GRID.shape, np.uint8)
    lab[1:3, 1:3, 1:3] = 5
    write_nifti(Volume(lab, GRID, unit="label"), nifti_study / "labels.nii.gz")
    (nifti_study / "labels.json").write_text(json.dumps({"5": "liver", "1": "spleen"}))
    s = load_study(nifti_study)
    assert s.labels.names == {5: "liver"} and int(s.labels.mask("liver").sum()) == 8
    assert s.summary()["labels"]["names"] == {"5": "liver"}
    far = Geometry(GRID.shape, GRID.spacing_mm, (0.0, 900.0, 0.0))
    write_labelmap(LabelMap(lab, far, names={5: "liver"}), nifti_study / "labels.nii.gz",
                   overwrite=True)
    with pytest.raises(GeometryMismatchError, match=r"labels\.nii\.gz: geometry: label map does "
                       "not overlap"):
        load_study(nifti_study)
    write_labelmap(LabelMap(lab, GRID, names={5: "liver"}), nifti_study / "organs.nii.gz")
    with pytest.raises(InputError, match="labels: more than one label map"):
        load_study(nifti_study)


# ---------------------------------------------------------------------------------- calibration
def test_counts_are_calibrated_by_hand_formula(tmp_path):
    # C = counts / (T_acq * cal) * 1e6 / V_voxel  (docs/io-dicom.md, read_nm):
    # 18000 counts / (1800 s * 10 cps/MBq) = 1 MBq in a 1 mL voxel (10 mm)^3 -> 1e6 Bq/mL
    g = Geometry((2, 2, 2), (10.0, 10.0, 10.0))
    meta = {"administration": ADM, "acquisition_duration_s": 1800.0}
    write_nifti(_nm(SESSIONS["d0"], value=18000.0, unit="counts", meta=meta, geometry=g),
                tmp_path / "spect.nii.gz")
    s = load_study(tmp_path, calibration_cps_per_mbq=10.0)
    em = s.time_points[0].emission
    assert em.unit == "Bq/mL" and em.array[0, 0, 0] == pytest.approx(1e6, rel=1e-12)
    assert em.meta["calibration_cps_per_mbq"] == 10.0 and "counts -> Bq/mL" in em.history[-1]
    with pytest.warns(TheradoseWarning, match="unit: the image stays in counts"):
        assert load_study(tmp_path).time_points[0].emission.unit == "counts"
    _edit_sidecar(tmp_path / "spect.json", calibration_cps_per_mbq=12.0)
    assert load_study(tmp_path).time_points[0].emission.array[0, 0, 0] == \
        pytest.approx(18000 / (1800 * 12) * 1e6)
    with pytest.raises(InputError, match=r"spect\.json: calibration_cps_per_mbq: argument "
                       r"calibration_cps_per_mbq=10\.0 contradicts the image's 12\.0"):
        load_study(tmp_path, calibration_cps_per_mbq=10.0)
    _edit_sidecar(tmp_path / "spect.json", acquisition_duration_s=None)
    with pytest.raises(InputError, match="acquisition_duration_s: counts -> Bq/mL needs the "
                       "acquisition duration"):
        load_study(tmp_path)


def test_argument_validation(nifti_study):
    with pytest.raises(InputError, match=r"^injected_activity_mbq: must be a finite number > 0"):
        load_study(nifti_study, injected_activity_mbq=-5)
    with pytest.raises(InputError, match=r"^calibration_cps_per_mbq: must be a finite number"):
        load_study(nifti_study, calibration_cps_per_mbq=0)
    with pytest.raises(InputError, match=r"^injection_time: invalid ISO 8601 date-time 'noon'"):
        load_study(nifti_study, injection_time="noon")
    with pytest.raises(InputError, match=r"^injection_time: must be a datetime or ISO 8601"):
        load_study(nifti_study, injection_time=12.0)
    with pytest.raises(UnknownNuclideError, match=r"^nuclide: expected a nuclide name such as "
                       "'Lu-177', got ''"):
        load_study(nifti_study, nuclide="")
    with pytest.raises(UnknownNuclideError, match=r"^nuclide: unknown nuclide 'Lu-999'"):
        load_study(nifti_study, nuclide="Lu-999")
    with pytest.raises(InputError, match=r"^ct_tolerance_h: must be a finite number > 0"):
        load_study(nifti_study, ct_tolerance_h=float("inf"))


# ---------------------------------------------------------------------------------- DICOM folder
def test_dicom_folder(tmp_path):
    # Two SPECT/CT sessions written as DICOM; each session has its own FrameOfReferenceUID, so
    # pairing goes by FoR. The 4 h session's CT is 3 h away from the SPECT (beyond the 2 h time
    # tolerance) but shares its FoR and is still paired.
    folder = tmp_path / "dicom"
    for i, (h, ct_shift_h) in enumerate(((96.0, -0.1), (4.0, -3.0))):
        t = INJ + timedelta(hours=h)
        info = DicomStudyInfo()
        write_ct_series(_ct(t + timedelta(hours=ct_shift_h)), folder / f"ct{i}", patient=info)
        write_nm(_nm(t, value=250.0), folder / f"nm{i}.dcm", administration=ADM, patient=info,
                 acquisition_duration_s=1800)
    # a non-image object in the folder (an RT structure set header) is skipped
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(sorted((folder / "ct0").iterdir())[0])
    ds.Modality, ds.SeriesInstanceUID, ds.SOPInstanceUID = "RTSTRUCT", generate_uid(), \
        generate_uid()
    del ds.PixelData
    ds.save_as(folder / "rtstruct.dcm")
    before = _md5s(folder)
    s = load_study(folder)
    assert s.times_h.tolist() == [4.0, 96.0]
    assert s.administration.nuclide == "Lu-177"
    assert s.administration.injected_activity_mbq == pytest.approx(7400.0)
    assert s.administration.injection_time == INJ
    for tp in s.time_points:
        assert tp.ct is not None
        assert tp.ct.meta["frame_of_reference_uid"] == tp.emission.meta["frame_of_reference_uid"]
        assert tp.emission.array[0, 0, 0] == pytest.approx(250.0, rel=1e-4)  # uint16 quantised
    assert s.time_points[0].ct.acquisition_time == INJ + timedelta(hours=1)
    assert s.skipped == ({"file": str(folder / "rtstruct.dcm"),
                          "reason": "RTSTRUCT series (1 file): not an image series the study "
                                    "uses (CT, NM, PT); theradose run reads it for the VOIs"},)
    assert _md5s(folder) == before


# ---------------------------------------------------------------------------------- CLI
def test_cli_study(nifti_study, capsys):
    assert main(["study", str(nifti_study)]) == 0
    out = capsys.readouterr().out
    assert "skipped 0 file(s) or series\n" in out
    assert "Lu-177 (177Lu-PSMA-617), 7400 MBq at 2024-05-01T09:00:00" in out
    assert "4 time point(s)" in out and "169.20 h  NM Bq/mL" in out
    assert "4x5x6 (z,y,x) @ 4.8x4.8x4.8 mm" in out
    assert main(["study", str(nifti_study), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [tp["time_h"] for tp in data["time_points"]] == pytest.approx(HOURS)


def test_cli_study_with_pet_and_labels(nifti_study, capsys):
    _pet(nifti_study)
    lab = np.zeros(GRID.shape, np.uint8)
    lab[0, 0, 0] = 5
    write_labelmap(LabelMap(lab, GRID, names={5: "liver"}), nifti_study / "labels.nii.gz")
    assert main(["study", str(nifti_study)]) == 0
    out = capsys.readouterr().out
    assert "pre-therapy PET: Ga-68 150 MBq, 1.08 h p.i., Bq/mL 4x5x6 (z,y,x)" in out
    assert "labels: 1 named VOI(s) on 4x5x6 (z,y,x) @ 4.8x4.8x4.8 mm: liver" in out


def test_cli_study_arguments_and_errors(tmp_path, capsys):
    for name, t in SESSIONS.items():
        _write_session(tmp_path, name, t, adm=None)
    assert main(["study", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--nuclide" in err
    assert main(["study", str(tmp_path), "--nuclide", "Lu-177", "--activity-mbq", "7000",
                 "--injection-time", "2024-05-01T09:00"]) == 0
    assert "7000 MBq" in capsys.readouterr().out
