"""Undo the decay correction of an emission image: activity at its acquisition start.

A scanner may store an emission image decay corrected to a reference time (DICOM
DecayCorrection (0054,1102): ``START`` = series start, ``ADMIN`` = administration, ``NONE`` =
not corrected). The kinetics of theradose needs every time point to hold the activity
concentration *at its acquisition* (DecayCorrection ``NONE``): the decay between the injection
and each time point is what the time-activity fit measures. :func:`undo_decay_correction`
turns a START- or ADMIN-corrected volume back into that.

References
----------
DICOM PS3.3 C.8.9.1 (PET Series Module): DecayCorrection, "the real-world event to which images
in this series were decay corrected". QIBA FDG-PET/CT Technical Committee, "Vendor-neutral
pseudo-code for SUV calculation" (2014-2019): the START reference is SeriesTime unless it is after
the earliest AcquisitionTime. ICRP Publication 107, "Nuclear decay data for dosimetric
calculations", Ann. ICRP 38(3) (2008), doi:10.1016/j.icrp.2008.10.004 (half-lives).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from theradose.errors import InputError
from theradose.volume import Volume

__all__ = ["DECAY_CORRECTIONS", "decay_factor", "undo_decay_correction"]

#: DecayCorrection values understood (DICOM defined terms).
DECAY_CORRECTIONS: tuple[str, ...] = ("NONE", "START", "ADMIN")


def _file(volume: Volume) -> str | None:
    files = volume.meta.get("source_files") or []
    return files[0] if files else volume.meta.get("source_file")


def decay_factor(dt_s: float, half_life_s: float) -> float:
    """Fraction of the activity left after ``dt_s`` seconds: ``exp(-ln 2 · dt / T½)``.

    Parameters
    ----------
    dt_s : float
        Elapsed time, s (negative: the factor is > 1).
    half_life_s : float
        Physical half-life, s (> 0).

    Returns
    -------
    float

    Examples
    --------
    One Lu-177 half-life (6.647 d, ICRP-107):

    >>> round(decay_factor(6.647 * 86400, 6.647 * 86400), 12)
    0.5

    """
    return math.exp(-math.log(2.0) * dt_s / half_life_s)


def _as_time(value: Any, *, file, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.strip())
        except ValueError:
            t = None
        if t is not None and t.tzinfo is None:
            return t
    raise InputError(f"must be an ISO 8601 local date-time (e.g. '2024-05-01T10:30:00'), got "
                     f"{value!r}", file=file, field=field)


def _half_life_s(volume: Volume, *, file) -> float:
    hl = volume.meta.get("radionuclide_half_life_s")
    if hl is not None:
        if isinstance(hl, bool) or not isinstance(hl, int | float) or not math.isfinite(hl) \
                or hl <= 0:
            raise InputError(f"must be a finite number > 0 s, got {hl!r}", file=file,
                             field="radionuclide_half_life_s")
    admin = volume.meta.get("administration")
    nuclide = volume.meta.get("nuclide") or (admin.nuclide if admin is not None else None)
    if hl is not None:
        from theradose.io._radiopharmaceutical import check_half_life

        check_half_life(float(hl), nuclide, file=file, field="radionuclide_half_life_s")
        return float(hl)
    if not nuclide:
        raise InputError("undoing the decay correction needs the half-life: no "
                         "RadionuclideHalfLife and no nuclide (add \"nuclide\" or "
                         "\"administration\" to the sidecar)", file=file,
                         field="radionuclide_half_life_s")
    from theradose.nuclides import get_nuclide

    return float(get_nuclide(nuclide, file=file, field="nuclide").half_life_h) * 3600.0


def undo_decay_correction(volume: Volume, *, file: str | Path | None = None) -> Volume:
    """The volume as activity at its acquisition start (DecayCorrection ``NONE``).

    A volume whose ``meta["decay_correction"]`` is ``START`` or ``ADMIN`` holds the activity
    concentration decay corrected to ``t_ref`` =
    ``meta["decay_correction_reference_time"]`` (series start for START, injection for ADMIN);
    the activity at the acquisition start ``t_acq`` (``volume.acquisition_time``) is

    ``C(t_acq) = C_ref · exp(-λ (t_acq - t_ref))``,  ``λ = ln 2 / T½``,

    with ``T½`` = ``meta["radionuclide_half_life_s"]`` (DICOM RadionuclideHalfLife, the value the
    scanner corrected with) or else the ICRP-107 half-life of the nuclide (``meta["nuclide"]`` or
    the administration's). Values and ``sigma`` are scaled by the same factor. A volume without
    decay correction (``NONE`` or no key) is returned unchanged.

    Parameters
    ----------
    volume : Volume
        Emission image (any unit: Bq/mL, counts, ...) carrying the ``meta`` keys above (set by
        :func:`read_nm` / :func:`read_pt`, or by a NIfTI sidecar).
    file : str or Path, optional
        File named in error messages (default: the volume's source file).

    Returns
    -------
    Volume
        ``meta["decay_correction"] = "NONE"``, ``meta["decay_correction_original"]`` the former
        value, ``meta["decay_correction_original_reference_time"]`` the former ``t_ref``,
        ``meta["decay_correction_reference_time"] = t_acq``,
        ``meta["decay_correction_undo_factor"]`` the factor applied; a line in ``history``.

    Raises
    ------
    InputError
        Unknown DecayCorrection; START or ADMIN without a reference time (for ADMIN the
        administration's injection time is used when ``decay_correction_reference_time`` is
        absent); no acquisition time; no half-life and no nuclide. Messages name the file and
        the field.

    References
    ----------
    DICOM PS3.3 C.8.9.1 (DecayCorrection); ICRP Publication 107 (2008),
    doi:10.1016/j.icrp.2008.10.004.

    Examples
    --------
    Lu-177 (T½ 159.528 h), ADMIN-corrected, acquired 24 h after the injection: the values are
    multiplied by ``2^(-24/159.528)`` = 0.9008.

    """
    file = file if file is not None else _file(volume)
    raw = volume.meta.get("decay_correction")
    dc = "NONE" if raw is None else str(raw).strip().upper() or "NONE"
    if dc not in DECAY_CORRECTIONS:
        raise InputError(f"{raw!r} not supported; accepted: {', '.join(DECAY_CORRECTIONS)}",
                         file=file, field="decay_correction")
    if dc == "NONE":
        return volume
    t_acq = volume.acquisition_time
    if t_acq is None:
        raise InputError(f"the image is decay corrected ({dc}) but has no acquisition time to "
                         "undo it to", file=file, field="acquisition_time")
    ref = volume.meta.get("decay_correction_reference_time")
    if ref is None and dc == "ADMIN":
        admin = volume.meta.get("administration")
        ref = admin.injection_time if admin is not None else None
    if ref is None:
        what = "the injection time (administration)" if dc == "ADMIN" else \
            "the series start the values are corrected to"
        raise InputError(f"DecayCorrection {dc} needs {what}; add "
                         "\"decay_correction_reference_time\" (ISO 8601) to the sidecar",
                         file=file, field="decay_correction_reference_time")
    ref = _as_time(ref, file=file, field="decay_correction_reference_time")
    half_life = _half_life_s(volume, file=file)
    dt_s = (t_acq - ref).total_seconds()
    f = decay_factor(dt_s, half_life)
    sigma = None if volume.sigma is None else volume.sigma * f
    meta = {**volume.meta, "decay_correction": "NONE", "decay_correction_original": dc,
            "decay_correction_original_reference_time": ref,
            "decay_correction_reference_time": t_acq, "decay_correction_undo_factor": f}
    return volume.replace(
        array=volume.array * f, sigma=sigma, meta=meta,
        note=f"decay correction {dc} undone: x exp(-ln2 x {dt_s:.6g} s / {half_life:.6g} s) = "
             f"x {f:.6g} (activity at the acquisition start {t_acq.isoformat()}, reference "
             f"{ref.isoformat()})")
