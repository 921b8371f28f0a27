"""Hostile-input corpus (issue 17): broken inputs a new user or a careless script produces.

Builds one small virtual patient (8 mm, noiseless, 1 lesion, 4 SPECT/CT time points; DICOM and
its NIfTI conversion), derives from it a corpus of hostile inputs (mutations x parameter values:
damaged images and DICOM tags, foreign time points, odd folders, bad configurations, absurd
command-line numbers, unwritable outputs), replays every case through the ``theradose`` command
as a subprocess and classifies the outcome against the case's expectation:

``error``  exit 2 and exactly one ``error: <file>: <field>: ...`` line naming the file and field;
``ok``     exit 0 and, where a reference exists, the result equal to the clean run's;
``warn``   exit 0 with a named warning (stderr ``warning:`` line or ``results.json`` warnings).

Outcomes: ``pass``, ``traceback``, ``silent-wrong`` (exit 0 where an error was expected, or a
result off), ``unclear-message`` (error text without the file or field, or not one line),
``input-modified`` (an input's checksum changed), ``other`` (timeout, crash, refusal of a valid
input, partial outputs left), ``skipped`` (the environment cannot simulate it). Inputs are
checksummed before and after each case.

Usage::

    .venv/bin/python benchmarks/hostile_corpus.py --out /tmp/hostile [--only PATTERN] [--jobs 2]

Writes ``<out>/results.json`` (one row per case: command, expectation, outcome, exit status,
stderr) and ``<out>/summary.md``; the corpus itself is under ``<out>/corpus/<case>/``
(``case.json`` holds the command line and expectation).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gzip
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXE = str(ROOT / ".venv" / "bin" / "theradose")
CAL = 9.5  # cps/MBq, the simulator's SPECT sensitivity
LU177_LAMBDA_PER_H = math.log(2) / (6.647 * 24)  # ICRP-107 half-life 6.647 d
FAST = {"study": {"calibration_cps_per_mbq": CAL}, "registration": {"enabled": False},
        "dose": {"engines": ["led", "organ_svalues"]}, "outputs": {"report": False}}
MEM_LIMIT = 8 << 30  # address-space limit of each replayed command (no runaway allocations)
OUTCOMES = ("pass", "traceback", "silent-wrong", "unclear-message", "input-modified", "other",
            "skipped")


# ====================================================================================== model
@dataclass
class Expect:
    """What a case must produce.

    kind: ``error``, ``ok``, ``warn``, ``error|warn`` or ``error|ok``. ``file``: text the error
    line must contain (a path tail); ``fields``: the error line must contain one of them.
    ``warn``: regular expression a warning must match. ``check(case_dir, stdout, refs)``
    returns why an exit-0 result is wrong, or None.
    """

    kind: str
    file: str | None = None
    fields: tuple[str, ...] = ()
    warn: str | None = None
    check: Callable[[Path, str, dict], str | None] | None = None
    note: str = ""

    def describe(self) -> str:
        parts = [self.kind]
        if self.file:
            parts.append(f"file~{self.file}")
        if self.fields:
            parts.append("field~" + "|".join(self.fields))
        if self.warn:
            parts.append(f"warning~/{self.warn}/")
        if self.check is not None:
            parts.append(f"check={self.check.__name__}")
        return " ".join(parts)


@dataclass
class Case:
    """One hostile input: how to make it, the command that replays it, the expectation."""

    name: str
    module: str          # where the fix most likely belongs (tracebacks: the innermost frame)
    argv: list[str]      # after ``theradose --no-progress``; {case} and {base} are substituted
    expect: Expect
    prepare: Callable[[Path, Path], None] | None = None   # (case_dir, base_dir)
    timeout: float = 120.0
    as_user: str | None = None   # "nobody": run unprivileged (permissions must bite)
    fsize: int | None = None     # RLIMIT_FSIZE (bytes): writes past it fail with EFBIG
    tmpfs_out: bool = False      # mount a 2 MiB tmpfs at {case}/out (root only)
    reference: bool = False      # replayed first; its outputs are references for the others
    description: str = ""


@dataclass
class Outcome:
    name: str
    module: str
    command: str
    expect: str
    outcome: str
    reason: str
    rc: int | None
    seconds: float
    stderr: str
    stdout_tail: str = ""
    warnings: list[str] = field(default_factory=list)


# ====================================================================================== helpers
def _own(path: Path) -> None:
    """Replace a hard link by a private copy before mutating (the base must stay intact)."""
    tmp = path.with_name(path.name + ".own")
    shutil.copy2(path, tmp)
    path.unlink()
    tmp.rename(path)


def _link_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=os.link, symlinks=True)


def _checksums(*roots: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for root in roots:
        if not root.exists() and not root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in sorted(dirnames + filenames):
                p = Path(dirpath) / name
                if p.is_symlink():
                    out[str(p)] = "link:" + os.readlink(p)
                elif p.is_file():
                    st = p.lstat()
                    if stat.S_ISREG(st.st_mode):
                        h = hashlib.sha256()
                        with open(p, "rb") as fh:
                            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                                h.update(chunk)
                        out[str(p)] = h.hexdigest()
                elif not p.is_dir():
                    out[str(p)] = "special"
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _write_toml(path: Path, sections: dict[str, dict[str, Any]], raw: dict[tuple[str, str], str]
                | None = None) -> None:
    """TOML from ``sections``; ``raw[(section, key)]`` is written verbatim (nan, inf, junk)."""
    raw = raw or {}
    lines = []
    secs = dict(sections)
    for sec, _key in raw:
        secs.setdefault(sec, {})
    for sec, values in secs.items():
        lines.append(f"[{sec}]")
        for key, v in values.items():
            if (sec, key) not in raw:
                lines.append(f"{key} = {_toml_value(v)}")
        lines.extend(f"{key} = {text}" for (s, key), text in raw.items() if s == sec)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _dicom_set(path: Path, edits: Callable[[Any], None]) -> None:
    """Read a DICOM file, apply ``edits(ds)``, write it back (as a private copy)."""
    import pydicom

    _own(path)
    ds = pydicom.dcmread(path)
    edits(ds)
    path.unlink()
    ds.save_as(path, enforce_file_format=False)


def _raw(item: Any, keyword: str, value: bytes) -> None:
    """Store ``value`` verbatim (pydicom refuses invalid DS/IS/DA/TM values when set)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    if len(value) % 2:
        value += b" "
    item._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _nifti_edit(path: Path, fn: Callable[[Any], Any]) -> None:
    """Load a NIfTI with nibabel, let ``fn(img)`` return a new image, write it (private copy)."""
    import nibabel as nib

    _own(path)
    img = nib.load(str(path))
    img.get_fdata()  # load before the file is replaced
    new = fn(img)
    path.unlink()
    nib.save(new, str(path))


def _nib(arr: np.ndarray, img: Any) -> Any:
    import nibabel as nib

    hdr = img.header.copy()
    hdr.set_data_dtype(arr.dtype)
    return nib.Nifti1Image(arr, img.affine, hdr)


