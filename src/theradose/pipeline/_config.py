"""Pipeline configuration: one typed, declarative object, validated once at the boundary.

Every key, its default and its meaning is listed in ``docs/pipeline.md``; :data:`DEFAULTS` is
the single source of both the defaults and the accepted keys.
"""

from __future__ import annotations

import copy
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theradose.errors import InputError, UnreadableFileError
from theradose.kinetics._fit import MAX_RELATIVE_SIGMA

__all__ = ["CALIBRATION_RANGE_CPS_PER_MBQ", "CT_TOLERANCE_MAX_H", "DEFAULTS",
           "INJECTED_ACTIVITY_RANGE_MBQ", "PipelineConfig", "check_calibration",
           "check_ct_tolerance"]

#: Sections, keys and default values (None: not set).
DEFAULTS: dict[str, dict[str, Any]] = {
    "study": {"calibration_cps_per_mbq": None, "nuclide": None, "injected_activity_mbq": None,
              "injection_time": None},
    "registration": {"enabled": True, "deformable": False, "reference": 0, "seed": 0},
    "vois": {"include": [], "exclude": []},
    "segmentation": {"lesions": "none", "percent": 40.0, "threshold": None,
                     "min_volume_ml": 0.5},
    "kinetics": {"models": ["mono", "bi_uptake", "bi", "tri_uptake"], "criterion": "aicc",
                 "margin_mm": 0.0, "relative_sigma": 0.1, "max_abs_corr": None,
                 "voxel_models": ["mono", "bi_uptake"], "pvc": "gtm", "fwhm_mm": None,
                 "fwhm_fallback_mm": 12.0,
                 "gtm_roi_margin_mm": None, "gtm_shell_mm": None, "gtm_guard_mm": None,
                 "local_align": ["lesion*"], "local_align_max_mm": None,
                 "gtm_fwhm_rel_sd": None},
    "dose": {"engines": ["kernel", "organ_svalues"], "kernel": {}, "montecarlo": {},
             "led": {}, "phantom": "auto"},
    "radiobiology": {"enabled": True},
    "outputs": {"nifti": True, "rtdose": True, "seg": True, "report": True},
}

#: Number keys for which 0 is allowed (margins, shell thickness).
_ZERO_OK = ("margin_mm", "gtm_roi_margin_mm", "gtm_shell_mm", "gtm_guard_mm",
            "gtm_fwhm_rel_sd")
_LESION_METHODS = ("none", "percent_max", "suv_threshold", "region_growing")
_PVC = ("none", "gtm")
_ENGINES = ("kernel", "organ_svalues", "montecarlo", "led")
_PHANTOMS = ("auto", "adult_male", "adult_female")
#: Engines whose options are a table ``[dose.<engine>]``.
_ENGINE_TABLES = ("kernel", "montecarlo", "led")
#: Largest registration seed: SimpleITK takes a 32-bit unsigned seed and is given ``seed + 1``
#: (0 would mean "wall clock").
MAX_SEED = 2**32 - 2

#: SPECT sensitivity, cps/MBq: clinical cameras measure ~1-100 (Lu-177 MELP ~10, Tc-99m LEHR
#: ~90, I-131 HEGP ~5); 1e-3 to 1e6 accepts any collimator, window or small-animal system and
#: refuses values that make every activity ~0 (1e308) or overflow the image (1e-300).
CALIBRATION_RANGE_CPS_PER_MBQ = (1e-3, 1e6)

#: Injected activity, MBq: 1 kBq to 100 GBq; therapies give 0.1-30 GBq (Lu-177 7.4 GBq,
#: I-131 up to ~11 GBq, Ra-223 ~4 MBq, Ac-225 ~8 MBq) and diagnostic studies 10-1000 MBq.
INJECTED_ACTIVITY_RANGE_MBQ = (1e-3, 1e5)

#: Largest time between an emission image and a CT paired with it by time, h: two weeks
#: (336 h) covers every post-therapy imaging schedule (last time points at ~7-10 d, some CTs
#: re-used across the study); a larger tolerance pairs images of unrelated studies.
CT_TOLERANCE_MAX_H = 24.0 * 14


