"""``theradose kernel``: generate (or read from the cache) the voxel S-values of a nuclide."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from theradose.cli._main import cli
from theradose.dose._media import MEDIA
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.dose._vsv import check_options
from theradose.errors import InputError

_CLASSES = ("electron", "photon", "alpha")


def _parse_voxel(text: str) -> float | tuple[float, float, float]:
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) not in (1, 3) or not all(math.isfinite(v) and v > 0 for v in vals):
        raise InputError(f"got {text!r}, expected one number > 0 (cubic) or three "
                         "comma-separated numbers x,y,z > 0 in mm", field="--voxel-mm")
    return vals[0] if len(vals) == 1 else (vals[0], vals[1], vals[2])


#: Library argument name -> command-line flag, for the errors of :func:`_check_options`.
_FLAGS = {"voxel_mm": "--voxel-mm", "radius_mm": "--radius-mm", "n_samples": "--samples",
          "seed": "--seed", "density_g_cm3": "--density"}


def _check_options(vox: float | tuple[float, float, float], radius_mm: float | None,
                   n_samples: int, seed: int, density_g_cm3: float | None) -> None:
    """Refuse, before any work, options the generator cannot honour (one line, the option).

    The ranges are the library's (:func:`theradose.dose._vsv.check_options`); the error names
    the flag instead of the argument.
    """
    try:
        check_options(vox, radius_mm, n_samples, seed, density_g_cm3)
    except InputError as exc:
        raise InputError(exc.detail, field=_FLAGS.get(exc.field or "", exc.field)) from None


def kernel_summary(kernel: VoxelKernel) -> dict[str, Any]:
    """The JSON document of ``theradose kernel``.

    Parameters
    ----------
    kernel : VoxelKernel
        Voxel S-values, mGy/(MBq·s).

    Returns
    -------
    dict
        ``nuclide``, ``voxel_mm`` (a number for cubic voxels, else ``[x, y, z]``), ``unit``,
        ``center`` (source voxel), ``face``/``edge``/``corner`` (mean over the 6/12/8 first
        neighbours; for anisotropic voxels also ``face_x``, ``face_y``, ``face_z``),
        ``sum_energy_fraction``, their σ, ``medium``, ``density_g_cm3``, ``classes``,
        ``emitted_kev``, ``shape_zyx``, ``provenance``.
    """
    v = kernel.values
    cz, cy, cx = kernel.center
    nb = v[cz - 1:cz + 2, cy - 1:cy + 2, cx - 1:cx + 2]
    order = (np.abs(np.indices((3, 3, 3)) - 1)).sum(axis=0)  # 0 centre, 1 face, 2 edge, 3 corner
    sig = kernel.sigma if kernel.sigma is not None else np.zeros_like(v)
    snb = sig[cz - 1:cz + 2, cy - 1:cy + 2, cx - 1:cx + 2]
    vox = kernel.voxel_mm
    cubic = vox[0] == vox[1] == vox[2]
    out: dict[str, Any] = {
        "nuclide": kernel.nuclide,
        "voxel_mm": vox[0] if cubic else list(vox),
        "unit": "mGy/(MBq*s)",
        "center": float(v[cz, cy, cx]),
        "face": float(nb[order == 1].mean()),
        "edge": float(nb[order == 2].mean()),
        "corner": float(nb[order == 3].mean()),
        "sum_energy_fraction": kernel.energy_fraction,
    }
    if not cubic:
        out.update(face_x=float(v[cz, cy, cx + 1]), face_y=float(v[cz, cy + 1, cx]),
                   face_z=float(v[cz + 1, cy, cx]))
    out["sigma"] = {"center": float(snb[1, 1, 1]), "face": float(snb[order == 1].mean()),
                    "edge": float(snb[order == 2].mean()),
                    "corner": float(snb[order == 3].mean())}
    out.update(medium=kernel.medium, density_g_cm3=kernel.density_g_cm3,
               classes=list(kernel.classes), emitted_kev=kernel.emitted_kev,
               shape_zyx=list(v.shape), provenance=dict(kernel.provenance))
    return out


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--nuclide", required=True, help="ICRP-107 nuclide (Lu-177, Y-90, I-131, ...).")
@click.option("--voxel-mm", "voxel_mm", required=True,
              help="Voxel size in mm: one number (cubic) or x,y,z (e.g. 4.8 or 4.42,4.42,3.0).")
@click.option("--medium", default="water", show_default=True, type=click.Choice(sorted(MEDIA)),
              help="Composition of the medium.")
@click.option("--density", "density_g_cm3", type=float, default=None,
              help="Density in g/cm3 if not the medium's nominal one (O'Connor scaling).")
@click.option("--classes", default="electron,photon", show_default=True,
              help="Comma-separated emission classes: electron, photon, alpha.")
@click.option("--radius-mm", type=float, default=None,
              help="Half-size of the kernel box in mm (default: electron range, photons "
                   "to 100 mm).")
@click.option("--samples", "n_samples", type=int, default=1 << 20, show_default=True,
              help="Quasi-Monte-Carlo points of the near-field integration.")
@click.option("--seed", type=int, default=0, show_default=True, help="Integration seed.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the kernel: .npy (values [z,y,x], mGy/(MBq*s)) or .npz (values, "
                   "sigma, metadata).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the kernel cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Kernel cache folder (default $THERADOSE_CACHE_DIR or ~/.cache/theradose).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def kernel(nuclide: str, voxel_mm: str, medium: str, density_g_cm3: float | None, classes: str,
           radius_mm: float | None, n_samples: int, seed: int, out: Path | None,
           overwrite: bool, no_cache: bool, cache_dir: Path | None, as_json: bool) -> None:
    """Voxel S-values (mGy/(MBq*s)) of a nuclide, generated from its point kernels."""
    from theradose.dose._cache import save_voxel_kernel
    from theradose.dose._vsv import voxel_s_values
    from theradose.io._outputs import atomic_path, prepare_output

    vox = _parse_voxel(voxel_mm)
    _check_options(vox, radius_mm, n_samples, seed, density_g_cm3)
    cls = [c.strip() for c in classes.split(",") if c.strip()]
    if not cls or any(c not in _CLASSES for c in cls):
        raise InputError(f"got {classes!r}, expected comma-separated names from "
                         f"{', '.join(_CLASSES)}", field="--classes")
    if out is not None:
        if out.suffix.lower() not in (".npy", ".npz"):
            raise InputError(f"unsupported output {out.name!r}, expected a .npy or .npz file "
                             "name", field="--out")
        prepare_output(out, overwrite=overwrite)  # refuse before the (long) computation
    k = voxel_s_values(nuclide, vox, medium, classes=cls,
                       radius_mm=radius_mm, n_samples=n_samples, seed=seed,
                       density_g_cm3=density_g_cm3, cache=not no_cache,
                       cache_dir=None if cache_dir is None else str(cache_dir))
    data = kernel_summary(k)
    if out is not None:
        if out.suffix.lower() == ".npz":
            save_voxel_kernel(k, out, overwrite=overwrite)
        else:
            with atomic_path(out, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
                np.save(fh, k.values)
        data["out"] = str(out)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    vx, vy, vz = k.voxel_mm
    click.echo(f"{k.nuclide} voxel S-values in {k.medium} ({k.density_g_cm3:g} g/cm3), voxel "
               f"{vx:g} x {vy:g} x {vz:g} mm, classes {', '.join(k.classes)}, box "
               f"{' x '.join(str(s) for s in k.values.shape[::-1])} voxels")
    for name in ("center", "face", "edge", "corner"):
        click.echo(f"  {name:<8}{data[name]:>14.6g} mGy/(MBq*s)  (sigma {data['sigma'][name]:.2g})")
    if "face_x" in data:
        click.echo(f"  face x/y/z: {data['face_x']:.6g} / {data['face_y']:.6g} / "
                   f"{data['face_z']:.6g}")
    click.echo(f"  energy absorbed in the box / emitted: {data['sum_energy_fraction']:.4f}")
    if out is not None:
        click.echo(f"wrote {out}")
