"""Per-voxel input uncertainty of fit_voxels and region sums (VoxelFitResult.region_tia)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theradose.errors import InputError
from theradose.kinetics import InputUncertainty
from theradose.kinetics._voxel import fit_voxels
from theradose.volume import Geometry, Volume

LAM = math.log(2.0) / (6.647 * 24.0)  # Lu-177, ICRP-107 T1/2 = 6.647 d
T2 = np.array([4.0, 24.0])
T4 = np.array([4.0, 24.0, 96.0, 168.0])
INPUTS = InputUncertainty(calibration=0.05, recovery=0.03, volume=0.2)


def _trapezoid_hand(y4: float, y24: float, rel: float = 0.1) -> tuple[float, float]:
    # hand calculation: trapezoids (0,0)-(4,y4)-(24,y24) + physical tail y24/lambda;
    # weights c = (12, 10 + 1/lambda), sigma_fit = rel * sqrt(sum (c_i y_i)^2)
    tia = 0.5 * 4 * y4 + 0.5 * 20 * (y4 + y24) + y24 / LAM
    sig = rel * math.hypot(12 * y4, (10 + 1 / LAM) * y24)
    return tia, sig


def test_voxel_sigma_adds_calibration_and_recovery_in_quadrature():
    # hand calculation (EANM, Gear et al. 2018, doi:10.1007/s00259-018-4136-7):
    # sigma^2 = sigma_fit^2 + (u_cal^2 + u_rc^2) TIA^2; the VOI-volume term is not per voxel
    y = np.array([[2.0, 1.0], [4.0, 2.0]]).T
    r = fit_voxels(T2, y, models=("trapezoid",), input_uncertainty=INPUTS)
    for i, (a, b) in enumerate(((2.0, 1.0), (4.0, 2.0))):
        tia, s_fit = _trapezoid_hand(a, b)
        assert r.tia[i] == pytest.approx(tia, rel=1e-12)
        assert r.sigma_fit[i] == pytest.approx(s_fit, rel=1e-12)
        assert r.sigma[i] == pytest.approx(math.sqrt(s_fit**2 + (0.05**2 + 0.03**2) * tia**2),
                                           rel=1e-12)
    assert r.input_uncertainty == INPUTS
    prov = r.provenance["input_uncertainty"]
    assert prov["calibration"] == 0.05 and prov["volume"] == 0.2
    assert prov["relative_per_voxel"] == pytest.approx(math.hypot(0.05, 0.03))


def test_without_inputs_sigma_is_the_fit_sigma():
    y = np.array([[2.0, 1.0]]).T
    r = fit_voxels(T2, y, models=("trapezoid",))
    assert r.input_uncertainty is None and r.provenance["input_uncertainty"] is None
    assert r.sigma[0] == r.sigma_fit[0] == pytest.approx(_trapezoid_hand(2.0, 1.0)[1])


def test_region_sum_fit_independent_inputs_correlated():
    # hand calculation: voxels a = (2, 1) and b = 2a: TIA_b = 2 TIA_a, sigma_fit_b = 2 s_a;
    # region: sigma^2 = s_a^2 + (2 s_a)^2 + (u_cal^2 + u_rc^2 + u_vol^2) (3 TIA_a)^2
    y = np.array([[2.0, 1.0], [4.0, 2.0], [1.0, 0.5]]).T
    r = fit_voxels(T2, y, models=("trapezoid",), input_uncertainty=INPUTS)
    tia_a, s_a = _trapezoid_hand(2.0, 1.0)
    total, sigma = r.region_tia(np.array([True, True, False]))
    assert total == pytest.approx(3 * tia_a, rel=1e-12)
    u2 = 0.05**2 + 0.03**2 + 0.2**2
    assert sigma == pytest.approx(math.sqrt(5 * s_a**2 + u2 * (3 * tia_a) ** 2), rel=1e-12)
    # whole map (mask None): third voxel is a/2
    total_all, _ = r.region_tia()
    assert total_all == pytest.approx(3.5 * tia_a, rel=1e-12)
    d = r.to_dict()
    assert d["tia_sum"] == pytest.approx(3.5 * tia_a) and d["input_uncertainty"]["volume"] == 0.2


def test_noiseless_mono_input_term_is_relative_times_analytic_tia():
    # analytic: TIA = A1/l1 = 2/0.02 = 100 per voxel; input part = 0.05 * 100 = 5
    img = 2.0 * np.exp(-0.02 * T4)[:, None] * np.ones((1, 6))
    r = fit_voxels(T4, img, models=("mono",), input_uncertainty=InputUncertainty(0.05))
    np.testing.assert_allclose(r.tia, 100.0, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(r.sigma**2 - r.sigma_fit**2), 5.0, rtol=1e-9)


def test_calibration_acts_on_every_voxel_alike():
    # the fitted TIA is proportional to the data (each voxel is scaled to its maximum before
    # fitting), so a calibration error moves every voxel by the same factor: the basis for
    # treating it as fully correlated between voxels
    rng = np.random.default_rng(11)
    a = rng.uniform(0.5, 2.0, 400)
    l1 = LAM + rng.uniform(0.002, 0.05, 400)
    y = a * np.exp(-np.outer(T4, l1)) * (1 + 0.1 * rng.standard_normal((4, 400)))
    r1 = fit_voxels(T4, y, models=("mono", "bi_uptake"), criterion="aic", n_threads=1)
    r2 = fit_voxels(T4, 1.07 * y, models=("mono", "bi_uptake"), criterion="aic", n_threads=1)
    np.testing.assert_allclose(r2.tia, 1.07 * r1.tia, rtol=1e-9)
    np.testing.assert_array_equal(r2.model_index, r1.model_index)


def test_volumes_carry_sigma_fit():
    g = Geometry((1, 2, 2), (4.0, 4.0, 4.0))
    vols = [Volume(np.full(g.shape, 3.0 * math.exp(-0.03 * t)), g, unit="MBq") for t in T4]
    r = fit_voxels(T4, vols, models=("mono",), input_uncertainty=InputUncertainty(0.1))
    assert isinstance(r.sigma_fit, Volume) and r.sigma_fit.unit == "MBq*h"
    # analytic TIA 3/0.03 = 100 MBq*h per voxel; 4 voxels, calibration fully correlated
    total, sigma = r.region_tia(Volume(np.ones(g.shape, bool), g, unit="1"))
    assert total == pytest.approx(400.0, rel=1e-6)
    s_fit = math.sqrt(float(np.sum(r.sigma_fit.array ** 2)))
    assert sigma == pytest.approx(math.hypot(s_fit, 0.1 * 400.0), rel=1e-9)


def test_validation_input_uncertainty_and_region_mask():
    with pytest.raises(InputError, match="input_uncertainty") as e:
        fit_voxels(T4, np.ones((4, 3)), input_uncertainty=0.05)
    assert "\n" not in str(e.value) and "got float" in str(e.value)
    r = fit_voxels(T4, np.ones((4, 3)) * np.exp(-0.02 * T4)[:, None], models=("mono",))
    with pytest.raises(InputError, match="mask") as e:
        r.region_tia(np.ones(4, bool))
    assert "\n" not in str(e.value) and "(4,)" in str(e.value)
