"""Sphere model for lesions: self-irradiation S-values of uniformly filled spheres.

A sphere of mass ``m`` (g) and density ``ρ`` (g/cm³) holds a uniformly distributed nuclide. For
each emission class the absorbed fraction is obtained from the class's radial dose point kernel
(energy absorbed per decay in spherical shells around a point source in the infinite medium) and
the geometric reduction factor of a sphere (Berger 1971; Loevinger et al. 1988):

    φ(R) = (1/E_emit) ∫_0^{2R} (dE/dr)(r) ψ(r; R) dr,
    ψ(r; R) = 1 − 3r/(4R) + r³/(16R³) for r < 2R, 0 beyond,

where ``ψ(r; R)`` is the probability that a point at distance ``r``, in a random direction from a
random point of the sphere, also lies in the sphere. ``dE/dr`` is constant within a kernel shell,
so the integral is evaluated exactly with the antiderivative
``Ψ(r) = r − 3r²/(8R) + r⁴/(64R³)`` (``Ψ(r ≥ 2R) = 3R/4``). The S-value (mean absorbed dose in
the sphere per decay in it) is

    S = Σ_c Δ_c φ_c / m,

reported in mGy/(MBq·s) (DESIGN.md).

Electrons (β, internal conversion, Auger) use the electron dose point kernel of
:mod:`theradose.dose._electron_kernel`; photons (γ, X, annihilation) the photon kernel of
:mod:`theradose.dose._photon_kernel`; both are computed once for the medium at its nominal density
and scaled to the sphere's density (O'Connor's theorem, :meth:`RadialKernel.density_scaled`).

Approximations
--------------
* **Photons, "kernel" method (default).** The infinite-medium photon kernel includes photons that
  scatter outside the sphere and come back. For an isolated sphere (in vacuum) the kernel method
  therefore *overestimates* the photon absorbed fraction; for a lesion embedded in tissue that
  back-scatter is real, and the kernel method is consistent with voxel S-value dosimetry.
  ``photon_method="isolated"`` instead transports the photons directly in the isolated sphere
  (:mod:`theradose.dose._sphere_photons`, seeded Monte Carlo), as the published sphere models
  do. ``docs/dose-sphere.md`` gives the size of the difference.
* **Alphas** deposit their energy locally (φ = 1). Alpha ranges in water are 40–100 µm, so for
  a 0.01 g unit-density sphere (R = 1.34 mm) the true φ is 0.95–0.99 (a straight track of length
  L loses between 3L/(8R) and 3L/(4R)); above 1 g (R ≥ 6.2 mm) the error is < 1 %.
* Bremsstrahlung produced by electrons is not transported by the electron kernel
  (:attr:`RadialKernel.escaped_kev`) and counts as escaping the sphere.

References
----------
Berger MJ. Distribution of absorbed dose around point sources of electrons and beta particles in
water and other media. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.

Loevinger R, Budinger TF, Watson EE. MIRD Primer for Absorbed Dose Calculations. Society of
Nuclear Medicine, New York, 1988 (geometric reduction factor for a sphere).

Stabin MG, Konijnenberg MW. Re-evaluation of absorbed fractions for photons and electrons in
spheres of various sizes. J Nucl Med 2000;41(1):149-160. PMID 10647618.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from theradose.dose._media import check_density, get_medium
from theradose.dose._point_kernel import KEV_TO_J, RadialKernel
from theradose.errors import InputError, TheradoseWarning
from theradose.nuclides import Nuclide, get_nuclide

__all__ = [
    "SPHERE_CLASSES",
    "SphereResult",
    "sphere_absorbed_fraction",
    "sphere_radius_mm",
    "sphere_s_value",
    "sphere_s_values",
]

#: Sphere masses accepted, g: from 1 pg (a sphere of 6 µm radius at 1 g/cm³, a single cell) to
#: 1e9 g (a 6.2 m sphere, far beyond the 73 kg ICRP-89 reference adult, where φ → 1: the
#: large-sphere limit stays reachable); beyond, ``m/ρ`` and the radius overflow or underflow
#: (1e308 g gave NaN S-values).
MASS_RANGE_G = (1e-12, 1e9)

#: Largest photon Monte Carlo seed: 32 bits, as ``simulate`` and the pipeline configuration.
MAX_SEED = 2**32 - 1

#: Emission classes the sphere model knows.
SPHERE_CLASSES: tuple[str, ...] = ("electron", "photon", "alpha")
_PHOTON_METHODS: tuple[str, ...] = ("kernel", "isolated")

_PHOTON_APPROX = {
    "kernel": "infinite-medium photon kernel: includes scatter returning from outside the sphere,"
              " so it overestimates the photon absorbed fraction of an isolated sphere",
    "isolated": "isolated sphere in vacuum, direct photon Monte Carlo with local deposition of "
                "electron energy (kerma); no scatter from surrounding tissue",
}

#: keV per decay and g -> mGy/(MBq*s): J/keV * 1e6 decays/(MBq*s) * 1e3 mGy/Gy / 1e-3 kg/g.
_KEV_PER_G_TO_MGY_PER_MBQ_S = KEV_TO_J * 1e12

_REFERENCES = (
    "Berger MJ. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23",
    "Loevinger R, Budinger TF, Watson EE. MIRD Primer for Absorbed Dose Calculations. SNM 1988",
    "Stabin MG, Konijnenberg MW. J Nucl Med 2000;41(1):149-160",
)


# --------------------------------------------------------------------------- geometry
def sphere_radius_mm(mass_g: float | np.ndarray, density_g_cm3: float = 1.0) -> np.ndarray:
    """Radius of a sphere of given mass and density, mm.

    Parameters
    ----------
    mass_g : float or (M,) array
        Mass, g (> 0).
    density_g_cm3 : float
        Density, g/cm³ (> 0).

    Returns
    -------
    ndarray
        Radius, mm: ``10 · (3 m / (4 π ρ))^(1/3)``.
    """
    m = _check_masses(mass_g)
    rho = _check_positive(density_g_cm3, "density_g_cm3", "g/cm3")
    return 10.0 * np.cbrt(3.0 * m / (4.0 * math.pi * rho))


def _psi_antiderivative(r: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """∫_0^r ψ(t; R) dt, exact, with r clipped to the support [0, 2R] (arrays broadcast)."""
    x = np.clip(r, 0.0, 2.0 * radius)
    return x - 3.0 * x * x / (8.0 * radius) + x ** 4 / (64.0 * radius ** 3)


def _shell_psi_means(kernel: RadialKernel, radii_mm: np.ndarray) -> np.ndarray:
    """Mean of ψ(r; R) over every kernel shell, shape (M radii, N shells)."""
    edges = kernel.r_edges_mm[None, :]
    big_r = radii_mm[:, None]
    cum = _psi_antiderivative(edges, big_r)
    return np.diff(cum, axis=1) / np.diff(kernel.r_edges_mm)[None, :]


def _absorbed_fractions(kernel: RadialKernel, radii_mm: np.ndarray) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """Absorbed fractions and their kernel-statistics σ for radii (M,), both shape (M,)."""
    if kernel.emitted_kev <= 0:
        raise InputError(f"kernel emits no energy: got {kernel.emitted_kev} keV per decay, "
                         "expected > 0", field="emitted_kev")
    psi = _shell_psi_means(kernel, radii_mm)
    phi = psi @ kernel.shell_kev / kernel.emitted_kev
    if kernel.sigma_shell_kev is None:
        sig = np.zeros_like(phi)
    else:
        sig = np.sqrt((psi ** 2) @ (kernel.sigma_shell_kev ** 2)) / kernel.emitted_kev
    _warn_if_truncated(kernel, radii_mm)
    return phi, sig


def _warn_if_truncated(kernel: RadialKernel, radii_mm: np.ndarray) -> None:
    """Warn when energy beyond the kernel grid could have been absorbed in the sphere (> 1 %)."""
    if kernel.escaped_kev <= 0 or kernel.emitted_kev <= 0:
        return
    big_r = float(np.max(radii_mm))
    x = kernel.r_max_mm
    psi_edge = 0.0 if x >= 2 * big_r else 1 - 3 * x / (4 * big_r) + x ** 3 / (16 * big_r ** 3)
    bound = kernel.escaped_kev * psi_edge / kernel.emitted_kev
    if bound > 0.01:
        warnings.warn(
            f"{'+'.join(kernel.classes)} kernel ends at {x:.4g} mm, inside the sphere diameter "
            f"{2 * big_r:.4g} mm; the {kernel.escaped_kev:.4g} keV per decay beyond it is counted "
            f"as escaping (absorbed fraction low by up to {bound:.2%})",
            TheradoseWarning, stacklevel=3)


def sphere_absorbed_fraction(kernel: RadialKernel, radius_mm: float) -> float:
    """Self-absorbed fraction of a uniform source in a sphere, from a radial point kernel.

    Parameters
    ----------
    kernel : RadialKernel
        Point kernel of the sphere's medium and density (keV per decay per shell).
    radius_mm : float
        Sphere radius, mm (> 0).

    Returns
    -------
    float
        ``φ = (1/E_emit) Σ_shells E_i ⟨ψ(r; R)⟩_i`` with ``ψ(r; R) = 1 − 3r/(4R) + r³/(16R³)``
        for ``r < 2R`` and 0 beyond, integrated exactly within each shell (``dE/dr`` constant
        there). Energy beyond the kernel grid (:attr:`RadialKernel.escaped_kev`) counts as
        escaping.

    Raises
    ------
    InputError
        If ``radius_mm`` is not a finite number > 0 or the kernel emits no energy.

    References
    ----------
    Berger MJ. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
    Loevinger R, Budinger TF, Watson EE. MIRD Primer for Absorbed Dose Calculations. SNM 1988.

    Examples
    --------
    >>> import numpy as np
    >>> k = RadialKernel(np.array([0.0, 1.0]), np.array([100.0]), 100.0, "water", 1.0,
    ...                  ("electron",))
    >>> round(sphere_absorbed_fraction(k, 0.4), 6)  # 3R/(4 r0) for 2R <= r0
    0.3
    """
    if not isinstance(kernel, RadialKernel):
        raise InputError(f"expected a RadialKernel, got {type(kernel).__name__}",
                         field="kernel")
    r = _check_positive(radius_mm, "radius_mm", "mm")
    phi, _ = _absorbed_fractions(kernel, np.array([r]))
    return float(phi[0])


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SphereResult:
    """S-value of a uniformly filled sphere (self-irradiation).

    Attributes
    ----------
    nuclide : str
        ICRP-107 nuclide name.
    mass_g : float
        Sphere mass, g.
    radius_mm : float
        Sphere radius, mm.
    density_g_cm3 : float
        Sphere density, g/cm³.
    medium : str
        Medium of the kernels (:data:`theradose.dose.MEDIA`).
    s_value_mgy_per_mbq_s : float
        Mean absorbed dose in the sphere per cumulated activity in it, mGy/(MBq·s).
    s_value_sigma_mgy_per_mbq_s : float
        Standard deviation of the S-value from the kernels' Monte-Carlo statistics only
        (0 for deterministic kernels), mGy/(MBq·s).
    absorbed_fraction : dict of str to float
        Absorbed fraction by emission class (only classes that emit energy).
    energy_kev : dict of str to float
        Energy emitted per decay by class, keV.
    provenance : mapping
        Method, approximations, kernel provenance, data sources (JSON-serialisable).
    """

    nuclide: str
    mass_g: float
    radius_mm: float
    density_g_cm3: float
    medium: str
    s_value_mgy_per_mbq_s: float
    s_value_sigma_mgy_per_mbq_s: float
    absorbed_fraction: Mapping[str, float]
    energy_kev: Mapping[str, float]
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def s_value_gy_per_mbq_h(self) -> float:
        """S-value in Gy/(MBq·h) (multiply by a TIA in MBq·h to get Gy)."""
        return self.s_value_mgy_per_mbq_s * 3600.0 * 1e-3

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the document of ``theradose sphere --json``)."""
        return {
            "nuclide": self.nuclide,
            "mass_g": self.mass_g,
            "radius_mm": self.radius_mm,
            "density_g_cm3": self.density_g_cm3,
            "medium": self.medium,
            "s_value_mgy_per_mbq_s": self.s_value_mgy_per_mbq_s,
            "s_value_sigma_mgy_per_mbq_s": self.s_value_sigma_mgy_per_mbq_s,
            "absorbed_fraction": dict(self.absorbed_fraction),
            "energy_kev": dict(self.energy_kev),
            "provenance": dict(self.provenance),
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


# --------------------------------------------------------------------------- kernels
@lru_cache(maxsize=32)
def _point_kernel(nuclide: str, emission_class: str, medium: str, cache: bool,
                  cache_dir: str | None) -> RadialKernel | None:
    """The project's point kernel of one class (disk cache of :mod:`theradose.dose._cache`)."""
    from theradose.dose._vsv import point_kernel

    return point_kernel(nuclide, emission_class, medium, cache=cache, cache_dir=cache_dir)


def sphere_kernels(
    nuclide: str | Nuclide,
    *,
    medium: str = "water",
    classes: Iterable[str] = ("electron", "photon"),
    cache: bool = True,
    cache_dir: str | None = None,
) -> dict[str, RadialKernel]:
    """Point kernels the sphere model uses, at the medium's nominal density.

    The kernels are those of the voxel S-values (:func:`theradose.dose._vsv.point_kernel`:
    :func:`~theradose.dose._electron_kernel.electron_point_kernel` and
    :func:`~theradose.dose._photon_kernel.photon_point_kernel` with their default settings),
    read from the on-disk kernel cache when present and kept in memory for the process.

    Parameters
    ----------
    nuclide : str or Nuclide
        Nuclide.
    medium : str
        Medium name (:data:`theradose.dose.MEDIA`).
    classes : iterable of str
        ``"electron"`` and/or ``"photon"`` (alphas need no kernel); classes the nuclide does not
        emit are left out.
    cache : bool
        Use the on-disk kernel cache.
    cache_dir : str, optional
        Cache folder (default: :func:`theradose.dose._cache.cache_dir`).

    Returns
    -------
    dict of str to RadialKernel
    """
    nuc = nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide)
    med = get_medium(medium)
    cls = _check_classes(classes)
    epd = nuc.energy_per_decay_kev
    out: dict[str, RadialKernel] = {}
    for c in ("electron", "photon"):
        if c in cls and getattr(epd, c) > 0:
            k = _point_kernel(nuc.name, c, med.name, bool(cache),
                              None if cache_dir is None else str(cache_dir))
            if k is not None:
                out[c] = k
    return out


