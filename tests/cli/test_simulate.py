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
