"""Voxel S-values: a radial dose point kernel integrated over the voxel geometry.

The voxel S-value of target voxel ``j`` is the mean absorbed dose in ``j`` per decay in the source
voxel ``0``, the source being uniform in voxel ``0`` (MIRD Pamphlet No. 17). With ``k(r)`` the
energy absorbed per decay and per unit volume at distance ``r`` from a point source (keV/mm³),
the energy absorbed in ``j`` is

    E_j = ∫∫ (1/V) 1_0(x) 1_j(y) k(|y - x|) dx dy = ∫ k(|u|) W_j(u) du,
    W_j(u) = Π_a Λ(u_a / h_a - j_a),   Λ(t) = max(0, 1 - |t|),

where ``u = y - x`` is the displacement and ``h`` the voxel size: the overlap of two boxes is a
product of hat functions. ``Σ_j W_j = 1`` (the hats are a partition of unity), so ``Σ_j E_j``
is exactly the energy the kernel absorbs: the method conserves energy by construction.

The integral is split smoothly at ``R1 = near_voxels · max(h)`` (cosine taper to ``R2 = R1 +
2·max(h)``):

* near field (``r < R2``, where the kernel is steep and singular): quasi-Monte-Carlo deposit
  sampling. Radius from :meth:`RadialKernel.sample_radii` (first Sobol coordinate), isotropic
  direction in the first octant (two coordinates); each deposit point is spread on the voxel grid
  with the weights ``W_j(u)`` (cloud-in-cell), which integrates the source position over the
  source voxel exactly instead of sampling it. Octant folding (8) and, for equal voxel sides, axis
  permutations (up to 48 images in all) reduce the variance further. σ is the spread of
  ``n_replicas`` independently scrambled Sobol sequences (standard error of their mean).
* far field (``r > R1``, where the kernel varies slowly on the voxel scale): deterministic
  tensor Gauss-Jacobi quadrature of ``k(|c_j + δ|)`` over the triangular density of ``δ``
  (the distribution of ``y - x`` for x, y uniform in two voxels), 3 nodes per half-axis.

S-values are ``E_j / m`` converted to mGy/(MBq·s), with ``m`` the voxel mass of the kernel's
medium. Energy absorbed beyond the kernel box is reported through
:attr:`VoxelKernel.energy_fraction` < 1.

References
----------
Bolch WE, Bouchet LG, Robertson JS, et al. MIRD Pamphlet No. 17: the dosimetry of nonuniform
activity distributions—radionuclide S values at the voxel level. J Nucl Med 1999;40(1):11S-36S.
Berger MJ. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
Owen AB. Scrambling Sobol' and Niederreiter-Xing points. J Complexity 1998;14:466-489.
doi:10.1006/jcom.1998.0487
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import roots_jacobi
from scipy.stats import qmc

from theradose.dose._media import check_density, get_medium
from theradose.dose._point_kernel import KEV_TO_J, RadialKernel
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.errors import InputError

__all__ = [
    "DEFAULT_RADIUS_MM",
    "VSV_ALGORITHM_VERSION",
    "check_options",
    "point_kernel",
    "voxel_s_values",
    "voxel_s_values_from_kernel",
]

#: Version of the integration algorithm; part of every cache key (bump on any change of numbers).
VSV_ALGORITHM_VERSION = "1"

#: Default kernel radius, mm: covers the electron range of every ICRP-107 nuclide in water
#: (< 25 mm) and photons to 10 cm; the photon energy absorbed beyond goes into
#: ``energy_fraction < 1``: in water 0.90 for Lu-177, 0.996 for Y-90, 0.60 for I-131 (364 keV).
DEFAULT_RADIUS_MM = 100.0

#: Largest kernel box accepted (voxels), to refuse radius/voxel combinations that need GBs.
MAX_KERNEL_VOXELS = 40_000_000

#: Voxel sides accepted, mm. Imaging voxels run from ~0.1 mm (preclinical micro-SPECT/CT) to
#: ~10 mm (clinical SPECT); 0.01 mm is finer than the alpha ranges (40-90 µm) the kernels
#: resolve, and at 100 mm the default 100 mm box is a single voxel: beyond these limits the
#: S-values are meaningless, not merely inaccurate.
VOXEL_MM_RANGE = (0.01, 100.0)

#: Most near-field quasi-Monte-Carlo points (2^26, 64 times the default 2^20): each replica's
#: points take ~100 bytes, so larger counts need many GB of memory for a σ already < 1e-4.
MAX_SAMPLES = 1 << 26

#: Largest integration seed: 32 bits, as ``simulate`` and the pipeline configuration take.
MAX_SEED = 2**32 - 1

#: Range given to alpha particles (and recoils) in water, mm: they are deposited uniformly within
#: this radius (5-9 MeV alphas have CSDA ranges of 40-90 µm in water, ICRU Report 49).
ALPHA_RANGE_WATER_MM = 0.1

#: mGy/(MBq·s) per (keV per decay per g): keV->J, g->kg (1e3), per MBq·s (1e6), Gy->mGy (1e3).
_S_PER_KEV_PER_G = KEV_TO_J * 1e12

_CLASSES = ("electron", "photon", "alpha")


# --------------------------------------------------------------------------- validation helpers
def _voxel_tuple(voxel_mm: float | Sequence[float]) -> tuple[float, float, float]:
    """``(x, y, z)`` voxel size in mm from a float (cubic) or three floats."""
    try:
        arr = np.atleast_1d(np.asarray(voxel_mm, dtype=float))
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    lo, hi = VOXEL_MM_RANGE
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"invalid voxel size: got {voxel_mm!r}, expected one positive number "
                         "(cubic) or three (x, y, z) in mm", field="voxel_mm")
    if np.any(arr < lo) or np.any(arr > hi):
        raise InputError(f"invalid voxel size: got {voxel_mm!r}, expected sides in "
                         f"[{lo:g}, {hi:g}] mm", field="voxel_mm")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _positive(value: Any, name: str, *, integer: bool = False) -> Any:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = (math.isfinite(float(value)) and value > 0
              and (not integer or float(value) == int(value)))
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise InputError(f"got {value!r}, expected {kind}", field=name)
    return int(value) if integer else float(value)


def _seed(seed: Any) -> int:
    if (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
            or not 0 <= seed <= MAX_SEED):
        raise InputError(f"got {seed!r}, expected an integer in [0, {MAX_SEED}] (32 bits)",
                         field="seed")
    return int(seed)


def _samples(n_samples: Any) -> int:
    n = _positive(n_samples, "n_samples", integer=True)
    if n > MAX_SAMPLES:
        raise InputError(f"got {n_samples!r}, expected at most {MAX_SAMPLES} (2^26) points",
                         field="n_samples")
    return n


def _radius(radius_mm: Any, h: Sequence[float]) -> float:
    """A radius of at least the smallest voxel side (the box is 3 voxels wide at least)."""
    r = _positive(radius_mm, "radius_mm")
    if r < min(h):
        raise InputError(f"got {radius_mm!r} mm, expected at least one voxel "
                         f"({min(h):g} mm)", field="radius_mm")
    return r


def _box_half(radius: float, h: np.ndarray, field: str) -> list[int]:
    """Half-widths (voxels) of the kernel box; refuses more than :data:`MAX_KERNEL_VOXELS`."""
    # exact integers: a tiny voxel or huge radius would wrap around in int64
    n_half = _half_widths(_ratio(radius, h), lambda q: max(math.ceil(q - 1e-9), 1))
    n_vox = _box_voxels(n_half, lambda n: 2 * n + 1)
    if n_vox > MAX_KERNEL_VOXELS or n_half is None:
        raise InputError(f"kernel box too large: radius {radius:g} mm at "
                         f"{_mm(h)} mm voxels needs {_count(n_vox)} voxels, more than "
                         f"{MAX_KERNEL_VOXELS}; pass a smaller radius_mm or larger voxels",
                         field=field)
    return n_half


def check_options(voxel_mm: float | Sequence[float], radius_mm: float | None = None,
                  n_samples: int = 1 << 20, seed: int = 0,
                  density_g_cm3: float | None = None) -> None:
    """Refuse, before any work, integration options out of their ranges.

    Voxel sides in :data:`VOXEL_MM_RANGE`, a radius of at least one voxel whose box holds at
    most :data:`MAX_KERNEL_VOXELS` voxels, 1 to :data:`MAX_SAMPLES` points, a seed in
    ``[0, MAX_SEED]`` and a density in :data:`theradose.dose._media.DENSITY_RANGE_G_CM3`.

    Raises
    ------
    InputError
        Naming the argument at fault (``voxel_mm``, ``radius_mm``, ``n_samples``, ``seed``,
        ``density_g_cm3``).
    """
    h = np.array(_voxel_tuple(voxel_mm))
    if radius_mm is not None:
        _box_half(_radius(radius_mm, h), h, "radius_mm")
    _samples(n_samples)
    _seed(seed)
    if density_g_cm3 is not None:
        check_density(density_g_cm3)


def _classes_tuple(classes: Sequence[str] | str) -> tuple[str, ...]:
    items = (classes,) if isinstance(classes, str) else tuple(classes)
    out = tuple(dict.fromkeys(str(c).strip().lower() for c in items))
    if not out or any(c not in _CLASSES for c in out):
        raise InputError(f"invalid emission classes: got {classes!r}, expected a non-empty "
                         f"subset of {list(_CLASSES)}", field="classes")
    return tuple(c for c in _CLASSES if c in out)  # canonical order


def _half_widths(ratio: np.ndarray, cells: Callable[[float], int]) -> list[int] | None:
    """``cells(q)`` per axis as exact Python integers; None when a ratio is not finite."""
    qs = [float(q) for q in ratio]
    return None if not all(math.isfinite(q) for q in qs) else [int(cells(q)) for q in qs]


def _ratio(length_mm: float, h: np.ndarray) -> np.ndarray:
    """``length_mm / h`` per axis; an overflow gives inf (refused by the caller), not a warning."""
    with np.errstate(over="ignore"):
        return length_mm / h


def _box_voxels(half: list[int] | None, width: Callable[[int], int]) -> float | int:
    """Exact voxel count of a box with ``width(n)`` voxels per axis (inf when unbounded)."""
    return math.inf if half is None else math.prod(width(n) for n in half)


def _mm(h: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in h) + ")"


def _count(n: float | int) -> str:
    """An exact count, shortened to ``d.dde+N`` past 15 digits (no float overflow)."""
    if n == math.inf:
        return "infinitely many"
    digits = str(int(n))
    return digits if len(digits) <= 15 else f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _kernel_extent_mm(kernel: RadialKernel) -> float:
    """Outer edge of the last shell that absorbs energy, mm."""
    nz = np.nonzero(kernel.shell_kev > 0)[0]
    return float(kernel.r_edges_mm[nz[-1] + 1]) if nz.size else 0.0


# --------------------------------------------------------------------------- quadrature pieces
def _triangular_nodes(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in [-1, 1] and weights (sum 1) for the density Λ(t) = 1 - |t|.

    Gauss-Jacobi (α=1, β=0) on each half: exact for polynomials of degree 2·order-1 per half.
    """
    x, w = roots_jacobi(order, 1.0, 0.0)  # weight (1-x) on [-1, 1]
    t = 0.5 * (x + 1.0)  # weight ∝ (1 - t) on [0, 1]
    w = w / w.sum() * 0.5
    return np.concatenate([-t[::-1], t]), np.concatenate([w[::-1], w])


