"""Batched Levenberg–Marquardt for many small weighted least-squares problems (one per voxel).

All voxels iterate together with their own damping ``μ``; voxels that converge leave the active
set, so the cost is dominated by the first few iterations. Normal equations of size ``k <= 3``
are solved in closed form (Cramer's rule), larger ones with :func:`numpy.linalg.solve`.

References
----------
Marquardt DW. An algorithm for least-squares estimation of nonlinear parameters. J Soc Ind Appl
Math 1963;11:431-441. doi:10.1137/0111030
"""

from __future__ import annotations

import numpy as np

from theradose.kinetics._voxel_models import VoxelModel

__all__ = ["levenberg_marquardt", "normal_matrix", "solve_small"]


def normal_matrix(jac: list[np.ndarray], w: np.ndarray,
                  res: np.ndarray | None = None):
    """``H = Jᵀ W J`` ``(N, k, k)`` and, with ``res``, ``g = Jᵀ W res`` ``(N, k)``.

    ``jac`` is a list of ``k`` arrays ``(T, N)``; ``w`` and ``res`` are ``(T, N)``.
    """
    k = len(jac)
    n = w.shape[1]
    h = np.empty((n, k, k))
    wj = [w * j for j in jac]
    for a in range(k):
        for b in range(a, k):
            h[:, a, b] = h[:, b, a] = np.add.reduce(wj[a] * jac[b], axis=0)
    if res is None:
        return h, None
    g = np.stack([np.add.reduce(x * res, axis=0) for x in wj], axis=1)
    return h, g


def solve_small(h: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``h x = b`` for a batch ``h (N, k, k)``, ``b (N, k)``; singular rows give 0."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _solve(h, b)


def _solve(h: np.ndarray, b: np.ndarray) -> np.ndarray:
    k = h.shape[1]
    if k == 2:
        det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
        ok = np.abs(det) > 0
        det = np.where(ok, det, 1.0)
        x0 = (h[:, 1, 1] * b[:, 0] - h[:, 0, 1] * b[:, 1]) / det
        x1 = (h[:, 0, 0] * b[:, 1] - h[:, 1, 0] * b[:, 0]) / det
        return np.where(ok[:, None], np.stack([x0, x1], axis=1), 0.0)
    if k == 3:
        m = [[h[:, i, j] for j in range(3)] for i in range(3)]
        c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1]
        c01 = m[0][2] * m[2][1] - m[0][1] * m[2][2]
        c02 = m[0][1] * m[1][2] - m[0][2] * m[1][1]
        c10 = m[1][2] * m[2][0] - m[1][0] * m[2][2]
        c11 = m[0][0] * m[2][2] - m[0][2] * m[2][0]
        c12 = m[0][2] * m[1][0] - m[0][0] * m[1][2]
        c20 = m[1][0] * m[2][1] - m[1][1] * m[2][0]
        c21 = m[0][1] * m[2][0] - m[0][0] * m[2][1]
        c22 = m[0][0] * m[1][1] - m[0][1] * m[1][0]
        det = m[0][0] * c00 + m[0][1] * c10 + m[0][2] * c20
        ok = np.abs(det) > 0
        det = np.where(ok, det, 1.0)
        x0 = (c00 * b[:, 0] + c01 * b[:, 1] + c02 * b[:, 2]) / det
        x1 = (c10 * b[:, 0] + c11 * b[:, 1] + c12 * b[:, 2]) / det
        x2 = (c20 * b[:, 0] + c21 * b[:, 1] + c22 * b[:, 2]) / det
        return np.where(ok[:, None], np.stack([x0, x1, x2], axis=1), 0.0)
    out = np.zeros_like(b)
    ok = np.isfinite(h).all(axis=(1, 2)) & (np.abs(np.linalg.det(h)) > 0)
    if ok.any():
        out[ok] = np.linalg.solve(h[ok], b[ok][..., None])[..., 0]
    return out


def _prior_terms(model: VoxelModel, theta: np.ndarray, lam_min: float, prior):
    """Residual ``(N,)`` of the rate prior and its model derivative w.r.t. ``u_1``."""
    rate, sd = prior
    eu1 = np.exp(theta[model.n_amp])
    return (rate - (lam_min + eu1)) / sd, eu1 / sd


def objective(model: VoxelModel, theta: np.ndarray, t_h: np.ndarray, y: np.ndarray,
              w: np.ndarray, lam_min: float, prior=None) -> np.ndarray:
    """Weighted residual sum of squares ``(N,)`` plus the prior penalty (arrays ``(T, N)``)."""
    r = y - model.evaluate(theta, t_h, lam_min)
    obj = np.add.reduce(w * r * r, axis=0)
    if prior is not None:
        rp, _ = _prior_terms(model, theta, lam_min, prior)
        obj = obj + rp * rp
    return obj


