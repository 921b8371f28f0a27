"""Cross-engine dose-map comparison: hand-computed means, differences, maps, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from theradose.dose._compare_maps import DoseComparison, compare_dose_maps
from theradose.dose._result import DoseResult, VOIDose
from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.volume import LabelMap, Volume

SP = (10.0, 10.0, 10.0)  # 1 mL voxels


def res(dose, engine, sigma=None, unit="Gy", voi=(), spacing=SP):
    d = Volume.from_array(np.asarray(dose, float), spacing_mm=spacing, unit=unit)
    s = Volume.from_array(np.zeros_like(d.array) if sigma is None else np.asarray(sigma, float),
                          spacing_mm=spacing, unit=unit)
    return DoseResult(dose=d, sigma=s, voi=tuple(voi), engine=engine)


def one_line(exc, field):
    msg = str(exc.value)
    assert "\n" not in msg and field in msg, msg


# voxels (z=0, y=0, x=0..3): doses of engine A and B; materials lung, lung, soft, bone
A = [[[1.0, 2.0, 4.0, 8.0]]]
B = [[[1.1, 1.8, 4.0, 10.0]]]
MAT = LabelMap.from_array(np.array([[[2, 2, 4, 6]]], np.uint8), spacing_mm=SP,
                          names={1: "air", 2: "lung", 3: "adipose", 4: "soft_tissue",
                                 5: "spongiosa", 6: "cortical_bone"})
VOI = LabelMap.from_array(np.array([[[1, 1, 1, 2]]], np.uint8), spacing_mm=SP,
                          names={1: "liver", 2: "tumour"})
RHO = Volume.from_array(np.array([[[0.25, 0.25, 1.0, 2.0]]]), spacing_mm=SP, unit="g/cm3")


def test_region_means_and_relative_differences_by_hand():
    c = compare_dose_maps([res(A, "led"), res(B, "mc")], voi=VOI, materials=MAT, density=RHO)
    assert isinstance(c, DoseComparison) and c.labels == ("led", "mc") and c.reference == "led"
    liver = next(r for r in c.rows if r["region"] == "liver" and r["tissue"] == "all")
    # hand: masses 0.25, 0.25, 1 g → A mean = (0.25·1 + 0.25·2 + 1·4)/1.5 = 3.1667,
    # B mean = (0.275 + 0.45 + 4)/1.5 = 3.15 → relative −0.5263 %
    assert liver["mass_g"] == pytest.approx(1.5)
    assert liver["engines"][0]["mean_gy"] == pytest.approx(4.75 / 1.5)
    assert liver["engines"][1]["mean_gy"] == pytest.approx(4.725 / 1.5)
    assert liver["engines"][1]["relative_difference"] == pytest.approx(4.725 / 4.75 - 1)
    assert liver["engines"][0]["relative_difference"] is None
    lung = next(r for r in c.rows if r["region"] == "liver" and r["tissue"] == "lung")
    # lung voxels only: A (1+2)/2 = 1.5, B (1.1+1.8)/2 = 1.45 → −3.333 %
    assert lung["engines"][1]["relative_difference"] == pytest.approx(1.45 / 1.5 - 1)
    bone = next(r for r in c.rows if r["region"] == "tumour" and r["tissue"] == "bone")
    assert bone["engines"][1]["relative_difference"] == pytest.approx(10 / 8 - 1)
    assert {r["tissue"] for r in c.table()} == {"all", "lung", "soft_tissue", "bone"}
    assert not any(r["region"] == "tumour" and r["tissue"] == "lung" for r in c.rows)  # empty


def test_difference_maps_and_summary():
    c = compare_dose_maps([res(A, "led"), res(B, "mc")], percent_threshold=0.2)
    np.testing.assert_allclose(c.difference_gy["mc"].array, np.subtract(B, A))
    assert c.difference_gy["mc"].unit == "Gy"
    pc = c.difference_percent["mc"].array[0, 0]
    # threshold 0.2 × max(A)=8 → 1.6 Gy: the first voxel (1 Gy) is NaN
    assert np.isnan(pc[0])
    np.testing.assert_allclose(pc[1:], [-10.0, 0.0, 25.0])
    s = c.map_summary["mc"]
    assert s["max_abs_difference_gy"] == pytest.approx(2.0)
    assert s["mean_difference_percent"] == pytest.approx(5.0)
    assert s["n_voxels"] == 3
    image = c.rows[0]
    assert image["region"] == "image" and image["mass_g"] == pytest.approx(4.0)  # volume weights
    assert image["engines"][1]["mean_gy"] == pytest.approx(np.mean(B))


def test_reference_and_labels_and_units():
    # reference=1 inverts the ratio; mGy input is converted to Gy (factor 1e-3)
    c = compare_dose_maps([res(A, "x"), res(np.multiply(B, 1e3), "x", unit="mGy")],
                          labels=["kernel", "mc"], reference=1)
    assert c.reference == "mc"
    row = c.rows[0]
    assert row["engines"][0]["relative_difference"] == pytest.approx(np.mean(A) / np.mean(B) - 1)
    np.testing.assert_allclose(c.difference_gy["kernel"].array, np.subtract(A, B), atol=1e-12)
    # default labels number repeated engines
    assert compare_dose_maps([res(A, "mc"), res(B, "mc")]).labels == ("mc", "mc#2")


def test_sigma_uses_engine_voi_sigma_else_quadrature():
    sig = [[[0.1, 0.2, 0.0, 0.4]]]
    v = VOIDose("liver", 1, 3.0, 7 / 3, 0.123, 1.0, 4.0, 3)
    c = compare_dose_maps([res(A, "led", sig, voi=[v]), res(B, "mc", sig)], voi=VOI)
    liver = next(r for r in c.rows if r["region"] == "liver")
    assert liver["engines"][0]["sigma_gy"] == pytest.approx(0.123)  # engine's own VOI σ
    # independent voxels, equal masses: sqrt(0.1² + 0.2² + 0²) / 3
    assert liver["engines"][1]["sigma_gy"] == pytest.approx(np.sqrt(0.05) / 3)


def test_markdown_and_dict():
    c = compare_dose_maps([res(A, "led"), res(B, "mc")], voi=VOI, materials=MAT, density=RHO)
    md = c.to_markdown()
    assert md.splitlines()[0].startswith("| region | tissue | mass (g) | led (Gy) | mc (Gy) |")
    assert "| liver | lung | 0.5 | 1.5 ± 0 | 1.45 ± 0 | -3.33 |" in md
    assert "| mc vs led | 2 |" in md
    d = json.loads(json.dumps(c.to_dict()))
    assert d["reference"] == "led" and d["options"]["mass_weights"] == "density"
    with pytest.raises(InputError, match="digits") as exc:
        c.to_markdown(digits=0)
    one_line(exc, "digits")


def test_validation():
    a, b = res(A, "led"), res(B, "mc")
    cases = [
        (lambda: compare_dose_maps([a]), InputError, "at least two", "results"),
        (lambda: compare_dose_maps([a, 3]), InputError, "got int", "results[1]"),
        (lambda: compare_dose_maps([a, b], labels=["x"]), InputError, "2 labels", "labels"),
        (lambda: compare_dose_maps([a, b], labels=["x", "x"]), InputError, "unique", "labels"),
        (lambda: compare_dose_maps([a, b], reference=2), InputError, "index", "reference"),
        (lambda: compare_dose_maps([a, b], percent_threshold=1.0), InputError, r"\[0, 1\)",
         "percent_threshold"),
        (lambda: compare_dose_maps([a, res(A, "k", spacing=(5, 5, 5))]), GeometryMismatchError,
         "different grids", "results[1].dose"),
        (lambda: compare_dose_maps([a, res(A, "k", unit="MBq*h")]), UnitError, "dose map",
         "results[1].dose.unit"),
        (lambda: compare_dose_maps([a, res(A, "k", unit="Gy/h")]), UnitError, "mix",
         "results"),
        (lambda: compare_dose_maps([a, b], density=-1), InputError, "number > 0", "density"),
        (lambda: compare_dose_maps([a, b], density=a.dose), UnitError, "g/cm3",
         "density.unit"),
        (lambda: compare_dose_maps([a, b], voi=a.dose), InputError, "LabelMap", "voi"),
        (lambda: compare_dose_maps([a, b], materials=a.dose), InputError, "LabelMap",
         "materials"),
        (lambda: compare_dose_maps([a, b], materials=MAT, tissue_groups={"x": ["metal"]}),
         InputError, "'metal'", "tissue_groups.x"),
    ]
    for call, err, match, field in cases:
        with pytest.raises(err, match=match) as exc:
            call()
        one_line(exc, field)