# --------------------------------------------------------------------------- S-values
def sphere_s_values(
    nuclide: str | Nuclide,
    masses_g: Sequence[float] | np.ndarray,
    *,
    density_g_cm3: float = 1.0,
    medium: str = "water",
    classes: Iterable[str] = SPHERE_CLASSES,
    photon_method: str = "kernel",
    kernels: Mapping[str, RadialKernel] | None = None,
    photon_histories: int = 20_000,
    seed: int = 0,
    cache: bool = True,
) -> list[SphereResult]:
    """S-values of uniformly filled spheres of several masses (kernels computed once).

    Parameters
    ----------
    nuclide : str or Nuclide
        Nuclide (any spelling :func:`theradose.nuclides.get_nuclide` accepts).
    masses_g : (M,) sequence of float
        Sphere masses, g (> 0; the model is meant for 0.01–1000 g).
    density_g_cm3 : float
        Density of the spheres, g/cm³ (default 1: unit-density spheres).
    medium : str
        Medium of the kernels (composition); the kernels are density-scaled from the medium's
        nominal density to ``density_g_cm3``.
    classes : iterable of str
        Emission classes to include: any of ``"electron"``, ``"photon"``, ``"alpha"``.
    photon_method : {"kernel", "isolated"}
        ``"kernel"`` (default): infinite-medium photon kernel with the sphere's geometric
        reduction factor (includes scatter returning from outside the sphere: right for a lesion
        embedded in tissue, an upper bound for an isolated sphere). ``"isolated"``: direct
        Monte Carlo photon transport in the isolated sphere (no photon kernel needed).
    photon_histories : int
        Photon histories per sphere for ``photon_method="isolated"``.
    seed : int
        Seed of the ``"isolated"`` photon Monte Carlo (same seed, same numbers).
    cache : bool
        Read/write generated kernels in the on-disk kernel cache (see :func:`sphere_kernels`).
    kernels : mapping of str to RadialKernel, optional
        Precomputed kernels by class (``"electron"``, ``"photon"``) instead of generating them;
        each is density-scaled to ``density_g_cm3`` when its density differs.

    Returns
    -------
    list of SphereResult
        One per mass, in the order given.

    Raises
    ------
    InputError
        Invalid mass, density, class, method, medium; UnknownNuclideError for an unknown
        nuclide.

    References
    ----------
    Stabin MG, Konijnenberg MW. J Nucl Med 2000;41(1):149-160.

    Examples
    --------
    >>> res = sphere_s_values("Lu-177", [1.0, 10.0])  # doctest: +SKIP
    >>> [round(r.s_value_mgy_per_mbq_s, 5) for r in res]  # doctest: +SKIP
    """
    nuc = nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide)
    masses = _check_masses(masses_g)
    rho = _check_positive(density_g_cm3, "density_g_cm3", "g/cm3")
    med = get_medium(medium)
    cls = _check_classes(classes)
    if photon_method not in _PHOTON_METHODS:
        raise InputError(f"unknown photon method: got {photon_method!r}, expected one of "
                         f"{list(_PHOTON_METHODS)}", field="photon_method")
    _check_int(seed, "seed", 0, MAX_SEED)  # checked for every method: never silently ignored
    if photon_method == "isolated":
        _check_int(photon_histories, "photon_histories", 10)
    radii = sphere_radius_mm(masses, rho)
    epd = nuc.energy_per_decay_kev

    kernel_classes = tuple(c for c in cls if not (c == "photon" and photon_method == "isolated"))
    if kernels is None:
        kern = sphere_kernels(nuc, medium=med.name, classes=kernel_classes or ("alpha",),
                              cache=cache)
    else:
        kern = {c: k for c, k in kernels.items() if c in kernel_classes}
        for c, k in kern.items():
            if not isinstance(k, RadialKernel):
                raise InputError(f"expected a RadialKernel, got {type(k).__name__}",
                                 field=f"kernels[{c!r}]")
            if k.nuclide is not None and k.nuclide != nuc.name:
                raise InputError(f"kernel nuclide does not match: got {k.nuclide!r}, expected "
                                 f"{nuc.name!r}", field=f"kernels[{c!r}]")
            if k.medium != med.name:
                raise InputError(f"kernel medium does not match: got {k.medium!r}, expected "
                                 f"{med.name!r} (argument medium)", field=f"kernels[{c!r}]")
        missing = [c for c in ("electron", "photon")
                   if c in kernel_classes and getattr(epd, c) > 0 and c not in kern]
        if missing:
            raise InputError(f"missing kernels: {nuc.name} emits {missing} but got kernels "
                             f"for {sorted(kernels)}", field="kernels")

    phis: dict[str, np.ndarray] = {}
    sigs: dict[str, np.ndarray] = {}
    energy: dict[str, float] = {}
    kprov: dict[str, Any] = {}
    for c, k in kern.items():
        ks = k if math.isclose(k.density_g_cm3, rho) else k.density_scaled(rho)
        phis[c], sigs[c] = _absorbed_fractions(ks, radii)
        energy[c] = float(k.emitted_kev)
        kprov[c] = k.to_dict()
    if "photon" in cls and photon_method == "isolated" and epd.photon > 0:
        from theradose.dose._sphere_photons import isolated_sphere_photon_fractions

        lines = nuc.photon_lines()
        phis["photon"], sigs["photon"] = isolated_sphere_photon_fractions(
            [ln.energy_kev for ln in lines], [ln.yield_per_decay for ln in lines], radii,
            medium=med, density_g_cm3=rho, n_photons=photon_histories, seed=seed)
        energy["photon"] = float(epd.photon)
        kprov["photon"] = {"method": "isolated-sphere photon Monte Carlo (photoelectric, "
                                     "Compton with S(x), Rayleigh, pair; kerma)",
                           "n_photons_per_sphere": photon_histories, "seed": seed,
                           "lines": len(lines)}
    if "alpha" in cls and epd.alpha > 0:
        phis["alpha"] = np.ones_like(radii)
        sigs["alpha"] = np.zeros_like(radii)
        energy["alpha"] = float(epd.alpha)

    order = [c for c in SPHERE_CLASSES if c in phis]
    if not order:
        raise InputError(f"{nuc.name} emits no energy in the classes asked for: got "
                         f"{list(cls)}, it emits "
                         f"{[c for c in SPHERE_CLASSES if getattr(epd, c) > 0]}", field="classes")
    absorbed_kev = sum(energy[c] * phis[c] for c in order)
    sigma_kev = np.sqrt(sum((energy[c] * sigs[c]) ** 2 for c in order))
    s = absorbed_kev * _KEV_PER_G_TO_MGY_PER_MBQ_S / masses
    s_sig = sigma_kev * _KEV_PER_G_TO_MGY_PER_MBQ_S / masses

    prov = _provenance(nuc, med.name, cls, photon_method, kprov, energy)
    return [
        SphereResult(
            nuclide=nuc.name, mass_g=float(m), radius_mm=float(r), density_g_cm3=rho,
            medium=med.name, s_value_mgy_per_mbq_s=float(s[i]),
            s_value_sigma_mgy_per_mbq_s=float(s_sig[i]),
            absorbed_fraction={c: float(phis[c][i]) for c in order},
            energy_kev={c: energy[c] for c in order}, provenance=prov,
        )
        for i, (m, r) in enumerate(zip(masses, radii, strict=True))
    ]


