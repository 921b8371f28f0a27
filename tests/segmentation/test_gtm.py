"""Geometric transfer matrix (GTM) partial-volume correction (Rousset et al. 1998)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from theradose.errors import InputError, TheradoseWarning
from theradose.segmentation._gtm import (
    FWHM_PER_SIGMA,
    gtm_correct,
    gtm_correct_series,
    gtm_matrix,
)


def blur(image: np.ndarray, spacing_xyz, fwhm_mm: float) -> np.ndarray:
    """The imaging system, written independently: σ per [z, y, x] axis in voxels."""
    sigma = fwhm_mm / FWHM_PER_SIGMA
    return gaussian_filter(image, [sigma / spacing_xyz[2], sigma / spacing_xyz[1],
                                   sigma / spacing_xyz[0]], mode="constant")


def ball(shape, spacing_xyz, centre_xyz_mm, radius_mm, sub: int = 4) -> np.ndarray:
    """Fractional occupancy of a ball (``sub``³ sub-samples per voxel), [z, y, x]."""
    axes = [(np.arange(n * sub) + 0.5) / sub * s
            for n, s in zip(shape, spacing_xyz[::-1], strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    cx, cy, cz = centre_xyz_mm
    inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2
    return inside.reshape(shape[0], sub, shape[1], sub, shape[2], sub).mean(axis=(1, 3, 5))


def test_piecewise_constant_phantom_recovered_exactly():
    # Two adjacent boxes + background inside a body box, anisotropic voxels: the observed
    # image is exactly W c, so GTM must return the true concentrations (to rounding).
    spacing = (2.0, 3.0, 4.0)  # x, y, z
    shape = (20, 24, 30)  # z, y, x
    body = np.zeros(shape)
    body[2:18, 3:21, 3:27] = 1.0
    a = np.zeros(shape)
    a[6:12, 8:14, 8:14] = 1.0
    b = np.zeros(shape)
    b[6:12, 8:14, 14:19] = 1.0
    b[6:12, 8:14, 19] = 0.4  # a fractional boundary layer
    background = body - a - b
    true = {"a": 5000.0, "b": 1200.0, "background": 300.0}
    masks = {"a": a, "b": b, "background": background}
    fwhm = 10.0
    image = blur(sum(true[k] * masks[k] for k in masks), spacing, fwhm)

    names, w = gtm_matrix(masks, spacing, fwhm)
    assert names == ("a", "b", "background")
    assert w.shape == (3, 3)
    assert np.all(w >= 0)
    assert np.all(np.diag(w) < 1)  # every region loses activity by spill-out
    observed = {k: float(np.sum(m * image) / np.sum(m)) for k, m in masks.items()}
    assert abs(observed["a"] / true["a"] - 1) > 0.05  # the blur matters in this phantom
    corrected = gtm_correct(image, masks, spacing, fwhm)
    assert list(corrected) == list(names)
    for k, c in true.items():
        assert corrected[k] == pytest.approx(c, rel=1e-6)


def test_small_sphere_next_to_hot_sphere():
    spacing = (2.0, 2.0, 2.0)
    shape = (24, 24, 32)
    fwhm = 10.0
    hot = ball(shape, spacing, (24.0, 24.0, 24.0), 10.0)
    small = ball(shape, spacing, (44.0, 24.0, 24.0), 5.0)
    true = {"hot": 20000.0, "small": 2000.0}
    image = blur(true["hot"] * hot + true["small"] * small, spacing, fwhm)
    observed = float(np.sum(small * image) / np.sum(small))
    assert abs(observed / true["small"] - 1) > 0.20  # uncorrected: biased by > 20 %
    corrected = gtm_correct(image, {"hot": hot, "small": small}, spacing, fwhm)
    assert corrected["small"] == pytest.approx(true["small"], rel=1e-6)
    assert corrected["hot"] == pytest.approx(true["hot"], rel=1e-6)


def test_series_recovers_each_time_point():
    # Two "time points" of the same regions with different activities (washout of the hot
    # sphere, uptake in the small one): one matrix, every image recovered exactly.
    spacing = (2.0, 2.0, 2.0)
    shape = (24, 24, 32)
    fwhm = 10.0
    hot = ball(shape, spacing, (24.0, 24.0, 24.0), 10.0)
    small = ball(shape, spacing, (44.0, 24.0, 24.0), 5.0)
    truths = [(20000.0, 2000.0), (8000.0, 3500.0)]
    images = [blur(a * hot + b * small, spacing, fwhm) for a, b in truths]
    out = gtm_correct_series(images, {"hot": hot, "small": small}, spacing, fwhm)
    np.testing.assert_allclose(out["hot"], [a for a, _ in truths], rtol=1e-6)
    np.testing.assert_allclose(out["small"], [b for _, b in truths], rtol=1e-6)


def test_ill_conditioned_warns_and_uses_least_squares():
    m = np.zeros((8, 8, 8))
    m[2:6, 2:6, 2:6] = 1.0
    image = blur(100.0 * m, (2.0, 2.0, 2.0), 6.0)
    with pytest.warns(TheradoseWarning, match="ill-conditioned"):
        out = gtm_correct(image, {"a": m, "b": m.copy()}, (2.0, 2.0, 2.0), 6.0)
    assert out["a"] + out["b"] == pytest.approx(100.0, rel=1e-6)  # minimum-norm split


def _one_line(exc: pytest.ExceptionInfo, field: str) -> None:
    assert exc.value.field == field
    assert "\n" not in str(exc.value)
    assert str(exc.value).startswith(f"{field}: ")


@pytest.mark.parametrize("fwhm", [0.0, -3.0, float("nan"), "wide"])
def test_bad_fwhm(fwhm):
    m = np.ones((4, 4, 4))
    with pytest.raises(InputError) as exc:
        gtm_matrix({"a": m}, (1.0, 1.0, 1.0), fwhm)
    _one_line(exc, "fwhm_mm")


def test_mask_shape_mismatch_and_empty_mask():
    a = np.ones((4, 4, 4))
    with pytest.raises(InputError, match="'b' has shape") as exc:
        gtm_matrix({"a": a, "b": np.ones((4, 4, 5))}, (1.0, 1.0, 1.0), 5.0)
    _one_line(exc, "masks")
    with pytest.raises(InputError, match="'b' is empty") as exc:
        gtm_matrix({"a": a, "b": np.zeros((4, 4, 4))}, (1.0, 1.0, 1.0), 5.0)
    _one_line(exc, "masks")
    with pytest.raises(InputError) as exc:
        gtm_matrix({}, (1.0, 1.0, 1.0), 5.0)
    _one_line(exc, "masks")
    with pytest.raises(InputError, match=r"\[0, 1\]") as exc:
        gtm_matrix({"a": 2.0 * a}, (1.0, 1.0, 1.0), 5.0)
    _one_line(exc, "masks")


def test_image_shape_mismatch_and_bad_spacing():
    a = np.ones((4, 4, 4))
    with pytest.raises(InputError, match="shape") as exc:
        gtm_correct(np.ones((4, 4, 3)), {"a": a}, (1.0, 1.0, 1.0), 5.0)
    _one_line(exc, "image")
    with pytest.raises(InputError) as exc:
        gtm_matrix({"a": a}, (1.0, 0.0, 1.0), 5.0)
    _one_line(exc, "spacing_mm")
