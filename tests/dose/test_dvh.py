"""DVH: exact D_x / V_x from sorted voxel values, weights, label maps, validation.

References are hand calculations on small arrays and brute-force counts (D_x/V_x definitions of
ICRU Report 83, doi:10.1093/jicru/ndq002); integer weights are checked against repeating voxels.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from theradose.dose._dvh import dvh, dvh_table
from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.volume import LabelMap, Volume


def _vol(values, unit="Gy", spacing=(10.0, 10.0, 10.0), **kw) -> Volume:
    arr = np.asarray(values, dtype=float).reshape(1, 1, -1)
    return Volume.from_array(arr, spacing_mm=spacing, unit=unit, **kw)


def _all(n):
    return np.ones((1, 1, n), dtype=bool)


def _one_line(exc: pytest.ExceptionInfo, field: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert field in msg


# ---------------------------------------------------------------------------- definitions
def test_hand_computed_four_voxels():
    # analytic: doses 1..4 Gy, 1 mL each (10 mm voxels). Hottest 50 % = {4, 3} -> D50 = 3;
    # hottest 25 % = {4} -> D25 = 4; D75 = 2; D100 = min = 1; D0 = max = 4.
    h = dvh(_vol([1, 2, 3, 4]), _all(4))
    assert h.d(50) == 3.0 and h.d(25) == 4.0 and h.d(75) == 2.0
    assert h.d(100) == 1.0 and h.d(0) == 4.0
    np.testing.assert_array_equal(h.d([25, 50, 75]), [4.0, 3.0, 2.0])
    # V_x: fraction with dose >= x
    assert h.v(2.5) == 0.5 and h.v(3.0) == 0.5 and h.v(3.0001) == 0.25
    assert h.v(0.0) == 1.0 and h.v(4.0) == 0.25 and h.v(5.0) == 0.0
    assert h.v_ml(2.0) == pytest.approx(3.0)  # three 1-mL voxels >= 2 Gy
    assert (h.mean, h.min, h.max, h.median) == (2.5, 1.0, 4.0, 2.5)  # median as numpy
    assert h.volume_ml == pytest.approx(4.0) and h.n_voxels == 4
    assert h.unit == "Gy" and h.quantity == "absorbed_dose"


def test_uniform_dose_gives_equal_d2_d50_d98():
    # analytic: a uniform dose is every percentile
    h = dvh(_vol(np.full(50, 7.5)), _all(50))
    assert h.d2 == h.d50 == h.d98 == 7.5
    assert h.v(7.5) == 1.0 and h.v(7.5000001) == 0.0


def test_random_values_match_brute_force_definitions():
    # independent: D_x = sorted_desc[ceil(x/100 N) - 1]; V_x = mean(d >= x) (direct counting)
    rng = np.random.default_rng(5)
    d = rng.gamma(2.0, 3.0, 997)
    h = dvh(_vol(d), _all(d.size))
    desc = np.sort(d)[::-1]
    for x in (1.0, 2.0, 37.3, 50.0, 98.0, 99.9):
        assert h.d(x) == desc[math.ceil(x / 100 * d.size) - 1]
    for thr in (0.5, 3.0, 6.0, 20.0):
        assert h.v(thr) == pytest.approx(np.mean(d >= thr), abs=1e-15)
    assert h.mean == pytest.approx(d.mean(), rel=1e-12)
    assert h.median == np.median(d)


def test_integer_weights_equal_repeated_voxels():
    # independent: weight k == the voxel repeated k times
    d = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.array([1.0, 1.0, 1.0, 5.0])
    hw = dvh(_vol(d), _all(4), weights=w.reshape(1, 1, 4))
    rep = np.repeat(d, w.astype(int))
    hr = dvh(_vol(rep), _all(rep.size))
    # hand: W = 8; hottest 50 % -> the 4-Gy voxel alone has 5/8 -> D50 = 4; D70 needs 5.6 -> 3
    assert hw.d(50) == 4.0 and hw.d(70) == 3.0
    assert hw.v(4.0) == pytest.approx(5 / 8)
    assert hw.mean == pytest.approx(26 / 8)
    for x in (10, 50, 70, 90, 100):
        assert hw.d(x) == hr.d(x)
    assert hw.median == hr.median == np.median(rep)
    # geometric volume stays the voxels' volume (4 mL), not the weight
    assert hw.volume_ml == pytest.approx(4.0)


def test_fractional_mask_weights_and_volume():
    # hand: occupancies (1, 0.5, 0.5, 0) of 1-mL voxels -> 2 mL; V(2 Gy) = (0.5+0.5)/2 = 0.5
    d = _vol([1, 2, 3, 4])
    frac = np.array([1.0, 0.5, 0.5, 0.0]).reshape(1, 1, 4)
    h = dvh(d, frac)
    assert h.n_voxels == 3 and h.volume_ml == pytest.approx(2.0)
    assert h.v(2.0) == pytest.approx(0.5)
    assert h.mean == pytest.approx((1 + 1 + 1.5) / 2)  # Σ f d / Σ f
    assert h.d(50) == 2.0  # hottest 50 %: 3 Gy (weight 0.5 of 2) + 2 Gy (0.5) -> min 2


def test_histogram_is_consistent_with_exact_counts():
    # conservation: differential fractions sum to 1 and mL to the volume; the cumulative
    # curve equals a direct count at every edge
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 30, 400)
    h = dvh(_vol(d, spacing=(2, 2, 2)), _all(d.size), bin_gy=0.5)
    assert h.bin_edges[0] == 0.0 and h.bin_edges[1] == 0.5
    assert h.differential_fraction.sum() == pytest.approx(1.0)
    assert h.differential_ml.sum() == pytest.approx(h.volume_ml)
    assert h.volume_ml == pytest.approx(400 * 0.008)
    np.testing.assert_allclose(h.cumulative_fraction, [np.mean(d >= e) for e in h.bin_edges],
                               atol=1e-15)
    assert h.bin_edges[-1] > d.max()
    # default bins: a 1-2-5 width and ~200 bins
    h2 = dvh(_vol(d), _all(d.size))
    assert h2.provenance["bin_width"] in (0.1, 0.2, 0.5)


def test_units_quantity_and_dose_rate():
    # mGy converted to Gy; BED meta carried through; Gy/h accepted for dose-rate maps
    h = dvh(_vol([1000, 3000], unit="mGy"), _all(2))
    assert h.unit == "Gy" and h.max == 3.0
    hb = dvh(_vol([10, 20], meta={"quantity": "BED"}), _all(2))
    assert hb.quantity == "BED"
    hr = dvh(_vol([0.1, 0.2], unit="Gy/h"), _all(2))
    assert hr.unit == "Gy/h" and hr.quantity == "absorbed_dose_rate"
    d = hb.to_dict()
    assert d["d50_gy"] == 20.0 and d["quantity"] == "BED"
    json.dumps(d)
    assert "d50_gy_per_h" in hr.to_dict()


def test_label_map_and_table():
    arr = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(1, 1, 6)
    dose = Volume.from_array(arr, spacing_mm=(10, 10, 10), unit="Gy")
    lab = np.array([1, 1, 2, 2, 2, 0], dtype=np.uint8).reshape(1, 1, 6)
    lm = LabelMap.from_array(lab, spacing_mm=(10, 10, 10),
                             names={1: "kidney_left", 2: "liver", 3: "spleen"})
    h = dvh(dose, lm, "liver")
    assert h.label == "liver" and h.mean == 4.0 and h.d(100) == 3.0
    assert dvh(dose, lm, 1).label == "kidney_left"
    assert dvh(dose, lab, 2).mean == 4.0  # integer array + label value
    rows = dvh_table(dose, lm, thresholds=(4.0,))
    by = {r["label"]: r for r in rows}
    assert by["kidney_left"]["mean"] == 1.5 and by["kidney_left"]["D50"] == 2.0
    assert by["liver"]["V4"] == pytest.approx(2 / 3) and by["liver"]["D2"] == 5.0
    assert by["spleen"]["n_voxels"] == 0 and by["spleen"]["mean"] is None
    json.dumps(rows)


# ---------------------------------------------------------------------------- validation
def test_validation_branches():
    d = _vol([1, 2, 3, 4])
    m = _all(4)
    cases = [
        (lambda: dvh(np.ones((1, 1, 4)), m), InputError, "dose", "must be a Volume"),
        (lambda: dvh(_vol([1, 2], unit="Bq/mL"), _all(2)), UnitError, "dose.unit",
         "absorbed dose"),
        (lambda: dvh(d, np.ones((1, 1, 3), bool)), InputError, "mask", "does not match"),
        (lambda: dvh(d, np.full((1, 1, 4), 1.5)), InputError, "mask", r"\[0, 1\]"),
        (lambda: dvh(d, np.array(["a"] * 4).reshape(1, 1, 4)), InputError, "mask", "dtype"),
        (lambda: dvh(d, np.zeros((1, 1, 4), bool)), InputError, "mask", "no voxel"),
        (lambda: dvh(d, m, 1), InputError, "label", "integer label array"),
        (lambda: dvh(d, np.ones((1, 1, 4), int), "x"), InputError, "label", "integer label"),
        (lambda: dvh(d, m, weights=-np.ones((1, 1, 4))), InputError, "weights", ">= 0"),
        (lambda: dvh(d, m, weights=np.ones(3)), InputError, "weights", "does not match"),
        (lambda: dvh(_vol([1, np.nan, 3, 4]), m), InputError, "dose", "not finite"),
        (lambda: dvh(d, m, bin_gy=0), InputError, "bin_gy", "positive"),
        (lambda: dvh(d, m, bin_gy="x"), InputError, "bin_gy", "positive"),
        (lambda: dvh(_vol([0.0, 1e9]), _all(2), bin_gy=1.0), InputError, "bin_gy",
         "bins"),
        (lambda: dvh(d, m).d(101), InputError, "pct", r"\[0, 100\]"),
        (lambda: dvh(d, m).v(np.nan), InputError, "threshold", "finite"),
        (lambda: dvh(d, m).v_ml(np.inf), InputError, "threshold", "finite"),
        (lambda: dvh_table(d, m), InputError, "labels", "LabelMap"),
    ]
    for fn, exc, field, match in cases:
        with pytest.raises(exc, match=match) as ei:
            fn()
        _one_line(ei, field)


def test_label_map_validation():
    d = _vol([1, 2, 3, 4])
    lab = np.array([1, 1, 2, 2], dtype=np.uint8).reshape(1, 1, 4)
    lm = LabelMap.from_array(lab, spacing_mm=(10, 10, 10), names={1: "a", 2: "b"})
    for args, match in (((), "a label is needed"), (("zzz",), "no VOI named"),
                        ((1.5,), "VOI name or an integer")):
        with pytest.raises(InputError, match=match) as ei:
            dvh(d, lm, *args)
        _one_line(ei, "label")
    other = LabelMap.from_array(lab, spacing_mm=(5, 5, 5), names={1: "a"})
    with pytest.raises(GeometryMismatchError, match="different grids") as ei:
        dvh(d, other)
    _one_line(ei, "spacing_mm")
    with pytest.raises(GeometryMismatchError, match="different grids"):
        dvh_table(d, other)
    single = LabelMap.from_array(lab, spacing_mm=(10, 10, 10), names={2: "b"})
    assert dvh(d, single).label == "b"  # one named VOI: no label needed
