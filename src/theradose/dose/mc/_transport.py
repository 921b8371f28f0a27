"""Photon transport in voxelised phantoms: Woodcock tracking with an expected-value kerma tally.

Algorithm (one *history* = one emitted photon; all photons of a chunk are transported together,
vectorised over the photon arrays, which are compacted as photons die):

1. **Source.** A voxel is drawn with probability proportional to ``source`` (inverse CDF of the
   cumulative weights), the point uniformly inside it; the energy is drawn from the photon lines
   of the :class:`~theradose.dose.mc._emission.EmissionSpectrum` in proportion to their yields,
   the direction isotropically. Each photon carries the weight ``photons_per_decay / N`` so that
   tallies are per decay.
2. **Woodcock (delta) tracking.** The free path is drawn with the majorant
   μ*(E) = max over the phantom of (μ/ρ)_medium(E)·ρ, so no voxel boundary is ever computed;
   at each tentative collision the photon interacts for real with probability μ(E, voxel)/μ*(E)
   and otherwise continues unchanged (a virtual collision).
3. **Interactions** (real collisions), from the partial cross-sections of the voxel's medium
   (:func:`theradose.dose._photon_physics.photon_cross_sections`, cm²/g × density):
   photoelectric (photon absorbed), Compton (Klein–Nishina by Kahn's method × incoherent
   scattering function S(x)/Z, :func:`~theradose.dose._photon_physics.sample_compton`), Rayleigh
   (form factor, :func:`~theradose.dose._photon_physics.sample_rayleigh`), pair production
   (two 511 keV photons emitted back to back, isotropically). Photons leaving the grid are lost
   (``escaped_kev``); photons below ``energy_cutoff_kev`` deposit their energy where they are.
4. **Scoring: expected-value kerma estimator.** At *every* tentative collision (real or
   virtual) the photon scores ``w·E·μ_en(E, voxel)/μ*(E)`` in its voxel. Tentative collisions
   form a Poisson process of rate μ* along the track, so the expected score is
   ``w·∫ E μ_en ds``, the track-length estimator of collision kerma (energy fluence × μ_en)
   without any voxel-boundary crossing. Secondary electrons are not transported: their energy
   is taken as absorbed in the voxel of the interaction (kerma ≈ dose, valid when the voxel
   is larger than the secondary-electron ranges: < 0.5 mm below 200 keV in water).
   An analog tally (energy transferred at real collisions) is kept too for the bookkeeping
   ``absorbed_analog_kev + escaped_kev = emitted_kev`` (exact per history).
5. **Statistics.** Batch method: the histories are split into ``n_batches`` equal independent
   batches, the σ of the mean per voxel is ``std(batch values, ddof=1)/sqrt(n_batches)``. With
   ``target_rel_sigma`` further batches of the same size are run until the relative σ of the
   energy in ``target_mask`` reaches the target or ``max_histories`` is reached.

Cross-sections are tabulated once per run on a common log-energy grid (2048 nodes between the
cut-off and the highest line) for all media (rows: photoelectric, incoherent, coherent, pair,
μ_en), and looked up by index arithmetic with linear interpolation in ln E.

References
----------
Woodcock E, Murphy T, Hemmings P, Longworth S. Techniques used in the GEM code for Monte Carlo
neutronics calculations in reactors and other systems of complex geometry. ANL-7050, Argonne
National Laboratory; 1965.
Williamson JF. Monte Carlo evaluation of kerma at a point for photon transport problems. Med
Phys 1987;14(4):567-576. doi:10.1118/1.596069
Badal A, Badano A. Accelerating Monte Carlo simulations of photon transport in a voxelized
geometry using a massively parallel graphics processing unit. Med Phys 2009;36(11):4878-4880.
doi:10.1118/1.3231824
Rehfeld NS, Stute S, Apostolakis J, Soret M, Buvat I. Introducing improved voxel navigation and
fictitious interaction tracking in GATE for enhanced efficiency. Phys Med Biol 2009;54(7):
2163-2178. doi:10.1088/0031-9155/54/7/022
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theradose.dose._photon_physics import (
    E_MAX_KEV,
    E_MIN_KEV,
    ELECTRON_MASS_KEV,
    PhotonCrossSections,
    photon_cross_sections,
    rotate_directions,
    sample_compton,
    sample_isotropic,
    sample_rayleigh,
)
from theradose.dose.mc._emission import EmissionSpectrum
from theradose.dose.mc._phantom import VoxelPhantom
from theradose.errors import GeometryMismatchError, InputError

__all__ = ["BACKENDS", "TransportResult", "TransportTables", "simulate_photons"]

#: Implementations of :func:`simulate_photons`.
BACKENDS: tuple[str, ...] = ("numpy", "torch")

_GRID_POINTS = 2048
_PAIR_THRESHOLD_KEV = 2.0 * ELECTRON_MASS_KEV


@dataclass(frozen=True, eq=False)
class TransportResult:
    """Photon energy deposited per voxel per source decay, with batch statistics.

    Attributes
    ----------
    energy_kev : (Z, Y, X) float64 ndarray
        Mean photon energy deposited (collision kerma) in each voxel per decay of the source,
        keV; the decays are distributed over the voxels in proportion to ``source``.
    sigma_kev : (Z, Y, X) float64 ndarray
        Standard uncertainty of ``energy_kev`` (batch method: σ of the mean of the batches).
    emitted_kev : float
        Photon energy emitted per decay, keV (Σ yield × E of the spectrum).
    escaped_kev : float
        Photon energy per decay leaving the grid (estimate), keV.
    absorbed_analog_kev : float
        Energy per decay transferred at real collisions (photo-absorption, Compton electrons,
        pair kinetic energy, cut-off), keV: ``absorbed_analog_kev + escaped_kev =
        emitted_kev`` for every history. ``energy_kev.sum()`` estimates the same minus the
        radiative losses of the secondary electrons and the escaping fluorescence
        (μ_en < μ_tr), < 0.5 % for tissue below 1 MeV.
    emitted_sampled_kev : float
        Photon energy per decay of the photons actually drawn (``emitted_kev`` up to sampling
        noise): ``absorbed_analog_kev + escaped_kev = emitted_sampled_kev`` to rounding.
    n_histories : int
        Photons simulated (one history = one emitted photon; a decay emits
        ``spectrum.photons_per_decay`` of them on average).
    n_batches : int
        Batches run.
    batch_voi_kev : (n_batches,) ndarray
        Energy per decay deposited in ``target_mask`` by each batch (empty without a mask).
    voi_rel_sigma : float
        Relative σ of the target VOI energy (NaN without a mask).
    elapsed_s : float
        Wall time of the transport, s.
    seed : int
        Seed of the run.
    backend : str
        ``"numpy"``, or ``"torch:<device>"``.
    provenance : mapping
        Method, estimator, cross-section sources per medium, cut-off, spectrum provenance.
    batch_label_kev : (n_batches, L) ndarray
        With ``score_labels``: energy per decay deposited in each label value 0..L-1 by each
        batch (for exact σ of VOI means: voxel tallies of one batch are correlated).
    """

    energy_kev: np.ndarray
    sigma_kev: np.ndarray
    emitted_kev: float
    escaped_kev: float
    absorbed_analog_kev: float
    emitted_sampled_kev: float
    n_histories: int
    n_batches: int
    batch_voi_kev: np.ndarray
    voi_rel_sigma: float
    elapsed_s: float
    seed: int
    backend: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    batch_label_kev: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def histories_per_s(self) -> float:
        """Simulated photons per second of wall time."""
        return self.n_histories / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def relative_sigma(self) -> np.ndarray:
        """σ / mean per voxel (NaN where nothing was deposited)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.energy_kev > 0, self.sigma_kev / self.energy_kev, np.nan)


