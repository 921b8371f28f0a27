"""Dose stage of the pipeline: voxel engines on the TIA map, organ S-values on the organ TIAs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from theradose.errors import InputError
from theradose.volume import LabelMap, Volume

__all__ = ["SVALUE_ORGAN", "dose_stage", "organ_svalue_doses"]

log = logging.getLogger("theradose")

#: VOI name (as in the virtual patients' SEG and common CT segmentations) → organ of the
#: S-value tables (``theradose.dose.mc.ORGANS``). Several VOIs may be parts of one organ (left
#: and right kidney, the salivary glands): :func:`organ_svalue_doses` then gives each VOI its
#: own dose from its own TIA and mass.
SVALUE_ORGAN: dict[str, str] = {
    "kidney_left": "kidneys", "kidney_right": "kidneys", "kidneys": "kidneys",
    "liver": "liver", "spleen": "spleen", "lungs": "lungs", "brain": "brain",
    "lung_left": "lungs", "lung_right": "lungs",
    "pancreas": "pancreas", "stomach": "stomach", "small_bowel": "small_bowel",
    "colon": "colon", "prostate": "prostate", "testes": "testes", "uterus": "uterus",
    "ovaries": "ovaries", "thyroid_gland": "thyroid", "thyroid": "thyroid",
    "salivary_glands": "salivary_glands", "lacrimal_glands": "lacrimal_glands",
    "parotid_gland_left": "salivary_glands", "parotid_gland_right": "salivary_glands",
    "submandibular_gland_left": "salivary_glands",
    "submandibular_gland_right": "salivary_glands",
    "lacrimal_gland_left": "lacrimal_glands", "lacrimal_gland_right": "lacrimal_glands",
    "heart": "heart_wall", "red_marrow": "red_marrow",
}

_SPLIT_METHOD = (
    "VOIs sharing an S-value organ (e.g. kidney_left + kidney_right -> kidneys): each VOI's "
    "dose from its own TIA and mass. Self: electron/alpha S x M/m_voi (local deposition), "
    "photon S x (M/m_voi)^(2/3) (MIRD Pamphlet 11 mass scaling), from the organ's self S "
    "scaled to the VOIs' total mass M; cross between the VOIs: the photon energy the organ's "
    "self S deposits in the organ and the scaled self terms do not, one S for every ordered "
    "pair (equal TIA per gram: mass-weighted mean of the VOI doses = organ dose, each VOI's "
    "dose = organ dose when the masses are equal); from other sources (other organs, "
    "remainder): the organ's S(organ <- source)")
_SAS = 3600.0  # MBq·h -> MBq·s
_MGY_TO_GY = 1e-3


def organ_svalue_doses(tia: dict[str, tuple[float, float]], masses_g: dict[str, float],
                       total_tia_mbq_h: float, nuclide: str, phantom: str
                       ) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Organ doses (Gy, σ) per VOI from VOI TIAs with the reference phantom's S-values.

    VOIs map to S-value organs by :data:`SVALUE_ORGAN`. The MIRD schema
    ``D(t) = Σ_s Ã_s S(t ← s)`` runs on the organs (TIAs and masses of the VOIs of one organ
    summed, σ in quadrature; the table rescaled to those masses), with the rest of
    ``total_tia_mbq_h`` (the TIA imaged in the field of view outside the mapped VOIs) as the
    ``remainder`` source. A VOI that is its organ alone gets the organ's dose. VOIs that are
    parts of one organ (``kidney_left`` and ``kidney_right`` → ``kidneys``) each get the dose of
    their own TIA and mass, with ``M = Σ_j m_j`` and the organ's scaled self S-value split
    into its electron/alpha part ``S_e`` and photon part ``S_γ``:

    * self-dose, ``S(k ← k) = S_e·M/m_k + S_γ·(M/m_k)^(2/3)`` (local deposition is exact; the
      photon self absorbed fraction grows as ``m^(1/3)``, MIRD Pamphlet 11);
    * cross-dose from the other VOIs of the organ, one photon S-value ``c = κ·S_γ`` for every
      ordered pair, with ``κ = (M² − Σ_j m_j^(4/3)·M^(2/3)) / Σ_j m_j·(M − m_j) > 0``
      chosen so that, for a uniform TIA per gram over the VOIs, the organ absorbs the photon
      energy of its own S-value: the mass-weighted mean of the VOI doses is then the organ's
      dose, and every VOI gets it when the masses are equal (a heavier VOI keeps more of its
      own photons). The electron/alpha self-dose conserves energy for any TIAs. One ``c`` for
      both directions keeps photon reciprocity, ``S(k ← j) = S(j ← k)``;
    * cross-dose from the other sources: the organ's ``S(organ ← s)`` (photon
      cross S-values depend little on the target's mass and position inside the organ).

    σ² adds ``(Ã σ_S)²`` and ``(S σ_Ã)²`` of every term, the self and cross terms of one
    organ's VOIs with the σ of ``S_γ`` (scaled like ``S_γ``, fully correlated). Without
    masses for every VOI of a shared organ, its VOIs get the organ's dose, labelled so. VOIs
    without an organ (lesions, bladder, vessels) get no S-value dose.

    Parameters
    ----------
    tia : dict of str to (float, float)
        VOI → (TIA, σ), MBq·h.
    masses_g : dict of str to float
        VOI → mass, g (from the CT density).
    total_tia_mbq_h : float
        TIA of the whole image (field of view), MBq·h.
    nuclide, phantom : str
        Nuclide and reference phantom of the S-value table.

    Returns
    -------
    doses : dict of str to (float, float)
        VOI → (mean absorbed dose, σ), Gy.
    info : dict
        JSON-ready: ``phantom``, ``method``, source ``organs`` TIAs (MBq·h, ``remainder``
        included), organ ``masses_g``, ``vois`` (per VOI: ``svalue_organ``, ``basis`` =
        ``"organ"`` / ``"voi"`` / ``"organ (shared, VOI masses missing)"``, ``mass_g``,
        ``tia_mbq_h``, and for ``"voi"`` the parts ``self_gy``, ``from_organ_vois_gy``,
        ``from_other_sources_gy``), ``shared_organs`` (organ → VOIs, masses, S-values used)
        and the table ``provenance``.

    References
    ----------
    Bolch et al. 2009, MIRD Pamphlet No. 21, J Nucl Med 50:477, doi:10.2967/jnumed.108.056036.
    Snyder WS, Ford MR, Warner GG, Watson SB. MIRD Pamphlet No. 11. SNM, New York, 1975
    (self absorbed fraction ∝ m^(1/3) for photons, 1 for electrons).
    Stabin MG, Sparks RB, Crowe E. OLINDA/EXM. J Nucl Med 2005;46:1023-1027 (organ-mass
    scaling of S-values).

    Examples
    --------
    >>> doses, info = organ_svalue_doses(  # doctest: +SKIP
    ...     {"kidney_left": (900.0, 50.0), "kidney_right": (450.0, 30.0)},
    ...     {"kidney_left": 150.0, "kidney_right": 150.0}, 30000.0, "Lu-177", "adult_male")
    >>> info["vois"]["kidney_left"]["basis"]  # doctest: +SKIP
    'voi'
    """
    from theradose.dose.mc import load_svalue_table, organ_doses

    src: dict[str, float] = {}
    var: dict[str, float] = {}
    mass: dict[str, float] = {}
    members: dict[str, list[str]] = {}
    for name, (value, sd) in tia.items():
        organ = SVALUE_ORGAN.get(name)
        if organ is None or not np.isfinite(value):
            continue
        members.setdefault(organ, []).append(name)
        src[organ] = src.get(organ, 0.0) + max(float(value), 0.0)
        var[organ] = var.get(organ, 0.0) + float(sd if np.isfinite(sd) else 0.0) ** 2
        if name in masses_g:
            mass[organ] = mass.get(organ, 0.0) + float(masses_g[name])
    if not src:
        return {}, {"note": "no VOI maps to an organ of the S-value tables"}
    rest = max(float(total_tia_mbq_h) - sum(src.values()), 0.0)
    tias = {**src, "remainder": rest}
    sigmas = {k: float(np.sqrt(v)) for k, v in var.items()}
    table = load_svalue_table(nuclide, phantom)
    res = organ_doses(tias, nuclide, phantom, masses_g=mass or None, tia_sigma=sigmas,
                      table=table)
    scaled = table.scaled(mass) if mass else table  # the table organ_doses used

    out: dict[str, tuple[float, float]] = {}
    per_voi: dict[str, dict[str, Any]] = {}
    shared: dict[str, dict[str, Any]] = {}
    for organ, names in members.items():
        if organ not in res.targets:
            continue
        m = [masses_g.get(n) for n in names]
        base = {n: {"svalue_organ": organ, "mass_g": masses_g.get(n),
                    "tia_mbq_h": max(float(tia[n][0]), 0.0)} for n in names}
        if len(names) == 1:
            out[names[0]] = res.dose(organ)
            per_voi[names[0]] = {**base[names[0]], "basis": "organ"}
            continue
        if not all(v is not None and np.isfinite(v) and v > 0 for v in m):
            for n in names:
                out[n] = res.dose(organ)
                per_voi[n] = {**base[n], "basis": "organ (shared, VOI masses missing)"}
            shared[organ] = {"vois": names, "method": "organ dose for each VOI (no masses)"}
            continue
        src_var = _source_variances(scaled, res, tias, sigmas, organ)
        doses, parts, record = _split_organ(scaled, res, organ, names, m, tia, src_var)
        out.update(doses)
        for n in names:
            per_voi[n] = {**base[n], "basis": "voi", **parts[n]}
        shared[organ] = record
    info = {"phantom": phantom,
            "method": "MIRD schema D = sum_s TIA_s S(t<-s) on the S-value organs"
                      + (f"; {_SPLIT_METHOD}" if shared else ""),
            "organs": {k: float(v) for k, v in tias.items()},
            "masses_g": mass, "vois": per_voi, "shared_organs": shared,
            "provenance": getattr(res, "provenance", {})}
    return out, info