def _json_edit(path: Path, fn: Callable[[dict], dict | Any]) -> None:
    _own(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    new = fn(data)
    path.unlink()
    path.write_text(json.dumps(data if new is None else new, indent=1, allow_nan=True),
                    encoding="utf-8")


# ====================================================================================== checks
def _results(case_dir: Path) -> dict | None:
    p = case_dir / "out" / "results.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _tia_table(res: dict) -> dict[str, float]:
    return {n: v["tia_mbq_h"]["value"] for n, v in res["vois"].items()
            if v.get("tia_mbq_h", {}).get("value") is not None}


def _same_tia(tol: float, key: str = "run") -> Callable[[Path, str, dict], str | None]:
    def same_tia(case_dir: Path, stdout: str, refs: dict) -> str | None:
        res, ref = _results(case_dir), refs.get(key)
        if ref is None:
            return f"no reference run ({key}: the clean run failed)"
        if res is None:
            return "exit 0 but no results.json"
        a, b = _tia_table(res), _tia_table(ref)
        if set(a) != set(b):
            return f"VOIs differ from the clean run: {sorted(set(a) ^ set(b))}"
        total = sum(abs(v) for v in b.values())
        worst = max(((abs(a[k] - b[k]) / max(abs(b[k]), 1e-3 * total), k) for k in b),
                    default=(0.0, ""))
        if worst[0] > tol:
            k = worst[1]
            return (f"TIA of {k} {a[k]:.6g} vs clean {b[k]:.6g} MBq*h "
                    f"({100 * (a[k] / b[k] - 1):+.2f} %, tolerance {100 * tol:g} %)")
        return None
    same_tia.__name__ = f"same_tia_{100 * tol:g}pct_{key}"
    return same_tia


def _study_times(stdout: str) -> list[float] | None:
    try:
        return [round(tp["time_h"], 3) for tp in json.loads(stdout)["time_points"]]
    except (ValueError, KeyError, TypeError):
        return None


def _same_study(key: str) -> Callable[[Path, str, dict], str | None]:
    def same_study(case_dir: Path, stdout: str, refs: dict) -> str | None:
        ref = refs.get(key)
        if ref is None:
            return f"no reference study summary ({key})"
        got = _study_times(stdout)
        want = _study_times(ref)
        if got is None:
            return "exit 0 but stdout is not the study JSON"
        if got != want:
            return f"time points {got} h, the clean study has {want} h"
        a, b = json.loads(stdout)["administration"], json.loads(ref)["administration"]
        if a != b:
            return f"administration {a} differs from the clean study's {b}"
        return None
    same_study.__name__ = f"same_study_{key}"
    return same_study


_NONFINITE = re.compile(r"(?<![A-Za-z_])(nan|inf|infinity|-inf)(?![A-Za-z_])", re.I)


def finite_output(case_dir: Path, stdout: str, refs: dict) -> str | None:
    """Exit 0 is fine only when every number printed is finite."""
    m = _NONFINITE.search(stdout)
    return f"non-finite number {m.group(0)!r} in the output" if m else None


def finite_fit(case_dir: Path, stdout: str, refs: dict) -> str | None:
    try:
        r = json.loads(stdout)
    except ValueError:
        return "stdout is not JSON"
    tia, sd = r.get("tia"), r.get("sigma_tia")
    if not (isinstance(tia, int | float) and math.isfinite(tia) and tia >= 0):
        return f"TIA {tia!r} is not a finite number >= 0"
    if not (isinstance(sd, int | float) and math.isfinite(sd) and sd >= 0):
        return f"sigma {sd!r} is not a finite number >= 0"
    return None


def _all_series_written(n: int) -> Callable[[Path, str, dict], str | None]:
    def all_series_written(case_dir: Path, stdout: str, refs: dict) -> str | None:
        got = sorted(p.name for p in (case_dir / "conv").glob("*.nii*"))
        if len(got) != n:
            return f"{n} image series in, {len(got)} NIfTI files out: {got}"
        return None
    return all_series_written


# ====================================================================================== base
@dataclass
class Base:
    root: Path
    dicom: Path
    nifti: Path
    fast: Path
    nm: dict[str, Path]          # tp name -> NM DICOM file
    nifti_nm: dict[str, Path]    # tp name -> NM NIfTI file
    n_series: int


def build_base(root: Path) -> Base:
    from theradose.cli._convert import convert_dicom_folder
    from theradose.phantoms import SimulationConfig, simulate_patient

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    vp = simulate_patient(root / "patient", seed=1, config=SimulationConfig(
        voxel_mm=8.0, noise=False, motion=False, n_lesions=1, times_h=(4.0, 24.0, 96.0, 168.0)))
    dicom = Path(vp.dicom)
    written = convert_dicom_folder(dicom, root / "nifti", calibration_cps_per_mbq=CAL)
    for name in ("labels.nii.gz", "labels.json"):  # the VOIs (convert skips SEG and RTSTRUCT)
        shutil.copy2(Path(vp.truth_dir) / name, root / "nifti" / name)
    fast = root / "fast.toml"
    _write_toml(fast, FAST)
    nm = {p.name: p / "nm.dcm" for p in sorted(dicom.glob("tp*")) if (p / "nm.dcm").is_file()}
    nifti_nm = {}
    for f in sorted((root / "nifti").glob("nm_*.nii.gz")):
        for tp in nm:
            h = tp.split("_")[1].rstrip("h")
            if f.name.endswith(f"-{h}-h.nii.gz"):
                nifti_nm[tp] = f
    return Base(root, dicom, root / "nifti", fast, nm, nifti_nm, len(written))


# ====================================================================================== cases
def _copy_nm_only(case: Path, base: Base) -> Path:
    """The four SPECT files alone (no CT, PET, RTSTRUCT, SEG): a fast study for header cases."""
    dst = case / "in" / "dicom"
    for tp, f in base.nm.items():
        (dst / tp).mkdir(parents=True)
        os.link(f, dst / tp / "nm.dcm")
    return dst


def _copy_dicom(case: Path, base: Base) -> Path:
    dst = case / "in" / "dicom"
    _link_tree(base.dicom, dst)
    return dst


def _copy_nifti(case: Path, base: Base) -> Path:
    dst = case / "in" / "nifti"
    _link_tree(base.nifti, dst)
    return dst


STUDY_DICOM = ["study", "{case}/in/dicom", "--calibration-cps-per-mbq", str(CAL), "--json"]
STUDY_NIFTI = ["study", "{case}/in/nifti", "--json"]
RUN_DICOM = ["run", "{case}/in/dicom", "--out", "{case}/out", "--config", "{base}/fast.toml"]
TP2 = "tp2_24h"


def _dicom_case(name: str, module: str, edit: Callable[[Any], None], expect: Expect, *,
                tp: str = TP2, argv: list[str] | None = None, desc: str = "") -> Case:
    def prepare(case: Path, base: Base) -> None:
        d = _copy_nm_only(case, base)
        _dicom_set(d / tp / "nm.dcm", edit)
    return Case(name, module, argv or STUDY_DICOM, expect, prepare, description=desc)


def _rp(ds: Any) -> Any:
    return ds.RadiopharmaceuticalInformationSequence[0]


def dicom_tag_cases() -> list[Case]:
    nm = f"{TP2}/nm.dcm"
    cases: list[Case] = []
    mod_rp = "io/_radiopharmaceutical.py"
    mod_nm = "io/_dicom_read.py"

    def err(*fields: str, f: str = nm) -> Expect:
        return Expect("error", file=f, fields=fields)

    for v in ("abc", "", "-574300.8", "0", "nan", "inf", "1e999"):
        cases.append(_dicom_case(
            f"dicom/RadionuclideHalfLife/{v or 'empty'}", mod_rp,
            lambda ds, v=v: _raw(_rp(ds), "RadionuclideHalfLife", v.encode()),
            Expect("error|ok", file=nm, fields=("RadionuclideHalfLife",),
                   check=_same_study("study_dicom")) if v == "" else err("RadionuclideHalfLife"),
            desc="non-numeric or impossible half-life in the NM header"))
    cases.append(_dicom_case(
        "dicom/RadionuclideHalfLife/contradicts-nuclide-1h", mod_rp,
        lambda ds: _raw(_rp(ds), "RadionuclideHalfLife", b"3600"),
        Expect("error|warn", file=nm, fields=("RadionuclideHalfLife",),
               warn="RadionuclideHalfLife"),
        desc="half-life of 1 h for Lu-177 (6.647 d)"))
    for v in ("abc", "-7.4e9", "0", "nan", "inf", "1e999"):
        # 0 on one time point while the others carry the activity: "unknown", with a warning
        cases.append(_dicom_case(
            f"dicom/RadionuclideTotalDose/{v}", mod_rp,
            lambda ds, v=v: _raw(_rp(ds), "RadionuclideTotalDose", v.encode()),
            Expect("error|warn", file=nm, fields=("RadionuclideTotalDose", "administration"),
                   warn="RadionuclideTotalDose") if v == "0"
            else err("RadionuclideTotalDose", "administration")))
    cases.append(_dicom_case(
        "dicom/RadionuclideTotalDose/MBq-not-Bq", mod_rp,
        lambda ds: _raw(_rp(ds), "RadionuclideTotalDose", b"7400"),
        Expect("error|warn", file=nm, fields=("RadionuclideTotalDose", "administration"),
               warn="RadionuclideTotalDose"),
        desc="7400 (MBq) written where DICOM stores Bq, on one time point"))
    cases.append(_dicom_case(
        "dicom/RadionuclideTotalDose/missing-one-tp", mod_rp,
        lambda ds: delattr(_rp(ds), "RadionuclideTotalDose"),
        Expect("error|ok", file=nm, fields=("RadionuclideTotalDose", "administration"),
               check=_same_study("study_dicom")),
        desc="the other time points give the administration"))
    for v in ("garbage", "2026", "20270106090000"):
        cases.append(_dicom_case(
            f"dicom/RadiopharmaceuticalStartDateTime/{v}", mod_rp,
            lambda ds, v=v: _raw(_rp(ds), "RadiopharmaceuticalStartDateTime", v.encode()),
            err("RadiopharmaceuticalStartDateTime", "administration", "injection_time",
                "acquisition_time")))
    cases.append(_dicom_case(
        "identity/two-administrations/start-one-week-later", "io/_study.py",
        lambda ds: (_raw(_rp(ds), "RadiopharmaceuticalStartDateTime", b"20260113090000"),
                    _raw(_rp(ds), "RadiopharmaceuticalStartTime", b"090000")),
        Expect("error", file="tp", fields=("administration", "RadiopharmaceuticalStartDateTime",
                                            "acquisition_time")),
        tp="tp4_168h", desc="tp4 belongs to a second cycle injected a week later"))
    cases.append(_dicom_case(
        "identity/two-administrations/other-activity", "io/_study.py",
        lambda ds: _raw(_rp(ds), "RadionuclideTotalDose", b"7000000000"), Expect(
            "error", file="tp", fields=("administration", "RadionuclideTotalDose")),
        tp="tp4_168h", desc="tp4 says 7000 MBq, the others 7400 MBq"))
    for kw, v in (("AcquisitionTime", "garbage"), ("AcquisitionTime", "250000"),
                  ("AcquisitionDate", "20250101"), ("AcquisitionDate", "garbage"),
                  ("SeriesDate", "garbage")):
        cases.append(_dicom_case(
            f"dicom/{kw}/{v}", mod_nm, lambda ds, kw=kw, v=v: _raw(ds, kw, v.encode()),
            err(kw, "acquisition_time")))
    cases.append(_dicom_case(
        "dicom/AcquisitionDate/same-as-tp1", "io/_study.py",
        lambda ds: (_raw(ds, "AcquisitionDate", b"20260106"),
                    _raw(ds, "AcquisitionTime", b"130000"),
                    _raw(ds, "SeriesDate", b"20260106"), _raw(ds, "SeriesTime", b"130000"),
                    _raw(ds, "ContentDate", b"20260106"), _raw(ds, "ContentTime", b"130000")),
        Expect("error", file="nm.dcm", fields=("acquisition_time", "AcquisitionTime")),
        desc="tp2 stamped with tp1's time: two images at 4 h"))
    cases.append(_dicom_case(
        "dicom/AcquisitionTime/missing", mod_nm,
        lambda ds: [delattr(ds, k) for k in ("AcquisitionTime", "AcquisitionDate",
                                            "AcquisitionDateTime") if k in ds],
        Expect("error|ok", file=nm, fields=("AcquisitionTime", "acquisition_time"),
               check=_same_study("study_dicom"))))
    for v in ("GARBAGE", "PROPCPS"):
        cases.append(_dicom_case(f"dicom/Units/{v}", mod_nm,
                                 lambda ds, v=v: _raw(ds, "Units", v.encode()), err("Units")))
    cases.append(_dicom_case(
        "dicom/Units/BQML-on-counts", mod_nm, lambda ds: _raw(ds, "Units", b"BQML"),
        Expect("error|warn", file=nm, fields=("Units", "calibration_cps_per_mbq"),
               warn="calibration|BQML|Bq/mL"),
        desc="counts labelled BQML while a calibration is given"))
    cases.append(_dicom_case("dicom/DecayCorrection/GARBAGE", mod_nm,
                             lambda ds: _raw(ds, "DecayCorrection", b"GARBAGE"),
                             err("DecayCorrection")))
    for v in ("abc\\abc", "0\\0", "-4.8\\-4.8", "nan\\nan", "4.8"):
        cases.append(_dicom_case(f"dicom/PixelSpacing/{v.replace(chr(92), ',')}", mod_nm,
                                 lambda ds, v=v: _raw(ds, "PixelSpacing", v.encode()),
                                 err("PixelSpacing")))
    cases.append(_dicom_case("dicom/PixelSpacing/missing", mod_nm,
                             lambda ds: delattr(ds, "PixelSpacing"), err("PixelSpacing")))
    for v in ("0", "abc", "nan", "inf"):
        cases.append(_dicom_case(
            f"dicom/SpacingBetweenSlices/{v}", mod_nm,
            lambda ds, v=v: (_raw(ds, "SpacingBetweenSlices", v.encode()),
                             _raw(ds, "SliceThickness", v.encode())),
            err("SpacingBetweenSlices", "SliceThickness")))
    for v in ("0", "500", "abc", "-1"):
        cases.append(_dicom_case(f"dicom/NumberOfFrames/{v}", mod_nm,
                                 lambda ds, v=v: _raw(ds, "NumberOfFrames", v.encode()),
                                 err("NumberOfFrames", "PixelData")))
    cases.append(_dicom_case("dicom/PixelData/truncated-half", mod_nm,
                             lambda ds: setattr(ds, "PixelData",
                                                ds.PixelData[: len(ds.PixelData) // 2]),
                             err("PixelData", "NumberOfFrames")))
    cases.append(_dicom_case("dicom/PixelData/missing", mod_nm,
                             lambda ds: delattr(ds, "PixelData"), err("PixelData")))
    for v in ("1\\0\\0\\0\\0\\0", "abc", "1\\0\\0\\1\\0\\0"):
        cases.append(_dicom_case(
            f"dicom/ImageOrientationPatient/{v.replace(chr(92), ',')}", mod_nm,
            lambda ds, v=v: _raw(ds.DetectorInformationSequence[0], "ImageOrientationPatient",
                                 v.encode()),
            err("ImageOrientationPatient")))
    cases.append(_dicom_case(
        "dicom/RotationInformationSequence/missing", mod_nm,
        lambda ds: delattr(ds, "RotationInformationSequence"),
        err("RotationInformationSequence", "acquisition_duration_s"),
        desc="counts image, calibration given, no acquisition duration"))
    for kw, v in (("ActualFrameDuration", "0"), ("ActualFrameDuration", "-30000"),
                  ("ActualFrameDuration", "abc"), ("NumberOfFramesInRotation", "0")):
        vr_ok = kw == "NumberOfFramesInRotation"
        cases.append(_dicom_case(
            f"dicom/RotationInformationSequence/{kw}={v}", mod_nm,
            (lambda ds, kw=kw, v=v: setattr(ds.RotationInformationSequence[0], kw, int(v)))
            if vr_ok else
            (lambda ds, kw=kw, v=v: _raw(ds.RotationInformationSequence[0], kw, v.encode())),
            err(kw, "RotationInformationSequence", "acquisition_duration_s")))
    for v in ("abc", "nan", "0", "-1", "inf"):
        cases.append(_dicom_case(f"dicom/RescaleSlope/{v}", mod_nm,
                                 lambda ds, v=v: _raw(ds, "RescaleSlope", v.encode()),
                                 err("RescaleSlope")))
    for v in ("MR", ""):
        cases.append(_dicom_case(
            f"dicom/Modality/{v or 'empty'}", "io/_study.py",
            lambda ds, v=v: _raw(ds, "Modality", v.encode()),
            Expect("error|warn", file=nm, fields=("Modality",), warn=r"nm\.dcm|Modality|skipped"),
            desc="a time point whose Modality is wrong must not vanish silently"))
    cases.append(_dicom_case(
        "identity/other-PatientID-on-one-tp", "io/_study.py",
        lambda ds: (setattr(ds, "PatientID", "OTHER0002"),
                    setattr(ds, "PatientName", "Other^Patient")),
        Expect("error", file=nm, fields=("PatientID", "PatientName"))))
    cases.append(_dicom_case(
        "identity/other-FrameOfReferenceUID-same-patient", "io/_study.py",
        lambda ds: setattr(ds, "FrameOfReferenceUID", "1.2.826.0.1.3680043.8.498.1"),
        Expect("error|ok", file=nm, fields=("FrameOfReferenceUID",),
               check=_same_study("study_dicom")),
        desc="a new FoR for one session is normal (another day on the table)"))
    return cases


def _ct_slices(d: Path, tp: str = TP2) -> list[Path]:
    return sorted((d / tp / "ct").glob("*.dcm"))


def ct_cases() -> list[Case]:
    mod = "io/_dicom_read.py"
    out = []

    def mk(name: str, fn: Callable[[Path], None], expect: Expect, desc: str = "") -> Case:
        def prepare(case: Path, base: Base) -> None:
            fn(_copy_dicom(case, base))
        return Case(name, mod, STUDY_DICOM, expect, prepare, description=desc)

    def empty_slice(d: Path) -> None:
        s = _ct_slices(d)[70]
        s.unlink()
        s.write_bytes(b"")

    def truncated_slice(d: Path) -> None:
        s = _ct_slices(d)[70]
        data = s.read_bytes()
        s.unlink()
        s.write_bytes(data[: len(data) // 2])

    def gap(d: Path) -> None:
        _ct_slices(d)[70].unlink()

    def dup(d: Path) -> None:
        import pydicom
        from pydicom.uid import generate_uid
        s = _ct_slices(d)[70]
        ds = pydicom.dcmread(s)
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(s.with_name("CT_dup.dcm"), enforce_file_format=False)

    def rows(d: Path) -> None:
        _dicom_set(_ct_slices(d)[70], lambda ds: setattr(ds, "Columns", ds.Columns - 1))

    def no_pixels(d: Path) -> None:
        _dicom_set(_ct_slices(d)[70], lambda ds: delattr(ds, "PixelData"))

    def no_rescale(d: Path) -> None:
        _dicom_set(_ct_slices(d)[70], lambda ds: delattr(ds, "RescaleSlope"))

    f = f"{TP2}/ct/"
    out.append(mk("dicom/ct/empty-slice-file", empty_slice,
                  Expect("error|warn", file=f, warn="CT_0071|ct"),
                  "a 0-byte slice among the CT files"))
    out.append(mk("dicom/ct/truncated-slice", truncated_slice,
                  Expect("error|warn", file=f, warn="CT_0071|ct")))
    out.append(mk("dicom/ct/missing-slice-gap", gap,
                  Expect("error|warn", file=f, fields=("ImagePositionPatient", "slice"),
                         warn="gap|spacing|slice|ImagePositionPatient")))
    out.append(mk("dicom/ct/duplicate-slice", dup,
                  Expect("error|warn", file=f, fields=("ImagePositionPatient", "slice"),
                         warn="duplicate|ImagePositionPatient|slice")))
    out.append(mk("dicom/ct/one-slice-other-Columns", rows,
                  Expect("error", file=f, fields=("Columns", "Rows"))))
    out.append(mk("dicom/ct/slice-without-PixelData", no_pixels,
                  Expect("error", file=f, fields=("PixelData",))))
    out.append(mk("dicom/ct/slice-without-RescaleSlope", no_rescale,
                  Expect("error|warn", file=f, fields=("RescaleSlope",), warn="RescaleSlope")))
    return out


# ----------------------------------------------------------------------------- NIfTI + sidecar
def _nifti_case(name: str, module: str, fn: Callable[[Path, Path], None], expect: Expect, *,
                desc: str = "") -> Case:
    """``fn(nifti_tp2, sidecar_tp2)`` mutates a copy of the NIfTI study."""
    def prepare(case: Path, base: Base) -> None:
        d = _copy_nifti(case, base)
        n = d / base.nifti_nm[TP2].name
        fn(n, n.with_name(n.name[: -len(".nii.gz")] + ".json"))
    return Case(name, module, STUDY_NIFTI, expect, prepare, description=desc)


def nifti_cases() -> list[Case]:
    mod_img, mod_side = "io/_nifti.py", "io/_nifti.py"
    nf = "24-h.nii.gz"
    sf = "24-h.json"
    cases: list[Case] = []

    def img_err(*fields: str) -> Expect:
        return Expect("error", file=nf, fields=fields)

    def truncate(frac: float) -> Callable[[Path, Path], None]:
        def fn(n: Path, s: Path) -> None:
            data = n.read_bytes()
            n.unlink()
            n.write_bytes(data[: int(len(data) * frac)])
        return fn

    for frac in (0.5, 0.01, 0.0):
        cases.append(_nifti_case(f"nifti/truncated/{frac:g}", mod_img, truncate(frac),
                                 img_err(), desc="a .nii.gz cut short (interrupted copy)"))

    def not_gzip(n: Path, s: Path) -> None:
        n.unlink()
        n.write_text("this is not an image\n")
    cases.append(_nifti_case("nifti/not-an-image", mod_img, not_gzip, img_err()))

    def gz_of_garbage(n: Path, s: Path) -> None:
        n.unlink()
        n.write_bytes(gzip.compress(os.urandom(4096)))
    cases.append(_nifti_case("nifti/gzip-of-garbage", mod_img, gz_of_garbage, img_err()))

    def sprinkle(value: float, count: int | None) -> Callable[[Path, Path], None]:
        def fn(n: Path, s: Path) -> None:
            def edit(img):
                arr = np.asarray(img.get_fdata(), dtype=np.float64).copy()
                if count is None:
                    arr[...] = value
                else:
                    idx = np.random.default_rng(0).choice(arr.size, count, replace=False)
                    arr.flat[idx] = value
                return _nib(arr, img)
            _nifti_edit(n, edit)
        return fn

    for label, value, count in (("nan-sprinkled", np.nan, 50), ("inf-sprinkled", np.inf, 50),
                                ("neginf-sprinkled", -np.inf, 50), ("all-nan", np.nan, None),
                                ("all-inf", np.inf, None), ("negative-sprinkled", -1e6, 50)):
        cases.append(_nifti_case(
            f"nifti/values/{label}", mod_img, sprinkle(value, count),
            Expect("error|warn", file=nf, fields=("values", "voxel", "data", "NaN", "nan"),
                   warn=r"nan|NaN|finite|inf|negative"),
            desc="non-finite or negative activity must be refused or named, never used"))

    def pixdim(value: float, keep_geometry: bool) -> Callable[[Path, Path], None]:
        def fn(n: Path, s: Path) -> None:
            # patch the header bytes: nibabel "fixes" pixdim 0 or < 0 when it writes
            raw = bytearray(gzip.decompress(n.read_bytes()))
            struct.pack_into("<f", raw, 80, value)   # pixdim[1] (x spacing)
            struct.pack_into("<h", raw, 254, 0)      # sform_code 0: the grid comes from pixdim
            n.unlink()
            n.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
            if not keep_geometry:
                _json_edit(s, lambda d: d.pop("geometry", None) and None)
        return fn

    for v in (0.0, -4.8, float("nan"), float("inf"), 1e-30):
        for keep in (False, True):
            kind = "error|warn" if (v < 0 or keep) else "error"
            cases.append(_nifti_case(
                f"nifti/pixdim-x/{v:g}{'' if not keep else '+sidecar-geometry'}", mod_img,
                pixdim(v, keep), Expect(kind, file=nf, fields=("pixdim", "spacing", "geometry"),
                                        warn="pixdim|spacing|geometry")))

    def reshape(shape_fn: Callable[[tuple], tuple], dtype: Any = None) -> Callable[[Path, Path],
                                                                                     None]:
        def fn(n: Path, s: Path) -> None:
            def edit(img):
                import nibabel as nib
                arr = np.asarray(img.dataobj)
                new = np.resize(arr, shape_fn(arr.shape))
                if dtype is not None:
                    new = new.astype(dtype)
                return nib.Nifti1Image(new, img.affine)
            _nifti_edit(n, edit)
            _json_edit(s, lambda d: d.pop("geometry", None) and None)
        return fn

    cases.append(_nifti_case("nifti/shape/zero-slices", mod_img,
                             reshape(lambda s: (s[0], s[1], 0)),
                             img_err("dim", "shape", "geometry", "slices")))
    cases.append(_nifti_case("nifti/shape/4d-two-frames", mod_img,
                             reshape(lambda s: (*s, 2)), img_err("dim")))
    cases.append(_nifti_case("nifti/shape/4d-one-frame", mod_img,
                             reshape(lambda s: (*s, 1)),
                             Expect("error|ok", file=nf, fields=("dim",),
                                    check=_same_study("study_nifti"))))
    cases.append(_nifti_case("nifti/shape/2d", mod_img, reshape(lambda s: (s[0], s[1])),
                             img_err("dim")))
    cases.append(_nifti_case("nifti/shape/one-voxel", mod_img, reshape(lambda s: (1, 1, 1)),
                             Expect("error|warn", file=nf, fields=("dim", "shape", "geometry"),
                                    warn="overlap|shape|geometry|voxel")))
    cases.append(_nifti_case("nifti/dtype/complex64", mod_img,
                             reshape(lambda s: s, np.complex64), img_err("datatype")))

    # sidecar values of the wrong type or range
    bad_side: list[tuple[str, Any]] = [
        ("modality", 5), ("modality", "SPECT"), ("modality", ""), ("unit", 5),
        ("unit", "furlongs"), ("unit", "mCi/mL"), ("acquisition_time", 123),
        ("acquisition_time", "yesterday"), ("acquisition_time", "2026-01-07"),
        ("acquisition_time", "2026-01-07T09:00:00+02:00"), ("administration", "Lu-177"),
        ("administration.injected_activity_mbq", "7400"),
        ("administration.injected_activity_mbq", -7400),
        ("administration.injected_activity_mbq", 0),
        ("administration.injected_activity_mbq", float("nan")),
        ("administration.injected_activity_mbq", float("inf")),
        ("administration.nuclide", "Xx-999"), ("administration.nuclide", 177),
        ("administration.injection_time", "2026-13-45T00:00:00"),
        ("acquisition_duration_s", -1800), ("acquisition_duration_s", "1800"),
        ("acquisition_duration_s", float("nan")), ("calibration_cps_per_mbq", 0),
        ("calibration_cps_per_mbq", float("inf")), ("patient_weight_kg", -80),
        ("history", "converted"), ("geometry", "4.8 mm"), ("geometry", {"shape_zyx": [1]}),
        ("sigma_file", 5), ("sigma_file", "missing_sigma.nii.gz"), ("labels", [1, 2]),
        ("nuclide", 177), ("nuclide", "Lu-178m9"), ("paired_ct", 5),
        ("paired_ct", "no_such_ct.nii.gz"), ("role", "therapeutic"),
    ]
    for key, value in bad_side:
        def fn(n: Path, s: Path, key=key, value=value) -> None:
            def edit(d: dict) -> None:
                if "." in key:
                    a, b = key.split(".")
                    d[a][b] = value
                else:
                    d[key] = value
            _json_edit(s, edit)
        top = key.split(".")[0]
        fields = (key, top) if "." not in key else (key,)
        if key == "sigma_file" and isinstance(value, str):
            fields = ("sigma_file", "missing_sigma")
        cases.append(_nifti_case(f"sidecar/{key}/{value!r}", mod_side, fn,
                                 Expect("error", file=sf if "sigma_file" != key or
                                        not isinstance(value, str) else "24-h",
                                        fields=fields)))
    for key in ("modality", "acquisition_time", "unit"):
        def rm(n: Path, s: Path, key=key) -> None:
            _json_edit(s, lambda d, key=key: d.pop(key) and None)
        cases.append(_nifti_case(f"sidecar/{key}/missing", mod_side, rm,
                                 Expect("error", file="24-h", fields=(key,))))

    def whole(content: bytes) -> Callable[[Path, Path], None]:
        def fn(n: Path, s: Path) -> None:
            s.unlink()
            s.write_bytes(content)
        return fn

    for label, content in (("empty", b""), ("invalid-json", b"{\"modality\": \"NM\",}"),
                           ("top-level-list", b"[1, 2, 3]"), ("binary", os.urandom(256)),
                           ("utf16", json.dumps({"modality": "NM"}).encode("utf-16"))):
        cases.append(_nifti_case(f"sidecar/whole-file/{label}", mod_side, whole(content),
                                 Expect("error", file=sf)))

    def no_sidecar(n: Path, s: Path) -> None:
        s.unlink()
    cases.append(_nifti_case("sidecar/missing", "io/_study.py", no_sidecar,
                             Expect("error", file=nf, fields=("sidecar",))))

    def other_patient(n: Path, s: Path) -> None:
        _json_edit(s, lambda d: d.update(patient_id="OTHER0002", patient_name="Other^Patient"))
    cases.append(_nifti_case("identity/nifti-other-patient_id", "io/_study.py", other_patient,
                             Expect("error", file=sf, fields=("patient_id", "PatientID"))))

    def hidden_copy(n: Path, s: Path) -> None:
        shutil.copy2(n, n.with_name(".backup.nii.gz"))
        shutil.copy2(s, s.with_name(".backup.json"))
    cases.append(_nifti_case("folders/hidden-nifti-copy", "io/_study.py", hidden_copy,
                             Expect("error|ok", file=".backup", check=_same_study("study_nifti")),
                             desc="an editor's hidden backup of a time point"))
    return cases


# ----------------------------------------------------------------------------- folders
def folder_cases() -> list[Case]:
    mod = "io/_study.py"
    cases: list[Case] = []

    def mk(name: str, fn: Callable[[Path, Path], None], expect: Expect, argv=None, desc="",
           as_user=None, timeout=120.0) -> Case:
        def prepare(case: Path, base: Base) -> None:
            fn(_copy_dicom(case, base), case)
        return Case(name, mod, argv or STUDY_DICOM, expect, prepare, description=desc,
                    as_user=as_user, timeout=timeout)

    same = _same_study("study_dicom")

    def symlink_dir(d: Path, case: Path) -> None:
        ext = case / "in" / "elsewhere"
        ext.mkdir(parents=True)
        shutil.move(str(d / "tp3_96h"), str(ext / "tp3_96h"))
        (d / "tp3_96h").symlink_to(ext / "tp3_96h", target_is_directory=True)
    cases.append(mk("folders/symlinked-time-point-folder", symlink_dir,
                    Expect("error|ok", file="tp3_96h", fields=("symlink", "tp3_96h"),
                           check=same),
                    desc="tp3 reached through a symlink: followed or refused, never dropped"))

    def symlink_file(d: Path, case: Path) -> None:
        ext = case / "in" / "elsewhere"
        ext.mkdir(parents=True)
        shutil.move(str(d / "tp3_96h" / "nm.dcm"), str(ext / "nm.dcm"))
        (d / "tp3_96h" / "nm.dcm").symlink_to(ext / "nm.dcm")
    cases.append(mk("folders/symlinked-nm-file", symlink_file,
                    Expect("error|ok", file="nm.dcm", check=same)))

    def dangling(d: Path, case: Path) -> None:
        (d / "tp2_24h" / "nm_old.dcm").symlink_to(case / "nowhere.dcm")
    cases.append(mk("folders/dangling-symlink", dangling,
                    Expect("error|ok", file="nm_old.dcm", check=same)))

    def loop(d: Path, case: Path) -> None:
        (d / "tp2_24h" / "loop").symlink_to(d, target_is_directory=True)
    cases.append(mk("folders/symlink-loop", loop,
                    Expect("error|ok", file="loop", check=same), timeout=90.0))

    def ds_store(d: Path, case: Path) -> None:
        (d / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + os.urandom(2000))
        (d / "tp2_24h" / "._nm.dcm").write_bytes(b"\0\5\26\7" + os.urandom(4000))
        (d / "Thumbs.db").write_bytes(os.urandom(1000))
    cases.append(mk("folders/hidden-and-junk-files", ds_store,
                    Expect("error|ok", file="._nm.dcm", check=same),
                    desc="macOS .DS_Store / AppleDouble ._ files, Thumbs.db"))

    def text_dcm(d: Path, case: Path) -> None:
        (d / "tp2_24h" / "README.dcm").write_text("notes about this patient\n")
    cases.append(mk("folders/text-file-named-dcm", text_dcm,
                    Expect("error|ok", file="README.dcm", check=same)))

    def dir_named_dcm(d: Path, case: Path) -> None:
        (d / "tp2_24h" / "extra.dcm").mkdir()
    cases.append(mk("folders/folder-named-dcm", dir_named_dcm,
                    Expect("error|ok", file="extra.dcm", check=same)))

    def fifo(d: Path, case: Path) -> None:
        os.mkfifo(d / "tp2_24h" / "pipe.dcm")
    cases.append(mk("folders/fifo-named-dcm", fifo,
                    Expect("error|ok", file="pipe.dcm", check=same), timeout=60.0,
                    desc="a named pipe must not hang the loader"))

    def unreadable_file(d: Path, case: Path) -> None:
        _own(d / "tp3_96h" / "nm.dcm")
        os.chmod(d / "tp3_96h" / "nm.dcm", 0)
    cases.append(mk("folders/unreadable-nm-file", unreadable_file,
                    Expect("error", file="tp3_96h/nm.dcm"), as_user="nobody"))

    def unreadable_dir(d: Path, case: Path) -> None:
        os.chmod(d / "tp3_96h", 0)
    cases.append(mk("folders/unreadable-time-point-folder", unreadable_dir,
                    Expect("error", file="tp3_96h"), as_user="nobody",
                    desc="never silently dropped"))

    def empty(d: Path, case: Path) -> None:
        shutil.rmtree(d)
        d.mkdir()
    cases.append(mk("folders/empty-study-folder", empty, Expect("error", file="in/dicom")))

    def only_ct(d: Path, case: Path) -> None:
        for tp in d.glob("tp*"):
            for f in tp.glob("*.dcm"):
                f.unlink()
        shutil.rmtree(d / "pet" / "pt")  # without NM, a PET would be the time point
    cases.append(mk("folders/only-ct", only_ct,
                    Expect("error", file="in/dicom", fields=("modality", "Modality"))))

    def study_is_file(d: Path, case: Path) -> None:
        pass
    cases.append(mk("folders/study-is-a-file", study_is_file, Expect("error", file="nm.dcm"),
                    argv=["study", "{case}/in/dicom/tp1_4h/nm.dcm", "--json"]))
    cases.append(mk("folders/study-missing", study_is_file, Expect("error", file="no_such"),
                    argv=["study", "{case}/no_such_folder", "--json"]))

    def fifth_other_patient(d: Path, case: Path) -> None:
        from pydicom.uid import generate_uid
        src = d / "tp4_168h"
        dst = d / "tp5_240h"
        (dst / "ct").mkdir(parents=True)
        series = generate_uid()
        ct_series = generate_uid()
        study = generate_uid()
        fo = generate_uid()

        def retag(ds, series_uid):
            ds.PatientID = "VP000002"
            ds.PatientName = "Virtual^Patient2"
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.FrameOfReferenceUID = fo
            for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
                if kw in ds:
                    setattr(ds, kw, "20260116")
        for f in _ct_slices(d, "tp4_168h"):
            shutil.copy2(f, dst / "ct" / f.name)
            _dicom_set(dst / "ct" / f.name, lambda ds: retag(ds, ct_series))
        shutil.copy2(src / "nm.dcm", dst / "nm.dcm")
        _dicom_set(dst / "nm.dcm", lambda ds: retag(ds, series))
    cases.append(mk("identity/other-patient-as-5th-time-point", fifth_other_patient,
                    Expect("error", file="tp5_240h", fields=("PatientID", "PatientName")),
                    desc="another patient's SPECT/CT (other PatientID and FoR) at 240 h"))
    return cases


# ----------------------------------------------------------------------------- config
def _config_case(name: str, raw: dict[tuple[str, str], str] | None, expect: Expect, *,
                 content: bytes | None = None, base_sections: dict | None = None,
                 desc: str = "") -> Case:
    def prepare(case: Path, base: Base) -> None:
        p = case / "config.toml"
        if content is not None:
            p.write_bytes(content)
        else:
            _write_toml(p, base_sections or FAST, raw)
    argv = ["run", "{base}/patient/dicom", "--out", "{case}/out", "--config", "{case}/config.toml"]
    return Case(name, "pipeline/_config.py", argv, expect, prepare, description=desc)


def config_cases() -> list[Case]:
    from theradose.pipeline._config import _ZERO_OK, DEFAULTS

    cases: list[Case] = []
    numbers = [k for s, keys in DEFAULTS.items() for k, d in keys.items()
               if (isinstance(d, int | float) and not isinstance(d, bool))
               or k in ("threshold", "calibration_cps_per_mbq", "injected_activity_mbq",
                        "max_abs_corr", "fwhm_mm", "local_align_max_mm", *_ZERO_OK)]
    sec_of = {k: s for s, keys in DEFAULTS.items() for k in keys}

    def err(sec: str, key: str) -> Expect:
        return Expect("error", file="config.toml", fields=(f"{sec}.{key}",))

    for key in numbers:
        sec = sec_of[key]
        values = ["nan", "inf", '"12"', "true"]
        if key != "threshold":
            values.append("-1")
        for v in values:
            cases.append(_config_case(f"config/{sec}.{key}/{v}", {(sec, key): v}, err(sec, key)))
    for sec, key, v in (("registration", "seed", "1e30"), ("registration", "seed", "1.5"),
                        ("registration", "seed", str(2**64)), ("registration", "reference", "99"),
                        ("registration", "reference", "1.5"), ("segmentation", "percent", "100"),
                        ("segmentation", "percent", "0"), ("kinetics", "max_abs_corr", "1.5"),
                        ("kinetics", "gtm_fwhm_rel_sd", "1.0"),
                        ("study", "injected_activity_mbq", "1e308"),
                        ("study", "calibration_cps_per_mbq", "1e-300"),
                        ("segmentation", "threshold", "-1")):
        cases.append(_config_case(f"config/{sec}.{key}/{v}", {(sec, key): v}, err(sec, key)))
    for sec, key, v in (("registration", "enabled", '"yes"'), ("registration", "enabled", "1"),
                        ("outputs", "report", '"false"'), ("radiobiology", "enabled", "0"),
                        ("kinetics", "models", '"mono"'), ("kinetics", "models", "[1, 2]"),
                        ("kinetics", "models", "[]"), ("dose", "engines", "[]"),
                        ("dose", "engines", '["monte-carlo"]'), ("kinetics", "criterion", '"AIC"'),
                        ("segmentation", "lesions", '"otsu"'), ("kinetics", "pvc", '"rbv"'),
                        ("dose", "phantom", '"child"'), ("dose", "led", "5"),
                        ("study", "nuclide", "177"), ("study", "nuclide", '"Xx-999"'),
                        ("study", "injection_time", "5"),
                        ("study", "injection_time", '"yesterday morning"'),
                        ("study", "injection_time", '"2026-01-06"')):
        cases.append(_config_case(f"config/{sec}.{key}/{v}", {(sec, key): v}, err(sec, key)))
    cases.append(_config_case(
        "config/kinetics.models/unknown-model-report-false", {("kinetics", "models"): '["quad"]'},
        err("kinetics", "models"), desc="unknown kinetic model with report = false"))
    cases.append(_config_case(
        "config/vois.include/no-such-organ", {("vois", "include"): '["livre"]'},
        Expect("error|warn", file="config.toml", fields=("vois.include",), warn="livre"),
        desc="a VOI filter that matches nothing must not give an empty result silently"))
    cases.append(_config_case(
        "config/dose.led/unknown-option", {("dose", "led"): "{ density_override = 2.0 }"},
        Expect("error", file="config.toml", fields=("dose.led", "density_override"))))
    cases.append(_config_case("config/unknown-section", {("dosimetry", "engine"): '"led"'},
                              Expect("error", file="config.toml", fields=("dosimetry",))))
    cases.append(_config_case("config/unknown-key-typo",
                              {("study", "calibraton_cps_per_mbq"): "9.5"},
                              err("study", "calibraton_cps_per_mbq")))
    top = b"calibration_cps_per_mbq = 9.5\n" + \
        b"[registration]\nenabled = false\n[outputs]\nreport = false\n"
    cases.append(_config_case("config/top-level-key", None,
                              Expect("error", file="config.toml",
                                     fields=("calibration_cps_per_mbq",)), content=top))
    for label, content in (("binary", bytes(range(256)) * 4),
                           ("utf16", "[study]\ncalibration_cps_per_mbq = 9.5\n".encode("utf-16")),
                           ("latin1", "[study]\nnuclide = \"Lu-177\" # é\xa9\n".encode("latin-1")),
                           ("invalid-toml", b"[study\ncalibration_cps_per_mbq = \n"),
                           ("duplicate-key", b"[study]\ncalibration_cps_per_mbq = 9.5\n"
                                             b"calibration_cps_per_mbq = 9.5\n"),
                           ("json-not-toml", json.dumps(FAST).encode())):
        cases.append(_config_case(f"config/whole-file/{label}", None,
                                  Expect("error", file="config.toml", fields=("config",)),
                                  content=content))
    argv_dir = ["run", "{base}/patient/dicom", "--out", "{case}/out", "--config", "{case}"]
    cases.append(Case("config/path-is-a-folder", "pipeline/_config.py", argv_dir,
                      Expect("error", file="config/path-is-a-folder", fields=("config",))))
    argv_missing = ["run", "{base}/patient/dicom", "--out", "{case}/out", "--config",
                    "{case}/nope.toml"]
    cases.append(Case("config/missing-file", "pipeline/_config.py", argv_missing,
                      Expect("error", file="nope.toml", fields=("config",))))
    return cases


# ----------------------------------------------------------------------------- CLI flags
FLAG_BASE: dict[str, list[str]] = {
    "fit": ["fit", "--times-h", "4,24,96,168", "--values", "10,8,5,3", "--json"],
    "kernel": ["kernel", "--nuclide", "Lu-177", "--voxel-mm", "4.8", "--no-cache",
               "--samples", "4096", "--json"],
    "sphere": ["sphere", "--nuclide", "Lu-177", "--mass-g", "10", "--json"],
    "nuclide": ["nuclide", "Lu-177", "--json"],
    "simulate": ["simulate", "--out", "{case}/sim", "--voxel-mm", "8", "--no-noise", "--no-motion",
                 "--times-h", "4,24", "--lesions", "1"],
    "study": ["study", "{base}/nifti", "--json"],
    "convert": ["convert", "{base}/patient/dicom/tp1_4h", "--out", "{case}/conv"],
    "run": ["run", "{base}/patient/dicom", "--out", "{case}/out", "--config", "{base}/fast.toml"],
}
#: (command, flag) pairs for which 0 is a valid value (no case generated for 0).
ZERO_VALID = {("fit", "--calibration-u"), ("fit", "--recovery-u"), ("fit", "--volume-u"),
              ("kernel", "--seed"), ("sphere", "--seed"), ("simulate", "--seed"),
              ("nuclide", "--min-yield"), ("simulate", "--lesions"),
              ("simulate", "--spect-fwhm-mm")}
#: (command, flag) pairs for which a huge finite value may be accepted when the output is finite.
HUGE_MAYBE = {("fit", "--max-cv"), ("nuclide", "--min-yield")}


def _numeric_flags() -> list[tuple[str, str, str, Any]]:
    import click

    from theradose.cli import cli

    out = []
    for cmd in FLAG_BASE:
        command = cli.commands[cmd]
        for p in command.params:
            if not isinstance(p, click.Option) or p.is_flag:
                continue
            t = p.type
            kind = "float" if isinstance(t, click.types.FloatParamType) else \
                "int" if isinstance(t, click.types.IntParamType) else None
            if kind is None:
                continue
            flag = max(p.opts, key=len)
            out.append((cmd, flag, kind, p.name))
    return out


def cli_flag_cases() -> list[Case]:
    cases: list[Case] = []
    for cmd, flag, kind, pname in _numeric_flags():
        base = FLAG_BASE[cmd]
        fields = (flag, pname, flag.lstrip("-").replace("-", "_"))
        values = ["-1", "nan", "inf", "1e308"] if kind == "float" else \
            ["-1", "1e30", str(2**70)]
        if (cmd, flag) not in ZERO_VALID:
            values.insert(1, "0")
        for v in values:
            if (cmd, flag) in HUGE_MAYBE and v in ("1e308", "inf"):
                exp = Expect("error|ok", fields=fields, check=finite_output)
            elif cmd == "fit" and v == "1e308":
                exp = Expect("error|ok", fields=fields, check=finite_fit)
            else:
                exp = Expect("error", fields=fields)
            argv = [*base]
            if flag in argv:  # replace the base value
                argv[argv.index(flag) + 1] = v
            else:
                argv += [flag, v]
            cases.append(Case(f"cli/{cmd}/{flag}={v}", f"cli/_{cmd}.py", argv, exp,
                              timeout=90.0 if cmd in ("simulate", "kernel", "run") else 60.0))
    # string-typed numeric options
    fit = FLAG_BASE["fit"]
    fit_fields = ("--values", "values")
    for label, times, values in (
            ("values-1e308", "4,24,96,168", "1e308,1e308,1e308,1e308"),
            ("values-huge-mixed", "4,24,96,168", "1e308,1e300,1e200,1e100"),
            ("values-tiny", "4,24,96,168", "1e-308,1e-308,1e-309,1e-310"),
            ("values-zero", "4,24,96,168", "0,0,0,0"),
            ("values-negative", "4,24,96,168", "10,-8,5,3"),
            ("values-nan", "4,24,96,168", "10,nan,5,3"),
            ("values-inf", "4,24,96,168", "10,inf,5,3"),
            ("values-count-mismatch", "4,24,96,168", "10,8,5"),
            ("times-duplicate", "4,24,24,168", "10,8,5,3"),
            ("times-negative", "-4,24,96,168", "10,8,5,3"),
            ("times-1e308", "4,24,96,1e308", "10,8,5,3"),
            ("times-nan", "4,nan,96,168", "10,8,5,3"),
            ("single-point", "24", "8"),
            ("times-text", "4h,24h", "10,8")):
        argv = [*fit]
        argv[argv.index("--times-h") + 1] = times
        argv[argv.index("--values") + 1] = values
        flds = ("--times-h", "times") if label.startswith(("times", "single")) else fit_fields
        if label in ("values-1e308", "values-huge-mixed", "values-tiny", "values-zero"):
            exp = Expect("error|ok", fields=flds, check=finite_fit)
        elif label == "single-point":
            exp = Expect("error|ok", fields=("--times-h", "times", "--values", "values"),
                         check=finite_fit)
        else:
            exp = Expect("error", fields=flds if label != "values-count-mismatch" else
                         ("--values", "values", "--times-h", "times"))
        cases.append(Case(f"cli/fit/{label}", "kinetics/_fit.py", argv, exp, timeout=60.0))
    for label, v in (("0", "0"), ("-1", "-1"), ("nan", "nan"), ("1e9", "1e9"),
                     ("anisotropic-zero", "4.8,0,4.8"), ("two-values", "4.8,4.8")):
        argv = [*FLAG_BASE["kernel"]]
        argv[argv.index("--voxel-mm") + 1] = v
        cases.append(Case(f"cli/kernel/--voxel-mm={label}", "dose/_vsv.py", argv,
                          Expect("error", fields=("--voxel-mm", "voxel_mm")), timeout=90.0))
    for v in ("1e9", "1e308", "1e-9"):
        argv = [*FLAG_BASE["kernel"], "--radius-mm", v]
        cases.append(Case(f"cli/kernel/--radius-mm={v} (named)", "dose/_vsv.py", argv,
                          Expect("error", fields=("--radius-mm", "radius_mm")), timeout=90.0))
    argv = [*FLAG_BASE["kernel"], "--cache-dir", "{base}/fast.toml"]
    argv.remove("--no-cache")
    cases.append(Case("cli/kernel/--cache-dir-is-a-file", "dose/_cache.py", argv,
                      Expect("error", file="fast.toml", fields=("--cache-dir", "cache_dir",
                                                                 "cache")), timeout=90.0))
    for v in ("0", "-1", "nan", "inf", "1e308", "10,,20", "ten"):
        argv = [*FLAG_BASE["sphere"]]
        argv[argv.index("--mass-g") + 1] = v
        cases.append(Case(f"cli/sphere/--mass-g={v}", "dose/_sphere.py", argv,
                          Expect("error", fields=("--mass-g", "mass_g", "mass"))))
    for v in ("Xx-999", "", "Lu177m9"):
        cases.append(Case(f"cli/nuclide/name={v or 'empty'}", "nuclides/_nuclide.py",
                          ["nuclide", v, "--json"],
                          Expect("error", fields=("nuclide", "name", "NAME"))))
    for src, tgt in (("livre", "kidneys"), ("kidneys", "")):
        cases.append(Case(f"cli/svalue/{src or 'empty'}->{tgt or 'empty'}", "dose/mc/_svalues.py",
                          ["svalue", "--nuclide", "Lu-177", "--source", src, "--target", tgt,
                           "--json"],
                          Expect("error", fields=("source", "target", "--source", "--target"))))
    for v in ("4,4", "-4,24", "nan,24", "1e308,1e309", ""):
        argv = [*FLAG_BASE["simulate"]]
        argv[argv.index("--times-h") + 1] = v
        cases.append(Case(f"cli/simulate/--times-h={v or 'empty'}", "phantoms/_config.py", argv,
                          Expect("error", fields=("--times-h", "times_h")), timeout=90.0))
    cases.append(Case("cli/simulate/--seed=1e30 (named)", "cli/_simulate.py",
                      [*FLAG_BASE["simulate"], "--seed", "1e30"],
                      Expect("error", fields=("--seed", "seed")), timeout=90.0))
    cases.append(Case("cli/simulate/--truth-dose=foo", "phantoms/_config.py",
                      [*FLAG_BASE["simulate"], "--truth-dose", "foo"],
                      Expect("error", fields=("--truth-dose", "truth_dose")), timeout=90.0))
    for v in ("garbage", "2026-01-06", "2026-01-06T09:00:00+01:00"):
        cases.append(Case(f"cli/study/--injection-time={v}", "io/_study.py",
                          ["study", "{base}/patient/dicom", "--injection-time", v, "--json"],
                          Expect("error", fields=("--injection-time", "injection_time"))))
    return cases


# ----------------------------------------------------------------------------- convert
def convert_cases() -> list[Case]:
    def two_series(case: Path, base: Base) -> None:
        from pydicom.uid import generate_uid
        d = case / "in" / "dicom"
        _link_tree(base.dicom / TP2, d / TP2)
        shutil.copy2(d / TP2 / "nm.dcm", d / TP2 / "nm_recon2.dcm")
        uid = generate_uid()

        def retag(ds):
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
        _dicom_set(d / TP2 / "nm_recon2.dcm", retag)
    argv = ["convert", "{case}/in/dicom", "--out", "{case}/conv", "--calibration-cps-per-mbq",
            str(CAL), "--overwrite"]
    out = [Case("convert/--overwrite-two-series-one-name", "cli/_convert.py", argv,
                Expect("error|ok", file="nm", fields=("SeriesInstanceUID", "series", "out"),
                       check=_all_series_written(3)), two_series,
                description="two NM series (recon 1 and 2) with the same time and "
                            "description")]
    out.append(Case("convert/out-inside-source", "cli/_convert.py",
                    ["convert", "{case}/in/dicom", "--out", "{case}/in/dicom/nifti"],
                    Expect("error", file="nifti", fields=("out",)),
                    lambda case, base: _link_tree(base.dicom / TP2, case / "in" / "dicom" / TP2)))
    return out


# ----------------------------------------------------------------------------- environment
def environment_cases() -> list[Case]:
    cases: list[Case] = []

    def ro_out(case: Path, base: Base) -> None:
        (case / "out").mkdir()
        os.chmod(case / "out", 0o555)
        os.chmod(case, 0o777)
    cases.append(Case("env/read-only-output-folder", "pipeline/_run.py", [
        *RUN_DICOM[:2], "--out", "{case}/out", "--config", "{base}/fast.toml"],
        Expect("error", file="out"), _prep_dicom_then(ro_out), as_user="nobody"))

    def ro_parent(case: Path, base: Base) -> None:
        (case / "parent").mkdir()
        os.chmod(case / "parent", 0o555)
    cases.append(Case("env/output-parent-read-only", "pipeline/_run.py",
                      ["run", "{case}/in/dicom", "--out", "{case}/parent/out", "--config",
                       "{base}/fast.toml"], Expect("error", file="parent/out"),
                      _prep_dicom_then(ro_parent), as_user="nobody"))
    cases.append(Case("env/disk-full-tmpfs", "pipeline/_run.py", RUN_DICOM,
                      Expect("error", file="out"), _prep_dicom_then(None), tmpfs_out=True,
                      description="output on a 2 MiB tmpfs (ENOSPC); skipped without root"))
    cases.append(Case("env/file-size-limit", "pipeline/_run.py", RUN_DICOM,
                      Expect("error", file="out"), _prep_dicom_then(None), fsize=200_000,
                      description="RLIMIT_FSIZE 200 kB: writes past it fail (EFBIG)"))
    cases.append(Case("env/output-inside-study", "pipeline/_run.py",
                      ["run", "{case}/in/dicom", "--out", "{case}/in/dicom/results", "--config",
                       "{base}/fast.toml"], Expect("error", file="results", fields=("out",)),
                      _prep_dicom_then(None)))
    cases.append(Case("env/output-is-the-study", "pipeline/_run.py",
                      ["run", "{case}/in/dicom", "--out", "{case}/in/dicom", "--config",
                       "{base}/fast.toml"], Expect("error", file="in/dicom", fields=("out",)),
                      _prep_dicom_then(None)))

    def out_file(case: Path, base: Base) -> None:
        (case / "out").write_text("not a folder\n")
    cases.append(Case("env/output-is-a-file", "pipeline/_run.py", RUN_DICOM,
                      Expect("error", file="out", fields=("out",)), _prep_dicom_then(out_file)))

    def out_nonempty(case: Path, base: Base) -> None:
        (case / "out").mkdir()
        (case / "out" / "notes.txt").write_text("my notes\n")
    cases.append(Case("env/output-folder-has-user-files", "pipeline/_run.py", RUN_DICOM,
                      Expect("error|ok", file="out", fields=("out", "overwrite"),
                             check=lambda c, s, r: None if (c / "out" / "notes.txt").is_file()
                             else "the user's notes.txt was deleted"),
                      _prep_dicom_then(out_nonempty)))
    return cases


def _prep_dicom_then(fn: Callable[[Path, Base], None] | None) -> Callable[[Path, Base], None]:
    def prepare(case: Path, base: Base) -> None:
        _copy_dicom(case, base)
        if fn is not None:
            fn(case, base)
    return prepare


# ----------------------------------------------------------------------------- full runs
def run_cases() -> list[Case]:
    """Cases that need a whole pipeline run (slow): references, decay correction, NaN."""
    cases = [Case("clean/dicom-run", "pipeline/_run.py", RUN_DICOM, Expect("ok"),
                  _prep_dicom_then(None), reference=True, timeout=300.0),
             Case("clean/study-dicom", "io/_study.py", STUDY_DICOM, Expect("ok"),
                  _prep_dicom_then(None), reference=True),
             Case("clean/study-nm-only", "io/_study.py", STUDY_DICOM,
                  Expect("ok", check=_same_study("study_dicom")),
                  lambda case, base: _copy_nm_only(case, base)),
             Case("clean/study-nifti", "io/_study.py", STUDY_NIFTI, Expect("ok"),
                  lambda case, base: _copy_nifti(case, base), reference=True)]

    def scale_nm(factor_of: Callable[[Any], float], dc: str, extra=None):
        def edit(ds) -> None:
            ds.RescaleSlope = f"{float(ds.RescaleSlope) * factor_of(ds):.12g}"
            ds.DecayCorrection = dc
            ci = list(ds.get("CorrectedImage", []) or [])
            ds.CorrectedImage = [*ci, "DECY"] if "DECY" not in ci else ci
            if extra is not None:
                extra(ds)
        return edit

    def hours_since_injection(ds) -> float:
        from datetime import datetime
        rp = _rp(ds)
        inj = datetime.strptime(str(rp.RadiopharmaceuticalStartDateTime)[:14], "%Y%m%d%H%M%S")
        acq = datetime.strptime(f"{ds.AcquisitionDate}{str(ds.AcquisitionTime)[:6]}",
                                "%Y%m%d%H%M%S")
        return (acq - inj).total_seconds() / 3600.0

    def decay_run(name: str, edit, desc: str) -> Case:
        def prepare(case: Path, base: Base) -> None:
            d = _copy_dicom(case, base)
            for tp in base.nm:
                _dicom_set(d / tp / "nm.dcm", edit)
        return Case(name, "kinetics/pipeline (decay correction)", RUN_DICOM,
                    Expect("error|ok", file="nm.dcm", fields=("DecayCorrection",),
                           check=_same_tia(0.01)), prepare, timeout=300.0, description=desc)

    cases.append(decay_run(
        "decay/ADMIN-run", scale_nm(lambda ds: math.exp(LU177_LAMBDA_PER_H *
                                                        hours_since_injection(ds)), "ADMIN"),
        "every SPECT decay-corrected to the administration (values x exp(lambda t)); "
        "TIAs must equal the NONE study's within 1 %"))
    cases.append(decay_run("decay/START-run", scale_nm(lambda ds: 1.0, "START"),
                           "START with SeriesTime = acquisition start: same values"))

    def series_earlier(ds) -> None:
        from datetime import datetime, timedelta
        acq = datetime.strptime(f"{ds.AcquisitionDate}{str(ds.AcquisitionTime)[:6]}",
                                "%Y%m%d%H%M%S")
        s = acq - timedelta(hours=6)
        ds.SeriesDate, ds.SeriesTime = s.strftime("%Y%m%d"), s.strftime("%H%M%S")
    cases.append(decay_run(
        "decay/START-series-6h-earlier-run",
        scale_nm(lambda ds: math.exp(LU177_LAMBDA_PER_H * 6.0), "START", series_earlier),
        "START referenced to a SeriesTime 6 h before the acquisition (values x exp(6 lambda))"))

    def nifti_admin(case: Path, base: Base) -> None:
        d = _copy_nifti(case, base)
        for tp, f in base.nifti_nm.items():
            h = float(tp.split("_")[1].rstrip("h"))
            fac = math.exp(LU177_LAMBDA_PER_H * h)
            _nifti_edit(d / f.name, lambda img, fac=fac: _nib(
                np.asarray(img.get_fdata()) * fac, img))
            side = d / (f.name[: -len(".nii.gz")] + ".json")
            _json_edit(side, lambda s: s.update(decay_correction="ADMIN",
                                                decay_correction_reference_time=s[
                                                    "administration"]["injection_time"]))
    nifti_run = ["run", "{case}/in/nifti", "--out", "{case}/out", "--config", "{base}/fast.toml"]
    cases.append(Case("decay/nifti-sidecar-ADMIN-run", "io/_nifti.py + pipeline", nifti_run,
                      Expect("error|ok", file=".json", fields=("decay_correction",),
                             check=_same_tia(0.01, "run_nifti")), nifti_admin, timeout=300.0,
                      description="NIfTI study whose sidecars say decay_correction ADMIN"))
    cases.append(Case("clean/nifti-run", "io/_nifti.py + pipeline", nifti_run, Expect("ok"),
                      lambda case, base: _copy_nifti(case, base), reference=True,
                      timeout=300.0, description="reference of the NIfTI runs (VOIs from the "
                      "truth label map, so not comparable with the DICOM run's SEG VOIs)"))

    def symlink_run(case: Path, base: Base) -> None:
        d = _copy_dicom(case, base)
        ext = case / "in" / "elsewhere"
        ext.mkdir(parents=True)
        shutil.move(str(d / "tp3_96h"), str(ext / "tp3_96h"))
        (d / "tp3_96h").symlink_to(ext / "tp3_96h", target_is_directory=True)
    cases.append(Case("folders/symlinked-time-point-run", "io/_study.py", RUN_DICOM,
                      Expect("error|ok", file="tp3_96h", check=_same_tia(1e-6)), symlink_run,
                      timeout=300.0))

    def nan_run(frac: float | None):
        def prepare(case: Path, base: Base) -> None:
            d = _copy_nifti(case, base)
            f = d / base.nifti_nm["tp3_96h"].name

            def edit(img):
                arr = np.asarray(img.get_fdata()).copy()
                if frac is None:
                    arr[...] = np.nan
                else:
                    rng = np.random.default_rng(1)
                    arr.flat[rng.choice(arr.size, int(frac * arr.size), replace=False)] = np.nan
                return _nib(arr, img)
            _nifti_edit(f, edit)
        return prepare
    cases.append(Case("nifti/values/nan-sprinkled-run", "pipeline/kinetics", nifti_run,
                      Expect("error|warn", file="96-h", fields=("values", "NaN", "nan"),
                             warn=r"NaN|nan|finite"), nan_run(0.001), timeout=300.0))
    cases.append(Case("nifti/values/all-nan-time-point-run", "pipeline/kinetics", nifti_run,
                      Expect("error|warn", file="96-h", fields=("values", "NaN", "nan"),
                             warn=r"NaN|nan|finite"), nan_run(None), timeout=300.0))
    # plausibility: every file valid, a unit wrong (pipeline/_plausibility.py)
    for factor, what in ((1000.0, "cps/kBq given as cps/MBq"), (1e-3, "cps/GBq")):
        cases.append(Case(
            f"plausibility/calibration-x{factor:g}-run", "pipeline/_plausibility.py",
            [*RUN_DICOM, "--calibration-cps-per-mbq", f"{CAL * factor:g}"],
            Expect("error|warn", fields=("activity", "calibration"),
                   warn=r"activity: the image holds"),
            _prep_dicom_then(lambda case, base: None), timeout=300.0,
            description=f"calibration off by {factor:g} ({what})"))

    def ct_not_hu(case: Path, base: Base) -> None:
        d = _copy_dicom(case, base)
        for f in sorted((d / "tp1_4h" / "ct").iterdir()):
            def edit(ds):
                # stored as HU + 1024 with the RescaleIntercept -1024 lost: air reads ~0 HU
                arr = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + \
                    float(ds.RescaleIntercept) + 1024
                ds.PixelData = arr.astype(ds.pixel_array.dtype).tobytes()
                ds.RescaleIntercept = 0
                ds.RescaleSlope = 1
            _dicom_set(f, edit)
    cases.append(Case("plausibility/ct-rescale-intercept-lost-run", "pipeline/_plausibility.py",
                      RUN_DICOM, Expect("error|warn", fields=("HU", "RescaleIntercept"),
                                        warn=r"HU: only"), ct_not_hu, timeout=300.0,
                      description="the reference CT stored as HU + 1024, RescaleIntercept lost"))
    cases.append(Case("config/registration.seed/1e30-registration-on", "pipeline/_config.py",
                      ["run", "{case}/in/dicom", "--out", "{case}/out", "--config",
                       "{case}/config.toml"],
                      Expect("error", file="config.toml", fields=("registration.seed",)),
                      _prep_dicom_then(lambda case, base: _write_toml(
                          case / "config.toml",
                          {**FAST, "registration": {"enabled": True}},
                          {("registration", "seed"): "1e30"})), timeout=300.0))
    return cases


def all_cases() -> list[Case]:
    return [*run_cases(), *dicom_tag_cases(), *ct_cases(), *nifti_cases(), *folder_cases(),
            *config_cases(), *cli_flag_cases(), *convert_cases(), *environment_cases()]


# ====================================================================================== replay
_WARN_LINE = re.compile(r"^(warning:|WARNING\b)")


def _innermost_theradose_frame(stderr: str) -> str | None:
    frames = re.findall(r'File "([^"]*theradose/[^"]+)", line (\d+), in (\S+)', stderr)
    if not frames:
        return None
    path, line, fn = frames[-1]
    return f"{path.split('theradose/', 1)[1]}:{line} ({fn})"


def classify(case: Case, case_dir: Path, rc: int | None, stdout: str, stderr: str,
             refs: dict, timed_out: bool) -> tuple[str, str, list[str]]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    warns = [ln for ln in lines if _WARN_LINE.match(ln)]
    res = _results(case_dir) if rc == 0 else None
    if res is not None:
        warns += [w.get("message", "") for w in res.get("warnings", [])]
    exp = case.expect
    if timed_out:
        return "other", f"timed out after {case.timeout:g} s", warns
    if "Traceback (most recent call last)" in stderr:
        where = _innermost_theradose_frame(stderr) or "outside theradose"
        last = lines[-1] if lines else ""
        return "traceback", f"{last[:300]} [at {where}]", warns
    internal = [ln for ln in lines if ln.startswith("error: internal error")]
    if internal:
        return "traceback", f"{internal[0][:300]} (exit {rc}, caught by the CLI)", warns
    if rc is None or rc < 0:
        return "other", f"killed by signal {-rc if rc else '?'}", warns
    kinds = exp.kind.split("|")
    if rc == 0:
        if "ok" in kinds or "warn" in kinds:
            if exp.check is not None:
                why = exp.check(case_dir, stdout, refs)
                if why:
                    return "silent-wrong", why, warns
            if "warn" in kinds and "ok" not in kinds:
                pat = re.compile(exp.warn or ".", re.I)
                if not any(pat.search(w) for w in warns):
                    return "silent-wrong", f"exit 0 without a warning matching /{exp.warn}/", \
                        warns
            return "pass", "", warns
        return "silent-wrong", "exit 0 where an error was expected", warns
    if rc == 2:
        errors = [ln for ln in lines if ln.startswith("error:")]
        others = [ln for ln in lines if not ln.startswith("error:") and not _WARN_LINE.match(ln)]
        if "error" not in kinds:
            return "other", f"refused a valid input: {(errors or lines or [''])[0][:300]}", warns
        if len(errors) != 1 or others:
            return "unclear-message", f"{len(errors)} error line(s), {len(others)} other " \
                f"line(s): {' | '.join(lines)[:400]}", warns
        line = errors[0]
        body = line[len("error:"):].strip()
        missing = []
        if exp.file and exp.file not in line and Path(exp.file).name not in line:
            missing.append(f"file ~{exp.file!r}")
        if exp.fields and not any(f in line for f in exp.fields):
            missing.append(f"field ~{'|'.join(exp.fields)}")
        if not exp.file and not exp.fields and ": " not in body:
            missing.append("a 'field: ' prefix")
        if exp.file is None and exp.fields and not re.match(r"^\S+: ", body):
            missing.append("'<field>: ' at the start")
        if missing:
            return "unclear-message", "error line lacks " + ", ".join(missing), warns
        out = case_dir / "out"
        if case.argv and case.argv[0] == "run" and (out / "results.json").is_file() \
                and not case.name.startswith("env/output-is"):
            return "other", "error reported but a results.json was left in the output", warns
        return "pass", "", warns
    return "other", f"exit status {rc}: {' | '.join(lines)[-300:]}", warns


def _subst(argv: list[str], case_dir: Path, base: Base) -> list[str]:
    return [a.replace("{case}", str(case_dir)).replace("{base}", str(base.root)) for a in argv]


def _preexec(case: Case) -> Callable[[], None]:
    def fn() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
        if case.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, case.fsize))
    return fn


def replay(case: Case, case_dir: Path, base: Base, refs: dict, env: dict[str, str]) -> Outcome:
    argv = [EXE, "--no-progress", *_subst(case.argv, case_dir, base)]
    command = " ".join(_quote(a) for a in argv)
    if case.as_user and os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    mounted = False
    if case.tmpfs_out:
        if os.geteuid() != 0:
            return Outcome(case.name, case.module, command, case.expect.describe(), "skipped",
                           "needs root to mount a tmpfs", None, 0.0, "")
        (case_dir / "out").mkdir(exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                            str(case_dir / "out")], capture_output=True, text=True)
        if r.returncode != 0:
            return Outcome(case.name, case.module, command, case.expect.describe(), "skipped",
                           f"cannot mount a tmpfs: {r.stderr.strip()}", None, 0.0, "")
        mounted = True
    inputs = [p for p in (case_dir / "in", case_dir / "config.toml") if p.exists()]
    before = _checksums(*inputs)
    t0 = time.monotonic()
    timed_out = False
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=str(case_dir), preexec_fn=_preexec(case),
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - t0
    try:
        outcome, reason, warns = classify(case, case_dir, proc.returncode, stdout, stderr, refs,
                                          timed_out)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(case_dir / "out")], capture_output=True)
    if outcome == "traceback" and "caught by the CLI" in reason and not case.tmpfs_out:
        reason += _frame_from_verbose_rerun(argv, case, case_dir, env)
    after = _checksums(*inputs)
    if before != after:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        outcome, reason = "input-modified", f"{len(changed)} input(s) changed: {changed[:3]}"
    if case.reference and outcome == "pass":
        if case.argv[0] == "run":
            refs["run_nifti" if "nifti" in case.argv[1] else "run"] = _results(case_dir)
        else:
            refs["study_dicom" if "dicom" in case.argv[1] else "study_nifti"] = stdout
    return Outcome(case.name, case.module, command, case.expect.describe(), outcome, reason,
                   proc.returncode, round(seconds, 2), stderr[-3000:], stdout[-500:], warns[:10])