def levenberg_marquardt(model: VoxelModel, t_h: np.ndarray, y: np.ndarray, w: np.ndarray,
                        theta: np.ndarray, lam_min: float, *, max_iter: int = 40,
                        prior=None, rtol: float = 1e-7, xtol: float = 1e-7,
                        ftol: float = 1e-14):
    """Minimise ``Σ_t w (y - f(θ))² (+ prior)`` for every voxel, starting at ``theta``.

    Parameters
    ----------
    model : VoxelModel
    t_h : (T,) ndarray
        Times, h.
    y, w : (T, N) ndarray
        Data (scaled) and weights (1/σ², same scaling).
    theta : (k, N) ndarray
        Starting parameters (not modified).
    lam_min : float
        Lower bound of the rates, 1/h.
    max_iter : int
        Fixed maximum number of iterations.
    prior : tuple of two (N,) ndarrays, optional
        ``(rate_per_h, sd)``: adds ``((rate - l1)/sd)²`` to the objective.
    rtol, xtol : float
        A voxel has converged when an accepted step lowers the objective by less than ``rtol``
        (relative) or changes no transformed parameter by more than ``xtol`` (relative change
        of amplitudes and rate increments), or when the objective is below ``ftol`` (with
        relative weights: an RMS relative residual of ~1e-7, e.g. a bi_uptake fit of
        mono-exponential data whose uptake rate creeps towards its bound).

    Returns
    -------
    theta : (k, N) ndarray
    converged : (N,) bool ndarray
    """
    theta = theta.copy()
    k, n = theta.shape
    converged = np.zeros(n, dtype=bool)
    ids = np.arange(n)
    th, yy, ww = theta, y, w
    pr = prior
    mu = np.full(n, 1e-3)
    f, jac = model.evaluate_jacobian(th, t_h, lam_min)
    res = yy - f
    obj = np.add.reduce(ww * res * res, axis=0)
    if pr is not None:
        rp, dp = _prior_terms(model, th, lam_min, pr)
        obj = obj + rp * rp
    live = np.ones(n, dtype=bool)
    diag_idx = np.arange(k)
    for _ in range(max_iter):
        h, g = normal_matrix(jac, ww, res)
        if pr is not None:
            h[:, model.n_amp, model.n_amp] += dp * dp
            g[:, model.n_amp] += dp * rp  # pseudo-datum rate/sd, model l1/sd
        diag = h[:, diag_idx, diag_idx]
        h[:, diag_idx, diag_idx] += mu[:, None] * diag + 1e-12 * (
            diag.max(axis=1, keepdims=True) + 1e-300)
        delta = solve_small(h, g).T
        th_new = model.clip(th + delta)
        f_new, jac_new = model.evaluate_jacobian(th_new, t_h, lam_min)
        res_new = yy - f_new
        obj_new = np.add.reduce(ww * res_new * res_new, axis=0)
        if pr is not None:
            rp_new, dp_new = _prior_terms(model, th_new, lam_min, pr)
            obj_new = obj_new + rp_new * rp_new
        acc = np.isfinite(obj_new) & (obj_new < obj)
        gain = (obj - obj_new) / np.maximum(obj, 1e-300)
        step = np.max(np.abs(th_new - th), axis=0)  # after clipping to the bounds
        done = live & ((acc & ((gain < rtol) | (step < xtol) | (obj_new < ftol)))
                       | (~acc & (mu >= 1e10)) | (obj < ftol))
        np.copyto(th, th_new, where=acc)
        np.copyto(f, f_new, where=acc)
        np.copyto(res, res_new, where=acc)
        for a, b in zip(jac, jac_new, strict=True):
            np.copyto(a, b, where=acc)
        np.copyto(obj, obj_new, where=acc)
        if pr is not None:
            np.copyto(rp, rp_new, where=acc)
            np.copyto(dp, dp_new, where=acc)
        mu = np.clip(np.where(acc, mu * 0.3, mu * 5.0), 1e-9, 1e10)
        live &= ~done
        n_live = int(live.sum())
        if n_live == 0:
            break
        if n_live < 0.7 * live.size:  # compact the working set
            theta[:, ids] = th
            converged[ids[~live]] = True
            keep = live
            ids = ids[keep]
            th, yy, ww, f, res = th[:, keep], yy[:, keep], ww[:, keep], f[:, keep], res[:, keep]
            jac = [a[:, keep] for a in jac]
            mu, obj = mu[keep], obj[keep]
            if pr is not None:
                pr = (pr[0][keep], pr[1][keep])
                rp, dp = rp[keep], dp[keep]
            live = np.ones(ids.size, dtype=bool)
    theta[:, ids] = th
    converged[ids[~live]] = True
    return theta, converged