def _taper(r: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Near-field share s(r): 1 below r1, cosine down to 0 at r2."""
    x = np.clip((np.asarray(r, float) - r1) / (r2 - r1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _axis_permutations(h_zyx: np.ndarray) -> list[tuple[int, int, int]]:
    """Permutations of the array axes that leave the voxel shape unchanged."""
    return [p for p in itertools.permutations(range(3))
            if all(h_zyx[p[i]] == h_zyx[i] for i in range(3))]


def _near_field(kernel: RadialKernel, h_xyz: np.ndarray, shape: tuple[int, int, int],
                n_samples: int, n_replicas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Octant grids ``[z, y, x]`` (index ≥ 0) of the mean energy per voxel and its σ, keV/decay.

    The values are those of each of the (up to 8) voxels the octant voxel stands for.
    """
    nz, ny, nx = shape
    n_per = 1 << max(4, round(math.log2(max(n_samples // n_replicas, 16))))
    seeds = np.random.SeedSequence(seed).spawn(n_replicas)
    e_tot = kernel.absorbed_kev
    reps = np.empty((n_replicas, nz * ny * nx))
    for k, ss in enumerate(seeds):
        pts = qmc.Sobol(d=3, scramble=True, seed=np.random.default_rng(ss)).random(n_per)
        r = kernel.sample_radii(pts[:, 0])
        mu = pts[:, 1]
        phi = 0.5 * np.pi * pts[:, 2]
        st = np.sqrt(np.maximum(1.0 - mu * mu, 0.0))
        t = np.stack([r * st * np.cos(phi), r * st * np.sin(phi), r * mu], axis=1) / h_xyz
        i0 = np.floor(t).astype(np.int64)
        f = t - i0
        acc = np.zeros(nz * ny * nx)
        for cx, cy, cz in itertools.product((0, 1), repeat=3):
            w = ((f[:, 0] if cx else 1.0 - f[:, 0]) * (f[:, 1] if cy else 1.0 - f[:, 1])
                 * (f[:, 2] if cz else 1.0 - f[:, 2]))
            lin = ((i0[:, 2] + cz) * ny + (i0[:, 1] + cy)) * nx + (i0[:, 0] + cx)
            acc += np.bincount(lin, weights=w, minlength=acc.size)
        reps[k] = acc * (e_tot / n_per)
    reps = reps.reshape(n_replicas, nz, ny, nx)
    # octant folding: a voxel with m zero indices is hit by 2^m of the 8 reflections
    zeros = ((np.arange(nz) == 0)[:, None, None].astype(int)
             + (np.arange(ny) == 0)[None, :, None] + (np.arange(nx) == 0)[None, None, :])
    reps *= 2.0 ** zeros / 8.0
    perms = _axis_permutations(h_xyz[::-1])
    if len(perms) > 1:
        reps = np.mean([reps.transpose((0, *(q + 1 for q in p))) for p in perms], axis=0)
    mean = reps.mean(axis=0)
    sigma = reps.std(axis=0, ddof=1) / math.sqrt(n_replicas) if n_replicas > 1 else 0 * mean
    return mean, sigma


def _far_field(edges: np.ndarray, shell_kev: np.ndarray, h_xyz: np.ndarray, n_xyz: np.ndarray,
               r1: float, order: int = 3) -> np.ndarray:
    """Octant grid ``[z, y, x]`` of the far-field energy per voxel, keV/decay (quadrature)."""
    widths = np.diff(edges)
    de_dr = shell_kev / widths  # keV/mm, constant within a shell
    r_out = float(edges[-1])
    t, w = _triangular_nodes(order)
    dx, dy, dz = (np.meshgrid(t * h_xyz[0], t * h_xyz[1], t * h_xyz[2], indexing="ij"))
    ww = np.einsum("i,j,k->ijk", w, w, w).ravel()
    off = np.stack([dx.ravel(), dy.ravel(), dz.ravel()], axis=1)  # (Q, 3) mm
    vol = float(np.prod(h_xyz))
    hn = float(np.linalg.norm(h_xyz))

    jz, jy, jx = np.meshgrid(*(np.arange(n + 1) for n in n_xyz[::-1]), indexing="ij")
    idx = np.stack([jx.ravel(), jy.ravel(), jz.ravel()], axis=1)
    c = idx * h_xyz
    dist = np.linalg.norm(c, axis=1)
    need = (dist + hn > r1) & (dist - hn < r_out)
    # voxels that are images of one another under axis permutations share one computation
    perms = _axis_permutations(h_xyz)
    key = idx.copy()
    if len(perms) > 1:
        for grp in {tuple(sorted(q for q in range(3) if h_xyz[q] == h_xyz[a])) for a in range(3)}:
            if len(grp) > 1:
                key[:, list(grp)] = np.sort(key[:, list(grp)], axis=1)
    out = np.zeros(idx.shape[0])
    sel = np.nonzero(need)[0]
    if sel.size == 0:
        return out.reshape(jz.shape)
    uniq, inv = np.unique(key[sel], axis=0, return_inverse=True)
    vals = np.empty(uniq.shape[0])
    chunk = max(1, 2_000_000 // off.shape[0])
    for a in range(0, uniq.shape[0], chunk):
        cc = uniq[a:a + chunk] * h_xyz
        r = np.linalg.norm(cc[:, None, :] + off[None, :, :], axis=2)
        i = np.searchsorted(edges, r, side="right") - 1
        ok = (i >= 0) & (i < shell_kev.size) & (r > 0)
        ic = np.clip(i, 0, shell_kev.size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(ok, de_dr[ic] / (4.0 * np.pi * r * r), 0.0)  # keV/mm³
        vals[a:a + chunk] = vol * (k @ ww)
    out[sel] = vals[inv.ravel()]
    return out.reshape(jz.shape)


# --------------------------------------------------------------------------- public API
def voxel_s_values_from_kernel(
    point_kernel: RadialKernel,
    voxel_mm: float | Sequence[float],
    *,
    radius_mm: float | None = None,
    n_samples: int = 1 << 20,
    n_replicas: int = 8,
    seed: int = 0,
    near_voxels: float = 4.0,
    nuclide: str | None = None,
) -> VoxelKernel:
    """Integrate a radial point kernel over the voxel geometry into voxel S-values.

    Parameters
    ----------
    point_kernel : RadialKernel
        Energy absorbed per decay in shells around a point source (keV per decay), in the medium
        and at the density the S-values are for.
    voxel_mm : float or (3,) sequence of float
        Voxel size, mm: one number (cubic) or ``(x, y, z)``.
    radius_mm : float, optional
        Half-size of the kernel box, mm: the box holds ``2·ceil(radius_mm / h) + 1`` voxels per
        axis (at least 3). Default: the kernel's extent, at most :data:`DEFAULT_RADIUS_MM`.
    n_samples : int
        Quasi-Monte-Carlo deposit points of the near field, over all replicas.
    n_replicas : int
        Independently scrambled Sobol sequences (σ is their standard error; ≥ 2 for a σ).
    seed : int
        Seed of the scrambling (same seed, same numbers).
    near_voxels : float
        Near/far split radius in voxels (largest side): sampling below, quadrature above.
    nuclide : str, optional
        Nuclide name stored in the result (default: the kernel's).

    Returns
    -------
    VoxelKernel
        ``values`` (2nz+1, 2ny+1, 2nx+1) in mGy/(MBq·s), ``[z, y, x]``, source voxel at the
        centre; ``sigma`` the same shape (near-field sampling only; the far-field quadrature is
        deterministic).

    Raises
    ------
    InputError
        For a voxel side outside :data:`VOXEL_MM_RANGE`, a radius under one voxel, a sample
        count outside [1, :data:`MAX_SAMPLES`], a seed outside [0, :data:`MAX_SEED`] or a box
        of more than :data:`MAX_KERNEL_VOXELS` voxels.

    Examples
    --------
    >>> import numpy as np
    >>> from theradose.dose import RadialKernel
    >>> k = RadialKernel(np.array([0.0, 1e-6]), np.array([100.0]), 100.0, "water", 1.0,
    ...                  ("electron",))
    >>> vk = voxel_s_values_from_kernel(k, 4.0, n_samples=1024)
    >>> round(float(vk.values[1, 1, 1] / (100.0 / 0.064 * KEV_TO_J * 1e12)), 6)
    1.0
    """
    if not isinstance(point_kernel, RadialKernel):
        raise InputError(f"got {type(point_kernel).__name__}, expected a RadialKernel",
                         field="point_kernel")
    h = np.array(_voxel_tuple(voxel_mm))
    n_samples = _samples(n_samples)
    n_replicas = _positive(n_replicas, "n_replicas", integer=True)
    near_voxels = _positive(near_voxels, "near_voxels")
    seed = _seed(seed)
    extent = _kernel_extent_mm(point_kernel)
    if radius_mm is None:
        radius = min(extent, DEFAULT_RADIUS_MM)
    else:
        radius = _radius(radius_mm, h)
    n_half = _box_half(radius, h, "voxel_mm" if radius_mm is None else "radius_mm")
    n_xyz = np.array(n_half, dtype=np.int64)  # each <= MAX_KERNEL_VOXELS now

    hmax = float(h.max())
    r1 = near_voxels * hmax
    r2 = r1 + 2.0 * hmax
    # fine edges through the taper, so that the split is smooth on the kernel's own shells
    edges = point_kernel.r_edges_mm
    if extent > r1:
        edges = np.union1d(edges, np.linspace(r1, r2, 33))
    kern = point_kernel.rebinned(edges) if edges is not point_kernel.r_edges_mm else point_kernel
    mid = 0.5 * (kern.r_edges_mm[:-1] + kern.r_edges_mm[1:])
    s = _taper(mid, r1, r2)
    near_kev = kern.shell_kev * s
    far_kev = kern.shell_kev * (1.0 - s)

    # near field on an octant grid large enough for every deposit, then cropped to the box
    near_half = _half_widths(_ratio(min(r2, extent), h), lambda q: math.floor(q) + 2)
    near_n_vox = _box_voxels(near_half, lambda n: n)
    if near_n_vox > MAX_KERNEL_VOXELS:  # very anisotropic voxels: r2 spans many small sides
        raise InputError(f"near-field grid too large: near_voxels {near_voxels:g} x {hmax:g} mm "
                         f"at {_mm(h)} mm voxels needs {_count(near_n_vox)} voxels, more than "
                         f"{MAX_KERNEL_VOXELS}; use voxels closer to cubic or a smaller "
                         "near_voxels", field="voxel_mm")
    near_n = np.maximum(np.array(near_half, dtype=np.int64), n_xyz + 1)
    oct_shape = tuple(int(v) for v in (n_xyz[::-1] + 1))
    e_oct = np.zeros(oct_shape)
    s_oct = np.zeros(oct_shape)
    if near_kev.sum() > 0:
        near_k = RadialKernel(kern.r_edges_mm, near_kev, kern.emitted_kev, kern.medium,
                              kern.density_g_cm3, kern.classes)
        m, sg = _near_field(near_k, h, tuple(int(v) for v in near_n[::-1]), n_samples,
                            n_replicas, int(seed))
        e_oct += m[:oct_shape[0], :oct_shape[1], :oct_shape[2]]
        s_oct += sg[:oct_shape[0], :oct_shape[1], :oct_shape[2]]
    if far_kev.sum() > 0:
        e_oct += _far_field(kern.r_edges_mm, far_kev, h, n_xyz, r1)

    iz, iy, ix = (np.abs(np.arange(-n, n + 1)) for n in n_xyz[::-1])
    mass_g = kern.density_g_cm3 * float(np.prod(h)) * 1e-3
    conv = _S_PER_KEV_PER_G / mass_g
    values = e_oct[np.ix_(iz, iy, ix)] * conv
    sigma = s_oct[np.ix_(iz, iy, ix)] * conv
    prov = {
        "method": "point kernel integrated over voxel geometry: QMC (Sobol) cloud-in-cell "
                  "near field + Gauss-Jacobi far field",
        "algorithm_version": VSV_ALGORITHM_VERSION,
        "radius_mm": radius, "near_far_split_mm": [r1, r2], "n_samples": n_samples,
        "n_replicas": n_replicas, "seed": int(seed), "far_quadrature_order": 3,
        "kernel_absorbed_kev": point_kernel.absorbed_kev,
        "kernel_escaped_kev": point_kernel.escaped_kev,
        "point_kernel": dict(point_kernel.provenance),
    }
    return VoxelKernel(
        values=values, voxel_mm=tuple(float(v) for v in h),
        nuclide=nuclide or point_kernel.nuclide or "unknown", medium=point_kernel.medium,
        density_g_cm3=point_kernel.density_g_cm3, classes=tuple(point_kernel.classes),
        emitted_kev=point_kernel.emitted_kev, sigma=sigma, provenance=prov,
    )


# --------------------------------------------------------------------------- nuclide level
_POINT_MODULES = {
    "electron": ("theradose.dose._electron_kernel", "theradose.dose._electron_transport"),
    "photon": ("theradose.dose._photon_kernel", "theradose.dose._photon_physics"),
    "alpha": (),
}
_COMMON_MODULES = ("theradose.dose._point_kernel", "theradose.dose._media")


def _alpha_kernel(nuc: Any, medium: Any) -> RadialKernel:
    """Alphas and recoils deposited uniformly (in r) within their range (local deposition)."""
    e = nuc.energy_per_decay_kev.alpha
    r = ALPHA_RANGE_WATER_MM / medium.density_g_cm3
    return RadialKernel(np.array([0.0, r]), np.array([e]), e, medium.name, medium.density_g_cm3,
                        ("alpha",), nuclide=nuc.name,
                        provenance={"method": "local deposition of alphas and recoils within "
                                              f"{r:.3g} mm", "source": nuc.source})


def point_kernel(
    nuclide: str,
    emission_class: str,
    medium: str = "water",
    *,
    options: dict[str, Any] | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
) -> RadialKernel | None:
    """The point kernel of one emission class of a nuclide, from the cache or generated.

    Parameters
    ----------
    nuclide : str
        ICRP-107 nuclide.
    emission_class : {"electron", "photon", "alpha"}
        ``electron``: :func:`theradose.dose._electron_kernel.electron_point_kernel`;
        ``photon``: :func:`theradose.dose._photon_kernel.photon_point_kernel`;
        ``alpha``: local deposition within :data:`ALPHA_RANGE_WATER_MM` (density-scaled).
    medium : str
        Medium name (:data:`theradose.dose.MEDIA`), at its nominal density.
    options : dict, optional
        Keyword arguments of the generator (e.g. ``{"n_photons": 200_000}``); part of the key.
    cache, cache_dir
        See :func:`voxel_s_values`.

    Returns
    -------
    RadialKernel or None
        None when the nuclide emits nothing of that class.
    """
    from theradose.dose._cache import cached, code_fingerprint
    from theradose.nuclides import get_nuclide

    nuc = get_nuclide(nuclide)
    med = get_medium(medium)
    (cls,) = _classes_tuple((emission_class,))
    if getattr(nuc.energy_per_decay_kev, cls) <= 0:
        return None
    opts = dict(options or {})

    def compute() -> RadialKernel:
        if cls == "electron":
            from theradose.dose._electron_kernel import electron_point_kernel

            return electron_point_kernel(nuc, med, **opts)
        if cls == "photon":
            from theradose.dose._photon_kernel import photon_point_kernel

            return photon_point_kernel(nuc.name, med, **opts)
        return _alpha_kernel(nuc, med)

    params = {"nuclide": nuc.name, "class": cls, "medium": med.name,
              "density_g_cm3": med.density_g_cm3, "options": opts,
              "code": code_fingerprint(_POINT_MODULES[cls] + _COMMON_MODULES)}
    return cached("point", params, compute, cache=cache, path=cache_dir)


def voxel_s_values(
    nuclide: str,
    voxel_mm: float | Sequence[float],
    medium: str = "water",
    *,
    classes: Sequence[str] = ("electron", "photon"),
    radius_mm: float | None = None,
    n_samples: int = 1 << 20,
    seed: int = 0,
    density_g_cm3: float | None = None,
    kernel_options: dict[str, dict[str, Any]] | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
) -> VoxelKernel:
    """Voxel S-values of a nuclide, generated from its point kernels (and cached on disk).

    The electron (ICRP-107 beta spectrum + IC/Auger lines, condensed-history transport with
    NIST ESTAR stopping powers) and photon (ICRP-107 lines, photon Monte Carlo with xraylib
    cross-sections) point kernels are summed and integrated over the voxel geometry with the
    source uniform in the source voxel (:func:`voxel_s_values_from_kernel`).

    Parameters
    ----------
    nuclide : str
        ICRP-107 nuclide (``"Lu-177"``, ``"177Lu"``, ``"Y-90"``, ...).
    voxel_mm : float or (3,) sequence of float
        Voxel size, mm: one number (cubic) or ``(x, y, z)``.
    medium : str
        ``water``, ``soft_tissue``, ``adipose``, ``lung``, ``cortical_bone``, ``air``.
    classes : sequence of {"electron", "photon", "alpha"}
        Emission classes included (classes the nuclide does not emit are skipped).
    radius_mm : float, optional
        Half-size of the kernel box, mm. Default: the kernels' extent, at most
        :data:`DEFAULT_RADIUS_MM` (100 mm; electrons are always covered in water, photon energy
        beyond goes to ``energy_fraction < 1``).
    n_samples : int
        Near-field quasi-Monte-Carlo points (σ falls roughly as 1/n_samples).
    seed : int
        Seed of the integration (the point kernels use their own default seeds).
    density_g_cm3 : float, optional
        Density of the medium if not the nominal one; kernels are scaled by O'Connor's theorem.
    kernel_options : dict, optional
        Per class keyword arguments of the point-kernel generators, e.g.
        ``{"photon": {"n_photons": 200_000}}``.
    cache : bool
        Read/write the on-disk cache (:mod:`theradose.dose._cache`).
    cache_dir : str, optional
        Cache folder (default ``$THERADOSE_CACHE_DIR``, ``$XDG_CACHE_HOME/theradose`` or
        ``~/.cache/theradose``).

    Returns
    -------
    VoxelKernel
        mGy/(MBq·s), ``[z, y, x]``, source voxel at the centre; ``provenance`` holds the
        point kernels' provenance, the integration parameters and the cache key.

    Raises
    ------
    UnknownNuclideError
        Unknown nuclide.
    InputError
        Unknown medium or class, invalid voxel size, radius, density or counts, or a nuclide
        that emits nothing of the requested classes.

    Examples
    --------
    >>> k = voxel_s_values("Lu-177", 4.8)                       # doctest: +SKIP
    >>> k.values[k.center]                                      # doctest: +SKIP
    """
    from theradose.dose._cache import cached, code_fingerprint, data_versions
    from theradose.nuclides import get_nuclide

    nuc = get_nuclide(nuclide)
    med = get_medium(medium)
    cls = _classes_tuple(classes)
    vox = _voxel_tuple(voxel_mm)
    rho = med.density_g_cm3 if density_g_cm3 is None else check_density(density_g_cm3)
    radius = None if radius_mm is None else _radius(radius_mm, vox)
    if radius is not None:  # refuse an oversized box before generating the point kernels
        _box_half(radius, np.array(vox), "radius_mm")
    n_samples = _samples(n_samples)
    seed = _seed(seed)
    opts = {k: dict(v) for k, v in (kernel_options or {}).items()}
    unknown = set(opts) - set(_CLASSES)
    if unknown:
        raise InputError(f"unknown keys {sorted(unknown)}, expected emission classes "
                         f"{list(_CLASSES)}", field="kernel_options")
    emits = [c for c in cls if getattr(nuc.energy_per_decay_kev, c) > 0]
    if not emits:
        raise InputError(f"{nuc.name} emits no {'/'.join(cls)} energy in ICRP-107: nothing to "
                         "compute", field="classes")
    modules = ("theradose.dose._vsv", "theradose.dose._voxel_kernel", *_COMMON_MODULES,
               *(m for c in emits for m in _POINT_MODULES[c]))
    params = {"nuclide": nuc.name, "voxel_mm": list(vox), "medium": med.name,
              "density_g_cm3": rho, "classes": list(cls), "radius_mm": radius,
              "n_samples": n_samples, "seed": seed, "kernel_options": opts,
              "code": code_fingerprint(modules),
              "algorithm_version": VSV_ALGORITHM_VERSION}

    def compute() -> VoxelKernel:
        total: RadialKernel | None = None
        for c in emits:
            k = point_kernel(nuc.name, c, med.name, options=opts.get(c), cache=cache,
                             cache_dir=cache_dir)
            if k is not None:
                total = k if total is None else total + k
        assert total is not None  # emits is non-empty
        if not math.isclose(rho, med.density_g_cm3):
            total = total.density_scaled(rho)
        vk = voxel_s_values_from_kernel(total, vox, radius_mm=radius, n_samples=n_samples,
                                        seed=seed, nuclide=nuc.name)
        prov = {**vk.provenance, "classes_requested": list(cls), "classes_included": emits,
                "nuclear_data": nuc.source, "data_versions": data_versions(),
                "kernel_options": opts}
        return VoxelKernel(values=vk.values, voxel_mm=vk.voxel_mm, nuclide=nuc.name,
                           medium=med.name, density_g_cm3=rho, classes=tuple(emits),
                           emitted_kev=vk.emitted_kev, sigma=vk.sigma, provenance=prov)

    return cached("voxel", params, compute, cache=cache, path=cache_dir)