def _source_variances(tab, res, tias: dict[str, float], sigmas: dict[str, float],
                      target: str) -> dict[str, float]:
    """σ² (Gy²) of each source's term in the dose of ``target``, as in ``organ_doses``."""
    organ_sources = [k for k in tias if k != "remainder"]
    rem = tab.remainder_column(organ_sources) if "remainder" in tias else None
    i = tab.index(target)
    out: dict[str, float] = {}
    for s in res.sources:
        if s == "remainder":
            sv, sg = float(rem[0][i]), float(rem[1][i])
        else:
            j = tab.index(s)
            sv, sg = float(tab.s_total[i, j]), float(tab.sigma_total[i, j])
        a, sa = tias[s] * _SAS, sigmas.get(s, 0.0) * _SAS
        out[s] = ((a * sg) ** 2 + (sv * sa) ** 2) * _MGY_TO_GY**2
    return out


def _split_organ(tab, res, organ: str, names: list[str], masses: list[float],
                 tia: dict[str, tuple[float, float]], src_var: dict[str, float]):
    """Doses of the VOIs ``names`` that together make S-value organ ``organ`` (see above)."""
    i = tab.index(organ)
    s_e = float(tab.s_electron[i, i] + tab.s_alpha[i, i])      # mGy/(MBq·s), scaled to M
    s_g, sig_g = float(tab.s_photon[i, i]), float(tab.sigma_photon[i, i])
    m = np.asarray(masses, dtype=np.float64)
    big_m = float(m.sum())
    kappa = float((big_m**2 - np.sum(m ** (4.0 / 3.0)) * big_m ** (2.0 / 3.0))
                  / np.sum(m * (big_m - m)))
    c, sig_c = kappa * s_g, kappa * sig_g
    a = np.array([max(float(tia[n][0]), 0.0) for n in names]) * _SAS          # MBq·s
    sa = np.array([float(tia[n][1]) if np.isfinite(tia[n][1]) else 0.0
                   for n in names]) * _SAS
    j_organ = res.sources.index(organ)
    other = float(np.delete(res.contributions_gy[i], j_organ).sum())
    other_v = sum(v for s, v in src_var.items() if s != organ)
    doses, parts = {}, {}
    for k, n in enumerate(names):
        r = big_m / m[k]
        s_self = s_e * r + s_g * r ** (2.0 / 3.0)
        sig_self = sig_g * r ** (2.0 / 3.0)
        d_self = a[k] * s_self * _MGY_TO_GY
        mask = np.arange(len(names)) != k
        d_cross = float(a[mask].sum()) * c * _MGY_TO_GY
        # self and cross S come from the same Monte Carlo S_γ: their σ add linearly; the TIAs'
        # σ are independent
        v_s = (a[k] * sig_self + float(a[mask].sum()) * sig_c) ** 2
        v_a = (s_self * sa[k]) ** 2 + float(np.sum((c * sa[mask]) ** 2))
        v = (v_s + v_a) * _MGY_TO_GY**2 + other_v
        doses[n] = (float(d_self + d_cross + other), float(np.sqrt(v)))
        parts[n] = {"self_gy": float(d_self), "from_organ_vois_gy": d_cross,
                    "from_other_sources_gy": other, "s_self_mgy_per_mbq_s": float(s_self)}
    record = {"vois": list(names), "masses_g": dict(zip(names, m.tolist(), strict=True)),
              "organ_mass_g": big_m,
              "s_electron_alpha_self_mgy_per_mbq_s": s_e,
              "s_photon_self_mgy_per_mbq_s": s_g,
              "s_photon_cross_between_vois_mgy_per_mbq_s": c,
              "method": _SPLIT_METHOD}
    return doses, parts, record


