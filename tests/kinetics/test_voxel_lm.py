"""Voxel-fit numerics: factored Jacobian, normal equations, small solves, chunking, underflow."""

from __future__ import annotations

import math

import numpy as np
import pytest

import theradose.kinetics._voxel as voxel
from theradose.kinetics._voxel_lm import normal_equations, solve_small, time_powers
from theradose.kinetics._voxel_models import VOXEL_MODELS

LAM = math.log(2.0) / (6.647 * 24.0)  # Lu-177, ICRP-107 T1/2 = 6.647 d
T6 = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])


def _fd_jacobian(model, theta, t, h=1e-6):
    # independent reference: central finite differences of the model values
    cols = []
    for i in range(theta.shape[0]):
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        cols.append((model.evaluate(up, t, LAM) - model.evaluate(dn, t, LAM)) / (2 * h))
    return cols


@pytest.mark.parametrize("name", list(VOXEL_MODELS))
def test_normal_equations_match_finite_difference_jacobian(name):
    model = VOXEL_MODELS[name]
    rng = np.random.default_rng(12)
    theta = rng.uniform(-3.0, 0.5, (model.n_params, 40))
    y = rng.uniform(0.1, 1.0, (T6.size, 40))
    w = rng.uniform(0.5, 2.0, (T6.size, 40))
    f, ex, e = model.curve(theta, -T6, LAM)
    h, g = normal_equations(model.columns(e, f, ex), w, time_powers(T6), w * (y - f))
    jac = _fd_jacobian(model, theta, T6)
    for a in range(model.n_params):
        np.testing.assert_allclose(g[a], np.sum(w * (y - f) * jac[a], axis=0), rtol=1e-6,
                                   atol=1e-9)
        for b in range(model.n_params):
            np.testing.assert_allclose(h[a][b], np.sum(w * jac[a] * jac[b], axis=0),
                                       rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_solve_small_matches_numpy_and_zeroes_singular(k):
    # reference: numpy.linalg.solve on random symmetric positive-definite matrices
    rng = np.random.default_rng(13)
    n = 50
    a = rng.standard_normal((n, k, k))
    m = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(k)
    b = rng.standard_normal((n, k))
    m[0] = 0.0  # singular voxel -> step 0
    x = solve_small([[m[:, i, j] for j in range(k)] for i in range(k)],
                    [b[:, i] for i in range(k)])
    assert x.shape == (k, n)
    np.testing.assert_allclose(x[:, 1:].T, np.linalg.solve(m[1:], b[1:, :, None])[..., 0],
                               rtol=1e-8, atol=1e-10)
    assert np.all(x[:, 0] == 0.0)


def test_curve_has_no_subnormal_values():
    # rates of 16/h at 168 h: e^{-2688} underflows; the exponent is floored at -300 so that
    # nothing subnormal (< 2.2e-308, slow arithmetic) enters the iterations; f stays ~0
    model = VOXEL_MODELS["bi_uptake"]
    theta = np.array([[0.0, 0.0], [math.log(16.0), math.log(0.01)], [math.log(16.0)] * 2])
    f, ex, _ = model.curve(theta, -T6, LAM)
    for a in (f, *ex):
        nz = np.abs(a[a != 0])
        assert np.all(nz >= np.finfo(float).tiny)
    assert abs(f[-1, 0]) < 1e-100


def test_threads_do_not_change_results_and_chunks_only_at_tolerance(monkeypatch):
    # voxels are fitted independently: the thread count gives identical maps for a given
    # chunking; another chunk size changes numpy's vectorised code paths (last-bit round-off)
    # that the Levenberg-Marquardt stopping rule (relative objective decrease < 1e-7) can
    # carry to ~1e-4 in the flat directions of a few voxels (the code before the speed-up
    # behaved alike) -- never to the selected model
    rng = np.random.default_rng(14)
    n = 3000
    a = rng.uniform(0.5, 2.0, n)
    l1 = LAM + rng.uniform(0.002, 0.05, n)
    l2 = l1 + rng.uniform(0.1, 1.0, n)
    t = np.array([4.0, 24.0, 96.0, 168.0])
    y = a * (np.exp(-np.outer(t, l1)) - np.exp(-np.outer(t, l2)))
    y *= 1 + 0.1 * rng.standard_normal(y.shape)
    kw = {"models": ("mono", "bi_uptake"), "criterion": "aic"}
    whole = voxel.fit_voxels(t, y, n_threads=1, **kw)
    monkeypatch.setattr(voxel, "CHUNK", 700)
    one = voxel.fit_voxels(t, y, n_threads=1, **kw)
    two = voxel.fit_voxels(t, y, n_threads=2, **kw)
    for field in ("tia", "sigma", "model_index", "quality"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    np.testing.assert_array_equal(whole.model_index, one.model_index)
    np.testing.assert_allclose(whole.tia, one.tia, rtol=1e-3)
