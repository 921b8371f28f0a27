import json

import pytest

from theradose.cli import main
from theradose.phantoms import patient_seeds

pytestmark = pytest.mark.slow

SMALL = ["--voxel-mm", "8", "--times-h", "24", "--lesions", "1"]


def test_simulate_one_patient_prints_organ_tias(tmp_path, capsys):
    out = tmp_path / "vp"
    assert main(["simulate", "--out", str(out), "--seed", "5", *SMALL]) == 0
    text = capsys.readouterr().out
    truth = json.loads((out / "truth" / "truth.json").read_text())
    assert truth["seed"] == 5 and truth["times_h"] == [24.0]
    # the printed kidney TIA is the truth value (conservation of what is reported)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("kidney_left"))
    assert float(line.split()[1]) == pytest.approx(truth["organs"]["kidney_left"]["tia_mbq_h"],
                                                   abs=0.05)
    # a second run into the same folder is refused, one line, exit 2
    assert main(["simulate", "--out", str(out), "--seed", "5", *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output folder is not empty" in err


def test_bad_times_are_rejected(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "x"), "--times-h", "24,4"]) == 2
    assert "times_h: must be positive and strictly increasing" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "x"), "--times-h", "4,a"]) == 2
    assert "--times-h: expected comma-separated hours" in capsys.readouterr().err


def test_cohort_in_parallel_with_dask(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["simulate", "--out", str(out), "--cohort", "2", "--seed", "9",
                 "--workers", "2", "--no-noise", *SMALL]) == 0
    index = json.loads((out / "cohort.json").read_text())
    seeds = patient_seeds(9, 2)
    assert [p["seed"] for p in index["patients"]] == seeds and len(set(seeds)) == 2
    t0 = json.loads((out / "patient_0000" / "truth" / "truth.json").read_text())
    t1 = json.loads((out / "patient_0001" / "truth" / "truth.json").read_text())
    assert t0["seed"] == seeds[0] and t0["patient"] != t1["patient"]


def test_spect_camera_options(tmp_path, capsys):
    out = tmp_path / "cam"
    assert main(["simulate", "--out", str(out), "--seed", "3", "--no-noise", "--no-motion",
                 "--spect-fwhm-mm", "8", "--spect-voxel-mm", "6", "--spect-count-scale", "0.5",
                 *SMALL]) == 0
    truth = json.loads((out / "truth" / "truth.json").read_text())
    cfg = truth["config"]
    assert (cfg["spect_fwhm_mm"], cfg["spect_voxel_mm"], cfg["spect_count_scale"]) == \
        (8.0, 6.0, 0.5)
    acq = truth["acquisitions"][1]
    # 8 mm blur even without noise (given explicitly); 1800 s x 0.5 per bed; 6 mm voxels
    assert acq["fwhm_mm"] == 8.0 and acq["acquisition_duration_s"] == 900.0
    assert acq["voxel_mm"] == [6.0, 6.0, 6.0] and acq["calibration_cps_per_mbq"] == 9.5
    capsys.readouterr()
    assert main(["simulate", "--out", str(tmp_path / "bad"), "--spect-voxel-mm", "20"]) == 2
    assert "spect_voxel_mm: must be a number in [1, 15] mm" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "flag"), [
    (["--times-h", "nan,24"], "--times-h"),
    (["--times-h", "1e308,1e309"], "--times-h"),
    (["--times-h", "4,10001"], "--times-h"),        # > 1e4 h (417 d)
    (["--times-h", "-1,24"], "--times-h"),
    (["--activity-mbq", "1e308"], "--activity-mbq"),
    (["--activity-mbq", "nan"], "--activity-mbq"),
    (["--activity-mbq", "1e-4"], "--activity-mbq"),  # below 1 kBq
    (["--activity-mbq", "100001"], "--activity-mbq"),  # above 100 GBq
    (["--lesions", str(2**70)], "--lesions"),
    (["--lesions", "51"], "--lesions"),
    (["--lesions", "-1"], "--lesions"),
    (["--cohort", str(2**70)], "--cohort"),
    (["--cohort", "10001"], "--cohort"),
    (["--cohort", "0"], "--cohort"),
    (["--cohort", "2", "--workers", "0"], "--workers"),
    (["--cohort", "2", "--workers", "-1"], "--workers"),
    (["--cohort", "2", "--workers", str(2**70)], "--workers"),
    (["--workers", "2"], "--workers"),               # without --cohort
    (["--scheduler", "tcp://localhost:8786"], "--scheduler"),
])
def test_out_of_range_options_name_the_flag(tmp_path, capsys, args, flag):
    out = tmp_path / "x"
    assert main(["simulate", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err, err
    assert not out.exists()  # refused before anything is written


def test_cli_bounds_match_the_library():
    from theradose.cli import _simulate
    from theradose.phantoms import _cohort, _patient
    from theradose.phantoms._anatomy_lesions import _MAX_LESIONS

    assert _simulate.MAX_COHORT == _cohort.MAX_COHORT
    assert _simulate.MAX_WORKERS == _cohort.MAX_WORKERS
    assert _simulate.MAX_TIME_H == _patient.MAX_TIME_H
    assert (_simulate.MIN_ACTIVITY_MBQ, _simulate.MAX_ACTIVITY_MBQ) == \
        (_patient.MIN_ACTIVITY_MBQ, _patient.MAX_ACTIVITY_MBQ)
    assert _simulate.MAX_LESIONS == _MAX_LESIONS
