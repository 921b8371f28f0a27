"""The dose-engine interface, its registry, input checks, and dose-rate maps.

Every engine turns a TIA map into a :class:`~theradose.dose._result.DoseResult` with the same
call, ``engine.compute(tia, density, nuclide, labels=..., tia_sigma=...)``, so a pipeline
configuration can name the engines to run and compare them::

    {"engines": [{"name": "led"}, {"name": "kernel", "medium": "water"}]}

Engines register under a name with :func:`register_engine` (a class, a factory, or a lazy
``"module:attribute"`` string); :func:`get_engine` builds one from its name and options.
"""

from __future__ import annotations

import abc
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from theradose.errors import GeometryMismatchError, InputError, UnitError
from theradose.nuclides import Nuclide, get_nuclide
from theradose.units import parse_unit
from theradose.volume import LabelMap, Volume

__all__ = [
    "DECAYS_PER_MBQ_H",
    "DoseEngine",
    "available_engines",
    "dose_rate_map",
    "engines_from_config",
    "get_engine",
    "register_engine",
    "run_engines",
]

#: Decays in 1 MBq·h: 1e6 Bq × 3600 s.
DECAYS_PER_MBQ_H = 3.6e9


class DoseEngine(abc.ABC):
    """A method that turns time-integrated activity into absorbed dose.

    Subclasses set :attr:`name`, implement :meth:`compute` and :meth:`options`, and register
    with :func:`register_engine`.
    """

    #: Registry name (``"led"``, ``"kernel"``, ...).
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def compute(self, tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                labels: LabelMap | None = None, tia_sigma: Volume | None = None) -> Any:
        """Absorbed dose from a TIA map.

        Parameters
        ----------
        tia : Volume
            Time-integrated activity per voxel, ``MBq*h`` (``MBq*s`` and ``Bq*h/mL`` are
            converted), ``(Z, Y, X)``. Its ``sigma`` is used when ``tia_sigma`` is None.
        density : Volume or float
            Mass density, ``g/cm3``, on the TIA grid (or one value for the whole image).
        nuclide : str or Nuclide
            Emitting nuclide (ICRP-107 name).
        labels : LabelMap, optional
            VOIs for per-VOI doses, on the TIA grid.
        tia_sigma : Volume, optional
            Standard uncertainty of the TIA per voxel (same units as ``tia``); voxels are taken
            as independent.

        Returns
        -------
        DoseResult
        """

    def options(self) -> dict[str, Any]:
        """The engine's options (JSON-ready), recorded in the provenance."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


# ---------------------------------------------------------------------------- input checks
@dataclass(frozen=True, eq=False)
class PreparedInputs:
    """Validated engine inputs in canonical units (internal).

    Attributes
    ----------
    tia : Volume
        The TIA volume as given (its geometry is the output grid).
    tia_mbqh : (Z, Y, X) float32 or float64 ndarray
        TIA per voxel, MBq·h (the caller's array when no conversion is needed: read only).
    sigma_mbqh : (Z, Y, X) float64 ndarray or None
        Its standard uncertainty, MBq·h.
    density : (Z, Y, X) float64 ndarray
        g/cm³.
    nuclide : Nuclide
    labels : LabelMap or None
    """

    tia: Volume
    tia_mbqh: np.ndarray
    sigma_mbqh: np.ndarray | None
    density: np.ndarray
    nuclide: Nuclide
    labels: LabelMap | None

    @property
    def mass_g(self) -> np.ndarray:
        """Voxel mass, g (density × voxel volume; computed on each access)."""
        return self.density * self.tia.geometry.voxel_volume_ml

    @property
    def voxel_ml(self) -> float:
        """Voxel volume, mL."""
        return self.tia.geometry.voxel_volume_ml

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (x, y, z), mm."""
        return self.tia.geometry.spacing_mm


def check_fft_options(precision: str, workers: int) -> tuple[str, int]:
    """Validate the FFT options shared by the convolution-based engines."""
    if precision not in ("float32", "float64"):
        raise InputError(f"unknown precision {precision!r}; accepted: 'float32', 'float64'",
                         field="precision")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be an integer >= 1, got {workers!r}", field="workers")
    return precision, workers


def _tia_to_mbqh(vol: Volume, arr: np.ndarray, field: str) -> np.ndarray:
    unit = parse_unit(vol.unit, field=f"{field}.unit")
    if unit.dimension == "time_integrated_activity":
        f = unit.to_base / parse_unit("MBq*h").to_base
        a = np.asarray(arr)
        if f == 1.0 and a.dtype in (np.float32, np.float64):
            return a  # no copy: engines never write into it
        return a.astype(np.float64) * f
    if unit.dimension == "time_integrated_activity_concentration":  # Bq*h/mL -> MBq*h per voxel
        return arr.astype(np.float64) * unit.to_base * vol.geometry.voxel_volume_ml * 1e-6
    raise UnitError(f"expected a time-integrated activity (MBq*h per voxel, MBq*s or Bq*h/mL), "
                    f"got unit {vol.unit!r}", field=f"{field}.unit")


def _same_grid(ref: Volume, other: Volume, field: str) -> None:
    try:
        ref.geometry.require_same(other.geometry, what=f"tia and {field}")
    except GeometryMismatchError as exc:
        raise GeometryMismatchError(exc.detail, field=f"{field}.{exc.field}") from None


def prepare_inputs(tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                   labels: LabelMap | None = None,
                   tia_sigma: Volume | None = None) -> PreparedInputs:
    """Check engine inputs and convert them to MBq·h, g/cm³ and g (see :meth:`DoseEngine.compute`).

    Raises
    ------
    InputError
        ``tia`` not a Volume or non-finite; ``density`` negative, non-finite or not ``g/cm3``;
        ``tia_sigma`` negative; ``labels`` not a LabelMap (subclasses: UnitError,
        GeometryMismatchError, UnknownNuclideError).
    """
    if not isinstance(tia, Volume) or isinstance(tia, LabelMap):
        raise InputError(f"expected a Volume of time-integrated activity, got "
                         f"{type(tia).__name__}", field="tia")
    tia_mbqh = _tia_to_mbqh(tia, tia.array, "tia")
    if not np.all(np.isfinite(tia_mbqh)):
        raise InputError(f"{int(np.sum(~np.isfinite(tia_mbqh)))} non-finite voxel values; "
                         "expected finite MBq*h", field="tia")
    if isinstance(density, Volume):
        if parse_unit(density.unit, field="density.unit").dimension != "mass_density":
            raise UnitError(f"expected a mass density in g/cm3, got unit {density.unit!r}",
                            field="density.unit")
        _same_grid(tia, density, "density")
        rho = density.array.astype(np.float64)
    elif isinstance(density, (int, float)) and not isinstance(density, bool):
        rho = np.full(tia.shape, float(density))
    else:
        raise InputError(f"expected a density Volume (g/cm3) or a number, got "
                         f"{type(density).__name__}", field="density")
    if not np.all(np.isfinite(rho)) or np.any(rho < 0):
        bad = float(np.nanmin(np.where(np.isfinite(rho), rho, np.nan))) \
            if np.any(np.isfinite(rho)) else float("nan")
        raise InputError(f"density must be finite and >= 0 g/cm3; got minimum {bad:g} and "
                         f"{int(np.sum(~np.isfinite(rho)))} non-finite voxels", field="density")
    sigma = None
    if tia_sigma is None and tia.sigma is not None:
        sigma = _tia_to_mbqh(tia, np.asarray(tia.sigma), "tia")
    elif tia_sigma is not None:
        if not isinstance(tia_sigma, Volume):
            raise InputError(f"expected a Volume, got {type(tia_sigma).__name__}",
                             field="tia_sigma")
        _same_grid(tia, tia_sigma, "tia_sigma")
        sigma = _tia_to_mbqh(tia_sigma, tia_sigma.array, "tia_sigma")
    if sigma is not None and (not np.all(np.isfinite(sigma)) or np.any(sigma < 0)):
        raise InputError("standard uncertainties must be finite and >= 0 MBq*h",
                         field="tia_sigma")
    if labels is not None:
        if not isinstance(labels, LabelMap):
            raise InputError(f"expected a LabelMap, got {type(labels).__name__}", field="labels")
        _same_grid(tia, labels, "labels")
    nuc = get_nuclide(nuclide, field="nuclide")
    return PreparedInputs(tia, tia_mbqh, sigma, rho, nuc, labels)


def dose_volume(inputs: PreparedInputs, array: np.ndarray, engine: str, *,
                sigma: bool = False) -> Volume:
    """A dose (or σ) Volume in Gy on the TIA grid."""
    what = "σ of absorbed dose" if sigma else "absorbed dose"
    return Volume(np.asarray(array), inputs.tia.geometry, unit="Gy", modality="OT",
                  acquisition_time=inputs.tia.acquisition_time,
                  history=(*inputs.tia.history, f"{what} ({engine} engine)"))


# ---------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., DoseEngine] | str] = {
    "led": "theradose.dose._led:LocalDepositionEngine",
    "kernel": "theradose.dose._convolution:KernelConvolutionEngine",
    "montecarlo": "theradose.dose.mc._engine:MonteCarloEngine",
    "alpha": "theradose.dose.mc._alpha:AlphaDoseEngine",
}