def _frame_from_verbose_rerun(argv: list[str], case: Case, case_dir: Path,
                              env: dict[str, str]) -> str:
    """Where an 'internal error' came from: rerun with -vv (traceback) and name the frame."""
    i = argv.index("--no-progress")
    verbose = [*argv[:i], "-vv", *argv[i:]]
    try:
        r = subprocess.run(verbose, capture_output=True, text=True, env=env, cwd=str(case_dir),
                           preexec_fn=_preexec(case), timeout=case.timeout)
    except subprocess.TimeoutExpired:
        return ""
    where = _innermost_theradose_frame(r.stderr)
    return f" [at {where}]" if where else ""


def _quote(a: str) -> str:
    return a if re.fullmatch(r"[\w@%+=:,./-]+", a) else "'" + a.replace("'", "'\\''") + "'"


# ====================================================================================== report
def write_report(out: Path, rows: list[Outcome], n_cases: int, seconds: float) -> None:
    data = {"cases": n_cases, "seconds": round(seconds, 1),
            "summary": dict(Counter(r.outcome for r in rows)),
            "rows": [r.__dict__ for r in rows]}
    (out / "results.json").write_text(json.dumps(data, indent=1))
    counts = Counter(r.outcome for r in rows)
    by_group: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_group[r.name.split("/")[0]][r.outcome] += 1
    md = ["# Hostile-input corpus", "",
          f"{n_cases} cases, {seconds:.0f} s. Expectations: `error` = exit 2 and one line "
          "`error: <file>: <field>: ...`; `ok` = exit 0 (equal to the clean run where checked); "
          "`warn` = exit 0 with a named warning.", "",
          "| group | " + " | ".join(OUTCOMES) + " |", "|---|" + "---:|" * len(OUTCOMES)]
    for g in sorted(by_group):
        md.append(f"| {g} | " + " | ".join(str(by_group[g][o]) for o in OUTCOMES) + " |")
    md.append("| **all** | " + " | ".join(f"**{counts[o]}**" for o in OUTCOMES) + " |")
    md += ["", "## Failing cases, by the module that needs the fix", ""]
    fails: dict[str, list[Outcome]] = defaultdict(list)
    for r in rows:
        if r.outcome not in ("pass", "skipped"):
            key = r.module
            if r.outcome == "traceback":
                m = re.search(r"\[at ([^:\]]+)", r.reason)
                if m and m.group(1) != "outside theradose":
                    key = m.group(1)
            fails[key].append(r)
    for mod in sorted(fails):
        md.append(f"### {mod}")
        md.append("")
        for r in fails[mod]:
            last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1:] or [""]
            md.append(f"- **{r.name}** — {r.outcome}: {r.reason}  ")
            md.append(f"  expected `{r.expect}`; exit {r.rc}  ")
            md.append(f"  `{r.command}`  ")
            md.append(f"  stderr: `{last[0][:300]}`")
        md.append("")
    skipped = [r for r in rows if r.outcome == "skipped"]
    if skipped:
        md += ["## Skipped", ""] + [f"- {r.name}: {r.reason}" for r in skipped] + [""]
    (out / "summary.md").write_text("\n".join(md))


