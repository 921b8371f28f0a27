"""From a dose in the kernel medium to the dose in the voxel's own material (density scaling).

A voxel S-value kernel gives ``D_k(v)``, the dose the target voxel would receive if it were made
of the kernel's medium (density ``ρ_k``). What the voxel of density ``ρ(v)`` actually receives
depends on the particle and on how its range compares with the voxel:

**Charged particles (electrons, alphas) in tissue, lung and bone — ρ ≥ ρ_c.** The ranges are
short against the voxel (CSDA range of the mean Lu-177 β, 134 keV: 0.23 mm in water, 0.9 mm in
inflated lung), so the energy the kernel puts in the voxel is absorbed in it and only its mass
changes: ``D = D_k·ρ_k/ρ`` (charged-particle equilibrium at the voxel scale; the established
density correction of Dieudonné et al. 2013 and of the multiple-VSV method of Lee et al. 2018).

**Gas: air outside the body, trachea, bowel gas — ρ < ρ_c.** The same electrons cross the voxel
almost without losing energy (134 keV: 19 cm in air against a 3-5 mm voxel), so the
energy the kernel puts there is *not* absorbed there: it is carried to the far wall. A gas
voxel is a Bragg–Gray cavity: it does not perturb the electron fluence of the surrounding
medium, and its dose is that of the medium times the mass collision stopping-power ratio,
``D = D_k · s_gas,k`` (Attix 1986, ch. 10; Spencer & Attix 1955), with ``s_air,water ≈ 0.88``
for the electrons of therapeutic β emitters (:func:`stopping_power_ratio`). Applying ``ρ_k/ρ``
there instead multiplies the cross-dose leaking from the neighbouring tissue by ~830 (air at
0.0012 g/cm³) and puts the largest "doses" of the image in air. (``s·D_k`` is the dose the gas
would get if the fluence were that of tissue filling it; the dose to the gas itself next to an
active wall is higher — electrons leaving the wall stream across the gas without loss, up to
``s`` × the wall's surface dose — but it has no clinical meaning, and the rule keeps gas below
the tissue dose around it.)

The boundary ``ρ_c`` (:data:`DEFAULT_CAVITY_DENSITY_G_CM3`, 0.05 g/cm³) is the density of
-950 HU on the Schneider et al. (2000) calibration: the air/lung boundary of
:data:`theradose.materials.DEFAULT_MATERIAL_CLASSES` (a Schneider bin limit), which is also the
threshold that separates air spaces from aerated lung parenchyma in CT densitometry (Gevenois et
al. 1996). It agrees with the range criterion: the Bragg–Gray condition holds when the electron
range in the voxel material exceeds the voxel's mean chord (``R_CSDA/ρ > 2a/3``, a cube of side
``a``); for the mean Lu-177 β (R = 0.023 g/cm²) and 4-5 mm voxels that is ρ < 0.07-0.09 g/cm³.
Inflated lung (0.26 g/cm³, -850 to -700 HU: 0.15-0.31 g/cm³) and every other tissue keep
``ρ_k/ρ``. Noise in CT air (±20 HU → 0-0.02 g/cm³) stays below ρ_c.

**Photons.** Their ranges exceed any voxel, so a voxel's photon dose is its collision kerma,
``Φ·E·(μ_en/ρ)`` (kerma ≈ dose: secondary electrons of < 210 keV photons range < 0.5 mm in
water), which depends on the voxel's composition but not on its density. With
``photon_rule="kerma"`` the photon part of the kernel dose is scaled by the ratio of mass
energy-absorption coefficients of the voxel's medium (from its density: air below ρ_c, then
the density classes lung < 0.63 ≤ soft tissue < 1.425 ≤ cortical bone; the class holding the
kernel's own density keeps the kernel's medium, ratio 1) to the kernel medium, averaged over
the nuclide's photon lines (:func:`kerma_ratio`): for Lu-177 and a water kernel 0.91 in air,
1.00 in lung, 1.47 in cortical bone. The fluence is the kernel medium's (attenuation
differences are not modelled). ``photon_rule="density"`` applies ``ρ_k/ρ`` to photons too (the
whole-kernel correction of Dieudonné et al.), which overestimates the photon dose in lung by
``ρ_k/ρ_lung ≈ 3.8`` against Monte Carlo (docs/dose-engines.md).

References
----------
Attix FH. Introduction to Radiological Physics and Radiation Dosimetry. Wiley, 1986, ch. 10
(cavity theory). doi:10.1002/9783527617135
Spencer LV, Attix FH. A theory of cavity ionization. Radiat Res 1955;3(3):239-254.
doi:10.2307/3570326
Dieudonné A, Hobbs RF, Lebtahi R, et al. Study of the impact of tissue density heterogeneities on
3-dimensional abdominal dosimetry: comparison between dose kernel convolution and direct Monte
Carlo methods. J Nucl Med 2013;54(2):236-243.
Lee MS, Kim JH, Paeng JC, et al. Whole-body voxel-based personalized dosimetry: the multiple
voxel S-value approach for heterogeneous media with nonuniform activity distributions. J Nucl
Med 2018;59(7):1133-1139.
Schneider W, Bortfeld T, Schlegel W. Correlation between CT numbers and tissue parameters needed
for Monte Carlo simulations of clinical dose distributions. Phys Med Biol 2000;45(2):459-478.
doi:10.1088/0031-9155/45/2/314
Gevenois PA, De Vuyst P, de Maertelaer V, et al. Comparison of computed density and microscopic
morphometry in pulmonary emphysema. Am J Respir Crit Care Med 1996;154(1):187-192.
doi:10.1164/ajrccm.154.1.8680679
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from theradose.dose._media import get_medium
from theradose.errors import InputError
from theradose.nuclides import Nuclide, get_nuclide

__all__ = [
    "CAVITY_MEDIUM",
    "DEFAULT_CAVITY_DENSITY_G_CM3",
    "PHOTON_RULES",
    "DensityScaling",
    "check_cavity_density",
    "density_scaling",
    "kerma_ratio",
    "stopping_power_ratio",
]

#: Below this density (g/cm³) a voxel is gas, treated as a Bragg–Gray cavity (module docstring):
#: -950 HU on the Schneider 2000 calibration, the air/lung boundary of the CT material classes.
DEFAULT_CAVITY_DENSITY_G_CM3 = 0.05

#: Medium of gas voxels (air, trachea, bowel gas): NIST dry air.
CAVITY_MEDIUM = "air"

#: How the photon part of a kernel dose is scaled.
PHOTON_RULES = ("kerma", "density")

#: Media of non-gas voxels for the photon kerma ratio, by density (upper bounds, g/cm³): the
#: tissue classes of ``heterogeneity=True`` (midpoints between nominal densities).
_PHOTON_MEDIA: tuple[tuple[float, str], ...] = (
    (0.63, "lung"), (1.425, "soft_tissue"), (math.inf, "cortical_bone"))

#: Charged-particle stopping-power ratio used when a nuclide emits no electron above the ESTAR
#: range (10 keV): the ratio at 100 keV.
_FALLBACK_ENERGY_KEV = 100.0


def _nuclide(nuclide: str | Nuclide) -> Nuclide:
    return nuclide if isinstance(nuclide, Nuclide) else get_nuclide(nuclide, field="nuclide")


def check_cavity_density(value: float | None, field: str = "cavity_density_g_cm3"
                         ) -> float | None:
    """Validate a cavity threshold: None (no cavity rule) or a density in [0, 1) g/cm³."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= float(value) < 1.0:
        raise InputError(f"expected None or a density in [0, 1) g/cm3 (gas below it; default "
                         f"{DEFAULT_CAVITY_DENSITY_G_CM3}), got {value!r}", field=field)
    return float(value)


