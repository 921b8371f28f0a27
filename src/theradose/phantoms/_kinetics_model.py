"""Analytic solution of the linear blood + two-tissue compartment system (sums of exponentials).

The system (amounts as fractions of the injected activity, rates in 1/h, no physical decay)::

                      k_in[i]          k3[i]
    blood  A_b  ─────────────►  F_i  ────────►  B_i          (one F/B pair per region
           ▲   ◄─────────────        ◄────────                 and sub-tissue i)
           │       k2[i]               k4[i]
           │ k_renal
           ▼
    bladder U ──k_void──► voided X   (out of the body)

    dA_b/dt = -(Σ k_in + k_renal) A_b + Σ k2 F
    dF_i/dt = k_in,i A_b - (k2,i + k3,i) F_i + k4,i B_i
    dB_i/dt = k3,i F_i - k4,i B_i
    dU/dt   = k_renal A_b - k_void U
    dX/dt   = k_void U

The blood + tissue block is a reversible mammillary/catenary system, so it obeys detailed
balance with the weights π_b = 1, π_F = k_in/k2, π_B = π_F k3/k4: the matrix
``S = Π^-1/2 M Π^1/2`` is symmetric and ``numpy.linalg.eigh`` gives real negative eigenvalues
and orthonormal eigenvectors even when eigenvalues repeat (identical sub-tissues). Every amount is
then ``Σ_m c_m exp(λ_m t)`` exactly; the bladder and the voided urine follow by integrating
those exponentials in closed form.

References
----------
Jacquez JA. Compartmental Analysis in Biology and Medicine, 3rd ed. BioMedware, 1996
(ch. 4-5: linear compartmental systems, symmetrisable mammillary systems).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CompartmentSolution", "ExpSum", "solve_compartments"]


@dataclass(frozen=True, eq=False)
class ExpSum:
    """A function ``f(t) = Σ_k coef_k · t^power_k · exp(rate_k · t)`` of time in hours.

    Attributes
    ----------
    coef : (K,) ndarray
        Coefficients (fraction of injected activity, times h^-power).
    rate : (K,) ndarray
        Exponents, 1/h, all ≤ 0 (0 only for constant terms).
    power : (K,) ndarray of int
        0 or 1.
    """

    coef: np.ndarray
    rate: np.ndarray
    power: np.ndarray

    def __call__(self, t_h: np.ndarray, decay_per_h: float = 0.0) -> np.ndarray:
        """Evaluate at times ``t_h`` (any shape), multiplied by ``exp(-decay_per_h · t)``."""
        t = np.asarray(t_h, dtype=float)[..., None]
        terms = self.coef * np.exp((self.rate - decay_per_h) * t)
        terms = np.where(self.power == 1, terms * t, terms)
        return terms.sum(axis=-1)

    def integral(self, decay_per_h: float = 0.0) -> float:
        """∫₀^∞ f(t)·exp(-decay_per_h·t) dt in hours (``inf`` if it diverges).

        Uses ∫₀^∞ t^p e^{-a t} dt = p!/a^(p+1).
        """
        a = decay_per_h - self.rate
        if np.any((a <= 0) & (self.coef != 0)):
            return math.inf
        return float(np.sum(self.coef / a ** (self.power + 1)))  # p! = 1 for p in {0, 1}

    def __add__(self, other: ExpSum) -> ExpSum:
        return ExpSum(np.concatenate([self.coef, other.coef]),
                      np.concatenate([self.rate, other.rate]),
                      np.concatenate([self.power, other.power]))

    def scaled(self, factor: float) -> ExpSum:
        """``factor · f``."""
        return ExpSum(self.coef * factor, self.rate, self.power)

    @classmethod
    def zero(cls) -> ExpSum:
        """The zero function."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=int))


@dataclass(frozen=True, eq=False)
class CompartmentSolution:
    """Closed-form amounts of every compartment (fractions of the injected activity, no decay).

    Attributes
    ----------
    rates : (n,) ndarray
        Eigenvalues λ_m (1/h, < 0) of the blood + tissue block.
    coef : (n, n) ndarray
        ``coef[i, m]``: amount of compartment ``i`` (0 = blood, then F_0, B_0, F_1, B_1, ...) is
        ``Σ_m coef[i, m] exp(λ_m t)``.
    bladder, voided : ExpSum
        Urinary bladder content and urine voided out of the body.
    matrix : (n + 2, n + 2) ndarray
        The full rate matrix (blood, tissues, bladder, voided) for numerical cross-checks.
    """

    rates: np.ndarray
    coef: np.ndarray
    bladder: ExpSum
    voided: ExpSum
    matrix: np.ndarray

    def compartment(self, index: int | np.ndarray, weights: np.ndarray | None = None) -> ExpSum:
        """Sum of compartments ``index`` (weighted) as an :class:`ExpSum`."""
        idx = np.atleast_1d(index)
        w = np.ones(idx.size) if weights is None else np.asarray(weights, dtype=float)
        c = (w[:, None] * self.coef[idx]).sum(axis=0)
        return ExpSum(c, self.rates.copy(), np.zeros(c.size, dtype=int))