def register_engine(name: str, factory: Callable[..., DoseEngine] | str, *,
                    overwrite: bool = False) -> None:
    """Make an engine available to :func:`get_engine` and pipeline configs.

    Parameters
    ----------
    name : str
        Registry name (lower case, e.g. ``"monte_carlo"``).
    factory : callable or str
        The engine class (or any callable taking the options as keywords), or
        ``"package.module:Attribute"`` imported on first use.
    overwrite : bool
        Replace an existing registration.

    Raises
    ------
    InputError
        If ``name`` is taken and ``overwrite`` is False, or ``factory`` is neither callable nor
        a ``"module:attribute"`` string.
    """
    key = str(name).strip().lower()
    if not key:
        raise InputError("engine name must not be empty", field="name")
    if key in _REGISTRY and not overwrite:
        raise InputError(f"engine {key!r} is already registered; pass overwrite=True to "
                         "replace it", field="name")
    if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
        raise InputError(f"factory must be callable or 'module:attribute', got {factory!r}",
                         field="factory")
    _REGISTRY[key] = factory


def available_engines() -> list[str]:
    """Names of the registered engines, sorted."""
    return sorted(_REGISTRY)


def _factory(key: str) -> Callable[..., DoseEngine]:
    f = _REGISTRY[key]
    if isinstance(f, str):
        mod, attr = f.split(":", 1)
        f = getattr(importlib.import_module(mod), attr)
        _REGISTRY[key] = f
    return f


