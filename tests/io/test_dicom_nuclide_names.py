"""Nuclide names as DICOM and vendors write them -> ICRP-107 spelling."""

import pytest

from theradose.errors import UnknownNuclideError
from theradose.io import parse_nuclide_name
from theradose.io._radiopharmaceutical import nuclide_code_meaning, resolve_override


# Independent reference: DICOM PS3.16 CID 18 "Isotopes in Radiopharmaceuticals" and CID 4020
# "PET Radionuclide" code meanings (superscript mass number between carets, e.g. "^177^Lutetium",
# "^99m^Technetium", "^18^Fluorine"); the other spellings are vendor/free-text variants.
@pytest.mark.parametrize(("text", "expected"), [
    ("^177^Lutetium", "Lu-177"),
    ("Lutetium-177", "Lu-177"),
    ("177Lu-PSMA-617", "Lu-177"),
    ("LU177", "Lu-177"),
    ("Lu-177 DOTATATE", "Lu-177"),
    ("lutetium 177", "Lu-177"),
    ("^99m^Technetium", "Tc-99m"),
    ("Tc99m MDP", "Tc-99m"),
    ("99mTc-MAA", "Tc-99m"),
    ("^18^Fluorine", "F-18"),
    ("Fluorodeoxyglucose F^18^", "F-18"),
    ("Ga-68 PSMA-11", "Ga-68"),
    ("^131^Iodine", "I-131"),
    ("Yttrium-90 microspheres", "Y-90"),
    ("90Y", "Y-90"),
    ("In-111 pentetreotide", "In-111"),
    ("^225^Actinium", "Ac-225"),
    ("Cesium-137", "Cs-137"),
])
def test_parse_known_spellings(text, expected):
    assert parse_nuclide_name(text) == expected


@pytest.mark.parametrize("text", [None, "", "PSMA-617", "Sodium Iodide", "FDG", "DOTATATE 68"])
def test_parse_returns_none_without_a_nuclide(text):
    # 'PSMA-617': not an element; 'DOTATATE 68': no element next to the number.
    assert parse_nuclide_name(text) is None


def test_code_meaning_round_trip():
    # CID 18 style: mass between carets, then the English element name.
    assert nuclide_code_meaning("Lu-177") == "^177^Lutetium"
    assert nuclide_code_meaning("Tc-99m") == "^99m^Technetium"
    for name in ("Lu-177", "Tc-99m", "F-18", "Ga-68", "Y-90", "I-131", "Ac-225"):
        assert parse_nuclide_name(nuclide_code_meaning(name)) == name
    with pytest.raises(UnknownNuclideError, match=r"^nuclide: cannot recognise a nuclide in "):
        nuclide_code_meaning("PSMA")


def test_override_normalised_or_refused():
    assert resolve_override("lu177") == "Lu-177"
    with pytest.raises(UnknownNuclideError, match=r"^nuclide: .*'Xx-999'"):
        resolve_override("Xx-999")