def solve_compartments(k_in: np.ndarray, k2: np.ndarray, k3: np.ndarray, k4: np.ndarray,
                       k_renal: float, k_void: float) -> CompartmentSolution:
    """Solve the system of the module docstring for a unit bolus in blood at t = 0.

    Parameters
    ----------
    k_in, k2, k3, k4 : (n_t,) ndarray
        Rate constants (1/h) of the ``n_t`` tissue pairs; all > 0.
    k_renal : float
        Blood → bladder rate constant (1/h), > 0.
    k_void : float
        Bladder → voided rate constant (1/h), > 0.

    Returns
    -------
    CompartmentSolution
    """
    k_in, k2, k3, k4 = (np.asarray(a, dtype=float) for a in (k_in, k2, k3, k4))
    nt = k_in.size
    n = 1 + 2 * nt
    f_idx = 1 + 2 * np.arange(nt)
    b_idx = f_idx + 1
    m = np.zeros((n, n))
    m[0, 0] = -(k_in.sum() + k_renal)
    m[f_idx, 0] = k_in
    m[0, f_idx] = k2
    m[f_idx, f_idx] = -(k2 + k3)
    m[b_idx, f_idx] = k3
    m[f_idx, b_idx] = k4
    m[b_idx, b_idx] = -k4
    pi = np.ones(n)
    pi[f_idx] = k_in / k2
    pi[b_idx] = pi[f_idx] * k3 / k4
    sq = np.sqrt(pi)
    s = m * sq[None, :] / sq[:, None]
    s = 0.5 * (s + s.T)  # symmetric up to rounding
    lam, q = np.linalg.eigh(s)
    # x(t) = Π^1/2 Q e^{Λt} Q^T Π^-1/2 e_0, and Π^-1/2 e_0 = e_0 since π_b = 1.
    coef = sq[:, None] * q * q[0][None, :]

    # Bladder: U(t) = k_renal Σ_m c_bm (e^{λ_m t} - e^{-kv t}) / (λ_m + kv), with the limit
    # k_renal c_bm t e^{-kv t} when λ_m = -kv.
    cb = coef[0] * k_renal
    d = lam + k_void
    near = np.abs(d) < 1e-7 * k_void
    safe = np.where(near, 1.0, d)
    u_coef = [np.where(near, 0.0, cb / safe), np.where(near, 0.0, -cb / safe), cb[near]]
    u_rate = [lam, np.full(n, -k_void), np.full(int(near.sum()), -k_void)]
    u_pow = [np.zeros(n, int), np.zeros(n, int), np.ones(int(near.sum()), int)]
    bladder = ExpSum(np.concatenate(u_coef), np.concatenate(u_rate), np.concatenate(u_pow))

    # Voided: X(t) = k_void ∫₀^t U. ∫₀^t a e^{r s} ds = a (e^{rt} - 1)/r;
    # ∫₀^t a s e^{r s} ds = a [e^{rt}(r t - 1) + 1] / r².
    x_coef, x_rate, x_pow = [], [], []
    const = 0.0
    for a, r, p in zip(bladder.coef, bladder.rate, bladder.power, strict=True):
        a = a * k_void
        if p == 0:
            x_coef.append(a / r)
            x_rate.append(r)
            x_pow.append(0)
            const -= a / r
        else:
            x_coef += [a / r, -a / r**2]
            x_rate += [r, r]
            x_pow += [1, 0]
            const += a / r**2
    x_coef.append(const)
    x_rate.append(0.0)
    x_pow.append(0)
    voided = ExpSum(np.array(x_coef), np.array(x_rate), np.array(x_pow, dtype=int))

    full = np.zeros((n + 2, n + 2))
    full[:n, :n] = m
    full[n, 0] = k_renal
    full[n, n] = -k_void
    full[n + 1, n] = k_void
    return CompartmentSolution(lam, coef, bladder, voided, full)
