"""Physical bounds of the simulator's inputs: refused with InputError before anything is written.

The bounds (docs/phantoms.md): SPECT/CT times in (0, 1e4] h (417 d, > 60 half-lives of
177Lu), activities 1 kBq to 100 GBq, cohorts of 1 to 10 000 patients, 1 to 256 workers.
"""

import math

import pytest

from theradose.errors import InputError
from theradose.phantoms import SimulationConfig, simulate_cohort, simulate_patient


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"times_h": (math.nan, 24.0)}, "times_h"),
    ({"times_h": (1e308, math.inf)}, "times_h"),
    ({"times_h": (4.0, 10_000.5)}, "times_h"),
    ({"therapy_activity_mbq": 1e308}, "therapy_activity_mbq"),
    ({"therapy_activity_mbq": math.inf}, "therapy_activity_mbq"),
    ({"therapy_activity_mbq": 1e-4}, "therapy_activity_mbq"),
    ({"pet_activity_mbq": 2e5}, "pet_activity_mbq"),
])
def test_simulate_patient_refuses_unphysical_config(tmp_path, kwargs, field):
    out = tmp_path / "vp"
    with pytest.raises(InputError) as exc:
        simulate_patient(out, seed=0, config=SimulationConfig(voxel_mm=8.0, **kwargs))
    assert exc.value.field == field and "\n" not in str(exc.value)
    assert not out.exists()


@pytest.mark.parametrize(("n", "workers", "field"), [
    (0, None, "cohort"), (2**70, None, "cohort"), (10_001, None, "cohort"), (True, None, "cohort"),
    (2, 0, "workers"), (2, -1, "workers"), (2, 2**70, "workers"), (2, 1.5, "workers"),
])
def test_simulate_cohort_refuses_out_of_range_sizes(tmp_path, n, workers, field):
    out = tmp_path / "cohort"
    with pytest.raises(InputError) as exc:
        simulate_cohort(out, n, workers=workers)
    assert exc.value.field == field
    assert not out.exists()
