"""Report content as plain tables and key–value lists, rendered by both the HTML and PDF writers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from theradose.report._results import ReportData

__all__ = ["Section", "build_sections", "fmt", "fmt_value_sd"]

NA = "n/a"


def fmt(x: float | None) -> str:
    """A number with about 3 significant digits, no exponent for 0.001 ≤ |x| < 10⁵."""
    if x is None:
        return NA
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt_value_sd(vs: tuple[float | None, float | None]) -> str:
    """``"value ± sd"`` (``"value"`` when σ is unknown)."""
    value, sd = vs
    if value is None:
        return NA
    return fmt(value) if sd is None else f"{fmt(value)} ± {fmt(sd)}"


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts → ``[("a.b", "value"), ...]``; lists of scalars joined with commas."""
    rows: list[tuple[str, str]] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list | tuple) and any(isinstance(v, Mapping | list) for v in obj):
        for i, v in enumerate(obj):
            rows += _flatten(v, f"{prefix}[{i}]")
    elif isinstance(obj, list | tuple):
        rows.append((prefix, ", ".join(_scalar(v) for v in obj)))
    else:
        rows.append((prefix, _scalar(obj)))
    return rows


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v)
    return NA if v is None else str(v)


@dataclass
class Section:
    """A titled block: a table (``header`` + ``rows``), key–value ``pairs`` and/or a note."""

    title: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""


def _summary(d: ReportData, generated: datetime) -> Section:
    r = d.raw
    study = r.get("study") if isinstance(r.get("study"), Mapping) else {}
    tps = study.get("time_points") or []
    times = [tp.get("time_h") for tp in tps if isinstance(tp, Mapping)]
    pairs = [("Nuclide", d.nuclide)]
    for key, label in (("radiopharmaceutical", "Radiopharmaceutical"),
                       ("injection_time", "Injection time")):
        if r.get(key) is not None:
            pairs.append((label, str(r[key])))
    pairs.append(("Injected activity (MBq)", f"{d.injected_activity_mbq:.1f}"))
    for key in ("patient_id", "patient_name", "study_date"):
        if study.get(key) is not None:
            pairs.append((key.replace("_", " ").capitalize(), str(study[key])))
    pairs.append(("Study source", d.source or NA))
    pairs.append(("Time points (h)", ", ".join(_scalar(t) for t in times) if times else NA))
    software = r.get("software") if isinstance(r.get("software"), Mapping) else {}
    pairs.append(("Software", ", ".join(f"{k} {v}" for k, v in software.items()) or NA))
    pairs.append(("Report generated", generated.isoformat(timespec="seconds")))
    return Section("Patient and study", pairs=pairs)


def _warnings(d: ReportData) -> Section | None:
    """Every warning of the run (``results["warnings"]``) and how the resolution was found.

    On the first page: a reader must see what the run could not do as it should before the
    numbers.
    """
    raw = d.raw.get("warnings")
    rows = [[str(w.get("stage", NA)), str(w.get("message", w))] if isinstance(w, Mapping)
            else [NA, str(w)] for w in raw] if isinstance(raw, list) else []
    res = d.raw.get("resolution")
    note = ""
    if isinstance(res, Mapping) and res.get("source"):
        cam = res.get("camera_fwhm_mm")
        cam_sd = res.get("camera_sigma_mm")
        note = (f"Partial-volume correction: SPECT resolution {res['source']}; "
                f"{_scalar(res.get('fwhm_mm'))} mm FWHM on the dose grid"
                + (f", camera {_scalar(cam)} ± {_scalar(cam_sd)} mm" if cam is not None else "")
                + ".")
    if not rows and not note:
        return None
    if not rows:
        return Section("Warnings", note=f"None. {note}".strip())
    return Section(f"Warnings ({len(rows)})", header=["stage", "warning"], rows=rows,
                   note=note)


def _time_points(d: ReportData) -> Section | None:
    study = d.raw.get("study") if isinstance(d.raw.get("study"), Mapping) else {}
    tps = [tp for tp in (study.get("time_points") or []) if isinstance(tp, Mapping)]
    if not tps:
        return None
    rows = []
    for i, tp in enumerate(tps, start=1):
        files = tp.get("files")
        if isinstance(files, Mapping):
            files = ", ".join(f"{k}: {v}" for k, v in files.items())
        elif isinstance(files, list | tuple):
            files = ", ".join(str(f) for f in files)
        rows.append([str(i), _scalar(tp.get("time_h")), NA if files is None else str(files)])
    return Section("Time points", header=["#", "time (h)", "files"], rows=rows)


