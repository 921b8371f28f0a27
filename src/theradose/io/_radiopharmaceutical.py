"""Nuclide names in DICOM, and the Radiopharmaceutical Information Sequence <-> Administration.

DICOM code meanings spell nuclides as ``"^177^Lutetium"`` (CID 18 / CID 4020, superscript mass
number between carets); vendors also write ``"Lutetium-177"``, ``"Lu-177"``, ``"177Lu"``,
``"LU177"``, ``"Tc99m"``. :func:`parse_nuclide_name` turns any of these into the ICRP-107
spelling (``"Lu-177"``, ``"Tc-99m"``).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from datetime import datetime, timedelta
from pathlib import Path

from theradose.errors import DicomTagError, TheradoseWarning, UnknownNuclideError
from theradose.io._administration import Administration
from theradose.io._dicom_common import dicom_datetime, format_dicom_datetime

__all__ = [
    "administration_from_dataset",
    "check_half_life",
    "half_life_s_of",
    "nuclide_code_meaning",
    "parse_nuclide_name",
    "radiopharmaceutical_item",
]

log = logging.getLogger("theradose")

# Elements Z = 1..100 (ICRP-107 covers H to Fm): symbol and English name.
_ELEMENTS = (
    "H Hydrogen He Helium Li Lithium Be Beryllium B Boron C Carbon N Nitrogen O Oxygen "
    "F Fluorine Ne Neon Na Sodium Mg Magnesium Al Aluminium Si Silicon P Phosphorus S Sulfur "
    "Cl Chlorine Ar Argon K Potassium Ca Calcium Sc Scandium Ti Titanium V Vanadium "
    "Cr Chromium Mn Manganese Fe Iron Co Cobalt Ni Nickel Cu Copper Zn Zinc Ga Gallium "
    "Ge Germanium As Arsenic Se Selenium Br Bromine Kr Krypton Rb Rubidium Sr Strontium "
    "Y Yttrium Zr Zirconium Nb Niobium Mo Molybdenum Tc Technetium Ru Ruthenium Rh Rhodium "
    "Pd Palladium Ag Silver Cd Cadmium In Indium Sn Tin Sb Antimony Te Tellurium I Iodine "
    "Xe Xenon Cs Caesium Ba Barium La Lanthanum Ce Cerium Pr Praseodymium Nd Neodymium "
    "Pm Promethium Sm Samarium Eu Europium Gd Gadolinium Tb Terbium Dy Dysprosium Ho Holmium "
    "Er Erbium Tm Thulium Yb Ytterbium Lu Lutetium Hf Hafnium Ta Tantalum W Tungsten "
    "Re Rhenium Os Osmium Ir Iridium Pt Platinum Au Gold Hg Mercury Tl Thallium Pb Lead "
    "Bi Bismuth Po Polonium At Astatine Rn Radon Fr Francium Ra Radium Ac Actinium Th Thorium "
    "Pa Protactinium U Uranium Np Neptunium Pu Plutonium Am Americium Cm Curium Bk Berkelium "
    "Cf Californium Es Einsteinium Fm Fermium"
).split()
_SYMBOLS = _ELEMENTS[0::2]
_NAMES = _ELEMENTS[1::2]
_Z_OF: dict[str, int] = {}
for _z, (_sym, _name) in enumerate(zip(_SYMBOLS, _NAMES, strict=True), start=1):
    _Z_OF[_sym.lower()] = _z
    _Z_OF[_name.lower()] = _z
_Z_OF.update({"aluminum": 13, "cesium": 55, "sulphur": 16})

# mass (+ optional isomer 'm') then element: 177Lu, 99mTc, ^177^Lutetium (carets removed)
_MASS_FIRST = re.compile(r"(?<![A-Za-z0-9])(\d{1,3})(m?)[\s\-_]*([A-Za-z]+)")
# element then mass: Lu-177, Lutetium-177, Tc99m, LU177
_ELEMENT_FIRST = re.compile(r"(?<![A-Za-z])([A-Za-z]+)[\s\-_]*(\d{1,3})(m?)(?![0-9A-Za-z])")


def _candidate(word: str, mass: str, isomer: str) -> tuple[str, int] | None:
    z = _Z_OF.get(word.lower())
    a = int(mass)
    # A mass number lies between Z and ~2.6 Z + 10 for every nuclide in ICRP-107; the bound
    # rejects look-alikes such as 'PSMA-617' or '617 In'.
    if z is None or not (z <= a <= 2.6 * z + 10):
        return None
    return f"{_SYMBOLS[z - 1]}-{a}{isomer}", z


def parse_nuclide_name(text: str | None) -> str | None:
    """ICRP-107 spelling of the nuclide named in free text, or None if none is recognised.

    Parameters
    ----------
    text : str
        A DICOM code meaning or free text: ``"^177^Lutetium"``, ``"Lutetium-177"``,
        ``"177Lu-PSMA-617"``, ``"LU177"``, ``"^99m^Technetium"``, ``"Tc99m MDP"``.

    Returns
    -------
    str or None
        ``"Lu-177"``, ``"Tc-99m"``, ...; the first nuclide in reading order.

    Examples
    --------
    >>> parse_nuclide_name("^177^Lutetium"), parse_nuclide_name("99mTc-MAA")
    ('Lu-177', 'Tc-99m')
    """
    if not text:
        return None
    s = str(text).replace("^", "")
    found: list[tuple[int, str]] = []
    for m in _MASS_FIRST.finditer(s):
        mass, iso, word = m.groups()
        c = _candidate(word, mass, iso)
        if c is None and iso:  # '99mo...' read as 99 + 'mo...'
            c = _candidate(iso + word, mass, "")
        if c is not None:
            found.append((m.start(), c[0]))
    for m in _ELEMENT_FIRST.finditer(s):
        word, mass, iso = m.groups()
        c = _candidate(word, mass, iso)
        if c is not None:
            found.append((m.start(), c[0]))
    return min(found)[1] if found else None


def nuclide_code_meaning(nuclide: str) -> str:
    """DICOM code meaning of a nuclide (CID 18 style): ``"Lu-177"`` -> ``"^177^Lutetium"``.

    Raises
    ------
    UnknownNuclideError
        If ``nuclide`` is not recognised.
    """
    name = parse_nuclide_name(nuclide)
    if name is None:
        raise UnknownNuclideError(f"cannot recognise a nuclide in {nuclide!r}; "
                                  "use e.g. 'Lu-177'", field="nuclide")
    sym, mass = name.split("-")
    return f"^{mass}^{_NAMES[_SYMBOLS.index(sym)]}"


def half_life_s_of(nuclide: str) -> float | None:
    """Half-life (s) from :mod:`theradose.nuclides` (ICRP-107), or None when unavailable."""
    try:
        from theradose.nuclides import get_nuclide
    except ImportError:  # pragma: no cover - the nuclides stage is part of the package
        return None
    try:
        return float(get_nuclide(nuclide).half_life_h) * 3600.0
    except UnknownNuclideError:
        return None


#: Largest relative difference between a file's half-life and ICRP-107's that is accepted.
#: Evaluated half-lives agree to < 0.1 % (Lu-177: 6.647 d in ICRP-107, 6.6443 d in NUBASE2020);
#: scanners store the library value. A larger gap is another nuclide or a unit slip (hours for
#: seconds), and it changes every decay correction exp(-ln2 dt / T½) made with it.
HALF_LIFE_RTOL = 0.01


def check_half_life(half_life_s: float | None, nuclide: str | None, *, file, field: str) -> None:
    """Error when ``half_life_s`` differs from ICRP-107's for ``nuclide`` by > 1 %.

    Raises
    ------
    DicomTagError
        Naming ``field`` and both values (nothing is checked when either is unknown).
    """
    if half_life_s is None or not nuclide:
        return
    ref = half_life_s_of(nuclide)
    if ref is None or abs(half_life_s / ref - 1.0) <= HALF_LIFE_RTOL:
        return
    raise DicomTagError(f"{half_life_s:g} s contradicts the {nuclide} half-life of {ref:g} s "
                        f"({ref / 3600:.4g} h, ICRP-107) by {abs(half_life_s / ref - 1):.1%} "
                        f"(> {HALF_LIFE_RTOL:.0%}); it would change the decay corrections. Fix "
                        "the value or the nuclide", file=file, field=field)


def resolve_override(nuclide: str) -> str:
    """Normalise a user-supplied ``nuclide=`` argument (raises UnknownNuclideError)."""
    name = parse_nuclide_name(nuclide)
    if name is not None:
        return name
    try:
        from theradose.nuclides import get_nuclide
    except ImportError:  # pragma: no cover
        get_nuclide = None
    if get_nuclide is not None:
        return get_nuclide(nuclide, field="nuclide").name
    raise UnknownNuclideError(f"cannot recognise a nuclide in {nuclide!r}; use e.g. 'Lu-177'",
                              field="nuclide")


def _text(ds, keyword: str) -> str:
    v = ds.get(keyword)
    return "" if v is None else str(v).strip()


def _ds_number(item, keyword: str, file: str | Path) -> float | None:
    """A DS attribute as a finite float; None when absent or empty.

    Raises
    ------
    DicomTagError
        For a value that is not a number (pydicom raises ``ValueError`` on access) or is NaN
        or infinite.
    """
    try:
        value = item.get(keyword)
    except (ValueError, TypeError, OverflowError) as exc:
        raw = item.get_item(keyword)
        shown = getattr(raw, "value", raw)
        if isinstance(shown, bytes):
            shown = shown.decode("latin-1", "replace").strip()
        raise DicomTagError(f"not a decimal number (DS), got {shown!r}", file=file,
                            field=keyword) from exc
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (ValueError, TypeError, OverflowError):
        raise DicomTagError(f"not a decimal number (DS), got {value!r}", file=file,
                            field=keyword) from None
    if not math.isfinite(number):
        raise DicomTagError(f"must be a finite number, got {value!r}", file=file, field=keyword)
    return number


def administration_from_dataset(ds, *, file: str | Path, nuclide: str | None = None,
                                reference_date: str | None = None,
                                scan_time: datetime | None = None
                                ) -> tuple[Administration | None, float | None]:
    """Read the first item of RadiopharmaceuticalInformationSequence.

    Parameters
    ----------
    ds : pydicom.Dataset
    file : str or Path
        Named in messages.
    nuclide : str, optional
        Overrides the nuclide in the file.
    reference_date : str, optional
        DICOM DA used with RadiopharmaceuticalStartTime when there is no
        RadiopharmaceuticalStartDateTime (SeriesDate, as in the QIBA SUV pseudo-code).
    scan_time : datetime, optional
        Acquisition start: an injection *time* that would fall after it on ``reference_date`` is
        taken to be on the previous day (injection before midnight), with a warning.

    Returns
    -------
    administration : Administration or None
        None (with a warning naming what is missing) when nuclide, activity or time is missing.
    half_life_s : float or None
        RadionuclideHalfLife (s), if present.
    """
    override = resolve_override(nuclide) if nuclide is not None else None
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        if override is not None:
            warnings.warn(str(DicomTagError(
                "absent; nuclide= given but no injected activity or time to build an "
                "administration from", file=file, field="RadiopharmaceuticalInformationSequence")),
                TheradoseWarning, stacklevel=2)
        else:
            log.info("%s: no RadiopharmaceuticalInformationSequence", file)
        return None, None
    item = seq[0]
    if len(seq) > 1:
        warnings.warn(str(DicomTagError(f"{len(seq)} items; the first is used", file=file,
                                        field="RadiopharmaceuticalInformationSequence")),
                      TheradoseWarning, stacklevel=2)
    half_life = _ds_number(item, "RadionuclideHalfLife", file)
    if half_life is not None and not half_life > 0:
        raise DicomTagError(f"must be > 0 s, got {half_life!r}", file=file,
                            field="RadionuclideHalfLife")

    # --- nuclide
    texts = []
    code = item.get("RadionuclideCodeSequence")
    if code:
        texts += [_text(code[0], "CodeMeaning"), _text(code[0], "CodeValue")]
    texts += [_text(item, "Radiopharmaceutical"), _text(item, "Radionuclide")]
    rcode = item.get("RadiopharmaceuticalCodeSequence")
    if rcode:
        texts.append(_text(rcode[0], "CodeMeaning"))
    name = override
    if name is None:
        name = next((n for n in map(parse_nuclide_name, texts) if n), None)
    check_half_life(half_life, name, file=file, field="RadionuclideHalfLife")

    # --- activity (Bq in DICOM)
    dose_mbq = None
    dose_bq = _ds_number(item, "RadionuclideTotalDose", file)
    if dose_bq is not None and dose_bq < 0:
        raise DicomTagError(f"must be >= 0 Bq, got {dose_bq:g} (an injected activity cannot be "
                            "negative)", file=file, field="RadionuclideTotalDose")
    if dose_bq == 0:
        warnings.warn(str(DicomTagError(
            "0 Bq: treated as missing (the activity must come from another time point, the "
            "sidecar or injected_activity_mbq)", file=file, field="RadionuclideTotalDose")),
            TheradoseWarning, stacklevel=2)
    if dose_bq is not None:
        if dose_bq > 0:
            dose_mbq = dose_bq / 1e6
            if dose_bq < 1e4:
                warnings.warn(str(DicomTagError(
                    f"{dose_bq:g} Bq is implausibly small; DICOM stores Bq (is it MBq?)",
                    file=file, field="RadionuclideTotalDose")), TheradoseWarning, stacklevel=2)

    # --- injection time
    start = None
    if _text(item, "RadiopharmaceuticalStartDateTime"):
        start = dicom_datetime(_text(item, "RadiopharmaceuticalStartDateTime"), None, file=file,
                               field="RadiopharmaceuticalStartDateTime")
    elif _text(item, "RadiopharmaceuticalStartTime") and reference_date:
        start = dicom_datetime(reference_date, _text(item, "RadiopharmaceuticalStartTime"),
                               file=file, field="RadiopharmaceuticalStartTime")
        if scan_time is not None and start > scan_time:
            start -= timedelta(days=1)
            warnings.warn(str(DicomTagError(
                "injection time of day is after the scan start on the series date; taken to be "
                "on the previous day (no RadiopharmaceuticalStartDateTime)", file=file,
                field="RadiopharmaceuticalStartTime")), TheradoseWarning, stacklevel=2)

    missing = [k for k, v in (("nuclide (RadionuclideCodeSequence)", name),
                              ("RadionuclideTotalDose", dose_mbq),
                              ("RadiopharmaceuticalStartDateTime/StartTime", start)) if v is None]
    if missing:
        seen = "; texts seen: " + ", ".join(repr(t) for t in texts if t) if name is None else ""
        warnings.warn(str(DicomTagError(
            f"administration not read, missing or unrecognised: {', '.join(missing)}{seen}; "
            "pass it separately (nuclide= for the nuclide)", file=file,
            field="RadiopharmaceuticalInformationSequence")), TheradoseWarning, stacklevel=2)
        return None, half_life
    text = _text(item, "Radiopharmaceutical") or (_text(rcode[0], "CodeMeaning") if rcode else "")
    return Administration(name, dose_mbq, start, text), half_life


def radiopharmaceutical_item(administration: Administration, *, half_life_s: float | None = None):
    """A RadiopharmaceuticalInformationSequence item for ``administration`` (pydicom Dataset).

    The nuclide is coded with a private scheme (``99THERADOSE``, code value = ICRP-107 name) and
    the CID 18 style code meaning (``^177^Lutetium``); activity in Bq; start as DT and TM.
    """
    from pydicom.dataset import Dataset
    from pydicom.valuerep import DSfloat

    item = Dataset()
    item.Radiopharmaceutical = administration.radiopharmaceutical[:64]
    da, tm = format_dicom_datetime(administration.injection_time)
    item.RadiopharmaceuticalStartTime = tm
    item.RadiopharmaceuticalStartDateTime = da + tm
    item.RadionuclideTotalDose = DSfloat(administration.injected_activity_mbq * 1e6,
                                         auto_format=True)
    if half_life_s is not None:
        item.RadionuclideHalfLife = DSfloat(half_life_s, auto_format=True)
    code = Dataset()
    code.CodeValue = administration.nuclide
    code.CodingSchemeDesignator = "99THERADOSE"
    code.CodeMeaning = nuclide_code_meaning(administration.nuclide)
    item.RadionuclideCodeSequence = [code]
    return item
