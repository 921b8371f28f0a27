"""Image-domain SPECT: conservation, calibration, Poisson statistics, resolution, dead time."""

import math
import time
from datetime import datetime

import numpy as np
import pytest
from scipy.optimize import curve_fit

from theradose.errors import InputError, UnitError
from theradose.io import read_nm, write_nm
from theradose.phantoms._imaging import FWHM_PER_SIGMA, imaging_grid, simulate_spect
from theradose.volume import Geometry, Volume

LU177_HALF_LIFE_H = 6.647 * 24  # 159.53 h, ICRP-107 (DESIGN.md §4)
T0 = datetime(2024, 5, 6, 10, 0, 0)


def _f(half_life_h, t_s):
    # analytic: mean of exp(-λt) over [0, T] = (1 - exp(-λT)) / (λT)
    lam = math.log(2) / (half_life_h * 3600)
    return (1 - math.exp(-lam * t_s)) / (lam * t_s)


def _body(shape=(60, 50, 70), spacing=(3.0, 3.0, 3.0), origin=(-100.0, -70.0, -85.0)):
    """Activity (MBq) in a box well inside a 3 mm CT grid (not aligned with 4.8 mm voxels)."""
    g = Geometry(shape, spacing, origin)
    a = np.zeros(shape)
    rng = np.random.default_rng(11)
    a[20:40, 15:35, 20:50] = rng.uniform(0.5, 2.0, (20, 20, 30))
    return Volume(a, g, unit="MBq", acquisition_time=T0)


def _one_bed(**kw):
    return {"n_beds": 1, "matrix_xy": 64, "bed_length_mm": 300.0, **kw}


def test_total_counts_noiseless_one_bed():
    # analytic: Σ counts = S × T × f × Σ A when the field covers the body (> 4σ margin)
    act = _body()
    nm = simulate_spect(act, rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H,
                        noise=False, **_one_bed())
    expected = act.array.sum() * 9.5 * 1800.0 * _f(LU177_HALF_LIFE_H, 1800.0)
    assert nm.array.sum() == pytest.approx(expected, rel=1e-9)
    assert nm.unit == "counts" and nm.modality == "NM"
    assert nm.geometry.spacing_mm == (4.8, 4.8, 4.8)
    assert nm.shape == (63, 64, 64)  # ceil(300 / 4.8) slices, 64² matrix
    assert nm.acquisition_time == T0
    assert nm.meta["calibration_cps_per_mbq"] == 9.5
    assert nm.meta["acquisition_duration_s"] == 1800.0
    assert nm.meta["decay_correction"] == "NONE"


def test_total_counts_two_beds_decay_between_beds():
    # hand calculation: bed 0 (superior, acquired first) starts at 0, bed 1 at T:
    # counts = S T f (A_sup + A_inf exp(-λT))
    g = Geometry((120, 40, 40), (3.0, 3.0, 3.0), (-60.0, -60.0, -180.0))
    a = np.zeros(g.shape)
    a[95:100, 18:22, 18:22] = 1.0  # superior blob (z ≈ +105 mm)
    a[20:25, 18:22, 18:22] = 2.0   # inferior blob (z ≈ -120 mm)
    act = Volume(a, g, unit="MBq")
    t, half = 600.0, 1.0  # a short half-life makes the inter-bed decay visible
    nm = simulate_spect(act, rng=np.random.default_rng(0), half_life_h=half, noise=False,
                        matrix_xy=32, n_beds=2, bed_length_mm=192.0, duration_s=t)
    lam = math.log(2) / 3600
    a_sup, a_inf = a[95:100].sum(), a[20:25].sum()
    expected = 9.5 * t * _f(half, t) * (a_sup + a_inf * math.exp(-lam * t))
    assert nm.array.sum() == pytest.approx(expected, rel=1e-9)
    assert nm.meta["bed_start_offsets_s"] == [0.0, 600.0]


def test_bq_per_ml_total_equals_true_total_times_decay_factor():
    # conservation: ∫C dV = Σ counts / (T S) = f × Σ A (the reader does not undo f)
    act = _body()
    nm = simulate_spect(act, rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H,
                        noise=False, output="Bq/mL", **_one_bed())
    assert nm.unit == "Bq/mL"
    assert nm.total("MBq") == pytest.approx(act.array.sum() * _f(LU177_HALF_LIFE_H, 1800.0),
                                            rel=1e-9)


