"""Computing organ S-value tables on a voxelised anatomy (photon Monte Carlo + local electrons).

For every source organ, decays are spread uniformly per gram over the organ's voxels; the photon
lines of the nuclide are transported with :func:`theradose.dose.mc._transport.simulate_photons`
in the phantom's media (from the CT classes) and densities (the anatomy's); the energy deposited
per decay is summed over each target organ's voxels. The statistical σ comes from ``n_batches``
independent runs (batch method). Electrons and alphas follow the local-deposition rules of
:mod:`theradose.dose.mc._svalues`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from theradose import __version__
from theradose.dose.mc._emission import emission_spectrum
from theradose.dose.mc._svalues import (
    KEV_PER_G_TO_MGY_PER_MBQ_S,
    ORGANS,
    TOTAL_BODY,
    WALL_CONTENT,
    OrganDef,
    SValueTable,
    organs_for,
)
from theradose.errors import InputError
from theradose.nuclides import Nuclide, get_nuclide

__all__ = [
    "NON_RECIPROCAL",
    "apply_reciprocity",
    "compute_svalue_table",
    "local_deposition_matrix",
    "organ_membership",
]

#: Organs whose photon S-values are not reciprocal with the others: their voxels hold media of
#: another μ_en/ρ (lung, bone at the spongiosa border) or span several media (total body).
NON_RECIPROCAL: frozenset[str] = frozenset({"lungs", "red_marrow", TOTAL_BODY})


def apply_reciprocity(s: np.ndarray, sigma: np.ndarray, organs: Sequence[str], *,
                      max_rel_sigma: float = 0.10,
                      exclude: frozenset[str] = NON_RECIPROCAL,
                      ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Replace poorly sampled photon cross S-values by their reciprocal partner.

    For soft-tissue organ pairs, ``S(t ← s) = S(s ← t)`` (reciprocity of the specific absorbed
    fraction, exact in a homogeneous medium). Where the relative σ of one direction exceeds
    ``max_rel_sigma`` and twice that of the other (or it scored nothing), the better estimate
    is used for both, as Cristy and Eckerman did for small or distant targets.

    Parameters
    ----------
    s, sigma : (N, N) ndarray
        Photon S-values and σ, ``[target, source]``.
    organs : sequence of str
        Organ names.
    max_rel_sigma : float
        Relative σ above which an entry may be replaced.
    exclude : frozenset of str
        Organs never paired (:data:`NON_RECIPROCAL`).

    Returns
    -------
    s, sigma : (N, N) ndarray
        Copies with the replacements.
    replaced : list of [target, source]
        Entries taken from their partner.

    References
    ----------
    Loevinger R, Budinger TF, Watson EE. MIRD Primer for Absorbed Dose Calculations. SNM 1988
    (reciprocity theorem).
    Cristy M, Eckerman KF. ORNL/TM-8381, 1987. doi:10.2172/6233735.
    """
    s, sigma = s.copy(), sigma.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(s > 0, sigma / s, np.inf)
    replaced: list[list[str]] = []
    ok = [o not in exclude for o in organs]
    for i in range(len(organs)):
        for j in range(i + 1, len(organs)):
            if not (ok[i] and ok[j]):
                continue
            for a, b in (((i, j), (j, i)), ((j, i), (i, j))):
                if rel[a] > max_rel_sigma and rel[a] > 2 * rel[b]:
                    s[a], sigma[a] = s[b], sigma[b]
                    replaced.append([organs[a[0]], organs[a[1]]])
                    break
    return s, sigma, replaced


def local_deposition_matrix(organs: Sequence[str], masses_g: dict[str, float],
                            energy_kev: float) -> np.ndarray:
    """Electron (or alpha) S-values for local deposition, ``[target, source]`` mGy/(MBq·s).

    ``S(s ← s) = Δ/m_s``; ``S(t ← TB) = S(TB ← s) = Δ/m_TB``; walled organs of
    :data:`WALL_CONTENT`: ``S(wall ← content) = k Δ/m_content``; zero elsewhere.

    Parameters
    ----------
    organs : sequence of str
        Organ names (targets = sources).
    masses_g : dict of str to float
        Organ masses, g.
    energy_kev : float
        Energy per decay deposited locally, keV.
    """
    n = len(organs)
    e = float(energy_kev) * KEV_PER_G_TO_MGY_PER_MBQ_S
    m = np.array([masses_g[o] for o in organs], dtype=float)
    s = np.diag(e / m)
    if TOTAL_BODY in organs:
        tb = list(organs).index(TOTAL_BODY)
        s[tb, :] = e / m[tb]
        s[:, tb] = e / m[tb]
    for (wall, content), k in WALL_CONTENT.items():
        if wall in organs and content in organs:
            s[list(organs).index(wall), list(organs).index(content)] = k * e / masses_g[content]
    assert s.shape == (n, n)
    return s