def dose_stage(tia: Volume, density: Volume, labels: LabelMap, nuclide: str,
               engines: list[str], options: dict[str, dict[str, Any]],
               organ_tia: dict[str, tuple[float, float]], phantom: str
               ) -> tuple[dict[str, Any], dict[str, dict[str, tuple[float, float]]],
                          dict[str, Any]]:
    """Run the configured engines.

    Returns
    -------
    maps : dict
        Engine name → :class:`~theradose.dose.DoseResult` (voxel engines only).
    per_voi : dict
        Engine name → {VOI: (mean Gy, σ Gy)}.
    info : dict
        Engine name → provenance (JSON-ready).

    """
    from theradose.dose import get_engine

    maps: dict[str, Any] = {}
    per_voi: dict[str, dict[str, tuple[float, float]]] = {}
    info: dict[str, Any] = {}
    masses: dict[str, float] = {}
    for i, name in enumerate(engines):
        if name == "organ_svalues":
            continue
        eng = get_engine(name, field=f"dose.engines[{i}]", **options.get(name, {}))
        res = eng.compute(tia, density, nuclide, labels=labels)  # σ: tia.sigma
        maps[name] = res
        per_voi[name] = {v.name: (float(v.mean_gy), float(v.sigma_gy)) for v in res.voi}
        masses = masses or {v.name: float(v.mass_g) for v in res.voi}
        info[name] = res.provenance
    if "organ_svalues" in engines:
        if not masses:  # mass from the density map
            vml = labels.geometry.voxel_volume_ml
            masses = {n: float(np.sum(density.array[m]) * vml)
                      for n, m in labels.masks().items()}
        total = float(np.sum(tia.array, dtype=np.float64))
        try:
            per_voi["organ_svalues"], info["organ_svalues"] = organ_svalue_doses(
                organ_tia, masses, total, nuclide, phantom)
        except InputError as exc:
            log.warning("organ S-value doses skipped: %s", exc)
            info["organ_svalues"] = {"error": str(exc)}
            per_voi["organ_svalues"] = {}
    return maps, per_voi, info