# ---------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class TransportTables:
    """Everything a backend needs, as plain arrays (internal; shared by numpy and torch).

    Attributes
    ----------
    shape : (Z, Y, X)
    spacing_mm : (3,) ndarray, (x, y, z) voxel size
    material : (V,) int ndarray, medium index per flat voxel
    density : (V,) float ndarray, g/cm³
    ln_e0, d_ln_e : float
        Log-energy grid: node k at exp(ln_e0 + k·d_ln_e).
    xs_mm : (M, 5, G) ndarray
        Per medium, rows photoelectric, incoherent, coherent, pair, μ_en, as μ/ρ × 0.1
        (1/mm per g/cm³).
    majorant_mm : (G,) ndarray
        μ* per energy node, 1/mm.
    cdf : (V,) ndarray
        Cumulative source weights (last = total).
    line_energy_kev, line_cdf : (L,) ndarray
        Photon lines and their cumulative probabilities.
    weight : float
        Photons per decay (each history carries weight / N).
    cross_sections : tuple of PhotonCrossSections
        Per medium, for the angular samplers.
    cutoff_kev : float
    """

    shape: tuple[int, int, int]
    spacing_mm: np.ndarray
    material: np.ndarray
    density: np.ndarray
    ln_e0: float
    d_ln_e: float
    xs_mm: np.ndarray
    majorant_mm: np.ndarray
    cdf: np.ndarray
    line_energy_kev: np.ndarray
    line_cdf: np.ndarray
    weight: float
    cross_sections: tuple[PhotonCrossSections, ...]
    cutoff_kev: float

    @property
    def n_voxels(self) -> int:
        """Number of voxels."""
        z, y, x = self.shape
        return z * y * x