def sphere_s_value(
    nuclide: str | Nuclide,
    mass_g: float,
    *,
    density_g_cm3: float = 1.0,
    medium: str = "water",
    classes: Iterable[str] = SPHERE_CLASSES,
    photon_method: str = "kernel",
    kernels: Mapping[str, RadialKernel] | None = None,
    photon_histories: int = 20_000,
    seed: int = 0,
    cache: bool = True,
) -> SphereResult:
    """S-value of one uniformly filled sphere (self-irradiation), mGy/(MBq·s).

    Parameters as in :func:`sphere_s_values`, with one mass ``mass_g`` (g).

    Returns
    -------
    SphereResult

    Examples
    --------
    >>> r = sphere_s_value("Lu-177", 10.0)  # doctest: +SKIP
    >>> r.s_value_mgy_per_mbq_s  # doctest: +SKIP
    """
    if isinstance(mass_g, (list, tuple, np.ndarray)):
        raise InputError("expected one mass, got a sequence; use sphere_s_values",
                         field="mass_g")
    return sphere_s_values(nuclide, [mass_g], density_g_cm3=density_g_cm3, medium=medium,
                           classes=classes, photon_method=photon_method, kernels=kernels,
                           photon_histories=photon_histories, seed=seed, cache=cache)[0]


