"""Non-fitted voxel TIA: trapezoid + physical tail, and hybrid (trapezoid + fitted tail).

Both are linear (trapezoid) or nearly linear (hybrid) in the data, so their σ follows from
first-order propagation of the per-point uncertainty ``relative_sigma × y``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hybrid", "trapezoid", "trapezoid_weights"]


def trapezoid_weights(t_h: np.ndarray) -> np.ndarray:
    """Weights ``c`` (T,) with ``Σ c_i y_i`` = trapezoid area from (0, 0) through the points, h.

    When ``t_h[0] > 0`` the curve starts at (0, 0); when ``t_h[0] == 0`` it starts at the
    first point.
    """
    t = np.asarray(t_h, dtype=float)
    pre = t[0] > 0
    tt = np.concatenate([[0.0], t]) if pre else t
    c = np.zeros(tt.size)
    if tt.size >= 2:
        d = np.diff(tt)
        c[:-1] += d / 2
        c[1:] += d / 2
    return c[1:] if pre else c


def trapezoid(t_h: np.ndarray, y: np.ndarray, lam_phys: float, rel_sigma: float):
    """Trapezoids from (0, 0) through the points, then physical decay from the last point.

    ``TIA = Σ trapezoids + y_last / λ_phys`` with negative values clipped to 0.

    Parameters
    ----------
    t_h : (T,) ndarray
        Times, h.
    y : (N, T) ndarray
        Activities (any unit).
    lam_phys : float
        Physical decay constant, 1/h.
    rel_sigma : float
        Relative standard uncertainty of each point.

    Returns
    -------
    tia, sigma : (N,) ndarray
        Data unit × h.
    """
    yp = np.maximum(y, 0.0)
    c = trapezoid_weights(t_h)
    c[-1] += 1.0 / lam_phys
    tia = yp @ c
    sigma = rel_sigma * np.sqrt(np.square(yp) @ np.square(c))
    return tia, sigma


def hybrid(t_h: np.ndarray, y: np.ndarray, lam_phys: float, rel_sigma: float):
    """Trapezoids up to the second-to-last point, then a mono-exponential tail to infinity.

    The tail passes through the second-to-last point ``(t_a, y_a)`` with rate
    ``l = max(ln(y_a / y_b) / (t_b - t_a), λ_phys)`` from the last two points; it adds
    ``y_a / l``. Requires ``y_a, y_b > 0`` (callers use :func:`trapezoid` otherwise).

    Returns
    -------
    tia, sigma : (N,) ndarray
        Data unit × h.
    """
    yp = np.maximum(y, 0.0)
    c = np.zeros(t_h.size)
    c[:-1] = trapezoid_weights(t_h[:-1])
    ya = np.maximum(yp[:, -2], 1e-300)
    yb = np.maximum(yp[:, -1], 1e-300)
    dt = float(t_h[-1] - t_h[-2])
    raw = np.log(ya / yb) / dt
    free = raw > lam_phys
    rate = np.where(free, raw, lam_phys)
    tia = yp @ c + ya / rate
    grad = np.broadcast_to(c, yp.shape).copy()
    grad[:, -2] += np.where(free, 1.0 / rate - 1.0 / (rate * rate * dt), 1.0 / rate)
    grad[:, -1] += np.where(free, ya / (rate * rate * yb * dt), 0.0)
    sigma = rel_sigma * np.sqrt(np.sum(np.square(grad * yp), axis=1))
    return tia, sigma