def get_engine(name: str, *, field: str = "name", **options: Any) -> DoseEngine:
    """Build a registered engine.

    Parameters
    ----------
    name : str
        ``"led"``, ``"kernel"``, or a name given to :func:`register_engine`.
    field : str
        Named in error messages (e.g. ``"engines[1].name"`` when read from a config).
    **options
        Passed to the engine's constructor.

    Raises
    ------
    InputError
        For an unknown name or an option the engine does not take.

    Examples
    --------
    >>> get_engine("led", photons="ignore").name
    'led'
    """
    key = str(name).strip().lower()
    if key not in _REGISTRY:
        raise InputError(f"unknown dose engine {name!r}; available: {available_engines()}",
                         field=field)
    factory = _factory(key)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        sig = None
    if sig is not None and not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(options) - set(sig.parameters))
        if unknown:
            base = field.rsplit(".", 1)[0] if "." in field else "options"
            raise InputError(f"engine {key!r} takes no option {unknown[0]!r}; accepted: "
                             f"{sorted(sig.parameters)}", field=f"{base}.{unknown[0]}")
    return factory(**options)


def engines_from_config(config: Mapping[str, Any] | Sequence[Mapping[str, Any] | str]
                        ) -> list[DoseEngine]:
    """Engines from a pipeline config: ``{"engines": [{"name": "led"}, ...]}`` or the list.

    Each entry is ``{"name": ..., **options}`` or just the name.

    Raises
    ------
    InputError
        If the config has no ``engines`` list, an entry lacks ``name``, or an engine rejects an
        option (the field says which entry, e.g. ``engines[1].medium``).
    """
    if isinstance(config, Mapping):
        if "engines" not in config:
            raise InputError(f"config has no 'engines' list; keys: {sorted(config)}",
                             field="engines")
        entries = config["engines"]
    else:
        entries = config
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence) or not entries:
        raise InputError(f"expected a non-empty list of engines, got {entries!r}",
                         field="engines")
    out = []
    for i, e in enumerate(entries):
        if isinstance(e, str):
            out.append(get_engine(e, field=f"engines[{i}].name"))
            continue
        if not isinstance(e, Mapping) or "name" not in e:
            raise InputError(f"each engine needs a 'name', got {e!r}", field=f"engines[{i}]")
        opts = {k: v for k, v in e.items() if k != "name"}
        out.append(get_engine(e["name"], field=f"engines[{i}].name", **opts))
    return out


