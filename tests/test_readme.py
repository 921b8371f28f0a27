"""The README's snippets run (a quick-start that calls missing functions is a bug)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(lang: str) -> list[str]:
    if not README.is_file():
        pytest.skip("README.md not next to the tests (installed elsewhere)")
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_first_section_has_exactly_two_setup_commands():
    text = README.read_text() if README.is_file() else pytest.skip("no README")
    first = text.split("\n## ")[1]
    assert first.startswith("Set up")
    cmds = re.findall(r"```bash\n(.*?)```", first, flags=re.S)
    assert len(cmds) == 2 and all(c.count("\n") == 1 for c in cmds)
    assert "theradose " in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    extract = re.search(r"cmd=\$\((.*)\)\n", ci.read_text()).group(1)
    got = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == _blocks("bash")[1].strip()


def test_python_example_runs(capsys):
    code = _blocks("python")[0]
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "Lu-177: T1/2 = 159.5 h" in out  # ICRP-107: 6.647 d = 159.53 h
    # 1000 voxels of 1 MBq: the regridded total stays 1000 MBq
    assert re.search(r"^1000\.0(0*\d*)? resampled", out.splitlines()[1])


def test_study_example_runs(tmp_path, monkeypatch, capsys):
    # build the folder the README reads: SPECT/CT at 4 and 24 h, and a pre-therapy PET
    from datetime import datetime, timedelta

    import numpy as np

    from theradose.io import (
        Administration,
        DicomStudyInfo,
        write_ct_series,
        write_nm,
        write_pt_series,
    )
    from theradose.volume import Geometry, Volume

    inj = datetime(2026, 3, 2, 9, 0)
    info = DicomStudyInfo(patient_id="P01", patient_weight_kg=80.0)
    root = tmp_path / "patient01"
    g = Geometry((4, 5, 5), (4.8, 4.8, 4.8))
    for h in (4, 24):
        t = inj + timedelta(hours=h)
        ct = Volume(np.zeros((4, 10, 10)), Geometry((4, 10, 10), (2.4, 2.4, 4.8)), unit="HU",
                    modality="CT", acquisition_time=t)
        write_ct_series(ct, root / f"ct{h}", patient=info)
        # 1800 s at 9.5 cps/MBq: 17100 counts = 1 MBq (hand calculation), 100 voxels
        nm = Volume(np.full(g.shape, 17100.0 * (2.0 if h == 4 else 1.0)), g, unit="counts",
                    modality="NM", acquisition_time=t)
        write_nm(nm, root / f"nm{h}.dcm", patient=info, acquisition_duration_s=1800,
                 administration=Administration("Lu-177", 7400.0, inj))
    pet = Volume(np.full(g.shape, 5000.0), g, unit="Bq/mL", modality="PT",
                 acquisition_time=inj - timedelta(days=7))
    write_pt_series(pet, root / "pet", patient=info, patient_weight_kg=80.0,
                    acquisition_duration_s=900,
                    administration=Administration("Ga-68", 150.0, inj - timedelta(days=7, hours=1)))
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks("python")[1], str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["   4.0 h     200.0 MBq in the field of view",
                       "  24.0 h     100.0 MBq in the field of view"]
    # SUVbw = 5000 Bq/mL × 80 000 g / (150 MBq × 2^(-60 min / 67.71 min)) = 4.928 (hand;
    # Ga-68 T½ 67.71 min, ICRP-107)
    suv = 5000 * 80000 / (150e6 * 2 ** (-60 / 67.71))
    assert out[2] == f"PET SUVmax {suv:.2f}" == "PET SUVmax 4.93"