def _fine_regions(anatomy: Any, organ: OrganDef) -> list[str]:
    names = anatomy.labels.labels  # name -> value
    out: list[str] = []
    for r in organ.regions:
        if r == "*":
            return list(names)
        if r in anatomy.groups:
            out += [m for m in anatomy.groups[r] if m in names]
        elif r in names:
            out.append(r)
    return out


def organ_membership(anatomy: Any, organs: Sequence[OrganDef]) -> np.ndarray:
    """``(L, N)`` bool matrix: label value ``v`` belongs to organ ``n``.

    Raises
    ------
    InputError
        If an organ has no voxel in the anatomy.
    """
    lut = anatomy.labels.labels
    n_labels = int(max(max(lut.values(), default=0), int(anatomy.labels.array.max()))) + 1
    member = np.zeros((n_labels, len(organs)), bool)
    present = np.bincount(anatomy.labels.array.ravel(), minlength=n_labels) > 0
    for j, o in enumerate(organs):
        vals = [lut[r] for r in _fine_regions(anatomy, o)]
        member[vals, j] = True
        if not np.any(member[:, j] & present):
            raise InputError(f"organ {o.name!r} has no voxel (regions {list(o.regions)}); use a "
                             "smaller voxel size", field="voxel_mm")
    return member


def _organ_mass(anatomy: Any, organ: OrganDef) -> float:
    if organ.mass_key == "mass_in_fov":
        return float(anatomy.params["mass_in_fov_g"])
    return float(anatomy.masses_g[organ.mass_key])


def _phantom_of(anatomy: Any):
    from theradose.dose.mc._phantom import VoxelPhantom

    ct = VoxelPhantom.from_ct(anatomy.hu)
    return VoxelPhantom(ct.geometry, ct.material, np.asarray(anatomy.density.array, float),
                        ct.media)