def _in_range(value: Any, lo: float, hi: float, what: str, *, file: str | None,
              field: str, lo_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = (lo < v if lo_open else lo <= v) and v <= hi
    if not (math.isfinite(v) and inside):
        rng = f"({lo:g}, {hi:g}]" if lo_open else f"[{lo:g}, {hi:g}]"
        raise _fail(file, field, f"expected {what} in {rng}, got {value!r}")
    return v


def check_calibration(value: Any, *, file: str | None = None,
                      field: str = "study.calibration_cps_per_mbq") -> float:
    """A SPECT sensitivity in :data:`CALIBRATION_RANGE_CPS_PER_MBQ`, cps/MBq.

    The one check of the configuration key and of the ``--calibration-cps-per-mbq`` flag of
    ``run``, ``study`` and ``convert`` (which pass ``field`` = the flag).

    Raises
    ------
    InputError
        If ``value`` is not a finite number in the range.
    """
    lo, hi = CALIBRATION_RANGE_CPS_PER_MBQ
    return _in_range(value, lo, hi, "a sensitivity (cps/MBq; clinical SPECT 1-100)",
                     file=file, field=field)


def check_ct_tolerance(value: Any, *, file: str | None = None,
                       field: str = "ct_tolerance_h") -> float:
    """A CT pairing tolerance in ``(0, CT_TOLERANCE_MAX_H]`` hours.

    Raises
    ------
    InputError
        If ``value`` is not a finite number in the range.
    """
    return _in_range(value, 0.0, CT_TOLERANCE_MAX_H, "a time in hours (two weeks at most)",
                     file=file, field=field, lo_open=True)


def _fail(file: str | None, key: str, msg: str) -> InputError:
    return InputError(msg, file=file, field=key)


def _check_value(section: str, key: str, value: Any, default: Any, file: str | None) -> Any:
    name = f"{section}.{key}"
    if value is None and default is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(file, name, f"expected true or false, got {value!r}")
        return value
    if isinstance(default, int | float) or key in ("threshold", "calibration_cps_per_mbq",
                                                    "injected_activity_mbq", "max_abs_corr",
                                                    "fwhm_mm", "local_align_max_mm",
                                                    "fwhm_fallback_mm",
                                                    *_ZERO_OK):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(file, name, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise _fail(file, name, f"expected a finite number, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and key in (
                "reference", "seed"):
            if int(value) != value or value < 0:
                raise _fail(file, name, f"expected an integer >= 0, got {value!r}")
            if key == "seed" and value > MAX_SEED:
                raise _fail(file, name, f"expected an integer in [0, {MAX_SEED}] (a 32-bit "
                            f"seed), got {value!r}")
            return int(value)
        if key not in _ZERO_OK and value <= 0:  # threshold too: a concentration (SUV, Bq/mL)
            raise _fail(file, name, f"expected a number > 0, got {value!r}")
        if key == "calibration_cps_per_mbq":
            return check_calibration(value, file=file, field=name)
        if key == "injected_activity_mbq":
            lo, hi = INJECTED_ACTIVITY_RANGE_MBQ
            return _in_range(value, lo, hi, "an activity in MBq (1 kBq to 100 GBq)",
                             file=file, field=name)
        if key in _ZERO_OK and value < 0:
            raise _fail(file, name, f"expected a number >= 0 (mm), got {value!r}")
        if key == "percent" and not 0 < value < 100:
            raise _fail(file, name, f"expected a percentage in (0, 100), got {value!r}")
        if key == "relative_sigma" and value > MAX_RELATIVE_SIGMA:
            raise _fail(file, name, f"expected a fraction in (0, {MAX_RELATIVE_SIGMA:g}] (0.1 "
                        f"for 10 %), got {value!r}")
        if key == "max_abs_corr" and not 0 < value <= 1:
            raise _fail(file, name, f"expected a number in (0, 1], got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _fail(file, name, f"expected a list of strings, got {value!r}")
        if any(not v.strip() for v in value):
            raise _fail(file, name, f"empty name in {list(value)!r}")
        return list(value)
    if isinstance(default, dict):
        if not isinstance(value, Mapping):
            raise _fail(file, name, f"expected a table of options, got {value!r}")
        return dict(value)
    if isinstance(default, str) or key in ("nuclide", "injection_time"):
        if not isinstance(value, str):
            raise _fail(file, name, f"expected a string, got {value!r}")
        return value
    return value


def _check_models(kin: dict[str, Any], file: str | None) -> None:
    """Organ and voxel models against the registries of :mod:`theradose.kinetics`."""
    from theradose.kinetics._models import MODELS, NONPARAMETRIC
    from theradose.kinetics._voxel import FALLBACKS
    from theradose.kinetics._voxel_models import VOXEL_MODELS

    models = kin["models"]
    if not models:
        raise _fail(file, "kinetics.models", "empty; give at least one model (e.g. 'mono')")
    known = (*MODELS, *NONPARAMETRIC)
    for m in models:
        if m not in known:
            raise _fail(file, "kinetics.models", f"unknown model {m!r}; accepted: "
                        f"{', '.join(known)}")
    vmodels = kin["voxel_models"]
    vknown = (*VOXEL_MODELS, *FALLBACKS)
    if not vmodels:
        raise _fail(file, "kinetics.voxel_models",
                    "empty; give at least one model (e.g. 'mono')")
    for m in vmodels:
        if m not in vknown:
            raise _fail(file, "kinetics.voxel_models", f"unknown model {m!r}; accepted: "
                        f"{', '.join(vknown)}")
    if len(set(vmodels)) != len(vmodels):
        raise _fail(file, "kinetics.voxel_models", f"a model is listed twice in {vmodels!r}")
    fb = [m for m in vmodels if m in FALLBACKS]
    if fb and len(vmodels) > 1:
        raise _fail(file, "kinetics.voxel_models", f"{fb[0]!r} is the automatic fallback; "
                    f"list it alone to use it for every voxel, got {vmodels!r}")


def _check_study(study: dict[str, Any], file: str | None) -> None:
    """Nuclide name (ICRP-107) and injection time (ISO 8601), as ``load_study`` reads them."""
    from theradose.io._nifti import _parse_time
    from theradose.nuclides import resolve_name

    if study["nuclide"] is not None:
        resolve_name(study["nuclide"], field="study.nuclide", file=file)
    if study["injection_time"] is not None:
        _parse_time(study["injection_time"], file=None if file is None else Path(file),
                    field="study.injection_time")


def _finite(value: Any, file: str | None, key: str) -> None:
    """No NaN or infinity anywhere in an option table (TOML allows ``nan`` and ``inf``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(file, key, f"expected a finite number, got {value!r}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _finite(v, file, f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _finite(v, file, f"{key}[{i}]")


def _check_engine_options(dose: dict[str, Any], file: str | None) -> None:
    """Build each engine of a non-empty ``[dose.<engine>]`` table: its checks run now.

    The engines' constructors validate every option (names, ranges, choices) without
    computing anything, so a wrong option fails before the study is read.
    """
    for name in _ENGINE_TABLES:
        opts = dose[name]
        if not opts:
            continue
        _finite(opts, file, f"dose.{name}")
        from theradose.dose import get_engine

        try:
            get_engine(name, field=f"dose.{name}.name", **opts)
        except InputError as exc:
            fld = exc.field or "options"
            fld = fld if fld.startswith(f"dose.{name}") else f"dose.{name}.{fld}"
            raise InputError(exc.detail, file=file, field=fld) from None
        except (TypeError, ValueError) as exc:  # a value the constructor cannot use
            raise _fail(file, f"dose.{name}", f"invalid option value ({exc})") from None


@dataclass(frozen=True)
class PipelineConfig:
    """What :func:`theradose.pipeline.run_pipeline` does, section by section.

    Parameters
    ----------
    sections : dict
        ``{section: {key: value}}``; missing keys take :data:`DEFAULTS`. Use
        :meth:`from_toml` or :meth:`from_dict`; ``PipelineConfig()`` is the default pipeline.
    source : str, optional
        File the configuration was read from (named in error messages).

    Raises
    ------
    InputError
        Unknown section or key (the message names it and lists the accepted ones), a value of
        the wrong type or range (NaN and infinity included), an unknown lesion method, dose
        engine, phantom, kinetic model (``kinetics.models`` against
        :data:`theradose.kinetics.MODELS`, ``kinetics.voxel_models`` against the voxel
        models) or nuclide, an injection time that is not ISO 8601, a registration seed
        outside [0, 2**32 - 2], an option in ``[dose.kernel]``, ``[dose.montecarlo]`` or
        ``[dose.led]`` that the engine rejects. Everything is checked here, before any work.

    Examples
    --------
    >>> cfg = PipelineConfig.from_dict({"dose": {"engines": ["kernel"]}})
    >>> cfg.section("dose")["engines"]
    ['kernel']
    >>> cfg.section("kinetics")["criterion"]
    'aicc'

    """

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        file = self.source
        if not isinstance(self.sections, Mapping):
            raise _fail(file, "config", f"expected a table of sections, got {self.sections!r}")
        full = copy.deepcopy(DEFAULTS)
        for sec, values in self.sections.items():
            if sec not in DEFAULTS:
                raise _fail(file, str(sec), f"unknown section {sec!r}; accepted: "
                            f"{', '.join(DEFAULTS)}")
            if not isinstance(values, Mapping):
                raise _fail(file, str(sec), f"expected a table [{sec}], got {values!r}")
            for key, value in values.items():
                if key not in DEFAULTS[sec]:
                    raise _fail(file, f"{sec}.{key}", f"unknown key {key!r} in [{sec}]; "
                                f"accepted: {', '.join(DEFAULTS[sec])}")
                full[sec][key] = _check_value(sec, key, value, DEFAULTS[sec][key], file)
        self._check_choices(full, file)
        object.__setattr__(self, "sections", full)

    @staticmethod
    def _check_choices(full: dict[str, dict[str, Any]], file: str | None) -> None:
        les = full["segmentation"]["lesions"]
        if les not in _LESION_METHODS:
            raise _fail(file, "segmentation.lesions",
                        f"got {les!r}; accepted: {', '.join(_LESION_METHODS)}")
        if les == "suv_threshold" and full["segmentation"]["threshold"] is None:
            raise _fail(file, "segmentation.threshold",
                        "needed with lesions = 'suv_threshold' (a concentration, Bq/mL)")
        engines = full["dose"]["engines"]
        bad = [e for e in engines if e not in _ENGINES]
        if bad or not engines:
            raise _fail(file, "dose.engines", f"got {engines!r}; accepted: a non-empty list "
                        f"of {', '.join(_ENGINES)}")
        if full["dose"]["phantom"] not in _PHANTOMS:
            raise _fail(file, "dose.phantom", f"got {full['dose']['phantom']!r}; accepted: "
                        f"{', '.join(_PHANTOMS)}")
        if full["kinetics"]["pvc"] not in _PVC:
            raise _fail(file, "kinetics.pvc", f"expected one of {list(_PVC)}, got "
                        f"{full['kinetics']['pvc']!r}")
        if full["kinetics"]["pvc"] == "gtm" and full["kinetics"]["margin_mm"] != 0:
            raise _fail(file, "kinetics.margin_mm", "a VOI margin and the GTM correction "
                        "(the default, pvc = 'gtm') both recover spill-out: use one of them "
                        "(margin_mm = 0, or pvc = 'none' with a margin)")
        rel = full["kinetics"]["gtm_fwhm_rel_sd"]
        if rel is not None and not rel < 1:
            raise _fail(file, "kinetics.gtm_fwhm_rel_sd", "expected a fraction in [0, 1) (0.1 "
                        f"for 10 %), got {full['kinetics']['gtm_fwhm_rel_sd']!r}")
        if full["kinetics"]["criterion"] not in ("aicc", "bic"):
            raise _fail(file, "kinetics.criterion",
                        f"got {full['kinetics']['criterion']!r}; accepted: aicc, bic")
        _check_models(full["kinetics"], file)
        _check_study(full["study"], file)
        _check_engine_options(full["dose"], file)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> PipelineConfig:
        """Configuration from ``{section: {key: value}}`` (as read from TOML)."""
        return cls(sections=dict(data), source=source)

    @classmethod
    def from_toml(cls, path: str | Path) -> PipelineConfig:
        """Read and validate a TOML configuration file.

        Raises
        ------
        UnreadableFileError
            Missing file or invalid TOML.
        InputError
            Unknown section/key or bad value (names the file and ``section.key``).

        """
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            why = exc.strerror or exc.__class__.__name__
            raise UnreadableFileError(f"cannot read the configuration ({why})", file=p,
                                      field="config") from None
        if b"\x00" in raw:
            raise UnreadableFileError("a binary file, not a TOML text file", file=p,
                                      field="config")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(f"not UTF-8 text (byte {exc.start}); a TOML file is UTF-8",
                                      file=p, field="config") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UnreadableFileError(f"not valid TOML ({exc})", file=p, field="config") from None
        return cls.from_dict(data, source=str(p))

    def section(self, name: str) -> dict[str, Any]:
        """A copy of one section's values (defaults filled in)."""
        return copy.deepcopy(self.sections[name])

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every section with every key (JSON-serialisable)."""
        return copy.deepcopy(self.sections)

    def key_of(self, *names: str) -> str:
        """Canonical JSON of the named sections (for cache keys)."""
        return json.dumps({n: self.sections[n] for n in names}, sort_keys=True, default=str)