def build_tables(phantom: VoxelPhantom, source: np.ndarray, spectrum: EmissionSpectrum,
                 cutoff_kev: float, max_step_mm: float | None = None) -> TransportTables:
    """Tabulate cross-sections and the source for a run (internal)."""
    e_max = float(np.max(spectrum.photon_energy_kev))
    lo = math.log(cutoff_kev)
    hi = math.log(min(max(e_max * 1.01, cutoff_kev * 2.0), E_MAX_KEV))
    grid = np.exp(np.linspace(lo, hi, _GRID_POINTS))
    grid[-1] = min(grid[-1], E_MAX_KEV)
    xs = tuple(photon_cross_sections(m) for m in phantom.media)
    tab = np.empty((len(xs), 5, _GRID_POINTS))
    for k, x in enumerate(xs):
        tab[k, :4] = x.partials(grid)
        tab[k, 4] = x.mu_en_cm2_g(grid)
    tab *= 0.1  # cm²/g → 1/mm per g/cm³
    mat = phantom.material.ravel().astype(np.int64)
    rho = phantom.density.ravel()
    rho_max = np.zeros(len(xs))
    np.maximum.at(rho_max, mat, rho)
    mu_tot = tab[:, :4].sum(axis=1)  # (M, G)
    majorant = np.max(mu_tot * rho_max[:, None], axis=0) * (1.0 + 1e-9)
    # a grid without matter: a small majorant lets photons fly out in one step
    majorant = np.maximum(majorant, 1e-12)
    if max_step_mm is not None:  # more (virtual) collisions: more scores, less variance
        majorant = np.maximum(majorant, 1.0 / max_step_mm)
    cdf = np.cumsum(np.asarray(source, dtype=np.float64).ravel())
    y = spectrum.photon_yield
    return TransportTables(
        shape=phantom.shape, spacing_mm=np.asarray(phantom.geometry.spacing_mm, float),
        material=mat, density=rho, ln_e0=lo, d_ln_e=(hi - lo) / (_GRID_POINTS - 1),
        xs_mm=tab, majorant_mm=majorant, cdf=cdf,
        line_energy_kev=np.asarray(spectrum.photon_energy_kev, float),
        line_cdf=np.cumsum(y) / y.sum(), weight=float(y.sum()), cross_sections=xs,
        cutoff_kev=float(cutoff_kev))


