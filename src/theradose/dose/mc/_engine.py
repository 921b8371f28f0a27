"""Monte Carlo dose engine (``"montecarlo"``): photon transport + electrons local or by kernel.

    D(v) = D_e(v) + D_γ(v)

* **Photons** (:func:`theradose.dose.mc._transport.simulate_photons`): the photon lines of the
  nuclide are emitted from the TIA map (voxel by weight), transported through the media and
  densities of a :class:`~theradose.dose.mc._phantom.VoxelPhantom`, and scored as collision
  kerma. ``D_γ(v) = E_γ(v) · N · k / m(v)`` with ``E_γ`` keV per decay, ``N = ΣÃ · 3.6e9``
  decays, ``k = 1.602e-16 J/keV`` and ``m(v)`` the voxel mass (kg).
* **Electrons and alphas** (``electrons="local"``): their mean energy per decay (ICRP-107) is
  absorbed in the emitting voxel, ``D_e = Ã · 3.6e9 · Δ_e · k / m`` (exactly the LED engine
  with photons ignored). ``electrons="kernel"``: the electron energy is convolved with the
  electron-only voxel S-value kernel in water (FFT, density-corrected ``ρ_w/ρ(v)`` as in the
  kernel engine); alphas (ranges < 0.1 mm) stay local.
* **Gas voxels** (``ρ < cavity_density_g_cm3``, default 0.05 g/cm³: air, trachea, bowel gas):
  electrons cross them (19 cm range in air at 134 keV), so neither ``Δ_e/m`` with the mass of
  air nor ``ρ_w/ρ`` (830× in air) holds; the electron/alpha part there is the Bragg–Gray cavity
  dose ``s_air,water × (dose of water at that place)`` (:mod:`theradose.dose._scaling`; the
  same rule as the LED and kernel engines). Photon kerma needs no such rule: ``μ_en`` scales
  with the mass, so photon dose in air is ``Φ·E·(μ_en/ρ)_air``.

**Uncertainty.** ``sigma`` combines in quadrature (i) the Monte Carlo standard error of
``D_γ`` (batch method) and (ii) the TIA-propagated σ: exact for the electron/alpha term
(local: ``σ_Ã·c/ρ``; kernel: ``(ρ_w/ρ)·sqrt(σ²_Ã * K²)``), and for the photon term the
approximation ``D_γ(v)·sqrt(Σσ²_Ã)/ΣÃ`` (a photon dose is a sum over many source voxels;
with independent voxel errors its relative σ is about that of the total TIA; a full
propagation would need one transport per source voxel). VOI means use the MC σ of the VOI
energy from the batches (exact, correlations included) and the same TIA terms.

**Stopping.** With ``target`` (a VOI name of ``labels``) and ``target_rel_sigma``, batches are
added until the relative MC σ of the photon energy in that VOI is at most the target (a
conservative criterion for the total dose, whose electron part has no MC noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from theradose.dose._convolution import (
    GY_PER_MBQH_PER_S_UNIT,
    FFTConvolver,
    _kernel_summary,
    _version,
    resolve_kernel,
)
from theradose.dose._engine import (
    DECAYS_PER_MBQ_H,
    DoseEngine,
    PreparedInputs,
    dose_volume,
    prepare_inputs,
    register_engine,
)
from theradose.dose._point_kernel import KEV_TO_J
from theradose.dose._result import DoseResult, summarise_vois
from theradose.dose._scaling import (
    DEFAULT_CAVITY_DENSITY_G_CM3,
    check_cavity_density,
    density_scaling,
)
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.dose.mc._emission import emission_spectrum
from theradose.dose.mc._phantom import VoxelPhantom
from theradose.dose.mc._transport import BACKENDS, simulate_photons
from theradose.errors import GeometryMismatchError, InputError
from theradose.nuclides import Nuclide, data_source
from theradose.volume import LabelMap, Volume

__all__ = ["MonteCarloEngine"]

_ELECTRONS = ("local", "kernel")


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"expected an integer >= {minimum}, got {value!r}", field=name)
    return int(value)


class MonteCarloEngine(DoseEngine):
    """Photon Monte Carlo in the patient's media + electrons/alphas locally or by kernel.

    Parameters
    ----------
    n_histories : int
        Photons simulated (at least; more with ``target_rel_sigma``).
    seed : int
        Seed (same seed and inputs → same dose).
    electrons : {"local", "kernel"}
        Electron + alpha energy absorbed in the emitting voxel, or electrons convolved with the
        electron-only voxel S-value kernel (water, density-corrected; alphas local).
    phantom : VoxelPhantom or LabelMap, optional
        Media of the voxels: a VoxelPhantom on the TIA grid (its media are used, the density
        passed to :meth:`compute` gives the masses and attenuation), or a material LabelMap
        whose names are media / CT classes (:meth:`VoxelPhantom.from_labels`). None: media
        from density thresholds (:meth:`VoxelPhantom.from_density`).
    target : str, optional
        VOI name (in ``labels``) watched by the stopping rule.
    target_rel_sigma : float, optional
        Relative MC σ of the target VOI's photon energy to reach (needs ``target``).
    max_histories : int, optional
        Upper bound with ``target_rel_sigma`` (default 100 × ``n_histories``).
    n_batches : int
        Batches of the batch method (≥ 2).
    backend : {"numpy", "torch"}
        Transport implementation.
    chain : bool
        Include progeny in equilibrium (photons, electrons and alphas of the chain), e.g.
        Ac-225; not with ``electrons="kernel"``.
    electron_kernel : VoxelKernel, optional
        Electron-only kernel for ``electrons="kernel"`` (generated for the voxel size if None).
    energy_cutoff_kev : float
        Photon cut-off, keV.
    batch_size : int
        Photons transported together.
    cavity_density_g_cm3 : float or None
        Gas threshold, g/cm³ (default 0.05, -950 HU): below it the electron/alpha part is the
        Bragg–Gray cavity dose (module docstring). None: ``Δ/m`` or ``ρ_w/ρ`` at any density.

    Examples
    --------
    >>> from theradose.dose import get_engine
    >>> get_engine("montecarlo", n_histories=10_000).name
    'montecarlo'
    """

    name = "montecarlo"

    def __init__(self, n_histories: int = 1_000_000, seed: int = 0, electrons: str = "local",
                 *, phantom: VoxelPhantom | LabelMap | None = None, target: str | None = None,
                 target_rel_sigma: float | None = None, max_histories: int | None = None,
                 n_batches: int = 10, backend: str = "numpy", chain: bool = False,
                 electron_kernel: VoxelKernel | None = None, energy_cutoff_kev: float = 1.0,
                 batch_size: int = 200_000,
                 cavity_density_g_cm3: float | None = DEFAULT_CAVITY_DENSITY_G_CM3) -> None:
        self.n_batches = _positive_int(n_batches, "n_batches", 2)
        self.n_histories = _positive_int(n_histories, "n_histories", self.n_batches)
        self.seed = _positive_int(seed, "seed", 0)
        if electrons not in _ELECTRONS:
            raise InputError(f"unknown electrons mode {electrons!r}; accepted: "
                             f"{list(_ELECTRONS)}", field="electrons")
        self.electrons = electrons
        if phantom is not None and not isinstance(phantom, (VoxelPhantom, LabelMap)):
            raise InputError(f"expected a VoxelPhantom or a material LabelMap, got "
                             f"{type(phantom).__name__}", field="phantom")
        self.phantom = phantom
        if target is not None and not isinstance(target, str):
            raise InputError(f"expected a VOI name, got {target!r}", field="target")
        if target_rel_sigma is not None and target is None:
            raise InputError("target_rel_sigma needs a target VOI name", field="target")
        if target_rel_sigma is not None and (
                isinstance(target_rel_sigma, bool)
                or not isinstance(target_rel_sigma, (int, float))
                or not 0 < target_rel_sigma < 1):
            raise InputError(f"target_rel_sigma must lie in (0, 1), got {target_rel_sigma!r}",
                             field="target_rel_sigma")
        self.target = target
        self.target_rel_sigma = None if target_rel_sigma is None else float(target_rel_sigma)
        self.max_histories = (None if max_histories is None else
                              _positive_int(max_histories, "max_histories", self.n_histories))
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}; accepted: {list(BACKENDS)}",
                             field="backend")
        self.backend = backend
        self.chain = bool(chain)
        if self.chain and electrons == "kernel":
            raise InputError("chain=True cannot be combined with electrons='kernel' (the "
                             "electron kernel covers one nuclide); use electrons='local'",
                             field="chain")
        if electron_kernel is not None:
            if not isinstance(electron_kernel, VoxelKernel):
                raise InputError(f"expected a VoxelKernel, got "
                                 f"{type(electron_kernel).__name__}", field="electron_kernel")
            if tuple(electron_kernel.classes) != ("electron",):
                raise InputError(f"electron_kernel must hold electrons only, got classes "
                                 f"{list(electron_kernel.classes)}",
                                 field="electron_kernel.classes")
            if electrons != "kernel":
                raise InputError("electron_kernel is only used with electrons='kernel'",
                                 field="electron_kernel")
        self.electron_kernel = electron_kernel
        self.energy_cutoff_kev = energy_cutoff_kev
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.cavity_density_g_cm3 = check_cavity_density(cavity_density_g_cm3)
        self._generated: dict[tuple[str, tuple[float, ...]], VoxelKernel] = {}

    def options(self) -> dict[str, Any]:
        """Constructor options (JSON-ready)."""
        ph = self.phantom
        return {"n_histories": self.n_histories, "seed": self.seed, "electrons": self.electrons,
                "phantom": None if ph is None else type(ph).__name__,
                "target": self.target, "target_rel_sigma": self.target_rel_sigma,
                "max_histories": self.max_histories, "n_batches": self.n_batches,
                "backend": self.backend, "chain": self.chain,
                "electron_kernel": None if self.electron_kernel is None else "given",
                "energy_cutoff_kev": self.energy_cutoff_kev, "batch_size": self.batch_size,
                "cavity_density_g_cm3": self.cavity_density_g_cm3}

    # ------------------------------------------------------------------ pieces
    def _phantom(self, inp: PreparedInputs) -> VoxelPhantom:
        geo = inp.tia.geometry
        dens = Volume(inp.density, geo, unit="g/cm3")
        ph = self.phantom
        if ph is None:
            return VoxelPhantom.from_density(dens)
        try:
            geo.require_same(ph.geometry, what="tia and phantom")
        except GeometryMismatchError as exc:
            raise GeometryMismatchError(exc.detail, field=f"phantom.{exc.field}") from None
        if isinstance(ph, LabelMap):
            return VoxelPhantom.from_labels(ph, dens)
        return VoxelPhantom(geo, ph.material, inp.density, ph.media)

    def _electron_kernel(self, inp: PreparedInputs) -> VoxelKernel:
        if self.electron_kernel is not None:
            return resolve_kernel(self.electron_kernel, inp.nuclide, inp.spacing_mm, "water",
                                  field="electron_kernel")
        key = (inp.nuclide.name, tuple(round(v, 6) for v in inp.spacing_mm))
        if key not in self._generated:
            self._generated[key] = resolve_kernel(None, inp.nuclide, inp.spacing_mm, "water",
                                                  ("electron",), field="electron_kernel")
        return self._generated[key]

    # ------------------------------------------------------------------ compute
    def compute(self, tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                labels: LabelMap | None = None, tia_sigma: Volume | None = None) -> DoseResult:
        """Absorbed dose (Gy) = electron/alpha part + photon Monte Carlo part.

        See :meth:`DoseEngine.compute` for the arguments and the module docstring for the
        method and the uncertainty.

        Raises
        ------
        InputError
            The checks of :func:`~theradose.dose._engine.prepare_inputs`; ``target`` not a VOI
            of ``labels``; phantom on another grid (GeometryMismatchError).
        """
        inp = prepare_inputs(tia, density, nuclide, labels=labels, tia_sigma=tia_sigma)
        mask = None
        if self.target is not None:
            if labels is None or self.target not in labels.labels:
                known = [] if labels is None else sorted(labels.labels)
                raise InputError(f"target VOI {self.target!r} is not in labels (known: "
                                 f"{known})", field="target")
            mask = labels.mask(self.target)
        phantom = self._phantom(inp)
        spec = emission_spectrum(inp.nuclide, chain=self.chain)
        a = np.asarray(inp.tia_mbqh, dtype=np.float64)
        rho = inp.density
        mass_kg = inp.mass_g * 1e-3
        inv_m = np.divide(1.0, mass_kg, out=np.zeros_like(mass_kg), where=mass_kg > 0)
        total = float(a.sum())
        s2 = None if inp.sigma_mbqh is None else inp.sigma_mbqh ** 2
        # ---- electrons / alphas
        kernel_info = None
        e_local_kev = spec.alpha_kev + (spec.electron_kev if self.electrons == "local" else 0.0)
        # Gy per MBq·h of the voxel's own TIA: N·Δ·k/(V·1 g/cm³) × (1/ρ, or s_air,water in gas)
        local_sc = density_scaling(inp.nuclide, "water", 1.0,
                                   cavity_density_g_cm3=self.cavity_density_g_cm3)
        local = (DECAYS_PER_MBQ_H * e_local_kev * KEV_TO_J / (inp.voxel_ml * 1e-3)
                 * local_sc.factor(rho, "charged"))
        dose_e = a * local
        var_tia = None if s2 is None else s2 * local ** 2
        conv = kgy = f = None
        if self.electrons == "kernel":
            k = self._electron_kernel(inp)
            kernel_info = _kernel_summary(k)
            kgy = k.values * GY_PER_MBQH_PER_S_UNIT
            f = density_scaling(inp.nuclide, k.medium, k.density_g_cm3,
                                cavity_density_g_cm3=self.cavity_density_g_cm3
                                ).factor(rho, "charged")
            conv = FFTConvolver(a.shape, kgy.shape, dtype="float64", workers=2)
            dose_e = dose_e + f * conv.convolve(a, kgy)
            if s2 is not None:
                var_tia = var_tia + f * f * np.maximum(conv.convolve(s2, kgy * kgy), 0.0)
        # ---- photons
        lab_arr = None
        if labels is not None:
            lab_arr = np.asarray(labels.array).astype(np.int64)
            lab_arr = np.where(lab_arr < 0, 0, lab_arr)
        tr = None
        dose_g = np.zeros_like(dose_e)
        var_mc = np.zeros_like(dose_e)
        if total > 0 and spec.photons_per_decay > 0:
            tr = simulate_photons(
                phantom, a, spec, n_histories=self.n_histories, seed=self.seed,
                n_batches=self.n_batches, backend=self.backend, target_mask=mask,
                target_rel_sigma=self.target_rel_sigma, max_histories=self.max_histories,
                energy_cutoff_kev=self.energy_cutoff_kev, batch_size=self.batch_size,
                score_labels=lab_arr)
            scale = total * DECAYS_PER_MBQ_H * KEV_TO_J  # J per (keV per decay)
            dose_g = tr.energy_kev * scale * inv_m
            var_mc = (tr.sigma_kev * scale * inv_m) ** 2
        rel_tia_total = 0.0 if s2 is None or total <= 0 else float(np.sqrt(s2.sum())) / total
        var = var_mc + (dose_g * rel_tia_total) ** 2
        if var_tia is not None:
            var = var + var_tia
        dose = dose_e + dose_g
        sigma = np.sqrt(np.maximum(var, 0.0))
        voi = ()
        if labels is not None:
            voi_sig = self._voi_sigma(inp, labels, tr, local, conv, kgy, f, dose_g,
                                      rel_tia_total)
            voi = summarise_vois(dose, sigma, inp.mass_g, labels, voi_sigma=voi_sig)
        prov: dict[str, Any] = {
            "method": "photon Monte Carlo (Woodcock tracking, collision-kerma estimator) + "
                      + ("electrons/alphas deposited locally" if self.electrons == "local"
                         else "electron voxel S-value convolution (alphas local)"),
            "engine": self.name, "nuclide": inp.nuclide.name,
            "energy_by_class_kev": {"electron": spec.electron_kev, "alpha": spec.alpha_kev,
                                    "photon": spec.photon_kev},
            "nuclear_data": data_source(), "options": self.options(),
            "electron_kernel": kernel_info,
            "electron_scaling": local_sc.describe()["charged"],
            "gas_voxels": (int(np.sum((rho > 0) & (rho < self.cavity_density_g_cm3)))
                           if self.cavity_density_g_cm3 is not None else 0),
            "uncertainty": "MC batch sigma (+) TIA sigma: exact for electrons/alphas, "
                           "photon term D_gamma*sqrt(sum sigma_TIA^2)/sum TIA (approximation)",
            "theradose_version": _version("theradose"),
        }
        if tr is not None:
            prov["transport"] = {**dict(tr.provenance), "n_histories": tr.n_histories,
                                 "n_batches": tr.n_batches, "elapsed_s": tr.elapsed_s,
                                 "histories_per_s": tr.histories_per_s,
                                 "escaped_kev_per_decay": tr.escaped_kev,
                                 "emitted_kev_per_decay": tr.emitted_kev,
                                 "target_rel_sigma_reached": _finite_or_none(tr.voi_rel_sigma)}
        return DoseResult(dose=dose_volume(inp, dose, self.name),
                          sigma=dose_volume(inp, sigma, self.name, sigma=True), voi=voi,
                          engine=self.name, provenance=prov)

    def _voi_sigma(self, inp: PreparedInputs, labels: LabelMap, tr: Any, local: np.ndarray,
                   conv: FFTConvolver | None, kgy: np.ndarray | None, f: np.ndarray | None,
                   dose_g: np.ndarray, rel_tia: float) -> Mapping[int, float]:
        """σ of VOI mean doses: MC from the batch VOI sums, TIA terms as in the voxels."""
        s2 = None if inp.sigma_mbqh is None else inp.sigma_mbqh ** 2
        mass_g = inp.mass_g
        total = float(np.sum(inp.tia_mbqh))
        scale = total * DECAYS_PER_MBQ_H * KEV_TO_J
        out: dict[int, float] = {}
        for value in labels.names:
            voi = labels.array == value
            m_kg = float(mass_g[voi].sum()) * 1e-3
            if m_kg <= 0:
                continue
            var = 0.0
            if tr is not None and tr.batch_label_kev.size and value < tr.batch_label_kev.shape[1]:
                b = tr.batch_label_kev[:, value]
                var += (float(b.std(ddof=1)) / np.sqrt(b.size) * scale / m_kg) ** 2
            var += (float(np.sum(dose_g[voi] * mass_g[voi])) * 1e-3 / m_kg * rel_tia) ** 2
            if s2 is not None:
                # electron/alpha: M·D̄ = Σ_s Ã(s) g(s)
                g = np.where(voi, local * mass_g * 1e-3, 0.0)
                if conv is not None and kgy is not None and f is not None:
                    flipped = np.ascontiguousarray(kgy[::-1, ::-1, ::-1])
                    g = g + conv.convolve(np.where(voi, mass_g * 1e-3 * f, 0.0), flipped)
                var += float(np.sum(s2 * g * g)) / m_kg ** 2
            out[int(value)] = float(np.sqrt(var))
        return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


try:
    register_engine("montecarlo", MonteCarloEngine)
except InputError:  # already registered (module reloaded)
    pass
