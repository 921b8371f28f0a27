"""Engine interface: registry, pipeline config, several engines, comparison table, dose rate."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
from _engine_fixtures import check_one_line, synthetic_kernel, vol

from theradose.dose._convolution import KernelConvolutionEngine
from theradose.dose._engine import (
    DoseEngine,
    available_engines,
    dose_rate_map,
    engines_from_config,
    get_engine,
    register_engine,
    run_engines,
)
from theradose.dose._led import LocalDepositionEngine
from theradose.dose._result import (
    DoseResult,
    VOIDose,
    compare_engines,
    format_comparison,
    summarise_vois,
)
from theradose.errors import InputError, UnitError
from theradose.volume import LabelMap

KEV_J = 1.602176634e-16
LU_E = 147.92313516289383  # ICRP-107 Lu-177 electrons, keV per decay
LU_G = 35.09766519300592  # ICRP-107 Lu-177 photons, keV per decay


def _labels(shape=(6, 6, 6)):
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 1:5, 1:5] = 1
    lab[3:5, 1:5, 1:5] = 2
    return LabelMap.from_array(lab, spacing_mm=(4.0,) * 3, names={1: "kidney", 2: "tumour"})


def test_registry_builds_builtin_engines():
    assert {"led", "kernel"} <= set(available_engines())
    led = get_engine("LED", photons="ignore")
    assert isinstance(led, LocalDepositionEngine) and led.photons == "ignore"
    k = get_engine("kernel", medium="soft_tissue")
    assert isinstance(k, KernelConvolutionEngine) and k.medium == "soft_tissue"
    assert "photons='ignore'" in repr(led)


def test_config_builds_and_runs_several_engines():
    kern = synthetic_kernel(LU_E + LU_G, classes=("electron", "photon"), width=1.0)
    cfg = {"engines": [{"name": "led", "photons": "local"},
                       {"name": "kernel", "medium": "water", "kernel": kern}, "led"]}
    engines = engines_from_config(cfg)
    assert [e.name for e in engines] == ["led", "kernel", "led"]
    tia = vol(np.ones((6, 6, 6)))
    res = run_engines(cfg, tia, 1.0, "Lu-177", labels=_labels())
    assert [r.engine for r in res] == ["led", "kernel", "led"]
    # LED with photons local (the default is photons="kernel"), 1 MBq·h per 0.064 g voxel
    # (hand formula)
    led_gy = 3.6e9 * (LU_E + LU_G) * KEV_J / 0.064e-3
    assert res[0].voi_by_name("kidney").mean_gy == pytest.approx(led_gy, rel=1e-12)
    # same list of built engines and entries mixed
    res2 = run_engines([engines[0], {"name": "led", "photons": "ignore"}], tia, 1.0, "Lu-177")
    assert res2[1].dose.array[0, 0, 0] == pytest.approx(3.6e9 * LU_E * KEV_J / 0.064e-3,
                                                        rel=1e-12)


def test_register_custom_engine_and_use_it_from_config():
    class Double(DoseEngine):
        name = "double_led_test"

        def __init__(self, factor: float = 2.0) -> None:
            self.factor = factor

        def compute(self, tia, density, nuclide, *, labels=None, tia_sigma=None):
            r = LocalDepositionEngine(photons="local").compute(tia, density, nuclide,
                                                               labels=labels)
            return DoseResult(r.dose.replace(array=r.dose.array * self.factor), r.sigma, r.voi,
                              self.name, {})

    register_engine("double_led_test", Double)
    try:
        (eng,) = engines_from_config([{"name": "double_led_test", "factor": 3.0}])
        r = eng.compute(vol(np.ones((1, 1, 1))), 1.0, "Lu-177")
        assert r.dose.array[0, 0, 0] == pytest.approx(
            3 * 3.6e9 * (LU_E + LU_G) * KEV_J / 0.064e-3, rel=1e-12)
        with pytest.raises(InputError, match="already registered") as ei:
            register_engine("double_led_test", Double)
        check_one_line(ei, "name")
        register_engine("double_led_test", "theradose.dose._led:LocalDepositionEngine",
                        overwrite=True)
        assert isinstance(get_engine("double_led_test"), LocalDepositionEngine)
    finally:
        from theradose.dose import _engine

        _engine._REGISTRY.pop("double_led_test", None)


@pytest.mark.parametrize(("call", "field", "match"), [
    (lambda: get_engine("monte"), "name", "unknown dose engine"),
    (lambda: engines_from_config({"engines": [{"name": "led"}, {"name": "kernel",
                                                                "medum": "water"}]}),
     "engines[1].medum", "takes no option 'medum'"),
    (lambda: engines_from_config({"engines": [{"name": "nope"}]}), "engines[0].name",
     "unknown dose engine"),
    (lambda: engines_from_config({"engine": []}), "engines", "no 'engines'"),
    (lambda: engines_from_config({"engines": []}), "engines", "non-empty"),
    (lambda: engines_from_config({"engines": "led"}), "engines", "non-empty list"),
    (lambda: engines_from_config([{"medium": "water"}]), "engines[0]", "needs a 'name'"),
    (lambda: engines_from_config([{"name": "kernel", "medium": "steel"}]), "medium",
     "unknown medium"),
    (lambda: register_engine("", LocalDepositionEngine), "name", "empty"),
    (lambda: register_engine("x_test", 42), "factory", "callable"),
    (lambda: run_engines([], vol(np.ones((1, 1, 1))), 1.0, "Lu-177"), "engines",
     "at least one"),
])
def test_registry_validation(call, field, match):
    with pytest.raises(InputError, match=match) as ei:
        call()
    check_one_line(ei, field)


def test_compare_engines_table():
    labels = _labels()
    tia = vol(np.ones((6, 6, 6)))
    res = run_engines([{"name": "led", "photons": "local"}, {"name": "led", "photons": "ignore"}],
                      tia, 1.0, "Lu-177", labels=labels)
    rows = compare_engines(res)
    assert [r["voi"] for r in rows] == ["kidney", "tumour"]
    cells = rows[0]["engines"]
    assert [c["engine"] for c in cells] == ["led", "led#2"]
    # analytic: ignoring photons removes Δ_γ/(Δ_e+Δ_γ) of the dose
    assert cells[1]["relative_difference"] == pytest.approx(LU_E / (LU_E + LU_G) - 1, rel=1e-10)
    assert cells[0]["relative_difference"] == 0.0
    assert rows[0]["mass_g"] == pytest.approx(32 * 0.064)  # 2×4×4 voxels of 0.064 g
    md = format_comparison(rows)
    lines = md.splitlines()
    assert lines[0] == "| VOI | mass (g) | led (Gy) | led#2 (Gy) | led#2 vs led (%) |"
    assert len(lines) == 4 and f"{100 * (LU_E / (LU_E + LU_G) - 1):+.2f}" in lines[2]
    txt = format_comparison(rows, fmt="text")
    assert txt.splitlines()[1].startswith("kidney") and "|" not in txt
    assert format_comparison([]) == ""
    json.dumps(rows)


def test_compare_engines_missing_voi_and_validation():
    d = vol(np.ones((1, 1, 1)), unit="Gy")
    a = DoseResult(d, d, (VOIDose("liver", 1, 1.0, 2.0, 0.1, 2.0, 2.0, 1),), "led", {})
    b = DoseResult(d, d, (VOIDose("liver", 1, 1.0, 3.0, 0.1, 3.0, 3.0, 1),
                          VOIDose("spleen", 2, 1.0, 1.0, 0.1, 1.0, 1.0, 1)), "kernel", {})
    rows = compare_engines([a, b])
    assert rows[0]["engines"][1]["relative_difference"] == pytest.approx(0.5)
    assert rows[1]["voi"] == "spleen" and rows[1]["engines"][0]["mean_gy"] is None
    assert rows[1]["engines"][1]["relative_difference"] is None
    assert "-" in format_comparison(rows).splitlines()[3]
    with pytest.raises(InputError, match="at least one") as ei:
        compare_engines([])
    check_one_line(ei, "results")
    with pytest.raises(InputError, match="expected DoseResult") as ei:
        compare_engines([a, {"engine": "x"}])
    check_one_line(ei, "results[1]")
    with pytest.raises(InputError, match="accepted") as ei:
        format_comparison(rows, fmt="html")
    check_one_line(ei, "fmt")
    with pytest.raises(InputError, match="no VOI named 'lung'") as ei:
        a.voi_by_name("lung")
    check_one_line(ei, "name")


def test_summarise_vois_mass_weighted_and_empty():
    dose = np.array([1.0, 3.0, 5.0]).reshape(1, 1, 3)
    mass = np.array([1.0, 3.0, 0.0]).reshape(1, 1, 3)
    lab = LabelMap.from_array(np.array([1, 1, 2], np.uint8).reshape(1, 1, 3),
                              spacing_mm=(1, 1, 1), names={1: "a", 2: "air", 3: "gone"})
    v = summarise_vois(dose, np.ones_like(dose), mass, lab)
    # hand: (1·1 + 3·3)/4 = 2.5; σ = sqrt(1² + 3²)/4
    assert v[0].mean_gy == pytest.approx(2.5) and v[0].sigma_gy == pytest.approx(10 ** .5 / 4)
    assert np.isnan(v[1].mean_gy) and v[1].mass_g == 0.0  # massless VOI
    assert v[2].n_voxels == 0 and np.isnan(v[2].mean_gy)
    assert summarise_vois(dose, dose, mass, None) == ()
    r = DoseResult(vol(dose, unit="Gy"), vol(dose, unit="Gy"), v, "led", {"x": np.float64(1)})
    d = json.loads(json.dumps(r.to_dict()))
    assert d["max_gy"] == 5.0 and d["provenance"]["x"] == 1.0 and len(d["voi"]) == 3


def test_dose_rate_map_led_and_kernel():
    t = datetime(2024, 1, 2, 10, 0)
    act = vol(np.full((4, 4, 4), 2.0), unit="MBq", acquisition_time=t,
              sigma=np.full((4, 4, 4), 0.2))
    led_local = {"name": "led", "photons": "local"}
    rate = dose_rate_map(act, 1.0, "Lu-177", led_local)
    # analytic: 2 MBq = 2 × 3.6e9 decays per hour in 0.064 g (photons local)
    expected = 2 * 3.6e9 * (LU_E + LU_G) * KEV_J / 0.064e-3
    assert rate.unit == "Gy/h" and rate.acquisition_time == t
    np.testing.assert_allclose(rate.array, expected, rtol=1e-12)
    np.testing.assert_allclose(rate.sigma, expected / 10, rtol=1e-12)
    # a concentration: 2 MBq per 0.064 mL voxel = 3.125e7 Bq/mL
    conc = vol(np.full((4, 4, 4), 2e6 / 0.064), unit="Bq/mL")
    (r2,) = dose_rate_map([conc], 1.0, "Lu-177", led_local)
    np.testing.assert_allclose(r2.array, expected, rtol=1e-12)
    assert r2.sigma is None
    # an engine by name: the default LED (photons by kernel), linear in the activity
    by_name = dose_rate_map(act, 1.0, "Lu-177", "led")
    ref = LocalDepositionEngine().compute(vol(np.full((4, 4, 4), 2.0)), 1.0, "Lu-177")
    np.testing.assert_allclose(by_name.array, ref.dose.array, rtol=1e-6)
    kern = synthetic_kernel(LU_E + LU_G, classes=("electron", "photon"))
    r3 = dose_rate_map(act, 1.0, "Lu-177", KernelConvolutionEngine(kernel=kern),
                       labels=_labels((4, 4, 4)))
    assert r3.meta["engine"] == "kernel" and r3.meta["voi"][0]["name"] == "kidney"
    assert r3.array[2, 2, 2] < expected  # energy escapes a 4³ image
    for bad, field in ((vol(np.ones((2, 2, 2)), unit="MBq*h"), "activity.unit"),
                       (np.ones((2, 2, 2)), "activity")):
        with pytest.raises(InputError, match="expected") as ei:
            dose_rate_map(bad, 1.0, "Lu-177")
        check_one_line(ei, field)
    with pytest.raises(UnitError):
        dose_rate_map(vol(np.ones((2, 2, 2)), unit="HU"), 1.0, "Lu-177")