def run_engines(engines: Mapping[str, Any] | Sequence[DoseEngine | Mapping[str, Any] | str],
                tia: Volume, density: Volume | float, nuclide: str | Nuclide, *,
                labels: LabelMap | None = None, tia_sigma: Volume | None = None) -> list[Any]:
    """Run several engines on the same input.

    Parameters
    ----------
    engines : config mapping, or sequence of DoseEngine / config entries
        See :func:`engines_from_config`; built engines are used as they are.
    tia, density, nuclide, labels, tia_sigma
        As in :meth:`DoseEngine.compute`.

    Returns
    -------
    list of DoseResult
        In the order of ``engines``; compare them with
        :func:`theradose.dose._result.compare_engines`.
    """
    if isinstance(engines, Mapping):
        built = engines_from_config(engines)
    else:
        built = [e if isinstance(e, DoseEngine) else engines_from_config([e])[0]
                 for e in engines]
        if not built:
            raise InputError("expected at least one engine, got none", field="engines")
    return [e.compute(tia, density, nuclide, labels=labels, tia_sigma=tia_sigma) for e in built]


# ---------------------------------------------------------------------------- dose rate
def _activity_as_tia(activity: Volume, field: str) -> Volume:
    """MBq per voxel (or Bq/mL) → the same numbers as MBq·h (1 h of that activity)."""
    if not isinstance(activity, Volume) or isinstance(activity, LabelMap):
        raise InputError(f"expected an activity Volume, got {type(activity).__name__}",
                         field=field)
    unit = parse_unit(activity.unit, field=f"{field}.unit")
    if unit.dimension == "activity":
        f = unit.to_base / 1e6
    elif unit.dimension == "activity_concentration":
        f = unit.to_base * activity.geometry.voxel_volume_ml * 1e-6
    else:
        raise UnitError(f"expected activity per voxel (MBq, Bq, ...) or concentration "
                        f"(Bq/mL, ...), got unit {activity.unit!r}", field=f"{field}.unit")
    sig = None if activity.sigma is None else np.asarray(activity.sigma, np.float64) * f
    return activity.replace(array=activity.array.astype(np.float64) * f, unit="MBq*h",
                            sigma=sig)


def dose_rate_map(activity: Volume | Sequence[Volume], density: Volume | float,
                  nuclide: str | Nuclide, engine: DoseEngine | str | Mapping[str, Any] = "led",
                  *, labels: LabelMap | None = None) -> Volume | list[Volume]:
    """Absorbed-dose-rate map (Gy/h) at the time of an activity image.

    Dose rate is linear in activity exactly as dose is in TIA: the engine is applied to the
    activity A (MBq) as if it were a TIA of A × 1 h, and the result in Gy is the dose rate in
    Gy/h.

    Parameters
    ----------
    activity : Volume or sequence of Volume
        Activity per voxel (``MBq``, ``kBq``, ``Bq``, ...) or concentration (``Bq/mL``, ...),
        ``(Z, Y, X)``; one image per time point. Its ``sigma`` is propagated.
    density : Volume or float
        Mass density, g/cm³, on the activity grid.
    nuclide : str or Nuclide
    engine : DoseEngine, name or config entry
        Default local deposition.
    labels : LabelMap, optional
        VOIs; their mean dose rates are in the history of the returned volume's ``meta``.

    Returns
    -------
    Volume or list of Volume
        Unit ``Gy/h``, ``sigma`` set when the activity had one, ``acquisition_time`` kept;
        ``meta["voi"]`` holds the per-VOI mean dose rates (``mean_gy`` read as Gy/h).
    """
    if isinstance(engine, DoseEngine):
        eng = engine
    else:
        eng = engines_from_config([engine])[0]
    if isinstance(activity, Sequence) and not isinstance(activity, Volume):
        return [dose_rate_map(a, density, nuclide, eng, labels=labels)  # type: ignore[misc]
                for a in activity]
    tia = _activity_as_tia(activity, "activity")
    res = eng.compute(tia, density, nuclide, labels=labels)
    has_sigma = activity.sigma is not None
    return Volume(res.dose.array, activity.geometry, unit="Gy/h", modality="OT",
                  acquisition_time=activity.acquisition_time,
                  sigma=res.sigma.array if has_sigma else None,
                  meta={"engine": res.engine, "voi": [v.to_dict() for v in res.voi],
                        "provenance": res.provenance},
                  history=(*activity.history, f"absorbed dose rate ({res.engine} engine)"))

