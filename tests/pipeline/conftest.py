"""One small virtual patient (8 mm, noiseless, no motion, 1 lesion) and one pipeline run on it."""

from __future__ import annotations

import pytest

CAL = 9.5  # cps/MBq: the simulator's SPECT sensitivity (truth.json acquisitions[*])
FAST = {"study": {"calibration_cps_per_mbq": CAL}, "registration": {"enabled": False},
        "dose": {"engines": ["led", "organ_svalues"]}, "outputs": {"report": False}}


@pytest.fixture
def fast() -> dict:
    """Pipeline configuration of the tests: registration off, LED + S-values, no report."""
    import copy

    return copy.deepcopy(FAST)


@pytest.fixture(scope="session")
def small_patient(tmp_path_factory):
    from theradose.phantoms import SimulationConfig, simulate_patient

    out = tmp_path_factory.mktemp("vp") / "patient"
    return simulate_patient(out, seed=1, config=SimulationConfig(
        voxel_mm=8.0, noise=False, motion=False, n_lesions=1, times_h=(4.0, 24.0, 96.0, 168.0)))


@pytest.fixture(scope="session")
def pipeline_run(small_patient, tmp_path_factory):
    from theradose.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("run") / "results"
    res = run_pipeline(small_patient.dicom, out, FAST)
    return small_patient, out, res
