"""The photon transport of :mod:`theradose.dose.mc._transport` in torch (CUDA if available).

Same algorithm, tables and estimator as the numpy backend (Woodcock tracking, expected-value
collision-kerma tally, Compton by Kahn × S(x)/Z, Rayleigh by the inverse F² integral), written
with torch tensors so it runs on a GPU. Random numbers come from a seeded ``torch.Generator``
(same seed, same device → same result; numpy and torch streams differ, so the two backends
agree within statistics, not bit by bit). torch is optional: it is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from theradose.dose._photon_physics import ELECTRON_MASS_KEV, HC_KEV_ANGSTROM
from theradose.errors import InputError

__all__ = ["TorchRunner", "import_torch"]

_PAIR_KEV = 2.0 * ELECTRON_MASS_KEV


def import_torch() -> Any:
    """Import torch or raise a one-line InputError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise InputError("backend 'torch' needs PyTorch, which is not installed; install it "
                         "(pip install torch) or use backend='numpy'", field="backend") from None
    return torch


def _interp(torch: Any, x: Any, xp: Any, fp: Any) -> Any:
    """np.interp for increasing ``xp`` (clamped at both ends)."""
    i = torch.clamp(torch.searchsorted(xp, x.contiguous(), right=True) - 1, 0, xp.numel() - 2)
    x0, x1 = xp[i], xp[i + 1]
    d = x1 - x0
    t = torch.where(d > 0, (x - x0) / torch.where(d > 0, d, torch.ones_like(d)),
                    torch.zeros_like(d)).clamp(0.0, 1.0)
    return fp[i] * (1 - t) + fp[i + 1] * t


