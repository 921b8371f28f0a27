"""Vectorised sums of exponentials for voxel-wise fitting (many voxels, few time points).

Every model of the common definitions is a sum of exponentials with non-negative amplitudes
``A_i = exp(a_i)`` and ordered effective rates
``l_1 = λ_min + exp(u_1) < l_2 = l_1 + exp(u_2) < ...`` (``λ_min`` = physical decay constant when
constrained, else 0). The coefficient of ``exp(-l_j t)`` is ``c_j = Σ_i M_ji A_i`` with a fixed
matrix ``M`` per model:

==============  ============================================  ===========
model           A(t)                                          parameters
==============  ============================================  ===========
``mono``        A1 e^{-l1 t}                                  A1, l1
``bi_uptake``   A1 (e^{-l1 t} - e^{-l2 t}), l2 > l1           A1, l1, l2
``bi``          A1 e^{-l1 t} + A2 e^{-l2 t}                    A1, A2, l1, l2
``tri_uptake``  A1 e^{-l1 t} + A2 e^{-l2 t} - (A1+A2) e^{-l3 t}  A1, A2, l1..l3
``tri``         A1 e^{-l1 t} + A2 e^{-l2 t} + A3 e^{-l3 t}       A1..A3, l1..l3
==============  ============================================  ===========

TIA from 0 to ∞ is ``Σ_j c_j / l_j`` (data unit × h). Arrays are time-major so that sums over
the few time points run over contiguous rows: parameters ``theta`` ``(k, N)`` (log amplitudes,
then log rate increments), model values and derivatives ``(T, N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["VOXEL_MODELS", "VoxelModel", "start_values"]

#: Bounds of the transformed parameters (data are scaled to a maximum of 1 per voxel). Each
#: rate increment is at most e^2.77 = 16 1/h (half-life ~2.6 min), the organ-level bound.
A_BOUNDS = (-30.0, 30.0)
U_BOUNDS = (-25.0, math.log(16.0))
#: Smallest exponent passed to ``exp``: e^{-300} ≈ 5e-131 stands for anything smaller. Products
#: of such values (Jacobian, normal equations) then stay above the smallest normal double
#: (2.2e-308); subnormal results and arguments make numpy's exp and arithmetic 10-100× slower,
#: and at 5e-131 against data scaled to a maximum of 1 the change is far below round-off.
EXP_ARG_MIN = -300.0


@dataclass(frozen=True)
class VoxelModel:
    """A sum-of-exponentials model in the (log-amplitude, log-rate-increment) parameterisation.

    Attributes
    ----------
    name : str
        Model name of the common definitions.
    mix : (r, m) ndarray
        Coefficient matrix ``M``: ``c_j = Σ_i M_ji A_i``.
    """

    name: str
    mix: np.ndarray

    @property
    def n_amp(self) -> int:
        """Number of amplitudes ``m``."""
        return self.mix.shape[1]

    @property
    def n_rates(self) -> int:
        """Number of rates ``r``."""
        return self.mix.shape[0]

    @property
    def n_params(self) -> int:
        """Number of free parameters ``k = m + r``."""
        return self.n_amp + self.n_rates

    def amplitudes_rates(self, theta: np.ndarray, lam_min: float, e: np.ndarray | None = None):
        """Amplitudes ``(m, N)``, coefficients ``c (r, N)``, rates ``l (r, N)`` (1/h), ``e^u``.

        ``e`` = ``exp(theta)`` when already known.
        """
        if e is None:
            e = np.exp(theta)
        amp, eu = e[: self.n_amp], e[self.n_amp:]
        rates = np.empty_like(eu)
        np.add(eu[0], lam_min, out=rates[0])
        for j in range(1, self.n_rates):  # l_j = l_{j-1} + e^{u_j} (cumsum is slow on axis 0)
            np.add(rates[j - 1], eu[j], out=rates[j])
        if self.n_amp == 1:
            coef = amp if self.n_rates == 1 else np.multiply.outer(self.mix[:, 0], amp[0])
        else:
            coef = self.mix @ amp
        return amp, coef, rates, eu

    @property
    def _single_amp(self) -> bool:
        # one amplitude and at most two rates (mono, bi_uptake): d f / d a_1 = f and only the
        # last exponential is needed besides f
        return self.n_amp == 1 and self.n_rates <= 2

    def curve(self, theta: np.ndarray, neg_t: np.ndarray, lam_min: float):
        """Model values ``f (T, N)``, the exponentials the Jacobian needs, and ``exp(theta)``.

        Parameters
        ----------
        theta : (k, N) ndarray
        neg_t : (T,) ndarray
            Minus the sample times, h.
        lam_min : float

        Returns
        -------
        f : (T, N) ndarray
        ex : tuple of (T, N) ndarray
            ``e^{-l_j t}``: none for ``mono``, the last one for ``bi_uptake``, all otherwise.
        e : (k, N) ndarray
            ``exp(theta)`` (amplitudes, rate increments) for :meth:`columns`.
        """
        e = np.exp(theta)
        amp = e[0]
        rates = e[self.n_amp:].copy()
        rates[0] += lam_min
        for j in range(1, self.n_rates):
            rates[j] += rates[j - 1]
        ex = []
        for j in range(self.n_rates):
            x = np.multiply.outer(neg_t, rates[j])
            np.maximum(x, EXP_ARG_MIN, out=x)  # no subnormals (see EXP_ARG_MIN)
            ex.append(np.exp(x, out=x))
        if self.n_rates == 1:  # f = A1 e^{-l1 t}, computed in place
            return np.multiply(ex[0], amp, out=ex[0]), (), e
        if self._single_amp:  # f = A1 (e^{-l1 t} - e^{-l2 t})
            f = np.subtract(ex[0], ex[1], out=ex[0])
            return np.multiply(f, amp, out=f), (ex[1],), e
        coef = self.mix @ e[: self.n_amp]
        f = ex[0] * coef[0]
        for j in range(1, self.n_rates):
            f += ex[j] * coef[j]
        return f, tuple(ex), e

    def evaluate(self, theta: np.ndarray, t_h: np.ndarray, lam_min: float) -> np.ndarray:
        """Model values ``(T, N)`` at times ``t_h`` (T,) for parameters ``theta`` ``(k, N)``."""
        return self.curve(theta, -np.asarray(t_h, dtype=np.float64), lam_min)[0]

    def columns(self, e: np.ndarray, f: np.ndarray, ex: tuple):
        """Jacobian in factored form: column ``i`` is ``s_i × t^{p_i} × v_i``.

        Returns a list of ``k`` tuples ``(s, v, p)``: ``s`` an ``(N,)`` scale (None for 1),
        ``v`` a ``(T, N)`` array shared between columns where possible (``f`` itself for the
        amplitude of single-amplitude models and for the slowest rate), ``p`` 0 or 1. Derivation
        (``c_j = Σ_i M_ji A_i``, ``l_j = λ_min + Σ_{i<=j} e^{u_i}``)::

            d f / d a_i = A_i Σ_j M_ji e^{-l_j t}
            d f / d u_i = -e^{u_i} t Σ_{j>=i} c_j e^{-l_j t}

        Parameters
        ----------
        e, f, ex : output of :meth:`curve` at the current parameters.
        """
        m, r = self.n_amp, self.n_rates
        amp, eu = e[:m], e[m:]
        cols: list = []
        if self._single_amp:
            cols.append((None, f, 0))
            cols.append((-eu[0], f, 1))
            if r == 2:  # c_2 e^{-l2 t} = -A1 e^{-l2 t}
                cols.append((eu[1] * amp[0], ex[0], 1))
            return cols
        coef = self.mix @ amp
        for i in range(m):
            nz = np.flatnonzero(self.mix[:, i])
            if nz.size == 1:
                cols.append((self.mix[nz[0], i] * amp[i], ex[nz[0]], 0))
            else:
                v = self.mix[nz[0], i] * ex[nz[0]]
                for j in nz[1:]:
                    v += self.mix[j, i] * ex[j]
                cols.append((amp[i], v, 0))
        for i in range(r):
            if i == 0:
                cols.append((-eu[0], f, 1))
            elif i == r - 1:
                cols.append((-eu[i] * coef[i], ex[i], 1))
            else:
                v = coef[i] * ex[i]
                for j in range(i + 1, r):
                    v += coef[j] * ex[j]
                cols.append((-eu[i], v, 1))
        return cols

    def jacobian(self, theta: np.ndarray, t_h: np.ndarray, lam_min: float) -> list[np.ndarray]:
        """The ``k`` derivative arrays ``(T, N)`` of the model (expanded :meth:`columns`)."""
        t = np.asarray(t_h, dtype=np.float64)
        f, ex, e = self.curve(theta, -t, lam_min)
        out = []
        for s, v, p in self.columns(e, f, ex):
            x = v * t[:, None] if p else v.copy()
            out.append(x if s is None else x * s)
        return out

    def tia(self, theta: np.ndarray, lam_min: float,
            tail_cap: tuple[float, float] | None = None) -> np.ndarray:
        """TIA 0..∞ ``(N,)`` in (scaled data unit)·h.

        Parameters
        ----------
        theta : (k, N) ndarray
        lam_min : float
        tail_cap : (lam_tail, t_last), optional
            Integrate every component slower than ``lam_tail`` (1/h) at ``lam_tail`` after
            ``t_last`` (h): ``∫ e^{-l t} dt`` becomes ``g(l) = (1 - e^{-l t_n})/l + e^{-l t_n}
            / lam_tail`` for ``l < lam_tail`` (the tail after the last sample no slower than
            physical decay). None: ``1/l`` for every component.
        """
        _, coef, rates, _ = self.amplitudes_rates(theta, lam_min)
        return np.sum(coef * _integral(rates, tail_cap)[0], axis=0)

    def tia_gradient(self, theta: np.ndarray, lam_min: float,
                     tail_cap: tuple[float, float] | None = None) -> np.ndarray:
        """Gradient ``(k, N)`` of :meth:`tia` with respect to ``theta``."""
        amp, coef, rates, eu = self.amplitudes_rates(theta, lam_min)
        g, dg = _integral(rates, tail_cap)
        g_a = amp * (self.mix.T @ g)
        q = -coef * dg  # c_j / l_j^2 without a cap
        tail = np.cumsum(q[::-1], axis=0)[::-1]  # Σ_{j >= i}
        return np.concatenate([g_a, -eu * tail], axis=0)

    def slowest_rate(self, theta: np.ndarray, lam_min: float) -> np.ndarray:
        """Slowest effective rate ``l_1`` ``(N,)``, 1/h."""
        return lam_min + np.exp(theta[self.n_amp])

    def clip(self, theta: np.ndarray) -> np.ndarray:
        """Clip transformed parameters ``(k, N)`` to their numerical bounds (in place)."""
        np.clip(theta[: self.n_amp], *A_BOUNDS, out=theta[: self.n_amp])
        np.clip(theta[self.n_amp:], *U_BOUNDS, out=theta[self.n_amp:])
        return theta


VOXEL_MODELS: dict[str, VoxelModel] = {
    "mono": VoxelModel("mono", np.array([[1.0]])),
    "bi_uptake": VoxelModel("bi_uptake", np.array([[1.0], [-1.0]])),
    "bi": VoxelModel("bi", np.eye(2)),
    "tri_uptake": VoxelModel("tri_uptake", np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])),
    "tri": VoxelModel("tri", np.eye(3)),
}


def _integral(rates: np.ndarray, tail_cap: tuple[float, float] | None):
    """``∫_0^∞`` of ``e^{-l t}`` per rate (see :meth:`VoxelModel.tia`) and its derivative in l."""
    inv = 1.0 / rates
    g, dg = inv, -inv * inv
    if tail_cap is None:
        return g, dg
    lam_t, t_n = tail_cap
    slow = rates < lam_t
    if not slow.any():
        return g, dg
    e_n = np.exp(-rates * t_n)
    capped = (1.0 - e_n) * inv + e_n / lam_t
    d_capped = t_n * e_n * inv - (1.0 - e_n) * inv * inv - t_n * e_n / lam_t
    return np.where(slow, capped, g), np.where(slow, d_capped, dg)


def _log_u(rate: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """``log(rate - floor)`` with the increment kept positive and within bounds."""
    return np.log(np.clip(rate - floor, np.exp(U_BOUNDS[0]), np.exp(U_BOUNDS[1])))


def tail_regression(t_h: np.ndarray, y: np.ndarray, lam_min: float):
    """Mono-exponential start on the tail: closed-form weighted log-linear regression.

    Points from the voxel's maximum on with ``y > 0`` are used (all positive points when fewer
    than two remain), with weights ``y²`` (``var(ln y) ≈ σ²/y²`` for additive noise): values
    ``<= 0`` get zero weight.

    Parameters
    ----------
    t_h : (T,) ndarray
        Times, h.
    y : (T, N) ndarray
        Data, time-major.
    lam_min : float

    Returns
    -------
    amp : (N,) ndarray
        Intercept ``A1`` (scaled data unit), > 0.
    rate : (N,) ndarray
        Rate ``l1`` (1/h), clipped to ``>= 1.01 λ_min + 1e-6``.
    """
    tc = t_h[:, None]
    pos = y > 0
    peak = np.argmax(y, axis=0)
    tail = pos & (np.arange(t_h.size)[:, None] >= peak)
    n_tail = np.add.reduce(tail, axis=0)
    few = n_tail < 2
    if few.any():
        tail[:, few] = pos[:, few]
        n_tail = np.add.reduce(tail, axis=0)
    w = np.where(tail, y * y, 0.0)
    ly = np.log(np.where(pos, y, 1.0))
    sw = np.add.reduce(w, axis=0)
    ok = (n_tail >= 2) & (sw > 0)
    sw = np.where(sw > 0, sw, 1.0)
    tm = np.add.reduce(w * tc, axis=0) / sw
    lm = np.add.reduce(w * ly, axis=0) / sw
    dt = tc - tm
    wdt = w * dt
    sxx = np.add.reduce(wdt * dt, axis=0)
    sxy = np.add.reduce(wdt * (ly - lm), axis=0)
    slope = np.where(ok & (sxx > 0), sxy / np.where(sxx > 0, sxx, 1.0), -lam_min)
    rate = np.maximum(-slope, 1.01 * lam_min + 1e-6)
    amp = np.exp(np.clip(lm + rate * tm, *A_BOUNDS))
    return amp, rate


def start_values(model: VoxelModel, t_h: np.ndarray, y: np.ndarray, lam_min: float,
                 tail: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Closed-form starting parameters ``(k, N)`` for data ``y`` ``(T, N)`` scaled to max 1.

    The slowest component comes from :func:`tail_regression` (``tail``: its result when
    already computed for these voxels); an uptake rate is chosen so that the model passes
    through the first point with positive time (``e^{-l2 t1} = e^{-l1 t1} - y1/A1``), else
    ``l2 = l1 + 5/t1``; extra washout components start at a fraction of the tail amplitude
    with faster rates.
    """
    a1, l1 = tail_regression(t_h, y, lam_min) if tail is None else tail
    k_first = int(np.argmax(t_h > 0))
    t1 = float(t_h[k_first]) if t_h[k_first] > 0 else 1.0
    y1 = y[k_first]
    fast = l1 + 5.0 / t1
    name = model.name
    if name == "mono":
        return model.clip(np.stack([np.log(a1), _log_u(l1, lam_min)], axis=0))
    if name in ("bi_uptake", "tri_uptake"):
        e1 = np.exp(-l1 * t1)
        rr = e1 - y1 / a1
        good = (rr > 0) & (rr < e1 * (1 - 1e-6))
        l_up = np.where(good, -np.log(np.where(good, rr, 1.0)) / t1, fast)
        l_up = np.maximum(l_up, 1.2 * l1)
        if name == "bi_uptake":
            return model.clip(np.stack([np.log(a1), _log_u(l1, lam_min), _log_u(l_up, l1)],
                                       axis=0))
        l2 = l1 + 0.3 * (l_up - l1)
        return model.clip(np.stack([np.log(0.8 * a1), np.log(0.2 * a1), _log_u(l1, lam_min),
                                    _log_u(l2, l1), _log_u(l_up, l2)], axis=0))
    a1, l1, a2, l2 = _peel(t_h, y, lam_min)
    if name == "bi":
        return model.clip(np.stack([np.log(a1), np.log(a2), _log_u(l1, lam_min),
                                    _log_u(l2, l1)], axis=0))
    l3 = l2 + 5.0 / t1
    return model.clip(np.stack([np.log(a1), np.log(0.7 * a2), np.log(0.3 * a2 + 1e-3 * a1),
                                _log_u(l1, lam_min), _log_u(l2, l1), _log_u(l3, l2)], axis=0))


def _peel(t_h: np.ndarray, y: np.ndarray, lam_min: float):
    """Curve stripping: slow component from the later half, fast one from the residuals.

    ``y`` is ``(T, N)``. Returns ``a1, l1, a2, l2`` (N,) with ``l2 > l1``.
    """
    n_t = t_h.size
    n_tail = max(2, n_t // 2)
    late = y.copy()
    late[: n_t - n_tail] = 0.0  # zero weight in the regression
    a1, l1 = tail_regression(t_h, late, lam_min)
    resid = y - a1 * np.exp(-np.multiply.outer(t_h, l1))
    resid[n_t - n_tail:] = 0.0
    a2, l2 = tail_regression(t_h, resid, lam_min)
    t_mid = float(t_h[max(n_t - n_tail - 1, 0)]) or 1.0
    ok = (np.add.reduce(resid > 0, axis=0) >= 2) & (l2 > 1.05 * l1)
    l2 = np.where(ok, l2, l1 + 1.0 / t_mid)
    a2 = np.where(ok, a2, np.maximum(resid[0], 0.05 * a1) * np.exp(l2 * t_h[0]))
    return a1, l1, np.maximum(a2, 1e-3 * a1), l2
