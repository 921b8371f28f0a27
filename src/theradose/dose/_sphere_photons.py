"""Photon absorbed fractions of isolated spheres by direct Monte Carlo (sphere model helper).

Photons of a nuclide's ICRP-107 lines start uniformly in a homogeneous sphere (in vacuum),
isotropically, and are transported with the interaction data and samplers of
:mod:`theradose.dose._photon_physics` (photoelectric absorption, Compton with the incoherent
scattering function, Rayleigh, pair production with two 511 keV annihilation photons) until they
leave the sphere or fall below 1 keV. Energy given to electrons is deposited where they are set in
motion (kerma approximation: electron ranges are small against the photon mean free path).

Unlike the infinite-medium photon kernel, nothing comes back from outside the sphere, so this is
the absorbed fraction of an *isolated* sphere (as in the sphere models of Stabin & Konijnenberg
2000, OLINDA/EXM); the kernel method is an upper bound of it.

References
----------
Stabin MG, Konijnenberg MW. Re-evaluation of absorbed fractions for photons and electrons in
spheres of various sizes. J Nucl Med 2000;41(1):149-160. PMID 10647618.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from theradose.dose._media import Medium
from theradose.dose._photon_physics import (
    E_MAX_KEV,
    E_MIN_KEV,
    ELECTRON_MASS_KEV,
    photon_cross_sections,
    rotate_directions,
    sample_compton,
    sample_isotropic,
    sample_rayleigh,
)
from theradose.errors import InputError

__all__ = ["isolated_sphere_photon_fractions"]

_MAX_STEPS = 10_000


def _distance_to_surface(p: np.ndarray, d: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Distance along unit ``d`` from ``p`` (inside) to the sphere of radius ``radius``, mm."""
    b = np.einsum("ij,ij->i", p, d)
    c = np.einsum("ij,ij->i", p, p) - radius * radius
    return -b + np.sqrt(np.maximum(b * b - c, 0.0))


def isolated_sphere_photon_fractions(
    line_energies_kev: Sequence[float] | np.ndarray,
    line_yields: Sequence[float] | np.ndarray,
    radii_mm: Sequence[float] | np.ndarray,
    *,
    medium: Medium,
    density_g_cm3: float,
    n_photons: int = 20_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Photon absorbed fraction of isolated uniform spheres, by Monte Carlo.

    Parameters
    ----------
    line_energies_kev : (L,) array_like
        Photon line energies, keV (lines below 1 keV are absorbed locally; above 10 MeV
        rejected).
    line_yields : (L,) array_like
        Photons per decay of each line.
    radii_mm : (M,) array_like
        Sphere radii, mm (> 0).
    medium : Medium
        Composition (interaction data from :func:`photon_cross_sections`).
    density_g_cm3 : float
        Density of the spheres, g/cm³.
    n_photons : int
        Histories per sphere (lines sampled in proportion to energy × yield).
    seed : int
        Seed of the generator (same seed, same numbers).

    Returns
    -------
    phi : (M,) ndarray
        Absorbed over emitted photon energy, per sphere.
    sigma : (M,) ndarray
        Standard error of ``phi`` (history-by-history estimate).
    """
    e_lines = np.asarray(line_energies_kev, float)
    y_lines = np.asarray(line_yields, float)
    radii = np.asarray(radii_mm, float)
    if e_lines.size == 0 or e_lines.shape != y_lines.shape:
        raise InputError("expected photon lines with one yield each (field=line_energies_kev)")
    if np.any(e_lines > E_MAX_KEV):
        raise InputError(f"photon line above {E_MAX_KEV:g} keV (field=line_energies_kev): got "
                         f"{e_lines.max():g} keV")
    if (isinstance(n_photons, bool) or not isinstance(n_photons, (int, np.integer))
            or n_photons < 10):
        raise InputError(f"n_photons must be an integer >= 10 (field=n_photons): got "
                         f"{n_photons!r}")
    w = e_lines * y_lines
    local = e_lines < E_MIN_KEV
    w_local = float(w[local].sum())
    w_tr = w[~local]
    e_tr = e_lines[~local]
    if w_tr.sum() <= 0:
        return np.ones_like(radii), np.zeros_like(radii)
    frac_tr = float(w_tr.sum()) / (w_tr.sum() + w_local)

    rng = np.random.default_rng(seed)
    xs = photon_cross_sections(medium)
    m, n = radii.size, int(n_photons)
    hist = np.arange(m * n)
    big_r = np.repeat(radii, n)
    e0 = e_tr[rng.choice(e_tr.size, size=m * n, p=w_tr / w_tr.sum())]
    dep = np.zeros(m * n)

    pos = sample_isotropic(m * n, rng) * (big_r * np.cbrt(rng.random(m * n)))[:, None]
    d = sample_isotropic(m * n, rng)
    e = e0.copy()
    rho_per_mm = density_g_cm3 * 0.1  # cm²/g -> 1/mm
    for _ in range(_MAX_STEPS):
        if e.size == 0:
            break
        part = xs.partials(e)
        mu = part.sum(axis=0) * rho_per_mm
        s = -np.log1p(-rng.random(e.size)) / mu
        s_out = _distance_to_surface(pos, d, big_r[hist])
        stay = s < s_out
        pos, d, e, hist, part, s = pos[stay], d[stay], e[stay], hist[stay], part[:, stay], s[stay]
        pos = pos + d * s[:, None]
        cum = np.cumsum(part, axis=0)
        u = rng.random(e.size) * cum[-1]
        kind = (u[None, :] >= cum[:-1]).sum(axis=0)  # 0 photo, 1 incoherent, 2 coherent, 3 pair

        # photoelectric: all energy absorbed here
        ph = kind == 0
        np.add.at(dep, hist[ph], e[ph])
        # incoherent
        ic = np.flatnonzero(kind == 1)
        if ic.size:
            e_out, cos = sample_compton(e[ic], rng, cross_sections=xs)
            np.add.at(dep, hist[ic], e[ic] - e_out)
            e[ic] = e_out
            d[ic] = rotate_directions(d[ic], cos, rng)
        # coherent
        co = np.flatnonzero(kind == 2)
        if co.size:
            d[co] = rotate_directions(d[co], sample_rayleigh(e[co], rng, xs), rng)
        # pair: kinetic energy local, two back-to-back 511 keV photons at the point
        pp = np.flatnonzero(kind == 3)
        new = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, int))
        if pp.size:
            np.add.at(dep, hist[pp], e[pp] - 2 * ELECTRON_MASS_KEV)
            da = sample_isotropic(pp.size, rng)
            new = (np.concatenate([pos[pp], pos[pp]]), np.concatenate([da, -da]),
                   np.full(2 * pp.size, ELECTRON_MASS_KEV), np.concatenate([hist[pp], hist[pp]]))
        alive = ~ph
        alive[pp] = False
        pos = np.concatenate([pos[alive], new[0]])
        d = np.concatenate([d[alive], new[1]])
        e = np.concatenate([e[alive], new[2]])
        hist = np.concatenate([hist[alive], new[3]])
        low = e < E_MIN_KEV
        np.add.at(dep, hist[low], e[low])
        pos, d, e, hist = pos[~low], d[~low], e[~low], hist[~low]
    else:  # pragma: no cover - photons leave or are absorbed long before
        raise RuntimeError("photon transport did not finish")

    ratio = (dep / e0).reshape(m, n)
    phi = ratio.mean(axis=1) * frac_tr + (1.0 - frac_tr)
    sigma = ratio.std(axis=1, ddof=1) / np.sqrt(n) * frac_tr
    return phi, sigma