@lru_cache(maxsize=64)
def _spencer_attix(nuclide_name: str, cavity: str, medium: str) -> float:
    from theradose.dose._electron_transport import electron_tables

    nuc = get_nuclide(nuclide_name)
    tm, tc = electron_tables(medium), electron_tables(cavity)
    e = tm.energy_kev
    s_col_m = tm.s_col_kev_mm / tm.medium.density_g_cm3
    s_col_c = np.interp(np.log(e), np.log(tc.energy_kev), tc.s_col_kev_mm) \
        / tc.medium.density_g_cm3
    s_tot_m = (tm.s_col_kev_mm + tm.s_rad_kev_mm) / tm.medium.density_g_cm3
    # energy deposited along the CSDA slowing-down track of an electron started at E, in the
    # medium (den) and in a cavity crossed by that fluence (num): ∫ S_col(E')/S_tot,m(E') dE'
    num_c = _cumtrapz(s_col_c / s_tot_m, e)
    den_c = _cumtrapz(s_col_m / s_tot_m, e)
    num = den = 0.0
    for line in nuc.electron_lines(min_energy_kev=e[0]):
        num += line.yield_per_decay * float(np.interp(line.energy_kev, e, num_c))
        den += line.yield_per_decay * float(np.interp(line.energy_kev, e, den_c))
    if nuc.yield_per_decay("beta-") + nuc.yield_per_decay("beta+") > 0:
        spec = nuc.beta_spectrum()
        eb = np.maximum(spec.energy_kev, e[0])
        num += float(np.trapezoid(spec.dn_de_per_kev * np.interp(eb, e, num_c), spec.energy_kev))
        den += float(np.trapezoid(spec.dn_de_per_kev * np.interp(eb, e, den_c), spec.energy_kev))
    if den <= 0:
        i = int(np.searchsorted(e, _FALLBACK_ENERGY_KEV))
        return float(s_col_c[i] / s_col_m[i])
    return num / den


