"""``theradose run`` / ``theradose demo`` in-process: exit codes, one-line errors, output."""

from __future__ import annotations

import pytest

from theradose.cli import _demo, _run  # noqa: F401  (register the commands)
from theradose.cli._main import main


def test_run_refuses_output_inside_study(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    rc = main(["run", str(study), "--out", str(study / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "out_dir: the output folder is inside the study folder" in err


def test_run_bad_config_key(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text("[dose]\nengnes = ['kernel']\n")
    rc = main(["run", str(study), "--out", str(tmp_path / "o"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2 and "c.toml: dose.engnes: unknown key 'engnes'" in err


def test_run_missing_study(tmp_path, capsys):
    rc = main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "study_dir: study folder does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_run_cli_end_to_end(tmp_path, capsys):
    import json

    from theradose.phantoms import SimulationConfig, simulate_patient

    vp = simulate_patient(tmp_path / "p", seed=3, config=SimulationConfig(
        voxel_mm=8.0, noise=False, motion=False, n_lesions=0, times_h=(4.0, 24.0, 96.0)))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[registration]\nenabled = false\n[dose]\nengines = ["led"]\n'
                   '[outputs]\nreport = false\nrtdose = false\nseg = false\n')
    out = tmp_path / "o"
    rc = main(["run", str(vp.dicom), "--out", str(out), "--config", str(cfg),
               "--calibration-cps-per-mbq", "9.5"])
    text = capsys.readouterr().out
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    # the printed table carries the liver TIA of results.json
    liver = res["vois"]["liver"]["tia_mbq_h"]["value"]
    assert f"{liver:.1f}" in text
    # same run again without --overwrite: refused, exit 2
    rc = main(["run", str(vp.dicom), "--out", str(out), "--config", str(cfg),
               "--calibration-cps-per-mbq", "9.5"])
    assert rc == 2 and "output exists" in capsys.readouterr().err