# ---------------------------------------------------------------------------- numpy backend
def _interp_index(t: TransportTables, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = (np.log(e) - t.ln_e0) / t.d_ln_e
    i = np.clip(f.astype(np.int64), 0, _GRID_POINTS - 2)
    return i, f - i


def run_chunk_numpy(t: TransportTables, n: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, float, float, float]:
    """Transport ``n`` photons from the source (internal).

    Returns the kerma tally per flat voxel, the escaped, analog absorbed and emitted energy, summed
    over the ``n`` photons, each weighted by ``t.weight`` (photons per decay), keV.
    """
    nz, ny, nx = t.shape
    size = t.spacing_mm * np.array([nx, ny, nz], float)
    n_vox = t.n_voxels
    # --- source
    vox = np.searchsorted(t.cdf, rng.random(n) * t.cdf[-1], side="right")
    vox = np.minimum(vox, n_vox - 1)
    iz, rem = np.divmod(vox, ny * nx)
    iy, ix = np.divmod(rem, nx)
    pos = (np.stack([ix, iy, iz], axis=1) + rng.random((n, 3))) * t.spacing_mm
    line = np.minimum(np.searchsorted(t.line_cdf, rng.random(n), side="right"),
                      t.line_energy_kev.size - 1)
    e = t.line_energy_kev[line].copy()
    d = sample_isotropic(n, rng)
    w = t.weight
    emitted = float(e.sum()) * w
    idx_chunks: list[np.ndarray] = []
    val_chunks: list[np.ndarray] = []
    escaped = 0.0
    absorbed = 0.0
    # photons born below the cut-off deposit in their voxel
    low = e < t.cutoff_kev
    if np.any(low):
        idx_chunks.append(vox[low])
        val_chunks.append(e[low] * w)
        absorbed += float(e[low].sum()) * w
        keep = ~low
        pos, e, d = pos[keep], e[keep], d[keep]
    xs_flat = t.xs_mm.reshape(-1)
    g = _GRID_POINTS
    n_media = t.xs_mm.shape[0]
    while e.size:
        i, f = _interp_index(t, e)
        maj = t.majorant_mm[i] * (1.0 - f) + t.majorant_mm[i + 1] * f
        s = -np.log1p(-rng.random(e.size)) / maj
        pos += d * s[:, None]
        inside = np.all((pos >= 0.0) & (pos < size), axis=1)
        if not np.all(inside):
            escaped += float(e[~inside].sum()) * w
            pos, e, d = pos[inside], e[inside], d[inside]
            i, f, maj = i[inside], f[inside], maj[inside]
            if not e.size:
                break
        ijk = (pos / t.spacing_mm).astype(np.int64)
        np.minimum(ijk, np.array([nx - 1, ny - 1, nz - 1]), out=ijk)
        flat = (ijk[:, 2] * ny + ijk[:, 1]) * nx + ijk[:, 0]
        m = t.material[flat]
        rho = t.density[flat]
        base = (m * 5) * g + i  # row 0 of medium m at node i
        def row(r: int, base: np.ndarray = base, f: np.ndarray = f) -> np.ndarray:
            b = base + r * g
            return xs_flat[b] * (1.0 - f) + xs_flat[b + 1] * f
        mu_ph, mu_co, mu_ra, mu_pp, mu_en = (row(r) * rho for r in range(5))
        # expected-value kerma score at every tentative collision
        idx_chunks.append(flat)
        val_chunks.append(e * mu_en / maj * w)
        # real or virtual?
        u = rng.random(e.size) * maj
        c1 = mu_ph
        c2 = c1 + mu_co
        c3 = c2 + mu_ra
        c4 = c3 + mu_pp
        photo = u < c1
        compton = (u >= c1) & (u < c2)
        rayl = (u >= c2) & (u < c3)
        pair = (u >= c3) & (u < c4)
        alive = ~photo
        absorbed += float(e[photo].sum()) * w
        if np.any(compton):
            ci = np.flatnonzero(compton)
            e_out = np.empty(ci.size)
            cos = np.empty(ci.size)
            mc = m[ci]
            for k in range(n_media):
                sel = mc == k if n_media > 1 else slice(None)
                if n_media > 1 and not np.any(sel):
                    continue
                e_out[sel], cos[sel] = sample_compton(e[ci][sel], rng,
                                                      cross_sections=t.cross_sections[k])
            absorbed += float((e[ci] - e_out).sum()) * w
            e[ci] = e_out
            d[ci] = rotate_directions(d[ci], cos, rng)
        if np.any(rayl):
            ri = np.flatnonzero(rayl)
            cos = np.empty(ri.size)
            mr = m[ri]
            for k in range(n_media):
                sel = mr == k if n_media > 1 else slice(None)
                if n_media > 1 and not np.any(sel):
                    continue
                cos[sel] = sample_rayleigh(e[ri][sel], rng, t.cross_sections[k])
            d[ri] = rotate_directions(d[ri], cos, rng)
        extra_pos = extra_d = None
        if np.any(pair):
            pi = np.flatnonzero(pair)
            absorbed += float((e[pi] - _PAIR_THRESHOLD_KEV).sum()) * w
            e[pi] = ELECTRON_MASS_KEV
            d[pi] = sample_isotropic(pi.size, rng)
            extra_pos, extra_d = pos[pi].copy(), -d[pi]
        cut = alive & (e < t.cutoff_kev)
        if np.any(cut):
            idx_chunks.append(flat[cut])
            val_chunks.append(e[cut] * w)
            absorbed += float(e[cut].sum()) * w
            alive &= ~cut
        pos, e, d = pos[alive], e[alive], d[alive]
        if extra_pos is not None:
            pos = np.concatenate([pos, extra_pos])
            d = np.concatenate([d, extra_d])
            e = np.concatenate([e, np.full(extra_pos.shape[0], ELECTRON_MASS_KEV)])
    if idx_chunks:
        tally = np.bincount(np.concatenate(idx_chunks), weights=np.concatenate(val_chunks),
                            minlength=n_vox)
    else:
        tally = np.zeros(n_vox)
    return tally, escaped, absorbed, emitted


# ---------------------------------------------------------------------------- driver
def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"expected an integer >= {minimum}, got {value!r}", field=name)
    return int(value)