def _cumtrapz(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])


def stopping_power_ratio(nuclide: str | Nuclide, cavity: str = CAVITY_MEDIUM,
                         medium: str = "water") -> float:
    """Spencer–Attix mass collision stopping-power ratio cavity/medium for a nuclide's electrons.

    Each emitted electron (β spectrum, IC and Auger lines of ICRP-107, from 10 keV) slows down
    in the medium along its CSDA track; a small cavity crossed by that fluence absorbs
    ``∫ S_col,cav/S_tot,med dE`` where the medium absorbs ``∫ S_col,med/S_tot,med dE``
    (NIST ESTAR stopping powers, :func:`theradose.dose._electron_transport.electron_tables`).
    The ratio of the sums over the emissions is the dose ratio cavity/medium. Electrons below
    10 keV are left out (their track-end share is < 2 % for β emitters; the ratio varies
    by < 2 % from 10 keV to 1 MeV). Nuclides without electrons above 10 keV get the ratio at
    100 keV.

    Parameters
    ----------
    nuclide : str or Nuclide
    cavity, medium : str
        Media of :data:`theradose.dose.MEDIA`.

    Returns
    -------
    float
        Dose to the cavity over dose to the medium (air/water: 0.883 for Lu-177).

    References
    ----------
    Spencer LV, Attix FH. Radiat Res 1955;3:239-254. doi:10.2307/3570326
    Berger MJ et al. ESTAR (NIST, 2005). doi:10.18434/T4NC7P

    Examples
    --------
    >>> round(stopping_power_ratio("Lu-177", "air", "water"), 2)
    0.88
    """
    nuc = _nuclide(nuclide)
    return _spencer_attix(nuc.name, get_medium(cavity).name, get_medium(medium).name)


@lru_cache(maxsize=64)
def _kerma_ratio(nuclide_name: str, medium: str, reference: str) -> float:
    from theradose.dose._photon_physics import photon_cross_sections

    lines = [ln for ln in get_nuclide(nuclide_name).photon_lines() if ln.energy_kev >= 1.0]
    if not lines or medium == reference:
        return 1.0
    e = np.array([ln.energy_kev for ln in lines])
    w = np.array([ln.energy_kev * ln.yield_per_decay for ln in lines])
    r = (photon_cross_sections(medium).mu_en_cm2_g(e)
         / photon_cross_sections(reference).mu_en_cm2_g(e))
    return float(np.sum(w * r) / np.sum(w))


def kerma_ratio(nuclide: str | Nuclide, medium: str, reference: str = "water") -> float:
    """Collision-kerma ratio medium/reference for the nuclide's photons at equal fluence.

    ``Σ y_i E_i r(E_i) / Σ y_i E_i`` with ``r(E) = (μ_en/ρ)_medium / (μ_en/ρ)_reference``
    (:func:`theradose.dose.photon_cross_sections`) over the ICRP-107 photon lines: each line's
    share of the photon dose is its emitted energy (all of it is absorbed in a large body), and
    in another medium the kerma of that line changes by ``r``. The primary lines are used:
    scattered photons are softer, which raises the ratio of bone somewhat.

    Examples
    --------
    >>> round(kerma_ratio("Lu-177", "air", "water"), 2)
    0.91
    """
    nuc = _nuclide(nuclide)
    return _kerma_ratio(nuc.name, get_medium(medium).name, get_medium(reference).name)


