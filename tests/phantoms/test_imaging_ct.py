"""Simulated CT: noise level and texture, blur, rounding and clipping."""

import math

import numpy as np
import pytest

from theradose.errors import InputError, UnitError
from theradose.phantoms._imaging import simulate_ct
from theradose.volume import Geometry, Volume

G = Geometry((40, 60, 60), (1.0, 1.0, 2.0), (-30.0, -30.0, -40.0))


def _flat(value=40.0):
    return Volume(np.full(G.shape, value, dtype=np.float32), G, unit="HU", modality="CT")


@pytest.mark.parametrize("noise_hu", [15.0, 30.0])
@pytest.mark.parametrize("noise_fwhm_mm", [0.0, 1.5])
def test_noise_standard_deviation(noise_hu, noise_fwhm_mm):
    # requirement (issue 3): CT noise SD within 10% of the requested value. The rounding to
    # integers adds 1/12 HU² (uniform quantisation), negligible here.
    ct = simulate_ct(_flat(), rng=np.random.default_rng(0), noise_hu=noise_hu,
                     noise_fwhm_mm=noise_fwhm_mm)
    assert ct.array.std() == pytest.approx(math.sqrt(noise_hu ** 2 + 1 / 12), rel=0.10)
    assert ct.array.mean() == pytest.approx(40.0, abs=0.5)
    assert ct.unit == "HU" and ct.modality == "CT" and ct.array.dtype == np.float32
    assert np.array_equal(ct.array, np.rint(ct.array))


def test_noise_is_correlated_as_filtered_white_noise():
    # analytic: white noise smoothed by a Gaussian of σ (voxels) has neighbour correlation
    # exp(-d² / (4σ²)); white noise (noise_fwhm_mm=0) has none. σ = 2 mm / 2.3548 / 1 mm in x.
    kw = dict(rng=np.random.default_rng(1), noise_hu=200.0)
    ct = simulate_ct(_flat(0.0), noise_fwhm_mm=2.0, **kw).array.astype(float)
    rho = np.corrcoef(ct[:, :, :-1].ravel(), ct[:, :, 1:].ravel())[0, 1]
    sigma = 2.0 / (2 * math.sqrt(2 * math.log(2)))
    assert rho == pytest.approx(math.exp(-1 / (4 * sigma ** 2)), abs=0.03)
    white = simulate_ct(_flat(0.0), noise_fwhm_mm=0.0, **kw).array.astype(float)
    rho0 = np.corrcoef(white[:, :, :-1].ravel(), white[:, :, 1:].ravel())[0, 1]
    assert abs(rho0) < 5 / math.sqrt(white.size)  # 5 standard errors of a zero correlation


def test_clipping_and_rounding_without_noise_or_blur():
    # definition: values are rounded to integers and clipped to [-1024, 3071]
    a = np.full(G.shape, 10.4, dtype=np.float32)
    a[0], a[1], a[2] = 5000.0, -3000.0, 99.6
    ct = simulate_ct(Volume(a, G, unit="HU"), rng=np.random.default_rng(0), noise_hu=0.0,
                     fwhm_mm=0.0)
    assert ct.array[0].max() == 3071 and ct.array[1].min() == -1024
    assert np.all(ct.array[2] == 100) and np.all(ct.array[5] == 10)


def test_blur_keeps_mean_and_smooths_an_edge():
    # conservation: a normalised Gaussian keeps the mean; the 50% point of an edge stays put
    a = np.full(G.shape, -1000.0, dtype=np.float32)
    a[:, :, 30:] = 1000.0
    ct = simulate_ct(Volume(a, G, unit="HU"), rng=np.random.default_rng(0), noise_hu=0.0,
                     fwhm_mm=3.0)
    prof = ct.array[20, 30, :]
    assert prof[29] == pytest.approx(-prof[30], abs=1.0)  # symmetric about the edge
    assert -1000 < prof[29] < 0 < prof[30] < 1000
    assert ct.array.mean() == pytest.approx(a.mean(), abs=0.5)


def test_resample_to_other_voxel_size():
    # hand calculation: 60 × 60 × 40 voxels of 1 × 1 × 2 mm -> 2 mm cubes: 30 × 30 × 40
    ct = simulate_ct(_flat(), rng=np.random.default_rng(0), noise_hu=0.0, voxel_mm=2.0)
    assert ct.shape == (40, 30, 30) and ct.geometry.spacing_mm == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(ct.array, 40.0)
    old_c = G.index_to_physical((np.array(G.size_xyz) - 1) / 2)
    new_c = ct.geometry.index_to_physical((np.array(ct.geometry.size_xyz) - 1) / 2)
    np.testing.assert_allclose(new_c, old_c)


def test_deterministic_by_seed():
    a = simulate_ct(_flat(), rng=np.random.default_rng(5)).array
    b = simulate_ct(_flat(), rng=np.random.default_rng(5)).array
    c = simulate_ct(_flat(), rng=np.random.default_rng(6)).array
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_validation():
    rng = np.random.default_rng(0)
    with pytest.raises(UnitError, match=r"^hu.unit: must be in HU, got 'g/cm3'"):
        simulate_ct(Volume(np.ones(G.shape), G, unit="g/cm3"), rng=rng)
    with pytest.raises(InputError, match=r"^hu: must be a Volume in HU, got ndarray"):
        simulate_ct(np.ones(G.shape), rng=rng)
    with pytest.raises(InputError, match=r"^noise_hu: must be a finite number >= 0, got -1"):
        simulate_ct(_flat(), rng=rng, noise_hu=-1)
    with pytest.raises(InputError, match=r"^voxel_mm\[1\]: must be > 0, got 0.0"):
        simulate_ct(_flat(), rng=rng, voxel_mm=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match=r"^voxel_mm: must be a number or 3 numbers \(x, y, z\), "
                                         r"got \(1.0, 2.0\)"):
        simulate_ct(_flat(), rng=rng, voxel_mm=(1.0, 2.0))
    with pytest.raises(InputError, match=r"^voxel_mm: must be a finite number >= 0, got -2.0"):
        simulate_ct(_flat(), rng=rng, voxel_mm=-2)
    with pytest.raises(InputError, match=r"^fwhm_mm: must be a finite number >= 0"):
        simulate_ct(_flat(), rng=rng, fwhm_mm=float("inf"))
    with pytest.raises(InputError, match=r"^noise_fwhm_mm: must be a finite number >= 0"):
        simulate_ct(_flat(), rng=rng, noise_fwhm_mm=-2)
    with pytest.raises(InputError, match=r"^rng: must be a numpy.random.Generator") as info:
        simulate_ct(_flat(), rng=0)
    assert "\n" not in str(info.value)
