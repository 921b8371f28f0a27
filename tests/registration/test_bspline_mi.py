"""BSpline + Mattes MI stage: parameters vs ITK, penalty and gradient vs finite differences."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from _reg_phantom import ct_volume, euler, grid

from theradose.registration import _bspline_mi as B


def _image(shape_xyz=(30, 20, 25), spacing=(5.0, 4.0, 6.0), origin=(-80.0, 30.0, -200.0)):
    img = sitk.Image(*shape_xyz, sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_displacement_matches_itk_bspline_transform():
    # independent reference: SimpleITK's own BSplineTransform.TransformPoint with the same
    # coefficients (ITK order: all x, then y, then z; x fastest over the control grid)
    img = _image()
    bs = sitk.BSplineTransformInitializer(img, [4, 3, 5], order=3)
    w = B._axis_weights(img, bs)
    cshape = (*(int(n) for n in bs.GetFixedParameters()[2::-1]), 3)
    c = np.random.default_rng(1).normal(0.0, 3.0, cshape)
    bs.SetParameters(np.concatenate([c[..., d].ravel() for d in range(3)]).tolist())
    u = B.displacement(c, w)
    assert u.shape == (25, 20, 30, 3)
    for k, j, i in [(0, 0, 0), (3, 10, 20), (24, 19, 29), (12, 5, 7)]:
        x = np.asarray(img.TransformIndexToPhysicalPoint((i, j, k)))
        assert np.allclose(u[k, j, i], np.subtract(bs.TransformPoint(tuple(x)), x), atol=1e-9)
    # the adjoint: <G, A c> = <A^T G, c>
    g = np.random.default_rng(2).normal(size=u.shape)
    assert np.isclose(np.sum(g * u), np.sum(B.displacement_adjoint(g, w) * c), rtol=1e-12)


def test_bending_is_zero_for_affine_and_its_gradient():
    # analytic: coefficients linear in the control index (an affine displacement) have no
    # second differences; a quadratic one along z has constant second difference 2a
    cz, cy, cx = np.meshgrid(np.arange(6), np.arange(5), np.arange(7), indexing="ij")
    affine = np.stack([1.0 + 0.3 * cx - 0.2 * cz, 0.5 * cy, 2.0 - cz + cx], axis=-1)
    energy, grad = B.bending(affine)
    assert energy < 1e-20 and np.abs(grad).max() < 1e-12
    quad = np.zeros_like(affine)
    quad[..., 2] = 0.7 * cz**2
    energy, _ = B.bending(quad)
    assert np.isclose(energy, (2 * 0.7) ** 2 * 4 * 5 * 7)  # (n_z - 2) second differences per line
    c = np.random.default_rng(3).normal(size=affine.shape)
    d = np.random.default_rng(4).normal(size=affine.shape)
    e = 1e-5
    numeric = (B.bending(c + e * d)[0] - B.bending(c - e * d)[0]) / (2 * e)
    assert np.isclose(numeric, np.sum(B.bending(c)[1] * d), rtol=1e-6)


def test_trilinear_value_and_gradient():
    # analytic: trilinear interpolation reproduces a linear function exactly, and its gradient
    # is that function's slope (per mm, along x, y, z)
    shape_zyx, spacing = (6, 7, 8), np.array([2.0, 3.0, 4.0])
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape_zyx), indexing="ij")
    slope = np.array([0.5, -1.5, 2.0])  # per mm along x, y, z
    arr = slope[0] * i * spacing[0] + slope[1] * j * spacing[1] + slope[2] * k * spacing[2]
    idx = np.random.default_rng(5).uniform(0.0, 1.0, (200, 3)) * (np.array([8, 7, 6]) - 1)
    value, grad = B.trilinear(arr, idx, spacing)
    assert np.allclose(value, idx @ (slope * spacing), atol=1e-10)
    assert np.allclose(grad, slope[None], atol=1e-12)
    # the last grid point is inside (clamped cell), and agrees with the array
    v_end, _ = B.trilinear(arr, np.array([[7.0, 6.0, 5.0]]), spacing)
    assert np.isclose(v_end[0], arr[5, 6, 7])


def test_objective_gradient_matches_finite_differences():
    # the analytic MI gradient (Thevenaz & Unser 2000, with the exact gradient of the trilinear
    # interpolant) against a central difference of the objective; the objective is piecewise
    # smooth (interpolation cells, Parzen window pieces), so the step is small
    g = grid(shape=(30, 40, 50), spacing=(5.0, 5.0, 5.0))
    fixed = sitk.Cast(ct_volume(g).to_sitk(), sitk.sitkFloat32)
    moving = sitk.Cast(ct_volume(g, euler(shift=(3.0, -2.0, 4.0)), noise_hu=10.0).to_sitk(),
                       sitk.sitkFloat32)
    objective, _, cshape, state, n = B._problem(
        fixed, moving, euler(angles=(0, 0, 0), shift=(2.0, -1.0, 3.0)), mask=None,
        mesh_mm=60.0, work_mm=10.0, smooth_mm=2.0, bins=50, bending_weight=3e-4)
    assert n == 15 * 20 * 25
    rng = np.random.default_rng(0)
    for scale in (0.0, 1.0):
        p = rng.normal(0.0, scale, int(np.prod(cshape)))
        d = rng.normal(0.0, 1.0, p.size)
        value, grad = objective(p)
        assert 0.0 < state["mi"] < np.log(50)
        assert np.isclose(value, -state["mi"] + 3e-4 * state["bend"])
        e = 1e-5
        numeric = (objective(p + e * d)[0] - objective(p - e * d)[0]) / (2 * e)
        assert np.isclose(numeric, grad @ d, rtol=1e-4), (scale, numeric, grad @ d)