def _validate(phantom: VoxelPhantom, source: np.ndarray, spectrum: EmissionSpectrum,
              n_histories: int, n_batches: int, backend: str, target_mask: np.ndarray | None,
              target_rel_sigma: float | None, max_histories: int | None,
              energy_cutoff_kev: float, batch_size: int
              ) -> tuple[np.ndarray, np.ndarray | None, int]:
    if not isinstance(phantom, VoxelPhantom):
        raise InputError(f"expected a VoxelPhantom, got {type(phantom).__name__}",
                         field="phantom")
    if not isinstance(spectrum, EmissionSpectrum):
        raise InputError(f"expected an EmissionSpectrum, got {type(spectrum).__name__}",
                         field="spectrum")
    src = np.asarray(source)
    if src.shape != phantom.shape:
        raise GeometryMismatchError(f"source has shape {src.shape}, the phantom "
                                    f"{phantom.shape}", field="source")
    if not np.issubdtype(src.dtype, np.number):
        raise InputError(f"source must be numeric, got dtype {src.dtype}", field="source")
    if not np.all(np.isfinite(src)) or np.any(src < 0):
        raise InputError("source weights must be finite and >= 0", field="source")
    if not np.any(src > 0):
        raise InputError("source is zero everywhere; nothing to simulate", field="source")
    n_batches = _check_int(n_batches, "n_batches", 2)
    _check_int(n_histories, "n_histories", n_batches)
    _check_int(batch_size, "batch_size", 1)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; accepted: {list(BACKENDS)}",
                         field="backend")
    if (isinstance(energy_cutoff_kev, bool) or not isinstance(energy_cutoff_kev, (int, float))
            or not E_MIN_KEV <= energy_cutoff_kev < 100.0):
        raise InputError(f"energy_cutoff_kev must lie in [{E_MIN_KEV:g}, 100) keV, got "
                         f"{energy_cutoff_kev!r}", field="energy_cutoff_kev")
    if spectrum.photon_energy_kev.size and float(np.max(spectrum.photon_energy_kev)) > E_MAX_KEV:
        raise InputError(f"photon lines above {E_MAX_KEV:g} keV are not tabulated, got "
                         f"{float(np.max(spectrum.photon_energy_kev)):g} keV",
                         field="spectrum.photon_energy_kev")
    mask = None
    if target_mask is not None:
        mask = np.asarray(target_mask)
        if mask.shape != phantom.shape:
            raise GeometryMismatchError(f"target_mask has shape {mask.shape}, the phantom "
                                        f"{phantom.shape}", field="target_mask")
        if mask.dtype != bool:
            raise InputError(f"target_mask must be boolean, got dtype {mask.dtype}",
                             field="target_mask")
        if not mask.any():
            raise InputError("target_mask selects no voxel", field="target_mask")
    if target_rel_sigma is not None:
        if mask is None:
            raise InputError("target_rel_sigma needs a target_mask", field="target_rel_sigma")
        if (isinstance(target_rel_sigma, bool) or not isinstance(target_rel_sigma, (int, float))
                or not 0 < target_rel_sigma < 1):
            raise InputError(f"target_rel_sigma must lie in (0, 1), got {target_rel_sigma!r}",
                             field="target_rel_sigma")
    if max_histories is None:
        max_hist = 100 * int(n_histories)
    else:
        max_hist = _check_int(max_histories, "max_histories", int(n_histories))
    return src, mask, max_hist


