"""Partial-volume correction by recovery coefficients (RC) of a simulated imaging system.

A VOI of true concentration ``c`` imaged by a system with a Gaussian point-spread function (PSF)
of full width at half maximum ``FWHM`` appears with the mean concentration ``RC · c`` inside its
true boundary; activity spills out (and, from neighbours, in). :func:`recovery_coefficient`
*simulates* that system rather than assuming a formula:

1. a sphere of the given volume, centred on a voxel corner, is voxelised with sub-voxel partial
   volume (each voxel holds its occupied fraction ``f``, boundary voxels super-sampled 6×6×6);
2. it is blurred with :func:`scipy.ndimage.gaussian_filter`, ``σ = FWHM / 2.3548`` in voxels
   (mode ``"reflect"`` about the three symmetry planes, so one octant is simulated);
3. ``RC = Σ f·b / Σ f`` — the occupancy-weighted mean of the blurred image ``b`` over the true
   VOI, exactly the way :func:`theradose.kinetics.organ_tacs` measures a VOI, so that
   ``A_measured = RC · A_true`` for an isolated VOI in a cold background.

Tables are computed lazily, once per process, on a grid of 18 volumes (log-spaced, 0.5–1000 mL)
× 9 FWHMs (4–20 mm) and ``log RC`` is interpolated linearly in (log volume, FWHM) (small
spheres have ``RC ∝ V``, a straight line in log-log). Without a voxel size
(``voxel_mm=None``) the system is continuous: the RC then depends only on ``R/σ`` (scale
invariance), so one 1-D simulation table over ``R/σ`` (fine voxels, ``h = min(R/6, σ/2)``, the
filter's σ reduced by the voxel-averaging variance ``h²/6``) fills
the 2-D table. With ``voxel_mm`` the sphere is voxelised on the imaging grid itself and the table
is specific to that voxel size.

References
----------
Hoffman E. J., Huang S.-C., Phelps M. E., "Quantitation in positron emission computed
tomography: 1. Effect of object size", J. Comput. Assist. Tomogr. 3 (1979) 299-308,
doi:10.1097/00004728-197906000-00001 (recovery coefficients of spheres).
Soret M., Bacharach S. L., Buvat I., "Partial-volume effect in PET tumor imaging",
J. Nucl. Med. 48 (2007) 932-945, doi:10.2967/jnumed.106.035774.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import gaussian_filter

from theradose import __version__
from theradose.errors import InputError, TheradoseWarning

__all__ = ["FWHM_GRID_MM", "VOLUME_GRID_ML", "apply_recovery", "recovery_coefficient"]

log = logging.getLogger("theradose")

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
#: Volumes (mL) of the RC table nodes: 18 log-spaced points from 0.5 to 1000 mL.
VOLUME_GRID_ML = np.geomspace(0.5, 1000.0, 18)
#: FWHMs (mm) of the RC table nodes: 4, 6, ..., 20 mm.
FWHM_GRID_MM = np.linspace(4.0, 20.0, 9)
_SUPER = 6  # sub-samples per axis in boundary voxels
_PAD_SIGMA = 4.0  # simulated extent beyond the sphere, in σ


def _radius_mm(volume_ml: float) -> float:
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def _octant_occupancy(radius: float, h: float, n: int) -> np.ndarray:
    """Occupied fraction of each voxel of an ``n³`` octant grid (voxel ``h``, sphere at corner).

    Voxel ``i`` spans ``[i h, (i+1) h]`` along each axis; fully inside/outside voxels are decided
    by their nearest/farthest corner, boundary voxels by ``_SUPER³`` sub-samples.
    """
    lo = np.arange(n) * h
    hi = lo + h
    near = lo[:, None, None] ** 2 + lo[None, :, None] ** 2 + lo[None, None, :] ** 2
    far = hi[:, None, None] ** 2 + hi[None, :, None] ** 2 + hi[None, None, :] ** 2
    r2 = radius * radius
    f = (far <= r2).astype(np.float64)
    edge = np.argwhere((near < r2) & (far > r2))
    if len(edge):
        sub = (np.arange(_SUPER) + 0.5) / _SUPER * h
        sx, sy, sz = np.meshgrid(sub, sub, sub, indexing="ij")
        offs = np.stack([sx.ravel(), sy.ravel(), sz.ravel()], axis=-1)  # (S³, 3)
        for chunk in np.array_split(edge, max(1, len(edge) // 20000 + 1)):
            pts = chunk[:, None, :] * h + offs[None, :, :]
            inside = np.sum(pts * pts, axis=-1) <= r2
            f[chunk[:, 0], chunk[:, 1], chunk[:, 2]] = inside.mean(axis=1)
    return f


def _simulate_rc(radius_mm: float, sigma_mm: float, h_mm: float, *,
                 continuous: bool = False) -> float:
    """RC of a sphere (radius, mm) blurred by a Gaussian (σ, mm) on voxels of ``h_mm``.

    ``continuous``: remove the variance ``h²/6`` that voxel averaging adds (the image and the
    weights are both box averages over a voxel, ``h²/12`` each), so that fine voxels approximate
    the voxel-free system to second order.
    """
    n = math.ceil((radius_mm + _PAD_SIGMA * sigma_mm) / h_mm) + 1
    f = _octant_occupancy(radius_mm, h_mm, n)
    s = math.sqrt(sigma_mm**2 - h_mm**2 / 6.0) if continuous else sigma_mm
    b = gaussian_filter(f, s / h_mm, mode="reflect", truncate=_PAD_SIGMA)
    return float(np.sum(f * b) / np.sum(f))


#: R/σ nodes of the continuous (voxel-free) table.
_RHO_GRID = np.geomspace(0.5, 40.0, 28)


@lru_cache(maxsize=1)
def _continuous_table() -> np.ndarray:
    """RC(R/σ) of the continuous system on :data:`_RHO_GRID` (σ = 1, fine voxels)."""
    return np.array([_simulate_rc(rho, 1.0, min(rho / 6.0, 0.5), continuous=True)
                     for rho in _RHO_GRID])


def _rc_continuous(rho) -> np.ndarray:
    rho = np.asarray(rho, dtype=float)
    return np.exp(np.interp(np.log(rho), np.log(_RHO_GRID), np.log(_continuous_table())))


@lru_cache(maxsize=16)
def _table(voxel_mm: float | None) -> RegularGridInterpolator:
    """Interpolator of RC over (log volume, FWHM) for one voxel size (None: continuous)."""
    radii = np.array([_radius_mm(v) for v in VOLUME_GRID_ML])
    sigmas = FWHM_GRID_MM / FWHM_PER_SIGMA
    if voxel_mm is None:
        values = _rc_continuous(radii[:, None] / sigmas[None, :])
    else:
        log.debug("tabulating recovery coefficients for %g mm voxels", voxel_mm)
        values = np.array([[_simulate_rc(r, s, voxel_mm) for s in sigmas] for r in radii])
    return RegularGridInterpolator((np.log(VOLUME_GRID_ML), FWHM_GRID_MM), np.log(values))


def _check_range(name: str, value, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"must be a number, got {value!r}", field=name) from None
    if not (lo <= v <= hi):
        raise InputError(f"got {v:g}; the recovery table covers {lo:g} to {hi:g}", field=name)
    return v


def recovery_coefficient(volume_ml: float, fwhm_mm: float, *, voxel_mm: float | None = None,
                         shape: str = "sphere") -> float:
    """Recovery coefficient of a VOI imaged with a Gaussian PSF, from a simulated system.

    Parameters
    ----------
    volume_ml : float
        True VOI volume, mL (0.5 to 1000).
    fwhm_mm : float
        Spatial resolution (FWHM of the 3-D Gaussian PSF), mm (4 to 20). For SPECT use the
        reconstructed resolution at the VOI (e.g. about 10-12 mm for 177Lu with resolution
        recovery), for PET the scanner's (4-7 mm).
    voxel_mm : float, optional
        Cubic voxel size of the image, mm (1 to 10). None: continuous system (no voxelisation).
    shape : {'sphere'}
        VOI shape; only spheres are simulated.

    Returns
    -------
    float
        ``RC = measured mean concentration in the true VOI / true concentration`` (0 < RC < 1),
        for a VOI in a cold background.

    Raises
    ------
    InputError
        A value outside the table, or an unknown ``shape``.

    References
    ----------
    Hoffman et al., J. Comput. Assist. Tomogr. 3 (1979) 299, doi:10.1097/00004728-197906000-00001.

    Examples
    --------
    >>> round(recovery_coefficient(10.0, 10.0), 2)
    0.63
    """
    if shape != "sphere":
        raise InputError(f"got {shape!r}; accepted: 'sphere'", field="shape")
    v = _check_range("volume_ml", volume_ml, float(VOLUME_GRID_ML[0]), float(VOLUME_GRID_ML[-1]))
    f = _check_range("fwhm_mm", fwhm_mm, float(FWHM_GRID_MM[0]), float(FWHM_GRID_MM[-1]))
    vox = None if voxel_mm is None else _check_range("voxel_mm", voxel_mm, 1.0, 10.0)
    key = None if vox is None else round(vox, 3)
    return float(np.exp(_table(key)((math.log(v), f))))


def apply_recovery(tac, rc_by_voi: Mapping[str, float], *, allow_margin: bool = False):
    """Divide the activities and concentrations of some VOIs of a TAC table by their RC.

    Apply it to small VOIs (lesions, small organs such as salivary glands; roughly below
    30-100 mL at SPECT resolution) whose TAC was measured inside the true boundary. Do not
    combine it with a spill-out margin (``organ_tacs(..., margin_mm>0)``): the margin already
    recovers the spilled activity, and dividing by RC would count it twice.

    Parameters
    ----------
    tac : TACTable
        From :func:`theradose.kinetics.organ_tacs`.
    rc_by_voi : mapping of str to float
        Recovery coefficient per VOI name (0 < RC; VOIs not named are unchanged).
    allow_margin : bool
        Accept a table measured with a margin (default False raises).

    Returns
    -------
    TACTable
        A new table: ``activity_mbq``, ``concentration_bq_ml`` and ``activity_sigma_mbq`` of
        each named VOI divided by its RC; ``provenance["pvc"]`` records ``{voi: rc}`` and the
        method.

    Raises
    ------
    InputError
        Not a TACTable, a VOI not in the table, an RC that is not a positive finite number, a
        table measured with a margin, or a table already corrected.

    Warns
    -----
    TheradoseWarning
        An RC above 1 (a correction that lowers the activity).
    """
    from theradose.kinetics import TACTable

    if not isinstance(tac, TACTable):
        raise InputError(f"must be a TACTable, got {type(tac).__name__}", field="tac")
    if not isinstance(rc_by_voi, Mapping):
        raise InputError(f"must be a mapping {{voi: rc}}, got {type(rc_by_voi).__name__}",
                         field="rc_by_voi")
    prov = dict(tac.provenance)
    if "pvc" in prov:
        raise InputError("the table is already partial-volume corrected "
                         f"({sorted(prov['pvc']['rc_by_voi'])}); correct once", field="tac")
    margin = float(prov.get("margin_mm", 0.0) or 0.0)
    if margin > 0 and not allow_margin:
        raise InputError(f"the TACs were measured with margin_mm={margin:g}, which already "
                         "recovers spill-out; dividing by RC would correct twice (pass "
                         "allow_margin=True to force)", field="rc_by_voi")
    rcs: dict[str, float] = {}
    for name, rc in rc_by_voi.items():
        if name not in tac.vois:
            raise InputError(f"no VOI {name!r} in the table; known: {list(tac.vois)}",
                             field="rc_by_voi")
        try:
            r = float(rc)
        except (TypeError, ValueError):
            raise InputError(f"RC of {name!r} must be a number, got {rc!r}",
                             field="rc_by_voi") from None
        if not (math.isfinite(r) and r > 0):
            raise InputError(f"RC of {name!r} must be a positive finite number, got {rc!r}",
                             field="rc_by_voi")
        if r > 1.0:
            warnings.warn(f"RC of {name!r} is {r:g} > 1: the correction lowers its activity",
                          TheradoseWarning, stacklevel=2)
        rcs[name] = r
    act = {k: (v / rcs[k] if k in rcs else v.copy()) for k, v in tac.activity_mbq.items()}
    conc = {k: (v / rcs[k] if k in rcs else v.copy()) for k, v in tac.concentration_bq_ml.items()}
    sig = None if tac.activity_sigma_mbq is None else \
        {k: (v / rcs[k] if k in rcs else v.copy()) for k, v in tac.activity_sigma_mbq.items()}
    prov["pvc"] = {"method": "recovery coefficient (activity and concentration divided by RC)",
                   "rc_by_voi": rcs, "theradose_version": __version__}
    return dataclasses.replace(tac, activity_mbq=act, concentration_bq_ml=conc,
                               activity_sigma_mbq=sig, provenance=prov)
