"""Declarative configuration of a virtual patient simulation (validated once, at the boundary)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
from typing import Any

from theradose.errors import InputError
from theradose.phantoms._imaging import (
    SPECT_DURATION_S,
    SPECT_FOV_MM,
    SPECT_FWHM_MM,
    SPECT_SENSITIVITY_CPS_PER_MBQ,
    SPECT_VOXEL_MM,
)

__all__ = ["NM_VIEWS_PER_HEAD", "PRESET_DEFAULTS", "SimulationConfig"]

#: Views per camera head of the simulated SPECT acquisitions (written to the NM header).
NM_VIEWS_PER_HEAD = 60

#: Administered activities of the presets (MBq). Therapy: 7.4 GBq per cycle for both
#: [177Lu]Lu-PSMA-617 (VISION trial, Sartor et al., NEJM 2021;385:1091) and
#: [177Lu]Lu-DOTATATE (NETTER-1, Strosberg et al., NEJM 2017;376:125). Diagnostic PET:
#: ~2 MBq/kg of [68Ga]Ga-PSMA-11 (EANM/SNMMI guideline, Fendler et al., EJNMMI 2023;50:1466)
#: and 100-200 MBq of [68Ga]Ga-DOTATATE (EANM guideline, Bozkurt et al., EJNMMI 2017;44:1588);
#: 150 MBq is used for both.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "psma": {"therapy_activity_mbq": 7400.0, "pet_activity_mbq": 150.0},
    "sstr": {"therapy_activity_mbq": 7400.0, "pet_activity_mbq": 150.0},
}


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate for one virtual patient; every default is a documented choice.

    Parameters
    ----------
    preset : {'psma', 'sstr'}
        Theranostic pair: 68Ga-PSMA-11 PET ↔ 177Lu-PSMA-617, or 68Ga-DOTATATE ↔ 177Lu-DOTATATE.
    regime : {'homogeneous', 'heterogeneous'}
        Diagnostic↔therapeutic sub-tissue kinetics proportional or not (Xue et al. 2024).
    phantom : {'random', 'adult_male', 'adult_female'}
        Random anatomy around the reference, or a reference phantom itself.
    sex : {'male', 'female'} or None
        For random anatomy; None draws it (PSMA: male).
    times_h : tuple of float
        Post-therapy SPECT/CT times after injection (h), strictly increasing.
    therapy_activity_mbq, pet_activity_mbq : float or None
        Administered activities; None takes :data:`PRESET_DEFAULTS`.
    pet_uptake_min : float
        PET scan start after the tracer injection (min).
    pet_days_before : float
        Days between the PET and the therapy.
    voxel_mm : float
        CT / anatomy grid spacing (mm).
    n_lesions : int or None
        Number of lesions; None draws it.
    lesion_volume_ml : (float, float)
        Range of the lesion volumes (mL); each volume is drawn log-uniformly in it.
    noise, motion : bool
        Poisson/CT noise and resolution; repositioning/deformation between time points. Both
        False gives noiseless, motion-free images for truth tests.
    spect_output : {'counts', 'Bq/mL'}
        Unit written in the NM files.
    spect_fwhm_mm : float or None
        SPECT system resolution (FWHM, mm, 0-40; 0 = no blur). None (default): the camera's
        11 mm with ``noise=True`` and no blur with ``noise=False``, as before the option
        existed; a number is used in both cases (e.g. noiseless but blurred images).
    spect_voxel_mm : float
        SPECT voxel size (mm, 1-15; default 4.8 mm, a 128² matrix). The transaxial field of
        view stays 614.4 mm (the matrix is ``ceil(614.4 / voxel)``), the axial one the beds'.
    spect_count_scale : float
        Count level of the SPECT relative to the default protocol (1e-3-100; default 1): the
        acquisition time per bed is ``1800 s × scale`` (rounded to whole ms per view, as the
        NM header stores it), the camera sensitivity (9.5 cps/MBq, the calibration factor a
        clinic measures) is unchanged. Expected counts scale with it (× the small change of
        the decay during the longer or shorter acquisition), Poisson noise as ``1/√scale``;
        truth.json and the NM header record the actual acquisition time.
    truth_dose : tuple of str
        Dose engines run on the TRUE TIA map for reference dose maps in ``truth/``
        (``"led"``, ``"kernel"``, ``"montecarlo"``); default none (Monte Carlo adds ~0.5-1 min
        per patient).
    """

    preset: str = "psma"
    regime: str = "homogeneous"
    phantom: str = "random"
    sex: str | None = None
    times_h: tuple[float, ...] = (4.0, 24.0, 96.0, 168.0)
    therapy_activity_mbq: float | None = None
    pet_activity_mbq: float | None = None
    pet_uptake_min: float = 60.0
    pet_days_before: float = 7.0
    voxel_mm: float = 3.0
    n_lesions: int | None = None
    lesion_volume_ml: tuple[float, float] = (0.5, 100.0)
    noise: bool = True
    motion: bool = True
    spect_output: str = "counts"
    spect_fwhm_mm: float | None = None
    spect_voxel_mm: float = SPECT_VOXEL_MM
    spect_count_scale: float = 1.0
    truth_dose: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("preset", self.preset, tuple(PRESET_DEFAULTS))
        _choice("regime", self.regime, ("homogeneous", "heterogeneous"))
        _choice("phantom", self.phantom, ("random", "adult_male", "adult_female"))
        if self.sex is not None:
            _choice("sex", self.sex, ("male", "female"))
        _choice("spect_output", self.spect_output, ("counts", "Bq/mL"))
        engines = tuple(str(e) for e in self.truth_dose)
        for e in engines:
            _choice("truth_dose", e, ("led", "kernel", "montecarlo"))
        object.__setattr__(self, "truth_dose", engines)
        times = tuple(float(t) for t in self.times_h)
        if not times or times[0] <= 0 or any(b <= a for a, b in pairwise(times)):
            raise InputError(f"must be positive and strictly increasing, got {list(times)}",
                             field="times_h")
        object.__setattr__(self, "times_h", times)
        for name in ("therapy_activity_mbq", "pet_activity_mbq"):
            v = getattr(self, name)
            if v is None:
                object.__setattr__(self, name, PRESET_DEFAULTS[self.preset][name])
            elif not v > 0:
                raise InputError(f"must be > 0 MBq, got {v!r}", field=name)
        for name in ("pet_uptake_min", "voxel_mm"):
            if not getattr(self, name) > 0:
                raise InputError(f"must be > 0, got {getattr(self, name)!r}", field=name)
        if self.n_lesions is not None and self.n_lesions < 0:
            raise InputError(f"must be ≥ 0, got {self.n_lesions}", field="n_lesions")
        try:
            lo, hi = (float(v) for v in self.lesion_volume_ml)
        except (TypeError, ValueError):
            raise InputError(f"must be (min, max) in mL, got {self.lesion_volume_ml!r}",
                             field="lesion_volume_ml") from None
        if not 0.05 <= lo <= hi <= 1000.0:
            raise InputError(f"must be (min, max) with 0.05 <= min <= max <= 1000 mL, got "
                             f"{self.lesion_volume_ml!r}", field="lesion_volume_ml")
        object.__setattr__(self, "lesion_volume_ml", (lo, hi))
        if self.spect_fwhm_mm is not None:
            object.__setattr__(self, "spect_fwhm_mm",
                               _number("spect_fwhm_mm", self.spect_fwhm_mm, 0.0, 40.0, "mm"))
        object.__setattr__(self, "spect_voxel_mm",
                           _number("spect_voxel_mm", self.spect_voxel_mm, 1.0, 15.0, "mm"))
        object.__setattr__(self, "spect_count_scale",
                           _number("spect_count_scale", self.spect_count_scale, 1e-3, 100.0, ""))

    def spect_camera(self) -> dict[str, Any]:
        """The SPECT acquisition these options give, as passed to ``simulate_spect``.

        Returns
        -------
        dict
            ``fwhm_mm`` (effective: see ``spect_fwhm_mm``), ``voxel_mm``, ``matrix_xy``,
            ``duration_s`` (per bed, s), ``sensitivity_cps_per_mbq`` (the calibration factor,
            unchanged by the count level) and ``count_scale`` (actual: ``duration_s / 1800``).
        """
        fwhm = self.spect_fwhm_mm
        if fwhm is None:
            fwhm = SPECT_FWHM_MM if self.noise else 0.0
        v = self.spect_voxel_mm
        # whole ms per view (NM ActualFrameDuration, VR IS), so the header holds the exact time
        views = NM_VIEWS_PER_HEAD
        duration = round(SPECT_DURATION_S * self.spect_count_scale * 1000.0 / views) * views \
            / 1000.0
        return {"fwhm_mm": float(fwhm), "voxel_mm": v,
                "matrix_xy": max(1, math.ceil(SPECT_FOV_MM / v - 1e-9)),
                "duration_s": duration,
                "sensitivity_cps_per_mbq": SPECT_SENSITIVITY_CPS_PER_MBQ,
                "count_scale": duration / SPECT_DURATION_S}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["times_h"] = list(self.times_h)
        d["truth_dose"] = list(self.truth_dose)
        d["lesion_volume_ml"] = list(self.lesion_volume_ml)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimulationConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise an error naming them."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"unknown keys {bad}; accepted: {sorted(known)}", field="config")
        return cls(**{k: tuple(v) if k in ("times_h", "truth_dose", "lesion_volume_ml") else v
                      for k, v in d.items()})


def _number(name: str, value: Any, lo: float, hi: float, unit: str) -> float:
    """``value`` as a float in ``[lo, hi]``, else an InputError naming ``name``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value) and lo <= value <= hi
    if not ok:
        raise InputError(f"must be a number in [{lo:g}, {hi:g}]{' ' + unit if unit else ''}, "
                         f"got {value!r}", field=name)
    return float(value)


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise InputError(f"got {value!r}; accepted: {', '.join(map(str, allowed))}", field=name)
