"""Body-weight SUV (SUVbw) of activity-concentration images, after the QIBA vendor-neutral rule.

References
----------
QIBA FDG-PET/CT Technical Committee, "Vendor-neutral pseudo-code for SUV calculation"
(QIBA wiki, "Standardized Uptake Value (SUV)", 2014-2019), with the decay-correction reference
time chosen as in its pseudo-code. Kinahan P.E., Fletcher J.W., "PET/CT standardized uptake
values (SUVs) in clinical practice and assessing response to therapy", Semin. Ultrasound CT MR
31 (2010) 496-505, doi:10.1053/j.sult.2010.10.001.
"""

from __future__ import annotations

from theradose.errors import InputError, TimeOrderError, UnitError
from theradose.io._decay import decay_factor
from theradose.io._radiopharmaceutical import half_life_s_of
from theradose.volume import Volume

__all__ = ["suv_bw_factor", "to_suv"]


def _file(volume: Volume) -> str | None:
    files = volume.meta.get("source_files") or []
    return files[0] if files else None


def suv_bw_factor(volume: Volume) -> float:
    """Factor that turns the volume's activity concentration into SUVbw.

    ``SUVbw = C * weight_g / (A_inj[Bq] * exp(-ln2 * Δt / T½))``, where Δt runs from the start of
    the injection to the time the image is decay corrected to
    (``meta["decay_correction_reference_time"]``: SeriesTime for DecayCorrection START when it is
    not after the earliest AcquisitionTime, else the earliest AcquisitionTime; 0 for ADMIN; the
    acquisition start for non-decay-corrected NM) and T½ is RadionuclideHalfLife (or ICRP-107
    for the administration's nuclide).

    Parameters
    ----------
    volume : Volume
        An activity-concentration image (Bq/mL, kBq/mL, ...) read by :func:`read_pt` or
        :func:`read_nm`, or one carrying the same ``meta`` keys (``patient_weight_kg``,
        ``administration``, ``decay_correction``, ``decay_correction_reference_time``,
        ``radionuclide_half_life_s``).

    Returns
    -------
    float
        g/mL per unit of ``volume.unit`` (per Bq/mL for a Bq/mL image).

    Raises
    ------
    UnitError
        If the volume is not an activity concentration.
    InputError
        Missing PatientWeight or administration, a PT image without decay correction
        (QIBA: not defined), a reference time before the injection, an unknown half-life.

    Examples
    --------
    70 kg, 370 MBq of F-18 (T½ 6586.2 s) injected 1 h before the series start:
    70000 / (370e6 × 2^(-3600/6586.2)) = 2.7634e-4 g/mL per Bq/mL.
    """
    info = volume.unit_info
    file = _file(volume)
    if info.dimension != "activity_concentration":
        raise UnitError(f"SUV needs an activity concentration (Bq/mL), got {volume.unit}",
                        file=file, field="unit")
    meta = volume.meta
    weight = meta.get("patient_weight_kg")
    if weight is None or not weight > 0:
        raise InputError("patient weight is missing or 0; SUVbw needs it (set "
                         "meta['patient_weight_kg'])", file=file, field="PatientWeight")
    admin = meta.get("administration")
    if admin is None:
        raise InputError("no administration (nuclide, injected activity, injection time); SUV "
                         "needs it", file=file, field="RadiopharmaceuticalInformationSequence")
    dc = meta.get("decay_correction") or "NONE"
    if dc == "ADMIN":
        decay = 1.0
    else:
        if dc == "NONE" and volume.modality == "PT":
            raise InputError("NONE: PET not decay corrected; the QIBA SUV rule is defined for "
                             "START or ADMIN only", file=file, field="DecayCorrection")
        ref = meta.get("decay_correction_reference_time") or volume.acquisition_time
        if ref is None:
            raise InputError("no reference time for decay (series or acquisition time)",
                             file=file, field="SeriesTime")
        dt_s = (ref - admin.injection_time).total_seconds()
        if dt_s < 0:
            raise TimeOrderError(
                f"injection at {admin.injection_time.isoformat()} is after the decay-correction "
                f"reference time {ref.isoformat()}", file=file,
                field="RadiopharmaceuticalStartDateTime")
        half_life = meta.get("radionuclide_half_life_s") or half_life_s_of(admin.nuclide)
        if not half_life:
            raise InputError(f"half-life of {admin.nuclide!r} unknown (no RadionuclideHalfLife,"
                             " not in ICRP-107)", file=file, field="RadionuclideHalfLife")
        decay = decay_factor(dt_s, half_life)
    per_bq_ml = weight * 1000.0 / (admin.injected_activity_mbq * 1e6 * decay)
    return per_bq_ml * info.to_base


def to_suv(volume: Volume) -> Volume:
    """The volume as SUVbw (unit ``g/mL``); see :func:`suv_bw_factor`.

    Returns
    -------
    Volume
        Values and ``sigma`` scaled by the factor; ``meta["suv_bw_factor"]`` holds it
        (g/mL per unit of the input).
    """
    f = suv_bw_factor(volume)
    sigma = None if volume.sigma is None else volume.sigma * f
    return volume.replace(array=volume.array * f, sigma=sigma, unit="g/mL",
                          meta={**volume.meta, "suv_bw_factor": f},
                          note=f"SUVbw (QIBA): x {f:.6g} g/mL per {volume.unit}")
