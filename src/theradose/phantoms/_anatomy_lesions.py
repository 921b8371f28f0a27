"""Lesions of the virtual patients: ellipsoids placed fully inside a host region.

Sites: ``liver`` (hypodense), ``bone`` (sclerotic, inside the skeleton), ``lymph_node`` (soft
tissue or bowel within 25 mm of the abdominal aorta, vena cava or iliac arteries) and
``prostate_bed`` (males: the prostate and the tissue around it, behind and below the bladder).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
from scipy import ndimage

from theradose.errors import InputError, TheradoseWarning
from theradose.phantoms._anatomy_model import Anatomy, add_sums
from theradose.phantoms._anatomy_tissues import TISSUES
from theradose.volume import LabelMap

__all__ = ["LESION_SITES", "add_lesions"]

#: site -> tissue of its lesions (see ``TISSUES``).
LESION_SITES: dict[str, str] = {
    "liver": "lesion_liver",
    "bone": "lesion_bone",
    "lymph_node": "lesion_soft",
    "prostate_bed": "lesion_soft",
}
_NODE_DISTANCE_MM = 25.0
_MAX_LESIONS = 50


def _host_mask(a: Anatomy, site: str) -> np.ndarray:
    lab = a.labels
    if site == "liver":
        return a.organ_mask("liver")
    if site == "bone":
        return a.organ_mask("skeleton")
    body = lab.mask("body")
    if site == "lymph_node":
        heart = a.organ_mask("heart")
        zmax = int(np.nonzero(heart.any(axis=(1, 2)))[0].min()) if heart.any() else lab.shape[0]
        vessels = np.isin(lab.array, [lab.labels[n] for n in ("aorta", "inferior_vena_cava",
                                                               "iliac_artery_left",
                                                               "iliac_artery_right")])
        vessels[zmax:] = False
        host = np.zeros(lab.shape, dtype=bool)
        if not vessels.any():
            return host
        sp = np.asarray(a.geometry.spacing_mm[::-1])
        pad = np.ceil(_NODE_DISTANCE_MM / sp).astype(int) + 1
        nzi = np.nonzero(vessels)
        box = tuple(slice(max(int(i.min()) - p, 0), int(i.max()) + p + 1)
                    for i, p in zip(nzi, pad, strict=True))
        dist = ndimage.distance_transform_edt(~vessels[box], sampling=sp)
        # the stylized phantom has no retroperitoneal / mesenteric fat: nodes may displace bowel
        soft = body | np.isin(lab.array, [lab.labels[n] for n in ("small_bowel", "colon")])
        host[box] = soft[box] & (dist <= _NODE_DISTANCE_MM)
        return host
    # prostate bed: the prostate and the soft tissue of an ellipsoid around it
    pro = lab.mask("prostate")
    kk, jj, ii = np.nonzero(pro)
    c = a.geometry.index_to_physical(np.array([ii.mean(), jj.mean(), kk.mean()]))
    xyz = _centres(a)
    q = (((xyz[0] - c[0]) / 30.0) ** 2 + ((xyz[1] - c[1]) / 25.0) ** 2
         + ((xyz[2] - c[2]) / 25.0) ** 2)
    return (body | pro) & (q <= 1.0)


def _centres(a: Anatomy):
    """LPS voxel-centre coordinates as broadcastable (Z,1,1), (1,Y,1), (1,1,X) arrays (mm)."""
    g = a.geometry
    nz, ny, nx = g.shape
    ox, oy, oz = g.origin_mm
    sx, sy, sz = g.spacing_mm
    return (ox + sx * np.arange(nx)[None, None, :], oy + sy * np.arange(ny)[None, :, None],
            oz + sz * np.arange(nz)[:, None, None])


def _check(a, rng, n, sites, volume_ml_range) -> tuple[list[str], float, float]:
    if not isinstance(a, Anatomy):
        raise InputError(f"anatomy must be an Anatomy, got {type(a).__name__}", field="anatomy")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}",
                         field="rng")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer)
                          or not 0 <= n <= _MAX_LESIONS):
        raise InputError(f"n must be None or an integer in [0, {_MAX_LESIONS}], got {n!r}",
                         field="n")
    sites = [sites] if isinstance(sites, str) else list(sites)
    bad = [s for s in sites if s not in LESION_SITES]
    if not sites or bad:
        raise InputError(f"unknown lesion site(s) {bad or sites!r}; accepted: "
                         f"{list(LESION_SITES)}", field="sites")
    if a.params.get("sex") != "male":
        sites = [s for s in sites if s != "prostate_bed"]
        if not sites:
            raise InputError("site 'prostate_bed' needs a male anatomy; choose other sites",
                             field="sites")
    try:
        lo, hi = (float(v) for v in volume_ml_range)
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (0.05 <= lo <= hi <= 1000.0):
        raise InputError(f"volume_ml_range must be (min, max) with 0.05 <= min <= max <= 1000 "
                         f"mL, got {volume_ml_range!r}", field="volume_ml_range")
    return sites, lo, hi


def add_lesions(anatomy: Anatomy, rng: np.random.Generator, *, n: int | None = None,
                sites=("liver", "bone", "lymph_node", "prostate_bed"),
                volume_ml_range: tuple[float, float] = (0.5, 100.0)) -> Anatomy:
    """Return a copy of ``anatomy`` with ``n`` ellipsoidal lesions ``lesion_1``, ``lesion_2``, ...

    Each lesion's site is drawn from ``sites``, its volume log-uniformly from
    ``volume_ml_range``, its semi-axes from that volume with axis ratios within about ±15 %.
    It is placed at a random voxel of its host whose distance to the host's border exceeds
    the largest semi-axis plus one voxel (so the lesion lies fully inside the host), away from
    earlier lesions. When no place fits, the volume is halved (down to the range minimum); if
    it still does not fit, the lesion is skipped with a :class:`TheradoseWarning`. Partial
    volume is computed by sub-sampling as for the organs; CT numbers: liver lesions hypodense,
    bone lesions sclerotic, nodes and prostate-bed lesions soft tissue.

    Parameters
    ----------
    anatomy : Anatomy
    rng : numpy.random.Generator
    n : int, optional
        Number of lesions (0-50); None draws ``1 + Poisson(2)``, at most 8.
    sites : sequence of str
        Among ``"liver"``, ``"bone"``, ``"lymph_node"``, ``"prostate_bed"`` (male only; dropped
        for a female anatomy).
    volume_ml_range : (float, float)
        Lesion volumes (mL).

    Returns
    -------
    Anatomy
        With ``groups["lesions"]`` and ``params["lesions"]`` (site, host, centre LPS mm,
        semi-axes mm, volume_ml, HU, density).

    """
    sites, vlo, vhi = _check(anatomy, rng, n, sites, volume_ml_range)
    if n is None:
        n = int(min(8, 1 + rng.poisson(2.0)))
    g = anatomy.geometry
    sp = np.asarray(g.spacing_mm)  # (x, y, z)
    h = float(sp.max())
    labels = anatomy.labels.array.copy()
    names = dict(anatomy.labels.names)
    hu = anatomy.hu.array.astype(np.float32, copy=True)
    rho = anatomy.density.array.astype(np.float32, copy=True)
    fine = {nm: anatomy.masses_g.get(nm, 0.0) for nm in names.values()}
    prev = [les for les in anatomy.params.get("lesions", [])]
    placed: list[dict] = []
    edt_cache: dict[str, tuple[np.ndarray, tuple[slice, ...]]] = {}
    cx, cy, cz = _centres(anatomy)
    nsub = int(anatomy.params.get("supersample", 3))
    o = (np.arange(nsub) + 0.5) / nsub - 0.5
    next_value = max(names) + 1 if names else 1
    vvol = g.voxel_volume_ml

    for _ in range(n):
        site = sites[int(rng.integers(len(sites)))]
        vol = float(math.exp(rng.uniform(math.log(vlo), math.log(vhi))))
        ratios = np.exp(rng.normal(0.0, 0.1, 3))
        ratios /= np.prod(ratios) ** (1 / 3)
        u = rng.random(4)
        if site not in edt_cache:
            host = _host_mask(anatomy, site)
            if not host.any():
                edt_cache[site] = (np.zeros((0, 0, 0)), ())
            else:
                nzi = np.nonzero(host)
                box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in nzi)
                edt = ndimage.distance_transform_edt(host[box], sampling=sp[::-1])
                edt_cache[site] = (edt, box)
        edt, box = edt_cache[site]
        centre = semi = None
        while vol >= vlo * (1 - 1e-9) and edt.size:
            r = (3.0 * vol * 1000.0 / (4.0 * math.pi)) ** (1 / 3)
            semi = r * ratios
            need = float(semi.max()) + h
            ok = edt >= need
            if ok.any():
                kk, jj, ii = (a + s.start for a, s in zip(np.nonzero(ok), box, strict=True))
                c = np.stack([cx[0, 0, ii], cy[0, jj, 0], cz[kk, 0, 0]], axis=1)
                free = np.ones(len(c), dtype=bool)
                for les in [*prev, *placed]:
                    d = np.linalg.norm(c - np.asarray(les["centre_mm"]), axis=1)
                    free &= d >= float(semi.max()) + max(les["semi_axes_mm"]) + h
                if free.any():
                    cand = np.flatnonzero(free)
                    pick = cand[min(int(u[0] * cand.size), cand.size - 1)]
                    centre = c[pick] + (u[1:] - 0.5) * sp * 0.5
                    break
            vol /= 2.0
        if centre is None:
            warnings.warn(f"could not place a {site} lesion of >= {vlo} mL; skipped",
                          TheradoseWarning, stacklevel=2)
            continue
        tissue = LESION_SITES[site]
        t_hu, t_rho = TISSUES[tissue]["hu"], TISSUES[tissue]["density_g_cm3"]
        # voxels of the lesion's bounding box and their sub-voxel occupancy
        lo_idx = np.floor(g.physical_to_index(centre - semi - h)).astype(int)
        hi_idx = np.ceil(g.physical_to_index(centre + semi + h)).astype(int) + 1
        lo_idx = np.maximum(lo_idx, 0)
        hi_idx = np.minimum(hi_idx, np.asarray(g.size_xyz))
        bz, by, bx = (slice(lo_idx[d], hi_idx[d]) for d in (2, 1, 0))
        frac = np.zeros((bz.stop - bz.start, by.stop - by.start, bx.stop - bx.start))
        for oz in o:
            for oy in o:
                for ox in o:
                    q = (((cx[:, :, bx] + ox * sp[0] - centre[0]) / semi[0]) ** 2
                         + ((cy[:, by, :] + oy * sp[1] - centre[1]) / semi[1]) ** 2
                         + ((cz[bz, :, :] + oz * sp[2] - centre[2]) / semi[2]) ** 2)
                    frac += q <= 1.0
        frac /= nsub ** 3
        lab_blk = labels[bz, by, bx]
        for value in np.unique(lab_blk[frac > 0]):
            sel = (lab_blk == value) & (frac > 0)
            fine[names[int(value)]] -= float((frac[sel] * rho[bz, by, bx][sel]).sum()) * vvol
        hu[bz, by, bx] = hu[bz, by, bx] * (1 - frac) + t_hu * frac
        rho[bz, by, bx] = rho[bz, by, bx] * (1 - frac) + t_rho * frac
        name = f"lesion_{len(prev) + len(placed) + 1}"
        if next_value > np.iinfo(labels.dtype).max:
            labels = labels.astype(np.uint16)
            lab_blk = labels[bz, by, bx]
        lab_blk[frac >= 0.5] = next_value
        labels[bz, by, bx] = lab_blk
        names[next_value] = name
        next_value += 1
        fine[name] = float(frac.sum()) * vvol * t_rho
        placed.append({
            "name": name, "site": site, "tissue": tissue, "hu": t_hu,
            "density_g_cm3": t_rho, "centre_mm": [float(v) for v in centre],
            "semi_axes_mm": [float(v) for v in semi],
            "volume_ml": float(4.0 / 3.0 * math.pi * np.prod(semi) / 1000.0),
            "voxelised_volume_ml": float(frac.sum()) * vvol,
        })
    groups = dict(anatomy.groups)
    groups["lesions"] = tuple(les["name"] for les in [*prev, *placed])
    lm = LabelMap(labels, g, modality="OT", names=names,
                  history=(*anatomy.labels.history, f"add_lesions: {len(placed)} lesions"))
    params = dict(anatomy.params)
    params["lesions"] = [*prev, *placed]
    return dataclasses.replace(
        anatomy, labels=lm, groups=groups,
        hu=anatomy.hu.replace(array=hu, note="lesions added"),
        density=anatomy.density.replace(array=rho, note="lesions added"),
        masses_g=add_sums(fine, groups), params=params)
