"""Batched Levenberg–Marquardt for many small weighted least-squares problems (one per voxel).

All voxels iterate together with their own damping ``μ``; voxels that converge leave the active
set (it is compacted as soon as 15 % of it has converged), so the cost is dominated by the first
few iterations. The Jacobian comes factored (:meth:`VoxelModel.columns`: column = scale ×
``t^p`` × shared vector), so ``JᵀWJ`` needs one weighted product per *pair of distinct vectors*
and its time moments (``Σ_t w t^p v_a v_b``, p = 0..2) are sums over the few time rows.
Normal equations of size ``k <= 3`` are solved in closed form by an LDLᵀ factorisation on
contiguous ``(N,)`` arrays, larger ones with :func:`numpy.linalg.solve`.

References
----------
Marquardt DW. An algorithm for least-squares estimation of nonlinear parameters. J Soc Ind Appl
Math 1963;11:431-441. doi:10.1137/0111030
"""

from __future__ import annotations

import numpy as np

from theradose.kinetics._voxel_models import VoxelModel

__all__ = ["levenberg_marquardt", "normal_equations", "solve_small", "time_powers"]

#: Compact the working set when fewer than this fraction of its voxels are still iterating.
COMPACT_BELOW = 0.85


def time_powers(t_h: np.ndarray) -> np.ndarray:
    """``(3, T)`` rows ``t^0, t^1, t^2`` for the time moments of the normal equations."""
    t = np.asarray(t_h, dtype=np.float64)
    return np.stack([np.ones_like(t), t, t * t])


def _times(scale, x):
    return x if scale is None else x * scale


def normal_equations(cols: list, w: np.ndarray, tpow: np.ndarray,
                     wres: np.ndarray | None = None):
    """``H = Jᵀ W J`` and, with ``wres = W res``, ``g = Jᵀ W res`` from factored columns.

    Parameters
    ----------
    cols : list of (scale, v, p)
        Factored Jacobian (:meth:`VoxelModel.columns`): column = scale ``(N,)`` (None = 1) ×
        ``t^p`` × ``v`` ``(T, N)``.
    w : (T, N) ndarray
        Weights 1/σ².
    tpow : (3, T) ndarray
        :func:`time_powers`.
    wres : (T, N) ndarray, optional
        Weighted residuals ``w (y - f)``.

    Returns
    -------
    h : list of list of (N,) ndarray
        Symmetric ``k × k`` matrix as nested lists of per-voxel arrays (entries may be shared
        views: do not modify them in place).
    g : list of (N,) ndarray or None
    """
    k = len(cols)
    tcol = tpow[:, :, None]
    wv: dict[int, np.ndarray] = {}
    qs: dict[tuple[int, int], np.ndarray] = {}
    mom: dict[tuple[int, int, int], np.ndarray] = {}
    h: list[list] = [[None] * k for _ in range(k)]
    for a in range(k):
        sa, va, pa = cols[a]
        for b in range(a, k):
            sb, vb, pb = cols[b]
            key = (id(va), id(vb)) if id(va) <= id(vb) else (id(vb), id(va))
            p = pa + pb
            mo = mom.get((*key, p))
            if mo is None:
                q = qs.get(key)
                if q is None:
                    x = wv.get(id(va))
                    if x is None:
                        x = wv[id(va)] = w * va
                    q = qs[key] = x * vb  # w v_a v_b
                # Σ_t w t^p v_a v_b (ufunc reductions, not BLAS: results do not depend on
                # where a voxel sits in the batch)
                mo = mom[(*key, p)] = np.add.reduce(q if p == 0 else q * tcol[p], axis=0)
            s = sa if sb is None else (sb if sa is None else sa * sb)
            h[a][b] = h[b][a] = _times(s, mo)
    if wres is None:
        return h, None
    rv: dict[int, np.ndarray] = {}
    gm: dict[tuple[int, int], np.ndarray] = {}
    g = []
    for s, v, p in cols:
        mo = gm.get((id(v), p))
        if mo is None:
            r = rv.get(id(v))
            if r is None:
                r = rv[id(v)] = wres * v
            mo = gm[(id(v), p)] = np.add.reduce(r if p == 0 else r * tcol[p], axis=0)
        g.append(_times(s, mo))
    return h, g


def solve_small(h: list, b: list) -> np.ndarray:
    """Solve the symmetric systems ``h x = b`` for every voxel; singular voxels give 0.

    Parameters
    ----------
    h : list of list of (N,) ndarray
        ``k × k`` symmetric (positive definite) matrices, as from :func:`normal_equations`.
    b : list of (N,) ndarray

    Returns
    -------
    x : (k, N) ndarray
    """
    k = len(b)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if k == 1:
            x = (b[0] / h[0][0])[None]
        elif k == 2:
            # LDLᵀ: d0 = h00, l = h01/d0, d1 = h11 - l h01
            l10 = h[0][1] / h[0][0]
            d1 = h[1][1] - l10 * h[0][1]
            x1 = (b[1] - l10 * b[0]) / d1
            x0 = b[0] / h[0][0] - l10 * x1
            x = np.stack([x0, x1])
        elif k == 3:
            d0 = h[0][0]
            l10 = h[0][1] / d0
            l20 = h[0][2] / d0
            d1 = h[1][1] - l10 * h[0][1]
            l21 = (h[1][2] - l20 * h[0][1]) / d1
            d2 = h[2][2] - l20 * h[0][2] - l21 * l21 * d1
            z1 = b[1] - l10 * b[0]
            z2 = b[2] - l20 * b[0] - l21 * z1
            x2 = z2 / d2
            x1 = z1 / d1 - l21 * x2
            x0 = b[0] / d0 - l10 * x1 - l20 * x2
            x = np.stack([x0, x1, x2])
        else:
            hm = np.stack([np.stack(row, axis=-1) for row in h], axis=-2)  # (N, k, k)
            bm = np.stack(b, axis=-1)
            x = np.zeros_like(bm)
            ok = np.isfinite(hm).all(axis=(1, 2)) & (np.abs(np.linalg.det(hm)) > 0)
            if ok.any():
                x[ok] = np.linalg.solve(hm[ok], bm[ok][..., None])[..., 0]
            x = x.T
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(np.add.reduce(x, axis=0))  # NaN/inf in any component
    if bad.any():
        x[:, bad] = 0.0
    return x


