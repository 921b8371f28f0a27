"""Organ S-value doses per VOI: VOIs that share an S-value organ (left/right kidney) each get
the dose of their own TIA and mass.

References: the MIRD schema on the organ (``theradose.dose.mc.organ_doses``, tested against its
own references) for the pair; local deposition ``D = Ã·Δ_e/m`` (Δ_e: ICRP-107 electron energy
per decay of Lu-177, 147.92 keV, via icrp107-database) for the electron self-dose; energy
conservation (the mass-weighted mean of the parts' doses is the organ's dose for a uniform TIA
per gram).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from theradose.dose.mc import organ_doses
from theradose.nuclides import get_nuclide
from theradose.pipeline._dose import SVALUE_ORGAN, organ_svalue_doses

KEV_TO_J = 1.602176634e-16  # J per keV (CODATA exact)
TOTAL = 40000.0  # MBq·h imaged in the field of view
LIVER = {"liver": (3000.0, 120.0)}
LIVER_M = {"liver": 1750.0}


def _pair(tia_kidneys: float, m_kidneys: float, sd: float = 0.0):
    """Dose to the organ 'kidneys' from the S-value organ alone (old pair dose)."""
    doses, _ = organ_svalue_doses({"kidneys": (tia_kidneys, sd), **LIVER},
                                  {"kidneys": m_kidneys, **LIVER_M}, TOTAL, "Lu-177",
                                  "adult_male")
    return doses["kidneys"]


def test_single_organ_voi_is_the_mird_organ_dose():
    # a VOI that is its organ alone: exactly organ_doses on the organs (+ remainder)
    doses, info = organ_svalue_doses({"kidneys": (1200.0, 60.0), **LIVER},
                                     {"kidneys": 290.0, **LIVER_M}, TOTAL, "Lu-177",
                                     "adult_male")
    ref = organ_doses({"kidneys": 1200.0, "liver": 3000.0, "remainder": TOTAL - 4200.0},
                      "Lu-177", "adult_male", masses_g={"kidneys": 290.0, "liver": 1750.0},
                      tia_sigma={"kidneys": 60.0, "liver": 120.0})
    assert doses["kidneys"] == pytest.approx(ref.dose("kidneys"), rel=1e-12)
    assert info["vois"]["kidneys"]["basis"] == "organ"
    assert info["shared_organs"] == {}


def test_equal_tia_per_gram_and_equal_masses_give_the_pair_dose():
    # uniform TIA per gram over two equal kidneys: each kidney's mean dose is the pair's
    doses, info = organ_svalue_doses(
        {"kidney_left": (700.0, 0.0), "kidney_right": (700.0, 0.0), **LIVER},
        {"kidney_left": 150.0, "kidney_right": 150.0, **LIVER_M}, TOTAL, "Lu-177",
        "adult_male")
    pair = _pair(1400.0, 300.0)
    for k in ("kidney_left", "kidney_right"):
        assert doses[k][0] == pytest.approx(pair[0], rel=1e-12)
        assert doses[k][1] == pytest.approx(pair[1], rel=1e-9)  # same S statistics
        assert info["vois"][k]["basis"] == "voi"
    assert info["shared_organs"]["kidneys"]["vois"] == ["kidney_left", "kidney_right"]
    json.dumps(info)  # results.json-ready


def test_unequal_masses_conserve_energy_for_uniform_tia_per_gram():
    # C = 5 MBq·h/g in a 120 g and a 185 g kidney: Σ m_k D_k / M = pair dose (exact by
    # construction of the photon cross S); each kidney within the photon share of the pair dose
    m = {"kidney_left": 120.0, "kidney_right": 185.0}
    tia = {k: (5.0 * v, 0.0) for k, v in m.items()}
    doses, _ = organ_svalue_doses({**tia, **LIVER}, {**m, **LIVER_M}, TOTAL, "Lu-177",
                                  "adult_male")
    big_m = sum(m.values())
    pair = _pair(5.0 * big_m, big_m)[0]
    mean = sum(m[k] * doses[k][0] for k in m) / big_m
    assert mean == pytest.approx(pair, rel=1e-12)
    # photons carry 35 of 183 keV per decay and kidneys absorb ~10 % of them: the kidneys
    # differ from the pair by well under 1 %; the heavier one keeps more of its photons
    for k in m:
        assert doses[k][0] == pytest.approx(pair, rel=0.01)
    assert doses["kidney_right"][0] > doses["kidney_left"][0]


def test_twice_the_concentration_gives_twice_the_self_dose():
    doses, info = organ_svalue_doses(
        {"kidney_left": (1000.0, 40.0), "kidney_right": (500.0, 25.0), **LIVER},
        {"kidney_left": 150.0, "kidney_right": 150.0, **LIVER_M}, TOTAL, "Lu-177",
        "adult_male")
    v = info["vois"]
    assert v["kidney_left"]["self_gy"] == pytest.approx(2.0 * v["kidney_right"]["self_gy"],
                                                        rel=1e-12)
    # cross-dose between kidneys runs the other way (twice as much into the right kidney),
    # the dose from the other sources is the same for both
    assert v["kidney_right"]["from_organ_vois_gy"] == pytest.approx(
        2.0 * v["kidney_left"]["from_organ_vois_gy"], rel=1e-12)
    assert v["kidney_left"]["from_other_sources_gy"] == v["kidney_right"]["from_other_sources_gy"]
    for k in ("kidney_left", "kidney_right"):
        parts = v[k]["self_gy"] + v[k]["from_organ_vois_gy"] + v[k]["from_other_sources_gy"]
        assert doses[k][0] == pytest.approx(parts, rel=1e-12)
    # total dose ~2x (self-dose dominates for Lu-177: cross terms are < 2 % here)
    assert doses["kidney_left"][0] / doses["kidney_right"][0] == pytest.approx(2.0, rel=0.02)
    # before: both got the pair dose (1500 MBq·h over 300 g), i.e. 1.33x / 0.67x of the truth
    pair = _pair(1500.0, 300.0)[0]
    assert doses["kidney_left"][0] == pytest.approx(pair * 4 / 3, rel=0.02)


def test_electron_self_dose_is_local_deposition_with_the_voi_mass():
    # D_e = Ã·3.6e9 decays/(MBq·h)·Δ_e·(J/keV)/m, Δ_e = 147.92 keV (ICRP-107)
    d_e = get_nuclide("Lu-177").energy_per_decay_kev.electron
    tia = {"kidney_left": (800.0, 0.0), "kidney_right": (300.0, 0.0)}
    m = {"kidney_left": 135.0, "kidney_right": 160.0}
    _, info = organ_svalue_doses(tia, m, TOTAL, "Lu-177", "adult_male")
    rec = info["shared_organs"]["kidneys"]
    big_m = rec["organ_mass_g"]
    assert big_m == pytest.approx(295.0)
    for k in tia:
        r = big_m / m[k]
        photon = tia[k][0] * 3600 * rec["s_photon_self_mgy_per_mbq_s"] * r ** (2 / 3) * 1e-3
        electron = info["vois"][k]["self_gy"] - photon
        hand = tia[k][0] * 3.6e9 * d_e * KEV_TO_J / (m[k] * 1e-3)
        assert electron == pytest.approx(hand, rel=1e-5)  # table stores 6 digits
        # photon self absorbed fraction of a ~150 g organ at 113/208 keV: ~5-15 % of 35 keV
        assert 0.01 < photon / electron < 0.05


def test_four_salivary_glands_and_missing_masses():
    glands = ["parotid_gland_left", "parotid_gland_right", "submandibular_gland_left",
              "submandibular_gland_right"]
    assert {SVALUE_ORGAN[g] for g in glands} == {"salivary_glands"}
    m = dict(zip(glands, (25.0, 25.0, 25.0, 25.0), strict=True))
    doses, info = organ_svalue_doses({g: (80.0, 4.0) for g in glands}, m, TOTAL, "Lu-177",
                                     "adult_male")
    organ, _ = organ_svalue_doses({"salivary_glands": (320.0, 8.0)},
                                  {"salivary_glands": 100.0}, TOTAL, "Lu-177", "adult_male")
    for g in glands:
        assert doses[g][0] == pytest.approx(organ["salivary_glands"][0], rel=1e-12)
    assert info["shared_organs"]["salivary_glands"]["s_photon_cross_between_vois_mgy_per_mbq_s"] \
        > 0
    # a VOI without mass: the organ's dose for each VOI, and it says so
    doses, info = organ_svalue_doses({"kidney_left": (700.0, 0.0), "kidney_right": (300.0, 0.0)},
                                     {"kidney_left": 150.0}, TOTAL, "Lu-177", "adult_male")
    assert doses["kidney_left"] == doses["kidney_right"]
    assert info["vois"]["kidney_right"]["basis"] == "organ (shared, VOI masses missing)"


def test_sigma_includes_each_voi_tia_sigma():
    tia = {"kidney_left": (1000.0, 100.0), "kidney_right": (1000.0, 0.0)}
    m = {"kidney_left": 150.0, "kidney_right": 150.0}
    doses, info = organ_svalue_doses(tia, m, TOTAL, "Lu-177", "adult_male")
    s_self = info["vois"]["kidney_left"]["s_self_mgy_per_mbq_s"]
    tia_part = s_self * 100.0 * 3600 * 1e-3  # S·σ_Ã, Gy
    assert doses["kidney_left"][1] >= tia_part
    assert doses["kidney_left"][1] == pytest.approx(tia_part, rel=0.05)  # S σ is small
    assert doses["kidney_right"][1] < 0.05 * tia_part  # only the cross term sees σ_left
    assert np.isfinite(doses["kidney_right"][1])


@pytest.mark.slow
def test_pipeline_reports_each_kidney_from_its_own_tia(pipeline_run):
    # virtual patient through run_pipeline (tests/pipeline/conftest.py): each kidney's S-value
    # dose is its own electron self-dose Ã_k·Δ_e/m_k (ICRP-107 Δ_e = 147.92 keV, local) plus
    # photons: its own self-absorbed photons (~2 %) and the cross-dose (< 1 %); the pair dose
    # given to both kidneys before was off by -9 % / +17 % here (TIA per gram 45 vs 35 MBq·h/g)
    _, _, res = pipeline_run
    eng = res["dose_engines"]["organ_svalues"]
    d_e = get_nuclide("Lu-177").energy_per_decay_kev.electron
    for k in ("kidney_left", "kidney_right"):
        v = res["vois"][k]
        assert eng["vois"][k]["basis"] == "voi" and eng["vois"][k]["svalue_organ"] == "kidneys"
        assert eng["vois"][k]["mass_g"] == pytest.approx(v["mass_g"], rel=1e-9)
        tia = v["tia_mbq_h"]["value"]
        assert eng["vois"][k]["tia_mbq_h"] == pytest.approx(tia, rel=1e-9)
        hand = tia * 3.6e9 * d_e * KEV_TO_J / (v["mass_g"] * 1e-3)
        assert 1.01 < v["dose_gy"]["organ_svalues"]["value"] / hand < 1.05, k
    assert "kidneys" in eng["shared_organs"]