def compute_svalue_table(
    nuclide: str | Nuclide,
    phantom: str = "adult_male",
    *,
    anatomy: Any | None = None,
    organs: Sequence[str] | None = None,
    chain: bool = False,
    voxel_mm: float = 4.0,
    n_histories: int = 200_000,
    n_batches: int = 8,
    seed: int = 0,
    backend: str = "numpy",
    transport: Callable[..., Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SValueTable:
    """Organ S-value table of a phantom: photon Monte Carlo + local electrons/alphas.

    Parameters
    ----------
    nuclide : str or Nuclide
        Parent nuclide.
    phantom : {"adult_male", "adult_female"}
        Reference phantom (:func:`theradose.phantoms.reference_phantom`).
    anatomy : Anatomy, optional
        Use this anatomy instead of building the reference phantom (``phantom`` is then only a
        label; organs absent from it must be left out with ``organs``).
    organs : sequence of str, optional
        Subset of the phantom's organs (default: all of :data:`ORGANS` the phantom has).
    chain : bool
        Include progeny in equilibrium (per parent decay).
    voxel_mm : float
        Voxel size of the reference phantom, mm.
    n_histories : int
        Photons per source organ (all batches together).
    n_batches : int
        Independent runs per source (≥ 2) for the σ of the mean.
    seed : int
        Base seed; run ``b`` of source ``j`` uses a seed derived from ``(seed, j, b)``.
    backend : {"numpy", "torch"}
        Transport backend.
    transport : callable, optional
        Replacement for :func:`simulate_photons` (same signature and result fields).
    progress : callable, optional
        Called with a one-line status after each source (the script prints it).

    Returns
    -------
    SValueTable

    Raises
    ------
    InputError
        Unknown phantom or organ, too few histories or batches, an organ without voxels.
    """
    from theradose.phantoms import reference_phantom

    nuc = nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide)
    defs = organs_for(phantom)
    if organs is not None:
        by_name = {o.name: o for o in ORGANS}
        unknown = [o for o in organs if o not in by_name]
        if unknown:
            raise InputError(f"unknown organ {unknown[0]!r}; known: "
                             f"{', '.join(o.name for o in ORGANS)}", field="organs")
        defs = tuple(by_name[o] for o in organs)
    if not isinstance(n_batches, int) or n_batches < 2:
        raise InputError(f"expected an integer >= 2, got {n_batches!r}", field="n_batches")
    if not isinstance(n_histories, int) or n_histories < 10 * n_batches:
        raise InputError(f"expected an integer >= 10 x n_batches, got {n_histories!r}",
                         field="n_histories")
    t0 = time.perf_counter()
    anat = reference_phantom(phantom, voxel_mm=voxel_mm) if anatomy is None else anatomy
    names = tuple(o.name for o in defs)
    member = organ_membership(anat, defs)                          # (L, N)
    lab = anat.labels.array
    rho = np.asarray(anat.density.array, float)
    voxel_ml = float(np.prod(anat.geometry.spacing_mm)) / 1000.0
    mass_by_label = np.bincount(lab.ravel(), weights=rho.ravel(), minlength=member.shape[0])
    photon_mass = mass_by_label * voxel_ml @ member                # (N,) g
    masses = {o.name: _organ_mass(anat, o) for o in defs}
    spec = emission_spectrum(nuc, chain=chain)
    s_e = local_deposition_matrix(names, masses, spec.electron_kev)
    s_a = local_deposition_matrix(names, masses, spec.alpha_kev)
    n = len(names)
    s_p = np.zeros((n, n))
    sig_p = np.zeros((n, n))
    hist_per_s: list[float] = []
    if spec.photon_kev > 0:
        if transport is None:
            from theradose.dose.mc._transport import simulate_photons as transport
        vox_phantom = _phantom_of(anat)
        per_batch = n_histories // n_batches
        for j in range(n):
            src = np.where(member[lab, j], rho, 0.0)
            e_b = np.empty((n_batches, n))
            for b in range(n_batches):
                sd = int(np.random.SeedSequence([seed, j, b]).generate_state(1)[0])
                res = transport(vox_phantom, src, spec, n_histories=per_batch, seed=sd,
                                n_batches=2, backend=backend)
                by_label = np.bincount(lab.ravel(), weights=res.energy_kev.ravel(),
                                       minlength=member.shape[0])
                e_b[b] = by_label @ member                          # keV per decay, (N,)
                hist_per_s.append(res.histories_per_s)
            conv = KEV_PER_G_TO_MGY_PER_MBQ_S / photon_mass
            s_p[:, j] = e_b.mean(axis=0) * conv
            sig_p[:, j] = e_b.std(axis=0, ddof=1) / np.sqrt(n_batches) * conv
            if progress is not None:
                progress(f"{nuc.name} {phantom}: source {names[j]} done "
                         f"({j + 1}/{n}, {time.perf_counter() - t0:.0f} s)")
    s_p, sig_p, replaced = apply_reciprocity(s_p, sig_p, names)
    elapsed = time.perf_counter() - t0
    prov = {
        "phantom_version": {"template": anat.params.get("template"),
                            "voxel_mm": anat.params.get("voxel_mm"),
                            "organ_scale": anat.params.get("organ_scale"),
                            "built_by": f"theradose {__version__}"},
        "decay_data": dict(spec.provenance),
        "code_version": f"theradose {__version__}",
        "method": ("photons: voxel Monte Carlo (theradose.dose.mc simulate_photons), source "
                   "uniform per gram in the source organ, energy summed over the target "
                   "voxels / their mass; electrons and alphas: local deposition (self, total "
                   "body, ICRP-30 walled organs)"),
        "n_histories_per_source": int(n_histories),
        "n_batches": int(n_batches),
        "seed": int(seed),
        "backend": backend,
        "run_time_s": round(elapsed, 1),
        "histories_per_s": round(float(np.mean(hist_per_s)), 0) if hist_per_s else None,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reciprocity_replaced": replaced,
        "reciprocity_rule": ("photon cross S-values of soft-tissue pairs with relative sigma > "
                             "10 % and > 2x that of S(s<-t) are replaced by S(s<-t)"),
        "organ_notes": {o.name: o.note for o in defs if o.note},
    }
    return SValueTable(
        phantom=phantom, nuclide=nuc.name, organs=names, s_electron=s_e, s_alpha=s_a,
        s_photon=s_p, sigma_photon=sig_p, masses_g=masses,
        photon_masses_g={o: float(m) for o, m in zip(names, photon_mass, strict=True)},
        energy_per_decay_kev={"electron": spec.electron_kev, "alpha": spec.alpha_kev,
                              "photon": spec.photon_kev},
        chain=chain, provenance=prov)