def test_counts_and_bq_per_ml_match_the_nm_reader(tmp_path):
    # independent: theradose.io.read_nm applies C = counts / (T cal) 1e6 / V (docs/io-dicom.md)
    act = _body()
    act = act.replace(array=act.array * 0.2)  # counts ≤ 65535: stored exactly (slope 1)
    kw = dict(half_life_h=LU177_HALF_LIFE_H, **_one_bed())
    counts = simulate_spect(act, rng=np.random.default_rng(5), **kw)
    conc = simulate_spect(act, rng=np.random.default_rng(5), output="Bq/mL", **kw)
    assert np.all(counts.array == np.rint(counts.array))  # Poisson counts are integers
    assert counts.array.max() <= 65535
    p = write_nm(counts, tmp_path / "nm.dcm")
    back = read_nm(p, calibration_cps_per_mbq=counts.meta["calibration_cps_per_mbq"])
    assert back.geometry.same_as(conc.geometry)
    np.testing.assert_allclose(back.array, conc.array, rtol=1e-12)


def test_poisson_mean_and_variance_uniform_region():
    # statistics: counts ~ Poisson(μ), μ = A S T f per voxel; mean and variance both μ.
    g = imaging_grid(Geometry((40, 40, 40), (4.8,) * 3), voxel_mm=4.8)
    act = Volume(np.full(g.shape, 0.02), g, unit="MBq")
    nm = simulate_spect(act, rng=np.random.default_rng(1), half_life_h=LU177_HALF_LIFE_H,
                        fwhm_mm=0.0, grid=g, n_beds=1)
    mu = 0.02 * 9.5 * 1800 * _f(LU177_HALF_LIFE_H, 1800)  # ≈ 341.6 counts
    x = nm.array.ravel()
    n = x.size
    # tolerance: 5 standard errors (SE of mean √(μ/n); of variance ≈ μ √(2/(n-1)))
    assert abs(x.mean() - mu) < 5 * math.sqrt(mu / n)
    assert abs(x.var(ddof=1) - mu) < 5 * mu * math.sqrt(2 / (n - 1))


def _gauss(x, a, x0, s):
    return a * np.exp(-0.5 * ((x - x0) / s) ** 2)


@pytest.mark.parametrize("fwhm", [11.0, 8.0, 14.0])
def test_point_source_fwhm(fwhm):
    # analytic: the image of a point source is a Gaussian of the requested FWHM
    # (fit of a Gaussian to the profiles through the peak; tolerance 5% from the issue)
    g = Geometry((41, 41, 41), (4.8,) * 3, (-96.0, -96.0, -96.0))
    a = np.zeros(g.shape)
    a[20, 20, 20] = 100.0
    nm = simulate_spect(Volume(a, g, unit="MBq"), rng=np.random.default_rng(0),
                        half_life_h=LU177_HALF_LIFE_H, noise=False, fwhm_mm=fwhm, grid=g,
                        n_beds=1)
    img = nm.array
    x = np.arange(41) * 4.8
    for prof in (img[20, 20, :], img[20, :, 20], img[:, 20, 20]):
        (_, _, s), _ = curve_fit(_gauss, x, prof, p0=(prof.max(), 96.0, 5.0))
        assert abs(s) * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.05)
    # second moment of the whole 3-D response (σ ≥ 0.7 voxel: sampling error ≪ 1%)
    for d in np.meshgrid(*(np.arange(41) - 20,) * 3, indexing="ij"):
        var = (img * d ** 2).sum() / img.sum() * 4.8 ** 2
        assert math.sqrt(var) * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.05)


def test_paralysable_dead_time():
    # analytic (Frezza et al. 2020): m = n exp(-n τ), n = true photopeak count rate = S f ΣA
    act = _body()
    total = act.array.sum()  # ≈ 15 GBq in the field: n ≈ 1.4e5 cps
    tau = 2e-6  # factor ≈ 0.75
    kw = dict(rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H, noise=False,
              **_one_bed())
    on = simulate_spect(act, dead_time_s=tau, **kw)
    off = simulate_spect(act, **kw)
    n = 9.5 * _f(LU177_HALF_LIFE_H, 1800) * total
    assert on.array.sum() / off.array.sum() == pytest.approx(math.exp(-n * tau), rel=1e-9)
    assert on.meta["dead_time_factors"][0] == pytest.approx(math.exp(-n * tau), rel=1e-12)
    assert off.meta["dead_time_factors"] == [1.0]