def _batch_sigma(s1: np.ndarray, s2: np.ndarray, nb: int) -> np.ndarray:
    mean = s1 / nb
    var = np.maximum(s2 / nb - mean * mean, 0.0) * nb / (nb - 1)
    return np.sqrt(var / nb)


def _rel_sigma(values: list[float]) -> float:
    v = np.asarray(values)
    mean = float(v.mean())
    if mean <= 0:
        return float("inf")
    return float(v.std(ddof=1) / math.sqrt(v.size) / mean)


def simulate_photons(phantom: VoxelPhantom, source: np.ndarray, spectrum: EmissionSpectrum, *,
                     n_histories: int, seed: int = 0, n_batches: int = 10,
                     backend: str = "numpy", target_mask: np.ndarray | None = None,
                     target_rel_sigma: float | None = None,
                     max_histories: int | None = None,
                     energy_cutoff_kev: float = 1.0,
                     batch_size: int = 200_000,
                     score_labels: np.ndarray | None = None,
                     max_step_mm: float | None = None) -> TransportResult:
    """Transport the photons of ``spectrum`` emitted by ``source`` through ``phantom``.

    See the module docstring for the method (Woodcock tracking, expected-value kerma estimator,
    batch statistics).

    Parameters
    ----------
    phantom : VoxelPhantom
        Media and densities.
    source : (Z, Y, X) ndarray
        Decays (or TIA, any unit) per voxel, ≥ 0; only the relative weights matter.
    spectrum : EmissionSpectrum
        Photon lines per decay (:func:`theradose.dose.mc._emission.emission_spectrum`).
    n_histories : int
        Photons to simulate, split into ``n_batches`` equal batches.
    seed : int
        Seed of ``numpy.random.default_rng`` (torch: of its generator); the same seed and
        arguments give the same result.
    n_batches : int
        Independent batches (≥ 2) for the σ of the mean.
    backend : {"numpy", "torch"}
        Implementation (torch: CUDA when available, else CPU).
    target_mask : (Z, Y, X) bool ndarray, optional
        VOI whose deposited energy is monitored.
    target_rel_sigma : float, optional
        Stop when the relative σ of the VOI energy is at most this: after the first
        ``n_batches``, batches of ``n_histories // n_batches`` photons are added until then or
        until ``max_histories``.
    max_histories : int, optional
        Upper bound with ``target_rel_sigma`` (default 100 × ``n_histories``).
    energy_cutoff_kev : float
        Photons below this energy deposit it where they are (1 keV: the tables' lower end).
    batch_size : int
        Photons transported together (memory ~ 150 bytes each + the tally of their steps).
    score_labels : (Z, Y, X) non-negative integer ndarray, optional
        Label map whose per-label energy is recorded per batch (``batch_label_kev``).
    max_step_mm : float, optional
        Raise the majorant to at least 1/``max_step_mm`` so that tentative collisions (and
        kerma scores) are at most this far apart on average: less variance per voxel where
        photons are sparse, more steps per photon (None: the physical majorant only).

    Returns
    -------
    TransportResult
        keV per voxel per decay, σ, escaped energy, histories, timing.

    Raises
    ------
    InputError
        Bad shapes (GeometryMismatchError), a negative, non-finite or all-zero source,
        unknown backend, bad counts, target options, or torch missing for ``backend="torch"``.

    Examples
    --------
    >>> from theradose.volume import Geometry
    >>> from theradose.dose.mc._emission import emission_spectrum
    >>> p = VoxelPhantom.uniform(Geometry((10, 10, 10), (5.0, 5.0, 5.0)), "water")
    >>> src = np.zeros(p.shape); src[5, 5, 5] = 1.0
    >>> r = simulate_photons(p, src, emission_spectrum("Lu-177"), n_histories=2000)
    >>> bool(abs(r.absorbed_analog_kev + r.escaped_kev - r.emitted_sampled_kev) < 1e-9)
    True
    """
    src, mask, max_hist = _validate(phantom, source, spectrum, n_histories, n_batches, backend,
                                    target_mask, target_rel_sigma, max_histories,
                                    energy_cutoff_kev, batch_size)
    emitted = spectrum.photon_kev
    shape = phantom.shape
    if spectrum.photon_energy_kev.size == 0 or spectrum.photons_per_decay <= 0:
        z = np.zeros(shape)
        return TransportResult(z, z.copy(), 0.0, 0.0, 0.0, 0.0, 0, 0, np.zeros(0),
                               float("nan"), 0.0, int(seed), backend,
                               {"method": "no photon lines: nothing transported"})
    t0 = time.perf_counter()
    if max_step_mm is not None and (isinstance(max_step_mm, bool)
                                    or not isinstance(max_step_mm, (int, float))
                                    or not max_step_mm > 0):
        raise InputError(f"max_step_mm must be a number > 0 mm, got {max_step_mm!r}",
                         field="max_step_mm")
    tables = build_tables(phantom, src, spectrum, float(energy_cutoff_kev),
                          None if max_step_mm is None else float(max_step_mm))
    per_batch = int(n_histories) // n_batches
    if backend == "torch":
        from theradose.dose.mc._torch_backend import TorchRunner

        runner: Any = TorchRunner(tables, seed=int(seed))
        backend_name = f"torch:{runner.device}"
    else:
        runner = _NumpyRunner(tables, seed=int(seed))
        backend_name = "numpy"
    n_vox = tables.n_voxels
    s1 = np.zeros(n_vox)
    s2 = np.zeros(n_vox)
    esc = absd = emit_s = 0.0
    voi: list[float] = []
    flat_mask = None if mask is None else mask.ravel()
    lab = None
    if score_labels is not None:
        lab = np.asarray(score_labels)
        if lab.shape != shape:
            raise GeometryMismatchError(f"score_labels has shape {lab.shape}, the phantom "
                                        f"{shape}", field="score_labels")
        if not np.issubdtype(lab.dtype, np.integer) or (lab.size and lab.min() < 0):
            raise InputError("score_labels must hold non-negative integers",
                             field="score_labels")
        lab = lab.ravel().astype(np.int64)
    n_lab = 0 if lab is None else int(lab.max()) + 1
    per_label: list[np.ndarray] = []
    nb = 0
    while True:
        done = 0
        tally = np.zeros(n_vox)
        b_esc = b_abs = b_emit = 0.0
        while done < per_batch:
            n = min(int(batch_size), per_batch - done)
            ta, e_, a_, em_ = runner.run(n)
            tally += ta
            b_esc += e_
            b_abs += a_
            b_emit += em_
            done += n
        tally /= per_batch
        s1 += tally
        s2 += tally * tally
        esc += b_esc / per_batch
        absd += b_abs / per_batch
        emit_s += b_emit / per_batch
        nb += 1
        if flat_mask is not None:
            voi.append(float(tally[flat_mask].sum()))
        if lab is not None:
            per_label.append(np.bincount(lab, weights=tally, minlength=n_lab))
        if nb < n_batches:
            continue
        if target_rel_sigma is None or _rel_sigma(voi) <= target_rel_sigma:
            break
        if (nb + 1) * per_batch > max_hist:
            break
    elapsed = time.perf_counter() - t0
    mean = (s1 / nb).reshape(shape)
    sigma = _batch_sigma(s1, s2, nb).reshape(shape)
    prov = {
        "method": "photon Monte Carlo: Woodcock (delta) tracking, expected-value collision-kerma "
                  "estimator E*mu_en/mu_majorant at every tentative collision; secondary "
                  "electrons deposited at the interaction voxel (kerma = dose)",
        "interactions": "photoelectric, Compton (Klein-Nishina x S(x)/Z, Kahn), Rayleigh "
                        "(form factor), pair (two 511 keV photons)",
        "statistics": f"batch method, {nb} batches of {per_batch} photons",
        "cross_sections": {x.medium.name: x.source for x in tables.cross_sections},
        "media": list(phantom.media), "energy_cutoff_kev": float(energy_cutoff_kev),
        "max_step_mm": max_step_mm,
        "seed": int(seed), "backend": backend_name, "n_histories": nb * per_batch,
        "spectrum": {"nuclide": spectrum.nuclide, "chain": spectrum.chain,
                     "photon_lines": int(spectrum.photon_energy_kev.size),
                     "photons_per_decay": spectrum.photons_per_decay,
                     **dict(spectrum.provenance)},
    }
    return TransportResult(
        energy_kev=mean, sigma_kev=sigma, emitted_kev=emitted, escaped_kev=esc / nb,
        absorbed_analog_kev=absd / nb, emitted_sampled_kev=emit_s / nb,
        n_histories=nb * per_batch, n_batches=nb,
        batch_voi_kev=np.asarray(voi, float),
        voi_rel_sigma=_rel_sigma(voi) if voi else float("nan"), elapsed_s=elapsed,
        seed=int(seed), backend=backend_name, provenance=prov,
        batch_label_kev=(np.asarray(per_label) if per_label else np.zeros((0, 0))))


class _NumpyRunner:
    """Chunks of photons on the CPU with numpy (one Generator for the whole run)."""

    def __init__(self, tables: TransportTables, *, seed: int) -> None:
        self.tables = tables
        self.rng = np.random.default_rng(seed)

    def run(self, n: int) -> tuple[np.ndarray, float, float, float]:
        return run_chunk_numpy(self.tables, n, self.rng)