class TorchRunner:
    """Chunks of photons transported with torch (internal; see ``simulate_photons``)."""

    def __init__(self, tables: Any, *, seed: int) -> None:
        torch = import_torch()
        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = self.device
        f64 = torch.float64
        t = tables
        self.t = t
        self.gen = torch.Generator(device=dev)
        self.gen.manual_seed(int(seed))
        self.xs = torch.as_tensor(t.xs_mm, dtype=f64, device=dev).reshape(-1)
        self.maj = torch.as_tensor(t.majorant_mm, dtype=f64, device=dev)
        self.mat = torch.as_tensor(np.array(t.material), dtype=torch.int64, device=dev)
        self.rho = torch.as_tensor(np.array(t.density), dtype=f64, device=dev)
        self.cdf = torch.as_tensor(t.cdf, dtype=f64, device=dev)
        self.lines = torch.as_tensor(t.line_energy_kev, dtype=f64, device=dev)
        self.line_cdf = torch.as_tensor(t.line_cdf, dtype=f64, device=dev)
        self.spacing = torch.as_tensor(t.spacing_mm, dtype=f64, device=dev)
        nz, ny, nx = t.shape
        self.size = self.spacing * torch.tensor([nx, ny, nz], dtype=f64, device=dev)
        self.hi = torch.tensor([nx - 1, ny - 1, nz - 1], dtype=torch.int64, device=dev)
        self.ang = [tuple(torch.as_tensor(a, dtype=f64, device=dev)
                          for a in (x.x_inv_angstrom, x.scattering_function,
                                    x.x_inv_angstrom ** 2, x.ff_cumulative))
                    for x in t.cross_sections]

    def _u(self, *shape: int) -> Any:
        return self.torch.rand(*shape, generator=self.gen, device=self.device,
                               dtype=self.torch.float64)

    def _isotropic(self, n: int) -> Any:
        torch = self.torch
        cos = 2.0 * self._u(n) - 1.0
        phi = 2.0 * np.pi * self._u(n)
        sin = torch.sqrt(torch.clamp(1.0 - cos * cos, min=0.0))
        return torch.stack([sin * torch.cos(phi), sin * torch.sin(phi), cos], dim=1)

    def _rotate(self, d: Any, mu: Any) -> Any:
        torch = self.torch
        u, v, w = d[:, 0], d[:, 1], d[:, 2]
        mu = mu.clamp(-1.0, 1.0)
        st = torch.sqrt(torch.clamp(1.0 - mu * mu, min=0.0))
        phi = 2.0 * np.pi * self._u(mu.numel())
        cp, sp = st * torch.cos(phi), st * torch.sin(phi)
        a = torch.sqrt(torch.clamp(1.0 - w * w, min=0.0))
        polar = a < 1e-10
        inv = 1.0 / torch.where(polar, torch.ones_like(a), a)
        x = torch.where(polar, cp, mu * u + (u * w * cp - v * sp) * inv)
        y = torch.where(polar, sp, mu * v + (v * w * cp + u * sp) * inv)
        z = torch.where(polar, torch.sign(w + (w == 0)) * mu, mu * w - a * cp)
        out = torch.stack([x, y, z], dim=1)
        return out / torch.linalg.vector_norm(out, dim=1, keepdim=True)

    def _compton(self, e: Any, k: int) -> tuple[Any, Any]:
        torch = self.torch
        xg, sf, _, _ = self.ang[k]
        cos = torch.empty_like(e)
        todo = torch.arange(e.numel(), device=self.device)
        while todo.numel():
            a = e[todo] / ELECTRON_MASS_KEV
            r = self._u(4, todo.numel())
            low = r[0] <= (1.0 + 2.0 * a) / (9.0 + 2.0 * a)
            eta = torch.where(low, 1.0 + 2.0 * a * r[1], (1.0 + 2.0 * a) / (1.0 + 2.0 * a * r[1]))
            mu = 1.0 - (eta - 1.0) / a
            ok = torch.where(low, r[2] <= 4.0 * (1.0 / eta - 1.0 / (eta * eta)),
                             r[2] <= 0.5 * (mu * mu + 1.0 / eta))
            x = (e[todo] / HC_KEV_ANGSTROM) * torch.sqrt(torch.clamp(0.5 * (1.0 - mu), min=0.0))
            ok &= r[3] <= _interp(torch, x, xg, sf)
            cos[todo[ok]] = mu[ok]
            todo = todo[~ok]
        return e / (1.0 + (e / ELECTRON_MASS_KEV) * (1.0 - cos)), cos

    def _rayleigh(self, e: Any, k: int) -> Any:
        torch = self.torch
        _, _, q, cum = self.ang[k]
        cos = torch.empty_like(e)
        todo = torch.arange(e.numel(), device=self.device)
        while todo.numel():
            k2 = (e[todo] / HC_KEV_ANGSTROM) ** 2
            r = self._u(2, todo.numel())
            x2 = _interp(torch, r[0] * _interp(torch, k2, q, cum), cum, q)
            mu = (1.0 - 2.0 * x2 / k2).clamp(-1.0, 1.0)
            ok = r[1] <= 0.5 * (1.0 + mu * mu)
            cos[todo[ok]] = mu[ok]
            todo = todo[~ok]
        return cos

    def run(self, n: int) -> tuple[np.ndarray, float, float, float]:
        """Transport ``n`` photons: (tally per voxel, escaped, absorbed, emitted), keV."""
        torch = self.torch
        t = self.t
        g = self.maj.numel()
        _nz, ny, nx = t.shape
        tally = torch.zeros(t.n_voxels, dtype=torch.float64, device=self.device)
        w = t.weight
        vox = torch.clamp(torch.searchsorted(self.cdf, self._u(n) * self.cdf[-1], right=True),
                          max=t.n_voxels - 1)
        iz = torch.div(vox, ny * nx, rounding_mode="floor")
        rem = vox - iz * ny * nx
        iy = torch.div(rem, nx, rounding_mode="floor")
        ix = rem - iy * nx
        pos = (torch.stack([ix, iy, iz], dim=1).double() + self._u(n, 3)) * self.spacing
        line = torch.clamp(torch.searchsorted(self.line_cdf, self._u(n), right=True),
                           max=self.lines.numel() - 1)
        e = self.lines[line].clone()
        emitted = float(e.sum()) * w
        d = self._isotropic(n)
        escaped = torch.zeros((), dtype=torch.float64, device=self.device)
        absorbed = torch.zeros((), dtype=torch.float64, device=self.device)
        low = e < t.cutoff_kev
        if bool(low.any()):
            tally.index_add_(0, vox[low], e[low] * w)
            absorbed += e[low].sum() * w
            pos, e, d = pos[~low], e[~low], d[~low]
        n_media = t.xs_mm.shape[0]
        while e.numel():
            f = (torch.log(e) - t.ln_e0) / t.d_ln_e
            i = torch.clamp(f.long(), 0, g - 2)
            f = f - i
            maj = self.maj[i] * (1 - f) + self.maj[i + 1] * f
            s = -torch.log1p(-self._u(e.numel())) / maj
            pos = pos + d * s[:, None]
            inside = ((pos >= 0) & (pos < self.size)).all(dim=1)
            if not bool(inside.all()):
                escaped += e[~inside].sum() * w
                pos, e, d, i, f, maj = (a[inside] for a in (pos, e, d, i, f, maj))
                if not e.numel():
                    break
            ijk = torch.minimum((pos / self.spacing).long(), self.hi)
            flat = (ijk[:, 2] * ny + ijk[:, 1]) * nx + ijk[:, 0]
            m = self.mat[flat]
            rho = self.rho[flat]
            base = m * 5 * g + i

            def row(r: int, base: Any = base, f: Any = f, rho: Any = rho) -> Any:
                b = base + r * g
                return (self.xs[b] * (1 - f) + self.xs[b + 1] * f) * rho

            mu_ph, mu_co, mu_ra, mu_pp, mu_en = (row(r) for r in range(5))
            tally.index_add_(0, flat, e * mu_en / maj * w)
            u = self._u(e.numel()) * maj
            c1 = mu_ph
            c2 = c1 + mu_co
            c3 = c2 + mu_ra
            c4 = c3 + mu_pp
            photo = u < c1
            compton = (u >= c1) & (u < c2)
            rayl = (u >= c2) & (u < c3)
            pair = (u >= c3) & (u < c4)
            absorbed += e[photo].sum() * w
            for k in range(n_media):
                sel = torch.nonzero(compton & (m == k)).squeeze(1)
                if sel.numel():
                    e_out, cos = self._compton(e[sel], k)
                    absorbed += (e[sel] - e_out).sum() * w
                    e[sel] = e_out
                    d[sel] = self._rotate(d[sel], cos)
                sel = torch.nonzero(rayl & (m == k)).squeeze(1)
                if sel.numel():
                    d[sel] = self._rotate(d[sel], self._rayleigh(e[sel], k))
            extra = None
            if bool(pair.any()):
                pi = torch.nonzero(pair).squeeze(1)
                absorbed += (e[pi] - _PAIR_KEV).sum() * w
                e[pi] = ELECTRON_MASS_KEV
                d[pi] = self._isotropic(pi.numel())
                extra = (pos[pi].clone(), -d[pi])
            alive = ~photo
            cut = alive & (e < t.cutoff_kev)
            if bool(cut.any()):
                tally.index_add_(0, flat[cut], e[cut] * w)
                absorbed += e[cut].sum() * w
                alive &= ~cut
            pos, e, d = pos[alive], e[alive], d[alive]
            if extra is not None:
                pos = torch.cat([pos, extra[0]])
                d = torch.cat([d, extra[1]])
                e = torch.cat([e, torch.full((extra[0].shape[0],), ELECTRON_MASS_KEV,
                                             dtype=e.dtype, device=self.device)])
        return tally.cpu().numpy(), float(escaped), float(absorbed), emitted