# ====================================================================================== main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="Output folder (replaced).")
    ap.add_argument("--only", default=None,
                    help="Glob on case names (e.g. 'config/*'); references always run.")
    ap.add_argument("--jobs", type=int, default=1, help="Cases replayed in parallel.")
    ap.add_argument("--list", action="store_true", help="List the cases and exit.")
    args = ap.parse_args(argv)
    cases = all_cases()
    names = [c.name for c in cases]
    dup = [n for n, k in Counter(names).items() if k > 1]
    if dup:
        raise SystemExit(f"duplicate case names: {dup}")
    if args.list:
        for c in cases:
            print(f"{c.name:<60} {c.expect.describe()}")
        print(f"{len(cases)} cases")
        return 0
    if args.only:
        cases = [c for c in cases if c.reference or fnmatch.fnmatch(c.name, args.only)
                 or args.only in c.name]
    out = args.out.resolve()
    t0 = time.monotonic()
    if out.exists():
        for p in out.rglob("*"):  # a previous run may have left read-only folders
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    os.chmod(p, 0o755)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    os.chmod(out, 0o755)
    print(f"building the base patient in {out / 'base'} ...", flush=True)
    base = build_base(out / "base")
    env = {**os.environ, "HOME": str(out / "home"), "THERADOSE_CACHE_DIR": str(out / "cache"),
           "MPLCONFIGDIR": str(out / "home" / "mpl"), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for d in ("home", "home/mpl", "cache"):
        (out / d).mkdir(parents=True, exist_ok=True)
        os.chmod(out / d, 0o777)
    corpus = out / "corpus"
    corpus.mkdir()
    dirs: dict[str, Path] = {}
    broken: dict[str, str] = {}
    print(f"generating {len(cases)} cases ...", flush=True)
    for c in cases:
        d = corpus / re.sub(r"[^A-Za-z0-9_.=+-]+", "_", c.name)
        d.mkdir()
        os.chmod(d, 0o755)
        dirs[c.name] = d
        if c.prepare is not None:
            try:
                c.prepare(d, base)
            except Exception as exc:  # a harness bug must not hide the other cases
                broken[c.name] = f"harness could not build the case: {exc!r}"[:300]
                print(f"  {c.name}: {broken[c.name]}", flush=True)
        (d / "case.json").write_text(json.dumps(
            {"name": c.name, "argv": _subst(c.argv, d, base), "expect": c.expect.describe(),
             "description": c.description}, indent=1))
    base_sums = _checksums(base.root)
    refs: dict[str, Any] = {}
    rows: list[Outcome] = []

    def go(c: Case) -> Outcome:
        if c.name in broken:
            return Outcome(c.name, c.module, " ".join(c.argv), c.expect.describe(), "skipped",
                           broken[c.name], None, 0.0, "")
        r = replay(c, dirs[c.name], base, refs, env)
        mark = "." if r.outcome == "pass" else r.outcome[0].upper()
        print(f"{mark} {r.outcome:<16} {r.seconds:6.1f} s  {c.name}", flush=True)
        return r

    for c in [c for c in cases if c.reference]:
        rows.append(go(c))
    rest = [c for c in cases if not c.reference]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows += list(pool.map(go, rest))
    if _checksums(base.root) != base_sums:
        print("WARNING: the base patient changed during the replay (an input was modified "
              "through a hard link)", file=sys.stderr)
    write_report(out, rows, len(cases), time.monotonic() - t0)
    counts = Counter(r.outcome for r in rows)
    print(" ".join(f"{o}={counts[o]}" for o in OUTCOMES))
    print(f"report: {out / 'summary.md'}, {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