def _prior_terms(model: VoxelModel, theta: np.ndarray, lam_min: float, prior):
    """Residual ``(N,)`` of the rate prior and its model derivative w.r.t. ``u_1``."""
    rate, sd = prior
    eu1 = np.exp(theta[model.n_amp])
    return (rate - (lam_min + eu1)) / sd, eu1 / sd


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
    neg_t = -np.asarray(t_h, dtype=np.float64)
    tpow = time_powers(t_h)
    converged = np.zeros(n, dtype=bool)
    ids = np.arange(n)
    th, yy, ww = theta, y, w
    pr = prior
    j1 = model.n_amp  # index of u_1 (the prior's parameter)
    mu = np.full(n, 1e-3)
    f, ex, e = model.curve(th, neg_t, lam_min)
    wres = yy - f
    obj = np.add.reduce(wres * wres * ww, axis=0)
    wres *= ww
    if pr is not None:
        rp, dp = _prior_terms(model, th, lam_min, pr)
        obj += rp * rp
    live = np.ones(n, dtype=bool)
    for _ in range(max_iter):
        h, g = normal_equations(model.columns(e, f, ex), ww, tpow, wres)
        if pr is not None:
            h[j1][j1] = h[j1][j1] + dp * dp
            g[j1] = g[j1] + dp * rp  # pseudo-datum rate/sd, model l1/sd
        diag = [h[a][a] for a in range(k)]
        reg = diag[0].copy()
        for d in diag[1:]:
            np.maximum(reg, d, out=reg)
        reg *= 1e-12
        reg += 1e-300
        damp = mu + 1.0
        for a in range(k):
            x = diag[a] * damp
            x += reg
            h[a][a] = x
        th_new = model.clip(solve_small(h, g) + th)
        f_new, ex_new, e_new = model.curve(th_new, neg_t, lam_min)
        wres_new = yy - f_new
        obj_new = np.add.reduce(wres_new * wres_new * ww, axis=0)
        wres_new *= ww
        if pr is not None:
            rp_new, dp_new = _prior_terms(model, th_new, lam_min, pr)
            obj_new += rp_new * rp_new
        acc = obj_new < obj  # False for NaN
        # converged: accepted step with relative decrease < rtol, largest parameter change
        # < xtol (after clipping to the bounds) or objective < ftol; or damping exhausted
        small = (obj - obj_new) < rtol * obj
        small |= np.maximum.reduce(np.abs(th_new - th), axis=0) < xtol
        small |= obj_new < ftol
        small &= acc
        small |= obj < ftol
        small |= ~acc & (mu >= 1e10)
        # adopt the trial point; put the current one back where the step was rejected (few
        # voxels: cheaper than a masked copy of every accepted one)
        rej = np.flatnonzero(~acc)
        if rej.size:
            for new_a, old_a in ((th_new, th), (e_new, e), (f_new, f), (wres_new, wres),
                                 *zip(ex_new, ex, strict=True)):
                new_a[:, rej] = old_a[:, rej]
            obj_new[rej] = obj[rej]
            if pr is not None:
                rp_new[rej] = rp[rej]
                dp_new[rej] = dp[rej]
        th, e, f, ex, wres, obj = th_new, e_new, f_new, ex_new, wres_new, obj_new
        if pr is not None:
            rp, dp = rp_new, dp_new
        mu *= 0.3
        mu[rej] *= 5.0 / 0.3
        np.clip(mu, 1e-9, 1e10, out=mu)
        live &= ~small
        n_live = int(np.count_nonzero(live))
        if n_live == 0:
            break
        if n_live < COMPACT_BELOW * live.size:  # compact the working set
            theta[:, ids] = th
            converged[ids[~live]] = True
            keep = np.flatnonzero(live)
            ids = ids[keep]
            th, e, yy, ww, f, wres = (a.take(keep, axis=1) for a in (th, e, yy, ww, f, wres))
            ex = tuple(a.take(keep, axis=1) for a in ex)
            mu, obj = mu[keep], obj[keep]
            if pr is not None:
                pr = (pr[0][keep], pr[1][keep])
                rp, dp = rp[keep], dp[keep]
            live = np.ones(ids.size, dtype=bool)
    theta[:, ids] = th
    converged[ids[~live]] = True
    return theta, converged