def _dose_table(d: ReportData) -> Section:
    header = ["VOI", "mass (g)", "volume (mL)", "TIA (MBq·h)"]
    header += [f"dose {e} (Gy)" for e in d.engines]
    header += ["BED (Gy)", "D98 / D50 / D2 (Gy)"]
    rows = []
    for v in d.vois:
        dvh = v.dvh or {}
        dx = " / ".join(fmt(dvh.get(k)) for k in ("d98", "d50", "d2")) if v.dvh else NA
        rows.append([v.name, fmt(v.mass_g), fmt(v.volume_ml), fmt_value_sd(v.tia_mbq_h)]
                    + [fmt_value_sd(v.dose_gy.get(e, (None, None))) for e in d.engines]
                    + [fmt_value_sd(v.bed_gy), dx])
    return Section("Absorbed dose per VOI", header=header, rows=rows,
                   note="Values are mean ± one standard uncertainty (k = 1).")


def _fit_table(d: ReportData) -> Section | None:
    rows = []
    for v in d.vois:
        if not v.fit:
            continue
        params = v.fit.get("parameters")
        ptxt = ", ".join(f"{k}={_scalar(x)}" for k, x in params.items()) \
            if isinstance(params, Mapping) else _scalar(params)
        rows.append([v.name, str(v.fit.get("model", NA)), _scalar(v.fit.get("r2")),
                     _scalar(v.fit.get("aicc")), ptxt])
    if not rows:
        return None
    return Section("Time-activity fits", header=["VOI", "model", "R²", "AICc", "parameters"],
                   rows=rows)


def _pvc_table(d: ReportData) -> Section | None:
    rows = [[v.name, "; ".join(f"{k}={val}" for k, val in _flatten(v.pvc))]
            for v in d.vois if v.pvc]
    if not rows:
        return None
    return Section("Partial-volume correction", header=["VOI", "correction"], rows=rows)


def _rel(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return NA
    return f"{100.0 * (a - b) / b:+.1f}"


def _truth_table(d: ReportData) -> Section | None:
    truth = d.raw.get("truth")
    if not isinstance(truth, Mapping) or not isinstance(truth.get("vois"), Mapping):
        return None
    header = ["VOI", "TIA true", "TIA", "Δ TIA (%)"]
    for e in d.engines:
        header += [f"dose true {e}", f"dose {e}", "Δ (%)"]
    rows = []
    for v in d.vois:
        t = truth["vois"].get(v.name)
        if not isinstance(t, Mapping):
            continue
        tia_t = t.get("tia_mbq_h") if isinstance(t.get("tia_mbq_h"), int | float) else None
        row = [v.name, fmt(tia_t), fmt(v.tia_mbq_h[0]), _rel(v.tia_mbq_h[0], tia_t)]
        td = t.get("dose_gy")
        for e in d.engines:
            dt = td.get(e) if isinstance(td, Mapping) else td
            dt = dt if isinstance(dt, int | float) else None
            dm = v.dose_gy.get(e, (None, None))[0]
            row += [fmt(dt), fmt(dm), _rel(dm, dt)]
        rows.append(row)
    if not rows:
        return None
    return Section("Comparison with ground truth (virtual patient)", header=header, rows=rows,
                   note="Δ = (computed − true) / true.")


def _registration(d: ReportData) -> Section | None:
    reg = d.raw.get("registration")
    if not isinstance(reg, list) or not reg:
        return None
    keys: list[str] = []
    for q in reg:
        if isinstance(q, Mapping):
            keys += [k for k in q if k not in keys]
    rows = [[_scalar(q.get(k)) for k in keys] for q in reg if isinstance(q, Mapping)]
    return Section("Registration quality", header=keys, rows=rows)


def _methods(d: ReportData) -> Section:
    r = d.raw
    pairs = [("Dose engines", ", ".join(d.engines) or NA)]
    for key in ("provenance", "config", "software", "outputs"):
        if r.get(key) is not None:
            pairs += [(f"{key}.{k}" if k else key, v) for k, v in _flatten(r[key])]
    return Section("Methods and data provenance", pairs=pairs)


def build_sections(d: ReportData, generated: datetime) -> dict[str, Section | None]:
    """All text sections of the report, keyed by role (``None`` when there is nothing to show)."""
    return {
        "summary": _summary(d, generated),
        "warnings": _warnings(d),
        "time_points": _time_points(d),
        "dose": _dose_table(d),
        "truth": _truth_table(d),
        "fits": _fit_table(d),
        "pvc": _pvc_table(d),
        "registration": _registration(d),
        "methods": _methods(d),
    }


SIGNATURE_LINES = ("Reviewed by (physician)", "Signature", "Date")
