"""A SPECT/CT study written by an independent pydicom script on real CT anatomy loads correctly.

The study comes from ``benchmarks/real_anatomy_study.py`` (its own DICOM writer, not
theradose's), built on the TotalSegmentator example CT in ``../shared`` (skipped without it).
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from theradose.io import load_study

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real_anatomy_study.py"


def _script():
    spec = importlib.util.spec_from_file_location("real_anatomy_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_real_anatomy_study_loads_with_its_truth(ts_example, tmp_path):
    ras = _script()
    out = tmp_path / "study"
    truth = ras.build_study(out, seed=3, times_h=(4.0, 48.0), heterogeneity=0.0, supersample=2,
                            dose=False, data_dir=ts_example)
    cal = truth["parameters"]["calibration_cps_per_mbq"]
    study = load_study(out / "dicom", calibration_cps_per_mbq=cal)

    assert study.nuclide == "Lu-177"
    assert study.administration.injected_activity_mbq == pytest.approx(7400.0)
    assert len(study.time_points) == 2
    # the truth itself, by hand: a uniform organ holds C0 x A_inj x V_active x integral of
    # exp(-le t) - exp(-(le + lu) t), i.e. (1/le - 1/(le + lu)) (heterogeneity off)
    k = truth["vois"]["kidney_left"]["kinetics"]
    le = math.log(2) / k["t_eff_h"]
    lu = math.log(2) / k["t_uptake_h"]
    v_ml = truth["vois"]["kidney_left"]["active_voxels"] * 0.027
    assert truth["vois"]["kidney_left"]["tia_mbq_h"] == pytest.approx(
        k["amplitude_kbq_ml_per_gbq"] * 7.4 * v_ml * 1e-3 * (1 / le - 1 / (le + lu)), rel=1e-9)
    # (a) activity in the field of view of every time point against the analytic truth
    for tp, tt in zip(study.time_points, truth["time_points"], strict=True):
        assert tp.emission.unit == "Bq/mL"
        assert tp.time_h == pytest.approx(tt["time_h"], abs=1e-3)
        assert tp.ct is not None and tp.ct.shape == (112, 101, 122)
        total_mbq = float(np.sum(tp.emission.array)) * tp.emission.geometry.voxel_volume_ml / 1e6
        assert total_mbq == pytest.approx(tt["total_activity_mbq"], rel=0.05)  # measured 0.2 %
    # (b) VOIs on the first CT: organ volumes = voxel counts of the aligned label file
    lab = study.labels
    assert lab.geometry.same_as(study.time_points[0].ct.geometry)
    seg_img = nib.load(ts_example / "example_seg_aligned.nii.gz")
    seg = np.asanyarray(seg_img.dataobj)
    voxel_ml = float(np.prod(seg_img.header.get_zooms())) / 1000.0
    table = json.loads((ts_example / "example_seg_labels.json").read_text(encoding="utf-8"))
    value_of = {name: int(v) for v, name in table.items()}
    assert {"kidney_left", "kidney_right", "liver", "spleen"} <= set(lab.names.values())
    for name in lab.names.values():
        ref_ml = int(np.sum(seg == value_of[name])) * voxel_ml
        assert int(lab.mask(name).sum()) * lab.geometry.voxel_volume_ml == \
            pytest.approx(ref_ml, rel=1e-9), name
