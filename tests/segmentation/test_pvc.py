"""Recovery coefficients (simulated imaging system) and their application to TAC tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from seg_sphere_reference import blurred_ball

from theradose.errors import InputError, TheradoseWarning
from theradose.kinetics import TACTable
from theradose.segmentation import apply_recovery, recovery_coefficient
from theradose.segmentation._pvc import FWHM_PER_SIGMA, _simulate_rc


def analytic_rc(volume_ml: float, fwhm_mm: float) -> float:
    """Mean of the blurred ball over the ball: (3/R³)∫₀^R B(r) r² dr (numerical quadrature)."""
    radius = (3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3)
    sigma = fwhm_mm / FWHM_PER_SIGMA
    return 3 / radius**3 * quad(lambda r: blurred_ball(r, radius, sigma) * r * r, 0, radius)[0]


@pytest.mark.parametrize(("volume_ml", "fwhm_mm"),
                         [(0.7, 17.0), (3.3, 11.0), (12.0, 9.0), (47.0, 15.0), (250.0, 5.0),
                          (800.0, 19.0)])
def test_rc_matches_radial_integration(volume_ml, fwhm_mm):
    # Independent reference: quadrature of the closed-form blurred-sphere profile. Tolerance 1 %
    # relative (table interpolation between nodes; the nodes agree to 0.1 %).
    assert recovery_coefficient(volume_ml, fwhm_mm) == pytest.approx(
        analytic_rc(volume_ml, fwhm_mm), rel=0.01)


def test_rc_large_sphere_limit():
    # Analytic: for R >> σ the deficit is a surface layer, RC ≈ 1 - 3σ/(√(2π) R) (integral of
    # ½erfc across a flat edge = σ/√(2π), times area/volume = 3/R); curvature adds O((σ/R)²).
    radius = (3 * 1000e3 / (4 * math.pi)) ** (1 / 3)
    sigma = 4.0 / FWHM_PER_SIGMA
    expected = 1 - 3 * sigma / (math.sqrt(2 * math.pi) * radius)
    rc = recovery_coefficient(1000.0, 4.0)
    assert rc == pytest.approx(expected, abs=2e-3)
    assert rc < 1.0


def test_rc_small_sphere_limit():
    # Analytic: for R << σ, RC = V/((2π)^{3/2} σ³) · (1 - 3R²/(5σ²) + ...) (mean squared distance
    # of two uniform points in a ball is 6R²/5). Simulated directly below the table range.
    rho = 0.3
    rc = _simulate_rc(rho, 1.0, rho / 6, continuous=True)
    expected = (4 / 3 * math.pi * rho**3) / (2 * math.pi) ** 1.5 * (1 - 3 * rho**2 / 5)
    assert rc == pytest.approx(expected, rel=0.01)


def test_rc_monotonic_and_voxelised():
    vols = np.geomspace(0.5, 1000, 12)
    rcs = [recovery_coefficient(v, 10.0) for v in vols]
    assert np.all(np.diff(rcs) > 0)  # bigger spheres recover more
    assert recovery_coefficient(10.0, 6.0) > recovery_coefficient(10.0, 14.0)
    # Voxelisation adds the box variance h²/12 twice (image and weights): the voxelised RC equals
    # the continuous one at σ_eff = sqrt(σ² + h²/6) (second-order moment match), within 3 % (the
    # sphere sits on a voxel corner; at R ≈ 2h the grid position changes RC by ~2 %).
    h, fwhm = 4.8, 10.0
    sig_eff = math.sqrt((fwhm / FWHM_PER_SIGMA) ** 2 + h * h / 6)
    for v in (5.0, 30.0, 200.0):
        assert recovery_coefficient(v, fwhm, voxel_mm=h) == pytest.approx(
            analytic_rc(v, sig_eff * FWHM_PER_SIGMA), rel=0.03)


def _one_line(exc: pytest.ExceptionInfo, field: str) -> None:
    assert "\n" not in str(exc.value)
    assert exc.value.field == field


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"volume_ml": 0.1, "fwhm_mm": 10}, "volume_ml", "covers 0.5 to 1000"),
    ({"volume_ml": 2000, "fwhm_mm": 10}, "volume_ml", "covers 0.5 to 1000"),
    ({"volume_ml": "big", "fwhm_mm": 10}, "volume_ml", "must be a number"),
    ({"volume_ml": 10, "fwhm_mm": 2}, "fwhm_mm", "covers 4 to 20"),
    ({"volume_ml": 10, "fwhm_mm": 10, "voxel_mm": 20}, "voxel_mm", "covers 1 to 10"),
    ({"volume_ml": 10, "fwhm_mm": 10, "shape": "cube"}, "shape", "accepted: 'sphere'"),
])
def test_rc_validation(kwargs, field, match):
    with pytest.raises(InputError, match=match) as exc:
        recovery_coefficient(**kwargs)
    _one_line(exc, field)


def _table(margin_mm: float = 0.0) -> TACTable:
    t = np.array([4.0, 24.0, 96.0])
    return TACTable(
        vois=("lesion_1", "liver"), times_h=t,
        activity_mbq={"lesion_1": np.array([2.0, 1.5, 0.5]), "liver": np.array([80.0, 60, 20])},
        concentration_bq_ml={"lesion_1": np.array([2e5, 1.5e5, 5e4]),
                             "liver": np.array([5e4, 4e4, 1e4])},
        volume_ml={"lesion_1": 10.0, "liver": 1600.0},
        occupied_volume_ml={"lesion_1": np.full(3, 10.0), "liver": np.full(3, 1600.0)},
        coverage={"lesion_1": np.ones(3), "liver": np.ones(3)},
        nuclide="Lu-177", injected_activity_mbq=7400.0,
        activity_sigma_mbq={"lesion_1": np.array([0.2, 0.1, 0.05]), "liver": np.ones(3)},
        provenance={"margin_mm": margin_mm})


def test_apply_recovery_divides_and_records():
    tac = _table()
    out = apply_recovery(tac, {"lesion_1": 0.5})
    # Hand calculation: A / RC with RC = 0.5 doubles the lesion's values; the liver is untouched.
    np.testing.assert_allclose(out.activity_mbq["lesion_1"], [4.0, 3.0, 1.0])
    np.testing.assert_allclose(out.concentration_bq_ml["lesion_1"], [4e5, 3e5, 1e5])
    np.testing.assert_allclose(out.activity_sigma_mbq["lesion_1"], [0.4, 0.2, 0.1])
    np.testing.assert_array_equal(out.activity_mbq["liver"], tac.activity_mbq["liver"])
    assert out.provenance["pvc"]["rc_by_voi"] == {"lesion_1": 0.5}
    np.testing.assert_allclose(tac.activity_mbq["lesion_1"], [2.0, 1.5, 0.5])  # input unchanged


@pytest.mark.parametrize(("tac", "rc", "match"), [
    ("not a table", {"lesion_1": 0.5}, "must be a TACTable"),
    (None, [0.5], "must be a mapping"),
    (None, {"tumour": 0.5}, "no VOI 'tumour'"),
    (None, {"lesion_1": 0.0}, "positive finite"),
    (None, {"lesion_1": float("nan")}, "positive finite"),
    (None, {"lesion_1": "half"}, "must be a number"),
])
def test_apply_recovery_validation(tac, rc, match):
    with pytest.raises(InputError, match=match) as exc:
        apply_recovery(_table() if tac is None else tac, rc)
    assert "\n" not in str(exc.value)
    assert exc.value.field in ("tac", "rc_by_voi")


def test_apply_recovery_refuses_margin_and_double_correction():
    with pytest.raises(InputError, match="margin_mm=6") as exc:
        apply_recovery(_table(margin_mm=6.0), {"lesion_1": 0.5})
    _one_line(exc, "rc_by_voi")
    forced = apply_recovery(_table(margin_mm=6.0), {"lesion_1": 0.5}, allow_margin=True)
    assert forced.activity_mbq["lesion_1"][0] == pytest.approx(4.0)
    with pytest.raises(InputError, match="already partial-volume corrected") as exc:
        apply_recovery(forced, {"lesion_1": 0.5}, allow_margin=True)
    _one_line(exc, "tac")
    with pytest.warns(TheradoseWarning, match="> 1"):
        apply_recovery(_table(), {"lesion_1": 1.1})
