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

__all__ = ["DEFAULTS", "PipelineConfig"]

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
            return int(value)
        if key not in _ZERO_OK and value <= 0 and key != "threshold":
            raise _fail(file, name, f"expected a number > 0, got {value!r}")
        if key in _ZERO_OK and value < 0:
            raise _fail(file, name, f"expected a number >= 0 (mm), got {value!r}")
        if key == "percent" and not 0 < value < 100:
            raise _fail(file, name, f"expected a percentage in (0, 100), got {value!r}")
        if key == "max_abs_corr" and not 0 < value <= 1:
            raise _fail(file, name, f"expected a number in (0, 1], got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _fail(file, name, f"expected a list of strings, got {value!r}")
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
        the wrong type or range, an unknown lesion method, dose engine or phantom.

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
        if not full["kinetics"]["models"]:
            raise _fail(file, "kinetics.models", "empty; give at least one model (e.g. 'mono')")

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
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UnreadableFileError(f"cannot read the configuration "
                                      f"({exc.__class__.__name__})", file=p,
                                      field="config") from None
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
