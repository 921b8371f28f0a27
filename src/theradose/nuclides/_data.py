"""Reading the ICRP-107 emission files of ``icrp107-database`` and resolving nuclide names.

The package ships one JSON file per nuclide, ``icrp107_database/icrp107/<Name>.json``, whose
content is a JSON *string* holding the record (``json.loads(json.load(f))``): ``name``,
``half_life``, ``time_unit`` and ``emissions``, a mapping of ICRP-107 radiation class to a list of
``[energy MeV, yield per decay]`` pairs (``b-spectra``: ``[energy MeV, particles per MeV per
decay]`` points of the beta spectrum).

References
----------
ICRP, 2008. Nuclear Decay Data for Dosimetric Calculations. ICRP Publication 107.
Ann. ICRP 38(3). doi:10.1016/j.icrp.2008.10.004
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache, lru_cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from theradose.errors import UnknownNuclideError, UnreadableFileError

#: Hours per ICRP-107 time unit. ICRP-107 (and radioactivedecay, which uses the same data) take
#: a year of 365.2422 d; with it the half-lives of all 1252 nuclides agree with radioactivedecay.
HOURS_PER_UNIT: dict[str, float] = {
    "us": 1e-6 / 3600.0,
    "ms": 1e-3 / 3600.0,
    "s": 1.0 / 3600.0,
    "m": 1.0 / 60.0,
    "h": 1.0,
    "d": 24.0,
    "y": 365.2422 * 24.0,
}

#: ICRP-107 radiation classes carried as discrete records ([energy, yield] pairs).
EMISSION_CLASSES: tuple[str, ...] = (
    "alpha",
    "alpha recoil",
    "beta-",
    "beta+",
    "betaD",
    "IE",
    "auger",
    "gamma",
    "X",
    "annihilation",
    "neutron",
    "fission",
)

_NAME_RE = re.compile(r"^([A-Z][a-z]?)-(\d{1,3})([mn]?)$")


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - both are hard dependencies
        return "unknown"


def _data_dir() -> Path:
    return Path(str(resources.files("icrp107_database") / "icrp107"))


@lru_cache(maxsize=1)
def data_source() -> str:
    """Where the nuclear data come from, with package versions (for provenance).

    Returns
    -------
    str
        E.g. ``"ICRP Publication 107 (2008) via icrp107-database 0.0.3; chains:
        radioactivedecay 0.6.1 (ICRP-107 decay data)"``.
    """
    return (
        f"ICRP Publication 107 (2008) via icrp107-database {_pkg_version('icrp107-database')}; "
        f"chains: radioactivedecay {_pkg_version('radioactivedecay')} (ICRP-107 decay data)"
    )


def _sort_key(name: str) -> tuple[str, int, str]:
    m = _NAME_RE.match(name)
    if m is None:  # pragma: no cover - every ICRP-107 file name matches
        return (name, 0, "")
    return (m.group(1), int(m.group(2)), m.group(3))


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    return tuple(sorted((p.stem for p in _data_dir().glob("*.json")), key=_sort_key))


@lru_cache(maxsize=1)
def _name_set() -> frozenset[str]:
    return frozenset(_names())


def list_nuclides() -> list[str]:
    """Names of all nuclides in ICRP-107, e.g. ``"Lu-177"``, ``"Tc-99m"``, ``"Bi-212n"``.

    Returns
    -------
    list of str
        1252 names sorted by element symbol, mass number and isomer suffix.
    """
    return list(_names())


def _candidates(text: str) -> list[str]:
    """Canonical spellings ``"Xx-NNN[m|n]"`` that ``text`` may stand for, most likely first."""
    s = re.sub(r"[\s_\-]+", "", text.strip())
    out: list[str] = []
    m = re.fullmatch(r"([A-Za-z]{1,2})(\d{1,3})([mMnN]?)", s)  # Lu177, Tc99m
    if m:
        out.append(f"{m.group(1).capitalize()}-{m.group(2)}{m.group(3).lower()}")
    m = re.fullmatch(r"(\d{1,3})([A-Za-z]{1,3})", s)  # 177Lu, 99mTc, 54Mn
    if m:
        mass, letters = m.groups()
        if len(letters) <= 2:
            out.append(f"{letters.capitalize()}-{mass}")
        if len(letters) >= 2 and letters[0] in "mMnN":
            out.append(f"{letters[1:].capitalize()}-{mass}{letters[0].lower()}")
    return out


def resolve_name(
    name: object, *, field: str = "nuclide", file: str | Path | None = None
) -> str:
    """Return the ICRP-107 spelling of a nuclide name.

    Parameters
    ----------
    name : str
        ``"Lu-177"``, ``"Lu177"``, ``"177Lu"``, ``"lu-177"``, ``"Tc-99m"``, ``"99mTc"``, ...
    field, file : str, optional
        Named in the error message (e.g. the JSON key and sidecar file the name came from).

    Returns
    -------
    str
        The canonical name, e.g. ``"Tc-99m"``.

    Raises
    ------
    UnknownNuclideError
        If the name is not in ICRP-107; the message suggests close names ("did you mean ...?").
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownNuclideError(
            f"expected a nuclide name such as 'Lu-177', got {name!r}", file=file, field=field
        )
    known = _name_set()
    cands = _candidates(name)
    for cand in cands:
        if cand in known:
            return cand
    guess = cands[0] if cands else name.strip()
    close = difflib.get_close_matches(guess, _names(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see list_nuclides()"
    raise UnknownNuclideError(
        f"unknown nuclide {name!r}: not in ICRP-107 (spellings accepted: 'Lu-177', 'Lu177', "
        f"'177Lu', 'Tc-99m', '99mTc'); {hint}",
        file=file,
        field=field,
    )


@cache
def read_record(name: str) -> dict[str, Any]:
    """Parsed ICRP-107 record of a canonical name (cached; callers must not modify it).

    Raises
    ------
    UnreadableFileError
        If the package's file cannot be read or parsed.
    """
    path = _data_dir() / f"{name}.json"
    try:
        with open(path, encoding="utf-8") as f:
            record = json.loads(json.load(f))
        half_life = float(record["half_life"])
        unit = str(record["time_unit"])
        emissions = record["emissions"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableFileError(
            f"cannot read ICRP-107 record ({type(exc).__name__}: {exc}); reinstall "
            "icrp107-database",
            file=path,
            field="emissions",
        ) from exc
    if unit not in HOURS_PER_UNIT:
        raise UnreadableFileError(
            f"time unit {unit!r} not understood; accepted: {', '.join(HOURS_PER_UNIT)}",
            file=path,
            field="time_unit",
        )
    return {"name": name, "half_life": half_life, "time_unit": unit, "emissions": emissions,
            "path": str(path)}