@dataclass(frozen=True)
class DensityScaling:
    """Factors that turn a kernel-medium dose into the dose of each voxel (module docstring).

    Attributes
    ----------
    kernel_medium : str
        Medium of the kernel.
    kernel_density_g_cm3 : float
        Its density ρ_k.
    cavity_density_g_cm3 : float or None
        ρ_c; None: no cavity rule (``ρ_k/ρ`` down to any density > 0).
    charged_cavity_ratio : float
        Stopping-power ratio gas/kernel medium, applied to charged particles below ρ_c.
    photon_rule : {"kerma", "density"}
        Photon scaling.
    photon_ratios : tuple of (float, str, float)
        ``(upper density bound, medium, kerma ratio to the kernel medium)`` from gas upwards.
    """

    kernel_medium: str
    kernel_density_g_cm3: float
    cavity_density_g_cm3: float | None
    charged_cavity_ratio: float
    photon_rule: str
    photon_ratios: tuple[tuple[float, str, float], ...]

    def factor(self, rho: np.ndarray, part: str, dtype: Any = np.float64) -> np.ndarray:
        """Factor per voxel for ``part`` ``"charged"`` or ``"photon"`` (0 where ρ = 0).

        Parameters
        ----------
        rho : (Z, Y, X) ndarray
            Density, g/cm³.
        part : {"charged", "photon"}
        dtype : numpy dtype
            Of the result.
        """
        rho = np.asarray(rho, dtype=np.float64)
        if part == "photon" and self.photon_rule == "kerma":
            bounds = np.array([b for b, _, _ in self.photon_ratios])
            ratios = np.array([r for _, _, r in self.photon_ratios])
            idx = np.minimum(np.searchsorted(bounds, rho, side="right"), len(ratios) - 1)
            f = ratios[idx]
        else:
            f = np.divide(self.kernel_density_g_cm3, rho, out=np.zeros_like(rho),
                          where=rho > 0)
            if self.cavity_density_g_cm3 is not None:
                gas = self.photon_ratios[0][2] if part == "photon" \
                    else self.charged_cavity_ratio
                f = np.where(rho < self.cavity_density_g_cm3, gas, f)
        return np.where(rho > 0, f, 0.0).astype(dtype, copy=False)

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for the provenance."""
        rc = self.cavity_density_g_cm3
        return {
            "charged": (f"rho_k/rho for rho >= {rc} g/cm3 (charged-particle equilibrium); "
                        f"Bragg-Gray cavity below: D_k x s_gas,{self.kernel_medium}"
                        if rc is not None else "rho_k/rho for every rho > 0 (no cavity rule)"),
            "photon": ("kerma: D_k x (mu_en/rho)_voxel medium/(mu_en/rho)_kernel medium"
                       if self.photon_rule == "kerma" else
                       "density: rho_k/rho" + (" (gas: kerma ratio)" if rc is not None
                                               else "")),
            "kernel_medium": self.kernel_medium,
            "kernel_density_g_cm3": self.kernel_density_g_cm3,
            "cavity_density_g_cm3": rc, "cavity_medium": CAVITY_MEDIUM,
            "stopping_power_ratio_gas": self.charged_cavity_ratio,
            "photon_kerma_ratios": [{"below_g_cm3": None if math.isinf(b) else b,
                                     "medium": m, "ratio": r}
                                    for b, m, r in self.photon_ratios],
            "references": ["Attix 1986 ch. 10 / Spencer & Attix, Radiat Res 1955;3:239",
                           "Dieudonne et al. J Nucl Med 2013;54:236",
                           "Lee et al. J Nucl Med 2018;59:1133",
                           "Schneider et al. Phys Med Biol 2000;45:459 (-950 HU)"],
        }


def density_scaling(nuclide: str | Nuclide, kernel_medium: str, kernel_density_g_cm3: float,
                    *, cavity_density_g_cm3: float | None = DEFAULT_CAVITY_DENSITY_G_CM3,
                    photon_rule: str = "kerma") -> DensityScaling:
    """The :class:`DensityScaling` of a kernel of ``kernel_medium`` for a nuclide.

    Parameters
    ----------
    nuclide : str or Nuclide
    kernel_medium : str
        Medium of the kernel (:data:`theradose.dose.MEDIA`).
    kernel_density_g_cm3 : float
        Density of the kernel, g/cm³.
    cavity_density_g_cm3 : float or None
        Gas threshold ρ_c (None: no cavity rule).
    photon_rule : {"kerma", "density"}

    Raises
    ------
    InputError
        For an unknown photon rule or an invalid threshold.
    """
    if photon_rule not in PHOTON_RULES:
        raise InputError(f"unknown photon rule {photon_rule!r}; accepted: {list(PHOTON_RULES)}",
                         field="photon_correction")
    rc = check_cavity_density(cavity_density_g_cm3)
    nuc = _nuclide(nuclide)
    med = get_medium(kernel_medium).name
    lo = rc if rc is not None else 0.0
    gas = (lo, CAVITY_MEDIUM, kerma_ratio(nuc, CAVITY_MEDIUM, med))
    rest = []
    for b, m in _PHOTON_MEDIA:  # the kernel's own density class keeps the kernel's medium
        m = med if lo <= kernel_density_g_cm3 < b else m
        rest.append((b, m, kerma_ratio(nuc, m, med)))
        lo = b
    return DensityScaling(med, float(kernel_density_g_cm3), rc,
                          stopping_power_ratio(nuc, CAVITY_MEDIUM, med), photon_rule,
                          (gas, *rest))
