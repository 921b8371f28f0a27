"""Plausibility warnings: activity balance against the administered activity, CT units."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from theradose.errors import TheradoseWarning
from theradose.io import load_study
from theradose.pipeline._plausibility import (
    BALANCE_HIGH,
    BALANCE_LOW,
    activity_balance,
    check_ct_units,
)
from theradose.volume import Geometry, Volume

CAL = 9.5
LU177_HALF_LIFE_H = 159.528  # ICRP-107


def _balance(study, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = activity_balance(study, [f"tp{i}" for i in range(len(study.time_points))], **kw)
    return out, [str(x.message) for x in w if issubclass(x.category, TheradoseWarning)]


def test_balance_is_image_over_decayed_administration(small_patient):
    study = load_study(small_patient.dicom, calibration_cps_per_mbq=CAL)
    out, msgs = _balance(study)
    adm = study.administration
    for tp, b in zip(study.time_points, out, strict=True):
        e = tp.emission.to_unit("Bq/mL")
        image = float(e.array.sum(dtype=np.float64)) * e.geometry.voxel_volume_ml / 1e6
        given = adm.injected_activity_mbq * 2.0 ** (-tp.time_h / LU177_HALF_LIFE_H)
        assert b["image_mbq"] == pytest.approx(image, rel=1e-12)
        assert b["administered_decayed_mbq"] == pytest.approx(given, rel=1e-9)
        # the simulator's truth: the activity in the body never exceeds what was given
        assert BALANCE_LOW < b["fraction"] <= 1.0
    assert msgs == []


@pytest.mark.parametrize(("factor", "word"), [(1000.0, "implausibly little"),
                                              (1e-3, "more than was given")])
def test_unit_error_in_the_calibration_is_warned(small_patient, factor, word):
    study = load_study(small_patient.dicom, calibration_cps_per_mbq=CAL * factor)
    out, msgs = _balance(study)
    assert len(msgs) == len(study.time_points)
    assert all(word in m and m.startswith("tp") and "activity" in m for m in msgs)
    assert all(math.isclose(b["fraction"] * factor, f, rel_tol=1e-9) for b, f in zip(
        out, [x["fraction"] for x in _balance(load_study(
            small_patient.dicom, calibration_cps_per_mbq=CAL))[0]], strict=True))
    assert (BALANCE_HIGH, BALANCE_LOW) == (1.25, 0.005)


def test_ct_not_in_hu_is_warned():
    g = Geometry((10, 10, 10), (2.0, 2.0, 2.0))
    hu = np.full((10, 10, 10), -1000.0)
    hu[2:8, 2:8, 2:8] = 40.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_ct_units(Volume(hu, g, unit="HU", modality="CT"), "ct") == \
            pytest.approx(1 - 216 / 1000)
    with pytest.warns(TheradoseWarning, match=r"^ct: HU: only 0 % .*Hounsfield"):
        assert check_ct_units(Volume(hu + 1024.0, g, unit="HU", modality="CT"), "ct") == 0.0
