"""Radial dose point kernels: energy absorbed in spherical shells around an isotropic point source.

A :class:`RadialKernel` is the common currency between the kernel generators (electron transport,
photon transport) and their users (voxel S-value integration, sphere model). It stores, for one
decay of a point source in an infinite homogeneous medium, the energy absorbed in each spherical
shell ``[r_i, r_{i+1})`` around the source (keV per decay). Inside a shell the energy is taken as
uniform in ``r`` (the cumulative energy is piecewise linear), which fixes how the kernel is
rebinned, interpolated and sampled.

The point dose per decay at distance ``r`` follows as ``D(r) = (dE/dr) / (4π r² ρ)`` (the
dose point kernel of Berger 1971, MIRD Pamphlet No. 7).

References
----------
Berger MJ. Distribution of absorbed dose around point sources of electrons and beta particles in
water and other media. MIRD Pamphlet No. 7. J Nucl Med 1971;12(Suppl 5):5-23.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from theradose.errors import InputError

__all__ = ["KEV_TO_J", "RadialKernel"]

#: Joule per keV (CODATA 2018 elementary charge x 1e3).
KEV_TO_J = 1.602176634e-16


@dataclass(frozen=True)
class RadialKernel:
    """Energy absorbed per decay in spherical shells around an isotropic point source.

    Attributes
    ----------
    r_edges_mm : (N+1,) ndarray
        Shell edges, mm, strictly increasing, ``r_edges_mm[0] == 0``.
    shell_kev : (N,) ndarray
        Energy absorbed in each shell, keV per decay.
    emitted_kev : float
        Energy emitted per decay by the classes included, keV (the conservation reference).
    medium : str
        Medium name (:data:`theradose.dose.MEDIA`).
    density_g_cm3 : float
        Density of the medium the kernel was computed for, g/cm³.
    classes : tuple of str
        Emission classes included: ``("electron",)``, ``("photon",)``, ``("alpha",)`` or several.
    nuclide : str or None
        Nuclide name, or None for a monoenergetic kernel.
    escaped_kev : float
        Energy emitted but not absorbed within ``r_edges_mm[-1]`` (beyond the grid, or carried
        away as bremsstrahlung when that is not transported), keV per decay.
    sigma_shell_kev : (N,) ndarray or None
        Statistical standard deviation of ``shell_kev`` (Monte-Carlo kernels), keV per decay.
    provenance : mapping
        Method, data sources and versions, parameters (JSON-serialisable).
    """

    r_edges_mm: np.ndarray
    shell_kev: np.ndarray
    emitted_kev: float
    medium: str
    density_g_cm3: float
    classes: tuple[str, ...]
    nuclide: str | None = None
    escaped_kev: float = 0.0
    sigma_shell_kev: np.ndarray | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        r = np.asarray(self.r_edges_mm, dtype=float)
        e = np.asarray(self.shell_kev, dtype=float)
        if r.ndim != 1 or r.size < 2 or r[0] != 0.0 or np.any(np.diff(r) <= 0):
            raise InputError("invalid kernel (field=r_edges_mm): expected strictly increasing "
                             "edges starting at 0 mm")
        if e.shape != (r.size - 1,) or not np.all(np.isfinite(e)) or np.any(e < 0):
            raise InputError(f"invalid kernel (field=shell_kev): expected {r.size - 1} finite "
                             "non-negative values")
        object.__setattr__(self, "r_edges_mm", r)
        object.__setattr__(self, "shell_kev", e)
        if self.sigma_shell_kev is not None:
            object.__setattr__(self, "sigma_shell_kev", np.asarray(self.sigma_shell_kev, float))

    # ------------------------------------------------------------------ derived quantities
    @property
    def r_max_mm(self) -> float:
        """Outer edge of the grid, mm."""
        return float(self.r_edges_mm[-1])

    @property
    def absorbed_kev(self) -> float:
        """Energy absorbed within the grid, keV per decay."""
        return float(self.shell_kev.sum())

    @property
    def absorbed_fraction(self) -> float:
        """Absorbed over emitted energy (1 for a complete kernel in an infinite medium)."""
        return self.absorbed_kev / self.emitted_kev if self.emitted_kev > 0 else 0.0

    def cumulative_kev(self, r_mm: np.ndarray | float) -> np.ndarray:
        """Energy absorbed within radius ``r_mm`` (piecewise linear in r), keV per decay."""
        cum = np.concatenate([[0.0], np.cumsum(self.shell_kev)])
        return np.interp(np.asarray(r_mm, float), self.r_edges_mm, cum)

    def point_dose_gy_per_decay(self, r_mm: np.ndarray | float) -> np.ndarray:
        """Absorbed dose per decay at distance ``r_mm`` (> 0), Gy: (dE/dr) / (4π r² ρ).

        ``dE/dr`` is the shell's energy over its width (constant within a shell).
        """
        r = np.asarray(r_mm, float)
        idx = np.clip(np.searchsorted(self.r_edges_mm, r, side="right") - 1, 0,
                      self.shell_kev.size - 1)
        de_dr = self.shell_kev[idx] / np.diff(self.r_edges_mm)[idx]  # keV/mm
        de_dr = np.where(r < self.r_max_mm, de_dr, 0.0)
        rho_kg_mm3 = self.density_g_cm3 * 1e-6  # g/cm³ -> kg/mm³
        with np.errstate(divide="ignore"):
            return de_dr * KEV_TO_J / (4.0 * np.pi * r * r * rho_kg_mm3)

    def sample_radii(self, u: np.ndarray) -> np.ndarray:
        """Radii (mm) distributed as the absorbed energy, from uniform deviates ``u`` in [0, 1).

        Inverse of the normalised cumulative energy; each sample carries
        ``absorbed_kev / n`` keV.
        """
        cum = np.concatenate([[0.0], np.cumsum(self.shell_kev)])
        if cum[-1] <= 0:
            raise InputError("kernel has no absorbed energy (field=shell_kev)")
        keep = np.concatenate([[True], np.diff(cum) > 0])
        return np.interp(np.asarray(u, float) * cum[-1], cum[keep], self.r_edges_mm[keep])

    # ------------------------------------------------------------------ transformations
    def rebinned(self, r_edges_mm: np.ndarray) -> RadialKernel:
        """Same kernel on other shell edges (energy beyond the new grid goes to ``escaped_kev``)."""
        new = np.asarray(r_edges_mm, float)
        cum = self.cumulative_kev(new)
        shell = np.diff(cum)
        beyond = self.absorbed_kev - float(cum[-1])
        sig = None
        if self.sigma_shell_kev is not None:
            # variance spread like the energy (uniform in r within old shells), independent shells
            var_cum = np.interp(new, self.r_edges_mm,
                                np.concatenate([[0.0], np.cumsum(self.sigma_shell_kev ** 2)]))
            sig = np.sqrt(np.maximum(np.diff(var_cum), 0.0))
        return replace(self, r_edges_mm=new, shell_kev=np.maximum(shell, 0.0),
                       escaped_kev=self.escaped_kev + max(beyond, 0.0), sigma_shell_kev=sig)

    def density_scaled(self, density_g_cm3: float) -> RadialKernel:
        """The kernel for the same composition at another density (O'Connor's theorem).

        Distances scale as ρ₀/ρ; energy per shell is unchanged.
        """
        if density_g_cm3 <= 0:
            raise InputError(f"density must be > 0 g/cm3 (field=density_g_cm3): "
                             f"got {density_g_cm3}")
        f = self.density_g_cm3 / float(density_g_cm3)
        prov = {**self.provenance, "density_scaled_from_g_cm3": self.density_g_cm3}
        return replace(self, r_edges_mm=self.r_edges_mm * f, density_g_cm3=float(density_g_cm3),
                       provenance=prov)

    def __add__(self, other: RadialKernel) -> RadialKernel:
        """Sum of two kernels of the same medium (e.g. electrons + photons) on the union grid."""
        if not isinstance(other, RadialKernel):
            return NotImplemented
        if other.medium != self.medium or not np.isclose(other.density_g_cm3, self.density_g_cm3):
            raise InputError(f"cannot add kernels of different media (field=medium): "
                             f"{self.medium} vs {other.medium}")
        edges = np.union1d(self.r_edges_mm, other.r_edges_mm)
        a, b = self.rebinned(edges), other.rebinned(edges)
        sig = None
        if a.sigma_shell_kev is not None or b.sigma_shell_kev is not None:
            sa = a.sigma_shell_kev if a.sigma_shell_kev is not None else 0.0
            sb = b.sigma_shell_kev if b.sigma_shell_kev is not None else 0.0
            sig = np.sqrt(sa ** 2 + sb ** 2)
        nuc = self.nuclide if self.nuclide == other.nuclide else None
        return RadialKernel(
            r_edges_mm=edges, shell_kev=a.shell_kev + b.shell_kev,
            emitted_kev=self.emitted_kev + other.emitted_kev, medium=self.medium,
            density_g_cm3=self.density_g_cm3,
            classes=tuple(dict.fromkeys(self.classes + other.classes)), nuclide=nuc,
            escaped_kev=a.escaped_kev + b.escaped_kev, sigma_shell_kev=sig,
            provenance={"sum_of": [dict(self.provenance), dict(other.provenance)]},
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no arrays)."""
        return {"nuclide": self.nuclide, "medium": self.medium,
                "density_g_cm3": self.density_g_cm3, "classes": list(self.classes),
                "emitted_kev": self.emitted_kev, "absorbed_kev": self.absorbed_kev,
                "escaped_kev": self.escaped_kev, "r_max_mm": self.r_max_mm,
                "n_shells": int(self.shell_kev.size), "provenance": dict(self.provenance)}

    def save(self, path: str | Path) -> None:
        """Write to a ``.npz`` file (arrays + JSON metadata)."""
        import json

        extra = {} if self.sigma_shell_kev is None else {"sigma_shell_kev": self.sigma_shell_kev}
        np.savez(Path(path), r_edges_mm=self.r_edges_mm, shell_kev=self.shell_kev,
                 meta=np.array(json.dumps(self.to_dict())), **extra)

    @classmethod
    def load(cls, path: str | Path) -> RadialKernel:
        """Read a kernel written by :meth:`save`."""
        import json

        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            sig = z["sigma_shell_kev"] if "sigma_shell_kev" in z.files else None
            return cls(r_edges_mm=z["r_edges_mm"], shell_kev=z["shell_kev"],
                       emitted_kev=meta["emitted_kev"], medium=meta["medium"],
                       density_g_cm3=meta["density_g_cm3"], classes=tuple(meta["classes"]),
                       nuclide=meta["nuclide"], escaped_kev=meta["escaped_kev"],
                       sigma_shell_kev=sig, provenance=meta["provenance"])