def test_deterministic_by_seed():
    act = _body()
    kw = dict(half_life_h=LU177_HALF_LIFE_H, **_one_bed())
    a = simulate_spect(act, rng=np.random.default_rng(42), **kw).array
    b = simulate_spect(act, rng=np.random.default_rng(42), **kw).array
    c = simulate_spect(act, rng=np.random.default_rng(43), **kw).array
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_default_grid_centred_on_ct():
    # hand calculation: 128² × ceil(2 × 387 / 4.8) = 162 slices, centred on the CT centre
    act = _body()
    nm = simulate_spect(act, rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H,
                        noise=False)
    assert nm.shape == (162, 128, 128)
    centre = nm.geometry.index_to_physical((np.array([128, 128, 162]) - 1) / 2)
    ct_centre = act.geometry.index_to_physical((np.array([70, 50, 60]) - 1) / 2)
    np.testing.assert_allclose(centre, ct_centre, atol=1e-9)


def test_spect_performance():
    # issue 3: SPECT of a 3 mm, 150 × 100 × 300 activity map in < 2 s
    g = Geometry((300, 100, 150), (3.0, 3.0, 3.0), (-225.0, -150.0, -450.0))
    a = np.zeros(g.shape)
    a[50:250, 20:80, 30:120] = 1e-3
    act = Volume(a, g, unit="MBq")
    t0 = time.perf_counter()
    simulate_spect(act, rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    ({"rng": 3}, InputError, r"^rng: must be a numpy.random.Generator"),
    ({"half_life_h": 0.0}, InputError, r"^half_life_h: must be > 0"),
    ({"fwhm_mm": -1.0}, InputError, r"^fwhm_mm: must be a finite number >= 0"),
    ({"sensitivity_cps_per_mbq": 0}, InputError, r"^sensitivity_cps_per_mbq: must be > 0"),
    ({"duration_s": "long"}, InputError, r"^duration_s: must be a number >= 0, got 'long'"),
    ({"dead_time_s": -1e-6}, InputError, r"^dead_time_s: must be a finite number >= 0"),
    ({"output": "MBq"}, InputError, r"^output: must be 'counts' or 'Bq/mL', got 'MBq'"),
    ({"n_beds": 0}, InputError, r"^n_beds: must be an integer >= 1, got 0"),
    ({"bed_length_mm": -5}, InputError, r"^bed_length_mm: must be a finite number >= 0"),
    ({"grid": "grid"}, InputError, r"^grid: must be a Geometry, got str"),
    ({"bed_order": "up"}, InputError, r"^bed_order: must be 'craniocaudal' or 'caudocranial'"),
    ({"matrix_xy": 0}, InputError, r"^matrix_xy: must be a positive integer or two, got 0"),
    ({"voxel_mm": 0}, InputError, r"^voxel_mm: must be > 0, got 0"),
    ({"centre_mm": (1, 2)}, InputError, r"^centre_mm: must be 3 finite numbers"),
])
def test_argument_validation(kw, exc, pattern):
    args = {"rng": np.random.default_rng(0), "half_life_h": LU177_HALF_LIFE_H, **kw}
    with pytest.raises(exc, match=pattern) as info:
        simulate_spect(_body(), **args)
    assert "\n" not in str(info.value)


def test_activity_validation():
    g = Geometry((4, 4, 4), (4.8,) * 3)
    rng = np.random.default_rng(0)
    with pytest.raises(UnitError, match=r"^activity_mbq.unit: must be an activity per voxel "
                                        r"\(MBq, Bq, \.\.\.\), got 'Bq/mL'"):
        simulate_spect(Volume(np.ones(g.shape), g, unit="Bq/mL"), rng=rng, half_life_h=1.0)
    with pytest.raises(InputError, match=r"^activity_mbq: activity must be >= 0, minimum is -1"):
        simulate_spect(Volume(-np.ones(g.shape), g, unit="MBq"), rng=rng, half_life_h=1.0)
    bad = np.ones(g.shape)
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"^activity_mbq: contains NaN or infinite values"):
        simulate_spect(Volume(bad, g, unit="MBq"), rng=rng, half_life_h=1.0)
    with pytest.raises(InputError, match=r"^activity_mbq: must be a Volume of activity per "
                                         r"voxel, got ndarray"):
        simulate_spect(np.ones((4, 4, 4)), rng=rng, half_life_h=1.0)
    with pytest.raises(InputError, match=r"^reference: must be a Geometry or Volume, got int"):
        imaging_grid(3, voxel_mm=4.8)


def test_activity_in_kbq_is_converted():
    # unit conversion at the boundary: 1000 kBq = 1 MBq gives the same image
    act = _body()
    kw = dict(rng=np.random.default_rng(0), half_life_h=LU177_HALF_LIFE_H, noise=False,
              **_one_bed())
    a = simulate_spect(act, **kw)
    kw["rng"] = np.random.default_rng(0)
    b = simulate_spect(act.replace(array=act.array * 1000.0, unit="kBq"), **kw)
    np.testing.assert_allclose(b.array, a.array, rtol=1e-12)
