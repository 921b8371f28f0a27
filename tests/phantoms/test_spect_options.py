"""SPECT camera options of the virtual patients: resolution, voxel size, count level.

References: a Gaussian blur adds σ² to the variance of a distribution (convolution of
independent displacements), σ = FWHM / (2 √(2 ln 2)); expected counts
``N = S · T · f · Σ_beds e^{−λ t_b} A_b`` with f = (1 − e^{−λT})/(λT) (docs/phantoms-imaging.md);
the NM reader's calibration ``C = counts / (T · S) · 1e6 / V`` (docs/io-dicom.md).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from theradose.errors import InputError
from theradose.io import load_study, read_nm
from theradose.phantoms import SimulationConfig, simulate_patient, simulate_spect

LU177_HALF_LIFE_S = 6.647 * 24 * 3600  # ICRP-107 (DESIGN.md §4)


def _f(t_s: float) -> float:
    lam = math.log(2) / LU177_HALF_LIFE_S
    return (1 - math.exp(-lam * t_s)) / (lam * t_s)


# ---------------------------------------------------------------------------- configuration
def test_defaults_are_the_camera_of_simulate_spect():
    sig = inspect.signature(simulate_spect).parameters
    cam = SimulationConfig().spect_camera()
    assert cam["fwhm_mm"] == sig["fwhm_mm"].default == 11.0
    assert cam["voxel_mm"] == sig["voxel_mm"].default == 4.8
    assert cam["matrix_xy"] == sig["matrix_xy"].default == 128
    assert cam["duration_s"] == sig["duration_s"].default == 1800.0
    assert cam["sensitivity_cps_per_mbq"] == sig["sensitivity_cps_per_mbq"].default == 9.5
    assert cam["count_scale"] == 1.0
    # noise=False keeps its documented meaning (no blur) unless a FWHM is given
    assert SimulationConfig(noise=False).spect_camera()["fwhm_mm"] == 0.0
    assert SimulationConfig(noise=False, spect_fwhm_mm=11.0).spect_camera()["fwhm_mm"] == 11.0


@pytest.mark.parametrize(("voxel", "matrix"), [(4.8, 128), (2.4, 256), (6.0, 103), (9.6, 64)])
def test_voxel_size_keeps_the_transaxial_field(voxel, matrix):
    # field of view 128 × 4.8 = 614.4 mm; matrix = ceil(614.4 / voxel)
    cam = SimulationConfig(spect_voxel_mm=voxel).spect_camera()
    assert cam["matrix_xy"] == matrix
    assert cam["matrix_xy"] * voxel >= 614.4 - 1e-9


@pytest.mark.parametrize(("scale", "duration"), [
    (2.0, 3600.0), (0.5, 900.0), (1 / 3, 600.0),
    # 1800 × 0.123457 = 222.2226 s = 60 views of 3.70371 s -> whole ms: 3.704 s -> 222.24 s
    (0.123457, 222.24),
])
def test_count_scale_is_acquisition_time_in_whole_ms_per_view(scale, duration):
    cam = SimulationConfig(spect_count_scale=scale).spect_camera()
    assert cam["duration_s"] == pytest.approx(duration, rel=1e-12)
    assert cam["count_scale"] == pytest.approx(duration / 1800.0, rel=1e-12)
    assert cam["sensitivity_cps_per_mbq"] == 9.5  # the calibration factor is the camera's


@pytest.mark.parametrize(("kw", "field"), [
    ({"spect_fwhm_mm": -1.0}, "spect_fwhm_mm"), ({"spect_fwhm_mm": 41.0}, "spect_fwhm_mm"),
    ({"spect_fwhm_mm": "11"}, "spect_fwhm_mm"), ({"spect_fwhm_mm": float("nan")}, "spect_fwhm_mm"),
    ({"spect_voxel_mm": 0.5}, "spect_voxel_mm"), ({"spect_voxel_mm": 16.0}, "spect_voxel_mm"),
    ({"spect_voxel_mm": True}, "spect_voxel_mm"),
    ({"spect_count_scale": 0.0}, "spect_count_scale"),
    ({"spect_count_scale": 1e-4}, "spect_count_scale"),
    ({"spect_count_scale": 101.0}, "spect_count_scale"),
    ({"spect_count_scale": float("inf")}, "spect_count_scale"),
])
def test_validation(kw, field):
    with pytest.raises(InputError, match=f"{field}: must be a number in") as exc:
        SimulationConfig(**kw)
    assert exc.value.field == field


def test_round_trip_through_dict():
    cfg = SimulationConfig(spect_fwhm_mm=8, spect_voxel_mm=3.3, spect_count_scale=0.25)
    d = cfg.to_dict()
    assert (d["spect_fwhm_mm"], d["spect_voxel_mm"], d["spect_count_scale"]) == (8.0, 3.3, 0.25)
    assert SimulationConfig.from_dict(d) == cfg
    assert SimulationConfig().to_dict()["spect_fwhm_mm"] is None


# ---------------------------------------------------------------------------- end to end
BASE = dict(voxel_mm=8.0, times_h=(24.0,), n_lesions=1, noise=False, motion=False,
            spect_voxel_mm=6.0)


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """The same patient (6 mm SPECT voxels) imaged: without blur at the default count level,
    with a 15 mm FWHM, and without blur at twice the acquisition time."""
    root = tmp_path_factory.mktemp("spect_opts")
    runs = {"sharp": {"spect_fwhm_mm": 0.0}, "blurred": {"spect_fwhm_mm": 15.0},
            "long": {"spect_fwhm_mm": 0.0, "spect_count_scale": 2.0}}
    return {k: simulate_patient(root / k, seed=2, config=SimulationConfig(**BASE, **kw))
            for k, kw in runs.items()}


def _nm(vp):
    return read_nm(vp.dicom / "tp1_24h" / "nm.dcm")


@pytest.mark.slow
def test_nm_grid_and_header_follow_the_options(trio):
    for vp, duration in zip(trio.values(), (1800.0, 1800.0, 3600.0), strict=True):
        nm = _nm(vp)
        assert nm.spacing_mm == pytest.approx((6.0, 6.0, 6.0))
        assert nm.shape[1:] == (103, 103)  # ceil(614.4 / 6)
        assert nm.meta["acquisition_duration_s"] == pytest.approx(duration)
        acq = vp.truth["acquisitions"][1]
        assert acq["acquisition_duration_s"] == pytest.approx(duration)
        assert acq["calibration_cps_per_mbq"] == 9.5
        assert acq["voxel_mm"] == [6.0, 6.0, 6.0]
        cam = vp.truth["spect_camera"]
        assert cam["duration_s"] == duration and cam["count_scale"] == duration / 1800.0
    assert [vp.truth["acquisitions"][1]["fwhm_mm"] for vp in trio.values()] == [0.0, 15.0, 0.0]
    assert trio["long"].truth["config"]["spect_count_scale"] == 2.0


@pytest.mark.slow
def test_total_counts_scale_with_the_count_level(trio):
    # analytic: counts / (S T f × activity in the field) lies between the last bed's decay
    # factor e^{-λ t_last} and 1 (beds start one after the other); with T doubled the counts
    # double up to f(2T)/f(T) and the later bed starts
    lam = math.log(2) / LU177_HALF_LIFE_S
    raw = {}
    for key in ("sharp", "long"):
        acq = trio[key].truth["acquisitions"][1]
        t = acq["acquisition_duration_s"]
        raw[key] = float(_nm(trio[key]).array.sum(dtype=np.float64))
        r = raw[key] / (9.5 * t * _f(t) * acq["true_total_mbq_in_fov"])
        last = max(acq["bed_start_offsets_s"])
        # uint16 storage: slope 1 for counts ≤ 65535 (else ≤ slope/2 per voxel, 1e-4 here)
        assert math.exp(-lam * last) * (1 - 1e-4) <= r <= 1 + 1e-4
    # same grid, same blur: the same activity in the field
    assert trio["long"].truth["acquisitions"][1]["true_total_mbq_in_fov"] == \
        trio["sharp"].truth["acquisitions"][1]["true_total_mbq_in_fov"]
    ratio = raw["long"] / raw["sharp"]
    n_beds = trio["sharp"].truth["spect_camera"]["n_beds"]
    hi = 2.0 * _f(3600.0) / _f(1800.0)
    assert hi * math.exp(-lam * 1800.0 * (n_beds - 1)) * (1 - 2e-4) <= ratio <= hi * (1 + 2e-4)
    assert ratio == pytest.approx(2.0, rel=0.01)


@pytest.mark.slow
def test_quantification_is_independent_of_the_count_level(trio):
    # the clinic's calibration (9.5 cps/MBq) with the header's acquisition time gives the
    # same Bq/mL at either count level: total within the bed-decay bounds of each
    totals = []
    for vp in (trio["sharp"], trio["long"]):
        study = load_study(vp.dicom, calibration_cps_per_mbq=9.5)
        acq = vp.truth["acquisitions"][1]
        lam = math.log(2) / LU177_HALF_LIFE_S
        t = acq["acquisition_duration_s"]
        hi = acq["true_total_mbq_in_fov"] * _f(t)
        lo = hi * math.exp(-lam * max(acq["bed_start_offsets_s"]))
        tot = study.time_points[0].emission.total("MBq")
        assert lo * (1 - 1e-4) <= tot <= hi * (1 + 1e-4)
        totals.append(tot / acq["true_total_mbq_in_fov"])
    assert totals[1] == pytest.approx(totals[0], rel=5e-3)


@pytest.mark.slow
def test_resolution_adds_sigma_squared_transaxially(trio):
    # convolution with a Gaussian adds σ² to the variance of the count distribution along x
    # and y (the body lies well inside the 614 mm transaxial field; z is cut by the beds)
    sigma2 = (15.0 / (2 * math.sqrt(2 * math.log(2)))) ** 2  # 40.6 mm²
    a, b = _nm(trio["sharp"]), _nm(trio["blurred"])

    def var(img, axis):
        m = img.array.astype(np.float64).sum(axis=tuple(i for i in range(3) if i != axis))
        x = np.arange(m.size) * img.spacing_mm[2 - axis]
        mu = (m * x).sum() / m.sum()
        return float(((x - mu) ** 2 * m).sum() / m.sum())

    for axis in (1, 2):  # y, x
        # tolerance 2 %: discretely sampled kernel, spill across the axial field edges
        assert var(b, axis) - var(a, axis) == pytest.approx(sigma2, rel=0.02), axis
