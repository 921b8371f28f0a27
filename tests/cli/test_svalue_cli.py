"""``theradose svalue``: JSON document, one-line text, errors (exit status 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import theradose.cli._svalue  # noqa: F401  (registers the command)
from theradose.cli._main import main
from theradose.dose.mc import _svalues as sv
from theradose.dose.mc._svalues import SValueTable

# ICRP-107 electron energy per decay of Lu-177, keV (theradose nuclide Lu-177 --json)
LU177_E_KEV = 147.92313516289383
# keV/g per decay -> mGy/(MBq s): 1.602176634e-16 J / 1e-3 kg * 1e6 /s * 1e3 mGy/Gy
K_HAND = 1.602176634e-16 / 1e-3 * 1e6 * 1e3


@pytest.fixture
def tables(tmp_path, monkeypatch):
    """A two-organ table (kidneys 300 g, liver 1800 g) as the packaged adult_male Lu-177 data."""
    organs = ("kidneys", "liver")
    e = np.diag([LU177_E_KEV * K_HAND / 300.0, LU177_E_KEV * K_HAND / 1800.0])
    p = np.array([[2.0e-6, 1.0e-7], [1.0e-7, 5.0e-7]])
    tab = SValueTable("adult_male", "Lu-177", organs, e, np.zeros((2, 2)), p, 0.02 * p,
                      {"kidneys": 300.0, "liver": 1800.0}, {"kidneys": 300.0, "liver": 1800.0},
                      {"electron": LU177_E_KEV, "alpha": 0.0, "photon": 35.1},
                      provenance={"code_version": "test"})
    d = tmp_path / "svalues"
    tab.to_json(d / "adult_male_Lu-177.json")
    monkeypatch.setattr(sv, "_data_dir", lambda: d)
    sv._load_cached.cache_clear()
    yield tab
    sv._load_cached.cache_clear()


def test_svalue_json(tables, capsys):
    argv = ["svalue", "--nuclide", "Lu-177", "--phantom", "adult_male", "--source", "kidneys",
            "--target", "kidneys", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"s_value_mgy_per_mbq_s", "source_mass_g", "target_mass_g",
                        "sigma_mgy_per_mbq_s", "nuclide", "phantom", "provenance"}
    # hand: Δ_e/m + photon part = 147.923 keV * K / 300 g + 2e-6
    assert doc["s_value_mgy_per_mbq_s"] == pytest.approx(LU177_E_KEV * K_HAND / 300 + 2e-6,
                                                         rel=1e-5)
    assert doc["sigma_mgy_per_mbq_s"] == pytest.approx(4e-8, rel=1e-5)
    assert (doc["source_mass_g"], doc["target_mass_g"]) == (300.0, 300.0)
    assert doc["provenance"] == {"code_version": "test"}


def test_svalue_text_line(tables, capsys):
    assert main(["svalue", "--nuclide", "177Lu", "--source", "liver", "--target",
                 "kidneys"]) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out
    assert out.startswith("Lu-177 adult_male: S(kidneys <- liver) = 1e-07 mGy/(MBq*s)")
    assert "source 1800 g, target 300 g" in out


def test_unknown_organ_lists_known(tables, capsys):
    assert main(["svalue", "--nuclide", "Lu-177", "--source", "kidney", "--target",
                 "liver"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err == ("error: source: unknown organ 'kidney' for phantom adult_male (Lu-177); "
                   "known: kidneys, liver")


def test_missing_table_and_unknown_nuclide(tables, capsys):
    assert main(["svalue", "--nuclide", "Y-90", "--source", "liver", "--target", "liver"]) == 2
    err = capsys.readouterr().err
    assert "nuclide: no S-value table 'adult_male_Y-90'; available: adult_male_Lu-177" in err
    assert main(["svalue", "--nuclide", "Xx-1", "--source", "liver", "--target", "liver"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_bad_phantom_is_a_usage_error(tables, capsys):
    assert main(["svalue", "--nuclide", "Lu-177", "--phantom", "child", "--source", "liver",
                 "--target", "liver"]) == 2
    assert "child" in capsys.readouterr().err


def test_packaged_lu177_table(capsys):
    # The shipped table: electron self-dose of the kidneys is exactly Δ_e/m (analytic).
    sv._load_cached.cache_clear()
    assert main(["svalue", "--nuclide", "Lu-177", "--source", "kidneys", "--target", "kidneys",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["electron_mgy_per_mbq_s"] == pytest.approx(
        LU177_E_KEV * K_HAND / doc["source_mass_g"], rel=1e-5)
    assert 0 < doc["photon_mgy_per_mbq_s"] < 0.05 * doc["s_value_mgy_per_mbq_s"]
