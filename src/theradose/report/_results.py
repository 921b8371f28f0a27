"""Read and check the parts of a ``results.json`` dict that the report shows.

The report never guesses a radiopharmaceutical, organ or engine: everything it prints comes
from the results. Missing optional parts are shown as "n/a"; malformed parts raise
:class:`~theradose.errors.InputError` naming the key path (``vois.liver.tac.times_h``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theradose.errors import InputError, UnreadableFileError

__all__ = ["ReportData", "VoiData", "load_results"]

SCHEMA_PREFIX = "theradose.results/"


@dataclass(frozen=True)
class VoiData:
    """What the report shows of one VOI (values in Gy, MBq·h, g, mL; ``None`` when absent)."""

    name: str
    mass_g: float | None = None
    volume_ml: float | None = None
    tia_mbq_h: tuple[float | None, float | None] = (None, None)
    fit: dict[str, Any] = field(default_factory=dict)
    tac: dict[str, Any] | None = None
    dose_gy: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    dvh: dict[str, Any] | None = None
    bed_gy: tuple[float | None, float | None] = (None, None)
    pvc: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportData:
    """The checked content of a results dict (see ``docs/report.md``)."""

    raw: Mapping[str, Any]
    nuclide: str
    injected_activity_mbq: float
    vois: list[VoiData]
    engines: list[str]
    source: str | None


class _Checker:
    """Validation helpers that raise one-line errors naming the file and the key path."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def fail(self, key: str, message: str) -> InputError:
        return InputError(message, file=self.file, field=key)

    def mapping(self, obj: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise self.fail(key, f"expected a mapping (JSON object), got {type(obj).__name__}")
        return obj

    def number(self, obj: Any, key: str, *, optional: bool = True,
               positive: bool = False) -> float | None:
        if obj is None and optional:
            return None
        if isinstance(obj, bool) or not isinstance(obj, int | float):
            raise self.fail(key, f"expected a number, got {obj!r}")
        value = float(obj)
        if not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, got {obj!r}")
        if positive and value <= 0:
            raise self.fail(key, f"expected a number > 0, got {obj!r}")
        return value

    def numbers(self, obj: Any, key: str, *, n: int | None = None) -> list[float]:
        if isinstance(obj, str | bytes) or not hasattr(obj, "__len__"):
            raise self.fail(key, f"expected a list of numbers, got {type(obj).__name__}")
        values = [self.number(v, f"{key}[{i}]", optional=False) for i, v in enumerate(obj)]
        if n is not None and len(values) != n:
            raise self.fail(key, f"expected {n} values (one per time point/dose bin), "
                                 f"got {len(values)}")
        return values  # type: ignore[return-value]

    def value_sd(self, obj: Any, key: str) -> tuple[float | None, float | None]:
        """``{"value": v, "sd": s}`` or a bare number (σ unknown) or None."""
        if obj is None:
            return (None, None)
        if isinstance(obj, int | float) and not isinstance(obj, bool):
            return (self.number(obj, key), None)
        m = self.mapping(obj, key)
        if "value" not in m:
            raise self.fail(f"{key}.value", "missing; expected {'value': number, 'sd': number}")
        sd = self.number(m.get("sd"), f"{key}.sd")
        if sd is not None and sd < 0:
            raise self.fail(f"{key}.sd", f"expected a standard deviation >= 0, got {sd!r}")
        return (self.number(m["value"], f"{key}.value"), sd)


def _check_tac(c: _Checker, tac: Any, key: str) -> dict[str, Any] | None:
    if tac is None:
        return None
    m = c.mapping(tac, key)
    for k in ("times_h", "activity_mbq"):
        if k not in m:
            raise c.fail(f"{key}.{k}", "missing; a TAC needs times_h and activity_mbq")
    t = c.numbers(m["times_h"], f"{key}.times_h")
    out: dict[str, Any] = {"times_h": t,
                           "activity_mbq": c.numbers(m["activity_mbq"], f"{key}.activity_mbq",
                                                     n=len(t))}
    if m.get("activity_sd_mbq") is not None:
        out["activity_sd_mbq"] = c.numbers(m["activity_sd_mbq"], f"{key}.activity_sd_mbq",
                                           n=len(t))
    curve = m.get("fit_curve")
    if curve is not None:
        cm = c.mapping(curve, f"{key}.fit_curve")
        for k in ("t_h", "a_mbq"):
            if k not in cm:
                raise c.fail(f"{key}.fit_curve.{k}", "missing; a fit curve needs t_h and a_mbq")
        ct = c.numbers(cm["t_h"], f"{key}.fit_curve.t_h")
        fc = {"t_h": ct, "a_mbq": c.numbers(cm["a_mbq"], f"{key}.fit_curve.a_mbq", n=len(ct))}
        for k in ("lo", "hi"):
            if cm.get(k) is not None:
                fc[k] = c.numbers(cm[k], f"{key}.fit_curve.{k}", n=len(ct))
        out["fit_curve"] = fc
    return out


def _check_dvh(c: _Checker, dvh: Any, key: str) -> dict[str, Any] | None:
    if dvh is None:
        return None
    m = c.mapping(dvh, key)
    out: dict[str, Any] = {k: c.number(m.get(k), f"{key}.{k}") for k in ("d2", "d50", "d98")}
    if m.get("curve") is not None:
        cm = c.mapping(m["curve"], f"{key}.curve")
        for k in ("dose_gy", "volume_fraction"):
            if k not in cm:
                raise c.fail(f"{key}.curve.{k}", "missing; a DVH curve needs dose_gy and "
                                                 "volume_fraction")
        d = c.numbers(cm["dose_gy"], f"{key}.curve.dose_gy")
        v = c.numbers(cm["volume_fraction"], f"{key}.curve.volume_fraction", n=len(d))
        bad = [x for x in v if not 0.0 <= x <= 1.0 + 1e-9]
        if bad:
            raise c.fail(f"{key}.curve.volume_fraction",
                         f"fractions must lie in [0, 1], got {bad[0]!r}")
        out["curve"] = {"dose_gy": d, "volume_fraction": v}
    return out


def _check_voi(c: _Checker, name: str, v: Any) -> VoiData:
    key = f"vois.{name}"
    m = c.mapping(v, key)
    dose_raw = m.get("dose_gy") or {}
    dose = {str(e): c.value_sd(d, f"{key}.dose_gy.{e}")
            for e, d in c.mapping(dose_raw, f"{key}.dose_gy").items()}
    fit = m.get("fit") or {}
    pvc = m.get("pvc")
    return VoiData(
        name=str(name),
        mass_g=c.number(m.get("mass_g"), f"{key}.mass_g"),
        volume_ml=c.number(m.get("volume_ml"), f"{key}.volume_ml"),
        tia_mbq_h=c.value_sd(m.get("tia_mbq_h"), f"{key}.tia_mbq_h"),
        fit=dict(c.mapping(fit, f"{key}.fit")),
        tac=_check_tac(c, m.get("tac"), f"{key}.tac"),
        dose_gy=dose,
        dvh=_check_dvh(c, m.get("dvh"), f"{key}.dvh"),
        bed_gy=c.value_sd(m.get("bed_gy"), f"{key}.bed_gy"),
        pvc=None if pvc is None else dict(c.mapping(pvc, f"{key}.pvc")),
    )


def load_results(results: Mapping[str, Any] | str | Path) -> ReportData:
    """Check a results dict (or a ``results.json`` path) and return what the report shows.

    Parameters
    ----------
    results : dict or path
        The ``results.json`` content (schema ``theradose.results/1``) or the file.

    Returns
    -------
    ReportData

    Raises
    ------
    UnreadableFileError
        If a path is given that cannot be read or is not JSON.
    InputError
        If a required key (``nuclide``, ``injected_activity_mbq``, ``vois``) is missing or a
        key has the wrong type/shape; the message names the key path.

    """
    file = None
    if isinstance(results, str | Path):
        file = str(results)
        try:
            results = json.loads(Path(results).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UnreadableFileError(f"cannot read results: {exc.__class__.__name__}",
                                      file=file, field="results") from None
        except json.JSONDecodeError as exc:
            raise UnreadableFileError(f"not valid JSON (line {exc.lineno}: {exc.msg})",
                                      file=file, field="results") from None
    c = _Checker(file)
    r = c.mapping(results, "results")
    schema = r.get("schema")
    if schema is not None and not str(schema).startswith(SCHEMA_PREFIX):
        raise c.fail("schema", f"unknown schema {schema!r}; accepted: {SCHEMA_PREFIX}<n>")
    for k in ("nuclide", "injected_activity_mbq", "vois"):
        if k not in r:
            raise c.fail(k, "missing; the report needs nuclide, injected_activity_mbq and vois")
    if not isinstance(r["nuclide"], str) or not r["nuclide"].strip():
        raise c.fail("nuclide", f"expected a nuclide name such as 'Lu-177', got {r['nuclide']!r}")
    a0 = c.number(r["injected_activity_mbq"], "injected_activity_mbq", optional=False,
                  positive=True)
    vois_raw = c.mapping(r["vois"], "vois")
    if not vois_raw:
        raise c.fail("vois", "empty; the report needs at least one VOI")
    vois = [_check_voi(c, str(n), v) for n, v in vois_raw.items()]
    engines: list[str] = []
    for v in vois:
        engines += [e for e in v.dose_gy if e not in engines]
    study = r.get("study") if isinstance(r.get("study"), Mapping) else {}
    source = study.get("source")
    return ReportData(raw=r, nuclide=r["nuclide"].strip(), injected_activity_mbq=float(a0),
                      vois=vois, engines=engines, source=None if source is None else str(source))