# --------------------------------------------------------------------------- helpers
def _provenance(nuc: Nuclide, medium: str, classes: tuple[str, ...], photon_method: str,
                kernels: dict[str, Any], energy: dict[str, float]) -> dict[str, Any]:
    from theradose import __version__

    return {
        "theradose_version": __version__,
        "method": "sphere model: radial point kernel x geometric reduction factor "
                  "psi(r;R) = 1 - 3r/(4R) + r^3/(16R^3), integrated exactly per shell",
        "classes_requested": list(classes),
        "photon_method": photon_method,
        "photon_approximation": _PHOTON_APPROX[photon_method],
        "alpha_approximation": "alpha energy deposited locally (absorbed fraction 1)",
        "electron_approximation": "bremsstrahlung not transported by the electron kernel "
                                  "counts as escaping",
        "kernels": kernels,
        "energy_source": nuc.source,
        "medium": medium,
        "references": list(_REFERENCES),
        "energy_kev_icrp107": {c: float(getattr(nuc.energy_per_decay_kev, c)) for c in energy},
    }


def _check_positive(value: Any, name: str, unit: str) -> float:
    if name == "density_g_cm3":
        return check_density(value, name)
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"must be a finite number > 0 {unit}, got {value!r}", field=name)
    return v


def _check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise InputError(f"must be an integer {rng}, got {value!r}", field=name)
    return int(value)


def _check_masses(masses: Any) -> np.ndarray:
    lo, hi = MASS_RANGE_G
    try:
        m = np.atleast_1d(np.asarray(masses, dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"masses must be numbers in g, got {masses!r}", field="mass_g") from None
    if (m.ndim != 1 or m.size == 0 or not np.all(np.isfinite(m)) or np.any(m < lo)
            or np.any(m > hi)):
        raise InputError(f"masses must be finite numbers in [{lo:g}, {hi:g}] g, got "
                         f"{np.asarray(masses).tolist()!r}", field="mass_g")
    return m


def _check_classes(classes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(classes, str):
        classes = (classes,)
    cls = tuple(dict.fromkeys(str(c).strip().lower() for c in classes))
    bad = [c for c in cls if c not in SPHERE_CLASSES]
    if not cls or bad:
        raise InputError(f"unknown emission classes: got {bad or list(cls)}, "
                         f"expected a non-empty subset of {list(SPHERE_CLASSES)}",
                         field="classes")
    return cls
